"""``python -m cloudmax_provider.testing.emulator`` as a user runs it: a subprocess on a free port, hit with requests.

Every fault switch of the pytest fixture is a flag; each request is one log line without the password;
``--scenario`` plays a sequence of faults.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import requests

from cloudmax_provider.testing.emulator import EmulatorSettings
from cloudmax_provider.testing.emulator.cli import Scenario, ScenarioError, _flag, parse_args

PASSWORD = "S3cret p&ss/é"


@dataclass
class Cli:
    """A running emulator CLI: its URL and its stdout lines."""

    url: str
    lines: queue.Queue[str]
    proc: subprocess.Popen[str]

    def get(self, day: int, mode: int = 2, part: int = 21002, **extra: str) -> requests.Response:
        """One Report.aspx request for the day ``2026-10-<day>`` (GET, the password in the query)."""
        params = {
            "ManagerLoginName": "demo",
            "ManagerPassword": PASSWORD,
            "ReportPartID": str(part),
            "LaunchID": "1225",
            "StartTime": f"2026-10-{day:02d} 00:00:00",
            "EndTime": f"2026-10-{day + 1:02d} 00:00:00",
            "ResponseMode": str(mode),
            **extra,
        }
        return requests.get(f"{self.url}/WebAPI/Report.aspx", params=params, timeout=30)

    def line(self, pattern: str, timeout: float = 10) -> str:
        """The next stdout line matching ``pattern`` (skipping others)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            assert PASSWORD not in text and "p%26ss" not in text
            if re.search(pattern, text):
                return text
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cli(*args: str) -> Iterator[Cli]:
    """Start the CLI with ``args`` on a free port; stop it (SIGTERM) afterwards."""
    port = _free_port()
    cmd = [sys.executable, "-m", "cloudmax_provider.testing.emulator", "--port", str(port), "--password", PASSWORD]
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            lines.put(text.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    running = Cli(f"http://127.0.0.1:{port}", lines, proc)
    try:
        running.line("listening on", timeout=60)
        yield running
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_every_fixture_setting_is_a_flag():
    """A new EmulatorSettings field without a flag fails here."""
    args = parse_args([])
    missing = [f.name for f in fields(EmulatorSettings) if f.name != "accounts" and _flag(f.name) not in _help()]
    assert not missing, f"settings without a CLI flag: {missing}"
    assert args.settings == {}, "no flag given: nothing overrides the defaults"


def _help() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "cloudmax_provider.testing.emulator", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    return out.stdout


def test_flags_are_typed():
    args = parse_args(
        [
            *("--fail-window", "2026-10-17", "2026-10-18", "--fail-with", "error:110", "--big-report-bytes", "2MiB"),
            *("--delay", "1.5", "--truncate-body", "--licensed-reports", "21002,2100199", "--retry-after", "3"),
        ]
    )
    assert args.settings == {
        "fail_start_windows": [("2026-10-17", "2026-10-18")],
        "fail_with": "error:110",
        "big_report_bytes": 2 << 20,
        "delay": 1.5,
        "truncate_body": True,
        "licensed_reports": {21002, 2100199},
        "retry_after": 3,
    }
    with pytest.raises(SystemExit):
        parse_args(["--fail-with", "teapot"])


def test_fail_window_rehearses_day_17(tmp_path: Path):
    """Day 17 fails (HTTP 503), days 16 and 18 land; the log says which request failed and why."""
    with cli("--fail-window", "2026-10-17 00:00:00", "2026-10-18 00:00:00", "--fail-window-first", "1") as emu:
        assert emu.get(16).status_code == 200
        line = emu.line(r"Report\.aspx")
        assert "GET Report.aspx ReportPartID=21002 LaunchID=1225" in line
        assert "window=2026-10-16 00:00:00..2026-10-17 00:00:00 mode=2 status=200" in line
        assert emu.get(17).status_code == 503
        assert emu.line(r"Report\.aspx").endswith(
            "window=2026-10-17 00:00:00..2026-10-18 00:00:00 mode=2 status=503 fault=StartTime in a fail window"
        )
        assert emu.get(17).status_code == 200, "--fail-window-first 1: the retry succeeds"
        assert emu.line(r"Report\.aspx").endswith("status=200")


def test_fail_first_with_an_error_code_then_success():
    with cli("--fail-first", "2", "--fail-with", "error:110") as emu:
        for _ in range(2):
            r = emu.get(1)
            assert r.status_code == 200 and "<ERRORCODE>110</ERRORCODE>" in r.text
            assert emu.line(r"Report\.aspx").endswith("status=200 fault=fail-with error:110")
        assert emu.get(1).text.startswith("ClickID")


def test_link_delay_short_body_utf16_and_zh_tw_times():
    with cli("--delay", "0.6", "--fault-paths", "links", "--csv-encoding", "utf-16", "--time-format", "zh-TW") as emu:
        answer = emu.get(3, mode=1)
        assert emu.line("mode=1").endswith("status=200"), "--fault-paths links: Report.aspx is not delayed"
        link = re.search(r"<DOWNLOADLINK>(.*?)</DOWNLOADLINK>", answer.text).group(1)
        t0 = time.monotonic()
        body = requests.get(link, timeout=30).content
        assert time.monotonic() - t0 >= 0.6
        assert body.startswith(b"\xff\xfe")
        assert re.search(r"\d{4}/\d{1,2}/\d{1,2} (上午|下午) \d{2}:\d{2}:\d{2}", body.decode("utf-16"))
        assert "status=200 fault=delay 0.6s" in emu.line("/WebAPI/ReportFiles/")
    with cli("--truncate-body", "--fault-paths", "api", "--big-report-bytes", "1MiB") as emu:
        with pytest.raises(requests.exceptions.RequestException):
            emu.get(3)
        assert "fault=body cut short of its Content-Length" in emu.line(r"Report\.aspx")


def test_scenario_plays_a_sequence_of_faults(tmp_path: Path):
    scenario = {
        "settings": {"fail_first": 1, "fail_with": 503},
        "steps": [
            {"after_requests": 2, "set": {"answer_with": "html"}, "say": "the proxy's error page"},
            {"after_requests": 3, "set": {"answer_with": None, "fail_first": 1, "fail_with": "exception"}},
        ],
    }
    path = tmp_path / "day17.json"
    path.write_text(json.dumps(scenario))
    with cli("--scenario", str(path)) as emu:
        assert emu.get(1).status_code == 503
        assert emu.get(1).status_code == 200
        assert "scenario step 1/2 after 2 Report.aspx request(s) (the proxy's error page)" in emu.line("scenario")
        assert "<h1>Error</h1>" in emu.get(1).text
        emu.line("scenario step 2/2")
        answer = emu.get(1).text
        assert "<ERRORCODE>100</ERRORCODE>" in answer and "<ERRORMSG>Exception</ERRORMSG>" in answer
        assert emu.get(1).text.startswith("ClickID")


def test_a_bad_scenario_is_refused_with_the_fix(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"steps": [{"after_requests": 1, "set": {"fail_firts": 2}}]}))
    out = subprocess.run(
        [sys.executable, "-m", "cloudmax_provider.testing.emulator", "--scenario", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "unknown setting 'fail_firts' (did you mean 'fail_first'?)" in out.stderr
    with pytest.raises(ScenarioError, match="exactly one of after_requests, after_seconds"):
        Scenario.from_dict({"steps": [{"set": {"delay": 1}}]})
    with pytest.raises(ScenarioError, match=r"fail_start_windows: .* empty or reversed"):
        Scenario.from_dict({"settings": {"fail_start_windows": [["2026-10-18", "2026-10-17"]]}})


def test_a_taken_port_is_one_line_naming_the_flag():
    """Airflow's webserver/api-server often has the port: one line that says which flag to change."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "cloudmax_provider.testing.emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use; choose another --port "
        "(or --port 0 for a free one, printed here)"
    ]


def test_the_docs_scenario_is_valid():
    """docs/rehearse-a-failure.md includes docs/scenarios/day17.json: it must load."""
    scenario = Scenario.load(Path(__file__).resolve().parents[3] / "docs" / "scenarios" / "day17.json")
    assert scenario.settings["fail_start_windows"] == [("2026-10-17 00:00:00", "2026-10-18 00:00:00")]
    assert [s.after_requests for s in scenario.steps] == [20, None] and scenario.steps[1].after_seconds == 600
    assert scenario.steps[1].set["licensed_reports"] == {20001}
