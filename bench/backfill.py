"""A 90-day chunked backfill of a small report (``chunk=True``, one task) against a ``curl`` loop, in the same run.

Run ``.venv/bin/python bench/backfill.py`` (3 rounds) or ``--quick`` (1 round); ``make bench`` and
``make bench-quick`` run it after ``bench/run.py``. The parent starts the bundled Report.aspx emulator with a fixed
per-request ``latency`` (a real server works seconds on a report: the backfill is request-bound, not byte-bound)
and, in turns, each round:

* **curl loop** (the baseline): the 90 requests one after another, one ``curl`` process per request as a shell loop
  would (the provider's exact POST form on stdin, the body written to a file), timed from the first to the last;
* **sequential**: ``landing.land.land_chunks`` over the 90 daily partitions with ``max_concurrent=1`` (the
  operator's default), in a fresh child process (this file with ``--child``), timed around the call only
  (imports, the connection and the first ``ObjectStoragePath`` use are set-up, as in ``bench/run.py``);
* **4 concurrent**: the same with ``max_concurrent=4`` (``max_concurrent_requests=4``);
* **lookback sequential** / **lookback 4 concurrent**: a later run (its own run id, so its own manifest) whose
  ``lookback`` re-lands the 89 partitions before its own over the objects the sequential / concurrent case landed
  (``count_before=89``: each object's rows before are looked up, then it is replaced whole).

Each provider case writes its 90 objects and its resume manifest (rewritten after every partition) to a local
directory, as the operator does. The emulator counts the requests and the most in flight at once. Goals
(PASS/MISS, medians of the rounds): sequential <= 1.2x the curl loop; 4 concurrent <= 0.4x sequential;
the same two for the lookback re-landing. Printed and
merged into ``.bench/results.json`` under ``"backfill"``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/'s modules (s3, rss, ...) must not shadow top-level names
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from bench.common import run_script_child

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results.json"
CONN_ID = "cloudmax_bench_backfill"
REPORT_PART_ID = 21002  # click details: a small report (10 rows a day for two LaunchIDs)
LAUNCH_IDS = [7, 8]
FIRST_DAY = "2026-08-01"
LOGIN, PASSWORD = "bench", "bench-password"
GOALS = {
    "sequential vs curl loop": 1.2,
    "4 concurrent vs sequential": 0.4,
    "lookback sequential vs curl loop": 1.2,
    "lookback 4 concurrent vs lookback sequential": 0.4,
}


def _days(count: int) -> list[tuple[datetime, datetime]]:
    from zoneinfo import ZoneInfo

    first = datetime.fromisoformat(FIRST_DAY).replace(tzinfo=ZoneInfo("Asia/Taipei"))
    return [(first + timedelta(days=d), first + timedelta(days=d + 1)) for d in range(count)]


# ==== child side ================================================================================================


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """``land_chunks`` over ``spec["days"]`` daily partitions with ``spec["workers"]``; seconds of the call."""
    import logging
    from types import SimpleNamespace

    logging.basicConfig(level=logging.WARNING)
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from cloudmax_provider.formats.writers import OutputFormat
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_chunks
    from cloudmax_provider.windows.chunks import chunk_object_name

    days = _days(spec["days"])
    hook = CloudmaxHook(CONN_ID)
    request = hook.build_request(REPORT_PART_ID, LAUNCH_IDS, days[0][0], days[-1][1], response_mode=3)
    prefix = Path(spec["dir"]).as_uri() + "/"
    warm = ObjectStoragePath(prefix + ".warm")
    warm.write_bytes(b"x")  # Airflow's first ObjectStoragePath use loads provider filesystems: set-up
    warm.unlink()
    context = {"ti": SimpleNamespace(dag_id="bench", task_id="backfill", map_index=-1), "run_id": spec["label"]}
    t0 = time.perf_counter()
    landed = land_chunks(
        context,  # type: ignore[arg-type]  # land_chunks reads only ti's ids and run_id (the manifest's name)
        hook,
        request,
        days,
        lambda s, e: prefix + chunk_object_name(s, e, "csv"),
        None,
        "utf-8",
        OutputFormat(),
        folder=prefix,
        max_concurrent=spec["workers"],
        count_before=spec.get("count_before", 0),
    )
    seconds = time.perf_counter() - t0
    relanded = sum("rows_before" in e for e in landed)
    return {"seconds": seconds, "objects": len(landed), "rows": sum(e["rows"] for e in landed), "relanded": relanded}


# ==== parent side ===============================================================================================


def curl_loop(emu: Any, days: list[tuple[datetime, datetime]], out: Path) -> dict[str, Any]:
    """The 90 requests with one ``curl`` process each, one after another; the password on stdin."""
    from urllib.parse import urlencode

    from cloudmax_provider.api.request import Credentials, build_report_request, encode_request

    bodies = []
    for start, end in days:
        request = build_report_request(REPORT_PART_ID, LAUNCH_IDS, start, end, timezone="Asia/Taipei", response_mode=3)
        wire = encode_request(emu.endpoint_url, request.fields(), Credentials(LOGIN, PASSWORD))
        bodies.append(urlencode(wire.data or ()).encode())
    out.mkdir()
    t0 = time.perf_counter()
    for n, body in enumerate(bodies):
        target = out / f"{n:03d}.csv"
        cmd = ["curl", "-sS", "--fail", "-X", "POST", "--data-binary", "@-", "-o", str(target), emu.endpoint_url]
        subprocess.run(cmd, input=body, check=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "objects": len(list(out.glob("*.csv")))}


def one_round(emu: Any, env: dict[str, str], work: Path, days: int, workers: int, n: int) -> dict[str, Any]:
    """curl loop, sequential, concurrent, then the lookback re-landing of each; each with the emulator's counts."""
    figures: dict[str, Any] = {}
    cases = [
        ("curl loop", None, "curl"),
        ("sequential", 1, "seq"),
        (f"{workers} concurrent", workers, "conc"),
        ("lookback sequential", 1, "seq"),
        (f"lookback {workers} concurrent", workers, "conc"),
    ]
    for name, threads, folder in cases:
        emu.clear_log()
        target = work / f"round{n}-{folder}"
        if threads is None:
            fig = curl_loop(emu, _days(days), target)
        else:
            target.mkdir(exist_ok=True)  # a lookback case re-lands over its first run's objects
            relands = days - 1 if name.startswith("lookback") else 0
            label = f"round{n}-{name.replace(' ', '-')}"
            spec = {"days": days, "workers": threads, "dir": str(target), "label": label, "count_before": relands}
            fig = run_script_child(Path(__file__).resolve(), spec, env, f"backfill {label}")
        fig.update(requests=len(emu.api_requests), max_in_flight=emu.max_in_flight)
        assert fig["objects"] == fig["requests"] == days, (name, fig)
        assert fig.get("relanded", 0) == (days - 1 if name.startswith("lookback") else 0), (name, fig)
        figures[name] = fig
    return figures


