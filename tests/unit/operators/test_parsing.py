"""The pure helpers shared by sync and async code: encodings, times, CSV, filenames, links, catalog."""

from __future__ import annotations

import codecs
import csv
import io
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cloudmax_provider.api.body import Encoding, detect_encoding, safe_filename, sniff_kind
from cloudmax_provider.api.catalog import REMOVAL_STATUSES, REPORT_PARTS, ColumnType, get_report_part
from cloudmax_provider.api.request import redact_url
from cloudmax_provider.api.response import parse_api_xml, parse_redirect
from cloudmax_provider.exceptions import CloudmaxLinkError, CloudmaxResponseError
from cloudmax_provider.formats.cells import RowTyper, parse_cell_time
from cloudmax_provider.formats.encoding import iter_csv_records, transcode
from cloudmax_provider.formats.row_counter import CsvRowCounter
from cloudmax_provider.formats.streams import csv_body
from cloudmax_provider.links.download_link import DownloadLink, LinkState, check_link_allowed, judge_http_probe

TZ = ZoneInfo("Asia/Taipei")
TEXT = (
    'ID,Subject,SubmitTime\r\n1,"雙11 限時優惠, ""加碼""\r\n第二行",2026/11/1 下午 01:02:03\r\n'
    "2,上午,2026-11-01 00:00:00\r\n"
)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_catalog_is_complete():
    assert set(REPORT_PARTS) == {
        11001,
        11002,
        11003,
        11004,
        20001,
        20003,
        20005,
        21001,
        2100199,
        21002,
        21003,
        21032,
        30023,
        31033,
    }
    send = get_report_part(20001)
    assert "RemoveUnsubscribeCount" in send.column_names and send.type_of("Status") is ColumnType.INT
    assert get_report_part(31033).type_of("Status") is ColumnType.TEXT
    assert get_report_part("click_details").type_of("Latitude") is ColumnType.FLOAT
    assert get_report_part("21003").type_of("ReturnLogID") is ColumnType.INT
    assert get_report_part(21002).type_of("CustomerID") is ColumnType.TEXT
    assert get_report_part(30023).type_of("OpenEmailRate") is ColumnType.FLOAT
    assert get_report_part(11001).columns is None
    assert REMOVAL_STATUSES[0] == "Invalid" and len(REMOVAL_STATUSES) == 7
    with pytest.raises(ValueError, match="31033 \\(removals\\)"):
        get_report_part("nope")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le-bom", "utf-16-be-bom"])
@pytest.mark.parametrize("size", [1, 3, 7, 4096])
def test_transcode_and_parse_across_any_chunk_boundary(encoding, size):
    if encoding == "utf-16-le-bom":
        raw = codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le")
    elif encoding == "utf-16-be-bom":
        raw = codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be")
    else:
        raw = TEXT.encode(encoding)
    enc = detect_encoding(raw[:4096])
    assert b"".join(transcode(chunked(raw, size), enc, "utf-8")) == TEXT.encode()
    records = list(iter_csv_records(chunked(raw, size), enc))
    assert records == list(csv.reader(io.StringIO(TEXT, newline="")))
    counter = CsvRowCounter()
    for chunk in chunked(TEXT.encode(), size):
        counter.feed(chunk)
    assert counter.records == 3  # header + 2 rows, one with a quoted newline


@pytest.mark.parametrize("codec", ["utf_16_le", "utf_16_be", "cp950", "gb18030", "utf_8"])
@pytest.mark.parametrize("piece", [1, 5, 64 << 10])
def test_transcode_in_pieces_splits_characters_anywhere(monkeypatch, codec, piece):
    """Big chunks are transcoded in pieces of TRANSCODE_PIECE bytes: a character cut between two pieces
    (or two chunks) comes out whole, and the output equals a one-shot decode + encode."""
    import cloudmax_provider.formats.encoding as encoding_module

    monkeypatch.setattr(encoding_module, "TRANSCODE_PIECE", piece)
    text = "LaunchID,名稱,City\r\n" + "".join(f'{i},"臺北市 {i}",板橋區\r\n' for i in range(3000))
    raw = text.encode(codec)
    enc = Encoding(codec, 0)
    for size in (len(raw), 100_003, 65_537):
        out = b"".join(transcode(chunked(raw, size), enc, "utf-8"))
        assert out == text.encode("utf-8"), (size, piece)


def test_encoding_from_content_type_and_nul_bytes():
    assert detect_encoding(b"a,b\r\n", "text/csv; charset=utf-16").codec == "utf_16_le"
    assert detect_encoding("a,b".encode("utf-16-le")).codec == "utf_16_le"
    assert detect_encoding(b"a,b", "text/csv").codec == "utf_8"
    assert detect_encoding(codecs.BOM_UTF8 + b"a").bom == 3


def test_header_is_dropped_from_later_links_across_chunks():
    body = TEXT.encode("utf-16-le")
    out = b"".join(csv_body(False, chunked(codecs.BOM_UTF16_LE + body, 5), Encoding("utf_16_le", 2), "utf-8"))
    assert out == TEXT.split("\r\n", 1)[1].encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01 13:02:03", datetime(2026, 11, 1, 13, 2, 3)),
        ("2026/11/01 13:02:03", datetime(2026, 11, 1, 13, 2, 3)),
        ("2026/1/5 上午 12:30:00", datetime(2026, 1, 5, 0, 30)),
        ("2026/1/5 下午 12:30:00", datetime(2026, 1, 5, 12, 30)),
        ("2026/1/5 下午 01:30:00", datetime(2026, 1, 5, 13, 30)),
        ("1/5/2026 1:30:00 PM", datetime(2026, 1, 5, 13, 30)),
        ("1/5/2026 12:00:00 AM", datetime(2026, 1, 5, 0, 0)),
        ("2026-11-01T08:00:00.1234567", datetime(2026, 11, 1, 8, 0, 0, 123456)),
        ("2026-11-01", datetime(2026, 11, 1)),
    ],
)
def test_every_dotnet_time_form(text, expected):
    assert parse_cell_time(text, TZ) == expected.replace(tzinfo=TZ)


