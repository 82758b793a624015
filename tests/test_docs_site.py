"""The built docs site in a real browser: no broken internal link, anchor or image (``make docs`` runs it).

Debian's ``chromium`` + ``chromium-driver`` drive every page of ``docs/_build/html`` (served over HTTP on a
loopback port) through Selenium, as ``tests/integration/test_browser.py`` does for the connection form. For each page
the browser reports its element ids, its links and its images (loaded or not); every internal link must
name an existing page and, with a ``#fragment``, an id on that page; every image must have loaded; a link
leaving the site must go to a public host of the allow-list.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from tests.chromium import headless_chromium

try:
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the browser fixture skips without selenium
    WebDriverWait = None

pytestmark = [pytest.mark.docs]

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "docs" / "_build" / "html"
# Public places the docs may link to; anything else (../shared/, file://, a private host) fails.
PUBLIC_HOSTS = {
    "airflow.apache.org",
    "pypi.org",
    "www.cloudmax.com.tw",
    "keepachangelog.com",
    "semver.org",
    "iceberg.apache.org",  # Apache Iceberg's and pyiceberg's documentation (docs/lake-tables.md)
    "py.iceberg.apache.org",
}
_SCAN = """
return {
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)
       .concat(Array.from(document.querySelectorAll('a[name]')).map(e => e.name)),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  images: Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]),
};
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """``docs/_build/html`` over HTTP on a loopback port."""
    if not (SITE / "index.html").is_file():
        pytest.skip("the docs are not built: run `make docs` (it runs this test after building)")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as driver:
        yield driver


def _pages() -> list[str]:
    return sorted(
        str(p.relative_to(SITE)) for p in SITE.rglob("*.html") if not p.relative_to(SITE).parts[0].startswith("_s")
    )


def _page_of(url: str, base: str) -> str:
    """The site-relative file a same-site URL names (``index.html`` for a directory)."""
    path = unquote(urlsplit(url).path)[len(urlsplit(base).path) :]
    return path + "index.html" if path == "" or path.endswith("/") else path


def _has_anchor(browser: Any, site: str, scans: dict[str, dict[str, Any]], target: str, anchor: str) -> bool:
    """Whether ``target`` has the anchor; a page whose scan lacks it is loaded and scanned once more, waiting
    for the document to be complete (a big page, api.html, was seen scanned short on a loaded machine)."""
    if anchor in scans[target]["ids"]:
        return True
    if not scans[target].get("rescanned"):
        browser.get(site + target)
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
        scans[target] = {**browser.execute_script(_SCAN), "rescanned": True}
    return anchor in scans[target]["ids"]


def test_no_broken_link_anchor_or_image(site, browser):
    scans: dict[str, dict[str, Any]] = {}
    for page in _pages():
        browser.get(site + page)
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
        scans[page] = browser.execute_script(_SCAN)
        if not all(loaded for _src, loaded in scans[page]["images"]):  # still decoding: look once more
            time.sleep(1)
            scans[page] = browser.execute_script(_SCAN)
    assert "index.html" in scans and "howto/report.html" in scans and "api.html" in scans
    broken: list[str] = []
    outside: set[str] = set()
    checked = 0
    for page, scan in scans.items():
        for src, loaded in scan["images"]:
            checked += 1
            if not loaded:
                broken.append(f"{page}: image {src} did not load")
        for href in scan["links"]:
            url, fragment = urldefrag(href)
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and not url.startswith(site):
                outside.add(parts.hostname or url)
                continue
            if parts.scheme not in ("http", "https"):
                broken.append(f"{page}: link {href} leaves the site through {parts.scheme}:")
                continue
            checked += 1
            target = _page_of(url, site)
            if not (SITE / target).is_file():
                broken.append(f"{page}: link {href} -> no page {target}")
            elif fragment and target in scans and not _has_anchor(browser, site, scans, target, unquote(fragment)):
                broken.append(f"{page}: link {href} -> no #{fragment} on {target}")
    assert not broken, "\n".join(broken)
    assert outside <= PUBLIC_HOSTS, f"links to hosts that are not in the public allow-list: {outside - PUBLIC_HOSTS}"
    assert checked > 200, f"only {checked} links and images checked: did the scan run?"
