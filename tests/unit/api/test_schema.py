"""The schema contract (issue 25): a served header held against the expected columns before anything lands.

The pure rule, then real DAG runs (dag.test() on the session's SQLite DB) against the emulator serving click
details (21002) with one column added and one dropped (``EmulatorSettings.header_changes``), into XCom, CSV,
Parquet and an Iceberg table.
"""

from __future__ import annotations

import json

import pytest

from cloudmax_provider.api.schema import HeaderDiff, SchemaChange, check_header
from cloudmax_provider.exceptions import CloudmaxConfigError, CloudmaxSchemaChangeError
from tests.airflow_runner import run_dag, task_states, xcom
from tests.unit.operators.test_report import DAY, dag_source, op

CHANGED = "+ClickWeight,-OS"  # Cloudmax adds ClickWeight and stops serving OS
CLICKS = {"report_part_id": "click_details", "launch_ids": [1225], "start_time": DAY[0], "end_time": DAY[1]}


def test_the_rule() -> None:
    assert HeaderDiff.of(["a", "b"], ["b", "a"]) is None  # order is not a change
    assert check_header(["a", "b"], ["b", "a"], SchemaChange.FAIL, "r.csv") == (None, ["b", "a"])
    diff = HeaderDiff(("c",), ("b",))
    assert check_header(["a", "b"], ["a", "c"], SchemaChange.EVOLVE, "r.csv") == (diff, ["a", "c"])
    assert check_header(["a", "b"], ["a", "c"], SchemaChange.IGNORE, "r.csv") == (diff, ["a", "b"])
    assert check_header([], ["x"], SchemaChange.FAIL, "r.csv") == (None, ["x"])  # no documented columns
    with pytest.raises(CloudmaxSchemaChangeError, match=r"r\.csv: the report's columns changed \(added c; missing b"):
        check_header(["a", "b"], ["a", "c"], SchemaChange.FAIL, "r.csv")
    with pytest.raises(CloudmaxConfigError, match="schema_change='evolv' must be one of 'evolve', 'fail', 'ignore'"):
        SchemaChange.coerce("evolv")


@pytest.mark.usefixtures("airflow_db")
def test_xcom_rows_evolve_and_ignore(cloudmax_emulator, cloudmax_conn) -> None:
    cloudmax_emulator.settings.header_changes = CHANGED
    evolve = run_dag(dag_source("cmx_schema_xcom", op(**CLICKS)), "cmx_schema_xcom")
    rows = xcom(evolve, "report")
    assert rows and "ClickWeight" in rows[0] and "OS" not in rows[0]
    ignore = run_dag(dag_source("cmx_schema_xcom2", op(**CLICKS, schema_change="ignore")), "cmx_schema_xcom2")
    rows = xcom(ignore, "report")
    assert rows and "ClickWeight" not in rows[0] and rows[0]["OS"] is None and isinstance(rows[0]["ClickID"], int)
    failed = run_dag(dag_source("cmx_schema_xcom3", op(**CLICKS, schema_change="fail")), "cmx_schema_xcom3")
    assert task_states(failed) == {"report": "failed"}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("output_format", ["csv", "parquet"])
def test_fail_lands_nothing_evolve_lands_as_served(cloudmax_emulator, cloudmax_conn, tmp_path, output_format) -> None:
    pq = pytest.importorskip("pyarrow.parquet") if output_format == "parquet" else None
    cloudmax_emulator.settings.header_changes = CHANGED
    target = tmp_path / f"clicks.{output_format}"
    args = {**CLICKS, "destination": target.as_uri(), "output_format": output_format}
    failed = run_dag(dag_source("cmx_schema_f", op(**args, schema_change="fail")), "cmx_schema_f")
    assert task_states(failed) == {"report": "failed"}
    assert list(tmp_path.iterdir()) == []  # nothing landed, no temporary left

    landed = run_dag(dag_source("cmx_schema_e", op(**args)), "cmx_schema_e")
    assert task_states(landed) == {"report": "success"}
    (chunk,) = xcom(landed, "report", "chunks")
    assert chunk["schema_change"] == {"added": ["ClickWeight"], "missing": ["OS"]}
    if pq is None:
        header = target.read_text(encoding="utf-8").splitlines()[0].split(",")
    else:
        header = pq.read_schema(target).names
    assert "ClickWeight" in header and "OS" not in header


