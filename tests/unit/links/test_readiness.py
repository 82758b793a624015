r"""One readiness core, two paths: the same link scenarios through the sync hook (the sensor's pokes) and
through the async hook (the trigger's rounds) give the same answers.

Real HTTP against the bundled emulator on loopback (a small redirecting server in front of it for redirect
chains and loops), real SMB through a real smbd (skipped, with the reason, where Samba cannot run). Waits
are proven by events (the emulator's request log, the count of SMB size reads), never by elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow.models.connection import Connection

from cloudmax_provider.api.connection import CloudmaxSettings
from cloudmax_provider.exceptions import CloudmaxLinkError
from cloudmax_provider.hooks.cloudmax import CloudmaxHook
from cloudmax_provider.links.download_link import MAX_REDIRECTS, LinkProbe, LinkState
from cloudmax_provider.links.readiness import SizeSeen, StabilityRule, next_hop
from cloudmax_provider.links.unc import UncReader
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor
from cloudmax_provider.testing.emulator import CloudmaxEmulator
from cloudmax_provider.testing.samba import SambaServer, samba_unavailable_reason
from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger
from tests.conftest import cloudmax_conn_json

PATHS = ["sync", "async"]
POLL = 0.1
STABLE_SECONDS = 0.3


# ---------------------------------------------------------------------------------------------
# the pure core
# ---------------------------------------------------------------------------------------------
def test_stability_rule_needs_equal_sizes_over_checks_and_seconds() -> None:
    rule = StabilityRule(checks=2, seconds=1.0)
    link = r"\\srv\share\r.csv"
    assert rule.observe(link, None, 0.0, None)[0].message == "the file does not exist yet"
    empty, seen = rule.observe(link, 0, 0.0, None)
    assert (empty.state, empty.size, seen) == (LinkState.PENDING, 0, None)
    first, seen = rule.observe(link, 10, 100.0, None)
    assert first.state is LinkState.PENDING and seen == SizeSeen(10, 100.0, 1)
    assert rule.recheck_at(seen) == 101.0
    soon, soon_seen = rule.observe(link, 10, 100.5, seen)  # two equal sizes, but only 0.5 s apart
    assert soon.state is LinkState.PENDING and soon_seen == SizeSeen(10, 100.0, 2)
    grown, grown_seen = rule.observe(link, 12, 101.5, soon_seen)  # it grew: the clock starts again
    assert grown.state is LinkState.PENDING and "still being written (10 -> 12 bytes)" in grown.message
    assert grown_seen == SizeSeen(12, 101.5, 1)
    ready, _ = rule.observe(link, 12, 102.5, grown_seen)
    assert (ready.state, ready.size) == (LinkState.READY, 12)
    three = StabilityRule(checks=3, seconds=0.0)
    probe, seen = three.observe(link, 5, 0.0, None)
    probe, seen = three.observe(link, 5, 0.0, seen)
    assert probe.state is LinkState.PENDING
    assert three.observe(link, 5, 0.0, seen)[0].state is LinkState.READY
    assert SizeSeen.from_list(json.loads(json.dumps(SizeSeen(7, 1.5, 2).to_list()))) == SizeSeen(7, 1.5, 2)


def test_one_read_is_judged_by_the_files_last_write() -> None:
    """Nothing kept between reads (reschedule mode): the last-write time stands for the earlier read."""
    link = r"\\srv\share\r.csv"
    rule = StabilityRule(checks=2, seconds=60.0)
    assert rule.observe_once(link, 10, last_write=1000.0, now=1059.0).state is LinkState.PENDING
    assert rule.observe_once(link, 10, last_write=1000.0, now=1060.0).state is LinkState.READY
    assert rule.observe_once(link, 10, last_write=2000.0, now=1060.0).state is LinkState.PENDING  # server ahead
    assert rule.observe_once(link, 0, last_write=0.0, now=1060.0).state is LinkState.PENDING  # empty: never ready
    assert StabilityRule(checks=3, seconds=0.0).observe_once(link, 5, 0.0, 0.0).state is LinkState.READY


def test_next_hop_counts_hops_and_checks_targets() -> None:
    link = "http://h/a.csv"
    assert next_hop(link, link, 200, {}, 0, "h", []) is None
    assert next_hop(link, link, 302, {"Location": "/b.csv"}, MAX_REDIRECTS - 1, "h", []) == "http://h/b.csv"
    with pytest.raises(CloudmaxLinkError, match=f"redirects more than {MAX_REDIRECTS} times"):
        next_hop(link, "http://h/b.csv", 302, {"Location": "/c.csv"}, MAX_REDIRECTS, "h", [])
    with pytest.raises(CloudmaxLinkError, match="allowed_link_hosts"):
        next_hop(link, link, 307, {"Location": "http://other/a.csv"}, 0, "h", [])
    with pytest.raises(CloudmaxLinkError, match="without a Location"):
        next_hop(link, link, 301, {}, 0, "h", [])


# ---------------------------------------------------------------------------------------------
# the two paths
# ---------------------------------------------------------------------------------------------
@dataclass
class Answer:
    """What a path answered: the outcome, the sizes of the files (success), and the reasons it gave."""

    status: str
    sizes: list[int | None] = field(default_factory=list)
    text: str = ""


def wait_sync(links: list[str], timeout: float, smb_conn_id: str | None) -> Answer:
    """The sensor's pokes (the sync hook), every POLL seconds, until done, failed or ``timeout`` passed."""
    sensor = CloudmaxDownloadLinkSensor(
        task_id="wait", links=links, smb_conn_id=smb_conn_id, poke_interval=POLL, timeout=timeout
    )
    sensor.hook.unc_stable_seconds = STABLE_SECONDS
    deadline = time.monotonic() + timeout
    while True:
        try:
            done = sensor.poke({})
        except CloudmaxLinkError as exc:
            return Answer("failed", text=str(exc))
        if done:
            return Answer("success", [item["size"] for item in done.xcom_value])  # type: ignore[union-attr]
        if time.monotonic() >= deadline:
            return Answer("timeout", text="; ".join(sensor._last.values()))
        time.sleep(POLL)


