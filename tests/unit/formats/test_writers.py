"""Lake-ready output: typed Parquet and JSON Lines, chunked windows that resume, lineage (issue 11).

Round trips go through the hook and the landing path directly (real HTTP to the emulator, real files,
real pyarrow); the chunk/resume behaviour runs inside real Airflow with dag.test() and task retries.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cloudmax_provider.api.catalog import REPORT_PARTS, ColumnType
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.landing.lineage import LandedDataset
from cloudmax_provider.testing.rows import TIME_FORMATS
from tests.airflow_compat import declared_uris
from tests.airflow_runner import run_dag, task_states, xcom

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TZ = ZoneInfo("Asia/Taipei")
ARROW_TYPES = {
    ColumnType.INT: "int64",
    ColumnType.FLOAT: "double",
    ColumnType.DATETIME: "timestamp[us, tz=Asia/Taipei]",
    ColumnType.TEXT: "string",
}


def _land(hook, request, path: Path, output_format: str, **options):
    from cloudmax_provider.formats.writers import OutputFormat, RowTyping
    from cloudmax_provider.landing.land import land_object

    output = OutputFormat(output_format, typing=RowTyping.for_request(request, TZ), **options)
    return land_object(hook, hook.sources(request), path.as_uri(), None, "utf-8", output=output)


def _jsonable(rows):
    from cloudmax_provider.formats.cells import to_jsonable

    return [to_jsonable(r) for r in rows]


@pytest.mark.parametrize("time_format", TIME_FORMATS)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("report_part_id", sorted(REPORT_PARTS))
def test_round_trip_parquet_and_jsonl_equal_xcom_rows(
    cloudmax_emulator, cloudmax_conn, tmp_path, report_part_id, encoding, time_format
):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    cloudmax_emulator.settings.csv_encoding = encoding
    cloudmax_emulator.settings.time_format = time_format
    hook = CloudmaxHook()
    request = hook.build_request(
        report_part_id, [1225, 1116], "2026-10-01 00:00:00", "2026-10-02 00:00:00", response_mode=3
    )
    xcom_rows = _jsonable(hook.get_rows(request))
    assert xcom_rows

    stats = _land(hook, request, tmp_path / "r.parquet", "parquet", batch_size=4)
    table = pq.read_table(tmp_path / "r.parquet")
    assert stats.rows == len(xcom_rows) == table.num_rows
    assert stats.bytes == (tmp_path / "r.parquet").stat().st_size
    assert table.column_names == list(xcom_rows[0])  # the report's order
    part = REPORT_PARTS[report_part_id]
    assert [str(f.type) for f in table.schema] == [ARROW_TYPES[part.type_of(n)] for n in table.column_names]
    assert _jsonable(table.to_pylist()) == xcom_rows
    assert pq.ParquetFile(tmp_path / "r.parquet").metadata.num_row_groups == -(-len(xcom_rows) // 4)

    stats = _land(hook, request, tmp_path / "r.jsonl", "jsonl")
    lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert stats.rows == len(lines)
    assert [json.loads(line) for line in lines] == xcom_rows
    # typed exactly as XCom: ints stay ints (1 == 1.0 would hide a float)
    assert [[type(v) for v in json.loads(line).values()] for line in lines] == [
        [type(v) for v in row.values()] for row in xcom_rows
    ]


def test_renamed_columns_keep_their_catalog_type_and_times_hold_the_instant(cloudmax_emulator, cloudmax_conn, tmp_path):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    cloudmax_emulator.settings.time_format = "zh-TW"  # yyyy/M/d 下午 hh:mm:ss
    hook = CloudmaxHook()
    request = hook.build_request(
        31033,
        [5],
        "2026-10-01 00:00:00",
        "2026-10-02 00:00:00",
        columns={"EmailAddress": "email", "SubmitTime": "removed_at"},
        response_mode=3,
    )
    _land(hook, request, tmp_path / "r.parquet", "parquet")
    table = pq.read_table(tmp_path / "r.parquet")
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("email", "string"),
        ("removed_at", "timestamp[us, tz=Asia/Taipei]"),
    ]
    _header, cells = cloudmax_emulator.expected_rows(
        31033, [5], "2026-10-01 00:00:00", "2026-10-02 00:00:00", ["EmailAddress,email", "SubmitTime,removed_at"]
    )
    served = [row[1] for row in cells]
    assert any("下午" in text for text in served) or any("上午" in text for text in served)
    from cloudmax_provider.formats.cells import parse_cell_time

    instants = [parse_cell_time(text, TZ) for text in served]
    assert table.column("removed_at").to_pylist() == instants
    # the stored value is the UTC instant: 8 hours before the Taipei wall-clock time
    first = table.column("removed_at").cast(pa.timestamp("us", tz="UTC")).to_pylist()[0]
    assert first == instants[0].astimezone(ZoneInfo("UTC"))


def test_cells_that_do_not_fit_are_null_in_parquet(tmp_path, caplog):
    from cloudmax_provider.api.body import Encoding
    from cloudmax_provider.api.catalog import get_report_part
    from cloudmax_provider.formats.streams import Progress, ReportStream, open_each
    from cloudmax_provider.formats.writers import OutputFormat, RowTyping

    body = b"LaunchID,AcceptCount,SendTime,CompleteTime,OpenCount\r\n1,n/a,2026-10-01 10:00:00,,3\r\n"

    class Source:
        def __enter__(self):
            return ReportStream(iter([body]), Encoding("utf_8"), "test")

        def __exit__(self, *exc):
            return False

    output = OutputFormat("parquet", typing=RowTyping(get_report_part(20003), TZ))
    data = b"".join(output.encoder(None, Progress("x")).encode(open_each([Source])))
    import io

    table = pq.read_table(io.BytesIO(data))
    assert table.schema.field("AcceptCount").type == pa.int64()
    assert table.to_pylist()[0]["AcceptCount"] is None and table.to_pylist()[0]["OpenCount"] == 3
    assert "AcceptCount" in caplog.text


def _encode_body(body: bytes, report_part_id: int, **options) -> bytes:
    from cloudmax_provider.api.body import Encoding
    from cloudmax_provider.api.catalog import get_report_part
    from cloudmax_provider.formats.streams import Progress, ReportStream, open_each
    from cloudmax_provider.formats.writers import OutputFormat, RowTyping

    class Source:
        def __enter__(self):
            return ReportStream(iter([body[:7], body[7:]]), Encoding("utf_8"), "test")

        def __exit__(self, *exc):
            return False

    output = OutputFormat("parquet", typing=RowTyping(get_report_part(report_part_id), TZ), **options)
    return b"".join(output.encoder(None, Progress("x")).encode(open_each([Source])))


def test_arrow_fast_path_and_cell_by_cell_typing_agree():
    """Columns Arrow can read are typed vectorised, the others cell by cell: both give the XCom values."""
    import io

    from cloudmax_provider.api.body import Encoding
    from cloudmax_provider.api.catalog import get_report_part
    from cloudmax_provider.formats.cells import RowTyper
    from cloudmax_provider.formats.encoding import iter_csv_records

    body = (
        "SubmitTime,LaunchID,JobID,JobName,EmailCount,AcceptCount,ReturnEmailCount,SendSuccessEmailCount,"
        "ReturnEmailRate,SendSuccessRate,OpenEmailCount,OpenEmailRate,ClickCount,ClickEmailCount,"
        "SendSuccessClickRate,OpenEmailClickRate\r\n"
    )
    rows = [
        # iso / zh-TW midnight and noon / en-US / T and fractions (cell by cell) / blanks
        ["2026-10-01 00:00:00", "1", "2", "a", "1,234", "5", "", "7", "0.5", "12.5%", "3", "0.25", "0", "1", "", "1"],
        ["2026-10-02 23:59:59", "3", "4", "", " 9 ", "6", "1", "8", "1e-3", "50%", "4", "2", "1", "2", "0.1", "0"],
        ["2026-10-03T01:02:03.5", "5", "6", "c", "10", "7", "2", "9", "", "1", "5", "1", "2", "3", "0.2", "0.5"],
        ["", "7", "8", "d", "11", "8", "3", "10", "0.25", "0.75", "6", "0.5", "3", "4", "0.3", "0.6"],
    ]
    zh = [["2026/10/4 上午 12:00:00", *rows[0][1:]], ["2026/10/4 下午 12:30:00", *rows[1][1:]]]
    en = [["10/5/2026 12:00:00 AM", *rows[0][1:]], ["10/5/2026 1:05:09 PM", *rows[1][1:]]]
    for group in (rows, zh, en):
        text = body + "".join(",".join(f'"{c}"' for c in r) + "\r\n" for r in group)
        data = _encode_body(text.encode(), 30023, batch_size=7)
        table = pq.read_table(io.BytesIO(data))
        records = iter_csv_records([text.encode()], Encoding("utf_8"))
        typer = RowTyper(get_report_part(30023), next(records), TZ)
        assert table.to_pylist() == [typer.type_row(cells) for cells in records]
    assert pq.read_table(io.BytesIO(data)).column("SubmitTime").to_pylist()[1] == datetime(
        2026, 10, 5, 13, 5, 9, tzinfo=TZ
    )


def test_missing_pyarrow_names_the_extra(monkeypatch):
    from cloudmax_provider.formats.writers import require_pyarrow

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(CloudmaxConfigError, match=r"airflow-provider-cloudmax\[parquet\]"):
        require_pyarrow()


def test_output_arguments_are_checked_at_parse_time():
    from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    base = {"report_part_id": 21002, "launch_ids": 1, "destination": "s3://lake/x/"}
    with pytest.raises(CloudmaxConfigError, match="output_format='orc'"):
        CloudmaxReportOperator(task_id="a", output_format="orc", **base)
    with pytest.raises(CloudmaxConfigError, match="batch_size"):
        CloudmaxReportOperator(task_id="b", output_format="parquet", batch_size=0, **base)
    with pytest.raises(CloudmaxConfigError, match="compression"):
        CloudmaxReportOperator(task_id="c", output_format="parquet", compression="zip", **base)
    with pytest.raises(CloudmaxConfigError, match="needs a destination"):
        CloudmaxReportOperator(task_id="d", report_part_id=21002, launch_ids=1, output_format="jsonl")
    with pytest.raises(CloudmaxConfigError, match="prefix ending in '/'"):
        CloudmaxReportOperator(
            task_id="e", report_part_id=21002, launch_ids=1, destination="s3://l/x.csv", chunk=timedelta(days=1)
        )
    with pytest.raises(CloudmaxConfigError, match="response_mode"):
        CloudmaxReportOperator(task_id="f", response_mode=1, chunk=timedelta(days=1), **base)
    with pytest.raises(CloudmaxConfigError, match="chunk"):
        CloudmaxReportOperator(task_id="g", chunk=timedelta(0), **base)
    with pytest.raises(CloudmaxConfigError, match="report_part_id"):
        CloudmaxDownloadLinksOperator(
            task_id="h", links="http://h/a.csv", destination="s3://l/a.parquet", output_format="parquet"
        )
    task = CloudmaxReportOperator(task_id="i", chunk=timedelta(days=1), output_format="parquet", **base)
    assert declared_uris(task) == ["s3://lake/x"]  # the prefix is one dataset (Airflow drops the last /)


def test_chunk_windows_and_names():
    from cloudmax_provider.windows.chunks import chunk_object_name, chunk_windows

    start, end = datetime(2026, 10, 1, tzinfo=TZ), datetime(2026, 10, 3, 12, tzinfo=TZ)
    windows = chunk_windows(start, end, timedelta(days=1))
    assert windows == [
        (datetime(2026, 10, 1, tzinfo=TZ), datetime(2026, 10, 2, tzinfo=TZ)),
        (datetime(2026, 10, 2, tzinfo=TZ), datetime(2026, 10, 3, tzinfo=TZ)),
        (datetime(2026, 10, 3, tzinfo=TZ), datetime(2026, 10, 3, 12, tzinfo=TZ)),
    ]
    assert chunk_windows(start, start + timedelta(hours=1), timedelta(days=1)) == [(start, start + timedelta(hours=1))]
    assert [chunk_object_name(s, e, "parquet") for s, e in windows][
        2
    ] == "2026-10-03T00-00-00_2026-10-03T12-00-00.parquet"
    with pytest.raises(CloudmaxConfigError):
        chunk_windows(end, start, timedelta(days=1))


def test_expand_windows_for_dynamic_task_mapping():
    from cloudmax_provider.windows.chunks import expand_windows

    utc = ZoneInfo("UTC")  # Airflow's data interval is in UTC; chunks are cut in account time
    out = expand_windows(
        datetime(2026, 9, 30, 16, tzinfo=utc),
        datetime(2026, 10, 3, 16, tzinfo=utc),
        timedelta(days=1),
        destination="s3://lake/clicks/",
        output_format="parquet",
    )
    assert out[0] == {
        "start_time": "2026-10-01T00:00:00+08:00",
        "end_time": "2026-10-02T00:00:00+08:00",
        "destination": "s3://lake/clicks/2026-10-01T00-00-00_2026-10-02T00-00-00.parquet",
    }
    assert len(out) == 3 and out[-1]["end_time"] == "2026-10-04T00:00:00+08:00"
    with pytest.raises(CloudmaxConfigError, match="prefix"):
        expand_windows("2026-10-01", "2026-10-02", timedelta(days=1), destination="s3://lake/x.parquet")


CHUNK_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(
        task_id="clicks", report_part_id=21002, launch_ids=[7, 8],
        start_time={start!r}, end_time={end!r}, chunk=timedelta(days=1),
        output_format={fmt!r}, destination={destination!r}, destination_conn_id={conn_id!r},
        retries=1, retry_delay=timedelta(0),
    )
"""


