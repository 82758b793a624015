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

import difflib
import itertools
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudmax_provider.windows.partitions import PartitionGrid

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
    grid: PartitionGrid | None = None,
) -> tuple[datetime, datetime, str]:
    """``(start, end, why)`` of the report a run asks for when no explicit start/end is given.

    With a partition ``grid`` (what the operators use when the destination names partitions), a run without
    a data interval takes the last complete partition(s) covering ``window`` before its logical date or
    ``run_after`` instead of the ``window`` ending there, and a data interval is widened to the whole
    partitions it touches (:mod:`cloudmax_provider.windows.partitions`)::

        >>> from cloudmax_provider.windows.partitions import PartitionGrid
        >>> trigger = datetime(2026, 11, 28, 6, 32, 15, tzinfo=PartitionGrid.of("day", "UTC").tz)
        >>> start, end, _ = report_window(None, None, None, trigger, grid=PartitionGrid.of("day", "Asia/Taipei"))
        >>> (start.isoformat(), end.isoformat())
        ('2026-11-27T00:00:00+08:00', '2026-11-28T00:00:00+08:00')

    >>> from datetime import datetime, timedelta
    >>> manual = datetime(2026, 11, 25, 3, 0)  # `airflow dags trigger -l 2026-11-20` of an "@daily" DAG
    >>> start, end, why = report_window(manual, manual, datetime(2026, 11, 20), manual, timedelta(days=1))
    >>> (start.isoformat(), end.isoformat())
    ('2026-11-19T00:00:00', '2026-11-20T00:00:00')
    """
    from cloudmax_provider.windows.partitions import check_positive_timedelta

    check_positive_timedelta(window, "window")
    if data_interval_start is not None and data_interval_end is not None and data_interval_end > data_interval_start:
        if grid is None:
            return data_interval_start, data_interval_end, "the run's data interval"
        start, end = grid.widen(data_interval_start, data_interval_end)
        widened = "" if (start, end) == (data_interval_start, data_interval_end) else ", widened to whole partitions"
        return start, end, f"the run's data interval {data_interval_start} .. {data_interval_end}{widened}"
    if grid is not None:
        for name, when in (("logical date", logical_date), ("run_after", run_after)):
            if when is not None:
                start, end = grid.last_complete(when, window)
                why = "the run has no data interval" if name == "logical date" else "the run has no logical date"
                return start, end, f"{why}: the last complete {grid.describe()} partition(s) before its {name} {when}"
    elif logical_date is not None:
        why = "the data interval is empty (a CronTriggerTimetable such as '@daily', or a manual run)"
        return (
            logical_date - window,
            logical_date,
            f"{why}: window={human_duration(window)} ending at the logical date {logical_date}",
        )
    elif run_after is not None:
        why = "the run has no logical date (a trigger without one, or an asset-triggered run)"
        return run_after - window, run_after, f"{why}: window={human_duration(window)} ending at run_after {run_after}"
    raise ValueError("a run needs a data interval, a logical date or run_after to have a report window")


