"""landing/land.py's chunked landing with ``max_concurrent`` > 1 (issue 28): the same objects as one at a time,
at most N requests in flight (counted by the emulator as they arrive and are answered, never timed), a failed
partition that leaves the others landed and resumable, and an ErrorCode 100 that stops every request.

``land_chunks`` is called directly (real HTTP to the emulator, real files); a retry of a task is the same call
with the same context (so the same manifest). The operator's ``max_concurrent_requests`` is tested with the
operator (tests/unit/operators/test_report.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from cloudmax_provider.exceptions import CloudmaxServerExceptionNotRetried, CloudmaxTransientError

TZ = ZoneInfo("Asia/Taipei")
DAYS = 12
FIRST = datetime(2026, 10, 1, tzinfo=TZ)
PARTITIONS = [(FIRST + timedelta(days=d), FIRST + timedelta(days=d + 1)) for d in range(DAYS)]


def _context(run_id: str = "run-1") -> dict:
    """What land_chunks reads of Airflow's context: the task instance's ids and the run (the manifest's name)."""
    return {"ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1), "run_id": run_id}


def _land(lake: Path, workers: int, context: dict | None = None) -> list[dict]:
    from cloudmax_provider.formats.writers import OutputFormat
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_chunks
    from cloudmax_provider.windows.chunks import chunk_object_name

    hook = CloudmaxHook()
    request = hook.build_request(21002, [7, 8], PARTITIONS[0][0], PARTITIONS[-1][1], response_mode=3)
    prefix = lake.as_uri() + "/"
    return land_chunks(
        context or _context(),
        hook,
        request,
        PARTITIONS,
        lambda s, e: prefix + chunk_object_name(s, e, "csv"),
        None,
        "utf-8",
        OutputFormat(),
        resume=True,
        folder=prefix,
        max_concurrent=workers,
    )


def _objects(lake: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(lake.glob("*.csv"))}


def _days_requested(emulator) -> list[str]:
    return sorted(r.field("StartTime")[:10] for r in emulator.api_requests)


def _manifest_days(lake: Path) -> set[str]:
    import json

    (manifest,) = (lake / "_cloudmax_manifests").iterdir()
    return {entry["start"][:10] for entry in json.loads(manifest.read_text())["chunks"]}


def test_parallel_lands_the_same_objects_and_rows_as_one_at_a_time(cloudmax_emulator, cloudmax_conn, tmp_path):
    one, four = tmp_path / "one", tmp_path / "four"
    sequential = _land(one, 1)
    assert cloudmax_emulator.max_in_flight == 1
    cloudmax_emulator.clear_log()
    cloudmax_emulator.settings.gather_api_requests = 4  # the first requests wait until 4 are in flight together
    parallel = _land(four, 4)
    assert cloudmax_emulator.max_in_flight == 4  # the emulator's count of requests in flight at once
    assert len(cloudmax_emulator.api_requests) == DAYS  # one request per partition, none twice
    assert _objects(one) == _objects(four) and len(_objects(four)) == DAYS
    strip = [{k: v for k, v in e.items() if k != "uri"} for e in sequential]
    assert strip == [{k: v for k, v in e.items() if k != "uri"} for e in parallel]  # in partition order
    assert [e["uri"].rsplit("/", 1)[1] for e in parallel] == list(_objects(four))
    assert sum(e["rows"] for e in parallel) == DAYS * 10
    assert not list((four / "_cloudmax_manifests").iterdir())  # complete: the manifest is gone
    assert not [p for p in tmp_path.rglob(".*")]  # nothing half-written


def test_at_most_n_requests_in_flight(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.gather_api_requests = 3  # an event: three requests were in flight together
    cloudmax_emulator.settings.latency = 0.05  # and each holds its slot a while after, so a fourth would show
    _land(tmp_path / "lake", 3)
    assert cloudmax_emulator.max_in_flight == 3
    assert len(cloudmax_emulator.api_requests) == DAYS


def test_a_failed_partition_leaves_the_others_and_the_retry_lands_only_the_rest(
    cloudmax_emulator, cloudmax_conn, tmp_path
):
    cloudmax_conn(attempts=1)  # no retry inside the hook: the task try fails on the first error
    cloudmax_emulator.settings.latency = 0.05
    cloudmax_emulator.settings.fail_start_windows = [("2026-10-05 00:00:00", "2026-10-06 00:00:00")]
    cloudmax_emulator.settings.fail_start_first = 1  # day 5 fails once, then answers
    lake = tmp_path / "lake"
    with pytest.raises(CloudmaxTransientError) as failed:
        _land(lake, 4)
    assert "2026-10-05 00:00:00+08:00 .. 2026-10-06 00:00:00+08:00" in " ".join(failed.value.__notes__)
    kept = _manifest_days(lake)
    assert "2026-10-05" not in kept and kept == {name[:10] for name in _objects(lake)}  # each object landed whole
    first_try = _days_requested(cloudmax_emulator)
    assert len(first_try) < DAYS  # the failure stopped new partitions

    cloudmax_emulator.clear_log()
    landed = _land(lake, 4)  # the retry: same task instance and run, same manifest
    every = {(FIRST + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(DAYS)}
    assert _days_requested(cloudmax_emulator) == sorted(every - kept)
    assert len(landed) == len(_objects(lake)) == DAYS and sum(e["rows"] for e in landed) == DAYS * 10


def test_error_code_100_stops_every_request(cloudmax_emulator, cloudmax_conn, tmp_path):
    """Four requests in flight together, every one answered ErrorCode 100: none is retried and no worker sends
    another (that a worker refuses to send once another's 100 halted them is the worker-hook test below)."""
    cloudmax_conn(attempts=3)  # transient failures would be retried; a 100 is not, and stops the others
    cloudmax_emulator.settings.gather_api_requests = 4  # an event: four in flight together, then answered
    cloudmax_emulator.settings.fail_first = DAYS
    cloudmax_emulator.settings.fail_with = "exception"  # every request answered ErrorCode 100
    lake = tmp_path / "lake"
    with pytest.raises(CloudmaxServerExceptionNotRetried) as failed:
        _land(lake, 4)
    assert "while landing the partition" in " ".join(failed.value.__notes__)
    assert cloudmax_emulator.max_in_flight == 4
    assert len(cloudmax_emulator.api_requests) == 4  # the four in flight; none retried, none sent after
    assert _objects(lake) == {}  # nothing landed


def test_worker_hooks_share_the_policy_and_a_halting_policy_never_retries_100(cloudmax_emulator, cloudmax_conn):
    """A worker's hook: the task's settings and ErrorCode 100 policy, its own session; with ``halt`` a 100 after
    proven credentials (retried once one request at a time) is not retried and halts every worker."""
    from cloudmax_provider.api.retry import ErrorCode100Policy
    from cloudmax_provider.exceptions import CloudmaxServerException
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook()
    worker = hook.for_worker()
    assert worker.error_100 is hook.error_100 and worker.settings is hook.settings
    assert worker.session is not hook.session
    policy = ErrorCode100Policy()
    policy.record_answer(0)
    assert type(policy.judge(CloudmaxServerException(100))) is CloudmaxServerException  # retried once
    import threading

    halting = ErrorCode100Policy(threading.Event())
    halting.record_answer(0)
    assert isinstance(halting.judge(CloudmaxServerException(100)), CloudmaxServerExceptionNotRetried)
    assert halting.halted()
