"""CloudmaxReportOperator inside real Airflow (dag.test() on the session's SQLite DB) against the emulator."""

from __future__ import annotations

import codecs
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError, CloudmaxWindowError
from tests.airflow_compat import declared_uris
from tests.airflow_runner import run_dag, task_states, xcom
from tests.conftest import smb_conn_json

pytestmark = pytest.mark.usefixtures("airflow_db")

WINDOW = ("2026-10-31 08:00:00", "2026-11-01 08:00:00")  # the 2026-11-01T00:00Z daily run, in Asia/Taipei
DAY = ("2026-10-31 00:00:00", "2026-11-01 00:00:00")  # its last complete account-local day (a partition)

DAG_HEAD = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG({dag_id!r}, schedule={schedule}, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
"""


def dag_source(dag_id: str, *tasks: str, schedule: str = '"@daily"') -> str:
    body = "".join(f"    {t}\n" for t in tasks)
    return DAG_HEAD.format(dag_id=dag_id, schedule=schedule) + body


def op(task_id: str = "report", **kwargs: object) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"CloudmaxReportOperator(task_id={task_id!r}, {args})"


def test_rows_to_xcom_are_typed(cloudmax_emulator, cloudmax_conn):
    dr = run_dag(dag_source("cmx_xcom", op(report_part_id="click_details", launch_ids=[1225, 1116])), "cmx_xcom")
    assert task_states(dr) == {"report": "success"}
    rows = xcom(dr, "report")
    header, cells = cloudmax_emulator.expected_rows(21002, [1225, 1116], *WINDOW)
    assert len(rows) == len(cells) == 10 and list(rows[0]) == header
    tz = ZoneInfo("Asia/Taipei")
    for row, raw in zip(rows, cells, strict=True):
        got = dict(zip(header, raw, strict=True))
        assert row["ClickID"] == int(got["ClickID"]) and isinstance(row["ClickID"], int)
        assert row["EmailID"] == int(got["EmailID"])
        assert row["Longitude"] == (float(got["Longitude"]) if got["Longitude"] else None)
        assert row["CustomerID"] == (got["CustomerID"] or None)
        expected_time = datetime.strptime(got["SubmitTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
        assert row["SubmitTime"] == expected_time.isoformat() and row["SubmitTime"].endswith("+08:00")
    (api,) = cloudmax_emulator.api_requests
    assert (api.field("StartTime"), api.field("EndTime")) == WINDOW
    assert api.field("ResponseMode") == "2"


DAG_IMPORT = "from airflow.providers.common.compat.sdk import DAG"
INTERVAL_IMPORT = "from airflow.timetables.interval import CronDataIntervalTimetable"
TRIGGER_IMPORT = "from airflow.timetables.trigger import CronTriggerTimetable"
TRIGGER_SCHEDULE = 'CronTriggerTimetable("0 0 * * *", timezone="UTC")'


@pytest.mark.parametrize(
    "schedule", ['"@daily"', 'CronDataIntervalTimetable("0 0 * * *", timezone="UTC")'], ids=["cron-trigger", "interval"]
)
def test_daily_window_in_the_account_timezone(cloudmax_emulator, cloudmax_conn, schedule):
    src = dag_source("cmx_window", op(report_part_id=20001, launch_ids=1225), schedule=schedule)
    src = src.replace(DAG_IMPORT, f"{DAG_IMPORT}\n{INTERVAL_IMPORT}")
    dr = run_dag(src, "cmx_window")
    assert task_states(dr) == {"report": "success"}
    (api,) = cloudmax_emulator.api_requests
    assert (api.field("StartTime"), api.field("EndTime")) == WINDOW


def test_templated_window_under_interval_timetable(cloudmax_emulator, cloudmax_conn):
    src = dag_source(
        "cmx_tmpl",
        op(
            report_part_id="{{ 20000 + 1 }}",
            launch_ids="{{ [1225, 1116] }}",
            start_time="{{ data_interval_start }}",
            end_time="{{ data_interval_end }}",
        ),
        schedule='CronDataIntervalTimetable("0 0 * * *", timezone="UTC")',
    ).replace(DAG_IMPORT, f"{DAG_IMPORT}\n{INTERVAL_IMPORT}")
    dr = run_dag(src, "cmx_tmpl")
    assert task_states(dr) == {"report": "success"}
    (api,) = cloudmax_emulator.api_requests
    assert (api.field("StartTime"), api.field("EndTime")) == WINDOW
    assert api.field("LaunchID") == "1225,1116" and api.field("ReportPartID") == "20001"


def test_explicit_reversed_window_fails_clearly(cloudmax_emulator, cloudmax_conn):
    src = dag_source(
        "cmx_rev", op(report_part_id=20001, launch_ids=1, start_time="{{ ds }} 10:00:00", end_time="{{ ds }} 09:00:00")
    )
    dr = run_dag(src, "cmx_rev")
    assert task_states(dr) == {"report": "failed"}
    assert cloudmax_emulator.api_requests == []


@pytest.mark.parametrize(
    ("source_encoding", "output_encoding"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8"), ("utf-16", "utf-8")]
)
def test_to_local_file_transcoded(cloudmax_emulator, cloudmax_conn, tmp_path, source_encoding, output_encoding):
    cloudmax_emulator.settings.csv_encoding = source_encoding
    dest = tmp_path / "out" / "removals.csv"
    dr = run_dag(
        dag_source("cmx_file", op(report_part_id=31033, launch_ids=[7, 8], destination=f"file://{dest}")), "cmx_file"
    )
    assert task_states(dr) == {"report": "success"}
    expected = cloudmax_emulator.expected_csv(31033, [7, 8], *WINDOW)
    assert dest.read_bytes() == expected.encode("utf-8")  # BOM removed, UTF-16 transcoded
    assert xcom(dr, "report") == f"file://{dest}"
    assert xcom(dr, "report", "rows") == 10
    assert xcom(dr, "report", "bytes") == len(expected.encode())
    assert [p.name for p in dest.parent.iterdir()] == ["removals.csv"]  # no temporary left
    assert cloudmax_emulator.api_requests[0].field("ResponseMode") == "3"


def test_output_encoding_none_keeps_bytes_as_served(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.csv_encoding = "utf-16"
    dest = tmp_path / "raw.csv"
    dr = run_dag(
        dag_source(
            "cmx_raw", op(report_part_id=21003, launch_ids=5, destination=f"file://{dest}", output_encoding=None)
        ),
        "cmx_raw",
    )
    assert task_states(dr) == {"report": "success"}
    raw = dest.read_bytes()
    assert raw.startswith(codecs.BOM_UTF16_LE)
    assert raw[2:].decode("utf-16-le") == cloudmax_emulator.expected_csv(21003, [5], *WINDOW)
    assert xcom(dr, "report", "rows") == 5


def test_to_s3_through_moto(cloudmax_emulator, cloudmax_conn, s3_bucket):
    bucket, client = s3_bucket
    uri = f"s3://{bucket}/cloudmax/{{{{ ds }}}}/summary.csv"
    dr = run_dag(
        dag_source(
            "cmx_s3", op(report_part_id=30023, launch_ids=[1, 2, 3], destination=uri, destination_conn_id="aws_moto")
        ),
        "cmx_s3",
    )
    assert task_states(dr) == {"report": "success"}
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["cloudmax/2026-11-01/summary.csv"]
    body = client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert body.decode() == cloudmax_emulator.expected_csv(30023, [1, 2, 3], *WINDOW)
    assert xcom(dr, "report") == f"s3://{bucket}/cloudmax/2026-11-01/summary.csv"


def test_truncated_download_leaves_nothing(cloudmax_emulator, cloudmax_conn, tmp_path, s3_bucket):
    bucket, client = s3_bucket
    cloudmax_emulator.settings.truncate_body = True
    cloudmax_emulator.settings.fault_paths = "api"
    dest = tmp_path / "never.csv"
    dr = run_dag(
        dag_source(
            "cmx_trunc",
            op(task_id="local", report_part_id=21002, launch_ids=1, destination=f"file://{dest}"),
            op(
                task_id="s3",
                report_part_id=21002,
                launch_ids=1,
                destination=f"s3://{bucket}/x/never.csv",
                destination_conn_id="aws_moto",
            ),
        ),
        "cmx_trunc",
    )
    assert task_states(dr) == {"local": "failed", "s3": "failed"}
    assert list(tmp_path.iterdir()) == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert len(cloudmax_emulator.api_requests) == 6  # 3 attempts (the test connection's retries) per task


def test_rerun_overwrites_the_same_object(cloudmax_emulator, cloudmax_conn, tmp_path):
    dest = tmp_path / "same.csv"
    src = dag_source("cmx_rerun", op(report_part_id=20005, launch_ids=[1], destination=f"file://{dest}"))
    dest.write_text("stale")
    run_dag(src, "cmx_rerun")
    first = dest.read_bytes()
    run_dag(src, "cmx_rerun")
    assert dest.read_bytes() == first != b"stale"


def test_permanent_api_error_fails_without_retries(cloudmax_emulator, cloudmax_conn):
    cloudmax_conn(password="wrong")
    src = dag_source("cmx_perm", op(report_part_id=20001, launch_ids=1, retries=3))
    dr = run_dag(src, "cmx_perm")
    (ti,) = dr.get_task_instances()
    assert str(ti.state) == "failed" and ti.try_number == 1
    assert len(cloudmax_emulator.api_requests) == 1


def test_too_many_rows_for_xcom_says_set_destination(cloudmax_emulator, cloudmax_conn, caplog):
    dr = run_dag(dag_source("cmx_many", op(report_part_id=21002, launch_ids=[1, 2], max_xcom_rows=3)), "cmx_many")
    assert task_states(dr) == {"report": "failed"}


def test_http_links_merged_with_one_header(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.split_links = True
    dest = tmp_path / "merged.csv"
    dr = run_dag(
        dag_source(
            "cmx_links",
            op(
                report_part_id=2100199,
                launch_ids=[11, 12, 13],
                response_mode=1,
                destination=f"file://{dest}",
                poll_interval=0.2,
            ),
        ),
        "cmx_links",
    )
    assert task_states(dr) == {"report": "success"}
    assert dest.read_bytes().decode() == cloudmax_emulator.expected_csv(2100199, [11, 12, 13], *WINDOW)
    assert len(cloudmax_emulator.link_requests) >= 3
    for r in cloudmax_emulator.link_requests:
        assert "demo-password" not in json.dumps([r.fields, r.headers, r.query])


def test_http_links_one_object_per_link(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.split_links = True
    dr = run_dag(
        dag_source(
            "cmx_split",
            op(
                report_part_id=21032,
                launch_ids=[21, 22],
                response_mode=1,
                destination=f"file://{tmp_path}/",
                one_object_per_link=True,
                poll_interval=0.2,
            ),
        ),
        "cmx_split",
    )
    assert task_states(dr) == {"report": "success"}
    uris = xcom(dr, "report")
    assert len(uris) == 2
    texts = [Path(u.removeprefix("file://")).read_bytes().decode() for u in uris]
    assert texts == [cloudmax_emulator.expected_csv(21032, [i], *WINDOW) for i in (21, 22)]


def test_links_not_ready_are_waited_for(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.link_ready_after = 1.0
    dest = tmp_path / "later.csv"
    dr = run_dag(
        dag_source(
            "cmx_wait",
            op(
                report_part_id=20003,
                launch_ids=[5],
                response_mode=1,
                destination=f"file://{dest}",
                poll_interval=0.3,
                deferrable=True,
            ),
        ),
        "cmx_wait",
    )
    assert task_states(dr) == {"report": "success"}
    assert dest.read_bytes().decode() == cloudmax_emulator.expected_csv(20003, [5], *WINDOW)
    agents = [r.headers.get("User-Agent", "") for r in cloudmax_emulator.link_requests]
    assert any("trigger" in a for a in agents), agents  # waited in the triggerer, not in the worker
    assert len(cloudmax_emulator.api_requests) == 1


def test_unc_link_through_real_samba(cloudmax_emulator, cloudmax_conn, samba_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_SMB_TEST", smb_conn_json(samba_server))
    cloudmax_emulator.settings.unc_root = str(samba_server.share_dir)
    cloudmax_emulator.settings.unc_share = samba_server.share
    dest = tmp_path / "unc.csv"
    dr = run_dag(
        dag_source(
            "cmx_unc",
            op(
                report_part_id=21003,
                launch_ids=[9],
                response_mode=0,
                destination=f"file://{dest}",
                smb_conn_id="smb_test",
                poll_interval=0.3,
            ),
        ),
        "cmx_unc",
    )
    assert task_states(dr) == {"report": "success"}
    assert dest.read_bytes().decode() == cloudmax_emulator.expected_csv(21003, [9], *WINDOW)


def test_literal_arguments_are_validated_at_parse_time():
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    with pytest.raises(CloudmaxConfigError, match="report_part_id"):
        CloudmaxReportOperator(task_id="a", report_part_id=99, launch_ids=1)
    with pytest.raises(CloudmaxConfigError, match="did you mean 'EmailAddress'"):
        CloudmaxReportOperator(task_id="b", report_part_id=31033, launch_ids=1, columns=["emailaddress"])
    with pytest.raises(CloudmaxConfigError, match="at most 99"):
        CloudmaxReportOperator(task_id="c", report_part_id=11001, launch_ids=1, columns=[f"C{i}" for i in range(100)])
    with pytest.raises(CloudmaxConfigError, match="language"):
        CloudmaxReportOperator(task_id="d", report_part_id=21002, launch_ids=1, language="en")
    with pytest.raises(CloudmaxConfigError, match="destination"):
        CloudmaxReportOperator(task_id="e", report_part_id=21002, launch_ids=1, destination="/tmp/x.csv")
    # templated values wait until they render
    CloudmaxReportOperator(task_id="f", report_part_id="{{ params.rid }}", launch_ids="{{ params.ids }}")


def test_parse_time_mistakes_a_new_user_made():
    """What a new user met (issue 27): a digit typo, a suffix that promises another format, a reversed window."""
    from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    with pytest.raises(
        CloudmaxConfigError,
        match=r"did you mean '21001' \(open_details\), '21002' \(click_details\) "
        r"or '21003' \(bounce_details\)\?",
    ):
        CloudmaxReportOperator(task_id="a", report_part_id=21009, launch_ids=1)
    with pytest.raises(
        CloudmaxConfigError, match=r"ends in '.parquet' but output_format='csv'.*output_format='parquet'"
    ):
        CloudmaxReportOperator(task_id="b", report_part_id=21002, launch_ids=1, destination="file:///d/x.parquet")
    with pytest.raises(CloudmaxConfigError, match=r"ends in '.csv' but output_format='jsonl'"):
        CloudmaxReportOperator(
            task_id="c",
            report_part_id=21002,
            launch_ids=1,
            output_format="jsonl",
            destination="s3://lake/{window_start:%Y-%m-%d}.csv",
        )
    with pytest.raises(CloudmaxConfigError, match=r"ends in '.jsonl' but output_format='csv'"):
        CloudmaxDownloadLinksOperator(task_id="d", links="http://h/a.csv", destination="s3://l/a.jsonl")
    CloudmaxReportOperator(  # a suffix that promises nothing is not checked
        task_id="e", report_part_id=21002, launch_ids=1, output_format="parquet", destination="s3://l/x.snappy.pq"
    )
    with pytest.raises(CloudmaxWindowError, match=r"\(in any timezone\); pass an end_time after start_time") as err:
        CloudmaxReportOperator(
            task_id="f",
            report_part_id=21002,
            launch_ids=1,
            start_time="2026-11-05 00:00:00",
            end_time="2026-11-01 00:00:00",
        )
    assert "Etc/GMT" not in str(err.value)  # no zone the user never set


def test_destination_is_declared_as_asset_outlet():
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    task = CloudmaxReportOperator(task_id="a", report_part_id=31033, launch_ids=1, destination="s3://lake/r.csv")
    assert declared_uris(task) == ["s3://lake/r.csv"]
    templated = CloudmaxReportOperator(
        task_id="b", report_part_id=31033, launch_ids=1, destination="s3://l/{{ ds }}.csv"
    )
    assert templated.outlets == []


def test_openlineage_facets(cloudmax_emulator, cloudmax_conn):
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    task = CloudmaxReportOperator(task_id="a", report_part_id=31033, launch_ids=1, destination="s3://lake/r.csv")
    lineage = task.get_openlineage_facets_on_complete(None)
    assert lineage.inputs[0].namespace == "cloudmax://127.0.0.1" and lineage.inputs[0].name == "report/31033"
    assert (lineage.outputs[0].namespace, lineage.outputs[0].name) == ("s3://lake", "r.csv")


def test_deferrable_operator_waits_in_the_trigger(cloudmax_emulator, cloudmax_conn, tmp_path, caplog):
    cloudmax_emulator.settings.link_ready_after = 1.5
    cloudmax_emulator.settings.split_links = True
    dest = tmp_path / "deferred.csv"
    dr = run_dag(
        dag_source(
            "cmx_defer",
            op(
                report_part_id=21003,
                launch_ids=[31, 32],
                response_mode=1,
                destination=f"file://{dest}",
                deferrable=True,
                poll_interval=0.3,
            ),
        ),
        "cmx_defer",
    )
    assert task_states(dr) == {"report": "success"}
    assert dest.read_bytes().decode() == cloudmax_emulator.expected_csv(21003, [31, 32], *WINDOW)
    agents = {r.headers.get("User-Agent", "").split()[0] for r in cloudmax_emulator.link_requests}
    assert any("trigger" in a for a in agents), agents  # the trigger polled the links
    assert len(cloudmax_emulator.api_requests) == 1  # resuming did not ask Report.aspx again


def test_launch_ids_from_an_upstream_task(cloudmax_emulator, cloudmax_conn):
    src = dag_source(
        "cmx_xcomarg",
        "from airflow.providers.common.compat.sdk import task",
        "@task",
        "def campaigns():",
        "    return [1225, 1116]",
        "ids = campaigns()",
        "report = " + op(report_part_id=20005, launch_ids="@IDS@"),
        "ids >> report",
    ).replace("'@IDS@'", "ids")
    dr = run_dag(src, "cmx_xcomarg")
    assert task_states(dr) == {"campaigns": "success", "report": "success"}
    assert cloudmax_emulator.api_requests[0].field("LaunchID") == "1225,1116"
    assert [row["LaunchID"] for row in xcom(dr, "report")] == [1225, 1116]


def test_progress_is_logged_with_bytes_rows_and_rate(caplog):
    import logging

    from cloudmax_provider.formats.streams import Progress

    caplog.set_level(logging.INFO)
    progress = Progress("Writing x", every=0.0, logger=logging.getLogger("cmx.progress"))
    out = b"".join(progress.track([b"a,b\r\n", b'1,"x\r\ny"\r\n', b"2,z\r\n"]))
    assert out == b'a,b\r\n1,"x\r\ny"\r\n2,z\r\n'
    assert progress.rows == 2 and progress.bytes == len(out)
    assert "Writing x:" in caplog.text and "rows" in caplog.text and "MB/s" in caplog.text


def test_failed_multipart_upload_is_aborted_and_the_old_object_kept(cloudmax_emulator, cloudmax_conn, s3_bucket):
    """A body cut short after several MB: the S3 multipart upload is aborted, the previous object stays."""
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="r/big.csv", Body=b"yesterday's good copy")
    cloudmax_emulator.settings.big_report_bytes = 24 * 2**20  # half of it (> one 8 MiB part) arrives
    cloudmax_emulator.settings.truncate_body = True
    cloudmax_emulator.settings.fault_paths = "api"
    src = dag_source(
        "cmx_mpu",
        op(report_part_id=21002, launch_ids=1, destination=f"s3://{bucket}/r/big.csv", destination_conn_id="aws_moto"),
    )
    dr = run_dag(src, "cmx_mpu")
    assert task_states(dr) == {"report": "failed"}
    assert client.get_object(Bucket=bucket, Key="r/big.csv")["Body"].read() == b"yesterday's good copy"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["r/big.csv"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_window_for_a_run_without_data_interval():
    """A manual run with no logical date: the window ends at run_after."""
    from types import SimpleNamespace

    import pendulum

    from cloudmax_provider.operators.report import CloudmaxReportOperator

    task = CloudmaxReportOperator(task_id="w", report_part_id=20001, launch_ids=1)
    run_after = pendulum.datetime(2026, 11, 5, 3, 0, tz="UTC")
    context = {
        "data_interval_start": None,
        "data_interval_end": None,
        "logical_date": None,
        "dag_run": SimpleNamespace(run_after=run_after),
    }
    start, end, why = task.resolve_window(context, "Asia/Taipei")
    assert (start, end) == (run_after.subtract(days=1), run_after) and "no logical date" in why
    only_end = CloudmaxReportOperator(task_id="e", report_part_id=20001, launch_ids=1, end_time="2026-11-02 00:00:00")
    start, end, _ = only_end.resolve_window(context, "Asia/Taipei")
    assert end.isoformat() == "2026-11-02T00:00:00+08:00" and (end - start).days == 1


def test_a_report_without_rows(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.rows_per_launch = 0
    dest = tmp_path / "empty.csv"
    dr = run_dag(
        dag_source(
            "cmx_empty",
            op(task_id="to_file", report_part_id=21003, launch_ids=4, destination=f"file://{dest}"),
            op(task_id="to_xcom", report_part_id=21003, launch_ids=4),
        ),
        "cmx_empty",
    )
    assert task_states(dr) == {"to_file": "success", "to_xcom": "success"}
    assert dest.read_bytes().decode() == cloudmax_emulator.expected_csv(21003, [4], *WINDOW)
    assert dest.read_bytes().startswith(b"ReturnLogID,") and xcom(dr, "to_file", "rows") == 0
    assert xcom(dr, "to_xcom") == []


def test_password_is_registered_with_the_secrets_masker(cloudmax_emulator, cloudmax_conn):
    """Inside a task the hook registers the password (and its URL-encoded forms) with Airflow's masker,
    which redacts task logs. (dag.test()'s in-process console logging does not apply the masker, so the
    test asks the masker itself.)"""
    secret = "Zq9-very-secret-<&>"
    cloudmax_emulator.settings.accounts = {"demo": secret}
    cloudmax_conn(password=secret, method="GET")
    src = dag_source(
        "cmx_mask",
        "from airflow.providers.common.compat.sdk import task",
        "@task",
        "def probe():",
        "    from urllib.parse import quote, quote_plus",
        "    from airflow.providers.common.compat.sdk import redact",
        "    from cloudmax_provider.hooks.cloudmax import CloudmaxHook",
        "    hook = CloudmaxHook()",
        "    ok, message = hook.test_connection()",
        "    pw = hook.settings.credentials.password",
        "    return [ok, message, [redact(f'x {form} y') for form in (pw, quote(pw, safe=''), quote_plus(pw))]]",
        "probe()",
    )
    dr = run_dag(src, "cmx_mask")
    assert task_states(dr) == {"probe": "success"}
    ok, message, redacted = xcom(dr, "probe")
    assert ok and redacted == ["x *** y"] * 3
    assert secret not in json.dumps([message, redacted])


def test_download_links_operator_checks_its_literal_arguments():
    from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator

    with pytest.raises(CloudmaxConfigError, match="destination"):
        CloudmaxDownloadLinksOperator(task_id="a", links="http://h/a.csv", destination="/tmp/a.csv")
    with pytest.raises(CloudmaxConfigError, match="output_encoding"):
        CloudmaxDownloadLinksOperator(task_id="b", links="http://h/a.csv", destination="file:///a", output_encoding="x")
    CloudmaxDownloadLinksOperator(task_id="c", links="{{ ti.xcom_pull('x') }}", destination="s3://l/{{ ds }}/")


FIELDS_AFTER = """
from cloudmax_provider.operators.report import CloudmaxReportOperator as _Base


class CloudmaxReportOperator(_Base):
    '''Pushes its templated fields as they are once the task is done (execute, or execute_complete).'''

    def _push_fields(self, context):
        context["ti"].xcom_push(key="fields", value={n: getattr(self, n) for n in self.template_fields})

    def execute(self, context):
        result = super().execute(context)
        self._push_fields(context)
        return result

    def execute_complete(self, context, event, links=None):
        result = super().execute_complete(context, event, links)
        self._push_fields(context)
        return result
"""


@pytest.mark.parametrize("mode", [3, 1], ids=["attachment", "links-deferred"])
def test_templated_fields_keep_what_rendering_gave(cloudmax_emulator, cloudmax_conn, tmp_path, mode):
    """The destination's {window_start} is filled in what the task returns and writes, never in the field."""
    cloudmax_emulator.settings.link_ready_after = 1.0  # mode 1: the task defers, execute_complete lands
    template = f"file://{tmp_path}/{{{{ ds_nodash }}}}/{{window_start:%Y-%m-%d}}.csv"
    src = dag_source(
        "cmx_fields",
        op(
            report_part_id=21003,
            launch_ids="{{ [4] }}",
            response_mode=mode,
            destination=template,
            poll_interval=0.3,
            deferrable=True,
        ),
        schedule=TRIGGER_SCHEDULE,  # an empty data interval on every Airflow: one account-local day
    ).replace("from cloudmax_provider.operators.report import CloudmaxReportOperator", FIELDS_AFTER)
    src = src.replace(DAG_IMPORT, f"{DAG_IMPORT}\n{TRIGGER_IMPORT}")
    dr = run_dag(src, "cmx_fields")
    assert task_states(dr) == {"report": "success"}
    written = tmp_path / "20261101" / "2026-10-31.csv"  # the account's last complete day before the run
    assert xcom(dr, "report") == f"file://{written}"  # one object: its URI, a string
    assert written.read_bytes().decode() == cloudmax_emulator.expected_csv(21003, [4], *DAY)
    fields = xcom(dr, "report", "fields")
    assert fields["destination"] == f"file://{tmp_path}/20261101/{{window_start:%Y-%m-%d}}.csv"
    assert fields["launch_ids"] == "[4]" and fields["response_mode"] == mode
    deferred = any("trigger" in r.headers.get("User-Agent", "") for r in cloudmax_emulator.link_requests)
    assert deferred is (mode == 1)


def test_link_modes_wait_in_the_worker_when_not_deferrable(cloudmax_emulator, cloudmax_conn, tmp_path):
    """deferrable=False with ResponseMode 1: the task checks the links in its slot until the files are there."""
    cloudmax_emulator.settings.link_ready_after = 1.0  # at least one "not ready" before the file is there
    target = tmp_path / "clicks.csv"
    task = op(
        report_part_id=21002,
        launch_ids=[1225],
        response_mode=1,
        deferrable=False,
        poll_interval=0.2,
        destination=f"file://{target}",
        emit_asset=False,
    )
    dr = run_dag(dag_source("cmx_nowait", task), "cmx_nowait")
    assert task_states(dr) == {"report": "success"}
    assert target.read_bytes().decode() == cloudmax_emulator.expected_csv(21002, [1225], *WINDOW)
    agents = [r.headers.get("User-Agent", "") for r in cloudmax_emulator.link_requests]
    assert len(agents) >= 3 and not any("trigger" in a for a in agents)  # probed again, never by a trigger


def test_link_modes_give_up_waiting_in_the_worker_at_link_timeout(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.link_ready_after = 3600.0
    task = op(
        report_part_id=21002,
        launch_ids=[1225],
        response_mode=1,
        deferrable=False,
        poll_interval=0.1,
        link_timeout=0.5,
        destination=f"file://{tmp_path}/c.csv",
        emit_asset=False,
    )
    dr = run_dag(dag_source("cmx_nowait_late", task), "cmx_nowait_late")
    assert task_states(dr) == {"report": "failed"}
    assert not (tmp_path / "c.csv").exists()


# ---- max_concurrent_requests (issue 28; the landing itself: tests/unit/landing/test_land.py) ----

BACKFILL_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG("cmx_backfill", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(
        task_id="clicks", report_part_id=21002, launch_ids=[7, 8],
        start_time="2026-10-01 00:00:00", end_time="2026-10-09 00:00:00", chunk=True,
        destination={destination!r}, max_concurrent_requests=4, lookback=timedelta(days=2),
    )
"""


def test_the_operator_lands_a_backfill_four_at_a_time(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_emulator.settings.gather_api_requests = 4  # an event: four requests in flight together
    cloudmax_emulator.settings.latency = 0.05  # each holds its slot a while after, so a fifth would show
    lake = tmp_path / "clicks"
    dr = run_dag(BACKFILL_DAG.format(destination=lake.as_uri() + "/"), "cmx_backfill")
    assert task_states(dr) == {"clicks": "success"}
    assert cloudmax_emulator.max_in_flight == 4
    days = [f"2026-09-{d}" for d in (29, 30)] + [f"2026-10-0{d}" for d in range(1, 9)]  # lookback: 2 days more
    assert sorted(r.field("StartTime")[:10] for r in cloudmax_emulator.api_requests) == days
    assert sorted(p.name[:10] for p in lake.glob("*.csv")) == days
    assert xcom(dr, "clicks", "rows") == 10 * len(days)
    assert [c["start"][:10] for c in xcom(dr, "clicks", "chunks")] == days


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrent_requests": 0}, "must be an int from 1 to 16.*ErrorCode 100"),
        ({"max_concurrent_requests": 17}, "must be an int from 1 to 16"),
        ({"max_concurrent_requests": True}, "must be an int from 1 to 16"),
        ({"max_concurrent_requests": "4"}, "must be an int from 1 to 16"),
        ({"max_concurrent_requests": 4, "destination": None, "chunk": True}, "max_concurrent_requests=4 needs"),
        ({"max_concurrent_requests": 4, "destination": "s3://lake/x.csv", "chunk": None}, "add chunk=True"),
        (
            {
                "max_concurrent_requests": 4,
                "destination": "iceberg://lake.clicks",
                "chunk": None,
                "destination_conn_id": "lake",
            },
            "set max_concurrent_requests=1",
        ),
    ],
)
def test_max_concurrent_requests_is_checked_at_parse_time(kwargs, message):
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    args = {"report_part_id": 21002, "launch_ids": 7, "destination": "s3://lake/clicks/", "chunk": True, **kwargs}
    with pytest.raises(CloudmaxConfigError, match=message):
        CloudmaxReportOperator(task_id="t", **args)


def test_max_concurrent_requests_accepted_where_partitions_are_named():
    from cloudmax_provider.operators.report import CloudmaxReportOperator

    for destination, chunk in (("s3://lake/clicks/", True), ("s3://lake/clicks/{window_start:%Y-%m-%d}.csv", None)):
        task = CloudmaxReportOperator(
            task_id="t",
            report_part_id=21002,
            launch_ids=7,
            destination=destination,
            chunk=chunk,
            max_concurrent_requests=16,
        )
        assert task.max_concurrent_requests == 16
