"""Faults: what the API, the network or a file server can do wrong, and what the provider does about it.

Every scenario runs the operator's real execute path against the emulator over loopback HTTP and
counts the requests in the emulator's log: transient failures are retried (the whole download, from
scratch), bounded, honouring Retry-After; nothing half-written is ever left at the destination.
"""

from __future__ import annotations

import itertools

import pytest

from cloudmax_provider.exceptions import (
    CloudmaxError,
    CloudmaxResponseError,
    CloudmaxServerExceptionNotRetried,
    CloudmaxTransientError,
)
from tests.reliability.conftest import FIGURES, WINDOW, files_under, run_report

pytestmark = pytest.mark.usefixtures("airflow_db")

# (response_mode, the emulator's fault_paths that cuts that body): mode 2 body, mode 3 attachment, mode 1 link
BODY_PATHS = [(2, "api"), (3, "api"), (1, "links")]


def expected_bytes(emu) -> bytes:
    return emu.expected_csv(21002, [1225, 1116], *WINDOW).encode()


@pytest.mark.parametrize("failures", [1, 3])
def test_5xx_then_success_lands_once(cloudmax_emulator, cloudmax_conn, tmp_path, failures):
    cloudmax_conn(attempts=4)
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = failures, 503
    dest = tmp_path / "r.csv"
    result, xcoms = run_report(destination=f"file://{dest}")
    assert result == f"file://{dest}" and dest.read_bytes() == expected_bytes(cloudmax_emulator)
    assert len(cloudmax_emulator.api_requests) == failures + 1
    assert files_under(tmp_path) == ["r.csv"] and xcoms["rows"] == 10
    FIGURES["faults survived"] += 1


@pytest.mark.parametrize("status", [500, 502, 503, "reset"])
def test_failing_forever_is_bounded_and_leaves_nothing(cloudmax_emulator, cloudmax_conn, tmp_path, status):
    cloudmax_conn(attempts=3)
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 10**9, status
    with pytest.raises(CloudmaxTransientError, match=r"HTTP 5|Connection|reset|aborted|closed"):
        run_report(destination=f"file://{tmp_path}/out/r.csv")
    assert len(cloudmax_emulator.api_requests) == 3  # the connection's `attempts`, then a clear failure
    assert files_under(tmp_path) == []
    FIGURES["faults failing cleanly (nothing at the destination)"] += 1


@pytest.mark.parametrize("cut", ["drop_mid_body", "truncate_body"])
@pytest.mark.parametrize(("mode", "paths"), BODY_PATHS, ids=["mode2-body", "mode3-attachment", "mode1-link"])
def test_a_body_cut_short_is_retried_from_scratch(cloudmax_emulator, cloudmax_conn, tmp_path, mode, paths, cut):
    s = cloudmax_emulator.settings
    s.big_report_bytes = 3 << 20  # several chunks: the cut comes mid-stream
    s.fault_paths, s.fail_first = paths, 1 if paths == "api" else 2  # a link's first GET is the readiness probe
    setattr(s, cut, True)
    dest = tmp_path / "r.csv"
    run_report(destination=f"file://{dest}", response_mode=mode)
    path, size, _rows = cloudmax_emulator.big_report_info(21002)
    assert dest.read_bytes() == path.read_bytes() and dest.stat().st_size == size
    assert files_under(tmp_path) == ["r.csv"]  # the cut attempt's temporary object is gone
    if paths == "api":
        assert len(cloudmax_emulator.api_requests) == 2
    else:
        assert len(cloudmax_emulator.api_requests) == 1 and len(cloudmax_emulator.link_requests) >= 3
    FIGURES["faults survived"] += 1


@pytest.mark.parametrize("cut", ["drop_mid_body", "truncate_body"])
@pytest.mark.parametrize(("mode", "paths"), BODY_PATHS, ids=["mode2-body", "mode3-attachment", "mode1-link"])
def test_a_body_always_cut_leaves_nothing(cloudmax_emulator, cloudmax_conn, tmp_path, mode, paths, cut):
    s = cloudmax_emulator.settings
    s.big_report_bytes = 3 << 20
    s.fault_paths, s.fail_first = paths, 10**9
    setattr(s, cut, True)
    (tmp_path / "lake").mkdir()
    with pytest.raises(CloudmaxError):
        run_report(destination=f"file://{tmp_path}/lake/r.csv", response_mode=mode, link_timeout=5)
    assert files_under(tmp_path) == []
    FIGURES["faults failing cleanly (nothing at the destination)"] += 1


