"""Campaign-state reports in Iceberg (issue 25): upserted on the row key, each key once, one commit a run.

A pyiceberg SQL catalog on SQLite in tmp_path, real DAG runs against the emulator (whose summary numbers are a
function of the window, so a later window serves other numbers for the same campaigns); no mock.
"""

from __future__ import annotations

import json
import threading

import pendulum
import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.utils.compat import AIRFLOW_VERSION
from tests.airflow_runner import dag_test, load_dag, task_states, xcom

pa = pytest.importorskip("pyarrow")
pytest.importorskip("pyiceberg", reason="the [iceberg] extra is not installed")
sqlalchemy = pytest.importorskip("sqlalchemy")
pytestmark = pytest.mark.skipif(
    int(sqlalchemy.__version__.split(".")[0]) < 2,
    reason=f"pyiceberg's SQL catalog needs SQLAlchemy 2; Airflow {'.'.join(map(str, AIRFLOW_VERSION))}'s "
    f"constraints pin {sqlalchemy.__version__}",
)

TABLE = "iceberg://lake.read_summary"
DAG_SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(task_id="reads", report_part_id={report!r}, launch_ids={launch_ids!r},
                           destination={destination!r}, destination_conn_id="iceberg_test",
                           start_time={start!r}, end_time={end!r})
"""


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    """An ``iceberg`` connection ``iceberg_test`` to a SQL catalog on SQLite; the same catalog, to read it."""
    from pyiceberg.catalog import load_catalog

    props = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}", "warehouse": (tmp_path / "wh").as_uri()}
    (tmp_path / "wh").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_TEST", json.dumps({"conn_type": "iceberg", "extra": props}))
    return load_catalog("iceberg_test", **props)


def _run(day: int, launch_ids: list[int], report: int = 30023, destination: str = TABLE):
    start, end = f"2026-11-{day:02d} 00:00:00", f"2026-11-{day + 1:02d} 00:00:00"
    dag_id = f"cmx_state_{report}"
    source = DAG_SOURCE.format(
        dag_id=dag_id, report=report, launch_ids=launch_ids, destination=destination, start=start, end=end
    )
    return dag_test(load_dag(source, dag_id), pendulum.datetime(2026, 12, day, tz="UTC"))


def _served(emulator, day: int, launch_ids: list[int]) -> dict[tuple[int, int], int]:
    """``{(LaunchID, JobID): OpenEmailCount}`` the emulator serves for that day's window."""
    header, cells = emulator.expected_rows(
        30023, launch_ids, f"2026-11-{day:02d} 00:00:00", f"2026-11-{day + 1:02d} 00:00:00"
    )
    col = {name: i for i, name in enumerate(header)}
    return {(int(r[col["LaunchID"]]), int(r[col["JobID"]])): int(r[col["OpenEmailCount"]]) for r in cells}


def _held(catalog) -> list[tuple[tuple[int, int], int]]:
    rows = catalog.load_table("lake.read_summary").scan().to_arrow().to_pylist()
    return sorted(((r["LaunchID"], r["JobID"]), r["OpenEmailCount"]) for r in rows)


@pytest.mark.usefixtures("airflow_db")
def test_a_state_report_is_upserted_on_its_key_one_commit_a_run(cloudmax_emulator, cloudmax_conn, catalog):
    """Run 1 lands two campaigns; run 2 (a later window: other numbers) updates them and adds a third."""
    dr = _run(1, [1225, 1116])
    assert task_states(dr) == {"reads": "success"}
    assert _held(catalog) == sorted(_served(cloudmax_emulator, 1, [1225, 1116]).items())
    assert xcom(dr, "reads") == TABLE and xcom(dr, "reads", "rows") == 2
    table = catalog.load_table("lake.read_summary")
    assert table.properties["cloudmax.row-key"] == "LaunchID,JobID"
    assert "cloudmax_partition" not in [f.name for f in table.schema().fields] and not table.spec().fields
    commits = len(table.metadata.metadata_log)

    again = _run(2, [1225, 1116, 7])
    assert task_states(again) == {"reads": "success"}
    latest = _served(cloudmax_emulator, 2, [1225, 1116, 7])
    assert latest != {**_served(cloudmax_emulator, 1, [1225, 1116]), (7, 701): latest[(7, 701)]}  # numbers moved
    assert _held(catalog) == sorted(latest.items())  # each key once, its latest numbers
    table = catalog.load_table("lake.read_summary")
    assert len(table.metadata.metadata_log) == commits + 1  # one commit
    run_snapshots = [s for s in table.snapshots() if s.summary.additional_properties["cloudmax.run-id"] == again.run_id]
    assert run_snapshots and run_snapshots[-1] == table.current_snapshot()
    summary = table.current_snapshot().summary.additional_properties
    assert summary["cloudmax.dag-id"] == "cmx_state_30023" and summary["cloudmax.task-id"] == "reads"
    assert summary["cloudmax.window-start"] == "2026-11-02T00:00:00+08:00"
    assert summary["cloudmax.report-part-id"] == "30023"

    unchanged = _run(2, [1225, 1116, 7])  # the same numbers again: nothing to rewrite, still each key once
    assert task_states(unchanged) == {"reads": "success"}
    assert _held(catalog) == sorted(latest.items())


