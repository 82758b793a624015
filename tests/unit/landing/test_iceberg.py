"""Iceberg tables (issue 25): each run replaces exactly its partitions in one commit, and ``lookback=``.

A pyiceberg SQL catalog on SQLite with a ``file://`` warehouse in tmp_path, real DAG runs (dag.test() on the
session's SQLite metadata DB) against the emulator on loopback; no mock of pyiceberg.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pendulum
import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.utils.compat import AIRFLOW_VERSION
from tests.airflow_compat import declared_uris
from tests.airflow_runner import load_dag, task_states, xcom
from tests.unit.windows.test_partitions import AIRFLOW_3, EVERY_TYPE_DAYS, run_every_type

pa = pytest.importorskip("pyarrow")
pytest.importorskip("pyiceberg", reason="the [iceberg] extra is not installed")
sqlalchemy = pytest.importorskip("sqlalchemy")
pytestmark = pytest.mark.skipif(
    int(sqlalchemy.__version__.split(".")[0]) < 2,
    reason=f"pyiceberg's SQL catalog needs SQLAlchemy 2; Airflow {'.'.join(map(str, AIRFLOW_VERSION))}'s "
    f"constraints pin {sqlalchemy.__version__}",
)

TZ = ZoneInfo("Asia/Taipei")
TABLE = "iceberg://lake.clicks"
COLUMNS_AB = ["ClickID", "EmailID", "SubmitTime"]

DAG_SOURCE = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(task_id="clicks", report_part_id=21002, launch_ids=[7], destination={destination!r},
                           destination_conn_id="iceberg_test", start_time={start!r}, end_time={end!r}, {args})
"""


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    """An ``iceberg`` connection ``iceberg_test`` to a SQL catalog on SQLite; the same catalog, to read it."""
    from pyiceberg.catalog import load_catalog

    props = {
        "type": "sql",
        "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
        "warehouse": (tmp_path / "warehouse").as_uri(),
    }
    (tmp_path / "warehouse").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_TEST", json.dumps({"conn_type": "iceberg", "extra": props}))
    return load_catalog("iceberg_test", **props)


def _run(dag_id: str, start: str, end: str, args: str = "", logical_day: int = 1, destination: str = TABLE):
    source = DAG_SOURCE.format(dag_id=dag_id, destination=destination, start=start, end=end, args=args)
    dag = load_dag(source, dag_id)
    from tests.airflow_runner import dag_test

    return dag_test(dag, pendulum.datetime(2026, 12, logical_day, tz="UTC"))


def _rows_by_partition(catalog) -> dict[str, int]:
    table = catalog.load_table("lake.clicks").scan().to_arrow()
    out: dict[str, int] = {}
    for value in table.column("cloudmax_partition").to_pylist():
        key = value.astimezone(TZ).strftime("%Y-%m-%d")
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def _served(emulator, day: str, columns=None) -> int:
    start = datetime.strptime(day, "%Y-%m-%d")
    end = start + timedelta(days=1)
    _, cells = emulator.expected_rows(21002, [7], f"{start:%Y-%m-%d %H:%M:%S}", f"{end:%Y-%m-%d %H:%M:%S}", columns)
    return len(cells)


