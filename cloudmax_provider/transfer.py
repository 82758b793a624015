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
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cloudmax_provider.errors import CloudmaxConfigError
from cloudmax_provider.response import CsvRowCounter, Encoding, transcode

log = logging.getLogger(__name__)


def check_landing_args(destination: Any, output_encoding: str | None, *, one_object_per_link: bool = False) -> None:
    """Refuse, when the DAG is parsed, a literal destination :func:`check_destination` refuses, or an
    unknown encoding. Templated values (``{{ ... }}``) and XComArgs are checked when rendered, before
    anything is sent (the operators call :func:`check_destination` and :func:`preflight_destination`)."""
    if isinstance(destination, str) and "{{" not in destination and "{%" not in destination:
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

    An absolute URI with a scheme (a rendered ``"{{ ds }}/x.csv"`` would land in the worker's working
    directory); ``file://`` with an absolute path (``file://data/x.csv`` names a host ``data``); no ``.``
    or ``..`` segment (a traversal out of the folder it names); with ``one_object_per_link`` a prefix
    ending in ``/``, else an object name (not a bare bucket or a folder).

    >>> check_destination("s3://lake/cloudmax/2026-11-01/opens.csv")
    """
    fix = "use e.g. 's3://bucket/cloudmax/{{ ds }}/report.csv' or 'file:///data/cloudmax/report.csv'"
    if not isinstance(uri, str):
        raise CloudmaxConfigError(f"destination={uri!r} is a {type(uri).__name__}, not a URI string; {fix}")
    parts = urlsplit(uri)
    if "://" not in uri or not _SCHEME.match(parts.scheme):
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
    from airflow.sdk import ObjectStoragePath

    if conn_id:
        from airflow.sdk import BaseHook

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
) -> str | list[str]:
    """Land a report's bodies at ``destination``: one merged object, or with ``one_object_per_link``
    one object per DOWNLOADLINK under the prefix ``destination`` (named by the link's file name)."""
    if one_object_per_link and links:
        from cloudmax_provider.links import DownloadLink

        prefix = destination.rstrip("/")
        names = [DownloadLink.parse(link).filename for link in links]  # safe base names: they stay under prefix
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            from cloudmax_provider.errors import CloudmaxLinkError

            raise CloudmaxLinkError(
                f"several DOWNLOADLINKs have the file name {twice[0]!r}: one object per link would overwrite "
                "another; set one_object_per_link=False to merge them into one report"
            )
        return [
            land_report(context, hook, [source], f"{prefix}/{name}", conn_id, output_encoding, logger)
            for source, name in zip(sources, names, strict=True)
        ]
    return land_report(context, hook, sources, destination, conn_id, output_encoding, logger)


def land_report(
    context: Any,
    hook: Any,
    sources: list[Any],
    uri: str,
    conn_id: str | None,
    output_encoding: str | None,
    logger: Any = log,
) -> str:
    """Stream ``sources`` (openers of :class:`~cloudmax_provider.hooks.cloudmax.ReportStream`) into the
    object ``uri`` as one CSV (header once), atomically, retrying the whole write on transient failures.

    Pushes ``rows`` and ``bytes`` XComs and returns ``uri``. Several sources are merged in one encoding:
    ``output_encoding``, or UTF-8 when bytes are otherwise kept as served.
    """
    from airflow.sdk import ObjectStoragePath

    dest = ObjectStoragePath(uri, conn_id=conn_id)
    target = output_encoding or ("utf-8" if len(sources) > 1 else None)
    progress = Progress(f"Writing {uri}", logger=logger)
    for attempt in hook.retrying():
        with attempt:
            progress = Progress(f"Writing {uri}", logger=logger)

            def body(progress: Progress = progress) -> Iterator[bytes]:
                for i, open_source in enumerate(sources):
                    with open_source() as stream:
                        chunks = csv_body(i == 0, stream.chunks, stream.encoding, target)
                        yield from progress.track(chunks, target or stream.encoding.name)

            write_atomically(dest, body())
    stats = progress.stats()
    logger.info(
        "Wrote %s: %d rows, %d bytes in %.1fs (%.1f MB/s)",
        uri,
        stats.rows,
        stats.bytes,
        stats.seconds,
        stats.rate_mb_s,
    )
    ti = context["ti"]
    ti.xcom_push(key="rows", value=stats.rows)
    ti.xcom_push(key="bytes", value=stats.bytes)
    return uri
