"""``make e2e-killed`` (issue 13, "processes killed"): the deployment survives its processes dying.

* A task process SIGKILLed while a 200 MiB report streams to a ``file://`` destination: Airflow's
  retry lands the report once, whole, and the killed attempt's temporary object does not stay.
* The triggerer restarted while 100 deferrable sensors wait in it: every sensor still succeeds
  once its file exists (the files appear only after the restart).

Both run in the LocalExecutor deployment of ``tests/e2e/conftest.py`` (DAGs in ``tests/e2e/dags/``),
against the in-process emulator the test steers.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import E2E_BUNDLE, Deployment, kept_on_failure, wait_until

pytestmark = [pytest.mark.e2e_killed, pytest.mark.slow, pytest.mark.timeout(1500)]

BIG_REPORT_BYTES = 200 << 20


def wait_for_dag(dep: Deployment, dag_id: str) -> None:
    def parsed() -> bool:
        dep.check_alive()
        return any(d["dag_id"] == dag_id and d.get("bundle_name") == E2E_BUNDLE for d in dep.api.dags())

    wait_until(parsed, 300, f"the dag-processor to parse {dag_id}", interval=2)


def writer_of(path: Path, root_pid: int) -> int | None:
    """The pid, among ``root_pid``'s descendants, that has ``path`` open."""
    import psutil

    try:
        family = psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return None
    for proc in family:
        try:
            if any(f.path == str(path) for f in proc.open_files()):
                return int(proc.pid)
        except psutil.Error:
            continue
    return None


@pytest.fixture
def emulator(control_emulator: Any) -> Any:
    control_emulator.reset()
    yield control_emulator
    control_emulator.reset()


def test_task_killed_mid_stream_lands_once_whole(deployment: Deployment, emulator: Any) -> None:
    dag_id = "e2e_killed_big_report"
    api = deployment.api
    with kept_on_failure(deployment):
        emulator.settings.big_report_bytes = BIG_REPORT_BYTES
        _, size, rows = emulator.big_report_info(2100199)  # generated before the run, not during it
        dest = deployment.lake / "killed" / "big.csv"
        wait_for_dag(deployment, dag_id)
        calls_before = len(emulator.api_requests)
        run_id = api.trigger(dag_id)

        # Catch the first try while it writes: freeze it (SIGSTOP) as soon as its temporary object has
        # data, check it is mid-stream, then SIGKILL it: no handler, no clean-up, as an OOM kill does.
        scheduler = deployment.components["scheduler"].pid
        killed: dict[str, Any] = {}

        def stream_caught() -> bool:
            deployment.check_alive()
            for partial in dest.parent.glob(".big.csv.*.partial") if dest.parent.exists() else []:
                pid = writer_of(partial, scheduler)
                if pid is None:
                    continue
                os.kill(pid, signal.SIGSTOP)
                written = partial.stat().st_size
                if 0 < written < size:
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid, partial=partial, written=written)
                    return True
                os.kill(pid, signal.SIGCONT)  # nothing written yet: let it go on and look again
            return False

        wait_until(stream_caught, 300, "the first try to stream into its temporary object", interval=0.005)
        run = api.wait_for_run(dag_id, run_id, timeout=600, check=deployment.check_alive)
        assert run["state"] == "success", run

        assert dest.stat().st_size == size, (dest.stat().st_size, size)
        with dest.open("rb") as f:
            assert sum(1 for _ in f) - 1 == rows  # the big report has no quoted newlines
        assert api.xcom(dag_id, run_id, "big", key="rows") == rows
        tries = api.tries(dag_id, run_id, "big")
        assert [t["state"] for t in tries] == ["up_for_retry", "success"] or [t["state"] for t in tries][-1:] == [
            "success"
        ], tries
        assert len(tries) == 2, tries  # killed once, landed by the retry
        assert len(emulator.api_requests) - calls_before == 2  # one request per try, nothing else
        leftovers = sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name)
        assert leftovers == [], f"left beside the report: {leftovers} (killed try wrote {killed['written']} bytes)"
        log = api.task_log(dag_id, run_id, "big", try_number=2)
        assert "left by an earlier, killed attempt" in log, log[-2000:]


def test_triggerer_restart_with_100_deferred_sensors(deployment: Deployment, emulator: Any) -> None:
    dag_id = "e2e_deferred_many"
    api = deployment.api
    with kept_on_failure(deployment):
        emulator.settings.link_ready_after = 24 * 3600.0  # the files appear only when the test says so
        wait_for_dag(deployment, dag_id)
        run_id = api.trigger(dag_id)

        def held_by_one_triggerer(exclude: int | None = None) -> int | None:
            """The triggerer job id holding all 100 deferred sensors' triggers (None until they all are)."""
            deployment.check_alive()
            tis = [t for t in api.task_instances(dag_id, run_id) if t["task_id"] == "wait"]
            assert not [t for t in tis if t["state"] in ("failed", "upstream_failed", "success")], tis
            holders = {(t.get("trigger") or {}).get("triggerer_id") for t in tis if t["state"] == "deferred"}
            deferred = sum(t["state"] == "deferred" for t in tis)
            if deferred == 100 and len(holders) == 1 and None not in holders and exclude not in holders:
                return int(holders.pop())
            return None

        first = wait_until(held_by_one_triggerer, 900, "100 sensors deferred in the triggerer", interval=2)
        old = deployment.components["triggerer"]
        deployment.restart("triggerer")  # SIGTERM and start again, as a deploy or a host restart does
        assert not old.alive()
        second = wait_until(
            lambda: held_by_one_triggerer(exclude=first), 300, "the new triggerer to take the 100 triggers", interval=2
        )
        jobs = {j["id"]: j for j in api.paged("jobs", "jobs", job_type="TriggererJob")}
        assert jobs[second]["state"] == "running" and jobs[first]["state"] != "running", jobs
        seen_before = len(emulator.link_requests)
        assert emulator.release_links() >= 100  # only now do the files exist

        run = api.wait_for_run(dag_id, run_id, timeout=900, check=deployment.check_alive)
        assert run["state"] == "success", run
        tis = [t for t in api.task_instances(dag_id, run_id) if t["task_id"] == "wait"]
        assert len(tis) == 100 and {t["state"] for t in tis} == {"success"}
        assert {t["try_number"] for t in tis} == {1}  # resumed from deferral, never retried
        values = [api.xcom(dag_id, run_id, "wait", map_index=i) for i in (0, 57, 99)]
        assert all(v and v[0]["size"] > 0 for v in values), values
        assert len(emulator.link_requests) > seen_before  # the new triggerer probed the links again
        for t in tis:  # each paused once, before the restart, and resumed from the new triggerer's event
            task_log = deployment.task_log_files(dag_id, run_id, "wait", t["map_index"])["task"]
            assert task_log.count("Pausing task as DEFERRED") == 1 and "DOWNLOADLINK(s) ready" in task_log
