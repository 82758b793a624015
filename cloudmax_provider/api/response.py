"""Response parsing: every form Report.aspx answers in, read in one place for sync and async code.

Readings taken where the spec is open (liberal in what we accept):

* XML: the root may have any name; ERRORCODE / ERRORMSG / DOWNLOADLINK are found by local name
  in any letter case anywhere in the tree; several DOWNLOADLINK elements (or one holding several
  lines / ``;``-separated links) are a list. A declaration claiming ``utf-16`` over 8-bit bytes
  (a .NET quirk) is read as UTF-8. Entities, DTDs and network access are off.
* CSV encoding ("Unicode" in the spec): a BOM decides first (UTF-8, UTF-16 LE/BE); then the
  Content-Type charset; then NUL bytes in the first bytes mean UTF-16; else UTF-8.
* Times in cells: ``yyyy-MM-dd HH:mm:ss``, ``yyyy/M/d HH:mm:ss``, zh-TW ``yyyy/M/d 上午 hh:mm:ss``,
  en ``M/d/yyyy h:mm:ss AM``, optional fractions and ``T``; read in the account's timezone.
* A redirect (ReferUrl / SuccessfulUrl / FailedUrl) carries its answer in the query string,
  keys matched in any letter case.

Example::

    >>> parse_api_xml(b"<Root><ErrorCode>0</ErrorCode><DownloadLink>http://h/r.csv</DownloadLink></Root>").links
    ('http://h/r.csv',)
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from cloudmax_provider.api.catalog import ColumnType, ReportPart
from cloudmax_provider.exceptions import CloudmaxResponseError, error_for_code

log = logging.getLogger(__name__)

SNIFF_BYTES = 4096
#: The largest XML answer read: Report.aspx's are a few hundred bytes (one per DOWNLOADLINK); more is refused.
MAX_XML_BYTES = 1 << 20


@dataclass(frozen=True)
class ApiAnswer:
    """Report.aspx's XML (or redirect) answer: ERRORCODE, ERRORMSG, DOWNLOADLINKs."""

    error_code: int
    error_msg: str = ""
    links: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)

    def raise_for_error(self, report_part_id: int | None = None) -> None:
        if self.error_code > 0:
            raise error_for_code(self.error_code, self.error_msg, report_part_id=report_part_id)


_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9_.:-]+)[\"']", re.IGNORECASE)
_LINK_SPLIT = re.compile(r"[\r\n;|]+")


