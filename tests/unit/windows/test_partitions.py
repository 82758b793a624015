"""A prefix is one dataset (issue 18): every run type of a ``@daily`` DAG lands whole account-local days,
one object per day, so the prefix reads back with ``pyarrow.dataset`` with every row exactly once.

Real Airflow (dag.test() on SQLite), the emulator on loopback, real files, real pyarrow.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pendulum
import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError
from tests.airflow_compat import declared_uris
from tests.airflow_runner import load_dag, task_states, xcom

pa = pytest.importorskip("pyarrow")
ds = pytest.importorskip("pyarrow.dataset")

TZ = ZoneInfo("Asia/Taipei")
#: dag.test(logical_date=..., run_after=...) and runs without a logical date are Airflow 3's; so is "@daily" as
#: a CronTriggerTimetable, which the run shapes below are about (Airflow 2's "@daily" has UTC data intervals).
AIRFLOW_3 = pytest.mark.skipif(
    int(__import__("airflow").__version__.split(".")[0]) < 3, reason="run shapes of Airflow 3 (dag.test run_after)"
)
FORMATS = ("csv", "jsonl", "parquet")
DATASET_FORMATS = {"csv": "csv", "jsonl": "json", "parquet": "parquet"}

LAKE_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG("cmx_lake_every_run", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False) as dag:
    for fmt in {formats!r}:
        CloudmaxReportOperator(
            task_id=fmt, report_part_id=21002, launch_ids=[7], output_format=fmt,
            destination={lake!r} + "/" + fmt + "/date={{window_start:%Y-%m-%d}}/part." + fmt,
            retries=1, retry_delay=timedelta(0),
        )
"""


class _TI:
    """What the operator uses of a task instance when it is executed directly (XComs recorded)."""

    def __init__(self, task_id: str) -> None:
        self.dag_id, self.task_id, self.map_index = "cmx_lake_every_run", task_id, -1
        self.xcoms: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcoms[key] = value


def _execute(dag, context: dict) -> None:
    """Run each task's execute() with ``context``: a run shape dag.test() cannot express."""
    for task in dag.tasks:
        task.execute({**context, "ti": _TI(task.task_id)})


def _times(table, fmt: str) -> list[datetime]:
    """SubmitTime of every row as an aware time: CSV holds account time without an offset; Arrow's JSON
    reader turns ISO-8601 with an offset into naive UTC."""
    column = table.column("SubmitTime").to_pylist()
    naive_zone = ZoneInfo("UTC") if fmt == "jsonl" else TZ
    return [value.replace(tzinfo=naive_zone) if value.tzinfo is None else value for value in column]


def _partition_of(path: str) -> tuple[datetime, datetime]:
    day = datetime.strptime(path.split("date=")[1][:10], "%Y-%m-%d").replace(tzinfo=TZ)
    return day, day + timedelta(days=1)


@AIRFLOW_3
@pytest.mark.usefixtures("airflow_db")
def test_every_run_type_of_a_daily_dag_leaves_each_row_once(cloudmax_emulator, cloudmax_conn, tmp_path: Path):
    """Every run shape of :func:`run_every_type` into one prefix per format: each row once, whole days."""
    lake = tmp_path / "lake"
    dag = load_dag(LAKE_DAG.format(formats=FORMATS, lake=lake.as_uri()), "cmx_lake_every_run")
    run_every_type(dag, cloudmax_emulator, cloudmax_conn)
    for fmt in FORMATS:
        _assert_one_dataset(cloudmax_emulator, lake / fmt, fmt, EVERY_TYPE_DAYS)
    assert not [p for p in lake.rglob("*") if p.name.startswith(".")]  # nothing half-written


#: The Taipei days :func:`run_every_type` lands.
EVERY_TYPE_DAYS = [datetime(2026, 11, d, tzinfo=TZ) for d in range(19, 25)]


