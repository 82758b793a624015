"""The probe (issue 26) against the emulator on loopback: every server difference the emulator models is named
in the table with the right advice, the default emulator gives no false alarm, ErrorCode 100 stops it at
once, and a capture holds no secret in any form. Assertions are on events (rows, requests), never on time."""

from __future__ import annotations

import base64
import codecs
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape

import pytest

from cloudmax_provider.api.capture import load_capture
from cloudmax_provider.hooks.cloudmax import password_forms
from cloudmax_provider.probe.checks import ProbeOptions
from cloudmax_provider.probe.cli import ProbeResult, main, render_table, run_probe
from cloudmax_provider.probe.verdicts import Row
from tests.airflow_compat import requires_airflow

LAUNCH_IDS = (1234, 1235)


def probe(tmp_path: Path | None = None, reports: tuple[int, ...] = (2100199,), **kw: Any) -> ProbeResult:
    options = ProbeOptions(
        launch_ids=LAUNCH_IDS,
        report_ids=reports,
        link_wait=kw.pop("link_wait", 30.0),
        link_poll=0.1,
        slow_after=kw.pop("slow_after", 10.0),
    )
    record = str(tmp_path) if tmp_path is not None else None
    kw.setdefault("max_requests", 60)
    return run_probe("cloudmax_default", options, interval=0, record=record, **kw)


def row(result: ProbeResult, check: str) -> Row:
    found = [r for r in result.rows if r.check.startswith(check)]
    assert found, f"no row {check!r} in:\n{render_table(result)}"
    return found[0]


def test_the_default_emulator_gives_no_false_alarm(cloudmax_emulator, cloudmax_conn):
    result = probe(reports=(2100199, 21003, 30023))
    table = render_table(result)
    assert result.exit_status == 0, table
    assert {r.status for r in result.rows} <= {"ok", "setting"}, table
    assert row(result, "HTTP method").status == "ok"
    assert row(result, "XmlRequest").status == "ok"
    assert row(result, "time format").seen == "ISO (yyyy-MM-dd HH:mm:ss)"
    assert "timezone='Asia/Taipei'" in row(result, "timezone").fix
    assert "smb_conn_id=" in row(result, "UNC links").fix  # mode 0 is UNC: a setting, not a failure
    assert result.requests <= 40
    assert "Everything is handled." in table


# (id, emulator settings, row, status, words in seen/verdict, words in fix)
VARIANTS: list[tuple[str, dict[str, Any], str, str, str, str]] = [
    ("GET-only", {"methods": "GET"}, "HTTP method", "fail", "POST: HTTP 405", "connection extra method=GET"),
    ("POST-only", {"methods": "POST"}, "HTTP method", "ok", "GET: HTTP 405", "keep method=POST"),
    ("UTF-16", {"csv_encoding": "utf-16"}, "CSV encoding", "handled", "utf-16-le with BOM", "output_encoding="),
    ("UTF-8 BOM", {"csv_encoding": "utf-8-sig"}, "CSV encoding", "handled", "utf-8 with BOM", "output_encoding="),
    ("zh-TW times", {"time_format": "zh-TW"}, "time format", "handled", "zh-TW .NET", ""),
    ("en-US times", {"time_format": "en-US"}, "time format", "handled", "en-US .NET", ""),
    ("root", {"xml_root": "Response"}, "XML answer shape", "handled", "<Response>", ""),
    ("tag case", {"xml_tag_case": "mixed"}, "XML answer shape", "handled", "<ErrorCode>", ""),
    ("utf-16 decl", {"xml_utf16_declaration": True}, "XML answer shape", "handled", "declares utf-16", ""),
    ("no XmlRequest", {"refuse_xml_request": True}, "XmlRequest", "handled", "refused", "request_format='fields'"),
    ("late links", {"link_ready_after": 0.3}, "link readiness", "handled", "404 until then", "deferrable=True"),
    ("split links", {"split_links": True}, "several links", "handled", "2 DOWNLOADLINKs", "one_object_per_link=True"),
    ("UNC", {"unc_server": "FILESRV9"}, "UNC links", "setting", "\\\\filesrv9\\", "smb_conn_id="),
    ("no licence", {"licensed_reports": {30023}}, "report 2100199", "fail", "ErrorCode 1000", "license ReportPartID"),
    (
        "link host",
        {"link_base_url": "http://localhost:{port}"},
        "link host",
        "fail",
        "localhost",
        "allowed_link_hosts=",
    ),
]


