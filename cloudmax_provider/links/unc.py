r"""Read Report.aspx DOWNLOADLINK UNC paths (ResponseMode 0) over SMB.

A link such as ``\\CMXFILE01\reports\20261101\abc123.csv`` names a server that is often an
internal name the Airflow workers cannot resolve. The Airflow ``samba`` connection says where
the share is really reached (its host and port, when set) and with which credentials; the share
and the path inside it always come from the link.

    >>> p = UncPath.parse(r"\\CMXFILE01\reports\20261101\abc123.csv")
    >>> p.server, p.share, p.path, p.filename
    ('CMXFILE01', 'reports', '20261101\\abc123.csv', 'abc123.csv')

smbprotocol (``pip install airflow-provider-cloudmax[smb]``) and Airflow are imported where used.
"""

from __future__ import annotations

import errno
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cloudmax_provider.exceptions import (
    CloudmaxConfigError,
    CloudmaxSmbAccessDeniedError,
    CloudmaxSmbAuthError,
    CloudmaxSmbError,
    CloudmaxSmbIsADirectoryError,
    CloudmaxSmbNotFoundError,
    CloudmaxSmbTimeoutError,
    CloudmaxSmbUnreachableError,
    CloudmaxUncPathError,
)

__all__ = ["SmbTarget", "UncPath", "UncReader", "is_unc"]

# Characters Windows/SMB refuse in a file or directory name (plus control characters).
_BAD_NAME_CHARS = re.compile(r'[<>:"|?*\x00-\x1f]')
# A NetBIOS/DNS name or an IPv4 address (or an IPv6 literal in brackets).
_SERVER_RE = re.compile(r"^(?:[\w][\w.\-]*|\[[0-9A-Fa-f:.]+\])$")


def is_unc(link: str) -> bool:
    r"""True if ``link`` looks like a UNC path (``\\server\...``, ``//server/...``); :meth:`UncPath.parse` checks it."""
    return isinstance(link, str) and link.strip().startswith(("\\\\", "//"))


@dataclass(frozen=True)
class UncPath:
    r"""``\\server\share\path``; ``path`` is inside the share, backslash-separated, no leading backslash."""

    server: str
    share: str
    path: str

    @classmethod
    def parse(cls, link: str) -> UncPath:
        r"""Parse ``\\server\share\dir\file.csv`` or ``//server/share/dir/file.csv``.

        Raises :class:`~cloudmax_provider.exceptions.CloudmaxUncPathError` (a ``ValueError``) naming the link and
        what is wrong: not a UNC path, no server, no share, no file, a ``..`` segment, a character SMB refuses.
        """
        if not isinstance(link, str):
            raise CloudmaxUncPathError(f"UNC link must be a string, got {type(link).__name__}: {link!r}")
        raw = link.strip()
        if not is_unc(raw):
            raise CloudmaxUncPathError(
                f"not a UNC path: {link!r} (expected \\\\server\\share\\dir\\file or //server/share/dir/file)"
            )
        parts = raw[2:].replace("/", "\\").split("\\")
        server = parts[0]
        if not server:
            raise CloudmaxUncPathError(f"UNC link {link!r} has no server name")
        if server in (".", "?") or not _SERVER_RE.match(server):
            raise CloudmaxUncPathError(f"UNC link {link!r} has an invalid server name {server!r}")
        rest = [p for p in parts[1:] if p not in ("", ".")]
        if not rest:
            raise CloudmaxUncPathError(f"UNC link {link!r} has no share name (expected \\\\{server}\\share\\file)")
        share, segments = rest[0], rest[1:]
        if share == ".." or share == "$" or _BAD_NAME_CHARS.search(share):
            raise CloudmaxUncPathError(f"UNC link {link!r} has an invalid share name {share!r}")
        if not segments:
            raise CloudmaxUncPathError(
                f"UNC link {link!r} has no file path after the share (expected \\\\{server}\\{share}\\file)"
            )
        if parts[-1] in ("", "."):
            raise CloudmaxUncPathError(f"UNC link {link!r} names a directory, not a file (it ends with a separator)")
        for seg in segments:
            if seg == "..":
                raise CloudmaxUncPathError(f"UNC link {link!r} has a '..' segment; refusing to leave the share")
            if _BAD_NAME_CHARS.search(seg):
                raise CloudmaxUncPathError(f"UNC link {link!r} has a character SMB does not allow in {seg!r}")
            if seg != seg.rstrip(" ") or seg.endswith("."):
                raise CloudmaxUncPathError(f"UNC link {link!r} has a name ending in a space or dot: {seg!r}")
        return cls(server=server, share=share, path="\\".join(segments))

    def __str__(self) -> str:
        return f"\\\\{self.server}\\{self.share}\\{self.path}"

    @property
    def filename(self) -> str:
        return self.path.rsplit("\\", 1)[-1]

    def with_server(self, server: str) -> UncPath:
        """The same share and path on another server (e.g. the connection's host)."""
        return UncPath(server=server, share=self.share, path=self.path)


