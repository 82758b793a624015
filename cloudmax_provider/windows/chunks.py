"""Long windows in chunks: one request and one object per partition, and retries that resume.

With ``chunk=`` each partition of the grid is one object named by its window in account time
(:func:`chunk_object_name`), ``<prefix>2026-10-01T00-00-00_2026-10-02T00-00-00.parquet``.

**Resume.** After each chunk lands, a JSON manifest (:class:`cloudmax_provider.landing.land.ChunkManifest`) is
rewritten atomically at ``<prefix>_cloudmax_manifests/<dag_id>.<task_id>.<map_index>.<run_id>-<hash>.json``,
listing the chunks this run's tries landed and a fingerprint of the request. A retry of the same task
instance skips the listed chunks whose object still exists; another run or another fingerprint lands
everything. The manifest is deleted once every chunk has landed: clearing a *successful* task fetches
everything again, clearing a *failed* one resumes (delete the manifest, or ``resume=False``, to refetch).
Engines skip the ``_``-prefixed folder.

Dynamic task mapping, one task instance per chunk, is the alternative: :func:`expand_windows`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cloudmax_provider.api.catalog import DEFAULT_TIMEZONE
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.windows.partitions import check_positive_timedelta

__all__ = [
    "MANIFEST_FOLDER",
    "chunk_object_name",
    "chunk_windows",
    "expand_windows",
    "manifest_prefix",
]

MANIFEST_FOLDER = "_cloudmax_manifests"


def chunk_windows(start: datetime, end: datetime, chunk: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive ``[start, start+chunk)`` windows covering ``[start, end)``, the last one cut at ``end``.

    >>> from datetime import datetime, timedelta
    >>> [(s.day, e.day) for s, e in chunk_windows(datetime(2026, 10, 1), datetime(2026, 10, 3, 12), timedelta(days=1))]
    [(1, 2), (2, 3), (3, 3)]
    """
    check_positive_timedelta(chunk, "chunk")
    if end <= start:
        raise CloudmaxConfigError(f"the window {start} .. {end} is empty or reversed")
    windows = []
    begin, end = _plain(start), _plain(end)
    while begin < end:
        stop = min(begin + chunk, end)
        windows.append((begin, stop))
        begin = stop
    return windows


def _plain(value: datetime) -> datetime:
    """A plain ``datetime`` (pendulum's arithmetic drops a zoneinfo tzinfo): wall-clock steps in its zone."""
    return datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
        fold=getattr(value, "fold", 0),
    )


def chunk_object_name(start: datetime, end: datetime, extension: str) -> str:
    """The object name of a chunk: its window in the times given (account time), ``:`` replaced by ``-``.

    >>> chunk_object_name(datetime(2026, 10, 1), datetime(2026, 10, 2), "parquet")
    '2026-10-01T00-00-00_2026-10-02T00-00-00.parquet'
    """
    return f"{start:%Y-%m-%dT%H-%M-%S}_{end:%Y-%m-%dT%H-%M-%S}.{extension}"


def expand_windows(
    start: Any,
    end: Any,
    chunk: timedelta,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    destination: str | None = None,
    output_format: str = "csv",
    partition: str | None = None,
) -> list[dict[str, str]]:
    """A window as chunk windows for dynamic task mapping: one dict of operator arguments per chunk.

    ``start``/``end`` as the operator takes them (naive = account time). With ``destination`` (a prefix
    ending in ``/``) each dict also names the chunk's object as ``chunk=`` does, and the chunks are the
    whole partitions of the grid the window touches::

        @task
        def windows(data_interval_start=None, data_interval_end=None):
            return expand_windows(data_interval_start, data_interval_end, timedelta(days=1),
                                  destination="s3://lake/clicks/", output_format="parquet")

        CloudmaxReportOperator.partial(task_id="clicks", report_part_id=21002, launch_ids=[1225],
                                       output_format="parquet").expand_kwargs(windows())

    >>> expand_windows("2026-10-01", "2026-10-02 12:00:00", timedelta(days=1))[1]
    {'start_time': '2026-10-02T00:00:00+08:00', 'end_time': '2026-10-02T12:00:00+08:00'}
    """
    from cloudmax_provider.api.request import get_timezone, to_account_time

    tz = get_timezone(timezone)
    begin, stop = to_account_time(start, tz, "start"), to_account_time(end, tz, "end")
    if destination is not None and not destination.endswith("/"):
        raise CloudmaxConfigError(f"destination={destination!r} must be a prefix ending in '/'")
    if destination is None:
        windows = chunk_windows(begin, stop, chunk)
    else:
        from cloudmax_provider.windows.partitions import PartitionGrid, partition_of_chunk

        grid = PartitionGrid.of(partition_of_chunk(chunk, partition), tz)
        windows = grid.partitions(*grid.widen(begin, stop))
    out = []
    for s, e in windows:
        kwargs = {"start_time": s.isoformat(), "end_time": e.isoformat()}
        if destination is not None:
            kwargs["destination"] = destination + chunk_object_name(s, e, output_format)
        out.append(kwargs)
    return out


def manifest_prefix(destination: str) -> str:
    """The folder of a destination that names partitions, where its resume manifests live: the text before
    the first placeholder, up to its last ``/``.

    >>> manifest_prefix("s3://lake/opens/date={window_start:%Y-%m-%d}/part.parquet")
    's3://lake/opens/'
    """
    static = destination.split("{", 1)[0]
    return static[: static.rfind("/") + 1]
