"""What the emulator serves: report bodies (rows from :mod:`cloudmax_provider.testing.rows`, encoded as the
settings say) and the cached big-report files (``big_report_bytes``)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cloudmax_provider.testing.emulator.settings import EmulatorSettings
from cloudmax_provider.testing.rows import LANGUAGE_ENGLISH, generate_rows, launch_rows, report_header, to_csv

__all__ = ["BigReports", "csv_bytes", "parse_time"]

_TIME_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?$")
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16")


def parse_time(value: str) -> datetime:
    """Parse StartTime/EndTime as the emulator does; raises ValueError (-> 110)."""
    m = _TIME_RE.match(value.strip())
    if not m:
        raise ValueError(value)
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return datetime(y, mo, d, h, mi, s)


def as_time(value: str | datetime) -> datetime:
    """A datetime as given, or parsed as StartTime/EndTime are."""
    return value if isinstance(value, datetime) else parse_time(value)


def as_launch_ids(value: int | str | Iterable[int]) -> list[int]:
    """LaunchIDs from an int, a comma list or an iterable."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        return [int(p) for p in value.split(",") if p.strip()]
    return [int(v) for v in value]


def encode(text: str, encoding: str) -> bytes:
    """CSV text as the bytes sent for ``csv_encoding`` (a BOM for utf-8-sig and utf-16 LE)."""
    if encoding == "utf-8":
        return text.encode("utf-8")
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if encoding == "utf-16":
        return b"\xff\xfe" + text.encode("utf-16-le")
    raise ValueError(f"csv_encoding={encoding!r}; use one of {ENCODINGS}")


def charset(encoding: str) -> str:
    """The ``charset=`` of the Content-Type for ``csv_encoding``."""
    return "utf-16" if encoding == "utf-16" else "utf-8"


def csv_bytes(
    settings: EmulatorSettings,
    part_id: int,
    launch_ids: Sequence[int],
    start: datetime,
    end: datetime,
    columns: Sequence[str],
    language: int | None,
) -> bytes:
    """The report's CSV as served now (rows per the settings, encoded as ``csv_encoding``)."""
    header, rows = generate_rows(
        part_id,
        launch_ids,
        start,
        end,
        columns=columns or None,
        rows_per_launch=settings.rows_per_launch,
        time_format=settings.time_format,
        language=language,
        header_changes=settings.header_changes,
    )
    return encode(to_csv(header, rows), settings.csv_encoding)


def _row_block(part_id: int, encoding: str, time_format: str) -> list[bytes]:
    """200 encoded data rows (CRLF-terminated, no header) that a big report repeats."""
    start, end = datetime(2024, 1, 1), datetime(2024, 1, 8)
    block_rows: list[list[str]] = []
    launch = 1000
    while len(block_rows) < 200:
        block_rows.extend(
            launch_rows(
                part_id,
                launch,
                start,
                end,
                rows_per_launch=50,
                time_format=time_format,
                language=LANGUAGE_ENGLISH,
            )
        )
        launch += 1
    block_rows = block_rows[:200]
    row_enc = "utf-8" if encoding == "utf-8-sig" else encoding
    encoded_rows = [
        to_csv([], [r]).encode("utf-16-le") if row_enc == "utf-16" else to_csv([], [r]).encode("utf-8")
        for r in block_rows
    ]
    # to_csv([], ...) starts with an empty header line "\r\n": drop it
    nl = "\r\n".encode("utf-16-le") if row_enc == "utf-16" else b"\r\n"
    return [e[len(nl) :] for e in encoded_rows]


#: Where ``EmulatorSettings.big_report_ragged`` can put a ragged record: its data row number in a report of n rows.
RAGGED_AT = {"start": lambda n: 0, "middle": lambda n: n // 2, "end": lambda n: n - 1}


def ragged_rows(ragged: str, rows: int) -> set[int]:
    """The data rows (0-based) that ``ragged`` (``"start,middle,end"``, any of them; ``""``: none) makes ragged.

    >>> sorted(ragged_rows("end,start", 10))
    [0, 9]
    """
    places = [p.strip() for p in ragged.split(",") if p.strip()]
    unknown = [p for p in places if p not in RAGGED_AT]
    if unknown:
        raise ValueError(f"big_report_ragged: {unknown} are not among {sorted(RAGGED_AT)}")
    return {RAGGED_AT[p](rows) for p in places} if rows else set()


def _cut_last_cell(row: bytes, encoding: str) -> bytes:
    """The same record with its last cell dropped (one cell fewer than the header), in the same encoding."""
    import csv

    codec = "utf-16-le" if encoding == "utf-16" else "utf-8"
    cells = next(csv.reader([row.decode(codec)]))
    return to_csv([], [cells[:-1]]).encode(codec)[len("\r\n".encode(codec)) :]


def write_big_report(
    path: Path, part_id: int, encoding: str, size: int, time_format: str, ragged: str = ""
) -> tuple[int, int]:
    """Write a CSV of at least ``size`` bytes (whole rows) to ``path`` atomically; returns (bytes, data rows).

    ``ragged`` (see :func:`ragged_rows`) cuts the last cell off the first, middle or last data record."""
    head = encode(to_csv(report_header(part_id), []), encoding)
    encoded_rows = _row_block(part_id, encoding, time_format)
    block = b"".join(encoded_rows)
    blocks = max(0, size - len(head)) // len(block)
    tail, written = 0, len(head) + blocks * len(block)
    while written < size:
        written += len(encoded_rows[tail])
        tail += 1
    cut = ragged_rows(ragged, blocks * len(encoded_rows) + tail)
    tmp = path.with_suffix(".tmp")
    written, rows = len(head), 0
    with open(tmp, "wb") as fh:
        fh.write(head)
        for n in range(blocks + 1):
            count = len(encoded_rows) if n < blocks else tail
            if n < blocks and not any(rows <= r < rows + count for r in cut):
                fh.write(block)
                written, rows = written + len(block), rows + count
                continue
            for row in encoded_rows[:count]:
                data = _cut_last_cell(row, encoding) if rows in cut else row
                fh.write(data)
                written, rows = written + len(data), rows + 1
    os.replace(tmp, path)
    return written, rows


class BigReports:
    """The big-report files, generated once per (ReportPartID, encoding, size, time format, ragged records) into
    ``folder()``."""

    def __init__(self, folder: Callable[[], Path]) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, str, int, str, str], tuple[Path, int, int]] = {}

    def get(self, part_id: int, encoding: str, size: int, time_format: str, ragged: str = "") -> tuple[Path, int, int]:
        """(path, size in bytes, data rows) of the file, generated now if it is not there."""
        key = (part_id, encoding, size, time_format, ragged)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0].exists():
                return hit
            cut = "-".join(sorted(p.strip() for p in ragged.split(",") if p.strip()))
            path = (
                self._folder() / f"big_{part_id}_{encoding}_{size}_{time_format}{'_ragged-' + cut if cut else ''}.csv"
            )
            written, rows = write_big_report(path, part_id, encoding, size, time_format, ragged)
            self._cache[key] = info = (path, written, rows)
            return info

    def clear(self) -> None:
        """Forget the files (their folder is removed with the emulator's work directory)."""
        self._cache.clear()
