"""Captures replayed (issue 26): every capture in ``tests/captures/`` (made by ``python -m cloudmax_provider.probe
--record``, see its README) is served by the emulator's replay, and the provider reads it: the hook's rows
(ResponseMode 2 and the DOWNLOADLINKs of 1) and a CloudmaxReportOperator landing through ``dag.test``.
A fresh capture of an emulator variant round-trips byte for byte."""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from cloudmax_provider.api.body import detect_encoding
from cloudmax_provider.api.capture import Capture, Exchange, load_capture
from cloudmax_provider.hooks.cloudmax import CloudmaxHook
from cloudmax_provider.links.download_link import LinkState
from cloudmax_provider.testing.emulator import CloudmaxEmulator
from cloudmax_provider.testing.emulator.replay import Replay
from tests.conftest import cloudmax_conn_json

CAPTURES = sorted(p.parent for p in (Path(__file__).parent / "captures").glob("*/capture.json"))
WINDOW = ("2026-11-01 00:00:00", "2026-11-02 00:00:00")  # a replay ignores times and LaunchIDs


def test_there_is_an_example_capture():
    assert CAPTURES, "tests/captures/ holds no capture"


@pytest.fixture(params=CAPTURES, ids=[p.name for p in CAPTURES])
def replayed(request, monkeypatch) -> Iterator[tuple[Capture, CloudmaxEmulator]]:
    capture = load_capture(request.param)
    emu = CloudmaxEmulator()
    emu.replay = Replay(capture)
    with emu:
        monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_DEFAULT", cloudmax_conn_json(emu, attempts=1))
        yield capture, emu


def _reports(capture: Capture, mode: str) -> list[Exchange]:
    return [
        e
        for e in capture.exchanges
        if e.kind == "api" and e.request_format == "fields" and e.value("ResponseMode") == mode and e.status == 200
    ]


def _header(body: bytes) -> list[str]:
    enc = detect_encoding(body)
    return next(csv.reader(io.StringIO(body[enc.bom :].decode(enc.codec), newline="")))


def test_the_hook_reads_each_captured_report(replayed):
    capture, _emu = replayed
    hook = CloudmaxHook()
    answers = [e for e in _reports(capture, "2") if e.body_file and e.body_file.endswith(".csv")]
    assert answers
    for exchange in answers:
        rid = int(exchange.value("ReportPartID"))
        rows = hook.get_rows(hook.build_request(rid, [1225], *WINDOW, response_mode=2))
        assert len(rows) == exchange.rows_kept
        assert list(rows[0]) == _header(capture.body(exchange))
        typed = [v for row in rows for v in row.values() if isinstance(v, datetime)]
        assert typed and all(v.utcoffset() is not None for v in typed)  # the capture's times read as times


def test_the_hook_reads_the_captured_links(replayed):
    capture, emu = replayed
    hook = CloudmaxHook()
    for exchange in _reports(capture, "1"):
        rid = int(exchange.value("ReportPartID"))
        request = hook.build_request(rid, [1225], *WINDOW, response_mode=1)
        links = hook.request_links(request)
        assert links and all(link.startswith(emu.base_url) for link in links)  # links point to the replay
        for _ in range(20):  # a link that answered 404 before its file does so again, then answers
            if all(hook.probe_link(link).state is LinkState.READY for link in links):
                break
        recorded = {e.path: e.rows_kept for e in capture.exchanges if e.kind == "link" and e.status == 200}
        expected = sum(n or 0 for path, n in recorded.items() if any(path in link for link in links))
        assert len(hook.get_rows(request, links=links)) == expected > 0


@pytest.mark.usefixtures("airflow_db")
def test_an_operator_lands_a_captured_report_through_dag_test(replayed, tmp_path):
    from tests.airflow_runner import run_dag, task_states, xcom

    capture, _emu = replayed
    exchange = next(e for e in _reports(capture, "2") if e.body_file and e.body_file.endswith(".csv"))
    rid = int(exchange.value("ReportPartID"))
    source = f"""
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.operators.report import CloudmaxReportOperator

with DAG("cmx_replay", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxReportOperator(task_id="report", report_part_id={rid}, launch_ids=[1225],
                           start_time="{WINDOW[0]}", end_time="{WINDOW[1]}",
                           destination="file://{tmp_path}/report.csv")
"""
    dr = run_dag(source, "cmx_replay")
    assert task_states(dr) == {"report": "success"}
    assert xcom(dr, "report", key="rows") == exchange.rows_kept
    landed = (tmp_path / "report.csv").read_bytes()
    assert landed.decode("utf-8").splitlines()[0] == ",".join(_header(capture.body(exchange)))