@dataclass(frozen=True)
class SmbTarget:
    """Where and how to connect: host/port and credentials. ``repr`` never shows the password.

    ``encrypt`` forces SMB3 encryption (off by default; used anyway when the server requires it).
    ``require_signing`` stays on unless turned off (e.g. guest sessions cannot sign).
    """

    host: str
    port: int = 445
    username: str | None = None
    password: str | None = None
    encrypt: bool = False
    require_signing: bool = True
    auth_protocol: str = "negotiate"

    def __repr__(self) -> str:
        pw = "None" if self.password is None else "'***'"
        return (
            f"SmbTarget(host={self.host!r}, port={self.port!r}, username={self.username!r}, password={pw}, "
            f"encrypt={self.encrypt!r}, require_signing={self.require_signing!r}, "
            f"auth_protocol={self.auth_protocol!r})"
        )

    __str__ = __repr__

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_airflow_connection(cls, smb_conn_id: str | None, link: UncPath | str) -> SmbTarget:
        r"""Build the target for ``link`` from an Airflow ``samba`` connection.

        ``smb_conn_id`` None: the link's server on port 445, no credentials (smbprotocol then uses
        the worker's Kerberos ticket, if any). Otherwise the connection's host and port replace the
        link's server and 445 when set; login (``DOMAIN\user`` kept as given) and password are the
        credentials. Optional extras: ``encrypt`` (bool), ``require_signing`` (bool),
        ``auth_protocol`` (``negotiate``/``ntlm``/``kerberos``).
        """
        unc = link if isinstance(link, UncPath) else UncPath.parse(link)
        if smb_conn_id is None:
            return cls(host=unc.server)
        # Not SambaHook: it has no fallback to the link's server, passes no encrypt/require_signing/timeout,
        # raises on closing a dead connection, and reports a bad auth_protocol as a plain ValueError.
        from airflow.providers.common.compat.sdk import BaseHook

        conn = BaseHook.get_connection(smb_conn_id)
        host = (conn.host or "").strip().lstrip("\\/")
        if host.lower().startswith("smb://"):
            host = host[6:]
        host = host.rstrip("\\/") or unc.server
        port = int(conn.port) if conn.port else 445
        try:
            extra: dict[str, Any] = dict(conn.extra_dejson or {})
        except Exception:
            extra = {}
        auth_protocol = str(extra.get("auth_protocol") or "negotiate").lower()
        if auth_protocol not in ("negotiate", "ntlm", "kerberos"):
            raise CloudmaxConfigError(
                f"connection {smb_conn_id!r}: extra auth_protocol must be negotiate, ntlm or kerberos, "
                f"got {auth_protocol!r}"
            )
        return cls(
            host=host,
            port=port,
            username=conn.login or None,
            password=conn.password or None,
            encrypt=_as_bool(extra.get("encrypt"), False),
            require_signing=_as_bool(extra.get("require_signing"), True),
            auth_protocol=auth_protocol,
        )


def _as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class UncFileStat:
    """A UNC file's size and last-write time (epoch seconds, the file server's clock)."""

    size: int
    last_write: float


