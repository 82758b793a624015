"""Test-only DAG (issue 13, processes killed): one big report streamed to a local file, with a retry.

The test SIGKILLs the task's process mid-stream; Airflow's retry must land the report once, whole.
``CLOUDMAX_LAKE`` (the deployment's shared storage root) and ``cloudmax_e2e`` (the test's emulator)
come from the deployment's environment.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from cloudmax_provider.operators.report import CloudmaxReportOperator

LAKE = os.environ.get("CLOUDMAX_LAKE", "file:///tmp/cloudmax-lake").rstrip("/")

with DAG(
    "e2e_killed_big_report",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "e2e"],
) as dag:
    CloudmaxReportOperator(
        task_id="big",
        cloudmax_conn_id="cloudmax_e2e",
        report_part_id="open_details_quick",
        launch_ids="1225",
        start_time="2026-11-01 00:00:00",
        end_time="2026-11-02 00:00:00",
        destination=f"{LAKE}/killed/big.csv",
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
