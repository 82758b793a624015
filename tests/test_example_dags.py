"""The example DAGs run as they are, against the emulator, with and without a logical date."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG

from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS, write_dags_to_db
from tests.airflow_compat import dag_bag
from tests.airflow_runner import dag_test, dags_folder, task_states, xcom

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
# the 2026-11-01T00:00Z daily run lands the last complete account-local (Asia/Taipei) day before it
DAY = ("2026-10-31 00:00:00", "2026-11-01 00:00:00")
NOV1 = pendulum.datetime(2026, 11, 1, tz="UTC")
RUN_AFTER = pendulum.datetime(2026, 11, 25, 3, 0, tz="UTC")  # a trigger without a logical date
WINDOW_NO_LOGICAL_DATE = ("2026-11-24 11:00:00", "2026-11-25 11:00:00")  # into XCom: the day before run_after
WINDOW_XCOM = ("2026-10-31 08:00:00", "2026-11-01 08:00:00")  # into XCom: the day before the 11-01T00:00Z run
DAY_NO_LOGICAL_DATE = ("2026-11-24 00:00:00", "2026-11-25 00:00:00")


def test_dagbag_of_the_examples_has_no_import_errors():
    """The examples parse as a dag-processor parses them (no Variable, connection or file needed)."""
    bag = dag_bag(str(EXAMPLES))
    assert bag.import_errors == {}
    assert len(bag.dag_ids) >= 4, bag.dag_ids
    assert {"cloudmax_daily_report", "cloudmax_lake_digest", "cloudmax_daily_summary", "cloudmax_links_mapped"} <= set(
        bag.dag_ids
    )
    for dag_id in bag.dag_ids:
        assert "example" in bag.dags[dag_id].tags


#: Examples that declare Assets of their own (publish -> digest): Airflow 3.0's dag.test() refuses outlet Assets
#: no DAG in the DB names, and 2.11's records no event for them (so the digest would read none). They are
#: written to the DB first, as `airflow dags reserialize` does for a user (docs/compatibility.md); the
#: others run as users run them, with nothing first.
OWN_ASSETS = {"cloudmax_daily_report"}


def load_example(name: str, monkeypatch: pytest.MonkeyPatch, lake: Path):
    """The example file as it is, in the DAGs folder; the lake Variable pointing at ``lake``."""
    import importlib.util

    monkeypatch.setenv("AIRFLOW_VAR_CLOUDMAX_LAKE", lake.as_uri())
    path = dags_folder() / f"{name}.py"
    shutil.copy(EXAMPLES / f"{name}.py", path)
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if name in OWN_ASSETS:
        write_dags_to_db(*(value for value in vars(module).values() if isinstance(value, DAG)))
    return module


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode(), newline="")))


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.slow
def test_daily_report_and_its_asset_consumer(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    module = load_example("cloudmax_daily_report", monkeypatch, tmp_path)
    dr = dag_test(module.dag, NOV1)
    assert task_states(dr) == dict.fromkeys(["opens", "clicks", "bounces", "removals", "publish"], "success")
    # named by the window's first day (account time), which is the day its rows are from
    opens = (tmp_path / "opens" / "2026-10-31.csv").read_bytes().decode()
    assert opens == cloudmax_emulator.expected_csv(2100199, [1225, 1116], *DAY)
    clicks = (tmp_path / "clicks" / "2026-10-31.csv").read_bytes().decode()
    assert clicks == cloudmax_emulator.expected_csv(21002, [1225, 1116], *DAY)
    assert (tmp_path / "bounces" / "2026-10-31.csv").read_bytes().decode() == cloudmax_emulator.expected_csv(
        21003, [1225, 1116], *DAY
    )
    removals = read_csv(tmp_path / "removals" / "2026-10-31.csv")
    assert removals[0] == ["email", "reason", "removed_at"]  # CustomColName selects and renames
    assert len(removals) == 11 and not any(row[1].startswith("Remove") for row in removals[1:])  # zh-TW reasons
    published = xcom(dr, "publish")
    assert published["opens"] == f"{tmp_path.as_uri()}/opens/2026-10-31.csv"

    # the asset-triggered digest: a run without a logical date on Airflow 3, a logical date on Airflow 2
    digest = dag_test(module.digest_dag, None if AIRFLOW_V_3_0_PLUS else RUN_AFTER, RUN_AFTER)
    assert task_states(digest) == {"digest": "success"}
    counts = xcom(digest, "digest")
    opens_rows = len(read_csv(tmp_path / "opens" / "2026-10-31.csv")) - 1
    assert counts["opens"] == {"uri": published["opens"], "rows": opens_rows}
    assert counts["removals"]["rows"] == 10


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.slow
def test_daily_report_triggered_without_logical_date(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    """`airflow dags trigger cloudmax_daily_report` (no logical date): no `ds`, the day before the trigger."""
    module = load_example("cloudmax_daily_report", monkeypatch, tmp_path)
    dr = dag_test(module.dag, None, RUN_AFTER)
    assert set(task_states(dr).values()) == {"success"}
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.csv")) == [
        f"{name}/2026-11-24.csv" for name in ("bounces", "clicks", "opens", "removals")
    ]
    opens = (tmp_path / "opens" / "2026-11-24.csv").read_bytes().decode()
    assert opens == cloudmax_emulator.expected_csv(2100199, [1225, 1116], *DAY_NO_LOGICAL_DATE)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.slow
def test_daily_summary_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_VAR_CLOUDMAX_LAUNCH_IDS", "1225,1116")
    module = load_example("cloudmax_daily_summary", monkeypatch, tmp_path)
    # triggered without a logical date on Airflow 3; Airflow 2 runs always have one: the 11-01 daily run
    logical_date, window = (None, WINDOW_NO_LOGICAL_DATE) if AIRFLOW_V_3_0_PLUS else (NOV1, WINDOW_XCOM)
    dr = dag_test(module.dag, logical_date, RUN_AFTER)
    assert task_states(dr) == dict.fromkeys(["send_summary", "read_summary", "campaign_kpis"], "success")
    kpis = xcom(dr, "campaign_kpis")
    reads = {row["LaunchID"]: row for row in xcom(dr, "read_summary")}
    assert [k["LaunchID"] for k in kpis] == [1225, 1116]
    for k in kpis:
        assert isinstance(k["accepted"], int) and k["opened"] == reads[k["LaunchID"]]["OpenEmailCount"]
    assert {api.field("ReportPartID") for api in cloudmax_emulator.api_requests} == {"20001", "30023"}
    assert {(api.field("StartTime"), api.field("EndTime")) for api in cloudmax_emulator.api_requests} == {window}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.slow
@pytest.mark.parametrize("logical_date", [NOV1, None], ids=["scheduled", "no-logical-date"])
def test_mapped_links_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path, logical_date):
    cloudmax_emulator.settings.link_ready_after = 1.0
    module = load_example("cloudmax_links_mapped", monkeypatch, tmp_path)
    dr = dag_test(module.dag, logical_date, RUN_AFTER)
    states = {ti.task_id + f"[{ti.map_index}]": str(ti.state) for ti in dr.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert len(states) == 7  # launch_ids + 2 LaunchIDs x (request, wait, download)
    window, day = (DAY, "2026-10-31") if logical_date else (DAY_NO_LOGICAL_DATE, "2026-11-24")
    files = sorted((tmp_path / "clicks" / day).glob("*.csv"))
    assert len(files) == 2
    bodies = sorted(f.read_bytes().decode() for f in files)
    assert bodies == sorted(cloudmax_emulator.expected_csv(21002, [i], *window) for i in (1225, 1116))


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.slow
@pytest.mark.parametrize("logical_date", [NOV1, None], ids=["scheduled", "no-logical-date"])
def test_backfill_parquet_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path, logical_date):
    """A month of click details as daily Parquet objects that read back as one typed dataset."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import pyarrow.dataset as ds

    module = load_example("cloudmax_backfill_parquet", monkeypatch, tmp_path)
    module.dag.get_task("click_details").retries = 0  # fail now, not after a 5-minute retry delay
    dr = dag_test(module.dag, logical_date, RUN_AFTER)
    assert task_states(dr) == {"month": "success", "click_details": "success"}
    taipei = ZoneInfo("Asia/Taipei")
    month = xcom(dr, "month")
    start, end = (datetime.fromisoformat(month[k]).astimezone(taipei) for k in ("start_time", "end_time"))
    assert (start.day, start.hour, end.day, end.hour) == (1, 0, 1, 0)  # a calendar month in account time
    if logical_date is None:  # triggered without a logical date: the last complete month before the trigger
        assert (start.month, end.month) == (10, 11)
    else:
        assert (start, end) == (dr.data_interval_start, dr.data_interval_end)
    prefix = tmp_path / "cloudmax" / "click_details"
    names = sorted(p.name for p in prefix.glob("*.parquet"))
    days = (end - start).days
    first = f"{start:%Y-%m-%d}T00-00-00_{start + timedelta(days=1):%Y-%m-%d}T00-00-00.parquet"
    assert len(names) == days and names[0] == first
    table = ds.dataset(prefix, format="parquet").to_table()
    assert table.num_rows == xcom(dr, "click_details", "rows") == days * 10  # 2 LaunchIDs x 5 rows a day
    assert str(table.schema.field("SubmitTime").type) == "timestamp[us, tz=Asia/Taipei]"


