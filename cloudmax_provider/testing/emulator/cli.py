"""The emulator's command line: ``python -m cloudmax_provider.testing.emulator --help``.

Every switch of :class:`~cloudmax_provider.testing.emulator.EmulatorSettings` (the settings the
``cloudmax_emulator`` pytest fixture has) is a flag, so a failure can be rehearsed against a deployed
Airflow without writing Python::

    python -m cloudmax_provider.testing.emulator --port 18080 \\
        --fail-window "2026-10-17" "2026-10-18" --fail-with 503

Each request is logged on stdout, one line each (method, path, ReportPartID, LaunchID, window,
ResponseMode, status and the fault applied), never with the password. ``--scenario FILE`` plays a
sequence of faults (JSON; YAML too when PyYAML is installed)::

    {"settings": {"fail_first": 2, "fail_with": "error:110"},
     "steps": [{"after_requests": 3, "set": {"delay": 5, "fault_paths": "links"}},
               {"after_seconds": 60, "set": {"delay": 0}}]}

``settings`` is applied at start (command-line flags win over it); each step's ``set`` is applied once
its condition holds and every earlier step was applied: ``after_requests`` counts the Report.aspx
requests answered since start, ``after_seconds`` the time since start. A step that sets ``fail_first``,
``fail_start_first`` or ``fail_start_windows`` starts their counts afresh (``fail_first: 1`` = the next
request). The keys are the
``EmulatorSettings`` field names (the flags without ``--``, with ``_``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cloudmax_provider.testing.emulator import (
    API_PATH,
    CloudmaxEmulator,
    EmulatorSettings,
    RecordedRequest,
    parse_time,
)

__all__ = ["Scenario", "ScenarioError", "coerce_setting", "format_request", "main", "parse_args"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "methods": ("both", "GET", "POST"),
    "csv_encoding": ("utf-8", "utf-8-sig", "utf-16"),
    "time_format": ("iso", "zh-TW", "en-US"),
    "xml_tag_case": ("upper", "mixed"),
    "fault_paths": ("all", "api", "links"),
    "answer_with": ("empty", "html", "foreign_xml", "xxe", "entity_expansion", "oversized_xml"),
}
_FAIL_WITH_RE = re.compile(r"^(\d{3}|reset|exception|error:\d+)$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}


class ScenarioError(ValueError):
    """A bad ``--scenario`` file or setting value; the message says which key and what is accepted."""


# (field, help) in the order --help shows them; the flag is the field with "-" for "_".
_FLAGS: list[tuple[str, str]] = [
    (
        "fail_start_windows",
        "FROM TO: a Report.aspx request whose StartTime is in [FROM, TO) gets HTTP "
        "--fail-with (503 unless that is a status); repeatable; times 'yyyy-MM-dd[ HH:mm:ss]'",
    ),
    ("fail_start_first", "only the first N requests in a --fail-window fail (0: every one)"),
    ("fail_first", "the first N requests matching --fault-paths get --fail-with (0: no fail-first)"),
    (
        "fail_with",
        "what a failing request gets: an HTTP status (503), 'reset' (connection aborted), "
        "'exception' (ErrorCode 100 Exception) or 'error:<ErrorCode>' (e.g. error:110)",
    ),
    ("retry_after", "a Retry-After header (seconds) on failing HTTP statuses"),
    (
        "delay",
        "seconds every request matching --fault-paths waits before its answer (--fault-paths links: "
        "slow link downloads); with --fail-first N only the first N",
    ),
    ("latency", "seconds every Report.aspx request takes before its answer (a server's work; not a fault)"),
    ("gather_api_requests", "Report.aspx requests wait until this many are in flight at once (tests of concurrency)"),
    ("truncate_body", "matching answers stop half-way, short of their Content-Length"),
    ("drop_mid_body", "matching answers (chunked) drop the connection half-way"),
    (
        "fault_paths",
        "which requests --fail-first/--delay/--truncate-body/--drop-mid-body apply to: all, "
        "api (Report.aspx) or links (/WebAPI/ReportFiles/...)",
    ),
    ("answer_with", "every Report.aspx answer replaced by a hostile one"),
    ("link_ready_after", "seconds before a DOWNLOADLINK's file exists (404 until then)"),
    ("link_redirect_to", "a base URL: link files first answer 302 there (a CDN hand-off)"),
    ("link_base_url", "base URL of ResponseMode 1 links (default: this server)"),
    ("split_links", "one DOWNLOADLINK per LaunchID in modes 0/1"),
    ("link_filename", "the file name in mode 1 links, as given (e.g. '../../x.csv')"),
    ("attachment_filename", "mode 3's Content-Disposition file name, as given"),
    ("big_report_bytes", "serve a report of at least this size (e.g. 64MiB) whatever was asked"),
    ("big_report_ragged", "cut the last cell off the big report's start, middle or end record (comma-separated)"),
    ("csv_encoding", "the reports' bytes (utf-16: little-endian with BOM)"),
    ("time_format", "times in reports: iso, zh-TW (.NET 'yyyy/M/d 下午 hh:mm:ss') or en-US"),
    ("rows_per_launch", "rows per LaunchID in detail reports"),
    ("header_changes", "Cloudmax changing the reports' columns: '+Name' adds one, '-Name' drops one (comma-separated)"),
    ("methods", "HTTP methods Report.aspx accepts (others: 405)"),
    ("licensed_reports", "comma-separated ReportPartIDs the account is licensed for (others: ErrorCode 1000)"),
    ("xml_root", "root element of XML answers"),
    ("xml_utf16_declaration", "XML answers declare encoding=utf-16 while their bytes are UTF-8 (.NET)"),
    ("xml_tag_case", "upper: ERRORCODE...; mixed: ErrorCode..."),
    ("refuse_xml_request", "ignore XmlRequest/XmlReqUrl/XmlReqFilePath (no credentials seen: ErrorCode 102)"),
    ("unc_root", "directory ResponseMode 0 writes its files to (default: a temporary one)"),
    ("unc_server", "server name in mode 0 links"),
    ("unc_share", "share name in mode 0 links"),
]
_NOT_FLAGS = {"accounts"}  # --login/--password
_FIELDS = {f.name: f for f in dataclasses.fields(EmulatorSettings)}


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size (e.g. 1048576, 64MiB, 1GiB)")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]


def _windows(value: Any) -> list[tuple[str, str]]:
    pairs = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ValueError(f"{item!r} is not a [from, to] pair")
        a, b = (str(t).strip() for t in item)
        if parse_time(b) <= parse_time(a):
            raise ValueError(f"[{a!r}, {b!r}] is empty or reversed")
        pairs.append((a, b))
    return pairs


def _fail_with(value: Any) -> int | str:
    text = str(value).strip()
    if isinstance(value, bool) or not _FAIL_WITH_RE.match(text):
        raise ValueError(f"{value!r}: use an HTTP status (503), 'reset', 'exception' or 'error:<ErrorCode>'")
    return int(text) if text.isdigit() else text


def _reports(value: Any) -> set[int] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    return {int(str(i).strip()) for i in items if str(i).strip()}


def _scalar(name: str, value: Any) -> Any:
    kind = str(_FIELDS[name].type)
    if value is None and "None" in kind:
        return None
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true/false")
        return value
    if kind.startswith("int"):
        return int(value)
    if kind.startswith("float"):
        return float(value)
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"{value!r} is not one of {', '.join(_CHOICES[name])}")
    return str(value)


_COERCE: dict[str, Callable[[Any], Any]] = {
    "fail_start_windows": _windows,
    "fail_with": _fail_with,
    "licensed_reports": _reports,
    "big_report_bytes": _size,
}


def coerce_setting(name: str, value: Any) -> Any:
    """``value`` as the type of ``EmulatorSettings.<name>``; ScenarioError naming the key otherwise.

    >>> coerce_setting("big_report_bytes", "64MiB")
    67108864
    >>> coerce_setting("fail_with", "error:110")
    'error:110'
    >>> coerce_setting("fail_firts", 2)
    Traceback (most recent call last):
    ...
    cloudmax_provider.testing.emulator.cli.ScenarioError: unknown setting 'fail_firts' (did you mean 'fail_first'?)
    """
    if name not in _FIELDS:
        near = difflib.get_close_matches(name, list(_FIELDS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f"; known: {', '.join(sorted(_FIELDS))}"
        raise ScenarioError(f"unknown setting {name!r}{hint}")
    if name == "accounts":
        if not isinstance(value, dict):
            raise ScenarioError("accounts: a JSON object {login: password}")
        return {str(k): str(v) for k, v in value.items()}
    try:
        return _COERCE[name](value) if name in _COERCE else _scalar(name, value)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{name}: {exc}") from None


def describe_settings(values: dict[str, Any]) -> str:
    """``key=value ...`` for the log; account passwords are never shown."""
    shown = {k: ({login: "***" for login in v} if k == "accounts" else v) for k, v in values.items()}
    return " ".join(f"{k}={v!r}" for k, v in shown.items())


@dataclass
class _Step:
    set: dict[str, Any]
    after_requests: int | None = None
    after_seconds: float | None = None
    say: str = ""


class Scenario:
    """A sequence of settings changes, applied in order as requests are answered and time passes."""

    def __init__(self, settings: dict[str, Any], steps: list[_Step]) -> None:
        self.settings = settings
        self.steps = steps
        self.applied = 0
        self.api_answered = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read a JSON (or, with PyYAML installed, YAML) scenario file; ScenarioError says what is wrong."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ScenarioError(f"{path}: YAML needs PyYAML (pip install pyyaml), or write it as JSON") from None
            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ScenarioError(f"{path}: not JSON: {exc}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "scenario") -> Scenario:
        """Validate a scenario's structure and every setting in it."""
        if not isinstance(data, dict) or set(data) - {"settings", "steps"}:
            raise ScenarioError(f"{where}: an object with 'settings' and/or 'steps'")
        settings = {k: coerce_setting(k, v) for k, v in (data.get("settings") or {}).items()}
        steps: list[_Step] = []
        for n, raw in enumerate(data.get("steps") or [], 1):
            if not isinstance(raw, dict) or set(raw) - {"after_requests", "after_seconds", "set", "say"}:
                raise ScenarioError(f"{where}: step {n}: keys after_requests or after_seconds, set, say")
            if ("after_requests" in raw) == ("after_seconds" in raw):
                raise ScenarioError(f"{where}: step {n}: give exactly one of after_requests, after_seconds")
            values = {k: coerce_setting(k, v) for k, v in (raw.get("set") or {}).items()}
            after_req = int(raw["after_requests"]) if "after_requests" in raw else None
            after_sec = float(raw["after_seconds"]) if "after_seconds" in raw else None
            steps.append(_Step(values, after_req, after_sec, str(raw.get("say", ""))))
        return cls(settings, steps)

    def request_answered(self, record: RecordedRequest) -> None:
        """Count a Report.aspx answer (call from ``on_answer``)."""
        if record.path.lower() == API_PATH.lower():
            with self._lock:
                self.api_answered += 1

    def advance(self, emulator: CloudmaxEmulator, log: Callable[[str], None]) -> None:
        """Apply every next step whose condition holds, in order."""
        with self._lock:
            while self.applied < len(self.steps):
                step = self.steps[self.applied]
                elapsed = time.monotonic() - self._started
                if step.after_requests is not None and self.api_answered < step.after_requests:
                    return
                if step.after_seconds is not None and elapsed < step.after_seconds:
                    return
                for key, value in step.set.items():
                    setattr(emulator.settings, key, value)
                if {"fail_first", "fail_start_first", "fail_start_windows"} & set(step.set):
                    emulator.restart_fault_counts()  # a step's fail_first=N means the next N requests
                self.applied += 1
                when = (
                    f"after {step.after_requests} Report.aspx request(s)"
                    if step.after_requests is not None
                    else f"after {step.after_seconds:g} s"
                )
                say = f" ({step.say})" if step.say else ""
                log(f"scenario step {self.applied}/{len(self.steps)} {when}{say}: {describe_settings(step.set)}")


