"""Lake tables: an event log and a campaign-state report in Apache Iceberg, then both read back.

For the run's window (daily at the account's midnight: the day before the run; a trigger without a logical date:
the day before the trigger):

* ``opens`` - 2100199 (Open details, quick), an **event log**: the window's day partitions of
  ``iceberg://cloudmax.opens`` replaced in one commit, with ``lookback`` re-landing the two days before
  (opens that arrive late);
* ``read_summary`` - 30023 (Combined read summary), **campaign state**: each (LaunchID, JobID) upserted in
  ``iceberg://cloudmax.read_summary``, which holds every campaign's latest numbers once;
* ``read_back`` - a ``@task`` reading both tables back: row counts, in the log and in XCom.

Settings (Airflow Variables, read when the task runs; the defaults work against
``python -m cloudmax_provider.testing.emulator``):

* ``cloudmax_conn_id``         - the ``cloudmax`` connection (default ``cloudmax_default``);
* ``cloudmax_launch_ids``      - the LaunchIDs, e.g. ``1225,1116`` (default);
* ``cloudmax_iceberg_conn_id`` - the ``iceberg`` connection (default ``cloudmax_iceberg``), whose extra holds the
  catalog's properties. On a laptop, pyiceberg's SQL catalog on SQLite (needs SQLAlchemy 2: Airflow 3.1+)::

      airflow connections add cloudmax_iceberg --conn-type iceberg --conn-extra \\
        '{"type": "sql", "uri": "sqlite:////tmp/lake/catalog.db", "warehouse": "file:///tmp/lake/warehouse"}'

Needs ``pip install 'airflow-provider-cloudmax[iceberg]'``; see docs/lake-tables.md for REST, Glue and S3.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable

from cloudmax_provider.operators.report import CloudmaxReportOperator

TIMEZONE = "Asia/Taipei"  # the account's clock (the connection's `timezone` extra)

CONN_ID = "{{ var.value.get('cloudmax_conn_id', 'cloudmax_default') }}"
LAUNCH_IDS = "{{ var.value.get('cloudmax_launch_ids', '1225,1116') }}"
ICEBERG_CONN_ID = "{{ var.value.get('cloudmax_iceberg_conn_id', 'cloudmax_iceberg') }}"
TABLES = {"opens": "iceberg://cloudmax.opens", "read_summary": "iceberg://cloudmax.read_summary"}

with DAG(
    "cloudmax_lake_tables",
    schedule=CronTriggerTimetable("0 0 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_cloudmax_report_iceberg]
    opens = CloudmaxReportOperator(
        task_id="opens",
        report_part_id="open_details_quick",  # 2100199: events, partitioned by day
        launch_ids=LAUNCH_IDS,
        cloudmax_conn_id=CONN_ID,
        destination=TABLES["opens"],
        destination_conn_id=ICEBERG_CONN_ID,
        lookback=timedelta(days=2),  # late opens: the two days before are landed again
    )
    read_summary = CloudmaxReportOperator(
        task_id="read_summary",
        report_part_id="read_summary",  # 30023: campaign state, upserted on LaunchID and JobID
        launch_ids=LAUNCH_IDS,
        cloudmax_conn_id=CONN_ID,
        destination=TABLES["read_summary"],
        destination_conn_id=ICEBERG_CONN_ID,
    )
    # [END howto_operator_cloudmax_report_iceberg]

    @task
    def read_back(conn_id: str) -> dict[str, Any]:
        """Both tables' row counts, and the campaigns the state table holds (each once)."""
        from cloudmax_provider.landing.iceberg import IcebergTable, load_catalog

        catalog = load_catalog(conn_id)
        counts: dict[str, Any] = {}
        for name, uri in TABLES.items():
            rows = catalog.load_table(IcebergTable.parse(uri).identifier).scan().to_arrow()
            counts[name] = rows.num_rows
            if name == "read_summary":
                counts["campaigns"] = sorted(set(rows.column("LaunchID").to_pylist()))
        print(f"Lake tables: {counts}")
        return counts

    [opens, read_summary] >> read_back(ICEBERG_CONN_ID)
