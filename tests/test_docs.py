"""The docs cannot drift: one version everywhere, the README's catalog table = the catalog."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import cloudmax_provider
from cloudmax_provider.api.catalog import catalog_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_one_version_number():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert declared == cloudmax_provider.__version__ == cloudmax_provider.get_provider_info()["versions"][0]
    assert released[0] == declared, "the newest CHANGELOG release must be the package's version"
    assert version("airflow-provider-cloudmax") == declared, "reinstall (make env) after changing the version"


def test_docs_catalog_is_generated_from_the_catalog(tmp_path):
    """docs/_ext/cloudmax_docs.py writes catalog_markdown() where docs/catalog.md includes it."""
    import sys
    from types import SimpleNamespace

    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from cloudmax_docs import write_catalog
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    write_catalog(SimpleNamespace(srcdir=str(tmp_path)))
    assert (tmp_path / "_generated" / "catalog.md").read_text(encoding="utf-8") == catalog_markdown()
    assert "```{include} _generated/catalog.md" in (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")


def test_readme_starts_with_demo_and_test_and_links_only_what_exists():
    first_block = README[README.index("```bash") : README.index("```", README.index("```bash") + 3)]
    assert README.index("```bash") < README.index("\n## "), "the two commands come before any section"
    assert "make demo" in first_block and "make test" in first_block
    assert len(README.splitlines()) < 90, "the README stays short: the long content is in docs/"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith("https://"):
            assert re.match(r"https://(www\.cloudmax\.com\.tw|pypi\.org|airflow\.apache\.org)/", target), target
        else:
            assert (ROOT / target).exists(), f"README links {target}, which is not in the repository"
    assert "shared/" not in README


def test_readme_example_builds_a_dag():
    """The README's example is real code: it builds a DAG whose task passes the parse-time checks."""
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    from airflow.providers.common.compat.sdk import DAG

    assert isinstance(namespace["dag"], DAG) and namespace["dag"].task_ids == ["opens"]


def test_docs_code_is_tested_or_included():
    """Python in the docs pages is a doctest/testcode block (make docs runs them) or a literalinclude."""
    pages = list((ROOT / "docs").rglob("*.md"))
    assert len(pages) > 15
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "```python" not in text and "```py\n" not in text, f"{page}: untested python block"
        assert "shared/spec" not in text, f"{page} links the spec outside the repository"
