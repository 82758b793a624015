"""Writing one S3 object atomically through boto3's managed transfer (``upload_fileobj``), parts uploaded
concurrently while the stream is still being read.

The object appears only when the transfer completes; on any failure s3transfer aborts the multipart
upload, so an older object stays as it was. Memory is bounded by the parts read ahead and in flight. The
uploads of the same key left open by killed writers are aborted once a write completes (an upload another
run is still writing to that key is aborted too: that write fails whole and its retry lands the window
again). The client is the AWS provider's ``S3Hook``'s, or without it a boto3 client from the path's
filesystem options.

Example::

    dest = ObjectStoragePath("s3://lake/cloudmax/2026-11-01/opens.csv", conn_id="aws_default")
    write_s3(dest, [b"a,b\\r\\n", b"1,2\\r\\n"])
"""

from __future__ import annotations

import contextlib
import io
import logging
import weakref
from collections.abc import Iterable
from typing import Any

from cloudmax_provider.formats.encoding import ChunkReader
from cloudmax_provider.utils.compat import object_storage_conn_id

__all__ = ["MAX_CONCURRENCY", "PART_SIZE", "client_for", "write_s3"]

log = logging.getLogger(__name__)

#: Part size (S3 allows 10,000 parts: 8 MiB parts hold reports up to 78 GiB).
PART_SIZE = 8 << 20
#: S3 parts in flight at once: boto3's default (fewer starve the upload while the stream is read).
MAX_CONCURRENCY = 10

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
    from boto3.s3.transfer import TransferConfig

    bucket, _, key = str(dest.path).lstrip("/").partition("/")
    client = client_for(dest)
    stale = _open_uploads(client, bucket, key)  # listed before ours exists: all of earlier writers
    reader = _CountingReader(chunks)
    config = TransferConfig(
        multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=max(1, max_concurrency)
    )
    try:
        client.upload_fileobj(io.BufferedReader(reader, buffer_size=1 << 20), bucket, key, Config=config)
    finally:
        dest.fs.invalidate_cache(dest.path)
    _abort_stale(client, bucket, key, stale)
    return reader.count


class _CountingReader(ChunkReader):
    """A :class:`ChunkReader` that counts the bytes it hands out (the bytes written, once the transfer is done)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__(chunks)
        self.count = 0

    def readinto(self, b: Any) -> int:
        n = super().readinto(b)
        self.count += n
        return n


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