def _start_times(emulator) -> list[str]:
    return [r.field("StartTime")[:10] for r in emulator.api_requests]


@pytest.mark.usefixtures("airflow_db")
def test_31_days_in_daily_chunks_resume_after_a_failed_try(cloudmax_emulator, cloudmax_conn, tmp_path):
    """Day 17 fails until the first try gives up; the retry fetches day 17 onwards only."""
    cloudmax_conn(attempts=2)  # two attempts inside the hook per try
    cloudmax_emulator.settings.fail_start_windows = [("2026-10-17 00:00:00", "2026-10-18 00:00:00")]
    cloudmax_emulator.settings.fail_start_first = 2  # both attempts of the first try
    lake = tmp_path / "clicks"
    source = CHUNK_DAG.format(
        dag_id="cmx_chunks",
        start="2026-10-01 00:00:00",
        end="2026-11-01 00:00:00",
        fmt="parquet",
        destination=lake.as_uri() + "/",
        conn_id=None,
    )
    dr = run_dag(source, "cmx_chunks")
    assert task_states(dr) == {"clicks": "success"}
    ti = dr.get_task_instances()[0]
    assert ti.try_number == 2  # the first try failed on day 17

    days = [f"2026-10-{d:02d}" for d in range(1, 32)]
    assert _start_times(cloudmax_emulator) == days[:16] + [days[16]] * 3 + days[17:]

    files = sorted(p.name for p in lake.iterdir())
    ends = [*days[1:], "2026-11-01"]
    expected = [f"{d}T00-00-00_{e}T00-00-00.parquet" for d, e in zip(days, ends, strict=True)]
    assert files == [*expected, "_cloudmax_manifests"]
    assert not list((lake / "_cloudmax_manifests").iterdir())  # complete: the manifest is gone
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # nothing half-written

    # the prefix reads as one typed dataset
    import pyarrow.dataset as ds

    dataset = ds.dataset(lake, format="parquet")
    table = dataset.to_table()
    assert table.schema.field("SubmitTime").type == pa.timestamp("us", tz="Asia/Taipei")
    assert table.schema.field("ClickID").type == pa.int64()
    chunks = xcom(dr, "clicks", "chunks")
    assert len(chunks) == 31 and table.num_rows == sum(c["rows"] for c in chunks) == xcom(dr, "clicks", "rows")
    assert xcom(dr, "clicks", "bytes") == sum(p.stat().st_size for p in lake.glob("*.parquet"))
    assert chunks[16] == {
        "start": "2026-10-17T00:00:00+08:00",
        "end": "2026-10-18T00:00:00+08:00",
        "uri": (lake / "2026-10-17T00-00-00_2026-10-18T00-00-00.parquet").as_uri(),
        "rows": 10,
        "bytes": (lake / "2026-10-17T00-00-00_2026-10-18T00-00-00.parquet").stat().st_size,
    }
    day = dataset.to_table(
        filter=ds.field("SubmitTime") >= pa.scalar(datetime(2026, 10, 31, tzinfo=TZ), pa.timestamp("us", "Asia/Taipei"))
    )
    assert day.num_rows == 10

    # another run lands everything afresh
    cloudmax_emulator.clear_log()
    run_dag(source, "cmx_chunks", logical_date=__import__("pendulum").datetime(2026, 11, 2, tz="UTC"))
    assert _start_times(cloudmax_emulator) == days


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
def test_chunks_and_manifest_on_s3_resume(cloudmax_emulator, cloudmax_conn, s3_bucket):
    bucket, client = s3_bucket
    cloudmax_conn(attempts=1)
    cloudmax_emulator.settings.fail_start_windows = [("2026-10-02 00:00:00", "2026-10-03 00:00:00")]
    cloudmax_emulator.settings.fail_start_first = 1
    source = CHUNK_DAG.format(
        dag_id="cmx_chunks_s3",
        start="2026-10-01 00:00:00",
        end="2026-10-04 00:00:00",
        fmt="jsonl",
        destination=f"s3://{bucket}/clicks/",
        conn_id="aws_moto",
    )
    dr = run_dag(source, "cmx_chunks_s3")
    assert task_states(dr) == {"clicks": "success"}
    assert _start_times(cloudmax_emulator) == ["2026-10-01", "2026-10-02", "2026-10-02", "2026-10-03"]
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "clicks/2026-10-01T00-00-00_2026-10-02T00-00-00.jsonl",
        "clicks/2026-10-02T00-00-00_2026-10-03T00-00-00.jsonl",
        "clicks/2026-10-03T00-00-00_2026-10-04T00-00-00.jsonl",
    ]
    body = client.get_object(Bucket=bucket, Key=keys[0])["Body"].read().decode()
    assert len(body.splitlines()) == 10 and json.loads(body.splitlines()[0])["ClickID"] > 0


