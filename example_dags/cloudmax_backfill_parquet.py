"""Monthly click details as typed Parquet, one object per day: a backfill-friendly lake DAG.

Each run lands its data interval — one calendar month in the account's clock (Asia/Taipei) — of click
details (21002) under ``<lake>/cloudmax/click_details/``, requested and written a day at a time
(``chunk=timedelta(days=1)``), each day an object named by its window::

    <lake>/cloudmax/click_details/2026-10-01T00-00-00_2026-10-02T00-00-00.parquet

Every month lands in the same prefix, so the whole history reads as one dataset::

    import pyarrow.dataset as ds
    ds.dataset("/tmp/cloudmax-lake/cloudmax/click_details", format="parquet").to_table()
    # duckdb: SELECT count(*) FROM '/tmp/cloudmax-lake/cloudmax/click_details/*.parquet'

If a day fails (the server errors on day 17), the task's retry resumes at day 17: the days already
landed are listed in a manifest beside them and not requested again.

Backfill a range of months (Airflow 3; one run per month, each with its month as data interval)::

    airflow backfill create --dag-id cloudmax_backfill_parquet \\
        --from-date 2026-01-01 --to-date 2026-06-30 --max-active-runs 2

A manual run with a logical date gets the month the timetable infers; one triggered without a logical
date (Airflow 3's default) has no data interval, and ``month`` picks the last complete month before the
trigger. Nothing here uses ``ds``.

Configuration, all optional, read when a task runs (nothing is read while the file is parsed):

* Variable ``cloudmax_lake``: the storage root (default ``file:///tmp/cloudmax-lake``), e.g. ``s3://lake``;
* Variable ``cloudmax_lake_conn_id``: the connection of that store (e.g. ``aws_default``; default none);
* Variable ``cloudmax_launch_ids``: the LaunchIDs (default ``1225,1116``);
* Variable ``cloudmax_conn_id``: the ``cloudmax`` connection (default ``cloudmax_default``; point it at
  the bundled emulator to run offline: ``python -m cloudmax_provider.testing.emulator --port 18080``).

``file:///tmp/cloudmax-lake`` is local to each worker: on several hosts set ``cloudmax_lake`` to a shared
store. The resume manifest lives beside the chunks in that store, never on a worker's disk.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow.timetables.interval import CronDataIntervalTimetable

from cloudmax_provider.operators.report import CloudmaxReportOperator

TIMEZONE = "Asia/Taipei"  # the account's clock (the connection's `timezone` extra)
LAKE = "{{ var.value.get('cloudmax_lake', 'file:///tmp/cloudmax-lake').rstrip('/') }}"

with DAG(
    "cloudmax_backfill_parquet",
    # The month before each run, months cut at midnight in the account's clock.
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,  # backfill explicitly with `airflow backfill create`
    max_active_runs=2,
    tags=["cloudmax", "example", "lake"],
) as dag:

    @task
    def month(data_interval_start: Any = None, data_interval_end: Any = None, dag_run: Any = None) -> dict[str, str]:
        """The run's month: its data interval, or for a run without one the last complete month before it."""
        if (
            data_interval_start is not None
            and data_interval_end is not None
            and data_interval_end > data_interval_start
        ):
            start, end = data_interval_start, data_interval_end
        else:
            end = pendulum.instance(dag_run.run_after).in_tz(TIMEZONE).start_of("month")
            start = end.subtract(months=1)
        return {"start_time": start.isoformat(), "end_time": end.isoformat()}

    window = month()
    # [START howto_operator_cloudmax_report_chunks]
    CloudmaxReportOperator(
        task_id="click_details",
        cloudmax_conn_id="{{ var.value.get('cloudmax_conn_id', 'cloudmax_default') }}",
        report_part_id="click_details",  # 21002
        launch_ids="{{ var.value.get('cloudmax_launch_ids', '1225,1116') }}",
        start_time=window["start_time"],
        end_time=window["end_time"],
        chunk=timedelta(days=1),
        output_format="parquet",
        destination=LAKE + "/cloudmax/click_details/",
        destination_conn_id="{{ var.value.get('cloudmax_lake_conn_id', '') }}",
        retries=2,
        retry_delay=timedelta(minutes=5),
    )
    # [END howto_operator_cloudmax_report_chunks]
