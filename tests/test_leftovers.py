"""A killed writer's temporary object is removed by the next successful write of the same destination;
the emulator can hold link files back until a test releases them."""

from __future__ import annotations

import fcntl
import os
import time

import requests
from airflow.providers.common.compat.sdk import ObjectStoragePath

from cloudmax_provider.landing import atomic
from cloudmax_provider.landing.atomic import remove_stale_partials


def test_next_write_removes_a_killed_writers_partial(tmp_path):
    dest = ObjectStoragePath((tmp_path / "opens.csv").as_uri())
    killed = tmp_path / ".opens.csv.0123456789ab.partial"  # what a SIGKILLed write leaves
    killed.write_bytes(b"a,b\r\n1,")
    os.utime(killed, (time.time() - 60, time.time() - 60))
    others = [tmp_path / ".clicks.csv.0123456789ab.partial", tmp_path / ".opens.csv.partial", tmp_path / "x.csv"]
    for other in others:
        other.write_bytes(b"keep")
    assert atomic.write(dest, [b"a,b\r\n", b"1,2\r\n"]) == 10
    assert (tmp_path / "opens.csv").read_bytes() == b"a,b\r\n1,2\r\n"
    assert not killed.exists()
    assert all(other.read_bytes() == b"keep" for other in others)  # other destinations' files stay
    assert remove_stale_partials(dest) == []


def test_a_partial_still_being_written_is_kept(tmp_path):
    """Two runs landing the same window: the first to finish must not delete the other's temporary file."""
    dest = ObjectStoragePath((tmp_path / "opens.csv").as_uri())
    live = tmp_path / ".opens.csv.ba9876543210.partial"
    live.write_bytes(b"a,b\r\n")
    os.utime(live, (time.time() - 60, time.time() - 60))
    with live.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # what a live writer holds
        assert atomic.write(dest, [b"a,b\r\n"]) == 5
        assert live.exists()
    assert len(remove_stale_partials(dest)) == 1  # its writer is gone now
    assert not live.exists()


def test_emulator_release_links(cloudmax_emulator):
    emu = cloudmax_emulator
    emu.settings.link_ready_after = 3600
    answer = requests.get(
        emu.endpoint_url,
        params={
            "ManagerLoginName": "demo",
            "ManagerPassword": "demo-password",
            "ReportPartID": "21002",
            "LaunchID": "1",
            "StartTime": "2026-11-01",
            "EndTime": "2026-11-02",
            "ResponseMode": "1",
        },
        timeout=10,
    )
    link = answer.text.split("<DOWNLOADLINK>")[1].split("</DOWNLOADLINK>")[0]
    assert requests.get(link, timeout=10).status_code == 404
    assert emu.release_links() == 1
    time.sleep(0.01)
    assert requests.get(link, timeout=10).status_code == 200
