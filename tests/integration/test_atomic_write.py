"""atomic.write: concurrent S3 multipart uploads (boto3) on moto's server, the writer thread, local files.

Atomicity is checked from inside the stream: while parts are uploading, the key does not exist; after a
failure it still does not (or keeps its old content) and no multipart upload is left behind. The S3 client
is the real one (boto3 against moto on loopback); tests watch or fail its calls through botocore's public
event hooks (``before-call`` / ``after-call``).
"""

from __future__ import annotations

import threading
import time
import weakref

import pytest

from cloudmax_provider.landing import atomic, s3

MiB = 1 << 20


def s3_path(bucket: str, key: str):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(f"s3://{bucket}/{key}", conn_id="aws_moto")


def body(parts: int, part: int = MiB) -> list[bytes]:
    return [bytes([65 + i % 26]) * part for i in range(parts)]


def key_exists(client, bucket: str, key: str) -> bool:
    return any(o["Key"] == key for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def uploads(client, bucket: str) -> list[dict]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.fixture
def writer_client(monkeypatch):
    """The boto3 client the writer will use for a path, fresh for this test (so event handlers registered on
    it do not outlive the test)."""
    monkeypatch.setattr(s3, "_clients", weakref.WeakKeyDictionary())
    return s3.client_for


def test_s3_client_is_the_connections(s3_bucket, writer_client):
    """The AWS provider's client for the path's connection: its endpoint (moto) and region."""
    client = writer_client(s3_path(s3_bucket[0], "x.csv"))
    assert client.meta.endpoint_url.startswith("http://127.0.0.1:")
    assert client.meta.region_name == "us-east-1"
    assert writer_client(s3_path(s3_bucket[0], "y.csv")) is client  # one client per connection's filesystem


def test_s3_parts_upload_concurrently_and_the_key_appears_only_when_complete(s3_bucket, writer_client):
    bucket, client = s3_bucket
    seen: list[tuple[bool, int]] = []
    calls: list[str] = []
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()
    dest = s3_path(bucket, "r/big.csv")
    events = writer_client(dest).meta.events

    def before(model, **_):  # counts upload_part calls running at once
        calls.append(model.name)
        if model.name == "UploadPart":
            with lock:
                in_flight["now"] += 1
                in_flight["max"] = max(in_flight["max"], in_flight["now"])

    def after(model, **_):
        if model.name == "UploadPart":
            with lock:
                in_flight["now"] -= 1

    events.register("before-call.s3", before)
    events.register("after-call.s3", after)
    chunks = body(48)

    def stream():
        for i, chunk in enumerate(chunks):
            if i in (20, 47):  # parts are on their way; the key must not be visible yet
                seen.append((key_exists(client, bucket, "r/big.csv"), len(uploads(client, bucket))))
            yield chunk

    written = atomic.write(dest, stream(), block_size=5 * MiB, max_concurrency=4)
    assert written == 48 * MiB
    assert seen == [(False, 1), (False, 1)]
    assert client.get_object(Bucket=bucket, Key="r/big.csv")["Body"].read() == b"".join(chunks)
    assert calls.count("UploadPart") == 10  # 9 parts of 5 MiB and the 3 MiB rest
    assert in_flight["max"] > 1  # concurrent
    assert uploads(client, bucket) == []


def _multipart_calls(dest) -> list[tuple[str, dict]]:
    """The multipart calls (name, parameters) the writer's client makes, recorded through botocore's events."""
    calls: list[tuple[str, dict]] = []

    def before(model, params, **_):
        if model.name in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            calls.append((model.name, {k: v for k, v in params.items() if k != "Body"}))

    s3.client_for(dest).meta.events.register("before-parameter-build.s3", before)
    return calls


def test_s3_parts_carry_a_crc32_that_s3_checks_as_boto3_transfers_do(s3_bucket, writer_client):
    """Each part names a CRC32 (S3 checks it on arrival), the upload is created with that algorithm and
    completed with the parts' checksums: the object's checksum is S3's composite CRC32, as after boto3's
    upload_fileobj, not one S3 has to compute over the whole object at completion."""
    bucket, client = s3_bucket
    dest = s3_path(bucket, "r/checked.csv")
    calls = _multipart_calls(dest)
    atomic.write(dest, body(12), block_size=5 * MiB)
    names = [name for name, _ in calls]
    assert names == ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"]
    assert calls[0][1]["ChecksumAlgorithm"] == "CRC32"
    assert all(params["ChecksumAlgorithm"] == "CRC32" for name, params in calls if name == "UploadPart")
    parts = calls[-1][1]["MultipartUpload"]["Parts"]
    assert [sorted(p) for p in parts] == [["ChecksumCRC32", "ETag", "PartNumber"]] * 3
    head = client.head_object(Bucket=bucket, Key="r/checked.csv", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] and "ChecksumCRC64NVME" not in head  # combined from the parts' CRC32s
    assert client.get_object(Bucket=bucket, Key="r/checked.csv")["Body"].read() == b"".join(body(12))


def test_s3_client_computing_checksums_only_when_required_sends_none(s3_bucket, writer_client, monkeypatch):
    """A client configured with request_checksum_calculation="when_required" (for S3-compatible stores
    without flexible checksums) gets no ChecksumAlgorithm, as boto3's transfers send none then."""
    bucket, client = s3_bucket
    dest = s3_path(bucket, "r/plain.csv")
    config = s3.client_for(dest).meta.config
    monkeypatch.setattr(config, "request_checksum_calculation", "when_required")
    calls = _multipart_calls(dest)
    atomic.write(dest, body(12), block_size=5 * MiB)
    assert len(calls) == 5
    assert all("ChecksumAlgorithm" not in params for _, params in calls)
    assert all(sorted(p) == ["ETag", "PartNumber"] for p in calls[-1][1]["MultipartUpload"]["Parts"])
    assert client.get_object(Bucket=bucket, Key="r/plain.csv")["Body"].read() == b"".join(body(12))


def test_s3_failure_mid_stream_aborts_the_upload_and_keeps_the_old_object(s3_bucket):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="r/big.csv", Body=b"yesterday")

    def stream():
        yield from body(23)
        raise ConnectionError("the report body was cut")

    with pytest.raises(ConnectionError):
        atomic.write(s3_path(bucket, "r/big.csv"), stream(), block_size=5 * MiB, max_concurrency=3)
    assert client.get_object(Bucket=bucket, Key="r/big.csv")["Body"].read() == b"yesterday"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["r/big.csv"]
    assert uploads(client, bucket) == []  # aborted: no orphan multipart upload