@pytest.mark.usefixtures("airflow_db")
def test_state_and_event_tables_are_not_mixed(cloudmax_emulator, cloudmax_conn, catalog):
    assert task_states(_run(1, [7], report=21002, destination="iceberg://lake.clicks")) == {"reads": "success"}
    from cloudmax_provider.landing.iceberg import IcebergTable
    from cloudmax_provider.landing.iceberg_state import upsert_state

    rows = pa.table({"LaunchID": pa.array([7], pa.int64()), "JobID": pa.array([701], pa.int64())})
    with pytest.raises(CloudmaxConfigError, match=r"is an event table .* keyed on LaunchID,JobID"):
        upsert_state(catalog, IcebergTable.parse("iceberg://lake.clicks"), rows, ("LaunchID", "JobID"), {})
    upsert_state(catalog, IcebergTable.parse(TABLE), rows, ("LaunchID", "JobID"), {})
    with pytest.raises(
        CloudmaxConfigError, match="keyed on LaunchID,JobID, but this report is campaign state keyed on"
    ):
        upsert_state(catalog, IcebergTable.parse(TABLE), rows.select(["LaunchID"]), ("LaunchID",), {})
    dr = _run(1, [7], report=21002, destination=TABLE)  # an event report into the state table: refused
    assert task_states(dr) == {"reads": "failed"}


def test_two_upserts_committing_at_once_both_land(catalog):
    """Both writers plan on the same snapshot, then commit together: the loser upserts again on the reloaded
    table; every key is held once, also the one both inserted, with the numbers of whichever wrote it last."""
    from cloudmax_provider.landing.iceberg import IcebergTable
    from cloudmax_provider.landing.iceberg_state import upsert_state

    target, key = IcebergTable.parse(TABLE), ("LaunchID", "JobID")

    def rows(launches: list[int], opens: int):
        return pa.table(
            {
                "LaunchID": pa.array(launches, pa.int64()),
                "JobID": pa.array([n * 100 + 1 for n in launches], pa.int64()),
                "OpenEmailCount": pa.array([opens] * len(launches), pa.int64()),
            }
        )

    upsert_state(catalog, target, rows([1, 2], 10), key, {"cloudmax.run-id": "first"})
    barrier = threading.Barrier(2, timeout=60)
    attempts: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def run(name: str, launches: list[int], opens: int) -> None:
        def before_commit(attempt: int) -> None:
            attempts[name].append(attempt)
            if attempt == 1:
                barrier.wait()

        try:
            upsert_state(
                catalog, target, rows(launches, opens), key, {"cloudmax.run-id": name}, before_commit=before_commit
            )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("a", [2, 3], 20)),
        threading.Thread(target=run, args=("b", [3, 4], 30)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(len(a) for a in attempts.values()) == [1, 2]  # the loser upserted again
    held = sorted(
        (r["LaunchID"], r["OpenEmailCount"])
        for r in catalog.load_table("lake.read_summary").scan().to_arrow().to_pylist()
    )
    loser = "a" if len(attempts["a"]) == 2 else "b"
    assert held == [(1, 10), (2, 20), (3, 20 if loser == "a" else 30), (4, 30)]


def test_a_run_keeps_the_last_row_of_a_key_and_needs_the_key_columns():
    import logging

    from cloudmax_provider.landing.iceberg import IcebergTable
    from cloudmax_provider.landing.iceberg_state import _state_rows

    target, log = IcebergTable.parse(TABLE), logging.getLogger("t")
    batch = pa.table({"LaunchID": [1, 2, 1, None], "OpenEmailCount": [5, 6, 7, 8]})
    kept = _state_rows([batch], batch.schema, ("LaunchID",), target, log)
    assert sorted(kept.to_pylist(), key=lambda r: r["LaunchID"]) == [
        {"LaunchID": 1, "OpenEmailCount": 7},
        {"LaunchID": 2, "OpenEmailCount": 6},
    ]
    with pytest.raises(CloudmaxConfigError, match=r"columns= leaves out \['JobID'\]; keep the key"):
        _state_rows([batch], batch.schema, ("LaunchID", "JobID"), target, log)