def wait_async(links: list[str], timeout: float, smb_conn_id: str | None) -> Answer:
    """The trigger's rounds (the async hook), with the same connection, until its one event."""
    hook = CloudmaxHook("cloudmax_default", smb_conn_id=smb_conn_id)
    hook.unc_stable_seconds = STABLE_SECONDS
    trigger = CloudmaxDownloadLinkTrigger.for_hook(links, hook, poll_interval=POLL, deadline=time.time() + timeout)

    async def run() -> dict[str, Any]:
        events = [event async for event in trigger.run()]
        assert len(events) == 1
        payload: dict[str, Any] = events[0].payload
        return payload

    payload = asyncio.run(run())
    probes = [LinkProbe.from_dict(item) for item in payload["links"]]
    if payload["status"] == "success":
        return Answer("success", [p.size for p in probes])
    if payload["status"] == "timeout":
        return Answer("timeout", text="; ".join(p.message for p in probes if p.state is LinkState.PENDING))
    return Answer(payload["status"], text=payload["message"])


WAIT: dict[str, Callable[[list[str], float, str | None], Answer]] = {"sync": wait_sync, "async": wait_async}


@pytest.fixture
def emu(cloudmax_emulator: CloudmaxEmulator, monkeypatch: pytest.MonkeyPatch) -> CloudmaxEmulator:
    """The emulator as ``cloudmax_default`` (fast retries), ``localhost`` an allowed link host."""
    conn = cloudmax_conn_json(cloudmax_emulator, allowed_link_hosts=["localhost"])
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDMAX_DEFAULT", conn)
    return cloudmax_emulator


def request_links(launch_ids: list[int], response_mode: int = 1) -> list[str]:
    hook = CloudmaxHook("cloudmax_default")
    return hook.request_links(
        hook.build_request(
            2100199, launch_ids, "2026-11-01 00:00:00", "2026-11-02 00:00:00", response_mode=response_mode
        )
    )


