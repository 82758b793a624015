"""Request -> wait -> download, mapped over LaunchIDs, without holding a worker while files are made.

Report.aspx's ResponseMode 1 answers at once with DOWNLOADLINKs whose files appear later. One mapped
task per LaunchID asks for its links, a deferrable sensor waits for the files in the triggerer, and a
mapped download streams each into the lake.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

LAKE = os.environ.get("CLOUDMAX_LAKE", "file:///tmp/cloudmax-lake").rstrip("/")
LAUNCH_IDS = [int(i) for i in os.environ.get("CLOUDMAX_LAUNCH_IDS", "1225,1116").split(",")]

with DAG(
    "cloudmax_links_mapped",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudmax", "example"],
) as dag:

    @task
    def request_links(launch_id: int, data_interval_end: Any = None) -> list[str]:
        """Ask for click details of one LaunchID for the day before the run; return its links."""
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook

        hook = CloudmaxHook()
        end = data_interval_end
        request = hook.build_request(
            "click_details",
            launch_id,
            end.subtract(days=1),
            end,
            response_mode=1,  # 1: HTTP links
        )
        return hook.request_links(request)

    links = request_links.expand(launch_id=LAUNCH_IDS)
    ready = CloudmaxDownloadLinkSensor.partial(
        task_id="wait_for_files", poke_interval=5, timeout=3600, deferrable=True
    ).expand(links=links)
    # one object per file, named as Cloudmax names it, under the day's prefix
    CloudmaxDownloadLinksOperator.partial(
        task_id="download", destination=f"{LAKE}/clicks/{{{{ ds }}}}/", one_object_per_link=True
    ).expand(links=ready.output)