def run_every_type(dag, emulator, conn) -> None:
    """Run shapes of a ``@daily`` DAG whose tasks have ``retries=1``, in the order a busy week would give them
    (Taipei days are the partitions; together they land :data:`EVERY_TYPE_DAYS`):

    * dag.test(): the scheduled run of 11-20T00Z (its first try fails, the retry lands 11-19: a *retried
      task*); a 3-day *backfill* (logical dates 11-21..11-23, empty intervals as ``airflow backfill create``
      gives a CronTriggerTimetable); a *manual run with a logical date* (11-25T00Z, triggered at 06:00Z)
      and two *manual runs without one* the same day (06:32:15Z and 15:00Z: *the same trigger twice*): all
      three land 11-24;
    * direct execute() calls, which dag.test() cannot express: a *REST trigger* giving the data interval
      11-23T00Z .. 11-24T00Z (``TriggerDAGRunPostBody``), widened to 11-23 and 11-24; a *cleared task* of
      the scheduled run (the same context executed again).

    Every request is checked to be one whole Taipei day. Used by the Iceberg table's test too.
    """
    conn(attempts=1)  # one attempt per try: the injected failure fails the try
    emulator.settings.fail_start_windows = [("2026-11-19 00:00:00", "2026-11-19 00:00:01")]
    emulator.settings.fail_start_first = 1
    utc = pendulum.UTC

    scheduled = dag.test(logical_date=pendulum.datetime(2026, 11, 20, tz=utc))
    assert set(task_states(scheduled).values()) == {"success"}
    tries = sorted(ti.try_number for ti in scheduled.get_task_instances())
    assert tries == [1] * (len(dag.tasks) - 1) + [2]  # one retried task
    for day in (21, 22, 23):  # the backfill
        assert set(task_states(dag.test(logical_date=pendulum.datetime(2026, 11, day, tz=utc))).values()) == {"success"}
    _execute(
        dag,
        {
            "data_interval_start": pendulum.datetime(2026, 11, 23, tz=utc),
            "data_interval_end": pendulum.datetime(2026, 11, 24, tz=utc),
            "logical_date": pendulum.datetime(2026, 11, 24, tz=utc),
            "run_id": "manual__rest",
            "dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 11, 24, 1, tz=utc)),
        },
    )
    manual = dag.test(
        logical_date=pendulum.datetime(2026, 11, 25, tz=utc), run_after=pendulum.datetime(2026, 11, 25, 6, tz=utc)
    )
    assert set(task_states(manual).values()) == {"success"}
    for run_after in (pendulum.datetime(2026, 11, 25, 6, 32, 15, tz=utc), pendulum.datetime(2026, 11, 25, 15, tz=utc)):
        assert set(task_states(dag.test(logical_date=None, run_after=run_after)).values()) == {"success"}
    first = scheduled.get_task_instances()[0]
    _execute(
        dag,
        {
            "data_interval_start": scheduled.data_interval_start,
            "data_interval_end": scheduled.data_interval_end,
            "logical_date": scheduled.logical_date,
            "run_id": first.run_id,
            "dag_run": SimpleNamespace(run_after=scheduled.run_after),
        },
    )
    for api in emulator.api_requests:  # every request was whole Taipei days
        start, end = (datetime.strptime(api.field(f), "%Y-%m-%d %H:%M:%S") for f in ("StartTime", "EndTime"))
        assert (start.hour, end.hour, (end - start).days) == (0, 0, 1), (start, end)


