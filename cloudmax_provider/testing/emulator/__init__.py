r"""A local emulator of Cloudmax's ``/WebAPI/Report.aspx`` (aiohttp in a background thread).

Use it from tests (or the ``cloudmax_emulator`` pytest fixture)::

    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    with CloudmaxEmulator() as emu:
        r = requests.get(emu.endpoint_url, params={"ManagerLoginName": "demo", ...})
        header, rows = emu.expected_rows(2100199, [1234], "2024-01-01 00:00:00", "2024-01-02 00:00:00")

or from a shell: ``python -m cloudmax_provider.testing.emulator --port 8080``.

Choices made where the spec is open (all of them are covered by ``tests/test_emulator.py``):

* **Fields.** GET query, POST ``application/x-www-form-urlencoded`` and ``multipart/form-data`` are
  merged (query first); names are case-insensitive. A field given several times (in any case) has
  its values joined with ``,`` like ASP.NET's ``Request.Params`` (so ``LaunchID=1&LaunchID=2`` is
  ``1,2``). Values are stripped of surrounding whitespace, except ManagerPassword (compared as sent).
  Unknown fields are ignored; ``CustomColName0`` or ``CustomColName100`` and up are 102.
* **XML parameters.** ``XmlRequest`` (a field), ``XmlReqUrl`` (http(s) URL on a loopback host,
  path ending in ``.xml``, fetched by the emulator with a 5 s timeout) and ``XmlReqFilePath``
  (a multipart upload whose file name ends in ``.xml``) supply fields as the children of the root
  element (any root name; element text is stripped). Request fields override XML ones. XML is parsed
  with lxml with entities unresolved, no network and no DTD; an XML declaring ``encoding="utf-16"``
  whose bytes are UTF-8 is accepted. A broken XML, a non-loopback or non-``.xml`` URL, an unreachable
  URL, or an upload not named ``*.xml`` is 102 Incorrect Request.
* **Validation order and codes.** method (HTTP 405 + ``Allow``) -> XML parameters (102) ->
  ManagerLoginName/ManagerPassword absent (102) -> wrong credentials (100, ErrorMsg
  ``Login failed: incorrect ManagerLoginName or ManagerPassword``; login case-insensitive, password
  case-sensitive) -> ReportPartID absent (102), not an integer or not in the catalog (103) -> not
  licensed (1000) -> LaunchID absent or not a comma list of positive ints (102; duplicates are
  dropped, order kept) -> StartTime/EndTime absent (102), unparsable (110), EndTime not after
  StartTime (102) -> ResponseMode not 0-3 (102) -> ReportCharacterSetID not 17/117 (102) ->
  CustomColName unknown or duplicate column (102). ``fail_with="exception"`` gives 100 ``Exception``.
* **Times accepted.** ``yyyy-MM-dd HH:mm:ss`` (24-hour), also ``yyyy-MM-dd HH:mm``, ``yyyy-MM-dd``
  (midnight), a ``T`` instead of the space and one-digit month/day/hour. Anything else is 110.
* **ReportCharacterSetID.** 17 or 117 are accepted for every report but honoured only by 31033: with
  17 its ``Status`` cells are Chinese (:data:`~cloudmax_provider.testing.rows.REMOVAL_STATUSES_ZH`),
  with 117 or absent English (``REMOVAL_STATUSES``). Headers never change language.
* **CustomColName.** ``CustomColName`` (no number) comes first, then ``CustomColName1..99`` by number;
  each is ``Col`` or ``Col,NewName``; column names are case-sensitive; the field names are not.
* **Data.** See :mod:`cloudmax_provider.testing.rows` (deterministic per ReportPartID, LaunchID and
  window; detail reports ``rows_per_launch`` rows per LaunchID, summaries one; invented headers for
  11001-11004 and 21001).
* **Answers.** XML ``<ROOT><ERRORCODE/><ERRORMSG/><DOWNLOADLINK/>...</ROOT>`` UTF-8, Content-Type
  ``text/xml; charset=utf-8``; errors carry one empty DOWNLOADLINK. Mode 0 writes
  ``<unc_root>/<token>/<name>.csv`` and answers ``\\<unc_server>\<unc_share>\<token>\<name>.csv``;
  mode 1 answers ``<link_base_url>/WebAPI/ReportFiles/<token>/<name>.csv`` (GET/HEAD/Range via
  aiohttp's FileResponse, ``text/csv; charset=...``); mode 2 the CSV as the body
  (``text/csv; charset=...``); mode 3 the CSV with ``Content-Disposition: attachment;
  filename="<name>.csv"; filename*=UTF-8''<中文報表名>_<LaunchIDs>.csv``. ``<name>`` is
  ``Report_<ReportPartID>_<LaunchIDs joined by ->_<yyyyMMddHHmmss start>_<end>`` (more than four
  LaunchIDs: ``<first>-and-<n>-more``). ``split_links`` makes one link (file) per LaunchID in modes 0/1
  only; modes 2/3 always send one CSV.
* **Redirects.** ``ReferUrl`` always wins; else ``SuccessfulUrl`` (or the spec's ``SuccessfulUr``)
  when ErrorCode is 0 and ``FailedUrl`` when it is > 0. A 302 is sent instead of the XML in modes 0/1
  and for errors in every mode; in modes 2/3 a success ignores them and sends the report. Keywords
  (case-insensitive): ``%omisquerystring%`` = ``ErrorCode=..&ErrorMsg=..&DownloadLink=..`` (several links
  joined by ``,``), ``%errorcode%``, ``%errormsg%``, ``%reportpath%`` (the link(s)), ``%launchid%`` (the
  normalised LaunchID list), and ``%userid%``, ``%customerid%``, ``%jobid%`` which Report.aspx never
  returns, so they become empty. Values are URL-encoded.
* **Faults.** A request matches when ``fault_paths`` is ``all`` or names its kind (``api`` =
  Report.aspx, ``links`` = ``/WebAPI/ReportFiles/...``). With ``fail_first = N > 0`` only the first N
  matching requests (counted since ``reset()`` or since ``fail_first`` last changed) are faulted; with
  ``fail_first = 0`` every matching request is. A faulted request waits ``delay`` and then gets
  ``truncate_body`` / ``drop_mid_body`` applied to its normal answer, or, when neither is set and
  ``fail_first > 0``, the ``fail_with`` answer instead of the normal one: an HTTP status, ``"reset"``
  (the connection aborted), ``"exception"`` (ErrorCode 100 "Exception") or ``"error:<code>"`` (that
  ErrorCode with the spec's message, e.g. ``"error:110"``).
* **Faults by window.** ``fail_start_windows`` (pairs of times, ``yyyy-MM-dd HH:mm:ss``): a valid
  Report.aspx request whose StartTime falls in one of these ``[from, to)`` windows gets HTTP ``fail_with``
  (503 unless that is an int status) — only the first ``fail_start_first`` such requests when it is > 0
  (counted since ``reset()``), every one when it is 0. Independent of ``fail_first`` and ``fault_paths``.
* **Big reports.** ``big_report_bytes > 0`` replaces the report body of modes 1-3 and the files of
  mode 0 by a cached CSV of at least that many bytes (whole rows) for the ReportPartID, regardless of
  LaunchID, window or CustomColName; see :meth:`CloudmaxEmulator.big_report_info`.
* **Link redirects.** With ``link_redirect_to`` set (a base URL), a link file first answers 302 to the
  same path under that base (with ``?hop=1``), as a file server handing off to a CDN would.
* **Hostile answers.** ``answer_with`` replaces every Report.aspx answer (after recording the request):
  ``"empty"`` (200, no body), ``"html"`` (200, an HTML error page), ``"foreign_xml"`` (200, XML that is
  not the spec's: no ERRORCODE), ``"xxe"`` (an external entity naming ``/etc/passwd``),
  ``"entity_expansion"`` (a "billion laughs" DTD), ``"oversized_xml"`` (a spec answer padded past
  2 MiB with DOWNLOADLINK elements). ``attachment_filename`` replaces mode 3's file name in
  Content-Disposition and ``link_filename`` the file name of mode 1 links (``"../../x.csv"`` is sent
  %-encoded as one path segment).
* **Extras.** :meth:`CloudmaxEmulator.serve_file` serves bytes under ``/static/<name>`` (e.g. an
  ``.xml`` for XmlReqUrl); ``link_requests``, ``unc_root_path`` and ``unc_to_local()`` help tests.
* **reset()** restores the settings the emulator was constructed with (library defaults when none
  were given), in place on the same ``settings`` object, and forgets the log, the fault count, prepared
  link files, pending mode-0 writes and ``serve_file`` files (the big-report cache is kept).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import ipaddress
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from xml.sax.saxutils import escape as xml_escape

from aiohttp import ClientSession, ClientTimeout, web
from lxml import etree

from cloudmax_provider.reports import REPORT_PARTS, get_report_part
from cloudmax_provider.testing.rows import (
    LANGUAGE_ENGLISH,
    LANGUAGE_TRADITIONAL_CHINESE,
    ColumnSpecError,
    apply_custom_columns,
    generate_rows,
    launch_rows,
    report_header,
    to_csv,
)

__all__ = [
    "API_PATH",
    "LINK_PREFIX",
    "LOGIN_FAILED_MSG",
    "CloudmaxEmulator",
    "EmulatorSettings",
    "RecordedRequest",
    "main",
]

API_PATH = "/WebAPI/Report.aspx"
LINK_PREFIX = "/WebAPI/ReportFiles/"
STATIC_PREFIX = "/static/"
LOGIN_FAILED_MSG = "Login failed: incorrect ManagerLoginName or ManagerPassword"
_ERROR_MESSAGES = {
    100: "Exception",
    102: "Incorrect Request",
    103: "Incorrect ReportPartID",
    110: "Invalid time format",
    1000: "No Licence at Page",
}
_NOT_FOUND_HTML = (
    "<!DOCTYPE html>\r\n<html><head><title>404 - File or directory not found.</title></head>\r\n"
    "<body><h2>404 - File or directory not found.</h2>\r\n"
    "<p>The resource you are looking for might have been removed, had its name changed, "
    "or is temporarily unavailable.</p></body></html>\r\n"
)
_TIME_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?$")
_LAUNCH_RE = re.compile(r"^\d{1,10}$")
_CUSTOM_RE = re.compile(r"^customcolname(\d*)$", re.IGNORECASE)
_KEYWORD_RE = re.compile(
    r"%(omisquerystring|errorcode|errormsg|launchid|userid|customerid|reportpath|jobid)%", re.IGNORECASE
)
_ENCODINGS = ("utf-8", "utf-8-sig", "utf-16")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (recorded before answering)."""

    method: str
    path: str
    query: dict[str, str]
    fields: dict[str, str]
    files: dict[str, bytes]
    headers: dict[str, str]
    body_size: int
    time: float

    def field(self, name: str, default: str | None = None) -> str | None:
        """A field by case-insensitive name."""
        low = name.lower()
        return next((v for k, v in self.fields.items() if k.lower() == low), default)


