"""The download part: the big report downloaded (curl, ``open_report``) and landed to a file (``land_object``),
UTF-8 and UTF-16, each against curl; and the CPU cost of each step of land_object's pipeline in memory.

The ``provider_land`` child is also the landing case of the S3 and RSS parts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPORT_PART_ID,
    STAGE_MIB,
    Bench,
    MiB,
    Profile,
    XcomSink,
    hook_and_request,
    proc_status_kib,
    start,
    stop,
)

# ==== child side ================================================================================================


def child(case: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The ``provider_devnull``, ``provider_land`` and ``stages`` cases."""
    if case == "provider_devnull":
        return _provider_devnull(spec)
    if case == "provider_land":
        return _provider_land(spec)
    return {"stages": _stages(spec)}


def _provider_devnull(spec: dict[str, Any]) -> dict[str, Any]:
    """``open_report``'s chunks written to /dev/null."""
    out: dict[str, Any] = {}
    hook, request = hook_and_request(spec)
    received = 0
    t0, c0 = start(out)
    with hook.open_report(request) as stream, open(os.devnull, "wb") as sink:
        for chunk in stream.chunks:
            sink.write(chunk)
            received += len(chunk)
    stop(out, t0, c0)
    out["bytes_in"] = out["bytes_out"] = received
    return out


