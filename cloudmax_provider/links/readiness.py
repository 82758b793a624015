"""Is a DOWNLOADLINK's file ready? Decided from observations: pure code, no I/O, no clock of its own.

The sync hook (the sensor's pokes) and the async hook (the trigger's rounds) only do the I/O and feed
what they saw here, so both give the same answer. HTTP: each answer goes to :func:`next_hop`, the last
to :func:`~cloudmax_provider.links.download_link.judge_http_probe`. UNC: each size read goes to
:meth:`StabilityRule.observe` with the link's previous :class:`SizeSeen`; nothing waits inside a probe.
Times are epoch seconds, so a sensor's observation can be handed to the trigger (:meth:`SizeSeen.to_list`).

Example::

    >>> rule = StabilityRule(checks=2, seconds=1.0)
    >>> probe, seen = rule.observe("//srv/share/r.csv", 35, 100.0, None)
    >>> probe.state.value, seen
    ('pending', SizeSeen(size=35, since=100.0, checks=1))
    >>> rule.observe("//srv/share/r.csv", 35, 101.0, seen)[0].state.value
    'ready'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

from cloudmax_provider.exceptions import CloudmaxLinkError
from cloudmax_provider.links.download_link import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    DownloadLink,
    LinkProbe,
    LinkState,
    check_link_allowed,
)


def next_hop(
    link: str, url: str, status: int, headers: Mapping[str, str], hops: int, api_host: str, allowed: Iterable[str]
) -> str | None:
    """Where to go after ``url`` answered ``status``: None when it is not a redirect (judge this answer),
    else the target to request next. ``hops`` counts the redirects of ``link`` already followed.

    Raises :class:`~cloudmax_provider.exceptions.CloudmaxLinkError` (the link fails) for a redirect without
    a Location, to a scheme other than http(s) or to a host that is not allowed, or for one redirect more
    than :data:`~cloudmax_provider.links.download_link.MAX_REDIRECTS` (a loop ends there too).
    """
    if status not in REDIRECT_STATUSES:
        return None
    location = headers.get("Location", "")
    if not location:
        raise CloudmaxLinkError(f"DOWNLOADLINK {url} answered HTTP {status} without a Location")
    target = urljoin(url, location)
    parsed = DownloadLink.parse(target)
    if parsed.kind != "http":
        raise CloudmaxLinkError(f"DOWNLOADLINK {url} redirects to {target[:200]!r}, which is not an http(s) URL")
    check_link_allowed(parsed, api_host, allowed)
    if hops >= MAX_REDIRECTS:
        raise CloudmaxLinkError(f"DOWNLOADLINK {link} redirects more than {MAX_REDIRECTS} times")
    return target


@dataclass(frozen=True, slots=True)
class SizeSeen:
    """A UNC file's size as last observed: ``checks`` consecutive observations saw ``size``, the first at ``since``."""

    size: int
    since: float
    checks: int = 1

    def to_list(self) -> list[float]:
        """``[size, since, checks]``: JSON primitives for a trigger's kwargs."""
        return [self.size, self.since, self.checks]

    @classmethod
    def from_list(cls, data: Sequence[float]) -> SizeSeen:
        return cls(int(data[0]), float(data[1]), int(data[2]))


@dataclass(frozen=True, slots=True)
class StabilityRule:
    """When a UNC file's size says it is complete: > 0 and the same over ``checks`` consecutive
    observations spanning at least ``seconds``."""

    checks: int = 2
    seconds: float = 1.0

    def observe(
        self, link: str, size: int | None, now: float, before: SizeSeen | None
    ) -> tuple[LinkProbe, SizeSeen | None]:
        """Judge one size read of ``link`` at ``now`` (None: no such file yet), given the link's previous
        observation; returns the probe and the observation to keep for the next one."""
        if size is None:
            return LinkProbe(link, LinkState.PENDING, None, "the file does not exist yet"), None
        if size == 0:
            return LinkProbe(link, LinkState.PENDING, 0, "the file is empty so far"), None
        same = before is not None and before.size == size
        seen = SizeSeen(size, before.since, before.checks + 1) if before is not None and same else SizeSeen(size, now)
        held = now - seen.since
        if seen.checks >= self.checks and held >= self.seconds:
            message = f"size stable over {seen.checks} checks ({held:.1f}s)"
            return LinkProbe(link, LinkState.READY, size, message), seen
        if before is not None and not same:
            message = f"still being written ({before.size} -> {size} bytes)"
        else:
            message = f"{size} bytes so far; waiting for the size to settle"
        return LinkProbe(link, LinkState.PENDING, size, message), seen

    def observe_into(self, link: str, size: int | None, now: float, memory: dict[str, SizeSeen]) -> LinkProbe:
        """:meth:`observe` with the previous observation taken from, and the new one kept in, ``memory``."""
        probe, seen = self.observe(link, size, now, memory.get(link))
        if seen is None:
            memory.pop(link, None)
        else:
            memory[link] = seen
        return probe

    def observe_once(self, link: str, size: int | None, last_write: float, now: float) -> LinkProbe:
        """Judge a read with no earlier one kept (a reschedule-mode poke): the file's last-write time stands
        for the first observation, so it is ready once unwritten for ``seconds`` (set above the clocks' skew).

        Example::

            StabilityRule(2, 60).observe_once(link, 1024, last_write=t - 90, now=t)  # READY
        """
        before = SizeSeen(size, min(last_write, now), max(1, self.checks - 1)) if size else None
        return self.observe(link, size, now, before)[0]

    def recheck_at(self, seen: SizeSeen | None) -> float | None:
        """The earliest time another observation could find the file ready (None: no size seen yet)."""
        return None if seen is None else seen.since + self.seconds


def judge_unc_error(link: str, exc: BaseException) -> LinkProbe:
    """An SMB failure: an unreachable server is "not yet"; a refused login, denied access, a missing
    share, a directory or a bad path fail the link."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return LinkProbe(link, LinkState.PENDING, message=f"SMB server not reachable: {exc}"[:300])
    return LinkProbe(link, LinkState.FAILED, message=f"{type(exc).__name__}: {exc}"[:500])


__all__ = ["SizeSeen", "StabilityRule", "judge_unc_error", "next_hop"]
