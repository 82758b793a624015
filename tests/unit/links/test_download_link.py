r"""CloudmaxDownloadLinkSensor and CloudmaxDownloadLinkTrigger against the Report.aspx emulator.

DAG tests run real Airflow (``dag.test()`` runs the trigger in-process); trigger tests run
``trigger.run()`` directly in asyncio. The SMB tests use a real smbd (skipped, with the reason,
where Samba cannot run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudmax_provider.hooks.cloudmax import CloudmaxHook
from cloudmax_provider.links.download_link import LinkProbe, LinkState
from cloudmax_provider.testing.emulator import CloudmaxEmulator
from cloudmax_provider.testing.samba import SambaServer, samba_unavailable_reason
from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger
from tests.airflow_runner import run_dag, task_states, xcom

SYNC_UA = "airflow-provider-cloudmax"  # the hook's (requests) User-Agent; the trigger's names aiohttp

DAG_SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    CloudmaxDownloadLinkSensor(
        task_id="wait", links={links!r}, poke_interval={poke_interval}, timeout={timeout},
        deferrable={deferrable}, soft_fail={soft_fail}, smb_conn_id={smb_conn_id!r},
    )
"""

XCOM_DAG_SOURCE = """
import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from cloudmax_provider.hooks.cloudmax import CloudmaxHook
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    @task
    def request_links():
        hook = CloudmaxHook("cloudmax_default")
        return hook.request_links(hook.build_request(
            2100199, [1234, 5678], "2026-11-01 00:00:00", "2026-11-02 00:00:00", response_mode={response_mode}))

    CloudmaxDownloadLinkSensor(task_id="wait", links=request_links(), poke_interval=0.5, timeout=30,
                               deferrable={deferrable}, smb_conn_id={smb_conn_id!r})
"""


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def emu(cloudmax_emulator: CloudmaxEmulator, monkeypatch: pytest.MonkeyPatch) -> CloudmaxEmulator:
    """The emulator, known to Airflow as ``cloudmax_default``."""
    conn = {"conn_type": "cloudmax", "host": cloudmax_emulator.base_url, "login": "demo", "password": "demo-password"}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_DEFAULT", json.dumps(conn))
    return cloudmax_emulator


