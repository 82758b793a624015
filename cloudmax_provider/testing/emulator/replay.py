"""Replaying a capture (``python -m cloudmax_provider.testing.emulator --replay DIR``): the emulator answers
each request with the recorded answer that matches it, byte for byte.

A Report.aspx request matches on method, request format (fields, ``XmlRequest``, ``XmlReqFilePath``),
ReportPartID and ResponseMode (times, LaunchIDs and credentials are ignored); a link file on its path.
Several recorded answers to one key are replayed in order, the last one repeating (a link that answered
404 twice, then the file, does so again). A request the capture does not hold: a method every recorded
request of which was refused gets the same refusal; otherwise the same ReportPartID and ResponseMode
recorded under another method or format; else ErrorCode 102. Links in answers point to this server
(:data:`~cloudmax_provider.api.capture.REPLAY_BASE`); a recorded answer time of 0.5 s or more is waited again.

Example::

    emu = CloudmaxEmulator()
    emu.replay = Replay(load_capture("tests/captures/utf16-zh-tw"))
    emu.start()
"""

from __future__ import annotations

import threading
from urllib.parse import unquote

from cloudmax_provider.api.capture import REPLAY_BASE, Capture, Exchange
from cloudmax_provider.testing.emulator.settings import (
    API_PATH,
    LINK_PREFIX,
    EmulatorSettings,
    Reply,
    not_found,
    xml_reply,
)

__all__ = ["Replay"]

_ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")
MAX_DELAY = 30.0


class Replay:
    """The answers of one capture, served in recorded order per request key."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, ...], list[Exchange]] = {}
        for ex in capture.exchanges:
            key = ("link", unquote(ex.path)) if ex.kind == "link" else ex.key()
            self._by_key.setdefault(key, []).append(ex)
        self._cursor: dict[tuple[str, ...], int] = {}
        api = [ex for ex in capture.exchanges if ex.kind == "api"]
        methods = {ex.method.upper() for ex in api}
        self.refused_methods = {m for m in methods if all(ex.status == 405 for ex in api if ex.method.upper() == m)}

    def _next(self, key: tuple[str, ...]) -> Exchange | None:
        with self._lock:
            answers = self._by_key.get(key)
            if not answers:
                return None
            n = self._cursor.get(key, 0)
            self._cursor[key] = n + 1
            return answers[min(n, len(answers) - 1)]

    def _api_exchange(self, method: str, fields: dict[str, str], files: dict[str, bytes]) -> Exchange | None:
        low = {k.lower(): v for k, v in fields.items()}
        fmt = (
            "xml"
            if "xmlrequest" in low
            else "xml_file"
            if any(k.lower() == "xmlreqfilepath" for k in files)
            else "fields"
        )
        rid, mode = low.get("reportpartid", "").strip(), low.get("responsemode", "").strip()
        exact = self._next(("api", method.upper(), fmt, rid, mode))
        if exact is not None or method.upper() in self.refused_methods:
            return exact
        for key in list(self._by_key):
            if key[0] == "api" and key[3:] == (rid, mode) and key[1] not in self.refused_methods:
                return self._next(key)
        return None

    def answer(
        self, method: str, path: str, fields: dict[str, str], files: dict[str, bytes], base_url: str
    ) -> tuple[Reply, float]:
        """The recorded answer to a request (and the seconds to wait before sending it)."""
        low_path = path.lower()
        if low_path.startswith(LINK_PREFIX.lower()):
            exchange = self._next(("link", unquote(path)))
        elif low_path == API_PATH.lower():
            if method.upper() in self.refused_methods:
                exchange = next(ex for ex in self.capture.exchanges if ex.method.upper() == method.upper())
            else:
                exchange = self._api_exchange(method, fields, files)
            if exchange is None:
                return xml_reply(EmulatorSettings(), 102, "Incorrect Request (not in the replayed capture)", []), 0.0
        else:
            exchange = None
        if exchange is None:
            return not_found(), 0.0
        return self._reply(exchange, base_url), min(exchange.elapsed, MAX_DELAY) if exchange.elapsed >= 0.5 else 0.0

    def _reply(self, exchange: Exchange, base_url: str) -> Reply:
        body = self.capture.body(exchange)
        if exchange.body_file and not exchange.body_file.endswith(".csv"):
            for enc in _ENCODINGS:
                body = body.replace(REPLAY_BASE.encode(enc), base_url.encode(enc))
        headers = {k: v.replace(REPLAY_BASE, base_url) for k, v in exchange.headers.items()}
        return Reply(exchange.status, headers, body)
