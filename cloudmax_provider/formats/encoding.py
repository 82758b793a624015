"""Transcoding a report body to the encoding it is written in, and reading its CSV records from the stream.

Example::

    >>> from cloudmax_provider.api.body import Encoding
    >>> b"".join(transcode([b"\\xff\\xfeI\\x00D\\x00"], Encoding("utf_16_le", 2), "utf-8"))
    b'ID'
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from cloudmax_provider.api.body import Encoding

#: A chunk is decoded and re-encoded in pieces of this size, then joined: the text and bytes of a piece are
#: small blocks the allocator reuses, where a chunk-sized str is a fresh mapping that costs a page fault per page
#: (bench/download.py measures the transcoding rate).
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