def format_request(record: RecordedRequest, status: int, fault: str) -> str:
    """One log line: time, method, path, ReportPartID, LaunchID, window, mode, status, fault; no password."""
    stamp = time.strftime("%H:%M:%S", time.localtime(record.time)) + f".{int(record.time % 1 * 1000):03d}"
    parts = [stamp, record.method]
    if record.path.lower() == API_PATH.lower():
        fields = _api_fields(record)
        parts += [
            "Report.aspx",
            f"ReportPartID={fields.get('reportpartid', '-')}",
            f"LaunchID={fields.get('launchid', '-')}",
            f"window={fields.get('starttime', '?')}..{fields.get('endtime', '?')}",
            f"mode={fields.get('responsemode') or '0'}",
        ]
    else:
        parts.append(record.path)
    parts.append(f"status={status}")
    if fault:
        parts.append(f"fault={fault}")
    return " ".join(parts)


def _api_fields(record: RecordedRequest) -> dict[str, str]:
    """The fields the log shows (from the request or its XmlRequest); never the credentials."""
    wanted = ("reportpartid", "launchid", "starttime", "endtime", "responsemode")
    out: dict[str, str] = {}
    xml = record.field("XmlRequest")
    if xml:
        from cloudmax_provider.testing.emulator import _xml_params

        try:
            out.update({k: v for k, v in _xml_params(xml.encode("utf-8")).items() if k in wanted})
        except Exception:  # a broken XmlRequest is the server's 102 to give, not the log's
            out["reportpartid"] = "(unreadable XmlRequest)"
    for key in wanted:
        value = record.field(key)
        if value is not None:
            out[key] = value.strip()
    return out


