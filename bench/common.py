"""What every part of the benchmarks shares: the constants, the child's measuring helpers (RSS, CPU, the clock,
py-spy), running a child (a fresh Python process, or curl) with its own peak RSS, recording a result row against
its baseline, and the result tables.

A child is ``python -c 'from bench.child import main; main()' --child CASE SPEC_JSON`` (see ``CHILD``): it imports
:mod:`bench.child`, this module and the one part module that has the case, from byte code cached in
``.bench/pycache``, and writes its figures to the JSON file ``SPEC["result"]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results.json"

REPORT_PART_ID = 2100199  # open_details_quick: a detail report, the kind that gets big
LAUNCH_IDS = [1225]
START, END = "2026-11-01 00:00:00", "2026-11-02 00:00:00"
CLOUDMAX_CONN_ID = "cloudmax_bench"
AWS_CONN_ID = "aws_bench"
BUCKET = "cloudmax-bench"
STAGE_MIB = 64  # the in-memory pipeline-stage measurement uses at most this much of each report
CHILD_TIMEOUT = 900.0


# ==== child side (imports only what the measured case needs) ==================================================


def proc_status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``); 0 when absent."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_start() -> int:
    """This process's RSS in KiB now, with its high-water mark (VmHWM) reset to it: call just before a transfer."""
    rss_before = proc_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    return rss_before


def rss_figures(rss_before: int) -> dict[str, float]:
    """RSS before (:func:`rss_start`), the peak since, and the growth, in MiB."""
    peak = proc_status_kib("VmHWM")
    return {
        "rss_before_mib": rss_before / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_growth_mib": (peak - rss_before) / 1024,
    }


def curl_report(conn_id: str, report_part_id: int, csv_path: Path) -> float:
    """``curl -o csv_path`` the report as the provider asks for it (the same request; the form, password
    included, on curl's stdin, never on its command line); the seconds it took."""
    from urllib.parse import urlencode

    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook(conn_id)
    request = hook.build_request(report_part_id, [1225], "2026-11-01", "2026-11-02", response_mode=3)
    wire = hook._wire(request.fields())
    body = urlencode(wire.data or ()).encode()
    url = wire.url if not wire.params else f"{wire.url}?{urlencode(wire.params)}"
    t0 = time.perf_counter()
    curl = ["curl", "-sS", "--fail", "-X", wire.method, "--data-binary", "@-", "-o", str(csv_path), url]
    subprocess.run(curl, input=body, check=True)
    return time.perf_counter() - t0