class UncReader:
    """Reads UNC links over SMB with smbprotocol's ``smbclient``.

    Each reader has its own connection cache, closed by :meth:`close` or the context manager.
    The server name in a link is replaced by ``target.host``; share and path come from the link.
    """

    def __init__(self, target: SmbTarget, *, connection_timeout: float = 30) -> None:
        self.target = target
        self.connection_timeout = connection_timeout
        self._cache: dict[str, Any] = {}
        self._session_ok = False

    def __repr__(self) -> str:
        return f"UncReader({self.target!r})"

    def smb_path(self, link: str | UncPath) -> str:
        """The path handed to smbclient: the link's share and path on ``target.host``."""
        unc = link if isinstance(link, UncPath) else UncPath.parse(link)
        return str(unc.with_server(self.target.host))

    def size(self, link: str | UncPath) -> int | None:
        """Size in bytes, or None if the file (or its directory) does not exist (see :meth:`stat`)."""
        found = self.stat(link)
        return None if found is None else found.size

    def stat(self, link: str | UncPath) -> UncFileStat | None:
        """The file's size and last-write time, or None if the file (or its directory) does not exist.

        Other failures raise a :class:`~cloudmax_provider.exceptions.CloudmaxSmbError`: ``CloudmaxSmbAuthError``
        or ``CloudmaxSmbAccessDeniedError`` (PermissionErrors), ``CloudmaxSmbUnreachableError`` (a
        ConnectionError), ``CloudmaxSmbNotFoundError`` (a FileNotFoundError) for a missing share.
        """
        import smbclient

        path = self.smb_path(link)
        self._ensure_session()
        try:
            st = smbclient.stat(path, **self._kwargs())
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise self._translate(exc, link) from exc
        if stat.S_ISDIR(st.st_mode):
            where = self.target.address
            raise CloudmaxSmbIsADirectoryError(errno.EISDIR, f"{link} is a directory on {where}", str(link))
        return UncFileStat(int(st.st_size), float(st.st_mtime))

    def iter_bytes(self, link: str | UncPath, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the file in chunks of at most ``chunk_size`` bytes, never holding it whole.

        A missing file raises FileNotFoundError naming the link and the host:port.
        """
        if chunk_size <= 0:
            raise CloudmaxConfigError(f"chunk_size must be positive, got {chunk_size}")
        import smbclient

        path = self.smb_path(link)
        self._ensure_session()
        try:
            fh = smbclient.open_file(path, mode="rb", buffering=0, share_access="r", **self._kwargs())
        except Exception as exc:
            if _is_not_found(exc):
                where = self.target.address
                raise CloudmaxSmbNotFoundError(errno.ENOENT, f"{link} not found on {where}", str(link)) from exc
            raise self._translate(exc, link) from exc
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        try:
            while True:
                try:
                    n = fh.readinto(view)
                except Exception as exc:
                    raise self._translate(exc, link) from exc
                if not n:
                    break
                yield bytes(view[:n])
        finally:
            try:
                fh.close()
            except Exception:  # a connection that died mid-read cannot close the file: the read's error matters
                self.close()

    def close(self) -> None:
        self._session_ok = False
        if not self._cache:
            return
        try:
            import smbclient

            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._cache)
        finally:
            self._cache.clear()

    def __enter__(self) -> UncReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _kwargs(self) -> dict[str, Any]:
        t = self.target
        return {
            "username": t.username,
            "password": t.password,
            "port": t.port,
            "encrypt": t.encrypt,
            "connection_timeout": self.connection_timeout,
            "connection_cache": self._cache,
            "auth_protocol": t.auth_protocol,
            "require_signing": t.require_signing,
        }

    def _ensure_session(self) -> None:
        if self._session_ok:
            return
        import smbclient

        try:
            smbclient.register_session(self.target.host, **self._kwargs())
        except Exception as exc:
            # a half-open connection must not be reused by the next call
            self.close()
            raise self._translate(exc, None) from exc
        self._session_ok = True

    def _translate(self, exc: Exception, link: str | UncPath | None) -> Exception:
        """Map smbprotocol's errors to the package's :class:`CloudmaxSmbError` kinds, without the password."""
        from smbprotocol.exceptions import AccessDenied, BadNetworkName, SMBConnectionClosed

        t = self.target
        where = t.address
        who = repr(t.username) if t.username else "no credentials (Kerberos/implicit)"
        detail = str(exc).replace(t.password, "***") if t.password else str(exc)
        about = f" reading {link}" if link is not None else ""
        if _is_auth_error(exc):
            return CloudmaxSmbAuthError(
                f"SMB server {where} refused the login of {who}{about}: {detail}. Fix the login/password "
                f"of the samba connection (login may be DOMAIN\\user)."
            )
        # smbprotocol's transport raises ValueError("Failed to connect ...") from the socket's OSError
        if isinstance(exc, ValueError) and isinstance(exc.__cause__, OSError):
            return CloudmaxSmbUnreachableError(
                f"cannot reach SMB server {where}{about}: {detail}. Set the samba connection's host/port "
                f"to where the share is reachable from the Airflow workers (the UNC server name in the "
                f"link is often an internal name)."
            )
        if isinstance(exc, SMBConnectionClosed | ConnectionError | TimeoutError):
            return CloudmaxSmbUnreachableError(f"SMB connection to {where} failed{about}: {detail}")
        code = _ntstatus(exc)
        from smbprotocol.header import NtStatus

        # smbclient turns a missing share into a DFS lookup that ends in STATUS_NOT_FOUND
        if isinstance(exc, BadNetworkName) or code in (NtStatus.STATUS_BAD_NETWORK_NAME, NtStatus.STATUS_NOT_FOUND):
            share = link.share if isinstance(link, UncPath) else (UncPath.parse(link).share if link else "?")
            return CloudmaxSmbNotFoundError(
                errno.ENOENT,
                f"share {share!r} does not exist on SMB server {where}{about}; check the link or the "
                f"samba connection's host",
            )
        if isinstance(exc, AccessDenied) or code == NtStatus.STATUS_ACCESS_DENIED:
            msg = f"access denied on SMB server {where} for {who}{about}: {detail}"
            return CloudmaxSmbAccessDeniedError(errno.EACCES, msg)
        if isinstance(exc, OSError):
            return _os_error(exc.errno, f"SMB error on {where}{about}: {detail}")
        return exc


def _ntstatus(exc: BaseException) -> int | None:
    """The NTSTATUS an smbprotocol error carries (a response's ``status`` or an OS error's ``ntstatus``)."""
    from smbprotocol.exceptions import SMBOSError, SMBResponseException

    if isinstance(exc, SMBResponseException):
        return exc.status
    if isinstance(exc, SMBOSError):
        return exc.ntstatus
    return None


def _os_error(code: int | None, message: str) -> CloudmaxSmbError:
    """The package's error for an OS error number, of the kind ``OSError(code, ...)`` would be built as
    (so ``except ConnectionError`` / ``TimeoutError`` still sees a reset or a timeout)."""
    builtin = type(OSError(code, message))
    for base, ours in (
        (ConnectionError, CloudmaxSmbUnreachableError),
        (TimeoutError, CloudmaxSmbTimeoutError),
        (FileNotFoundError, CloudmaxSmbNotFoundError),
        (IsADirectoryError, CloudmaxSmbIsADirectoryError),
        (PermissionError, CloudmaxSmbAccessDeniedError),
    ):
        if issubclass(builtin, base):
            return ours(code, message)
    return CloudmaxSmbError(code, message)


def _is_not_found(exc: BaseException) -> bool:
    """The file or a directory on its path does not exist (a missing *share* is not this)."""
    from smbprotocol.exceptions import ObjectNameNotFound, ObjectPathNotFound, SMBOSError
    from smbprotocol.header import NtStatus

    if isinstance(exc, SMBOSError):
        return exc.ntstatus in (NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, NtStatus.STATUS_OBJECT_PATH_NOT_FOUND)
    return isinstance(exc, ObjectNameNotFound | ObjectPathNotFound | FileNotFoundError)


def _is_auth_error(exc: BaseException) -> bool:
    """A refused login: smbprotocol's authentication errors, or pyspnego's (it runs NTLM/Kerberos for it)."""
    from smbprotocol.exceptions import LogonFailure, SMBAuthenticationError
    from spnego.exceptions import FeatureMissingError, NativeError, SpnegoError

    return isinstance(exc, SMBAuthenticationError | LogonFailure | SpnegoError | NativeError | FeatureMissingError)
