"""The partition grid: how a lake prefix is cut into objects, one object per partition (pure: no I/O).

A destination that *names partitions* (``{window_start:...}`` placeholders, or a prefix with ``chunk=``)
holds one object per partition of a grid: the hour, **day** (default) or month of the account's clock. A
run requests and rewrites whole partitions only, so whatever mix of runs lands a prefix, each object holds
its partition's rows once.

>>> from datetime import datetime
>>> from zoneinfo import ZoneInfo
>>> grid = PartitionGrid.of("day", "Asia/Taipei")
>>> utc = ZoneInfo("UTC")
>>> start, end = grid.widen(datetime(2026, 11, 19, tzinfo=utc), datetime(2026, 11, 20, tzinfo=utc))
>>> [f"{s:%m-%d %H:%M}" for s, _ in grid.partitions(start, end)]  # a UTC day touches two Taipei days
['11-19 00:00', '11-20 00:00']
>>> [f"{t:%m-%d %H:%M}" for t in grid.last_complete(datetime(2026, 11, 28, 6, 32, tzinfo=utc), timedelta(days=1))]
['11-27 00:00', '11-28 00:00']
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cloudmax_provider.api.catalog import DEFAULT_TIMEZONE
from cloudmax_provider.exceptions import CloudmaxConfigError

__all__ = [
    "DEFAULT_PARTITION",
    "PARTITION_UNITS",
    "PartitionGrid",
    "check_lookback",
    "check_partition",
    "check_positive_timedelta",
    "partition_of_chunk",
]


def check_positive_timedelta(value: object, name: str) -> timedelta:
    """``value`` if it is a timedelta longer than zero; else :class:`CloudmaxConfigError` naming ``name``.

    >>> check_positive_timedelta(timedelta(hours=1), "chunk")
    datetime.timedelta(seconds=3600)
    """
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise CloudmaxConfigError(f"{name}={value!r} must be a positive timedelta, e.g. timedelta(days=1)")
    return value


PARTITION_UNITS = ("hour", "day", "month")
DEFAULT_PARTITION = "day"
_UTC = ZoneInfo("UTC")


def check_partition(unit: object) -> str:
    """``unit`` if it is a grid unit, else a :class:`CloudmaxConfigError` saying which are.

    >>> check_partition("day")
    'day'
    """
    if unit not in PARTITION_UNITS:
        import difflib

        close = difflib.get_close_matches(str(unit), PARTITION_UNITS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CloudmaxConfigError(f"partition={unit!r} is not a partition grid; {hint}use one of {PARTITION_UNITS}")
    return str(unit)


#: The length of one partition of the grids a ``lookback=`` timedelta can count in (a month is no fixed timedelta).
_PARTITION_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def check_lookback(lookback: object, unit: str) -> int:
    """How many whole partitions of ``unit`` ``lookback`` is (an int, or a timedelta of whole ones); 0 for None.

    >>> check_lookback(timedelta(days=3), "day"), check_lookback(3, "month"), check_lookback(None, "day")
    (3, 3, 0)
    """
    if lookback is None:
        return 0
    example = "timedelta(days=3)" if unit != "hour" else "timedelta(hours=6)"
    forms = f"a positive number of {unit} partitions (e.g. lookback=3) or a timedelta of whole ones (e.g. {example})"
    if isinstance(lookback, bool):
        raise CloudmaxConfigError(f"lookback={lookback!r} is a bool, not a number of partitions; give {forms}")
    if isinstance(lookback, int):
        if lookback <= 0:
            raise CloudmaxConfigError(f"lookback={lookback!r} must be {forms}; to re-land nothing, leave it unset")
        return lookback
    if not isinstance(lookback, timedelta) or lookback <= timedelta(0):
        raise CloudmaxConfigError(f"lookback={lookback!r} must be {forms}")
    if unit not in _PARTITION_LENGTH:
        raise CloudmaxConfigError(
            f"lookback={lookback!r} with partition={unit!r}: a month is no fixed timedelta, so a timedelta cannot "
            "count months; give the number of month partitions instead (e.g. lookback=2), or use partition='day'"
        )
    count, rest = divmod(lookback, _PARTITION_LENGTH[unit])
    if rest:
        raise CloudmaxConfigError(
            f"lookback={lookback!r} is not a whole number of {unit} partitions (a partition is replaced whole, "
            f"never in part); use a multiple of {_PARTITION_LENGTH[unit]!r}, e.g. {example}, or a number of "
            "partitions (e.g. lookback=3)"
        )
    return int(count)


def partition_of_chunk(chunk: object, partition: str | None) -> str:
    """The grid unit a ``chunk=`` argument means: ``True`` the ``partition`` grid (default day),
    ``timedelta(hours=1)`` / ``timedelta(days=1)`` the hour / day grid (agreeing with ``partition`` if given).

    >>> partition_of_chunk(timedelta(days=1), None)
    'day'
    >>> partition_of_chunk(True, "month")
    'month'
    """
    unit = check_partition(partition) if partition is not None else None
    if chunk is True:
        return unit or DEFAULT_PARTITION
    sizes = {timedelta(hours=1): "hour", timedelta(days=1): "day"}
    if isinstance(chunk, timedelta) and chunk in sizes and unit in (None, sizes[chunk]):
        return sizes[chunk]
    if isinstance(chunk, timedelta) and chunk in sizes:
        raise CloudmaxConfigError(
            f"chunk={chunk!r} and partition={partition!r} disagree: a chunk is one partition; "
            f"use chunk=True with partition={partition!r}"
        )
    raise CloudmaxConfigError(
        f"chunk={chunk!r}: a chunk is one partition of the grid, so that every object of the prefix covers a "
        "whole hour, day or month and runs never overlap; use chunk=True (one object per partition="
        "'hour'|'day'|'month'), or timedelta(days=1) / timedelta(hours=1)"
    )


@dataclasses.dataclass(frozen=True)
class PartitionGrid:
    """Partitions of ``unit`` (``"hour"``, ``"day"``, ``"month"``) on the clock of ``tz``."""

    unit: str = DEFAULT_PARTITION
    tz: ZoneInfo = dataclasses.field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))

    def __post_init__(self) -> None:
        check_partition(self.unit)

    @classmethod
    def of(cls, unit: str | None, timezone: str | ZoneInfo) -> PartitionGrid:
        """A grid from a unit (None: the default day) and an IANA timezone name (the connection's)."""
        tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(str(timezone))
        return cls(unit or DEFAULT_PARTITION, tz)

    def describe(self) -> str:
        return f"{self.unit} ({self.tz.key})"

    def floor(self, when: datetime) -> datetime:
        """The start of the partition holding ``when`` (a naive time is read on the grid's clock).

        >>> PartitionGrid.of("month", "Asia/Taipei").floor(datetime(2026, 11, 19, 13, 5)).isoformat()
        '2026-11-01T00:00:00+08:00'
        """
        local = when.replace(tzinfo=self.tz) if when.tzinfo is None else when.astimezone(self.tz)
        if self.unit == "hour":
            return local.replace(minute=0, second=0, microsecond=0)
        if self.unit == "day":
            return datetime(local.year, local.month, local.day, tzinfo=self.tz)
        return datetime(local.year, local.month, 1, tzinfo=self.tz)

    def next(self, start: datetime) -> datetime:
        """The start of the partition after the one starting at ``start`` (a partition start)."""
        if self.unit == "hour":  # an hour of elapsed time (a DST change gives a 2-hour or a 0-hour day)
            return (start.astimezone(_UTC) + timedelta(hours=1)).astimezone(self.tz)
        if self.unit == "day":
            day = start.date() + timedelta(days=1)
            return datetime(day.year, day.month, day.day, tzinfo=self.tz)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return datetime(year, month, 1, tzinfo=self.tz)

    def widen(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The whole partitions ``[start, end)`` touches: start floored, end raised to a partition start."""
        begin = self.floor(start)
        stop = self.floor(end)
        if _instant(stop) < _instant(end):
            stop = self.next(stop)
        return begin, stop

    def back(self, start: datetime, count: int) -> datetime:
        """The start of the partition ``count`` partitions before the one starting at ``start`` (``lookback``).

        >>> PartitionGrid.of("day", "Asia/Taipei").back(datetime(2026, 11, 19), 2).isoformat()
        '2026-11-17T00:00:00+08:00'
        """
        begin = self.floor(start)
        for _ in range(count):
            begin = self.floor(_instant(begin) - timedelta(microseconds=1))
        return begin

    def last_complete(self, before: datetime, length: timedelta) -> tuple[datetime, datetime]:
        """The last complete partition(s) before ``before``, covering at least ``length``: the window of a run
        without a data interval (``before`` = its logical date, else its ``run_after``)."""
        check_positive_timedelta(length, "window")
        end = self.floor(before)
        return self.floor(end - length), end

    def partitions(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The partitions of an aligned window ``[start, end)``, in order.

        >>> grid = PartitionGrid.of("day", "UTC")
        >>> len(grid.partitions(datetime(2026, 10, 1), datetime(2026, 11, 1)))
        31
        """
        begin, stop = self.widen(start, end)
        if (_instant(begin), _instant(stop)) != (_instant(start), _instant(end)):
            raise CloudmaxConfigError(f"the window {start} .. {end} is not whole {self.describe()} partitions")
        out = []
        while _instant(begin) < _instant(stop):
            following = self.next(begin)
            out.append((begin, following))
            begin = following
        return out


def _instant(when: datetime) -> datetime:
    """An aware time as UTC, for comparisons that hold across DST folds (same-tzinfo comparisons ignore fold)."""
    return when.astimezone(_UTC)
