"""Destinations: what a destination URI may be, and whether its store can be written, checked before a
report is requested: :func:`check_landing_args` when the DAG is parsed, :func:`check_destination` on the
rendered URI (no I/O), :func:`preflight_destination` at the start of ``execute`` (one call to the store).
What each store does with a failed upload: :mod:`cloudmax_provider.landing.atomic`.
"""

from __future__ import annotations

import codecs
import logging
import os
import posixpath
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from cloudmax_provider.exceptions import CloudmaxConfigError

log = logging.getLogger(__name__)

__all__ = [
    "AZURE_PROTOCOLS",
    "COMMIT_ON_CLOSE",
    "GCS_PROTOCOLS",
    "S3_PROTOCOLS",
    "SUFFIX_FORMATS",
    "check_destination",
    "check_landing_args",
    "check_suffix",
    "is_remote",
    "preflight_destination",
]

#: Stores written with concurrent multipart uploads (boto3's client).
S3_PROTOCOLS = frozenset({"s3", "s3a"})
#: Google Cloud Storage through gcsfs.
GCS_PROTOCOLS = frozenset({"gs", "gcs"})
#: Azure Blob Storage through adlfs (``abfs://container/key``; ``abfss``, ``az`` are the same filesystem).
AZURE_PROTOCOLS = frozenset({"abfs", "abfss", "az"})
#: Stores whose uploads appear only when complete and leave nothing visible when abandoned: the
#: filesystem's file in "wb" mode is written, then committed by ``close()`` (S3 multipart, GCS resumable,
#: Azure block list). Others are written through a temporary object moved into place.
COMMIT_ON_CLOSE = S3_PROTOCOLS | GCS_PROTOCOLS | AZURE_PROTOCOLS


def is_remote(path: Any) -> bool:
    """Whether an ``ObjectStoragePath`` names something else than a file on this machine."""
    return (getattr(path, "protocol", "") or "file") not in ("file", "local")


def check_landing_args(
    destination: Any, output_encoding: str | None, *, one_object_per_link: bool = False, output_format: str = "csv"
) -> None:
    """Refuse, when the DAG is parsed, a literal destination :func:`check_destination` refuses, or an
    unknown encoding (templated values are checked when rendered)."""
    from cloudmax_provider.utils.templating import is_literal

    if isinstance(destination, str) and is_literal(destination):
        check_destination(destination, one_object_per_link=one_object_per_link, output_format=output_format)
    if output_encoding is not None:
        try:
            codecs.lookup(output_encoding)
        except LookupError:
            raise CloudmaxConfigError(
                f"output_encoding={output_encoding!r} is not a known encoding; use e.g. 'utf-8' or None"
            ) from None


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


#: An object name's suffix and the output format it promises a reader (a suffix not here is not checked).
SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def check_suffix(uri: str, output_format: str) -> None:
    """Refuse an object named for another format than the one written (``x.parquet`` holding CSV).

    >>> check_suffix("s3://lake/{window_start:%Y-%m-%d}.parquet", "parquet")
    """
    suffix = posixpath.splitext(uri.rsplit("/", 1)[-1])[1].lower()
    promised = SUFFIX_FORMATS.get(suffix)
    if promised is not None and promised != output_format:
        raise CloudmaxConfigError(
            f"destination={uri!r} ends in {suffix!r} but output_format={output_format!r} writes "
            f"{output_format.upper()}; pass output_format={promised!r}, or name the object "
            f"{'.' + output_format!r}"
        )


def check_destination(uri: Any, *, one_object_per_link: bool = False, output_format: str | None = None) -> None:
    """Refuse a destination that would land somewhere else than it says (pure; no I/O).

    An absolute URI with a scheme (a rendered ``"2026-11-01/x.csv"`` would land in the worker's working
    directory; ``/data/x.csv`` is meant as ``file:///data/x.csv``); ``file://`` with an absolute path
    (``file://data/x.csv`` names a host ``data``); no ``.`` or ``..`` segment (a traversal out of the
    folder it names); with ``one_object_per_link`` a prefix ending in ``/``, else an object name (not a
    bare bucket or a folder).

    >>> check_destination("s3://lake/cloudmax/2026-11-01/opens.csv")
    """
    fix = "use e.g. 's3://bucket/cloudmax/{window_start:%Y-%m-%d}.csv' or 'file:///data/cloudmax/report.csv'"
    from cloudmax_provider.landing.iceberg import IcebergTable, is_iceberg

    if is_iceberg(uri):  # a table, not an object: iceberg://<namespace>.<table>
        IcebergTable.parse(uri)
        return
    if not isinstance(uri, str):
        raise CloudmaxConfigError(f"destination={uri!r} is a {type(uri).__name__}, not a URI string; {fix}")
    parts = urlsplit(uri)
    if "://" not in uri or not _SCHEME.match(parts.scheme):
        if uri.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[/\\]", uri):
            raise CloudmaxConfigError(
                f"destination={uri!r} is a path without a scheme; write it as a URI, "
                f"{'file://' + uri if uri.startswith('/') else 'file:///' + uri.replace(chr(92), '/')!r} (a file on "
                "the worker) or an object store's, e.g. 's3://bucket/cloudmax/{window_start:%Y-%m-%d}.csv'"
            )
        raise CloudmaxConfigError(
            f"destination={uri!r} is not a URI (a relative path would land in the worker's working directory); {fix}"
        )
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise CloudmaxConfigError(
            f"destination={uri!r} names a host {parts.netloc!r}: a file URI needs an absolute path, "
            f"'file:///{parts.netloc}{parts.path}' (three slashes)"
        )
    segments = re.split(r"[/\\]", parts.path)
    if any(seg in (".", "..") for seg in segments):
        raise CloudmaxConfigError(
            f"destination={uri!r} has a '.' or '..' segment, which would land outside the folder it names; "
            "write the normalised path"
        )
    if parts.query or parts.fragment:
        raise CloudmaxConfigError(f"destination={uri!r} has a query or fragment ('?', '#'); {fix}")
    if parts.scheme in AZURE_PROTOCOLS and parts.netloc.lower().endswith(".core.windows.net"):
        # Airflow reads scheme://conn_id@bucket/key: the container would be taken as the connection id and
        # the path's first folder as the container
        container = parts.netloc.partition("@")[0]
        raise CloudmaxConfigError(
            f"destination={uri!r} names the storage account in the URI, which Airflow's ObjectStoragePath "
            f"reads as a connection id; write {parts.scheme + '://' + container + parts.path!r} and name the "
            "account in destination_conn_id's connection"
        )
    if one_object_per_link:
        if not uri.endswith("/"):
            raise CloudmaxConfigError(
                f"destination={uri!r} must be a prefix ending in '/' with one_object_per_link=True (each "
                f"DOWNLOADLINK lands as <prefix>/<file name>); write {uri + '/'!r}"
            )
    elif uri.endswith("/") or not parts.path.strip("/"):
        raise CloudmaxConfigError(
            f"destination={uri!r} names a folder or bucket, not an object; add the object's name, e.g. "
            f"{uri.rstrip('/') + '/report.csv'!r} (or set one_object_per_link=True for a prefix)"
        )
    elif output_format is not None:
        check_suffix(uri, output_format)


