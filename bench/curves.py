"""One curve per path: throughput and peak RSS of file, Parquet, JSON Lines and S3 landing against each path's
peer, at 10, 100, 1,000 and 4,000 MiB, one fresh process per point (issue 28).

Run ``.venv/bin/python bench/curves.py`` (``make bench``: up to 4,000 MiB) or ``--max-mb 100`` (``make
bench-quick``). The parent starts the bundled emulator (the big open-details report 2100199, ResponseMode 3)
and, for S3, moto's server (``bench.s3.moto_server``, restarted for each size: it keeps objects in memory). Each
case runs in a fresh child (``bench.common.CHILD``), one at a time, each side twice in the order provider, peer,
peer, provider (its faster run is its point; each case starts after a scratch write of its size, see
:func:`prefault`):

======== ============================================= ===============================================================
path     provider                                      peer
======== ============================================= ===============================================================
file     ``land_object`` -> ``file://`` (CSV)          ``curl -o FILE`` (the same POST)
parquet  ``land_object(output=parquet)`` -> file       ``curl -o``, then ``pyarrow.csv.read_csv`` (the catalog's time
                                                       columns as ``timestamp[us]``, the spec's layouts, made aware)
                                                       and ``pq.write_table`` (snappy), timed as one
jsonl    ``land_object(output=jsonl)`` -> file         ``curl -o``, then DuckDB ``COPY (SELECT * FROM read_csv(...))
                                                       TO 'x.jsonl'``, timed as one
s3       ``land_object`` -> ``s3://`` (moto)           boto3 ``upload_fileobj`` fed the same HTTP stream
======== ============================================= ===============================================================

MB/s = MB (10**6 bytes) of the served CSV / seconds of the transfer (set-up excluded, as in ``bench/run.py``).
Peak RSS = the process's own high-water mark (VmHWM; GNU ``time``'s for curl). A point is skipped, with the
reason printed, when the disk or the memory it needs is not free (the emulator's file, the outputs; the Parquet
peer holds ~3x the CSV in memory, moto ~5x the object). Goals (PASS/MISS): per path, MB/s at the largest size at
least 0.9x MB/s at 1,000 MiB (the slope), and peak RSS at the largest size at most 32 MiB over that at 1,000 MiB
(with fewer sizes, the size before the largest stands for 1,000 MiB, and the goal says so).
The plot is ``--plot`` (``.bench/throughput_vs_size.png``); results are merged into ``.bench/results.json``
under ``"curves"``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the bench package from the checkout, not bench/ itself
    _ROOT = str(Path(__file__).resolve().parent.parent)
    sys.path[:] = [_ROOT, *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from bench.common import REPORT_PART_ID, RESULTS, ROOT, Bench, MiB, git_head, hook_and_request, start, stop

SIZES_MIB = (10, 100, 1000, 4000)
#: Each side runs twice, once first and once second (ABBA), and its faster run is its point: on this VM the first of
#: two same-size writers is slowed by the machine (memory and writeback the other then finds ready), not by its code.
ORDER = ("provider", "peer", "peer", "provider")
PATHS = ("file", "parquet", "jsonl", "s3")
PEERS = {
    "file": "curl -o FILE",
    "parquet": "curl -o + pyarrow read_csv + write_table",
    "jsonl": "curl -o + DuckDB COPY TO x.jsonl",
    "s3": "boto3 upload_fileobj, same stream",
}
#: Disk each case writes, as a multiple of the report's size (its output files; the peer's downloaded CSV).
DISK = {"file": (1.0, 1.0), "parquet": (0.1, 1.1), "jsonl": (2.3, 3.3), "s3": (0.0, 0.0)}
#: Memory each case holds beyond ~200 MiB, as a multiple of the report's size (provider, peer).
MEMORY = {"file": (0.0, 0.0), "parquet": (0.0, 3.2), "jsonl": (0.0, 0.5), "s3": (5.5, 5.5)}
SLOPE_GOAL = 0.9
RSS_GOAL_MIB = 32
PEER_GOALS = {"file": 1.0, "parquet": 1.5, "jsonl": 1.0, "s3": 1.0}  # issue 28: the provider's MB/s / the peer's

# ==== child side ================================================================================================


def child(case: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``curve_typed`` (the provider landing Parquet or JSON Lines) or ``curve_peer`` (curl -o, then convert)."""
    return _typed(spec) if case == "curve_typed" else _peer(spec)


