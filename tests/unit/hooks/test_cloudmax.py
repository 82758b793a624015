"""CloudmaxHook over real HTTP against the emulator on loopback (no Airflow metadata DB)."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cloudmax_provider import CONN_FIELDS
from cloudmax_provider.api.catalog import ReportPart
from cloudmax_provider.api.request import ReportRequest, ResponseMode
from cloudmax_provider.api.response import parse_api_xml
from cloudmax_provider.exceptions import (
    CloudmaxAuthError,
    CloudmaxConfigError,
    CloudmaxIncorrectReportPartError,
    CloudmaxIncorrectRequestError,
    CloudmaxLinkError,
    CloudmaxNoLicenceError,
    CloudmaxResponseError,
    CloudmaxServerException,
    CloudmaxServerExceptionNotRetried,
    CloudmaxTimeFormatError,
    CloudmaxTransientError,
)
from cloudmax_provider.hooks.cloudmax import CloudmaxHook, TooManyRowsError

TZ = ZoneInfo("Asia/Taipei")
START, END = "2026-11-01 00:00:00", "2026-11-02 00:00:00"
SECRET = "p@ss<&>w0rd%中=?"


def req(hook: CloudmaxHook, rid=2100199, launch=(1234,), mode=2, **kw):
    return hook.build_request(rid, list(launch), START, END, response_mode=mode, **kw)


# ---- request forms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "fmt"), [("POST", "fields"), ("GET", "fields"), ("POST", "xml"), ("GET", "xml"), ("POST", "xml_file")]
)
def test_every_request_form_reaches_the_api(cloudmax_emulator, cloudmax_conn, method, fmt):
    cloudmax_conn(method=method, request_format=fmt)
    hook = CloudmaxHook()
    rows = hook.get_rows(req(hook, columns=["EmailAddress", ("SubmitTime", "時間")]))
    _header, cells = cloudmax_emulator.expected_rows(
        2100199, [1234], START, END, columns=["EmailAddress", "SubmitTime,時間"]
    )
    assert next(list(r) for r in rows) == ["EmailAddress", "時間"]
    assert [r["EmailAddress"] for r in rows] == [c[0] or None for c in cells]
    assert all(isinstance(r["時間"], datetime) for r in rows)  # a renamed time column is still typed
    (recorded,) = cloudmax_emulator.api_requests
    assert recorded.method == method
    assert recorded.field("CustomColName2") == "SubmitTime,時間"
    assert recorded.field("StartTime") == START and recorded.field("LaunchID") == "1234"
    if fmt == "fields":
        assert recorded.field("ManagerPassword") == "demo-password"
    elif fmt == "xml":
        assert "<ManagerPassword>demo-password</ManagerPassword>" in recorded.field("XmlRequest")
    else:
        assert b"<ManagerPassword>demo-password</ManagerPassword>" in recorded.files["XmlReqFilePath"]
    if method == "POST":
        assert "ManagerPassword" not in recorded.query and "XmlRequest" not in recorded.query


def test_password_with_xml_and_url_specials_survives_every_form(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.accounts = {"demo": SECRET}
    for method, fmt in (("GET", "fields"), ("POST", "xml"), ("POST", "xml_file"), ("GET", "xml")):
        cloudmax_conn(password=SECRET, method=method, request_format=fmt)
        assert CloudmaxHook().test_connection()[0], (method, fmt)


# ---- response modes, encodings, time forms ------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
@pytest.mark.parametrize("time_format", ["iso", "zh-TW", "en-US"])
def test_typed_rows_in_every_encoding_and_time_form(cloudmax_emulator, cloudmax_conn, encoding, time_format):
    cloudmax_emulator.settings.csv_encoding = encoding
    cloudmax_emulator.settings.time_format = time_format
    hook = CloudmaxHook()
    rows = hook.get_rows(req(hook, rid=21002, launch=(1225, 1116)))
    cloudmax_emulator.settings.time_format = "iso"
    header, cells = cloudmax_emulator.expected_rows(21002, [1225, 1116], START, END)
    assert list(rows[0]) == header
    assert len(rows) == len(cells) == 10
    for row, raw in zip(rows, cells, strict=True):
        got = dict(zip(header, raw, strict=True))
        assert row["ClickID"] == int(got["ClickID"])
        assert row["CustomerID"] == (got["CustomerID"] or None) and isinstance(row["CustomerID"], str | None)
        assert row["Latitude"] == (float(got["Latitude"]) if got["Latitude"] else None)
        assert row["UserAgent"] == (got["UserAgent"] or None)
        assert row["SubmitTime"] == datetime.strptime(got["SubmitTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)


def test_summary_report_types(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    rows = hook.get_rows(req(hook, rid=30023, launch=(1, 2, 3)))
    assert [r["LaunchID"] for r in rows] == [1, 2, 3]
    assert all(isinstance(r["OpenEmailRate"], float) and isinstance(r["ClickCount"], int) for r in rows)


def test_attachment_streams_in_chunks_with_safe_filename(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    with hook.open_report(req(hook, rid=31033, launch=(7,), mode=3)) as stream:
        body = b"".join(stream.chunks)
    assert stream.filename.endswith(".csv") and "/" not in stream.filename
    assert body.decode() == cloudmax_emulator.expected_csv(31033, [7], START, END)
    assert stream.encoding.name == "utf-8"


def test_language_only_for_removals(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    rows = hook.get_rows(req(hook, rid=31033, launch=(7,), language="zh-TW"))
    assert cloudmax_emulator.api_requests[-1].field("ReportCharacterSetID") == "17"
    assert rows and all(not (r["Status"] or "").startswith("Remove") for r in rows)
    with pytest.raises(CloudmaxConfigError, match="only supported by report 31033"):
        req(hook, rid=21002, language="en")


@pytest.mark.parametrize("mode", [0, 1])
def test_request_links_downloads_nothing(cloudmax_emulator, cloudmax_conn, mode, tmp_path):
    cloudmax_emulator.settings.split_links = True
    cloudmax_emulator.settings.unc_root = str(tmp_path)
    hook = CloudmaxHook()
    links = hook.request_links(req(hook, launch=(1, 2), mode=mode))
    assert len(links) == 2
    assert all(
        link.startswith("\\\\CMXFILE01\\reports\\" if mode == 0 else cloudmax_emulator.base_url) for link in links
    )
    assert len(cloudmax_emulator.requests) == 1  # the API call only
    if mode == 1:
        with hook.open_link(links[1]) as stream:
            body = b"".join(stream.chunks).decode()
        assert body == cloudmax_emulator.expected_csv(2100199, [2], START, END)
        assert "ManagerPassword" not in json.dumps(cloudmax_emulator.link_requests[-1].fields)
        assert "Cookie" not in cloudmax_emulator.link_requests[-1].headers


def test_xml_quirks_utf16_declaration_and_mixed_case(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.xml_utf16_declaration = True
    cloudmax_emulator.settings.xml_tag_case = "mixed"
    cloudmax_emulator.settings.xml_root = "Response"
    hook = CloudmaxHook()
    assert len(hook.request_links(req(hook, mode=1))) == 1
    answer = parse_api_xml(
        b'<?xml version="1.0" encoding="utf-16"?><r><errorcode>0</errorcode>'
        b"<DownloadLink>http://a/1.csv</DownloadLink><DOWNLOADLINK>http://a/2.csv</DOWNLOADLINK></r>"
    )
    assert answer.links == ("http://a/1.csv", "http://a/2.csv")


def test_xml_with_entities_is_not_expanded():
    body = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<r><ERRORCODE>100</ERRORCODE><ERRORMSG>&x;</ERRORMSG></r>"
    )
    with pytest.raises(CloudmaxResponseError, match="document type declaration") as info:
        parse_api_xml(body)
    assert "root:" not in str(info.value)


# ---- errors and retries -------------------------------------------------------------------------


def test_wrong_password_fails_at_once_without_retry(cloudmax_emulator, cloudmax_conn):
    cloudmax_conn(password="wrong")
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxAuthError) as info:
        hook.get_rows(req(hook))
    assert info.value.error_code == 100 and info.value.report_part_id == 2100199
    assert len(cloudmax_emulator.api_requests) == 1


def test_error_100_on_a_first_call_is_not_retried(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 2, "exception"
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxServerExceptionNotRetried, match="Not retried"):
        hook.get_rows(req(hook))
    assert len(cloudmax_emulator.api_requests) == 1


def test_error_100_after_proven_credentials_is_retried_once(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    assert hook.get_rows(req(hook))  # proves the credentials
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 1, "exception"
    assert hook.get_rows(req(hook))
    assert len(cloudmax_emulator.api_requests) == 3
    cloudmax_emulator.settings.fail_first = 2
    with pytest.raises(CloudmaxServerExceptionNotRetried):
        hook.get_rows(req(hook))
    assert len(cloudmax_emulator.api_requests) == 5


@pytest.mark.parametrize("fail_with", [503, 500, "reset"])
def test_transient_http_failures_are_retried(cloudmax_emulator, cloudmax_conn, fail_with):
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 2, fail_with
    hook = CloudmaxHook()
    assert hook.request_links(req(hook, mode=1))
    assert len(cloudmax_emulator.api_requests) == 3


def test_429_waits_for_retry_after(cloudmax_emulator, cloudmax_conn):
    cloudmax_conn(retry_max_wait=5)
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 1, 429
    cloudmax_emulator.settings.retry_after = 1
    hook = CloudmaxHook()
    started = time.monotonic()
    hook.request_links(req(hook, mode=1))
    assert time.monotonic() - started >= 0.95
    assert len(cloudmax_emulator.api_requests) == 2


def test_retries_are_bounded(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 50, 503
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxTransientError, match="503"):
        hook.request_links(req(hook, mode=1))
    assert len(cloudmax_emulator.api_requests) == 3  # attempts=3 in the test connection


def test_slow_server_times_out_and_is_retried(cloudmax_emulator, cloudmax_conn):
    cloudmax_conn(timeout=0.3)
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.delay = 1, 1.0
    cloudmax_emulator.settings.fail_with = 200  # a slow but otherwise normal first answer
    hook = CloudmaxHook()
    assert hook.request_links(req(hook, mode=1))
    assert len(cloudmax_emulator.api_requests) == 2


def test_a_slow_answer_is_a_timeout_naming_the_extra(cloudmax_emulator, cloudmax_conn):
    """No answer within ``timeout``: requests' ``ReadTimeout`` becomes a transient error naming the extra."""
    cloudmax_conn(timeout=0.3, attempts=1)
    cloudmax_emulator.settings.delay = 1.0
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxTransientError) as info:
        hook.request_links(req(hook, mode=1))
    assert str(info.value).startswith("ReadTimeout while calling ")
    assert "connection extra timeout=0.3 seconds" in str(info.value)


