"""Secrets: the account's password never shows up in anything the provider or Airflow keeps.

The password ``p&ss w<rd>+%/"é`` takes a different shape in each encoding; every artefact is scanned
for all of them: raw, XML-escaped (XmlRequest / XmlReqFilePath), URL-encoded (``quote`` and
``quote_plus``) of each, and JSON-escaped (as databases and XComs store text).
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import pytest

from cloudmax_provider.exceptions import CloudmaxError
from cloudmax_provider.hooks.cloudmax import CloudmaxHook, password_forms
from tests.reliability.conftest import FIGURES, WINDOW

PASSWORD = 'p&ss w<rd>+%/"é'
REQUEST_FORMS = [("POST", "fields"), ("GET", "fields"), ("POST", "xml"), ("GET", "xml"), ("POST", "xml_file")]
# error path -> emulator settings (every request of the test gets it)
ERROR_PATHS: dict[str, dict[str, Any]] = {
    "100": {"fail_first": 10**9, "fail_with": "exception"},
    "100-login": {"accounts": {"demo": "another password"}},
    "102": {"fail_first": 10**9, "fail_with": "error:102"},
    "103": {"fail_first": 10**9, "fail_with": "error:103"},
    "110": {"fail_first": 10**9, "fail_with": "error:110"},
    "1000": {"licensed_reports": set()},
    "http-503": {"fail_first": 10**9, "fail_with": 503},
    "http-404": {"fail_first": 10**9, "fail_with": 404},
    "reset": {"fail_first": 10**9, "fail_with": "reset"},
    "timeout": {"delay": 1.0},
}


def _needles() -> set[str]:
    forms = password_forms(PASSWORD)
    forms |= {json.dumps(f)[1:-1] for f in forms} | {json.dumps(f, ensure_ascii=False)[1:-1] for f in forms}
    return forms


NEEDLES = _needles()


def hits(name: str, artefact: str | bytes) -> list[str]:
    """The password forms found in ``artefact`` (named for the failure message)."""
    data = artefact if isinstance(artefact, bytes) else artefact.encode("utf-8", "surrogatepass")
    return [f"{name}: {form!r}" for form in NEEDLES if form.encode() in data]


def exception_texts(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)])


@pytest.fixture
def secret_conn(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.accounts = {"demo": PASSWORD}

    def configure(method: str, request_format: str, **extra: Any) -> None:
        cloudmax_conn(password=PASSWORD, method=method, request_format=request_format, attempts=2, **extra)

    return configure


@pytest.mark.parametrize(("method", "request_format"), REQUEST_FORMS, ids=[f"{m}-{f}" for m, f in REQUEST_FORMS])
def test_no_password_in_logs_exceptions_or_lineage(cloudmax_emulator, secret_conn, task_output, method, request_format):
    """Every request form, success and each error path, through the hook: the log output (with GET, the
    logged URL), exception texts and tracebacks, rows, and the operator's OpenLineage facets."""
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    found: list[str] = []
    scanned = 0
    for path in ["success", *ERROR_PATHS]:
        cloudmax_emulator.reset()
        cloudmax_emulator.settings.accounts = {"demo": PASSWORD}
        for key, value in ERROR_PATHS.get(path, {}).items():
            setattr(cloudmax_emulator.settings, key, value)
        secret_conn(method, request_format, timeout=0.3 if path == "timeout" else 10)
        task_output()
        hook = CloudmaxHook()
        for mode in (2, 1):
            try:
                request = hook.build_request(21002, [1225], *WINDOW, response_mode=mode)
                result = hook.get_rows(request) if mode == 2 else hook.request_links(request)
                found += hits(f"{path} mode {mode} result", repr(result))
            except CloudmaxError as exc:
                assert path != "success", exc
                found += hits(f"{path} mode {mode} exception", exception_texts(exc))
            scanned += 2
        output = task_output()
        assert "Calling Report.aspx" in output  # the log was captured
        if method == "GET":
            assert "ManagerPassword=***" in output or "XmlRequest=***" in output  # the URL, redacted
        found += hits(f"{path} log", output)
        scanned += 1
    task = CloudmaxReportOperator(task_id="t", report_part_id=21002, launch_ids=1, destination="s3://lake/r.csv")
    found += hits("openlineage facets", repr(task.get_openlineage_facets_on_complete(None)))
    assert found == []
    FIGURES["secrets: artefacts scanned (hook: logs, exceptions, results, lineage)"] += scanned + 1
    FIGURES["secrets: password hits"] += len(found)


DAG_SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(task_id="to_xcom", report_part_id=21002, launch_ids="{{{{ params.ids }}}}",
                           params={{"ids": [1225, 1116]}}, columns=["EmailAddress", "SubmitTime"])
    CloudmaxReportOperator(task_id="to_file", report_part_id=31033, launch_ids=7,
                           destination="file://{folder}/{{{{ ds }}}}/removals.csv")
    CloudmaxReportOperator(task_id="links_deferred", report_part_id=21003, launch_ids=[4, 5], response_mode=1,
                           destination="file://{folder}/{{{{ ds }}}}/bounces.csv", deferrable=True, poll_interval=1)
