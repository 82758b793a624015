"""The fault catalogue: which request is faulted (``fault_paths``, ``fail_first``, ``delay``, body faults,
StartTime windows), what a faulted request is answered (``fail_with``), a body cut short or dropped mid-way,
and the hostile answers (``answer_with``). The CLI's ``--scenario`` (:mod:`.cli`) changes these settings
over time."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from cloudmax_provider.testing.emulator.data import parse_time
from cloudmax_provider.testing.emulator.settings import ERROR_MESSAGES, HTML, EmulatorSettings, Reply, xml_reply

__all__ = ["Fault", "FaultCounters", "fail_with_reply", "fault_note", "hostile_reply", "send_faulted"]


@dataclass
class Fault:
    """How one request is faulted: a delay, then an answer instead of its own or its body cut."""

    delay: float
    fail_with: int | str | None
    truncate: bool
    drop: bool


class FaultCounters:
    """The ``fail_first`` and ``fail_start_first`` budgets: requests faulted so far."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._faults_served = 0
        self._fail_first_seen = settings.fail_first
        self._window_faults_served = 0

    def restart(self) -> None:
        """Count both budgets afresh."""
        with self._lock:
            self._faults_served = 0
            self._fail_first_seen = self.settings.fail_first
            self._window_faults_served = 0

    def fault_for(self, kind: str) -> Fault | None:
        """The fault for a request of ``kind`` (``api``, ``link`` or ``other``), or None."""
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
        return Fault(s.delay, fail_with, s.truncate_body, s.drop_mid_body and not s.truncate_body)

    def window_fault(self, start: datetime) -> bool:
        """True when StartTime falls in ``fail_start_windows`` and the ``fail_start_first`` budget allows."""
        s = self.settings
        if not any(parse_time(a) <= start < parse_time(b) for a, b in s.fail_start_windows):
            return False
        with self._lock:
            if s.fail_start_first > 0 and self._window_faults_served >= s.fail_start_first:
                return False
            self._window_faults_served += 1
        return True


def fault_note(fault: Fault) -> str:
    """How a faulted request is answered, for the request log."""
    notes = [f"delay {fault.delay:g}s"] if fault.delay > 0 else []
    if fault.fail_with is not None:
        notes.append(f"fail-with {fault.fail_with}")
    if fault.truncate:
        notes.append("body cut short of its Content-Length")
    if fault.drop:
        notes.append("connection dropped mid-body")
    return ", ".join(notes)


def fail_with_reply(settings: EmulatorSettings, fail_with: int | str) -> Reply:
    """The answer ``fail_with`` gives instead of the request's own (not ``"reset"``: that aborts the socket)."""
    if fail_with == "exception":
        return xml_reply(settings, 100, "Exception", [])
    if isinstance(fail_with, str) and fail_with.startswith("error:"):
        code = int(fail_with.removeprefix("error:"))
        return xml_reply(settings, code, ERROR_MESSAGES.get(code, f"Error {code}"), [])
    status = int(fail_with)
    headers = dict(HTML)
    if settings.retry_after is not None:
        headers["Retry-After"] = str(settings.retry_after)
    return Reply(status, headers, f"<html><body><h1>HTTP {status}</h1></body></html>".encode())


def window_fault_reply(settings: EmulatorSettings) -> Reply:
    """A request whose StartTime is in a fail window: HTTP ``fail_with`` (503 unless that is a status)."""
    status = settings.fail_with if isinstance(settings.fail_with, int) else 503
    return Reply(status, dict(HTML), f"<html>HTTP {status}</html>".encode())


async def send_faulted(request: web.Request, reply: Reply, fault: Fault) -> web.StreamResponse:
    """Send half of ``reply``'s body, then close (``truncate``: short of Content-Length) or abort (``drop``)."""
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


def hostile_reply(kind: str) -> Reply:
    """The ``answer_with`` answers: not the spec's, each a way a real server has gone wrong."""
    xml = {"Content-Type": "text/xml; charset=utf-8"}
    if kind == "empty":
        return Reply(200, {"Content-Type": "text/csv; charset=utf-8"}, b"")
    if kind == "html":
        page = b"<!DOCTYPE html><html><head><title>Runtime Error</title></head><body><h1>Error</h1></body></html>"
        return Reply(200, dict(HTML), page)
    if kind == "foreign_xml":
        envelope = b'<?xml version="1.0"?><soap:Envelope xmlns:soap="urn:x"><Fault>x</Fault></soap:Envelope>'
        return Reply(200, xml, envelope)
    if kind == "xxe":
        return Reply(
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
        return Reply(200, xml, (body + "</ROOT>").encode())
    if kind == "oversized_xml":
        pad = b"<DOWNLOADLINK>http://127.0.0.1/WebAPI/ReportFiles/x/y.csv</DOWNLOADLINK>" * 40_000
        return Reply(200, xml, b"<ROOT><ERRORCODE>0</ERRORCODE><ERRORMSG></ERRORMSG>" + pad + b"</ROOT>")
    raise ValueError(f"answer_with={kind!r}")
