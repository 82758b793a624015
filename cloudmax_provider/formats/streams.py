"""Report bodies as streams of bytes: the types every layer above the protocol passes around.

* :class:`ReportStream`: one open report body (its chunks, the encoding told from its first bytes, where it
  came from). The hook makes them; formats encode them; landing writes what the formats make.
* :func:`open_each`: open a report's sources one after the other.
* :func:`csv_body`: one source's bytes for a merged CSV report (transcoded, header once).
* :class:`Progress`: counts the bytes and CSV rows of a stream and logs them while it flows.
* :class:`OrderedWorker`: applies a function to items in order in a thread of its own, memory bounded.

This module imports nothing of the provider's but the response parser (encodings, the CSV row counter), so
the hook, the formats and the writers can all import it.
"""

from __future__ import annotations

import codecs
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from cloudmax_provider.api.body import Encoding
from cloudmax_provider.formats.encoding import transcode
from cloudmax_provider.formats.row_counter import CsvRowCounter

__all__ = ["OrderedWorker", "Progress", "ReportStream", "StreamOpener", "csv_body", "open_each"]

log = logging.getLogger(__name__)


@dataclass
class ReportStream:
    """An open report body: iterate ``chunks`` once. ``encoding`` was told from the first bytes."""

    chunks: Iterator[bytes]
    encoding: Encoding
    source: str  # secret-free: a redacted URL or the link
    filename: str = "report.csv"
    content_type: str = ""
    size: int | None = None


#: Opens one report body: a context manager yielding its :class:`ReportStream` (``hook.sources(...)`` gives them).
StreamOpener = Callable[[], AbstractContextManager[ReportStream]]


def open_each(sources: Iterable[StreamOpener]) -> Iterator[ReportStream]:
    """Open the sources (context managers yielding a ReportStream) one after the other; each is closed
    when the consumer asks for the next, or stops."""
    for open_source in sources:
        with open_source() as stream:
            yield stream


def csv_body(first: bool, chunks: Iterable[bytes], source: Encoding, target: str | None) -> Iterator[bytes]:
    """One source's bytes for a merged report: transcoded to ``target``; the header line dropped unless
    ``first`` (the reports are CSV with a one-line header, as Report.aspx writes them)."""
    out = transcode(chunks, source, target)
    if first:
        yield from out
        return
    newline = "\n".encode(target or source.name)
    buffered = b""
    for chunk in out:
        if buffered is not None:
            buffered += chunk
            idx = buffered.find(newline)
            if idx < 0:
                continue
            chunk, buffered = buffered[idx + len(newline) :], None  # type: ignore[assignment]
        if chunk:
            yield chunk


class Progress:
    """Counts bytes and CSV rows of a stream and logs them every ``every`` seconds.

    Rows are counted in a thread of their own (``background=True``, the default), off the path that
    reads and writes: :meth:`track` hands each chunk to it through a bounded queue and passes the chunk on
    at once; the count is complete when :meth:`track`'s iterator is exhausted. numpy's searches release the
    GIL, so with numpy the count costs the transfer almost nothing.
    """

    #: Chunks waiting for the counting thread at most (memory: this many chunks, ~1 MiB each).
    queue_chunks = 8

    def __init__(
        self, label: str, every: float = 5.0, logger: logging.Logger | Any = log, *, background: bool = True
    ) -> None:
        self.label, self.every, self.log = label, every, logger
        self.counter = CsvRowCounter()
        self.background = background
        self.bytes = 0
        self.started = self._last = time.monotonic()

    def track(self, chunks: Iterable[bytes], encoding: str = "utf-8") -> Iterator[bytes]:
        """Pass ``chunks`` (text in ``encoding``) through, counting; rows are counted on the text."""
        codec = codecs.lookup(encoding).name
        decoder = None if codec in ("utf-8", "ascii") else codecs.getincrementaldecoder(codec)(errors="replace")
        feed = self.counter.feed if decoder is None else (lambda chunk: self.counter.feed(decoder.decode(chunk)))
        worker = OrderedWorker(feed, self.queue_chunks, "cloudmax-row-counter") if self.background else None
        try:
            for chunk in chunks:
                self.bytes += len(chunk)
                if worker is None:
                    feed(chunk)
                else:
                    worker.put(chunk)
                now = time.monotonic()
                if now - self._last >= self.every:
                    self._last = now
                    self._log_progress(now)
                yield chunk
        except BaseException:
            if worker is not None:
                worker.close(raise_error=False)
            raise
        if worker is not None:
            worker.close()  # every chunk counted

    def _log_progress(self, now: float) -> None:
        rate = self.bytes / 1e6 / max(now - self.started, 1e-9)
        self.log.info("%s: %.1f MB, %d rows, %.1f MB/s", self.label, self.bytes / 1e6, self.rows, rate)

    @property
    def rows(self) -> int:
        """Data rows counted so far (the header excluded)."""
        return max(self.counter.records - 1, 0)


class OrderedWorker:
    """Applies ``fn`` to items in order: inline for the first ``inline_bytes``, then in a thread of its own fed
    through a bounded queue (so memory stays bounded). A small report never starts a thread.

    ``put`` raises the worker's error, if it had one, at the next call; ``close`` waits for the queue to
    drain and raises it too. After an error the thread keeps taking items (dropping them), so ``put`` never
    blocks forever.
    """

    def __init__(self, fn: Any, max_items: int, name: str, inline_bytes: int = 4 << 20) -> None:
        self._fn, self._name = fn, name
        self._queue: queue.Queue[Any] = queue.Queue(max_items)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._inline_left = inline_bytes

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    self._fn(item)
                except BaseException as exc:
                    self._error = exc

    def put(self, item: Any) -> None:
        """Apply ``fn`` to ``item`` (inline, or queued for the thread)."""
        if self._thread is None:
            if self._inline_left > 0:
                self._inline_left -= len(item)
                self._fn(item)
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self, raise_error: bool = True) -> None:
        """Wait until every item is done (and the thread ended)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


_STOP = object()
