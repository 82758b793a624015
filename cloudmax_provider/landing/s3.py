"""Writing one S3 object atomically with boto3's public multipart API, parts uploaded concurrently.

* The object appears only at ``complete_multipart_upload`` (or, for a body smaller than one part, at its
  single ``put_object``); on any failure the parts in flight are waited for and the upload is aborted, so
  nothing appears and an older object stays as it was.
* Memory is bounded: at most ``max_concurrency`` parts upload at once, from reused buffers (one per part
  in flight, plus the one filling); the stream waits for a part to finish when all are busy.
* A writer killed mid-upload (SIGKILL, OOM, a lost host) leaves an open multipart upload, invisible but
  billed. The uploads of the same key open before a write starts are aborted once that write completes
  (the S3 counterpart of the stale ``.partial`` files swept beside local files). An upload another run is
  still writing to the same key at that moment is aborted too: that write fails whole and its retry lands
  the window again.
* The client is the AWS provider's (``S3Hook(aws_conn_id=<the path's conn_id>).get_conn()``: the
  connection's credentials, region, endpoint and botocore config), or, without the provider, a boto3
  client built from the path's filesystem options (``key``, ``secret``, ``token``, ``endpoint_url``,
  ``client_kwargs``).

Example::

    dest = ObjectStoragePath("s3://lake/cloudmax/2026-11-01/opens.csv", conn_id="aws_default")
    write_s3(dest, [b"a,b\\r\\n", b"1,2\\r\\n"])
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any

from cloudmax_provider.utils.compat import object_storage_conn_id

__all__ = ["MAX_CONCURRENCY", "PART_SIZE", "client_for", "write_s3"]

log = logging.getLogger(__name__)

#: Part size of the first 1,000 parts (then twice, three times ... as the part number grows).
PART_SIZE = 8 << 20
#: S3 parts in flight at once (boto3's transfer manager uses 10); memory ~ (this + 2) x the part size.
MAX_CONCURRENCY = 6

_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def client_for(dest: Any) -> Any:
    """The boto3 S3 client for an ``ObjectStoragePath``'s connection, one per filesystem (Airflow caches
    filesystems per connection, so the client lives as long as the connection's filesystem)."""
    fs = dest.fs
    try:
        return _clients[fs]
    except (KeyError, TypeError):
        pass
    client = _new_client(dest)
    with contextlib.suppress(TypeError):  # a filesystem that cannot be weakly referenced: a client per write
        _clients[fs] = client
    return client


def _new_client(dest: Any) -> Any:
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError:
        import boto3

        options = dict(getattr(dest.fs, "storage_options", None) or {})
        client_kwargs = dict(options.get("client_kwargs") or {})
        client_kwargs.setdefault("endpoint_url", options.get("endpoint_url"))
        return boto3.client(
            "s3",
            aws_access_key_id=options.get("key"),
            aws_secret_access_key=options.get("secret"),
            aws_session_token=options.get("token"),
            **client_kwargs,
        )
    return S3Hook(aws_conn_id=object_storage_conn_id(dest)).get_conn()


def write_s3(
    dest: Any, chunks: Iterable[bytes], part_size: int = PART_SIZE, max_concurrency: int = MAX_CONCURRENCY
) -> int:
    """Write ``chunks`` to the S3 object ``dest`` all or nothing (see the module docstring); returns the
    bytes written. Open uploads of the same key left by earlier, killed writers are aborted once it is whole."""
    bucket, key = _bucket_and_key(dest)
    client = client_for(dest)
    stale = _open_uploads(client, bucket, key)  # listed before ours exists: all of earlier writers
    try:
        written = _MultipartUpload(client, bucket, key, part_size, max(1, max_concurrency)).write(chunks)
    finally:
        dest.fs.invalidate_cache(dest.path)
    _abort_stale(client, bucket, key, stale)
    return written


def _bucket_and_key(dest: Any) -> tuple[str, str]:
    bucket, _, key = str(dest.path).lstrip("/").partition("/")
    return bucket, key


def _open_uploads(client: Any, bucket: str, key: str) -> list[str]:
    """The ids of the multipart uploads open for exactly ``key`` (best effort: [] when they cannot be listed)."""
    ids: list[str] = []
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
            ids += [u["UploadId"] for u in page.get("Uploads", []) if u["Key"] == key]
    except Exception as exc:  # e.g. no s3:ListBucketMultipartUploads permission: nothing is swept
        log.warning("Could not list the open multipart uploads of s3://%s/%s: %s", bucket, key, exc)
    return ids


def _abort_stale(client: Any, bucket: str, key: str, upload_ids: list[str]) -> None:
    aborted = []
    for upload_id in upload_ids:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            aborted.append(upload_id)
        except Exception as exc:  # gone meanwhile, or no permission: a lifecycle rule cleans up
            log.warning("Could not abort the stale multipart upload %s of s3://%s/%s: %s", upload_id, bucket, key, exc)
    if aborted:
        log.info(
            "Aborted %d multipart upload(s) of s3://%s/%s left by earlier, killed attempts", len(aborted), bucket, key
        )