def test_a_fresh_capture_replays_byte_for_byte(cloudmax_emulator, cloudmax_conn, tmp_path, monkeypatch):
    from cloudmax_provider.probe.checks import ProbeOptions
    from cloudmax_provider.probe.cli import run_probe

    s = cloudmax_emulator.settings
    s.csv_encoding, s.time_format, s.xml_root, s.methods = "utf-8-sig", "en-US", "Answer", "GET"
    cloudmax_conn(method="GET")
    result = run_probe(
        "cloudmax_default", ProbeOptions((1225,), (21003,), link_poll=0), interval=0, record=str(tmp_path)
    )
    assert [r.check for r in result.rows if r.status not in ("ok", "setting")]  # the variant shows
    capture = load_capture(tmp_path)
    with CloudmaxEmulator() as emu:
        emu.replay = Replay(capture)
        url = emu.endpoint_url
        (mode2,) = [e for e in _reports(capture, "2") if e.method == "GET"]
        got = requests.get(url, params={"ReportPartID": "21003", "ResponseMode": "2"}, timeout=10)
        assert got.content == capture.body(mode2) and got.content.startswith(codecs.BOM_UTF8)
        assert requests.post(url, data={"ReportPartID": "21003", "ResponseMode": "2"}, timeout=10).status_code == 405
        xml = requests.get(url, params={"ReportPartID": "21003", "ResponseMode": "1"}, timeout=10).text
        assert "<Answer>" in xml and f"{emu.base_url}/WebAPI/ReportFiles/" in xml
    assert os.path.exists(tmp_path / "capture.json")


def test_the_emulator_command_line_replays_a_capture():
    import subprocess
    import sys

    capture = CAPTURES[0]
    cmd = [sys.executable, "-m", "cloudmax_provider.testing.emulator", "--port", "0", "--replay", str(capture)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        while "listening on" not in line:  # after the line saying what it replays
            line = proc.stdout.readline()
            assert line, "the emulator ended"
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.endswith("/WebAPI/Report.aspx"), url
        replayed = load_capture(capture)
        (first,) = [e for e in _reports(replayed, "2") if e.value("ReportPartID") == "2100199"]
        got = requests.post(url, data={"ReportPartID": "2100199", "ResponseMode": "2"}, timeout=10)
        assert got.content == replayed.body(first)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_slow_recorded_answer_is_waited_again_and_the_last_answer_repeats(tmp_path):
    from cloudmax_provider.api.capture import save_capture

    link = "/WebAPI/ReportFiles/t/r.csv"
    exchanges = [
        Exchange(
            1,
            "api",
            "POST",
            "/WebAPI/Report.aspx",
            {"ReportPartID": "30023", "ResponseMode": "2"},
            status=200,
            body_file="1.csv",
            elapsed=2.5,
        ),
        Exchange(2, "link", "GET", link, status=404, body_file="2.html"),
        Exchange(3, "link", "GET", link, status=200, body_file="3.csv"),
    ]
    save_capture(tmp_path, exchanges, {"1.csv": b"A\r\n1\r\n", "2.html": b"<html/>", "3.csv": b"B\r\n"}, {})
    replay = Replay(load_capture(tmp_path))
    reply, wait = replay.answer("POST", "/WebAPI/Report.aspx", {"reportpartid": "30023", "ResponseMode": "2"}, {}, "")
    assert (reply.status, reply.body, wait) == (200, b"A\r\n1\r\n", 2.5)
    statuses = [replay.answer("GET", link, {}, {}, "")[0].status for _ in range(4)]
    assert statuses == [404, 200, 200, 200]
    assert replay.answer("GET", "/WebAPI/Report.aspx", {"ReportPartID": "1"}, {}, "")[0].status == 200  # XML 102
