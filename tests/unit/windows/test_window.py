"""The report window of each run type, and destinations named by it.

The unit tests take their inputs from Airflow's own timetables, computed the way Airflow 3.3 computes
them (``airflow/api/common/trigger_dag.py`` for the CLI, ``TriggerDAGRunPostBody`` for the REST API,
the scheduler for scheduled, backfilled and asset-triggered runs); the dag.test() tests run the operators.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pendulum
import pytest

from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS
from cloudmax_provider.windows.window import fill_window_placeholders, human_duration, report_window, report_window_of

UTC = pendulum.UTC
DAY = timedelta(days=1)
NOW = pendulum.datetime(2026, 11, 25, 3, 17, tz="UTC")  # when the user presses Trigger
NOV20 = pendulum.datetime(2026, 11, 20, tz="UTC")


def daily_trigger():  # schedule="@daily" in Airflow 3
    from airflow.timetables.trigger import CronTriggerTimetable

    return CronTriggerTimetable("0 0 * * *", timezone="UTC")


def daily_interval():  # schedule=CronDataIntervalTimetable("0 0 * * *", "UTC")
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


def scheduled_info(timetable, after: datetime):
    from airflow.timetables.base import DataInterval, TimeRestriction

    last = DataInterval(after, after)
    return timetable.next_dagrun_info(
        last_automated_data_interval=last, restriction=TimeRestriction(earliest=None, latest=None, catchup=True)
    )


def test_scheduled_daily_trigger_reports_the_day_before_the_tick():
    info = scheduled_info(daily_trigger(), pendulum.datetime(2026, 10, 31, tz="UTC"))
    assert info.data_interval.start == info.data_interval.end == info.logical_date  # empty interval
    start, end, why = report_window(info.data_interval.start, info.data_interval.end, info.logical_date, info.run_after)
    assert (start, end) == (pendulum.datetime(2026, 10, 31, tz="UTC"), pendulum.datetime(2026, 11, 1, tz="UTC"))
    assert "logical date" in why
    assert "window=1 day ending at the logical date" in why, "durations as people write them, not '1 day, 0:00:00'"


def test_scheduled_and_backfilled_data_interval_timetable_use_the_interval():
    info = scheduled_info(daily_interval(), pendulum.datetime(2026, 10, 30, tz="UTC"))
    start, end, why = report_window(info.data_interval.start, info.data_interval.end, info.logical_date, info.run_after)
    assert (start, end) == (info.data_interval.start, info.data_interval.end)
    assert end - start == DAY and why == "the run's data interval"


def test_manual_cli_trigger_with_logical_date_reports_that_date():
    """`airflow dags trigger -l 2026-11-20`: Airflow infers the interval from the trigger time (empty for @daily)."""
    interval = daily_trigger().infer_manual_data_interval(run_after=NOW)
    assert interval.start == interval.end == NOW
    start, end, _ = report_window(interval.start, interval.end, NOV20, NOW)
    assert (start, end) == (NOV20 - DAY, NOV20)  # not the day ending at trigger time


def test_manual_rest_trigger_with_logical_date_reports_that_date():
    interval = daily_trigger().infer_manual_data_interval(run_after=NOV20)  # TriggerDAGRunPostBody
    start, end, _ = report_window(interval.start, interval.end, NOV20, NOW)
    assert (start, end) == (NOV20 - DAY, NOV20)


def test_manual_trigger_without_logical_date_ends_at_run_after():
    start, end, why = report_window(None, None, None, NOW, timedelta(hours=6))
    assert (start, end) == (NOW - timedelta(hours=6), NOW) and "window=6 h ending at run_after" in why


def test_asset_triggered_run_ends_at_run_after():
    """The scheduler creates asset-triggered runs with logical_date=None and data_interval=None."""
    start, end, _ = report_window(None, None, None, NOW)
    assert (start, end) == (NOW - DAY, NOW)


def test_bad_inputs():
    with pytest.raises(ValueError, match="positive"):
        report_window(None, None, None, NOW, timedelta(0))
    with pytest.raises(ValueError, match="run_after"):
        report_window(None, None, None, None)


def test_window_of_a_task_context_without_logical_date_keys():
    from types import SimpleNamespace

    assert report_window_of({"dag_run": SimpleNamespace(run_after=NOW)})[:2] == (NOW - DAY, NOW)


def test_placeholders():
    start, end = datetime(2026, 10, 31, 8), datetime(2026, 11, 1, 8)
    assert fill_window_placeholders("s3://b/{window_start:%Y-%m-%d}/{window_end:%H%M}.csv", start, end) == (
        "s3://b/2026-10-31/0800.csv"
    )
    assert fill_window_placeholders("file:///x/{window_start}.csv", start, end) == "file:///x/2026-10-31T08:00:00.csv"
    assert fill_window_placeholders("file:///x/{other}/{{ ds }}", start, end) == "file:///x/{other}/{{ ds }}"


# ---- on the partition grid (destinations that name partitions) -----------------------------------


def taipei_day():
    from cloudmax_provider.windows.partitions import PartitionGrid

    return PartitionGrid.of("day", "Asia/Taipei")


def test_on_the_grid_every_run_of_a_day_asks_for_the_same_whole_day():
    """Scheduled @daily, CLI/REST trigger with a logical date, and triggers without one later that day."""
    info = scheduled_info(daily_trigger(), pendulum.datetime(2026, 11, 27, tz="UTC"))
    scheduled = report_window(
        info.data_interval.start, info.data_interval.end, info.logical_date, info.run_after, grid=taipei_day()
    )
    manual = daily_trigger().infer_manual_data_interval(run_after=NOW)
    cli = report_window(manual.start, manual.end, info.logical_date, NOW, grid=taipei_day())
    morning = report_window(None, None, None, pendulum.datetime(2026, 11, 28, 6, 32, 15, tz="UTC"), grid=taipei_day())
    evening = report_window(None, None, None, pendulum.datetime(2026, 11, 28, 15, 59, tz="UTC"), grid=taipei_day())
    assert {w[:2] for w in (scheduled, cli, morning, evening)} == {
        (datetime(2026, 11, 27, tzinfo=taipei_day().tz), datetime(2026, 11, 28, tzinfo=taipei_day().tz))
    }
    assert "last complete day (Asia/Taipei)" in morning[2] and "run_after" in morning[2]


def test_on_the_grid_a_data_interval_is_widened_to_the_partitions_it_touches():
    info = scheduled_info(daily_interval(), pendulum.datetime(2026, 11, 19, tz="UTC"))  # a UTC day
    start, end, why = report_window(
        info.data_interval.start, info.data_interval.end, info.logical_date, info.run_after, grid=taipei_day()
    )
    tz = taipei_day().tz
    # the UTC day is 08:00 to 08:00 in Taipei: widened to the two Taipei days it touches (which UTC day
    # next_dagrun_info gives after 11-19 differs between Airflow 2 and 3)
    first = info.data_interval.start.astimezone(tz).date()
    assert (start, end) == (
        datetime(first.year, first.month, first.day, tzinfo=tz),
        datetime(first.year, first.month, first.day, tzinfo=tz) + 2 * DAY,
    )
    assert "widened" in why
    aligned = report_window(
        datetime(2026, 11, 20, tzinfo=tz), datetime(2026, 11, 21, tzinfo=tz), None, None, grid=taipei_day()
    )
    assert aligned[:2] == (datetime(2026, 11, 20, tzinfo=tz), datetime(2026, 11, 21, tzinfo=tz))
    assert "widened" not in aligned[2]


def test_grid_units_and_window_lengths():
    from cloudmax_provider.windows.partitions import PartitionGrid

    tz = ZoneInfo("Asia/Taipei")
    at = datetime(2026, 11, 28, 14, 32, tzinfo=tz)
    hours = PartitionGrid.of("hour", "Asia/Taipei").last_complete(at, timedelta(hours=6))
    assert hours == (datetime(2026, 11, 28, 8, tzinfo=tz), datetime(2026, 11, 28, 14, tzinfo=tz))
    month = PartitionGrid.of("month", "Asia/Taipei")
    assert month.last_complete(at, DAY) == (datetime(2026, 10, 1, tzinfo=tz), datetime(2026, 11, 1, tzinfo=tz))
    assert [
        s.month for s, _ in month.partitions(datetime(2026, 11, 1, tzinfo=tz), datetime(2027, 2, 1, tzinfo=tz))
    ] == [11, 12, 1]
    # a 6-hour window on the day grid is the whole last day; 36 hours are the last two days
    day = taipei_day()
    assert day.last_complete(at, timedelta(hours=6))[0] == datetime(2026, 11, 27, tzinfo=tz)
    assert day.last_complete(at, timedelta(hours=36))[0] == datetime(2026, 11, 26, tzinfo=tz)
    with pytest.raises(ValueError, match="not whole"):
        day.partitions(at, at + DAY)


def test_a_day_grid_with_daylight_saving_time():
    """New York's days of 23 and 25 hours are one partition each; hours are elapsed hours."""
    from cloudmax_provider.windows.partitions import PartitionGrid

    ny = PartitionGrid.of("day", "America/New_York")
    days = ny.partitions(*ny.widen(datetime(2026, 3, 7, 12, tzinfo=ny.tz), datetime(2026, 3, 9, 1, tzinfo=ny.tz)))
    assert [(e - s) for s, e in days] == [DAY, DAY, DAY]  # wall-clock days
    assert [(e.timestamp() - s.timestamp()) / 3600 for s, e in days] == [24, 23, 24]
    hours = PartitionGrid.of("hour", "America/New_York")
    start = datetime(2026, 11, 1, 0, tzinfo=hours.tz)
    assert len(hours.partitions(start, datetime(2026, 11, 1, 3, tzinfo=hours.tz))) == 4  # 01:00 twice


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("s3://lake/{window_strat:%Y-%m-%d}.csv", r"did you mean \{window_start:%Y-%m-%d\}"),
        ("s3://lake/{windowend}.csv", r"did you mean \{window_end\}"),
        ("s3://lake/{ds}.csv", r"\{ds\} is not a placeholder; the placeholders are"),
        ("s3://lake/{window_start:%Y-%m-%d.csv", r"unmatched"),
        ("s3://lake/{{ params.x }}/{window_strat}.csv", r"did you mean \{window_start\}"),
    ],
)
def test_unknown_placeholders_are_refused_with_did_you_mean(template, message):
    from cloudmax_provider.exceptions import CloudmaxConfigError
    from cloudmax_provider.windows.window import check_placeholders

    with pytest.raises(CloudmaxConfigError, match=message) as info:
        check_placeholders(template)
    assert "{{" not in str(info.value).replace(repr(template), "")  # no Jinja macro suggested (no ds in some runs)


