r"""Wait for DOWNLOADLINK files in the triggerer: async HTTP probes and SMB size checks.

Report.aspx (ResponseMode 0/1) answers links before their files exist. This trigger polls every
still-pending link once per ``poll_interval`` and fires exactly one event:

.. code-block:: python

    {"status": "success" | "failed" | "timeout",
     "links": [LinkProbe.to_dict(), ...],   # one per link, in the order given
     "message": "..."}

Events never hold a body. The I/O is :class:`~cloudmax_provider.hooks.cloudmax_async.CloudmaxAsyncLinkHook`;
readiness is :mod:`cloudmax_provider.links.readiness`, as for the sensor's pokes (a UNC file's next round is
timed to decide its stability). No credential is ever sent to a link; a link whose host is not allowed fails
at once, before any request.

Example::

    trigger = CloudmaxDownloadLinkTrigger(
        links=["https://api.itpison.com/WebAPI/ReportFiles/abc/Report.csv"],
        cloudmax_conn_id="cloudmax_default", poll_interval=30, deadline=time.time() + 3600,
    )
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cloudmax_provider.api.connection import CloudmaxSettings
from cloudmax_provider.api.retry import RetrySettings
from cloudmax_provider.exceptions import CloudmaxError
from cloudmax_provider.hooks.cloudmax_async import PROBE_BYTES, CloudmaxAsyncLinkHook
from cloudmax_provider.links.download_link import DownloadLink, LinkProbe, LinkState, check_link_allowed
from cloudmax_provider.links.readiness import SizeSeen, StabilityRule

if TYPE_CHECKING:
    import aiohttp

    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
#: Shortest pause between two rounds, whatever ``poll_interval`` says (a trigger never spins).
MIN_POLL_INTERVAL = 0.05
#: No per-trigger limit (a round probing one link).
_NO_LIMIT = contextlib.nullcontext()


class CloudmaxDownloadLinkTrigger(BaseTrigger):
    """Fire once every link is ready (``success``), one fails (``failed``) or ``deadline`` passes (``timeout``).

    It serializes the connection ids and a few primitives only; the ``cloudmax`` connection (link hosts, TLS,
    timeout, retry policy) and the ``samba`` one are read when the trigger runs, so a connection fixed while
    a task is deferred reaches it.

    :param links: DOWNLOADLINKs (http(s) URLs and/or UNC paths).
    :param cloudmax_conn_id: the ``cloudmax`` connection: its host (http links to it are always allowed),
        ``allowed_link_hosts``, ``verify``, ``timeout`` (one probe) and retry extras.
    :param smb_conn_id: Airflow ``samba`` connection for UNC links.
    :param poll_interval: seconds between two rounds of probes.
    :param deadline: epoch seconds; the ``timeout`` event fires at that moment (None: wait forever).
    :param unc_stable_checks: consecutive equal sizes (> 0) that make a UNC file ready ...
    :param unc_stable_seconds: ... when the first of them is at least this many seconds old.
    :param unc_seen: UNC observations made before the trigger (the sensor's first poke):
        ``{link: [size, since, checks]}`` (:meth:`~cloudmax_provider.links.readiness.SizeSeen.to_list`).
    :param attempts: attempts per probe on a network error; ``None`` (default): the connection's ``attempts``.
    """

    #: Probes in flight at once, per trigger.
    max_concurrency: int = 50

    def __init__(
        self,
        *,
        links: list[str],
        cloudmax_conn_id: str = "cloudmax_default",
        smb_conn_id: str | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        unc_stable_checks: int = 2,
        unc_stable_seconds: float = 1.0,
        unc_seen: dict[str, list[float]] | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__()
        self.links = [str(link) for link in links]
        self.cloudmax_conn_id = str(cloudmax_conn_id)
        self.smb_conn_id = smb_conn_id
        self.poll_interval = max(MIN_POLL_INTERVAL, float(poll_interval))
        self.deadline = float(deadline) if deadline is not None else None
        self.unc_stable_checks = max(1, int(unc_stable_checks))
        self.unc_stable_seconds = max(0.0, float(unc_stable_seconds))
        self.unc_seen = {str(k): list(v) for k, v in unc_seen.items()} if unc_seen else None
        self.attempts = max(1, int(attempts)) if attempts is not None else None

    @property
    def log(self) -> Any:
        """The class's logger, shared by every instance (LoggingMixin would make one per trigger)."""
        return type(self).logger()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "links": list(self.links),
                "cloudmax_conn_id": self.cloudmax_conn_id,
                "smb_conn_id": self.smb_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "unc_stable_checks": self.unc_stable_checks,
                "unc_stable_seconds": self.unc_stable_seconds,
                "unc_seen": self.unc_seen,
                "attempts": self.attempts,
            },
        )

    @classmethod
    def for_hook(
        cls, links: list[str], hook: CloudmaxHook, *, poll_interval: float, deadline: float | None
    ) -> CloudmaxDownloadLinkTrigger:
        """The trigger that goes on from a sync hook's checks (its connections, UNC rule and observations).

        Example::

            trigger = CloudmaxDownloadLinkTrigger.for_hook(links, hook, poll_interval=30, deadline=None)
        """
        rule = hook.stability
        return cls(
            links=list(links),
            cloudmax_conn_id=hook.cloudmax_conn_id,
            smb_conn_id=hook.smb_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            unc_stable_checks=rule.checks,
            unc_stable_seconds=rule.seconds,
            unc_seen={link: seen.to_list() for link, seen in hook.unc_seen.items()} or None,
        )

    def _hook(self, settings: CloudmaxSettings) -> CloudmaxAsyncLinkHook:
        """This run's async hook, from the connection as it is now."""
        seen = {link: SizeSeen.from_list(v) for link, v in self.unc_seen.items()} if self.unc_seen else None
        retry = settings.retry
        return CloudmaxAsyncLinkHook(
            api_host=settings.api_host,
            allowed_link_hosts=list(settings.allowed_link_hosts),
            smb_conn_id=self.smb_conn_id,
            verify=settings.verify,
            request_timeout=settings.timeout,
            retry=_retry_settings(self.attempts or retry.max_attempts, retry.min_wait, retry.max_wait),
            stability=_stability_rule(self.unc_stable_checks, self.unc_stable_seconds),
            unc_seen=seen,
        )

    async def _settings(self) -> CloudmaxSettings | dict[str, Any]:
        """The ``cloudmax`` connection's settings, read now; a ``failed`` payload when it is missing or invalid."""
        from airflow.providers.common.compat.connection import get_async_connection
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        from cloudmax_provider.hooks.cloudmax import CloudmaxHook

        try:
            conn = await get_async_connection(self.cloudmax_conn_id, hook=CloudmaxHook)
            return CloudmaxSettings.from_connection(conn)
        except CloudmaxError as exc:
            message = f"connection {self.cloudmax_conn_id!r}: {exc}"
        except AirflowNotFoundException:
            message = f"connection {self.cloudmax_conn_id!r} is not defined: create it (conn type 'cloudmax')"
        probes = {link: LinkProbe(link, LinkState.FAILED, message=message) for link in self.links}
        return self._payload("failed", probes, message)

    # ---- the event ---------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until every link is ready, one fails, or the deadline passes; then fire the one event.

        The loop is here, not in a coroutine awaited from here: between rounds a waiting trigger holds only this
        frame, its probes, its sleep and its deadline's timer (which interrupts a probe or the sleep on time).
        """
        settings = await self._settings()
        if isinstance(settings, dict):
            yield TriggerEvent(settings)
            return
        probes = {link: LinkProbe(link, LinkState.PENDING, message="not checked yet") for link in self.links}
        hook = self._hook(settings)
        payload = self._refused(hook, probes)  # refused links fail before any request is sent
        if payload is not None:
            yield TriggerEvent(payload)
            return
        loop = asyncio.get_running_loop()
        deadline = None if self.deadline is None else loop.time() + (self.deadline - time.time())
        shared = await acquire_session()
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                rounds, last_waiting = 1, -1
                while (payload := await self._round(shared, hook, probes, rounds)) is None:
                    last_waiting = self._log_waiting(probes, last_waiting)
                    await _sleep_until(loop, self._next_round(loop, hook, probes))  # a real sleep, never a spin
                    rounds += 1
        except TimeoutError:
            if not scope.expired():
                raise
            payload = self._timeout(probes)
        finally:
            await asyncio.shield(release_session(shared))
            if hook.readers:
                await asyncio.shield(hook.close())
        yield TriggerEvent(payload)

    def _next_round(
        self, loop: asyncio.AbstractEventLoop, hook: CloudmaxAsyncLinkHook, probes: dict[str, LinkProbe]
    ) -> float:
        """The loop time of the next round: ``poll_interval`` on, or sooner when a UNC file could be stable then."""
        wait = self.poll_interval
        recheck = hook.recheck_at([link for link, p in probes.items() if p.state is LinkState.PENDING])
        if recheck is not None:
            wait = min(wait, max(MIN_POLL_INTERVAL, recheck - time.time()))
        return loop.time() + wait

    def _payload(self, status: str, probes: dict[str, LinkProbe], message: str) -> dict[str, Any]:
        return {"status": status, "links": [probes[link].to_dict() for link in self.links], "message": message}

    def _refused(self, hook: CloudmaxAsyncLinkHook, probes: dict[str, LinkProbe]) -> dict[str, Any] | None:
        """The ``failed`` payload for the first link that is not a link or whose host is not allowed."""
        for link in self.links:
            try:
                check_link_allowed(DownloadLink.parse(link), hook.api_host, hook.allowed_link_hosts)
            except CloudmaxError as exc:
                probes[link] = LinkProbe(link, LinkState.FAILED, message=str(exc))
                return self._payload("failed", probes, f"DOWNLOADLINK {link}: {exc}")
        return None

    @staticmethod
    def _count(probes: dict[str, LinkProbe], state: LinkState) -> int:
        return sum(p.state is state for p in probes.values())

    def _verdict(self, probes: dict[str, LinkProbe], rounds: int) -> dict[str, Any] | None:
        """The ``failed`` or ``success`` payload after a round, or None while links are pending."""
        failed = [p for p in probes.values() if p.state is LinkState.FAILED]
        if failed:
            message = "; ".join(f"DOWNLOADLINK {p.link}: {p.message}" for p in failed[:5])
            return self._payload("failed", probes, message)
        if not self._count(probes, LinkState.PENDING):
            return self._payload(
                "success", probes, f"all {len(self.links)} DOWNLOADLINK(s) ready after {rounds} round(s)"
            )
        return None

    def _timeout(self, probes: dict[str, LinkProbe]) -> dict[str, Any]:
        pending = [p for p in probes.values() if p.state is LinkState.PENDING]
        waited = ", ".join(f"{p.link} ({p.message})" for p in pending[:20])
        more = f" and {len(pending) - 20} more" if len(pending) > 20 else ""
        return self._payload(
            "timeout",
            probes,
            f"{len(pending)} of {len(self.links)} DOWNLOADLINK(s) not ready at the deadline: {waited}{more}",
        )

    async def _round(
        self, shared: SharedSession, hook: CloudmaxAsyncLinkHook, probes: dict[str, LinkProbe], rounds: int
    ) -> dict[str, Any] | None:
        """Probe every pending link once (into ``probes``); the event's payload if that decides it, else None."""
        pending = [link for link, p in probes.items() if p.state is LinkState.PENDING]
        if len(pending) == 1:  # the common case (one sensor, one link): no task, no gather, no semaphore
            results = [await self._probe(shared, hook, pending[0])]
        else:
            limit = asyncio.Semaphore(self.max_concurrency)  # this trigger's probes in flight in this round
            results = await asyncio.gather(*(self._probe(shared, hook, link, limit) for link in pending))
        for link, probe in zip(pending, results, strict=True):
            if probes[link].state != probe.state:
                self.log.debug("%s: %s (%s)", probe.link, probe.state.value, probe.message)
            probes[link] = probe
        return self._verdict(probes, rounds)

    def _log_waiting(self, probes: dict[str, LinkProbe], last_waiting: int) -> int:
        """Log how many links are still pending when that changed (not every round: a triggerer runs many)."""
        waiting = self._count(probes, LinkState.PENDING)
        if waiting != last_waiting:
            self.log.info(
                "%d of %d DOWNLOADLINK(s) not ready; checking every %gs", waiting, len(probes), self.poll_interval
            )
        return waiting

    # ---- probes ------------------------------------------------------------------------------

    async def _probe(
        self, shared: SharedSession, hook: CloudmaxAsyncLinkHook, link: str, limit: asyncio.Semaphore | None = None
    ) -> LinkProbe:
        parsed = DownloadLink.parse(link)  # again each round: a waiting trigger holds only its strings
        # this trigger's limit, then the event loop's (SESSION_CONNECTIONS probes of all triggers at once)
        async with limit or _NO_LIMIT, shared.slots:
            if parsed.kind == "unc":
                return await hook.probe_unc(parsed)
            return await hook.probe_http(shared.session, parsed)


