"""Parquet and JSON Lines output of a big report against CSV output and the two-step peer, in the same run.

Run ``.venv/bin/python bench/parquet.py`` (1 GiB report) or ``--quick`` (64 MiB); ``make bench`` runs it
after ``bench/run.py``. The parent starts the bundled Report.aspx emulator serving a big open-details report
(2100199, ``big_report_bytes``) and lands it once per output format, each in a fresh child process (this file
with ``--child``) that goes through the provider's real landing path (``landing.land_object``: HTTP from the
emulator -> encoder -> ``atomic.write`` into a local file). A child reports its RSS just before the transfer
and its peak RSS during it (``VmHWM`` reset through ``/proc/self/clear_refs``), so the growth is the transfer's.

The **peer** is what a data engineer would do without the provider, measured in the same run on the same body:
``curl -o`` the report (the same POST), then ``pyarrow.csv.read_csv`` with the same timestamp parsing (the catalog's
time columns as ``timestamp[us]`` with the spec's layouts as ``timestamp_parsers``) and ``pq.write_table`` (snappy).
Its time is the two steps added; it holds the whole table in memory (its RSS is shown, not judged). JSON Lines'
peer (``peer-jsonl``) is ``curl -o``, then DuckDB's ``COPY (SELECT * FROM read_csv(...)) TO 'x.jsonl'`` (its own
type detection; both cores).

``--formats jsonl,peer-jsonl`` runs only those cases (the JSON Lines mode; the default is every format and peer).
``jsonl-polars`` is a candidate measured beside them (issue 24): the same landing with each typed block written by
polars' ``write_ndjson`` (time columns formatted as ``isoformat()`` writes them) instead of the provider's encoder;
it needs polars installed by hand (no extra names it).

``--ragged start,middle,end`` also lands Parquet and JSON Lines from a report with one ragged record (its last
cell cut off: the emulator's ``big_report_ragged``) at each place, each its own report and child, each just after
a run on whole records (the ratio is of that pair: the machine's load moves between runs).

Printed and merged into ``.bench/results.json`` under ``"parquet"``: throughput of each format (MB of the served
CSV per second); the goals table (bench/goals.py): Parquet >= 1.5x its peer, JSON Lines >= 1.0x its peer, peak RSS
growth <= 128 MiB, and with ``--ragged`` each ragged report's rate >= 0.9x the whole-record rate of the same run;
the size of the Parquet file against the CSV's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/'s modules (s3, rss, ...) must not shadow top-level names
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from bench.common import cpu_seconds, curl_report, rss_figures, rss_start, run_script_child

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results.json"
REPORT_PART_ID = 2100199
CONN_ID = "cloudmax_bench_parquet"
RSS_GOAL_MIB = 128
SPEED_GOALS = {"parquet": 1.5, "jsonl": 1.0}  # issue 28: the format's MB/s over its peer's
RAGGED_GOAL = 0.9  # issue 28: one ragged record costs one record, not a second pass
PEERS = {
    "peer": "curl -o + pyarrow read_csv + write_table (snappy)",
    "peer-jsonl": "curl -o + DuckDB COPY (SELECT * FROM read_csv(...)) TO 'x.jsonl'",
}
FORMATS = ("csv", "parquet", "jsonl", "peer", "peer-jsonl")
CANDIDATES = ("jsonl-polars",)  # measured beside the format, against the same peer (issue 24)


def polars_json_lines(table: Any) -> bytes:
    """``json_lines`` by polars: ``write_ndjson`` of the block, its time columns first written as text the way
    ``datetime.isoformat()`` writes them (microseconds only when not zero). A candidate, not the provider's."""
    import io

    import polars as pl

    frame: Any = pl.from_arrow(table)
    times = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            c = pl.col(name)
            whole, fraction = c.dt.to_string("%Y-%m-%dT%H:%M:%S%:z"), c.dt.to_string("%Y-%m-%dT%H:%M:%S%.6f%:z")
            times.append(pl.when(c.dt.microsecond() == 0).then(whole).otherwise(fraction).alias(name))
    out = io.BytesIO()
    (frame.with_columns(times) if times else frame).write_ndjson(out)
    return out.getvalue()


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Land the report once in ``spec["format"]``; return seconds, rows, bytes and RSS figures."""
    import logging
    from zoneinfo import ZoneInfo

    logging.basicConfig(level=logging.WARNING)
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from cloudmax_provider.formats.writers import OutputFormat, RowTyping, require_pyarrow
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_object

    hook = CloudmaxHook(CONN_ID)
    request = hook.build_request(REPORT_PART_ID, [1225], "2026-11-01", "2026-11-02", response_mode=3)
    fmt = spec["format"]
    if fmt == "jsonl-polars":  # polars is imported in the transfer, as the encoder's own imports are
        import cloudmax_provider.formats.arrow_typing as arrow_typing

        arrow_typing.json_lines = polars_json_lines  # type: ignore[assignment]
        fmt = "jsonl"
    typing = RowTyping.for_request(request, ZoneInfo(hook.settings.timezone)) if fmt != "csv" else None
    output = OutputFormat(fmt, batch_size=spec["batch_size"], typing=typing)
    if fmt != "csv":
        require_pyarrow()  # imported before measuring: set-up, not transfer
        import pyarrow.csv  # noqa: F401  (the streaming reader's module, idem)
    _ = hook.session
    dest = Path(spec["dir"]) / f"report.{fmt}"
    warm = ObjectStoragePath((dest.parent / ".warm").as_uri())
    warm.write_bytes(b"x")  # Airflow's first ObjectStoragePath use loads provider filesystems: set-up
    warm.unlink()
    rss_before = rss_start()
    t0, c0 = time.perf_counter(), cpu_seconds()
    stats = land_object(hook, hook.sources(request), dest.as_uri(), None, "utf-8", output=output)
    seconds = time.perf_counter() - t0
    return {
        "format": spec["format"],
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - c0,
        "rows": stats.rows,
        "bytes_out": stats.bytes,
        **rss_figures(rss_before),
    }


def peer(spec: dict[str, Any]) -> dict[str, Any]:
    """``curl -o`` the body, then convert it, timed as one: ``read_csv`` + ``write_table`` (``peer``) or DuckDB's
    ``COPY (SELECT * FROM read_csv(...)) TO 'x.jsonl'`` (``peer-jsonl``); see bench/curves.py."""
    import logging
    from zoneinfo import ZoneInfo

    logging.basicConfig(level=logging.WARNING)
    from bench.curves import peer_duckdb, peer_parquet
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    if spec["format"] == "peer":
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401
    else:
        import duckdb  # noqa: F401
    hook = CloudmaxHook(CONN_ID)
    csv_path = Path(spec["dir"]) / "peer.csv"
    dest = Path(spec["dir"]) / ("peer.parquet" if spec["format"] == "peer" else "peer.jsonl")
    rss_before = rss_start()
    t0, c0 = time.perf_counter(), cpu_seconds()
    downloaded = curl_report(CONN_ID, REPORT_PART_ID, csv_path)
    if spec["format"] == "peer":
        rows = peer_parquet(csv_path, dest, ZoneInfo(hook.settings.timezone))
    else:
        rows = peer_duckdb(csv_path, dest)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - c0  # DuckDB's threads; curl's own CPU is another process's
    out = dest.stat().st_size
    csv_path.unlink()
    dest.unlink()
    return {
        "format": spec["format"],
        "seconds": seconds,
        "download_seconds": downloaded,
        "cpu_seconds": cpu,
        "rows": rows,
        "bytes_out": out,
        **rss_figures(rss_before),
    }


def run_child(fmt: str, base_env: dict[str, str], workdir: Path, batch_size: int) -> dict[str, Any]:
    spec = {"format": fmt, "dir": str(workdir), "batch_size": batch_size}
    result = run_script_child(Path(__file__).resolve(), spec, base_env, fmt)
    (workdir / f"report.{fmt.split('-')[0]}").unlink(missing_ok=True)  # a candidate writes its format's name
    return result


def _summary(results: dict[str, Any], served: int, rows: int, batch_size: int) -> dict[str, Any]:
    """The figures and verdicts: each typed format (and candidate) run against its peer (time) and the RSS goal."""
    summary: dict[str, Any] = {"report_mib": served / MiB, "rows": rows, "batch_size": batch_size, "formats": results}
    if "csv" in results and "parquet" in results:
        csv, parquet = results["csv"], results["parquet"]
        summary["parquet_vs_csv_throughput"] = parquet["mb_s"] / csv["mb_s"]
        summary["parquet_vs_csv_size"] = parquet["bytes_out"] / csv["bytes_out"]
    for fmt, peer_name in (("parquet", "peer"), ("jsonl", "peer-jsonl"), ("jsonl-polars", "peer-jsonl")):
        if fmt not in results or peer_name not in results:
            continue
        r, peer_run = results[fmt], results[peer_name]
        goal = SPEED_GOALS[fmt.split("-")[0]]
        summary["peer_download_seconds"] = peer_run["download_seconds"]
        summary[fmt] = {
            "peer": PEERS[peer_name],
            "vs_peer_throughput": peer_run["seconds"] / r["seconds"],
            "speed_goal": goal,
            "speed_verdict": "PASS" if peer_run["seconds"] / r["seconds"] >= goal else "MISS",
            "rss_growth_mib": r["rss_growth_mib"],
            "rss_goal_mib": RSS_GOAL_MIB,
            "rss_verdict": "PASS" if r["rss_growth_mib"] <= RSS_GOAL_MIB else "MISS",
        }
    if "parquet" in summary:
        summary["parquet_rss_growth_mib"] = summary["parquet"]["rss_growth_mib"]
        summary["parquet_rss_verdict"] = summary["parquet"]["rss_verdict"]
    summary["ragged"] = {  # each against the whole-record run just before it
        name: {"vs_whole": r["mb_s"] / results[f"whole, before {name}"]["mb_s"], **r}
        for name, r in results.items()
        if name.startswith("ragged ")
    }
    return summary


def _goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of issues 18 and 28 measured here, as rows of bench/goals.py's table."""
    from bench.goals import goal_row

    size = f"at {summary['report_mib']:.0f} MiB"
    out = []
    for fmt in [f for f in ("parquet", "jsonl", "jsonl-polars") if f in summary]:
        v = summary[fmt]
        note = f"{v['peer']}, {size}"
        out.append(goal_row(f"{fmt} vs its peer", v["vs_peer_throughput"], v["speed_goal"], "x", True, note))
        out.append(goal_row(f"{fmt} peak RSS growth", v["rss_growth_mib"], RSS_GOAL_MIB, "MiB", False, size))
    for name, r in summary["ragged"].items():
        note = f"MB/s with one ragged record / whole records just before, {size}"
        out.append(goal_row(name, r["vs_whole"], RAGGED_GOAL, "x", True, note))
    return out