def set_connection(emu: CloudmaxEmulator, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """Change ``cloudmax_default`` (the emulator) to have these extras."""
    conn = {"conn_type": "cloudmax", "host": emu.base_url, "login": "demo", "password": "demo-password", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_DEFAULT", json.dumps(conn))


def request_links(launch_ids: list[int] | None = None, response_mode: int = 1) -> list[str]:
    hook = CloudmaxHook("cloudmax_default")
    return hook.request_links(
        hook.build_request(
            2100199, launch_ids or [1234], "2026-11-01 00:00:00", "2026-11-02 00:00:00", response_mode=response_mode
        )
    )


def run_sensor(
    dag_id: str,
    links: Any,
    *,
    poke_interval: float = 0.5,
    timeout: float = 30,
    deferrable: bool = False,
    soft_fail: bool = False,
    smb_conn_id: str | None = None,
) -> Any:
    source = DAG_SOURCE.format(
        dag_id=dag_id,
        links=links,
        poke_interval=poke_interval,
        timeout=timeout,
        deferrable=deferrable,
        soft_fail=soft_fail,
        smb_conn_id=smb_conn_id,
    )
    return run_dag(source, dag_id)


def trigger_for(links: list[str], emu: CloudmaxEmulator, **kwargs: Any) -> CloudmaxDownloadLinkTrigger:
    args: dict[str, Any] = {
        "cloudmax_conn_id": "cloudmax_default",  # the emulator's connection (the emu fixture)
        "smb_conn_id": None,
        "poll_interval": 0.25,
        "deadline": time.time() + 10,
    }
    args.update(kwargs)
    return CloudmaxDownloadLinkTrigger(links=links, **args)


async def first_event(trigger: CloudmaxDownloadLinkTrigger) -> dict[str, Any]:
    events = [event async for event in trigger.run()]
    assert len(events) == 1, "a trigger fires exactly one event"
    payload: dict[str, Any] = events[0].payload
    assert set(payload) == {"status", "links", "message"}
    assert all(set(item) == {"link", "state", "size", "message"} for item in payload["links"])  # no body
    return payload


def run_trigger(trigger: CloudmaxDownloadLinkTrigger) -> dict[str, Any]:
    return asyncio.run(first_event(trigger))


def user_agents(emu: CloudmaxEmulator) -> list[str]:
    return [r.headers.get("User-Agent", "") for r in emu.link_requests]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------------
# DAG runs: poke mode and deferrable mode
# ---------------------------------------------------------------------------------------------
# What the sensor logs from the trigger's success event, read from the task's output on every version
# (dag.test()'s own "running trigger in line" goes to a logger that Airflow 2's logging config keeps away).
TRIGGER_FIRED = "DOWNLOADLINK(s) ready after"


class ReleaseAfterProbes(threading.Thread):
    """Hold the emulator's link files back until the sensor has probed them ``probes`` times, then make them
    ready: the wait is proven by events (probes that found no file), whatever the machine's speed."""

    def __init__(self, emu: CloudmaxEmulator, probes: int, count: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.emu, self.probes, self.count, self.probed_before_release = emu, probes, count, 0
        emu.settings.link_ready_after = 3600
        self.start()

    def run(self) -> None:
        end = time.monotonic() + 300
        while self.count() < self.probes and time.monotonic() < end:
            time.sleep(0.01)
        self.probed_before_release = self.count()
        self.emu.release_links()


@contextlib.contextmanager
def counting_unc_probes() -> Iterator[list[int]]:
    """Count the size checks of UNC files (poke and trigger both use ``UncReader.stat``), calling through."""
    from cloudmax_provider.links.unc import UncReader

    calls = [0]
    real = UncReader.stat

    def stat(self: UncReader, link: Any) -> Any:
        calls[0] += 1
        return real(self, link)

    UncReader.stat = stat  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        UncReader.stat = real  # type: ignore[method-assign]


def run_links_then_sensor(
    dag_id: str, emu: CloudmaxEmulator, deferrable: bool, response_mode: int = 1, smb_conn_id: str | None = None
) -> tuple[list[str], list[Any]]:
    """Upstream task asks Report.aspx for two links; the sensor gets them by XCom and waits for them: the
    files are held until it looked for each twice (HTTP probes, or SMB size checks for UNC links)."""
    emu.settings.split_links = True
    source = XCOM_DAG_SOURCE.format(
        dag_id=dag_id, deferrable=deferrable, response_mode=response_mode, smb_conn_id=smb_conn_id
    )
    with counting_unc_probes() as unc_probes:
        count = (lambda: unc_probes[0]) if response_mode == 0 else (lambda: len(emu.link_requests))
        release = ReleaseAfterProbes(emu, probes=4, count=count)
        dr = run_dag(source, dag_id)
    assert task_states(dr) == {"request_links": "success", "wait": "success"}
    links, result = xcom(dr, "request_links"), xcom(dr, "wait")
    assert len(links) == 2 and [r["link"] for r in result] == links
    assert all(r["size"] > 0 for r in result)
    release.join()
    assert release.probed_before_release >= 4  # it really waited: both files looked for twice while missing
    if response_mode == 0:
        return links, result
    assert all(r.headers.get("Range") == "bytes=0-4095" for r in emu.link_requests)
    assert all("Cookie" not in r.headers and "Authorization" not in r.headers for r in emu.link_requests)
    return links, result


def test_poke_mode_waits_for_links_that_become_ready(
    airflow_db: Path, emu: CloudmaxEmulator, task_output: Callable[[], str]
) -> None:
    run_links_then_sensor("dl_poke_ok", emu, deferrable=False)
    assert TRIGGER_FIRED not in task_output()
    agents = user_agents(emu)
    assert len(agents) >= 4 and set(agents) == {SYNC_UA}  # poked by the hook, several times, no trigger


def test_deferrable_mode_defers_to_the_trigger(
    airflow_db: Path, emu: CloudmaxEmulator, task_output: Callable[[], str]
) -> None:
    run_links_then_sensor("dl_defer_ok", emu, deferrable=True)
    assert TRIGGER_FIRED in task_output()  # dag.test() ran our trigger: the task deferred
    agents = user_agents(emu)
    # one poke first (requests, both links pending), then the deferral: aiohttp probes until ready
    assert agents[:2] == [SYNC_UA, SYNC_UA]
    assert len(agents) > 2 and all("aiohttp" in ua for ua in agents[2:])


def test_deferrable_ready_link_does_not_defer(airflow_db: Path, emu: CloudmaxEmulator) -> None:
    links = request_links()
    dr = run_sensor("dl_defer_ready", links, poke_interval=60, deferrable=True)
    assert task_states(dr) == {"wait": "success"}
    assert xcom(dr, "wait")[0]["link"] == links[0]
    assert user_agents(emu) == [SYNC_UA]  # the first poke found it: no trigger, no poke interval


def test_deferrable_timeout_fails(airflow_db: Path, emu: CloudmaxEmulator, task_output: Callable[[], str]) -> None:
    emu.settings.link_ready_after = 3600
    links = request_links()
    started = time.monotonic()
    dr = run_sensor("dl_defer_timeout", links, timeout=2, deferrable=True)
    took = time.monotonic() - started
    assert task_states(dr) == {"wait": "failed"}
    assert 2.0 <= took < 15
    out = task_output()
    assert "AirflowSensorTimeout" in out
    assert "not ready after timeout=2" in out and links[0] in out
    assert any("aiohttp" in ua for ua in user_agents(emu))


def test_soft_fail_timeout_skips(airflow_db: Path, emu: CloudmaxEmulator) -> None:
    emu.settings.link_ready_after = 3600
    dr = run_sensor("dl_soft_fail", request_links(), timeout=1, deferrable=True, soft_fail=True)
    assert task_states(dr) == {"wait": "skipped"}


def forbid_after_first_probe(emu: CloudmaxEmulator) -> threading.Thread:
    """Let the first link request see a 404 ("not yet"), then answer every link with 403."""

    def watch() -> None:
        end = time.monotonic() + 30
        while not emu.link_requests and time.monotonic() < end:
            time.sleep(0.005)
        emu.settings.fault_paths, emu.settings.fail_with, emu.settings.fail_first = "links", 403, 1000

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_forbidden_link_fails_with_a_specific_message(
    airflow_db: Path, emu: CloudmaxEmulator, task_output: Callable[[], str], deferrable: bool
) -> None:
    emu.settings.link_ready_after = 3600
    links = request_links()
    emu.clear_log()
    watcher = forbid_after_first_probe(emu)  # in deferrable mode the trigger, not the first poke, sees the 403
    dag_id = f"dl_forbidden_{'defer' if deferrable else 'poke'}"
    dr = run_sensor(dag_id, links, timeout=20, deferrable=deferrable)
    watcher.join()
    assert task_states(dr) == {"wait": "failed"}
    out = task_output()
    assert f"CloudmaxLinkError: DOWNLOADLINK {links[0]}: HTTP 403: the file cannot be fetched" in out
    agents = user_agents(emu)
    assert agents[0] == SYNC_UA and ("aiohttp" in agents[-1]) is deferrable


def test_html_error_page_fails(airflow_db: Path, emu: CloudmaxEmulator, task_output: Callable[[], str]) -> None:
    page = emu.serve_file("Report_1.csv", "<html><body><h1>Runtime Error</h1></body></html>", "text/html")
    dr = run_sensor("dl_html_page", [page], timeout=20)
    assert task_states(dr) == {"wait": "failed"}
    out = task_output()
    assert "the link answered an HTML page instead of the report" in out


def test_host_not_allowed_fails_without_a_request(
    airflow_db: Path, emu: CloudmaxEmulator, task_output: Callable[[], str]
) -> None:
    links = request_links()
    emu.clear_log()
    other = links[0].replace("127.0.0.1", "localhost")  # same server, a host name that is not the API's
    dr = run_sensor("dl_host_refused", [{"link": other}], timeout=20, deferrable=True)
    assert task_states(dr) == {"wait": "failed"}
    assert emu.requests == []
    out = task_output()
    assert "DOWNLOADLINK host 'localhost' is not the API host '127.0.0.1'" in out


# ---------------------------------------------------------------------------------------------
# The trigger on its own
# ---------------------------------------------------------------------------------------------
def test_trigger_serialize_round_trips_primitives() -> None:
    trigger = CloudmaxDownloadLinkTrigger(
        links=["http://h/a.csv", r"\\CMXFILE01\reports\x\b.csv"],
        cloudmax_conn_id="cmx",
        smb_conn_id="smb",
        poll_interval=1.5,
        deadline=1_900_000_000.25,
        unc_stable_checks=3,
        attempts=2,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "cloudmax_provider.triggers.download_link.CloudmaxDownloadLinkTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # primitives only
    again = CloudmaxDownloadLinkTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["links"][1] == r"\\CMXFILE01\reports\x\b.csv" and kwargs["deadline"] == 1_900_000_000.25
    # the connection is read when the trigger runs: no host, TLS or retry setting of it is carried
    assert set(kwargs) == {
        "links",
        "cloudmax_conn_id",
        "smb_conn_id",
        "poll_interval",
        "deadline",
        "unc_stable_checks",
        "unc_stable_seconds",
        "unc_seen",
        "attempts",
    }


def test_trigger_success_after_delay(emu: CloudmaxEmulator) -> None:
    emu.settings.link_ready_after = 1.0
    emu.settings.split_links = True
    links = request_links([1, 2, 3])
    payload = run_trigger(trigger_for(links, emu, deadline=None))  # no deadline: waits as long as it takes
    assert payload["status"] == "success", payload
    probes = [LinkProbe.from_dict(d) for d in payload["links"]]
    assert [p.link for p in probes] == links
    assert all(p.state is LinkState.READY and p.size for p in probes)


def test_trigger_timeout_is_exact_and_polls_without_spinning(emu: CloudmaxEmulator) -> None:
    emu.settings.link_ready_after = 3600
    links = request_links()
    emu.clear_log()
    window, poll = 2.0, 0.25
    deadline = time.time() + window
    payload = run_trigger(trigger_for(links, emu, poll_interval=poll, deadline=deadline))
    late = time.time() - deadline
    n = len(emu.link_requests)
    print(f"\ntimeout event {late * 1000:+.0f} ms after the deadline; {n} probes in {window}s at {poll}s")
    assert payload["status"] == "timeout"
    assert -0.05 <= late < 0.3
    assert window / poll - 1 <= n <= window / poll + 1  # one probe per round, no busy loop
    assert payload["links"][0]["state"] == "pending" and "HTTP 404" in payload["links"][0]["message"]
    assert links[0] in payload["message"]


def test_trigger_refused_host_fails_without_a_request(emu: CloudmaxEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    links = request_links()
    emu.clear_log()
    evil = links[0].replace("127.0.0.1", "localhost")
    deferred = trigger_for([evil], emu)  # serialized before the connection is fixed, as a deferred task's is
    payload = run_trigger(trigger_for([links[0], evil], emu))
    assert payload["status"] == "failed"
    assert "not the API host" in payload["message"] and evil in payload["message"]
    assert emu.requests == []
    # the same host becomes fine once the connection allows it: the trigger reads the connection when it runs
    set_connection(emu, monkeypatch, allowed_link_hosts=["local*"])
    payload = run_trigger(CloudmaxDownloadLinkTrigger(**deferred.serialize()[1]))
    assert payload["status"] == "success"


def test_trigger_with_a_missing_connection_fails_with_its_name(emu: CloudmaxEmulator) -> None:
    payload = run_trigger(trigger_for(request_links(), emu, cloudmax_conn_id="cloudmax_gone"))
    assert payload["status"] == "failed"
    assert "'cloudmax_gone' is not defined" in payload["message"] and "conn type 'cloudmax'" in payload["message"]


def test_trigger_403_and_error_pages_fail(emu: CloudmaxEmulator) -> None:
    links = request_links()
    emu.settings.fault_paths, emu.settings.fail_with, emu.settings.fail_first = "links", 403, 1000
    payload = run_trigger(trigger_for(links, emu))
    assert payload["status"] == "failed" and "HTTP 403" in payload["message"]
    emu.settings.fail_first = 0
    html = emu.serve_file("r.csv", "<!DOCTYPE html><html><body>Error</body></html>", "text/html")
    payload = run_trigger(trigger_for([html], emu))
    assert payload["status"] == "failed" and "HTML page" in payload["message"]
    xml = emu.serve_file(
        "e.csv",
        "<?xml version='1.0'?><ROOT><ERRORCODE>100</ERRORCODE><ERRORMSG>Exception</ERRORMSG></ROOT>",
        "text/xml",
    )
    payload = run_trigger(trigger_for([xml], emu))
    assert payload["status"] == "failed" and "ErrorCode 100" in payload["message"]


def test_trigger_network_errors_and_5xx_are_pending(emu: CloudmaxEmulator) -> None:
    links = request_links()
    dead = f"http://127.0.0.1:{free_port()}/WebAPI/ReportFiles/x/r.csv"  # nothing listens there
    emu.settings.fault_paths, emu.settings.fail_with, emu.settings.fail_first = "links", 503, 3
    payload = run_trigger(trigger_for([links[0], dead], emu, poll_interval=0.1, deadline=time.time() + 1.0, attempts=1))
    assert payload["status"] == "timeout"
    by_link = {d["link"]: d for d in payload["links"]}
    assert by_link[links[0]]["state"] == "ready"  # three 503s were only "not yet"
    assert by_link[dead]["state"] == "pending" and "not reachable yet" in by_link[dead]["message"]


def test_trigger_retries_resets_within_a_round_with_the_one_policy(emu: CloudmaxEmulator) -> None:
    """Connection resets are retried by tenacity's AsyncRetrying with the connection's settings."""
    links = request_links()
    emu.settings.fault_paths, emu.settings.fail_with, emu.settings.fail_first = "links", "reset", 2
    # A second round would start an hour later: the event within 120 s is the first round's (an event, not a
    # stopwatch: a loaded machine is slower, never an hour slower).
    trigger = trigger_for(links, emu, poll_interval=3600.0, attempts=3)  # the connection: 0.05-0.2 s waits
    payload = asyncio.run(asyncio.wait_for(first_event(trigger), timeout=120))
    assert payload["status"] == "success"
    assert len(emu.link_requests) == 3  # reset, reset, ready: all in the first round


@pytest.mark.slow
def test_thousand_links_on_one_event_loop(emu: CloudmaxEmulator) -> None:
    emu.settings.split_links = True
    emu.settings.rows_per_launch = 1
    emu.settings.link_ready_after = 2.0
    links = request_links(list(range(1, 1001)))
    assert len(links) == 1000
    emu.clear_log()
    before = rss_mb()

    async def main() -> list[dict[str, Any]]:
        deadline = time.time() + 60
        triggers = [trigger_for([link], emu, poll_interval=0.5, deadline=deadline) for link in links]
        return await asyncio.gather(*(first_event(t) for t in triggers))

    started = time.monotonic()
    payloads = asyncio.run(main())
    took = time.monotonic() - started
    growth = rss_mb() - before
    probes = len(emu.link_requests)
    print(
        f"\n1000 triggers x 1 link, one event loop: all ready in {took:.2f}s wall (files ready after 2.0s), "
        f"{probes} probes, RSS {before:.0f} MB -> {before + growth:.0f} MB (growth {growth:.1f} MB)"
    )
    assert [p["status"] for p in payloads] == ["success"] * 1000
    assert sorted(p["links"][0]["link"] for p in payloads) == sorted(links)
    assert took < 30
    assert growth < 200


# ---------------------------------------------------------------------------------------------
# UNC links through a real smbd
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    reason = samba_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with SambaServer(tmp_path_factory.mktemp("dl_share")) as srv:
        yield srv


@pytest.fixture
def smb_emu(emu: CloudmaxEmulator, samba: SambaServer, monkeypatch: pytest.MonkeyPatch) -> CloudmaxEmulator:
    """Mode 0 links (``\\\\CMXFILE01\\reports\\...``) whose files land in the smbd share."""
    emu.settings.unc_root = str(samba.share_dir)
    conn = {
        "conn_type": "samba",
        "host": samba.host,
        "port": samba.port,
        "login": samba.username,
        "password": samba.password,
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMB_DL", json.dumps(conn))
    return emu


@pytest.mark.samba
@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_smb_links_through_samba(
    airflow_db: Path, smb_emu: CloudmaxEmulator, deferrable: bool, task_output: Callable[[], str]
) -> None:
    dag_id = f"dl_smb_{'defer' if deferrable else 'poke'}"
    links, result = run_links_then_sensor(dag_id, smb_emu, deferrable, response_mode=0, smb_conn_id="smb_dl")
    assert all(link.startswith("\\\\CMXFILE01\\reports\\") for link in links)
    assert result == [{"link": link, "size": smb_emu.unc_to_local(link).stat().st_size} for link in links]
    assert (TRIGGER_FIRED in task_output()) is deferrable


@pytest.mark.samba
def test_smb_growing_file_is_ready_only_once_stable(smb_emu: CloudmaxEmulator, samba: SambaServer) -> None:
    path = samba.share_dir / "growing" / "r.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"a,b\r\n")
    link = r"\\CMXFILE01\reports\growing\r.csv"
    trigger = trigger_for([link], smb_emu, smb_conn_id="smb_dl", poll_interval=0.2, deadline=time.time() + 20)

    async def main() -> dict[str, Any]:
        async def grow() -> None:
            for _ in range(6):
                await asyncio.sleep(0.15)
                with path.open("ab") as fh:
                    fh.write(b"1,2\r\n")

        grower = asyncio.create_task(grow())
        payload = await first_event(trigger)
        await grower
        return payload

    payload = asyncio.run(main())
    assert payload["status"] == "success"
    assert payload["links"][0]["size"] == path.stat().st_size == 5 + 6 * 5
    # the sync hook applies the same rule across its probes: a first probe only sees the size, a probe
    # unc_stable_seconds later finds it unchanged
    hook = CloudmaxHook("cloudmax_default", smb_conn_id="smb_dl")
    hook.unc_stable_seconds = 0.2
    first = hook.probe_link(link)
    assert (first.state, first.size) == (LinkState.PENDING, 35)
    time.sleep(0.2)
    probe = hook.probe_link(link)
    assert (probe.state, probe.size) == (LinkState.READY, 35)
    missing = hook.probe_link(r"\\CMXFILE01\reports\growing\none.csv")
    assert missing.state is LinkState.PENDING and "does not exist" in missing.message
    denied = trigger_for([r"\\CMXFILE01\nosuchshare\x.csv"], smb_emu, smb_conn_id="smb_dl")
    assert run_trigger(denied)["status"] == "failed"


def test_trigger_follows_redirects_only_to_allowed_hosts(
    emu: CloudmaxEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = request_links()
    emu.settings.link_redirect_to = emu.base_url.replace("127.0.0.1", "localhost")
    payload = run_trigger(trigger_for(links, emu))
    assert payload["status"] == "failed" and "allowed_link_hosts" in payload["message"]
    set_connection(emu, monkeypatch, allowed_link_hosts=["localhost"])
    payload = run_trigger(trigger_for(links, emu))
    assert payload["status"] == "success"
    assert any(r.query.get("hop") == "1" for r in emu.link_requests)