_FLAG_NAMES = {"fail_start_windows": "--fail-window", "fail_start_first": "--fail-window-first"}


def _flag(name: str) -> str:
    """The command-line flag of a settings field."""
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; only the settings given are in ``settings`` (a dict of coerced values)."""
    ap = argparse.ArgumentParser(
        prog="python -m cloudmax_provider.testing.emulator",
        description="Local emulator of Cloudmax's /WebAPI/Report.aspx, with the faults the pytest fixture has. "
        "Prints one line per request (never the password).",
        epilog="Rehearse a failure: see the docs page 'Rehearse a failure'.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one, printed at start)")
    ap.add_argument("--login", default="demo", help="the API account (ManagerLoginName); default demo")
    ap.add_argument("--password", default="demo-password", help="its password (never logged)")
    ap.add_argument("--scenario", metavar="FILE", help="JSON (or YAML with PyYAML) sequence of faults")
    ap.add_argument("--log-file", metavar="FILE", help="append the request log there instead of stdout")
    ap.add_argument("--quiet", action="store_true", help="no request log")
    ap.add_argument(
        "--replay",
        metavar="DIR",
        help="serve a capture made by 'python -m cloudmax_provider.probe --record DIR' (the same bytes and quirks)",
    )
    faults = ap.add_argument_group("faults and behaviour (each an EmulatorSettings field)")
    for name, text in _FLAGS:
        flag = _flag(name)
        kind = str(_FIELDS[name].type)
        if name == "fail_start_windows":
            faults.add_argument(flag, nargs=2, action="append", metavar=("FROM", "TO"), dest=name, help=text)
        elif kind.startswith("bool"):
            faults.add_argument(flag, action="store_true", default=argparse.SUPPRESS, dest=name, help=text)
        else:
            metavar = None if name in _CHOICES else "N" if kind.startswith("int") else "VALUE"
            metavar = "SECONDS" if kind.startswith("float") or name == "retry_after" else metavar
            faults.add_argument(
                flag, choices=_CHOICES.get(name), dest=name, default=argparse.SUPPRESS, metavar=metavar, help=text
            )
    args = ap.parse_args(argv)
    settings: dict[str, Any] = {}
    for name, _text in _FLAGS:
        if getattr(args, name, None) is not None and hasattr(args, name):
            try:
                settings[name] = coerce_setting(name, getattr(args, name))
            except ScenarioError as exc:
                ap.error(f"{_flag(name)}: {exc}")
    args.settings = settings
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, logging each request and playing ``--scenario``."""
    args = parse_args(argv)
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else None
    except (OSError, ScenarioError) as exc:
        print(f"error: --scenario: {exc}", file=sys.stderr)
        return 2
    settings = EmulatorSettings(accounts={args.login: args.password})
    for key, value in {**(scenario.settings if scenario else {}), **args.settings}.items():
        setattr(settings, key, value)
    out: TextIO = open(args.log_file, "a", encoding="utf-8") if args.log_file else sys.stdout  # noqa: SIM115
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            print(line, file=out, flush=True)

    emu = CloudmaxEmulator(settings, host=args.host, port=args.port)
    if args.replay:
        from cloudmax_provider.api.capture import load_capture
        from cloudmax_provider.testing.emulator.replay import Replay

        try:
            emu.replay = Replay(load_capture(args.replay))
        except ValueError as exc:
            print(f"error: --replay: {exc}", file=sys.stderr)
            return 2
        log(f"replaying {args.replay} ({len(emu.replay.capture.exchanges)} recorded exchanges)")

    def on_answer(record: RecordedRequest, status: int, fault: str) -> None:
        if not args.quiet:
            log(format_request(record, status, fault))
        if scenario is not None:
            scenario.request_answered(record)
            scenario.advance(emu, log)

    emu.on_answer = on_answer
    return _serve(emu, scenario, log, settings)


def _serve(
    emu: CloudmaxEmulator, scenario: Scenario | None, log: Callable[[str], None], settings: EmulatorSettings
) -> int:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        emu.start()
    except OSError as exc:  # the port is taken (Airflow's webserver/api-server default is 8080), or not ours
        import errno

        why = "the port is in use" if exc.errno == errno.EADDRINUSE else str(exc)
        print(
            f"error: cannot listen on {emu.host}:{emu.port}: {why}; choose another --port "
            "(or --port 0 for a free one, printed here)",
            file=sys.stderr,
        )
        return 2
    try:
        changed = {
            f.name: getattr(settings, f.name)
            for f in dataclasses.fields(settings)
            if getattr(settings, f.name) != getattr(EmulatorSettings(), f.name) and f.name != "accounts"
        }
        print(f"Cloudmax emulator listening on {emu.endpoint_url}", flush=True)
        if changed:
            log(f"settings: {describe_settings(changed)}")
        while not done.wait(0.1):
            if scenario is not None:
                scenario.advance(emu, log)
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