@pytest.mark.parametrize(
    ("settings", "check", "status", "seen", "fix"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS]
)
def test_each_server_difference_is_named_with_its_advice(
    cloudmax_emulator, cloudmax_conn, settings, check, status, seen, fix
):
    for key, value in settings.items():
        value = value.format(port=cloudmax_emulator.port) if isinstance(value, str) else value
        setattr(cloudmax_emulator.settings, key, value)
    result = probe(reports=(2100199, 30023))
    found = row(result, check)
    assert found.status == status, render_table(result)
    assert seen in found.seen + found.verdict, render_table(result)
    assert fix in found.fix, render_table(result)
    assert result.exit_status == (1 if status == "fail" else 0), render_table(result)
    others = [r for r in result.rows if r.failed and r is not found]
    assert others == [], render_table(result)  # only the difference is named, nothing else


def test_a_slow_server_is_named_against_the_threshold(cloudmax_emulator, cloudmax_conn):
    """The emulator's delay is far above the threshold given; nothing asserts a wall-clock bound."""
    cloudmax_emulator.settings.delay = 0.3
    cloudmax_emulator.settings.fault_paths = "api"
    result = probe(slow_after=0.01)
    found = row(result, "answer time")
    assert found.status == "setting" and "slow" in found.verdict and "timeout=" in found.fix, render_table(result)


def test_a_slow_server_near_the_timeout_is_not_handled(cloudmax_emulator, cloudmax_conn):
    cloudmax_conn(timeout=0.5)
    cloudmax_emulator.settings.delay = 0.3
    cloudmax_emulator.settings.fault_paths = "api"
    result = probe(slow_after=0.01)
    found = row(result, "answer time")
    assert found.status == "fail" and "connection extra timeout=" in found.fix
    assert result.exit_status == 1