def _typed(spec: dict[str, Any]) -> dict[str, Any]:
    """``land_object`` of the report in ``spec["format"]`` into a local file."""
    from zoneinfo import ZoneInfo

    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from cloudmax_provider.formats.writers import OutputFormat, RowTyping, require_pyarrow
    from cloudmax_provider.landing.land import land_object

    out: dict[str, Any] = {}
    hook, request = hook_and_request(spec)
    typing = RowTyping.for_request(request, ZoneInfo(hook.settings.timezone))
    output = OutputFormat(spec["format"], typing=typing)
    require_pyarrow()  # imported before measuring: set-up, not transfer
    import numpy  # noqa: F401  (the JSON Lines join's and the row counter's: idem)
    import pyarrow.csv  # noqa: F401

    dest = Path(spec["path"])
    warm = ObjectStoragePath((dest.parent / ".warm").as_uri())
    warm.write_bytes(b"x")  # Airflow's first ObjectStoragePath use loads provider filesystems: set-up
    warm.unlink()
    t0, c0 = start(out)
    landed = land_object(hook, hook.sources(request), dest.as_uri(), None, "utf-8", output=output)
    stop(out, t0, c0)
    out.update(bytes_in=spec["source_bytes"], bytes_out=landed.bytes, rows=landed.rows)
    return out


def _peer(spec: dict[str, Any]) -> dict[str, Any]:
    """``curl -o`` the report (the same POST, the form on stdin), then convert it: the two steps, timed as one."""
    from urllib.parse import urlencode
    from zoneinfo import ZoneInfo

    if spec["format"] == "parquet":
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401
    else:
        import duckdb  # noqa: F401
    out: dict[str, Any] = {}
    csv_path, dest = Path(spec["path"]).with_suffix(".csv"), Path(spec["path"])
    body = urlencode(spec["fields"]).encode()
    t0, c0 = start(out)
    curl = ["curl", "-sS", "--fail", "--data-binary", "@-", "-o", str(csv_path), spec["url"]]
    subprocess.run(curl, input=body, check=True)
    out["download_seconds"] = time.perf_counter() - t0
    if spec["format"] == "parquet":
        rows = peer_parquet(csv_path, dest, ZoneInfo(spec["timezone"]))
    else:
        rows = peer_duckdb(csv_path, dest)
    stop(out, t0, c0)
    out.update(bytes_in=spec["source_bytes"], bytes_out=dest.stat().st_size, rows=rows)
    csv_path.unlink()
    return out


def peer_parquet(csv_path: Path, dest: Path, tz: Any) -> int:
    """The two-step peer's second step: ``read_csv`` with the catalog's time columns parsed in the spec's layouts
    and made aware in ``tz``, then ``write_table`` (snappy); returns the rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from cloudmax_provider.api.catalog import ColumnType, get_report_part
    from cloudmax_provider.formats.arrow_typing import TIME_FORMATS

    part = get_report_part(REPORT_PART_ID)
    times = [name for name in part.column_names if part.type_of(name) is ColumnType.DATETIME]
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(times, pa.timestamp("us")), timestamp_parsers=list(TIME_FORMATS)
    )
    table = pacsv.read_csv(csv_path, convert_options=options)
    for name in times:  # the account's clock, as the provider's columns are
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.assume_timezone(table.column(i), timezone=tz.key))
    pq.write_table(table, dest, compression="snappy")
    return int(table.num_rows)


def peer_duckdb(csv_path: Path, dest: Path) -> int:
    """DuckDB's ``COPY (SELECT * FROM read_csv(...)) TO 'x.jsonl'`` (its own type detection); returns the rows."""
    import duckdb

    with duckdb.connect() as con:
        copied = con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{dest}' (FORMAT json)").fetchone()
    return int(copied[0]) if copied else -1


# ==== parent side ===============================================================================================


