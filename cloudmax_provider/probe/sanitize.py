"""Sanitizing a capture: no credential, e-mail address, customer id, IP, name or phone number leaves.

Every value is replaced consistently (the same input gives the same pseudonym within a capture), and a
CSV keeps its bytes' shape: it is decoded with its detected encoding, cut to its first rows, replaced
and encoded the same way again (BOM, quoting, line ends and time format untouched).

Example::

    >>> p = Pseudonyms(login="acme-api", password="s3cret!")
    >>> p.text("acme-api sent to ann@corp.tw from 203.0.113.7, again ann@corp.tw")
    '<login> sent to user1@example.com from 192.0.2.1, again user1@example.com'
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from cloudmax_provider.api.body import detect_encoding
from cloudmax_provider.api.capture import REPLAY_BASE
from cloudmax_provider.api.request import WireRequest
from cloudmax_provider.hooks.cloudmax import password_forms

_EMAIL = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_URL_BASE = re.compile(r"https?://[^/\s<>\"'?#]+", re.IGNORECASE)
_DROPPED_HEADERS = {
    "set-cookie",
    "cookie",
    "date",
    "server",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
}
_NOT_PERSONAL_NAMES = {"linkname", "jobname"}
CREDENTIAL_SHAPES = {
    "managerloginname": "<login>",
    "managerpassword": "<password>",
    "xmlrequest": "<XmlRequest: <REQUEST> with <ManagerLoginName>, <ManagerPassword>>",
}


class Pseudonyms:
    """Consistent pseudonyms for one capture, and the credentials to blank in every form."""

    def __init__(self, login: str, password: str) -> None:
        secrets = {form: "<password>" for form in password_forms(password) if form}
        if len(login) >= 3:  # a shorter login would blank ordinary text; it is never sent outside credentials
            secrets.update({form: "<login>" for form in password_forms(login) if form not in secrets})
        self._secrets = sorted(secrets.items(), key=lambda kv: -len(kv[0]))
        self._seen: dict[str, dict[str, str]] = {}
        self._made: set[str] = set()

    def _one(self, kind: str, value: str, make: Callable[[int], str]) -> str:
        if value in self._made:  # already a pseudonym (text() runs over replaced cells)
            return value
        table = self._seen.setdefault(kind, {})
        if value not in table:
            table[value] = make(len(table) + 1)
            self._made.add(table[value])
        return table[value]

    def email(self, value: str) -> str:
        return self._one("email", value.lower(), lambda n: f"user{n}@example.com")

    def ip(self, value: str) -> str:
        if ":" in value:
            return self._one("ip", value.lower(), lambda n: f"2001:db8::{n:x}")
        return self._one("ip", value, lambda n: f"192.0.2.{n}" if n < 255 else f"198.51.100.{n % 254 + 1}")

    def cell(self, column: str, value: str) -> str:
        """A personal cell's pseudonym by its column (customer id, reference, phone, name, e-mail, IP)."""
        low = column.lower()
        if "email" in low or "@" in value:
            return self.email(value)
        if low in ("ip", "ipaddress", "ip_address"):
            return self.ip(value)
        if "customer" in low:
            return self._one("customer", value, lambda n: f"C{n:08d}")
        if "refnum" in low or "extern" in low:
            return self._one("ref", value, lambda n: f"REF-{n}")
        if "mobile" in low or "phone" in low:
            return self._one("phone", value, lambda n: f"09{n:08d}")
        return self._one("name", value, lambda n: f"Name {n}")

    def credentials(self, text: str) -> str:
        """The login and password (every form) blanked, nothing else."""
        for secret, shape in self._secrets:
            text = text.replace(secret, shape)
        return text

    def text(self, text: str) -> str:
        """Credentials (every form) blanked; e-mail addresses and IPv4 addresses replaced."""
        text = _EMAIL.sub(lambda m: self.email(m.group(0)), self.credentials(text))
        return _IPV4.sub(lambda m: self.ip(m.group(0)), text)


def personal_column(name: str) -> bool:
    """Whether a CSV column holds personal data the capture replaces."""
    low = name.lower().replace(" ", "")
    if low in _NOT_PERSONAL_NAMES:
        return False
    words = ("email", "customer", "refnum", "extern", "mobile", "phone", "name", "姓名")
    return low in ("ip", "ipaddress", "ip_address") or any(w in low for w in words)


def _cut_records(text: str, rows: int) -> str:
    """``text`` up to the end of its header and first ``rows`` records (newlines inside quotes kept)."""
    in_quotes, ends = False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "\n" and not in_quotes:
            ends += 1
            if ends == rows + 1:
                return text[: i + 1]
    return text


def sanitize_csv(body: bytes, content_type: str | None, pseudo: Pseudonyms, rows: int = 20) -> tuple[bytes, int]:
    """The first ``rows`` records of a CSV body, personal cells replaced, encoded as it came; and the rows kept."""
    enc = detect_encoding(body, content_type)
    text = _cut_records(body[enc.bom :].decode(enc.codec, errors="replace"), rows)
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    header, data = (records[0], records[1:]) if records else ([], [])
    replace: dict[str, str] = {}
    for record in data:
        for name, value in zip(header, record, strict=False):
            if value.strip() and personal_column(name):
                replace[value] = pseudo.cell(name, value)
    for value in sorted(replace, key=len, reverse=True):
        text = text.replace(value, replace[value])
        if '"' in value:
            text = text.replace(value.replace('"', '""'), replace[value])
    text = pseudo.text(text)
    return body[: enc.bom] + text.encode(enc.codec, errors="replace"), len(data)


def rebase(text: str) -> str:
    """Every ``http(s)://host[:port]`` replaced by :data:`REPLAY_BASE` (links point at the replaying server)."""
    return _URL_BASE.sub(REPLAY_BASE, text)


def sanitize_text_body(body: bytes, content_type: str | None, pseudo: Pseudonyms) -> bytes:
    """An XML or HTML answer with credentials, e-mails and IPs replaced and links rebased, same encoding."""
    enc = detect_encoding(body, content_type)
    text = body[enc.bom :].decode(enc.codec, errors="replace")
    return body[: enc.bom] + rebase(pseudo.text(text)).encode(enc.codec, errors="replace")


def sanitize_headers(headers: dict[str, str], pseudo: Pseudonyms) -> dict[str, str]:
    """Answer headers without cookies, dates, lengths or server names; Location rebased."""
    out = {}
    for name, value in headers.items():
        if name.lower() in _DROPPED_HEADERS:
            continue
        value = pseudo.text(value)
        out[name] = rebase(value) if name.lower() == "location" else value
    return out


def request_shape(wire: WireRequest, pseudo: Pseudonyms) -> tuple[str, dict[str, str]]:
    """(path, fields) of a request as sent: credential fields by shape only, other values sanitized."""
    fields: dict[str, str] = {}
    for name, value in [*wire.params, *(wire.data or ())]:
        shape = CREDENTIAL_SHAPES.get(name.lower())
        fields[name] = shape if shape is not None else pseudo.text(value)
    for name, filename, _content, ctype in wire.files or ():
        fields[name] = f"<file {filename} ({ctype}): <REQUEST> with <ManagerLoginName>, <ManagerPassword>>"
    return urlsplit(wire.url).path, fields