"""


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
def test_no_password_in_any_artefact_of_real_dag_runs(cloudmax_emulator, secret_conn, tmp_path, task_output):
    """Real runs (dag.test) in every request form, succeeding and failing (ErrorCode 100, HTTP 503,
    a timeout); then everything Airflow kept is scanned: task logs (the process output and log files),
    XComs, rendered template fields, task instances (trigger events land in next_kwargs), triggers,
    and the whole metadata database file."""
    from tests.airflow_runner import run_dag

    runs: list[Any] = []
    scenarios = [(m, f, "success") for m, f in REQUEST_FORMS]
    scenarios += [("GET", "fields", "100"), ("POST", "xml", "http-503"), ("GET", "xml", "timeout")]
    for i, (method, request_format, path) in enumerate(scenarios):
        cloudmax_emulator.reset()
        cloudmax_emulator.settings.accounts = {"demo": PASSWORD}
        for key, value in ERROR_PATHS.get(path, {}).items():
            setattr(cloudmax_emulator.settings, key, value)
        secret_conn(method, request_format, timeout=0.3 if path == "timeout" else 10)
        dag_id = f"rel_secret_{i}"
        dr = run_dag(DAG_SOURCE.format(dag_id=dag_id, folder=tmp_path / dag_id), dag_id)
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
        assert set(states.values()) == ({"success"} if path == "success" else {"failed"}), (path, states)
        runs.append(dr)
    artefacts: dict[str, str | bytes] = {"task output": task_output()}
    artefacts.update(_database_artefacts(runs))
    home = Path(__import__("os").environ["AIRFLOW_HOME"])
    for path in [*home.glob("logs/**/*"), *tmp_path.rglob("*")]:
        if path.is_file():
            artefacts[str(path)] = path.read_bytes()
    artefacts.update(_live_database_files(home))
    found = [hit for name, artefact in artefacts.items() for hit in hits(name, artefact)]
    assert found == []
    assert any("rel_secret" in str(a) for a in artefacts.values())  # the scan saw the runs
    FIGURES["secrets: artefacts scanned (DAG runs: logs, XComs, rendered fields, TIs, triggers, DB)"] += len(artefacts)
    FIGURES["secrets: password hits"] += len(found)


def _live_database_files(home: Path) -> dict[str, bytes]:
    """The bytes of the SQLite files (``airflow.db``, ``-wal``, ``-shm``), read by another process.

    Never open them in this process while SQLite has them open: closing any descriptor of a file drops
    every POSIX lock this process holds on it, SQLite's included. The next process to open the database
    (an ``airflow`` CLI test, say) then believes it is the only one, and on closing checkpoints and deletes
    the WAL under this process's connections: "database disk image is malformed" / "disk I/O error" in
    every later DB test. (SQLite's "How To Corrupt An SQLite Database File", 2.2.1; this test did that.)
    """
    import subprocess
    import sys

    read = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"
    files = sorted(str(p) for p in home.glob("airflow.db*"))
    out: dict[str, bytes] = {}
    for path in files:
        out[path] = subprocess.run([sys.executable, "-c", read, path], capture_output=True, check=True).stdout
    assert str(home / "airflow.db") in out, files
    return out


def _database_artefacts(runs: list[Any]) -> dict[str, str]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    from tests.airflow_compat import xcom_model

    XComModel = xcom_model()

    out: dict[str, str] = {}
    dag_ids = [dr.dag_id for dr in runs]
    with create_session() as session:
        for x in session.query(XComModel).filter(XComModel.dag_id.in_(dag_ids)):
            out[f"xcom {x.dag_id}.{x.task_id}.{x.key}"] = repr(x.value)
        for r in session.query(RenderedTaskInstanceFields).filter(RenderedTaskInstanceFields.dag_id.in_(dag_ids)):
            out[f"rendered fields {r.dag_id}.{r.task_id}"] = json.dumps(r.rendered_fields, default=str)
        for ti in session.query(TaskInstance).filter(TaskInstance.dag_id.in_(dag_ids)):
            out[f"task instance {ti.dag_id}.{ti.task_id}"] = repr(
                (ti.next_kwargs, ti.next_method, ti.rendered_map_index, ti.custom_operator_name)
            )
        for t in session.query(Trigger):
            out[f"trigger {t.id}"] = repr((t.classpath, t.kwargs))
    return out


def test_the_scan_finds_every_form_of_the_password():
    """The scanner itself: each form planted in a text is found (so zero hits above means zero)."""
    from urllib.parse import quote, quote_plus
    from xml.sax.saxutils import escape

    planted = [PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), escape(PASSWORD), json.dumps(PASSWORD)]
    planted += [quote_plus(escape(PASSWORD)), json.dumps(PASSWORD, ensure_ascii=True)]
    for form in planted:
        assert hits("planted", f"log line ... {form} ..."), form
    assert hits("clean", "ManagerPassword=*** XmlRequest=***") == []


def test_every_form_of_the_password_is_registered_with_the_masker(cloudmax_emulator, secret_conn):
    """What Airflow's masker hides once the hook has read the connection: each encoded form too."""
    from airflow.providers.common.compat.sdk import redact

    secret_conn("POST", "xml")
    CloudmaxHook().settings  # noqa: B018 - reading the connection registers the password's forms
    for form in password_forms(PASSWORD):
        assert form not in str(redact(f"a line with {form} in it")), form
    FIGURES["secrets: password forms registered with the masker"] = len(password_forms(PASSWORD))