@dataclass
class EmulatorSettings:
    """Live behaviour switches; mutate them at runtime, the next request sees the change."""

    accounts: dict[str, str] = field(default_factory=lambda: {"demo": "demo-password"})
    licensed_reports: set[int] | None = None
    methods: str = "both"  # "both" | "GET" | "POST"
    csv_encoding: str = "utf-8"  # "utf-8" | "utf-8-sig" | "utf-16" (LE with BOM)
    time_format: str = "iso"  # "iso" | "zh-TW" | "en-US"
    rows_per_launch: int = 5
    xml_root: str = "ROOT"
    xml_utf16_declaration: bool = False
    xml_tag_case: str = "upper"  # "upper" | "mixed"
    link_ready_after: float = 0.0
    split_links: bool = False
    link_base_url: str | None = None
    link_redirect_to: str | None = None  # a base URL: link files answer 302 there first (a CDN hand-off)
    unc_root: str | None = None
    unc_server: str = "CMXFILE01"
    unc_share: str = "reports"
    big_report_bytes: int = 0
    fail_first: int = 0
    fail_with: int | str = 503  # HTTP status | "exception" (ErrorCode 100) | "error:<ErrorCode>" | "reset"
    retry_after: int | None = None
    delay: float = 0.0
    truncate_body: bool = False
    drop_mid_body: bool = False
    fault_paths: str = "all"  # "all" | "api" | "links"
    answer_with: str | None = None  # "empty" | "html" | "foreign_xml" | "xxe" | "entity_expansion" | "oversized_xml"
    attachment_filename: str | None = None  # mode 3's Content-Disposition file name, as given
    link_filename: str | None = None  # the file name in mode 0/1 links, as given
    fail_start_windows: list[tuple[str, str]] = field(default_factory=list)  # StartTime in [from, to) -> fail_with
    fail_start_first: int = 0  # only the first N requests in fail_start_windows fail (0: all)