def _assert_one_dataset(emulator, prefix: Path, fmt: str, days: list[datetime]) -> None:
    dataset = ds.dataset(prefix, format=DATASET_FORMATS[fmt], partitioning="hive")
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    partitions = [_partition_of(f.path) for f in fragments]
    assert [start for start, _ in partitions] == days, fmt  # one object per day, no other object
    for (_, end), (start, _) in itertools.pairwise(partitions):
        assert end <= start  # no two objects cover overlapping times
    total = 0
    for fragment, (start, end) in zip(fragments, partitions, strict=True):
        times = _times(fragment.to_table(), fmt)
        assert all(start <= t < end for t in times), (fmt, fragment.path)
        header, cells = emulator.expected_rows(21002, [7], f"{start:%Y-%m-%d %H:%M:%S}", f"{end:%Y-%m-%d %H:%M:%S}")
        at = header.index("SubmitTime")
        served = sorted(datetime.strptime(row[at], "%Y-%m-%d %H:%M:%S") for row in cells)
        assert sorted(t.astimezone(TZ).replace(tzinfo=None) for t in times) == served, (fmt, fragment.path)
        total += len(cells)
    assert dataset.to_table().num_rows == total == 5 * len(days)


# ---- destinations that name partitions ------------------------------------------------------------

OP_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={params!r}) as dag:
    CloudmaxReportOperator(task_id="report", report_part_id=21002, launch_ids=[7], {args})
"""


def test_misspelled_placeholders_are_refused_when_the_dag_is_parsed():
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    with pytest.raises(CloudmaxConfigError, match=r"did you mean \{window_start:%Y-%m-%d\}"):
        CloudmaxReportOperator(
            task_id="t", report_part_id=21002, launch_ids=1, destination="s3://lake/{window_strat:%Y-%m-%d}.csv"
        )
    with pytest.raises(CloudmaxConfigError, match=r"did you mean \{window_end\}"):  # beside Jinja, still refused
        CloudmaxReportOperator(
            task_id="t", report_part_id=21002, launch_ids=1, destination="s3://{{ var.value.lake }}/{window_edn}.csv"
        )
    with pytest.raises(CloudmaxConfigError, match=r"names the day partitions .* alike"):
        CloudmaxReportOperator(
            task_id="t", report_part_id=21002, launch_ids=1, destination="s3://lake/{window_start:%Y-%m}.csv"
        )
    with pytest.raises(CloudmaxConfigError, match="is not a partition grid; did you mean 'hour'"):
        CloudmaxReportOperator(task_id="t", report_part_id=21002, launch_ids=1, partition="hours")
    with pytest.raises(CloudmaxConfigError, match="a chunk is one partition"):
        CloudmaxReportOperator(
            task_id="t", report_part_id=21002, launch_ids=1, destination="s3://l/x/", chunk=timedelta(hours=6)
        )
    monthly = CloudmaxReportOperator(
        task_id="m",
        report_part_id=21002,
        launch_ids=1,
        destination="s3://l/{window_start:%Y-%m}.csv",
        partition="month",
    )
    assert declared_uris(monthly) == ["s3://l/"]  # the prefix of the objects is one dataset


@AIRFLOW_3
@pytest.mark.usefixtures("airflow_db")
def test_a_templated_misspelled_placeholder_fails_before_any_request(cloudmax_emulator, cloudmax_conn, tmp_path, capfd):
    """The typo comes from Jinja (a param), so it is refused once rendered, before Report.aspx is called."""
    params = {"dest": tmp_path.as_uri() + "/{window_strat:%Y-%m-%d}.csv"}
    source = OP_DAG.format(dag_id="cmx_typo", args="destination='{{ params.dest }}'", params=params)
    dr = load_dag(source, "cmx_typo").test(logical_date=pendulum.datetime(2026, 11, 20, tz="UTC"))
    assert task_states(dr) == {"report": "failed"}
    out = capfd.readouterr()
    assert "did you mean {window_start:%Y-%m-%d}?" in out.out + out.err
    assert cloudmax_emulator.api_requests == [] and not list(tmp_path.rglob("*.csv"))


@AIRFLOW_3
@pytest.mark.usefixtures("airflow_db")
def test_an_unaligned_explicit_window_is_widened_to_whole_partitions(cloudmax_emulator, cloudmax_conn, tmp_path, capfd):
    """start_time/end_time 10-01 06:00 .. 10-03 12:00 with chunk=True: three whole days, logged."""
    args = (
        f"destination={tmp_path.as_uri() + '/clicks/'!r}, chunk=True, output_format='parquet', "
        "start_time='2026-10-01 06:00:00', end_time='2026-10-03 12:00:00'"
    )
    dag = load_dag(OP_DAG.format(dag_id="cmx_widen", args=args, params={}), "cmx_widen")
    dr = dag.test(logical_date=pendulum.datetime(2026, 11, 20, tz="UTC"))
    assert task_states(dr) == {"report": "success"}
    assert [(a.field("StartTime"), a.field("EndTime")) for a in cloudmax_emulator.api_requests] == [
        (f"2026-10-0{d} 00:00:00", f"2026-10-0{d + 1} 00:00:00") for d in (1, 2, 3)
    ]
    assert sorted(p.name for p in (tmp_path / "clicks").glob("*.parquet")) == [
        f"2026-10-0{d}T00-00-00_2026-10-0{d + 1}T00-00-00.parquet" for d in (1, 2, 3)
    ]
    out = capfd.readouterr()
    assert "Window widened to whole day (Asia/Taipei) partitions" in out.out + out.err
    chunks = xcom(dr, "report", "chunks")
    assert len(chunks) == 3 and xcom(dr, "report", "rows") == sum(c["rows"] for c in chunks) == 15


@AIRFLOW_3
@pytest.mark.usefixtures("airflow_db")
def test_a_utc_data_interval_lands_each_taipei_day_it_touches(cloudmax_emulator, cloudmax_conn, tmp_path):
    """A CronDataIntervalTimetable in UTC (Airflow 2's "@daily"): 11-19T00Z .. 11-20T00Z touches two Taipei days."""
    args = f"destination={tmp_path.as_uri() + '/o/{window_start:%Y-%m-%d}.jsonl'!r}, output_format='jsonl'"
    source = OP_DAG.format(dag_id="cmx_interval", args=args, params={}).replace(
        "schedule=None", 'schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC")'
    )
    source = source.replace(
        "from datetime import timedelta",
        "from datetime import timedelta\nfrom airflow.timetables.interval import CronDataIntervalTimetable",
    )
    dr = load_dag(source, "cmx_interval").test(logical_date=pendulum.datetime(2026, 11, 19, tz="UTC"))
    assert task_states(dr) == {"report": "success"}
    assert dr.data_interval_end - dr.data_interval_start == timedelta(days=1)
    assert dr.data_interval_start.hour == 0  # a UTC day: 08:00 .. 08:00 in Taipei
    first = dr.data_interval_start.astimezone(TZ).date()
    names = [f"{first + timedelta(days=d):%Y-%m-%d}.jsonl" for d in (0, 1)]
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if not p.name.startswith("_")) == names
    assert xcom(dr, "report") == [(tmp_path / "o" / name).as_uri() for name in names]


