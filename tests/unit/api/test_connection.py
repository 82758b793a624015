"""Reading a ``cloudmax`` connection's extras: ``attempts`` (formerly ``retries``) and ``verify``."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from airflow.models.connection import Connection

from cloudmax_provider.api.connection import CloudmaxSettings
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.utils.compat import provider_deprecation_warning


def settings(**extra: Any) -> CloudmaxSettings:
    conn = Connection(
        conn_id="cmx",
        conn_type="cloudmax",
        host="https://api.itpison.com",
        login="demo",
        password="pw-12345",
        extra=json.dumps(extra),
    )
    return CloudmaxSettings.from_connection(conn)


# ---- attempts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "expected"), [({}, 4), ({"attempts": 7}, 7), ({"attempts": "2"}, 2)])
def test_attempts_is_read_without_a_warning(extra: dict[str, Any], expected: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert settings(**extra).retry.max_attempts == expected


def test_prefixed_attempts_from_airflow_2_forms_is_read() -> None:
    assert settings(extra__cloudmax__attempts=3).retry.max_attempts == 3


def test_retries_is_still_read_with_a_deprecation_warning_naming_the_fix() -> None:
    with pytest.warns(DeprecationWarning, match="rename the extra 'retries' to 'attempts'") as caught:
        got = settings(retries=5)
    assert got.retry.max_attempts == 5
    assert [w.category for w in caught] == [provider_deprecation_warning()]
    assert "cmx" in str(caught[0].message)


def test_retries_keeps_its_checks() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(CloudmaxConfigError, match="retries=0 must be a number >= 1"):
        settings(retries=0)


def test_attempts_and_retries_together_are_refused_naming_both() -> None:
    with pytest.raises(CloudmaxConfigError) as info:
        settings(attempts=3, retries=5)
    message = str(info.value)
    assert "'attempts'=3" in message and "'retries'=5" in message and "remove 'retries'" in message


def test_attempts_below_one_is_refused() -> None:
    with pytest.raises(CloudmaxConfigError, match="connection extra attempts=0 must be a number >= 1"):
        settings(attempts=0)


def test_the_warning_class_is_airflows() -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    assert provider_deprecation_warning() is AirflowProviderDeprecationWarning


def test_the_form_field_is_attempts() -> None:
    from cloudmax_provider import CONN_FIELDS, get_provider_info

    (conn_type,) = get_provider_info()["connection-types"]
    assert "attempts" in CONN_FIELDS and "retries" not in CONN_FIELDS
    assert conn_type["conn-fields"] is CONN_FIELDS
    assert CONN_FIELDS["attempts"]["schema"] == {"type": ["integer", "null"], "default": 4}


# ---- verify --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        ("yes", True),
        ("no", False),
        ("on", True),
        ("off", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        (" TRUE ", True),
    ],
)
def test_verify_as_a_bool(value: Any, expected: bool) -> None:
    assert settings(verify=value).verify is expected


def test_verify_as_an_existing_ca_file_or_directory(tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert settings(verify=str(bundle)).verify == str(bundle)
    assert settings(verify=str(tmp_path)).verify == str(tmp_path)  # a c_rehash'd directory


@pytest.mark.parametrize("value", ["ture", "/no/such.pem", "verify", 2, 0.5, ["/etc/ssl"], {"ca": "x"}])
def test_verify_anything_else_is_refused_naming_the_field_and_the_fix(value: Any) -> None:
    with pytest.raises(CloudmaxConfigError) as info:
        settings(verify=value)
    message = str(info.value)
    assert f"verify={value!r}" in message and "'cmx'" in message
    assert "set it to true (verify TLS), false (don't) or the path of a CA bundle" in message


def test_a_bad_verify_fails_before_anything_is_sent(cloudmax_emulator, cloudmax_conn) -> None:
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    cloudmax_conn(verify="/no/such.pem")
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxConfigError, match=r"verify='/no/such.pem' is neither true/false"):
        hook.get_rows(hook.build_request(2100199, [1234], "2026-11-01 00:00:00", "2026-11-02 00:00:00"))
    assert cloudmax_emulator.requests == []
