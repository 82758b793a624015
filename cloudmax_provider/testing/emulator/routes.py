"""The Report.aspx route: the request's fields (query, form, multipart, XML parameters), their validation in
the spec's order, and its answers (the report, DOWNLOADLINKs, XML errors, redirects)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit
from xml.sax.saxutils import escape as xml_escape

from aiohttp import ClientSession, ClientTimeout, web
from lxml import etree

from cloudmax_provider.api.catalog import REPORT_PARTS
from cloudmax_provider.testing.emulator.data import BigReports, charset, csv_bytes, parse_time
from cloudmax_provider.testing.emulator.faults import FaultCounters, hostile_reply, window_fault_reply
from cloudmax_provider.testing.emulator.links import LinkHost
from cloudmax_provider.testing.emulator.settings import (
    ERROR_MESSAGES,
    LOGIN_FAILED_MSG,
    EmulatorSettings,
    Reply,
    xml_reply,
)
from cloudmax_provider.testing.rows import (
    LANGUAGE_ENGLISH,
    LANGUAGE_TRADITIONAL_CHINESE,
    ColumnSpecError,
    apply_custom_columns,
    report_header,
)


class RouteContext(Protocol):
    """What Report.aspx's routes need of the emulator (``app.RouteContext``; no import of it: app imports us)."""

    settings: EmulatorSettings
    _big: BigReports
    _faults: FaultCounters
    _link_host: LinkHost


__all__ = ["ApiError", "Query", "report_aspx", "validate", "xml_params"]

_LAUNCH_RE = re.compile(r"^\d{1,10}$")
_CUSTOM_RE = re.compile(r"^customcolname(\d*)$", re.IGNORECASE)
_KEYWORD_RE = re.compile(
    r"%(omisquerystring|errorcode|errormsg|launchid|userid|customerid|reportpath|jobid)%", re.IGNORECASE
)


class ApiError(Exception):
    """A request Report.aspx answers with an ErrorCode (and the spec's message unless given)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message if message is not None else ERROR_MESSAGES[code]


@dataclass
class Query:
    """A valid Report.aspx request."""

    part_id: int
    launch_ids: list[int]
    start: datetime
    end: datetime
    mode: int
    language: int | None
    columns: list[str]


# --- fields ---------------------------------------------------------------------------------------


def merge(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fields from (name, value) pairs; a name given again has its values joined with ``,``."""
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


def parse_multipart(ctype: str, body: bytes) -> tuple[list[tuple[str, str]], dict[str, bytes], dict[str, str]]:
    """Fields, file contents and file names of a multipart/form-data body."""
    raw = b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + body
    msg = BytesParser(policy=policy.HTTP).parsebytes(raw)
    pairs: list[tuple[str, str]] = []
    files: dict[str, bytes] = {}
    filenames: dict[str, str] = {}
    if not isinstance(msg, EmailMessage) or not msg.is_multipart():
        return pairs, files, filenames
    for part in msg.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        name = _fix_surrogates(name)
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = data
            filenames[name] = _fix_surrogates(filename)
        else:
            charset = part.get_content_charset() or "utf-8"
            pairs.append((name, data.decode(charset, "replace")))
    return pairs, files, filenames


def _fix_surrogates(text: str) -> str:
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return text


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def xml_params(data: bytes) -> dict[str, str]:
    """Fields from an XML parameter document (children of the root element)."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    data = data.strip()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        # the .NET quirk: declared utf-16, bytes utf-8 (or a text field that lost its BOM)
        stripped = re.sub(rb"^\s*<\?xml[^>]*\?>", b"", data)
        try:
            root = etree.fromstring(stripped, parser)
        except etree.XMLSyntaxError as exc:
            raise ApiError(102) from exc
    if root is None:
        raise ApiError(102)
    out: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):
            name = etree.QName(child).localname
            out[name.lower()] = "".join(str(t) for t in child.itertext()).strip()
    return out


async def with_xml(low: dict[str, str], files: dict[str, bytes], filenames: dict[str, str]) -> dict[str, str]:
    """The fields with those of XmlRequest, XmlReqUrl and XmlReqFilePath under them (request fields win)."""
    xml: dict[str, str] = {}
    if low.get("xmlrequest", "").strip():
        xml.update(xml_params(low["xmlrequest"].encode("utf-8")))
    url = low.get("xmlrequrl", "").strip()
    if url:
        xml.update(xml_params(await fetch_xml(url)))
    for key, content in files.items():
        if key.lower() == "xmlreqfilepath":
            if not filenames.get(key, "").lower().endswith(".xml"):
                raise ApiError(102)
            xml.update(xml_params(content))
    if not xml:
        return low
    merged = dict(xml)
    merged.update({k: v for k, v in low.items() if k not in ("xmlrequest", "xmlrequrl", "xmlreqfilepath")})
    return merged


async def fetch_xml(url: str) -> bytes:
    """XmlReqUrl's document: http(s) on a loopback host, a path ending in ``.xml``, 5 s at most."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not _is_loopback(parts.hostname)
        or not parts.path.lower().endswith(".xml")
    ):
        raise ApiError(102)
    try:
        async with ClientSession(timeout=ClientTimeout(total=5)) as session, session.get(url) as resp:
            if resp.status != 200:
                raise ApiError(102)
            return await resp.read()
    except ApiError:
        raise
    except Exception as exc:
        raise ApiError(102) from exc