def preflight_destination(uri: str, conn_id: str | None) -> None:
    """Cheap checks of the destination's store before Report.aspx is called: the connection exists, Airflow
    has a filesystem for the scheme, it is not anonymous, and the bucket (Azure: container) or the nearest
    local folder exists and can be seen. It writes nothing, so permission to write shows at the (atomic) write.
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from cloudmax_provider.landing.iceberg import is_iceberg, preflight_iceberg

    if is_iceberg(uri):
        preflight_iceberg(uri, conn_id)
        return
    if conn_id:
        from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise CloudmaxConfigError(
                f"destination_conn_id={conn_id!r} is not a connection; create it (Admin > Connections or "
                f"AIRFLOW_CONN_{conn_id.upper()}) or fix the name"
            ) from None
    scheme = urlsplit(uri).scheme
    try:
        fs = ObjectStoragePath(uri, conn_id=conn_id).fs
    except ValueError as exc:
        raise CloudmaxConfigError(
            f"destination={uri!r}: Airflow has no filesystem for {scheme}:// ({exc}); install the provider "
            "that registers it (e.g. apache-airflow-providers-amazon[s3fs] for s3://) or use file:// or s3://"
        ) from None
    if getattr(fs, "anon", False):
        raise CloudmaxConfigError(
            f"destination={uri!r}: no credentials found for {scheme}:// (Airflow would write anonymously, which "
            "fails); set destination_conn_id to a connection with credentials, e.g. 'aws_default'"
        )
    try:
        if scheme in COMMIT_ON_CLOSE:
            bucket = urlsplit(uri).netloc.rpartition("@")[2]  # Airflow's scheme://conn_id@bucket/key
            adlfs = scheme in AZURE_PROTOCOLS and hasattr(fs, "service_client")
            if not (_azure_container_exists(fs, bucket) if adlfs else fs.exists(bucket)):
                raise CloudmaxConfigError(
                    f"destination={uri!r}: bucket {bucket!r} does not exist or destination_conn_id={conn_id!r} "
                    "cannot see it; create it or fix the destination/connection"
                )
        elif scheme in ("file", "local"):
            _check_local_folder(uri)
    except CloudmaxConfigError:
        raise
    except Exception as exc:
        raise CloudmaxConfigError(
            f"destination={uri!r} cannot be reached with destination_conn_id={conn_id!r}: "
            f"{type(exc).__name__}: {str(exc)[:300]}; check the connection's credentials and endpoint"
        ) from None


#: 403s of credentials scoped below the container (a SAS that may write blobs but not read the container).
_AZURE_SCOPE_ERRORS = frozenset({"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"})


def _azure_container_exists(fs: Any, container: str) -> bool:
    """Whether an Azure container exists, asked with adlfs's own client: ``fs.exists(container)`` answers
    True when the check itself fails. A 403 for credentials scoped below the container is only logged."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
    from fsspec.asyn import sync

    async def properties() -> None:
        async with fs.service_client.get_container_client(container) as client:
            await client.get_container_properties()

    try:
        sync(fs.loop, properties)
    except ResourceNotFoundError:
        return False
    except ClientAuthenticationError:
        raise
    except HttpResponseError as exc:
        code = getattr(exc, "error_code", None)  # set by azure-storage from x-ms-error-code: an enum or a str
        code = getattr(code, "value", code)
        if exc.status_code != 403 or code not in _AZURE_SCOPE_ERRORS:
            raise
        log.warning(
            "Cannot read the properties of Azure container %r (%s); its existence is not checked", container, code
        )
    return True


def _check_local_folder(uri: str) -> None:
    folder = os.path.dirname(unquote(urlsplit(uri).path)) or "/"
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise CloudmaxConfigError(
            f"destination={uri!r}: {folder!r} is not a writable folder on this worker; fix the path or permissions"
        )
