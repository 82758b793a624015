"""Sphinx configuration of the airflow-provider-cloudmax docs (``make docs``: HTML and doctest, warnings as errors).

Laid out as Apache Airflow's own providers are: connection and operator how-tos whose code is included
from the tested example DAGs, an API reference from the docstrings (autodoc), the changelog. Pages are
MyST Markdown; the report catalog is generated from ``cloudmax_provider/api/catalog.py`` at build time.
"""

from __future__ import annotations

import doctest
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

# autodoc imports the provider, which imports Airflow: give it a throw-away home, never ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cloudmax-docs-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import cloudmax_provider  # noqa: E402

project = "airflow-provider-cloudmax"
author = "airflow-provider-cloudmax contributors"
copyright = "the airflow-provider-cloudmax contributors, Apache-2.0"
release = version = cloudmax_provider.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    # no sphinx.ext.viewcode: its [source] pages' anchors depended on the order pages were read (re-exported
    # names; a link to a missing anchor now and then in the link check); the API reference links to nothing
    # it cannot keep
    "cloudmax_docs",  # docs/_ext/cloudmax_docs.py: the report catalog, generated from reports.py
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links to headings down to ###
nitpicky = False
suppress_warnings = ["myst.xref_missing"] if os.environ.get("CLOUDMAX_DOCS_LAX") else []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True, "undoc-members": False}
autodoc_mock_imports: list[str] = []

# Docstring examples run as in their module (as `python -m doctest` would): the documented modules' names are
# in the namespace of every doctest group.
doctest_global_setup = """
import importlib as _importlib
import os as _os
import tempfile as _tempfile

_os.environ.setdefault("AIRFLOW_HOME", _tempfile.mkdtemp(prefix="cloudmax-doctest-"))
# the names of every module whose docstrings hold examples (tests/test_doctests.py runs each in its own namespace)
for _name in ("exceptions", "api.catalog", "api.request", "api.body", "api.response", "api.retry",
              "windows.partitions", "windows.window", "links.download_link", "links.readiness", "links.unc",
              "utils.templating", "utils.compat", "landing.destinations", "windows.chunks", "hooks.cloudmax",
              "testing.emulator.cli", "formats.encoding", "formats.row_counter", "formats.cells",
              "formats.arrow_typing"):
    _module = _importlib.import_module("cloudmax_provider." + _name)
    globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})
"""

html_theme = "alabaster"
html_title = f"airflow-provider-cloudmax {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Apache Airflow provider for the Cloudmax (iTPison) Report.aspx API",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}

# Exception messages are compared too (Sphinx's default ignores their detail).
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1 | doctest.NORMALIZE_WHITESPACE
html_show_sphinx = False  # no "Powered by" links leaving the site


# A type hint of a builtin (``bytes``, ``str``...) is looked up by suffix when no object has that exact name, and
# ``bytes`` then matched the documented ``Landed.bytes`` field ("more than one target
# found"; with one such field it linked the builtin to the field). Builtins are never our objects: no suffix
# search for them, so they stay plain text.
_BUILTIN_TYPES = {"bytes", "str", "int", "float", "bool", "dict", "list", "tuple", "set", "object", "type", "None"}


def _no_suffix_match_for_builtins() -> None:
    from sphinx.domains.python import PythonDomain

    find_obj = PythonDomain.find_obj

    def find_obj_not_builtins(self, env, modname, classname, name, type, searchmode=0):
        if searchmode == 1 and name in _BUILTIN_TYPES:
            return []
        return find_obj(self, env, modname, classname, name, type, searchmode)

    PythonDomain.find_obj = find_obj_not_builtins  # type: ignore[method-assign]


_no_suffix_match_for_builtins()