def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> asyncio.Future[None]:
    """A future the loop resolves at its time ``when``: ``asyncio.sleep`` without its coroutine frame
    (~250 bytes, times the waiting triggers). Cancelled, the timer later fires into a done future: a no-op."""
    wake: asyncio.Future[None] = loop.create_future()
    loop.call_at(when, _wake, wake)
    return wake


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


#: Retry settings are frozen: triggers with the same ones share one object.
_retry_settings = functools.lru_cache(maxsize=64)(RetrySettings)
#: Stability rules are frozen too: one object per (checks, seconds).
_stability_rule = functools.lru_cache(maxsize=64)(StabilityRule)


# ---- one HTTP session per event loop, shared by every trigger on it ----------------------------------------

#: Connections the shared session keeps open at most (over all triggers of one event loop).
SESSION_CONNECTIONS = 100


@dataclass
class SharedSession:
    """The event loop's one aiohttp session and the probe slots all its triggers share."""

    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    users: int = 0

    @property
    def closed(self) -> bool:
        return bool(self.session.closed)


_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedSession] = weakref.WeakKeyDictionary()


async def acquire_session() -> SharedSession:
    """The running event loop's shared aiohttp session (created on first use), counted as used once more.

    One connection pool for all the loop's triggers, at most :data:`SESSION_CONNECTIONS` probes in flight;
    per-trigger TLS and timeout go with each request. No cookies, no proxy from the environment, no auth.
    Pair every call with :func:`release_session`; the last user closes the session.
    """
    import aiohttp  # here, not at module level: the trigger module must import fast

    loop = asyncio.get_running_loop()
    shared = _SESSIONS.get(loop)
    if shared is None or shared.closed:
        session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookie ever kept or sent
            connector=aiohttp.TCPConnector(limit=SESSION_CONNECTIONS),
            headers={"User-Agent": f"airflow-provider-cloudmax-trigger aiohttp/{aiohttp.__version__}"},
            trust_env=False,
        )
        shared = _SESSIONS[loop] = SharedSession(session, asyncio.Semaphore(SESSION_CONNECTIONS))
    shared.users += 1
    return shared


async def release_session(shared: SharedSession) -> None:
    """One user fewer of the loop's shared session; the last one closes it."""
    shared.users -= 1
    loop = asyncio.get_running_loop()
    if shared.users <= 0:
        if _SESSIONS.get(loop) is shared:
            del _SESSIONS[loop]
        if not shared.closed:
            await shared.session.close()


__all__ = [
    "MIN_POLL_INTERVAL",
    "PROBE_BYTES",
    "CloudmaxDownloadLinkTrigger",
    "SharedSession",
    "acquire_session",
    "release_session",
]
