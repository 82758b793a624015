"""Iceberg landing of a big report against the two-step peer, in the same run (issue 25).

Run ``.venv/bin/python bench/iceberg.py`` (1 GiB report) or ``--quick`` (64 MiB); ``make bench`` runs it after
``bench/parquet.py``, ``make bench-quick`` with ``--quick``. The parent starts the bundled Report.aspx emulator
serving a big open-details report (2100199, ``big_report_bytes``) and lands it in a fresh child process (this
file with ``--child``) through the provider's real Iceberg path (``landing.iceberg.land_iceberg``: HTTP from the
emulator -> the Arrow typing of the CSV -> Parquet data files in the table's location, a batch at a time -> one
overwrite commit) into a table of an embedded SQL catalog (SQLite, a ``file://`` warehouse). A child reports its
RSS just before the transfer and its peak RSS during it (``VmHWM`` reset through ``/proc/self/clear_refs``).

The **peer** is what a data engineer would do without the provider, on the same body in the same run: ``curl -o``
the report (the same POST), then ``pyarrow.csv.read_csv`` with the same timestamp parsing as ``bench/parquet.py``
(the catalog's time columns as ``timestamp[us]`` with the spec's layouts, made aware in the account's zone, as
UTC instants for Iceberg), then ``table.append`` into a table of the same kind of catalog (created from the Arrow
schema). Its time is the steps added; it holds the whole table in memory (its RSS is shown, not judged).

Printed and merged into ``.bench/results.json`` under ``"iceberg"``: each side's seconds and throughput (MB of
the served CSV a second), the provider's throughput against the peer's (goal >= 1.0x, PASS/MISS) and its peak
RSS growth (goal <= 256 MiB, PASS/MISS). Both tables are read back and their row counts checked.
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

from bench.common import curl_report, rss_figures, rss_start, run_script_child

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results.json"
REPORT_PART_ID = 2100199
CONN_ID = "cloudmax_bench_iceberg"
ICEBERG_CONN_ID = "cloudmax_bench_lake"
RSS_GOAL_MIB = 256
SPEED_GOAL = 1.0


def _catalog(workdir: str) -> Any:
    """The embedded SQL catalog of the run (the same properties as the ``iceberg`` connection's extra)."""
    from pyiceberg.catalog import load_catalog

    return load_catalog(ICEBERG_CONN_ID, **_catalog_properties(workdir))


def _catalog_properties(workdir: str) -> dict[str, str]:
    return {
        "type": "sql",
        "uri": f"sqlite:///{Path(workdir) / 'catalog.db'}",
        "warehouse": (Path(workdir) / "warehouse").as_uri(),
    }


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Land the report once into ``bench.opens`` through ``land_iceberg``; seconds, rows and RSS figures."""
    import logging
    from zoneinfo import ZoneInfo

    logging.basicConfig(level=logging.WARNING)
    from cloudmax_provider.formats.arrow_typing import ArrowBatchEncoder
    from cloudmax_provider.formats.streams import open_each
    from cloudmax_provider.formats.writers import RowTyping, require_pyarrow
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.iceberg import IcebergLanding, IcebergTable, land_iceberg
    from cloudmax_provider.windows.partitions import PartitionGrid

    require_pyarrow("iceberg")  # imported before measuring: set-up, not transfer
    import pyarrow.csv  # noqa: F401  (the streaming reader's module, idem)
    import pyiceberg.io.pyarrow  # noqa: F401  (the data-file writer, idem)

    hook = CloudmaxHook(CONN_ID)
    tz = ZoneInfo(hook.settings.timezone)
    grid = PartitionGrid.of("day", tz)
    request = hook.build_request(REPORT_PART_ID, [1225], "2026-11-01", "2026-11-02", response_mode=3)
    typing = RowTyping.for_request(request, tz)
    logger = logging.getLogger("bench.iceberg")
    catalog = _catalog(spec["dir"])
    landing = IcebergLanding(
        catalog=catalog,
        target=IcebergTable.parse("iceberg://bench.opens"),
        grid=grid,
        encoder_of=lambda: ArrowBatchEncoder(typing, "bench", logger, spec["batch_size"]),
        properties={"cloudmax.run-id": "bench"},
    )
    _ = hook.session
    catalog.create_namespace_if_not_exists("bench")  # the catalog's first query (the operator's preflight): set-up
    rss_before = rss_start()
    t0 = time.perf_counter()
    landed = land_iceberg(
        landing, grid.partitions(request.start, request.end), lambda s, e: open_each(hook.sources(request)), logger
    )
    seconds = time.perf_counter() - t0
    table = catalog.load_table("bench.opens")
    stored = sum(task.file.record_count for task in table.scan().plan_files())
    out = sum(task.file.file_size_in_bytes for task in table.scan().plan_files())
    rows = sum(entry["rows"] for entry in landed)
    assert stored == rows, f"the table holds {stored} rows, the landing said {rows}"
    return {"side": "provider", "seconds": seconds, "rows": rows, "bytes_out": out, **rss_figures(rss_before)}


def peer(spec: dict[str, Any]) -> dict[str, Any]:
    """``curl -o`` the body, ``read_csv`` with the same timestamp parsing, ``table.append``: timed as one."""
    import logging
    from zoneinfo import ZoneInfo

    logging.basicConfig(level=logging.WARNING)
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from cloudmax_provider.api.catalog import ColumnType, get_report_part
    from cloudmax_provider.formats.arrow_typing import TIME_FORMATS
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook(CONN_ID)
    csv_path = Path(spec["dir"]) / "peer.csv"
    part = get_report_part(REPORT_PART_ID)
    times = [name for name in part.column_names if part.type_of(name) is ColumnType.DATETIME]
    tz = ZoneInfo(hook.settings.timezone)
    catalog = _catalog(spec["dir"])
    catalog.create_namespace_if_not_exists("peer")  # the catalog's first query: set-up, as for the provider
    rss_before = rss_start()
    t0 = time.perf_counter()
    downloaded = curl_report(CONN_ID, REPORT_PART_ID, csv_path)
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(times, pa.timestamp("us")), timestamp_parsers=list(TIME_FORMATS)
    )
    data = pacsv.read_csv(csv_path, convert_options=options)
    for name in times:  # the account's clock, stored as the instant (Iceberg's timestamptz is UTC)
        i = data.schema.get_field_index(name)
        aware = pc.assume_timezone(data.column(i), timezone=tz.key).cast(pa.timestamp("us", tz="UTC"))
        data = data.set_column(i, name, aware)
    table = catalog.create_table("peer.opens", schema=data.schema)
    table.append(data)
    seconds = time.perf_counter() - t0
    csv_path.unlink()
    stored = sum(task.file.record_count for task in table.scan().plan_files())
    assert stored == data.num_rows, f"the peer's table holds {stored} rows of {data.num_rows}"
    out = sum(task.file.file_size_in_bytes for task in table.scan().plan_files())
    figures = {"side": "peer", "seconds": seconds, "download_seconds": downloaded, "rows": data.num_rows}
    return {**figures, "bytes_out": out, **rss_figures(rss_before)}


def run_child(side: str, env: dict[str, str], workdir: Path, batch_size: int) -> dict[str, Any]:
    spec = {"side": side, "dir": str(workdir), "batch_size": batch_size}
    return run_script_child(Path(__file__).resolve(), spec, env, side)


def _summary(results: dict[str, Any], served: int, rows: int, batch_size: int) -> dict[str, Any]:
    """The figures and verdicts: the provider's throughput against the peer's, and its RSS against the goal."""
    mine, theirs = results["provider"], results["peer"]
    ratio = theirs["seconds"] / mine["seconds"]
    return {
        "report_mib": served / MiB,
        "rows": rows,
        "batch_size": batch_size,
        "sides": results,
        "vs_peer_throughput": ratio,
        "speed_goal": SPEED_GOAL,
        "speed_verdict": "PASS" if ratio >= SPEED_GOAL else "MISS",
        "rss_growth_mib": mine["rss_growth_mib"],
        "rss_goal_mib": RSS_GOAL_MIB,
        "rss_verdict": "PASS" if mine["rss_growth_mib"] <= RSS_GOAL_MIB else "MISS",
        "peer_download_seconds": theirs["download_seconds"],
    }


def _print(summary: dict[str, Any]) -> None:
    for side, r in summary["sides"].items():
        print(
            f"{side:8s} {r['mb_s']:8.1f} MB/s  {r['seconds']:7.1f} s  {r['bytes_out'] / MiB:8.1f} MiB of data files  "
            f"peak RSS growth {r['rss_growth_mib']:7.1f} MiB"
        )
    print(
        f"Iceberg landing vs peer (curl -o, read_csv, table.append): {summary['vs_peer_throughput']:.2f}x the peer's "
        f"throughput (goal >= {SPEED_GOAL}x): {summary['speed_verdict']}; peak RSS growth "
        f"{summary['rss_growth_mib']:.1f} MiB (goal <= {RSS_GOAL_MIB} MiB): {summary['rss_verdict']}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 64 MiB report instead of 1 GiB")
    ap.add_argument("--size-mib", type=int, default=None, help="report size (default 1024, --quick 64)")
    ap.add_argument("--batch-size", type=int, default=64 * 1024, help="rows per batch (and data file at most)")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results to merge into")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(peer(spec) if spec["side"] == "peer" else child(spec)))
        return 0

    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    size = (args.size_mib or (64 if args.quick else 1024)) * MiB
    with tempfile.TemporaryDirectory(prefix="cloudmax-bench-iceberg-") as tmp, CloudmaxEmulator() as emu:
        emu.settings.big_report_bytes = size
        _, served, rows = emu.big_report_info(REPORT_PART_ID)
        (Path(tmp) / "warehouse").mkdir()
        env = dict(os.environ)
        env["AIRFLOW_HOME"] = str(Path(tmp) / "airflow")
        env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "cloudmax", "host": emu.base_url, "login": "demo", "password": "demo-password"}
        )
        print(f"Report {REPORT_PART_ID}: {served / MiB:.0f} MiB served, {rows} rows; batch_size={args.batch_size}")
        results = {side: run_child(side, env, Path(tmp), args.batch_size) for side in ("provider", "peer")}
    for r in results.values():
        r["mb_s"] = served / 1e6 / r["seconds"]
        assert r["rows"] == rows, f"{r['side']} landed {r['rows']} rows of {rows}"
    summary = _summary(results, served, rows, args.batch_size)
    _print(summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.output.read_text()) if args.output.exists() else {}
    merged["iceberg"] = summary
    args.output.write_text(json.dumps(merged, indent=2))
    print(f"Merged into {args.output} under 'iceberg'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
