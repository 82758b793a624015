"""Daily Cloudmax reports into the lake: the DAG `make demo` runs against the bundled emulator.

Every day, for yesterday (the account's clock is Asia/Taipei; Airflow's is UTC):

* ``opens``     - open details (2100199), streamed as CSV to ``$CLOUDMAX_LAKE/opens/{{ ds }}.csv``;
* ``removals``  - removals (31033) with Chinese reasons, a few columns renamed;
* ``summary``   - the campaign read summary (30023), as typed rows in XCom.

Configure with a ``cloudmax_default`` connection (host = Base URL, login = API account, password =
API password) and, optionally, the environment variables below.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from cloudmax_provider.operators.report import CloudmaxReportOperator

# Where reports land: any ObjectStoragePath URI (s3://bucket/prefix with CLOUDMAX_LAKE_CONN_ID=aws_default, ...)
LAKE = os.environ.get("CLOUDMAX_LAKE", "file:///tmp/cloudmax-lake").rstrip("/")
LAKE_CONN_ID = os.environ.get("CLOUDMAX_LAKE_CONN_ID") or None
# The campaigns (LaunchIDs) to report on
LAUNCH_IDS = os.environ.get("CLOUDMAX_LAUNCH_IDS", "1225,1116")

with DAG(
    "cloudmax_daily_report",
    schedule="@daily",  # a CronTriggerTimetable: the operator uses the day before the run (window=1 day)
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
) as dag:
    opens = CloudmaxReportOperator(
        task_id="opens",
        report_part_id="open_details_quick",  # 2100199
        launch_ids=LAUNCH_IDS,
        destination=f"{LAKE}/opens/{{{{ ds }}}}.csv",
        destination_conn_id=LAKE_CONN_ID,
    )
    removals = CloudmaxReportOperator(
        task_id="removals",
        report_part_id=31033,
        launch_ids=LAUNCH_IDS,
        columns={"EmailAddress": "email", "Status": "reason", "SubmitTime": "removed_at"},
        language="zh-TW",
        destination=f"{LAKE}/removals/{{{{ ds }}}}.csv",
        destination_conn_id=LAKE_CONN_ID,
    )
    summary = CloudmaxReportOperator(
        task_id="summary",
        report_part_id="read_summary",  # 30023: one typed row per LaunchID into XCom
        launch_ids=LAUNCH_IDS,
    )
