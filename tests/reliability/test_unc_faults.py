"""A UNC read cut by the share going away (a real smbd, stopped mid-read and started again).

Expected, as for the HTTP paths: the cut attempt leaves nothing at the destination, the whole file is
read again from the start, and the report lands once, complete.
"""

from __future__ import annotations

import json
import socket

import pytest

from cloudmax_provider.exceptions import CloudmaxTransientError
from cloudmax_provider.links.unc import UncReader
from cloudmax_provider.testing.samba import SambaServer, samba_unavailable_reason
from tests.reliability.conftest import FIGURES, files_under, run_report

pytestmark = [pytest.mark.samba, pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    reason = samba_unavailable_reason()
    if reason:
        pytest.skip(f"Samba not available: {reason}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with SambaServer(tmp_path_factory.mktemp("rel_share"), port=port) as server:  # a fixed port: restartable
        yield server


@pytest.fixture
def unc_emulator(cloudmax_emulator, cloudmax_conn, share, monkeypatch):
    cloudmax_emulator.settings.unc_root = str(share.share_dir)
    cloudmax_emulator.settings.big_report_bytes = 3 << 20  # three 1 MiB reads: the cut comes mid-file
    conn = {"conn_type": "samba", "host": share.host, "port": share.port, "login": share.username}
    monkeypatch.setenv("AIRFLOW_CONN_SMB_REL", json.dumps({**conn, "password": share.password}))
    cloudmax_conn(attempts=3)
    return cloudmax_emulator


def _cut_reads(monkeypatch, share, times: int) -> list[int]:
    """The first ``times`` reads stop the share after their first chunk (and start it again)."""
    real = UncReader.iter_bytes
    cuts: list[int] = []

    def iter_bytes(self, link, chunk_size=1 << 20):
        chunks = real(self, link, chunk_size)
        yield next(chunks)
        if len(cuts) < times:
            cuts.append(1)
            share.stop()  # the share goes away mid-read
            share.start()
        yield from chunks

    monkeypatch.setattr(UncReader, "iter_bytes", iter_bytes)
    return cuts


def test_a_unc_read_cut_is_retried_from_scratch(unc_emulator, share, tmp_path, monkeypatch):
    cuts = _cut_reads(monkeypatch, share, times=1)
    dest = tmp_path / "r.csv"
    run_report(destination=f"file://{dest}", response_mode=0, smb_conn_id="smb_rel")
    path, size, _rows = unc_emulator.big_report_info(21002)
    assert cuts == [1] and dest.read_bytes() == path.read_bytes() and dest.stat().st_size == size
    assert files_under(tmp_path) == ["r.csv"]
    FIGURES["faults survived"] += 1


def test_a_unc_read_always_cut_leaves_nothing(unc_emulator, share, tmp_path, monkeypatch):
    _cut_reads(monkeypatch, share, times=10**6)
    with pytest.raises(CloudmaxTransientError, match=r"SMB read of .* was cut"):
        run_report(destination=f"file://{tmp_path}/lake/r.csv", response_mode=0, smb_conn_id="smb_rel")
    assert files_under(tmp_path) == []
    FIGURES["faults failing cleanly (nothing at the destination)"] += 1