def test_a_body_that_stalls_is_a_timeout_naming_the_extra(cloudmax_emulator, cloudmax_conn):
    """A body that stops arriving mid-stream: urllib3's ``ReadTimeoutError`` (from ``raw.read``, not wrapped
    by requests) is classified as a timeout too. The emulator's event loop is held by another request's
    answer callback while the report streams, so the report's bytes stop after the socket buffers."""
    import threading

    import requests

    cloudmax_conn(timeout=0.5, attempts=1)
    cloudmax_emulator.settings.big_report_bytes = 24 * 2**20  # far more than loopback's socket buffers hold
    held, release = threading.Event(), threading.Event()

    def hold_the_loop(*_: object) -> None:
        held.set()
        release.wait(60)

    hook = CloudmaxHook()
    other = threading.Thread(target=lambda: requests.get(cloudmax_emulator.base_url + "/held", timeout=90))
    try:
        with hook.open_report(req(hook)) as stream, pytest.raises(CloudmaxTransientError) as info:
            chunks = iter(stream.chunks)
            assert next(chunks)
            cloudmax_emulator.on_answer = hold_the_loop
            other.start()
            assert held.wait(30)
            for _chunk in chunks:
                pass
    finally:
        release.set()
        cloudmax_emulator.on_answer = None
        if other.is_alive():
            other.join(60)
    message = str(info.value)
    assert message.startswith("ReadTimeoutError while downloading ") and " after " in message
    assert "connection extra timeout=0.5 seconds" in message and "raise it" in message


