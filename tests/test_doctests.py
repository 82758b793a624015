"""The docstring examples (``>>>``) of every module of the package run as part of ``make test``.

Each module is imported by name (``pkgutil.walk_packages``) and its examples run in its own namespace, as
``python -m doctest`` would, with the flags of the docs' doctest builder (docs/conf.py). ``__main__``
modules are skipped: importing one runs it (the emulator's starts a server).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cloudmax_provider

FLAGS = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1 | doctest.NORMALIZE_WHITESPACE
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(cloudmax_provider.__path__, "cloudmax_provider.")
    if not info.name.endswith(".__main__")
)
# Modules whose docstrings hold examples: a finder that silently found none would pass every test above.
WITH_EXAMPLES = {
    "cloudmax_provider.windows.window",
    "cloudmax_provider.windows.partitions",
    "cloudmax_provider.api.retry",
}


def _run(name: str) -> doctest.TestResults:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = _run(name)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
    if name in WITH_EXAMPLES:
        assert result.attempted > 0


def test_the_package_is_walked() -> None:
    assert set(MODULES) >= WITH_EXAMPLES
    assert "cloudmax_provider.testing.pytest_plugin" in MODULES and "cloudmax_provider.hooks.cloudmax" in MODULES