def report_window_of(
    context: Any, window: timedelta = timedelta(days=1), grid: PartitionGrid | None = None
) -> tuple[datetime, datetime, str]:
    """:func:`report_window` of a task's Airflow context (keys absent when the run has no logical date).

    Usable in a ``@task``; pass the grid of the operator that lands the report so both agree::

        @task
        def request_links(launch_id: int, **context) -> list[str]:
            hook = CloudmaxHook()
            start, end, _ = report_window_of(context, grid=PartitionGrid.of("day", hook.settings.timezone))
    """
    dag_run = context.get("dag_run")
    return report_window(
        context.get("data_interval_start"),
        context.get("data_interval_end"),
        context.get("logical_date"),
        context.get("run_after") or getattr(dag_run, "run_after", None),
        window,
        grid,
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


#: Jinja's own markup (``{{ ... }}``, ``{% ... %}``, ``{# ... #}``), which is not ours to check.
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_BRACED = re.compile(r"\{[^{}]*\}")
_NAMES = ("window_start", "window_end")


def check_placeholders(template: Any, field_name: str = "destination") -> None:
    """Refuse a ``{...}`` in ``template`` that is not ``{window_start[:fmt]}`` / ``{window_end[:fmt]}``
    (a typo would otherwise be written literally, as one object overwritten by every run), and a stray
    ``{`` or ``}``. Jinja's ``{{ ... }}`` is skipped: call this again on the rendered text.

    >>> check_placeholders("s3://lake/{{ var.value.x }}/{window_start:%Y-%m-%d}.csv")
    >>> check_placeholders("s3://lake/{window_strat:%Y-%m-%d}.csv")
    Traceback (most recent call last):
    ...
    cloudmax_provider.exceptions.CloudmaxConfigError: destination='s3://lake/{window_strat:%Y-%m-%d}.csv': \
{window_strat:%Y-%m-%d} is not a placeholder; did you mean {window_start:%Y-%m-%d}? ...
    """
    if not isinstance(template, str):
        return
    from cloudmax_provider.exceptions import CloudmaxConfigError

    text = _JINJA.sub("", template)
    for match in _BRACED.finditer(text):
        if WINDOW_PLACEHOLDER.fullmatch(match.group(0)):
            continue
        name, sep, fmt = match.group(0)[1:-1].partition(":")
        close = difflib.get_close_matches(name.strip(), _NAMES, n=1, cutoff=0.6)
        hint = f"did you mean {{{close[0]}{sep}{fmt}}}? " if close else ""
        raise CloudmaxConfigError(
            f"{field_name}={template!r}: {match.group(0)} is not a placeholder; {hint}the placeholders are "
            "{window_start:<strftime>} and {window_end:<strftime>} (the window requested, in the account's "
            "timezone), e.g. {window_start:%Y-%m-%d}"
        )
    rest = _BRACED.sub("", text)
    if "{" in rest or "}" in rest:
        raise CloudmaxConfigError(
            f"{field_name}={template!r} has an unmatched '{{' or '}}'; write placeholders whole, e.g. "
            "{window_start:%Y-%m-%d}"
        )


#: Consecutive partition starts of each grid unit, across month and year ends, to tell whether a
#: destination's placeholders give every partition a name of its own.
_SAMPLES = {
    "hour": [datetime(2026, 12, 31, h) for h in (22, 23)] + [datetime(2027, 1, 1, 0)],
    "day": [datetime(2026, 1, d) for d in (30, 31)]
    + [datetime(2026, 2, 1), datetime(2026, 12, 31), datetime(2027, 1, 1)],
    "month": [datetime(2026, m, 1) for m in (1, 2, 12)] + [datetime(2027, 1, 1)],
}


def check_names_partitions(template: Any, unit: str, field_name: str = "destination") -> None:
    """Refuse placeholders that name two partitions of the grid alike (``{window_start:%Y-%m}`` with a day
    grid would land a month's days one over the other).

    >>> check_names_partitions("s3://lake/{window_start:%Y-%m-%d}.csv", "day")
    """
    if not has_window_placeholders(template):
        return
    from cloudmax_provider.exceptions import CloudmaxConfigError
    from cloudmax_provider.windows.partitions import PartitionGrid

    grid = PartitionGrid.of(unit, "UTC")
    starts = [s.replace(tzinfo=grid.tz) for s in _SAMPLES[unit]]
    names = [fill_window_placeholders(_JINJA.sub("", str(template)), s, grid.next(s)) for s in starts]
    for (first, a), (second, b) in itertools.pairwise(zip(starts, names, strict=True)):
        if a == b and grid.next(first) == second:
            raise CloudmaxConfigError(
                f"{field_name}={template!r} names the {unit} partitions starting {first:%Y-%m-%d %H:%M} and "
                f"{second:%Y-%m-%d %H:%M} alike ({a!r}): each {unit} needs an object of its own; put the "
                f"whole {unit} in the name, e.g. {_EXAMPLE[unit]}, or set partition= to a coarser grid"
            )


_EXAMPLE = {"hour": "{window_start:%Y-%m-%dT%H}", "day": "{window_start:%Y-%m-%d}", "month": "{window_start:%Y-%m}"}


__all__ = [
    "check_names_partitions",
    "check_placeholders",
    "fill_window_placeholders",
    "has_window_placeholders",
    "report_window",
    "report_window_of",
]