@pytest.mark.usefixtures("airflow_db")
def test_each_run_replaces_exactly_its_partitions_in_one_snapshot(cloudmax_emulator, cloudmax_conn, catalog):
    """Two days, the same two days again (idempotent), then two days overlapping one of them."""
    dr = _run("cmx_ice_runs", "2026-11-01 00:00:00", "2026-11-03 00:00:00")
    assert task_states(dr) == {"clicks": "success"}
    expected = {d: _served(cloudmax_emulator, d) for d in ("2026-11-01", "2026-11-02", "2026-11-03")}
    assert all(expected.values())
    assert _rows_by_partition(catalog) == {d: expected[d] for d in ("2026-11-01", "2026-11-02")}
    assert xcom(dr, "clicks") == TABLE
    assert xcom(dr, "clicks", "rows") == expected["2026-11-01"] + expected["2026-11-02"]
    chunks = xcom(dr, "clicks", "chunks")
    assert [c["start"] for c in chunks] == ["2026-11-01T00:00:00+08:00", "2026-11-02T00:00:00+08:00"]
    assert {c["uri"] for c in chunks} == {TABLE} and all(c["bytes"] > 0 for c in chunks)

    table = catalog.load_table("lake.clicks")
    schema = table.schema()
    assert str(schema.find_field("SubmitTime").field_type) == "timestamptz"
    assert str(schema.find_field("ClickID").field_type) == "long"
    assert [f.name for f in table.spec().fields] == ["cloudmax_partition"]
    first = table.current_snapshot()
    summary = first.summary.additional_properties
    assert summary["cloudmax.dag-id"] == "cmx_ice_runs" and summary["cloudmax.task-id"] == "clicks"
    assert summary["cloudmax.run-id"] == dr.run_id
    assert summary["cloudmax.window-start"] == "2026-11-01T00:00:00+08:00"
    assert summary["cloudmax.window-end"] == "2026-11-03T00:00:00+08:00"

    again = _run("cmx_ice_runs", "2026-11-01 00:00:00", "2026-11-03 00:00:00", logical_day=2)
    assert task_states(again) == {"clicks": "success"}
    assert _rows_by_partition(catalog) == {d: expected[d] for d in ("2026-11-01", "2026-11-02")}  # each row once

    _run("cmx_ice_runs", "2026-11-02 00:00:00", "2026-11-04 00:00:00", logical_day=3)
    assert _rows_by_partition(catalog) == expected
    table = catalog.load_table("lake.clicks")
    snapshots = table.snapshots()
    assert len(snapshots) == 3  # one snapshot a run
    assert [s.summary.operation.value for s in snapshots] == ["append", "overwrite", "overwrite"]
    ids = table.scan().to_arrow().column("ClickID").to_pylist()
    assert len(ids) == sum(expected.values())


@pytest.mark.usefixtures("airflow_db")
def test_lookback_relands_the_partitions_before_the_window(cloudmax_emulator, cloudmax_conn, catalog, tmp_path):
    dr = _run("cmx_ice_lookback", "2026-11-05 00:00:00", "2026-11-06 00:00:00", "lookback=timedelta(days=2)")
    assert task_states(dr) == {"clicks": "success"}
    starts = [r.field("StartTime")[:10] for r in cloudmax_emulator.api_requests]
    assert starts == ["2026-11-03", "2026-11-04", "2026-11-05"]
    assert list(_rows_by_partition(catalog)) == ["2026-11-03", "2026-11-04", "2026-11-05"]
    summary = catalog.load_table("lake.clicks").current_snapshot().summary.additional_properties
    assert summary["cloudmax.window-start"] == "2026-11-03T00:00:00+08:00"

    # the same for a destination naming partitions: one object per day, the two days before included
    cloudmax_emulator.clear_log()
    lake = tmp_path / "lake"
    destination = lake.as_uri() + "/{window_start:%Y-%m-%d}.csv"
    source = DAG_SOURCE.format(
        dag_id="cmx_files_lookback",
        destination=destination,
        start="2026-11-05 00:00:00",
        end="2026-11-06 00:00:00",
        args="lookback=timedelta(days=2)",
    ).replace('destination_conn_id="iceberg_test", ', "")
    from tests.airflow_runner import dag_test

    assert task_states(dag_test(load_dag(source, "cmx_files_lookback"), pendulum.datetime(2026, 12, 1, tz="UTC"))) == {
        "clicks": "success"
    }
    assert sorted(p.name for p in lake.glob("*.csv")) == ["2026-11-03.csv", "2026-11-04.csv", "2026-11-05.csv"]


