"""Typed formats at Arrow's speed: a report body typed by ``pyarrow.csv.open_csv`` and Arrow compute kernels.

The body streams through Arrow's streaming CSV reader (C++; one block at a time, so memory is bounded by
``block_size`` and one row group, whatever the report's size). Every column is read as text, then typed a
block at a time by the same rules as XCom rows (:class:`~cloudmax_provider.formats.cells.RowTyper`):

* ints and floats by Arrow's strict casts after trimming blanks; times by ``strptime`` in the layouts the
  server writes (ISO, ``yyyy/M/d``, zh-TW ``上午``/``下午``, en-US ``M/d/yyyy h:mm:ss tt``), then made aware in
  the account's timezone; empty cells are null;
* a block whose column Arrow cannot read that way (``1,234``, ``12.5%``, a time with a ``T``) is typed cell by
  cell by ``RowTyper.type_cell`` itself; a cell that fits no reading becomes null, logged once per column;
* a record with too few or too many cells (Arrow's ``invalid_row_handler``) gets XCom's rule in the same
  pass: padded with empty cells, extra cells dropped, in place (Arrow's serial reader gives each such record's
  number, so it goes back between the rows around it). A blank record is skipped, as XCom skips it.

:func:`json_lines` turns a typed table into JSON Lines with the same kernels (ints, floats, ISO-8601 times
with offset, escaped strings, ``null``), equal to ``json.dumps(to_jsonable(row))`` once parsed.

Example::

    encoder = ArrowParquetEncoder(typing, "Writing x", log, batch_size=65536)
    atomic.write(dest, encoder.encode(open_each(hook.sources(request))))
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

from cloudmax_provider.api.catalog import ColumnType
from cloudmax_provider.exceptions import CloudmaxResponseError
from cloudmax_provider.formats.cells import RowTyper, to_jsonable
from cloudmax_provider.formats.encoding import ChunkReader, transcode
from cloudmax_provider.formats.streams import ReportStream

__all__ = [
    "ArrowBatchEncoder",
    "ArrowJsonLinesEncoder",
    "ArrowParquetEncoder",
    "ParquetSink",
    "TypedEncoderBase",
    "arrow_type",
    "json_lines",
    "split_header",
    "typed_tables",
    "vectorised_column",
]

log = logging.getLogger(__name__)

#: Bytes of CSV Arrow parses at a time (the streaming reader's block).
BLOCK_SIZE = 1 << 20

#: Time layouts Arrow's strptime reads as :func:`~cloudmax_provider.formats.cells.parse_cell_time` does (zh-TW's
#: 上午/下午 replaced by AM/PM first). A block in any other layout is typed cell by cell.
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %p %I:%M:%S", "%m/%d/%Y %I:%M:%S %p")


def arrow_type(kind: ColumnType, tz: ZoneInfo) -> Any:
    """The Arrow type of a catalog column type: int64, float64, ``timestamp[us, tz]``, string."""
    import pyarrow as pa

    if kind is ColumnType.INT:
        return pa.int64()
    if kind is ColumnType.FLOAT:
        return pa.float64()
    if kind is ColumnType.DATETIME:
        return pa.timestamp("us", tz=tz.key)
    return pa.string()


def vectorised_column(kind: ColumnType, texts: Any, arrow: Any, tz: ZoneInfo) -> Any:
    """A text column (an Arrow string array) typed by Arrow, or None when any cell needs Python's reading.

    Blank cells are null; ints and floats are Arrow's strict casts (``1,234``, ``12%``, ``1_000`` fail);
    times must all match one of :data:`TIME_FORMATS` and exist in ``tz``.

    >>> import pyarrow as pa
    >>> vectorised_column(ColumnType.INT, pa.array([" 7", ""]), pa.int64(), ZoneInfo("UTC")).to_pylist()
    [7, None]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind is ColumnType.TEXT:
        return _null_empty(texts) if _has_empty(texts) else texts
    trimmed = pc.utf8_trim_whitespace(texts)
    column = _null_empty(trimmed) if _has_empty(trimmed) else trimmed
    try:
        if kind is ColumnType.INT or kind is ColumnType.FLOAT:
            return pc.cast(column, arrow)
        naive = _iso_times(column)
        if naive is not None:
            return pc.assume_timezone(naive, timezone=tz.key)
        if _contains(column, _NOON):  # zh-TW's 上午/下午 (AM/PM)
            column = pc.replace_substring(pc.replace_substring(column, "上午", "AM"), "下午", "PM")
        for layout in TIME_FORMATS:
            try:
                naive = pc.strptime(column, format=layout, unit="us", error_is_null=False)
            except pa.ArrowInvalid:
                continue
            return pc.assume_timezone(naive, timezone=tz.key)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None


