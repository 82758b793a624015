"""Test session setup: one private AIRFLOW_HOME and one SQLite metadata DB per session.

Hook tests never touch the DB; tests that run DAGs request the ``airflow_db`` fixture
(or use ``run_dag``), which migrates the DB once per session.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HOME = Path(tempfile.mkdtemp(prefix="cloudmax-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite metadata DB once."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


def cloudmax_conn_json(emu: Any, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_*`` JSON for the emulator, with fast retries."""
    login = extra.pop("login", "demo")
    password = extra.pop("password", "demo-password")
    extras = {"retries": 3, "retry_min_wait": 0.05, "retry_max_wait": 0.2, "timeout": 10, **extra}
    return json.dumps(
        {"conn_type": "cloudmax", "host": emu.base_url, "login": login, "password": password, "extra": extras}
    )


@pytest.fixture
def cloudmax_conn(cloudmax_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point ``cloudmax_default`` at the emulator; call it again with extras to change the connection."""

    def configure(conn_id: str = "cloudmax_default", **extra: Any) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", cloudmax_conn_json(cloudmax_emulator, **extra))
        return conn_id

    configure()
    return configure
