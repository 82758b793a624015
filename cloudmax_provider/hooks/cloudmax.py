"""CloudmaxHook: Report.aspx over HTTP (requests), with the provider's one retry policy.

Example::

    hook = CloudmaxHook("cloudmax_default")
    req = hook.build_request("removals", [1225], "2026-11-01 00:00:00", "2026-11-02 00:00:00")
    with hook.open_report(req) as stream:          # ResponseMode 2/3: streamed, never held whole
        for chunk in stream.chunks:
            ...
    rows = hook.get_rows(req)                      # small reports: typed rows
    links = hook.request_links(req)                # ResponseMode 0/1: links only, no download
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from airflow.providers.common.compat.sdk import BaseHook

from cloudmax_provider.api.body import SNIFF_BYTES, detect_encoding, safe_filename, sniff_kind
from cloudmax_provider.api.connection import CloudmaxSettings
from cloudmax_provider.api.request import (
    ReportRequest,
    ResponseMode,
    WireRequest,
    build_report_request,
    encode_request,
    get_timezone,
    redact_url,
)
from cloudmax_provider.api.response import MAX_XML_BYTES, ApiAnswer, parse_api_xml, parse_redirect
from cloudmax_provider.api.retry import ErrorCode100Policy, retry_args
from cloudmax_provider.exceptions import (
    CloudmaxAPIError,
    CloudmaxAuthError,
    CloudmaxConfigError,
    CloudmaxError,
    CloudmaxHaltedError,
    CloudmaxLinkError,
    CloudmaxResponseError,
    CloudmaxTransientError,
)
from cloudmax_provider.formats.cells import read_typed
from cloudmax_provider.formats.streams import ReportStream, StreamOpener
from cloudmax_provider.formats.writers import RowTyping
from cloudmax_provider.links.download_link import (
    PROBE_RANGE,
    DownloadLink,
    LinkProbe,
    LinkState,
    check_link_allowed,
    judge_http_probe,
)
from cloudmax_provider.links.readiness import SizeSeen, StabilityRule, judge_unc_error, next_hop

if TYPE_CHECKING:
    import requests
    from tenacity import AttemptManager

CHUNK_SIZE = 1 << 20
_SECRET_IN_TEXT = re.compile(r"((?:ManagerPassword|XmlRequest|password)=)[^&\s'\"]*", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Credential values in free text (a library's exception message, say) replaced by ``***``."""
    return _SECRET_IN_TEXT.sub(r"\1***", text)


class TooManyRowsError(CloudmaxConfigError):
    """A report too large for XCom."""


