"""Report.aspx's answer: its XML document or redirect, read in one place for sync and async code.

A body's kind and encoding are in :mod:`~cloudmax_provider.api.body`; its CSV is read in ``formats/``.

Readings taken where the spec is open (liberal in what we accept):

* XML: the root may have any name; ERRORCODE / ERRORMSG / DOWNLOADLINK are found by local name
  in any letter case anywhere in the tree; several DOWNLOADLINK elements (or one holding several
  lines / ``;``-separated links) are a list. A declaration claiming ``utf-16`` over 8-bit bytes
  (a .NET quirk) is read as UTF-8. Entities, DTDs and network access are off.
* A redirect (ReferUrl / SuccessfulUrl / FailedUrl) carries its answer in the query string,
  keys matched in any letter case.

Example::

    >>> parse_api_xml(b"<Root><ErrorCode>0</ErrorCode><DownloadLink>http://h/r.csv</DownloadLink></Root>").links
    ('http://h/r.csv',)
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from cloudmax_provider.exceptions import CloudmaxResponseError, error_for_code

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