# --- validation -----------------------------------------------------------------------------------


def validate(s: EmulatorSettings, p: dict[str, str]) -> Query:
    """The request checked in the spec's order; raises :class:`ApiError` with the first failing check's code."""
    login, password = p.get("managerloginname"), p.get("managerpassword")
    if login is None or password is None:
        raise ApiError(102)
    accounts = {k.lower(): v for k, v in s.accounts.items()}
    if accounts.get(login.strip().lower()) != password:
        raise ApiError(100, LOGIN_FAILED_MSG)
    rid = p.get("reportpartid", "").strip()
    if not rid:
        raise ApiError(102)
    if not rid.isdigit() or int(rid) not in REPORT_PARTS:
        raise ApiError(103)
    part_id = int(rid)
    if s.licensed_reports is not None and part_id not in s.licensed_reports:
        raise ApiError(1000)
    items = [i.strip() for i in p.get("launchid", "").split(",")]
    if items and items[-1] == "":
        items.pop()
    if not items or not all(_LAUNCH_RE.match(i) for i in items) or any(int(i) == 0 for i in items):
        raise ApiError(102)
    launch_ids = list(dict.fromkeys(int(i) for i in items))
    start_text, end_text = p.get("starttime", "").strip(), p.get("endtime", "").strip()
    if not start_text or not end_text:
        raise ApiError(102)
    try:
        start, end = parse_time(start_text), parse_time(end_text)
    except ValueError as exc:
        raise ApiError(110) from exc
    if end <= start:
        raise ApiError(102)
    mode_text = p.get("responsemode", "").strip() or "0"
    if mode_text not in ("0", "1", "2", "3"):
        raise ApiError(102)
    lang_text = p.get("reportcharactersetid", "").strip()
    language: int | None = None
    if lang_text:
        if lang_text not in (str(LANGUAGE_TRADITIONAL_CHINESE), str(LANGUAGE_ENGLISH)):
            raise ApiError(102)
        language = int(lang_text) if part_id == 31033 else None
    return Query(part_id, launch_ids, start, end, int(mode_text), language, _custom_columns(part_id, p))


def _custom_columns(part_id: int, p: dict[str, str]) -> list[str]:
    """CustomColName then CustomColName1..99 by number; 102 for a bad number or an unknown/duplicate column."""
    numbered: list[tuple[int, str]] = []
    for key, value in p.items():
        m = _CUSTOM_RE.match(key)
        if m:
            num = int(m.group(1)) if m.group(1) else 0
            if m.group(1) and not 1 <= num <= 99:
                raise ApiError(102)
            if value.strip():
                numbered.append((num, value))
    columns = [v for _n, v in sorted(numbered)]
    try:
        apply_custom_columns(report_header(part_id), [], columns)
    except ColumnSpecError as exc:
        raise ApiError(102) from exc
    return columns


# --- answers --------------------------------------------------------------------------------------


def report_name(part_id: int, launch_ids: Sequence[int], start: datetime, end: datetime) -> str:
    """``Report_<ReportPartID>_<LaunchIDs>_<start>_<end>`` (more than four LaunchIDs: ``<first>-and-<n>-more``)."""
    ids = (
        "-".join(str(i) for i in launch_ids)
        if len(launch_ids) <= 4
        else f"{launch_ids[0]}-and-{len(launch_ids) - 1}-more"
    )
    return f"Report_{part_id}_{ids}_{start:%Y%m%d%H%M%S}_{end:%Y%m%d%H%M%S}"


def redirect_or_xml(
    s: EmulatorSettings, low: dict[str, str], code: int, message: str, links: Sequence[str], launch_text: str
) -> Reply:
    """A 302 to ReferUrl/SuccessfulUrl/FailedUrl with its keywords filled in, or else the XML answer."""
    target = low.get("referurl", "").strip()
    if not target:
        if code == 0:
            target = (low.get("successfulurl") or low.get("successfulur") or "").strip()
        else:
            target = low.get("failedurl", "").strip()
    if not target:
        return xml_reply(s, code, message, links)
    link_text = ",".join(links)
    values = {
        "errorcode": str(code),
        "errormsg": message,
        "launchid": launch_text,
        "userid": "",
        "customerid": "",
        "reportpath": link_text,
        "jobid": "",
    }
    omis = urlencode([("ErrorCode", str(code)), ("ErrorMsg", message), ("DownloadLink", link_text)], quote_via=quote)

    def fill(m: re.Match[str]) -> str:
        key = m.group(1).lower()
        return omis if key == "omisquerystring" else quote(values[key], safe="")

    location = _KEYWORD_RE.sub(fill, target)
    return Reply(
        302,
        {"Location": location, "Content-Type": "text/html; charset=utf-8"},
        f'<html><body>Object moved to <a href="{xml_escape(location)}">here</a>.</body></html>'.encode(),
    )


