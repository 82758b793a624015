"""Streaming a report body into any object store, atomically, with progress in the log.

:func:`write_atomically` is all or nothing, the way each store allows it cheaply:

* S3 and GCS: straight to the final key. Their multipart/resumable uploads make an object
  visible only when the upload completes (at ``close()``); on failure the upload is aborted
  (``discard()``), so nothing appears and an older object stays as it was. No second copy.
* Everything else (local files, stores without atomic uploads): a temporary object beside the
  destination (``.<name>.<uuid>.partial``), moved onto it when complete (``os.replace`` locally),
  removed on failure. A process killed mid-write (SIGKILL, OOM, a lost host) cannot remove its
  temporary object: the next successful write of the same destination does
  (:func:`remove_stale_partials`).

A re-run for the same window overwrites the same object.

Example::

    dest = ObjectStoragePath("s3://lake/cloudmax/2026-11-01/opens.csv", conn_id="aws_default")
    stats = write_atomically(dest, [b"a,b\\r\\n", b"1,2\\r\\n"])
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cloudmax_provider.errors import CloudmaxConfigError
from cloudmax_provider.response import CsvRowCounter, Encoding, transcode

if TYPE_CHECKING:
    from cloudmax_provider.formats import OutputFormat

log = logging.getLogger(__name__)


def check_landing_args(destination: Any, output_encoding: str | None, *, one_object_per_link: bool = False) -> None:
    """Refuse, when the DAG is parsed, a literal destination :func:`check_destination` refuses, or an
    unknown encoding. Templated values (``{{ ... }}``) and XComArgs are checked when rendered, before
    anything is sent (the operators call :func:`check_destination` and :func:`preflight_destination`)."""
    from cloudmax_provider.templating import is_literal

    if isinstance(destination, str) and is_literal(destination):
        check_destination(destination, one_object_per_link=one_object_per_link)
    if output_encoding is not None:
        import codecs

        try:
            codecs.lookup(output_encoding)
        except LookupError:
            raise CloudmaxConfigError(
                f"output_encoding={output_encoding!r} is not a known encoding; use e.g. 'utf-8' or None"
            ) from None


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


def check_destination(uri: Any, *, one_object_per_link: bool = False) -> None:
    """Refuse a destination that would land somewhere else than it says (pure; no I/O).

    An absolute URI with a scheme (a rendered ``"2026-11-01/x.csv"`` would land in the worker's working
    directory; ``/data/x.csv`` is meant as ``file:///data/x.csv``); ``file://`` with an absolute path
    (``file://data/x.csv`` names a host ``data``); no ``.`` or ``..`` segment (a traversal out of the
    folder it names); with ``one_object_per_link`` a prefix ending in ``/``, else an object name (not a
    bare bucket or a folder).

    >>> check_destination("s3://lake/cloudmax/2026-11-01/opens.csv")
    """
    fix = "use e.g. 's3://bucket/cloudmax/{window_start:%Y-%m-%d}.csv' or 'file:///data/cloudmax/report.csv'"
    if not isinstance(uri, str):
        raise CloudmaxConfigError(f"destination={uri!r} is a {type(uri).__name__}, not a URI string; {fix}")
    parts = urlsplit(uri)
    if "://" not in uri or not _SCHEME.match(parts.scheme):
        if uri.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[/\\]", uri):
            raise CloudmaxConfigError(
                f"destination={uri!r} is a path without a scheme; write it as a URI, "
                f"{'file://' + uri if uri.startswith('/') else 'file:///' + uri.replace(chr(92), '/')!r} (a file on "
                "the worker) or an object store's, e.g. 's3://bucket/cloudmax/{window_start:%Y-%m-%d}.csv'"
            )
        raise CloudmaxConfigError(
            f"destination={uri!r} is not a URI (a relative path would land in the worker's working directory); {fix}"
        )
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise CloudmaxConfigError(
            f"destination={uri!r} names a host {parts.netloc!r}: a file URI needs an absolute path, "
            f"'file:///{parts.netloc}{parts.path}' (three slashes)"
        )
    segments = re.split(r"[/\\]", parts.path)
    if any(seg in (".", "..") for seg in segments):
        raise CloudmaxConfigError(
            f"destination={uri!r} has a '.' or '..' segment, which would land outside the folder it names; "
            "write the normalised path"
        )
    if parts.query or parts.fragment:
        raise CloudmaxConfigError(f"destination={uri!r} has a query or fragment ('?', '#'); {fix}")
    if one_object_per_link:
        if not uri.endswith("/"):
            raise CloudmaxConfigError(
                f"destination={uri!r} must be a prefix ending in '/' with one_object_per_link=True (each "
                f"DOWNLOADLINK lands as <prefix>/<file name>); write {uri + '/'!r}"
            )
    elif uri.endswith("/") or not parts.path.strip("/"):
        raise CloudmaxConfigError(
            f"destination={uri!r} names a folder or bucket, not an object; add the object's name, e.g. "
            f"{uri.rstrip('/') + '/report.csv'!r} (or set one_object_per_link=True for a prefix)"
        )


def preflight_destination(uri: str, conn_id: str | None) -> None:
    """Cheap checks of the destination's store, at the start of execute, before Report.aspx is called,
    so a report is never requested only to fail at the write:

    1. ``destination_conn_id``, when given, names an existing connection (the stores' hooks would
       otherwise fall back to default credentials silently);
    2. Airflow has a filesystem for the scheme (a provider registers it: ``s3://`` needs the Amazon one);
    3. the store would not be used anonymously (Airflow's S3 filesystem falls back to anonymous access
       when it finds no credentials; anonymous access cannot write);
    4. one metadata call: the bucket exists and these credentials can see it (s3, gs), or the nearest
       existing local folder is a writable directory.

    It writes nothing, so it cannot prove permission to write that key: that shows at the write, which
    is atomic (nothing half-written is left).
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if conn_id:
        from airflow.providers.common.compat.sdk import BaseHook

        try:
            BaseHook.get_connection(conn_id)
        except Exception as exc:
            if "NotFound" not in type(exc).__name__:
                raise
            raise CloudmaxConfigError(
                f"destination_conn_id={conn_id!r} is not a connection; create it (Admin > Connections or "
                f"AIRFLOW_CONN_{conn_id.upper()}) or fix the name"
            ) from None
    scheme = urlsplit(uri).scheme
    try:
        fs = ObjectStoragePath(uri, conn_id=conn_id).fs
    except ValueError as exc:
        raise CloudmaxConfigError(
            f"destination={uri!r}: Airflow has no filesystem for {scheme}:// ({exc}); install the provider "
            "that registers it (e.g. apache-airflow-providers-amazon[s3fs] for s3://) or use file:// or s3://"
        ) from None
    if getattr(fs, "anon", False):
        raise CloudmaxConfigError(
            f"destination={uri!r}: no credentials found for {scheme}:// (Airflow would write anonymously, which "
            "fails); set destination_conn_id to a connection with credentials, e.g. 'aws_default'"
        )
    try:
        if scheme in COMMIT_ON_CLOSE:
            bucket = urlsplit(uri).netloc
            if not fs.exists(bucket):
                raise CloudmaxConfigError(
                    f"destination={uri!r}: bucket {bucket!r} does not exist or destination_conn_id={conn_id!r} "
                    "cannot see it; create it or fix the destination/connection"
                )
        elif scheme in ("file", "local"):
            _check_local_folder(uri)
    except CloudmaxConfigError:
        raise
    except Exception as exc:
        raise CloudmaxConfigError(
            f"destination={uri!r} cannot be reached with destination_conn_id={conn_id!r}: "
            f"{type(exc).__name__}: {str(exc)[:300]}; check the connection's credentials and endpoint"
        ) from None


def _check_local_folder(uri: str) -> None:
    import os
    from urllib.parse import unquote

    folder = os.path.dirname(unquote(urlsplit(uri).path)) or "/"
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise CloudmaxConfigError(
            f"destination={uri!r}: {folder!r} is not a writable folder on this worker; fix the path or permissions"
        )


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
        import codecs

        codec = codecs.lookup(encoding).name
        decoder = None if codec in ("utf-8", "ascii") else codecs.getincrementaldecoder(codec)(errors="replace")
        feed = self.counter.feed if decoder is None else (lambda chunk: self.counter.feed(decoder.decode(chunk)))
        worker = _Worker(feed, self.queue_chunks, "cloudmax-row-counter") if self.background else None
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
                    self.log.info(
                        "%s: %.1f MB, %d rows, %.1f MB/s",
                        self.label,
                        self.bytes / 1e6,
                        self.rows,
                        self.bytes / 1e6 / max(now - self.started, 1e-9),
                    )
                yield chunk
        except BaseException:
            if worker is not None:
                worker.close(raise_error=False)
            raise
        if worker is not None:
            worker.close()  # every chunk counted

    @property
    def rows(self) -> int:
        return max(self.counter.records - 1, 0)

    def stats(self) -> TransferStats:
        return TransferStats(self.rows, self.bytes, time.monotonic() - self.started)


class _Worker:
    """Applies ``fn`` to items in order: inline for the first ``inline_bytes``, then in a thread of its own fed
    through a bounded queue (so memory stays bounded). A small report never starts a thread.

    ``put`` raises the worker's error, if it had one, at the next call; ``close`` waits for the queue to
    drain and raises it too. After an error the thread keeps taking items (dropping them), so ``put`` never
    blocks forever.
    """

    def __init__(self, fn: Any, max_items: int, name: str, inline_bytes: int = 4 << 20) -> None:
        import queue

        self._fn, self._name = fn, name
        self._queue: queue.Queue[Any] = queue.Queue(max_items)
        self._error: BaseException | None = None
        self._thread: Any = None
        self._inline_left = inline_bytes

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    self._fn(item)
                except BaseException as exc:
                    self._error = exc

    def put(self, item: Any) -> None:
        if self._thread is None:
            if self._inline_left > 0:
                self._inline_left -= len(item)
                self._fn(item)
                return
            import threading

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


def _write_all(out: Any, chunks: Iterable[bytes], threaded: bool = True) -> int:
    """``out.write`` every chunk, in a writer thread when ``threaded``: the next chunk is read (and
    counted) while this one is written. Returns the bytes written."""
    written = 0
    write = functools.partial(_write_sliced, out)
    if not threaded:
        for chunk in chunks:
            write(chunk)
            written += len(chunk)
        return written
    writer = _Worker(write, WRITE_QUEUE_CHUNKS, "cloudmax-writer")
    try:
        for chunk in chunks:
            writer.put(chunk)
            written += len(chunk)
    except BaseException:
        writer.close(raise_error=False)  # the original error matters more than a failed write
        raise
    writer.close()
    return written


#: Chunks waiting for the writer thread at most.
WRITE_QUEUE_CHUNKS = 8
#: Largest single ``write()``: a chunk is written in slices of this size (views, no copy). The kernel copies
#: each slice into the page cache while it is still in the CPU's L2 cache; one 1 MiB write() ran at
#: ~0.4-1 GB/s here against ~2-4 GB/s in 128 KiB slices (``dd bs=1M`` vs ``bs=128K`` shows the same).
WRITE_SLICE = 128 << 10


def _write_sliced(out: Any, chunk: bytes) -> None:
    if len(chunk) <= WRITE_SLICE:
        out.write(chunk)
        return
    view = memoryview(chunk)
    for start in range(0, len(view), WRITE_SLICE):
        out.write(view[start : start + WRITE_SLICE])


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
#: Stores written with concurrent multipart uploads (s3fs's async client).
S3_PROTOCOLS = frozenset({"s3", "s3a"})
#: S3 parts in flight at once (boto3's transfer manager uses 10); memory ~ (this + 2) x the part size.
S3_MAX_CONCURRENCY = 6


def write_atomically(
    dest: Any, chunks: Iterable[bytes], block_size: int = 8 << 20, *, max_concurrency: int = S3_MAX_CONCURRENCY
) -> int:
    """Write ``chunks`` to ``dest`` (an ``ObjectStoragePath``) all or nothing; returns bytes written.

    ``block_size`` is the part size of multipart/resumable uploads; on S3 up to ``max_concurrency`` parts
    upload at once while the next chunks arrive. A local file is written by the calling thread in
    cache-sized slices; other stores through a writer thread, so a slow upload overlaps the next read.
    Airflow's hook lineage is told of ``dest`` once it is whole.
    """
    written = _write_whole(dest, chunks, block_size, max_concurrency)
    record_output_lineage(dest)
    return written


def _write_whole(dest: Any, chunks: Iterable[bytes], block_size: int, max_concurrency: int) -> int:
    protocol = getattr(dest, "protocol", "") or "file"
    if protocol in S3_PROTOCOLS and hasattr(dest.fs, "_call_s3"):
        return _write_s3_multipart(dest, chunks, block_size, max(1, max_concurrency))
    if protocol in COMMIT_ON_CLOSE:
        return _write_direct(dest, chunks, block_size)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.partial"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _held_while_writing(tmp) as fd:
            # Through the filesystem, not ObjectStoragePath.open(): its file wrapper calls Airflow's lineage
            # collector on every write() (~0.5 CPU s per GiB here), and would name the temporary file as the
            # output; write_atomically records the destination once instead.
            with (
                tmp.fs.open(tmp.path, "wb", block_size=block_size)
                if fd is None
                else open(fd, "wb", closefd=False) as out
            ):
                # a local file is written by the thread that read the chunk, while it is still in that
                # core's cache (a writer thread copied it from the other core's: ~2x slower here)
                written = _write_all(out, chunks, threaded=_is_remote(dest))
            _move(tmp, dest)
    except BaseException:
        try:
            if tmp.exists():
                tmp.unlink()
        except Exception:  # the original error matters more than a failed clean-up
            log.warning("Could not remove the partial object %s", tmp)
        raise
    remove_stale_partials(dest)
    return written


def record_output_lineage(dest: Any) -> None:
    """Tell Airflow's hook-lineage collector that ``dest`` was written (what ``ObjectStoragePath.open()``'s
    wrapper does on every ``write()``), once, for the final object."""
    # common-compat's collector: add_output_asset on every version (Airflow 2's add_output_dataset underneath)
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    try:
        get_hook_lineage_collector().add_output_asset(context=dest, uri=str(dest))
    except Exception as exc:  # lineage must never fail a landed report
        log.debug("Hook lineage not recorded for %s: %s", dest, exc)


def remove_stale_partials(dest: Any) -> list[str]:
    """Remove the ``.<name>.<uuid>.partial`` files beside a local ``dest`` that killed writers left behind.

    Called once ``dest`` has been written whole. A writer holds an exclusive ``flock`` on its temporary
    file until it is moved into place, and the kernel drops the lock when the process dies however it
    dies; so a temporary file of the same destination that can be locked belongs to a dead writer, while
    one another run is still writing (two runs landing the same window) is left alone. Remote stores
    without atomic uploads are not swept (no such lock there): use a lifecycle rule on the prefix.
    Best effort: failures are logged. Returns the removed paths.
    Example: ``remove_stale_partials(ObjectStoragePath("file:///lake/opens/2026-11-01.csv"))``.
    """
    if _is_remote(dest):
        return []
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[0-9a-f]{{12}}\.partial")
    removed: list[str] = []
    try:
        leftovers = [p for p in dest.parent.iterdir() if pattern.fullmatch(p.name)]
    except Exception as exc:
        log.warning("Could not list %s for leftover temporary objects: %s", dest.parent, exc)
        return removed
    for leftover in leftovers:
        try:
            if _writer_alive(leftover.path):
                continue
            leftover.unlink()
            removed.append(str(leftover))
        except Exception as exc:
            log.warning("Could not remove the leftover temporary object %s: %s", leftover, exc)
    if removed:
        log.info("Removed %d temporary object(s) left by an earlier, killed attempt: %s", len(removed), removed)
    return removed


@contextlib.contextmanager
def _held_while_writing(tmp: Any) -> Iterator[int | None]:
    """Create a local temporary file, hold an exclusive ``flock`` on it until the block ends, and give
    its descriptor to write through (None for a remote store).

    The file is created new (``O_EXCL``: the name holds a random part) and written through this
    descriptor, never reopened with ``O_TRUNC``: on ext4 a truncation to zero bytes arms
    ``auto_da_alloc``, which makes ``close()`` start writing back every dirty page (0.3 s per GiB here).
    """
    if _is_remote(tmp):
        yield None
        return
    import os

    fd = os.open(tmp.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): leftovers are then never swept
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _writer_alive(path: str) -> bool:
    """Whether a live process still holds the writer's lock on a local temporary file (or it is brand new)."""
    import os

    try:
        import fcntl
    except ImportError:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # moved into place by its writer meanwhile
    try:
        if time.time() - os.fstat(fd).st_mtime < 1.0:
            return True  # just created: its writer may not hold the lock yet
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _write_direct(dest: Any, chunks: Iterable[bytes], block_size: int) -> int:
    """GCS (and S3 without s3fs's client): the filesystem's own upload, committed at ``close()``."""
    out = dest.fs.open(dest.path, "wb", block_size=block_size)
    try:
        written = _write_all(out, chunks)
    except BaseException:
        try:
            out.discard()  # abort the multipart/resumable upload: nothing becomes visible
        finally:
            out.closed = True  # never let close() (or garbage collection) commit a partial object
        raise
    out.close()  # completes the upload: the object appears whole
    return written


def _write_s3_multipart(dest: Any, chunks: Iterable[bytes], part_size: int, max_concurrency: int) -> int:
    """Stream to S3 with up to ``max_concurrency`` parts uploading at once, on s3fs's own event loop and
    client (so the connection's credentials, endpoint and ``s3_additional_kwargs`` apply).

    The object appears only at ``complete_multipart_upload``; on any failure the in-flight parts are
    cancelled and waited for, then the upload is aborted (no orphan multipart upload). A body smaller
    than one part is a single ``put_object``. Parts grow with the part number (8 MiB for the first 1,000,
    then 16 MiB, ...), so the 10,000-part limit is reached only past ~400 GiB.

    Parts are filled in a few reused ``bytearray`` buffers (one per part in flight, plus the one filling):
    no fresh 8 MiB block per part (a page fault per 4 KiB), and botocore hashes and sends a bytearray in
    one piece, with the GIL released, where it copies a ``bytes`` body through a ``BytesIO`` 1 MiB at a time.
    """
    import asyncio
    import concurrent.futures
    from collections import deque

    from fsspec.asyn import sync

    fs = dest.fs
    bucket, key, _ = fs.split_path(dest.path)
    upload_id: str | None = None
    in_flight: deque[tuple[int, bytearray, concurrent.futures.Future[Any]]] = deque()
    done: list[dict[str, Any]] = []
    free: list[bytearray] = []
    written = filled = 0

    def size_of_part(number: int) -> int:
        return part_size * (1 + (number - 1) // 1000)

    def new_buffer(number: int) -> bytearray:
        size = size_of_part(number)
        while free:
            buf = free.pop()
            if len(buf) == size:
                return buf
        return bytearray(size)

    def wait_oldest() -> None:
        number, buf, future = in_flight.popleft()
        done.append({"PartNumber": number, "ETag": future.result()["ETag"]})
        free.append(buf)

    def upload(buf: bytearray, size: int) -> None:
        """Send the first ``size`` bytes of ``buf`` as the next part (``buf`` is reused once it is done)."""
        nonlocal upload_id
        body = buf if size == len(buf) else buf[:size]
        if upload_id is None:
            upload_id = sync(fs.loop, fs._call_s3, "create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
        number = len(done) + len(in_flight) + 1
        coro = fs._call_s3("upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        in_flight.append((number, buf, asyncio.run_coroutine_threadsafe(coro, fs.loop)))
        while len(in_flight) >= max_concurrency:
            wait_oldest()

    buffer = new_buffer(1)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            written += len(view)
            while view:
                take = min(len(view), len(buffer) - filled)
                buffer[filled : filled + take] = view[:take]
                filled += take
                view = view[take:]
                if filled == len(buffer):  # a whole part: send it, fill the next buffer
                    upload(buffer, filled)
                    buffer, filled = new_buffer(len(done) + len(in_flight) + 1), 0
        if upload_id is None:  # smaller than one part: one PUT, visible only when whole
            sync(fs.loop, fs._call_s3, "put_object", Bucket=bucket, Key=key, Body=buffer[:filled])
        else:
            if filled:
                upload(buffer, filled)
            while in_flight:
                wait_oldest()
            parts = sorted(done, key=lambda p: p["PartNumber"])
            sync(
                fs.loop,
                fs._call_s3,
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
    except BaseException:
        for _, _, future in in_flight:
            future.cancel()
        concurrent.futures.wait([f for _, _, f in in_flight])
        if upload_id is not None:
            try:
                sync(fs.loop, fs._call_s3, "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:  # the original error matters more; S3 lifecycle rules clean up what is left
                log.warning("Could not abort the multipart upload %s of s3://%s/%s", upload_id, bucket, key)
        raise
    finally:
        fs.invalidate_cache(dest.path)
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
    extension replaced by the output format's).

    Pushes the XComs ``rows`` and ``bytes`` (totals over every object) and, per link, ``chunks``
    (``[{uri, rows, bytes}]``, one an object)."""
    if one_object_per_link and links:
        landed = land_each_link(hook, sources, links, destination, conn_id, output_encoding, logger, output)
        ti = context["ti"]
        ti.xcom_push(key="rows", value=sum(entry["rows"] for entry in landed))
        ti.xcom_push(key="bytes", value=sum(entry["bytes"] for entry in landed))
        ti.xcom_push(key="chunks", value=landed)
        return [entry["uri"] for entry in landed]
    return land_report(context, hook, sources, destination, conn_id, output_encoding, logger, output=output)


def land_each_link(
    hook: Any,
    sources: list[Any],
    links: list[str],
    destination: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
    output: OutputFormat | None = None,
) -> list[dict[str, Any]]:
    """Write each DOWNLOADLINK's body to ``<destination>/<its file name>``; ``[{uri, rows, bytes}]`` of each.

    Example: ``land_each_link(hook, hook.sources(None, links), links, "s3://lake/clicks/", "aws_default", "utf-8")``.
    """
    from cloudmax_provider.links import DownloadLink

    prefix = destination.rstrip("/")
    names = [_with_extension(DownloadLink.parse(link).filename, output) for link in links]  # safe base names
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        from cloudmax_provider.errors import CloudmaxLinkError

        raise CloudmaxLinkError(
            f"several DOWNLOADLINKs have the file name {twice[0]!r}: one object per link would overwrite "
            "another; set one_object_per_link=False to merge them into one report"
        )
    landed = []
    for source, name in zip(sources, names, strict=True):
        uri = f"{prefix}/{name}"
        stats = write_report(hook, [source], uri, conn_id, output_encoding, logger, output=output)
        landed.append({"uri": uri, "rows": stats.rows, "bytes": stats.bytes})
    return landed


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
    """:func:`land_report` without the XComs: write the object and return what was written.

    A typed format whose body has a record with too few or too many cells is written again with the
    row-by-row typer (XCom's rule: padded with empty cells, extra cells dropped, in place); the first write
    left nothing behind, as every write is atomic."""
    from cloudmax_provider.arrow_typing import RaggedRows
    from cloudmax_provider.formats import OutputFormat

    output = output or OutputFormat()
    try:
        return _write_report(hook, sources, uri, conn_id, output_encoding, logger, output)
    except RaggedRows as exc:
        logger.warning("%s: %s; writing it again record by record (XCom's rule for such records)", uri, exc)
        return _write_report(hook, sources, uri, conn_id, output_encoding, logger, output.row_by_row())


def _write_report(
    hook: Any,
    sources: list[Any],
    uri: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any,
    output: OutputFormat,
) -> TransferStats:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from cloudmax_provider.formats import open_each

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