@pytest.mark.parametrize(
    ("setup", "exc", "code"),
    [
        ({"licensed_reports": {20001}}, CloudmaxNoLicenceError, 1000),
    ],
)
def test_permanent_api_errors_map_and_do_not_retry(cloudmax_emulator, cloudmax_conn, setup, exc, code):
    for key, value in setup.items():
        setattr(cloudmax_emulator.settings, key, value)
    hook = CloudmaxHook()
    with pytest.raises(exc) as info:
        hook.get_rows(req(hook))
    assert info.value.error_code == code
    assert len(cloudmax_emulator.api_requests) == 1


@pytest.mark.parametrize(
    ("fields", "exc"),
    [
        ({"ReportPartID": "99999"}, CloudmaxIncorrectReportPartError),
        ({"StartTime": "yesterday"}, CloudmaxTimeFormatError),
        ({"LaunchID": "abc"}, CloudmaxIncorrectRequestError),
        ({"CustomColName1": "emailaddress"}, CloudmaxIncorrectRequestError),
    ],
)
def test_server_side_validation_codes_map_to_errors(cloudmax_emulator, cloudmax_conn, fields, exc):
    """Requests the hook would refuse, sent anyway, to check the error map against the server's codes."""
    hook = CloudmaxHook()
    good = req(hook, mode=1)
    hacked = ReportRequest(
        report_part=ReportPart(int(fields.get("ReportPartID", 2100199)), "", "", "x", "detail", None),
        launch_ids=good.launch_ids,
        start=good.start,
        end=good.end,
        response_mode=ResponseMode.HTTP_LINK,
    )
    wire_fields = {**hacked.fields(), **fields}
    resp, head = hook._send(hook._wire(wire_fields), None)
    with resp:
        answer = parse_api_xml(head + resp.raw.read())
    with pytest.raises(exc):
        answer.raise_for_error()