def _land_all(args: argparse.Namespace, emu: Any, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """Every format and peer on whole records, then Parquet and JSON Lines with one ragged record at each of
    ``--ragged``'s places (each its own report); the served bytes and rows with each result."""
    results: dict[str, Any] = {}
    for fmt in args.formats.split(","):
        name = fmt if fmt not in results else f"{fmt} #{sum(k.split(' #')[0] == fmt for k in results) + 1}"
        results[name] = run_child(fmt, env, tmp, args.batch_size)  # a case named again: "jsonl #2", not judged
        results[name]["served"], results[name]["expected_rows"] = emu.big_report_info(REPORT_PART_ID)[1:]
    for place in [p for p in (args.ragged or "").split(",") if p]:
        emu.settings.big_report_ragged = place
        report, served, rows = emu.big_report_info(REPORT_PART_ID)
        emu.settings.big_report_ragged = ""
        whole = emu.big_report_info(REPORT_PART_ID)
        for fmt in ("parquet", "jsonl"):  # whole records then the ragged report, in turns: the load changes
            results[f"whole, before ragged {place} {fmt}"] = {**run_child(fmt, env, tmp, args.batch_size)}
            results[f"whole, before ragged {place} {fmt}"].update(served=whole[1], expected_rows=whole[2])
            emu.settings.big_report_ragged = place
            r = run_child(fmt, env, tmp, args.batch_size)
            emu.settings.big_report_ragged = ""
            results[f"ragged {place} {fmt}"] = {**r, "served": served, "expected_rows": rows}
        report.unlink()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 64 MiB report instead of 1 GiB")
    ap.add_argument("--size-mib", type=int, default=None, help="report size (default 1024, --quick 64)")
    ap.add_argument("--batch-size", type=int, default=64 * 1024, help="Parquet rows per row group")
    ap.add_argument(
        "--ragged",
        default="",
        metavar="PLACES",
        help="also land Parquet and JSON Lines with one ragged record at each of these places: start,middle,end",
    )
    ap.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"the cases to run, in this order (default {','.join(FORMATS)}; also {','.join(CANDIDATES)}); "
        "e.g. jsonl,jsonl-polars,peer-jsonl",
    )
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results to merge into")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = set(args.formats.split(",")) - set(FORMATS) - set(CANDIDATES)
    if unknown:
        ap.error(f"unknown --formats: {', '.join(sorted(unknown))}")
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(peer(spec) if spec["format"].startswith("peer") else child(spec)))
        return 0

    from bench.goals import goal_table, load_line
    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    load_before = os.getloadavg()
    size = (args.size_mib or (64 if args.quick else 1024)) * MiB
    with tempfile.TemporaryDirectory(prefix="cloudmax-bench-parquet-") as tmp, CloudmaxEmulator() as emu:
        emu.settings.big_report_bytes = size
        _, served, rows = emu.big_report_info(REPORT_PART_ID)
        env = dict(os.environ)
        env["AIRFLOW_HOME"] = str(Path(tmp) / "airflow")
        env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "cloudmax", "host": emu.base_url, "login": "demo", "password": "demo-password"}
        )
        print(f"Report {REPORT_PART_ID}: {served / MiB:.0f} MiB served, {rows} rows; batch_size={args.batch_size}")
        results = _land_all(args, emu, env, Path(tmp))
    for r in results.values():
        r["mb_s"] = r.pop("served") / 1e6 / r["seconds"]
        assert r["rows"] == r.pop("expected_rows"), f"{r['format']} wrote {r['rows']} rows"
    summary = _summary(results, served, rows, args.batch_size)
    for fmt, r in results.items():
        print(
            f"{fmt:22s} {r['mb_s']:8.1f} MB/s  {r['seconds']:7.1f} s  {r['cpu_seconds']:6.1f} CPU s  "
            f"{r['bytes_out'] / MiB:8.1f} MiB out  peak RSS growth {r['rss_growth_mib']:6.1f} MiB"
        )
    if "parquet_vs_csv_size" in summary:
        print(f"Parquet size vs CSV:       {summary['parquet_vs_csv_size']:.3f}x")
    print("Peers: " + "; ".join(f"{k}: {v}" for k, v in PEERS.items()))
    summary["goals"] = _goals(summary)
    summary["load_average"] = {"start": load_before, "end": os.getloadavg()}
    print("\n# goals (issues 18 and 28)\n" + goal_table(summary["goals"], load_line(load_before)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.output.read_text()) if args.output.exists() else {}
    key = "parquet" if args.formats == ",".join(FORMATS) else f"parquet {args.formats}"  # a subset: its own key
    merged[key] = summary
    args.output.write_text(json.dumps(merged, indent=2))
    print(f"Merged into {args.output} under {key!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
