"""Typed cells: a report's CSV text typed by the catalog (int, float, aware datetime, text).

Reading taken where the spec is open (liberal in what we accept): times in cells are
``yyyy-MM-dd HH:mm:ss``, ``yyyy/M/d HH:mm:ss``, zh-TW ``yyyy/M/d 上午 hh:mm:ss``, en ``M/d/yyyy h:mm:ss AM``,
with optional fractions and ``T``, read in the account's timezone.

Example::

    >>> from zoneinfo import ZoneInfo
    >>> parse_cell_time("2026/11/1 下午 01:02:03", ZoneInfo("Asia/Taipei")).isoformat()
    '2026-11-01T13:02:03+08:00'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cloudmax_provider.api.body import Encoding
from cloudmax_provider.api.catalog import ColumnType, ReportPart
from cloudmax_provider.formats.encoding import iter_csv_records

log = logging.getLogger(__name__)

_TIME_YMD = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]+(上午|下午|AM|PM|am|pm)?\s*"
    r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*(上午|下午|AM|PM|am|pm)?)?$"
)
_TIME_MDY = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*(AM|PM|am|pm|上午|下午)?)?$"
)


def parse_cell_time(text: str, tz: ZoneInfo) -> datetime | None:
    """A time as a .NET server writes it, as an aware datetime in ``tz``; None if it is not one."""
    text = text.strip()
    m = _TIME_YMD.match(text)
    if m:
        y, mo, d, ampm1, h, mi, s, frac, ampm2 = m.groups()
    else:
        m = _TIME_MDY.match(text)
        if not m:
            return None
        mo, d, y, h, mi, s, frac, ampm2 = m.groups()
        ampm1 = None
    hour = int(h or 0)
    ampm = (ampm1 or ampm2 or "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm in ("PM", "下午") else 0)
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        return datetime(int(y), int(mo), int(d), hour, int(mi or 0), int(s or 0), micro, tzinfo=tz)
    except ValueError:
        return None


class RowTyper:
    """Types CSV cells by the catalog: int, float, aware datetime, text; empty cells are None.

    A cell that does not fit its column's type stays text and is logged once per column.
    """

    def __init__(
        self,
        part: ReportPart,
        header: list[str],
        tz: ZoneInfo,
        renamed: dict[str, str] | None = None,
        served: list[str] | None = None,
    ):
        renamed = renamed or {}
        self.header = header
        self.tz = tz
        self.types = [part.type_of(renamed.get(name, name)) for name in header]
        self._warned: set[str] = set()
        #: where each of ``header``'s columns is in the records (None: not served, null), when the records have
        #: another header (``served``; :mod:`cloudmax_provider.api.schema`'s ``"ignore"``); None: the same.
        self.picks = None if served is None else [served.index(n) if n in served else None for n in header]

    def _convert(self, kind: ColumnType, text: str) -> Any:
        if kind is ColumnType.INT:
            return int(text.replace(",", ""))
        if kind is ColumnType.FLOAT:
            t = text.replace(",", "")
            return float(t[:-1]) / 100 if t.endswith("%") else float(t)
        if kind is ColumnType.DATETIME:
            value = parse_cell_time(text, self.tz)
            if value is None:
                raise ValueError(text)
            return value
        return text

    def type_cell(self, index: int, text: str) -> Any:
        """Cell ``text`` of column ``index`` typed (None if empty; kept as text if it does not fit)."""
        kind = self.types[index]
        if kind is ColumnType.TEXT:
            return None if text == "" else text
        stripped = text.strip()
        if not stripped:
            return None
        try:
            return self._convert(kind, stripped)
        except ValueError:
            name = self.header[index]
            if name not in self._warned:
                self._warned.add(name)
                log.warning("Column %s: %r is not a %s; kept as text (logged once per column)", name, text, kind.value)
            return text

    def type_row(self, cells: list[str]) -> dict[str, Any]:
        n = len(cells)
        if self.picks is not None:
            cells, n = [cells[j] if j is not None and j < n else "" for j in self.picks], len(self.picks)
        return {name: self.type_cell(i, cells[i] if i < n else "") for i, name in enumerate(self.header)}


def read_typed(
    chunks: Iterable[bytes],
    encoding: Encoding,
    part: ReportPart,
    tz: ZoneInfo,
    renamed: dict[str, str] | None = None,
    typer_of: Callable[[list[str]], RowTyper] | None = None,
) -> tuple[RowTyper, Iterator[list[str]]]:
    """A report body's typer (from its header; no columns for an empty body) and its data records (blank lines
    skipped).

    Type a record with ``typer.type_row(cells)`` (a dict, as XCom gets it) or cell by cell with
    ``typer.type_cell(i, text)`` (the Parquet writer does, column by column)::

        typer, records = read_typed(stream.chunks, stream.encoding, part, tz)
        rows = [typer.type_row(cells) for cells in records]
    """
    records = iter_csv_records(chunks, encoding)
    header = next(records, None)
    if header is None:
        return RowTyper(part, [], tz), iter(())
    # a blank line is skipped; in a one-column report '""' is a row whose cell is empty, not a blank line
    wanted = (cells for cells in records if cells != [] and (cells != [""] or len(header) == 1))
    return (typer_of(header) if typer_of else RowTyper(part, header, tz, renamed)), wanted


def to_jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A typed row for XCom: datetimes as ISO-8601 with offset; everything else already JSON."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
