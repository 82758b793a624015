"""DOWNLOADLINK files: HTTP link files (ResponseMode 1, served under ``/WebAPI/ReportFiles/``) and files on the
emulated share (ResponseMode 0), each held back until ``link_ready_after`` has passed or ``release()``."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from aiohttp import web

from cloudmax_provider.testing.emulator.settings import HTML, LINK_PREFIX, Reply, not_found

if TYPE_CHECKING:
    from cloudmax_provider.testing.emulator.settings import EmulatorSettings


class LinkOwner(Protocol):
    """What the link host needs of its emulator (``app.LinkOwner``; no import of it: app imports us)."""

    settings: EmulatorSettings

    @property
    def base_url(self) -> str: ...

    @property
    def unc_root_path(self) -> Path: ...

    def _work(self, sub: str) -> Path: ...


__all__ = ["LinkFile", "LinkHost"]


@dataclass
class LinkFile:
    """One HTTP link's file: its name in the link, where it is, when it answers, its Content-Type."""

    name: str
    path: Path
    ready_at: float
    content_type: str


class LinkHost:
    """The link files of one emulator (its settings, work directory, share and event loop)."""

    def __init__(self, emulator: LinkOwner) -> None:
        self._emu = emulator
        self._lock = threading.Lock()
        self.files: dict[str, LinkFile] = {}  # by token (the link's first path segment)
        self._pending: list[asyncio.TimerHandle] = []
        self._held_unc: list[tuple[asyncio.TimerHandle, Callable[[], None]]] = []  # UNC files not written yet

    def http_link(self, token: str, fname: str, source: Path | bytes, content_type: str) -> str:
        """A mode-1 link to ``source`` (a big-report file, or bytes written under the work directory)."""
        s = self._emu.settings
        if isinstance(source, Path):
            path = source
        else:
            folder = self._emu._work("links") / token
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / ("link_filename.csv" if s.link_filename else fname)  # a hostile name stays off disk
            path.write_bytes(source)
        with self._lock:
            self.files[token] = LinkFile(fname, path, time.monotonic() + max(0.0, s.link_ready_after), content_type)
        base = (s.link_base_url or self._emu.base_url).rstrip("/")
        return f"{base}{LINK_PREFIX}{token}/{quote(fname, safe='')}"

    async def unc_file(self, token: str, fname: str, source: Path | bytes) -> str:
        r"""Write a mode-0 file on the share (now, or after ``link_ready_after``); returns its ``\\server\share``
        path."""
        s = self._emu.settings
        subdir = token[:16]
        target = self._emu.unc_root_path / subdir / fname

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{fname}.{uuid.uuid4().hex[:8]}.tmp")
            if isinstance(source, Path):
                shutil.copyfile(source, tmp)
            else:
                tmp.write_bytes(source)
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

    def serve(self, request: web.Request) -> Reply:
        """The answer to a request under ``/WebAPI/ReportFiles/``: the file, 404 until it is ready, or 302."""
        target = self._emu.settings.link_redirect_to
        if target and "hop" not in request.query:
            location = f"{target.rstrip('/')}{request.path}?hop=1"
            return Reply(302, {"Location": location, **HTML}, b"")
        rest = request.path[len(LINK_PREFIX) :]
        token, _, name = rest.partition("/")
        with self._lock:
            link = self.files.get(token)
        if link is None or link.name != name or time.monotonic() < link.ready_at or not link.path.exists():
            return not_found()
        if request.method not in ("GET", "HEAD"):
            return Reply(405, {"Allow": "GET, HEAD", "Content-Type": "text/plain"}, b"Method Not Allowed")
        return Reply(200, {"Content-Type": link.content_type}, path=link.path)

    def release(self, loop: asyncio.AbstractEventLoop | None) -> int:
        """Make every link file ready now (UNC files written); returns their number."""
        with self._lock:
            now = time.monotonic()
            for link in self.files.values():
                link.ready_at = min(link.ready_at, now)
            held, self._held_unc = self._held_unc, []
        for handle, write in held:
            if loop is not None:
                loop.call_soon_threadsafe(handle.cancel)
            write()
        return len(self.files) + len(held)

    def reset(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Forget every link file; UNC files not written yet never will be."""
        with self._lock:
            self.files.clear()
            pending, self._pending = self._pending, []
            self._held_unc.clear()
        if loop is not None:
            for handle in pending:
                loop.call_soon_threadsafe(handle.cancel)