def test_s3_failing_part_upload_aborts_and_raises(s3_bucket, writer_client):
    bucket, client = s3_bucket
    dest = s3_path(bucket, "r/fail.csv")
    parts = {"n": 0}
    lock = threading.Lock()

    def failing(model, **_):
        if model.name == "UploadPart":
            with lock:
                parts["n"] += 1
                if parts["n"] == 3:
                    raise PermissionError("AccessDenied on part 3")

    writer_client(dest).meta.events.register("before-call.s3", failing)
    with pytest.raises(PermissionError, match="part 3"):
        atomic.write(dest, iter(body(40)), block_size=5 * MiB, max_concurrency=2)
    assert not key_exists(client, bucket, "r/fail.csv")
    assert uploads(client, bucket) == []


def test_s3_parts_cut_across_chunks(s3_bucket):
    """Chunks that straddle part boundaries (the transfer cuts the parts from the stream): byte-exact."""
    import random

    bucket, client = s3_bucket
    rng = random.Random(7)
    chunks = [rng.randbytes(rng.randint(1, 1_500_000)) for _ in range(40)]
    dest = s3_path(bucket, "r/odd.csv")
    assert atomic.write(dest, iter(chunks), block_size=5 * MiB, max_concurrency=2) == sum(map(len, chunks))
    assert client.get_object(Bucket=bucket, Key="r/odd.csv")["Body"].read() == b"".join(chunks)
    assert uploads(client, bucket) == []


def test_s3_small_body_is_one_put(s3_bucket):
    bucket, client = s3_bucket
    assert atomic.write(s3_path(bucket, "small.csv"), [b"a,b\r\n", b"1,2\r\n"]) == 10
    assert client.get_object(Bucket=bucket, Key="small.csv")["Body"].read() == b"a,b\r\n1,2\r\n"
    assert atomic.write(s3_path(bucket, "empty.csv"), []) == 0
    assert client.get_object(Bucket=bucket, Key="empty.csv")["Body"].read() == b""
    assert uploads(client, bucket) == []


KILLED_WRITER = """
import sys, time
from airflow.providers.common.compat.sdk import ObjectStoragePath
from cloudmax_provider.landing import atomic
def stream():
    yield b"x" * (6 << 20)  # one whole part of 5 MiB goes out ...
    print("PART SENT", flush=True)
    while True:  # ... and the body never ends: the writer is killed here
        time.sleep(60)
        yield b""

atomic.write(ObjectStoragePath(sys.argv[1], conn_id="aws_moto"), stream(), block_size=5 << 20)
"""


def test_s3_upload_of_a_killed_writer_is_aborted_by_the_next_write(s3_bucket):
    """A writer SIGKILLed mid-upload leaves an open multipart upload; the next write of that key aborts it."""
    import os
    import signal
    import subprocess
    import sys

    bucket, client = s3_bucket
    uri = f"s3://{bucket}/r/killed.csv"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, uri], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert child.stdout is not None
        lines = iter(child.stdout.readline, "")  # Airflow logs to stdout too
        assert any(line.strip() == "PART SENT" for line in lines)  # a whole part was read from the stream
        # boto3's transfer creates the upload in a thread of its own: the test waits for that event (bounded),
        # so the writer is killed with its upload open, as a killed task leaves it
        deadline = time.monotonic() + 60
        while not uploads(client, bucket) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [u["Key"] for u in uploads(client, bucket)] == ["r/killed.csv"]  # left behind by the killed writer
    client.create_multipart_upload(Bucket=bucket, Key="r/other.csv")  # another key's upload: not swept
    atomic.write(s3_path(bucket, "r/killed.csv"), [b"a,b\r\n", b"1,2\r\n"])
    assert client.get_object(Bucket=bucket, Key="r/killed.csv")["Body"].read() == b"a,b\r\n1,2\r\n"
    assert [u["Key"] for u in uploads(client, bucket)] == ["r/other.csv"]
    for upload in uploads(client, bucket):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    assert uploads(client, bucket) == []


