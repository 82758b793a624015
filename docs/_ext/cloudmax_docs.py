"""Sphinx extension of the cloudmax docs: writes ``_generated/catalog.md`` from the provider's report catalog.

The catalog page includes it, so the published catalog is always ``cloudmax_provider.api.catalog`` as built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_catalog(app: Any) -> None:
    """Generate ``docs/_generated/catalog.md`` (the table of :func:`cloudmax_provider.api.catalog.catalog_markdown`)."""
    from cloudmax_provider.api.catalog import catalog_markdown

    out = Path(app.srcdir) / "_generated" / "catalog.md"
    out.parent.mkdir(exist_ok=True)
    text = catalog_markdown()
    if not out.exists() or out.read_text(encoding="utf-8") != text:  # unchanged: no rebuild of the page
        out.write_text(text, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    """Register the generator to run before the sources are read."""
    app.connect("builder-inited", write_catalog)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
