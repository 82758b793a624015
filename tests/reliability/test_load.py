"""Load: 50 report tasks at once against one emulator, half to local files and half to S3 (moto).

Each task runs the operator's execute path in its own thread (16 at a time, as a LocalExecutor with
parallelism 16 would), with its own LaunchID and destination. Every report must land complete and
correct, no two tasks may share a temporary object, and file descriptors and sockets must not grow
from one batch of 50 to the next (pools are bounded; nothing leaks).
"""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cloudmax_provider.landing import atomic
from tests.reliability.conftest import FIGURES, WINDOW, files_under, run_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]

TASKS = 50


def open_descriptors() -> tuple[int, int]:
    """(file descriptors, of which sockets) of this process."""
    fds = sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        fds += 1
        sockets += target.startswith("socket:")
    return fds, sockets


def test_fifty_reports_at_once(cloudmax_emulator, cloudmax_conn, s3_bucket, tmp_path, monkeypatch):
    bucket, client = s3_bucket
    cloudmax_conn(attempts=4)
    moves: list[tuple[str, str]] = []
    real_move = atomic._move

    def recording_move(tmp, dest):
        moves.append((tmp.path, dest.path))
        real_move(tmp, dest)

    monkeypatch.setattr(atomic, "_move", recording_move)

    def one(i: int, batch: int) -> tuple[int, str]:
        launch = 1000 + i
        dest = f"file://{tmp_path}/lake/{batch}/{i}.csv" if i % 2 else f"s3://{bucket}/lake/{batch}/{i}.csv"
        result, xcoms = run_report(
            task_id=f"report_{i}",
            report_part_id=21002,
            launch_ids=[launch],
            destination=dest,
            destination_conn_id=None if i % 2 else "aws_moto",
            response_mode=3 if i % 3 else 1,  # attachments and DOWNLOADLINKs mixed
        )
        assert result == dest and xcoms["rows"] == 5
        return launch, dest

    def batch(number: int) -> list[tuple[int, str]]:
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(lambda i: one(i, number), range(TASKS)))

    def check(done: list[tuple[int, str]]) -> None:
        for launch, dest in done:
            expected = cloudmax_emulator.expected_csv(21002, [launch], *WINDOW).encode()
            if dest.startswith("file://"):
                assert Path(dest.removeprefix("file://")).read_bytes() == expected, dest
            else:
                key = dest.removeprefix(f"s3://{bucket}/")
                assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == expected, dest

    check(batch(0))  # warms pools and caches (requests sessions, boto clients, fsspec instances)
    gc.collect()
    before = open_descriptors()
    check(batch(1))
    gc.collect()
    after = open_descriptors()
    temporaries = [tmp for tmp, _ in moves]
    files = 2 * (TASKS // 2)  # the file destinations of both batches (S3 writes multipart, no temporary)
    assert len(temporaries) == files and len(set(temporaries)) == files  # one each, never shared
    assert all(tmp != dest and ".partial" in tmp for tmp, dest in moves)
    assert all(not name.split("/")[-1].startswith(".") for name in files_under(tmp_path))  # no temporary left
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert len(cloudmax_emulator.api_requests) == 2 * TASKS
    assert after[0] <= before[0] + 2 and after[1] <= before[1] + 2, (before, after)
    FIGURES["load: reports landed at once, complete and correct (2 batches x 50)"] = 2 * TASKS
    FIGURES[f"load: fds/sockets after batch 1 -> after batch 2: {before} -> {after}"] = 1