class _RedactingFilter(logging.Filter):
    """Redacts credential fields from urllib3's own DEBUG lines (they hold the full URL under GET)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_URLLIB3_FILTER = _RedactingFilter()


def _guard_library_logs() -> None:
    for name in ("urllib3.connectionpool", "requests"):
        logger = logging.getLogger(name)
        if _URLLIB3_FILTER not in logger.filters:
            logger.addFilter(_URLLIB3_FILTER)


def _transport_error(exc: BaseException, what: str, timeout: float | None = None) -> CloudmaxError:
    """The provider's error for a transport library's exception: a URL requests cannot use is the
    connection's fault (not retried); a timeout names the ``timeout`` extra; the rest is transient."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError

    detail = f"{type(exc).__name__} while {what}: {redact_text(str(exc))[:300]}"
    bad_url = requests.exceptions.InvalidURL | requests.exceptions.MissingSchema | requests.exceptions.InvalidSchema
    if isinstance(exc, bad_url):
        return CloudmaxConfigError(f"{detail}; fix the connection's host (Base URL), e.g. 'https://api.itpison.com'")
    # requests' own (before the headers) and urllib3's (raw.read of a body that stalls)
    timed_out = isinstance(exc, requests.Timeout | TimeoutError | ReadTimeoutError | ConnectTimeoutError)
    if timed_out and timeout is not None:
        return CloudmaxTransientError(
            f"{detail}; the server took longer than the connection extra timeout={timeout:g} seconds "
            "(per request); raise it if the server is slow"
        )
    return CloudmaxTransientError(detail)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class CloudmaxHook(BaseHook):
    """Talks to Cloudmax's Report.aspx with the credentials of a ``cloudmax`` connection.

    :param cloudmax_conn_id: the ``cloudmax`` connection (host = base URL, login, password, extras).
    :param smb_conn_id: an Airflow ``samba`` connection for UNC DOWNLOADLINKs (ResponseMode 0).
    """

    conn_name_attr = "cloudmax_conn_id"
    default_conn_name = "cloudmax_default"
    conn_type = "cloudmax"
    hook_name = "Cloudmax"

    def __init__(self, cloudmax_conn_id: str = default_conn_name, *, smb_conn_id: str | None = None) -> None:
        super().__init__()
        self.cloudmax_conn_id = cloudmax_conn_id
        self.smb_conn_id = smb_conn_id
        self._retry_active = False
        self.error_100 = ErrorCode100Policy()  # this task try's rule for ErrorCode 100 (see retry.py)
        self.unc_stable_seconds = 1.0  # a UNC file is ready when its size holds this long ...
        self.unc_stable_checks = 2  # ... over this many probes (see cloudmax_provider.links.readiness)
        self.unc_seen: dict[str, SizeSeen] = {}  # UNC link -> its last observation, kept between probes

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields for Airflow < 3.2 (newer versions read ``conn-fields`` from the provider info)."""
        from cloudmax_provider import CONN_FIELDS
        from cloudmax_provider.utils.compat import connection_form_widgets

        return connection_form_widgets(CONN_FIELDS)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow < 3.2 (newer versions read the same data from the provider info)."""
        from cloudmax_provider import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": {
                **UI_FIELD_BEHAVIOUR["placeholders"],
                "extra": '{"timezone": "Asia/Taipei", "method": "POST", "request_format": "fields", '
                '"allowed_link_hosts": []}',
            },
        }

    # ---- connection --------------------------------------------------------------------------

    @cached_property
    def settings(self) -> CloudmaxSettings:
        settings = CloudmaxSettings.from_connection(self.get_connection(self.cloudmax_conn_id))
        _mask(settings.credentials.password)
        _guard_library_logs()
        return settings

    @cached_property
    def session(self) -> requests.Session:
        """The API session. DOWNLOADLINKs get a separate one: no cookies or credentials cross over."""
        return _new_session()

    @cached_property
    def _link_session(self) -> requests.Session:
        session = _new_session()
        session.auth = _no_auth  # a set auth stops requests from adding ~/.netrc credentials to links
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    def for_worker(self) -> CloudmaxHook:
        """A hook for one more thread of this task: the same connection settings (read once, here) and the same
        ErrorCode 100 policy, its own HTTP session and retry state (a session is not shared between threads)::

            workers = [hook.for_worker() for _ in range(4)]
        """
        worker = type(self)(self.cloudmax_conn_id, smb_conn_id=self.smb_conn_id)
        worker.__dict__["settings"] = self.settings  # no connection lookup from a worker thread
        worker.error_100 = self.error_100
        return worker

    def close(self) -> None:
        """Close the HTTP sessions this hook opened (none: nothing to do)."""
        for name in ("session", "_link_session"):
            opened = self.__dict__.pop(name, None)
            if opened is not None:
                opened.close()

    def retrying(self) -> Iterator[AttemptManager]:
        """Attempts under the connection's retry settings (the provider's one policy)::

            for attempt in hook.retrying():
                with attempt:
                    ...

        Nested use (a whole download around ``open_report``) retries only at the outermost level,
        so attempts never multiply.
        """
        from tenacity import Retrying, stop_after_attempt

        if self._retry_active:
            yield from Retrying(stop=stop_after_attempt(1), reraise=True)
            return

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning("Attempt %d failed (%s); retrying", state.attempt_number, exc)

        self._retry_active = True
        try:
            yield from Retrying(**retry_args(self.settings.retry, before_sleep=before_sleep))
        finally:
            self._retry_active = False

    # ---- requests to Report.aspx -------------------------------------------------------------

    def build_request(
        self, report_part_id: Any, launch_ids: Any, start_time: Any, end_time: Any, **kwargs: Any
    ) -> ReportRequest:
        """Validate arguments into a :class:`ReportRequest` in the connection's timezone."""
        return build_report_request(
            report_part_id, launch_ids, start_time, end_time, timezone=self.settings.timezone, **kwargs
        )

    def _wire(self, fields: dict[str, str], method: str | None = None, form: str | None = None) -> WireRequest:
        s = self.settings
        return encode_request(
            s.url, fields, s.credentials, method=method or s.method, request_format=form or s.request_format
        )

    def _exchange(self, wire: WireRequest) -> requests.Response:
        """One HTTP exchange of an encoded request, its body still to read; a transport failure as ours."""
        import requests

        s = self.settings
        files = [(name, (fn, content, ctype)) for name, fn, content, ctype in wire.files or ()]
        try:
            return self.session.request(
                wire.method,
                wire.url,
                params=list(wire.params) or None,
                data=list(wire.data) if wire.data is not None else None,
                files=files or None,
                timeout=s.timeout,
                verify=s.verify,
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, f"calling {wire.safe_url}", s.timeout) from None

    def _send(self, wire: WireRequest, report_part_id: int | None) -> tuple[requests.Response, bytes]:
        """Send once; return the open response and its first bytes, or raise the right error."""
        if self.error_100.halted():
            raise CloudmaxHaltedError(f"not calling {wire.safe_url}: an ErrorCode 100 stopped this task's requests")
        self.log.info("Calling Report.aspx: %s %s", wire.method, wire.safe_url)
        resp = self._exchange(wire)
        try:
            return resp, self._check_response(resp, wire, report_part_id)
        except BaseException:
            resp.close()
            raise

    def _check_response(self, resp: requests.Response, wire: WireRequest, report_part_id: int | None) -> bytes:
        status = resp.status_code
        if status in (301, 302, 303, 307, 308):
            location = resp.headers.get("Location", "")
            answer = parse_redirect(location)
            if answer is None:
                raise CloudmaxResponseError(
                    f"Report.aspx redirected to {location[:200]!r} without an ErrorCode; remove ReferUrl/"
                    "SuccessfulUrl/FailedUrl from extra_fields",
                    status=status,
                )
            self._raise_for_error(answer, report_part_id)
            raise _RedirectAnswer(answer.links)
        if status == 429 or status >= 500:
            raise CloudmaxTransientError(
                f"Report.aspx answered HTTP {status} ({wire.safe_url})",
                status=status,
                retry_after=_retry_after(resp.headers.get("Retry-After")),
            )
        if status >= 400:
            hint = {
                404: "check the connection's host and the 'endpoint' extra (default /WebAPI/Report.aspx)",
                405: "the server refuses this method; set the connection extra 'method' to 'GET' or 'POST'",
            }.get(status, "check the connection")
            raise CloudmaxResponseError(f"Report.aspx answered HTTP {status} at {wire.safe_url}: {hint}", status=status)
        return self._read(resp, SNIFF_BYTES, wire.safe_url)

    def _read(self, resp: requests.Response, size: int, source: str) -> bytes:
        """Read up to ``size`` bytes of the body; a connection lost meanwhile is transient."""
        try:
            return bytes(resp.raw.read(size, decode_content=True) or b"")
        except Exception as exc:
            raise _transport_error(exc, f"reading the answer of {source}", self.settings.timeout) from None

    def _answer(self, request: ReportRequest) -> tuple[requests.Response | None, bytes, list[str]]:
        """One attempt: send, raise API errors; return (open response or None, first bytes, links)."""
        try:
            resp, head = self._send(self._wire(request.fields()), request.report_part.id)
        except _RedirectAnswer as redirect:
            return None, b"", list(redirect.links)
        if not head.strip(b"\x00\r\n\t \xef\xbb\xbf\xff\xfe"):
            resp.close()  # a report has at least its header line, an API answer its ERRORCODE
            raise CloudmaxResponseError(
                f"Report.aspx answered HTTP {resp.status_code} with an empty body (not a report, not an API answer); "
                "check the connection's host and 'endpoint' extra, or ask Cloudmax why the server answers nothing"
            )
        kind = sniff_kind(head, resp.headers.get("Content-Type"))
        if kind == "html":
            resp.close()
            raise CloudmaxResponseError(
                "Report.aspx answered an HTML page, not the API; check the connection's host and 'endpoint' extra"
            )
        if kind == "xml" or request.response_mode.returns_links:
            with resp:  # XML answers are small: read at most one byte more than parse_api_xml accepts
                body = head + self._read(resp, MAX_XML_BYTES + 1 - len(head), redact_url(resp.url))
            answer = parse_api_xml(body)
            self._raise_for_error(answer, request.report_part.id)
            return None, b"", list(answer.links)
        self.error_100.record_answer(0)
        return resp, head, []

    def _raise_for_error(self, answer: ApiAnswer, report_part_id: int | None) -> None:
        """Raise the answer's error, judged by the ErrorCode 100 policy; note a proving answer."""
        self.error_100.record_answer(answer.error_code)
        try:
            answer.raise_for_error(report_part_id)
        except CloudmaxAPIError as exc:
            raise self.error_100.judge(exc) from None

    def request_links(self, request: ReportRequest) -> list[str]:
        """Ask for a report in ResponseMode 0 or 1 and return its DOWNLOADLINKs, downloading nothing."""
        if not request.response_mode.returns_links:
            raise CloudmaxConfigError(
                f"request_links needs response_mode 0 (UNC) or 1 (HTTP), not {int(request.response_mode)}"
            )
        for attempt in self.retrying():
            with attempt:
                _, _, links = self._answer(request)
        if not links:
            raise CloudmaxResponseError("Report.aspx answered ErrorCode 0 without any DOWNLOADLINK")
        for link in links:
            self.check_link(link)
        self.log.info("Report.aspx answered %d link(s) for %s", len(links), request.describe())
        return links

    @contextlib.contextmanager
    def open_report(self, request: ReportRequest) -> Iterator[ReportStream]:
        """Open a report body (ResponseMode 2 or 3) for streaming; transient failures before the
        first bytes are retried. Failures mid-body raise :class:`CloudmaxTransientError`: retry the
        whole download with :meth:`retrying` (the operator does, writing atomically)."""
        if request.response_mode.returns_links:
            raise CloudmaxConfigError("open_report reads ResponseMode 2 or 3; use request_links and open_link for 0/1")
        for attempt in self.retrying():
            with attempt:
                resp, head, links = self._answer(request)
        if resp is None:
            raise CloudmaxResponseError(f"Report.aspx answered links ({links[:3]}) instead of the report body")
        with resp:
            yield self._stream(resp, head, redact_url(resp.url))

    def _stream(self, resp: requests.Response, head: bytes, source: str) -> ReportStream:
        ctype = resp.headers.get("Content-Type", "")
        length = resp.headers.get("Content-Length")
        size = int(length) if length and length.isdigit() and not resp.headers.get("Content-Encoding") else None
        return ReportStream(
            chunks=self._iter_body(resp, head, size, source),
            encoding=detect_encoding(head, ctype),
            source=source,
            filename=safe_filename(resp.headers.get("Content-Disposition")),
            content_type=ctype,
            size=size,
        )

    def _iter_body(self, resp: requests.Response, head: bytes, size: int | None, source: str) -> Iterator[bytes]:
        received = len(head)
        if head:
            yield head
        try:
            while True:
                chunk = resp.raw.read(CHUNK_SIZE, decode_content=True)
                if not chunk:
                    break
                received += len(chunk)
                yield chunk
        except Exception as exc:
            raise _transport_error(exc, f"downloading {source} after {received} bytes", self.settings.timeout) from None
        if size is not None and received < size:
            raise CloudmaxTransientError(f"the body of {source} ended after {received} of {size} bytes")

    def sources(self, request: ReportRequest | None, links: list[str] | None = None) -> list[StreamOpener]:
        """Openers (context managers yielding a :class:`ReportStream`) of a report's body or bodies:
        the report itself (ResponseMode 2/3), or each DOWNLOADLINK."""
        if links is None:
            if request is None:
                raise CloudmaxConfigError("sources() needs a request or links")
            return [functools.partial(self.open_report, request)]
        return [functools.partial(self.open_link, link) for link in links]

    def get_rows(
        self,
        request: ReportRequest,
        *,
        max_rows: int | None = None,
        links: list[str] | None = None,
        schema_change: str = "evolve",
    ) -> list[dict[str, Any]]:
        """Typed rows of a small report (int, float, aware datetime, str, None): see :class:`RowTyper`.

        Reads the report body, or ``links`` (their rows one after the other) when given. A header that differs
        from the expected columns is handled as ``schema_change`` says (:mod:`cloudmax_provider.api.schema`).
        """
        typing = RowTyping.for_request(request, get_timezone(self.settings.timezone), schema_change)
        rows: list[dict[str, Any]] = []
        for attempt in self.retrying():
            with attempt:
                rows = []
                for open_source in self.sources(request, links):
                    with open_source() as stream:
                        typer, records = read_typed(
                            stream.chunks,
                            stream.encoding,
                            typing.part,
                            typing.tz,
                            typer_of=functools.partial(typing.typer, source=stream.source, logger=self.log),
                        )
                        for cells in records:
                            if max_rows is not None and len(rows) >= max_rows:
                                raise TooManyRowsError(
                                    f"the report has more than max_xcom_rows={max_rows} rows, too many for XCom; "
                                    "set destination= to stream it to object storage, e.g. "
                                    "'s3://bucket/cloudmax/{window_start:%Y-%m-%d}/report.csv' (or raise max_xcom_rows)"
                                )
                            rows.append(typer.type_row(cells))
        return rows

    # ---- DOWNLOADLINKs -----------------------------------------------------------------------

    def check_link(self, link: str | DownloadLink) -> DownloadLink:
        """Parse ``link`` and refuse it if its host is not allowed (:mod:`~cloudmax_provider.links.download_link`)."""
        parsed = link if isinstance(link, DownloadLink) else DownloadLink.parse(link)
        check_link_allowed(parsed, self.settings.api_host, self.settings.allowed_link_hosts)
        return parsed

    def probe_link(self, link: str | DownloadLink, *, stateless: bool = False) -> LinkProbe:
        """Check once whether a link's file is ready (HTTP ranged GET, or one SMB size read); never waits.

        A UNC file is ready when its size held over ``unc_stable_checks`` probes ``unc_stable_seconds`` apart
        (the hook keeps the observations in :attr:`unc_seen`); ``stateless=True`` (a caller that keeps nothing
        between probes) takes the file's last-write time as the earlier observation instead.
        """
        parsed = self.check_link(link)
        if parsed.kind == "unc":
            return self._probe_unc(parsed, stateless)
        import requests

        try:
            with self._get_link(parsed.url, {"Range": PROBE_RANGE}) as resp:
                head = resp.raw.read(SNIFF_BYTES, decode_content=True) or b""
                return judge_http_probe(parsed.url, resp.status_code, resp.headers, head)
        except requests.RequestException as exc:
            return LinkProbe(parsed.url, LinkState.PENDING, message=f"not reachable yet: {type(exc).__name__}")
        except CloudmaxLinkError as exc:
            return LinkProbe(parsed.url, LinkState.FAILED, message=str(exc))

    @property
    def stability(self) -> StabilityRule:
        """The rule that makes a UNC file ready (``unc_stable_checks`` sizes over ``unc_stable_seconds``)."""
        return StabilityRule(self.unc_stable_checks, self.unc_stable_seconds)

    def _get_link(self, url: str, headers: dict[str, str] | None = None) -> requests.Response:
        """GET a link (streamed) with the link session, following redirects as ``next_hop`` decides."""
        s = self.settings
        link, hops = url, 0
        while True:
            resp = self._link_session.get(
                url, headers=headers, timeout=s.timeout, verify=s.verify, stream=True, allow_redirects=False
            )
            try:
                target = next_hop(link, url, resp.status_code, resp.headers, hops, s.api_host, s.allowed_link_hosts)
            except BaseException:
                resp.close()
                raise
            if target is None:
                return resp
            resp.close()
            url, hops = target, hops + 1

    def _probe_unc(self, link: DownloadLink, stateless: bool) -> LinkProbe:
        import time

        try:
            with self._unc_reader(link) as reader:
                found = reader.stat(link.unc_path)
        except (OSError, ValueError) as exc:
            self.unc_seen.pop(link.url, None)
            return judge_unc_error(link.url, exc)
        size = None if found is None else found.size
        if stateless and found is not None:
            return self.stability.observe_once(link.url, size, found.last_write, time.time())
        return self.stability.observe_into(link.url, size, time.time(), self.unc_seen)

    def _unc_reader(self, link: DownloadLink) -> Any:
        from cloudmax_provider.links.unc import SmbTarget, UncReader

        return UncReader(SmbTarget.from_airflow_connection(self.smb_conn_id, link.unc_path))

    @contextlib.contextmanager
    def open_link(self, link: str | DownloadLink) -> Iterator[ReportStream]:
        """Open a DOWNLOADLINK's file for streaming, without any API credential."""
        parsed = self.check_link(link)
        if parsed.kind == "unc":
            with self._unc_reader(parsed) as reader:
                chunks = reader.iter_bytes(parsed.unc_path, CHUNK_SIZE)
                try:
                    head = next(chunks, b"")
                except (ConnectionError, TimeoutError) as exc:
                    raise CloudmaxTransientError(f"opening {parsed.url}: {exc}"[:500]) from None

                def all_chunks() -> Iterator[bytes]:
                    if head:
                        yield head
                    try:
                        yield from chunks
                    except (ConnectionError, TimeoutError) as exc:  # the share went away: retried whole
                        raise CloudmaxTransientError(f"the SMB read of {parsed.url} was cut: {exc}"[:500]) from None

                yield ReportStream(
                    all_chunks(), detect_encoding(head), parsed.url, parsed.filename, size=reader.size(parsed.unc_path)
                )
            return
        for attempt in self.retrying():
            with attempt:
                resp = self._fetch(parsed.url)
                if resp.status_code != 200:
                    resp.close()
                    probe = judge_http_probe(parsed.url, resp.status_code, resp.headers, b"")
                    if probe.state is LinkState.FAILED:
                        raise CloudmaxLinkError(f"DOWNLOADLINK {parsed.url}: {probe.message}")
                    raise CloudmaxTransientError(
                        f"DOWNLOADLINK {parsed.url}: {probe.message}",
                        status=resp.status_code,
                        retry_after=_retry_after(resp.headers.get("Retry-After")),
                    )
                head = resp.raw.read(SNIFF_BYTES, decode_content=True) or b""
                if sniff_kind(head, resp.headers.get("Content-Type")) != "csv":
                    resp.close()
                    raise CloudmaxLinkError(f"DOWNLOADLINK {parsed.url} answered an error page, not the report")
        with resp:
            stream = self._stream(resp, head, parsed.url)
            stream.filename = parsed.filename if stream.filename == "report.csv" else stream.filename
            yield stream

    def _fetch(self, url: str) -> requests.Response:
        """:meth:`_get_link`, a transport failure as ours."""
        import requests

        try:
            return self._get_link(url)
        except requests.RequestException as exc:
            raise _transport_error(exc, f"fetching {url}", self.settings.timeout) from None

    # ---- one raw exchange (the probe's seam) --------------------------------------------------

    def send_once(
        self,
        fields: dict[str, str],
        *,
        method: str | None = None,
        request_format: str | None = None,
        max_bytes: int = 1 << 20,
    ) -> RawAnswer:
        """Send ``fields`` (plus the credentials) once, as ``method``/``request_format`` (default: the
        connection's): no retry, no judgement, at most ``max_bytes`` of the answer read::

            raw = hook.send_once({"ReportPartID": "20001"}, method="GET")
            raw.status, raw.body[:40]
        """
        import time

        wire = self._wire(fields, method, request_format)
        started = time.monotonic()
        resp = self._exchange(wire)
        with resp:
            body = self._read(resp, max_bytes, wire.safe_url)
        return RawAnswer(resp.status_code, dict(resp.headers), body, time.monotonic() - started, wire)

    def fetch_link_once(self, link: str, *, max_bytes: int = 1 << 20) -> RawAnswer:
        """GET a DOWNLOADLINK once (HTTP; allowed hosts and redirects as :meth:`open_link`), no retry."""
        import time

        parsed = self.check_link(link)
        started = time.monotonic()
        resp = self._fetch(parsed.url)
        with resp:
            body = self._read(resp, max_bytes, parsed.url)
        wire = WireRequest("GET", resp.url)
        return RawAnswer(resp.status_code, dict(resp.headers), body, time.monotonic() - started, wire)

    # ---- connection test ---------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """One cheap real call: the credentials with no report fields. A server that knows the account
        answers 102 (Incorrect Request); a wrong password answers 100 about the login."""
        try:
            settings = self.settings
            wire = self._wire({"ReportPartID": "20001"})
            try:
                resp, head = self._send(wire, None)
            except _RedirectAnswer:
                return True, f"Connected to {settings.url}"
            with resp:
                body = head + self._read(resp, 1 << 16, wire.safe_url)
            answer = parse_api_xml(body)
            if answer.error_code in (0, 102, 103, 110):
                return True, f"Connected to {settings.url} as {settings.credentials.login!r}"
            self._raise_for_error(answer, None)
            return True, f"Connected to {settings.url}"
        except CloudmaxAuthError as exc:
            return False, f"Wrong API account or password: {exc.error_msg}. Fix the connection's login and password."
        except CloudmaxTransientError as exc:
            return False, f"Cannot reach {self.settings.url}: {exc}. Check the Base URL (host) and the network."
        except CloudmaxResponseError as exc:
            return False, f"{exc} (is the Base URL right, and the 'endpoint' extra?)"
        except CloudmaxError as exc:
            return False, str(exc)


def _new_session() -> requests.Session:
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = "airflow-provider-cloudmax"
    return session


def _no_auth(request: Any) -> Any:
    """An auth hook that adds nothing: links get no credential, not even one from ``~/.netrc``."""
    return request


@dataclass(frozen=True)
class RawAnswer:
    """One answer as received (:meth:`CloudmaxHook.send_once`): status, headers, the first bytes of the body,
    seconds to the answer, and the request as sent (``wire``; its ``safe_url`` has no credential)."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    wire: WireRequest = field(repr=False)


class _RedirectAnswer(Exception):
    """A successful answer that came as a redirect (ReferUrl / SuccessfulUrl)."""

    def __init__(self, links: tuple[str, ...]) -> None:
        super().__init__("redirect")
        self.links = links


def password_forms(password: str) -> set[str]:
    """Every form the password may take on the wire or in a message: raw, XML-escaped (as in
    XmlRequest / XmlReqFilePath, quotes escaped or not), and each URL-encoded (``quote``, ``quote_plus``).

    >>> sorted(password_forms("a&b"))
    ['a%26amp%3Bb', 'a%26b', 'a&amp;b', 'a&b']
    """
    from xml.sax.saxutils import escape

    texts = {password, escape(password), escape(password, {'"': "&quot;", "'": "&apos;"})}
    return {form for text in texts for form in (text, quote(text, safe=""), quote_plus(text))}


def _mask(password: str) -> None:
    """Register every form of the password (:func:`password_forms`) with Airflow's secrets masker."""
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    for form in password_forms(password):
        mask_secret(form)


__all__ = ["CloudmaxHook", "RawAnswer", "ReportStream", "ResponseMode", "TooManyRowsError", "password_forms"]
