"""Writing bytes into one storage object atomically: ``write`` puts all of them there, or none.

:func:`write` is all or nothing, the way each store allows it cheaply:

* S3: a multipart upload through boto3's public API, parts in flight concurrently
  (:mod:`cloudmax_provider.landing.s3`); the object appears at completion, the upload is aborted on failure.
* GCS (``gs://``): gcsfs's resumable upload (``fs.open(path, "wb")``): chunks go to an upload session and
  the object appears with the final one, at ``close()``; on failure the session is cancelled
  (``discard()``, a ``DELETE`` of the session). Zonal (Rapid) buckets are not atomic: gcsfs writes them as
  appendable objects whose ``discard()`` does nothing.
* Azure Blob (``abfs://``, ``abfss://``, ``az://``): adlfs stages blocks (Put Block) and commits the
  block list at ``close()``; on failure nothing is committed. Uncommitted blocks are invisible; Azure
  drops them when the next block list of that blob is committed (the next successful write of the same
  key), else after a week.
* Everything else (local files, stores without atomic uploads): a temporary object beside the
  destination (``.<name>.<uuid>.partial``), moved onto it when complete (``os.replace`` locally),
  removed on failure. A process killed mid-write (SIGKILL, OOM, a lost host) cannot remove its
  temporary object: the next successful write of the same destination does
  (:func:`remove_stale_partials`; on S3 the next write aborts the killed writer's open upload, on Azure
  it discards its blocks, on GCS a killed writer's session holds no object and expires after a week).

A re-run for the same window overwrites the same object.

Example::

    dest = ObjectStoragePath("s3://lake/cloudmax/2026-11-01/opens.csv", conn_id="aws_default")
    written = write(dest, [b"a,b\\r\\n", b"1,2\\r\\n"])
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from cloudmax_provider.formats.streams import OrderedWorker
from cloudmax_provider.landing.destinations import COMMIT_ON_CLOSE, GCS_PROTOCOLS, S3_PROTOCOLS, is_remote
from cloudmax_provider.landing.lineage import record_output_lineage
from cloudmax_provider.landing.s3 import MAX_CONCURRENCY, PART_SIZE, write_s3

try:
    import fcntl
except ImportError:  # no flock (Windows): leftovers are then never swept
    fcntl = None  # type: ignore[assignment]

__all__ = ["remove_stale_partials", "write"]

log = logging.getLogger(__name__)


def write(
    dest: Any, chunks: Iterable[bytes], block_size: int | None = None, *, max_concurrency: int = MAX_CONCURRENCY
) -> int:
    """Write ``chunks`` to ``dest`` (an ``ObjectStoragePath``) all or nothing; returns bytes written.

    ``block_size`` is the part size of multipart/resumable uploads and Azure's block size (default
    :data:`~cloudmax_provider.landing.s3.PART_SIZE`; :data:`GCS_CHUNK` on GCS); on S3 up to ``max_concurrency`` parts
    upload at once while the next chunks arrive. A local file is written by the calling thread in
    cache-sized slices; other stores through a writer thread, so a slow upload overlaps the next read.
    Airflow's hook lineage is told of ``dest`` once it is whole.
    """
    protocol = getattr(dest, "protocol", "") or "file"
    if block_size is None:
        block_size = GCS_CHUNK if protocol in GCS_PROTOCOLS else PART_SIZE
    if protocol in S3_PROTOCOLS and _has_boto3():
        written = write_s3(dest, chunks, block_size, max_concurrency)
    elif protocol in COMMIT_ON_CLOSE:
        written = _write_committed_on_close(dest, chunks, block_size)
    else:
        written = _write_through_temporary(dest, chunks, block_size)
    record_output_lineage(dest)
    return written


@functools.cache
def _has_boto3() -> bool:
    return importlib.util.find_spec("boto3") is not None


def _write_through_temporary(dest: Any, chunks: Iterable[bytes], block_size: int) -> int:
    """A temporary object beside ``dest``, moved onto it when whole; removed on failure."""
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.partial"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _held_while_writing(tmp) as fd:
            # Through the filesystem, not ObjectStoragePath.open(): its file wrapper calls Airflow's lineage
            # collector on every write() (CPU time that grows with the bytes), and would name the temporary file as the
            # output; write records the destination once instead.
            with (
                tmp.fs.open(tmp.path, "wb", block_size=block_size)
                if fd is None
                else open(fd, "wb", closefd=False) as out
            ):
                # a local file is written by the thread that read the chunk, while it is still in that
                # core's cache (a writer thread would copy it from the other core's, which is slower)
                written = _write_into(out, chunks, threaded=is_remote(dest))
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
    if is_remote(dest):
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
    ``auto_da_alloc``, which makes ``close()`` start writing back every dirty page (a wait that grows with the size).
    """
    if is_remote(tmp):
        yield None
        return
    fd = os.open(tmp.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _writer_alive(path: str) -> bool:
    """Whether a live process still holds the writer's lock on a local temporary file (or it is brand new)."""
    if fcntl is None:
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


def _write_committed_on_close(dest: Any, chunks: Iterable[bytes], block_size: int) -> int:
    """GCS, Azure (and S3 without boto3): the filesystem's own upload, committed at ``close()``.

    On failure ``discard()`` cancels it (gcsfs: the resumable session; s3fs: the multipart upload; adlfs
    has nothing to cancel: its staged blocks stay uncommitted) and the file is marked closed, so neither
    ``close()`` nor garbage collection commits the part written.
    """
    out = dest.fs.open(dest.path, "wb", block_size=block_size)
    try:
        written = _write_into(out, chunks)
    except BaseException:
        try:
            out.discard()  # abort the multipart/resumable upload: nothing becomes visible
        except Exception as exc:  # the original error matters more than a failed cancel
            log.warning("Could not cancel the upload to %s: %s", dest, exc)
        finally:
            out.closed = True  # never let close() (or garbage collection) commit a partial object
        raise
    out.close()  # completes the upload: the object appears whole
    return written


def _move(tmp: Any, dest: Any) -> None:
    if not is_remote(dest):
        os.replace(tmp.path, dest.path)
        return
    tmp.fs.mv(tmp.path, dest.path)
    if tmp.exists():  # some stores copy without deleting
        tmp.unlink()


def _write_into(out: Any, chunks: Iterable[bytes], threaded: bool = True) -> int:
    """``out.write`` every chunk, in a writer thread when ``threaded``: the next chunk is read (and
    counted) while this one is written. Returns the bytes written."""
    written = 0
    write = functools.partial(_write_sliced, out)
    if not threaded:
        for chunk in chunks:
            write(chunk)
            written += len(chunk)
        return written
    writer = OrderedWorker(write, WRITE_QUEUE_CHUNKS, "cloudmax-writer")
    try:
        for chunk in chunks:
            writer.put(chunk)
            written += len(chunk)
    except BaseException:
        writer.close(raise_error=False)  # the original error matters more than a failed write
        raise
    writer.close()
    return written


#: Chunk of GCS's resumable upload: each is one request, sent after the previous one is acknowledged (the
#: protocol is sequential), so fewer, larger chunks cost fewer round trips (bench/object_stores.py measures
#: the chunk sizes; gcsfs's own put_file sends chunks of a similar size).
GCS_CHUNK = 32 << 20
#: Chunks waiting for the writer thread at most.
WRITE_QUEUE_CHUNKS = 8
#: Largest single ``write()``: a chunk is written in slices of this size (views, no copy). The kernel copies
#: each slice into the page cache while it is still in the CPU's L2 cache, which a write() of a whole
#: chunk does not (``dd bs=1M`` vs ``bs=128K`` shows the same; docs/performance.md has the figures).
WRITE_SLICE = 128 << 10


def _write_sliced(out: Any, chunk: bytes) -> None:
    if len(chunk) <= WRITE_SLICE:
        out.write(chunk)
        return
    view = memoryview(chunk)
    for start in range(0, len(view), WRITE_SLICE):
        out.write(view[start : start + WRITE_SLICE])
