"""``python -m cloudmax_provider.probe``: what a Cloudmax server does, and what to set for it.

Example::

    python -m cloudmax_provider.probe --conn-id cloudmax_default --launch-id 1234 --record ./capture

Prints one table (``--json``: the same as data); exit status 0 when everything is handled, 1 when
something is not (its row says what to set), 2 for a bad argument or connection.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from cloudmax_provider.probe.checks import DEFAULT_REPORTS, ProbeOptions, probe
from cloudmax_provider.probe.verdicts import STATUS_WORDS, Row, judge

__all__ = [
    "ARGUMENTS",
    "ProbeResult",
    "argument_error",
    "main",
    "parse_args",
    "render_table",
    "run_from_args",
    "run_probe",
]


@dataclass
class ProbeResult:
    """The table, the number of requests sent, why the probe stopped early ("" if it did not)."""

    rows: list[Row]
    requests: int
    stopped: str = ""

    @property
    def exit_status(self) -> int:
        return 1 if any(row.failed for row in self.rows) else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": [row.as_dict() for row in self.rows],
            "requests": self.requests,
            "stopped": self.stopped,
            "exit_status": self.exit_status,
        }


def run_probe(
    conn_id: str,
    options: ProbeOptions,
    *,
    max_requests: int = 40,
    interval: float = 1.0,
    record: str | None = None,
) -> ProbeResult:
    """Probe the server of ``conn_id``; with ``record``, keep a sanitized capture there.

    >>> run_probe("cloudmax_default", ProbeOptions(launch_ids=(1234,)), interval=0).exit_status  # doctest: +SKIP
    0
    """
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.probe.session import ProbeSession

    hook = CloudmaxHook(conn_id)
    session = ProbeSession(hook, max_requests=max_requests, interval=interval, record=record)
    found = probe(session, options)
    times = [s.elapsed for s in session.seen if s.elapsed]
    rows = judge(found, hook.settings, options, times)
    hide = session.pseudo.credentials  # the table is the user's: hosts stay, credentials never
    result = ProbeResult([_sanitized(r, hide) for r in rows], session.sent, hide(found.stopped))
    capture = ProbeResult([_sanitized(r, session.pseudo.text) for r in rows], session.sent, result.stopped)
    session.save({"made_by": "python -m cloudmax_provider.probe", "table": capture.as_dict()})
    return result


def _sanitized(row: Row, clean: Callable[[str], str]) -> Row:
    return Row(clean(row.check), clean(row.seen), clean(row.verdict), row.status, clean(row.fix))


def render_table(result: ProbeResult, width: int = 132) -> str:
    """The table as text: check | what the server did | verdict | what to set."""
    heads = ("check", "server did", "verdict", "set")
    cols = [[r.check, r.seen, _verdict(r), r.fix or "-"] for r in result.rows]
    widths = [20, 38, 32, max(24, width - 20 - 38 - 32 - 9)]
    lines = [
        " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip(),
        "-+-".join("-" * w for w in widths),
    ]
    for cells in cols:
        wrapped = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(cells, widths, strict=True)]
        for i in range(max(len(w) for w in wrapped)):
            parts = [(w[i] if i < len(w) else "").ljust(n) for w, n in zip(wrapped, widths, strict=True)]
            lines.append(" | ".join(parts).rstrip())
    failed = [r.check for r in result.rows if r.failed]
    tail = f"{result.requests} request(s) sent. "
    tail += f"Not handled: {', '.join(failed)} (set what the row says)." if failed else "Everything is handled."
    if result.stopped:
        tail += f" Stopped: {result.stopped}."
    return "\n".join([*lines, "", tail])


def _verdict(row: Row) -> str:
    word = STATUS_WORDS[row.status]
    return row.verdict if row.verdict.startswith(word) else f"{word}: {row.verdict}"


def _report_id(value: str) -> int:
    from cloudmax_provider.api.catalog import get_report_part

    try:
        return get_report_part(value).id
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: type) -> Any:
    def parse(value: str) -> Any:
        number = kind(value)
        if number < 0:
            raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
        return number

    return parse


#: The command line's arguments, as (flags, argparse keywords): ``python -m cloudmax_provider.probe`` and
#: ``airflow cloudmax probe`` (Airflow 3.3+, :mod:`cloudmax_provider.probe.airflow_cli`) read the same ones.
ARGUMENTS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--conn-id",), {"default": "cloudmax_default", "help": "the cloudmax connection (default cloudmax_default)"}),
    (
        ("--launch-id",),
        {
            "type": int,
            "action": "append",
            "required": True,
            "help": "a LaunchID of a recent campaign (repeatable: several show split links)",
        },
    ),
    (
        ("--report-part-id",),
        {
            "type": _report_id,
            "action": "append",
            "help": f"a ReportPartID or slug to ask (repeatable; default {', '.join(map(str, DEFAULT_REPORTS))})",
        },
    ),
    (("--days",), {"type": _positive(int), "default": 1, "help": "the window: the last N whole days (default 1)"}),
    (("--max-requests",), {"type": _positive(int), "default": 40, "help": "requests at most (default 40)"}),
    (("--interval",), {"type": _positive(float), "default": 1.0, "help": "seconds between requests (default 1)"}),
    (("--link-wait",), {"type": _positive(float), "default": 60.0, "help": "seconds to wait for a link (default 60)"}),
    (("--link-poll",), {"type": _positive(float), "default": 2.0, "help": "seconds between link GETs (default 2)"}),
    (("--slow-after",), {"type": _positive(float), "default": 10.0, "help": "an answer slower is slow (default 10)"}),
    (
        ("--record",),
        {"metavar": "DIR", "help": "keep a sanitized capture there (for a bug report or --replay)"},
    ),
    (("--json",), {"action": "store_true", "help": "print the table as JSON"}),
)
DESCRIPTION = "Ask a Cloudmax server a few read-only questions and say what to set for it."


def argument_error(args: argparse.Namespace) -> str | None:
    """What is wrong with parsed arguments beyond each one's type, or None."""
    if len(args.launch_id) != len(set(args.launch_id)) or min(args.launch_id) <= 0:
        return "--launch-id: give each positive LaunchID once"
    if args.report_part_id and len(args.report_part_id) > 5:
        return "--report-part-id: at most 5 reports per probe (the requests are bounded)"
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m cloudmax_provider.probe", description=DESCRIPTION)
    for flags, kwargs in ARGUMENTS:
        ap.add_argument(*flags, **kwargs)
    args = ap.parse_args(argv)
    if error := argument_error(args):
        ap.error(error)
    return args


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the probe from the command line; returns the exit status."""
    return run_from_args(parse_args(argv), out)


def run_from_args(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the probe the parsed arguments ask for, print its table; returns the exit status."""
    from airflow.exceptions import AirflowNotFoundException

    from cloudmax_provider.exceptions import CloudmaxConfigError

    out = out or sys.stdout
    options = ProbeOptions(
        launch_ids=tuple(args.launch_id),
        report_ids=tuple(dict.fromkeys(args.report_part_id or DEFAULT_REPORTS)),
        days=max(1, args.days),
        link_wait=args.link_wait,
        link_poll=args.link_poll,
        slow_after=args.slow_after,
    )
    try:
        result = run_probe(
            args.conn_id, options, max_requests=args.max_requests, interval=args.interval, record=args.record
        )
    except (CloudmaxConfigError, AirflowNotFoundException) as exc:
        print(f"error: --conn-id {args.conn_id}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=1, ensure_ascii=False) if args.json else render_table(result), file=out)
    if args.record:
        print(f"Capture kept in {args.record} (sanitized: check it before you share it).", file=sys.stderr)
    return result.exit_status
