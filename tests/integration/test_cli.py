"""Airflow's own CLI sees the provider: `airflow providers list`, `airflow connections test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import cloudmax_conn_json

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]


def airflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    airflow_bin = os.path.join(os.path.dirname(sys.executable), "airflow")
    return subprocess.run(
        [airflow_bin, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", **env},
    )


def test_providers_list_shows_cloudmax():
    out = airflow("providers", "list", "-o", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    names = {p["package_name"] for p in json.loads(out.stdout[out.stdout.index("[") :])}
    assert "airflow-provider-cloudmax" in names


def test_connections_test_against_the_emulator(cloudmax_emulator):
    good = airflow(
        "connections", "test", "cloudmax_default", AIRFLOW_CONN_CLOUDMAX_DEFAULT=cloudmax_conn_json(cloudmax_emulator)
    )
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    assert "Connection success!" in good.stdout
    bad = airflow(
        "connections",
        "test",
        "cloudmax_default",
        AIRFLOW_CONN_CLOUDMAX_DEFAULT=cloudmax_conn_json(cloudmax_emulator, password="Wr0ng-Secret"),
    )
    text = bad.stdout + bad.stderr
    assert "Connection failed" in text and "password" in text.lower()
    assert "Wr0ng-Secret" not in text
