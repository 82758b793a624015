"""Test session setup: one private AIRFLOW_HOME and one SQLite metadata DB per session.

Hook tests never touch the DB; tests that run DAGs request the ``airflow_db`` fixture
(or use ``run_dag``), which migrates the DB once per session.
"""

from __future__ import annotations

import json
import os
import re
import sys
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


def _refuse_opening_the_live_db(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: this process never opens the session's SQLite files itself (SQLite opens them in C, which
    raises no ``open`` event). Closing such a descriptor drops every POSIX lock the process holds on the file,
    SQLite's included; the next ``airflow`` subprocess then deletes the WAL under this process's connections
    and every later DB test fails on "database disk image is malformed" (the corruption issue 20 asked about;
    the secrets test did it). Read them from another process (tests/reliability/test_secrets.py)."""
    if event != "open" or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if os.path.dirname(path) == str(_HOME) and os.path.basename(path).startswith("airflow.db"):
        raise PermissionError(f"tests must not open the live SQLite file {path} in the pytest process (see conftest)")


sys.addaudithook(_refuse_opening_the_live_db)

import pytest  # noqa: E402

# The emulator fixtures (cloudmax_emulator, cloudmax_emulator_server) are opt-in: no pytest11 entry point.
pytest_plugins = ["cloudmax_provider.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite metadata DB once."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def task_output(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Read (and clear) what ran in this process printed or logged since the last read.

    Airflow 3 prints task logs to the terminal (structlog), Airflow 2 sends them through ``logging``:
    the text is both, so an assertion on a task's message holds on every supported version. Airflow 3.0
    prints a failed task's exception through rich, colored and wrapped at 100 columns: the text also holds
    that output with the colors and the line breaks taken out, so a long message reads whole.
    """

    def read() -> str:
        out = capfd.readouterr()
        text = out.out + out.err + caplog.text
        caplog.clear()
        return text + "\n" + ANSI_ESCAPE.sub("", text).replace("\n", "")

    return read


def cloudmax_conn_json(emu: Any, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_*`` JSON for the emulator, with fast retries."""
    login = extra.pop("login", "demo")
    password = extra.pop("password", "demo-password")
    extras = {"attempts": 3, "retry_min_wait": 0.05, "retry_max_wait": 0.2, "timeout": 10, **extra}
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


@pytest.fixture(scope="session")
def samba_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real smbd on a loopback port > 1024 sharing a temp dir as ``reports``; skips with the reason if unavailable."""
    from cloudmax_provider.testing.samba import SambaServer, samba_unavailable_reason

    reason = samba_unavailable_reason()
    if reason:
        pytest.skip(f"Samba not available: {reason}")
    server = SambaServer(tmp_path_factory.mktemp("smbshare")).start()
    yield server
    server.stop()


def smb_conn_json(server: Any) -> str:
    return json.dumps(
        {
            "conn_type": "samba",
            "host": server.host,
            "port": server.port,
            "login": server.username,
            "password": server.password,
        }
    )


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Any:
    """moto's S3 server: a real HTTP endpoint on loopback."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket on moto's server and an ``aws_moto`` Airflow connection pointing at it."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_s3_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    name = f"lake-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name, client


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The Airflow this run used, and how many tests skipped for each reason (the version matrix's figures)."""
    from collections import Counter

    from airflow import __version__

    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    passed = len(terminalreporter.stats.get("passed", []))
    terminalreporter.write_sep("=", f"Airflow {__version__}: {passed} passed, {sum(reasons.values())} skipped")
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count:4d} skipped: {reason}")