#: ``yyyy-MM-dd HH:mm:ss``: where the separators stand, which they are, and where the digits stand
_ISO_SEPARATORS = ((4, ord("-")), (7, ord("-")), (10, ord(" ")), (13, ord(":")), (16, ord(":")))
_ISO_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)


def _iso_times(texts: Any) -> Any:
    """``texts`` read as naive times when every value is ``yyyy-MM-dd HH:mm:ss`` (the first of
    :data:`TIME_FORMATS`, what the server writes by default), by Arrow's ISO-8601 cast: ~4x faster than
    ``strptime`` and the same values. None (``strptime`` decides) when numpy is missing, a value is null or
    laid out otherwise, or the cast refuses one (an impossible date, second 60)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        import numpy as np
    except ImportError:
        return None
    n = len(texts)
    if n == 0 or texts.null_count:
        return None
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[texts.offset : texts.offset + n + 1]
    if not (np.diff(offsets) == 19).all():
        return None
    cells = np.frombuffer(texts.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(n, 19)
    if any((cells[:, at] != char).any() for at, char in _ISO_SEPARATORS):
        return None
    digits = cells[:, _ISO_DIGITS]
    if ((digits < ord("0")) | (digits > ord("9"))).any():
        return None
    try:
        return pc.cast(texts, pa.timestamp("us"))
    except pa.ArrowInvalid:
        return None


_NOON = "午".encode()


def _contains(texts: Any, needle: bytes) -> bool:
    """Whether the string bytes of ``texts`` hold ``needle``: a copy of its values' bytes searched by ``bytes``
    (much faster than a per-value kernel, and than a regex over the buffer)."""
    return needle in _value_bytes(texts)


def _value_bytes(texts: Any) -> bytes:
    """A copy of the bytes of ``texts``'s values, from its first offset to its last (b"" when all are null)."""
    data = texts.buffers()[2]
    n = len(texts)
    if data is None or n == 0 or texts.null_count == n:
        return b""
    offsets = memoryview(texts.buffers()[1]).cast("i")
    start, stop = offsets[texts.offset], offsets[texts.offset + n]
    return data.slice(start, stop - start).to_pybytes()


def _has_empty(texts: Any) -> bool:
    """Whether a value of ``texts`` (not a null) is the empty string; with numpy, read off its offsets and
    validity bitmap (the kernels cost more per call than the check)."""
    import pyarrow.compute as pc

    try:
        import numpy as np
    except ImportError:
        return bool(pc.any(pc.equal(pc.binary_length(texts), 0)).as_py())
    n = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[texts.offset : texts.offset + n + 1]
    empty = offsets[1:] == offsets[:-1]
    if texts.null_count and empty.any():
        bits = np.unpackbits(np.frombuffer(texts.buffers()[0], np.uint8), bitorder="little")
        empty &= bits[texts.offset : texts.offset + n].astype(bool)
    return bool(empty.any())