def run_script_child(script: Path, spec: dict[str, Any], env: dict[str, str], label: str) -> dict[str, Any]:
    """Run ``python script --child SPEC_JSON`` in a fresh process; the JSON object its last line prints."""
    out = subprocess.run(
        [sys.executable, str(script), "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode != 0:
        raise SystemExit(f"{label} child failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class XcomSink:
    """Stands in for the task instance in ``context["ti"]``: ``land_object`` only calls ``xcom_push``."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def cpu_seconds() -> float:
    """This process's CPU time so far (user + system)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start(out: dict[str, Any]) -> tuple[float, float]:
    """Mark the start of the transfer: RSS now, wall clock and CPU."""
    out["rss_before_kib"] = proc_status_kib("VmRSS")
    return time.perf_counter(), cpu_seconds()


def stop(out: dict[str, Any], t0: float, c0: float) -> None:
    """Mark the end of the transfer: its wall clock and CPU seconds."""
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = cpu_seconds() - c0


class Profile:
    """Sample this process with py-spy while the transfer runs (``spec["profile_svg"]``: a flame graph SVG).

    py-spy attaches to this process after the set-up, so the graph shows the transfer, not the imports.
    """

    def __init__(self, svg: str | None) -> None:
        self.svg = svg
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        if self.svg:
            pyspy = shutil.which("py-spy", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
            if pyspy is None:
                raise SystemExit("--profile needs py-spy (pip install py-spy; the bench extra has it)")
            cmd = [pyspy, "record", "--pid", str(os.getpid()), "-o", self.svg, "-r", "200", "--threads"]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let it attach
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes the graph on SIGINT
            self.proc.wait(timeout=60)


def hook_and_request(spec: dict[str, Any]) -> tuple[Any, Any]:
    """The bench connection's hook, set up, and the big report's request (ResponseMode 3)."""
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook(CLOUDMAX_CONN_ID)
    request = hook.build_request(REPORT_PART_ID, LAUNCH_IDS, START, END, response_mode=3)
    _ = hook.session  # connection looked up, requests imported, session built: set-up, not transfer
    return hook, request


# ==== parent side ===========================================================================================

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(cmd: list[str], work: Path, tag: str, stdout: Any) -> tuple[int, dict[str, Any], Path]:
    """Run ``cmd`` to completion; returns (exit code, its own rusage, its stderr log).

    Why GNU ``time``: on Linux a child's ``ru_maxrss`` also counts the memory it had before ``exec``, i.e. this
    parent's RSS at the fork (subprocess uses vfork), ~130 MiB here with the emulator loaded. Through
    ``/usr/bin/time`` the program is forked from a ~2 MiB process, so ``%M`` is its own peak RSS. Without GNU time,
    ``os.wait4`` is used and the figure is a ceiling (the Python children report their own VmHWM anyway).
    """
    stamp = time.monotonic_ns()
    log = work / f"{tag}-{stamp}.log"
    tfile = work / f"{tag}-{stamp}.time"
    full = [GNU_TIME, "-f", "%M %U %S", "-o", str(tfile), *cmd] if GNU_TIME else cmd
    with open(log, "wb") as err:
        proc = subprocess.Popen(full, stdout=stdout, stderr=err)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    rusage: dict[str, Any] = {"maxrss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime, "via": "wait4"}
    if GNU_TIME and tfile.exists():
        last = tfile.read_text().strip().splitlines()[-1:]  # "Command exited with non-zero status" comes first
        try:
            maxrss, user, system = last[0].split()
            rusage = {"maxrss_kib": int(maxrss), "cpu": float(user) + float(system), "via": "GNU time"}
        except (IndexError, ValueError):
            pass
    return code, rusage, log


#: A child imports bench.child as a module (its byte code cached in .bench/pycache), then ``main(--child ...)``:
#: run as a script it would be compiled from source in every child, which leaves ~4 MiB in the child's RSS.
CHILD = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.child import main; sys.exit(main())",
    "--child",
]


def status_kib(pid: int, field: str) -> int | None:
    """Another process's ``/proc/PID/status`` figure in KiB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def git_head() -> str | None:
    """The checkout's short commit, if git can tell."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


class Bench:
    """One benchmark run: its options, its work directory, the result rows and the other figures (``info``)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rows: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}

    def profile_path(self, case: str) -> str:
        folder = ROOT / "bench" / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{self.args.profile}-{case}-{self.args.size_mb}MiB.svg")

    # ---- running children ----------------------------------------------------------------------------

    def run_python(self, case: str, spec: dict[str, Any]) -> dict[str, Any]:
        result = self.work / f"{case}-{time.monotonic_ns()}.json"
        spec = {**spec, "result": str(result)}
        cmd = [*CHILD, case, json.dumps(spec)]
        t0 = time.perf_counter()
        code, usage, log = spawn(cmd, self.work, case, subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        if code != 0 or not result.exists():
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"child {case} failed (exit {code}):\n{tail}")
        out: dict[str, Any] = json.loads(result.read_text())
        out["peak_rss_kib"] = out["vmhwm_kib"]  # the child's own high-water mark
        out["rusage_maxrss_kib"] = usage["maxrss_kib"]
        out["rusage_via"] = usage["via"]
        out["process_cpu_seconds"] = usage["cpu"]
        out["process_seconds"] = wall
        return out

    def run_curl(self, url: str, fields: dict[str, str], expected: int, to: str = os.devnull) -> dict[str, Any]:
        cmd = ["curl", "-s", "-S", "-o", to, "-w", "%{http_code} %{size_download} %{time_total}"]
        for key, value in fields.items():
            cmd += ["--data-urlencode", f"{key}={value}"]
        cmd.append(url)
        out_file = self.work / f"curl-{time.monotonic_ns()}.out"
        t0 = time.perf_counter()
        with open(out_file, "wb") as fh:
            code, usage, log = spawn(cmd, self.work, "curl", fh)
        wall = time.perf_counter() - t0
        status, size, seconds = [*out_file.read_text().split(), "?", "0", "0"][:3]
        if code != 0 or status != "200" or int(size) != expected:
            raise RuntimeError(
                f"curl failed: exit {code}, HTTP {status}, {size} of {expected} bytes: {log.read_text()[-1000:]!r}"
            )
        return {
            "case": "curl",
            "seconds": float(seconds),
            "bytes_in": int(size),
            "bytes_out": int(size),
            "cpu_seconds": usage["cpu"],
            "peak_rss_kib": usage["maxrss_kib"],
            "rusage_via": usage["via"],
            "process_seconds": wall,
        }

    # ---- recording -----------------------------------------------------------------------------------

    def record(
        self,
        group: str,
        name: str,
        samples: list[dict[str, Any]],
        baseline: str | None,
        note: str = "",
        *,
        is_baseline: bool = False,
    ) -> dict[str, Any]:
        """One result line: median rate over ``samples``, worst peak RSS, ratio to the ``baseline`` row."""
        rates = [s["bytes_in"] / MiB / s["seconds"] for s in samples]
        row: dict[str, Any] = {
            "group": group,
            "name": name,
            "baseline": baseline,
            "mib_s": statistics.median(rates),
            "mib_s_samples": rates,
            "seconds": statistics.median(s["seconds"] for s in samples),
            "bytes_in": samples[0]["bytes_in"],
            "bytes_out": samples[0]["bytes_out"],
            "cpu_seconds": statistics.median(s["cpu_seconds"] for s in samples),
            "note": note,
            "is_baseline": is_baseline,
        }
        if all("peak_rss_kib" in s for s in samples):
            row["peak_rss_mib"] = max(s["peak_rss_kib"] for s in samples) / 1024
            row["peak_rss_source"] = (
                "VmHWM" if "vmhwm_kib" in samples[0] else f"ru_maxrss via {samples[0].get('rusage_via')}"
            )
        if all("rss_before_kib" in s for s in samples):
            row["rss_before_mib"] = max(s["rss_before_kib"] for s in samples) / 1024
            row["rss_growth_mib"] = max(s["peak_rss_kib"] - s["rss_before_kib"] for s in samples) / 1024
        if all("rss_imports_kib" in s for s in samples):
            row["rss_after_imports_mib"] = max(s["rss_imports_kib"] for s in samples) / 1024
        for key in ("move_seconds", "fs_setup_seconds", "process_seconds", "process_cpu_seconds"):
            values = [s[key] for s in samples if key in s]
            if values:
                row[key] = statistics.median(values)
        if baseline is not None:
            base = next(r for r in self.rows if r["name"] == baseline)
            row["ratio"] = row["mib_s"] / base["mib_s"]
        row["samples"] = samples
        self.rows.append(row)
        print(row_line(row), flush=True)
        return row


def fmt(row: dict[str, Any], key: str, spec: str, width: int) -> str:
    return format(row[key], spec).rjust(width) if key in row else "-".rjust(width)


def row_line(row: dict[str, Any]) -> str:
    if "ratio" in row:
        ratio = f"{row['ratio']:.2f}x {row['baseline']}"
    else:
        ratio = "(baseline)" if row.get("is_baseline") else "- (no baseline)"
    return (
        f"  {row['name']:<28} {fmt(row, 'mib_s', '.1f', 8)} {ratio:<28} {fmt(row, 'seconds', '.2f', 7)} "
        f"{fmt(row, 'cpu_seconds', '.2f', 7)} {fmt(row, 'peak_rss_mib', '.0f', 8)} "
        f"{fmt(row, 'rss_before_mib', '.0f', 7)} {fmt(row, 'rss_growth_mib', '+.0f', 7)}  {row['note']}"
    )


HEADER = (
    f"  {'case':<28} {'MiB/s':>8} {'ratio vs baseline':<28} {'sec':>7} {'CPU s':>7} {'peak RSS':>8} "
    f"{'before':>7} {'growth':>7}  note (RSS in MiB)"
)


def results_table(rows: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            lines += ["", f"## {group}", HEADER]
        lines.append(row_line(row))
    return "\n".join(lines)
