"""CloudmaxRequestLinksOperator (request -> wait -> download, step one) inside real Airflow, against the
emulator; and the one "known at parse time?" check (cloudmax_provider.utils.templating) the operators share."""

from __future__ import annotations

import pytest

from cloudmax_provider.exceptions import CloudmaxConfigError
from tests.airflow_runner import load_dag, run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

DAY = ("2026-10-31 00:00:00", "2026-11-01 00:00:00")  # the account's day before the 11-01T00:00Z run (Taipei)

DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow.timetables.trigger import CronTriggerTimetable
from cloudmax_provider.operators.request_links import CloudmaxRequestLinksOperator
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

# a daily run with an empty data interval on every Airflow (2.11's "@daily" has a UTC-day interval)
DAILY = CronTriggerTimetable("0 0 * * *", timezone="UTC")

with DAG({dag_id!r}, schedule=DAILY, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    links = CloudmaxRequestLinksOperator(task_id="request_links", {args})
"""


def dag_source(dag_id: str, *extra: str, **args: object) -> str:
    body = DAG.format(dag_id=dag_id, args=", ".join(f"{k}={v!r}" for k, v in args.items()))
    return body + "".join(f"    {line}\n" for line in extra)


def test_returns_the_links_of_the_runs_day(cloudmax_emulator, cloudmax_conn):
    """ResponseMode 1 by default; the window is the account's last complete day (as the download names it);
    the links are strings, one per file, and nothing is downloaded."""
    cloudmax_emulator.settings.split_links = True
    dr = run_dag(dag_source("rl_links", report_part_id="click_details", launch_ids=[1225, 1116]), "rl_links")
    assert task_states(dr) == {"request_links": "success"}
    links = xcom(dr, "request_links")
    assert len(links) == 2 and all(isinstance(link, str) for link in links)
    assert all(link.startswith(cloudmax_emulator.base_url) for link in links)
    (api,) = cloudmax_emulator.api_requests
    assert api.field("ResponseMode") == "1" and api.field("ReportPartID") == "21002"
    assert (api.field("StartTime"), api.field("EndTime")) == DAY
    assert api.field("LaunchID") == "1225,1116"
    assert cloudmax_emulator.link_requests == []  # links only: no file asked for


def test_templated_arguments_and_the_sensor_downstream(cloudmax_emulator, cloudmax_conn):
    """Templated fields render like the report operator's; the sensor waits for the links it returned."""
    cloudmax_emulator.settings.link_ready_after = 1.0
    src = dag_source(
        "rl_sensor",
        "CloudmaxDownloadLinkSensor(task_id='wait', links=links.output, poke_interval=0.3, deferrable=True)",
        report_part_id="{{ 21000 + 3 }}",
        launch_ids="{{ [7, 8] | join(',') }}",
        start_time="{{ ds }} 06:00:00",
        end_time="{{ ds }} 18:00:00",
    )
    dr = run_dag(src, "rl_sensor")
    assert task_states(dr) == {"request_links": "success", "wait": "success"}
    (api,) = cloudmax_emulator.api_requests
    assert (api.field("StartTime"), api.field("EndTime")) == ("2026-11-01 06:00:00", "2026-11-01 18:00:00")
    assert api.field("ReportPartID") == "21003" and api.field("LaunchID") == "7,8"
    assert [item["link"] for item in xcom(dr, "wait")] == xcom(dr, "request_links")


def test_mapped_over_launch_ids(cloudmax_emulator, cloudmax_conn):
    src = DAG.format(dag_id="rl_mapped", args="report_part_id=1").replace(
        'links = CloudmaxRequestLinksOperator(task_id="request_links", report_part_id=1)',
        'CloudmaxRequestLinksOperator.partial(task_id="request_links", report_part_id=20003).expand('
        "launch_ids=[31, 32])",
    )
    dr = run_dag(src, "rl_mapped")
    assert {str(ti.state) for ti in dr.get_task_instances()} == {"success"}
    assert sorted(api.field("LaunchID") for api in cloudmax_emulator.api_requests) == ["31", "32"]
    assert all(len(xcom(dr, "request_links", map_index=i)) == 1 for i in (0, 1))


def test_literal_arguments_are_checked_at_parse_time():
    from cloudmax_provider.operators.request_links import CloudmaxRequestLinksOperator

    with pytest.raises(CloudmaxConfigError, match="response_mode=2 answers the report itself"):
        CloudmaxRequestLinksOperator(task_id="a", report_part_id=21002, launch_ids=1, response_mode=2)
    with pytest.raises(CloudmaxConfigError, match="response_mode=0 answers UNC links"):
        CloudmaxRequestLinksOperator(task_id="b", report_part_id=21002, launch_ids=1, response_mode=0)
    with pytest.raises(CloudmaxConfigError, match="report_part_id"):
        CloudmaxRequestLinksOperator(task_id="c", report_part_id=99, launch_ids=1)
    with pytest.raises(CloudmaxConfigError, match="did you mean 'EmailAddress'"):
        CloudmaxRequestLinksOperator(task_id="d", report_part_id=31033, launch_ids=1, columns=["emailaddress"])
    with pytest.raises(CloudmaxConfigError, match="week"):
        CloudmaxRequestLinksOperator(task_id="e", report_part_id=21002, launch_ids=1, partition="week")
    CloudmaxRequestLinksOperator(task_id="f", report_part_id="{{ params.rid }}", launch_ids="{{ params.ids }}")


def test_a_templated_mode_is_checked_once_rendered(cloudmax_emulator, cloudmax_conn):
    dr = run_dag(dag_source("rl_mode", report_part_id=21002, launch_ids=1, response_mode="{{ 1 + 2 }}"), "rl_mode")
    assert task_states(dr) == {"request_links": "failed"}
    assert cloudmax_emulator.api_requests == []


def test_is_templated_knows_xcomargs_by_type_and_jinja_anywhere():
    from cloudmax_provider.utils.templating import is_literal, is_templated

    dag = load_dag(
        """
import pendulum
from airflow.providers.common.compat.sdk import DAG, task

with DAG("tmpl_kinds", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    @task
    def ids():
        return [1]

    out = ids()
""",
        "tmpl_kinds",
    )
    output = dag.get_task("ids").output
    assert is_templated(output) and not is_literal(output)
    assert is_templated([1, output]) and is_templated({"k": output})
    assert is_templated("{{ ds }}") and is_templated(["a", "{% if x %}b{% endif %}"]) and is_templated({"{{ k }}": 1})
    assert is_literal("s3://lake/{window_start:%Y-%m-%d}.csv")  # our placeholders are not Jinja
    assert is_literal(0) and is_literal([1, 2]) and is_literal({"a": "b"})
    assert not is_literal(None) and not is_templated(None)