def test_ignore_is_refused_for_csv_when_the_dag_is_parsed() -> None:
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    with pytest.raises(CloudmaxConfigError, match="schema_change='ignore' lands exactly the expected columns"):
        CloudmaxReportOperator(task_id="t", **CLICKS, destination="file:///tmp/x.csv", schema_change="ignore")
    with pytest.raises(CloudmaxConfigError, match="schema_change='drop'"):
        CloudmaxReportOperator(task_id="t", **CLICKS, schema_change="drop")


@pytest.mark.usefixtures("airflow_db")
def test_an_iceberg_table_evolves_and_keeps_landing(cloudmax_emulator, cloudmax_conn, tmp_path, monkeypatch) -> None:
    """A column Cloudmax adds is added to the table; one it drops stays, null in the new rows; the runs after
    (Cloudmax back to the documented columns) still land, the added column null."""
    pytest.importorskip("pyiceberg", reason="the [iceberg] extra is not installed")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    if int(sqlalchemy.__version__.split(".")[0]) < 2:
        pytest.skip(f"pyiceberg's SQL catalog needs SQLAlchemy 2; this Airflow pins {sqlalchemy.__version__}")
    from pyiceberg.catalog import load_catalog

    props = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'c.db'}", "warehouse": (tmp_path / "w").as_uri()}
    (tmp_path / "w").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_SCHEMA", json.dumps({"conn_type": "iceberg", "extra": props}))
    args = {**CLICKS, "destination": "iceberg://lake.clicks", "destination_conn_id": "iceberg_schema"}
    for dag_id, changes in (("cmx_ice_s1", ""), ("cmx_ice_s2", CHANGED), ("cmx_ice_s3", "")):
        cloudmax_emulator.settings.header_changes = changes
        dr = run_dag(dag_source(dag_id, op(**args)), dag_id)
        assert task_states(dr) == {"report": "success"}, dag_id
    (chunk,) = xcom(dr, "report", "chunks")
    assert "schema_change" not in chunk  # the last run's header was the documented one
    rows = load_catalog("iceberg_schema", **props).load_table("lake.clicks").scan().to_arrow()
    assert "ClickWeight" in rows.column_names and "OS" in rows.column_names
    assert rows.column("ClickWeight").null_count == rows.num_rows  # the day was replaced by the third run

    cloudmax_emulator.settings.header_changes = CHANGED
    failed = run_dag(dag_source("cmx_ice_s4", op(**args, schema_change="fail")), "cmx_ice_s4")
    assert task_states(failed) == {"report": "failed"}
    assert load_catalog("iceberg_schema", **props).load_table("lake.clicks").scan().to_arrow().num_rows == rows.num_rows


def test_openlineage_schema_is_the_columns_landed() -> None:
    """Evolved, the output's schema facet has the added column and not the missing one; ignored, the expected."""
    pytest.importorskip("airflow.providers.openlineage")
    from cloudmax_provider.api.catalog import get_report_part
    from cloudmax_provider.landing.lineage import LandedDataset, openlineage

    chunks = [
        {"uri": "file:///l/c.parquet", "rows": 5, "bytes": 9, "schema_change": {"added": ["X"], "missing": ["OS"]}}
    ]
    landed = LandedDataset.of("file:///l/c.parquet", chunks, in_prefix=False)
    assert (landed.added, landed.missing) == (("X",), ("OS",))
    part = get_report_part("click_details")
    for evolved, has_x, has_os in ((True, True, False), (False, False, True)):
        lineage = openlineage("h", part, [], "Asia/Taipei", landed, None, evolved)
        names = [f.name for f in lineage.outputs[0].facets["schema"].fields]
        assert ("X" in names, "OS" in names) == (has_x, has_os)
