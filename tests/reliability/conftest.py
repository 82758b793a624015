"""The reliability suite (issue 13): shared helpers and the per-group counts printed after the run.

Each group adds to :data:`FIGURES` (e.g. ``FIGURES["bad inputs refused"] += 1``); the terminal summary
prints them, so a CI log shows what was promised and checked ("52 bad inputs refused, 0 requests sent").
"""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from tests.airflow_compat import allow_direct_execute_in_this_thread

FIGURES: collections.Counter[str] = collections.Counter()

#: The 2026-11-01T00:00Z run of an "@daily" DAG (CronTriggerTimetable: an empty data interval).
RUN_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures (issue 13)")
        for name, count in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {count}")


class FakeTI:
    """Collects what a task pushes to XCom (for tasks run outside a DAG run)."""

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def task_context(params: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A task's Airflow context for the daily run of 2026-11-01 (an empty data interval, as "@daily" gives)."""
    context: dict[str, Any] = {
        "ds": RUN_DATE.to_date_string(),
        "ds_nodash": RUN_DATE.format("YYYYMMDD"),
        "logical_date": RUN_DATE,
        "data_interval_start": RUN_DATE,
        "data_interval_end": RUN_DATE,
        "dag_run": SimpleNamespace(run_after=RUN_DATE, run_id="manual__test"),
        "params": params or {},
        "ti": FakeTI(),
    }
    context.update(overrides)
    return context


def render_and_execute(task: Any, context: dict[str, Any]) -> Any:
    """What a worker does with a task: render its templated fields with Airflow's Jinja, then execute.

    A task that defers is resumed as Airflow does it: its trigger runs (here, in this process) until its
    first event, then the method it named gets that event.
    """
    import asyncio

    from airflow.providers.common.compat.sdk import TaskDeferred

    task.render_template_fields(context)
    allow_direct_execute_in_this_thread()
    resume: Any = task.execute
    kwargs: dict[str, Any] = {}
    while True:
        try:
            return resume(context, **kwargs)
        except TaskDeferred as deferred:
            event = asyncio.run(_first_event(deferred.trigger))
            resume = getattr(task, deferred.method_name)
            kwargs = {**(deferred.kwargs or {}), "event": event.payload}


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError(f"{trigger!r} ended without an event")


@pytest.fixture
def no_requests(cloudmax_emulator: Any) -> Any:
    """The emulator, checked after the test to have received no request at all."""
    yield cloudmax_emulator
    assert cloudmax_emulator.requests == [], [r.path for r in cloudmax_emulator.requests]


#: An explicit window (Asia/Taipei), so tasks run outside a DAG run ask for a known report.
WINDOW = ("2026-10-31 08:00:00", "2026-11-01 08:00:00")


def run_report(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Run a CloudmaxReportOperator's execute path (rendered, as a worker does); returns (result, XComs)."""
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    args = {"task_id": "report", "report_part_id": 21002, "launch_ids": [1225, 1116]}
    args.update(start_time=WINDOW[0], end_time=WINDOW[1], poll_interval=0.2, link_timeout=30)
    args.update(kwargs)
    context = task_context()
    result = render_and_execute(CloudmaxReportOperator(**args), context)
    return result, context["ti"].xcoms


def files_under(folder: Any) -> list[str]:
    """Every file below ``folder`` (relative names), temporary ones included."""
    from pathlib import Path

    root = Path(folder)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(autouse=True)
def _restore_secrets_masker() -> Any:
    """Leave Airflow's process-wide secrets masker as it was: the suite registers many passwords, and the
    masker joins its patterns in set order, so a registered prefix of a later test's password (say
    "demo-password" before "demo-password-1") would mask only part of it."""
    from tests.airflow_compat import secrets_masker

    masker = secrets_masker()
    patterns, replacer = set(masker.patterns), masker.replacer
    yield
    masker.patterns, masker.replacer = patterns, replacer
