"""pytest fixtures for the Report.aspx emulator, opt-in.

The provider registers no ``pytest11`` entry point, so installing it loads nothing into anyone's pytest
runs. A test suite that wants the fixtures names the plugin, in its top-level ``conftest.py``::

    pytest_plugins = ["cloudmax_provider.testing.pytest_plugin"]

or on the command line (``pytest -p cloudmax_provider.testing.pytest_plugin``, also in ``addopts``).

* ``cloudmax_emulator_server`` (session): one running :class:`~cloudmax_provider.testing.emulator.CloudmaxEmulator`.
* ``cloudmax_emulator`` (function): the same server after ``reset()`` (default settings, empty request
  log, no prepared link files); it is reset again after the test.

The emulator (and aiohttp) is imported inside the fixture, so loading this plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cloudmax_provider.testing.emulator import CloudmaxEmulator

__all__ = ["cloudmax_emulator", "cloudmax_emulator_server"]


@pytest.fixture(scope="session")
def cloudmax_emulator_server() -> Iterator[CloudmaxEmulator]:
    """One emulator for the whole session, listening on 127.0.0.1 on a free port."""
    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    emu = CloudmaxEmulator().start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def cloudmax_emulator(cloudmax_emulator_server: CloudmaxEmulator) -> Iterator[CloudmaxEmulator]:
    """The session emulator, reset before (and after) the test."""
    cloudmax_emulator_server.reset()
    try:
        yield cloudmax_emulator_server
    finally:
        cloudmax_emulator_server.reset()