def available_mib() -> float:
    """``MemAvailable`` of ``/proc/meminfo`` in MiB."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def shortage(bench: Bench, path: str, who: int, size: int) -> str | None:
    """Why a case cannot run at ``size`` (disk or memory short), or None."""
    disk_need = DISK[path][who] * size + 512 * MiB
    free = shutil.disk_usage(bench.work).free
    if disk_need > free:
        return f"needs ~{disk_need / 2**30:.1f} GiB of disk, {free / 2**30:.1f} GiB free"
    memory_need = MEMORY[path][who] * size / MiB + 512
    if memory_need > available_mib():
        return f"needs ~{memory_need / 1024:.1f} GiB of memory, {available_mib() / 1024:.1f} GiB available"
    return None


def point(path: str, who: str, size_mib: float, sample: dict[str, Any]) -> dict[str, Any]:
    """One point of a curve: MB/s of the served CSV, peak RSS and its growth over the transfer."""
    peak = sample["peak_rss_kib"] / 1024
    before = sample.get("rss_before_kib")
    return {
        "path": path,
        "who": who,
        "size_mib": size_mib,
        "mb_s": sample["bytes_in"] / 1e6 / sample["seconds"],
        "seconds": sample["seconds"],
        "cpu_seconds": sample.get("cpu_seconds"),
        "peak_rss_mib": peak,
        "rss_growth_mib": None if before is None else peak - before / 1024,
        "download_seconds": sample.get("download_seconds"),
    }


def run_case(bench: Bench, emu: Any, path: str, who: str, info: tuple[int, int], s3: Any) -> dict[str, Any]:
    """One case at the emulator's current size, checked (rows, bytes, the object); its figures."""
    nbytes, rows = info
    out_dir = bench.work / "curves"
    out_dir.mkdir(exist_ok=True)
    dest = out_dir / f"{who}.{'csv' if path == 'file' else path}"
    os.sync()  # the previous case's writeback outside this case's clock
    prefault(bench.work, nbytes)
    fields = bench.info["fields"]
    try:
        if path == "s3":
            from bench import s3 as s3_part

            client, endpoint = s3
            if who == "peer":
                return s3_part._baseline(bench, client, endpoint, 0, nbytes)
            return s3_part._provider(bench, client, 0, nbytes, rows)
        if path == "file" and who == "peer":
            sample = bench.run_curl(emu.endpoint_url, fields, nbytes, to=str(dest))
            assert dest.stat().st_size == nbytes
            return sample
        if path == "file":
            sample = bench.run_python("provider_land", {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes})
            assert sample["rows"] == rows and dest.stat().st_size == nbytes, (sample, rows, nbytes)
            return sample
        spec = {"format": path, "path": str(dest), "source_bytes": nbytes}
        if who == "peer":
            spec.update(url=emu.endpoint_url, fields=fields, timezone="Asia/Taipei")
        sample = bench.run_python("curve_typed" if who == "provider" else "curve_peer", spec)
        assert sample["rows"] == rows, (path, who, sample["rows"], rows)
        return sample
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def prefault(where: Path, nbytes: int) -> None:
    """Write and delete ``nbytes`` of scratch under ``where`` before a case. This VM backs memory the guest has
    not used lately at ~300 MB/s (tmpfs and the page cache alike, past the first 2-3 GiB), and memory a case
    just freed at full speed: without this, whichever of provider and peer runs first at 4,000 MiB pays for
    it (measured: 0.47x in one order, 1.31x in the other)."""
    block = bytes(MiB)
    scratch = where / "prefault.bin"
    with scratch.open("wb") as out:
        for _ in range(0, nbytes, MiB):
            out.write(block)
    scratch.unlink()
    os.sync()


def run_size(bench: Bench, emu: Any, size: int, paths: list[str]) -> list[dict[str, Any]]:
    """Every path's provider and peer at ``size``; skipped cases are printed with their reason."""
    free = shutil.disk_usage(bench.work).free
    if size + 512 * MiB > free:
        print(f"  skip {size // MiB} MiB: the emulator's file needs {size / 2**30:.1f} GiB, {free / 2**30:.1f} free")
        return []
    emu.settings.big_report_bytes = size
    report, nbytes, rows = emu.big_report_info(REPORT_PART_ID)
    points: list[dict[str, Any]] = []
    try:
        for path in paths:
            points += run_path(bench, emu, path, size, (nbytes, rows))
    finally:
        report.unlink(missing_ok=True)
        emu._big.clear()
    return points


