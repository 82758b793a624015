"""Writing bytes into one storage object atomically: ``write`` puts all of them there, or none.

:func:`write` is all or nothing, the way each store allows it cheaply:

* S3: a multipart upload (:mod:`cloudmax_provider.landing.s3`), aborted on failure.
* GCS: gcsfs's resumable upload, the object appearing at ``close()``; on failure the session is cancelled.
  Zonal (Rapid) buckets are not atomic: gcsfs writes them as appendable objects.
* Azure Blob: adlfs commits the staged blocks at ``close()``; uncommitted blocks are invisible and dropped
  by Azure at the key's next commit, else after a week.
* Everything else: a temporary object ``.<name>.<uuid>.partial`` beside the destination, moved onto it
  when complete, removed on failure. A killed writer's leftover is removed by the next successful write
  of the same destination (:func:`remove_stale_partials`; on S3 the next write aborts its open upload).

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

    ``block_size`` is the upload's part or block size (default :data:`~cloudmax_provider.landing.s3.PART_SIZE`;
    :data:`GCS_CHUNK` on GCS). Airflow's hook lineage is told of ``dest`` once it is whole.
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
            # through the filesystem, not ObjectStoragePath.open(), whose wrapper records lineage on every write()
            with (
                tmp.fs.open(tmp.path, "wb", block_size=block_size)
                if fd is None
                else open(fd, "wb", closefd=False) as out
            ):
                # a local file is written by the thread that read the chunk, while it is in that core's cache
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

    A writer holds an ``flock`` on its temporary file until it is moved into place, so one that can be
    locked belongs to a dead writer. Remote stores are not swept. Best effort; returns the removed paths.
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
    its descriptor to write through (None for a remote store). Never reopened with ``O_TRUNC``: on ext4
    that arms ``auto_da_alloc``, making ``close()`` wait for every dirty page.
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
    """GCS, Azure (and S3 without boto3): the filesystem's own upload, committed at ``close()``; on failure
    cancelled (``discard()``) and marked closed so that nothing commits the part written."""
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
