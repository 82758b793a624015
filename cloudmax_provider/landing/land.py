"""Landing a report: its bodies, encoded in the output format, written atomically at a destination.

*Write* puts bytes into one object (:func:`cloudmax_provider.landing.atomic.write`); *land* puts a report
into a destination and returns what was landed (:class:`Landed`): :func:`land` (one object, or one per
DOWNLOADLINK), :func:`land_object`, :func:`land_chunks` (one object per partition, resuming from a
:class:`ChunkManifest`).

Example::

    landed = land_object(hook, hook.sources(request), "s3://lake/opens/2026-11-01.csv", "aws_default", "utf-8")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloudmax_provider.exceptions import CloudmaxConfigError, CloudmaxHaltedError, CloudmaxLinkError
from cloudmax_provider.formats.streams import Progress, StreamOpener, open_each
from cloudmax_provider.formats.writers import OutputFormat
from cloudmax_provider.landing import atomic
from cloudmax_provider.links.download_link import DownloadLink
from cloudmax_provider.windows.chunks import MANIFEST_FOLDER

if TYPE_CHECKING:  # the hook (requests, tenacity) and Airflow's context stay out of this module's import
    from airflow.providers.common.compat.sdk import Context

    from cloudmax_provider.api.request import ReportRequest
    from cloudmax_provider.api.schema import HeaderDiff
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

__all__ = ["ChunkManifest", "Landed", "land", "land_chunks", "land_object"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Landed:
    """One object landed: where, its data rows (header excluded), its bytes, the seconds it took."""

    uri: str
    rows: int
    bytes: int
    seconds: float = 0.0
    schema_change: HeaderDiff | None = None  # the served header's difference from the expected columns

    @property
    def rate_mb_s(self) -> float:
        """Megabytes (10**6 bytes) a second."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def as_xcom(self) -> dict[str, Any]:
        """``{uri, rows, bytes}`` (and ``schema_change``: ``{added, missing}`` when the columns changed), as the
        ``chunks`` XCom lists each object."""
        entry: dict[str, Any] = {"uri": self.uri, "rows": self.rows, "bytes": self.bytes}
        if self.schema_change is not None:
            entry["schema_change"] = self.schema_change.as_xcom()
        return entry


def land(
    hook: CloudmaxHook,
    sources: list[StreamOpener],
    destination: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
    *,
    links: list[str] | None = None,
    one_object_per_link: bool = False,
    output: OutputFormat | None = None,
) -> list[Landed]:
    """Land a report's bodies at ``destination``: one merged object, or with ``one_object_per_link``
    one object per DOWNLOADLINK at ``<destination>/<its file name>`` (its extension the output format's).
    Returns each object landed."""
    if not (one_object_per_link and links):
        return [land_object(hook, sources, destination, conn_id, output_encoding, logger, output=output)]
    prefix = destination.rstrip("/")
    names = [_with_extension(DownloadLink.parse(link).filename, output) for link in links]  # safe base names
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise CloudmaxLinkError(
            f"several DOWNLOADLINKs have the file name {twice[0]!r}: one object per link would overwrite "
            "another; set one_object_per_link=False to merge them into one report"
        )
    return [
        land_object(hook, [source], f"{prefix}/{name}", conn_id, output_encoding, logger, output=output)
        for source, name in zip(sources, names, strict=True)
    ]


def _with_extension(filename: str, output: OutputFormat | None) -> str:
    if output is None or output.name == "csv":
        return filename
    return f"{filename.rsplit('.', 1)[0]}.{output.extension}"


