"""The emulator's HTTP server: :class:`CloudmaxEmulator` (aiohttp in a background thread), its request log and
the dispatch of each request to its route (Report.aspx, link files, ``/static/``), with faults applied."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from cloudmax_provider.api.catalog import get_report_part
from cloudmax_provider.testing.emulator.data import BigReports, as_launch_ids, as_time
from cloudmax_provider.testing.emulator.faults import Fault, FaultCounters, fail_with_reply, fault_note, send_faulted
from cloudmax_provider.testing.emulator.links import LinkHost
from cloudmax_provider.testing.emulator.routes import merge, parse_multipart, report_aspx
from cloudmax_provider.testing.emulator.settings import (
    API_PATH,
    LINK_PREFIX,
    STATIC_PREFIX,
    EmulatorSettings,
    RecordedRequest,
    Reply,
    not_found,
)
from cloudmax_provider.testing.rows import generate_rows, to_csv

if TYPE_CHECKING:
    from cloudmax_provider.testing.emulator.replay import Replay

__all__ = ["CloudmaxEmulator"]


class CloudmaxEmulator:
    """The Report.aspx emulator; see :mod:`cloudmax_provider.testing.emulator` for behaviour."""

    def __init__(self, settings: EmulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings if settings is not None else EmulatorSettings()
        self._baseline = copy.deepcopy(self.settings)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._log: list[RecordedRequest] = []
        self._in_flight = 0  # requests being handled now, and the most at once since reset()
        self.max_in_flight = 0
        self._gathered = asyncio.Event()  # settings.gather_api_requests reached: requests no longer wait
        self._link_host = LinkHost(self)
        self._links = self._link_host.files  # the HTTP link files by token (bench/triggers.py reads ready_at)
        self._static: dict[str, tuple[bytes, str]] = {}
        self._faults = FaultCounters(self.settings)
        self._big = BigReports(lambda: self._work("big"))
        self._workdir: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        # Called in the server's thread after each answer: (request, HTTP status, fault applied or "").
        # The CLI's request log and --scenario use it; a slow callback delays the next request.
        self.on_answer: Callable[[RecordedRequest, int, str], None] | None = None
        # Set to a Replay: every request is answered from a capture (--replay DIR).
        self.replay: Replay | None = None

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
        """Forget the requests so far, and count ``max_in_flight`` afresh."""
        with self._lock:
            self._log.clear()
            self.max_in_flight = self._in_flight
            self._gathered = asyncio.Event()

    def reset(self) -> None:
        """Construction-time settings (in place), empty log, no fault count, no prepared link files."""
        base = copy.deepcopy(self._baseline)
        self.replay = None
        for f in dataclasses.fields(EmulatorSettings):
            setattr(self.settings, f.name, getattr(base, f.name))
        with self._lock:
            self._log.clear()
            self._faults.restart()
            self.max_in_flight = self._in_flight
            self._gathered = asyncio.Event()
            self._static.clear()
        self._link_host.reset(self._loop)
        if self._workdir is not None:
            for sub in ("links", "unc"):
                shutil.rmtree(self._workdir / sub, ignore_errors=True)
                (self._workdir / sub).mkdir(exist_ok=True)

    def restart_fault_counts(self) -> None:
        """Count ``fail_first`` and ``fail_start_first`` afresh (as ``reset()`` does), keeping everything else."""
        self._faults.restart()

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
            as_launch_ids(launch_ids),
            as_time(start),
            as_time(end),
            columns=columns,
            rows_per_launch=s.rows_per_launch,
            time_format=s.time_format,
            language=language if part.supports_language else None,
            header_changes=s.header_changes,
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
        return self._link_host.release(self._loop)

    def big_report_info(self, report_part_id: int | str) -> tuple[Path, int, int]:
        """(path, size in bytes, data rows) of the big-report file for the current settings.

        Generates it if needed (``settings.big_report_bytes`` must be > 0); the file is what the
        server sends (same bytes, encoding included) whenever ``big_report_bytes`` is set.
        """
        s = self.settings
        if s.big_report_bytes <= 0:
            raise ValueError("settings.big_report_bytes is 0")
        part = get_report_part(report_part_id).id
        return self._big.get(part, s.csv_encoding, s.big_report_bytes, s.time_format, s.big_report_ragged)

    def big_report_path(self, report_part_id: int | str) -> Path:
        return self.big_report_info(report_part_id)[0]

    # --- internals -----------------------------------------------------------------------------

    def _work(self, sub: str) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="cloudmax-emulator-"))
        path = self._workdir / sub
        path.mkdir(parents=True, exist_ok=True)
        return path

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

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        trace: list[Any] = [None, ""]  # the RecordedRequest, the fault applied
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            resp = await self._handle_request(request, trace)
        finally:
            with self._lock:
                self._in_flight -= 1
        callback = self.on_answer
        if callback is not None and trace[0] is not None:
            callback(trace[0], resp.status, trace[1])
        return resp

    async def _gather(self, count: int) -> None:
        """Wait until ``count`` requests are being handled at once (then none waits again), at most 30 s."""
        with self._lock:
            reached = self._in_flight >= count
        if reached:
            self._gathered.set()
            return
        with contextlib.suppress(TimeoutError):  # fewer came together: max_in_flight tells the test
            await asyncio.wait_for(self._gathered.wait(), 30)

    async def _read_fields(
        self, request: web.Request
    ) -> tuple[dict[str, str], dict[str, str], dict[str, bytes], dict[str, str], int]:
        """(query, fields, files, file names, body size): the query first, then the form or multipart body."""
        body = await request.read()
        pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        query = merge(pairs)
        files: dict[str, bytes] = {}
        filenames: dict[str, str] = {}
        ctype = request.headers.get("Content-Type", "")
        if body and ctype.lower().startswith("application/x-www-form-urlencoded"):
            charset = request.charset or "utf-8"
            pairs += parse_qsl(body.decode(charset, "replace"), keep_blank_values=True, encoding=charset)
        elif body and ctype.lower().startswith("multipart/form-data"):
            form_pairs, files, filenames = parse_multipart(ctype, body)
            pairs += form_pairs
        return query, merge(pairs), files, filenames, len(body)

    async def _handle_request(self, request: web.Request, trace: list[Any]) -> web.StreamResponse:
        query, fields, files, filenames, body_size = await self._read_fields(request)
        trace[0] = self._record(request, query, fields, files, body_size)

        path_low = request.path.lower()
        kind = (
            "api" if path_low == API_PATH.lower() else "link" if path_low.startswith(LINK_PREFIX.lower()) else "other"
        )
        if kind == "api" and self.settings.latency > 0:
            await asyncio.sleep(self.settings.latency)
        if kind == "api" and self.settings.gather_api_requests > 1:
            await self._gather(self.settings.gather_api_requests)
        fault = self._faults.fault_for(kind)
        if fault is not None:
            trace[1] = fault_note(fault)
        if fault and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault and fault.fail_with is not None:
            if fault.fail_with == "reset":
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            return await self._send(request, fail_with_reply(self.settings, fault.fail_with), None)

        if self.replay is not None:
            reply, wait = self.replay.answer(request.method, request.path, fields, files, self.base_url)
            if wait > 0:
                await asyncio.sleep(wait)
        elif kind == "api":
            reply = await report_aspx(self, request, fields, files, filenames, trace)
        elif kind == "link":
            reply = self._link_host.serve(request)
        elif path_low.startswith(STATIC_PREFIX) and request.path[len(STATIC_PREFIX) :] in self._static:
            data, ct = self._static[request.path[len(STATIC_PREFIX) :]]
            reply = Reply(200, {"Content-Type": ct}, data)
        else:
            reply = not_found()
        return await self._send(request, reply, fault)

    async def _send(self, request: web.Request, reply: Reply, fault: Fault | None) -> web.StreamResponse:
        if fault is not None and (fault.truncate or fault.drop):
            return await send_faulted(request, reply, fault)
        if reply.path is not None:
            return web.FileResponse(reply.path, status=reply.status, headers=reply.headers)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
