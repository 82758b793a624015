"""Output formats: what a report body becomes at its destination — CSV as served, Parquet or JSON Lines.

One interface for every format (:class:`Encoder`): the report's bodies go in (one
:class:`~cloudmax_provider.formats.streams.ReportStream` per source, opened in turn), the bytes of one
object come out, and the encoder counts the data rows it wrote. Landing writes those bytes with
:func:`cloudmax_provider.landing.atomic.write`, whatever the format, so Parquet and JSON Lines are as atomic as CSV.

* ``csv``: the bytes as served, transcoded to ``output_encoding`` (several sources: header once).
* ``jsonl``: one UTF-8 JSON object per row, typed exactly as XCom rows are (``RowTyper`` then
  ``to_jsonable``: int, float, ISO-8601 time with offset, str, None for an empty cell).
* Both typed formats are parsed by Arrow's streaming CSV reader and typed by Arrow kernels
  (:mod:`cloudmax_provider.formats.arrow_typing`, ``engine="arrow"``, the default when pyarrow is installed); the
  encoders below (``engine="python"``) type record by record, for a body with ragged records.
* ``parquet``: a schema from the catalog (:func:`arrow_type`), columns in the report's order, written in
  row groups of ``batch_size`` rows while the body streams: memory holds one batch, whatever the report's
  size. Times are ``timestamp[us, tz=<account timezone>]`` holding the instant the server meant (the
  zh-TW ``yyyy/M/d 下午 hh:mm:ss`` form included). A cell that does not fit its column's type (XCom
  keeps it as text) is written as null, logged once per column: a column keeps one type in every file.
  Needs pyarrow: ``pip install 'airflow-provider-cloudmax[parquet]'``, imported only here, only then.

Example::

    output = OutputFormat("parquet", typing=RowTyping(get_report_part(21002), ZoneInfo("Asia/Taipei")))
    encoder = output.encoder(target_encoding=None, progress=Progress("Writing x"))
    atomic.write(dest, encoder.encode(open_each(hook.sources(request))))
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cloudmax_provider.api.catalog import ColumnType, ReportPart
from cloudmax_provider.api.response import RowTyper, read_typed, to_jsonable
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.formats.arrow_typing import (
    ArrowJsonLinesEncoder,
    ArrowParquetEncoder,
    TypedEncoderBase,
    arrow_type,
    vectorised_column,
)
from cloudmax_provider.formats.arrow_typing import ParquetSink as _Sink
from cloudmax_provider.formats.streams import Progress, ReportStream, csv_body

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_FORMATS",
    "Encoder",
    "OutputFormat",
    "RowTyping",
    "arrow_schema",
    "arrow_type",
    "check_output_args",
    "require_pyarrow",
]

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("csv", "parquet", "jsonl")
DEFAULT_BATCH_SIZE = 64 * 1024
PARQUET_COMPRESSIONS = ("snappy", "zstd", "gzip", "brotli", "lz4", "none")
PARQUET_EXTRA_HINT = "pip install 'airflow-provider-cloudmax[parquet]'"
_JSONL_BUFFER = 1 << 20


def check_output_args(output_format: Any, batch_size: Any = DEFAULT_BATCH_SIZE, compression: Any = "snappy") -> None:
    """Refuse an unknown ``output_format``, a ``batch_size`` < 1 or an unknown Parquet ``compression``."""
    if output_format not in OUTPUT_FORMATS:
        choices = ", ".join(map(repr, OUTPUT_FORMATS))
        raise CloudmaxConfigError(f"output_format={output_format!r} is not one of {choices}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CloudmaxConfigError(f"batch_size={batch_size!r} must be a positive int (rows per Parquet row group)")
    if compression is not None and str(compression).lower() not in PARQUET_COMPRESSIONS:
        raise CloudmaxConfigError(
            f"compression={compression!r} is not a Parquet codec; use one of {', '.join(PARQUET_COMPRESSIONS)}"
        )


def require_pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a :class:`CloudmaxConfigError` naming the extra to install."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as exc:
        raise CloudmaxConfigError(
            f"output_format='parquet' needs pyarrow, which is not installed ({exc}); {PARQUET_EXTRA_HINT}"
        ) from None
    return pyarrow, pyarrow.parquet


@dataclass(frozen=True)
class RowTyping:
    """What typed formats need to type cells: the report, the account's timezone and the renamed columns
    (``{new_name: catalog_name}``, so a renamed column keeps its catalog type)."""

    part: ReportPart
    tz: ZoneInfo
    renamed: dict[str, str] = field(default_factory=dict)
    header: tuple[str, ...] = ()  # the columns expected (requested or catalog), for an empty body's schema

    @classmethod
    def for_request(cls, request: Any, tz: ZoneInfo) -> RowTyping:
        """From a :class:`~cloudmax_provider.api.request.ReportRequest` (its report and CustomColName columns)."""
        part = request.report_part
        header = tuple(new or name for name, new in request.columns) or part.column_names
        return cls(part, tz, {new: name for name, new in request.columns if new}, header)

    def empty_typer(self) -> RowTyper:
        return RowTyper(self.part, list(self.header), self.tz, self.renamed)


class Encoder(Protocol):
    """Bodies in, the bytes of one object out; ``rows`` counts the data rows written so far."""

    @property
    def rows(self) -> int: ...

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class OutputFormat:
    """An output format and its options; :meth:`encoder` makes a fresh encoder for each write attempt."""

    name: str = "csv"
    batch_size: int = DEFAULT_BATCH_SIZE
    compression: str | None = "snappy"
    typing: RowTyping | None = None
    #: "arrow": typed formats through Arrow's streaming CSV reader (:mod:`cloudmax_provider.formats.arrow_typing`);
    #: "python": record by record with ``RowTyper`` (what a body with ragged records is landed with)
    engine: str = "arrow"

    def __post_init__(self) -> None:
        check_output_args(self.name, self.batch_size, self.compression)
        if self.name != "csv" and self.typing is None:
            raise CloudmaxConfigError(f"output_format={self.name!r} needs the report's catalog entry to type columns")

    @property
    def extension(self) -> str:
        return self.name

    def encoder(self, target_encoding: str | None, progress: Progress, logger: Any = log) -> Encoder:
        if self.name == "csv":
            return CsvEncoder(target_encoding, progress)
        assert self.typing is not None
        arrow = self.engine == "arrow" and _has_pyarrow()
        if self.name == "jsonl":
            if arrow:
                return ArrowJsonLinesEncoder(self.typing, progress.label, logger)
            return JsonLinesEncoder(self.typing, progress.label, logger)
        if arrow:
            return ArrowParquetEncoder(self.typing, progress.label, logger, self.batch_size, self.compression)
        return ParquetEncoder(self.typing, progress.label, logger, self.batch_size, self.compression)

    def row_by_row(self) -> OutputFormat:
        """This format with the record-by-record typer (XCom's rules for ragged records, in place)."""
        return dataclasses.replace(self, engine="python")


def _has_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


class CsvEncoder:
    """The bytes as served, transcoded to ``target_encoding`` (None: untouched); header once over several
    sources. Rows are counted (and progress logged) by :class:`~cloudmax_provider.formats.streams.Progress`."""

    def __init__(self, target_encoding: str | None, progress: Progress) -> None:
        self.target, self.progress = target_encoding, progress

    @property
    def rows(self) -> int:
        return self.progress.rows

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        for i, stream in enumerate(streams):
            chunks = csv_body(i == 0, stream.chunks, stream.encoding, self.target)
            yield from self.progress.track(chunks, self.target or stream.encoding.name)


class _TypedEncoder(TypedEncoderBase):
    """Shared by the record-by-record typed formats: each source's typer and records."""

    def bodies(self, streams: Iterable[ReportStream]) -> Iterator[tuple[RowTyper, Iterator[list[str]]]]:
        """Each source's typer and records; every source must have the first one's header."""
        header: list[str] | None = None
        t = self.typing
        for stream in streams:
            typer, records = read_typed(stream.chunks, stream.encoding, t.part, t.tz, t.renamed)
            if not typer.header:
                continue  # an empty file
            header = self.same_header(header, typer, stream.source)
            yield typer, records


@contextlib.contextmanager
def _fewer_gc_passes(young: int = 100_000) -> Iterator[None]:
    """Collect the youngest generation every ``young`` allocations instead of 700 while rows stream: each
    CSV record is a new list (a GC-tracked object), and in a task process full of Airflow's objects the
    collector would otherwise take a third of the time. The records are freed by reference counting."""
    before = gc.get_threshold()
    gc.set_threshold(max(young, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class JsonLinesEncoder(_TypedEncoder):
    """One JSON object per line (UTF-8), each typed as XCom rows are."""

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        with _fewer_gc_passes():
            yield from self._encode(streams)

    def _encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        buffer: list[str] = []
        size = 0
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for typer, records in self.bodies(streams):
            for cells in records:
                line = dumps(to_jsonable(typer.type_row(cells)))
                buffer.append(line)
                size += len(line) + 1
                if size >= _JSONL_BUFFER:
                    self.tick(len(buffer))
                    yield ("\n".join(buffer) + "\n").encode("utf-8")
                    buffer, size = [], 0
        if buffer:
            self.tick(len(buffer))
            yield ("\n".join(buffer) + "\n").encode("utf-8")


def arrow_schema(typer: RowTyper) -> Any:
    """The Arrow schema of a report body: its header's columns, in order, typed by the catalog."""
    import pyarrow as pa

    fields = zip(typer.header, typer.types, strict=True)
    return pa.schema([pa.field(name, arrow_type(kind, typer.tz)) for name, kind in fields])


class ParquetEncoder(_TypedEncoder):
    """Row groups of ``batch_size`` rows, written as the body streams (see the module docstring)."""

    def __init__(
        self, typing: RowTyping, label: str, logger: Any, batch_size: int, compression: str | None = "snappy"
    ) -> None:
        super().__init__(typing, label, logger)
        self.batch_size = batch_size
        self.compression = "none" if compression is None else compression.lower()

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        _, pq = require_pyarrow()
        with _fewer_gc_passes():
            yield from self._encode(pq, streams)

    def _encode(self, pq: Any, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        sink = _Sink()
        writer = None
        for typer, records in self.bodies(streams):
            if writer is None:
                writer = pq.ParquetWriter(sink, arrow_schema(typer), compression=self.compression)
            group = _RowGroup(self, writer, typer)
            for cells in records:
                if group.add(cells):
                    yield sink.drain()
            if group.flush():
                yield sink.drain()
        if writer is None:  # no body had a header: an empty file with the expected columns
            writer = pq.ParquetWriter(sink, arrow_schema(self.typing.empty_typer()), compression=self.compression)
        writer.close()
        yield sink.drain()

    def _column(self, typer: RowTyper, index: int, texts: Sequence[str], arrow: Any) -> Any:
        """An Arrow array of one column: vectorised where Arrow reads the text exactly as
        :meth:`RowTyper.type_cell` does, else cell by cell with ``type_cell`` itself."""
        import pyarrow as pa

        kind = typer.types[index]
        if kind is ColumnType.TEXT:
            return pa.array([text or None for text in texts], arrow)
        fast = _vectorised(kind, texts, arrow, typer.tz)
        if fast is not None:
            return fast
        values = [typer.type_cell(index, text) for text in texts]
        return pa.array(self.null_misfits(typer.header[index], values), arrow)


class _RowGroup:
    """Collects one row group: text records are typed into Arrow every ``_TYPE_EVERY`` rows (so few Python
    strings live at once; Arrow holds the typed columns compactly), written when ``batch_size`` rows are in."""

    def __init__(self, encoder: ParquetEncoder, writer: Any, typer: RowTyper) -> None:
        self.encoder, self.writer, self.typer = encoder, writer, typer
        self.schema = writer.schema  # the Arrow schema
        self.width = len(typer.header)
        self.pending: list[list[str]] = []  # records not typed yet
        self.tables: list[Any] = []  # typed slices of this row group
        self.rows = 0

    def add(self, cells: list[str]) -> bool:
        """Take a record; True when a row group was written."""
        if len(cells) != self.width:  # short rows padded, extra cells dropped (as XCom rows)
            cells = (cells + [""] * self.width)[: self.width]
        self.pending.append(cells)
        self.rows += 1
        if self.rows == self.encoder.batch_size:
            return self.flush()
        if len(self.pending) == _TYPE_EVERY:
            self._type_pending()
        return False

    def _type_pending(self) -> None:
        import pyarrow as pa

        columns = list(zip(*self.pending, strict=True))  # a tuple of texts per column
        self.pending = []
        arrays = []
        for i in range(len(columns)):
            arrays.append(self.encoder._column(self.typer, i, columns[i], self.schema.field(i).type))
            columns[i] = ()  # free the text as soon as the column is typed
        self.tables.append(pa.Table.from_arrays(arrays, schema=self.schema))

    def flush(self) -> bool:
        """Write what is collected as one row group; False if there was nothing."""
        import pyarrow as pa

        if self.pending:
            self._type_pending()
        if not self.tables:
            return False
        table = pa.concat_tables(self.tables) if len(self.tables) > 1 else self.tables[0]
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.encoder.tick(table.num_rows)
        self.tables, self.rows = [], 0
        return True


#: Records typed into Arrow at a time while a row group is collected.
_TYPE_EVERY = 8192


def _vectorised(kind: ColumnType, texts: Sequence[str], arrow: Any, tz: ZoneInfo) -> Any:
    """A whole column typed by Arrow (C speed), or None when any cell needs Python's reading
    (:func:`~cloudmax_provider.formats.arrow_typing.vectorised_column` of the texts)."""
    import pyarrow as pa

    return vectorised_column(kind, pa.array(texts, pa.string()), arrow, tz)