def land_object(
    hook: CloudmaxHook,
    sources: list[StreamOpener],
    uri: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
    *,
    output: OutputFormat | None = None,
) -> Landed:
    """Stream ``sources`` into the object ``uri`` (CSV with the header once, or ``output``'s format),
    atomically, retrying the whole write on transient failures; return what was landed.

    Several sources are merged in one encoding: ``output_encoding``, or UTF-8 when bytes are otherwise kept
    as served. A record with too few or too many cells gets XCom's rule in the same pass (padded, or extra
    cells dropped)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath  # Airflow's filesystems: at run time only

    dest = ObjectStoragePath(uri, conn_id=conn_id)
    target = output_encoding or ("utf-8" if len(sources) > 1 else None)
    started = time.monotonic()
    rows = written = 0
    diff = None
    for attempt in hook.retrying():
        with attempt:
            progress = Progress(f"Writing {uri}", logger=logger)
            encoder = (output or OutputFormat()).encoder(target, progress, logger)
            written = atomic.write(dest, encoder.encode(open_each(sources)))
            rows, diff = encoder.rows, encoder.schema_diff
    landed = Landed(uri, rows, written, time.monotonic() - started, diff)
    logger.info(
        "Wrote %s: %d rows, %d bytes in %.1fs (%.1f MB/s)", uri, rows, written, landed.seconds, landed.rate_mb_s
    )
    return landed


@dataclasses.dataclass
class ChunkManifest:
    """The chunks one run of one task instance has landed under a prefix (the resume of
    :mod:`cloudmax_provider.windows.chunks`)."""

    uri: str
    fingerprint: str
    chunks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @staticmethod
    def location(prefix: str, context: Context) -> str:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        key = f"{ti.dag_id}.{ti.task_id}.{map_index}.{context['run_id']}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return f"{prefix}{MANIFEST_FOLDER}/{_UNSAFE.sub('_', key)[:180]}-{digest}.json"

    @classmethod
    def load(cls, uri: str, conn_id: str | None, fingerprint: str, logger: Any = log) -> ChunkManifest:
        """The manifest at ``uri``; an empty one if there is none or it is for another request."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        path = ObjectStoragePath(uri, conn_id=conn_id)
        if not path.exists():
            return cls(uri, fingerprint)
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            logger.warning("Ignoring the unreadable manifest %s (%s): every chunk is fetched", uri, exc)
            return cls(uri, fingerprint)
        if data.get("fingerprint") != fingerprint:
            logger.info("The manifest %s is for other arguments: every chunk is fetched afresh", uri)
            return cls(uri, fingerprint)
        return cls(uri, fingerprint, {c["uri"]: c for c in data.get("chunks", [])})

    def save(self, conn_id: str | None) -> None:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        body = json.dumps({"version": 1, "fingerprint": self.fingerprint, "chunks": list(self.chunks.values())})
        atomic.write(ObjectStoragePath(self.uri, conn_id=conn_id), [body.encode()])

    def delete(self, conn_id: str | None) -> None:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        path = ObjectStoragePath(self.uri, conn_id=conn_id)
        if path.exists():
            path.unlink()


