"""Output formats: what a report body becomes at its destination — CSV as served, Parquet or JSON Lines.

One interface for every format (:class:`Encoder`): the report's bodies go in (one
:class:`~cloudmax_provider.formats.streams.ReportStream` per source, opened in turn), the bytes of one
object come out, and the encoder counts the data rows it wrote. Landing writes those bytes with
:func:`cloudmax_provider.landing.atomic.write`, whatever the format, so Parquet and JSON Lines are as atomic as CSV.

* ``csv``: the bytes as served, transcoded to ``output_encoding`` (several sources: header once).
* ``jsonl``: one UTF-8 JSON object per row, typed exactly as XCom rows are (``RowTyper`` then
  ``to_jsonable``: int, float, ISO-8601 time with offset, str, None for an empty cell).
* Both typed formats are parsed by Arrow's streaming CSV reader and typed by Arrow kernels, one engine
  (:mod:`cloudmax_provider.formats.arrow_typing`); both need pyarrow.
* ``parquet``: a schema from the catalog (``arrow_typing.arrow_type``), columns in the report's order, written in
  row groups of ``batch_size`` rows while the body streams: memory holds one batch, whatever the report's
  size. Times are ``timestamp[us, tz=<account timezone>]`` holding the instant the server meant (the
  zh-TW ``yyyy/M/d 下午 hh:mm:ss`` form included). A cell that does not fit its column's type (XCom
  keeps it as text) is written as null, logged once per column: a column keeps one type in every file.
  Parquet and JSON Lines need pyarrow: ``pip install 'airflow-provider-cloudmax[parquet]'``, imported only
  when such a report is written.

Example::

    output = OutputFormat("parquet", typing=RowTyping(get_report_part(21002), ZoneInfo("Asia/Taipei")))
    encoder = output.encoder(target_encoding=None, progress=Progress("Writing x"))
    atomic.write(dest, encoder.encode(open_each(hook.sources(request))))
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from cloudmax_provider.api.body import Encoding
from cloudmax_provider.api.catalog import ReportPart
from cloudmax_provider.api.schema import HeaderDiff, SchemaChange, check_header
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.formats.cells import RowTyper
from cloudmax_provider.formats.streams import Progress, ReportStream, csv_body

if TYPE_CHECKING:
    from cloudmax_provider.api.request import ReportRequest

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_FORMATS",
    "Encoder",
    "OutputFormat",
    "RowTyping",
    "check_output_args",
    "require_pyarrow",
]

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("csv", "parquet", "jsonl")
DEFAULT_BATCH_SIZE = 64 * 1024
PARQUET_COMPRESSIONS = ("snappy", "zstd", "gzip", "brotli", "lz4", "none")
PARQUET_EXTRA_HINT = "pip install 'airflow-provider-cloudmax[parquet]'"


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


def require_pyarrow(output_format: str = "parquet") -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a :class:`CloudmaxConfigError` naming the extra to install."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as exc:
        raise CloudmaxConfigError(
            f"output_format={output_format!r} needs pyarrow, which is not installed ({exc}); {PARQUET_EXTRA_HINT}"
        ) from None
    return pyarrow, pyarrow.parquet


@dataclass(frozen=True)
class RowTyping:
    """What typed formats need to type cells: the report, the account's timezone and the renamed columns
    (``{new_name: catalog_name}``, so a renamed column keeps its catalog type), and the schema contract."""

    part: ReportPart
    tz: ZoneInfo
    renamed: dict[str, str] = field(default_factory=dict)
    header: tuple[str, ...] = ()  # the columns expected (requested or catalog): an empty body's schema, the contract
    schema_change: SchemaChange = SchemaChange.EVOLVE

    @classmethod
    def for_request(
        cls, request: ReportRequest, tz: ZoneInfo, schema_change: SchemaChange | str = "evolve"
    ) -> RowTyping:
        """From a :class:`~cloudmax_provider.api.request.ReportRequest` (its report and CustomColName columns)."""
        part = request.report_part
        header = tuple(new or name for name, new in request.columns) or part.column_names
        renamed = {new: name for name, new in request.columns if new}
        return cls(part, tz, renamed, header, SchemaChange.coerce(schema_change))

    def empty_typer(self) -> RowTyper:
        return RowTyper(self.part, list(self.header), self.tz, self.renamed)

    def typer_for(self, served: list[str], source: str, logger: Any = log) -> tuple[RowTyper, HeaderDiff | None]:
        """The typer of a body whose header is ``served``, under the schema contract
        (:func:`~cloudmax_provider.api.schema.check_header`: ``fail`` raises), and the difference found (logged)."""
        diff, landed = check_header(self.header, served, self.schema_change, source)
        picks = served if landed != served else None
        if diff is not None:
            action = "landed as served" if picks is None else "landed as expected"
            logger.warning("%s: the report's columns changed (%s); %s", source, diff.describe(), action)
        return RowTyper(self.part, landed, self.tz, self.renamed, served=picks), diff

    def typer(self, served: list[str], *, source: str, logger: Any = log) -> RowTyper:
        """:meth:`typer_for`'s typer alone (``read_typed``'s ``typer_of``)."""
        return self.typer_for(served, source, logger)[0]


class Encoder(Protocol):
    """Bodies in, the bytes of one object out; ``rows`` counts the data rows written so far."""

    @property
    def rows(self) -> int: ...

    #: the first body's header difference from the expected columns (:mod:`cloudmax_provider.api.schema`)
    schema_diff: HeaderDiff | None

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class OutputFormat:
    """An output format and its options; :meth:`encoder` makes a fresh encoder for each write attempt."""

    name: str = "csv"
    batch_size: int = DEFAULT_BATCH_SIZE
    compression: str | None = "snappy"
    typing: RowTyping | None = None

    def __post_init__(self) -> None:
        check_output_args(self.name, self.batch_size, self.compression)
        if self.name != "csv" and self.typing is None:
            raise CloudmaxConfigError(f"output_format={self.name!r} needs the report's catalog entry to type columns")

    @property
    def extension(self) -> str:
        return self.name

    def encoder(self, target_encoding: str | None, progress: Progress, logger: Any = log) -> Encoder:
        if self.name == "csv":
            return CsvEncoder(target_encoding, progress, self.typing, logger)
        assert self.typing is not None
        require_pyarrow(self.name)
        # the Arrow encoders' module is imported here, not when a DAG file imports the operator
        from cloudmax_provider.formats.arrow_typing import ArrowJsonLinesEncoder, ArrowParquetEncoder

        if self.name == "jsonl":
            return ArrowJsonLinesEncoder(self.typing, progress.label, logger)
        return ArrowParquetEncoder(self.typing, progress.label, logger, self.batch_size, self.compression)


class CsvEncoder:
    """The bytes as served, transcoded to ``target_encoding`` (None: untouched); header once over several
    sources. Rows are counted (and progress logged) by :class:`~cloudmax_provider.formats.streams.Progress`.
    With ``typing``, each source's header is held against the expected columns first (``schema_change``:
    ``fail`` raises before a byte is written; CSV lands the columns as served)."""

    def __init__(
        self, target_encoding: str | None, progress: Progress, typing: RowTyping | None = None, logger: Any = log
    ) -> None:
        self.target, self.progress, self.typing, self.log = target_encoding, progress, typing, logger
        self.schema_diff: HeaderDiff | None = None

    @property
    def rows(self) -> int:
        return self.progress.rows

    def encode(self, streams: Iterable[ReportStream]) -> Iterator[bytes]:
        for i, stream in enumerate(streams):
            chunks: Iterable[bytes] = stream.chunks
            if self.typing is not None and self.typing.header:
                chunks = self._header_checked(chunks, stream.encoding, stream.source)
            chunks = csv_body(i == 0, chunks, stream.encoding, self.target)
            yield from self.progress.track(chunks, self.target or stream.encoding.name)

    def _header_checked(self, chunks: Iterable[bytes], encoding: Encoding, source: str) -> Iterator[bytes]:
        """``chunks`` unchanged, once their first line (the header) has passed the schema contract."""
        newline = "\n".encode(encoding.name)
        buffered = b""
        it = iter(chunks)
        for chunk in it:
            buffered += chunk
            if newline in buffered[encoding.bom :]:
                break
        head = buffered[encoding.bom :].split(newline, 1)[0]
        line = head.decode(encoding.name, errors="replace").rstrip("\r")
        if line:
            assert self.typing is not None
            _, diff = self.typing.typer_for(next(csv.reader([line]), []), source, self.log)
            self.schema_diff = diff or self.schema_diff
        if buffered:
            yield buffered
        yield from it
