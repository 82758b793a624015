"""``make e2e``: every example DAG, run by a real Airflow 3 installed from the built wheel.

api-server, scheduler (LocalExecutor), dag-processor and triggerer are separate processes (see
:mod:`tests.e2e.harness`); the DAGs are the repo's ``example_dags/``; ``cloudmax_default`` comes from
``AIRFLOW_CONN_CLOUDMAX_DEFAULT`` and points at the emulator, itself a process of the deployed venv.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import (
    DIST_NAME,
    ROOT,
    RUN_TIMEOUT,
    Deployment,
    RunWatcher,
    kept_on_failure,
    run_every_example_dag,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_provider_installed_from_the_wheel(deployment: Deployment) -> None:
    """`airflow providers list` shows the provider and its version; the package is the wheel's, not the checkout."""
    from cloudmax_provider import __version__

    listed = deployment.airflow("providers", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    providers = {p["package_name"]: p["version"] for p in json.loads(listed.stdout)}
    assert providers.get(DIST_NAME) == __version__, providers
    location = subprocess.run(
        [str(deployment.bin / "python"), "-c", "import cloudmax_provider; print(cloudmax_provider.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=deployment.workdir,
    ).stdout.strip()
    assert location.startswith(str(deployment.venv)), location  # the wheel's copy, not the checkout's
    assert not location.startswith(str(ROOT / "cloudmax_provider"))


def test_every_example_dag_runs(deployment: Deployment) -> None:
    """Every example DAG succeeds (without and with a logical date), objects, XComs, Asset run, deferral."""
    with kept_on_failure(deployment):
        run_every_example_dag(deployment)


def test_a_literal_parquet_destination_records_its_asset_event(deployment: Deployment) -> None:
    """A literal Parquet destination (issue 27): the run succeeds and its Asset event is recorded by the landing."""
    api, dag_id = deployment.api, "e2e_literal_parquet"
    with kept_on_failure(deployment):
        wait_until(lambda: dag_id in {d["dag_id"] for d in api.dags()}, 300, f"the dag-processor to parse {dag_id}")
        watcher = RunWatcher(deployment)
        run_id = api.trigger(dag_id)
        watcher.watch(dag_id, run_id)
        watcher.wait(RUN_TIMEOUT)
        assert watcher.failures() == {}, deployment.error_excerpts()
        uri = deployment.lake.as_uri() + "/e2e/sent.parquet"
        assert (deployment.lake / "e2e" / "sent.parquet").stat().st_size > 0
        events = api.paged("assets/events", "asset_events", source_dag_id=dag_id)
        assert [(e["uri"], e["source_task_id"], e["source_run_id"]) for e in events] == [(uri, "sent", run_id)]


def test_demo_runs_from_the_wheel(e2e_venv: Path, tmp_path: Path) -> None:
    """`python -m cloudmax_provider.testing.demo` in an empty directory: the wheel has all the demo needs."""
    done = subprocess.run(
        [str(e2e_venv / "bin" / "python"), "-m", "cloudmax_provider.testing.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Report written: " in done.stdout
    assert not (tmp_path / "example_dags").exists()  # so the DAG came from the installed package