def _checksum_args(client: Any) -> dict[str, str]:
    """What boto3's own transfers (s3transfer) send when the client computes checksums "when supported"
    (botocore's default): a CRC32 per part, which S3 checks on arrival and combines at completion.

    Without it S3 computes a full-object CRC64NVME itself at completion; S3-compatible servers may do
    that in software (moto: ~1 s per 256 MiB, longer than the parts took). A client configured with
    ``request_checksum_calculation="when_required"`` sends none, as boto3 does.
    """
    if getattr(client.meta.config, "request_checksum_calculation", "when_supported") != "when_supported":
        return {}
    return {"ChecksumAlgorithm": "CRC32"}


class _MultipartUpload:
    """One object's upload: parts cut from the stream into reused buffers and sent from a bounded pool.

    Parts grow with the part number (``part_size`` for the first 1,000, then twice that, ...), so the
    10,000-part limit is reached only past ~400 GiB with 8 MiB parts. Buffers are ``bytearray``: botocore
    hashes and sends one in a piece with the GIL released.
    """

    def __init__(self, client: Any, bucket: str, key: str, part_size: int, max_concurrency: int) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size, self.max_concurrency = part_size, max_concurrency
        self.upload_id: str | None = None
        self.checksum = _checksum_args(client)  # {"ChecksumAlgorithm": "CRC32"} as boto3's transfers, or {}
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.in_flight: deque[tuple[int, bytearray, concurrent.futures.Future[Any]]] = deque()
        self.done: list[dict[str, Any]] = []
        self.free: list[bytearray] = []

    def write(self, chunks: Iterable[bytes]) -> int:
        """Upload the stream; the object appears whole at the end, or not at all (then this raises)."""
        try:
            written = self._stream(chunks)
        except BaseException:
            self._abort()
            raise
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
        return written

    def _stream(self, chunks: Iterable[bytes]) -> int:
        written = filled = 0
        buffer = self._buffer(1)
        for chunk in chunks:
            view = memoryview(chunk)
            written += len(view)
            while view:
                take = min(len(view), len(buffer) - filled)
                buffer[filled : filled + take] = view[:take]
                filled += take
                view = view[take:]
                if filled == len(buffer):  # a whole part: send it, fill the next buffer
                    self._send(buffer, filled)
                    buffer, filled = self._buffer(self._next_number()), 0
        if self.upload_id is None:  # smaller than one part: one PUT, visible only when whole
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(buffer[:filled]))
            return written
        if filled:
            self._send(buffer, filled)
        while self.in_flight:
            self._wait_any()
        parts = sorted(self.done, key=lambda part: part["PartNumber"])
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )
        return written

    def _next_number(self) -> int:
        return len(self.done) + len(self.in_flight) + 1

    def _buffer(self, number: int) -> bytearray:
        size = self.part_size * (1 + (number - 1) // 1000)
        while self.free:
            buf = self.free.pop()
            if len(buf) == size:
                return buf
        return bytearray(size)

    def _send(self, buf: bytearray, size: int) -> None:
        """Send the first ``size`` bytes of ``buf`` as the next part (``buf`` is reused once it is done)."""
        if self.upload_id is None:
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key, **self.checksum)
            self.upload_id = created["UploadId"]
            self.pool = concurrent.futures.ThreadPoolExecutor(self.max_concurrency, "cloudmax-s3-part")
        assert self.pool is not None
        number = self._next_number()
        body = buf if size == len(buf) else buf[:size]
        future = self.pool.submit(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            **self.checksum,
        )
        self.in_flight.append((number, buf, future))
        while len(self.in_flight) >= self.max_concurrency:
            self._wait_any()

    def _wait_any(self) -> None:
        """Wait until a part in flight is done (any: a slow part does not hold the others' buffers); collect
        every part done by then, raising the first part's error."""
        concurrent.futures.wait([f for _, _, f in self.in_flight], return_when=concurrent.futures.FIRST_COMPLETED)
        still: deque[tuple[int, bytearray, concurrent.futures.Future[Any]]] = deque()
        for number, buf, future in self.in_flight:
            if not future.done():
                still.append((number, buf, future))
                continue
            answer = future.result()
            part = {"PartNumber": number, "ETag": answer["ETag"]}
            if self.checksum:  # the part's checksum, which S3 checked, named again at completion
                member = f"Checksum{self.checksum['ChecksumAlgorithm']}"
                part |= {member: answer[member]} if member in answer else {}
            self.done.append(part)
            self.free.append(buf)
        self.in_flight = still

    def _abort(self) -> None:
        """Wait for the parts in flight (those not started are cancelled), then abort the upload."""
        for _, _, future in self.in_flight:
            future.cancel()
        concurrent.futures.wait([future for _, _, future in self.in_flight])
        if self.upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:  # the original error matters more; the next write of the key, or a lifecycle rule
            log.warning("Could not abort the multipart upload %s of s3://%s/%s", self.upload_id, self.bucket, self.key)
