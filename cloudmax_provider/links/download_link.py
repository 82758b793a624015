"""DOWNLOADLINKs: what they are, whether we may follow them, and whether their file is ready.

* A link is an http(s) URL (ResponseMode 1) or a UNC path ``\\\\server\\share\\dir\\file.csv``
  (ResponseMode 0; ``//server/share/...`` accepted too).
* Credentials stay home: no API password, cookie or auth header is ever sent to a link. Links
  whose host is not the connection's are followed only if the connection's ``allowed_link_hosts``
  extra lists it (``*.example.com`` wildcards allowed), so a poisoned answer cannot reach
  internal services. UNC links are read only through an Airflow ``samba`` connection.
* Redirects from a link (a file server handing off to a CDN) are followed, at most
  :data:`MAX_REDIRECTS` hops, each target checked like a link (http(s), an allowed host).
* Readiness of an http link comes from a ranged GET (``Range: bytes=0-4095``): 200/206 with a
  non-empty body that is not an HTML/XML page means ready; 404, 5xx, 429, an empty file mean
  "not yet"; 401/403/410 and error pages are failures.

Example::

    >>> DownloadLink.parse(r"\\\\CMXFILE01\\reports\\1\\r.csv").kind
    'unc'
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cloudmax_provider.api.body import safe_name, sniff_kind
from cloudmax_provider.api.response import parse_api_xml
from cloudmax_provider.exceptions import CloudmaxLinkError
from cloudmax_provider.links.unc import UncPath, is_unc

PROBE_RANGE = "bytes=0-4095"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class DownloadLink:
    r"""A DOWNLOADLINK: ``kind`` is ``"http"`` or ``"unc"``; ``host`` the server it names; ``unc`` the parsed
    UNC path of a ``"unc"`` link (parsed once, here: readers take it as it is).

    >>> DownloadLink.parse(r"\\CMXFILE01\reports\d\a.csv").unc.share
    'reports'
    """

    url: str
    kind: str
    host: str
    unc: UncPath | None = None

    @classmethod
    def parse(cls, link: str) -> DownloadLink:
        text = (link or "").strip()
        if is_unc(text) and not text.startswith("//http"):
            unc = UncPath.parse(text)  # CloudmaxUncPathError (a CloudmaxLinkError) naming what is wrong
            return cls(text, "unc", unc.server.lower(), unc)
        parts_ = urlsplit(text)
        if parts_.scheme.lower() in ("http", "https") and parts_.hostname:
            return cls(text, "http", parts_.hostname.lower())
        raise CloudmaxLinkError(
            f"DOWNLOADLINK {text[:200]!r} is neither an http(s) URL nor a UNC path; cannot fetch it"
        )

    @property
    def unc_path(self) -> UncPath:
        """The parsed UNC path of a ``"unc"`` link (an http link has none)."""
        if self.unc is None:
            raise CloudmaxLinkError(f"DOWNLOADLINK {self.url[:200]!r} is an http(s) URL, not a UNC path")
        return self.unc

    @property
    def filename(self) -> str:
        """The file's base name, safe to write under a prefix (:func:`~cloudmax_provider.api.body.safe_name`)."""
        path = urlsplit(self.url).path if self.kind == "http" else self.url
        return safe_name(re.split(r"[\\/]", path.rstrip("/\\"))[-1])

    def __str__(self) -> str:
        return self.url


def parse_links(links: str | Iterable[str] | Iterable[Mapping[str, object]]) -> list[DownloadLink]:
    """One link, a list of links, or a list of ``{"link": ...}`` dicts (as the sensor returns them)."""
    items = [links] if isinstance(links, str) else list(links)
    out = [DownloadLink.parse(str(i.get("link") if isinstance(i, Mapping) else i)) for i in items]
    if not out:
        raise CloudmaxLinkError("links is empty; pass at least one DOWNLOADLINK")
    return out


def check_link_allowed(link: DownloadLink, api_host: str, allowed_hosts: Iterable[str]) -> None:
    """Refuse an http link to a host that is neither the API's nor in ``allowed_link_hosts``.

    UNC links are not checked here: where they are read is decided by the samba connection.
    """
    if link.kind != "http":
        return
    patterns = [api_host.lower(), *(h.strip().lower() for h in allowed_hosts if h and h.strip())]
    if not any(fnmatch.fnmatchcase(link.host, p) for p in patterns):
        raise CloudmaxLinkError(
            f"DOWNLOADLINK host {link.host!r} is not the API host {api_host!r}; if it is trusted, add it to the "
            "connection extra 'allowed_link_hosts' (a list, wildcards like '*.itpison.com' allowed)"
        )


class LinkState(enum.StrEnum):
    READY = "ready"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)  # slots: a triggerer holds one per waiting link
class LinkProbe:
    """One check of one link: its state, the file size when known, and why."""

    link: str
    state: LinkState
    size: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"link": self.link, "state": self.state.value, "size": self.size, "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LinkProbe:
        size = data.get("size")
        return cls(
            str(data["link"]),
            LinkState(str(data["state"])),
            int(size) if isinstance(size, int) else None,
            str(data.get("message", "")),
        )


_CONTENT_RANGE_TOTAL = re.compile(r"/\s*(\d+)\s*$")


def judge_http_probe(link: str, status: int, headers: Mapping[str, str], head: bytes) -> LinkProbe:
    """Judge a ranged GET of ``link``: ``status``, response ``headers`` (case-insensitive mapping), first bytes."""
    if status in (404, 408, 409, 425, 429) or status >= 500:
        return LinkProbe(link, LinkState.PENDING, message=f"HTTP {status}: not ready yet")
    if 400 <= status < 500 and status != 416:
        return LinkProbe(link, LinkState.FAILED, message=f"HTTP {status}: the file cannot be fetched")
    if status == 416:  # range not satisfiable: the file exists but is empty
        return LinkProbe(link, LinkState.PENDING, 0, "the file is empty so far")
    if status not in (200, 206):
        return LinkProbe(link, LinkState.PENDING, message=f"HTTP {status}: not a file yet")
    size: int | None = None
    m = _CONTENT_RANGE_TOTAL.search(headers.get("Content-Range", ""))
    if status == 206 and m:
        size = int(m.group(1))
    elif status == 200 and headers.get("Content-Length", "").isdigit():
        size = int(headers["Content-Length"])
    if not head or size == 0:
        return LinkProbe(link, LinkState.PENDING, 0, "the file is empty so far")
    kind = sniff_kind(head, headers.get("Content-Type"))
    if kind == "xml":
        try:
            answer = parse_api_xml(head)
            msg = f"ErrorCode {answer.error_code}: {answer.error_msg}"
        except Exception:
            msg = "an XML page"
        return LinkProbe(
            link, LinkState.FAILED, size, f"the link answered an XML error page instead of the report ({msg})"
        )
    if kind == "html":
        return LinkProbe(link, LinkState.FAILED, size, "the link answered an HTML page instead of the report")
    return LinkProbe(link, LinkState.READY, size, "ready")
