"""Daily Cloudmax details into the lake, announced as Assets; a second DAG scheduled on those Assets.

``cloudmax_daily_report`` (the DAG ``make demo`` runs) lands, for the run's window (daily at the account's midnight: the
day before the run; a trigger without a logical date: the day before the trigger; see
:func:`cloudmax_provider.windows.window.report_window`), four detail reports as CSV objects partitioned by the
window's day - ``{window_start:%Y-%m-%d}`` is filled by the operator with the window it asked for, so
an object's name always matches its rows:

* ``<lake>/opens/<day>.csv``    - open details (2100199);
* ``<lake>/clicks/<day>.csv``   - click details (21002);
* ``<lake>/bounces/<day>.csv``  - bounce details (21003);
* ``<lake>/removals/<day>.csv`` - removals (31033) with Chinese reasons, a few columns renamed.

Then ``publish`` updates one Asset per report (``cloudmax_opens`` ...) with the object's URI and row
count in the event's extra. ``cloudmax_lake_digest`` is scheduled on those four Assets: it reads the
newest objects and counts their rows.

Settings (Airflow Variables, read when tasks run, never at parse time; defaults work on a laptop):

* ``cloudmax_lake``         - storage root, default ``file:///tmp/cloudmax-lake``. That path is local to
  each worker: on several hosts (Celery, Kubernetes) set it to a shared store, e.g. ``s3://bucket/cloudmax``
  (with ``cloudmax_lake_conn_id=aws_default``), or the digest will not find what another worker wrote;
* ``cloudmax_lake_conn_id`` - the store's connection, default none;
* ``cloudmax_conn_id``      - the ``cloudmax`` connection, default ``cloudmax_default``;
* ``cloudmax_launch_ids``   - the LaunchIDs, default ``1225,1116``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Asset, task
from airflow.timetables.trigger import CronTriggerTimetable

from cloudmax_provider.operators.report import CloudmaxReportOperator

TIMEZONE = "Asia/Taipei"  # the account's clock (the connection's `timezone` extra)

LAKE = "{{ var.value.get('cloudmax_lake', 'file:///tmp/cloudmax-lake').rstrip('/') }}"
LAKE_CONN_ID = "{{ var.value.get('cloudmax_lake_conn_id', '') }}"
CONN_ID = "{{ var.value.get('cloudmax_conn_id', 'cloudmax_default') }}"
LAUNCH_IDS = "{{ var.value.get('cloudmax_launch_ids', '1225,1116') }}"
DAY = "{window_start:%Y-%m-%d}"  # filled by the operator with the window it requested (account time)

# report -> (ReportPartID, extra operator arguments)
DETAILS: dict[str, tuple[int, dict[str, Any]]] = {
    "opens": (2100199, {}),
    "clicks": (21002, {}),
    "bounces": (21003, {}),
    "removals": (
        31033,
        {"columns": {"EmailAddress": "email", "Status": "reason", "SubmitTime": "removed_at"}, "language": "zh-TW"},
    ),
}
ASSETS = {name: Asset(f"cloudmax_{name}") for name in DETAILS}

with DAG(
    "cloudmax_daily_report",
    # midnight on the account's clock, on every Airflow: "@daily" is UTC midnight, and on Airflow 2 its
    # UTC-day interval would touch two account-local days
    schedule=CronTriggerTimetable("0 0 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_cloudmax_report_destination]
    landed = {
        name: CloudmaxReportOperator(
            task_id=name,
            report_part_id=report_part_id,
            launch_ids=LAUNCH_IDS,
            destination=f"{LAKE}/{name}/{DAY}.csv",
            destination_conn_id=LAKE_CONN_ID,
            cloudmax_conn_id=CONN_ID,
            **kwargs,
        )
        for name, (report_part_id, kwargs) in DETAILS.items()
    }
    # [END howto_operator_cloudmax_report_destination]

    @task(outlets=list(ASSETS.values()))
    def publish(uris: dict[str, str], **context: Any) -> dict[str, str]:
        """Announce the four objects: one Asset event each, its extra = the object's URI and row count."""
        for name, uri in uris.items():
            rows = context["ti"].xcom_pull(task_ids=name, key="rows")
            context["outlet_events"][ASSETS[name]].extra = {"uri": uri, "rows": rows}
        return uris

    publish({name: op.output for name, op in landed.items()})


with DAG(
    "cloudmax_lake_digest",
    schedule=list(ASSETS.values()),  # runs once all four Assets have a new event
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
    doc_md=__doc__,
) as digest_dag:

    @task(inlets=list(ASSETS.values()))
    def digest(**context: Any) -> dict[str, Any]:
        """Rows per report in the newest object of each Asset (read back from the lake)."""
        import csv
        import io

        from airflow.providers.common.compat.sdk import ObjectStoragePath, Variable

        conn_id = Variable.get("cloudmax_lake_conn_id", "") or None
        counts: dict[str, Any] = {}
        for name, asset in ASSETS.items():
            events = context["inlet_events"][asset]
            if not len(events):  # a manual run before the first publish: nothing to read yet
                print(f"{name}: no asset event yet")
                continue
            uri = events[-1].extra["uri"]
            with ObjectStoragePath(uri, conn_id=conn_id).open("rb") as f:
                rows = sum(1 for _ in csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline=""))) - 1
            counts[name] = {"uri": uri, "rows": rows}
            print(f"{name}: {rows} rows in {uri}")
        return counts

    digest()
