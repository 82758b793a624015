"""Test-only DAG (issue 27): a literal Parquet destination, declared as an Asset when the DAG is parsed.

In a deployment the dag-processor serializes the DAG, so the Asset (on Airflow 3.0 the AssetAlias the provider
declares instead, see ``landing/lineage.py``) is known before the task runs, and the landing records its event.
The lake is the deployment's (``CLOUDMAX_LAKE``, read when the file is parsed: the destination stays literal).
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG

from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG(
    "e2e_literal_parquet",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "e2e"],
) as dag:
    CloudmaxReportOperator(
        task_id="sent",
        report_part_id=21032,
        launch_ids=[1],
        output_format="parquet",
        destination=os.environ.get("CLOUDMAX_LAKE", "file:///tmp/cloudmax-lake") + "/e2e/sent.parquet",
    )