def release_after(emu: CloudmaxEmulator, count: Callable[[], int], probes: int) -> threading.Thread:
    """Make the held link files ready once ``count()`` reached ``probes``: the wait proven by events."""

    def watch() -> None:
        end = time.monotonic() + 60
        while count() < probes and time.monotonic() < end:
            time.sleep(0.005)
        emu.release_links()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


class Redirector:
    """A loopback HTTP server in front of the emulator: ``/chain/N`` answers 302 to ``/chain/N-1``,
    ``/chain/0`` answers 302 to the emulator's link (``?to=``), ``/loop`` answers 302 to itself."""

    def __init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                path, _, query = self.path.partition("?")
                if path.startswith("/chain/"):
                    n = int(path.rsplit("/", 1)[1])
                    target = f"/chain/{n - 1}?{query}" if n > 0 else query.removeprefix("to=")
                else:
                    target = self.path  # /loop: back to itself
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def chain(self, hops: int, to: str) -> str:
        """A link that reaches ``to`` after ``hops`` redirects."""
        return f"{self.base}/chain/{hops - 1}?to={to}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    server = Redirector()
    try:
        yield server
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------
# the scenarios: each prepares the emulator (or the share) and says what both paths must answer
# ---------------------------------------------------------------------------------------------
@dataclass
class Ctx:
    """What a scenario works with: the emulator, the redirector, SMB size reads so far, the test's request."""

    emu: CloudmaxEmulator
    redirector: Redirector
    reads: list[int]
    request: pytest.FixtureRequest
    path: str
    threads: list[threading.Thread] = field(default_factory=list)

    def share(self) -> Path:
        """The smbd share (mode 0 links land there); skips the scenario where Samba cannot run."""
        samba: SambaServer = self.request.getfixturevalue("samba")
        self.request.getfixturevalue("smb_emu")
        return samba.share_dir


@dataclass
class Case:
    """A scenario's links and the answer both paths must give (``text``: a fragment of the reasons)."""

    links: list[str]
    status: str
    text: str = ""
    timeout: float = 10.0
    smb_conn_id: str | None = None
    sizes: Callable[[], list[int]] | None = None  # the expected sizes, known once the run is over
    events: Callable[[], None] | None = None  # checks on what the servers saw


def ready(ctx: Ctx) -> Case:
    links = request_links([1, 2])
    ctx.emu.clear_log()
    return Case(links, "success", events=lambda: assert_probes(ctx, 1))  # one round: one probe per ready file


def pending_then_ready(ctx: Ctx) -> Case:
    ctx.emu.settings.link_ready_after = 3600
    ctx.emu.settings.split_links = True
    links = request_links([1, 2])
    ctx.emu.clear_log()
    ctx.threads.append(release_after(ctx.emu, lambda: len(ctx.emu.link_requests), 4))  # both seen missing twice
    return Case(links, "success", timeout=30, events=lambda: assert_probes(ctx, 6, at_least=True))


def not_found_until_the_deadline(ctx: Ctx) -> Case:
    ctx.emu.settings.link_ready_after = 3600
    links = request_links([1])
    ctx.emu.clear_log()
    return Case(links, "timeout", "HTTP 404: not ready yet", 1.0, events=lambda: assert_probes(ctx, 2, at_least=True))


def refused(status: int) -> Callable[[Ctx], Case]:
    def scenario(ctx: Ctx) -> Case:
        links = request_links([1])
        ctx.emu.clear_log()
        ctx.emu.settings.fault_paths, ctx.emu.settings.fail_with, ctx.emu.settings.fail_first = "links", status, 1000
        text = f"HTTP {status}: the file cannot be fetched"
        return Case(links, "failed", text, events=lambda: assert_probes(ctx, 1))  # failed at once, not polled

    return scenario


