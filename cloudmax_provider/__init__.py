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
#
# Why Port is marked required although tasks run without it (Airflow 3.3, read in its UI bundle and in
# api_fastapi/core_api/routes/public/connections.py):
# - the list's Test button posts ``port: Number(connection.port)``, i.e. 0 for a connection stored without
#   a port, with the password masked ("***");
# - the test route takes 0 versus the stored NULL as "a different destination", refuses to reuse the
#   stored password for it and answers 400 ("Test Connection Failed / Bad Request") before any hook runs.
# So "Test works with Port empty" is out of a provider's reach. "Cannot save without Port" is too: a
# standard field's behaviour is only hidden/title/placeholder and the form validates only the connection
# id and type (a required *extra* field does block Save, but its value goes to the extra, never to the
# port column that the Test button compares). What the form can do is say it: Port and Base URL carry
# Airflow's required mark (*) and the placeholders say what to type and why. docs/connection.md says the
# same; tests/integration/test_browser.py pins Airflow's behaviour (port empty: Bad Request; port filled: success).
# A port in the Base URL and in Port must agree (connection.py); Port 0 or empty still works for tasks.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    "relabeling": {"host": "Base URL *", "port": "Port *", "login": "API account *", "password": "API password *"},
    "placeholders": {
        "host": "https://api.itpison.com (production) or http://host:port",
        "port": "the Base URL's port, e.g. 443; Test needs it",
        "login": "ManagerLoginName",
        "password": "ManagerPassword",
    },
}

# Airflow 3.3's form stores every field below in the extra, with the field's value: null for an
# untouched field without a default, a JSON number for number/integer fields. So every field has a
# default of its type (no nulls stored), and no default is a non-empty string shorter than 5 characters:
# Airflow hands every extra string to its secrets masker, which warns "Skipping masking for a secret as
# it's too short" for e.g. "POST" at the start of every task log (an empty string it skips silently).
# That is why method and request_format are not form fields (a default of "POST" would warn, none would
# store null): they go in "Extra Fields JSON" ({"method": "GET"}), like verify, scheme and the retry
# waits. connection.py still reads what older forms stored: "60", nulls, extra__cloudmax__* keys.

CONN_FIELDS: dict[str, Any] = {
    "timezone": {
        "label": "Account timezone",
        "description": "IANA name of the account's clock: StartTime/EndTime are sent and report times read in it.",
        "schema": {"type": ["string", "null"], "default": "Asia/Taipei"},
    },
    "endpoint": {
        "label": "Endpoint",
        "description": "Path of Report.aspx on the Base URL.",
        "schema": {"type": ["string", "null"], "default": "/WebAPI/Report.aspx"},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per HTTP request (connect and read).",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "attempts": {  # was "retries" (read with a deprecation warning)
        "label": "Attempts",
        "description": "Attempts for transient failures (5xx, 429, timeouts, connection resets).",
        "schema": {"type": ["integer", "null"], "default": 4},
    },
    "allowed_link_hosts": {
        "label": "Allowed DOWNLOADLINK hosts",
        "description": "Comma-separated hosts other than the Base URL's whose report links may be fetched; "
        "empty = only the Base URL's host.",
        "schema": {"type": ["string", "null"], "default": ""},
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
        # every module of hooks/, operators/, sensors/ and triggers/ (tests/unit/test_provider_info.py walks them)
        "hooks": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.hooks.cloudmax"]}],
        "operators": [
            {
                "integration-name": "Cloudmax",
                "python-modules": [
                    "cloudmax_provider.operators.report",
                    "cloudmax_provider.operators.request_links",
                    "cloudmax_provider.operators.download_links",
                ],
            }
        ],
        "sensors": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.sensors.download_link"]}],
        "triggers": [{"integration-name": "Cloudmax", "python-modules": ["cloudmax_provider.triggers.download_link"]}],
        # `airflow cloudmax probe` on Airflow 3.3+ (older versions ignore the key)
        "cli": ["cloudmax_provider.probe.airflow_cli.get_cli_commands"],
    }
