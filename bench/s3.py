"""The S3 part: the report landed into ``s3://`` (moto's S3 server in a process of its own) against boto3's
``upload_fileobj`` fed the same stream (the report's HTTP body from the emulator), in the same run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import (
    AWS_CONN_ID,
    BUCKET,
    CHILD,
    REPORT_PART_ID,
    Bench,
    MiB,
    free_port,
    hook_and_request,
    start,
    status_kib,
    stop,
)

# ==== child side ================================================================================================


def child(case: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """``boto3_upload`` (the baseline), or ``moto`` (the server: runs until SIGTERM, no figures)."""
    if case == "moto":
        _serve_moto(spec)
        return None
    import boto3

    out: dict[str, Any] = {}
    client = boto3.client("s3", endpoint_url=spec["endpoint_url"], region_name="us-east-1")
    client.head_bucket(Bucket=BUCKET)  # the client is created and has answered once
    session, wire = _report_request()
    t0, c0 = start(out)
    # The same stream the provider lands: the report's HTTP body from the emulator, read by upload_fileobj
    # as it arrives (the baseline: "fed the same stream, not a file on disk").
    with session.request(wire.method, wire.url, params=list(wire.params) or None, data=wire.data, stream=True) as resp:
        resp.raise_for_status()
        resp.raw.decode_content = True
        client.upload_fileobj(resp.raw, BUCKET, spec["key"])
    stop(out, t0, c0)
    out["bytes_in"] = out["bytes_out"] = spec["source_bytes"]
    return out


def _report_request() -> tuple[Any, Any]:
    """A plain ``requests`` session and the bench report's wire request (the provider's public encoding; no hook
    streaming, counting or parsing in the baseline's path)."""
    import requests

    from cloudmax_provider.api.request import encode_request

    hook, request = hook_and_request({})
    s = hook.settings
    wire = encode_request(s.url, request.fields(), s.credentials, method=s.method, request_format=s.request_format)
    return requests.Session(), wire


def _serve_moto(spec: dict[str, Any]) -> None:
    # Objects and parts stay in moto's memory (by default each over ~5 MiB is spooled to a temporary file):
    # both cases then meet a server that does not wait on the disk's write-back, which made rounds vary 2x.
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(1 << 30))
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=spec["port"], verbose=False)
    server.start()
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(1))
    Path(spec["result"]).write_text(json.dumps({"ready": True}))
    while not done:
        time.sleep(0.2)
    server.stop()


# ==== parent side ===============================================================================================


@contextmanager
def moto_server(bench: Bench) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """moto's S3 server in a child of its own, with the ``aws`` env connection pointing at it: (endpoint, process)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    ready = bench.work / "moto-ready.json"
    cmd = [*CHILD, "moto", json.dumps({"port": port, "result": str(ready)})]
    with open(bench.work / "moto.log", "wb") as log:
        moto = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if moto.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: {(bench.work / 'moto.log').read_text()[-2000:]}")
                time.sleep(0.1)
            yield endpoint, moto
        finally:
            moto.send_signal(signal.SIGTERM)
            try:
                moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait()


def _baseline(bench: Bench, client: Any, endpoint: str, n: int, nbytes: int) -> Any:
    """boto3's ``upload_fileobj`` of the report streamed from the emulator, checked on the bucket."""
    key = f"baseline/{n}.csv"
    base = bench.run_python("boto3_upload", {"endpoint_url": endpoint, "key": key, "source_bytes": nbytes})
    assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == nbytes
    client.delete_object(Bucket=BUCKET, Key=key)
    return base


def _provider(bench: Bench, client: Any, n: int, nbytes: int, rows: int) -> Any:
    """The provider's landing of the same report, checked on the bucket: whole, no leftover, no open upload."""
    key = f"provider/{n}.csv"
    s = bench.run_python(
        "provider_land", {"uri": f"s3://{BUCKET}/{key}", "conn_id": AWS_CONN_ID, "source_bytes": nbytes}
    )
    assert s["rows"] == rows and s["bytes_out"] == nbytes, (s, rows, nbytes)
    assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == nbytes
    left = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert left == [key], left  # no .partial object left behind
    orphans = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert orphans == [], orphans  # every multipart upload completed, none left open
    client.delete_object(Bucket=BUCKET, Key=key)
    return s


def _one_round(bench: Bench, client: Any, endpoint: str, n: int, nbytes: int, rows: int) -> tuple[Any, Any]:
    """The baseline and the provider once each, in turns: the baseline first in even rounds, second in odd
    ones, so neither always meets the moto server the other has just loaded; (baseline, provider)."""
    if n % 2 == 0:
        base = _baseline(bench, client, endpoint, n, nbytes)
        return base, _provider(bench, client, n, nbytes, rows)
    prov = _provider(bench, client, n, nbytes, rows)
    return _baseline(bench, client, endpoint, n, nbytes), prov


def run(bench: Bench, emu: Any, size: int) -> None:
    """The S3 part: ``--s3-repeat`` rounds of the report capped at ``--s3-cap-mb``, then its rows."""
    import boto3

    s3_size = min(size, bench.args.s3_cap_mb * MiB)
    emu.settings.csv_encoding = "utf-8"
    emu.settings.big_report_bytes = s3_size
    _, nbytes, rows = emu.big_report_info(REPORT_PART_ID)
    base: list[dict[str, Any]] = []
    prov: list[dict[str, Any]] = []
    try:
        with moto_server(bench) as (endpoint, moto):
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            for n in range(bench.args.s3_repeat):
                print(f"  run {n + 1}/{bench.args.s3_repeat} ...", flush=True)
                b, p = _one_round(bench, client, endpoint, n, nbytes, rows)
                base.append(b)
                prov.append(p)
            if bench.args.profile:
                svg = bench.profile_path("land-s3")
                spec = {"uri": f"s3://{BUCKET}/profiled.csv", "conn_id": AWS_CONN_ID, "source_bytes": nbytes}
                bench.run_python("provider_land", {**spec, "profile_svg": svg})
                client.delete_object(Bucket=BUCKET, Key="profiled.csv")
                print(f"  profile written to {svg}", flush=True)
            moto_hwm = status_kib(moto.pid, "VmHWM")
    finally:
        emu.settings.big_report_bytes = size
    capped = f", capped from {size // MiB} MiB" if s3_size < size else ""
    group = f"S3 upload {s3_size // MiB} MiB to moto{capped}"
    bench.info["s3"] = {"bytes": nbytes, "rows": rows, "capped": s3_size < size, "moto_peak_rss_kib": moto_hwm}
    print(f"\n## {group}", flush=True)
    note = "the same report streamed from the emulator (TransferConfig defaults)"
    bench.record(group, "boto3 upload_fileobj", base, None, note, is_baseline=True)
    note = "emulator -> land_object -> s3:// (boto3 client, parts uploaded concurrently)"
    bench.record(group, "land s3 utf-8", prov, "boto3 upload_fileobj", note)
    if moto_hwm:
        print(f"  (moto's own peak RSS: {moto_hwm / 1024:.0f} MiB; a server figure, not a client one)", flush=True)
