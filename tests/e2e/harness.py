"""The deployment harness: the built wheel in a real Airflow, run as users run it.

One module for every deployment test (``make e2e``, ``make e2e-celery``, ``make e2e-killed``):

* :func:`build_wheel` builds the wheel with ``python -m build`` (as ``make dist`` does);
* :func:`deployment_venv` installs it (with its ``parquet`` extra when it has one, and the Celery
  packages) into ``.e2e/venv-<airflow version>`` with uv and ``-c constraints/airflow-<version>.txt``
  (the Airflow this suite runs on), reused while the wheel's contents,
  the constraints and the extra packages are unchanged;
* :class:`Deployment` starts the emulator, Airflow's api-server, scheduler, dag-processor, triggerer
  (and Celery workers, PostgreSQL, Redis) as separate processes on loopback ports, each in its own
  process group with its log in the artefacts directory, and stops all of them (and their children)
  on :meth:`Deployment.stop_all`, at interpreter exit, and on SIGTERM;
* :class:`AirflowAPI` drives the REST API (``/api/v2``) with a SimpleAuthManager token.

Example::

    venv = deployment_venv(build_wheel())
    with Deployment(venv, artifacts=ARTIFACTS / "standalone") as dep:
        emulator_url = dep.start_emulator("--link-ready-after", "20")
        dep.start_airflow(connections={"cloudmax_default": conn_json(emulator_url)})
        run_id = dep.api.trigger("cloudmax_daily_report")
        assert dep.api.wait_for_run("cloudmax_daily_report", run_id)["state"] == "success"
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
E2E_DAGS = Path(__file__).resolve().parent / "dags"
E2E_DIR = ROOT / ".e2e"
ARTIFACTS = ROOT / ".ci-artifacts" / "e2e"
# The deployment runs the Airflow this suite runs on (`make e2e AIRFLOW_VERSION=3.0.6`), at its pins.
AIRFLOW_VERSION = importlib.metadata.version("apache-airflow")
CONSTRAINTS = ROOT / "constraints" / f"airflow-{AIRFLOW_VERSION}.txt"
#: pyiceberg's SQL catalog (the lake example's embedded catalog) needs SQLAlchemy 2, which Airflow 2.11's and 3.0's
#: constraints pin to 1.4: there the [iceberg] extra is not installed and the lake DAG is parsed, not run.
LAKE_TABLES = any(line.lower().startswith("sqlalchemy==2") for line in CONSTRAINTS.read_text().splitlines())
# Airflow 3.0's LocalExecutor hands a task to an idle worker inside the scheduler's transaction, before the
# task's "queued" state is committed (LocalExecutor.queue_workload; 3.1 queues on the next heartbeat). A
# worker that is quicker than that commit asks the API to start a task still "scheduled", gets 409 and the
# try fails before it ran: an empty task log, and the scheduler's misleading "not found in serialized_dag
# table". On 3.0 the deployment gives tasks one retry (docs/compatibility.md advises the same) and
# `RunWatcher.retried_after_running` checks that every retried try is one of these, never a failure of the provider.
LOCAL_EXECUTOR_START_RACE = AIRFLOW_VERSION.startswith("3.0.")
DIST_NAME = "airflow-provider-cloudmax"
# Installed beside the wheel: what a CeleryExecutor deployment on PostgreSQL needs (celery 5.7 removed a
# module the Celery provider imports).
CELERY_REQUIREMENTS = (
    "apache-airflow-providers-celery",
    "celery<5.7",
    "psycopg[binary]",
    "asyncpg",
    "redis",
)
EMULATOR_LOGIN, EMULATOR_PASSWORD = "demo", "demo-password"
# DAG bundles ("example_dags" is reserved by Airflow)
EXAMPLES_BUNDLE, E2E_BUNDLE = "cloudmax_examples", "cloudmax_e2e"


# --- the wheel and its venv ------------------------------------------------------------------------


def build_wheel(out_dir: Path | None = None) -> Path:
    """``python -m build --wheel`` of the working tree; returns the wheel's path."""
    out = out_dir or E2E_DIR / "dist"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    installer = ["--installer", "uv"] if shutil.which("uv", path=str(Path(sys.executable).parent)) else []
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", *installer, "--outdir", str(out), str(ROOT)],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def wheel_digest(wheel: Path) -> str:
    """SHA-256 of a wheel's member names and bytes (zip timestamps differ between identical builds)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            digest.update(name.encode() + b"\0" + zf.read(name) + b"\0")
    return digest.hexdigest()


def wheel_extras(wheel: Path) -> set[str]:
    """The extras a wheel declares (``Provides-Extra`` in its METADATA)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    return {line.split(":", 1)[1].strip() for line in lines if line.startswith("Provides-Extra:")}


