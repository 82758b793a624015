"""Reading a ``cloudmax`` connection's extras: ``attempts`` (formerly ``retries``) and ``verify``."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from airflow.models.connection import Connection

from cloudmax_provider.compat import provider_deprecation_warning
from cloudmax_provider.connection import CloudmaxSettings
from cloudmax_provider.errors import CloudmaxConfigError


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