def _null_empty(texts: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(pc.equal(texts, ""), pa.scalar(None, pa.string()), texts)


def split_header(chunks: Iterable[bytes]) -> tuple[list[str] | None, Iterator[bytes]]:
    """The first CSV record of a UTF-8 byte stream (None for an empty body) and the bytes after it.

    >>> header, rest = split_header([b'a,"b\\nc"', b",d\\r\\n1,2,3\\r\\n"])
    >>> header, b"".join(rest)
    (['a', 'b\\nc', 'd'], b'1,2,3\\r\\n')
    """
    it = iter(chunks)
    buffer = b""
    searched = 0
    for chunk in it:
        buffer += chunk
        while (end := buffer.find(b"\n", searched)) >= 0:
            searched = end + 1
            if buffer.count(b'"', 0, end) % 2 == 0:  # the newline is outside quotes: the record ends here
                return _record(buffer[:end]), _chain(buffer[end + 1 :], it)
    return (_record(buffer) if buffer.strip() else None), iter(())


def _record(line: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(line.decode("utf-8").rstrip("\r"), newline="")), [])


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


class _Body:
    """The records after the header of one body, as Arrow text batches (see :func:`typed_tables`).

    Records Arrow cannot take (another number of cells than the header) come back through its
    ``invalid_row_handler`` with their record number; they are fitted to the header (XCom's rule) and put
    back between the rows around them. Arrow's reader is run serially: only then does it number them.
    """

    def __init__(self, chunks: Iterator[bytes], width: int, block_size: int, logger: Any = log) -> None:
        self.chunks, self.width, self.block_size, self.log = chunks, width, block_size, logger
        self.misfits: deque[tuple[int, list[str] | None]] = deque()  # (record number, cells; None: blank)
        self.fitted = 0
        self.next_record = 1  # the number of the next record to give, counting from 1 after the header

    def _invalid(self, row: Any) -> str:
        """Arrow's invalid_row_handler: a blank record is skipped (as XCom skips it), another is fitted."""
        cells = next(csv.reader([row.text]), [])
        if cells == [] or (cells == [""] and self.width != 1):
            self.misfits.append((row.number, None))
            return "skip"
        if not self.fitted:
            self.log.warning(
                "A record has %d cells where the header has %d: padded with empty cells or cut, as XCom rows are "
                "(%r); later such records are counted at the end",
                len(cells),
                self.width,
                row.text[:200],
            )
        self.fitted += 1
        self.misfits.append((row.number, (cells + [""] * self.width)[: self.width]))
        return "skip"

    def batches(self) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        names = [f"c{i}" for i in range(self.width)]
        reader = pacsv.open_csv(
            io.BufferedReader(ChunkReader(self.chunks), buffer_size=1 << 20),
            read_options=pacsv.ReadOptions(column_names=names, block_size=self.block_size, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=self._invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,  # an empty cell is null as it is parsed (XCom: None), quoted or not
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            yield self._with_misfits(batch, pa)
        if self.misfits:  # records after the last whole row (a last record cut short)
            yield self._with_misfits(pa.RecordBatch.from_pylist([], schema=reader.schema), pa, final=True)
        if self.fitted > 1:
            self.log.warning("%d records had another number of cells than the header (fitted as XCom's)", self.fitted)

    def _with_misfits(self, batch: Any, pa: Any, *, final: bool = False) -> Any:
        """``batch`` with the fitted records that stand among its rows (or, ``final``, after them) put back in
        place; blank records only advance the count."""
        if not self.misfits:
            self.next_record += batch.num_rows
            return batch
        pieces: list[Any] = []
        offset = 0
        while self.misfits:
            number, cells = self.misfits[0]
            left = batch.num_rows - offset
            if number > self.next_record + left and not final:
                break  # it stands after this batch's rows
            take = min(left, max(0, number - self.next_record))
            if take:
                pieces.append(batch.slice(offset, take))
                offset += take
            self.misfits.popleft()
            self.next_record = max(number, self.next_record) + 1
            if cells is not None:
                arrays = [pa.array([cell or None], pa.string()) for cell in cells]  # empty: null, as Arrow parses it
                pieces.append(pa.RecordBatch.from_arrays(arrays, schema=batch.schema))
        if offset < batch.num_rows:
            pieces.append(batch.slice(offset))
            self.next_record += batch.num_rows - offset
        if not pieces:
            return batch.slice(0, 0)
        return pa.Table.from_batches(pieces, schema=batch.schema).combine_chunks().to_batches()[0]


def typed_tables(
    stream: ReportStream,
    typer_of: Callable[[list[str]], RowTyper],
    null_misfits: Callable[[str, list[Any]], list[Any] | None],
    block_size: int | None = None,
    logger: Any = log,
) -> tuple[RowTyper | None, Iterator[Any]]:
    """The body's typer (None for an empty body) and its records as typed Arrow tables, a block at a time.

    ``typer_of(header)`` makes the typer; ``null_misfits(column, values)`` turns cells the typer kept as text
    into nulls (and logs it), or returns None to keep them: that block is then given as XCom rows (a list of
    ``typer.type_row`` dicts) instead of a table. A record with another number of cells is fitted in place.
    """
    header, rest = split_header(transcode(stream.chunks, stream.encoding, "utf-8"))
    if header is None:
        return None, iter(())
    typer = typer_of(header)
    return typer, _typed(typer, _Body(rest, len(header), block_size or BLOCK_SIZE, logger), null_misfits)


def _typed(typer: RowTyper, body: _Body, null_misfits: Callable[[str, list[Any]], list[Any] | None]) -> Iterator[Any]:
    import pyarrow as pa

    schema = _schema(typer)
    for served in body.batches():
        batch = served if typer.picks is None else _picked(served, typer.picks, pa)
        arrays = []
        for i, kind in enumerate(typer.types):
            arrow = schema.field(i).type
            typed = vectorised_column(kind, batch.column(i), arrow, typer.tz)
            if typed is None:  # cell by cell, exactly as XCom rows are typed
                texts = batch.column(i).to_pylist()  # None: an empty cell
                values = null_misfits(typer.header[i], [typer.type_cell(i, t or "") for t in texts])
                if values is None:  # misfits kept as text: this block as XCom rows
                    break
                typed = pa.array(values, arrow)
            arrays.append(typed)
        if len(arrays) == len(typer.types):
            yield pa.Table.from_arrays(arrays, schema=schema)
        else:
            columns = [served.column(i).to_pylist() for i in range(served.num_columns)]  # type_row picks
            yield [typer.type_row([t or "" for t in cells]) for cells in zip(*columns, strict=True)]


def _picked(batch: Any, picks: list[int | None], pa: Any) -> Any:
    """The text columns of ``batch`` in the order ``picks`` gives (None: a column not served, all null)."""
    columns = [batch.column(j) if j is not None else pa.nulls(batch.num_rows, pa.string()) for j in picks]
    return pa.RecordBatch.from_arrays(columns, names=[f"c{i}" for i in range(len(picks))])


class TypedEncoderBase:
    """Shared by every typed encoder (here and in :mod:`cloudmax_provider.formats.writers`): one header over every
    source, misfit cells made null once per column in the log, row counting and progress in the log."""

    def __init__(self, typing: Any, label: str, logger: Any = log, every: float = 5.0) -> None:
        self.typing, self.label, self.log, self.every = typing, label, logger, every
        self.rows = 0
        self.schema_diff: Any = None  # the api.schema.HeaderDiff of the first body whose columns changed
        self._nulled: set[str] = set()
        self._started = self._last = time.monotonic()

    def same_header(self, first: list[str] | None, typer: RowTyper, source: Any) -> list[str]:
        """The first source's header; a later source with other columns is refused."""
        if first is not None and typer.header != first:
            raise CloudmaxResponseError(
                f"{source} has the columns {typer.header[:5]}..., not those of the first file "
                f"({first[:5]}...): they cannot be one typed object; use one_object_per_link=True"
            )
        return first if first is not None else typer.header

    def null_misfits(self, name: str, values: list[Any]) -> list[Any] | None:
        """Cells RowTyper kept as text in a typed column become null (a column has one type in every file)."""
        if not any(isinstance(v, str) for v in values):
            return values
        if name not in self._nulled:
            self._nulled.add(name)
            self.log.warning("Column %s: cells that are not of its type are written as null", name)
        return [None if isinstance(v, str) else v for v in values]

    def tick(self, added: int) -> None:
        self.rows += added
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.info("%s: %d rows, %.0f rows/s", self.label, self.rows, self.rows / max(now - self._started, 1e-9))


class _ArrowEncoder(TypedEncoderBase):
    """The Arrow encoders' source of typed tables (one header over every source)."""

    def _typer(self, header: list[str], source: str) -> RowTyper:
        """The typer of a body with ``header``, under the schema contract (the first change found is kept)."""
        typer, diff = self.typing.typer_for(header, source, self.log)
        self.schema_diff = self.schema_diff or diff
        return typer

    def tables(self, streams: Iterable[ReportStream]) -> Iterator[tuple[RowTyper, Iterator[Any]]]:
        """Each non-empty source's typer and typed tables; every source must have the first one's header."""
        header: list[str] | None = None
        for stream in streams:
            typer_of = functools.partial(self._typer, source=stream.source)
            typer, tables = typed_tables(stream, typer_of, self.null_misfits, logger=self.log)
            if typer is None:
                continue  # an empty file
            header = self.same_header(header, typer, stream.source)
            yield typer, tables


class ArrowParquetEncoder(_ArrowEncoder):
    """Parquet in row groups of exactly ``batch_size`` rows (the last one smaller), written as the body streams."""

    def __init__(
        self, typing: Any, label: str, logger: Any, batch_size: int, compression: str | None = "snappy"
    ) -> None:
        super().__init__(typing, label, logger)
        self.batch_size = batch_size
        self.compression = "none" if compression is None else compression.lower()

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        import pyarrow.parquet as pq

        sink = ParquetSink()
        writer = None
        pending: list[Any] = []
        held = 0
        for typer, tables in self.tables(streams):
            for table in tables:
                if writer is None:
                    writer = pq.ParquetWriter(sink, table.schema, compression=self.compression)
                pending.append(table)
                held += table.num_rows
                if held >= self.batch_size:
                    pending, held = self._write_groups(writer, pending, final=False)
                    yield from _drain(sink)
            if writer is None:  # a header and no rows
                writer = pq.ParquetWriter(sink, _schema(typer), compression=self.compression)
        if writer is None:  # no body had a header: an empty file with the expected columns
            writer = pq.ParquetWriter(sink, _schema(self.typing.empty_typer()), compression=self.compression)
        self._write_groups(writer, pending, final=True)
        writer.close()
        yield from _drain(sink)

    def _write_groups(self, writer: Any, pending: list[Any], *, final: bool) -> tuple[list[Any], int]:
        """Write whole row groups of what is pending (and the rest when ``final``); return what is left."""
        import pyarrow as pa

        if not pending:
            return [], 0
        table = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
        whole = table.num_rows if final else table.num_rows - table.num_rows % self.batch_size
        if whole:
            writer.write_table(table.slice(0, whole), row_group_size=self.batch_size)
            self.tick(whole)
        rest = table.slice(whole)
        return ([rest] if rest.num_rows else []), rest.num_rows


class ArrowBatchEncoder(_ArrowEncoder):
    """Typed Arrow tables of at most ``batch_size`` rows, as the body streams: what a table format
    (Iceberg, :mod:`cloudmax_provider.landing.iceberg`) writes, one batch at a time.

    Example::

        for table in ArrowBatchEncoder(typing, "Landing x", log, 65536).batches(open_each(sources)):
            write(table)
    """

    def __init__(self, typing: Any, label: str, logger: Any, batch_size: int) -> None:
        super().__init__(typing, label, logger)
        self.batch_size = batch_size
        self.schema: Any = None  # the Arrow schema of the batches (the expected columns for an empty body)

    def expected_schema(self) -> Any:
        """The Arrow schema of the columns requested (or the catalog's), before any body is read."""
        return _schema(self.typing.empty_typer())

    def batches(self, streams: Iterable[ReportStream]) -> Iterator[Any]:
        import pyarrow as pa

        pending: list[Any] = []
        held = 0
        for typer, tables in self.tables(streams):
            self.schema = _schema(typer)
            for table in tables:
                pending.append(table)
                held += table.num_rows
                while held >= self.batch_size:
                    whole = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
                    yield whole.slice(0, self.batch_size)
                    self.tick(self.batch_size)
                    rest = whole.slice(self.batch_size)
                    pending, held = ([rest] if rest.num_rows else []), rest.num_rows
        if self.schema is None:
            self.schema = _schema(self.typing.empty_typer())
        if held:
            yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            self.tick(held)


class ArrowJsonLinesEncoder(_ArrowEncoder):
    """One JSON object per line (UTF-8), typed as XCom rows are, encoded by Arrow kernels a block at a time.

    A block with a cell that fits no reading of its column's type is encoded from XCom rows (the cell kept
    as text, as XCom keeps it)."""

    def null_misfits(self, name: str, values: list[Any]) -> list[Any] | None:
        return None if any(isinstance(v, str) for v in values) else values

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        import json

        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for _typer, tables in self.tables(streams):
            for table in tables:
                if isinstance(table, list):
                    yield "".join(dumps(to_jsonable(row)) + "\n" for row in table).encode("utf-8")
                    self.tick(len(table))
                elif table.num_rows:
                    yield json_lines(table)
                    self.tick(table.num_rows)


def _schema(typer: RowTyper) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(n, arrow_type(k, typer.tz)) for n, k in zip(typer.header, typer.types, strict=True)])