def run_path(bench: Bench, emu: Any, path: str, size: int, info: tuple[int, int]) -> list[dict[str, Any]]:
    """One path's provider and peer at ``size`` (S3: in a moto server of its own)."""
    from contextlib import ExitStack

    got: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        s3 = None
        for who in ORDER:
            why = shortage(bench, path, 0 if who == "provider" else 1, size)
            if why:
                print(f"  skip {path} {who} at {size // MiB} MiB: {why}", flush=True)
                continue
            if path == "s3" and s3 is None:
                s3 = stack.enter_context(moto(bench))
            new = point(path, who, info[0] / MiB, run_case(bench, emu, path, who, info, s3))
            if who not in got or new["mb_s"] > got[who]["mb_s"]:
                got[who] = new
    print_point(path, size, got)
    return list(got.values())


def moto(bench: Bench) -> Any:
    """moto's S3 server with the bench bucket: a context manager yielding (client, endpoint)."""
    from contextlib import contextmanager

    import boto3

    from bench.common import BUCKET
    from bench.s3 import moto_server

    @contextmanager
    def server() -> Any:
        with moto_server(bench) as (endpoint, _process):
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            yield client, endpoint

    return server()


def print_point(path: str, size: int, got: dict[str, dict[str, Any]]) -> None:
    prov, peer = got.get("provider"), got.get("peer")

    def show(p: dict[str, Any] | None) -> str:
        if p is None:
            return f"{'skipped':>30}"
        growth = "" if p["rss_growth_mib"] is None else f" ({p['rss_growth_mib']:+.0f})"
        return f"{p['mb_s']:8.1f} MB/s {p['peak_rss_mib']:6.0f} MiB{growth:>7}"

    ratio = f"{prov['mb_s'] / peer['mb_s']:.2f}x" if prov and peer else "-"
    print(f"  {path:8s} {size // MiB:6d}  {show(prov)}   {show(peer)}   {ratio:>6}", flush=True)


def curve_goals(points: list[dict[str, Any]], paths: list[str]) -> list[dict[str, Any]]:
    """Per path: the slope (MB/s at the largest size / at 1,000 MiB), RSS constant, and the peer ratio."""
    from bench.goals import goal_row

    out = []
    for path in paths:
        mine = sorted((p for p in points if p["path"] == path and p["who"] == "provider"), key=lambda p: p["size_mib"])
        if len(mine) < 2:
            out.append(goal_row(f"{path}: MB/s at the largest size vs 1,000 MiB", None, SLOPE_GOAL, "x", True))
            continue
        last = mine[-1]
        ref = next((p for p in mine if 950 <= p["size_mib"] <= 1100 and p is not last), mine[-2])
        note = f"{last['size_mib']:.0f} vs {ref['size_mib']:.0f} MiB"
        if ref["size_mib"] < 950:
            note += " (the goal is 4,000 vs 1,000 MiB)"
        out.append(
            goal_row(
                f"{path}: slope, MB/s largest / reference", last["mb_s"] / ref["mb_s"], SLOPE_GOAL, "x", True, note
            )
        )
        grow = last["peak_rss_mib"] - ref["peak_rss_mib"]
        note = f"peak RSS at {last['size_mib']:.0f} MiB minus at {ref['size_mib']:.0f} MiB"
        out.append(goal_row(f"{path}: peak RSS growth, reference -> largest", grow, RSS_GOAL_MIB, "MiB", False, note))
        peer = next(
            (p for p in points if p["path"] == path and p["who"] == "peer" and p["size_mib"] == last["size_mib"]), None
        )
        ratio = last["mb_s"] / peer["mb_s"] if peer else None
        note = f"{PEERS[path]}, at {last['size_mib']:.0f} MiB"
        out.append(goal_row(f"{path}: vs its peer", ratio, PEER_GOALS[path], "x", True, note))
        peer_ref = next(
            (p for p in points if p["path"] == path and p["who"] == "peer" and p["size_mib"] == ref["size_mib"]), None
        )
        relative = (last["mb_s"] / ref["mb_s"]) / (peer["mb_s"] / peer_ref["mb_s"]) if peer and peer_ref else None
        note = "the provider's slope over the peer's: what this machine's own slope leaves to the code"
        out.append(goal_row(f"{path}: slope vs the peer's slope", relative, SLOPE_GOAL, "x", True, note))
    return out


