"""Test-only DAG (issue 13, processes killed): 100 deferrable sensors waiting in the triggerer.

One task asks the test's emulator (``cloudmax_e2e``) for ResponseMode 1 links for 100 LaunchIDs;
a mapped deferrable :class:`CloudmaxDownloadLinkSensor` waits for each. The test restarts the
triggerer while all 100 are deferred, then lets the files appear.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

SENSORS = 100

with DAG(
    "e2e_deferred_many",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=SENSORS + 1,
    tags=["cloudmax", "e2e"],
) as dag:

    @task
    def request_links() -> list[list[str]]:
        """ResponseMode 1 links for LaunchIDs 5000..5099 (one request each)."""
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook

        hook = CloudmaxHook("cloudmax_e2e")
        start = pendulum.datetime(2026, 11, 1, tz="Asia/Taipei")
        return [
            hook.request_links(hook.build_request("click_details", 5000 + i, start, start.add(days=1), response_mode=1))
            for i in range(SENSORS)
        ]

    CloudmaxDownloadLinkSensor.partial(
        task_id="wait", cloudmax_conn_id="cloudmax_e2e", poke_interval=2, timeout=1800, deferrable=True
    ).expand(links=request_links())