def test_a_refused_login_stops_at_once(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.accounts = {"demo": "another password"}
    result = probe(reports=(2100199, 21003, 30023))
    assert len(cloudmax_emulator.api_requests) == 1  # never retried: ErrorCode 100 can lock the account
    found = row(result, "connection")
    assert found.status == "fail" and "login" in found.fix and "password" in found.fix
    assert "refused login" in result.stopped
    assert result.exit_status == 1


def test_error_code_100_mid_run_is_never_retried(cloudmax_emulator, cloudmax_conn):
    def after_the_connection_tests(record, status, fault):
        if len(cloudmax_emulator.api_requests) == 2:
            cloudmax_emulator.settings.fail_with = "exception"
            cloudmax_emulator.settings.fail_first = 10
            cloudmax_emulator.restart_fault_counts()

    cloudmax_emulator.on_answer = after_the_connection_tests
    try:
        result = probe()
    finally:
        cloudmax_emulator.on_answer = None
    assert "ErrorCode 100" in result.stopped
    sent = [r.field("ReportPartID") for r in cloudmax_emulator.api_requests]
    assert sent == ["20001", "20001", "2100199"]  # the connection tests, then one report request: stopped


def test_the_request_budget_bounds_the_probe(cloudmax_emulator, cloudmax_conn):
    result = probe(reports=(2100199, 21003, 30023), max_requests=5)
    assert len(cloudmax_emulator.requests) == 5 == result.requests
    assert row(result, "requests").status == "fail" and "--max-requests" in row(result, "requests").fix


def test_the_command_line_prints_the_table_and_json(cloudmax_emulator, cloudmax_conn, capsys):
    cloudmax_emulator.settings.methods = "GET"
    args = ["--launch-id", "1234", "--report-part-id", "open_details_quick", "--interval", "0", "--link-poll", "0"]
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "connection extra method=GET" in text and "Not handled: HTTP method" in text
    assert main([*args, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_status"] == 1
    assert {"check", "seen", "verdict", "status", "fix"} == set(data["rows"][0])


def test_the_command_line_names_a_bad_argument(capsys):
    with pytest.raises(SystemExit):
        main(["--launch-id", "1234", "--report-part-id", "click_detail"])
    assert "did you mean 'click_details'" in capsys.readouterr().err


# ---- the capture --------------------------------------------------------------------------------

PASSWORD = 'p&ss w<rd>+%/"é'
LOGIN = "ops.lead@acme-corp.com.tw"


def _forms(secret: str) -> set[bytes]:
    """A secret in every form a capture could hold it: raw, XML-escaped, URL-encoded, JSON-escaped, base64;
    each in UTF-8, UTF-16-LE and UTF-16-BE."""
    texts = set(password_forms(secret)) | {escape(secret), quote(secret), quote_plus(secret)}
    texts |= {json.dumps(t)[1:-1] for t in texts}
    out = {t.encode(enc) for t in texts for enc in ("utf-8", "utf-16-le", "utf-16-be")}
    out |= {base64.b64encode(secret.encode(enc)) for enc in ("utf-8", "utf-16-le")}
    return out


def _personal(emu: Any) -> set[str]:
    """E-mails, customer ids and IPs the emulator served for the probe's window."""
    values: set[str] = set()
    for request in emu.api_requests:
        rid, start, end = (request.field(k) for k in ("ReportPartID", "StartTime", "EndTime"))
        if not start or rid == "20001":
            continue
        header, rows = emu.expected_rows(int(rid), list(LAUNCH_IDS), start, end)
        for name, cells in zip(header, zip(*rows, strict=True), strict=False):
            if name in ("EmailAddress", "CustomerID", "IP"):
                values |= {c for c in cells if len(c) > 4}
    return values


@pytest.mark.parametrize(("method", "fmt"), [("POST", "fields"), ("GET", "xml")])
def test_a_capture_holds_no_secret_in_any_form(cloudmax_emulator, cloudmax_conn, tmp_path, method, fmt):
    cloudmax_emulator.settings.accounts = {LOGIN: PASSWORD}
    cloudmax_emulator.settings.csv_encoding = "utf-16"
    cloudmax_conn(login=LOGIN, password=PASSWORD, method=method, request_format=fmt)
    result = probe(tmp_path, reports=(2100199, 21003))
    assert result.exit_status == 0, render_table(result)
    personal = _personal(cloudmax_emulator)
    assert any("@" in p for p in personal) and len(personal) > 10
    needles = {form for secret in (PASSWORD, LOGIN, *personal) for form in _forms(secret)}
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) > 10
    leaks = [f"{p.name}: {n!r}" for p in files for n in needles if n in p.read_bytes()]
    assert leaks == []
    text = render_table(result)
    assert PASSWORD not in text and all(f.decode("utf-8", "ignore") not in text for f in _forms(PASSWORD))


def test_a_capture_keeps_the_csv_bytes_and_pseudonyms_are_consistent(cloudmax_emulator, cloudmax_conn, tmp_path):
    s = cloudmax_emulator.settings
    s.csv_encoding, s.time_format, s.rows_per_launch = "utf-16", "zh-TW", 15
    probe(tmp_path)
    capture = load_capture(tmp_path)
    (mode2,) = [
        e
        for e in capture.exchanges
        if e.kind == "api" and e.value("ResponseMode") == "2" and e.request_format == "fields"
    ]
    body = capture.body(mode2)
    assert body.startswith(codecs.BOM_UTF16_LE)
    text = body[2:].decode("utf-16-le")
    assert text.count("\r\n") >= 21 and ("上午" in text or "下午" in text)
    assert mode2.rows_kept == 20  # 30 rows served, the first 20 kept
    assert mode2.fields["ManagerPassword"] == "<password>" and mode2.fields["ManagerLoginName"] == "<login>"
    header = text.split("\r\n", 1)[0]
    assert header == ",".join(cloudmax_emulator.expected_rows(2100199, [1], "2026-01-01", "2026-01-02")[0])
    (mode3,) = [e for e in capture.exchanges if e.kind == "api" and e.value("ResponseMode") == "3"]
    assert capture.body(mode3) == body  # the same rows, pseudonymized the same way
    assert "example.com" in text and "@" in text


def test_nothing_outside_the_probe_imports_it():
    """The probe sits above the hooks (ARCHITECTURE.md); no operator, landing or lower module imports it."""
    from tests.test_layers import GRAPH

    importers = {name for name, targets in GRAPH.items() for t in targets if t.startswith("cloudmax_provider.probe")}
    assert {name for name in importers if not name.startswith("cloudmax_provider.probe")} == set()


@requires_airflow(3, 3, reason="a provider's CLI commands (the 'cli' list of get_provider_info)")
def test_airflow_cloudmax_probe_is_the_same_command(cloudmax_emulator, cloudmax_conn):
    """``airflow cloudmax probe``, in a fresh ``airflow`` process: the same arguments, table and exit status."""
    cloudmax_emulator.settings.methods = "GET"
    args = ["--launch-id", "1234", "--report-part-id", "21003", "--interval", "0", "--link-poll", "0", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "cloudmax", "probe", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr[-3000:]
    data = json.loads(done.stdout[done.stdout.index("{") :])
    assert data["exit_status"] == 1
    assert any(row["fix"] == "connection extra method=GET" for row in data["rows"]), data["rows"]
    refused = subprocess.run(
        [sys.executable, "-m", "airflow", "cloudmax", "probe", "--launch-id", "7", "--launch-id", "7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0 and "--launch-id: give each positive LaunchID once" in refused.stderr
