"""Fixtures of the deployment tests: one wheel, one venv, one LocalExecutor deployment per session.

The deployment runs the emulator as a process of the deployed venv (``cloudmax_default``), plus an
in-process emulator the reliability tests steer (``cloudmax_e2e``: big reports, links made ready on cue).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ARTIFACTS, Deployment, build_wheel, conn_json, deployment_venv


@pytest.fixture(scope="session")
def e2e_wheel() -> Path:
    return build_wheel()


@pytest.fixture(scope="session")
def e2e_venv(e2e_wheel: Path) -> Path:
    return deployment_venv(e2e_wheel)


@pytest.fixture(scope="session")
def control_emulator() -> Iterator[Any]:
    """An emulator in the test process, so tests can change its behaviour while Airflow uses it."""
    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    with CloudmaxEmulator() as emu:
        yield emu


@pytest.fixture(scope="session")
def deployment(e2e_venv: Path, control_emulator: Any) -> Iterator[Deployment]:
    """Emulator + api-server, scheduler, dag-processor, triggerer (LocalExecutor, SQLite) from the wheel."""
    dep = Deployment(e2e_venv, artifacts=ARTIFACTS / "standalone")
    try:
        # links answer 404 for 20 s: the example's deferrable sensor has to defer, not find them at once
        emulator = dep.start_emulator("--link-ready-after", "20")
        dep.emulator_url = emulator  # type: ignore[attr-defined]
        dep.start_airflow(
            connections={
                "cloudmax_default": conn_json(emulator),
                "cloudmax_e2e": conn_json(control_emulator.base_url),
            }
        )
        yield dep
    finally:
        dep.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        print(f"\nE2E artefacts (component logs, task logs): {ARTIFACTS}", file=sys.stderr)
        report.sections.append(("e2e artefacts", str(ARTIFACTS)))
