"""Apache Airflow provider for the Cloudmax (iTPison) Report.aspx API.

Land Cloudmax e-mail/SMS reports (sends, opens, clicks, bounces, removals, campaign
summaries) in XCom or any object store::

    from cloudmax_provider.operators.report import CloudmaxReportOperator

    CloudmaxReportOperator(
        task_id="opens",
        report_part_id="open_details_quick",
        launch_ids=[1225, 1116],
        destination="s3://lake/cloudmax/opens/{window_start:%Y-%m-%d}.csv",
    )
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"


# The connection form, declared as data (Airflow >= 3.2 reads it without importing the hook; the hook's
# get_ui_field_behaviour() serves older versions from the same dicts).
# Port stays a real field: the UI's Test button (Airflow 3.3) sends the stored port (0 when there is
# none) and the api-server refuses a port that differs from the stored one. The Base URL may carry the
# same port; connection.py refuses two different ones.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    "relabeling": {"host": "Base URL", "port": "Port", "login": "API account", "password": "API password"},
    "placeholders": {
        "host": "https://api.itpison.com",
        "port": "443",
        "login": "ManagerLoginName",
        "password": "ManagerPassword",
    },
}

# No string default shorter than 5 characters below: the form stores defaults in the extra, and
# Airflow hands every extra value to its secrets masker, which warns "Skipping masking for a secret as
# it's too short" for e.g. "POST" at the start of every task log. An empty field means the default.

CONN_FIELDS: dict[str, Any] = {
    "timezone": {
        "label": "Account timezone",
        "description": "IANA name of the account's clock: StartTime/EndTime are sent and report times read in it.",
        "schema": {"type": ["string", "null"], "default": "Asia/Taipei"},
    },
    "method": {
        "label": "HTTP method",
        "description": "Empty = POST, which keeps the password out of URLs; GET only if the server's "
        "Web.config demands it.",
        "schema": {"type": ["string", "null"], "enum": ["POST", "GET"]},
    },
    "request_format": {
        "label": "Request format",
        "description": "Empty = fields: ManagerLoginName/ManagerPassword as fields; xml: XmlRequest; "
        "xml_file: an uploaded XmlReqFilePath.",
        "schema": {"type": ["string", "null"], "enum": ["fields", "xml", "xml_file"]},
    },
    "endpoint": {
        "label": "Endpoint",
        "description": "Path of Report.aspx on the Base URL.",
        "schema": {"type": ["string", "null"], "default": "/WebAPI/Report.aspx"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per HTTP request.",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "retries": {
        "label": "Attempts",
        "description": "Attempts for transient failures (5xx, 429, timeouts, connection resets).",
        "schema": {"type": ["integer", "null"], "default": 4},
    },
    "allowed_link_hosts": {
        "label": "Allowed DOWNLOADLINK hosts",
        "description": "Comma-separated hosts other than the Base URL's whose report links may be fetched.",
        "schema": {"type": ["string", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-cloudmax",
        "name": "Cloudmax",
        "description": "Cloudmax (iTPison) Report.aspx: e-mail/SMS marketing reports.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "cloudmax",
                "hook-class-name": "cloudmax_provider.hooks.cloudmax.CloudmaxHook",
                "hook-name": "Cloudmax",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
        "hooks": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.hooks.cloudmax"]}],
        "operators": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.operators.report"]}],
        "sensors": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.sensors.download_link"]}],
        "triggers": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.triggers.download_link"]}],
    }