def test_lookback_is_checked_when_the_dag_is_parsed():
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    def make(**kwargs):
        args = {
            "task_id": "t",
            "report_part_id": 21002,
            "launch_ids": 7,
            "destination": TABLE,
            "destination_conn_id": "iceberg_test",
            **kwargs,
        }
        return CloudmaxReportOperator(**args)

    assert make(lookback=timedelta(days=3)).lookback == timedelta(days=3)
    assert [uri.rstrip("/") for uri in declared_uris(make())] == [TABLE]  # the Asset is the table

    from cloudmax_provider.landing.lineage import LandedDataset, openlineage

    lineage = openlineage("host", None, [], "Asia/Taipei", LandedDataset(TABLE, 5, 10, 1, False), TABLE)
    if lineage is not None:  # the OpenLineage provider is installed
        assert (lineage.outputs[0].namespace, lineage.outputs[0].name) == ("iceberg://", "lake.clicks")
    with pytest.raises(CloudmaxConfigError, match=r"lookback=.* is not a whole number of day partitions"):
        make(lookback=timedelta(hours=36))
    fix = r"must be a positive number of day partitions \(e.g. lookback=3\) or a timedelta of whole ones"
    with pytest.raises(CloudmaxConfigError, match=r"lookback=datetime.timedelta\(days=-1\) " + fix):
        make(lookback=timedelta(days=-1))
    assert make(lookback=2).lookback == 2  # a number of partitions
    assert make(lookback=2, partition="month").lookback == 2  # counts months, which a timedelta cannot
    for bad in (0, -1):
        with pytest.raises(CloudmaxConfigError, match=rf"lookback={bad} {fix}.*leave it unset"):
            make(lookback=bad)
    with pytest.raises(CloudmaxConfigError, match=r"lookback=True is a bool, not a number of partitions"):
        make(lookback=True)
    with pytest.raises(CloudmaxConfigError, match=r"lookback=2.5 " + fix):
        make(lookback=2.5)
    with pytest.raises(CloudmaxConfigError, match=r"lookback='3' " + fix):
        make(lookback="3")
    with pytest.raises(CloudmaxConfigError, match=r"no fixed timedelta.*give the number of month partitions"):
        make(lookback=timedelta(days=31), partition="month")
    with pytest.raises(CloudmaxConfigError, match=r"lookback=3 needs a destination whose partitions are replaced"):
        make(lookback=3, destination="file:///tmp/latest.csv")
    with pytest.raises(CloudmaxConfigError, match=r"lookback=.* needs a destination whose partitions are replaced"):
        make(lookback=timedelta(days=1), destination="file:///tmp/latest.csv")
    assert make(lookback=timedelta(hours=6), partition="hour").lookback == timedelta(hours=6)
    with pytest.raises(CloudmaxConfigError, match="has no namespace"):
        make(destination="iceberg://clicks")
    with pytest.raises(CloudmaxConfigError, match="needs destination_conn_id"):
        make(destination_conn_id=None)
    with pytest.raises(CloudmaxConfigError, match="remove chunk="):
        make(chunk=True)
    with pytest.raises(CloudmaxConfigError, match="data files are Parquet"):
        make(output_format="jsonl")


class _TI:
    def __init__(self, task_id: str = "clicks") -> None:
        self.dag_id, self.task_id, self.map_index = "cmx_ice_direct", task_id, -1
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcoms[key] = value


def _execute(start: str, end: str, run_id: str, **kwargs) -> _TI:
    """The operator's execute() with a recording task instance (returned: its XComs)."""
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    args = {"destination": TABLE, "destination_conn_id": "iceberg_test", **kwargs}
    op = CloudmaxReportOperator(
        task_id="clicks", report_part_id=21002, launch_ids=[7], start_time=start, end_time=end, **args
    )
    when = pendulum.datetime(2026, 12, 1, tz="UTC")
    ti = _TI()
    op.execute({"ti": ti, "run_id": run_id, "logical_date": when, "dag_run": SimpleNamespace(run_after=when)})
    return ti


def _late(start: str, end: str) -> dict[str, object]:
    """The ``relanded`` entry of 11-03 after two clicks a LaunchID were recorded late (5 rows, then 7)."""
    return {"start": start, "end": end, "rows": 7, "rows_before": 5, "rows_changed": 2}


