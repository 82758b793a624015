"""A real, private Samba (``smbd``) server for tests and demos.

Each :class:`SambaServer` writes its own ``smb.conf`` and private state directories in a
temporary directory, listens on 127.0.0.1 only, on its own port, and exports one share. Several
instances can run at once. Needs Debian's ``samba`` package and root (smbd switches to the
connecting user).

    with SambaServer(tmp_path) as srv:
        ...  # \\\\<srv.host>\\<srv.share>\\file.csv on port srv.port, srv.username / srv.password
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["SambaServer", "find_smbd", "samba_unavailable_reason"]

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def find_smbd() -> str | None:
    """Path of the ``smbd`` binary, or None."""
    return _which("smbd")


def samba_unavailable_reason() -> str | None:
    """None when a :class:`SambaServer` can be started here, else why not (with the fix)."""
    if find_smbd() is None:
        return "smbd not found: apt-get install samba"
    if _which("smbpasswd") is None and _which("pdbedit") is None:
        return "smbpasswd/pdbedit not found: apt-get install samba-common-bin"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "smbd must run as root (it switches to the connecting user); run the tests as root"
    return None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class SambaServer:
    """A private smbd exporting ``share_dir`` as ``\\\\host\\share`` on ``host:port``."""

    def __init__(
        self,
        share_dir: str | Path,
        *,
        share: str = "reports",
        port: int = 0,
        username: str = "cmxsmb",
        password: str = "Smb-Pa55w0rd!",  # noqa: S107 - a throwaway test server
        host: str = "127.0.0.1",
    ) -> None:
        self.share_dir = Path(share_dir).resolve()
        self.share = share
        self.port = port
        self._fixed_port = port != 0
        self.username = username
        self.password = password
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._log_fh: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"SambaServer(\\\\{self.host}\\{self.share} -> {self.share_dir}, port={self.port}, "
            f"username={self.username!r}, {state})"
        )

    # -- paths ---------------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        assert self._tmp is not None, "SambaServer not started"
        return self._tmp / "smb.conf"

    @property
    def log_path(self) -> Path:
        assert self._tmp is not None, "SambaServer not started"
        return self._tmp / "smbd.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def unc(self, relpath: str = "", server: str | None = None) -> str:
        """``\\\\server\\share\\relpath`` (server defaults to ``host``)."""
        rel = relpath.replace("/", "\\").lstrip("\\")
        base = f"\\\\{server or self.host}\\{self.share}"
        return f"{base}\\{rel}" if rel else base

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SambaServer:
        if self.running:
            return self
        reason = samba_unavailable_reason()
        if reason:
            raise RuntimeError(f"cannot start SambaServer: {reason}")
        self.share_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="cmx-samba-"))
        for d in ("lock", "state", "cache", "pid", "private", "ncalrpc", "usershares", "binddns"):
            (self._tmp / d).mkdir(mode=0o755)
        self._ensure_unix_user()
        attempts = 1 if self._fixed_port else 3
        last_err: Exception | None = None
        for _ in range(attempts):
            if not self._fixed_port:
                self.port = _free_port(self.host)
            self._write_conf()
            try:
                self._set_password()
                self._spawn()
                atexit.register(self.stop)
                return self
            except Exception as exc:  # retry on a port race when we picked the port
                last_err = exc
                self._kill()
        self.stop()
        assert last_err is not None
        raise last_err

    def stop(self) -> None:
        self._kill()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SambaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------
    def _write_conf(self) -> None:
        t = self._tmp
        assert t is not None
        force_user = pwd.getpwuid(os.geteuid()).pw_name
        conf = f"""\
[global]
    server role = standalone server
    workgroup = WORKGROUP
    netbios name = CMXTEST{self.port}
    smb ports = {self.port}
    interfaces = {self.host}
    bind interfaces only = yes
    disable netbios = yes
    server min protocol = SMB2
    server signing = auto
    server smb encrypt = if_required
    security = user
    map to guest = never
    passdb backend = tdbsam:{t}/private/passdb.tdb
    lock directory = {t}/lock
    state directory = {t}/state
    cache directory = {t}/cache
    pid directory = {t}/pid
    private dir = {t}/private
    ncalrpc dir = {t}/ncalrpc
    binddns dir = {t}/binddns
    usershare path = {t}/usershares
    usershare max shares = 0
    log file = {t}/smbd.log
    max log size = 0
    log level = 1
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    unix charset = UTF-8
    dos charset = CP850
    obey pam restrictions = no
    unix password sync = no
    dns proxy = no

[{self.share}]
    path = {self.share_dir}
    read only = no
    browseable = yes
    guest ok = no
    valid users = {self.username}
    force user = {force_user}
    create mask = 0644
    directory mask = 0755
"""
        self.conf_path.write_text(conf, encoding="utf-8")

    def _ensure_unix_user(self) -> None:
        try:
            pwd.getpwnam(self.username)
            return
        except KeyError:
            pass
        useradd = _which("useradd")
        if useradd is None:
            raise RuntimeError(f"unix user {self.username!r} missing and useradd not found")
        res = subprocess.run(
            [useradd, "-M", "-s", "/usr/sbin/nologin", self.username],
            capture_output=True,
            text=True,
            check=False,
        )
        # 9 = already exists (another instance raced us)
        if res.returncode not in (0, 9):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(self.username)
                return
            raise RuntimeError(f"useradd {self.username} failed ({res.returncode}): {res.stderr.strip()}")

    def _set_password(self) -> None:
        smbpasswd = _which("smbpasswd")
        if smbpasswd is not None:
            cmd = [smbpasswd, "-c", str(self.conf_path), "-s", "-a", self.username]
        else:  # pragma: no cover - Debian ships smbpasswd with samba-common-bin
            pdbedit = _which("pdbedit")
            assert pdbedit is not None
            cmd = [pdbedit, "-s", str(self.conf_path), "-t", "-a", "-u", self.username]
        res = subprocess.run(
            cmd,
            input=f"{self.password}\n{self.password}\n",
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if res.returncode != 0:
            out = (res.stdout + res.stderr).replace(self.password, "***").strip()
            raise RuntimeError(f"setting the samba password of {self.username!r} failed: {out}")

    def _command(self) -> list[str]:
        smbd = find_smbd()
        assert smbd is not None
        return [
            smbd,
            "--foreground",
            "--no-process-group",
            f"--configfile={self.conf_path}",
            "--debug-stdout",
            "--debuglevel=1",
        ]

    def _spawn(self) -> None:
        if _port_open(self.host, self.port):
            raise RuntimeError(f"port {self.host}:{self.port} is already in use")
        assert self._tmp is not None
        log = open(self._tmp / "smbd.stdout", "wb")  # noqa: SIM115 - kept open for smbd's lifetime
        self._log_fh = log
        self._proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(self._tmp),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"smbd exited with code {self._proc.returncode} before listening on "
                    f"{self.host}:{self.port}; log tail:\n{self._log_tail()}"
                )
            if _port_open(self.host, self.port):
                return
            time.sleep(0.05)
        where = f"{self.host}:{self.port}"
        raise RuntimeError(f"smbd did not listen on {where} within 20 s; log tail:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 40) -> str:
        if self._tmp is None:
            return ""
        chunks = []
        for name in ("smbd.stdout", "smbd.log"):
            p = self._tmp / name
            if p.exists():
                text = p.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(chunks)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            # SIGTERM the leader so smbd stops its own children, then SIGKILL whatever is left
            # in its process group (per-client smbd, notifyd, cleanupd, ...).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        fh, self._log_fh = self._log_fh, None
        if fh is not None:
            with contextlib.suppress(Exception):
                fh.close()