def test_failed_url_redirect_carries_the_error(cloudmax_emulator, cloudmax_conn):
    cloudmax_conn(password="wrong")
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxAuthError):
        hook.request_links(
            req(hook, mode=1, extra_fields={"FailedUrl": "http://elsewhere.invalid/f?%omisquerystring%"})
        )


def test_successful_url_redirect_gives_links(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    links = hook.request_links(
        req(hook, mode=1, extra_fields={"SuccessfulUrl": "http://x.invalid/ok?l=%reportpath%&%omisquerystring%"})
    )
    assert links and links[0].startswith(cloudmax_emulator.base_url)
    assert not [r for r in cloudmax_emulator.requests if "x.invalid" in r.path]


def test_truncated_body_raises_transient(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.truncate_body = True
    cloudmax_emulator.settings.fault_paths = "api"
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxTransientError), hook.open_report(req(hook, rid=21002, mode=3)) as stream:
        b"".join(stream.chunks)


def test_too_many_rows_for_xcom(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    with pytest.raises(TooManyRowsError, match="destination"):
        hook.get_rows(req(hook, rid=21002, launch=(1, 2)), max_rows=3)


def test_links_to_other_hosts_need_allowing(cloudmax_emulator, cloudmax_conn):
    cloudmax_emulator.settings.link_base_url = cloudmax_emulator.base_url.replace("127.0.0.1", "localhost")
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxLinkError, match="allowed_link_hosts"):
        hook.request_links(req(hook, mode=1))
    cloudmax_conn(allowed_link_hosts=["localhost"])
    hook = CloudmaxHook()
    (link,) = hook.request_links(req(hook, mode=1))
    with hook.open_link(link) as stream:
        assert b"".join(stream.chunks)


# ---- input validation (nothing sent) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"report_part_id": 12345}, "report_part_id"),
        ({"launch_ids": "12,abc"}, "launch_ids"),
        ({"launch_ids": []}, "launch_ids"),
        ({"start_time": "2026-11-02 00:00:00"}, "window"),
        ({"end_time": "not a time"}, "end_time"),
        ({"columns": ["emailaddress"]}, "did you mean 'EmailAddress'"),
        ({"columns": [f"C{i}" for i in range(100)]}, "at most 99"),
        ({"response_mode": 7}, "response_mode"),
        ({"language": "fr"}, "language"),
    ],
)
def test_bad_input_is_refused_before_sending(cloudmax_emulator, cloudmax_conn, kwargs, field):
    hook = CloudmaxHook()
    args = {"report_part_id": 2100199, "launch_ids": [1], "start_time": START, "end_time": END, **kwargs}
    with pytest.raises(CloudmaxConfigError, match=field):
        hook.build_request(
            args.pop("report_part_id"), args.pop("launch_ids"), args.pop("start_time"), args.pop("end_time"), **args
        )
    assert cloudmax_emulator.requests == []