def deployment_venv(wheel: Path, venv: Path | None = None, extra: Sequence[str] = CELERY_REQUIREMENTS) -> Path:
    """A venv with the wheel (not the checkout) installed with the constraints of this suite's Airflow.

    Reused when the wheel's contents, the constraints and ``extra`` are those of the last install.
    """
    venv = venv or E2E_DIR / f"venv-{AIRFLOW_VERSION}"
    extras = sorted({"parquet", *(["iceberg"] if LAKE_TABLES else [])} & wheel_extras(wheel))
    stamp = {
        "wheel": wheel_digest(wheel),
        "constraints": hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest(),
        "extra": sorted(extra),
        "extras": extras,
        "python": sys.version,
        "bytecode": True,
    }
    stamp_file = venv / ".e2e-stamp.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp and (venv / "bin" / "airflow").exists():
        return venv
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to build the e2e venv: run `make env` first")
    if not (venv / "bin" / "python").exists():
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    requirement = f"{DIST_NAME}{'[' + ','.join(extras) + ']' if extras else ''} @ {wheel.resolve().as_uri()}"
    subprocess.run(
        # --compile-bytecode: as pip and every Airflow image install; without it each component compiles
        # Airflow on first import, and a scheduler slowed that way widened Airflow 3.0's LocalExecutor race
        # (see LOCAL_EXECUTOR_START_RACE) enough to fail tasks in one CI run out of two
        [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
         "-c", str(CONSTRAINTS),
         "--reinstall-package", DIST_NAME, requirement, *extra],
        check=True,
    )  # fmt: skip
    stamp_file.write_text(json.dumps(stamp))
    return venv


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (requests.RequestException, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Component:
    """One process the harness started (its own process group), and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM  # PostgreSQL: SIGINT (fast shutdown)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int | None = None, timeout: float = 20.0) -> None:
        """Signal the process group, wait, then SIGKILL it and every descendant still running."""
        import psutil

        sig = self.stop_signal if sig is None else sig
        try:
            family = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            family = []
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for proc in family:  # children that left the group (task processes, Celery pool workers)
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


_LIVE: list[Deployment] = []


def _stop_live() -> None:
    for dep in list(_LIVE):
        dep.stop_all()


def _on_sigterm(signum: int, frame: Any) -> None:
    _stop_live()
    raise SystemExit(128 + signum)


atexit.register(_stop_live)
if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
    signal.signal(signal.SIGTERM, _on_sigterm)


def as_user(user: str) -> list[str]:
    """The prefix that runs a command as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]


