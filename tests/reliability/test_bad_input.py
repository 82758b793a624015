"""Bad input: wrong arguments and connections are refused before any request reaches the emulator.

Each row is a mistake a user makes. A literal value fails when the DAG is parsed (the operator's
constructor); the same value given through a template fails at the start of execute, after Airflow
renders it and before anything is sent. Every message is asserted: it names the argument and the fix.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.operators.report import CloudmaxReportOperator
from tests.airflow_runner import run_dag, task_states
from tests.conftest import cloudmax_conn_json
from tests.reliability.conftest import FIGURES, render_and_execute, task_context

pytestmark = pytest.mark.usefixtures("airflow_db")

BASE: dict[str, Any] = {"report_part_id": 2100199, "launch_ids": 1225}
LAUNCH_FIX = r"pass an int, a list of ints or a CSV string"
NOT_TIME = r"is not a time; pass a datetime, an ISO-8601 string"
TEMPLATED = set(CloudmaxReportOperator.template_fields)

# (id, arguments, message) -- the message is a regex that must match the error's text.
ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "report-unknown-id",
        {"report_part_id": 99999},
        r"report_part_id=.?99999.? is not a Cloudmax ReportPartID; use one of",
    ),
    (
        "report-slug-typo",
        {"report_part_id": "remvals"},
        r"report_part_id='remvals' is not a Cloudmax ReportPartID; did you mean 'removals' \(31033\)\? use one",
    ),
    (
        "report-slug-singular",
        {"report_part_id": "click_detail"},
        r"report_part_id='click_detail' is not a Cloudmax ReportPartID; did you mean 'click_details' \(21002\)\?",
    ),
    (
        "report-id-typo",
        {"report_part_id": 210021},
        r"report_part_id=.?210021.? is not a Cloudmax ReportPartID; did you mean '21002' \(click_details\)\?",
    ),
    ("report-empty", {"report_part_id": " "}, r"report_part_id=' ' is not a Cloudmax ReportPartID"),
    (
        "launch-empty-item",
        {"launch_ids": "1225,,1116"},
        r"launch_ids='1225,,1116' has an empty item \(item 2\).*" + LAUNCH_FIX,
    ),
    ("launch-trailing-comma", {"launch_ids": "1225,"}, r"launch_ids='1225,' ends with a separator.*join\(','\)"),
    ("launch-duplicate", {"launch_ids": [1225, 1116, 1225]}, r"launch_ids lists 1225 twice; list each LaunchID once"),
    ("launch-duplicate-strings", {"launch_ids": "7, 7"}, r"launch_ids lists 7 twice; list each LaunchID once"),
    (
        "launch-empty-list",
        {"launch_ids": []},
        r"launch_ids=.*is empty; pass at least one LaunchID, e.g. launch_ids=\[1225\]",
    ),
    ("launch-blank", {"launch_ids": "  "}, r"launch_ids='  ' is empty; pass at least one LaunchID"),
    ("launch-zero", {"launch_ids": 0}, r"launch_ids holds .?0.?, which is not a positive LaunchID; " + LAUNCH_FIX),
    ("launch-negative", {"launch_ids": [-5]}, r"launch_ids holds .?-5.?, which is not a positive LaunchID"),
    ("launch-letters", {"launch_ids": "12a4"}, r"launch_ids holds '12a4', which is not a positive LaunchID"),
    ("launch-float", {"launch_ids": 1.5}, r"launch_ids.*(is a float|holds '1.5').*" + LAUNCH_FIX),
    ("launch-none-item", {"launch_ids": [1225, None]}, r"launch_ids holds .?None.?, which is not a positive LaunchID"),
    ("launch-bool", {"launch_ids": True}, r"launch_ids holds .?True.?, which is not a positive LaunchID"),
    ("launch-arabic-digits", {"launch_ids": "١٢٣"}, r"launch_ids holds '١٢٣', which is not a positive LaunchID"),
    ("launch-too-long", {"launch_ids": "123456789012"}, r"launch_ids holds '123456789012', which is not a positive"),
    ("launch-nested-list", {"launch_ids": [[1, 2]]}, r"launch_ids holds .*\[1.*not a positive LaunchID"),
    ("start-unparseable", {"start_time": "2026-13-01"}, r"start_time='2026-13-01' " + NOT_TIME),
    ("start-words", {"start_time": "yesterday"}, r"start_time='yesterday' " + NOT_TIME),
    ("end-day-first", {"end_time": "01/11/2026"}, r"end_time='01/11/2026' " + NOT_TIME),
    (
        "window-reversed",
        {"start_time": "2026-11-02 00:00:00", "end_time": "2026-11-01 00:00:00"},
        r"the window is empty or reversed: .*pass an end_time after start_time",
    ),
    (
        "window-empty",
        {"start_time": "2026-11-01 00:00:00", "end_time": "2026-11-01 00:00:00"},
        r"the window is empty or reversed",
    ),
    (
        "window-absurdly-long",
        {"start_time": "1970-01-01 00:00:00", "end_time": "2026-11-01 00:00:00"},
        r"days long, more than 366: usually a template that rendered a wrong date",
    ),
    (
        "columns-two-to-one-name",
        {"columns": {"EmailAddress": "x", "IP": "x"}},
        r"columns gives 'EmailAddress' and 'IP' the same output name 'x'.*give each column its own name",
    ),
    (
        "columns-rename-onto-selected",
        {"columns": {"EmailAddress": None, "IP": "EmailAddress"}},
        r"columns renames 'IP' to 'EmailAddress', which is another column of report 2100199",
    ),
    (
        "columns-string-means-a-rename",
        {"columns": "EmailAddress,SubmitTime"},
        r"columns renames 'EmailAddress' to 'SubmitTime'.*pass a list",
    ),
    ("columns-case", {"columns": ["emailaddress"]}, r"columns names 'emailaddress'.*did you mean 'EmailAddress'\?"),
    (
        "columns-unknown",
        {"columns": ["Browser"]},
        r"columns names 'Browser', which report 2100199 does not have; report",
    ),
    ("columns-twice", {"columns": ["IP", "IP"]}, r"columns names 'IP' twice; list each column once"),
    (
        "columns-too-many",
        {"report_part_id": 11001, "columns": [f"C{i}" for i in range(100)]},
        r"columns has 100 entries",
    ),
    (
        "columns-not-names",
        {"columns": [1, 2]},
        r"columns holds 1; give column names, \(name, new_name\) pairs or a dict",
    ),
    ("columns-comma-in-new-name", {"columns": {"IP": "a,b"}}, r"columns entry \('IP', 'a,b'\) .* has a comma"),
    (
        "columns-broken-literal",
        {"columns": "['EmailAddress'"},
        r"columns=.* is not a Python/JSON literal.*render_template_as_native_obj",
    ),
    (
        "language-unknown",
        {"report_part_id": 31033, "language": "fr"},
        r"language='fr' is not supported; use 'zh-TW' \(17\) or 'en'",
    ),
    (
        "language-wrong-report",
        {"language": "en"},
        r"language is only supported by report 31033 \(removals\), not 2100199",
    ),
    (
        "mode-out-of-range",
        {"response_mode": 4},
        r"response_mode=.?4.? is not valid; use 0 \(UNC link\), 1 \(HTTP link\)",
    ),
    ("mode-name", {"response_mode": "csv"}, r"response_mode='csv' is not valid; use 0"),
    ("mode-bool", {"response_mode": True}, r"response_mode=.?True.? is not valid"),
    ("mode-float", {"response_mode": 2.5}, r"response_mode=.?2.5.? is not valid"),
    (
        "mode-0-without-smb",
        {"response_mode": 0},
        r"response_mode=0 answers UNC links.*set smb_conn_id to an Airflow 'samba'",
    ),
    (
        "dest-relative",
        {"destination": "reports/2026-11-01.csv"},
        r"destination='reports/2026-11-01.csv' is not a URI \(a relative path",
    ),
    (
        "dest-file-two-slashes",
        {"destination": "file://data/x.csv"},
        r"names a host 'data': a file URI needs an absolute path, 'file:///data/x.csv'",
    ),
    (
        "dest-traversal",
        {"destination": "file:///srv/lake/../etc/x.csv"},
        r"has a '.' or '..' segment, which would land outside",
    ),
    (
        "dest-bucket-only",
        {"destination": "s3://lake"},
        r"destination='s3://lake' names a folder or bucket, not an object; add",
    ),
    (
        "dest-folder",
        {"destination": "s3://lake/cloudmax/"},
        r"names a folder or bucket, not an object.*one_object_per_link",
    ),
    (
        "per-link-not-a-prefix",
        {"destination": "s3://lake/y.csv", "one_object_per_link": True, "response_mode": 1},
        r"must be a prefix ending in '/' with one_object_per_link=True.*write 's3://lake/y.csv/'",
    ),
    (
        "per-link-without-links",
        {"destination": "s3://lake/r/", "one_object_per_link": True},
        r"one_object_per_link=True needs response_mode 0 or 1 \(DOWNLOADLINKs\), not 3",
    ),
    (
        "per-link-to-xcom",
        {"one_object_per_link": True},
        r"one_object_per_link=True needs a destination prefix ending in '/'",
    ),
    (
        "encoding-unknown",
        {"destination": "s3://lake/x.csv", "output_encoding": "utf-9"},
        r"output_encoding='utf-9' is not a known encoding",
    ),
    ("xcom-rows-negative", {"max_xcom_rows": -1}, r"max_xcom_rows=-1 must be an int >= 0"),
    ("xcom-rows-text", {"max_xcom_rows": "100"}, r"max_xcom_rows='100' must be an int >= 0"),
    ("window-zero", {"window": timedelta(0)}, r"window=.* must be a positive timedelta, e.g. timedelta\(days=1\)"),
    ("window-int", {"window": 1}, r"window=1 must be a positive timedelta"),
    ("poll-interval-zero", {"poll_interval": 0}, r"poll_interval=0 must be a number of seconds > 0"),
    ("link-timeout-negative", {"link_timeout": -1}, r"link_timeout=-1 must be a number of seconds > 0"),
    (
        "extra-fields-string",
        {"extra_fields": "FailedUrl=https://x"},
        r"extra_fields='FailedUrl=https://x' is a str; pass a dict",
    ),
    (
        "extra-fields-password",
        {"extra_fields": {"ManagerPassword": "x"}},
        r"extra_fields may not set 'ManagerPassword'; use the",
    ),
    (
        "extra-fields-launch",
        {"extra_fields": {"launchid": 5}},
        r"extra_fields may not set 'launchid'; use the dedicated argument",
    ),
    (
        "extra-fields-none-value",
        {"extra_fields": {"FailedUrl": None}},
        r"extra_fields\['FailedUrl'\]=None is a NoneType",
    ),
    (
        "extra-fields-bad-key",
        {"extra_fields": {"Failed Url": "x"}},
        r"extra_fields key 'Failed Url' is not a Report.aspx field name",
    ),
]

# Found only when the task runs (rendered values, connections that must exist): (id, arguments, message).
AT_EXECUTE: list[tuple[str, dict[str, Any], str]] = [
    (
        "window-naive-equals-aware",  # naive = the account's time (Asia/Taipei): the same instant
        {"start_time": "2026-11-01T00:00:00+00:00", "end_time": "2026-11-01 08:00:00"},
        r"the window is empty or reversed: start_time 2026-11-01 08:00:00 .. end_time 2026-11-01 08:00:00 "
        r"\(Asia/Taipei\)",
    ),
    (
        "dest-unknown-scheme",
        {"destination": "ftp://files/x.csv"},
        r"Airflow has no filesystem for ftp:// .*install the provider",
    ),
    (
        "dest-conn-unknown",
        {"destination": "file:///tmp/cmx-x.csv", "destination_conn_id": "aws_typo"},
        r"destination_conn_id='aws_typo' is not a connection",
    ),
    (
        "smb-conn-unknown",
        {"response_mode": 0, "smb_conn_id": "smb_typo"},
        r"smb_conn_id='smb_typo' is not a connection; create a 'samba'",
    ),
    (
        "smb-conn-not-samba",
        {"response_mode": 0, "smb_conn_id": "cloudmax_default"},
        r"smb_conn_id='cloudmax_default' is a 'cloudmax' connection; it must be a 'samba'",
    ),
    (
        "daily-interval-as-window",
        {"start_time": "{{ data_interval_start }}", "end_time": "{{ data_interval_end }}"},
        r"the window is empty or reversed.*in Airflow 3 a schedule like '@daily' is a CronTriggerTimetable"
        r".*CronDataIntervalTimetable",
    ),
    ("start-rendered-blank", {"start_time": "{{ params.missing or ' ' }}"}, r"start_time=' ' rendered to blank text"),
    (
        "dest-rendered-relative",
        {"destination": "{{ ds }}/opens.csv"},
        r"destination='2026-11-01/opens.csv' is not a URI \(a relative path",
    ),
    (
        "dest-under-a-file",
        {"destination": "file:///etc/hostname/x.csv"},
        r"'/etc/hostname' is not a writable folder on this worker",
    ),
    (
        "columns-rendered-list-unknown",
        {"columns": "{{ ['Browser'] }}"},
        r"columns names 'Browser', which report 2100199 does not have",
    ),
]

# Connections: (id, connection JSON fields, message).
CONNECTIONS: list[tuple[str, dict[str, Any], str]] = [
    (
        "conn-no-host",
        {"host": None},
        r"has no host \(Base URL\); set it to the API's base URL, e.g. 'https://api.itpison.com'",
    ),
    ("conn-host-not-url", {"host": "http://not a url"}, r"host='http://not a url' is not a base URL; use e.g."),
    (
        "conn-host-no-scheme",
        {"host": "127.0.0.1:18080"},
        r"host=.127.0.0.1:18080. is not a base URL: it has no scheme; write .https://127.0.0.1:18080. .*"
        r"or 'http://127.0.0.1:18080' for a plain-HTTP server such as the emulator, or set the 'scheme' extra",
    ),
    ("conn-host-bad-port", {"host": "http://127.0.0.1:99999"}, r"its port is not a number from 1 to 65535"),
    (
        "conn-host-with-path",
        {"host": "http://127.0.0.1:1/WebAPI/Report.aspx"},
        r"give only scheme://host\[:port\] \(Report.aspx's path goes in the 'endpoint' extra\)",
    ),
    (
        "conn-host-user-info",
        {"host": "http://demo:secret@127.0.0.1:1"},
        r"its host holds user info .*put the API account and password in login and password",
    ),
    ("conn-no-login", {"login": None}, r"needs login \(API account, ManagerLoginName\) and password"),
    ("conn-no-password", {"password": None}, r"needs login .* and password \(API password, ManagerPassword\)"),
    (
        "conn-extra-not-json",
        {"extra": "timeout=5"},
        r"its extra is not JSON \(Expecting value at line 1 column 1\); write it as a JSON object",
    ),
    ("conn-extra-list", {"extra": "[1, 2]"}, r"its extra is JSON list, not an object"),
    ("conn-extra-misspelled", {"extra": {"timout": 5}}, r"has an unknown extra 'timout'; did you mean 'timeout'\?"),
    (
        "conn-extra-unknown",
        {"extra": {"colour": "red"}},
        r"has an unknown extra 'colour'; the extras are: allowed_link_hosts",
    ),
    (
        "conn-timezone",
        {"extra": {"timezone": "Taipei"}},
        r"timezone='Taipei' is not an IANA timezone name; set the connection extra 'timezone'",
    ),
    ("conn-method", {"extra": {"method": "PUT"}}, r"connection extra method='PUT'; use 'POST' \(default\) or 'GET'"),
    (
        "conn-request-format",
        {"extra": {"request_format": "soap"}},
        r"request_format='soap'; use 'fields', 'xml' or 'xml_file'",
    ),
    (
        "conn-xml-file-get",
        {"extra": {"request_format": "xml_file", "method": "GET"}},
        r"'xml_file' uploads a file: it needs method POST",
    ),
    ("conn-timeout-text", {"extra": {"timeout": "fast"}}, r"connection extra timeout='fast' must be a number >= 0.1"),
    ("conn-attempts-zero", {"extra": {"attempts": 0}}, r"connection extra attempts=0 must be a number >= 1"),
]


def _operator(task_id: str, **kwargs: Any) -> CloudmaxReportOperator:
    return CloudmaxReportOperator(task_id=task_id, **{**BASE, **kwargs})


@pytest.mark.parametrize(("case", "kwargs", "message"), ARGUMENTS, ids=[c[0] for c in ARGUMENTS])
def test_literal_refused_when_the_dag_is_parsed(no_requests, case, kwargs, message):
    with pytest.raises(CloudmaxConfigError, match=message):
        _operator(case.replace("-", "_"), **kwargs)
    FIGURES["bad inputs refused at parse time (0 requests sent)"] += 1


TEMPLATED_ARGUMENTS = [c for c in ARGUMENTS if set(c[1]) & TEMPLATED]


@pytest.mark.parametrize(("case", "kwargs", "message"), TEMPLATED_ARGUMENTS, ids=[c[0] for c in TEMPLATED_ARGUMENTS])
def test_templated_refused_at_the_start_of_execute(no_requests, cloudmax_conn, case, kwargs, message):
    """The same values through templates: parse passes, execute refuses before sending anything."""
    params = {name: value for name, value in kwargs.items() if name in TEMPLATED}
    templated = {name: f"{{{{ params.{name} }}}}" if name in TEMPLATED else value for name, value in kwargs.items()}
    with pytest.raises(CloudmaxConfigError, match=message):  # at execute, or at parse if still knowable then
        render_and_execute(_operator(case.replace("-", "_"), **templated), task_context(params))
    FIGURES["bad inputs refused at execute, templated (0 requests sent)"] += 1


@pytest.mark.parametrize(("case", "kwargs", "message"), AT_EXECUTE, ids=[c[0] for c in AT_EXECUTE])
def test_refused_at_the_start_of_execute(no_requests, cloudmax_conn, case, kwargs, message):
    task = _operator(case.replace("-", "_"), **kwargs)
    with pytest.raises(CloudmaxConfigError, match=message):
        render_and_execute(task, task_context())
    FIGURES["bad inputs refused at execute, templated (0 requests sent)"] += 1


@pytest.mark.parametrize(("case", "fields", "message"), CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
def test_bad_connection_refused_before_sending(no_requests, monkeypatch, case, fields, message):
    conn = json.loads(cloudmax_conn_json(no_requests))
    for name, value in fields.items():
        if name == "extra" and isinstance(value, dict):
            conn["extra"] = {**conn["extra"], **value}
        elif value is None:
            conn.pop(name, None)
        else:
            conn[name] = value
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_DEFAULT", json.dumps(conn))
    task = _operator(case.replace("-", "_"))
    with pytest.raises(CloudmaxConfigError, match=message) as info:
        render_and_execute(task, task_context())
    assert "secret" not in str(info.value) and "demo-password" not in str(info.value)
    FIGURES["bad connections refused (0 requests sent)"] += 1


def test_templated_mistakes_fail_their_tasks_in_a_real_run(no_requests, cloudmax_conn):
    """The same refusals inside a real DAG run (dag.test): every task fails, nothing is sent."""
    tasks = {
        "launch_ids": 'launch_ids="{{ params.ids }}", params={"ids": "1225,,1116"}',
        "columns": 'columns="{{ params.cols }}", params={"cols": {"EmailAddress": "x", "IP": "x"}}',
        "destination": 'destination="{{ ds }}/x.csv"',
        # an empty window (Airflow 3's @daily gives data_interval_start == _end; Airflow 2's does not)
        "window": 'start_time="{{ data_interval_start }}", end_time="{{ data_interval_start }}"',
        "mode": 'response_mode="{{ 0 }}"',
        "extra_fields": 'extra_fields="{{ params.extra }}", params={"extra": "FailedUrl=x"}',
    }
    body = "".join(
        f"    CloudmaxReportOperator(task_id={name!r}, report_part_id=2100199, launch_ids=1225, {args})\n"
        for name, args in tasks.items()
    ).replace("launch_ids=1225, launch_ids=", "launch_ids=")
    src = (
        "import pendulum\nfrom airflow.providers.common.compat.sdk import DAG\n"
        "from cloudmax_provider.operators.report import CloudmaxReportOperator\n"
        'with DAG("rel_bad_templates", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), '
        "catchup=False) as dag:\n" + body
    )
    dr = run_dag(src, "rel_bad_templates")
    assert task_states(dr) == dict.fromkeys(tasks, "failed")
    FIGURES["bad inputs refused in a real DAG run (0 requests sent)"] += len(tasks)


@pytest.mark.parametrize(
    ("case", "conn_extra", "destination", "message"),
    [
        (
            "s3-no-credentials",
            {},
            "s3://{bucket}/r.csv",
            r"no credentials found for s3:// \(Airflow would write anonymously",
        ),
        (
            "s3-no-bucket",
            {"login": "testing", "password": "testing"},
            "s3://no-such-bucket-x/r.csv",
            r"bucket 'no-such-bucket-x' does not exist",
        ),
    ],
    ids=["s3-no-credentials", "s3-no-bucket"],
)
def test_an_unusable_s3_destination_is_refused_before_the_report_is_requested(
    no_requests, cloudmax_conn, moto_s3_endpoint, monkeypatch, tmp_path, case, conn_extra, destination, message
):
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe: fast, and no cloud here
    bucket = f"rel-{case}"
    boto3.client(
        "s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    ).create_bucket(Bucket=bucket)
    conn_id = f"aws_{case.replace('-', '_')}"
    conn = {"conn_type": "aws", **conn_extra, "extra": {"endpoint_url": moto_s3_endpoint, "region_name": "us-east-1"}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    task = _operator(case.replace("-", "_"), destination=destination.format(bucket=bucket), destination_conn_id=conn_id)
    with pytest.raises(CloudmaxConfigError, match=message):
        render_and_execute(task, task_context())
    FIGURES["bad inputs refused at execute, templated (0 requests sent)"] += 1


@pytest.mark.parametrize(
    ("destination", "conn_id", "message"),
    [
        ("ftp://files/x.csv", None, r"Airflow has no filesystem for ftp://"),
        ("file:///tmp/cmx-links/x.csv", "aws_typo", r"destination_conn_id='aws_typo' is not a connection"),
        ("{{ ds }}/x.csv", None, r"destination='2026-11-01/x.csv' is not a URI"),
    ],
    ids=["unknown-scheme", "unknown-conn", "rendered-relative"],
)
def test_download_links_destination_refused_before_any_link_is_fetched(
    no_requests, cloudmax_conn, destination, conn_id, message
):
    from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator

    link = f"{no_requests.base_url}/WebAPI/ReportFiles/abc/r.csv"
    task = CloudmaxDownloadLinksOperator(
        task_id="download", links=[link], destination=destination, destination_conn_id=conn_id
    )
    with pytest.raises(CloudmaxConfigError, match=message):
        render_and_execute(task, task_context())
    FIGURES["bad inputs refused at execute, templated (0 requests sent)"] += 1
