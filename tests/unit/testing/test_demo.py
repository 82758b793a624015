"""``make demo-lake``: the lake-tables example landed by the demo, in a fresh process, each table's path and count."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_example_dags import _iceberg_skip_reason

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.skipif(_iceberg_skip_reason() is not None, reason=str(_iceberg_skip_reason()))
def test_the_lake_demo_prints_each_table_and_its_rows(tmp_path):
    demo = [sys.executable, "-m", "cloudmax_provider.testing.demo", "--dag", "cloudmax_lake_tables"]
    done = subprocess.run(
        [*demo, "--workdir", str(tmp_path / "demo"), "--dags-folder", str(ROOT / "example_dags")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tables = dict(re.findall(r"^Table (cloudmax\.\w+): (\d+) rows at file://", done.stdout, re.MULTILINE))
    assert set(tables) == {"cloudmax.opens", "cloudmax.read_summary"}
    assert int(tables["cloudmax.read_summary"]) == 2  # one row per campaign (LaunchID, JobID): 1225 and 1116
    assert int(tables["cloudmax.opens"]) > 0
    assert (tmp_path / "demo" / "lake" / "catalog.db").is_file()
