"""The Report.aspx emulator, driven with plain ``requests`` over loopback.

Uses the ``cloudmax_emulator`` fixture of ``cloudmax_provider.testing.pytest_plugin``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from lxml import etree

from cloudmax_provider.api.catalog import REMOVAL_STATUSES, REPORT_PARTS, get_report_part
from cloudmax_provider.testing.emulator import LOGIN_FAILED_MSG, CloudmaxEmulator, RecordedRequest
from cloudmax_provider.testing.rows import INVENTED_COLUMNS, REMOVAL_STATUSES_ZH

START, END = "2024-01-01 00:00:00", "2024-01-02 00:00:00"
CREDS = {"ManagerLoginName": "demo", "ManagerPassword": "demo-password"}
BASE = {**CREDS, "ReportPartID": "2100199", "LaunchID": "1234", "StartTime": START, "EndTime": END}
TIMEOUT = 10


def answer(r: requests.Response) -> tuple[int, str, list[str]]:
    """(ErrorCode, ErrorMsg, links) of an XML answer, whatever the tag case."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(r.content, etree.XMLParser(resolve_entities=False, recover=True))
    got: dict[str, list[str]] = {}
    for child in root:
        got.setdefault(str(child.tag).upper(), []).append(child.text or "")
    return int(got["ERRORCODE"][0]), got["ERRORMSG"][0], [x for x in got["DOWNLOADLINK"] if x]


def get(emu: CloudmaxEmulator, **params: object) -> requests.Response:
    """GET Report.aspx with BASE + params; redirects are not followed."""
    return requests.get(
        emu.endpoint_url,
        params={**BASE, **params},  # type: ignore[arg-type]
        timeout=TIMEOUT,
        allow_redirects=False,
    )


def code_of(emu: CloudmaxEmulator, **params: object) -> int:
    return answer(get(emu, **params))[0]


# --- the spec's own examples -----------------------------------------------------------------