@pytest.mark.usefixtures("airflow_db")
def test_lookback_says_which_partitions_it_relanded_and_how_many_rows_changed(
    cloudmax_emulator, cloudmax_conn, catalog, capfd
):
    """11-03 is landed while the emulator serves 5 clicks a LaunchID; then two more are recorded late (it serves
    7), and the run of 11-04 with ``lookback=1`` re-lands 11-03: the log and the ``relanded`` XCom say so."""
    first = _run("cmx_ice_late", "2026-11-03 00:00:00", "2026-11-04 00:00:00")
    assert task_states(first) == {"clicks": "success"} and xcom(first, "clicks", "relanded") is None
    cloudmax_emulator.settings.rows_per_launch = 7  # the emulator's data of every day changes: late clicks
    dr = _run("cmx_ice_late", "2026-11-04 00:00:00", "2026-11-05 00:00:00", "lookback=1", logical_day=2)
    assert task_states(dr) == {"clicks": "success"}
    day3, day4 = (f"2026-11-0{d}T00:00:00+08:00" for d in (3, 4))
    assert xcom(dr, "clicks", "relanded") == [_late(day3, day4)]
    assert [set(c) for c in xcom(dr, "clicks", "chunks")] == [{"start", "end", "uri", "rows", "bytes"}] * 2
    assert _rows_by_partition(catalog) == {"2026-11-03": 7, "2026-11-04": 7}
    summary = catalog.load_table("lake.clicks").current_snapshot().summary.additional_properties
    assert (summary["deleted-records"], summary["added-records"]) == ("5", "14")  # the commit says the same
    out = capfd.readouterr()
    assert f"lookback re-landed 1 partition(s): {day3} .. {day4}: 7 rows, was 5 (+2)" in out.out + out.err

    # files: a Parquet object's footer says what it held; a CSV object's earlier rows are unknown
    cloudmax_emulator.settings.rows_per_launch = 5
    lake = catalog.properties["warehouse"].replace("/warehouse", "/files")
    for fmt in ("parquet", "csv"):
        args = {"destination": f"{lake}/{fmt}/{{window_start:%Y-%m-%d}}.{fmt}", "output_format": fmt}
        _execute("2026-11-03 00:00:00", "2026-11-04 00:00:00", "f1", destination_conn_id=None, **args)
    cloudmax_emulator.settings.rows_per_launch = 7
    for fmt, before in (("parquet", 5), ("csv", None)):
        args = {"destination": f"{lake}/{fmt}/{{window_start:%Y-%m-%d}}.{fmt}", "output_format": fmt}
        ti = _execute("2026-11-04 00:00:00", "2026-11-05 00:00:00", "f2", destination_conn_id=None, lookback=2, **args)
        new = {"start": "2026-11-02T00:00:00+08:00", "end": day3, "rows": 7, "rows_before": 0, "rows_changed": 7}
        known = _late(day3, day4) if before else {**_late(day3, day4), "rows_before": None, "rows_changed": None}
        assert ti.xcoms["relanded"] == [new, known], fmt  # 11-02 had no object: 0 before
        assert [c["start"] for c in ti.xcoms["chunks"]] == [new["start"], day3, day4]
        assert "rows_before" not in str(ti.xcoms["chunks"])


@pytest.mark.usefixtures("airflow_db")
def test_other_columns_are_refused_and_a_new_column_is_added(cloudmax_emulator, cloudmax_conn, catalog):
    place = [*COLUMNS_AB, ("City", "Place")]
    _execute("2026-11-01 00:00:00", "2026-11-02 00:00:00", "r1", columns=place)
    before = len(catalog.load_table("lake.clicks").snapshots())
    with pytest.raises(CloudmaxConfigError, match=r"has the columns \['Place'\], which this run does not land"):
        _execute("2026-11-02 00:00:00", "2026-11-03 00:00:00", "r2", columns=COLUMNS_AB)
    with pytest.raises(CloudmaxConfigError, match="column 'Place' is string in the table and double in this run"):
        _execute("2026-11-02 00:00:00", "2026-11-03 00:00:00", "r3", columns=[*COLUMNS_AB, ("Latitude", "Place")])
    assert len(catalog.load_table("lake.clicks").snapshots()) == before  # nothing committed

    # a column the table lacks (a wider columns=, or one Cloudmax adds to the report) is added
    _execute("2026-11-02 00:00:00", "2026-11-03 00:00:00", "r4", columns=[*place, ("Country", "Land")])
    table = catalog.load_table("lake.clicks")
    assert [f.name for f in table.schema().fields] == [*COLUMNS_AB, "Place", "cloudmax_partition", "Land"]
    rows = table.scan().to_arrow().to_pylist()
    by_day: dict[int, list] = {}
    for row in rows:
        by_day.setdefault(row["cloudmax_partition"].astimezone(TZ).day, []).append(row["Land"])
    assert set(by_day) == {1, 2}
    assert all(land is None for land in by_day[1]) and any(land for land in by_day[2])
    assert len(rows) == _served(cloudmax_emulator, "2026-11-01") + _served(cloudmax_emulator, "2026-11-02")