def redirect_chain(hops: int) -> Callable[[Ctx], Case]:
    def scenario(ctx: Ctx) -> Case:
        [link] = request_links([1])
        ctx.emu.clear_log()

        def events() -> None:
            assert ctx.redirector.hits == hops
            assert_probes(ctx, 1)

        return Case([ctx.redirector.chain(hops, link)], "success", events=events)

    return scenario


def one_hop_too_many(ctx: Ctx) -> Case:
    [link] = request_links([1])
    ctx.emu.clear_log()

    def events() -> None:
        assert ctx.redirector.hits == MAX_REDIRECTS + 1
        assert_probes(ctx, 0)

    chain = ctx.redirector.chain(MAX_REDIRECTS + 1, link)
    return Case([chain], "failed", f"redirects more than {MAX_REDIRECTS} times", events=events)


def redirect_loop(ctx: Ctx) -> Case:
    def events() -> None:
        assert ctx.redirector.hits == MAX_REDIRECTS + 1  # cut in the first round, not polled

    loop = f"{ctx.redirector.base}/loop"
    return Case([loop], "failed", f"redirects more than {MAX_REDIRECTS} times", events=events)


def redirect_to_an_allowed_host(ctx: Ctx) -> Case:
    links = request_links([1])
    ctx.emu.clear_log()
    ctx.emu.settings.link_redirect_to = ctx.emu.base_url.replace("127.0.0.1", "localhost")

    def events() -> None:
        assert [r.query.get("hop") for r in ctx.emu.link_requests] == [None, "1"]

    return Case(links, "success", events=events)


def redirect_to_a_host_not_allowed(ctx: Ctx) -> Case:
    links = request_links([1])
    ctx.emu.clear_log()
    ctx.emu.settings.link_redirect_to = f"http://[::1]:{ctx.emu.port}"
    return Case(links, "failed", "allowed_link_hosts", events=lambda: assert_probes(ctx, 1))


def unc_pending_then_ready(ctx: Ctx) -> Case:
    ctx.share()
    ctx.emu.settings.link_ready_after = 3600  # mode 0 files are written when released
    ctx.emu.settings.split_links = True
    links = request_links([1, 2], response_mode=0)
    ctx.threads.append(release_after(ctx.emu, lambda: ctx.reads[0], 4))

    def sizes() -> list[int]:
        return [ctx.emu.unc_to_local(link).stat().st_size for link in links]

    return Case(links, "success", timeout=30, smb_conn_id="smb_ready", sizes=sizes)


def unc_growing_then_stable(ctx: Ctx) -> Case:
    folder = ctx.share() / f"growing_{ctx.path}"
    folder.mkdir(exist_ok=True)
    target = folder / "r.csv"
    target.write_bytes(b"a,b\r\n")

    def grow() -> None:  # after each of the first 4 size reads the file grows: never the same size twice
        for n in range(1, 5):
            while ctx.reads[0] < n:
                time.sleep(0.002)
            with target.open("ab") as fh:
                fh.write(b"1,2\r\n")

    ctx.threads.append(threading.Thread(target=grow, daemon=True))
    ctx.threads[-1].start()

    def events() -> None:
        assert ctx.reads[0] >= 6  # 4 reads saw it grow, then the same size twice

    link = rf"\\CMXFILE01\reports\growing_{ctx.path}\r.csv"
    # only the final size was ever stable
    return Case([link], "success", timeout=30, smb_conn_id="smb_ready", sizes=lambda: [5 + 4 * 5], events=events)


def unc_refused_share(ctx: Ctx) -> Case:
    ctx.share()
    return Case([r"\\CMXFILE01\nosuchshare\x.csv"], "failed", "x.csv", smb_conn_id="smb_ready")


def assert_probes(ctx: Ctx, n: int, at_least: bool = False) -> None:
    seen = len(ctx.emu.link_requests)
    assert seen >= n if at_least else seen == n, f"{seen} link requests"


