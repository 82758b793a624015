"""Throughput and memory benchmarks of the provider's download and landing paths, each against a baseline.

Run ``make bench`` (or ``.venv/bin/python bench/run.py``); ``--quick`` uses a 64 MiB report, the default 1024 MiB.
``bench/README.md`` says what is measured and how to read the ratios.

The parent process starts the bundled Report.aspx emulator (``big_report_bytes`` = the size, ResponseMode 3: the
CSV is sent from disk with sendfile) and, for the S3 part, moto's S3 server in a process of its own. Every measured
client (curl, the provider, boto3) runs in a fresh child process, so its peak RSS is its own; a Python child also
reports its RSS just before the transfer starts (after imports, connection lookup and client set-up), so the growth
during the transfer shows. A child is this file imported as a module and run as ``main(["--child", CASE, SPEC_JSON])``
(see ``_CHILD``); it writes its figures to the JSON file ``SPEC["result"]``.

Nothing here touches the user's Airflow: ``AIRFLOW_HOME`` is a temporary directory, connections are
``AIRFLOW_CONN_*`` environment variables, no metadata database is used. ``land_report`` gets
``{"ti": XcomSink()}`` as its context: it only ever calls ``context["ti"].xcom_push``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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
PARTS = ("download", "s3", "rss", "triggers", "fixed")  # each has its --no-PART; --only PART runs just that one


# ==== child side (imports only what the measured case needs) ==================================================


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class XcomSink:
    """Stands in for the task instance in ``context["ti"]``: ``land_report`` only calls ``xcom_push``."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start(out: dict[str, Any]) -> tuple[float, float]:
    """Mark the start of the transfer: RSS now, wall clock and CPU."""
    out["rss_before_kib"] = _proc_status_kib("VmRSS")
    return time.perf_counter(), _cpu()


def _stop(out: dict[str, Any], t0: float, c0: float) -> None:
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = _cpu() - c0


class _Profile:
    """Sample this process with py-spy while the transfer runs (``spec["profile_svg"]``: a flame graph SVG).

    py-spy attaches to this process after the set-up, so the graph shows the transfer, not the imports.
    """

    def __init__(self, svg: str | None) -> None:
        self.svg, self.proc = svg, None

    def __enter__(self) -> _Profile:
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


def _hook_and_request(spec: dict[str, Any]) -> tuple[Any, Any]:
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook(CLOUDMAX_CONN_ID)
    request = hook.build_request(REPORT_PART_ID, LAUNCH_IDS, START, END, response_mode=3)
    _ = hook.session  # connection looked up, requests imported, session built: set-up, not transfer
    return hook, request


def child_main(case: str, spec: dict[str, Any]) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    out: dict[str, Any] = {"case": case}
    if case == "provider_devnull":
        hook, request = _hook_and_request(spec)
        received = 0
        t0, c0 = _start(out)
        with hook.open_report(request) as stream, open(os.devnull, "wb") as sink:
            for chunk in stream.chunks:
                sink.write(chunk)
                received += len(chunk)
        _stop(out, t0, c0)
        out["bytes_in"] = out["bytes_out"] = received
    elif case == "provider_land":
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        import cloudmax_provider.atomic as atomic
        from cloudmax_provider.landing import land_object, push_landed

        hook, request = _hook_and_request(spec)
        uri, conn_id = spec["uri"], spec.get("conn_id")
        dest = ObjectStoragePath(uri, conn_id=conn_id)
        # The first use of an ObjectStoragePath makes Airflow discover every provider's filesystem and, on the
        # first open(), load the plugins for its hook-lineage collector: ~300 modules (boto3 among them, even for
        # file://). A task process pays that once, whatever the size; it is timed apart from the transfer, as
        # set-up (fs_setup_seconds), together with creating the S3 client.
        out["rss_imports_kib"] = _proc_status_kib("VmRSS")
        t = time.perf_counter()
        warm = dest.parent / f".bench-warm-up-{os.getpid()}"
        with warm.open("wb") as fh:  # the first open() also starts Airflow's hook-lineage collector (plugins)
            fh.write(b"x")
        warm.unlink()
        if dest.protocol in ("s3", "s3a"):  # the boto3 client the writer uses, as the baseline's is made first
            from cloudmax_provider import s3

            s3.client_for(dest)
        out["fs_setup_seconds"] = time.perf_counter() - t
        moves: list[float] = []
        real_move = atomic._move

        def timed_move(tmp: Any, final: Any) -> None:  # times the final move (a server-side copy on S3)
            t = time.perf_counter()
            real_move(tmp, final)
            moves.append(time.perf_counter() - t)

        atomic._move = timed_move  # type: ignore[assignment]
        sink = XcomSink()
        with _Profile(spec.get("profile_svg")):
            t0, c0 = _start(out)
            push_landed({"ti": sink}, [land_object(hook, hook.sources(request), uri, conn_id, "utf-8")])
            _stop(out, t0, c0)
        out["move_seconds"] = sum(moves)
        out["bytes_in"] = spec["source_bytes"]
        out["bytes_out"] = sink.pushed.get("bytes")
        out["rows"] = sink.pushed.get("rows")
    elif case == "boto3_upload":
        import boto3

        client = boto3.client("s3", endpoint_url=spec["endpoint_url"], region_name="us-east-1")
        client.head_bucket(Bucket=BUCKET)  # the client is created and has answered once
        t0, c0 = _start(out)
        with open(spec["path"], "rb") as fh:
            client.upload_fileobj(fh, BUCKET, spec["key"])
        _stop(out, t0, c0)
        out["bytes_in"] = out["bytes_out"] = spec["source_bytes"]
    elif case == "stages":
        out["stages"] = _stages(spec)
    elif case == "peer_land":  # what a DAG author writes without the provider: the whole body in memory
        import airflow.sdk  # noqa: F401 - a task process has Airflow loaded, as the provider's has
        import requests

        dest = Path(spec["path"])
        t0, c0 = _start(out)
        body = requests.post(spec["url"], data=spec["fields"], timeout=600).content
        dest.write_bytes(body)
        _stop(out, t0, c0)
        out["bytes_in"] = out["bytes_out"] = len(body)
    elif case in ("fixed_bare", "fixed_provider", "fixed_provider_warm_fs"):
        out.update(_fixed_cost(case, spec))
    elif case == "request_links":
        out.update(_request_links(spec))
    elif case == "triggers":
        out.update(_triggers(spec))
    elif case == "moto":
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=spec["port"], verbose=False)
        server.start()
        done = []
        signal.signal(signal.SIGTERM, lambda *_: done.append(1))
        Path(spec["result"]).write_text(json.dumps({"ready": True}))
        while not done:
            time.sleep(0.2)
        server.stop()
        return
    else:
        raise SystemExit(f"unknown child case {case!r}")
    out["vmhwm_kib"] = _proc_status_kib("VmHWM")
    Path(spec["result"]).write_text(json.dumps(out))