def plot(points: list[dict[str, Any]], paths: list[str], target: Path) -> None:
    """MB/s (left) and peak RSS (right) against report size: a colour per path, the provider solid, the peer
    dashed, into ``target`` (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import ScalarFormatter
    except ImportError:
        print("  matplotlib not installed (the bench extra has it): no plot", flush=True)
        return
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=110)
    for n, path in enumerate(paths):
        colour = f"C{n}"
        for who, style in (("provider", "o-"), ("peer", "s--")):
            mine = sorted((p for p in points if p["path"] == path and p["who"] == who), key=lambda p: p["size_mib"])
            if not mine:
                continue
            label = f"{path}: provider" if who == "provider" else f"{path} peer: {PEERS[path]}"
            sizes = [p["size_mib"] for p in mine]
            speed.plot(sizes, [p["mb_s"] for p in mine], style, color=colour, label=label)
            memory.plot(sizes, [p["peak_rss_mib"] for p in mine], style, color=colour, label=label)
    for ax, title, unit in ((speed, "Throughput", "MB/s of served CSV"), (memory, "Peak RSS", "MiB (process)")):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("report size (MiB)")
        ax.set_ylabel(unit)
        ax.set_title(f"{title} against report size (one process per point)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in (speed, memory):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
    speed.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    print(f"  plot written to {target}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES_MIB)), help="report sizes in MiB (10,100,1000,4000)")
    ap.add_argument("--max-mb", type=int, default=None, help="leave out the sizes above this (make bench-quick: 100)")
    ap.add_argument("--quick", action="store_true", help="--max-mb 100")
    ap.add_argument("--paths", default=",".join(PATHS), help="paths to measure (file,parquet,jsonl,s3)")
    ap.add_argument("--plot", type=Path, default=ROOT / ".bench" / "throughput_vs_size.png", help="the plot (PNG)")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results to merge into")
    args = ap.parse_args(argv)
    cap = 100 if args.quick and args.max_mb is None else args.max_mb
    args.sizes = [int(s) for s in args.sizes.split(",") if cap is None or int(s) <= cap]
    args.paths = [p for p in args.paths.split(",") if p]
    unknown = set(args.paths) - set(PATHS)
    if unknown:
        ap.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
    args.profile = None  # what Bench expects of bench/run.py's options
    args.size_mb = max(args.sizes)
    return args


def main(argv: list[str] | None = None) -> int:
    from bench.goals import goal_table, load_line
    from bench.run import connect, isolate_airflow

    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cloudmax-bench-curves-"))
    isolate_airflow(work)
    from cloudmax_provider.testing.emulator import CloudmaxEmulator, EmulatorSettings

    login, password = "bench", "bench-password"
    emu = CloudmaxEmulator(EmulatorSettings(accounts={login: password})).start()
    bench = Bench(args, work)
    points: list[dict[str, Any]] = []
    try:
        bench.info["fields"] = connect(emu, login, password)
        print(
            f"One curve per path: {', '.join(args.paths)} at {', '.join(map(str, args.sizes))} MiB; "
            f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f}, commit {git_head()}",
            flush=True,
        )
        print(f"  {'path':8s} {'MiB':>6}  {'provider':>30}   {'peer':>30}   {'ratio':>6}", flush=True)
        for size in args.sizes:
            points += run_size(bench, emu, size * MiB, args.paths)
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    goals = curve_goals(points, args.paths)
    load = load_line(load_before)
    print("\n# goals (issue 28: one curve per path)\n" + goal_table(goals, load))
    plot(points, args.paths, args.plot)
    total = time.perf_counter() - started
    print(f"Total run time {total:.0f}s. Peers: " + "; ".join(f"{k}: {v}" for k, v in PEERS.items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.output.read_text()) if args.output.exists() else {}
    merged["curves"] = {
        "points": points,
        "goals": goals,
        "sizes_mib": args.sizes,
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "total_seconds": total,
        "commit": git_head(),
    }
    args.output.write_text(json.dumps(merged, indent=2))
    print(f"Merged into {args.output} under 'curves'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