SCENARIOS: dict[str, Callable[[Ctx], Case]] = {
    "ready": ready,
    "pending_then_ready": pending_then_ready,
    "404_until_the_deadline": not_found_until_the_deadline,
    "401": refused(401),
    "403": refused(403),
    "410": refused(410),
    "redirect_chain_1": redirect_chain(1),
    f"redirect_chain_{MAX_REDIRECTS}": redirect_chain(MAX_REDIRECTS),
    "one_hop_too_many": one_hop_too_many,
    "redirect_loop": redirect_loop,
    "redirect_to_an_allowed_host": redirect_to_an_allowed_host,
    "redirect_to_a_host_not_allowed": redirect_to_a_host_not_allowed,
    "unc_pending_then_ready": unc_pending_then_ready,
    "unc_growing_then_stable": unc_growing_then_stable,
    "unc_refused_share": unc_refused_share,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "scenario", [pytest.param(name, marks=[pytest.mark.samba] if name.startswith("unc_") else []) for name in SCENARIOS]
)
def test_both_paths_give_the_same_answer(
    emu: CloudmaxEmulator, redirector: Redirector, request: pytest.FixtureRequest, scenario: str, path: str
) -> None:
    """The sync hook (sensor pokes) and the async hook (trigger rounds) answer each scenario alike."""
    with counting_size_reads() as reads:
        ctx = Ctx(emu, redirector, reads, request, path)
        case = SCENARIOS[scenario](ctx)
        answer = WAIT[path](case.links, case.timeout, case.smb_conn_id)
        for thread in ctx.threads:
            thread.join(30)
    assert answer.status == case.status, answer
    assert case.text in answer.text, answer
    if case.status == "success":
        expected = case.sizes() if case.sizes else [None] * len(case.links)
        assert len(answer.sizes) == len(case.links) and all(answer.sizes), answer
        assert case.sizes is None or answer.sizes == expected, answer
    if case.events is not None:
        case.events()
    for r in emu.link_requests:
        assert "Authorization" not in r.headers and "Cookie" not in r.headers  # never a credential


# ---------------------------------------------------------------------------------------------
# UNC links through a real smbd
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    reason = samba_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with SambaServer(tmp_path_factory.mktemp("readiness_share")) as srv:
        yield srv


@pytest.fixture
def smb_emu(emu: CloudmaxEmulator, samba: SambaServer, monkeypatch: pytest.MonkeyPatch) -> CloudmaxEmulator:
    emu.settings.unc_root = str(samba.share_dir)
    conn = {"conn_type": "samba", "host": samba.host, "port": samba.port}
    conn.update(login=samba.username, password=samba.password)
    monkeypatch.setenv("AIRFLOW_CONN_SMB_READY", json.dumps(conn))
    return emu


@contextlib.contextmanager
def counting_size_reads() -> Iterator[list[int]]:
    """Count SMB size reads (both paths read them with ``UncReader.stat``), calling through."""
    calls = [0]
    real = UncReader.stat

    def stat(self: UncReader, link: Any) -> Any:
        result = real(self, link)
        calls[0] += 1
        return result

    UncReader.stat = stat  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        UncReader.stat = real  # type: ignore[method-assign]


@pytest.mark.samba
def test_a_poke_never_sleeps_for_stability(smb_emu: CloudmaxEmulator, samba: SambaServer) -> None:
    """Each poke reads each UNC size once and returns; stability is decided across pokes."""
    folder = samba.share_dir / "poke"
    folder.mkdir(exist_ok=True)
    (folder / "r.csv").write_bytes(b"a,b\r\n1,2\r\n")
    link = r"\\CMXFILE01\reports\poke\r.csv"
    sensor = CloudmaxDownloadLinkSensor(task_id="wait", links=[link], smb_conn_id="smb_ready", poke_interval=60)
    sensor.hook.unc_stable_seconds = 3600.0  # a poke that waited for stability would never return
    with counting_size_reads() as reads:
        assert sensor.poke({}) is False
        assert reads[0] == 1
        assert sensor.poke({}) is False  # the same size, but not yet held for unc_stable_seconds
        assert reads[0] == 2
    seen = sensor.hook.unc_seen[link]
    assert (seen.size, seen.checks) == (10, 2)
    sensor.hook.unc_stable_seconds = 0.0
    with counting_size_reads() as reads:
        done = sensor.poke({})
        assert reads[0] == 1
    assert done and done.xcom_value == [{"link": link, "size": 10}]  # type: ignore[union-attr]


