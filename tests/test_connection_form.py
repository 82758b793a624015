"""The connection as the web form stores it: Port and the Base URL agree, and no masker warning."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import Connection

from cloudmax_provider import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from cloudmax_provider.compat import AIRFLOW_V_3_0_PLUS
from cloudmax_provider.connection import CloudmaxSettings
from cloudmax_provider.errors import CloudmaxConfigError
from tests.airflow_runner import run_dag, task_states, xcom


def settings(host: str, port: int | None = None) -> CloudmaxSettings:
    conn = Connection(conn_id="cmx", conn_type="cloudmax", host=host, port=port, login="demo", password="pw-12345")
    return CloudmaxSettings.from_connection(conn)


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("https://api.itpison.com", 443, "https://api.itpison.com:443"),  # Port only: into the URL
        ("https://api.itpison.com:8443", 8443, "https://api.itpison.com:8443"),  # both, equal
        ("https://api.itpison.com:8443", None, "https://api.itpison.com:8443"),  # the URL only
        ("https://api.itpison.com", 0, "https://api.itpison.com"),  # 0 = unset
        ("http://127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("api.itpison.com", 443, "https://api.itpison.com:443"),  # bare host: https
        ("http://[::1]/base", 8080, "http://[::1]:8080/base"),
    ],
)
def test_port_field_and_base_url(host, port, base_url):
    assert settings(host, port).base_url == base_url


def test_different_ports_are_refused_naming_both():
    with pytest.raises(CloudmaxConfigError, match=r"Base URL .* port 8443 but the Port field says 443"):
        settings("https://api.itpison.com:8443", 443)
    with pytest.raises(CloudmaxConfigError, match="port=70000 is not a TCP port"):
        settings("https://api.itpison.com", 70000)


def test_the_form_shows_port_and_stores_no_short_defaults():
    assert "port" not in UI_FIELD_BEHAVIOUR["hidden-fields"]
    assert UI_FIELD_BEHAVIOUR["relabeling"]["port"] == "Port" and UI_FIELD_BEHAVIOUR["placeholders"]["port"] == "443"
    for name, field in CONN_FIELDS.items():
        default = field["schema"].get("default")
        assert not (isinstance(default, str) and len(default) < 5), f"{name} default {default!r} would warn"


MASK_PROBE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, task

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    @task
    def probe():
        from airflow.providers.common.compat.sdk import redact
        from tests.airflow_compat import secrets_masker

        SecretsMasker = type(secrets_masker())
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook

        SecretsMasker._has_warned_short_secret = False  # the warning is once per process
        hook = CloudmaxHook()
        hook.settings
        return [SecretsMasker._has_warned_short_secret, redact("pw Form-Secret-4242 end")]

    probe()
"""


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(
    ("extra", "warns"),
    [
        # what the form stores when only the timezone is changed (defaults included)
        ({"timezone": "Asia/Taipei", "endpoint": "/WebAPI/Report.aspx", "timeout": 60, "retries": 4}, False),
        ({"method": "POST"}, True),  # Airflow's rule for any short extra string: the reason for no short defaults
    ],
    ids=["form-defaults", "short-extra"],
)
def test_no_too_short_masking_warning_for_a_form_connection(cloudmax_emulator, monkeypatch, extra, warns):
    conn = {
        "conn_type": "cloudmax",
        "host": cloudmax_emulator.base_url,
        "port": cloudmax_emulator.port,
        "login": "demo",
        "password": "Form-Secret-4242",
        "extra": extra,
    }
    cloudmax_emulator.settings.accounts = {"demo": "Form-Secret-4242"}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_DEFAULT", json.dumps(conn))
    dag_id = f"cmx_mask_{'warns' if warns else 'quiet'}"
    dr = run_dag(MASK_PROBE.format(dag_id=dag_id), dag_id)
    assert task_states(dr) == {"probe": "success"}
    warned, redacted = xcom(dr, "probe")
    # Airflow 2 masks only the extras with a sensitive name, so a short "POST" is never a secret there
    assert warned is (warns and AIRFLOW_V_3_0_PLUS)
    assert redacted == "pw *** end"  # the password is still masked
