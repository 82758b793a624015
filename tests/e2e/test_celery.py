"""``make e2e-celery``: the example DAGs on a CeleryExecutor deployment, installed from the built wheel.

PostgreSQL (metadata DB and Celery results) and Redis (broker) from Debian's packages run as unprivileged
processes in temp dirs on loopback ports; two Celery workers with distinct hostnames, each with its own
working directory and TMPDIR, and a separate triggerer. The same checks as ``make e2e`` run, and the
tasks of one run must land on both workers: nothing a task leaves on a worker's disk can reach the next
task, only what goes through XCom and the shared storage root.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ARTIFACTS, Deployment, conn_json, kept_on_failure, run_every_example_dag, wait_until

pytestmark = [pytest.mark.e2e_celery, pytest.mark.slow, pytest.mark.timeout(1500)]

WORKERS = ("worker1", "worker2")


@pytest.fixture(scope="module")
def celery_deployment(e2e_venv: Path) -> Iterator[Deployment]:
    dep = Deployment(e2e_venv, artifacts=ARTIFACTS / "celery", executor="CeleryExecutor")
    try:
        db_url = dep.start_postgres()
        broker = dep.start_redis()
        emulator = dep.start_emulator("--link-ready-after", "90")  # longer than a busy queue delays the sensor
        dep.start_airflow(
            connections={"cloudmax_default": conn_json(emulator)},
            db_url=db_url,
            extra_env={
                "AIRFLOW__CELERY__BROKER_URL": broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            },
        )
        for name in WORKERS:
            dep.start_celery_worker(name)
        for name in WORKERS:
            comp = dep.components[name]
            wait_until(lambda c=comp: "ready." in c.log_text() or not c.alive(), 120, f"Celery {name}")
        dep.check_alive()
        yield dep
    finally:
        dep.stop_all()


def test_example_dags_on_two_celery_workers(celery_deployment: Deployment) -> None:
    dep = celery_deployment
    with kept_on_failure(dep):
        watcher = run_every_example_dag(dep)
        hosts_by_run: dict[tuple[str, str], set[str]] = {}
        for dag_id, run_id in watcher.runs:
            for ti in dep.api.task_instances(dag_id, run_id):
                if ti["state"] == "success":
                    assert ti["hostname"] in WORKERS, ti
                    assert ti["queue"] == "default", ti
                    hosts_by_run.setdefault((dag_id, run_id), set()).add(ti["hostname"])
        assert any(hosts == set(WORKERS) for hosts in hosts_by_run.values()), hosts_by_run
        assert set().union(*hosts_by_run.values()) == set(WORKERS)
        # Nothing a task wrote stayed on a worker's disk (the reports went to the shared storage root).
        for name in WORKERS:
            left = [p for p in (dep.workdir / name / "tmp").rglob("*") if p.is_file()]
            assert left == [], left
