"""The probe's sequence: the connection test (with the connection's method, then the other), per report one
small recent window in ResponseMode 2, 3, 1 and 0 (HTTP links fetched until ready, within ``link_wait``),
then ``XmlRequest``. What the server did is kept in :class:`Findings` for :mod:`.verdicts`.

Example::

    findings = probe(ProbeSession(hook, max_requests=40, interval=1.0), ProbeOptions(launch_ids=(1234,)))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloudmax_provider.api.request import get_timezone
from cloudmax_provider.links.download_link import DownloadLink
from cloudmax_provider.probe.session import ProbeSession, ProbeStopped, Seen

#: Asked when no ``--report-part-id`` is given: a detail report with times, one with customer ids, a summary.
DEFAULT_REPORTS = (2100199, 21003, 30023)
CONNECTION_TEST = {"ReportPartID": "20001"}  # as CloudmaxHook.test_connection: credentials, no report fields
WAIT_STATUSES = (404, 202, 409, 423, 425, 503)


@dataclass(frozen=True)
class ProbeOptions:
    """What to ask: reports, LaunchIDs, the window's length, how long to wait for links, "slow" in seconds."""

    launch_ids: tuple[int, ...]
    report_ids: tuple[int, ...] = DEFAULT_REPORTS
    days: int = 1
    link_wait: float = 60.0
    link_poll: float = 2.0
    slow_after: float = 10.0
    max_links: int = 3


@dataclass
class LinkSeen:
    """One DOWNLOADLINK: its kind and host, how many the request gave, and how fetching it went."""

    report: int
    mode: int
    link: str
    kind: str
    host: str
    count: int
    attempts: int = 0
    ready: bool | None = None
    last: str = ""
    refused: str = ""


@dataclass
class Findings:
    """What the server did, by check."""

    methods: dict[str, Seen] = field(default_factory=dict)
    use_method: str | None = None
    reports: dict[int, dict[int, Seen]] = field(default_factory=dict)
    csv: list[tuple[int, Seen]] = field(default_factory=list)
    links: list[LinkSeen] = field(default_factory=list)
    xml_request: Seen | None = None
    stopped: str = ""


def reached(seen: Seen | None) -> bool:
    """The API answered (an XML ErrorCode other than 100, or a report)."""
    return seen is not None and (seen.kind == "csv" or (seen.error_code is not None and seen.error_code != 100))


def probe(session: ProbeSession, options: ProbeOptions) -> Findings:
    """Run the sequence; an ErrorCode 100 or a spent budget stops it (noted in ``findings.stopped``)."""
    found = Findings()
    try:
        _methods(session, found)
        if found.use_method is not None:
            for rid in options.report_ids:
                _report(session, found, rid, options)
            _xml_request(session, found, options)
    except ProbeStopped as stop:
        found.stopped = str(stop)
    return found


def _methods(session: ProbeSession, found: Findings) -> None:
    settings = session.hook.settings
    other = "GET" if settings.method == "POST" else "POST"
    for method in (settings.method, other):
        fmt = "fields" if settings.request_format == "xml_file" and method == "GET" else None
        found.methods[method] = session.api(CONNECTION_TEST, what=f"connection test ({method})", method=method, fmt=fmt)
    working = [m for m in (settings.method, other) if reached(found.methods[m])]
    found.use_method = working[0] if working else None


def _window(session: ProbeSession, options: ProbeOptions) -> tuple[datetime, datetime]:
    tz = get_timezone(session.hook.settings.timezone)
    end = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=options.days), end


def _report(session: ProbeSession, found: Findings, rid: int, options: ProbeOptions) -> None:
    start, end = _window(session, options)
    answers = found.reports.setdefault(rid, {})
    for mode in (2, 3, 1, 0):
        request = session.hook.build_request(rid, list(options.launch_ids), start, end, response_mode=mode)
        seen = session.api(request.fields(), what=f"report {rid} ResponseMode {mode}", method=found.use_method)
        answers[mode] = seen
        if seen.kind == "csv":
            found.csv.append((rid, seen))
        elif mode in (0, 1) and seen.answer is not None and seen.answer.error_code == 0:
            _links(session, found, rid, mode, list(seen.answer.links), options)
        if mode == 2 and seen.kind != "csv":
            return  # not licensed, unknown, refused: the other modes would say the same


def _links(session: ProbeSession, found: Findings, rid: int, mode: int, links: list[str], opts: ProbeOptions) -> None:
    for index, link in enumerate(links[: opts.max_links]):
        try:
            parsed = DownloadLink.parse(link)
            kind, host = parsed.kind, parsed.host
        except Exception as exc:  # a link the provider cannot read is a finding, not a crash
            found.links.append(LinkSeen(rid, mode, link, "unreadable", "", len(links), last=str(exc)[:200]))
            continue
        seen_link = LinkSeen(rid, mode, link, kind, host, len(links))
        found.links.append(seen_link)
        if kind == "http":
            _fetch(session, found, seen_link, opts, wait=index == 0)


def _fetch(session: ProbeSession, found: Findings, link: LinkSeen, opts: ProbeOptions, *, wait: bool) -> None:
    """GET a link until its file answers (at most ``link_wait`` seconds for the first link of an answer)."""
    deadline = time.monotonic() + (opts.link_wait if wait else 0)
    while True:
        seen = session.link(link.link, what=f"report {link.report} link (ResponseMode {link.mode})")
        link.attempts += 1
        if seen.kind == "refused":
            link.refused = seen.error
            return
        if seen.status == 200 and seen.kind == "csv":
            link.ready = True
            found.csv.append((link.report, seen))
            return
        link.last = seen.error or f"HTTP {seen.status} ({seen.kind})"
        if seen.status not in WAIT_STATUSES or time.monotonic() + opts.link_poll > deadline:
            link.ready = False
            return
        time.sleep(opts.link_poll)


def _xml_request(session: ProbeSession, found: Findings, options: ProbeOptions) -> None:
    """The first report that answered a CSV, asked again with the credentials in ``XmlRequest``."""
    rid = next((r for r, answers in found.reports.items() if answers.get(2) and answers[2].kind == "csv"), None)
    if rid is None:
        return
    start, end = _window(session, options)
    request = session.hook.build_request(rid, list(options.launch_ids), start, end, response_mode=2)
    what = f"report {rid} ResponseMode 2 with XmlRequest"
    try:
        found.xml_request = session.api(request.fields(), what=what, method=found.use_method, fmt="xml")
    except ProbeStopped:  # an ErrorCode 100 answered it: the row says so, the probe stops
        found.xml_request = next((s for s in reversed(session.seen) if s.what == what), None)
        raise