def test_local_write_stays_atomic(tmp_path):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    dest = ObjectStoragePath(f"file://{tmp_path}/out/r.csv")

    def stream():
        for chunk in body(6):
            assert not (tmp_path / "out" / "r.csv").exists()
            yield chunk

    assert atomic.write(dest, stream()) == 6 * MiB
    assert (tmp_path / "out" / "r.csv").read_bytes() == b"".join(body(6))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.csv"]

    def broken():
        yield b"a,b\r\n"
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        atomic.write(ObjectStoragePath(f"file://{tmp_path}/out/r.csv"), broken())
    assert (tmp_path / "out" / "r.csv").read_bytes() == b"".join(body(6))  # the old file stays
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.csv"]


def test_a_failing_write_stops_the_stream_with_the_writer_error():
    class Sink:
        def __init__(self):
            self.n = 0

        def write(self, chunk):
            self.n += 1
            if self.n == 7:  # in the writer thread (the first 4 MiB are written inline)
                raise OSError("disk full")

    pulled = []

    def stream():
        for i in range(1000):
            pulled.append(i)
            yield b"x" * MiB

    with pytest.raises(OSError, match="disk full"):
        atomic._write_into(Sink(), stream())
    assert len(pulled) < 1000  # stopped early, not after reading everything


def test_writes_happen_in_the_writer_thread_in_order():
    """The writer thread writes while the caller's thread reads the next chunk (the bench shows the gain)."""
    written: list[tuple[str, bytes]] = []

    class Sink:
        def write(self, chunk):
            written.append((threading.current_thread().name, chunk))

    chunks = [bytes([i]) * MiB for i in range(12)]
    assert atomic._write_into(Sink(), iter(chunks)) == 12 * MiB
    assert b"".join(bytes(c) for _, c in written) == b"".join(chunks)
    # each MiB in slices of WRITE_SLICE (cache-sized writes); the first 4 MiB inline (a small report starts
    # no thread), the rest in the writer thread
    assert {len(c) for _, c in written} == {atomic.WRITE_SLICE}
    per_mib = MiB // atomic.WRITE_SLICE
    assert [name for name, _ in written] == ["MainThread"] * 4 * per_mib + ["cloudmax-writer"] * 8 * per_mib


def test_local_file_written_by_the_reading_thread_through_one_new_descriptor(tmp_path, monkeypatch):
    """A local file is written inline (no writer thread), never reopened with O_TRUNC, and named once in
    Airflow's hook lineage as the destination (not the temporary file)."""
    import builtins

    from airflow.providers.common.compat.sdk import ObjectStoragePath

    opened: list[object] = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(f), real_open(f, *a, **k))[1])
    names: set[str] = set()
    real_write = atomic._write_sliced
    monkeypatch.setattr(
        atomic, "_write_sliced", lambda out, c: (names.add(threading.current_thread().name), real_write(out, c))
    )
    recorded: list[str] = []
    monkeypatch.setattr(atomic, "record_output_lineage", lambda dest: recorded.append(str(dest)))
    dest = ObjectStoragePath((tmp_path / "r.csv").as_uri())
    body = [b"a,b\r\n"] + [b"1,2\r\n" * 200_000] * 12
    assert atomic.write(dest, iter(body)) == sum(map(len, body))
    assert (tmp_path / "r.csv").read_bytes() == b"".join(body)
    assert names == {threading.current_thread().name}
    assert not [f for f in opened if str(f).endswith(".partial")]  # never reopened by name (O_TRUNC)
    assert sum(isinstance(f, int) for f in opened) == 1  # written through the descriptor that holds the lock
    assert recorded == [str(dest)]


LINEAGE_PROBE = """
from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector
from airflow.providers.common.compat.sdk import ObjectStoragePath
from cloudmax_provider.landing import atomic
dest = ObjectStoragePath({uri!r})
atomic.write(dest, iter([b"a,b\\r\\n", b"1,2\\r\\n"]))
for output in get_hook_lineage_collector().collected_assets.outputs:
    print("OUTPUT", getattr(output, "asset", None) or output.dataset)
"""


def test_hook_lineage_names_the_destination_on_this_airflow(tmp_path):
    """The real collector (a reader registered: OpenLineage with a console transport) records the landed object
    once, on every supported Airflow (an Asset on 3.x, a Dataset on 2.11), in a fresh process."""
    import os
    import subprocess
    import sys

    uri = (tmp_path / "r.csv").as_uri()
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "console"}'}
    out = subprocess.run(
        [sys.executable, "-c", LINEAGE_PROBE.format(uri=uri)], env=env, capture_output=True, text=True, check=True
    ).stdout
    outputs = [line for line in out.splitlines() if line.startswith("OUTPUT")]
    assert len(outputs) == 1 and f"uri='{uri}'" in outputs[0], out[-2000:]