def _land_day(name: str, day: int, before_commit) -> None:
    """One writer's landing of one day, with ``before_commit`` called before each commit."""
    import logging

    from cloudmax_provider.formats.arrow_typing import ArrowBatchEncoder
    from cloudmax_provider.formats.streams import open_each
    from cloudmax_provider.formats.writers import RowTyping
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.iceberg import IcebergLanding, IcebergTable, land_iceberg, load_catalog
    from cloudmax_provider.windows.partitions import PartitionGrid

    hook = CloudmaxHook()
    grid = PartitionGrid.of("day", TZ)
    start = datetime(2026, 11, day, tzinfo=TZ)
    request = hook.build_request(21002, [7], start, start + timedelta(days=1))
    typing = RowTyping.for_request(request, TZ)
    landing = IcebergLanding(
        catalog=load_catalog("iceberg_test"),
        target=IcebergTable.parse(TABLE),
        grid=grid,
        encoder_of=lambda: ArrowBatchEncoder(typing, name, logging.getLogger(name), 4),  # several files a day
        properties={"cloudmax.run-id": name},
        before_commit=before_commit,
    )
    land_iceberg(
        landing, grid.partitions(start, start + timedelta(days=1)), lambda s, e: open_each(hook.sources(request))
    )


def _race(writers: dict[str, int]) -> dict[str, list[int]]:
    """Land each writer's day in its own thread; every writer builds its snapshot before any commits.
    The attempts each writer made."""
    barrier = threading.Barrier(len(writers), timeout=60)
    attempts: dict[str, list[int]] = {name: [] for name in writers}
    errors: list[BaseException] = []

    def run(name: str, day: int) -> None:
        def before_commit(attempt: int) -> None:
            attempts[name].append(attempt)
            if attempt == 1:
                barrier.wait()  # all have built their snapshot on the same parent

        try:
            _land_day(name, day, before_commit)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in writers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return attempts


@pytest.mark.usefixtures("airflow_db")
def test_two_tasks_committing_at_once_both_land(cloudmax_emulator, cloudmax_conn, catalog):
    """Both writers read the table at the same snapshot, then commit together: the commit that loses is made
    again on the reloaded table; both windows land, neither lost nor twice."""
    _execute("2026-11-01 00:00:00", "2026-11-02 00:00:00", "first")  # the table exists
    attempts = _race({"a": 5, "b": 6})
    assert [a[0] for a in attempts.values()] == [1, 1]
    assert _rows_by_partition(catalog) == {
        d: _served(cloudmax_emulator, d) for d in ("2026-11-01", "2026-11-05", "2026-11-06")
    }
    snapshots = catalog.load_table("lake.clicks").snapshots()
    assert sorted(s.summary.additional_properties.get("cloudmax.run-id") for s in snapshots[1:]) == ["a", "b"]
    # the commit that lost the race was made again on top of the other: one line of history
    assert [s.parent_snapshot_id for s in snapshots[1:]] == [snapshots[0].snapshot_id, snapshots[1].snapshot_id]


@pytest.mark.usefixtures("airflow_db")
def test_two_runs_of_one_window_at_once_leave_each_row_once(cloudmax_emulator, cloudmax_conn, catalog):
    """Two writers of the same day, built on the same parent: the later commit is planned again on the
    reloaded table and replaces the earlier one's files, so the day holds its rows once."""
    _execute("2026-11-01 00:00:00", "2026-11-02 00:00:00", "first")
    attempts = _race({"x": 5, "y": 5})
    assert sorted(len(a) for a in attempts.values()) == [1, 2]  # the loser planned again
    assert _rows_by_partition(catalog) == {d: _served(cloudmax_emulator, d) for d in ("2026-11-01", "2026-11-05")}
    assert len(catalog.load_table("lake.clicks").snapshots()) == 3


EVERY_RUN_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG("cmx_ice_every_run", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False) as dag:
    CloudmaxReportOperator(task_id="clicks", report_part_id=21002, launch_ids=[7], destination={table!r},
                           destination_conn_id="iceberg_test", retries=1, retry_delay=timedelta(0))