def summary(rounds: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """Median seconds of each case over the rounds, the two ratios and their PASS/MISS."""
    names = list(rounds[0])
    seconds = {name: statistics.median(r[name]["seconds"] for r in rounds) for name in names}
    ratios = {
        "sequential vs curl loop": seconds["sequential"] / seconds["curl loop"],
        "4 concurrent vs sequential": seconds[f"{workers} concurrent"] / seconds["sequential"],
        "lookback sequential vs curl loop": seconds["lookback sequential"] / seconds["curl loop"],
        "lookback 4 concurrent vs lookback sequential": (
            seconds[f"lookback {workers} concurrent"] / seconds["lookback sequential"]
        ),
    }
    goals = {
        name: {"value": value, "target": GOALS[name], "status": "PASS" if value <= GOALS[name] else "MISS"}
        for name, value in ratios.items()
    }
    in_flight = {name: max(r[name]["max_in_flight"] for r in rounds) for name in names}
    return {"seconds": seconds, "max_in_flight": in_flight, "goals": goals, "rounds": rounds}


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n# backfill: {result['days']} daily partitions, request-bound")
    for name, secs in result["seconds"].items():
        print(f"  {name:24s} {secs:7.2f} s  (most requests in flight: {result['max_in_flight'][name]})")
    from bench.goals import goal_row, goal_table, load_line

    rows = [goal_row(name, goal["value"], goal["target"], "x", False) for name, goal in result["goals"].items()]
    start, end = result["load_average"]
    print("\n# goals (issue 28)\n" + goal_table(rows, load_line([start], [end])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round instead of three")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of the three cases, in turns (3; --quick 1)")
    ap.add_argument("--days", type=int, default=90, help="daily partitions (90)")
    ap.add_argument("--latency", type=float, default=0.1, help="seconds the emulator takes per request (0.1)")
    ap.add_argument("--workers", type=int, default=4, help="max_concurrent_requests of the concurrent case (4)")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results to merge into")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    from cloudmax_provider.testing.emulator import CloudmaxEmulator, EmulatorSettings

    rounds = args.rounds or (1 if args.quick else 3)
    load = os.getloadavg()[0]
    settings = EmulatorSettings(accounts={LOGIN: PASSWORD}, latency=args.latency)
    with tempfile.TemporaryDirectory(prefix="cloudmax-bench-backfill-") as tmp, CloudmaxEmulator(settings) as emu:
        env = dict(os.environ, AIRFLOW_HOME=str(Path(tmp) / "airflow"))
        conn = {"conn_type": "cloudmax", "host": emu.base_url, "login": LOGIN, "password": PASSWORD}
        env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)
        print(
            f"Backfill: {args.days} daily partitions of report {REPORT_PART_ID}, emulator latency {args.latency}s per "
            f"request, {rounds} round(s); {os.cpu_count()} CPUs, load average {load:.2f}"
            + (" (busy: figures noisy)" if load > (os.cpu_count() or 1) / 2 else ""),
            flush=True,
        )
        figures = [one_round(emu, env, Path(tmp), args.days, args.workers, n) for n in range(rounds)]
    result = summary(figures, args.workers)
    result.update(days=args.days, latency=args.latency, load_average=[load, os.getloadavg()[0]])
    print_summary(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.output.read_text()) if args.output.exists() else {}
    merged["backfill"] = result
    args.output.write_text(json.dumps(merged, indent=2))
    print(f"Merged into {args.output} under 'backfill'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
