"""Parquet (and JSON Lines) output of a big report against CSV output, measured in the same run.

Run ``.venv/bin/python bench/bench_parquet.py`` (1 GiB report) or ``--quick`` (64 MiB); ``make bench`` runs it
after ``bench/run.py``. The parent starts the bundled Report.aspx emulator serving a big open-details report
(2100199, ``big_report_bytes``) and lands it once per output format, each in a fresh child process (this file
with ``--child``) that goes through the provider's real landing path (``transfer.write_report``: HTTP from the
emulator -> encoder -> ``write_atomically`` into a local file). A child reports its RSS just before the transfer
and its peak RSS during it (``VmHWM`` reset through ``/proc/self/clear_refs``), so the growth is the transfer's.

Printed and merged into ``.bench/results.json`` under ``"parquet"``: throughput of each format (MB of the served
CSV per second), Parquet's against CSV's (a ratio in the same run), peak RSS growth with the goal (<= 128 MiB,
PASS/MISS), and the size of the Parquet file against the CSV's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results.json"
REPORT_PART_ID = 2100199
CONN_ID = "cloudmax_bench_parquet"
RSS_GOAL_MIB = 128


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Land the report once in ``spec["format"]``; return seconds, rows, bytes and RSS figures."""
    import logging
    from zoneinfo import ZoneInfo

    logging.basicConfig(level=logging.WARNING)
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from cloudmax_provider.formats import OutputFormat, RowTyping, require_pyarrow
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.transfer import write_report

    hook = CloudmaxHook(CONN_ID)
    request = hook.build_request(REPORT_PART_ID, [1225], "2026-11-01", "2026-11-02", response_mode=3)
    fmt = spec["format"]
    typing = RowTyping.for_request(request, ZoneInfo(hook.settings.timezone)) if fmt != "csv" else None
    output = OutputFormat(fmt, batch_size=spec["batch_size"], typing=typing)
    if fmt == "parquet":
        require_pyarrow()  # imported before measuring: set-up, not transfer
    _ = hook.session
    dest = Path(spec["dir"]) / f"report.{fmt}"
    warm = ObjectStoragePath((dest.parent / ".warm").as_uri())
    warm.write_bytes(b"x")  # Airflow's first ObjectStoragePath use loads provider filesystems: set-up
    warm.unlink()
    rss_before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    stats = write_report(hook, hook.sources(request), dest.as_uri(), None, "utf-8", output=output)
    seconds = time.perf_counter() - t0
    return {
        "format": fmt,
        "seconds": seconds,
        "rows": stats.rows,
        "bytes_out": stats.bytes,
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": _status_kib("VmHWM") / 1024,
        "rss_growth_mib": (_status_kib("VmHWM") - rss_before) / 1024,
    }


def run_child(fmt: str, base_env: dict[str, str], workdir: Path, batch_size: int) -> dict[str, Any]:
    spec = {"format": fmt, "dir": str(workdir), "batch_size": batch_size}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode != 0:
        raise SystemExit(f"{fmt} child failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    (workdir / f"report.{fmt}").unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 64 MiB report instead of 1 GiB")
    ap.add_argument("--size-mib", type=int, default=None, help="report size (default 1024, --quick 64)")
    ap.add_argument("--batch-size", type=int, default=64 * 1024, help="Parquet rows per row group")
    ap.add_argument("--jsonl", action="store_true", help="measure JSON Lines too")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results to merge into")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    from cloudmax_provider.testing.emulator import CloudmaxEmulator

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
        formats = ["csv", "parquet"] + (["jsonl"] if args.jsonl else [])
        results = {fmt: run_child(fmt, env, Path(tmp), args.batch_size) for fmt in formats}
    for r in results.values():
        r["mb_s"] = served / 1e6 / r["seconds"]
        assert r["rows"] == rows, f"{r['format']} wrote {r['rows']} rows of {rows}"
    csv, parquet = results["csv"], results["parquet"]
    growth = parquet["rss_growth_mib"]
    verdict = "PASS" if growth <= RSS_GOAL_MIB else "MISS"
    summary = {
        "report_mib": served / MiB,
        "rows": rows,
        "batch_size": args.batch_size,
        "formats": results,
        "parquet_vs_csv_throughput": parquet["mb_s"] / csv["mb_s"],
        "parquet_vs_csv_size": parquet["bytes_out"] / csv["bytes_out"],
        "parquet_rss_growth_mib": growth,
        "parquet_rss_goal_mib": RSS_GOAL_MIB,
        "parquet_rss_verdict": verdict,
    }
    for fmt, r in results.items():
        print(
            f"{fmt:8s} {r['mb_s']:8.1f} MB/s  {r['seconds']:7.1f} s  {r['bytes_out'] / MiB:8.1f} MiB out  "
            f"peak RSS growth {r['rss_growth_mib']:6.1f} MiB"
        )
    print(f"Parquet throughput vs CSV: {summary['parquet_vs_csv_throughput']:.3f}x")
    print(f"Parquet size vs CSV:       {summary['parquet_vs_csv_size']:.3f}x")
    print(f"Parquet peak RSS growth:   {growth:.1f} MiB (goal <= {RSS_GOAL_MIB} MiB): {verdict}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.output.read_text()) if args.output.exists() else {}
    merged["parquet"] = summary
    args.output.write_text(json.dumps(merged, indent=2))
    print(f"Merged into {args.output} under 'parquet'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