def test_spec_browser_get_url(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.accounts = {"API 帳號": "API 密碼"}
    url = (
        f"{emu.endpoint_url}?ManagerLoginName=API 帳號&ManagerPassword=API 密碼"
        f"&ReportPartID=2100199&LaunchID=1234&StartTime={START}&EndTime={END}"
    )
    code, msg, links = answer(requests.get(url, timeout=TIMEOUT))
    assert (code, msg) == (0, "")
    assert len(links) == 1 and links[0].startswith("\\\\CMXFILE01\\reports\\") and links[0].endswith(".csv")
    local = emu.unc_to_local(links[0])
    assert local.read_bytes().decode("utf-8") == emu.expected_csv(2100199, [1234], START, END)


def test_spec_xmlrequest_get_url(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.accounts = {"API 帳號": "API 密碼"}
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><REQUEST><ManagerLoginName>API 帳號\n</ManagerLoginName>'
        "<ManagerPassword>API 密碼</ManagerPassword></REQUEST>"
    )
    url = f"{emu.endpoint_url}?XmlRequest={xml}&ReportPartID=2100199&LaunchID=1234"
    # the spec's example leaves StartTime/EndTime out: they are required
    assert answer(requests.get(url, timeout=TIMEOUT))[0] == 102
    code, _, links = answer(requests.get(f"{url}&StartTime={START}&EndTime={END}&ResponseMode=1", timeout=TIMEOUT))
    assert code == 0
    assert requests.get(links[0], timeout=TIMEOUT).content.decode() == emu.expected_csv(2100199, 1234, START, END)
    # every field may be in the XML; request fields override XML ones
    xml_all = (
        "<REQUEST><ManagerLoginName>api 帳號</ManagerLoginName><ManagerPassword>wrong</ManagerPassword>"
        f"<ReportPartID>20001</ReportPartID><LaunchID>7</LaunchID><StartTime>{START}</StartTime>"
        f"<EndTime>{END}</EndTime><ResponseMode>2</ResponseMode></REQUEST>"
    )
    r = requests.get(emu.endpoint_url, params={"XmlRequest": xml_all, "managerpassword": "API 密碼"}, timeout=TIMEOUT)
    assert r.text == emu.expected_csv(20001, 7, START, END)
    # the .NET quirk: declared utf-16, bytes utf-8
    quirk = xml_all.replace("<REQUEST>", '<?xml version="1.0" encoding="utf-16"?><REQUEST>')
    r = requests.post(emu.endpoint_url, data={"XmlRequest": quirk, "ManagerPassword": "API 密碼"}, timeout=TIMEOUT)
    assert r.text == emu.expected_csv(20001, 7, START, END)
    assert answer(get(emu, XmlRequest="<REQUEST><broken>"))[0] == 102


def test_spec_html_form_multipart(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    form = {**BASE, "ResponseMode": "2", "Submit": "查詢"}
    r = requests.post(emu.endpoint_url, files={k: (None, v) for k, v in form.items()}, timeout=TIMEOUT)
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.content.decode() == emu.expected_csv(2100199, 1234, START, END)
    rec = emu.api_requests[-1]
    assert rec.method == "POST" and rec.fields["Submit"] == "查詢" and rec.query == {}
    assert rec.headers["Content-Type"].startswith("multipart/form-data")


def test_spec_php_form_urlencoded(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    data = {**BASE, "LaunchID": "1225, 1116", "ResponseMode": "2"}
    r = requests.post(emu.endpoint_url, data=data, timeout=TIMEOUT)
    assert r.content.decode() == emu.expected_csv(2100199, [1225, 1116], START, END)
    rows = list(csv.reader(io.StringIO(r.text)))
    assert {row[0] for row in rows[1:]} == {"1225", "1116"} and len(rows) == 1 + 2 * 5
    assert emu.api_requests[-1].body_size == int(emu.api_requests[-1].headers["Content-Length"])


def test_xml_from_uploaded_file_and_url(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    xml = (
        b'<?xml version="1.0" encoding="utf-8"?><REQUEST><ManagerLoginName>DEMO</ManagerLoginName>'
        b"<ManagerPassword>demo-password</ManagerPassword></REQUEST>"
    )
    rest = {k: v for k, v in BASE.items() if k not in CREDS}
    r = requests.post(emu.endpoint_url, data=rest, files={"XmlReqFilePath": ("req.xml", xml)}, timeout=TIMEOUT)
    assert answer(r)[0] == 0
    assert emu.api_requests[-1].files == {"XmlReqFilePath": xml}
    r = requests.post(emu.endpoint_url, data=rest, files={"XmlReqFilePath": ("req.txt", xml)}, timeout=TIMEOUT)
    assert answer(r)[0] == 102
    url = emu.serve_file("req.xml", xml)
    assert answer(requests.get(emu.endpoint_url, params={**rest, "XmlReqUrl": url}, timeout=TIMEOUT))[0] == 0
    for bad in ("http://example.com/req.xml", url.replace(".xml", ".txt"), url.replace("req.", "nope.")):
        assert answer(requests.get(emu.endpoint_url, params={**rest, "XmlReqUrl": bad}, timeout=TIMEOUT))[0] == 102
    # the emulator fetched its own /static/req.xml: that request is logged too
    assert any(r.path == "/static/req.xml" for r in emu.requests)


# --- error codes -----------------------------------------------------------------------------


def test_error_100_credentials_and_exception(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    assert answer(get(emu, ManagerPassword="DEMO-PASSWORD")) == (100, LOGIN_FAILED_MSG, [])
    assert answer(get(emu, ManagerLoginName="nobody"))[:2] == (100, LOGIN_FAILED_MSG)
    assert code_of(emu, ManagerLoginName="DeMo") == 0  # login name is case-insensitive
    emu.settings.fail_first, emu.settings.fail_with = 1, "exception"
    assert answer(get(emu)) == (100, "Exception", [])
    assert code_of(emu) == 0
    # errors are XML in modes 2 and 3 too
    for mode in (2, 3):
        assert answer(get(emu, ResponseMode=mode, ManagerPassword="x"))[0] == 100


@pytest.mark.parametrize(
    "params",
    [
        {"LaunchID": ""},
        {"LaunchID": "12a"},
        {"LaunchID": "1,,2"},
        {"LaunchID": "0"},
        {"StartTime": ""},
        {"EndTime": START},
        {"StartTime": END, "EndTime": START},
        {"ResponseMode": "5"},
        {"ReportCharacterSetID": "99"},
        {"CustomColName1": "NoSuchColumn"},
        {"CustomColName1": "emailaddress"},
        {"CustomColName1": "IP", "CustomColName2": "IP,again"},
        {"CustomColName100": "IP"},
    ],
)
def test_error_102_incorrect_request(cloudmax_emulator: CloudmaxEmulator, params: dict[str, str]) -> None:
    assert answer(get(cloudmax_emulator, **params)) == (102, "Incorrect Request", [])


def test_error_102_missing_fields(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    for missing in ("ManagerLoginName", "ManagerPassword", "ReportPartID", "LaunchID", "StartTime", "EndTime"):
        params = {k: v for k, v in BASE.items() if k != missing}
        assert answer(requests.get(emu.endpoint_url, params=params, timeout=TIMEOUT))[0] == 102, missing


def test_error_103_110_1000(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    assert answer(get(emu, ReportPartID="99999")) == (103, "Incorrect ReportPartID", [])
    assert code_of(emu, ReportPartID="removals") == 103
    for bad in ("2024/01/01 00:00:00", "2024-13-01", "2024-02-30 00:00:00", "yesterday", "2024-01-01 25:00:00"):
        assert answer(get(emu, StartTime=bad)) == (110, "Invalid time format", []), bad
    assert code_of(emu, StartTime="2024-01-01", EndTime="2024-1-2T03:04") == 0
    emu.settings.licensed_reports = {31033}
    assert answer(get(emu)) == (1000, "No Licence at Page", [])
    assert code_of(emu, ReportPartID=31033) == 0


# --- response modes ----------------------------------------------------------------------------


def test_mode_0_unc_file_appears_after_delay(cloudmax_emulator: CloudmaxEmulator, tmp_path: Path) -> None:
    emu = cloudmax_emulator
    emu.settings.unc_root, emu.settings.unc_server, emu.settings.unc_share = str(tmp_path), "FS9", "share$"
    emu.settings.link_ready_after = 0.4
    code, _, links = answer(get(emu, ResponseMode=0, LaunchID="5,6"))
    assert code == 0 and links[0].startswith("\\\\FS9\\share$\\")
    local = emu.unc_to_local(links[0])
    assert local.parent.parent == tmp_path and not local.exists()
    deadline = time.monotonic() + 5
    while not local.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local.read_bytes().decode() == emu.expected_csv(2100199, [5, 6], START, END)
    assert [p.name for p in local.parent.iterdir()] == [local.name]  # temp file renamed away


def test_mode_1_link_not_ready_then_ready(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.link_ready_after = 0.4
    code, _, links = answer(get(emu, ResponseMode=1))
    assert code == 0 and links[0].startswith(emu.base_url + "/WebAPI/ReportFiles/")
    early = requests.get(links[0], timeout=TIMEOUT)
    assert early.status_code == 404 and "text/html" in early.headers["Content-Type"]
    assert requests.head(links[0], timeout=TIMEOUT).status_code == 404
    time.sleep(0.5)
    expected = emu.expected_csv(2100199, 1234, START, END).encode()
    r = requests.get(links[0], timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == expected
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    head = requests.head(links[0], timeout=TIMEOUT)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(expected)
    part = requests.get(links[0], headers={"Range": "bytes=10-"}, timeout=TIMEOUT)
    assert part.status_code == 206 and part.content == expected[10:]
    assert len(emu.link_requests) == 5
    assert requests.get(links[0] + "x", timeout=TIMEOUT).status_code == 404


def test_mode_1_split_links_and_link_base_url(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.split_links = True
    emu.settings.link_base_url = f"http://localhost:{emu.port}"
    code, _, links = answer(get(emu, ResponseMode=1, LaunchID="11,22,11"))
    assert code == 0 and len(links) == 2
    for launch, link in zip((11, 22), links, strict=True):
        assert urlsplit(link).hostname == "localhost"
        assert requests.get(link, timeout=TIMEOUT).text == emu.expected_csv(2100199, launch, START, END)


def test_mode_2_and_3_bodies(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    expected = emu.expected_csv(2100199, 1234, START, END).encode()
    r2 = get(emu, ResponseMode=2)
    assert r2.content == expected and "Content-Disposition" not in r2.headers
    r3 = get(emu, ResponseMode=3)
    assert r3.content == expected and r3.headers["Content-Type"] == "text/csv; charset=utf-8"
    cd = r3.headers["Content-Disposition"]
    assert cd.startswith('attachment; filename="Report_2100199_1234_') and '.csv"' in cd
    assert "filename*=UTF-8''%E9%96%8B" in cd  # 開信細節...


# --- data formatting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom", "charset"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8-sig", b"\xef\xbb\xbf", "utf-8"),
        ("utf-16", b"\xff\xfe", "utf-16"),
    ],
)
def test_csv_encodings(cloudmax_emulator: CloudmaxEmulator, encoding: str, bom: bytes, charset: str) -> None:
    emu = cloudmax_emulator
    emu.settings.csv_encoding = encoding
    expected = emu.expected_csv(21032, [1, 2], START, END)
    for mode in (2, 3):
        r = get(emu, ResponseMode=mode, ReportPartID=21032, LaunchID="1,2")
        assert r.headers["Content-Type"] == f"text/csv; charset={charset}"
        assert r.content.startswith(bom) or not bom
        body = r.content[len(bom) :].decode("utf-16-le" if encoding == "utf-16" else "utf-8")
        assert body == expected
    link = answer(get(emu, ResponseMode=1, ReportPartID=21032, LaunchID="1,2"))[2][0]
    assert requests.get(link, timeout=TIMEOUT).content == bom + expected.encode(
        "utf-16-le" if encoding == "utf-16" else "utf-8"
    )


@pytest.mark.parametrize(
    ("fmt", "pattern"),
    [
        ("iso", r"^2024-01-0[12] \d\d:\d\d:\d\d$"),
        ("zh-TW", r"^2024/1/[12] (上午|下午) (0\d|1[0-2]):\d\d:\d\d$"),
        ("en-US", r"^1/[12]/2024 ([1-9]|1[0-2]):\d\d:\d\d (AM|PM)$"),
    ],
)
def test_time_formats(cloudmax_emulator: CloudmaxEmulator, fmt: str, pattern: str) -> None:
    emu = cloudmax_emulator
    emu.settings.time_format = fmt
    emu.settings.rows_per_launch = 40
    r = get(emu, ResponseMode=2, CustomColName1="SubmitTime")
    assert r.text == emu.expected_csv(2100199, 1234, START, END, columns=["SubmitTime"])
    cells = [row[0] for row in csv.reader(io.StringIO(r.text))][1:]
    assert len(cells) == 40 and all(re.match(pattern, c) for c in cells), cells


def test_rows_are_hostile_typed_and_deterministic(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.rows_per_launch = 30
    text = get(emu, ResponseMode=2, ReportPartID=21032, LaunchID="1,2,3").text
    assert text == emu.expected_csv(21032, [1, 2, 3], START, END)
    assert text == get(emu, ResponseMode=2, ReportPartID=21032, LaunchID="1,2,3").text
    assert '"雙11 限時優惠, ""加碼""\n第二行"' in text  # embedded newline kept as LF inside quotes
    header, rows = emu.expected_rows(21032, [1, 2, 3], START, END)
    assert header == list(get_report_part(21032).column_names) and len(rows) == 90
    assert any("\n" in c for r in rows for c in r) and any('"' in c for r in rows for c in r)
    assert any("," in c for r in rows for c in r) and any(c == "" for r in rows for c in r)
    assert all(r[header.index("EmailID")].isdigit() and "@" in r[header.index("EmailAddress")] for r in rows)
    assert list(csv.reader(io.StringIO(text, newline=""))) == [header, *rows]
    # summaries: one row per LaunchID; rates have four decimals
    h, rows = emu.expected_rows(30023, [1, 2], START, END)
    assert len(rows) == 2 and re.match(r"^\d\.\d{4}$", rows[0][h.index("OpenEmailRate")])
    # undocumented reports get an invented header
    for rid in (11001, 11002, 11003, 11004, 21001):
        assert REPORT_PARTS[rid].columns is None
        assert get(emu, ResponseMode=2, ReportPartID=rid).text.split("\r\n")[0] == ",".join(INVENTED_COLUMNS[rid])


def test_custom_col_name(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    r = get(emu, ResponseMode=2, CustomColName2="SubmitTime,時間", customcolname1="EmailAddress, 電子 郵件")
    expected = emu.expected_csv(2100199, 1234, START, END, columns=["EmailAddress,電子 郵件", "SubmitTime,時間"])
    assert r.text == expected and r.text.startswith("電子 郵件,時間\r\n")
    full = emu.expected_rows(2100199, 1234, START, END)
    picked = emu.expected_rows(2100199, 1234, START, END, columns=[("EmailAddress", "電子 郵件"), "SubmitTime,時間"])
    assert [[r[1], r[10]] for r in full[1]] == picked[1]
    r = get(emu, ResponseMode=2, CustomColName="EmailAddress,Email")
    assert r.text.split("\r\n")[0] == "Email"
    # no number first, then by number
    r = get(emu, ResponseMode=2, CustomColName10="IP", CustomColName9="OS", CustomColName="LaunchID")
    assert r.text.split("\r\n")[0] == "LaunchID,OS,IP"
    assert code_of(emu, CustomColName1="EmailAddress", CustomColName2="launchid") == 102


def test_removals_language(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.rows_per_launch = 50
    statuses: dict[str | None, set[str]] = {}
    for lang in (None, "17", "117"):
        extra = {"ReportCharacterSetID": lang} if lang else {}
        text = get(emu, ResponseMode=2, ReportPartID=31033, CustomColName1="Status", **extra).text
        assert text == emu.expected_csv(
            31033, 1234, START, END, columns=["Status"], language=int(lang) if lang else None
        )
        statuses[lang] = {row[0] for row in csv.reader(io.StringIO(text))} - {"Status"}
    assert statuses["17"] <= set(REMOVAL_STATUSES_ZH) and "無效名單" in REMOVAL_STATUSES_ZH
    assert statuses[None] == statuses["117"] and statuses["117"] <= set(REMOVAL_STATUSES)
    assert len(statuses["117"]) >= 4
    # ignored (but accepted) for other reports
    assert get(emu, ResponseMode=2, ReportCharacterSetID=17).text == emu.expected_csv(2100199, 1234, START, END)


def test_xml_shape_settings(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.xml_root, emu.settings.xml_tag_case, emu.settings.xml_utf16_declaration = "Result", "mixed", True
    r = get(emu, ResponseMode=1)
    assert r.content.startswith(b'<?xml version="1.0" encoding="utf-16"?>')
    assert b"<Result>" in r.content and b"<ErrorCode>0</ErrorCode>" in r.content
    assert b"<DownloadLink>http://" in r.content
    r.content.decode("utf-8")  # bytes really are UTF-8


# --- redirects and methods --------------------------------------------------------------------


def test_redirects_with_keywords(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator

    def location(**params: object) -> str:
        r = get(emu, **params)
        assert r.status_code == 302, r.text
        return r.headers["Location"]

    loc = location(ResponseMode=1, ReferUrl="http://client.example/back?%omisquerystring%&l=%launchid%&u=%userid%")
    q = parse_qs(urlsplit(loc).query, keep_blank_values=True)
    assert q["ErrorCode"] == ["0"] and q["ErrorMsg"] == [""] and q["l"] == ["1234"] and q["u"] == [""]
    assert q["DownloadLink"][0].startswith(emu.base_url + "/WebAPI/ReportFiles/")
    loc = location(ResponseMode=0, SuccessfulUr="http://ok.example/?p=%reportpath%", FailedUrl="http://bad/")
    assert parse_qs(urlsplit(loc).query)["p"][0].startswith("\\\\CMXFILE01\\reports\\")
    loc = location(ManagerPassword="x", SuccessfulUrl="http://ok/", FailedUrl="http://bad/?c=%ERRORCODE%&m=%errormsg%")
    assert parse_qs(urlsplit(loc).query) == {"c": ["100"], "m": [LOGIN_FAILED_MSG]}
    assert (
        location(ReferUrl="http://refer/?c=%errorcode%", ReportPartID=1, FailedUrl="http://bad/")
        == "http://refer/?c=103"
    )
    assert location(ResponseMode=2, ReportPartID=1, FailedUrl="http://bad/%errorcode%") == "http://bad/103"
    # success in modes 2/3: the report, no redirect
    r = get(emu, ResponseMode=2, ReferUrl="http://refer/", SuccessfulUrl="http://ok/")
    assert r.status_code == 200 and r.text == emu.expected_csv(2100199, 1234, START, END)
    # SuccessfulUrl alone does not fire on errors, FailedUrl alone not on success
    assert answer(get(emu, ManagerPassword="x", SuccessfulUrl="http://ok/"))[0] == 100
    assert answer(get(emu, FailedUrl="http://bad/"))[0] == 0


def test_methods_setting(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.methods = "GET"
    r = requests.post(emu.endpoint_url, data=BASE, timeout=TIMEOUT)
    assert r.status_code == 405 and "GET" in r.headers["Allow"] and "POST" not in r.headers["Allow"]
    assert code_of(emu) == 0
    emu.settings.methods = "POST"
    r = get(emu)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert answer(requests.post(emu.endpoint_url, data=BASE, timeout=TIMEOUT))[0] == 0
    emu.settings.methods = "both"
    assert requests.put(emu.endpoint_url, data=BASE, timeout=TIMEOUT).status_code == 405


# --- faults -------------------------------------------------------------------------------------


def test_fail_first_with_status_and_retry_after(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.fail_first = 2
    assert [get(emu).status_code for _ in range(3)] == [503, 503, 200]
    emu.settings.fail_first, emu.settings.fail_with, emu.settings.retry_after = 1, 429, 7
    r = get(emu)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert get(emu).status_code == 200
    assert len(emu.api_requests) == 5  # faulted ones are logged too


def test_fail_with_reset(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.fail_first, emu.settings.fail_with = 1, "reset"
    with pytest.raises(requests.ConnectionError):
        get(emu)
    assert code_of(emu) == 0


def test_delay(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.delay = 0.3
    t0 = time.monotonic()
    assert code_of(emu) == 0
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(requests.Timeout):
        requests.get(emu.endpoint_url, params=BASE, timeout=0.1)


@pytest.mark.parametrize("switch", ["truncate_body", "drop_mid_body"])
def test_body_faults(cloudmax_emulator: CloudmaxEmulator, switch: str) -> None:
    emu = cloudmax_emulator
    setattr(emu.settings, switch, True)
    emu.settings.fail_first = 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(emu, ResponseMode=2)
    assert get(emu, ResponseMode=2).text == emu.expected_csv(2100199, 1234, START, END)
    emu.settings.fail_first = 0  # every matching request
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(emu, ResponseMode=3)
    with requests.get(emu.endpoint_url, params={**BASE, "ResponseMode": "2"}, stream=True, timeout=TIMEOUT) as r:
        if switch == "truncate_body":
            assert int(r.headers["Content-Length"]) == len(emu.expected_csv(2100199, 1234, START, END).encode())
        else:
            assert r.headers["Transfer-Encoding"] == "chunked"


def test_fault_paths(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    link = answer(get(emu, ResponseMode=1))[2][0]
    emu.settings.fault_paths, emu.settings.fail_first = "links", 1
    assert code_of(emu) == 0
    assert requests.get(link, timeout=TIMEOUT).status_code == 503
    assert requests.get(link, timeout=TIMEOUT).status_code == 200
    emu.settings.fault_paths, emu.settings.fail_first = "api", 2
    assert requests.get(link, timeout=TIMEOUT).status_code == 200
    assert get(emu).status_code == 503
    emu.settings.fault_paths, emu.settings.truncate_body, emu.settings.fail_first = "links", True, 0
    assert code_of(emu) == 0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(link, timeout=TIMEOUT)


# --- big reports ----------------------------------------------------------------------------------


def test_big_report(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    emu.settings.big_report_bytes = 2_000_000
    path, size, data_rows = emu.big_report_info(21002)
    assert path.stat().st_size == size and 2_000_000 <= size < 2_010_000
    r = get(emu, ResponseMode=2, ReportPartID=21002)
    assert len(r.content) == size and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert rows[0] == list(get_report_part(21002).column_names) and len(rows) == data_rows + 1
    assert all(len(row) == len(rows[0]) for row in rows)
    link = answer(get(emu, ResponseMode=1, ReportPartID=21002))[2][0]
    assert requests.head(link, timeout=TIMEOUT).headers["Content-Length"] == str(size)
    tail = requests.get(link, headers={"Range": f"bytes={size - 100}-"}, timeout=TIMEOUT)
    assert tail.status_code == 206 and tail.content == path.read_bytes()[-100:]
    unc = answer(get(emu, ResponseMode=0, ReportPartID=21002))[2][0]
    assert emu.unc_to_local(unc).read_bytes() == path.read_bytes()
    emu.settings.csv_encoding, emu.settings.big_report_bytes = "utf-16", 300_000
    _path16, size16, rows16 = emu.big_report_info(21002)
    body = get(emu, ResponseMode=3, ReportPartID=21002).content
    assert len(body) == size16 and body.startswith(b"\xff\xfe")
    assert len(list(csv.reader(io.StringIO(body[2:].decode("utf-16-le"), newline="")))) == rows16 + 1


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_big_report_with_a_ragged_record(cloudmax_emulator: CloudmaxEmulator, encoding: str) -> None:
    """``big_report_ragged``: the start, middle or end record has one cell fewer; the others and the count stay."""
    emu = cloudmax_emulator
    emu.settings.csv_encoding, emu.settings.big_report_bytes = encoding, 300_000
    _, _, whole_rows = emu.big_report_info(21002)
    for where, index in (("start", 0), ("middle", whole_rows // 2), ("end", whole_rows - 1)):
        emu.settings.big_report_ragged = where
        path, size, data_rows = emu.big_report_info(21002)
        body = get(emu, ResponseMode=3, ReportPartID=21002).content
        assert body == path.read_bytes() and len(body) == size and data_rows == whole_rows
        text = body[2:].decode("utf-16-le") if encoding == "utf-16" else body.decode("utf-8")
        records = list(csv.reader(io.StringIO(text, newline="")))
        width = len(records[0])
        assert [i for i, r in enumerate(records[1:]) if len(r) != width] == [index], where
        assert len(records[1 + index]) == width - 1
    emu.settings.big_report_ragged = "start,end"
    records = list(
        csv.reader(
            io.StringIO(
                emu.big_report_info(21002)[0]
                .read_bytes()[2 if encoding == "utf-16" else 0 :]
                .decode("utf-16-le" if encoding == "utf-16" else "utf-8"),
                newline="",
            )
        )
    )
    assert [i for i, r in enumerate(records[1:]) if len(r) != len(records[0])] == [0, whole_rows - 1]
    emu.settings.big_report_ragged = "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        emu.big_report_info(21002)


# --- log, reset, plugin, CLI ----------------------------------------------------------------------


def test_request_log_and_reset(cloudmax_emulator: CloudmaxEmulator) -> None:
    emu = cloudmax_emulator
    assert emu.requests == []
    get(emu, LaunchID="1")
    requests.get(emu.endpoint_url, params=[("LaunchID", "1"), ("launchid", "2")], timeout=TIMEOUT)
    requests.get(emu.base_url + "/favicon.ico", timeout=TIMEOUT)
    link = answer(get(emu, ResponseMode=1))[2][0]
    requests.get(link, timeout=TIMEOUT)
    assert len(emu.requests) == 5 and len(emu.api_requests) == 3
    first: RecordedRequest = emu.api_requests[0]
    assert first.method == "GET" and first.query["LaunchID"] == "1" and first.field("launchid") == "1"
    assert first.body_size == 0 and first.time > 0
    assert emu.api_requests[1].fields == {"LaunchID": "1", "launchid": "2"}
    emu.clear_log()
    assert emu.requests == []
    emu.settings.rows_per_launch = 1
    emu.reset()
    assert emu.settings.rows_per_launch == 5 and emu.requests == []
    assert requests.get(link, timeout=TIMEOUT).status_code == 404  # prepared link files forgotten


def test_expected_rows_helpers() -> None:
    emu = CloudmaxEmulator()  # no server needed
    h, rows = emu.expected_rows("removals", "3, 4", START, END)
    assert h[0] == "CustomerID" and len(rows) == 10
    assert emu.expected_csv(31033, [3, 4], START, END).endswith("\r\n")


def test_cli() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudmax_provider.testing.emulator",
            "--port",
            "0",
            "--login",
            "cli",
            "--password",
            "pw",
            "--rows-per-launch",
            "2",
            "--time-format",
            "en-US",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        m = re.fullmatch(r"Cloudmax emulator listening on (http://127\.0\.0\.1:\d+/WebAPI/Report\.aspx)", line)
        assert m, line
        params = {**BASE, "ManagerLoginName": "CLI", "ManagerPassword": "pw", "ResponseMode": "2"}
        r = requests.get(m.group(1), params=params, timeout=TIMEOUT)
        assert r.status_code == 200 and len(r.text.strip().split("\r\n")) == 3
        assert re.search(r",1/1/2024 \d+:\d\d:\d\d [AP]M", r.text)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_latency_and_the_most_requests_in_flight(cloudmax_emulator: CloudmaxEmulator) -> None:
    """``latency`` delays every Report.aspx answer without being a fault; ``max_in_flight`` counts requests as they
    arrive and are answered: one at a time is 1, three threads waiting on the latency together are 3 at most."""
    import threading

    cloudmax_emulator.settings.latency = 0.3
    for _ in range(2):
        assert get(cloudmax_emulator, ResponseMode=2).status_code == 200
    assert cloudmax_emulator.max_in_flight == 1
    cloudmax_emulator.clear_log()
    assert cloudmax_emulator.max_in_flight == 0
    go = threading.Barrier(3)

    def ask() -> None:
        go.wait()
        assert get(cloudmax_emulator, ResponseMode=2).status_code == 200

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 < cloudmax_emulator.max_in_flight <= 3 and len(cloudmax_emulator.api_requests) == 3
    cloudmax_emulator.reset()
    assert cloudmax_emulator.max_in_flight == 0 and cloudmax_emulator.settings.latency == 0.0