def test_placeholders_must_name_each_partition_apart():
    from cloudmax_provider.exceptions import CloudmaxConfigError
    from cloudmax_provider.windows.window import check_names_partitions

    check_names_partitions("s3://l/date={window_start:%Y-%m-%d}/part.parquet", "day")
    check_names_partitions("s3://l/{window_start:%Y-%m}.csv", "month")
    check_names_partitions("s3://l/{window_start}.csv", "hour")
    with pytest.raises(CloudmaxConfigError, match=r"names the day partitions .* alike"):
        check_names_partitions("s3://l/{window_start:%Y-%m}.csv", "day")
    with pytest.raises(CloudmaxConfigError, match=r"hour partitions"):
        check_names_partitions("s3://l/{window_start:%Y-%m-%d}.csv", "hour")


# ---- inside Airflow ------------------------------------------------------------------------------

SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule={schedule}, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(task_id="opens", report_part_id=2100199, launch_ids=[1225],
                           destination={dest!r})
"""


# Airflow 2's "@daily" is an interval timetable in UTC: on an Asia/Taipei account each run would touch two
# account-local days (docs/partitions.md). Its documented schedule is the account's own midnight, which gives
# the runs below the same windows as Airflow 3's "@daily".
SCHEDULE = '"@daily"' if AIRFLOW_V_3_0_PLUS else 'CronDataIntervalTimetable("0 0 * * *", timezone="Asia/Taipei")'


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("logical_date", "run_after", "window", "name"),
    [
        # a REST/UI trigger with a logical date, = the scheduled run of that date: the last complete
        # account-local day before it (2026-11-20T00:00Z is 08:00 in Taipei)
        (NOV20, None, ("2026-11-19 00:00:00", "2026-11-20 00:00:00"), "2026-11-19"),
        # a trigger without a logical date: the last complete account-local day before run_after
        (None, NOW, ("2026-11-24 00:00:00", "2026-11-25 00:00:00"), "2026-11-24"),
        # named in the account's timezone: Taipei's 10-31 is 10-30T16:00Z .. 10-31T16:00Z
        (
            pendulum.datetime(2026, 10, 31, 16, tz="UTC"),
            None,
            ("2026-10-31 00:00:00", "2026-11-01 00:00:00"),
            "2026-10-31",
        ),
    ],
    ids=["with-logical-date", "without-logical-date", "taipei-midnight"],
)
def test_report_operator_names_the_object_by_its_window(
    cloudmax_emulator, cloudmax_conn, tmp_path: Path, logical_date, run_after, window, name
):
    from tests.airflow_runner import dag_test, load_dag, task_states

    dest = f"{tmp_path.as_uri()}/opens/{{window_start:%Y-%m-%d}}.csv"
    dag_id = f"cmx_window_{name.replace('-', '')}"
    dag = load_dag(SOURCE.format(dag_id=dag_id, dest=dest, schedule=SCHEDULE), dag_id)
    dr = dag_test(dag, logical_date, run_after)
    assert task_states(dr) == {"opens": "success"}
    (api,) = cloudmax_emulator.api_requests
    assert (api.field("StartTime"), api.field("EndTime")) == window
    written = tmp_path / "opens" / f"{name}.csv"
    assert [p.name for p in (tmp_path / "opens").iterdir()] == [written.name]
    assert written.read_bytes().decode() == cloudmax_emulator.expected_csv(2100199, [1225], *window)


LINKS_SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable
from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator

with DAG("cmx_links_window", schedule={schedule}, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    CloudmaxDownloadLinksOperator(task_id="download", links={links!r}, destination={dest!r})
"""


