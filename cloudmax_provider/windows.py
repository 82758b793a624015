"""The report window of a DAG run, and destination names filled from it (pure; no Airflow import).

One rule for every run type (:func:`report_window`):

1. a **non-empty data interval** wins (``CronDataIntervalTimetable``/timedelta schedules, backfills of
   them, an API trigger that gives ``data_interval_start``/``_end``);
2. otherwise the window is ``window`` long and **ends at the logical date** when the run has one
   (``"@daily"`` = CronTriggerTimetable, scheduled or backfilled; ``airflow dags trigger -l DATE``);
3. otherwise it **ends at the run's run_after** (a CLI/API/UI trigger without a logical date, an
   asset-triggered run: Airflow 3 gives those no logical date and no data interval).

So ``airflow dags trigger -l 2026-11-20`` of an ``"@daily"`` DAG reports 2026-11-19 .. 2026-11-20, exactly as
the scheduled run of 2026-11-20 does (Airflow infers that manual run's data interval from the trigger
time, and for a CronTriggerTimetable it is empty: the logical date is what the user asked for).

Destinations are named by the window actually requested (:func:`fill_window_placeholders`)::

    >>> from datetime import datetime
    >>> fill_window_placeholders("s3://lake/opens/{window_start:%Y-%m-%d}.csv",
    ...                          datetime(2026, 10, 31, 8), datetime(2026, 11, 1, 8))
    's3://lake/opens/2026-10-31.csv'
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

#: ``{window_start}``, ``{window_end}``, optionally with a strftime format: ``{window_start:%Y-%m-%d}``.
WINDOW_PLACEHOLDER = re.compile(r"\{(window_start|window_end)(?::([^{}]*))?\}")


def human_duration(value: timedelta) -> str:
    """A duration as people write it, for logs: ``1 day``, ``6 h``, ``1 day 6 h``, ``90 min``, ``2.5 s``.

    >>> human_duration(timedelta(days=1)), human_duration(timedelta(hours=6)), human_duration(timedelta(days=7))
    ('1 day', '6 h', '7 days')
    >>> human_duration(timedelta(days=1, hours=6, minutes=30)), human_duration(timedelta(seconds=2.5))
    ('1 day 6 h 30 min', '2.5 s')
    >>> human_duration(timedelta(0)), human_duration(-timedelta(hours=1))
    ('0 s', '-1 h')
    """
    if value < timedelta(0):
        return "-" + human_duration(-value)
    days, rest = value.days, value.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    exact = seconds + value.microseconds / 1e6
    if exact or not parts:
        parts.append(f"{exact:g} s")
    return " ".join(parts)


def report_window(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    logical_date: datetime | None,
    run_after: datetime | None,
    window: timedelta = timedelta(days=1),
) -> tuple[datetime, datetime, str]:
    """``(start, end, why)`` of the report a run asks for when no explicit start/end is given.

    >>> from datetime import datetime, timedelta
    >>> manual = datetime(2026, 11, 25, 3, 0)  # `airflow dags trigger -l 2026-11-20` of an "@daily" DAG
    >>> start, end, why = report_window(manual, manual, datetime(2026, 11, 20), manual, timedelta(days=1))
    >>> (start.isoformat(), end.isoformat())
    ('2026-11-19T00:00:00', '2026-11-20T00:00:00')
    """
    if window <= timedelta(0):
        raise ValueError(f"window={window!r} must be a positive timedelta, e.g. timedelta(days=1)")
    if data_interval_start is not None and data_interval_end is not None and data_interval_end > data_interval_start:
        return data_interval_start, data_interval_end, "the run's data interval"
    if logical_date is not None:
        why = "the data interval is empty (a CronTriggerTimetable such as '@daily', or a manual run)"
        return (
            logical_date - window,
            logical_date,
            f"{why}: window={human_duration(window)} ending at the logical date {logical_date}",
        )
    if run_after is not None:
        why = "the run has no logical date (a trigger without one, or an asset-triggered run)"
        return run_after - window, run_after, f"{why}: window={human_duration(window)} ending at run_after {run_after}"
    raise ValueError("a run needs a data interval, a logical date or run_after to have a report window")


def report_window_of(context: Any, window: timedelta = timedelta(days=1)) -> tuple[datetime, datetime, str]:
    """:func:`report_window` of a task's Airflow context (keys absent when the run has no logical date).

    Usable in a ``@task``::

        @task
        def request_links(launch_id: int, **context) -> list[str]:
            start, end, _ = report_window_of(context)
    """
    dag_run = context.get("dag_run")
    return report_window(
        context.get("data_interval_start"),
        context.get("data_interval_end"),
        context.get("logical_date"),
        getattr(dag_run, "run_after", None),
        window,
    )


def fill_window_placeholders(template: str, start: datetime, end: datetime) -> str:
    """Replace ``{window_start[:fmt]}`` / ``{window_end[:fmt]}`` (strftime ``fmt``; ISO-8601 without one).

    Other braces are left alone. Run after Jinja: ``{{ ... }}`` is Jinja's, ``{window_start}`` ours.
    """
    values = {"window_start": start, "window_end": end}

    def fill(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        fmt = match.group(2)
        return value.isoformat() if not fmt else value.strftime(fmt)

    return WINDOW_PLACEHOLDER.sub(fill, template)


def has_window_placeholders(value: Any) -> bool:
    return isinstance(value, str) and WINDOW_PLACEHOLDER.search(value) is not None


__all__ = ["fill_window_placeholders", "has_window_placeholders", "report_window", "report_window_of"]
