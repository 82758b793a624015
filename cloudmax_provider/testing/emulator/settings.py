"""The emulator's settings, its fixed strings and the shapes every part of it shares.

:class:`EmulatorSettings` are the live switches (the CLI's flags, the pytest fixture's settings);
:class:`RecordedRequest` is one request as received; ``Reply`` is an answer a route builds before it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "API_PATH",
    "LINK_PREFIX",
    "LOGIN_FAILED_MSG",
    "STATIC_PREFIX",
    "EmulatorSettings",
    "RecordedRequest",
]

API_PATH = "/WebAPI/Report.aspx"
LINK_PREFIX = "/WebAPI/ReportFiles/"
STATIC_PREFIX = "/static/"
LOGIN_FAILED_MSG = "Login failed: incorrect ManagerLoginName or ManagerPassword"
ERROR_MESSAGES = {
    100: "Exception",
    102: "Incorrect Request",
    103: "Incorrect ReportPartID",
    110: "Invalid time format",
    1000: "No Licence at Page",
}
NOT_FOUND_HTML = (
    "<!DOCTYPE html>\r\n<html><head><title>404 - File or directory not found.</title></head>\r\n"
    "<body><h2>404 - File or directory not found.</h2>\r\n"
    "<p>The resource you are looking for might have been removed, had its name changed, "
    "or is temporarily unavailable.</p></body></html>\r\n"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (recorded before answering)."""

    method: str
    path: str
    query: dict[str, str]
    fields: dict[str, str]
    files: dict[str, bytes]
    headers: dict[str, str]
    body_size: int
    time: float

    def field(self, name: str, default: str | None = None) -> str | None:
        """A field by case-insensitive name."""
        low = name.lower()
        return next((v for k, v in self.fields.items() if k.lower() == low), default)


@dataclass
class EmulatorSettings:
    """Live behaviour switches; mutate them at runtime, the next request sees the change."""

    accounts: dict[str, str] = field(default_factory=lambda: {"demo": "demo-password"})
    licensed_reports: set[int] | None = None
    methods: str = "both"  # "both" | "GET" | "POST"
    csv_encoding: str = "utf-8"  # "utf-8" | "utf-8-sig" | "utf-16" (LE with BOM)
    time_format: str = "iso"  # "iso" | "zh-TW" | "en-US"
    rows_per_launch: int = 5
    header_changes: str = ""  # Cloudmax changing a report's columns, e.g. "+F3OpenCount,-OS" (rows.change_columns)
    xml_root: str = "ROOT"
    xml_utf16_declaration: bool = False
    xml_tag_case: str = "upper"  # "upper" | "mixed"
    refuse_xml_request: bool = False  # XmlRequest/XmlReqUrl/XmlReqFilePath ignored (no credentials seen: 102)
    link_ready_after: float = 0.0
    split_links: bool = False
    link_base_url: str | None = None
    link_redirect_to: str | None = None  # a base URL: link files answer 302 there first (a CDN hand-off)
    unc_root: str | None = None
    unc_server: str = "CMXFILE01"
    unc_share: str = "reports"
    big_report_bytes: int = 0
    # one ragged record in the big report (its last cell cut off): "start", "middle", "end", or several, comma-separated
    big_report_ragged: str = ""
    fail_first: int = 0
    fail_with: int | str = 503  # HTTP status | "exception" (ErrorCode 100) | "error:<ErrorCode>" | "reset"
    retry_after: int | None = None
    delay: float = 0.0
    latency: float = 0.0  # seconds every Report.aspx request takes before its answer (a server's work), no fault
    # Report.aspx requests wait until this many are being handled at once, then all go on (at most 30 s): the event
    # that a client really had N requests in flight together, for tests of bounded concurrency (0 or 1: off)
    gather_api_requests: int = 0
    truncate_body: bool = False
    drop_mid_body: bool = False
    fault_paths: str = "all"  # "all" | "api" | "links"
    answer_with: str | None = None  # "empty" | "html" | "foreign_xml" | "xxe" | "entity_expansion" | "oversized_xml"
    attachment_filename: str | None = None  # mode 3's Content-Disposition file name, as given
    link_filename: str | None = None  # the file name in mode 0/1 links, as given
    fail_start_windows: list[tuple[str, str]] = field(default_factory=list)  # StartTime in [from, to) -> fail_with
    fail_start_first: int = 0  # only the first N requests in fail_start_windows fail (0: all)


@dataclass
class Reply:
    """An answer as a route builds it: a status, headers and a body (bytes, or a file sent with sendfile)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    path: Path | None = None


HTML = {"Content-Type": "text/html; charset=utf-8"}


def not_found() -> Reply:
    """IIS's 404 page, as Cloudmax's server answers an unknown path or a link that is not (yet) there."""
    return Reply(404, dict(HTML), NOT_FOUND_HTML.encode())


def xml_reply(settings: EmulatorSettings, code: int, message: str, links: Sequence[str]) -> Reply:
    """The spec's XML answer ``<ROOT><ERRORCODE/><ERRORMSG/><DOWNLOADLINK/>...</ROOT>`` (one empty link if none)."""
    from xml.sax.saxutils import escape as xml_escape

    s = settings
    t_code, t_msg, t_link = (
        ("ERRORCODE", "ERRORMSG", "DOWNLOADLINK")
        if s.xml_tag_case == "upper"
        else ("ErrorCode", "ErrorMsg", "DownloadLink")
    )
    enc = "utf-16" if s.xml_utf16_declaration else "utf-8"
    lines = [
        f'<?xml version="1.0" encoding="{enc}"?>',
        f"<{s.xml_root}>",
        f"  <{t_code}>{code}</{t_code}>",
        f"  <{t_msg}>{xml_escape(message)}</{t_msg}>",
    ]
    lines += [f"  <{t_link}>{xml_escape(link)}</{t_link}>" for link in (links or [""])]
    lines.append(f"</{s.xml_root}>")
    return Reply(200, {"Content-Type": "text/xml; charset=utf-8"}, ("\r\n".join(lines) + "\r\n").encode())