def _drain(sink: ParquetSink) -> Iterator[bytes]:
    data = sink.drain()
    if data:
        yield data


class ParquetSink(io.RawIOBase):
    """The file a ParquetWriter writes to: it keeps the bytes until :meth:`drain` hands them on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def json_lines(table: Any) -> bytes:
    """``table``'s rows as JSON Lines: each line equal, once parsed, to ``to_jsonable`` of the XCom row.

    >>> import pyarrow as pa
    >>> json_lines(pa.table({"n": [1, None], "x": [2.0, 0.5], "s": ['a"b', None]}))
    b'{"n":1,"x":2.0,"s":"a\\\\"b"}\\n{"n":null,"x":0.5,"s":null}\\n'
    """
    import pyarrow as pa

    if table.num_rows == 0:
        return b""
    plan = _json_plan(table)
    try:
        import numpy
    except ImportError:  # Arrow alone: join each row's pieces with a kernel
        lines = _joined(plan)
    else:
        lines = _taken(plan, table.num_rows, numpy, pa)
    # no nulls: the lines lie back to back in the data buffer, from the first offset to the last
    offsets = memoryview(lines.buffers()[1]).cast("i")
    start, stop = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return memoryview(lines.buffers()[2])[start:stop].tobytes()


def _json_plan(table: Any) -> list[tuple[str, Any, str, str]]:
    """Each column's ``(key, JSON text, opening, close)``: the text is null where the value is (``null``), else
    it is written between ``opening`` and ``close`` (the quotes of a string or a time, and a time's offset)."""
    import json

    import pyarrow as pa

    plan = []
    for i, field in enumerate(table.schema):
        text, opening, close = _json_text(table.column(i).combine_chunks(), field.type)
        if text.type != pa.string():
            text = text.cast(pa.string())
        plan.append((json.dumps(field.name, ensure_ascii=False) + ":", text, opening, close))
    return plan


def _joined(plan: list[tuple[str, Any, str, str]]) -> Any:
    """The lines of ``plan`` joined row by row by ``binary_join_element_wise`` (without numpy)."""
    import pyarrow.compute as pc

    parts: list[Any] = []
    pending = "{"
    for i, (key, text, opening, close) in enumerate(plan):
        pending += key
        if text.null_count == 0:  # the quotes go into the constant text around it
            parts += [pending + opening, text]
            pending = close
        else:
            quoted = pc.binary_join_element_wise(opening, text, close, "") if opening or close else text
            parts += [pending, pc.fill_null(quoted, "null")]
            pending = ""
        pending += "}\n" if i == len(plan) - 1 else ","
    return pc.binary_join_element_wise(*parts, pending, "")


def _taken(plan: list[tuple[str, Any, str, str]], n: int, np: Any, pa: Any) -> Any:
    """The lines of ``plan`` as one ``take`` from a pool of constant texts and the columns' texts: each row's
    pieces are consecutive indices (built by numpy), so the result's data buffer is the lines, back to back.

    A line is a constant piece, then each value followed by a constant piece. The constant between two values
    holds the first one's close, the separator and key, and the second one's opening: one of up to four texts,
    picked by whether each value is null (its text is then the constant ``null``, with no quotes).

    Every row starts as the line of a row with no null (one template row, then each value's row number added);
    only the pieces next to a column with nulls are picked row by row. The pool has no validity bitmap: a null
    is never taken (its row takes ``null``), and ``take`` is faster without one."""
    constants: dict[str, int] = {"null": 0}
    valid = [None if text.null_count == 0 else text.is_valid().to_numpy(zero_copy_only=False) for _, text, _, _ in plan]
    gaps = []  # each constant's picks, [before is valid][after is valid]
    for j in range(len(plan) + 1):
        before = plan[j - 1] if j else None
        after = plan[j] if j < len(plan) else None
        head = ("," if before else "{") + after[0] if after else "}\n"
        options = [
            [(before[3] if b and before else "") + head + (after[2] if a and after else "") for a in (False, True)]
            for b in (False, True)
        ]
        gaps.append([[constants.setdefault(text, len(constants)) for text in pair] for pair in options])
    starts = np.cumsum([len(constants)] + [len(text) for _, text, _, _ in plan])  # the pool stays under 2**31
    matrix = np.empty((n, 2 * len(plan) + 1), dtype=np.int32)
    matrix[:, 0::2] = [picks[1][1] for picks in gaps]
    np.add.outer(np.arange(n, dtype=np.int32), starts[:-1].astype(np.int32), out=matrix[:, 1::2])
    for j, picks in enumerate(gaps):
        valid_before = valid[j - 1] if j else None
        valid_after = valid[j] if j < len(plan) else None
        if valid_before is not None or valid_after is not None:
            matrix[:, 2 * j] = _pick(np, picks, valid_before, valid_after)
        if valid_after is not None:
            matrix[:, 2 * j + 1][~valid_after] = 0  # "null"
    pool = pa.concat_arrays([pa.array(list(constants), pa.string()), *(text for _, text, _, _ in plan)])
    pool = pa.StringArray.from_buffers(len(pool), pool.buffers()[1], pool.buffers()[2], None, 0, pool.offset)
    # the indices by their buffer: pa.array(an ndarray) would import numpy.ma (~0.1 s) to ask if it is masked
    indices = pa.Array.from_buffers(pa.int32(), matrix.size, [None, pa.py_buffer(matrix)])
    return pool.take(indices)


def _pick(np: Any, picks: list[list[int]], before: Any, after: Any) -> Any:
    """The constant's index in each row: ``picks[before is valid][after is valid]`` (None: always valid)."""
    if before is None and after is None:
        return picks[1][1]
    if before is None:
        return np.where(after, picks[1][1], picks[1][0])
    if after is None:
        return np.where(before, picks[1][1], picks[0][1])
    return np.where(before, np.where(after, picks[1][1], picks[1][0]), np.where(after, picks[0][1], picks[0][0]))


def _json_text(column: Any, arrow: Any) -> tuple[Any, str, str]:
    """The JSON text of each value (null stays null), and the text that goes before and after it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(arrow):
        text, close = _json_times(column)
        return text, '"', close
    if pa.types.is_string(arrow):
        return _json_strings(column), '"', '"'
    if pa.types.is_floating(arrow):
        return _json_floats(column), "", ""
    return pc.cast(column, pa.string()), "", ""


def _json_floats(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(column, pa.string())
    for arrow_text, python_text in (("nan", "NaN"), ("-inf", "-Infinity"), ("inf", "Infinity")):
        text = pc.if_else(pc.equal(text, arrow_text), python_text, text)
    # Arrow writes 3.0 as "3": keep it a float, as json.dumps(3.0) does
    return pc.if_else(pc.match_substring_regex(text, "[.eNI]"), text, pc.binary_join_element_wise(text, ".0", ""))


def _json_times(column: Any) -> tuple[Any, str]:
    """ISO-8601 local times of an aware column and the text after them (its UTC offset, then ``"``), as
    ``datetime.isoformat()`` writes them: microseconds only when not zero. A column with several offsets
    (daylight saving time) has each value's offset in its text, then ``"`` after it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    local = pc.local_timestamp(column)
    shift = pc.subtract(pc.cast(local, pa.int64()), pc.cast(column, pa.int64()))
    bounds = pc.min_max(shift)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low == high:
        return _local_iso(local), _offset_text(low or 0) + '"'
    shifts = pc.unique(shift).drop_null()  # a few: one offset text each, taken for every value
    texts = pa.array([_offset_text(micros) for micros in shifts.to_pylist()], pa.string())
    return pc.binary_join_element_wise(_local_iso(local), texts.take(pc.index_in(shift, shifts)), ""), '"'


def _local_iso(local: Any) -> Any:
    """``yyyy-MM-ddTHH:mm:ss[.ffffff]`` of each wall-clock time (the fraction only when not zero)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = pc.cast(local, pa.timestamp("s"), safe=False)  # the fraction cut off
    seconds = pc.cast(whole, pa.string())
    fractional = pc.not_equal(pc.cast(whole, pa.timestamp("us")), local)
    if pc.any(fractional).as_py():
        seconds = pc.if_else(fractional, pc.cast(local, pa.string()), seconds)
    return pc.replace_substring(seconds, " ", "T", max_replacements=1)


def _offset_text(micros: int) -> str:
    """``+08:00`` for 8 hours, as ``isoformat()`` writes a UTC offset."""
    sign = "-" if micros < 0 else "+"
    minutes = abs(micros) // 60_000_000
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


#: (character, its UTF-8 bytes, its JSON escape)
_JSON_ESCAPES = tuple(
    (raw, raw.encode(), escaped)
    for raw, escaped in (
        ("\\", "\\\\"),
        ('"', '\\"'),
        ("\n", "\\n"),
        ("\r", "\\r"),
        ("\t", "\\t"),
        ("\b", "\\b"),
        ("\f", "\\f"),
    )
)


_CONTROLS = re.compile(rb"[\x00-\x1f]")
_UNNAMED_CONTROLS = re.compile(rb"[\x00-\x07\x0b\x0e-\x1f]")


def _json_strings(column: Any) -> Any:
    """Each string escaped as ``json.dumps(..., ensure_ascii=False)`` escapes it (without the quotes)."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    raw = _value_bytes(column)  # one copy of the values' bytes, searched by every check below
    if not _needs_escapes(column, raw):
        return column  # nothing to escape (most columns)
    if _has_unnamed_controls(raw):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False)[1:-1] for v in column.to_pylist()])
    for char, present, escaped in _JSON_ESCAPES:
        if present in raw:  # a replacement writes a backslash (replaced first), then a letter or the quote
            column = pc.replace_substring(column, char, escaped)
    return column


def _needs_escapes(texts: Any, raw: bytes | None = None) -> bool:
    """Whether the string bytes of ``texts`` (``raw``: a copy of its values' bytes already made) hold ``"``,
    ``\\`` or a control character: searched in a copy of its values' bytes by ``bytes`` and, for control
    characters, by the bytes' minimum with numpy (a character class regex over the buffer scans ~10x slower)."""
    raw = _value_bytes(texts) if raw is None else raw
    if not raw:
        return False
    if b'"' in raw or b"\\" in raw:
        return True
    try:
        import numpy
    except ImportError:
        return _CONTROLS.search(raw) is not None
    return int(numpy.frombuffer(raw, numpy.uint8).min()) < 0x20


def _has_unnamed_controls(raw: bytes) -> bool:
    """Whether ``raw`` holds a control character JSON has no short escape for (written ``\\u00XX``); with numpy,
    bytes with no control character at all (their minimum is 0x20 or more) skip the regex."""
    try:
        import numpy
    except ImportError:
        return _UNNAMED_CONTROLS.search(raw) is not None
    if not raw or int(numpy.frombuffer(raw, numpy.uint8).min()) >= 0x20:
        return False
    return _UNNAMED_CONTROLS.search(raw) is not None
