"""Daily campaign summaries as typed rows in XCom, and a downstream task that uses them.

For the run's window (daily at the account's midnight: the day before the run; a trigger without a logical date: the
day before the trigger, see :func:`cloudmax_provider.windows.window.report_window`):

* ``send_summary`` - 20001 (Email send summary): one row per LaunchID, counts as ints;
* ``read_summary`` - 30023 (Combined read summary): counts as ints, rates as floats;
* ``campaign_kpis`` - a ``@task`` joining both by LaunchID into one KPI row per campaign.

Settings (Airflow Variables, read when the task runs, never at parse time; the defaults work on a
laptop against ``python -m cloudmax_provider.testing.emulator``):

* ``cloudmax_conn_id``    - the ``cloudmax`` connection (default ``cloudmax_default``);
* ``cloudmax_launch_ids`` - the LaunchIDs, e.g. ``1225,1116`` (default).

Nothing is written to disk: the rows travel in XCom (at most ``max_xcom_rows``, default 5,000).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable

from cloudmax_provider.operators.report import CloudmaxReportOperator

TIMEZONE = "Asia/Taipei"  # the account's clock (the connection's `timezone` extra)

CONN_ID = "{{ var.value.get('cloudmax_conn_id', 'cloudmax_default') }}"
LAUNCH_IDS = "{{ var.value.get('cloudmax_launch_ids', '1225,1116') }}"

with DAG(
    "cloudmax_daily_summary",
    # midnight on the account's clock, on every Airflow: "@daily" is UTC midnight, and on Airflow 2 its
    # UTC-day interval would touch two account-local days
    schedule=CronTriggerTimetable("0 0 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_cloudmax_report_xcom]
    send_summary = CloudmaxReportOperator(
        task_id="send_summary",
        report_part_id="email_send_summary",  # 20001
        launch_ids=LAUNCH_IDS,
        cloudmax_conn_id=CONN_ID,
    )
    read_summary = CloudmaxReportOperator(
        task_id="read_summary",
        report_part_id="read_summary",  # 30023
        launch_ids=LAUNCH_IDS,
        cloudmax_conn_id=CONN_ID,
    )
    # [END howto_operator_cloudmax_report_xcom]

    @task
    def campaign_kpis(sends: list[dict[str, Any]], reads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per LaunchID: what was sent (20001) next to how it was read (30023)."""
        by_launch = {row["LaunchID"]: row for row in reads}
        kpis = []
        for send in sends:
            read = by_launch.get(send["LaunchID"], {})
            kpis.append(
                {
                    "LaunchID": send["LaunchID"],
                    "Subject": send["Subject"],
                    "accepted": send["AcceptCount"],  # an int already: the rows are typed
                    "opened": read.get("OpenEmailCount"),
                    "open_rate": read.get("OpenEmailRate"),  # a float
                    "clicks": read.get("ClickCount"),
                }
            )
        print(f"{len(kpis)} campaign(s): {kpis}")
        return kpis

    campaign_kpis(send_summary.output, read_summary.output)
