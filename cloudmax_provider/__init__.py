"""Apache Airflow provider for the Cloudmax (iTPison) Report.aspx API.

Land Cloudmax e-mail/SMS reports (sends, opens, clicks, bounces, removals, campaign
summaries) in XCom or any object store::

    from cloudmax_provider.operators.report import CloudmaxReportOperator

    CloudmaxReportOperator(
        task_id="opens",
        report_part_id="open_details_quick",
        launch_ids=[1225, 1116],
        destination="s3://lake/cloudmax/{{ ds }}/opens.csv",
    )
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-cloudmax",
        "name": "Cloudmax",
        "description": "Cloudmax (iTPison) Report.aspx: e-mail/SMS marketing reports.",
        "versions": [__version__],
        "connection-types": [
            {"connection-type": "cloudmax", "hook-class-name": "cloudmax_provider.hooks.cloudmax.CloudmaxHook"}
        ],
        "hooks": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.hooks.cloudmax"]}],
        "operators": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.operators.report"]}],
        "sensors": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.sensors.download_link"]}],
        "triggers": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.triggers.download_link"]}],
    }
