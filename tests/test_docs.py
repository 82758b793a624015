"""The docs cannot drift: one version everywhere, the README's catalog table = the catalog."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import cloudmax_provider
from cloudmax_provider.reports import catalog_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_one_version_number():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert declared == cloudmax_provider.__version__ == cloudmax_provider.get_provider_info()["versions"][0]
    assert released[0] == declared, "the newest CHANGELOG release must be the package's version"
    assert version("airflow-provider-cloudmax") == declared, "reinstall (make env) after changing the version"


def test_readme_catalog_table_is_the_catalog():
    block = re.search(r"<!-- catalog:start[^>]*-->\n(.*?)<!-- catalog:end -->", README, re.S)
    assert block, "README.md lost its <!-- catalog:start --> ... <!-- catalog:end --> markers"
    assert block.group(1) == catalog_markdown(), "regenerate it: python -m cloudmax_provider.reports"


def test_readme_starts_with_demo_and_test_and_shows_the_form():
    quick_start = README[: README.index("## What is in the package")]
    assert "make demo" in quick_start and "make test" in quick_start
    assert "docs/connection-form.png" in README and (ROOT / "docs" / "connection-form.png").is_file()