def _provider_land(spec: dict[str, Any]) -> dict[str, Any]:
    """``land_object`` to ``spec["uri"]`` (a file or an S3 key), the final move timed apart."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    import cloudmax_provider.landing.atomic as atomic
    from cloudmax_provider.landing.land import land_object
    from cloudmax_provider.landing.lineage import push_landed

    out: dict[str, Any] = {}
    hook, request = hook_and_request(spec)
    uri, conn_id = spec["uri"], spec.get("conn_id")
    dest = ObjectStoragePath(uri, conn_id=conn_id)
    # The first use of an ObjectStoragePath makes Airflow discover every provider's filesystem and, on the
    # first open(), load the plugins for its hook-lineage collector: ~300 modules (boto3 among them, even for
    # file://). A task process pays that once, whatever the size; it is timed apart from the transfer, as
    # set-up (fs_setup_seconds), together with creating the S3 client.
    out["rss_imports_kib"] = proc_status_kib("VmRSS")
    t = time.perf_counter()
    warm = dest.parent / f".bench-warm-up-{os.getpid()}"
    with warm.open("wb") as fh:  # the first open() also starts Airflow's hook-lineage collector (plugins)
        fh.write(b"x")
    warm.unlink()
    from cloudmax_provider.formats.row_counter import CsvRowCounter

    CsvRowCounter().feed(b'"a",1\r\n' * 40_000)  # imports numpy, as a task process does once: set-up, not transfer
    if dest.protocol in ("s3", "s3a"):  # the boto3 client the writer uses, as the baseline's is made first
        from cloudmax_provider.landing import s3

        s3.client_for(dest)
    out["fs_setup_seconds"] = time.perf_counter() - t
    moves: list[float] = []
    real_move = atomic._move

    def timed_move(tmp: Any, dest: Any) -> None:  # times the final move (a server-side copy on S3)
        t = time.perf_counter()
        real_move(tmp, dest)
        moves.append(time.perf_counter() - t)

    atomic._move = timed_move  # type: ignore[assignment]
    sink = XcomSink()
    with Profile(spec.get("profile_svg")):
        t0, c0 = start(out)
        push_landed({"ti": sink}, [land_object(hook, hook.sources(request), uri, conn_id, "utf-8").as_xcom()])
        stop(out, t0, c0)
    out["move_seconds"] = sum(moves)
    out["bytes_in"] = spec["source_bytes"]
    out["bytes_out"] = sink.pushed.get("bytes")
    out["rows"] = sink.pushed.get("rows")
    return out


def _stages(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU cost of each step of land_object's pipeline, in this process, over chunks already in memory.

    The chunks are the first ``spec["stage_bytes"]`` of each report file, cut in the hook's CHUNK_SIZE.
    """
    import codecs

    from cloudmax_provider.api.body import detect_encoding
    from cloudmax_provider.formats.encoding import transcode
    from cloudmax_provider.formats.row_counter import CsvRowCounter
    from cloudmax_provider.formats.streams import Progress, csv_body
    from cloudmax_provider.hooks.cloudmax import CHUNK_SIZE

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
        ("land_object pipeline utf-8", utf8, lambda c: drain(Progress("x").track(csv_body(True, c, enc8, "utf-8")))),
        (
            "land_object pipeline utf-16",
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


# ==== parent side ===============================================================================================

STAGE_NOTES = {
    "transcode utf-8 -> utf-8": "csv_body/transcode with output_encoding='utf-8' on a UTF-8 body",
    "CsvRowCounter.feed": "Progress.track's row count",
    "land_object pipeline utf-8": "csv_body + Progress.track, i.e. land_object minus I/O",
    "transcode utf-16 -> utf-8": "decode + encode",
    "land_object pipeline utf-16": "csv_body + Progress.track, i.e. land_object minus I/O",
}


def run(bench: Bench, emu: Any, size: int, fields: dict[str, str]) -> None:
    """The download part: every case ``--repeat`` times, then their rows, then the pipeline steps."""
    have_curl = shutil.which("curl") is not None
    infos = _report_files(bench, emu)
    # Every case that writes a file starts with no dirty pages of an earlier write (the generated reports,
    # the previous case) still waiting for the disk: os.sync() outside the clock, so one case's writeback
    # does not throttle the next one's writes (curl -> file alone moved 260-750 MiB/s without it).
    os.sync()
    samples: dict[str, list[dict[str, Any]]] = {}
    for n in range(bench.args.repeat):
        print(f"  run {n + 1}/{bench.args.repeat} ...", flush=True)
        for enc in ("utf-8", "utf-16"):
            emu.settings.csv_encoding = enc
            _one_round(bench, emu, fields, infos[enc], enc, have_curl, samples, profile=n == 0)
    emu.settings.csv_encoding = "utf-8"
    base8, base16 = _record_download(bench, size, samples, have_curl)
    _record_stages(bench, size, infos, base8, base16)


def _report_files(bench: Bench, emu: Any) -> dict[str, tuple[Path, int, int]]:
    """The big report generated in UTF-8 and UTF-16: (path, bytes, data rows) of each."""
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
    bench.info["download"] = {enc: {"bytes": i[1], "rows": i[2]} for enc, i in infos.items()}
    return infos


def _one_round(
    bench: Bench,
    emu: Any,
    fields: dict[str, str],
    info: tuple[Path, int, int],
    enc: str,
    have_curl: bool,
    samples: dict[str, list[dict[str, Any]]],
    *,
    profile: bool,
) -> None:
    """One run of each case for the report in ``enc``; the samples appended to ``samples``."""
    _, nbytes, rows = info
    out_dir = bench.work / "landed"
    if have_curl:
        samples.setdefault(f"curl {enc}", []).append(bench.run_curl(emu.endpoint_url, fields, nbytes))
        if enc == "utf-8":  # the floor a file costs: curl writing the same bytes to a file
            out_dir.mkdir(exist_ok=True)
            to = str(out_dir / "curl.csv")
            os.sync()
            samples.setdefault("curl utf-8 -> file", []).append(bench.run_curl(emu.endpoint_url, fields, nbytes, to=to))
            shutil.rmtree(out_dir, ignore_errors=True)
    if enc == "utf-8":
        s = bench.run_python("provider_devnull", {})
        assert s["bytes_in"] == nbytes, (s, nbytes)
        samples.setdefault("provider open_report", []).append(s)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    dest = out_dir / f"report-{enc}.csv"
    os.sync()
    s = bench.run_python("provider_land", {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes})
    assert s["rows"] == rows, (s, rows)
    assert dest.stat().st_size == s["bytes_out"], (dest.stat().st_size, s)
    assert enc != "utf-8" or s["bytes_out"] == nbytes, (s, nbytes)
    assert [p.name for p in out_dir.iterdir()] == [dest.name]  # no .partial left behind
    samples.setdefault(f"land file {enc}", []).append(s)
    shutil.rmtree(out_dir, ignore_errors=True)
    if bench.args.profile and profile:
        out_dir.mkdir()
        svg = bench.profile_path(f"land-file-{enc}")
        spec = {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes, "profile_svg": svg}
        bench.run_python("provider_land", spec)
        print(f"  profile written to {svg}", flush=True)
        shutil.rmtree(out_dir, ignore_errors=True)


def _record_download(
    bench: Bench, size: int, samples: dict[str, list[dict[str, Any]]], have_curl: bool
) -> tuple[str | None, str | None]:
    """The download rows; returns the baselines' names (None without curl)."""
    group = f"download {size // MiB} MiB from the emulator (ResponseMode 3)"
    print(f"\n## {group}", flush=True)
    base8 = base16 = None
    if have_curl:
        base8, base16 = "curl utf-8", "curl utf-16"
        bench.record(group, base8, samples[base8], None, "curl -s -o /dev/null, the same POST form", is_baseline=True)
    else:
        print("  curl not found: no download baseline, ratios omitted", flush=True)
    bench.record(group, "provider open_report", samples["provider open_report"], base8, "chunks -> /dev/null")
    bench.record(group, "land file utf-8", samples["land file utf-8"], base8, "land_object -> file://")
    if have_curl:
        bench.record(
            group,
            "curl utf-8 -> file",
            samples["curl utf-8 -> file"],
            base8,
            "reference: curl -o FILE, the cost of writing the bytes to a file",
        )
        bench.record(
            group,
            "curl utf-16",
            samples["curl utf-16"],
            None,
            "curl, the same report served as UTF-16",
            is_baseline=True,
        )
    bench.record(
        group,
        "land file utf-16",
        samples["land file utf-16"],
        base16,
        "land_object -> file://, UTF-16 -> UTF-8 (rate of source bytes)",
    )
    return base8, base16


def _record_stages(
    bench: Bench, size: int, infos: dict[str, tuple[Path, int, int]], base8: str | None, base16: str | None
) -> None:
    """The pipeline steps measured in one child, each a row against the curl rate of the same body."""
    stage_bytes = min(size, STAGE_MIB * MiB)
    s = bench.run_python(
        "stages",
        {"path_utf8": str(infos["utf-8"][0]), "path_utf16": str(infos["utf-16"][0]), "stage_bytes": stage_bytes},
    )
    group = f"land_object's pipeline steps, CPU only ({stage_bytes // MiB} MiB in memory, one process)"
    print(f"\n## {group}", flush=True)
    bench.info["stages"] = s["stages"]
    for name, base in (
        ("transcode utf-8 -> utf-8", base8),
        ("CsvRowCounter.feed", base8),
        ("land_object pipeline utf-8", base8),
        ("transcode utf-16 -> utf-8", base16),
        ("land_object pipeline utf-16", base16),
    ):
        st = s["stages"][name]
        sample = {"bytes_in": st["bytes"], "bytes_out": st["bytes"], "seconds": st["seconds"]}
        sample["cpu_seconds"] = st["seconds"]
        bench.record(group, name, [sample], base, STAGE_NOTES[name])