class _ApiError(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message if message is not None else _ERROR_MESSAGES[code]


@dataclass
class _Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    path: Path | None = None


@dataclass
class _Fault:
    delay: float
    fail_with: int | str | None
    truncate: bool
    drop: bool


@dataclass
class _LinkFile:
    name: str
    path: Path
    ready_at: float
    content_type: str


@dataclass
class _Query:
    part_id: int
    launch_ids: list[int]
    start: datetime
    end: datetime
    mode: int
    language: int | None
    columns: list[str]


def parse_time(value: str) -> datetime:
    """Parse StartTime/EndTime as the emulator does; raises ValueError (-> 110)."""
    m = _TIME_RE.match(value.strip())
    if not m:
        raise ValueError(value)
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return datetime(y, mo, d, h, mi, s)


def _as_time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else parse_time(value)


def _as_launch_ids(value: int | str | Iterable[int]) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        return [int(p) for p in value.split(",") if p.strip()]
    return [int(v) for v in value]


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return text.encode("utf-8")
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if encoding == "utf-16":
        return b"\xff\xfe" + text.encode("utf-16-le")
    raise ValueError(f"csv_encoding={encoding!r}; use one of {_ENCODINGS}")


def _charset(encoding: str) -> str:
    return "utf-16" if encoding == "utf-16" else "utf-8"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _xml_params(data: bytes) -> dict[str, str]:
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
            raise _ApiError(102) from exc
    if root is None:
        raise _ApiError(102)
    out: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):
            name = etree.QName(child).localname
            out[name.lower()] = "".join(str(t) for t in child.itertext()).strip()
    return out


