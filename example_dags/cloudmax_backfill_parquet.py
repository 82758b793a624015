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

A manual run lands the last complete month (the timetable infers its interval); nothing here uses
``ds`` or the logical date, which an Airflow 3 manual run may not have.

Configuration, all optional, read when a task runs (nothing is read while the file is parsed):

* Variable ``cloudmax_lake``: the storage root (default ``file:///tmp/cloudmax-lake``), e.g. ``s3://lake``;
* Variable ``cloudmax_lake_conn_id``: the connection of that store (e.g. ``aws_default``; default none);
* Variable ``cloudmax_launch_ids``: the LaunchIDs (default ``1225,1116``);
* the ``cloudmax_default`` connection (point it at the bundled emulator to run offline:
  ``python -m cloudmax_provider.testing.emulator --port 8080``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from cloudmax_provider.operators.report import CloudmaxReportOperator

LAKE = "{{ var.value.get('cloudmax_lake', 'file:///tmp/cloudmax-lake').rstrip('/') }}"

with DAG(
    "cloudmax_backfill_parquet",
    # The month before each run, months cut at midnight in the account's clock.
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="Asia/Taipei"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Taipei"),
    catchup=False,  # backfill explicitly with `airflow backfill create`
    max_active_runs=2,
    tags=["cloudmax", "example", "lake"],
) as dag:
    CloudmaxReportOperator(
        task_id="click_details",
        report_part_id="click_details",  # 21002
        launch_ids="{{ var.value.get('cloudmax_launch_ids', '1225,1116') }}",
        # start_time/end_time: the run's data interval (one month)
        chunk=timedelta(days=1),
        output_format="parquet",
        destination=LAKE + "/cloudmax/click_details/",
        destination_conn_id="{{ var.value.get('cloudmax_lake_conn_id', '') }}",
        retries=2,
        retry_delay=timedelta(minutes=5),
    )