def test_openlineage_schema_and_statistics_facets(cloudmax_emulator, cloudmax_conn):
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    task = CloudmaxReportOperator(
        task_id="a",
        report_part_id=31033,
        launch_ids=1,
        destination="s3://lake/removals/",
        columns={"EmailAddress": "email", "SubmitTime": "removed_at"},
        chunk=timedelta(days=1),
        output_format="parquet",
    )
    task._landed = LandedDataset("s3://lake/removals/", rows=42, bytes=4096, files=2, in_prefix=True)
    out = task.get_openlineage_facets_on_complete(None).outputs[0]
    assert (out.namespace, out.name) == ("s3://lake", "removals/")
    assert [(f.name, f.type) for f in out.facets["schema"].fields] == [
        ("email", "string"),
        ("removed_at", "timestamp[us, tz=Asia/Taipei]"),
    ]
    stats = out.outputFacets["outputStatistics"]
    assert (stats.rowCount, stats.size, stats.fileCount) == (42, 4096, 2)


LINKS_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator

with DAG("cmx_links_typed", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxDownloadLinksOperator(task_id="merged", links={links!r}, destination={merged!r},
                                  output_format="parquet", report_part_id=21003)
    CloudmaxDownloadLinksOperator(task_id="each", links={links!r}, destination={each!r},
                                  output_format="jsonl", report_part_id="bounce_details", one_object_per_link=True)
"""


@pytest.mark.usefixtures("airflow_db")
def test_download_links_operator_writes_typed_formats(cloudmax_emulator, cloudmax_conn, tmp_path):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    cloudmax_emulator.settings.split_links = True
    cloudmax_emulator.settings.csv_encoding = "utf-16"
    hook = CloudmaxHook()
    window = ("2026-10-01 00:00:00", "2026-10-02 00:00:00")
    links = hook.request_links(hook.build_request(21003, [31, 32], *window, response_mode=1))
    expected = _jsonable(hook.get_rows(hook.build_request(21003, [31, 32], *window, response_mode=3)))
    source = LINKS_DAG.format(links=links, merged=(tmp_path / "b.parquet").as_uri(), each=tmp_path.as_uri() + "/each/")
    dr = run_dag(source, "cmx_links_typed")
    assert task_states(dr) == {"merged": "success", "each": "success"}
    assert _jsonable(pq.read_table(tmp_path / "b.parquet").to_pylist()) == expected  # one header over two files
    files = sorted((tmp_path / "each").glob("*.jsonl"))
    assert len(files) == 2
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(rows, key=json.dumps) == sorted(expected, key=json.dumps)
