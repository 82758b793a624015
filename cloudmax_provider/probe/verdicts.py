"""The probe's table: for each thing the provider assumes or handles, what the server did, the verdict and
the exact connection extra or operator argument to set.

Statuses: ``ok`` (as expected), ``handled`` (the provider copes, nothing to set), ``setting`` (a setting
is chosen: check it), ``fail`` (not handled: set what ``fix`` says), ``skipped`` (not seen).

Example::

    >>> Row("method", "POST: HTTP 405", "not handled", "fail", "connection extra method=GET").failed
    True
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from cloudmax_provider.api.body import detect_encoding
from cloudmax_provider.api.catalog import ColumnType, get_report_part
from cloudmax_provider.api.connection import CloudmaxSettings
from cloudmax_provider.formats.cells import parse_cell_time
from cloudmax_provider.formats.encoding import iter_csv_records
from cloudmax_provider.probe.checks import Findings, LinkSeen, ProbeOptions, reached
from cloudmax_provider.probe.session import Seen

STATUS_WORDS = {
    "ok": "as expected",
    "handled": "handled",
    "setting": "setting chosen",
    "fail": "not handled",
    "skipped": "not seen",
}
_TIME_SHAPES = (
    ("zh-TW .NET (yyyy/M/d 上午|下午 hh:mm:ss)", re.compile(r"上午|下午")),
    ("en-US .NET (M/d/yyyy h:mm:ss AM|PM)", re.compile(r"\b(AM|PM)\b", re.IGNORECASE)),
    ("ISO (yyyy-MM-dd HH:mm:ss)", re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")),
    ("yyyy/M/d HH:mm:ss (24-hour)", re.compile(r"^\d{4}/\d{1,2}/\d{1,2} \d")),
)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    check: str
    seen: str
    verdict: str
    status: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(found: Findings, settings: CloudmaxSettings, options: ProbeOptions, answer_times: list[float]) -> list[Row]:
    """Every row of the table, in a fixed order."""
    rows = [_connection(found), *_methods(found, settings)]
    if found.use_method is not None:
        rows += _licences(found)
        rows += [_encoding(found), *_times(found, settings), _xml_shape(found)]
        rows += _link_rows(found, settings)
        rows.append(_xml_request(found, settings))
    rows.append(_answer_time(answer_times, settings, options))
    if found.stopped and "budget" in found.stopped:
        rows.append(Row("requests", found.stopped, "stopped early", "fail", "--max-requests (or fewer reports)"))
    return rows


def _connection(found: Findings) -> Row:
    if found.use_method is not None:
        return Row("connection", "the account is known (connection test answered)", "as expected", "ok")
    if found.stopped:
        return Row(
            "connection",
            found.stopped,
            "stopped at the first authentication failure",
            "fail",
            "the connection's login (ManagerLoginName) and password (ManagerPassword)",
        )
    seen = next(iter(found.methods.values()), None)
    what = seen.error or f"HTTP {seen.status} ({seen.kind})" if seen else "nothing sent"
    return Row("connection", what, "not reached", "fail", "the connection's host (Base URL) and the 'endpoint' extra")


def _describe(seen: Seen | None) -> str:
    if seen is None:
        return "not asked"
    if seen.error:
        return seen.error[:120]
    if seen.answer is not None:
        return f"HTTP {seen.status}, ErrorCode {seen.answer.error_code}"
    return f"HTTP {seen.status} ({seen.kind})"


def _methods(found: Findings, settings: CloudmaxSettings) -> list[Row]:
    mine = settings.method
    if not found.methods or mine not in found.methods:
        return []
    seen = "; ".join(f"{m}: {_describe(s)}" for m, s in found.methods.items())
    if reached(found.methods[mine]):
        if all(reached(s) for s in found.methods.values()):
            return [Row("HTTP method", seen, "as expected", "ok", f"method={mine} (connection extra; both work)")]
        return [Row("HTTP method", seen, f"{mine} only: as configured", "ok", f"keep method={mine} (connection extra)")]
    if found.use_method:
        return [Row("HTTP method", seen, f"{mine} refused", "fail", f"connection extra method={found.use_method}")]
    return [Row("HTTP method", seen, "neither method reached the API", "fail", "the connection's host and 'endpoint'")]


def _licences(found: Findings) -> list[Row]:
    rows = []
    for rid, answers in found.reports.items():
        first = answers.get(2)
        check = f"report {rid} ({get_report_part(rid).slug})"
        modes = ", ".join(f"{m}: {_describe(s) if s.kind != 'csv' else 'CSV'}" for m, s in answers.items())
        if first is not None and first.kind == "csv":
            rows.append(Row(check, f"licensed; ResponseMode {modes}", "as expected", "ok"))
        elif first is not None and first.error_code == 1000:
            rows.append(
                Row(
                    check,
                    f"ErrorCode 1000 {first.answer.error_msg if first.answer else ''}".strip(),
                    "no licence for this report",
                    "fail",
                    f"ask Cloudmax to license ReportPartID {rid} for the API account, or drop it",
                )
            )
        else:
            rows.append(
                Row(
                    check,
                    _describe(first),
                    "the report did not answer",
                    "fail",
                    "see docs/troubleshooting.md for this ErrorCode; --record a capture for a bug report",
                )
            )
    return rows


def _encoding(found: Findings) -> Row:
    if not found.csv:
        return Row("CSV encoding, BOM", "no CSV seen", "not seen", "skipped")
    kinds = set()
    for _rid, seen in found.csv:
        ctype = seen.headers.get("Content-Type", "")
        enc = detect_encoding(seen.body[:4096], ctype)
        kinds.add(f"{enc.name}{' with BOM' if enc.bom else ''} ({ctype or 'no Content-Type'})")
    seen_text = "; ".join(sorted(kinds))
    if all(k.startswith("utf-8 (") for k in kinds):
        return Row("CSV encoding, BOM", seen_text, "as expected", "ok", "output_encoding='utf-8' (operator; default)")
    return Row(
        "CSV encoding, BOM",
        seen_text,
        "handled: decoded by BOM / charset, BOM dropped",
        "handled",
        "output_encoding='utf-8' (operator; default) re-encodes; None keeps the bytes as served",
    )


def _time_cells(found: Findings, settings: CloudmaxSettings) -> tuple[set[str], list[str]]:
    from zoneinfo import ZoneInfo

    shapes: set[str] = set()
    unread: list[str] = []
    for rid, seen in found.csv:
        part = get_report_part(rid)
        enc = detect_encoding(seen.body[:4096], seen.headers.get("Content-Type"))
        records = iter_csv_records([seen.body], enc)
        header = next(records, [])
        columns = [i for i, name in enumerate(header) if part.type_of(name) is ColumnType.DATETIME]
        for n, cells in enumerate(records):
            if n >= 20:
                break
            for i in columns:
                text = cells[i].strip() if i < len(cells) else ""
                if not text:
                    continue
                shapes.add(next((name for name, rx in _TIME_SHAPES if rx.search(text)), f"other ({text[:30]!r})"))
                if parse_cell_time(text, ZoneInfo(settings.timezone)) is None:
                    unread.append(text[:40])
    return shapes, unread


def _times(found: Findings, settings: CloudmaxSettings) -> list[Row]:
    try:
        shapes, unread = _time_cells(found, settings)
    except Exception as exc:  # a body cut mid-record: the encoding row says enough
        return [Row("time format", f"unreadable CSV ({str(exc)[:80]})", "not seen", "skipped")]
    if not shapes:
        return [Row("time format", "no time cell seen", "not seen", "skipped", "--launch-id of a recent campaign")]
    seen = "; ".join(sorted(shapes))
    tz = Row(
        "timezone",
        "time cells carry no UTC offset",
        f"read in {settings.timezone}",
        "setting",
        f"connection extra timezone='{settings.timezone}' if that is the account's clock",
    )
    if unread:
        return [
            Row(
                "time format",
                f"{seen}; unread: {unread[:3]}",
                "not handled: kept as text",
                "fail",
                "report it with a --record capture (docs/troubleshooting.md)",
            ),
            tz,
        ]
    if shapes == {"ISO (yyyy-MM-dd HH:mm:ss)"}:
        return [Row("time format", seen, "as expected", "ok"), tz]
    return [Row("time format", seen, "handled: read as times", "handled"), tz]


def _xml_shape(found: Findings) -> Row:
    shapes: set[str] = set()
    for answers in found.reports.values():
        for seen in answers.values():
            if seen.kind != "xml":
                continue
            text = seen.body[:2048].decode("utf-8", "replace")
            decl = re.search(r"encoding\s*=\s*[\"']([^\"']+)", text[:200])
            body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text.lstrip("\ufeff"))
            root = re.match(r"\s*<([A-Za-z_][\w.:-]*)", body)
            tag = re.search(r"<(errorcode)\b", body, re.IGNORECASE)
            declared = f", declares {decl.group(1)}" if decl else ""
            shapes.add(f"<{root.group(1) if root else '?'}> <{tag.group(1) if tag else '?'}>{declared}")
    if not shapes:
        return Row("XML answer shape", "no XML answer seen", "not seen", "skipped")
    seen_text = "; ".join(sorted(shapes))
    if shapes <= {"<ROOT> <ERRORCODE>, declares utf-8", "<ROOT> <ERRORCODE>"}:
        return Row("XML answer shape", seen_text, "as expected", "ok")
    return Row("XML answer shape", seen_text, "handled: tags found by name in any case and root", "handled")


def _link_rows(found: Findings, settings: CloudmaxSettings) -> list[Row]:
    rows = []
    http = [link for link in found.links if link.kind == "http"]
    unc = [link for link in found.links if link.kind == "unc"]
    if http:
        rows += [_link_host(http, settings), _link_ready(http)]
    if unc:
        servers = sorted({link.host for link in unc})
        rows.append(
            Row(
                "UNC links (ResponseMode 0)",
                f"\\\\{servers[0]}\\... ({len(unc)} link(s))",
                "read over SMB: needs a samba connection",
                "setting",
                f"operator smb_conn_id='<a samba connection to {servers[0]}>', or response_mode=1",
            )
        )
    split = [link for link in found.links if link.count > 1]
    if split:
        rows.append(
            Row(
                "several links per answer",
                f"{split[0].count} DOWNLOADLINKs for one request",
                "handled: read one after the other",
                "handled",
                "one_object_per_link=True (operator) lands one object per link",
            )
        )
    if not http and not unc:
        rows.append(Row("DOWNLOADLINKs", "no link answered (ResponseMode 0/1)", "not seen", "skipped"))
    return rows


def _link_host(http: list[LinkSeen], settings: CloudmaxSettings) -> Row:
    hosts = sorted({link.host for link in http})
    refused = [link for link in http if link.refused]
    seen = f"HTTP links on {', '.join(hosts)}"
    if refused:
        allowed = sorted({*settings.allowed_link_hosts, *(link.host for link in refused)})
        return Row(
            "link host", seen, "refused: not the API's host", "fail", f"connection extra allowed_link_hosts={allowed}"
        )
    if hosts == [settings.api_host]:
        return Row("link host", seen, "as expected (the API's host)", "ok")
    return Row(
        "link host",
        seen,
        "allowed by allowed_link_hosts",
        "ok",
        f"allowed_link_hosts={list(settings.allowed_link_hosts)}",
    )


def _link_ready(http: list[LinkSeen]) -> Row:
    first = [link for link in http if link.attempts and not link.refused]
    if not first:
        return Row("link readiness", "no link fetched", "not seen", "skipped")
    late = max(first, key=lambda link: link.attempts)
    if any(link.ready is False for link in first):
        bad = next(link for link in first if link.ready is False)
        return Row(
            "link readiness",
            f"not ready after {bad.attempts} GET(s): {bad.last}",
            "the file did not come",
            "setting",
            "operator link_timeout= (seconds; default 6 h), deferrable=True to wait in the triggerer",
        )
    if late.attempts == 1:
        return Row("link readiness", "files ready at once", "as expected", "ok")
    return Row(
        "link readiness",
        f"files ready after {late.attempts} GETs (404 until then)",
        "handled: the operator waits for them",
        "handled",
        "operator deferrable=True (or poll_interval=), link_timeout= bounds the wait",
    )


def _xml_request(found: Findings, settings: CloudmaxSettings) -> Row:
    seen = found.xml_request
    if seen is None:
        return Row("XmlRequest", "not asked (no report answered)", "not seen", "skipped")
    if seen.kind == "csv":
        return Row(
            "XmlRequest",
            "accepted (the report came)",
            "as expected",
            "ok",
            f"request_format='{settings.request_format}' (connection extra; 'xml' also works)",
        )
    if settings.request_format in ("xml", "xml_file"):
        return Row(
            "XmlRequest",
            f"refused: {_describe(seen)}",
            "not handled",
            "fail",
            "connection extra request_format='fields'",
        )
    return Row(
        "XmlRequest",
        f"refused: {_describe(seen)}",
        "handled: fields are used",
        "handled",
        "keep request_format='fields' (connection extra; default)",
    )


def _answer_time(times: list[float], settings: CloudmaxSettings, options: ProbeOptions) -> Row:
    if not times:
        return Row("answer time", "no answer", "not seen", "skipped")
    slowest = max(times)
    seen = f"slowest {slowest:.2f} s of {len(times)} answer(s)"
    if slowest < options.slow_after:
        return Row("answer time", seen, f"as expected (under {options.slow_after:g} s)", "ok")
    advice = f"connection extra timeout={max(60, int(slowest * 4) + 1)}"
    if settings.timeout < slowest * 4:
        return Row(
            "answer time",
            seen,
            f"slow (over {options.slow_after:g} s), near timeout={settings.timeout:g}",
            "fail",
            advice,
        )
    return Row(
        "answer time",
        seen,
        f"slow (over {options.slow_after:g} s); timeout={settings.timeout:g} covers it",
        "setting",
        f"keep timeout={settings.timeout:g} or more (connection extra); big reports: a destination (streamed)",
    )
