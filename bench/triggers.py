"""The waiting-links part: 10,000 DOWNLOADLINKs, one ``CloudmaxDownloadLinkTrigger`` each, on one event loop in
a fresh process holding what a triggerer holds; its peak RSS and each trigger's delay from "file ready" to event."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import CLOUDMAX_CONN_ID, END, REPORT_PART_ID, START, Bench, Profile, start, stop

# ==== child side ================================================================================================


def child(case: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``request_links`` (ask the emulator for the links) or ``triggers`` (wait on them)."""
    return _request_links(spec) if case == "request_links" else _triggers(spec)


def _request_links(spec: dict[str, Any]) -> dict[str, Any]:
    """Ask the emulator for ``spec["links"]`` DOWNLOADLINKs, in batches of 1,000 ``spec["gap"]`` seconds apart (so
    files become ready at different moments), for the ``triggers`` child; and the kwargs of their triggers.

    A process of its own: the triggerer measured next never has the requests-based hook, the XML parser or the
    Report.aspx answers in memory, only the triggers' serialized kwargs (as a triggerer gets them).
    """
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger

    n, poll, gap = spec["links"], spec["poll_interval"], spec["gap"]
    hook = CloudmaxHook(CLOUDMAX_CONN_ID)
    links: list[str] = []
    for first in range(1, n + 1, 1000):
        ids = list(range(first, min(first + 1000, n + 1)))
        batch = hook.request_links(hook.build_request(REPORT_PART_ID, ids, START, END, response_mode=1))
        assert len(batch) == len(ids), (len(batch), len(ids))
        links += batch
        time.sleep(gap)
    trigger = CloudmaxDownloadLinkTrigger.for_hook(links[:1], hook, poll_interval=poll, deadline=None)
    _, kwargs = trigger.serialize()  # what the sensor hands the triggerer: primitives only
    del kwargs["links"], kwargs["deadline"]
    Path(spec["links_file"]).write_text(json.dumps({"links": links, "trigger_kwargs": kwargs}))
    return {"links": len(links)}


def _triggers(spec: dict[str, Any]) -> dict[str, Any]:
    """One CloudmaxDownloadLinkTrigger per link of ``spec["links_file"]``, all on this process's one event loop.

    The process holds what a triggerer's runner holds before its triggers arrive: Airflow with the triggerer's own
    module (``airflow.jobs.triggerer_job_runner``: the ORM, the Task SDK, greenback), the trigger's code and what it
    imports when it runs (aiohttp, tenacity, yarl); nothing of the requests-based hook. Each trigger is built from
    its serialized kwargs, as the triggerer does, at a random moment within one poll interval (deferred sensors
    arrive over time, not all in the same millisecond), and runs in a task of its own, as under the triggerer.
    Records, per link, the wall-clock moment its trigger started and fired; the parent compares them with the
    moment the emulator made the file ready.
    """
    import asyncio
    import gc
    import random

    import aiohttp  # noqa: F401  (the trigger imports these when it runs; a triggerer running it has them)
    import airflow.jobs.triggerer_job_runner  # noqa: F401
    import tenacity  # noqa: F401
    import yarl  # noqa: F401

    from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger

    given = json.loads(Path(spec["links_file"]).read_text())
    links: list[str] = given["links"]
    kwargs: dict[str, Any] = given["trigger_kwargs"]
    poll = kwargs["poll_interval"]
    rng = random.Random(1)
    fired: dict[str, float] = {}
    started: dict[str, float] = {}
    statuses: dict[str, int] = {}
    out: dict[str, Any] = {}

    async def one(link: str, delay: float) -> None:
        await asyncio.sleep(delay)
        started[link] = time.time()
        trigger = CloudmaxDownloadLinkTrigger(**kwargs, links=[link], deadline=time.time() + 600)
        async for event in trigger.run():
            statuses[event.payload["status"]] = statuses.get(event.payload["status"], 0) + 1
            fired[link] = time.time()

    async def main() -> None:
        await asyncio.gather(*(one(link, rng.uniform(0, poll)) for link in links))

    del given
    gc.collect()
    with Profile(spec.get("profile_svg")):
        t0, c0 = start(out)
        asyncio.run(main())
        stop(out, t0, c0)
    out.update(fired=fired, started=started, statuses=statuses, bytes_in=0, bytes_out=0)
    return out