def test_a_slow_server_names_the_timeout_setting(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_conn(timeout=0.5, attempts=2)
    cloudmax_emulator.settings.delay = 2.0
    with pytest.raises(CloudmaxTransientError) as info:
        run_report(destination=f"file://{tmp_path}/r.csv")
    assert "connection extra timeout=0.5 seconds" in str(info.value) and "raise it" in str(info.value)
    assert len(cloudmax_emulator.api_requests) == 2 and files_under(tmp_path) == []
    FIGURES["faults failing cleanly (nothing at the destination)"] += 1


def test_429_waits_for_retry_after_and_never_hammers(cloudmax_emulator, cloudmax_conn, tmp_path):
    cloudmax_conn(attempts=4, retry_max_wait=5)
    s = cloudmax_emulator.settings
    s.fail_first, s.fail_with, s.retry_after = 2, 429, 1
    run_report(destination=f"file://{tmp_path}/r.csv")
    times = [r.time for r in cloudmax_emulator.api_requests]
    assert len(times) == 3
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))  # Retry-After honoured each time
    FIGURES["faults survived"] += 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("empty", "with an empty body"),
        ("html", "answered an HTML page, not the API"),
        ("foreign_xml", "XML without ERRORCODE"),
    ],
)
@pytest.mark.parametrize("mode", [1, 2, 3])
def test_an_answer_that_is_not_the_api_is_a_typed_error(
    cloudmax_emulator, cloudmax_conn, tmp_path, answer, message, mode
):
    cloudmax_emulator.settings.answer_with = answer
    with pytest.raises(CloudmaxResponseError, match=message):
        run_report(destination=f"file://{tmp_path}/r.csv", response_mode=mode)
    assert len(cloudmax_emulator.api_requests) == 1 and files_under(tmp_path) == []  # not retried: not transient
    FIGURES["faults failing cleanly (nothing at the destination)"] += 1


def test_error_100_first_call_is_sent_once_even_with_task_retries(cloudmax_emulator, cloudmax_conn):
    """ErrorCode 100 on a connection's first call: one request, and Airflow's task retries are not used."""
    from tests.airflow_runner import run_dag, task_states

    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 10**9, "exception"
    src = (
        "import pendulum\nfrom datetime import timedelta\nfrom airflow.providers.common.compat.sdk import DAG\n"
        "from cloudmax_provider.operators.report import CloudmaxReportOperator\n"
        'with DAG("rel_error_100", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), '
        "catchup=False) as dag:\n"
        '    CloudmaxReportOperator(task_id="r", report_part_id=20001, launch_ids=1, retries=3, '
        "retry_delay=timedelta(seconds=0))\n"
    )
    dr = run_dag(src, "rel_error_100")
    assert task_states(dr) == {"r": "failed"}
    assert len(cloudmax_emulator.api_requests) == 1
    FIGURES["ErrorCode 100 policies checked by request count"] += 1


def test_error_100_is_retried_once_only_after_the_credentials_were_proven(cloudmax_emulator, cloudmax_conn):
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook

    hook = CloudmaxHook()
    request = hook.build_request(20001, 1, *WINDOW)
    hook.get_rows(request)  # an answer other than 100 proves the credentials
    cloudmax_emulator.settings.fail_first, cloudmax_emulator.settings.fail_with = 10**9, "exception"
    started = len(cloudmax_emulator.api_requests)
    with pytest.raises(CloudmaxServerExceptionNotRetried, match=r"Not retried"):
        hook.get_rows(request)
    assert len(cloudmax_emulator.api_requests) - started == 2  # the 100, one retry, then a clear failure
    FIGURES["ErrorCode 100 policies checked by request count"] += 1
