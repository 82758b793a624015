"""``make demo`` (and ``make demo-lake``): the lake-tables example landed by the demo, each table's path and count."""

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


def test_make_demo_runs_the_lake_example_where_it_can():
    """``make demo`` runs it with ``--if-supported``: where the SQL catalog cannot run, one line says why, exit 0."""
    from cloudmax_provider.testing.demo import main, unsupported

    assert unsupported("cloudmax_daily_report") is None
    why = unsupported("cloudmax_lake_tables")
    assert why == _iceberg_skip_reason() or (why is None and _iceberg_skip_reason() is None)
    if why is not None:
        assert main(["--dag", "cloudmax_lake_tables", "--if-supported"]) == 0
        assert main(["--dag", "cloudmax_lake_tables"]) == 2