def _iceberg_skip_reason() -> str | None:
    """Why the Iceberg example cannot run here (the demo's rule): pyiceberg's SQL catalog needs SQLAlchemy 2, which
    Airflow 2.11's and 3.0's constraints pin to 1.4 (docs/compatibility.md); or the [iceberg] extra is missing."""
    from cloudmax_provider.testing.demo import unsupported

    return unsupported("cloudmax_lake_tables")


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.slow
@pytest.mark.skipif(_iceberg_skip_reason() is not None, reason=str(_iceberg_skip_reason()))
def test_lake_tables_example(cloudmax_emulator, cloudmax_conn, monkeypatch, tmp_path):
    """Opens (events, lookback) and 30023 (state, upsert) into Iceberg on an embedded SQL catalog, read back."""
    import json

    extra = {
        "type": "sql",
        "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
        "warehouse": (tmp_path / "warehouse").as_uri(),
    }
    (tmp_path / "warehouse").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_ICEBERG", json.dumps({"conn_type": "iceberg", "extra": extra}))
    module = load_example("cloudmax_lake_tables", monkeypatch, tmp_path)
    for run in (1, 2):  # the second run: the same partitions replaced, the same campaigns updated
        dr = dag_test(module.dag, NOV1, RUN_AFTER if run == 1 else RUN_AFTER.add(hours=1))
        assert task_states(dr) == dict.fromkeys(["opens", "read_summary", "read_back"], "success")
        # the window's day (10-31, account time) and, by lookback, the two days before
        days = [("2026-10-29 00:00:00", "2026-10-30 00:00:00"), ("2026-10-30 00:00:00", "2026-10-31 00:00:00"), DAY]
        opens = sum(len(cloudmax_emulator.expected_rows(2100199, [1225, 1116], *day)[1]) for day in days)
        assert xcom(dr, "read_back") == {"opens": opens, "read_summary": 2, "campaigns": [1116, 1225]}
