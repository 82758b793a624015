"""What a Report.aspx body is, from its headers and first bytes: its kind, its text encoding, its file name.

Readings taken where the spec is open (liberal in what we accept):

* CSV encoding ("Unicode" in the spec): a BOM decides first (UTF-8, UTF-16 LE/BE); then the
  Content-Type charset; then NUL bytes in the first bytes mean UTF-16; else UTF-8.
* A body starting ``<?xml`` (or ``<`` with ERRORCODE) is an API answer, an HTML start is an error page,
  anything else is the report's CSV.

This stays in the API layer (not ``formats/``) because the DOWNLOADLINK probe in ``links/`` judges a
body by its kind and names its file.

Example::

    >>> detect_encoding(b"\\xff\\xfeI\\x00D\\x00").name, sniff_kind(b"<?xml version='1.0'?><Root/>")
    ('utf-16-le', 'xml')
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email.message import Message

#: How many bytes of a body are read to tell its kind and encoding.
SNIFF_BYTES = 4096


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