def test_times_are_converted_to_the_account_timezone(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    r = hook.build_request(20001, "1225, 1116", "2026-10-31T00:00:00Z", datetime(2026, 11, 1, tzinfo=ZoneInfo("UTC")))
    assert r.fields()["StartTime"] == "2026-10-31 08:00:00" and r.fields()["EndTime"] == "2026-11-01 08:00:00"
    assert r.fields()["LaunchID"] == "1225,1116"


# ---- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_password_never_reaches_logs_exceptions_or_urls(cloudmax_emulator, cloudmax_conn, caplog, method):
    cloudmax_emulator.settings.accounts = {"demo": SECRET}
    caplog.set_level(logging.DEBUG)
    cloudmax_conn(password=SECRET, method=method)
    hook = CloudmaxHook()
    hook.get_rows(req(hook))
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 10, 503
    texts = []
    with pytest.raises(CloudmaxTransientError) as info:
        hook.get_rows(req(hook))
    texts.append(str(info.value) + repr(info.value) + repr(hook.settings))
    # an unreachable server: requests' own message holds the URL (with the query under GET)
    cloudmax_conn(password=SECRET, method=method, timeout=0.5)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_CLOUDMAX_DEFAULT"])
    conn["host"] = f"http://127.0.0.1:{port}"
    os.environ["AIRFLOW_CONN_CLOUDMAX_DEFAULT"] = json.dumps(conn)
    hook = CloudmaxHook()
    with pytest.raises(CloudmaxTransientError) as info2:
        hook.request_links(req(hook, mode=1))
    texts.append(str(info2.value))
    assert info2.value.__cause__ is None and info2.value.__suppress_context__
    from urllib.parse import quote, quote_plus

    everything = caplog.text + "\n".join(texts)
    for form in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET)):
        assert form not in everything
    assert "Report.aspx" in everything  # the URLs were logged, redacted


# ---- connection -----------------------------------------------------------------------------------


def test_test_connection_messages(cloudmax_emulator, cloudmax_conn):
    assert CloudmaxHook().test_connection()[0] is True
    cloudmax_conn(password="nope")
    ok, msg = CloudmaxHook().test_connection()
    assert not ok and "password" in msg and "nope" not in msg
    cloudmax_conn(endpoint="/WebAPI/Nope.aspx")
    ok, msg = CloudmaxHook().test_connection()
    assert not ok and "endpoint" in msg
    cloudmax_conn(attempts=1, timeout=0.5)
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_CLOUDMAX_DEFAULT"])
    conn["host"] = "http://127.0.0.1:9"
    os.environ["AIRFLOW_CONN_CLOUDMAX_DEFAULT"] = json.dumps(conn)
    ok, msg = CloudmaxHook().test_connection()
    assert not ok and "Cannot reach" in msg


