"""An Iceberg warehouse in S3 (moto's server on loopback): an event report and a state report landed by real DAG
runs, their data and metadata files in the bucket, read back through the same catalog. No mock of pyiceberg.

Two catalogs: pyiceberg's SQL catalog on SQLite (needs SQLAlchemy 2: Airflow 3.1+) and AWS Glue (moto's Glue on the
same server), which needs no SQLAlchemy and so runs on every supported Airflow, 2.11 and 3.0 included.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pendulum
import pytest

from cloudmax_provider.utils.compat import AIRFLOW_VERSION
from tests.airflow_runner import dag_test, load_dag, task_states

pytest.importorskip("pyarrow")
pytest.importorskip("pyiceberg", reason="the [iceberg] extra is not installed")
sqlalchemy = pytest.importorskip("sqlalchemy")
SQL_CATALOG = pytest.param(
    "sql",
    marks=pytest.mark.skipif(
        int(sqlalchemy.__version__.split(".")[0]) < 2,
        reason=f"pyiceberg's SQL catalog needs SQLAlchemy 2; Airflow {'.'.join(map(str, AIRFLOW_VERSION))}'s "
        f"constraints pin {sqlalchemy.__version__}",
    ),
)

DAG_SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG("cmx_iceberg_s3", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    for task_id, report, table in (("clicks", 21002, "clicks"), ("reads", 30023, "read_summary")):
        CloudmaxReportOperator(task_id=task_id, report_part_id=report, launch_ids=[1225, 1116],
                               destination="iceberg://NAMESPACE." + table, destination_conn_id="iceberg_s3",
                               start_time="2026-11-01 00:00:00", end_time="2026-11-02 00:00:00")
"""


def catalog_properties(kind: str, bucket: str, endpoint: str, tmp_path: Any) -> dict[str, str]:
    """pyiceberg's catalog properties (the ``iceberg`` connection's extra) for a warehouse in ``bucket``."""
    s3 = {
        "s3.endpoint": endpoint,
        "s3.region": "us-east-1",
        "s3.access-key-id": "testing",
        "s3.secret-access-key": "testing",
    }
    if kind == "glue":
        glue = {"glue.endpoint": endpoint, "glue.region": "us-east-1", "glue.access-key-id": "testing"}
        return {
            "type": "glue",
            **glue,
            "glue.secret-access-key": "testing",
            "warehouse": f"s3://{bucket}/warehouse",
            **s3,
        }
    return {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}", "warehouse": f"s3://{bucket}/warehouse", **s3}


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("kind", [SQL_CATALOG, "glue"])
def test_event_and_state_tables_in_an_s3_warehouse(
    kind, cloudmax_emulator, cloudmax_conn, s3_bucket, moto_s3_endpoint, monkeypatch, tmp_path
):
    from pyiceberg.catalog import load_catalog

    bucket, client = s3_bucket
    namespace = f"lake_{uuid.uuid4().hex[:8]}"  # moto's Glue outlives a test's bucket
    props = catalog_properties(kind, bucket, moto_s3_endpoint, tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_S3", json.dumps({"conn_type": "iceberg", "extra": props}))
    source = DAG_SOURCE.replace("NAMESPACE", namespace)
    for run in range(2):  # the second run replaces the partition and upserts the campaigns: each row once
        dr = dag_test(load_dag(source, "cmx_iceberg_s3"), pendulum.datetime(2026, 12, 1 + run, tz="UTC"))
        assert task_states(dr) == {"clicks": "success", "reads": "success"}

    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="warehouse/").get("Contents", [])]
    folder = {"sql": namespace, "glue": f"{namespace}.db"}[kind]  # where each catalog puts a namespace's tables
    for table in ("clicks", "read_summary"):
        assert any(k.startswith(f"warehouse/{folder}/{table}/data/") and k.endswith(".parquet") for k in keys), keys
        assert any(k.startswith(f"warehouse/{folder}/{table}/metadata/") for k in keys), keys
    catalog = load_catalog("iceberg_s3", **props)
    _, clicks = cloudmax_emulator.expected_rows(21002, [1225, 1116], "2026-11-01 00:00:00", "2026-11-02 00:00:00")
    assert catalog.load_table(f"{namespace}.clicks").scan().to_arrow().num_rows == len(clicks)
    reads = catalog.load_table(f"{namespace}.read_summary").scan().to_arrow()
    assert sorted(reads.column("LaunchID").to_pylist()) == [1116, 1225]
