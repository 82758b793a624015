"""The probe's requests: a bounded, spaced, read-only sequence sent through the hook's one-shot seam
(:meth:`~cloudmax_provider.hooks.cloudmax.CloudmaxHook.send_once`), each answer kept for the verdicts and,
with ``--record``, sanitized into a capture.

Example::

    session = ProbeSession(CloudmaxHook("cloudmax_default"), max_requests=40, interval=1.0)
    seen = session.api({"ReportPartID": "20001"}, what="connection test")
    seen.kind, seen.answer.error_code if seen.answer else None
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloudmax_provider.api.body import sniff_kind
from cloudmax_provider.api.capture import Exchange, save_capture
from cloudmax_provider.api.response import ApiAnswer, parse_api_xml
from cloudmax_provider.exceptions import CloudmaxError, CloudmaxLinkError
from cloudmax_provider.hooks.cloudmax import CloudmaxHook, RawAnswer, redact_text
from cloudmax_provider.probe.sanitize import (
    Pseudonyms,
    request_shape,
    sanitize_csv,
    sanitize_headers,
    sanitize_text_body,
)

LOGIN_FAILED = ("login", "password", "account")


class ProbeStopped(Exception):
    """The probe stops: ErrorCode 100 (never retried: it can lock the account) or its request budget is spent."""


@dataclass
class Seen:
    """One answer as the verdicts read it."""

    what: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0
    kind: str = "error"  # xml | csv | html | empty | error
    answer: ApiAnswer | None = None
    error: str = ""

    @property
    def error_code(self) -> int | None:
        return self.answer.error_code if self.answer else None


def _seen_of(raw: RawAnswer, what: str) -> Seen:
    seen = Seen(what, raw.status, raw.headers, raw.body, raw.elapsed)
    if not raw.body.strip(b"\x00\r\n\t \xef\xbb\xbf\xff\xfe"):
        seen.kind = "empty"
        return seen
    seen.kind = sniff_kind(raw.body[:4096], raw.headers.get("Content-Type"))
    if seen.kind == "xml":
        try:
            seen.answer = parse_api_xml(raw.body)
        except CloudmaxError as exc:
            seen.error = str(exc)
    return seen


class ProbeSession:
    """Sends the probe's requests: at most ``max_requests``, ``interval`` seconds apart; records them."""

    def __init__(
        self, hook: CloudmaxHook, *, max_requests: int = 40, interval: float = 1.0, record: str | Path | None = None
    ) -> None:
        self.hook = hook
        self.max_requests = max_requests
        self.interval = interval
        self.sent = 0
        self.seen: list[Seen] = []
        self.record = Path(record) if record else None
        credentials = hook.settings.credentials
        self.pseudo = Pseudonyms(credentials.login, credentials.password)
        self._exchanges: list[Exchange] = []
        self._bodies: dict[str, bytes] = {}

    def _turn(self) -> None:
        if self.sent >= self.max_requests:
            raise ProbeStopped(f"the request budget is spent (--max-requests {self.max_requests})")
        if self.sent and self.interval > 0:
            time.sleep(self.interval)
        self.sent += 1

    def api(self, fields: dict[str, str], *, what: str, method: str | None = None, fmt: str | None = None) -> Seen:
        """One Report.aspx request; raises :class:`ProbeStopped` after an ErrorCode 100 (recorded first)."""
        self._turn()
        try:
            raw = self.hook.send_once(fields, method=method, request_format=fmt)
        except CloudmaxError as exc:
            seen = Seen(what, error=redact_text(str(exc)))
            self.seen.append(seen)
            return seen
        seen = _seen_of(raw, what)
        self.seen.append(seen)
        self._keep("api", raw, seen, fmt or self.hook.settings.request_format)
        if seen.error_code == 100:
            msg = seen.answer.error_msg if seen.answer else ""
            why = "a refused login" if any(w in msg.lower() for w in LOGIN_FAILED) else "ErrorCode 100"
            raise ProbeStopped(f"{why} ({self.pseudo.text(msg)!r}) at {what}; never retried: 100 can lock the account")
        return seen

    def link(self, url: str, *, what: str) -> Seen:
        """One GET of a DOWNLOADLINK (HTTP): its answer, or the reason it was refused (host not allowed)."""
        self._turn()
        try:
            raw = self.hook.fetch_link_once(url)
        except CloudmaxLinkError as exc:
            seen = Seen(what, kind="refused", error=redact_text(str(exc)))
            self.seen.append(seen)
            return seen
        except CloudmaxError as exc:
            seen = Seen(what, error=redact_text(str(exc)))
            self.seen.append(seen)
            return seen
        seen = _seen_of(raw, what)
        self.seen.append(seen)
        self._keep("link", raw, seen, "")
        return seen

    def _keep(self, kind: str, raw: RawAnswer, seen: Seen, fmt: str) -> None:
        if self.record is None:
            return
        n = len(self._exchanges) + 1
        path, fields = request_shape(raw.wire, self.pseudo)
        if kind == "link":
            path, fields = urlsplit(raw.wire.url).path, {}
        ex = Exchange(n, kind, raw.wire.method, path, fields, fmt, raw.status, elapsed=round(raw.elapsed, 3))
        ex.what = self.pseudo.text(seen.what)
        ex.headers = sanitize_headers(raw.headers, self.pseudo)
        ctype = raw.headers.get("Content-Type")
        if seen.kind == "csv":
            body, ex.rows_kept = sanitize_csv(raw.body, ctype, self.pseudo)
            ex.body_file = f"{n:03d}-{kind}.csv"
        elif raw.body:
            body = sanitize_text_body(raw.body, ctype, self.pseudo)
            ex.body_file = f"{n:03d}-{kind}.{'xml' if seen.kind == 'xml' else 'html' if seen.kind == 'html' else 'txt'}"
        if ex.body_file:
            self._bodies[ex.body_file] = body
        self._exchanges.append(ex)

    def save(self, meta: dict[str, Any]) -> Path | None:
        """Write the capture (``--record``); ``meta`` is sanitized text (the table) and notes."""
        if self.record is None:
            return None
        return save_capture(self.record, self._exchanges, self._bodies, meta)
