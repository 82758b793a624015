"""Request -> wait -> download, mapped over LaunchIDs, without holding a worker while files are made.

Report.aspx's ResponseMode 1 answers at once with DOWNLOADLINKs whose files appear later. Three
operators, each mapped over the LaunchIDs: ``CloudmaxRequestLinksOperator`` asks for the click details
of the run's window (on the account's day grid: the last complete account-local day before a daily
run's logical date, or before the trigger when there is no logical date) and returns the links,
``CloudmaxDownloadLinkSensor`` waits for the files in the triggerer (deferrable), and
``CloudmaxDownloadLinksOperator`` streams each into ``<lake>/clicks/<window start day>/`` - named by
the same window (both use the day grid), so names and rows agree.

Settings (Airflow Variables, read when tasks run; defaults work on a laptop):

* ``cloudmax_lake``         - storage root, default ``file:///tmp/cloudmax-lake``. That path is local to
  each worker: on several hosts (Celery, Kubernetes) set it to a shared store, e.g. ``s3://bucket/cloudmax``;
* ``cloudmax_lake_conn_id`` - the store's connection (``aws_default`` ...), default none;
* ``cloudmax_conn_id``      - the ``cloudmax`` connection, default ``cloudmax_default``;
* ``cloudmax_launch_ids``   - the LaunchIDs, default ``1225,1116``.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable

from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator
from cloudmax_provider.operators.request_links import CloudmaxRequestLinksOperator
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

TIMEZONE = "Asia/Taipei"  # the account's clock (the connection's `timezone` extra)

LAKE = "{{ var.value.get('cloudmax_lake', 'file:///tmp/cloudmax-lake').rstrip('/') }}"
LAKE_CONN_ID = "{{ var.value.get('cloudmax_lake_conn_id', '') }}"
CONN_ID = "{{ var.value.get('cloudmax_conn_id', 'cloudmax_default') }}"

with DAG(
    "cloudmax_links_mapped",
    # midnight on the account's clock, on every Airflow: "@daily" is UTC midnight, and on Airflow 2 its
    # UTC-day interval would touch two account-local days
    schedule=CronTriggerTimetable("0 0 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def launch_ids() -> list[int]:
        """The LaunchIDs to map over, from the ``cloudmax_launch_ids`` Variable."""
        from airflow.providers.common.compat.sdk import Variable

        from cloudmax_provider.api.request import parse_launch_ids

        return list(parse_launch_ids(Variable.get("cloudmax_launch_ids", "1225,1116")))

    # [START howto_operator_cloudmax_request_links]
    # ResponseMode 1 (HTTP links): the run's window on the account's day grid, as the download names it
    links = CloudmaxRequestLinksOperator.partial(
        task_id="request_links", report_part_id="click_details", response_mode=1, cloudmax_conn_id=CONN_ID
    ).expand(launch_ids=launch_ids())
    # [END howto_operator_cloudmax_request_links]

    # [START howto_sensor_cloudmax_download_link]
    ready = CloudmaxDownloadLinkSensor.partial(
        task_id="wait_for_files", poke_interval=5, timeout=3600, deferrable=True, cloudmax_conn_id=CONN_ID
    ).expand(links=links.output)
    # [END howto_sensor_cloudmax_download_link]
    # one object per file, named as Cloudmax names it, under the window's day
    # [START howto_operator_cloudmax_download_links]
    CloudmaxDownloadLinksOperator.partial(
        task_id="download",
        destination=LAKE + "/clicks/{window_start:%Y-%m-%d}/",
        destination_conn_id=LAKE_CONN_ID,
        one_object_per_link=True,
        cloudmax_conn_id=CONN_ID,
    ).expand(links=ready.output)
    # [END howto_operator_cloudmax_download_links]