def _xml_bytes(body: bytes) -> bytes:
    """Body bytes lxml can read: undo the .NET 'encoding="utf-16" over UTF-8 bytes' quirk."""
    if body[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return body.decode("utf-16").encode("utf-8").replace(b'encoding="utf-16"', b'encoding="utf-8"')
    body = body.removeprefix(codecs.BOM_UTF8)
    decl = _XML_DECL.match(body)
    if decl:
        enc = _DECL_ENCODING.search(decl.group(0))
        if enc and enc.group(1).lower().replace(b"-", b"") in (b"utf16", b"unicode", b"utf16le", b"utf16be"):
            return body[decl.end() :].lstrip()  # 8-bit bytes: read as UTF-8 (lxml's default with no declaration)
    return body


def parse_api_xml(body: bytes) -> ApiAnswer:
    """Read an XML answer; raises :class:`CloudmaxResponseError` if it is not one."""
    from lxml import etree

    if len(body) > MAX_XML_BYTES:
        raise CloudmaxResponseError(
            f"Report.aspx answered an XML document of more than {MAX_XML_BYTES} bytes; its answers are a few hundred "
            "bytes, so this is not the API (check the connection's host and 'endpoint' extra)"
        )
    # Hostile input: no entity is ever resolved, no DTD or network fetched, libxml2's amplification and
    # depth limits stay on (huge_tree=False); a document with a DTD is refused (Report.aspx sends none).
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(_xml_bytes(body.strip()), parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise CloudmaxResponseError(
            f"Report.aspx answered unreadable XML ({str(exc)[:200]}); body starts {body[:80]!r}"
        ) from None
    if root is None:
        raise CloudmaxResponseError(f"Report.aspx answered XML without a root element; body starts {body[:80]!r}")
    if getattr(root.getroottree().docinfo, "doctype", ""):  # lxml-stubs lack DocInfo.doctype
        raise CloudmaxResponseError(
            "Report.aspx answered XML with a document type declaration (<!DOCTYPE>), which the API never sends; "
            "refused unread (its entities are never resolved)"
        )
    values: dict[str, list[str]] = {}
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        name = etree.QName(el).localname.upper()
        values.setdefault(name, []).append((el.text or "").strip())
    if "ERRORCODE" not in values:
        raise CloudmaxResponseError(
            f"Report.aspx answered XML without ERRORCODE (root <{etree.QName(root).localname}>); "
            "check the connection's host and endpoint"
        )
    return _answer_from(
        {k: v[0] for k, v in values.items()}, [s for v in values.get("DOWNLOADLINK", []) for s in _split_links(v)]
    )


def _split_links(value: str) -> list[str]:
    return [p.strip() for p in _LINK_SPLIT.split(value) if p.strip()]


def _answer_from(fields: dict[str, str], links: list[str]) -> ApiAnswer:
    raw_code = fields.get("ERRORCODE", "").strip()
    try:
        code = int(raw_code or 0)
    except ValueError:
        raise CloudmaxResponseError(f"Report.aspx answered ERRORCODE {raw_code!r}, which is not a number") from None
    return ApiAnswer(code, fields.get("ERRORMSG", ""), tuple(dict.fromkeys(links)), fields)


def parse_redirect(location: str) -> ApiAnswer | None:
    """The answer carried by a ReferUrl/FailedUrl/SuccessfulUrl redirect's query, or None if it has none."""
    pairs = parse_qsl(urlsplit(location).query, keep_blank_values=True)
    fields = {k.upper(): v for k, v in pairs}
    if "ERRORCODE" not in fields:
        return None
    links = [s for k, v in pairs if k.upper() in ("DOWNLOADLINK", "REPORTPATH") for s in _split_links(v)]
    return _answer_from(fields, links)


# ---- body kinds and encodings ------------------------------------------------------------------


def content_type_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    msg = Message()
    msg["content-type"] = content_type
    charset = msg.get_param("charset")
    return str(charset).strip().lower() if isinstance(charset, str) else None


def sniff_kind(head: bytes, content_type: str | None = None) -> str:
    """``"xml"`` (an API answer), ``"html"`` (an error page) or ``"csv"``, from the first bytes of a body."""
    enc = detect_encoding(head, content_type)
    text = head[:512].decode(enc.codec, errors="ignore").lstrip("\ufeff \t\r\n").lower()
    if text.startswith("<?xml") or (text.startswith("<") and "errorcode" in text):
        return "xml"
    if text.startswith(("<!doctype html", "<html", "<head", "<body")) or (
        text.startswith("<") and "html" in (content_type or "").lower()
    ):
        return "html"
    return "csv"


@dataclass(frozen=True)
class Encoding:
    """A body's text encoding: Python codec name and the length of its BOM (0 if none)."""

    codec: str
    bom: int = 0

    @property
    def name(self) -> str:
        return {"utf_8": "utf-8", "utf_16_le": "utf-16-le", "utf_16_be": "utf-16-be"}.get(self.codec, self.codec)


def detect_encoding(head: bytes, content_type: str | None = None) -> Encoding:
    """Tell UTF-8, UTF-8 with BOM and UTF-16 apart by BOM, then Content-Type charset, then NUL bytes."""
    if head.startswith(codecs.BOM_UTF8):
        return Encoding("utf_8", 3)
    if head.startswith(codecs.BOM_UTF16_LE):
        return Encoding("utf_16_le", 2)
    if head.startswith(codecs.BOM_UTF16_BE):
        return Encoding("utf_16_be", 2)
    charset = (content_type_charset(content_type) or "").replace("_", "-")
    sample = head[:64]
    nul_odd, nul_even = sample[1::2].count(0), sample[0::2].count(0)
    if charset in ("utf-16", "unicode", "utf-16le", "utf-16-le", "ucs-2") or nul_odd > len(sample) // 4:
        return Encoding("utf_16_be" if nul_even > nul_odd else "utf_16_le")
    if charset in ("utf-16be", "utf-16-be"):
        return Encoding("utf_16_be")
    if charset and charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        try:
            return Encoding(codecs.lookup(charset).name)
        except LookupError:
            pass
    return Encoding("utf_8")


def safe_filename(content_disposition: str | None, default: str = "report.csv") -> str:
    """The attachment's file name, reduced to a safe base name (no path, no control or reserved characters)."""
    if not content_disposition:
        return default
    msg = Message()
    msg["content-disposition"] = content_disposition
    return safe_name(msg.get_filename() or "", default)


def safe_name(name: str, default: str = "report.csv") -> str:
    """A server-given file name as a base name that stays inside the folder it is written to: the last
    path segment (``/``, ``\\`` and their %-encodings), no drive (``C:``), no control or reserved
    characters, no leading or trailing dots or spaces (so never ``.`` or ``..``).

    >>> safe_name("..%2F..%2Fetc%2Fpasswd"), safe_name("C:report.csv"), safe_name("..")
    ('passwd', 'report.csv', 'report.csv')
    """
    from urllib.parse import unquote

    name = re.split(r"[\\/]", unquote(name))[-1]
    name = re.sub(r"^[A-Za-z]:", "", name)
    name = re.sub(r'[\x00-\x1f\x7f<>:"|?*]', "_", name).strip(" .")
    return name[:200] or default


# ---- streaming text ----------------------------------------------------------------------------


def _numpy() -> Any:
    """numpy if installed (it comes with pyarrow and pandas), else None: the counter falls back to pure Python."""
    global _NUMPY
    if _NUMPY is False:
        try:
            import numpy

            _NUMPY = numpy
        except ImportError:
            _NUMPY = None
    return _NUMPY


_NUMPY: Any = False  # not looked up yet
_QUOTE, _LF = 0x22, 0x0A
#: Below this many bytes numpy's set-up costs more than it saves (and a small report never imports numpy).
_NUMPY_MIN_CHUNK = 64 << 10


class CsvRowCounter:
    r"""Counts CSV records in a stream of text or ASCII-compatible bytes: newlines outside quotes (RFC 4180).

    Reading taken: a record ends at LF (CRLF and LF endings agree with Python's ``csv``; a lone CR is not
    a line end), a ``"`` toggles quoting (an escaped ``""`` toggles twice). Bytes are counted without
    decoding (quotes and newlines are single bytes in UTF-8):

    * a chunk without ``"`` is one ``bytes.count`` (or none at all while inside quotes);
    * otherwise, with numpy, the quotes and newlines are picked out vectorised (a few % of the bytes), a
      running count of quotes is taken over them, and a newline is outside quotes when an even number of
      quotes (plus the state carried in) precede it; numpy releases the GIL in these loops, so a counting
      thread runs beside the I/O;
    * without numpy (or with ``vectorised=False``): all newlines minus those in the quoted parts
      (``split`` on ``"``, the quoted parts joined and counted). Both give the same counts.

    Example::

        >>> c = CsvRowCounter(); c.feed(b'a,b\r\n"x\ny",2\r\n'); c.records
        2
    """

    def __init__(self, vectorised: bool | None = None) -> None:
        self.newlines = 0
        self._in_quotes = False
        self._ends_with_newline = True
        self._vectorised = vectorised
        self._buffers: tuple[Any, Any] | None = None
        if vectorised and _numpy() is None:
            raise ImportError("CsvRowCounter(vectorised=True) needs numpy (pip install numpy)")

    @functools.cached_property
    def _np(self) -> Any:
        """numpy, looked up at the first big chunk with quotes (a small report never imports it)."""
        return _numpy() if self._vectorised is not False else None

    def feed(self, chunk: str | bytes) -> None:
        if not chunk:
            return
        if isinstance(chunk, str):
            self._feed_text(chunk)
        elif b'"' not in chunk:
            if not self._in_quotes:
                self.newlines += chunk.count(b"\n")
        elif self._np is not None and len(chunk) >= _NUMPY_MIN_CHUNK:
            self._feed_numpy(chunk)
        else:
            self._feed_split(chunk)
        self._ends_with_newline = chunk[-1:] in ("\n", b"\n")

    def _feed_numpy(self, chunk: bytes) -> None:
        np = self._np
        data = np.frombuffer(chunk, dtype=np.uint8)
        special, newline = self._scratch(len(data))
        np.equal(data, _QUOTE, out=special)
        np.equal(data, _LF, out=newline)
        np.logical_or(special, newline, out=special)
        is_quote = data[np.flatnonzero(special)] == _QUOTE  # quotes and newlines, in order (a few % of the bytes)
        parity = np.cumsum(is_quote, dtype=np.int64)  # quotes up to each of them
        at_newlines = parity[~is_quote]  # quotes before each newline
        odd = int(np.count_nonzero(at_newlines & 1))  # newlines after an odd number of quotes
        self.newlines += odd if self._in_quotes else len(at_newlines) - odd
        if len(parity) and parity[-1] & 1:
            self._in_quotes = not self._in_quotes

    def _scratch(self, size: int) -> tuple[Any, Any]:
        """Two boolean arrays of ``size``, kept from chunk to chunk. Fresh 1 MiB temporaries would cost a
        page fault per 4 KiB each time (glibc gives such blocks back to the kernel when freed): reusing
        them makes the count ~3x faster."""
        if self._buffers is None or len(self._buffers[0]) < size:
            np = self._np
            self._buffers = (np.empty(size, dtype=bool), np.empty(size, dtype=bool))
        return self._buffers[0][:size], self._buffers[1][:size]

    def _feed_split(self, chunk: bytes) -> None:
        parts = chunk.split(b'"')
        quoted = parts[0::2] if self._in_quotes else parts[1::2]  # unquoted and quoted parts alternate
        self.newlines += chunk.count(b"\n") - b"".join(quoted).count(b"\n")
        if len(parts) % 2 == 0:  # an odd number of quotes flips the state
            self._in_quotes = not self._in_quotes

    def _feed_text(self, chunk: str) -> None:
        parts = chunk.split('"')
        quoted = parts[0::2] if self._in_quotes else parts[1::2]
        self.newlines += chunk.count("\n") - "".join(quoted).count("\n")
        if len(parts) % 2 == 0:
            self._in_quotes = not self._in_quotes

    @property
    def records(self) -> int:
        """Lines including the header (a last line without a newline counts)."""
        return self.newlines + (0 if self._ends_with_newline else 1)


#: A chunk is decoded and re-encoded in pieces of this size, then joined: the text and bytes of a piece are
#: small blocks the allocator reuses, where a 1 MiB str is a fresh mapping that costs a page fault per 4 KiB
#: (UTF-16 -> UTF-8 ran at ~0.8 GB/s in 1 MiB pieces, ~2 GB/s in 64 KiB ones, here).
TRANSCODE_PIECE = 64 << 10


def transcode(chunks: Iterable[bytes], source: Encoding, target: str | None) -> Iterator[bytes]:
    """Re-encode a byte stream from ``source`` to ``target`` (BOM removed), chunk by chunk.

    ``target=None`` passes the bytes through untouched. UTF-8 to UTF-8 only drops a BOM.
    """
    if target is None:
        yield from chunks
        return
    out_codec = codecs.lookup(target).name
    it = iter(chunks)
    skip = source.bom
    if codecs.lookup(source.codec).name == out_codec:  # same encoding: pass the bytes through, minus the BOM
        for chunk in it:
            if skip:
                chunk, skip = chunk[skip:], max(0, skip - len(chunk))
            if chunk:
                yield chunk
        return
    decoder = codecs.getincrementaldecoder(source.codec)(errors="strict")
    encoder = codecs.getincrementalencoder(out_codec)()
    for chunk in it:
        if skip:
            chunk, skip = chunk[skip:], max(0, skip - len(chunk))
        if len(chunk) <= TRANSCODE_PIECE:
            text = decoder.decode(chunk)
            out = encoder.encode(text) if text else b""
        else:
            view = memoryview(chunk)
            step = TRANSCODE_PIECE
            out = b"".join([encoder.encode(decoder.decode(view[i : i + step])) for i in range(0, len(view), step)])
        if out:
            yield out
    tail = decoder.decode(b"", final=True)
    if tail:
        yield encoder.encode(tail)


class ChunkReader(io.RawIOBase):
    """A readable file object over an iterator of byte chunks (for ``io.TextIOWrapper`` and ``csv``)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def iter_csv_records(chunks: Iterable[bytes], encoding: Encoding) -> Iterator[list[str]]:
    """CSV records (header first) from a byte stream, decoded as ``encoding`` with its BOM dropped."""
    text = io.TextIOWrapper(
        io.BufferedReader(ChunkReader(transcode(chunks, encoding, "utf-8"))), encoding="utf-8", newline=""
    )
    yield from csv.reader(text)


# ---- typed rows ------------------------------------------------------------------------------

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

    def __init__(self, part: ReportPart, header: list[str], tz: ZoneInfo, renamed: dict[str, str] | None = None):
        renamed = renamed or {}
        self.header = header
        self.tz = tz
        self.types = [part.type_of(renamed.get(name, name)) for name in header]
        self._warned: set[str] = set()

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
        return {name: self.type_cell(i, cells[i] if i < n else "") for i, name in enumerate(self.header)}


def read_typed(
    chunks: Iterable[bytes], encoding: Encoding, part: ReportPart, tz: ZoneInfo, renamed: dict[str, str] | None = None
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
    return RowTyper(part, header, tz, renamed), wanted


def to_jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A typed row for XCom: datetimes as ISO-8601 with offset; everything else already JSON."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