"""


@AIRFLOW_3
@pytest.mark.usefixtures("airflow_db")
def test_every_run_type_into_one_table_leaves_each_row_once(cloudmax_emulator, cloudmax_conn, catalog):
    """The run-type matrix of ``tests/unit/windows/test_partitions.py`` (scheduled with a retried try, backfill,
    REST, manual with and without a logical date, the same trigger twice, a cleared task) into one table: each
    row once, counted by the click's key (ClickID, the spec's click number, within its partition: the emulator
    repeats a LaunchID's ClickIDs every day; the catalog's ``row_key`` is a state report's)."""
    run_every_type(load_dag(EVERY_RUN_DAG.format(table=TABLE), "cmx_ice_every_run"), cloudmax_emulator, cloudmax_conn)
    key = ("ClickID",)
    rows = catalog.load_table("lake.clicks").scan().to_arrow()
    counts: dict[tuple, int] = {}
    for row in rows.select([*key, "cloudmax_partition"]).to_pylist():
        ident = (row["cloudmax_partition"].astimezone(TZ).date(), *(row[c] for c in key))
        counts[ident] = counts.get(ident, 0) + 1
    assert set(counts.values()) == {1}  # no key twice in a partition
    expected = set()
    for day in EVERY_TYPE_DAYS:
        header, cells = cloudmax_emulator.expected_rows(
            21002, [7], f"{day:%Y-%m-%d %H:%M:%S}", f"{day + timedelta(days=1):%Y-%m-%d %H:%M:%S}"
        )
        expected |= {(day.date(), *(int(c[header.index(k)]) for k in key)) for c in cells}
    assert set(counts) == expected and rows.num_rows == len(expected) == 5 * len(EVERY_TYPE_DAYS)


#: A writer in its own process: it lands 11-05 into the table, says so on the pipe it is given (argv[1]) once its
#: data files are written and its commit is about to be made, then waits for its stdin (the test kills it there).
KILLED_WRITER = """
import os, sys
from tests.unit.landing.test_iceberg import _land_day

said = os.fdopen(int(sys.argv[1]), "w")

def before_commit(attempt):
    said.write("before commit\\n")
    said.flush()
    sys.stdin.read()

_land_day("killed", 5, before_commit)
said.write("committed\\n")
"""


@pytest.mark.usefixtures("airflow_db")
def test_a_writer_killed_before_its_commit_leaves_the_table_as_it_was(cloudmax_emulator, cloudmax_conn, catalog):
    """SIGKILL after the data files are written and before the commit: the same snapshot and rows, and the
    files it wrote are listed by ``orphan_data_files`` (and removed by the documented loop)."""
    import os
    import selectors
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from cloudmax_provider.landing.iceberg import orphan_data_files

    _execute("2026-11-01 00:00:00", "2026-11-02 00:00:00", "first")
    table = catalog.load_table("lake.clicks")
    snapshot, rows = table.current_snapshot().snapshot_id, table.scan().to_arrow().sort_by("ClickID")
    assert orphan_data_files(table) == []
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    said, tell = os.pipe()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tell)],
        cwd=root,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        pass_fds=(tell,),
    )
    os.close(tell)
    try:
        with selectors.DefaultSelector() as events, os.fdopen(said, "rb") as line:
            events.register(line, selectors.EVENT_READ)  # the event: the writer's line (or its end), not a delay
            assert events.select(timeout=120), "the writer said nothing in 120 s"
            assert line.readline() == b"before commit\n", "the writer ended before its commit"
        written = orphan_data_files(catalog.load_table("lake.clicks"))
        assert written and all("/data/cloudmax_partition=" in uri for uri in written)  # its data files, unreferenced
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    table = catalog.load_table("lake.clicks")
    assert table.current_snapshot().snapshot_id == snapshot and len(table.snapshots()) == 1
    assert table.scan().to_arrow().sort_by("ClickID").equals(rows)
    assert orphan_data_files(table) == written  # what the killed writer left, listed
    for uri in written:  # removed as docs/lake-tables.md says
        table.io.delete(uri)
    assert orphan_data_files(table) == [] and table.scan().to_arrow().sort_by("ClickID").equals(rows)