@pytest.mark.usefixtures("airflow_db")
def test_one_object_per_link_pushes_totals_chunks_and_lineage_of_every_object(
    cloudmax_emulator, cloudmax_conn, tmp_path
):
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    cloudmax_emulator.settings.split_links = True
    task = CloudmaxReportOperator(
        task_id="each",
        report_part_id=21002,
        launch_ids=[7, 8],
        response_mode=1,
        one_object_per_link=True,
        destination=tmp_path.as_uri() + "/each/",
        start_time="2026-10-01 00:00:00",
        end_time="2026-10-02 00:00:00",
    )
    ti = _TI("each")
    uris = task.execute({"ti": ti, "run_id": "r", "dag_run": SimpleNamespace(run_after=None)})
    files = sorted((tmp_path / "each").iterdir())
    assert len(uris) == len(files) == 2
    sizes = {f.as_uri(): f.stat().st_size for f in files}
    rows = {f.as_uri(): len(list(csv.reader(io.StringIO(f.read_text(), newline="")))) - 1 for f in files}
    assert ti.xcoms["rows"] == sum(rows.values()) == 10 and ti.xcoms["bytes"] == sum(sizes.values())
    assert sorted((c["uri"], c["rows"], c["bytes"]) for c in ti.xcoms["chunks"]) == [
        (uri, rows[uri], sizes[uri]) for uri in sorted(sizes)
    ]
    assert {c["start"] for c in ti.xcoms["chunks"]} == {"2026-10-01T00:00:00+08:00"}
    stats = task.get_openlineage_facets_on_complete(None).outputs[0].outputFacets["outputStatistics"]
    assert (stats.rowCount, stats.size, stats.fileCount) == (10, sum(sizes.values()), 2)