def _fixed_cost(case: str, spec: dict[str, Any]) -> dict[str, Any]:
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
        op.execute({"ti": sink})  # type: ignore[arg-type]
        out["bytes_out"] = sink.pushed["bytes"]
        out["rows"] = sink.pushed["rows"]
    out["seconds"] = time.perf_counter() - t0
    assert dest.stat().st_size == out["bytes_out"] > 0
    return out


def _request_links(spec: dict[str, Any]) -> dict[str, Any]:
    """Ask the emulator for ``spec["links"]`` DOWNLOADLINKs, in batches of 1,000 ``spec["gap"]`` seconds apart (so
    files become ready at different moments), for the ``triggers`` child; and the kwargs of their triggers.

    A process of its own: the triggerer measured next never has the requests-based hook, the XML parser or the
    Report.aspx answers in memory, only the triggers' serialized kwargs (as a triggerer gets them).
    """
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger

    n, poll, gap = spec["links"], spec["poll_interval"], spec["gap"]
    hook = CloudmaxHook(CLOUDMAX_CONN_ID)
    links: list[str] = []
    for first in range(1, n + 1, 1000):
        ids = list(range(first, min(first + 1000, n + 1)))
        batch = hook.request_links(hook.build_request(REPORT_PART_ID, ids, START, END, response_mode=1))
        assert len(batch) == len(ids), (len(batch), len(ids))
        links += batch
        time.sleep(gap)
    trigger = CloudmaxDownloadLinkTrigger.for_connection(
        links[:1], hook.settings, smb_conn_id=None, poll_interval=poll, deadline=None
    )
    _, kwargs = trigger.serialize()  # what the sensor hands the triggerer: primitives only
    del kwargs["links"], kwargs["deadline"]
    Path(spec["links_file"]).write_text(json.dumps({"links": links, "trigger_kwargs": kwargs}))
    return {"links": len(links)}


def _triggers(spec: dict[str, Any]) -> dict[str, Any]:
    """One CloudmaxDownloadLinkTrigger per link of ``spec["links_file"]``, all on this process's one event loop.

    The process holds what a triggerer's runner holds before its triggers arrive: Airflow with the triggerer's own
    module (``airflow.jobs.triggerer_job_runner``: the ORM, the Task SDK, greenback), the trigger's code and what it
    imports when it runs (aiohttp, tenacity, yarl); nothing of the requests-based hook. Each trigger is built from
    its serialized kwargs, as the triggerer does, at a random moment within one poll interval (deferred sensors
    arrive over time, not all in the same millisecond), and runs in a task of its own, as under the triggerer.
    Records, per link, the wall-clock moment its trigger started and fired; the parent compares them with the
    moment the emulator made the file ready.
    """
    import asyncio
    import gc
    import random

    import aiohttp  # noqa: F401  (the trigger imports these when it runs; a triggerer running it has them)
    import airflow.jobs.triggerer_job_runner  # noqa: F401
    import tenacity  # noqa: F401
    import yarl  # noqa: F401

    from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger

    given = json.loads(Path(spec["links_file"]).read_text())
    links: list[str] = given["links"]
    kwargs: dict[str, Any] = given["trigger_kwargs"]
    poll = kwargs["poll_interval"]
    rng = random.Random(1)
    fired: dict[str, float] = {}
    started: dict[str, float] = {}
    statuses: dict[str, int] = {}
    out: dict[str, Any] = {}

    async def one(link: str, delay: float) -> None:
        await asyncio.sleep(delay)
        started[link] = time.time()
        trigger = CloudmaxDownloadLinkTrigger(**kwargs, links=[link], deadline=time.time() + 600)
        async for event in trigger.run():
            statuses[event.payload["status"]] = statuses.get(event.payload["status"], 0) + 1
            fired[link] = time.time()

    async def main() -> None:
        await asyncio.gather(*(one(link, rng.uniform(0, poll)) for link in links))

    del given
    gc.collect()
    with _Profile(spec.get("profile_svg")):
        t0, c0 = _start(out)
        asyncio.run(main())
        _stop(out, t0, c0)
    out.update(fired=fired, started=started, statuses=statuses, bytes_in=0, bytes_out=0)
    return out