@pytest.mark.usefixtures("airflow_db")
def test_download_links_operator_names_the_object_by_the_run_window(cloudmax_emulator, cloudmax_conn, tmp_path):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from tests.airflow_runner import dag_test, load_dag, task_states

    hook = CloudmaxHook()
    links = hook.request_links(
        hook.build_request(21002, 1225, "2026-11-19 00:00:00", "2026-11-20 00:00:00", response_mode=1)
    )
    dest = f"{tmp_path.as_uri()}/clicks/{{window_start:%Y%m%d}}-{{window_end:%Y%m%d}}.csv"
    dag = load_dag(LINKS_SOURCE.format(links=links, dest=dest, schedule=SCHEDULE), "cmx_links_window")
    dr = dag_test(dag, NOV20)
    assert task_states(dr) == {"download": "success"}
    body = (tmp_path / "clicks" / "20261119-20261120.csv").read_bytes().decode()
    assert body == cloudmax_emulator.expected_csv(21002, [1225], "2026-11-19 00:00:00", "2026-11-20 00:00:00")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=1), "1 day"),
        (timedelta(days=31), "31 days"),
        (timedelta(hours=6), "6 h"),
        (timedelta(days=1, hours=6), "1 day 6 h"),
        (timedelta(minutes=90), "1 h 30 min"),
        (timedelta(seconds=0.25), "0.25 s"),
    ],
)
def test_durations_read_as_people_write_them(delta, text):
    assert human_duration(delta) == text
