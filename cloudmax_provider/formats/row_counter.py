"""Counting CSV records in a byte stream without parsing it (the ``rows`` a landing reports).

Example::

    >>> c = CsvRowCounter(); c.feed(b'h\\n"a\\nb",1\\n'); c.records
    2
"""

from __future__ import annotations

import functools
from typing import Any


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
        """Two boolean arrays of ``size``, kept from chunk to chunk. Fresh chunk-sized temporaries would cost
        a page fault per page each time (glibc gives such large blocks back to the kernel when freed)."""
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
