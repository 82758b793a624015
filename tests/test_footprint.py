"""Parse-time cost of the operator module, and flat memory while a large report streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.airflow_runner import dags_folder

ROOT = Path(__file__).resolve().parent.parent

IMPORT_PROBE = textwrap.dedent(
    """
    import sys, time
    import airflow
    from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator, Asset, conf  # resolve
    best = None
    before = set(sys.modules)
    t = time.process_time()
    import {module}
    took = time.process_time() - t
    heavy = [m for m in ("aiohttp", "smbprotocol", "smbclient", "requests", "lxml", "boto3", "s3fs",
                         "pyarrow", "botocore", "tenacity") if m in sys.modules and m not in before]
    print(took * 1000, ",".join(heavy))
    """
)


@pytest.mark.parametrize(
    "module",
    [
        "cloudmax_provider.operators.report",
        "cloudmax_provider.operators.download_links",
        "cloudmax_provider.operators.request_links",
        "cloudmax_provider.sensors.download_link",
    ],
)
def test_dag_parse_imports_are_light(module):
    """Under 100 ms over Airflow (its base classes imported, as in a DAG file), and no HTTP, SMB, XML or cloud
    library (best of 3 cold processes).

    The package is byte-compiled first, as an install compiles it (a shell with PYTHONDONTWRITEBYTECODE=1
    never writes the checkout's), and the cost is the CPU time of the import, which other processes on the
    machine do not stretch (bench/fixed.py measures the wall time)."""
    import compileall

    assert compileall.compile_dir(ROOT / "cloudmax_provider", quiet=1)
    timings = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE.format(module=module)], capture_output=True, text=True, check=True
        ).stdout.split()
        timings.append(float(out[0]))
        assert len(out) == 1, f"{module} imports {out[1]} at parse time"
    print(f"{module}: {min(timings):.1f} ms over Airflow")
    assert min(timings) < 100


MEMORY_RUN = textwrap.dedent(
    """
    import importlib.util, json, os, sys
    import pendulum
    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    def vm(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    from tests.airflow_compat import load_orm_models
    from tests.airflow_runner import LOGICAL_DATE_KWARG

    load_orm_models()
    dag_file, encoding, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with CloudmaxEmulator() as emu:
        emu.settings.csv_encoding = encoding
        os.environ["AIRFLOW_CONN_CLOUDMAX_DEFAULT"] = json.dumps({"conn_type": "cloudmax", "host": emu.base_url,
            "login": "demo", "password": "demo-password"})
        spec = importlib.util.spec_from_file_location("memdag", dag_file)
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        when = pendulum.datetime(2026, 11, 1, tz="UTC")
        assert str(mod.dag.test(**{LOGICAL_DATE_KWARG: when}).state) == "success"   # warm-up: imports, DB, caches
        emu.settings.big_report_bytes = size
        path, size_bytes, rows = emu.big_report_info(21002)              # generated before measuring
        base = vm("VmRSS")
        open("/proc/self/clear_refs", "w").write("5")                   # reset the peak (VmHWM)
        assert str(mod.dag.test(**{LOGICAL_DATE_KWARG: when}).state) == "success"
        print(json.dumps({"base": base, "peak": vm("VmHWM"), "served": size_bytes, "rows": rows}))
    """
)

MEMORY_DAG = """
import os, pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG("cmx_memory", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(
        task_id="big", report_part_id=21002, launch_ids=[1], destination="file://" + os.environ["CMX_DEST"],
    )
"""


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_memory_stays_flat_for_a_large_report(tmp_path, encoding, monkeypatch):
    """A 300 MB report (UTF-16: transcoded on the fly) streamed to a file: peak RSS grows < 64 MiB."""
    dag_file = dags_folder() / "cmx_memory.py"
    dag_file.write_text(MEMORY_DAG)
    dest = tmp_path / "big.csv"
    monkeypatch.setenv("CMX_DEST", str(dest))
    script = tmp_path / "run.py"
    script.write_text(MEMORY_RUN)
    out = subprocess.run(
        [sys.executable, str(script), str(dag_file), encoding, str(300 * 2**20)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    growth = (figures["peak"] - figures["base"]) / 2**20
    print(f"{encoding}: {figures['served'] / 2**20:.0f} MiB served, peak RSS growth {growth:.1f} MiB")
    written = dest.stat().st_size
    if encoding == "utf-8":
        assert written == figures["served"]
    else:
        assert written < figures["served"]  # UTF-16 -> UTF-8 shrinks ASCII-heavy text
    assert growth < 64