def test_download_links_refuse_to_name_one_partition_after_a_window_of_two(cloudmax_emulator, cloudmax_conn):
    """The links' files hold what was requested; a UTC day is two Taipei days, so it cannot be one's object."""
    from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator

    task = CloudmaxDownloadLinksOperator(
        task_id="d",
        links="http://h/a.csv",
        destination="s3://lake/clicks/{window_start:%Y-%m-%d}/",
        one_object_per_link=True,
    )
    utc_day = {
        "data_interval_start": pendulum.datetime(2026, 11, 19, tz="UTC"),
        "data_interval_end": pendulum.datetime(2026, 11, 20, tz="UTC"),
    }
    with pytest.raises(CloudmaxConfigError, match=r"names one day \(Asia/Taipei\) partition, but the run's window"):
        task._named(utc_day, TZ)
    taipei_day = {k: v.in_tz("Asia/Taipei").start_of("day") for k, v in utc_day.items()}
    assert task._named(taipei_day, TZ)[0] == "s3://lake/clicks/2026-11-19/"
    manual = {"dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 11, 25, 6, 32, tz="UTC"))}
    assert task._named(manual, TZ)[0] == "s3://lake/clicks/2026-11-24/"  # the last complete Taipei day


def test_expand_windows_with_a_destination_maps_whole_partitions():
    """Mapped instances name objects like chunk= does, so they are partitions too (widened, never cut)."""
    from cloudmax_provider.windows.chunks import expand_windows

    out = expand_windows(
        "2026-10-01 06:00:00",
        "2026-10-02 12:00:00",
        timedelta(days=1),
        destination="s3://lake/c/",
        output_format="parquet",
    )
    assert [(k["start_time"], k["end_time"]) for k in out] == [
        ("2026-10-01T00:00:00+08:00", "2026-10-02T00:00:00+08:00"),
        ("2026-10-02T00:00:00+08:00", "2026-10-03T00:00:00+08:00"),
    ]
    assert out[1]["destination"] == "s3://lake/c/2026-10-02T00-00-00_2026-10-03T00-00-00.parquet"
    hours = expand_windows("2026-10-01 06:30:00", "2026-10-01 08:00:00", timedelta(hours=1), destination="s3://l/h/")
    assert [k["start_time"][11:16] for k in hours] == ["06:00", "07:00"]
    with pytest.raises(CloudmaxConfigError, match="a chunk is one partition"):
        expand_windows("2026-10-01", "2026-10-02", timedelta(hours=6), destination="s3://l/x/")
    # without a destination the caller names the objects: the windows are cut as asked
    assert len(expand_windows("2026-10-01", "2026-10-02", timedelta(hours=6))) == 4


def test_link_modes_name_the_one_partition_or_refuse_several(cloudmax_emulator, cloudmax_conn, tmp_path):
    """ResponseMode 1 answers the whole window at once: one partition is named, several are refused."""
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    def task() -> CloudmaxReportOperator:
        dest = tmp_path.as_uri() + "/clicks/{window_start:%Y-%m-%d}.csv"
        return CloudmaxReportOperator(
            task_id="l", report_part_id=21002, launch_ids=[7], response_mode=1, destination=dest
        )

    manual = {
        "ti": _TI("l"),
        "run_id": "m",
        "dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 11, 25, 6, tz="UTC")),
    }
    assert task().execute(manual) == (tmp_path / "clicks" / "2026-11-24.csv").as_uri()
    body = (tmp_path / "clicks" / "2026-11-24.csv").read_bytes().decode()
    assert body == cloudmax_emulator.expected_csv(21002, [7], "2026-11-24 00:00:00", "2026-11-25 00:00:00")
    utc_day = {
        **manual,
        "data_interval_start": pendulum.datetime(2026, 11, 19, tz="UTC"),
        "data_interval_end": pendulum.datetime(2026, 11, 20, tz="UTC"),
    }
    requests_before = len(cloudmax_emulator.api_requests)
    with pytest.raises(CloudmaxConfigError, match="covers several and response_mode 1 answers the whole window"):
        task().execute(utc_day)
    assert len(cloudmax_emulator.api_requests) == requests_before  # refused before anything was requested


@pytest.mark.parametrize(
    ("destination", "says"),
    [
        ("/data/cloudmax/x.csv", "is a path without a scheme; write it as a URI, 'file:///data/cloudmax/x.csv'"),
        ("reports/x.csv", "is not a URI (a relative path would land in the worker's working directory)"),
        ("s3://lake/", "names a folder or bucket, not an object"),
    ],
)
def test_destination_errors_say_what_works_in_every_run_type(destination, says):
    """No error suggests Jinja's ``{{ ds }}`` (absent in runs without a logical date); an absolute path is not
    called relative."""
    from cloudmax_provider.landing.destinations import check_destination

    with pytest.raises(CloudmaxConfigError) as info:
        check_destination(destination)
    message = str(info.value)
    assert says in message and "{{" not in message
    assert ("relative" in message) == (destination == "reports/x.csv")


@pytest.mark.usefixtures("airflow_db")
def test_a_summary_report_lands_as_dated_snapshots_read_latest_or_as_history(
    cloudmax_emulator, cloudmax_conn, tmp_path
):
    """Campaign state into files (docs/lake-tables.md): one object per run under ``snapshot_date=<window end>``;
    pyarrow.dataset with hive partitioning reads the latest numbers (the newest date) or their history."""
    from tests.airflow_runner import dag_test

    prefix = tmp_path / "read_summary"
    destination = prefix.as_uri() + "/snapshot_date={window_end:%Y-%m-%d}/part.parquet"
    for day in (1, 2):
        args = (
            f"destination={destination!r}, output_format='parquet', "
            f"start_time='2026-11-0{day} 00:00:00', end_time='2026-11-0{day + 1} 00:00:00'"
        )
        source = OP_DAG.format(dag_id="cmx_snapshots", args=args, params={}).replace(
            "report_part_id=21002, launch_ids=[7]", "report_part_id=30023, launch_ids=[1225, 1116]"
        )
        dr = dag_test(load_dag(source, "cmx_snapshots"), pendulum.datetime(2026, 12, day, tz="UTC"))
        assert task_states(dr) == {"report": "success"}
    assert sorted(p.parent.name for p in prefix.rglob("*.parquet")) == [
        "snapshot_date=2026-11-02",
        "snapshot_date=2026-11-03",
    ]
    dataset = ds.dataset(prefix, format="parquet", partitioning="hive")
    history = dataset.to_table()
    assert history.num_rows == 4  # each campaign once a snapshot
    latest_date = max(history.column("snapshot_date").to_pylist())
    latest = dataset.to_table(filter=ds.field("snapshot_date") == latest_date).to_pylist()
    header, cells = cloudmax_emulator.expected_rows(30023, [1225, 1116], "2026-11-02 00:00:00", "2026-11-03 00:00:00")
    opens = header.index("OpenEmailCount")
    assert sorted((r["LaunchID"], r["OpenEmailCount"]) for r in latest) == sorted(
        (int(c[header.index("LaunchID")]), int(c[opens])) for c in cells
    )
