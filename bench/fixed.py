"""The fixed-cost part: one small report task, the operator's whole ``execute`` against a bare POST + write
(fresh processes), and the import time of the operator and sensor modules."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import CLOUDMAX_CONN_ID, END, LAUNCH_IDS, REPORT_PART_ID, START, Bench, XcomSink

# ==== child side ================================================================================================


def child(case: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One small report landed to a file: a bare task's POST + write, or the operator's whole ``execute``.

    The clock starts after ``import airflow.sdk`` (a worker's task process has it already).
    ``fixed_provider_warm_fs`` first touches ``ObjectStoragePath`` (provider discovery, lineage plugins)
    outside the clock, to show what that first use costs.
    """
    import airflow.sdk  # noqa: F401

    out: dict[str, Any] = {}
    dest = Path(spec["path"])
    if case == "fixed_provider_warm_fs":
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        warm = ObjectStoragePath((dest.parent / "warm").as_uri())
        with warm.open("wb") as fh:
            fh.write(b"x")
        warm.unlink()
    t0 = time.perf_counter()
    if case == "fixed_bare":
        import requests

        body = requests.post(spec["url"], data=spec["fields"], timeout=60).content
        dest.write_bytes(body)
        out["bytes_out"] = len(body)
    else:
        from cloudmax_provider.operators.report import CloudmaxReportOperator

        out["import_seconds"] = time.perf_counter() - t0
        op = CloudmaxReportOperator(
            task_id="report",
            cloudmax_conn_id=CLOUDMAX_CONN_ID,
            report_part_id=REPORT_PART_ID,
            launch_ids=LAUNCH_IDS,
            start_time=START,
            end_time=END,
            response_mode=3,
            destination=dest.as_uri(),
        )
        sink = XcomSink()
        op.execute({"ti": sink})  # type: ignore[arg-type,typeddict-item]
        out["bytes_out"] = sink.pushed["bytes"]
        out["rows"] = sink.pushed["rows"]
    out["seconds"] = time.perf_counter() - t0
    assert dest.stat().st_size == out["bytes_out"] > 0
    return out


# ==== parent side ===============================================================================================


def run(bench: Bench, emu: Any, fields: dict[str, str]) -> None:
    """Seconds of one small report task: the operator's execute vs a bare POST + write (fresh processes)."""
    emu.settings.big_report_bytes = 0
    emu.settings.csv_encoding = "utf-8"
    out_dir = bench.work / "fixed"
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(bench.args.fixed_repeat):
        for case in ("fixed_bare", "fixed_provider", "fixed_provider_warm_fs"):
            out_dir.mkdir(exist_ok=True)
            spec = {"url": emu.endpoint_url, "fields": fields, "path": str(out_dir / "report.csv")}
            runs.setdefault(case, []).append(bench.run_python(case, spec))
            shutil.rmtree(out_dir, ignore_errors=True)
    med = {case: statistics.median(r["seconds"] for r in rs) for case, rs in runs.items()}
    imp = statistics.median(r["import_seconds"] for r in runs["fixed_provider"])
    fig = {
        "bare_seconds": med["fixed_bare"],
        "provider_seconds": med["fixed_provider"],
        "provider_warm_fs_seconds": med["fixed_provider_warm_fs"],
        "operator_import_seconds": imp,
        "fixed_cost_seconds": med["fixed_provider"] - med["fixed_bare"],
        "object_storage_first_use_seconds": med["fixed_provider"] - med["fixed_provider_warm_fs"],
        "bytes": runs["fixed_bare"][0]["bytes_out"],
    }
    bench.info["fixed_cost"] = fig
    print(
        f"\n## fixed cost of one small report task ({fig['bytes']:,} bytes; median of {bench.args.fixed_repeat}, "
        "fresh processes, clock started after `import airflow.sdk`)\n"
        f"  bare POST + write {fig['bare_seconds']:.3f}s; CloudmaxReportOperator.execute -> file:// "
        f"{fig['provider_seconds']:.3f}s (operator import {imp:.3f}s); "
        f"fixed cost {fig['fixed_cost_seconds']:.3f}s\n"
        f"  with ObjectStoragePath already used once in the process: {fig['provider_warm_fs_seconds']:.3f}s "
        f"(its first use costs {fig['object_storage_first_use_seconds']:.3f}s)",
        flush=True,
    )


def import_cost(bench: Bench) -> None:
    """Milliseconds to import the operator and sensor modules over airflow.sdk (best of 3 fresh processes)."""
    probe = (
        "import time, airflow.sdk\n"
        "from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator, Asset, conf\n"
        "t = time.perf_counter()\nimport {module}\nprint((time.perf_counter() - t) * 1000)"
    )
    fig = {}
    for module in ("cloudmax_provider.operators.report", "cloudmax_provider.sensors.download_link"):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", probe.format(module=module)], capture_output=True, text=True, check=True
                ).stdout.split()[-1]
            )
            for _ in range(3)
        ]
        fig[module] = min(runs)
    bench.info["import_ms"] = fig
    print("\n## import over airflow.sdk: " + ", ".join(f"{m} {v:.0f} ms" for m, v in fig.items()), flush=True)