def _fingerprint(request: ReportRequest, grid: str, output: OutputFormat, output_encoding: str | None) -> str:
    fields = {k: v for k, v in request.fields().items() if k not in ("ResponseMode",)}
    key = {
        "fields": fields,
        "grid": grid,
        "format": output.name,
        "compression": output.compression if output.name == "parquet" else None,
        "encoding": output_encoding if output.name == "csv" else None,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def land_chunks(
    context: Context,
    hook: CloudmaxHook,
    request: ReportRequest,
    partitions: list[tuple[datetime, datetime]],
    name_of: Callable[[datetime, datetime], str],
    conn_id: str | None,
    output_encoding: str | None,
    output: OutputFormat,
    logger: Any = log,
    *,
    resume: bool = True,
    folder: str,
    grid: str = "day",
    max_concurrent: int = 1,
    count_before: int = 0,
) -> list[dict[str, Any]]:
    """Land ``request``'s window one object per partition, named ``name_of(start, end)``; return
    ``[{start, end, uri, rows, bytes}]`` for every partition (those an earlier try landed included), the first
    ``count_before`` (a lookback's) with ``rows_before``.

    With several partitions and ``resume``, a manifest under ``folder`` lets a retry skip the partitions an
    earlier try landed; ``max_concurrent`` > 1 lands up to that many partitions at once. Example::

        land_chunks(context, hook, request, days, name_of, None, "utf-8", OutputFormat(), folder="file:///lake/")
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    uris = [name_of(start, end) for start, end in partitions]
    if len(set(uris)) != len(uris):
        raise CloudmaxConfigError(f"two partitions of {request.start} .. {request.end} would land at one name")
    resume = resume and len(partitions) > 1  # one partition: a retry requests it again anyway
    manifest = ChunkManifest(
        ChunkManifest.location(folder, context), _fingerprint(request, grid, output, output_encoding)
    )
    if resume:
        manifest = ChunkManifest.load(manifest.uri, conn_id, manifest.fingerprint, logger)
        logger.info(
            "%d partition(s) of %s; resume manifest %s (%d landed by earlier tries)",
            len(partitions),
            grid,
            manifest.uri,
            len(manifest.chunks),
        )
    book = _Book([None] * len(partitions), manifest if resume else None, conn_id)
    todo: list[_Partition] = []
    for index, ((start, end), uri) in enumerate(zip(partitions, uris, strict=True)):
        done = manifest.chunks.get(uri)
        if done is not None and ObjectStoragePath(uri, conn_id=conn_id).exists():
            logger.info("Partition %s .. %s: landed by an earlier try, not requested again: %s", start, end, uri)
            book.landed[index] = done
        else:
            todo.append(_Partition(index, start, end, uri))
    land_one = _PartitionLander(request, conn_id, output_encoding, output, logger, frozenset(uris[:count_before]))
    if max_concurrent > 1 and len(todo) > 1:
        _land_in_parallel(hook, todo, land_one, book, max_concurrent, logger)
    else:
        for part in todo:
            book.record(part, land_one(hook, part))
    if resume:
        manifest.delete(conn_id)  # complete: a later clear of this (successful) task fetches everything again
    return [entry for entry in book.landed if entry is not None]


@dataclass(frozen=True)
class _Partition:
    """One partition to land: its place in the window, its window and its object."""

    index: int
    start: datetime
    end: datetime
    uri: str


@dataclass(frozen=True)
class _PartitionLander:
    """Lands one partition (its own request, stream and atomic object) with a given hook."""

    request: ReportRequest
    conn_id: str | None
    output_encoding: str | None
    output: OutputFormat
    logger: Any
    #: the objects whose earlier landing's rows are counted first (``rows_before``: a lookback's partitions)
    count_before: frozenset[str] = frozenset()

    def __call__(self, hook: CloudmaxHook, part: _Partition) -> dict[str, Any]:
        """``{start, end, uri, rows, bytes}`` (and ``rows_before``) of the partition landed."""
        sub = dataclasses.replace(self.request, start=part.start, end=part.end)
        self.logger.info("Partition %s .. %s: requesting %s", part.start, part.end, sub.describe())
        before = {}
        if part.uri in self.count_before:
            before["rows_before"] = rows_before(part.uri, self.conn_id, self.output, self.logger)
        try:
            landed = land_object(
                hook, hook.sources(sub), part.uri, self.conn_id, self.output_encoding, self.logger, output=self.output
            )
        except Exception as exc:
            exc.add_note(f"while landing the partition {part.start} .. {part.end} ({part.uri})")
            raise
        return {"start": part.start.isoformat(), "end": part.end.isoformat(), **landed.as_xcom(), **before}


def rows_before(uri: str, conn_id: str | None, output: OutputFormat, logger: Any = log) -> int | None:
    """The data rows of the object ``uri`` as an earlier landing left it: 0 when there is none, a Parquet
    footer's count, ``None`` (unknown) for CSV and JSON Lines (they would be read whole) or when unreadable."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    path = ObjectStoragePath(uri, conn_id=conn_id)
    try:
        if not path.exists():
            return 0
        if output.name != "parquet":
            return None
        import pyarrow.parquet as pq

        with path.fs.open(path.path, "rb") as fh:  # the filesystem's file: not recorded as an input of the task
            return int(pq.ParquetFile(fh).metadata.num_rows)
    except Exception as exc:  # a count for the log and XCom must never fail the landing
        logger.warning("The rows %s held before are unknown: %s: %s", uri, type(exc).__name__, exc)
        return None


@dataclass
class _Book:
    """What has landed, in partition order, and the resume manifest rewritten after each (one writer at a time)."""

    landed: list[dict[str, Any] | None]
    manifest: ChunkManifest | None
    conn_id: str | None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def record(self, part: _Partition, entry: dict[str, Any]) -> None:
        with self._lock:
            self.landed[part.index] = entry
            if self.manifest is not None:
                self.manifest.chunks[part.uri] = entry
                self.manifest.save(self.conn_id)


def _land_in_parallel(
    hook: CloudmaxHook,
    todo: list[_Partition],
    land_one: _PartitionLander,
    book: _Book,
    workers: int,
    logger: Any,
) -> None:
    """Land ``todo`` with up to ``workers`` threads, each with its own hook (:meth:`CloudmaxHook.for_worker`).

    The first failure stops new partitions (those in flight finish and stay in the manifest) and is raised
    once every thread is done; an ErrorCode 100 also stops every request at once (``ErrorCode100Policy.halt``)."""
    pending = iter(todo)
    lock = threading.Lock()
    failed: list[tuple[_Partition, BaseException]] = []
    stop = threading.Event()
    policy = hook.error_100
    policy.halt = threading.Event()

    def work() -> None:
        worker = hook.for_worker()
        try:
            while not stop.is_set():
                with lock:
                    part = next(pending, None)
                if part is None:
                    return
                try:
                    book.record(part, land_one(worker, part))
                except BaseException as exc:
                    with lock:
                        failed.append((part, exc))
                    stop.set()
                    return
        finally:
            worker.close()

    threads = [threading.Thread(target=work, name=f"cloudmax-partition-{n}", daemon=True) for n in range(workers)]
    logger.info("Landing %d partition(s), up to %d at once", len(todo), len(threads))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()  # the task killed meanwhile: no thread starts another partition
        policy.halt = None
    if failed:
        part, exc = next(((p, e) for p, e in failed if not isinstance(e, CloudmaxHaltedError)), failed[0])
        landed = sum(entry is not None for entry in book.landed)
        logger.error(
            "Partition %s .. %s failed: %s; %d of %d partition(s) landed and kept in the manifest, a retry lands "
            "only the others",
            part.start,
            part.end,
            exc,
            landed,
            len(book.landed),
        )
        raise exc