@pytest.mark.samba
def test_reschedule_mode_judges_by_last_write(smb_emu: CloudmaxEmulator, samba: SambaServer) -> None:
    """Rebuilt for every poke, a reschedule-mode sensor cannot remember a size: one read per poke, and the
    file's last-write time stands for the earlier read; a file written within ``poke_interval`` waits."""
    folder = samba.share_dir / "reschedule"
    folder.mkdir(exist_ok=True)
    path = folder / "r.csv"
    path.write_bytes(b"a,b\r\n")
    link = r"\\CMXFILE01\reports\reschedule\r.csv"

    def poke() -> Any:
        sensor = CloudmaxDownloadLinkSensor(
            task_id="wait", links=[link], smb_conn_id="smb_ready", poke_interval=600, mode="reschedule"
        )
        with counting_size_reads() as reads:
            done = sensor.poke({})
        assert reads[0] == 1
        return done

    os.utime(path, (time.time(), time.time() + 60))  # written "now" by the server's clock (and a skew ahead)
    assert poke() is False
    os.utime(path, (time.time(), time.time() - 601))  # last written more than a poke interval ago
    done = poke()
    assert done and done.xcom_value == [{"link": link, "size": 5}]


@pytest.mark.samba
def test_the_trigger_starts_from_the_sensors_sizes(smb_emu: CloudmaxEmulator, samba: SambaServer) -> None:
    """The deferring sensor hands the sizes its poke saw to the trigger: one more read decides."""
    folder = samba.share_dir / "handoff"
    folder.mkdir(exist_ok=True)
    (folder / "r.csv").write_bytes(b"a,b\r\n")
    link = r"\\CMXFILE01\reports\handoff\r.csv"
    hook = CloudmaxHook("cloudmax_default", smb_conn_id="smb_ready")
    hook.unc_stable_seconds = 0.0
    hook.unc_seen[link] = SizeSeen(5, time.time() - 1)
    trigger = CloudmaxDownloadLinkTrigger.for_hook([link], hook, poll_interval=30, deadline=time.time() + 20)
    _, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs and kwargs["unc_seen"] == {link: [5, hook.unc_seen[link].since, 1]}
    again = CloudmaxDownloadLinkTrigger(**kwargs)

    async def run() -> dict[str, Any]:
        events = [event async for event in again.run()]
        payload: dict[str, Any] = events[0].payload
        return payload

    with counting_size_reads() as reads:
        payload = asyncio.run(run())
    assert payload["status"] == "success" and payload["links"][0]["size"] == 5
    assert reads[0] == 1  # the first round decided: no poll_interval (30 s) waited


def test_the_trigger_schedules_a_round_when_a_size_could_be_stable() -> None:
    """A settling UNC file brings the next round forward to when it could be found stable (no spin)."""
    trigger = CloudmaxDownloadLinkTrigger(links=[r"\\srv\share\r.csv"], poll_interval=30, unc_stable_seconds=2.0)
    conn = Connection(conn_id="cmx", conn_type="cloudmax", host="https://h", login="demo", password="pw-12345")
    hook = trigger._hook(CloudmaxSettings.from_connection(conn))
    hook.unc_seen = {r"\\srv\share\r.csv": SizeSeen(5, time.time())}
    probes = {r"\\srv\share\r.csv": LinkProbe(r"\\srv\share\r.csv", LinkState.PENDING, 5)}

    async def next_round() -> float:
        loop = asyncio.get_running_loop()
        return trigger._next_round(loop, hook, probes) - loop.time()

    wait = asyncio.run(next_round())
    assert 1.5 < wait <= 2.0  # not 30 s, not 0
