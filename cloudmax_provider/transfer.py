"""Streaming a report body into any object store, atomically, with progress in the log.

:func:`write_atomically` is all or nothing, the way each store allows it cheaply:

* S3 and GCS: straight to the final key. Their multipart/resumable uploads make an object
  visible only when the upload completes (at ``close()``); on failure the upload is aborted
  (``discard()``), so nothing appears and an older object stays as it was. No second copy.
* Everything else (local files, stores without atomic uploads): a temporary object beside the
  destination (``.<name>.<uuid>.partial``), moved onto it when complete (``os.replace`` locally),
  removed on failure.

A re-run for the same window overwrites the same object.

Example::

    dest = ObjectStoragePath("s3://lake/cloudmax/2026-11-01/opens.csv", conn_id="aws_default")
    stats = write_atomically(dest, [b"a,b\\r\\n", b"1,2\\r\\n"])
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudmax_provider.errors import CloudmaxConfigError
from cloudmax_provider.response import CsvRowCounter, Encoding, transcode

if TYPE_CHECKING:
    from cloudmax_provider.formats import OutputFormat

log = logging.getLogger(__name__)


def check_landing_args(destination: Any, output_encoding: str | None) -> None:
    """Refuse, before anything runs, a literal destination that is not a URI or an unknown encoding.

    Templated values (``{{ ... }}``) and XComArgs are checked when they are used.
    """
    if isinstance(destination, str) and "{{" not in destination and "://" not in destination:
        raise CloudmaxConfigError(
            f"destination={destination!r} is not a URI; use e.g. 's3://bucket/key.csv' or "
            "'file:///data/report.csv' (or None for XCom, where the operator allows it)"
        )
    if output_encoding is not None:
        import codecs

        try:
            codecs.lookup(output_encoding)
        except LookupError:
            raise CloudmaxConfigError(
                f"output_encoding={output_encoding!r} is not a known encoding; use e.g. 'utf-8' or None"
            ) from None


@dataclass
class TransferStats:
    """What one write moved: data rows (header excluded), bytes written, seconds."""

    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def rate_mb_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """Counts bytes and CSV rows of a stream and logs them every ``every`` seconds."""

    def __init__(self, label: str, every: float = 5.0, logger: logging.Logger | Any = log) -> None:
        self.label, self.every, self.log = label, every, logger
        self.counter = CsvRowCounter()
        self.bytes = 0
        self.started = self._last = time.monotonic()

    def track(self, chunks: Iterable[bytes], encoding: str = "utf-8") -> Iterator[bytes]:
        """Pass ``chunks`` (text in ``encoding``) through, counting; rows are counted on the text."""
        import codecs

        codec = codecs.lookup(encoding).name
        decoder = None if codec in ("utf-8", "ascii") else codecs.getincrementaldecoder(codec)(errors="replace")
        for chunk in chunks:
            self.bytes += len(chunk)
            self.counter.feed(chunk if decoder is None else decoder.decode(chunk))
            now = time.monotonic()
            if now - self._last >= self.every:
                self._last = now
                self.log.info(
                    "%s: %.1f MB, %d rows, %.1f MB/s",
                    self.label,
                    self.bytes / 1e6,
                    self.rows,
                    self.bytes / 1e6 / max(now - self.started, 1e-9),
                )
            yield chunk

    @property
    def rows(self) -> int:
        return max(self.counter.records - 1, 0)

    def stats(self) -> TransferStats:
        return TransferStats(self.rows, self.bytes, time.monotonic() - self.started)


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


#: Stores whose uploads appear only when complete, and can be aborted (fsspec ``discard()``).
COMMIT_ON_CLOSE = frozenset({"s3", "s3a", "gs", "gcs"})


def write_atomically(dest: Any, chunks: Iterable[bytes], block_size: int = 8 << 20) -> int:
    """Write ``chunks`` to ``dest`` (an ``ObjectStoragePath``) all or nothing; returns bytes written."""
    if (getattr(dest, "protocol", "") or "file") in COMMIT_ON_CLOSE:
        return _write_direct(dest, chunks, block_size)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.partial"
    written = 0
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb", block_size=block_size) if _is_remote(dest) else tmp.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
        _move(tmp, dest)
    except BaseException:
        try:
            if tmp.exists():
                tmp.unlink()
        except Exception:  # the original error matters more than a failed clean-up
            log.warning("Could not remove the partial object %s", tmp)
        raise
    return written


def _write_direct(dest: Any, chunks: Iterable[bytes], block_size: int) -> int:
    out = dest.fs.open(dest.path, "wb", block_size=block_size)
    written = 0
    try:
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
    except BaseException:
        try:
            out.discard()  # abort the multipart/resumable upload: nothing becomes visible
        finally:
            out.closed = True  # never let close() (or garbage collection) commit a partial object
        raise
    out.close()  # completes the upload: the object appears whole
    return written


def _is_remote(path: Any) -> bool:
    return (getattr(path, "protocol", "") or "file") not in ("file", "local")


def _move(tmp: Any, dest: Any) -> None:
    if not _is_remote(dest):
        import os

        os.replace(tmp.path, dest.path)
        return
    tmp.fs.mv(tmp.path, dest.path)
    if tmp.exists():  # some stores copy without deleting
        tmp.unlink()


def land(
    context: Any,
    hook: Any,
    sources: list[Any],
    destination: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
    *,
    links: list[str] | None = None,
    one_object_per_link: bool = False,
    output: OutputFormat | None = None,
) -> str | list[str]:
    """Land a report's bodies at ``destination``: one merged object, or with ``one_object_per_link``
    one object per DOWNLOADLINK under the prefix ``destination`` (named by the link's file name, its
    extension replaced by the output format's)."""
    if one_object_per_link and links:
        from cloudmax_provider.links import DownloadLink

        prefix = destination.rstrip("/")
        return [
            land_report(
                context,
                hook,
                [source],
                f"{prefix}/{_with_extension(DownloadLink.parse(link).filename, output)}",
                conn_id,
                output_encoding,
                logger,
                output=output,
            )
            for source, link in zip(sources, links, strict=True)
        ]
    return land_report(context, hook, sources, destination, conn_id, output_encoding, logger, output=output)


def _with_extension(filename: str, output: OutputFormat | None) -> str:
    if output is None or output.name == "csv":
        return filename
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return f"{stem}.{output.extension}"


def land_report(
    context: Any,
    hook: Any,
    sources: list[Any],
    uri: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
    *,
    output: OutputFormat | None = None,
) -> str:
    """Stream ``sources`` (openers of :class:`~cloudmax_provider.hooks.cloudmax.ReportStream`) into the
    object ``uri`` as one object (CSV with the header once, or ``output``'s format), atomically,
    retrying the whole write on transient failures.

    Pushes ``rows`` and ``bytes`` XComs and returns ``uri``. Several sources are merged in one encoding:
    ``output_encoding``, or UTF-8 when bytes are otherwise kept as served.
    """
    stats = write_report(hook, sources, uri, conn_id, output_encoding, logger, output=output)
    ti = context["ti"]
    ti.xcom_push(key="rows", value=stats.rows)
    ti.xcom_push(key="bytes", value=stats.bytes)
    return uri


def write_report(
    hook: Any,
    sources: list[Any],
    uri: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
    *,
    output: OutputFormat | None = None,
) -> TransferStats:
    """:func:`land_report` without the XComs: write the object and return what was written."""
    from airflow.sdk import ObjectStoragePath

    from cloudmax_provider.formats import OutputFormat, open_each

    output = output or OutputFormat()
    dest = ObjectStoragePath(uri, conn_id=conn_id)
    target = output_encoding or ("utf-8" if len(sources) > 1 else None)
    started = time.monotonic()
    rows = written = 0
    for attempt in hook.retrying():
        with attempt:
            progress = Progress(f"Writing {uri}", logger=logger)
            encoder = output.encoder(target, progress, logger)
            written = write_atomically(dest, encoder.encode(open_each(sources)))
            rows = encoder.rows
    stats = TransferStats(rows, written, time.monotonic() - started)
    logger.info(
        "Wrote %s: %d rows, %d bytes in %.1fs (%.1f MB/s)",
        uri,
        stats.rows,
        stats.bytes,
        stats.seconds,
        stats.rate_mb_s,
    )
    return stats
