"""UNC parsing, SMB targets from Airflow connections, and UncReader against a real smbd."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudmax_provider.links.unc import SmbTarget, UncPath, UncReader, is_unc
from cloudmax_provider.testing.samba import SambaServer, samba_unavailable_reason

CJK_NAME = "報表_開信明細_2026.csv"
BIG_SIZE = 20 * 1024 * 1024 + 12345  # not a multiple of the chunk size


# ---------------------------------------------------------------------------------------------
# UncPath / is_unc
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("link", "server", "share", "path"),
    [
        (r"\\CMXFILE01\reports\20261101\abc123.csv", "CMXFILE01", "reports", "20261101\\abc123.csv"),
        ("//CMXFILE01/reports/20261101/abc123.csv", "CMXFILE01", "reports", "20261101\\abc123.csv"),
        (r"\\10.1.2.3\reports\a.csv", "10.1.2.3", "reports", "a.csv"),
        (r"  \\srv.corp.local\rep$\x\y\z.csv  ", "srv.corp.local", "rep$", "x\\y\\z.csv"),
        (r"\\srv\reports\\dir\.\f.csv", "srv", "reports", "dir\\f.csv"),  # empty and '.' segments dropped
        (r"\\srv/reports\dir/f.csv", "srv", "reports", "dir\\f.csv"),  # mixed separators
        (rf"\\CMXFILE01\reports\20261101\{CJK_NAME}", "CMXFILE01", "reports", f"20261101\\{CJK_NAME}"),
        (r"\\srv\reports\my report (1).csv", "srv", "reports", "my report (1).csv"),
    ],
)
def test_parse_good(link: str, server: str, share: str, path: str) -> None:
    p = UncPath.parse(link)
    assert (p.server, p.share, p.path) == (server, share, path)
    assert str(p) == f"\\\\{server}\\{share}\\{path}"
    assert p.filename == path.rsplit("\\", 1)[-1]
    assert UncPath.parse(str(p)) == p  # round trip


@pytest.mark.parametrize(
    ("link", "why"),
    [
        (r"C:\reports\a.csv", "not a UNC path"),
        ("https://example.com/a.csv", "not a UNC path"),
        ("", "not a UNC path"),
        (r"\\", "no server"),
        (r"\\\reports\a.csv", "no server"),
        (r"\\CMXFILE01", "no share"),
        (r"\\CMXFILE01\\", "no share"),
        (r"\\CMXFILE01\reports", "no file path"),
        (r"\\CMXFILE01\reports\ ".rstrip(), "no file path"),
        (r"\\CMXFILE01\reports\20261101\\", "directory"),
        (r"\\CMXFILE01\reports\..\secret.csv", "'..'"),
        (r"\\CMXFILE01\reports\a\..\..\b.csv", "'..'"),
        ("//CMXFILE01/reports/../etc/passwd", "'..'"),
        (r"\\CMXFILE01\..\a.csv", "invalid share"),
        (r"\\CMXFILE01\reports\a.csv:stream", "does not allow"),
        (r"\\CMXFILE01\reports\a*.csv", "does not allow"),
        (r"\\?\C:\a.csv", "invalid server"),
        (r"\\bad host\reports\a.csv", "invalid server"),
    ],
)
def test_parse_bad(link: str, why: str) -> None:
    with pytest.raises(ValueError) as ei:
        UncPath.parse(link)
    msg = str(ei.value)
    assert why in msg
    if link:
        assert repr(link.strip()) in msg or repr(link) in msg  # names the link


def test_parse_not_a_string() -> None:
    with pytest.raises(ValueError, match="string"):
        UncPath.parse(None)  # type: ignore[arg-type]


def test_is_unc() -> None:
    assert is_unc(r"\\CMXFILE01\reports\a.csv")
    assert is_unc("//CMXFILE01/reports/a.csv")
    assert is_unc(r"  \\x\y\z")
    assert not is_unc("http://host/a.csv")
    assert not is_unc("https://host/a.csv")
    assert not is_unc(r"C:\a.csv")
    assert not is_unc("")
    assert not is_unc(None)  # type: ignore[arg-type]


def test_with_server() -> None:
    p = UncPath.parse(r"\\CMXFILE01\reports\d\a.csv")
    assert str(p.with_server("127.0.0.1")) == r"\\127.0.0.1\reports\d\a.csv"


# ---------------------------------------------------------------------------------------------
# SmbTarget
# ---------------------------------------------------------------------------------------------
LINK = UncPath.parse(r"\\CMXFILE01\reports\20261101\abc123.csv")


def _set_conn(monkeypatch: pytest.MonkeyPatch, **fields: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMB_TEST", json.dumps({"conn_type": "samba", **fields}))


def test_target_without_connection_uses_link_server() -> None:
    t = SmbTarget.from_airflow_connection(None, LINK)
    assert t == SmbTarget(host="CMXFILE01", port=445)
    assert t.username is None and t.password is None


def test_target_from_env_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, host="127.0.0.1", port=4455, login="CORP\\svc_cmx", password="S3cret-Value!")
    t = SmbTarget.from_airflow_connection("smb_test", LINK)
    assert (t.host, t.port, t.username, t.password) == ("127.0.0.1", 4455, "CORP\\svc_cmx", "S3cret-Value!")
    assert t.encrypt is False and t.require_signing is True
    assert "S3cret-Value!" not in repr(t) and "S3cret-Value!" not in str(t)
    assert "***" in repr(t) and "CORP" in repr(t)
    # a str link works too
    assert SmbTarget.from_airflow_connection("smb_test", str(LINK)) == t


def test_target_connection_without_host_or_port(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, login="u", password="p4ssword-x")
    t = SmbTarget.from_airflow_connection("smb_test", LINK)
    assert (t.host, t.port, t.username) == ("CMXFILE01", 445, "u")


def test_target_connection_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(
        monkeypatch,
        host="\\\\files.example.com",
        login="u",
        password="p4ssword-x",
        extra={"encrypt": "true", "require_signing": False, "auth_protocol": "NTLM"},
    )
    t = SmbTarget.from_airflow_connection("smb_test", LINK)
    assert t.host == "files.example.com"
    assert (t.encrypt, t.require_signing, t.auth_protocol) == (True, False, "ntlm")


def test_target_repr_hides_password() -> None:
    t = SmbTarget("h", 445, "u", "hunter2-long")
    assert "hunter2-long" not in repr(t)
    assert "hunter2-long" not in repr(UncReader(t))
    assert "password=None" in repr(SmbTarget("h"))


# ---------------------------------------------------------------------------------------------
# Against a real smbd
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    reason = samba_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    share_dir = tmp_path_factory.mktemp("smbshare")
    day = share_dir / "20261101"
    day.mkdir()
    (day / "abc123.csv").write_bytes(b"a,b\r\n1,2\r\n")
    (day / CJK_NAME).write_text("姓名,電子郵件\r\n王小明,ming@example.com\r\n", encoding="utf-8")
    (day / "empty.csv").write_bytes(b"")
    with (day / "big.bin").open("wb") as fh:
        left = BIG_SIZE
        while left:
            n = min(left, 1 << 20)
            fh.write(os.urandom(n))
            left -= n
    with SambaServer(share_dir) as srv:
        yield srv


@pytest.fixture()
def reader(samba: SambaServer) -> Iterator[UncReader]:
    with UncReader(SmbTarget(samba.host, samba.port, samba.username, samba.password)) as r:
        yield r


needs_samba = pytest.mark.samba


@needs_samba
def test_size_existing_and_missing(reader: UncReader, samba: SambaServer) -> None:
    assert reader.size(samba.unc("20261101/abc123.csv")) == 10
    assert reader.size(UncPath.parse(samba.unc("20261101/empty.csv"))) == 0
    assert reader.size(samba.unc("20261101/missing.csv")) is None
    assert reader.size(samba.unc("20991231/abc123.csv")) is None  # missing directory
    assert reader.size(samba.unc("20261101/abc123.csv/x.csv")) is None  # a file used as a directory


@needs_samba
def test_unresolvable_server_name_is_replaced(reader: UncReader, samba: SambaServer) -> None:
    link = r"\\CMXFILE01\reports\20261101\abc123.csv"
    assert reader.smb_path(link) == rf"\\{samba.host}\reports\20261101\abc123.csv"
    assert reader.size(link) == 10
    assert b"".join(reader.iter_bytes(link)) == b"a,b\r\n1,2\r\n"


@needs_samba
def test_cjk_file_name(reader: UncReader, samba: SambaServer) -> None:
    link = rf"\\CMXFILE01\reports\20261101\{CJK_NAME}"
    data = b"".join(reader.iter_bytes(link))
    assert data.decode("utf-8").startswith("姓名,電子郵件")
    assert reader.size(link) == len(data)


@needs_samba
def test_iter_bytes_big_file_streams(reader: UncReader, samba: SambaServer) -> None:
    expected = hashlib.sha256((Path(samba.share_dir) / "20261101" / "big.bin").read_bytes()).hexdigest()
    chunk = 256 * 1024
    h = hashlib.sha256()
    total = count = biggest = 0
    for part in reader.iter_bytes(r"\\CMXFILE01\reports\20261101\big.bin", chunk_size=chunk):
        assert 0 < len(part) <= chunk
        h.update(part)
        total += len(part)
        count += 1
        biggest = max(biggest, len(part))
    assert total == BIG_SIZE
    assert h.hexdigest() == expected
    assert count >= BIG_SIZE // chunk
    assert biggest <= chunk


@needs_samba
def test_iter_bytes_missing_and_empty(reader: UncReader, samba: SambaServer) -> None:
    assert list(reader.iter_bytes(samba.unc("20261101/empty.csv"))) == []
    with pytest.raises(FileNotFoundError, match=rf"missing\.csv.*{samba.port}"):
        list(reader.iter_bytes(samba.unc("20261101/missing.csv")))
    with pytest.raises(ValueError, match="chunk_size"):
        list(reader.iter_bytes(samba.unc("20261101/abc123.csv"), chunk_size=0))


@needs_samba
def test_missing_share_and_directory_link_raise(reader: UncReader, samba: SambaServer) -> None:
    with pytest.raises(FileNotFoundError, match="share 'noshare' does not exist"):
        reader.size(r"\\CMXFILE01\noshare\a.csv")
    with pytest.raises(IsADirectoryError):
        reader.size(r"\\CMXFILE01\reports\20261101")


@needs_samba
def test_wrong_password_raises_permission_error(samba: SambaServer) -> None:
    bad = "Wrong-Passw0rd-XYZ"
    with (
        UncReader(SmbTarget(samba.host, samba.port, samba.username, bad)) as r,
        pytest.raises(PermissionError) as ei,
    ):
        r.size(samba.unc("20261101/abc123.csv"))
    msg = str(ei.value)
    assert bad not in msg and samba.password not in msg
    assert f"{samba.host}:{samba.port}" in msg
    assert "password" in msg  # says what to fix


@needs_samba
def test_unreachable_port_raises_connection_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = SmbTarget("127.0.0.1", port, "u", "Some-Passw0rd")
    with UncReader(target, connection_timeout=5) as r, pytest.raises(ConnectionError) as ei:
        r.size(r"\\CMXFILE01\reports\a.csv")
    assert f"127.0.0.1:{port}" in str(ei.value)
    assert "Some-Passw0rd" not in str(ei.value)


@needs_samba
def test_end_to_end_from_airflow_connection(samba: SambaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, host=samba.host, port=samba.port, login=samba.username, password=samba.password)
    link = UncPath.parse(r"\\CMXFILE01\reports\20261101\abc123.csv")
    target = SmbTarget.from_airflow_connection("smb_test", link)
    with UncReader(target) as r:
        assert r.size(link) == 10
        assert b"".join(r.iter_bytes(link, chunk_size=3)) == b"a,b\r\n1,2\r\n"
    # the reader can be closed twice and reused after close (new connection)
    r.close()
    assert r.size(link) == 10
    r.close()


def _live_group_members(pgid: int) -> list[int]:
    """Non-zombie processes in process group ``pgid`` (Linux /proc)."""
    live = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(name))
    return live


@needs_samba
def test_two_servers_at_once_and_stop_kills_smbd(samba: SambaServer, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_bytes(b"second")
    other = SambaServer(tmp_path, share="other").start()
    try:
        assert other.port != samba.port
        proc = other._proc
        assert proc is not None
        with UncReader(SmbTarget(other.host, other.port, other.username, other.password)) as r:
            assert r.size(r"\\CMXFILE01\other\x.csv") == 6
    finally:
        other.stop()
    assert not other.running
    # smbd and all its children are gone (zombies aside); SIGKILL delivery is asynchronous
    deadline = time.monotonic() + 5
    while _live_group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_group_members(proc.pid) == []
    with socket.socket() as s:
        assert s.connect_ex((other.host, other.port)) != 0