async def report_aspx(
    emu: RouteContext,
    request: web.Request,
    fields: dict[str, str],
    files: dict[str, bytes],
    filenames: dict[str, str],
    trace: list[Any] | None = None,
) -> Reply:
    """The answer to a request to Report.aspx (``trace[1]`` gets the fault applied, if any)."""
    s = emu.settings
    if s.answer_with:
        return hostile_reply(s.answer_with)
    method = "GET" if request.method == "HEAD" else request.method
    allowed = {"both": ["GET", "HEAD", "POST"], "get": ["GET", "HEAD"], "post": ["POST"]}[s.methods.lower()]
    if method not in allowed:
        return Reply(
            405,
            {"Allow": ", ".join(allowed), "Content-Type": "text/html; charset=utf-8"},
            b"<html><body><h1>405 Method Not Allowed</h1></body></html>",
        )
    low: dict[str, str] = {}
    for k, v in fields.items():
        low[k.lower()] = f"{low[k.lower()]},{v}" if k.lower() in low else v
    launch_text = low.get("launchid", "").strip()
    if s.refuse_xml_request:  # a server whose Web.config leaves the XML parameters off
        low = {k: v for k, v in low.items() if k not in ("xmlrequest", "xmlrequrl")}
        files = {k: v for k, v in files.items() if k.lower() != "xmlreqfilepath"}
    try:
        params = await with_xml(low, files, filenames)
        launch_text = params.get("launchid", "").strip()
        q = validate(s, params)
    except ApiError as err:
        return redirect_or_xml(s, low, err.code, err.message, [], launch_text)
    if emu._faults.window_fault(q.start):
        if trace is not None:
            trace[1] = "StartTime in a fail window"
        return window_fault_reply(s)
    big: tuple[Path, int, int] | None = None
    if s.big_report_bytes > 0:
        big = await asyncio.get_running_loop().run_in_executor(
            None, emu._big.get, q.part_id, s.csv_encoding, s.big_report_bytes, s.time_format, s.big_report_ragged
        )
    if q.mode in (2, 3):
        return _report_body(emu, q, big)
    links = await _links(emu, q, big)
    return redirect_or_xml(s, low, 0, "", links, ",".join(str(i) for i in q.launch_ids))


def _report_body(emu: RouteContext, q: Query, big: tuple[Path, int, int] | None) -> Reply:
    """Modes 2 and 3: the CSV as the body (mode 3 as an attachment)."""
    s = emu.settings
    headers = {"Content-Type": f"text/csv; charset={charset(s.csv_encoding)}"}
    if q.mode == 3:
        name = report_name(q.part_id, q.launch_ids, q.start, q.end)
        zh = f"{REPORT_PARTS[q.part_id].name_zh.replace(' ', '')}_{'-'.join(str(i) for i in q.launch_ids[:4])}.csv"
        headers["Content-Disposition"] = f"attachment; filename=\"{name}.csv\"; filename*=UTF-8''{quote(zh)}"
        if s.attachment_filename is not None:
            headers["Content-Disposition"] = f'attachment; filename="{s.attachment_filename}"'
    if big is not None:
        return Reply(200, headers, path=big[0])
    return Reply(200, headers, csv_bytes(s, q.part_id, q.launch_ids, q.start, q.end, q.columns, q.language))


async def _links(emu: RouteContext, q: Query, big: tuple[Path, int, int] | None) -> list[str]:
    """Modes 0 and 1: one file per link (per LaunchID with ``split_links``), the links to them."""
    s = emu.settings
    ctype = f"text/csv; charset={charset(s.csv_encoding)}"
    groups = [[i] for i in q.launch_ids] if s.split_links else [q.launch_ids]
    links: list[str] = []
    for ids in groups:
        fname = f"{report_name(q.part_id, ids, q.start, q.end)}.csv"
        token = uuid.uuid4().hex
        if q.mode == 1 and s.link_filename:
            fname = s.link_filename
        source = big[0] if big is not None else csv_bytes(s, q.part_id, ids, q.start, q.end, q.columns, q.language)
        if q.mode == 1:
            links.append(emu._link_host.http_link(token, fname, source, ctype))
        else:
            links.append(await emu._link_host.unc_file(token, fname, source))
    return links