def _merge(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in pairs:
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


class CloudmaxEmulator:
    """The Report.aspx emulator; see the module docstring for behaviour."""

    def __init__(self, settings: EmulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings if settings is not None else EmulatorSettings()
        self._baseline = copy.deepcopy(self.settings)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._log: list[RecordedRequest] = []
        self._links: dict[str, _LinkFile] = {}
        self._static: dict[str, tuple[bytes, str]] = {}
        self._pending: list[asyncio.TimerHandle] = []
        self._held_unc: list[tuple[asyncio.TimerHandle, Callable[[], None]]] = []  # UNC files not written yet
        self._faults_served = 0
        self._fail_first_seen = self.settings.fail_first
        self._window_faults_served = 0
        self._big_lock = threading.Lock()
        self._big: dict[tuple[int, str, int, str], tuple[Path, int, int]] = {}
        self._workdir: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        # Called in the server's thread after each answer: (request, HTTP status, fault applied or "").
        # The CLI's request log and --scenario use it; a slow callback delays the next request.
        self.on_answer: Callable[[RecordedRequest, int, str], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> CloudmaxEmulator:
        """Start serving in a background thread; returns once the socket listens."""
        if self._thread is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="cloudmax-emulator-"))
        for sub in ("links", "unc", "big"):
            (self._workdir / sub).mkdir()
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, errors), name="cloudmax-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve_start())
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _serve_start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        addrs = self._runner.addresses
        self.port = int(addrs[0][1])

    def stop(self) -> None:
        """Stop the server and remove its temporary directory."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._big.clear()

    def __enter__(self) -> CloudmaxEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public helpers ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def endpoint_url(self) -> str:
        return self.base_url + API_PATH

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (API, links, anything), oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def api_requests(self) -> list[RecordedRequest]:
        """The requests to Report.aspx."""
        return [r for r in self.requests if r.path.lower() == API_PATH.lower()]

    @property
    def link_requests(self) -> list[RecordedRequest]:
        """The requests to HTTP download links (``/WebAPI/ReportFiles/...``)."""
        return [r for r in self.requests if r.path.lower().startswith(LINK_PREFIX.lower())]

    @property
    def unc_root_path(self) -> Path:
        """The directory mode 0 writes to (``settings.unc_root`` or the emulator's temp dir)."""
        if self.settings.unc_root:
            return Path(self.settings.unc_root)
        return self._work("unc")

    def unc_to_local(self, unc_path: str) -> Path:
        r"""Map ``\\server\share\a\b.csv`` (as answered in mode 0) to the local file under unc_root."""
        parts = [p for p in unc_path.replace("/", "\\").split("\\") if p]
        return self.unc_root_path.joinpath(*parts[2:])

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def reset(self) -> None:
        """Construction-time settings (in place), empty log, no fault count, no prepared link files."""
        base = copy.deepcopy(self._baseline)
        for f in dataclasses.fields(EmulatorSettings):
            setattr(self.settings, f.name, getattr(base, f.name))
        with self._lock:
            self._log.clear()
            self._faults_served = 0
            self._fail_first_seen = self.settings.fail_first
            self._window_faults_served = 0
            self._links.clear()
            self._static.clear()
            pending, self._pending = self._pending, []
            self._held_unc.clear()
        if self._loop is not None:
            for handle in pending:
                self._loop.call_soon_threadsafe(handle.cancel)
        if self._workdir is not None:
            for sub in ("links", "unc"):
                shutil.rmtree(self._workdir / sub, ignore_errors=True)
                (self._workdir / sub).mkdir(exist_ok=True)

    def restart_fault_counts(self) -> None:
        """Count ``fail_first`` and ``fail_start_first`` afresh (as ``reset()`` does), keeping everything else."""
        with self._lock:
            self._faults_served = 0
            self._fail_first_seen = self.settings.fail_first
            self._window_faults_served = 0

    def serve_file(self, name: str, content: bytes | str, content_type: str = "application/xml") -> str:
        """Serve ``content`` at ``/static/<name>`` (e.g. an ``.xml`` for XmlReqUrl); returns its URL."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        with self._lock:
            self._static[name.lstrip("/")] = (data, content_type)
        return f"{self.base_url}{STATIC_PREFIX}{quote(name.lstrip('/'))}"

    def expected_rows(
        self,
        report_part_id: int | str,
        launch_ids: int | str | Iterable[int],
        start: str | datetime,
        end: str | datetime,
        columns: Sequence[str | tuple[str, str]] | None = None,
        language: int | None = None,
    ) -> tuple[list[str], list[list[str]]]:
        """Header and cells the server would serve now (current settings) for that request.

        ``columns`` are CustomColName values in order (``"Col"``, ``"Col,NewName"`` or tuples).
        """
        part = get_report_part(report_part_id)
        s = self.settings
        return generate_rows(
            part.id,
            _as_launch_ids(launch_ids),
            _as_time(start),
            _as_time(end),
            columns=columns,
            rows_per_launch=s.rows_per_launch,
            time_format=s.time_format,
            language=language if part.supports_language else None,
        )

    def expected_csv(
        self,
        report_part_id: int | str,
        launch_ids: int | str | Iterable[int],
        start: str | datetime,
        end: str | datetime,
        columns: Sequence[str | tuple[str, str]] | None = None,
        language: int | None = None,
    ) -> str:
        """The CSV text (CRLF line ends) as served, before byte encoding."""
        return to_csv(*self.expected_rows(report_part_id, launch_ids, start, end, columns, language))

    def release_links(self) -> int:
        """Make every link file prepared so far ready now, however long ``link_ready_after`` was: HTTP links
        answer, UNC files are written to the share.

        Lets a test hold files back (``link_ready_after`` large) until the moment it chooses, e.g. after
        restarting Airflow's triggerer. Returns the number of link files.
        """
        with self._lock:
            now = time.monotonic()
            for link in self._links.values():
                link.ready_at = min(link.ready_at, now)
            held, self._held_unc = self._held_unc, []
        for handle, write in held:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(handle.cancel)
            write()
        return len(self._links) + len(held)

    def big_report_info(self, report_part_id: int | str) -> tuple[Path, int, int]:
        """(path, size in bytes, data rows) of the big-report file for the current settings.

        Generates it if needed (``settings.big_report_bytes`` must be > 0); the file is what the
        server sends (same bytes, encoding included) whenever ``big_report_bytes`` is set.
        """
        s = self.settings
        if s.big_report_bytes <= 0:
            raise ValueError("settings.big_report_bytes is 0")
        return self._big_report(get_report_part(report_part_id).id, s.csv_encoding, s.big_report_bytes, s.time_format)

    def big_report_path(self, report_part_id: int | str) -> Path:
        return self.big_report_info(report_part_id)[0]

    # --- internals -----------------------------------------------------------------------------

    def _work(self, sub: str) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="cloudmax-emulator-"))
        path = self._workdir / sub
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _big_report(self, part_id: int, encoding: str, size: int, time_format: str) -> tuple[Path, int, int]:
        key = (part_id, encoding, size, time_format)
        with self._big_lock:
            hit = self._big.get(key)
            if hit is not None and hit[0].exists():
                return hit
            path = self._work("big") / f"big_{part_id}_{encoding}_{size}_{time_format}.csv"
            header = report_header(part_id)
            start, end = datetime(2024, 1, 1), datetime(2024, 1, 8)
            block_rows: list[list[str]] = []
            launch = 1000
            while len(block_rows) < 200:
                block_rows.extend(
                    launch_rows(
                        part_id,
                        launch,
                        start,
                        end,
                        rows_per_launch=50,
                        time_format=time_format,
                        language=LANGUAGE_ENGLISH,
                    )
                )
                launch += 1
            block_rows = block_rows[:200]
            head = _encode(to_csv(header, []), encoding)
            row_enc = "utf-8" if encoding == "utf-8-sig" else encoding
            encoded_rows = [
                to_csv([], [r]).encode("utf-16-le") if row_enc == "utf-16" else to_csv([], [r]).encode("utf-8")
                for r in block_rows
            ]
            # to_csv([], ...) starts with an empty header line "\r\n": drop it
            nl = "\r\n".encode("utf-16-le") if row_enc == "utf-16" else b"\r\n"
            encoded_rows = [e[len(nl) :] for e in encoded_rows]
            block = b"".join(encoded_rows)
            tmp = path.with_suffix(".tmp")
            written, rows = len(head), 0
            with open(tmp, "wb") as fh:
                fh.write(head)
                while written + len(block) <= size:
                    fh.write(block)
                    written += len(block)
                    rows += len(block_rows)
                i = 0
                while written < size:
                    fh.write(encoded_rows[i])
                    written += len(encoded_rows[i])
                    rows += 1
                    i += 1
            os.replace(tmp, path)
            info = (path, written, rows)
            self._big[key] = info
            return info

    def _record(
        self,
        request: web.BaseRequest,
        query: dict[str, str],
        fields: dict[str, str],
        files: dict[str, bytes],
        body_size: int,
    ) -> RecordedRequest:
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        rec = RecordedRequest(request.method, request.path, query, fields, files, headers, body_size, time.time())
        with self._lock:
            self._log.append(rec)
        return rec

    def _fault_for(self, kind: str) -> _Fault | None:
        s = self.settings
        if not (
            s.fault_paths == "all"
            or (s.fault_paths == "api" and kind == "api")
            or (s.fault_paths == "links" and kind == "link")
        ):
            return None
        body_fault = s.truncate_body or s.drop_mid_body
        with self._lock:
            if s.fail_first != self._fail_first_seen:
                self._fail_first_seen = s.fail_first
                self._faults_served = 0
            if s.fail_first > 0:
                if self._faults_served >= s.fail_first:
                    return None
                self._faults_served += 1
            elif not (body_fault or s.delay > 0):
                return None
        fail_with = s.fail_with if (s.fail_first > 0 and not body_fault) else None
        return _Fault(s.delay, fail_with, s.truncate_body, s.drop_mid_body and not s.truncate_body)

    def _window_fault(self, start: datetime) -> bool:
        """True when StartTime falls in ``fail_start_windows`` and the ``fail_start_first`` budget allows."""
        s = self.settings
        if not any(parse_time(a) <= start < parse_time(b) for a, b in s.fail_start_windows):
            return False
        with self._lock:
            if s.fail_start_first > 0 and self._window_faults_served >= s.fail_start_first:
                return False
            self._window_faults_served += 1
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        trace: list[Any] = [None, ""]  # the RecordedRequest, the fault applied
        resp = await self._handle_request(request, trace)
        callback = self.on_answer
        if callback is not None and trace[0] is not None:
            callback(trace[0], resp.status, trace[1])
        return resp

    async def _handle_request(self, request: web.Request, trace: list[Any]) -> web.StreamResponse:
        body = await request.read()
        pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        query = _merge(pairs)
        files: dict[str, bytes] = {}
        filenames: dict[str, str] = {}
        ctype = request.headers.get("Content-Type", "")
        if body and ctype.lower().startswith("application/x-www-form-urlencoded"):
            charset = request.charset or "utf-8"
            pairs += parse_qsl(body.decode(charset, "replace"), keep_blank_values=True, encoding=charset)
        elif body and ctype.lower().startswith("multipart/form-data"):
            form_pairs, files, filenames = _parse_multipart(ctype, body)
            pairs += form_pairs
        fields = _merge(pairs)
        trace[0] = self._record(request, query, fields, files, len(body))

        path_low = request.path.lower()
        kind = (
            "api" if path_low == API_PATH.lower() else "link" if path_low.startswith(LINK_PREFIX.lower()) else "other"
        )
        fault = self._fault_for(kind)
        if fault is not None:
            trace[1] = _fault_note(fault)
        if fault and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault and fault.fail_with is not None:
            if fault.fail_with == "reset":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault.fail_with == "exception":
                reply = self._xml_reply(100, "Exception", [])
            elif isinstance(fault.fail_with, str) and fault.fail_with.startswith("error:"):
                code = int(fault.fail_with.removeprefix("error:"))
                reply = self._xml_reply(code, _ERROR_MESSAGES.get(code, f"Error {code}"), [])
            else:
                status = int(fault.fail_with)
                headers = {"Content-Type": "text/html; charset=utf-8"}
                if self.settings.retry_after is not None:
                    headers["Retry-After"] = str(self.settings.retry_after)
                reply = _Reply(status, headers, f"<html><body><h1>HTTP {status}</h1></body></html>".encode())
            return await self._send(request, reply, None)

        if kind == "api":
            reply = await self._api(request, fields, files, filenames, trace)
        elif kind == "link":
            reply = self._link(request)
        elif path_low.startswith(STATIC_PREFIX) and request.path[len(STATIC_PREFIX) :] in self._static:
            data, ct = self._static[request.path[len(STATIC_PREFIX) :]]
            reply = _Reply(200, {"Content-Type": ct}, data)
        else:
            reply = _Reply(404, {"Content-Type": "text/html; charset=utf-8"}, _NOT_FOUND_HTML.encode())
        return await self._send(request, reply, fault)

    async def _send(self, request: web.Request, reply: _Reply, fault: _Fault | None) -> web.StreamResponse:
        if fault is None or not (fault.truncate or fault.drop):
            if reply.path is not None:
                return web.FileResponse(reply.path, status=reply.status, headers=reply.headers)
            return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
        total = reply.path.stat().st_size if reply.path is not None else len(reply.body)
        half = total // 2
        resp = web.StreamResponse(status=reply.status, headers=reply.headers)
        if fault.truncate:
            resp.content_length = total
        else:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        if reply.path is not None:
            with open(reply.path, "rb") as fh:
                left = half
                while left > 0:
                    chunk = fh.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    await resp.write(chunk)
                    left -= len(chunk)
        elif half:
            await resp.write(reply.body[:half])
        await asyncio.sleep(0.05)
        if request.transport is not None:
            if fault.truncate:
                request.transport.close()
            else:
                request.transport.abort()
        return resp

    def _link(self, request: web.Request) -> _Reply:
        target = self.settings.link_redirect_to
        if target and "hop" not in request.query:
            location = f"{target.rstrip('/')}{request.path}?hop=1"
            return _Reply(302, {"Location": location, "Content-Type": "text/html; charset=utf-8"}, b"")
        rest = request.path[len(LINK_PREFIX) :]
        token, _, name = rest.partition("/")
        with self._lock:
            link = self._links.get(token)
        not_found = _Reply(404, {"Content-Type": "text/html; charset=utf-8"}, _NOT_FOUND_HTML.encode())
        if link is None or link.name != name or time.monotonic() < link.ready_at or not link.path.exists():
            return not_found
        if request.method not in ("GET", "HEAD"):
            return _Reply(405, {"Allow": "GET, HEAD", "Content-Type": "text/plain"}, b"Method Not Allowed")
        return _Reply(200, {"Content-Type": link.content_type}, path=link.path)

    # --- Report.aspx ---------------------------------------------------------------------------

    def _xml_reply(self, code: int, message: str, links: Sequence[str]) -> _Reply:
        s = self.settings
        t_code, t_msg, t_link = (
            ("ERRORCODE", "ERRORMSG", "DOWNLOADLINK")
            if s.xml_tag_case == "upper"
            else ("ErrorCode", "ErrorMsg", "DownloadLink")
        )
        enc = "utf-16" if s.xml_utf16_declaration else "utf-8"
        lines = [
            f'<?xml version="1.0" encoding="{enc}"?>',
            f"<{s.xml_root}>",
            f"  <{t_code}>{code}</{t_code}>",
            f"  <{t_msg}>{xml_escape(message)}</{t_msg}>",
        ]
        lines += [f"  <{t_link}>{xml_escape(link)}</{t_link}>" for link in (links or [""])]
        lines.append(f"</{s.xml_root}>")
        return _Reply(200, {"Content-Type": "text/xml; charset=utf-8"}, ("\r\n".join(lines) + "\r\n").encode())

    def _hostile_reply(self, kind: str) -> _Reply:
        xml = {"Content-Type": "text/xml; charset=utf-8"}
        if kind == "empty":
            return _Reply(200, {"Content-Type": "text/csv; charset=utf-8"}, b"")
        if kind == "html":
            page = b"<!DOCTYPE html><html><head><title>Runtime Error</title></head><body><h1>Error</h1></body></html>"
            return _Reply(200, {"Content-Type": "text/html; charset=utf-8"}, page)
        if kind == "foreign_xml":
            envelope = b'<?xml version="1.0"?><soap:Envelope xmlns:soap="urn:x"><Fault>x</Fault></soap:Envelope>'
            return _Reply(200, xml, envelope)
        if kind == "xxe":
            return _Reply(
                200,
                xml,
                b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b"<ROOT><ERRORCODE>0</ERRORCODE><ERRORMSG>&x;</ERRORMSG><DOWNLOADLINK>&x;</DOWNLOADLINK></ROOT>",
            )
        if kind == "entity_expansion":
            dtd = (
                '<!ENTITY a0 "'
                + "x" * 64
                + '">'
                + "".join(f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 16}">' for i in range(1, 10))
            )
            body = f'<?xml version="1.0"?><!DOCTYPE r [{dtd}]><ROOT><ERRORCODE>0</ERRORCODE><ERRORMSG>&a9;</ERRORMSG>'
            return _Reply(200, xml, (body + "</ROOT>").encode())
        if kind == "oversized_xml":
            pad = b"<DOWNLOADLINK>http://127.0.0.1/WebAPI/ReportFiles/x/y.csv</DOWNLOADLINK>" * 40_000
            return _Reply(200, xml, b"<ROOT><ERRORCODE>0</ERRORCODE><ERRORMSG></ERRORMSG>" + pad + b"</ROOT>")
        raise ValueError(f"answer_with={kind!r}")

    async def _api(
        self,
        request: web.Request,
        fields: dict[str, str],
        files: dict[str, bytes],
        filenames: dict[str, str],
        trace: list[Any] | None = None,
    ) -> _Reply:
        s = self.settings
        if s.answer_with:
            return self._hostile_reply(s.answer_with)
        method = "GET" if request.method == "HEAD" else request.method
        allowed = {"both": ["GET", "HEAD", "POST"], "get": ["GET", "HEAD"], "post": ["POST"]}[s.methods.lower()]
        if method not in allowed:
            return _Reply(
                405,
                {"Allow": ", ".join(allowed), "Content-Type": "text/html; charset=utf-8"},
                b"<html><body><h1>405 Method Not Allowed</h1></body></html>",
            )
        low: dict[str, str] = {}
        for k, v in fields.items():
            low[k.lower()] = f"{low[k.lower()]},{v}" if k.lower() in low else v
        launch_text = low.get("launchid", "").strip()
        try:
            params = await self._with_xml(low, files, filenames)
            launch_text = params.get("launchid", "").strip()
            q = self._validate(params)
        except _ApiError as err:
            return self._redirect_or_xml(low, err.code, err.message, [], launch_text)
        if self._window_fault(q.start):
            if trace is not None:
                trace[1] = "StartTime in a fail window"
            status = s.fail_with if isinstance(s.fail_with, int) else 503
            return _Reply(status, {"Content-Type": "text/html; charset=utf-8"}, f"<html>HTTP {status}</html>".encode())
        launch_text = ",".join(str(i) for i in q.launch_ids)
        loop = asyncio.get_running_loop()
        big: tuple[Path, int, int] | None = None
        if s.big_report_bytes > 0:
            big = await loop.run_in_executor(
                None, self._big_report, q.part_id, s.csv_encoding, s.big_report_bytes, s.time_format
            )
        part = REPORT_PARTS[q.part_id]
        name = _report_name(q.part_id, q.launch_ids, q.start, q.end)
        ctype = f"text/csv; charset={_charset(s.csv_encoding)}"
        if q.mode in (2, 3):
            headers = {"Content-Type": ctype}
            if q.mode == 3:
                zh = f"{part.name_zh.replace(' ', '')}_{'-'.join(str(i) for i in q.launch_ids[:4])}.csv"
                headers["Content-Disposition"] = f"attachment; filename=\"{name}.csv\"; filename*=UTF-8''{quote(zh)}"
                if s.attachment_filename is not None:
                    headers["Content-Disposition"] = f'attachment; filename="{s.attachment_filename}"'
            if big is not None:
                return _Reply(200, headers, path=big[0])
            return _Reply(200, headers, self._csv_bytes(q, q.launch_ids))
        groups = [[i] for i in q.launch_ids] if s.split_links else [q.launch_ids]
        links: list[str] = []
        for ids in groups:
            fname = f"{_report_name(q.part_id, ids, q.start, q.end)}.csv"
            token = uuid.uuid4().hex
            if q.mode == 1 and s.link_filename:
                fname = s.link_filename
            if q.mode == 1:
                links.append(await self._prepare_http_link(q, ids, token, fname, big, ctype))
            else:
                links.append(await self._prepare_unc_file(q, ids, token, fname, big))
        return self._redirect_or_xml(low, 0, "", links, launch_text)

    def _csv_bytes(self, q: _Query, launch_ids: Sequence[int]) -> bytes:
        s = self.settings
        header, rows = generate_rows(
            q.part_id,
            launch_ids,
            q.start,
            q.end,
            columns=q.columns or None,
            rows_per_launch=s.rows_per_launch,
            time_format=s.time_format,
            language=q.language,
        )
        return _encode(to_csv(header, rows), s.csv_encoding)

    async def _prepare_http_link(
        self, q: _Query, ids: Sequence[int], token: str, fname: str, big: tuple[Path, int, int] | None, ctype: str
    ) -> str:
        s = self.settings
        if big is not None:
            path = big[0]
        else:
            folder = self._work("links") / token
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / ("link_filename.csv" if s.link_filename else fname)  # a hostile name stays off disk
            path.write_bytes(self._csv_bytes(q, ids))
        with self._lock:
            self._links[token] = _LinkFile(fname, path, time.monotonic() + max(0.0, s.link_ready_after), ctype)
        base = (s.link_base_url or self.base_url).rstrip("/")
        return f"{base}{LINK_PREFIX}{token}/{quote(fname, safe='')}"

    async def _prepare_unc_file(
        self, q: _Query, ids: Sequence[int], token: str, fname: str, big: tuple[Path, int, int] | None
    ) -> str:
        s = self.settings
        subdir = token[:16]
        target = self.unc_root_path / subdir / fname
        data = None if big is not None else self._csv_bytes(q, ids)
        source = big[0] if big is not None else None

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{fname}.{uuid.uuid4().hex[:8]}.tmp")
            if source is not None:
                shutil.copyfile(source, tmp)
            else:
                assert data is not None
                tmp.write_bytes(data)
            os.replace(tmp, target)

        loop = asyncio.get_running_loop()
        if s.link_ready_after > 0:
            handle = loop.call_later(s.link_ready_after, lambda: loop.run_in_executor(None, write))
            with self._lock:
                self._pending.append(handle)
                self._held_unc.append((handle, write))
        else:
            await loop.run_in_executor(None, write)
        return f"\\\\{s.unc_server}\\{s.unc_share}\\{subdir}\\{fname}"

    async def _with_xml(
        self, low: dict[str, str], files: dict[str, bytes], filenames: dict[str, str]
    ) -> dict[str, str]:
        xml: dict[str, str] = {}
        if low.get("xmlrequest", "").strip():
            xml.update(_xml_params(low["xmlrequest"].encode("utf-8")))
        url = low.get("xmlrequrl", "").strip()
        if url:
            xml.update(_xml_params(await self._fetch_xml(url)))
        for key, content in files.items():
            if key.lower() == "xmlreqfilepath":
                if not filenames.get(key, "").lower().endswith(".xml"):
                    raise _ApiError(102)
                xml.update(_xml_params(content))
        if not xml:
            return low
        merged = dict(xml)
        merged.update({k: v for k, v in low.items() if k not in ("xmlrequest", "xmlrequrl", "xmlreqfilepath")})
        return merged

    async def _fetch_xml(self, url: str) -> bytes:
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not _is_loopback(parts.hostname)
            or not parts.path.lower().endswith(".xml")
        ):
            raise _ApiError(102)
        try:
            async with ClientSession(timeout=ClientTimeout(total=5)) as session, session.get(url) as resp:
                if resp.status != 200:
                    raise _ApiError(102)
                return await resp.read()
        except _ApiError:
            raise
        except Exception as exc:
            raise _ApiError(102) from exc

    def _validate(self, p: dict[str, str]) -> _Query:
        s = self.settings
        login, password = p.get("managerloginname"), p.get("managerpassword")
        if login is None or password is None:
            raise _ApiError(102)
        accounts = {k.lower(): v for k, v in s.accounts.items()}
        if accounts.get(login.strip().lower()) != password:
            raise _ApiError(100, LOGIN_FAILED_MSG)
        rid = p.get("reportpartid", "").strip()
        if not rid:
            raise _ApiError(102)
        if not rid.isdigit() or int(rid) not in REPORT_PARTS:
            raise _ApiError(103)
        part_id = int(rid)
        if s.licensed_reports is not None and part_id not in s.licensed_reports:
            raise _ApiError(1000)
        items = [i.strip() for i in p.get("launchid", "").split(",")]
        if items and items[-1] == "":
            items.pop()
        if not items or not all(_LAUNCH_RE.match(i) for i in items) or any(int(i) == 0 for i in items):
            raise _ApiError(102)
        launch_ids = list(dict.fromkeys(int(i) for i in items))
        start_text, end_text = p.get("starttime", "").strip(), p.get("endtime", "").strip()
        if not start_text or not end_text:
            raise _ApiError(102)
        try:
            start, end = parse_time(start_text), parse_time(end_text)
        except ValueError as exc:
            raise _ApiError(110) from exc
        if end <= start:
            raise _ApiError(102)
        mode_text = p.get("responsemode", "").strip() or "0"
        if mode_text not in ("0", "1", "2", "3"):
            raise _ApiError(102)
        lang_text = p.get("reportcharactersetid", "").strip()
        language: int | None = None
        if lang_text:
            if lang_text not in (str(LANGUAGE_TRADITIONAL_CHINESE), str(LANGUAGE_ENGLISH)):
                raise _ApiError(102)
            language = int(lang_text) if part_id == 31033 else None
        numbered: list[tuple[int, str]] = []
        for key, value in p.items():
            m = _CUSTOM_RE.match(key)
            if m:
                num = int(m.group(1)) if m.group(1) else 0
                if m.group(1) and not 1 <= num <= 99:
                    raise _ApiError(102)
                if value.strip():
                    numbered.append((num, value))
        columns = [v for _n, v in sorted(numbered)]
        try:
            apply_custom_columns(report_header(part_id), [], columns)
        except ColumnSpecError as exc:
            raise _ApiError(102) from exc
        return _Query(part_id, launch_ids, start, end, int(mode_text), language, columns)

    def _redirect_or_xml(
        self, low: dict[str, str], code: int, message: str, links: Sequence[str], launch_text: str
    ) -> _Reply:
        target = low.get("referurl", "").strip()
        if not target:
            if code == 0:
                target = (low.get("successfulurl") or low.get("successfulur") or "").strip()
            else:
                target = low.get("failedurl", "").strip()
        if not target:
            return self._xml_reply(code, message, links)
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
        omis = urlencode(
            [("ErrorCode", str(code)), ("ErrorMsg", message), ("DownloadLink", link_text)], quote_via=quote
        )

        def fill(m: re.Match[str]) -> str:
            key = m.group(1).lower()
            return omis if key == "omisquerystring" else quote(values[key], safe="")

        location = _KEYWORD_RE.sub(fill, target)
        return _Reply(
            302,
            {"Location": location, "Content-Type": "text/html; charset=utf-8"},
            f'<html><body>Object moved to <a href="{xml_escape(location)}">here</a>.</body></html>'.encode(),
        )


def _fault_note(fault: _Fault) -> str:
    """How a faulted request is answered, for the request log."""
    notes = [f"delay {fault.delay:g}s"] if fault.delay > 0 else []
    if fault.fail_with is not None:
        notes.append(f"fail-with {fault.fail_with}")
    if fault.truncate:
        notes.append("body cut short of its Content-Length")
    if fault.drop:
        notes.append("connection dropped mid-body")
    return ", ".join(notes)


def _report_name(part_id: int, launch_ids: Sequence[int], start: datetime, end: datetime) -> str:
    ids = (
        "-".join(str(i) for i in launch_ids)
        if len(launch_ids) <= 4
        else f"{launch_ids[0]}-and-{len(launch_ids) - 1}-more"
    )
    return f"Report_{part_id}_{ids}_{start:%Y%m%d%H%M%S}_{end:%Y%m%d%H%M%S}"


def _parse_multipart(ctype: str, body: bytes) -> tuple[list[tuple[str, str]], dict[str, bytes], dict[str, str]]:
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


# --- CLI ---------------------------------------------------------------------------------------