def _stages(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU cost of each step of land_report's pipeline, in this process, over chunks already in memory.

    The chunks are the first ``spec["stage_bytes"]`` of each report file, cut in the hook's CHUNK_SIZE.
    """
    import codecs

    from cloudmax_provider.hooks.cloudmax import CHUNK_SIZE
    from cloudmax_provider.response import CsvRowCounter, detect_encoding, transcode
    from cloudmax_provider.streams import Progress, csv_body

    def load(path: str) -> list[bytes]:
        chunks = []
        with open(path, "rb") as fh:
            left = spec["stage_bytes"]
            while left > 0 and (chunk := fh.read(min(CHUNK_SIZE, left))):
                chunks.append(chunk)
                left -= len(chunk)
        return chunks

    def drain(it: Any) -> None:
        for _ in it:
            pass

    def feed(chunks: list[bytes]) -> None:
        counter = CsvRowCounter()
        for chunk in chunks:
            counter.feed(chunk)

    utf8, utf16 = load(spec["path_utf8"]), load(spec["path_utf16"])
    enc8, enc16 = detect_encoding(utf8[0]), detect_encoding(utf16[0])
    CsvRowCounter().feed(utf8[0])  # imports numpy (once per task process): set-up, not counting
    steps: list[tuple[str, list[bytes], Any]] = [
        ("transcode utf-8 -> utf-8", utf8, lambda c: drain(transcode(c, enc8, "utf-8"))),
        ("transcode utf-16 -> utf-8", utf16, lambda c: drain(transcode(c, enc16, "utf-8"))),
        ("CsvRowCounter.feed", utf8, feed),
        ("land_report pipeline utf-8", utf8, lambda c: drain(Progress("x").track(csv_body(True, c, enc8, "utf-8")))),
        (
            "land_report pipeline utf-16",
            utf16,
            lambda c: drain(Progress("x").track(csv_body(True, c, enc16, "utf-8"))),
        ),
    ]
    result: dict[str, Any] = {"source_codec": {"utf-8": enc8.codec, "utf-16": enc16.codec}}
    for name, chunks, fn in steps:
        nbytes = sum(map(len, chunks))
        t0 = time.perf_counter()
        fn(chunks)
        result[name] = {"bytes": nbytes, "seconds": time.perf_counter() - t0}
    # transcode() passes bytes through only when these are equal; "utf_8" != "utf-8" means it decodes and re-encodes
    result["utf8_passthrough"] = enc8.codec == codecs.lookup("utf-8").name
    return result


# ==== parent side ===========================================================================================


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(cmd: list[str], work: Path, tag: str, stdout: Any) -> tuple[int, dict[str, Any], Path]:
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


#: A child is this file imported as a module (its byte code cached in .bench/pycache), then ``main(--child ...)``:
#: run as a script it would be compiled from source in every child, which leaves ~4 MiB in the child's RSS.
_CHILD = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import run; sys.exit(run.main())",
    "--child",
]


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _git_head() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


class Bench:
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
        cmd = [*_CHILD, case, json.dumps(spec)]
        t0 = time.perf_counter()
        code, usage, log = _spawn(cmd, self.work, case, subprocess.DEVNULL)
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
            code, usage, log = _spawn(cmd, self.work, "curl", fh)
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
        print(_line(row), flush=True)
        return row

    # ---- the benchmarks --------------------------------------------------------------------------------

    def download(self, emu: Any, size: int, fields: dict[str, str]) -> None:
        have_curl = shutil.which("curl") is not None
        infos = {}
        for enc in ("utf-8", "utf-16"):
            emu.settings.csv_encoding = enc
            t0 = time.perf_counter()
            infos[enc] = emu.big_report_info(REPORT_PART_ID)
            print(
                f"  report file {enc}: {infos[enc][1] / MiB:.0f} MiB, {infos[enc][2]:,} data rows "
                f"(generated in {time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
        self.info["download"] = {enc: {"bytes": i[1], "rows": i[2]} for enc, i in infos.items()}
        # Every case that writes a file starts with no dirty pages of an earlier write (the generated reports,
        # the previous case) still waiting for the disk: os.sync() outside the clock, so one case's writeback
        # does not throttle the next one's writes (curl -> file alone moved 260-750 MiB/s without it).
        os.sync()
        samples: dict[str, list[dict[str, Any]]] = {}
        out_dir = self.work / "landed"
        for run in range(self.args.repeat):
            print(f"  run {run + 1}/{self.args.repeat} ...", flush=True)
            for enc in ("utf-8", "utf-16"):
                emu.settings.csv_encoding = enc
                _, nbytes, rows = infos[enc]
                if have_curl:
                    samples.setdefault(f"curl {enc}", []).append(self.run_curl(emu.endpoint_url, fields, nbytes))
                    if enc == "utf-8":  # the floor a file costs: curl writing the same bytes to a file
                        out_dir.mkdir(exist_ok=True)
                        to = str(out_dir / "curl.csv")
                        os.sync()
                        samples.setdefault("curl utf-8 -> file", []).append(
                            self.run_curl(emu.endpoint_url, fields, nbytes, to=to)
                        )
                        shutil.rmtree(out_dir, ignore_errors=True)
                if enc == "utf-8":
                    s = self.run_python("provider_devnull", {})
                    assert s["bytes_in"] == nbytes, (s, nbytes)
                    samples.setdefault("provider open_report", []).append(s)
                shutil.rmtree(out_dir, ignore_errors=True)
                out_dir.mkdir()
                dest = out_dir / f"report-{enc}.csv"
                os.sync()
                s = self.run_python("provider_land", {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes})
                assert s["rows"] == rows, (s, rows)
                assert dest.stat().st_size == s["bytes_out"], (dest.stat().st_size, s)
                assert enc != "utf-8" or s["bytes_out"] == nbytes, (s, nbytes)
                assert [p.name for p in out_dir.iterdir()] == [dest.name]  # no .partial left behind
                samples.setdefault(f"land file {enc}", []).append(s)
                shutil.rmtree(out_dir, ignore_errors=True)
                if self.args.profile and run == 0:
                    out_dir.mkdir()
                    svg = self.profile_path(f"land-file-{enc}")
                    spec = {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes, "profile_svg": svg}
                    self.run_python("provider_land", spec)
                    print(f"  profile written to {svg}", flush=True)
                    shutil.rmtree(out_dir, ignore_errors=True)
        emu.settings.csv_encoding = "utf-8"

        group = f"download {size // MiB} MiB from the emulator (ResponseMode 3)"
        print(f"\n## {group}", flush=True)
        base8 = base16 = None
        if have_curl:
            base8, base16 = "curl utf-8", "curl utf-16"
            self.record(
                group, base8, samples[base8], None, "curl -s -o /dev/null, the same POST form", is_baseline=True
            )
        else:
            print("  curl not found: no download baseline, ratios omitted", flush=True)
        self.record(group, "provider open_report", samples["provider open_report"], base8, "chunks -> /dev/null")
        self.record(group, "land file utf-8", samples["land file utf-8"], base8, "land_report -> file://")
        if have_curl:
            self.record(
                group,
                "curl utf-8 -> file",
                samples["curl utf-8 -> file"],
                base8,
                "reference: curl -o FILE, the cost of writing the bytes to a file",
            )
        if have_curl:
            self.record(
                group, base16, samples[base16], None, "curl, the same report served as UTF-16", is_baseline=True
            )
        self.record(
            group,
            "land file utf-16",
            samples["land file utf-16"],
            base16,
            "land_report -> file://, UTF-16 -> UTF-8 (rate of source bytes)",
        )

        stage_bytes = min(size, STAGE_MIB * MiB)
        s = self.run_python(
            "stages",
            {"path_utf8": str(infos["utf-8"][0]), "path_utf16": str(infos["utf-16"][0]), "stage_bytes": stage_bytes},
        )
        group = f"land_report's pipeline steps, CPU only ({stage_bytes // MiB} MiB in memory, one process)"
        print(f"\n## {group}", flush=True)
        self.info["stages"] = s["stages"]
        for name, base in (
            ("transcode utf-8 -> utf-8", base8),
            ("CsvRowCounter.feed", base8),
            ("land_report pipeline utf-8", base8),
            ("transcode utf-16 -> utf-8", base16),
            ("land_report pipeline utf-16", base16),
        ):
            st = s["stages"][name]
            sample = {"bytes_in": st["bytes"], "bytes_out": st["bytes"], "seconds": st["seconds"]}
            sample["cpu_seconds"] = st["seconds"]
            note = {
                "transcode utf-8 -> utf-8": "csv_body/transcode with output_encoding='utf-8' on a UTF-8 body",
                "CsvRowCounter.feed": "Progress.track's row count",
                "land_report pipeline utf-8": "csv_body + Progress.track, i.e. land_report minus I/O",
                "transcode utf-16 -> utf-8": "decode + encode",
                "land_report pipeline utf-16": "csv_body + Progress.track, i.e. land_report minus I/O",
            }[name]
            self.record(group, name, [sample], base, note)

    def s3(self, emu: Any, size: int) -> None:
        import boto3

        s3_size = min(size, self.args.s3_cap_mb * MiB)
        emu.settings.csv_encoding = "utf-8"
        emu.settings.big_report_bytes = s3_size
        path, nbytes, rows = emu.big_report_info(REPORT_PART_ID)
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        )
        ready = self.work / "moto-ready.json"
        spec = {"port": port, "result": str(ready)}
        cmd = [*_CHILD, "moto", json.dumps(spec)]
        log = open(self.work / "moto.log", "wb")  # noqa: SIM115 - closed in finally
        moto = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        base: list[dict[str, Any]] = []
        prov: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if moto.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: {(self.work / 'moto.log').read_text()[-2000:]}")
                time.sleep(0.1)
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            for run in range(self.args.s3_repeat):
                print(f"  run {run + 1}/{self.args.s3_repeat} ...", flush=True)
                key = f"baseline/{run}.csv"
                spec = {"endpoint_url": endpoint, "path": str(path), "key": key, "source_bytes": nbytes}
                base.append(self.run_python("boto3_upload", spec))
                assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == nbytes
                client.delete_object(Bucket=BUCKET, Key=key)
                key = f"provider/{run}.csv"
                s = self.run_python(
                    "provider_land", {"uri": f"s3://{BUCKET}/{key}", "conn_id": AWS_CONN_ID, "source_bytes": nbytes}
                )
                assert s["rows"] == rows and s["bytes_out"] == nbytes, (s, rows, nbytes)
                assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == nbytes
                left = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
                assert left == [key], left  # no .partial object left behind
                orphans = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
                assert orphans == [], orphans  # every multipart upload completed, none left open
                client.delete_object(Bucket=BUCKET, Key=key)
                prov.append(s)
            if self.args.profile:
                svg = self.profile_path("land-s3")
                spec = {"uri": f"s3://{BUCKET}/profiled.csv", "conn_id": AWS_CONN_ID, "source_bytes": nbytes}
                self.run_python("provider_land", {**spec, "profile_svg": svg})
                client.delete_object(Bucket=BUCKET, Key="profiled.csv")
                print(f"  profile written to {svg}", flush=True)
            moto_hwm = _status_kib(moto.pid, "VmHWM")
        finally:
            moto.send_signal(signal.SIGTERM)
            try:
                moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait()
            log.close()
            emu.settings.big_report_bytes = size
        capped = f", capped from {size // MiB} MiB" if s3_size < size else ""
        group = f"S3 upload {s3_size // MiB} MiB to moto{capped}"
        self.info["s3"] = {"bytes": nbytes, "rows": rows, "capped": s3_size < size, "moto_peak_rss_kib": moto_hwm}
        print(f"\n## {group}", flush=True)
        self.record(
            group,
            "boto3 upload_fileobj",
            base,
            None,
            "the same CSV file from disk (TransferConfig defaults)",
            is_baseline=True,
        )
        self.record(
            group,
            "land s3 utf-8",
            prov,
            "boto3 upload_fileobj",
            "emulator -> land_object -> s3:// (boto3 client, parts uploaded concurrently)",
        )
        if moto_hwm:
            print(f"  (moto's own peak RSS: {moto_hwm / 1024:.0f} MiB; a server figure, not a client one)", flush=True)

    def rss_curve(self, emu: Any, sizes: list[int], fields: dict[str, str]) -> None:
        """Peak RSS against report size: the provider (land_report -> file://) and the peer pattern."""
        emu.settings.csv_encoding = "utf-8"
        points: list[dict[str, Any]] = []
        print(f"\n## peak RSS against report size ({', '.join(str(m // MiB) for m in sizes)} MiB)", flush=True)
        print(f"  {'size MiB':>8} {'provider peak':>14} {'growth':>7} {'peer peak':>10} {'growth':>7}", flush=True)
        out_dir = self.work / "rss"
        for size in sizes:
            emu.settings.big_report_bytes = size
            _, nbytes, rows = emu.big_report_info(REPORT_PART_ID)
            out_dir.mkdir(exist_ok=True)
            dest = out_dir / "report.csv"
            prov = self.run_python("provider_land", {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes})
            assert prov["rows"] == rows and dest.stat().st_size == nbytes, (prov, rows, nbytes)
            peer = self.run_python("peer_land", {"url": emu.endpoint_url, "fields": fields, "path": str(dest)})
            assert peer["bytes_out"] == nbytes == dest.stat().st_size, (peer, nbytes)
            shutil.rmtree(out_dir, ignore_errors=True)
            point = {
                "size_mib": nbytes / MiB,
                "provider_peak_mib": prov["vmhwm_kib"] / 1024,
                "provider_before_mib": prov["rss_before_kib"] / 1024,
                "peer_peak_mib": peer["vmhwm_kib"] / 1024,
                "peer_before_mib": peer["rss_before_kib"] / 1024,
            }
            points.append(point)
            print(
                f"  {point['size_mib']:8.0f} {point['provider_peak_mib']:14.0f} "
                f"{point['provider_peak_mib'] - point['provider_before_mib']:+7.0f} {point['peer_peak_mib']:10.0f} "
                f"{point['peer_peak_mib'] - point['peer_before_mib']:+7.0f}",
                flush=True,
            )
        self.info["rss_curve"] = points
        self.plot_rss(points)

    def plot_rss(self, points: list[dict[str, Any]]) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("  matplotlib not installed (the bench extra has it): no plot", flush=True)
            return
        sizes = [p["size_mib"] for p in points]
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        ax.plot(sizes, [p["provider_peak_mib"] for p in points], "o-", label="provider: land_report -> file://")
        ax.plot(sizes, [p["peer_peak_mib"] for p in points], "s--", label="peer: requests.post().content, then write")
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("report size (MiB)")
        ax.set_ylabel("peak RSS of the process (MiB; Airflow loaded)")
        ax.set_title("Peak memory against report size (one process per point)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        self.args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.args.plot)
        plt.close(fig)
        self.info["plot"] = str(self.args.plot)
        print(f"  plot written to {self.args.plot}", flush=True)

    def run_triggers(self, emu: Any, n: int, poll: float, profile_svg: str | None = None) -> dict[str, Any]:
        """The links asked for in one child, then waited on by ``n`` triggers in a fresh one."""
        gap = 0.5
        # files ready after 1.5 poll intervals, + the time the emulator takes to make the links (~1 s per 1,000
        # here) + the triggers' process start (~5 s): most become ready while their trigger waits
        emu.settings.link_ready_after = poll * 1.5 + n / 1000 + 5
        links_file = str(self.work / f"links-{time.monotonic_ns()}.json")
        self.run_python("request_links", {"links": n, "poll_interval": poll, "gap": gap, "links_file": links_file})
        emu.clear_log()
        out = self.run_python("triggers", {"links_file": links_file, "profile_svg": profile_svg})
        out["probes"] = len(emu.link_requests)
        emu.clear_log()
        return out

    def triggers(self, emu: Any) -> None:
        """10,000 links, one trigger each, on one event loop in a fresh process."""
        n, poll = self.args.links, self.args.poll_interval
        emu.settings.big_report_bytes = 0
        emu.settings.split_links = True
        emu.settings.rows_per_launch = 1
        s = self.run_triggers(emu, n, poll)
        probes = s["probes"]
        assert s["statuses"] == {"success": n}, s["statuses"]
        from cloudmax_provider.testing.emulator import LINK_PREFIX

        # the emulator's own moment each file became ready (monotonic in this process) -> wall clock
        offset = time.time() - time.monotonic()
        ready = {token: f.ready_at + offset for token, f in emu._links.items()}
        # from the later of "the file is ready" and "the trigger started" (a file ready before its sensor
        # deferred is seen at the trigger's first probe) to the event
        lags = sorted(
            t - max(ready[link.split(LINK_PREFIX, 1)[1].split("/", 1)[0]], s["started"][link])
            for link, t in s["fired"].items()
        )
        if self.args.profile:  # a shorter run under py-spy (the measured run above is not profiled)
            self.run_triggers(emu, min(n, 2000), 5.0, self.profile_path("triggers"))
        emu.settings.link_ready_after = 0.0
        rounds = probes / n
        fig = {
            "links": n,
            "poll_interval": poll,
            "probes": probes,
            "rounds_per_trigger": rounds,
            "cpu_seconds": s["cpu_seconds"],
            "seconds": s["seconds"],
            "cpu_seconds_per_round": s["cpu_seconds"] / rounds,
            "peak_rss_mib": s["vmhwm_kib"] / 1024,
            "rss_before_mib": s["rss_before_kib"] / 1024,
            "kib_per_trigger": (s["vmhwm_kib"] - s["rss_before_kib"]) / n,
            "lag_max": max(lags),
            "lag_p50": statistics.median(lags),
            "lag_p99": lags[int(len(lags) * 0.99) - 1],
        }
        self.info["triggers"] = fig
        print(
            f"\n## {n:,} links, one CloudmaxDownloadLinkTrigger each, one event loop (poll_interval={poll:g}s)\n"
            f"  all fired 'success' in {fig['seconds']:.1f}s; {probes:,} probes ({rounds:.1f} per trigger); "
            f"CPU {fig['cpu_seconds']:.1f}s = {fig['cpu_seconds_per_round']:.2f}s per round of {n:,} probes\n"
            f"  delay from file ready to event: median {fig['lag_p50']:.2f}s, p99 {fig['lag_p99']:.2f}s, "
            f"max {fig['lag_max']:.2f}s\n"
            f"  peak RSS {fig['peak_rss_mib']:.0f} MiB (before the triggers: {fig['rss_before_mib']:.0f} MiB, "
            f"Airflow and the triggerer's module loaded); {fig['kib_per_trigger']:.1f} KiB per trigger over that",
            flush=True,
        )

    def fixed_cost(self, emu: Any, fields: dict[str, str]) -> None:
        """Seconds of one small report task: the operator's execute vs a bare POST + write (fresh processes)."""
        emu.settings.big_report_bytes = 0
        emu.settings.csv_encoding = "utf-8"
        out_dir = self.work / "fixed"
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(self.args.fixed_repeat):
            for case in ("fixed_bare", "fixed_provider", "fixed_provider_warm_fs"):
                out_dir.mkdir(exist_ok=True)
                spec = {"url": emu.endpoint_url, "fields": fields, "path": str(out_dir / "report.csv")}
                runs.setdefault(case, []).append(self.run_python(case, spec))
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
        self.info["fixed_cost"] = fig
        print(
            f"\n## fixed cost of one small report task ({fig['bytes']:,} bytes; median of {self.args.fixed_repeat}, "
            "fresh processes, clock started after `import airflow.sdk`)\n"
            f"  bare POST + write {fig['bare_seconds']:.3f}s; CloudmaxReportOperator.execute -> file:// "
            f"{fig['provider_seconds']:.3f}s (operator import {imp:.3f}s); "
            f"fixed cost {fig['fixed_cost_seconds']:.3f}s\n"
            f"  with ObjectStoragePath already used once in the process: {fig['provider_warm_fs_seconds']:.3f}s "
            f"(its first use costs {fig['object_storage_first_use_seconds']:.3f}s)",
            flush=True,
        )

    def import_cost(self) -> None:
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
        self.info["import_ms"] = fig
        print("\n## import over airflow.sdk: " + ", ".join(f"{m} {v:.0f} ms" for m, v in fig.items()), flush=True)

    # ---- goals ---------------------------------------------------------------------------------------------

    def goals(self) -> list[dict[str, Any]]:
        """Every goal of issue 10 with the measured figure and PASS/MISS (MISS also when the figure is missing)."""
        by_name = {r["name"]: r for r in self.rows}
        size = self.args.size_mb
        out: list[dict[str, Any]] = []

        def goal(name: str, value: float | None, target: float, unit: str, higher_better: bool, note: str = "") -> None:
            if value is None:
                status = "n/a"
            else:
                status = "PASS" if (value >= target if higher_better else value <= target) else "MISS"
            out.append(
                {
                    "goal": name,
                    "value": value,
                    "target": target,
                    "unit": unit,
                    "higher_is_better": higher_better,
                    "status": status,
                    "note": note,
                }
            )

        def ratio(name: str) -> float | None:
            row = by_name.get(name)
            return row.get("ratio") if row else None

        at = f"at {size} MiB" + ("" if size >= 1024 else " (the goal is at 1 GiB)")
        goal("land file utf-8 vs curl", ratio("land file utf-8"), 0.8, "x", True, at)
        to_file = by_name.get("curl utf-8 -> file")
        if to_file and by_name.get("land file utf-8"):
            same = by_name["land file utf-8"]["mib_s"] / to_file["mib_s"]
            out.append(
                {
                    "goal": "  (reference: land file vs curl -o FILE)",
                    "value": same,
                    "target": 0.8,
                    "unit": "x",
                    "higher_is_better": True,
                    "status": "info",
                    "note": "both write the file; not a goal of issue 10",
                }
            )
        goal("land file utf-16 -> utf-8 vs curl utf-16", ratio("land file utf-16"), 0.6, "x", True, at)
        s3 = by_name.get("land s3 utf-8")
        s3_note = f"at {self.info.get('s3', {}).get('bytes', 0) / MiB:.0f} MiB (the goal is at >= 256 MiB)"
        goal("land s3 vs boto3 upload_fileobj", ratio("land s3 utf-8"), 0.9, "x", True, s3_note)
        goal("land s3 RSS growth", s3.get("rss_growth_mib") if s3 else None, 150, "MiB", False, s3_note)
        curve = self.info.get("rss_curve")
        if curve:
            first, last = curve[0], curve[-1]
            grow = last["provider_peak_mib"] - first["provider_peak_mib"]
            note = f"peak RSS at {last['size_mib']:.0f} MiB minus at {first['size_mib']:.0f} MiB"
            goal("provider peak RSS, small -> big report", grow, 32, "MiB", False, note)
        else:
            goal("provider peak RSS, small -> big report", None, 32, "MiB", False)
        trig = self.info.get("triggers")
        if trig:
            note = f"{trig['links']:,} triggers; CPU {trig['cpu_seconds_per_round']:.2f}s per round"
            if trig["links"] < 10_000:
                note += " (the goal is at 10,000)"
            goal("waiting links: peak RSS", trig["peak_rss_mib"] * MiB / 1e6, 200, "MB", False, note)
            lag_target = trig["poll_interval"] + 1
            goal("waiting links: max delay ready -> event", trig["lag_max"], lag_target, "s", False, "poll + 1 s")
        else:
            goal("waiting links: peak RSS", None, 200, "MB", False)
            goal("waiting links: max delay ready -> event", None, self.args.poll_interval + 1, "s", False)
        fixed = self.info.get("fixed_cost")
        goal(
            "fixed cost of one report task",
            fixed["fixed_cost_seconds"] if fixed else None,
            0.3,
            "s",
            False,
            f"of which ObjectStoragePath's first use {fixed['object_storage_first_use_seconds']:.2f}s" if fixed else "",
        )
        for module, ms in self.info.get("import_ms", {}).items():
            goal(f"import {module.rsplit('.', 2)[-2]}.{module.rsplit('.', 1)[-1]}", ms, 100, "ms", False)
        return out


def _goal_table(goals: list[dict[str, Any]]) -> str:
    lines = [f"  {'goal':<44} {'measured':>10} {'goal':>10}  result  note"]
    for g in goals:
        value = "-" if g["value"] is None else f"{g['value']:.2f}{g['unit']}"
        op = ">=" if g["higher_is_better"] else "<="
        lines.append(
            f"  {g['goal']:<44} {value:>10} {op + ' ' + format(g['target'], 'g') + g['unit']:>10}  "
            f"{g['status']:<6}  {g['note']}"
        )
    return "\n".join(lines)


def _fmt(row: dict[str, Any], key: str, spec: str, width: int) -> str:
    return format(row[key], spec).rjust(width) if key in row else "-".rjust(width)


def _line(row: dict[str, Any]) -> str:
    if "ratio" in row:
        ratio = f"{row['ratio']:.2f}x {row['baseline']}"
    else:
        ratio = "(baseline)" if row.get("is_baseline") else "- (no baseline)"
    return (
        f"  {row['name']:<28} {_fmt(row, 'mib_s', '.1f', 8)} {ratio:<28} {_fmt(row, 'seconds', '.2f', 7)} "
        f"{_fmt(row, 'cpu_seconds', '.2f', 7)} {_fmt(row, 'peak_rss_mib', '.0f', 8)} "
        f"{_fmt(row, 'rss_before_mib', '.0f', 7)} {_fmt(row, 'rss_growth_mib', '+.0f', 7)}  {row['note']}"
    )


HEADER = (
    f"  {'case':<28} {'MiB/s':>8} {'ratio vs baseline':<28} {'sec':>7} {'CPU s':>7} {'peak RSS':>8} "
    f"{'before':>7} {'growth':>7}  note (RSS in MiB)"
)


def _table(rows: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            lines += ["", f"## {group}", HEADER]
        lines.append(_line(row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Cloudmax provider benchmarks (see bench/README.md)")
    ap.add_argument("--size-mb", type=int, default=1024, help="report size in MiB (default 1024)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a 64 MiB report, one run per case, 2,000 links polled every 5 s (about two minutes)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of each download case; the median is shown (3)")
    ap.add_argument("--s3-cap-mb", type=int, default=256, help="largest S3 upload in MiB (default 256)")
    ap.add_argument("--s3-repeat", type=int, default=3, help="runs of each S3 case (3; 1 with --quick)")
    ap.add_argument("--no-s3", action="store_true", help="skip the S3 part")
    ap.add_argument("--no-download", action="store_true", help="skip the download part")
    ap.add_argument("--no-rss", action="store_true", help="skip peak RSS against report size (and the plot)")
    ap.add_argument("--no-triggers", action="store_true", help="skip the waiting-links part")
    ap.add_argument("--no-fixed", action="store_true", help="skip the fixed cost and import time")
    ap.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only this part (repeatable): e.g. --only triggers is --no-download --no-s3 --no-rss --no-fixed",
    )
    ap.add_argument("--links", type=int, default=10_000, help="links for the trigger part (10,000)")
    ap.add_argument(
        "--poll-interval", type=float, default=30.0, help="the triggers' poll_interval (30 s, the operator's default)"
    )
    ap.add_argument("--fixed-repeat", type=int, default=3, help="runs of each fixed-cost case (3)")
    ap.add_argument("--plot", type=Path, default=ROOT / ".bench" / "rss_vs_size.png", help="the RSS plot (PNG)")
    ap.add_argument(
        "--profile",
        metavar="LABEL",
        help="also run each landing case once under py-spy: bench/profiles/LABEL-CASE-SIZE.svg flame graphs",
    )
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results (default .bench/results.json)")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child[0], json.loads(args.child[1]))
        return 0
    for part in PARTS if args.only else ():
        if part not in args.only:
            setattr(args, f"no_{part}", True)
    if args.quick:
        args.size_mb = 64
        args.poll_interval = min(args.poll_interval, 5.0)
        args.fixed_repeat = 1
        args.repeat = 1
        args.s3_repeat = 1
        args.links = min(args.links, 2000)
    size = args.size_mb * MiB
    started = time.perf_counter()
    load_before = os.getloadavg()

    work = Path(tempfile.mkdtemp(prefix="cloudmax-bench-"))
    home = work / "airflow-home"
    home.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'unused.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(key, None)
    # Children start faster with byte code cached (PYTHONDONTWRITEBYTECODE would make every child compile
    # Airflow from source); the cache lives in the git-ignored .bench/, never in the venv. Set-up only.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(ROOT / ".bench" / "pycache")

    from cloudmax_provider.request import Credentials, build_report_request, encode_request
    from cloudmax_provider.testing.emulator import CloudmaxEmulator, EmulatorSettings

    login, password = "bench", "bench-password"
    emu = CloudmaxEmulator(EmulatorSettings(accounts={login: password}, big_report_bytes=size)).start()
    bench = Bench(args, work)
    try:
        os.environ[f"AIRFLOW_CONN_{CLOUDMAX_CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "cloudmax",
                "host": emu.base_url,
                "login": login,
                "password": password,
                "extra": {"timeout": 120, "timezone": "Asia/Taipei"},
            }
        )
        request = build_report_request(REPORT_PART_ID, LAUNCH_IDS, START, END, timezone="Asia/Taipei", response_mode=3)
        wire = encode_request(emu.endpoint_url, request.fields(), Credentials(login, password))
        fields = dict(wire.data or ())  # exactly the provider's POST form, credentials included
        print(
            f"Cloudmax provider benchmark: {args.size_mb} MiB report, {args.repeat} run(s) per download case; "
            f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f}, Python {platform.python_version()}, "
            f"commit {_git_head()}",
            flush=True,
        )
        if load_before[0] > (os.cpu_count() or 1) / 2:
            print(
                "  note: the machine is busy (load average above half the CPUs): rates will be lower and noisier",
                flush=True,
            )
        if not GNU_TIME:
            print("  note: no /usr/bin/time: curl's peak RSS includes this process's RSS (a ceiling)", flush=True)
        if not args.no_download:
            print(f"\n# download: emulator at {emu.base_url}", flush=True)
            bench.download(emu, size, fields)
        if not args.no_s3:
            print("\n# S3 upload: moto's S3 server in its own process on loopback", flush=True)
            bench.s3(emu, size)
        if not args.no_rss:
            sizes = sorted({10 * MiB, *([64 * MiB, 256 * MiB] if size > 256 * MiB else []), size})
            bench.rss_curve(emu, [m for m in sizes if m <= size], fields)
        if not args.no_triggers:
            print(f"\n# waiting links: {args.links:,} triggers on one event loop, against the emulator", flush=True)
            bench.triggers(emu)
        if not args.no_fixed:
            bench.fixed_cost(emu, fields)
            bench.import_cost()
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)

    total = time.perf_counter() - started
    goals = bench.goals()
    print("\n# results" + _table(bench.rows))
    print(f"\n# goals (issue 10), {args.size_mb} MiB run\n" + _goal_table(goals))
    print(
        f"\nTotal run time {total:.0f}s (load average {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at "
        "the end). MiB/s = source bytes / seconds of the transfer itself (set-up excluded); ratio = case / baseline, "
        "1.00 = as fast as the baseline. Peak RSS = the process's own high-water mark, 'before' = its RSS just "
        "before the transfer, growth = peak - before."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "size_mib": args.size_mb,
                "quick": bool(args.quick),
                "repeat": args.repeat,
                "total_seconds": total,
                "load_average": {"start": load_before, "end": os.getloadavg()},
                "commit": _git_head(),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "info": bench.info,
                "goals": goals,
                "results": bench.rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"Results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
