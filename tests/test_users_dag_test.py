"""A user's own DAG file, run as users run it: ``python dag.py`` (its ``dag.test()``) and ``airflow dags test``,
each in a fresh process, with nothing called first (no ``write_dags_to_db()``), on every supported Airflow.

One literal destination per landing kind, each declaring its Asset (Dataset on 2.11): one object, partitions
named by the window, chunks under a prefix, one object per DOWNLOADLINK (deferred). Airflow 3.0's
``dag.test()`` refuses an outlet Asset that is not active in the DB; 2.11 and 3.1+ accept it
(``docs/compatibility.md``), and 2.11 records no event for it. The session's DB is read from another process
(see ``tests/conftest.py``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_runner import dags_folder

USER_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

LAKE = {lake!r}
with DAG({dag_id!r}, schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(task_id="object", report_part_id=21032, launch_ids=[1], output_format="parquet",
                           destination=LAKE + "/sent.parquet")
    CloudmaxReportOperator(task_id="named", report_part_id=21002, launch_ids=[1],
                           destination=LAKE + "/clicks/{{window_start:%Y-%m-%d}}.csv")
    CloudmaxReportOperator(task_id="chunks", report_part_id=21003, launch_ids=[1], chunk=True,
                           output_format="jsonl", destination=LAKE + "/bounces/")
    CloudmaxReportOperator(task_id="per_link", report_part_id=21002, launch_ids=[2, 3], response_mode=1,
                           one_object_per_link=True, deferrable=True, poll_interval=0.2,
                           destination=LAKE + "/links/")

if __name__ == "__main__":
    when = pendulum.datetime(2026, 11, 2, tz="UTC")
    try:
        run = dag.test(logical_date=when)
    except TypeError:  # Airflow 2
        run = dag.test(execution_date=when)
    print("STATES", {{ti.task_id: ti.state for ti in run.get_task_instances()}})
"""

# the asset events of a DAG, read from another process (asset_event on 3.x, dataset_event on 2.11)
EVENTS = """
import json, sys
from airflow.utils.session import create_session
from sqlalchemy import text
with create_session() as session:
    tables = {r[0] for r in session.execute(text("select name from sqlite_master where type='table'"))}
    asset, event = ("asset", "asset_event") if "asset_event" in tables else ("dataset", "dataset_event")
    rows = session.execute(text(
        f"select a.uri, e.source_task_id from {event} e join {asset} a on a.id = e.{asset}_id "
        "where e.source_dag_id = :dag"), {"dag": sys.argv[1]}).all()
print(json.dumps(sorted([list(r) for r in rows])))
"""

KINDS = {"object": "/sent.parquet", "named": "/clicks", "chunks": "/bounces", "per_link": "/links"}


def _write(dag_id: str, lake: Path) -> Path:
    path = dags_folder() / f"{dag_id}.py"
    path.write_text(USER_DAG.format(dag_id=dag_id, lake=lake.as_uri()), encoding="utf-8")
    return path


def _events(dag_id: str) -> dict[str, set[str]]:
    out = subprocess.run([sys.executable, "-c", EVENTS, dag_id], capture_output=True, text=True, check=True).stdout
    events: dict[str, set[str]] = {}
    for uri, task_id in json.loads(out.splitlines()[-1]):
        events.setdefault(task_id, set()).add(uri)
    return events


def _check_landed(lake: Path, dag_id: str) -> None:
    assert (lake / "sent.parquet").stat().st_size > 0
    # Airflow 3's @daily run has an empty interval: the last whole Taipei day before it. Airflow 2's has the
    # UTC day 11-01T00Z..11-02T00Z, which touches two Taipei days, both landed whole (docs/partitions.md)
    days = ["2026-11-01.csv"] if AIRFLOW_V_3_0_PLUS else ["2026-11-01.csv", "2026-11-02.csv"]
    assert sorted(p.name for p in (lake / "clicks").glob("*.csv")) == days
    assert [p.suffix for p in (lake / "bounces").iterdir() if p.is_file()] == [".jsonl"] * len(days)
    assert len(list((lake / "links").glob("*.csv"))) >= 1
    if not AIRFLOW_V_3_0_PLUS:
        return  # 2.11 records no Dataset event for a Dataset no DAG in the DB names (a deployment does)
    events = _events(dag_id)
    for task_id, suffix in KINDS.items():  # each landing's Asset event, named after its object or prefix
        assert events.get(task_id) == {lake.as_uri() + suffix}, (task_id, events)


@pytest.mark.usefixtures("airflow_db")
def test_a_users_dag_file_runs_with_its_own_dag_test(cloudmax_emulator, cloudmax_conn, tmp_path):
    lake = tmp_path / "lake"
    path = _write("user_plain_dag_test", lake)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    states = [ast.literal_eval(line.removeprefix("STATES ")) for line in lines if line.startswith("STATES")]
    assert states == [dict.fromkeys(KINDS, "success")], done.stdout[-3000:]
    _check_landed(lake, "user_plain_dag_test")


@pytest.mark.usefixtures("airflow_db")
def test_a_users_dag_runs_with_airflow_dags_test(cloudmax_emulator, cloudmax_conn, tmp_path):
    lake = tmp_path / "lake"
    _write("user_cli_dags_test", lake)
    airflow = [sys.executable, "-m", "airflow"]
    done = subprocess.run(
        [*airflow, "dags", "test", "user_cli_dags_test", "2026-11-02T00:00:00+00:00"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_landed(lake, "user_cli_dags_test")
