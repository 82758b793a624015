"""A capture of Report.aspx exchanges on disk: what the probe writes (``--record DIR``) and the emulator
replays (``--replay DIR``). Pure: no HTTP, no sanitizing (the probe sanitizes before it saves).

A capture is a folder: ``capture.json`` (the exchanges, oldest first) and one file per answer body, kept
byte for byte (encoding, BOM, quoting, line ends). Links in bodies and ``Location`` headers start with
:data:`REPLAY_BASE` instead of the recorded server's ``scheme://host:port``, so a replaying server points
them at itself. Request fields are kept by name and shape, never with a credential (``<login>``,
``<password>``, ``<XmlRequest: ...>``).

Example::

    >>> ex = Exchange(1, "api", "POST", "/WebAPI/Report.aspx", {"ReportPartID": "20001"}, "fields", 200)
    >>> ex.key()
    ('api', 'POST', 'fields', '20001', '')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CAPTURE_FILE = "capture.json"
CAPTURE_VERSION = 1
#: Stands for the recorded server's ``scheme://host[:port]`` in captured bodies and headers.
REPLAY_BASE = "{{REPLAY_BASE}}"


@dataclass
class Exchange:
    """One request and its answer. ``kind``: ``api`` (Report.aspx) or ``link`` (a DOWNLOADLINK file)."""

    n: int
    kind: str
    method: str
    path: str
    fields: dict[str, str] = field(default_factory=dict)
    request_format: str = "fields"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body_file: str | None = None
    elapsed: float = 0.0
    what: str = ""
    rows_kept: int | None = None  # a CSV body cut to its first rows: how many were kept

    def value(self, name: str) -> str:
        """A request field by case-insensitive name ("" if absent)."""
        low = name.lower()
        return next((v for k, v in self.fields.items() if k.lower() == low), "")

    def key(self) -> tuple[str, ...]:
        """What a replaying server matches a request on: kind, method, request format, ReportPartID,
        ResponseMode (API requests) or the path (link files); times, LaunchIDs and credentials are ignored."""
        if self.kind == "link":
            return ("link", self.path)
        return ("api", self.method.upper(), self.request_format, self.value("ReportPartID"), self.value("ResponseMode"))


@dataclass
class Capture:
    """A capture folder read back: its exchanges and notes (``meta``)."""

    folder: Path
    exchanges: list[Exchange]
    meta: dict[str, Any] = field(default_factory=dict)

    def body(self, exchange: Exchange) -> bytes:
        return (self.folder / exchange.body_file).read_bytes() if exchange.body_file else b""


def save_capture(folder: str | Path, exchanges: list[Exchange], bodies: dict[str, bytes], meta: dict[str, Any]) -> Path:
    """Write ``capture.json`` and the body files into ``folder`` (created); returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in bodies.items():
        (out / name).write_bytes(data)
    doc = {"version": CAPTURE_VERSION, "meta": meta, "exchanges": [asdict(e) for e in exchanges]}
    (out / CAPTURE_FILE).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def load_capture(folder: str | Path) -> Capture:
    """Read a capture folder; ``ValueError`` naming the folder if it is not one."""
    path = Path(folder) / CAPTURE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        exchanges = [Exchange(**e) for e in doc["exchanges"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{folder} is not a capture (no readable {CAPTURE_FILE}: {exc})") from None
    return Capture(Path(folder), exchanges, dict(doc.get("meta") or {}))