def test_connection_from_uri(cloudmax_emulator, monkeypatch):
    host = cloudmax_emulator.base_url.removeprefix("http://")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CMX_URI", f"cloudmax://demo:demo-password@{host}/?scheme=http&timezone=Asia%2FTaipei"
    )
    hook = CloudmaxHook("cmx_uri")
    assert hook.settings.url == cloudmax_emulator.endpoint_url
    assert hook.test_connection()[0]


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        ({"method": "PUT"}, "method"),
        ({"request_format": "soap"}, "request_format"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"timeout": "soon"}, "timeout"),
        ({"method": "GET", "request_format": "xml_file"}, "xml_file"),
    ],
)
def test_bad_connection_extras_are_named(cloudmax_emulator, cloudmax_conn, extra, word):
    cloudmax_conn(**extra)
    with pytest.raises(CloudmaxConfigError, match=word):
        CloudmaxHook().settings  # noqa: B018


def test_ui_field_behaviour_relabels():
    ui = CloudmaxHook.get_ui_field_behaviour()
    assert ui["relabeling"] == {
        "host": "Base URL *",
        "port": "Port *",
        "login": "API account *",
        "password": "API password *",
    }
    assert ui["placeholders"]["host"].startswith("https://")


def test_providers_manager_reads_the_connection_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.field_behaviours["cloudmax"]["relabeling"]["password"] == "API password *"
    widgets = {k for k in manager.connection_form_widgets if k.startswith("extra__cloudmax__")}
    assert widgets == {f"extra__cloudmax__{name}" for name in CONN_FIELDS}


def test_form_extras_stored_with_prefix_are_read(cloudmax_emulator, monkeypatch):
    conn = {
        "conn_type": "cloudmax",
        "host": cloudmax_emulator.base_url,
        "login": "demo",
        "password": "demo-password",
        "extra": {"extra__cloudmax__timezone": "UTC", "extra__cloudmax__method": "GET", "method": ""},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CMX_FORM", json.dumps(conn))
    settings = CloudmaxHook("cmx_form").settings
    assert (settings.timezone, settings.method) == ("UTC", "GET")


def test_server_exception_is_transient_class():
    assert not CloudmaxServerException(100).permanent and CloudmaxResponseError("x").permanent


def test_link_redirects_are_followed_only_to_allowed_hosts(cloudmax_emulator, cloudmax_conn):
    hook = CloudmaxHook()
    cloudmax_emulator.settings.link_redirect_to = cloudmax_emulator.base_url  # same host: followed
    (link,) = hook.request_links(req(hook, mode=1))
    assert hook.probe_link(link).state.value == "ready"
    with hook.open_link(link) as stream:
        assert b"".join(stream.chunks).decode() == cloudmax_emulator.expected_csv(2100199, [1234], START, END)
    other = cloudmax_emulator.base_url.replace("127.0.0.1", "localhost")
    cloudmax_emulator.settings.link_redirect_to = other  # a hand-off to a host nobody allowed
    cloudmax_emulator.clear_log()
    probe = hook.probe_link(link)
    assert probe.state.value == "failed" and "allowed_link_hosts" in probe.message
    with pytest.raises(CloudmaxLinkError, match="allowed_link_hosts"), hook.open_link(link):
        pass
    assert all(r.query.get("hop") is None for r in cloudmax_emulator.link_requests)  # never reached
    cloudmax_conn(allowed_link_hosts="localhost")
    assert CloudmaxHook().probe_link(link).state.value == "ready"


def test_links_never_get_netrc_credentials(cloudmax_emulator, cloudmax_conn, tmp_path, monkeypatch):
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login netrc-user password netrc-secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    hook = CloudmaxHook()
    (link,) = hook.request_links(req(hook, mode=1))
    hook.probe_link(link)
    with hook.open_link(link) as stream:
        b"".join(stream.chunks)
    assert len(cloudmax_emulator.link_requests) == 2
    assert all("Authorization" not in r.headers for r in cloudmax_emulator.link_requests)
