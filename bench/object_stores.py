"""How fast ``atomic.write`` lands a report on Azure Blob and GCS, against the libraries' own uploads.

Against the emulators of ``tests/integration/test_object_stores.py`` on loopback (Azurite, fake-gcs-server), so the
figures compare client-side paths, not the clouds: the emulators' own speed bounds every row.

    .venv/bin/python bench/object_stores.py                 # 64 MiB, median of 3
    .venv/bin/python bench/object_stores.py --size-mb 256 --repeat 5

Rows: ``atomic.write`` (the destination's path: staged blocks / resumable upload), the temporary object +
move that Azure used before (``_write_through_temporary``), the library's one-call upload of the same bytes
held in memory (``fs.pipe``) and from a file (``fs.put_file``). Azurite must be installed (the tests install
it into ``.cache/azurite`` on first run).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudmax_provider.landing import atomic
from tests.integration.test_object_stores import (
    AZURITE_PREFIX,
    attach,
    azurite_connection_string,
    fake_gcs_server_binary,
    free_port,
    server,
    storage_path,
    wait_until,
)

MiB = 1 << 20


@contextlib.contextmanager
def emulators(work: Path) -> Iterator[tuple[Any, Any]]:
    """(adlfs on Azurite, gcsfs on fake-gcs-server), each with a container/bucket ``bench``."""
    import adlfs
    import gcsfs.core

    binary = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        sys.exit(f"{binary} is missing: run tests/integration/test_object_stores.py once (it installs Azurite)")
    az_port, gcs_port = free_port(), free_port()
    azurite = [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(az_port), "--inMemoryPersistence"]
    azurite += ["--extentMemoryLimit", "4096", "--skipApiVersionCheck", "--loose", "--silent"]
    url = f"http://127.0.0.1:{gcs_port}"
    fake_gcs = [str(fake_gcs_server_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    fake_gcs += ["-port", str(gcs_port), "-external-url", url, "-log-level", "warn"]
    with server(azurite, work, work / "azurite.log"), server(fake_gcs, work, work / "fake-gcs.log"):
        az = adlfs.AzureBlobFileSystem(connection_string=azurite_connection_string(az_port))
        gcs = gcsfs.core.GCSFileSystem(endpoint_url=url, token="anon", project="bench")
        wait_until(lambda: _answers(lambda: az.mkdir("bench")), "Azurite", 60)
        wait_until(lambda: _answers(lambda: gcs.mkdir("bench")), "fake-gcs-server", 60)
        attach("abfs", "bench_azurite", az)
        attach("gs", "bench_fake_gcs", gcs)
        yield az, gcs


def _answers(call: Callable[[], Any]) -> bool:
    try:
        call()
    except Exception:
        return False
    return True


def timed(run: Callable[[str], Any], repeat: int) -> float:
    """The median seconds of ``repeat`` runs, each to a new key."""
    seconds = []
    for _ in range(repeat):
        key = f"bench/{uuid.uuid4().hex}.csv"
        started = time.perf_counter()
        run(key)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def cases(az: Any, gcs: Any, body: bytes, body_file: str) -> dict[str, Callable[[str], Any]]:
    def chunks() -> Iterator[bytes]:  # the report stream: 1 MiB chunks
        view = memoryview(body)
        for start in range(0, len(body), MiB):
            yield bytes(view[start : start + MiB])

    return {
        "azure  atomic.write (staged blocks)": lambda k: atomic.write(
            storage_path(f"abfs://{k}", "bench_azurite"), chunks()
        ),
        "azure  temporary + move (before)": lambda k: atomic._write_through_temporary(
            storage_path(f"abfs://{k}", "bench_azurite"), chunks(), atomic.PART_SIZE
        ),
        "azure  adlfs fs.pipe (bytes in memory)": lambda k: az.pipe(k, body),
        "azure  adlfs fs.put_file": lambda k: az.put_file(body_file, k),
        "gcs    atomic.write (resumable)": lambda k: atomic.write(
            storage_path(f"gs://{k}", "bench_fake_gcs"), chunks()
        ),
        "gcs    gcsfs fs.pipe (bytes in memory)": lambda k: gcs.pipe(k, body),
        "gcs    gcsfs fs.put_file": lambda k: gcs.put_file(body_file, k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO
    body = os.urandom(MiB) * args.size_mb
    with tempfile.TemporaryDirectory(prefix="cloudmax-bench-stores-") as tmp:
        work = Path(tmp)
        body_file = str(work / "body.csv")
        Path(body_file).write_bytes(body)
        with emulators(work) as (az, gcs):
            print(f"{args.size_mb} MiB, median of {args.repeat}, emulators on loopback")
            print(f"{'path':42} {'s':>7} {'MiB/s':>7}")
            for name, run in cases(az, gcs, body, body_file).items():
                seconds = timed(run, args.repeat)
                print(f"{name:42} {seconds:7.2f} {args.size_mb / seconds:7.1f}", flush=True)


if __name__ == "__main__":
    main()