# ==== parent side ===============================================================================================


def run_triggers(bench: Bench, emu: Any, n: int, poll: float, profile_svg: str | None = None) -> dict[str, Any]:
    """The links asked for in one child, then waited on by ``n`` triggers in a fresh one."""
    gap = 0.5
    # files ready after 1.5 poll intervals, + the time the emulator takes to make the links (~1 s per 1,000
    # here) + the triggers' process start (~5 s): most become ready while their trigger waits
    emu.settings.link_ready_after = poll * 1.5 + n / 1000 + 5
    links_file = str(bench.work / f"links-{time.monotonic_ns()}.json")
    bench.run_python("request_links", {"links": n, "poll_interval": poll, "gap": gap, "links_file": links_file})
    emu.clear_log()
    out = bench.run_python("triggers", {"links_file": links_file, "profile_svg": profile_svg})
    out["probes"] = len(emu.link_requests)
    emu.clear_log()
    return out


def run(bench: Bench, emu: Any) -> None:
    """10,000 links, one trigger each, on one event loop in a fresh process."""
    n, poll = bench.args.links, bench.args.poll_interval
    emu.settings.big_report_bytes = 0
    emu.settings.split_links = True
    emu.settings.rows_per_launch = 1
    s = run_triggers(bench, emu, n, poll)
    probes = s["probes"]
    assert s["statuses"] == {"success": n}, s["statuses"]
    from cloudmax_provider.testing.emulator import LINK_PREFIX

    # the emulator's own moment each file became ready (monotonic in this process) -> wall clock
    offset = time.time() - time.monotonic()
    ready = {token: f.ready_at + offset for token, f in emu._links.items()}
    # from the later of "the file is ready" and "the trigger started" (a file ready before its sensor
    # deferred is seen at the trigger's first probe) to the event
    lags = sorted(
        t - max(ready[link.split(LINK_PREFIX, 1)[1].split("/", 1)[0]], s["started"][link])
        for link, t in s["fired"].items()
    )
    if bench.args.profile:  # a shorter run under py-spy (the measured run above is not profiled)
        run_triggers(bench, emu, min(n, 2000), 5.0, bench.profile_path("triggers"))
    emu.settings.link_ready_after = 0.0
    rounds = probes / n
    fig = {
        "links": n,
        "poll_interval": poll,
        "probes": probes,
        "rounds_per_trigger": rounds,
        "cpu_seconds": s["cpu_seconds"],
        "seconds": s["seconds"],
        "cpu_seconds_per_round": s["cpu_seconds"] / rounds,
        "peak_rss_mib": s["vmhwm_kib"] / 1024,
        "rss_before_mib": s["rss_before_kib"] / 1024,
        "kib_per_trigger": (s["vmhwm_kib"] - s["rss_before_kib"]) / n,
        "lag_max": max(lags),
        "lag_p50": statistics.median(lags),
        "lag_p99": lags[int(len(lags) * 0.99) - 1],
    }
    bench.info["triggers"] = fig
    print(
        f"\n## {n:,} links, one CloudmaxDownloadLinkTrigger each, one event loop (poll_interval={poll:g}s)\n"
        f"  all fired 'success' in {fig['seconds']:.1f}s; {probes:,} probes ({rounds:.1f} per trigger); "
        f"CPU {fig['cpu_seconds']:.1f}s = {fig['cpu_seconds_per_round']:.2f}s per round of {n:,} probes\n"
        f"  delay from file ready to event: median {fig['lag_p50']:.2f}s, p99 {fig['lag_p99']:.2f}s, "
        f"max {fig['lag_max']:.2f}s\n"
        f"  peak RSS {fig['peak_rss_mib']:.0f} MiB (before the triggers: {fig['rss_before_mib']:.0f} MiB, "
        f"Airflow and the triggerer's module loaded); {fig['kib_per_trigger']:.1f} KiB per trigger over that",
        flush=True,
    )