def conn_json(base_url: str, login: str = EMULATOR_LOGIN, password: str = EMULATOR_PASSWORD, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_*`` value (JSON) for a Cloudmax connection, with fast retries."""
    extras = {"attempts": 3, "retry_min_wait": 0.2, "retry_max_wait": 1, "timeout": 30, **extra}
    return json.dumps(
        {"conn_type": "cloudmax", "host": base_url, "login": login, "password": password, "extra": extras}
    )


@dataclass
class Deployment:
    """Airflow (and what it needs) as separate processes on loopback ports; see the module docstring."""

    venv: Path
    artifacts: Path
    executor: str = "LocalExecutor"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cloudmax-e2e-")))
    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 0
    service_dirs: list[Path] = field(default_factory=list)
    _api: AirflowAPI | None = None

    def __post_init__(self) -> None:
        shutil.rmtree(self.artifacts, ignore_errors=True)
        (self.artifacts / "components").mkdir(parents=True)
        self.home = self.workdir / "airflow"
        self.home.mkdir(parents=True, exist_ok=True)
        self.lake = self.workdir / "lake"  # the storage root every component shares
        self.lake.mkdir()
        _LIVE.append(self)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all(keep_artifacts=exc[0] is not None)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def api(self) -> AirflowAPI:
        if self._api is None:
            self._api = AirflowAPI(f"http://127.0.0.1:{self.api_port}")
        return self._api

    # --- starting and stopping

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Component:
        """Start ``argv`` in a new process group, output appended to ``<artifacts>/components/<name>.log``."""
        log = self.artifacts / "components" / f"{name}.log"
        cwd = cwd or self.workdir / "cwd" / name  # never the checkout: the wheel must be what runs
        cwd.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.components[name] = Component(name, popen, log, stop_signal)
        return self.components[name]

    def stop(self, name: str, sig: int | None = None) -> None:
        self.components.pop(name).stop(sig)

    def stop_all(self, keep_artifacts: bool = True) -> None:
        """Stop every component (last started first); copy Airflow's logs into the artefacts."""
        for name in reversed(list(self.components)):
            self.stop(name)
        for service_dir in self.service_dirs:
            shutil.rmtree(service_dir, ignore_errors=True)
        if self in _LIVE:
            _LIVE.remove(self)
            if keep_artifacts:
                self.save_logs()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def error_excerpts(self, limit: int = 6000) -> str:
        """Each component log's error lines and tracebacks (what a failed task's empty log cannot show).

        Airflow 3.0's LocalExecutor logs a task whose supervisor failed before the task ran ("uhoh" and
        the exception) in the scheduler's log, not the task's.
        """
        marker = re.compile(r"\berror\b|ERROR|Traceback|uhoh|exception|locked", re.IGNORECASE)
        noise = re.compile(r"Variable with key|Variable not found|GET /api/v2/importErrors")
        parts = []
        for name, comp in self.components.items():
            lines = comp.log_text().splitlines()
            keep: list[str] = []
            follow = 0
            for line in lines:
                if marker.search(line) and not noise.search(line):
                    follow = 25 if "Traceback" in line or "uhoh" in line else 0
                    keep.append(line)
                elif follow:
                    follow -= 1
                    keep.append(line)
            if keep:
                parts.append(f"--- {name} ---\n" + "\n".join(keep[-60:]))
        return "\n".join(parts)[-limit:]

    def save_logs(self) -> None:
        """Copy task and component logs Airflow wrote under AIRFLOW_HOME into the artefacts directory."""
        for sub in ("logs",):
            src = self.home / sub
            if src.exists():
                shutil.copytree(src, self.artifacts / "airflow-logs", dirs_exist_ok=True)

    # --- the emulator

    def start_emulator(self, *args: str, name: str = "emulator") -> str:
        """``python -m cloudmax_provider.testing.emulator`` from the deployed venv; returns its base URL."""
        port = free_port()
        comp = self.start(
            name, [str(self.bin / "python"), "-m", "cloudmax_provider.testing.emulator", "--port", str(port), *args]
        )
        wait_until(lambda: "listening" in comp.log_text() or not comp.alive(), 60, f"{name} to listen")
        if not comp.alive():
            raise RuntimeError(f"{name} exited: {comp.log_text()[-2000:]}")
        return f"http://127.0.0.1:{port}"

    # --- Airflow

    def airflow_env(self, db_url: str | None, connections: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
        bundles = [
            {
                "name": EXAMPLES_BUNDLE,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(EXAMPLE_DAGS), "refresh_interval": 5},
            },
            {
                "name": E2E_BUNDLE,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(E2E_DAGS), "refresh_interval": 5},
            },
        ]
        env = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__PARALLELISM": "16",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url or f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            # the REST API's deserialize=true for XComs (off by default in Airflow 3.0)
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(self.home / "logs" / "dag_processor"),
            "CLOUDMAX_LAKE": self.lake.as_uri(),
            "AIRFLOW_VAR_CLOUDMAX_LAKE": self.lake.as_uri(),
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "*",
        }
        if LOCAL_EXECUTOR_START_RACE:
            env["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"] = "1"
        if LAKE_TABLES:  # the lake example's catalog: SQLite and a warehouse beside the deployment
            lake = self.workdir / "iceberg"
            lake.mkdir(parents=True, exist_ok=True)
            warehouse = (lake / "warehouse").as_uri()
            catalog = {"type": "sql", "uri": f"sqlite:///{lake / 'catalog.db'}", "warehouse": warehouse}
            env["AIRFLOW_CONN_CLOUDMAX_ICEBERG"] = json.dumps({"conn_type": "iceberg", "extra": catalog})
        for conn_id, value in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
        env.update(extra)
        return env

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the deployed ``airflow`` CLI once (e.g. ``db migrate``, ``providers list``)."""
        cwd = self.workdir / "cwd" / "cli"
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [str(self.bin / "airflow"), *args],
            env={**os.environ, **self.env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_airflow(
        self,
        connections: dict[str, str],
        db_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        components: Sequence[str] = ("api-server", "scheduler", "dag-processor", "triggerer"),
    ) -> None:
        """Migrate the DB, then start each Airflow component as its own process; wait for the API."""
        self.api_port = free_port()
        self.env = self.airflow_env(db_url, connections, extra_env or {})
        migrated = self.airflow("db", "migrate", timeout=600)
        (self.artifacts / "components" / "db-migrate.log").write_text(migrated.stdout + migrated.stderr)
        if migrated.returncode:
            raise RuntimeError(f"airflow db migrate failed: {migrated.stderr[-3000:]}")
        for name in components:
            self.start_component(name)
        wait_until(lambda: requests.get(f"{self.api.base}/api/v2/monitor/health", timeout=5).ok, 180, "the api-server")

    def start_component(self, name: str, *args: str, env: dict[str, str] | None = None) -> Component:
        argv = [str(self.bin / "airflow"), name.split("@")[0], *args]
        if name == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
        return self.start(name, argv, env=env)

    # --- PostgreSQL, Redis and Celery workers (CeleryExecutor)

    def _service_dir(self, name: str, user: str) -> Path:
        """A private temp dir for a service, owned by ``user`` when we are root."""
        path = Path(tempfile.mkdtemp(prefix=f"cloudmax-e2e-{name}-"))
        self.service_dirs.append(path)
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def start_postgres(self) -> str:
        """Debian's PostgreSQL in a temp dir on a loopback port, as an unprivileged user; returns the DB URL."""
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (or `make services`)")
        pg_bin = bins[-1].parent
        data = self._service_dir("pg", "postgres")
        as_pg = as_user("postgres")
        initdb = [*as_pg, str(pg_bin / "initdb"), "-D", str(data / "data"), "-U", "airflow", "--auth=trust"]
        subprocess.run([*initdb, "-E", "UTF8", "--no-sync"], check=True, capture_output=True, cwd=data)
        port = free_port()
        settings = ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off", "max_connections=300"]
        argv = [*as_pg, str(pg_bin / "postgres"), "-D", str(data / "data"), "-p", str(port), "-k", str(data)]
        self.start(
            "postgres", [*argv, *(a for kv in settings for a in ("-c", kv))], cwd=data, stop_signal=signal.SIGINT
        )
        ready = [str(pg_bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        wait_until(lambda: subprocess.run(ready, check=False).returncode == 0, 60, "PostgreSQL")
        create = [str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"]
        subprocess.run(create, check=True, capture_output=True)
        return f"postgresql+psycopg://airflow@127.0.0.1:{port}/airflow"

    def start_redis(self) -> str:
        """Debian's redis-server in a temp dir on a loopback port, as an unprivileged user; returns its URL."""
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server (or `make services`)")
        work = self._service_dir("redis", "redis")
        port = free_port()
        argv = [*as_user("redis"), server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
        self.start("redis", [*argv, "--save", "", "--appendonly", "no"], cwd=work)
        wait_until(lambda: port_open(port), 60, "Redis")
        return f"redis://127.0.0.1:{port}/0"

    def start_celery_worker(self, name: str, concurrency: int = 2) -> Component:
        """``airflow celery worker`` named ``name`` (Celery ``-H`` and the hostname its task instances record),
        with its own working directory and TMPDIR: nothing on one worker's disk is seen by another."""
        home = self.workdir / name
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        shim = self.workdir / "hostname-shim"
        shim.mkdir(exist_ok=True)
        (shim / "cloudmax_e2e_hostname.py").write_text(
            '"""The hostname a test worker reports (several workers share one machine here)."""\n'
            "import os\n\n\ndef hostname() -> str:\n    return os.environ['CLOUDMAX_E2E_HOSTNAME']\n"
        )
        env = {
            "TMPDIR": str(home / "tmp"),
            "PYTHONPATH": str(shim),
            "CLOUDMAX_E2E_HOSTNAME": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cloudmax_e2e_hostname.hostname",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        argv = [str(self.bin / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h"]
        argv += ["--concurrency", str(concurrency), "--pid", str(home / "worker.pid"), "--without-mingle"]
        return self.start(name, argv, env=env, cwd=home)

    def restart(self, name: str, sig: int = signal.SIGTERM) -> Component:
        """Stop a component (SIGTERM: a deploy's restart; SIGKILL: a crash) and start it again."""
        comp = self.components[name]
        argv = comp.popen.args
        self.stop(name, sig)
        os.rename(comp.log, comp.log.with_suffix(f".{int(time.time())}.log"))
        return self.start(name, argv)  # type: ignore[arg-type]

    def task_log_files(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1
    ) -> dict[str, str]:
        """A task try's log files on disk: ``{"task": text, "trigger.<triggerer job id>": text, ...}``.

        Airflow 3 writes what a trigger logs beside the task's log, one file per triggerer job that ran it.
        """
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        base = f"attempt={try_number}.log"
        out: dict[str, str] = {}
        for path in sorted(folder.glob(f"{base}*")) if folder.exists() else []:
            key = "task" if path.name == base else path.name[len(base) + 1 :].removesuffix(".log")
            out[key] = path.read_text(errors="replace")
        return out

    def check_alive(self) -> None:
        """Fail fast, naming the component and its last log lines, when one has died."""
        for comp in self.components.values():
            if not comp.alive():
                raise RuntimeError(f"{comp.name} exited with {comp.popen.returncode}: ...{comp.log_text()[-3000:]}")


class AirflowAPI:
    """Airflow 3's REST API (``/api/v2``) with a SimpleAuthManager ``all_admins`` token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False
        self._token: str | None = None

    def _auth(self) -> None:
        if self._token is None:
            answer = self.session.get(f"{self.base}/auth/token", timeout=30)
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
            self.session.headers["Authorization"] = f"Bearer {self._token}"

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """One API call. SQLite lets one process write at a time: with the scheduler, dag-processor, triggerer
        and tasks all writing, the api-server sometimes answers 500 "Database error" (its lock wait ran out).
        Such an answer changed nothing (the transaction rolled back), so it is tried again, at most 5 times.
        Statuses in ``ok`` are accepted as they are (e.g. 409 for a retried POST that did land)."""
        url = f"{self.base}/api/v2/{path.lstrip('/')}"
        for attempt in range(5):
            self._auth()
            answer = self.session.request(method, url, timeout=60, **kwargs)
            if answer.status_code == 401:  # token expired: one new token
                self._token = None
                continue
            if answer.status_code == 500 and "Database error" in answer.text and attempt < 4:
                time.sleep(1 + attempt)
                continue
            break
        if answer.status_code in ok:
            return None
        if not answer.ok:
            raise RuntimeError(f"{method} {path}: HTTP {answer.status_code}: {answer.text[:2000]}")
        return answer.json() if answer.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def paged(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint (pages of 100, the API's maximum page size)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=100, offset=len(items), **params)
            items += page[key]
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    def dags(self) -> list[dict[str, Any]]:
        return self.paged("dags", "dags")

    def import_errors(self) -> list[dict[str, Any]]:
        return self.paged("importErrors", "import_errors")

    def trigger(self, dag_id: str, logical_date: str | None = None, conf: dict[str, Any] | None = None) -> str:
        """POST a DAG run (no logical date unless given, Airflow 3's default); returns its run id."""
        # a run id of our own, so a POST tried again after a database error cannot create a second run
        run_id = f"e2e__{dag_id}__{secrets.token_hex(4)}"
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        self.request("POST", f"dags/{dag_id}/dagRuns", json=body, ok=(409,))
        return run_id

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"dags/{dag_id}/dagRuns/{run_id}"))

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.paged(f"dags/{dag_id}/dagRuns", "dag_runs")

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 300, check: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Wait until the run is finished (success/failed); returns it."""

        def finished() -> dict[str, Any] | None:
            if check:
                check()
            run = self.run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return dict(wait_until(finished, timeout, f"{dag_id} run {run_id} to finish", interval=1))

    def task_instances(self, dag_id: str, run_id: str, **params: Any) -> list[dict[str, Any]]:
        return self.paged(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances", **params)

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        if map_index < 0:
            path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return list(self.get(path)["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """An XCom's value (deserialised), or None when the task pushed none."""
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        try:
            return self.get(path, map_index=map_index, deserialize=True, stringify=False)["value"]
        except RuntimeError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        path = f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.get(path, map_index=map_index, full_content=True).get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(item.get("event", "") if isinstance(item, dict) else str(item) for item in content)


@contextlib.contextmanager
def kept_on_failure(dep: Deployment) -> Iterator[Deployment]:
    """Keep ``dep``'s logs as artefacts (and print their path) when the block fails."""
    try:
        yield dep
    except BaseException:
        dep.save_logs()
        print(f"\nE2E artefacts (component and task logs): {dep.artifacts}", file=sys.stderr)
        raise


# --- the example DAGs, run and checked (shared by the LocalExecutor and CeleryExecutor tests) ------------

LOGICAL_DATE = "2026-11-20T00:00:00+00:00"
RUN_TIMEOUT = 480


#: Example DAGs a deployment parses but does not run, and why. The lake-tables example needs the [iceberg] extra
#: and a catalog every component reaches; it runs through dag.test() in tests/test_example_dags.py and
#: `make demo-lake` (Airflow 3.1+), not yet in a deployment.
NOT_RUN_IN_DEPLOYMENTS = (
    {} if LAKE_TABLES else {"cloudmax_lake_tables": "pyiceberg's SQL catalog needs SQLAlchemy 2 (Airflow 3.1+)"}
)


def example_dag_ids() -> set[str]:
    """The DAG ids defined in example_dags/, read from the files (``dag_id`` or first argument of DAG()/@dag)."""
    ids: set[str] = set()
    for path in sorted(EXAMPLE_DAGS.glob("*.py")):
        text = path.read_text()
        for m in re.finditer(r"""(?:\bDAG\(\s*(?:dag_id\s*=\s*)?|\bdag_id\s*=\s*)["']([\w.-]+)["']""", text):
            ids.add(m.group(1))
        for m in re.finditer(r"@dag\((?:[^)]*?\bdag_id\s*=\s*[\"']([\w.-]+)[\"'])?", text):
            if m.group(1):
                ids.add(m.group(1))
            else:  # @dag without dag_id: the decorated function's name
                fn = re.search(r"def\s+(\w+)", text[m.end() :])
                if fn:
                    ids.add(fn.group(1))
    return ids


def local_path(uri: str) -> Path:
    parts = urlsplit(uri)
    assert parts.scheme in ("file", "local", ""), f"only local destinations are checked here: {uri}"
    return Path(unquote(parts.path))


def csv_rows(path: Path) -> int:
    data = path.read_bytes()
    text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-8-sig")
    return max(len(list(csv.reader(io.StringIO(text, newline="")))) - 1, 0)


def uris_in(value: Any) -> list[str]:
    """The object URIs (``file://``: the e2e storage root is local) in a task's return value (a URI, a list of
    them, or nested lists); DOWNLOADLINKs and other strings are not objects."""
    if isinstance(value, str):
        return [value] if value.startswith("file://") else []
    if isinstance(value, list):
        return [u for item in value for u in uris_in(item)]
    return []


class RunWatcher:
    """Polls the task instances of the runs it watches, remembering every state each one was seen in."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.seen: dict[tuple[str, str, str, int], set[str]] = {}
        self.triggerer_ids: dict[tuple[str, str, str, int], set[int]] = {}  # the triggerer jobs seen holding it

    def watch(self, dag_id: str, run_id: str) -> None:
        self.runs[(dag_id, run_id)] = {"state": "queued"}

    def poll(self) -> bool:
        """One round; True when every watched run has finished."""
        self.dep.check_alive()
        for (dag_id, run_id), run in self.runs.items():
            if run["state"] in ("success", "failed"):
                continue
            for ti in self.dep.api.task_instances(dag_id, run_id):
                key = (dag_id, run_id, ti["task_id"], ti["map_index"])
                self.seen.setdefault(key, set()).add(str(ti["state"]))
                if (ti.get("trigger") or {}).get("triggerer_id") is not None:
                    self.triggerer_ids.setdefault(key, set()).add(int(ti["trigger"]["triggerer_id"]))
            self.runs[(dag_id, run_id)] = self.dep.api.run(dag_id, run_id)
        return all(r["state"] in ("success", "failed") for r in self.runs.values())

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                pending = {k: r["state"] for k, r in self.runs.items() if r["state"] not in ("success", "failed")}
                raise TimeoutError(f"runs not finished after {timeout:.0f}s: {pending}")
            time.sleep(0.5)

    def retried_after_running(self) -> list[dict[str, Any]]:
        """Earlier tries of the watched task instances that started running (a real failure, then a retry).

        The only earlier tries allowed are those Airflow 3.0's LocalExecutor failed before they started
        (LOCAL_EXECUTOR_START_RACE): no start date, nothing run.
        """
        ran = []
        for dag_id, run_id in self.runs:
            for ti in self.dep.api.task_instances(dag_id, run_id):
                if (ti.get("try_number") or 0) <= 1:
                    continue
                tries = self.dep.api.tries(dag_id, run_id, ti["task_id"], ti["map_index"])
                ran += [t for t in tries if t["try_number"] < ti["try_number"] and t.get("start_date")]
        return ran

    def failures(self) -> dict[str, str]:
        """For each failed run: its failed task instances and the end of their logs."""
        out: dict[str, str] = {}
        for (dag_id, run_id), run in self.runs.items():
            if run["state"] == "success":
                continue
            lines = []
            for ti in self.dep.api.task_instances(dag_id, run_id):
                if ti["state"] not in ("success", "skipped", "upstream_failed", None):
                    try:
                        log = self.dep.api.task_log(
                            dag_id, run_id, ti["task_id"], max(ti["try_number"], 1), ti["map_index"]
                        )
                    except RuntimeError as exc:
                        log = f"(no log: {exc})"
                    lines.append(f"{ti['task_id']}[{ti['map_index']}] {ti['state']}: ...{log[-1500:]}")
            out[f"{dag_id}/{run_id}"] = "\n".join(lines)
        return out


def run_every_example_dag(deployment: Deployment) -> RunWatcher:
    """Trigger every example DAG (no logical date; one also with one), wait, check objects, XComs, deferral.

    Returns the watcher of the runs (for checks of a particular deployment, e.g. which worker ran what).
    """
    watcher, asset_scheduled, dated = trigger_every_example_dag(deployment)
    watch_asset_runs(deployment, watcher, asset_scheduled)
    check_landed_objects(deployment, watcher, dated)
    check_lake_tables(deployment)
    check_deferral_across_processes(deployment, watcher)
    # No password in any component log or task log.
    deployment.save_logs()
    leaks = [
        str(p) for p in deployment.artifacts.rglob("*") if p.is_file() and EMULATOR_PASSWORD.encode() in p.read_bytes()
    ]
    assert leaks == [], f"the connection's password is in {leaks}"
    return watcher


def trigger_every_example_dag(deployment: Deployment) -> tuple[RunWatcher, set[str], tuple[str, str]]:
    """Once parsed without errors, trigger each example DAG that is not Asset-scheduled; wait for the runs.

    Returns the watcher, the Asset-scheduled DAG ids and the (dag_id, run_id) of the run with a logical date.
    """
    api = deployment.api
    expected = example_dag_ids()
    assert expected, "no DAG found in example_dags/"

    def all_parsed() -> bool:
        deployment.check_alive()
        return expected <= {d["dag_id"] for d in api.dags()}

    wait_until(all_parsed, 300, f"the dag-processor to parse {sorted(expected)}", interval=2)
    errors = [e for e in api.import_errors() if e.get("bundle_name") in (EXAMPLES_BUNDLE, None)]
    assert errors == [], errors
    example_dags = {d["dag_id"]: d for d in api.dags() if d.get("bundle_name") == EXAMPLES_BUNDLE}
    assert set(example_dags) >= expected
    details = {dag_id: api.get(f"dags/{dag_id}/details") for dag_id in example_dags}
    asset_scheduled = {dag_id for dag_id, d in details.items() if d.get("asset_expression")}
    # parsed (an import error would show above) but not run: what they need is not in the deployment
    not_run = {dag_id: why for dag_id, why in NOT_RUN_IN_DEPLOYMENTS.items() if dag_id in example_dags}
    print(f"example DAGs parsed, not run here: {not_run}")
    manual = sorted(set(example_dags) - asset_scheduled - set(not_run))

    watcher = RunWatcher(deployment)
    for dag_id in manual:
        watcher.watch(dag_id, api.trigger(dag_id))  # Airflow 3's default: no logical date
    dated_dag = "cloudmax_daily_report" if "cloudmax_daily_report" in manual else manual[0]
    dated_run = api.trigger(dated_dag, logical_date=LOGICAL_DATE)
    watcher.watch(dated_dag, dated_run)
    watcher.wait(RUN_TIMEOUT)
    failures = watcher.failures()
    assert failures == {}, json.dumps(failures, indent=1) + "\n" + deployment.error_excerpts()
    assert watcher.retried_after_running() == [], "a task failed and was retried"
    return watcher, asset_scheduled, (dated_dag, dated_run)


def watch_asset_runs(deployment: Deployment, watcher: RunWatcher, asset_scheduled: set[str]) -> None:
    """The Asset-scheduled DAGs ran because the upstream runs updated their Assets."""
    api = deployment.api
    for dag_id in sorted(asset_scheduled):

        def asset_run(dag_id: str = dag_id) -> dict[str, Any] | None:
            deployment.check_alive()
            runs = [r for r in api.runs(dag_id) if r["run_type"] == "asset_triggered"]
            assert not [r for r in runs if r["state"] == "failed"], runs
            return next((r for r in runs if r["state"] == "success"), None)

        run = wait_until(asset_run, RUN_TIMEOUT, f"an asset-triggered run of {dag_id}", interval=2)
        watcher.watch(dag_id, run["dag_run_id"])
    watcher.poll()


def check_lake_tables(deployment: Deployment) -> None:
    """The lake example (two tasks committing to one SQLite catalog from their own processes): every run of it
    (the one triggered, and the scheduled one unpausing made, at the same time) reads back the same row counts,
    so each row is in its table once whichever run committed last."""
    if "cloudmax_lake_tables" in NOT_RUN_IN_DEPLOYMENTS:
        return
    api = deployment.api

    def finished() -> list[dict[str, Any]] | None:
        runs = api.runs("cloudmax_lake_tables")
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = wait_until(finished, RUN_TIMEOUT, "every cloudmax_lake_tables run to finish", interval=2)
    assert all(r["state"] == "success" for r in runs), [(r["dag_run_id"], r["state"]) for r in runs]
    counts = [api.xcom("cloudmax_lake_tables", r["dag_run_id"], "read_back") for r in runs]
    assert counts[0]["opens"] > 0 and counts[0]["read_summary"] >= len(counts[0]["campaigns"]) > 0, counts
    assert all(c == counts[0] for c in counts), counts


def check_landed_objects(deployment: Deployment, watcher: RunWatcher, dated: tuple[str, str]) -> None:
    """Every URI a task returned exists and holds as many rows as its ``rows`` XCom says; no temporary left."""
    api = deployment.api
    dated_dag, dated_run = dated
    written: list[Path] = []
    typed_rows = 0
    for dag_id, run_id in watcher.runs:
        for ti in api.task_instances(dag_id, run_id):
            assert ti["state"] in ("success", "skipped"), ti
            value = api.xcom(dag_id, run_id, ti["task_id"], map_index=ti["map_index"])
            uris = uris_in(value)
            for uri in uris:
                path = local_path(uri)
                assert path.is_file() and path.stat().st_size > 0, f"{dag_id}.{ti['task_id']} returned {uri}"
                assert not path.name.endswith(".partial")
                written.append(path)
            rows = api.xcom(dag_id, run_id, ti["task_id"], key="rows", map_index=ti["map_index"])
            if rows is not None and len(uris) == 1:
                assert rows == csv_rows(local_path(uris[0])), (dag_id, ti["task_id"], uris)
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                typed_rows += len(value)
    assert written, "no example DAG wrote an object"
    assert typed_rows > 0, "no example DAG returned typed rows to XCom"
    assert not list(deployment.lake.rglob("*.partial")), "a temporary object was left in the lake"

    # The run with a logical date names its objects by its window's day.
    dated = [u for ti in api.task_instances(dated_dag, dated_run) for u in uris_in(
        api.xcom(dated_dag, dated_run, ti["task_id"], map_index=ti["map_index"]))]  # fmt: skip
    assert dated and all(("2026-11-19" in u or "2026-11-20" in u) for u in dated), dated


def check_deferral_across_processes(deployment: Deployment, watcher: RunWatcher) -> None:
    """A sensor paused as DEFERRED, its trigger was held by the triggerer's job and fired there.

    Seen through the API while deferred, and in the trigger's log the triggerer writes beside the task's;
    the task resumed in the same try (not retried) and succeeded.
    """
    api = deployment.api
    triggerers = {j["id"] for j in api.paged("jobs", "jobs", job_type="TriggererJob")}
    deferred = []
    fired = 0
    for dag_id, run_id in watcher.runs:
        for ti in api.task_instances(dag_id, run_id):
            key = (dag_id, run_id, ti["task_id"], ti["map_index"])
            logs = deployment.task_log_files(*key)
            if "deferred" not in watcher.seen.get(key, set()) and "Pausing task as DEFERRED" not in logs.get(
                "task", ""
            ):
                continue
            deferred.append(key)
            assert "Pausing task as DEFERRED" in logs.get("task", ""), logs.get("task", "")[-2000:]
            assert watcher.triggerer_ids.get(key, set()) <= triggerers, (key, watcher.triggerer_ids, triggerers)
            tries = api.tries(*key)
            # one try that deferred and resumed; before it, only tries Airflow 3.0 failed before they started
            assert [t["state"] for t in tries][-1] == "success", tries
            assert all(not t.get("start_date") for t in tries[:-1]), tries
            fired += any("Trigger fired event" in text for k, text in logs.items() if k.startswith("trigger."))
    assert deferred, f"no task was deferred: {watcher.seen}"
    assert any(watcher.triggerer_ids.values()), "no deferred task was seen held by a triggerer"
    assert fired, "no trigger log says the trigger fired in the triggerer"