@pytest.mark.parametrize("text", ["2026-13-01 00:00:00", "2026/1/5 下午 13:30:00", "yesterday", ""])
def test_bad_times_are_not_times(text):
    assert parse_cell_time(text, TZ) is None


def test_a_cell_that_does_not_fit_stays_text_and_is_logged_once(caplog):
    caplog.set_level(logging.WARNING)
    typer = RowTyper(get_report_part(21002), ["ClickID", "Latitude", "SubmitTime"], TZ)
    rows = [typer.type_row(["x1", "n/a", "soon"]), typer.type_row(["x2", "", "2026-11-01 00:00:00"])]
    assert rows[0] == {"ClickID": "x1", "Latitude": "n/a", "SubmitTime": "soon"}
    assert rows[1]["Latitude"] is None and rows[1]["ClickID"] == "x2"
    assert caplog.text.count("ClickID") == 1


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ("attachment; filename*=UTF-8''%E7%A7%BB%E9%99%A4.csv", "移除.csv"),
        ('attachment; filename="C:\\\\evil\\\\r<e>p|o?r*t.csv"', "r_e_p_o_r_t.csv"),
        ('attachment; filename=".."', "report.csv"),
        (None, "report.csv"),
    ],
)
def test_attachment_filenames_are_made_safe(header, name):
    assert safe_filename(header) == name


def test_xml_answers():
    assert (
        parse_api_xml(b"<ROOT><ERRORCODE>103</ERRORCODE><ERRORMSG>Incorrect ReportPartID</ERRORMSG></ROOT>").error_code
        == 103
    )
    utf16 = (
        '<?xml version="1.0" encoding="utf-16"?><a><ErrorCode>0</ErrorCode>'
        "<downloadlink>\\\\S\\r\\1.csv</downloadlink></a>"
    )
    assert parse_api_xml(codecs.BOM_UTF16_LE + utf16.encode("utf-16-le")).links == ("\\\\S\\r\\1.csv",)
    assert parse_api_xml(utf16.encode()).links == ("\\\\S\\r\\1.csv",)
    with pytest.raises(CloudmaxResponseError, match="ERRORCODE"):
        parse_api_xml(b"<html><body>hi</body></html>")
    with pytest.raises(CloudmaxResponseError, match="unreadable"):
        parse_api_xml(b"<ROOT><ERRORCODE>")
    assert sniff_kind(b"\xef\xbb\xbf<?xml version='1.0'?><R/>") == "xml"
    assert sniff_kind(b"<!DOCTYPE html><html>") == "html"
    assert sniff_kind(b"LaunchID,Subject\r\n") == "csv"


def test_redirect_answers():
    answer = parse_redirect("http://x/y?errorcode=110&ErrorMsg=Invalid+time+format")
    assert answer is not None and answer.error_code == 110 and answer.error_msg == "Invalid time format"
    assert parse_redirect("http://x/y?DownloadLink=http%3A%2F%2Fh%2Fa.csv&ErrorCode=0").links == ("http://h/a.csv",)
    assert parse_redirect("http://x/thanks") is None


def test_links_and_allowed_hosts():
    unc = DownloadLink.parse("\\\\CMXFILE01\\reports\\a\\b.csv")
    assert (unc.kind, unc.host, unc.filename) == ("unc", "cmxfile01", "b.csv")
    http = DownloadLink.parse("https://files.itpison.com/r/1.csv?x=1")
    assert (http.kind, http.filename) == ("http", "1.csv")
    check_link_allowed(http, "api.itpison.com", ["*.itpison.com"])
    with pytest.raises(CloudmaxLinkError, match="allowed_link_hosts"):
        check_link_allowed(http, "api.itpison.com", [])
    for bad in ("ftp://x/y.csv", "file:///etc/passwd", "\\\\onlyserver", ""):
        with pytest.raises(CloudmaxLinkError):
            DownloadLink.parse(bad)


@pytest.mark.parametrize(
    ("status", "headers", "head", "state"),
    [
        (206, {"Content-Range": "bytes 0-3/1000"}, b"a,b\r", LinkState.READY),
        (200, {"Content-Length": "4"}, b"a,b\r", LinkState.READY),
        (404, {}, b"", LinkState.PENDING),
        (503, {}, b"", LinkState.PENDING),
        (200, {"Content-Length": "0"}, b"", LinkState.PENDING),
        (403, {}, b"", LinkState.FAILED),
        (410, {}, b"", LinkState.FAILED),
        (200, {"Content-Type": "text/html"}, b"<html>oops</html>", LinkState.FAILED),
        (200, {}, b"<ROOT><ERRORCODE>100</ERRORCODE></ROOT>", LinkState.FAILED),
    ],
)
def test_link_probe_judgement(status, headers, head, state):
    probe = judge_http_probe("http://h/a.csv", status, headers, head)
    assert probe.state is state
    if state is LinkState.READY:
        assert probe.size in (1000, 4)


def test_redact_url():
    url = "http://h/WebAPI/Report.aspx?ManagerLoginName=a&managerpassword=s%3Ccret&XmlRequest=%3CR%3E"
    assert redact_url(url) == "http://h/WebAPI/Report.aspx?ManagerLoginName=a&managerpassword=***&XmlRequest=***"
    assert redact_url("http://u:pw@h/x") == "http://h/x"
