"""The example DAGs run as they are, against the emulator."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from tests.airflow_runner import dags_folder, load_dag, task_states, xcom

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def run_example(name: str, monkeypatch: pytest.MonkeyPatch, lake: Path):
    monkeypatch.setenv("CLOUDMAX_LAKE", lake.as_uri())
    shutil.copy(EXAMPLES / f"{name}.py", dags_folder() / f"{name}.py")
    dag = load_dag((EXAMPLES / f"{name}.py").read_text(), name)
    import pendulum

    return dag.test(logical_date=pendulum.datetime(2026, 11, 1, tz="UTC"))


def test_daily_report_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    dr = run_example("cloudmax_daily_report", monkeypatch, tmp_path)
    assert task_states(dr) == {"opens": "success", "removals": "success", "summary": "success"}
    opens = (tmp_path / "opens" / "2026-11-01.csv").read_bytes().decode()
    assert opens == cloudmax_emulator.expected_csv(2100199, [1225, 1116], "2026-10-31 08:00:00", "2026-11-01 08:00:00")
    removals = list(
        csv.reader(io.StringIO((tmp_path / "removals" / "2026-11-01.csv").read_bytes().decode(), newline=""))
    )
    assert removals[0] == ["email", "reason", "removed_at"]  # CustomColName selects and renames
    assert len(removals) == 11 and not any(row[1].startswith("Remove") for row in removals[1:])  # zh-TW reasons
    summary = xcom(dr, "summary")
    assert [row["LaunchID"] for row in summary] == [1225, 1116]


def test_mapped_links_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    cloudmax_emulator.settings.link_ready_after = 1.0
    dr = run_example("cloudmax_links_mapped", monkeypatch, tmp_path)
    states = {ti.task_id + f"[{ti.map_index}]": str(ti.state) for ti in dr.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert len(states) == 6  # 2 LaunchIDs x (request, wait, download)
    files = sorted((tmp_path / "clicks" / "2026-11-01").glob("*.csv"))
    assert len(files) == 2
    bodies = sorted(f.read_bytes().decode() for f in files)
    window = ("2026-10-31 08:00:00", "2026-11-01 08:00:00")
    assert bodies == sorted(cloudmax_emulator.expected_csv(21002, [i], *window) for i in (1225, 1116))


def test_backfill_parquet_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    """A month of click details as daily Parquet objects; the lake root comes from a Variable."""
    import pendulum
    import pyarrow.dataset as ds

    monkeypatch.setenv("AIRFLOW_VAR_CLOUDMAX_LAKE", tmp_path.as_uri() + "/")
    name = "cloudmax_backfill_parquet"
    shutil.copy(EXAMPLES / f"{name}.py", dags_folder() / f"{name}.py")
    dag = load_dag((EXAMPLES / f"{name}.py").read_text(), name)
    dag.get_task("click_details").retries = 0  # a failure fails the test now, not after a 5-minute retry delay
    dr = dag.test(logical_date=pendulum.datetime(2026, 11, 1, tz="UTC"))
    assert task_states(dr) == {"click_details": "success"}
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    taipei = ZoneInfo("Asia/Taipei")
    start, end = dr.data_interval_start.astimezone(taipei), dr.data_interval_end.astimezone(taipei)
    assert (start.day, start.hour, end.day, end.hour) == (1, 0, 1, 0)  # a calendar month in account time
    prefix = tmp_path / "cloudmax" / "click_details"
    names = sorted(p.name for p in prefix.glob("*.parquet"))
    days = (end - start).days
    assert (
        len(names) == days
        and names[0] == f"{start:%Y-%m-%d}T00-00-00_{start + timedelta(days=1):%Y-%m-%d}T00-00-00.parquet"
    )
    table = ds.dataset(prefix, format="parquet").to_table()
    assert table.num_rows == xcom(dr, "click_details", "rows") == days * 10  # 2 LaunchIDs x 5 rows a day
    assert str(table.schema.field("SubmitTime").type) == "timestamp[us, tz=Asia/Taipei]"
