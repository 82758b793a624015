"""The connection as the web form stores it: Port and the Base URL agree, and no masker warning."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import Connection

from cloudmax_provider import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from cloudmax_provider.api.connection import CloudmaxSettings
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.utils.compat import AIRFLOW_V_3_1_PLUS
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
        ("api.itpison.com", 443, "https://api.itpison.com:443"),  # bare host on port 443: https
        ("api.itpison.com:443", None, "https://api.itpison.com:443"),
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


def test_the_form_marks_base_url_and_port_required_without_a_default_looking_port():
    assert "port" not in UI_FIELD_BEHAVIOUR["hidden-fields"]
    labels, placeholders = UI_FIELD_BEHAVIOUR["relabeling"], UI_FIELD_BEHAVIOUR["placeholders"]
    assert labels["host"] == "Base URL *" and labels["port"] == "Port *"  # Airflow's own required mark
    assert placeholders["host"].startswith("https://api.itpison.com") and "http://host:port" in placeholders["host"]
    port = placeholders["port"]
    assert not port.strip().isdigit() and not port.startswith("443"), "Port's placeholder reads like a default"
    assert "Test" in port  # says why it is needed


#: What Airflow 3.3's form stores in the extra when no Extra Field is touched: each field's value.
FORM_DEFAULTS = {name: field["schema"].get("default") for name, field in CONN_FIELDS.items()}


def test_every_form_field_has_a_typed_default_and_no_short_string():
    python_types = {"string": str, "number": (int, float), "integer": int}
    for name, field in CONN_FIELDS.items():
        types = field["schema"]["type"]
        default = FORM_DEFAULTS[name]
        assert default is not None, f"{name} has no default: the form would store null"
        kind = next(t for t in ([types] if isinstance(types, str) else types) if t != "null")
        assert isinstance(default, python_types[kind]) and not isinstance(default, bool), (name, default)
        assert not (isinstance(default, str) and 0 < len(default) < 5), f"{name} default {default!r} would warn"
    assert {"method", "request_format"}.isdisjoint(CONN_FIELDS)  # short values: JSON extras only


@pytest.mark.parametrize(
    "extra",
    [
        FORM_DEFAULTS,  # this form
        {  # older forms: numbers as strings, nulls for untouched fields
            "timezone": "Asia/Taipei",
            "method": None,
            "request_format": None,
            "endpoint": "/WebAPI/Report.aspx",
            "timeout": "60",
            "retries": "4",
            "allowed_link_hosts": None,
        },
        {"extra__cloudmax__timeout": "60", "extra__cloudmax__retries": 4, "extra__cloudmax__method": ""},  # < 3.0
        {},
    ],
    ids=["this-form", "older-form", "prefixed", "empty"],
)
def test_what_any_form_stored_reads_as_the_defaults(extra):
    conn = Connection(
        conn_id="cmx",
        conn_type="cloudmax",
        host="https://api.itpison.com",
        port=443,
        login="demo",
        password="pw-12345",
        extra=json.dumps(extra),
    )
    got = CloudmaxSettings.from_connection(conn)
    assert (got.timezone, got.endpoint, got.timeout, got.retry.max_attempts) == (
        "Asia/Taipei",
        "/WebAPI/Report.aspx",
        60,
        4,
    )
    assert (got.method, got.request_format, got.allowed_link_hosts) == ("POST", "fields", ())


def test_typed_form_values_are_read():
    extra = {**FORM_DEFAULTS, "timeout": 2.5, "attempts": 7, "allowed_link_hosts": "files.itpison.com, cdn.example"}
    conn = Connection(
        conn_id="cmx",
        conn_type="cloudmax",
        host="https://api.itpison.com",
        login="demo",
        password="pw-12345",
        extra=json.dumps(extra),
    )
    got = CloudmaxSettings.from_connection(conn)
    assert (got.timeout, got.retry.max_attempts) == (2.5, 7)
    assert got.allowed_link_hosts == ("files.itpison.com", "cdn.example")


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
        (FORM_DEFAULTS, False),  # what the form stores when no Extra Field is touched
        ({**FORM_DEFAULTS, "timezone": "Europe/Berlin", "allowed_link_hosts": "files.itpison.com"}, False),
        ({"method": "POST"}, True),  # Airflow's rule for any short extra string: the reason for no short defaults
    ],
    ids=["form-defaults", "form-changed", "short-extra"],
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
    # Airflow 2.11 and 3.0 mask only the extras with a sensitive name, so a short "POST" is no secret there
    assert warned is (warns and AIRFLOW_V_3_1_PLUS)
    assert redacted == "pw *** end"  # the password is still masked
