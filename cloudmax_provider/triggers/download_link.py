r"""Wait for DOWNLOADLINK files in the triggerer: async HTTP probes and SMB size checks.

Report.aspx (ResponseMode 0/1) answers links before their files exist. This trigger polls every
still-pending link once per ``poll_interval`` and fires exactly one event:

.. code-block:: python

    {"status": "success" | "failed" | "timeout",
     "links": [LinkProbe.to_dict(), ...],   # one per link, in the order given
     "message": "..."}

Events never hold a body. Readiness is judged by :func:`cloudmax_provider.links.judge_http_probe`
(the same code the sync hook uses) on a ranged GET of at most 4 KiB; a UNC file is ready when its
size is > 0 and the same over ``unc_stable_checks`` consecutive checks. No cookie, password or auth
header is ever sent to a link, redirects are not followed, and a link whose host is not allowed
fails at once without any request.

Example::

    trigger = CloudmaxDownloadLinkTrigger(
        links=["https://api.itpison.com/WebAPI/ReportFiles/abc/Report.csv"],
        api_host="api.itpison.com", allowed_link_hosts=[], smb_conn_id=None,
        poll_interval=30, deadline=time.time() + 3600, verify=True, request_timeout=60,
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

from cloudmax_provider.errors import CloudmaxError, CloudmaxLinkError, CloudmaxTransientError
from cloudmax_provider.links import (
    MAX_REDIRECTS,
    PROBE_RANGE,
    DownloadLink,
    LinkProbe,
    LinkState,
    check_link_allowed,
    judge_http_probe,
    redirect_target,
)
from cloudmax_provider.retry import RetrySettings, is_retryable, retry_args

if TYPE_CHECKING:
    import aiohttp

    from cloudmax_provider.connection import CloudmaxSettings
    from cloudmax_provider.unc import UncReader

#: Bytes read from a link to judge it (the ranged GET asks for no more).
PROBE_BYTES = 4096
#: Shortest pause between two rounds, whatever ``poll_interval`` says (a trigger never spins).
MIN_POLL_INTERVAL = 0.05
#: No per-trigger limit (a round probing one link).
_NO_LIMIT = contextlib.nullcontext()


class CloudmaxDownloadLinkTrigger(BaseTrigger):
    """Fire once every link is ready (``success``), one fails (``failed``) or ``deadline`` passes (``timeout``).

    :param links: DOWNLOADLINKs (http(s) URLs and/or UNC paths).
    :param api_host: the Report.aspx host; http links to it are always allowed.
    :param allowed_link_hosts: other hosts whose links may be fetched (``*.example.com`` allowed).
    :param smb_conn_id: Airflow ``samba`` connection for UNC links.
    :param poll_interval: seconds between two rounds of probes.
    :param deadline: epoch seconds; the ``timeout`` event fires at that moment (None: wait forever).
    :param verify: TLS verification (bool) or a CA bundle path.
    :param request_timeout: seconds allowed for one probe.
    :param unc_stable_checks: consecutive equal sizes (> 0) that make a UNC file ready.
    """

    #: Probes in flight at once, per trigger.
    max_concurrency: int = 50

    def __init__(
        self,
        *,
        links: list[str],
        api_host: str,
        allowed_link_hosts: list[str] | None = None,
        smb_conn_id: str | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        verify: bool | str = True,
        request_timeout: float = 60.0,
        unc_stable_checks: int = 2,
        retries: int = 1,
        retry_min_wait: float = 1.0,
        retry_max_wait: float = 30.0,
    ) -> None:
        super().__init__()
        self.links = [str(link) for link in links]
        self.api_host = str(api_host)
        self.allowed_link_hosts = [str(h) for h in allowed_link_hosts or []]
        self.smb_conn_id = smb_conn_id
        self.poll_interval = max(MIN_POLL_INTERVAL, float(poll_interval))
        self.deadline = float(deadline) if deadline is not None else None
        self.verify = verify
        self.request_timeout = float(request_timeout)
        self.unc_stable_checks = max(1, int(unc_stable_checks))
        self.retry = _retry_settings(max(1, int(retries)), float(retry_min_wait), float(retry_max_wait))

    # A triggerer holds thousands of these at once: per-trigger state is created only when needed
    # (UNC state on the first UNC probe), and all instances share one logger.
    #: UNC links: the last sizes seen, per link.
    _sizes: dict[str, list[int | None]] | None = None
    #: UNC links: one reader (SMB connection) and its lock per server name.
    _readers: dict[str, tuple[UncReader, asyncio.Lock]] | None = None

    @property
    def log(self) -> Any:
        """The class's logger, shared by every instance (LoggingMixin would make one per trigger)."""
        return type(self).logger()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "links": list(self.links),
                "api_host": self.api_host,
                "allowed_link_hosts": list(self.allowed_link_hosts),
                "smb_conn_id": self.smb_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "verify": self.verify,
                "request_timeout": self.request_timeout,
                "unc_stable_checks": self.unc_stable_checks,
                "retries": self.retry.max_attempts,
                "retry_min_wait": self.retry.min_wait,
                "retry_max_wait": self.retry.max_wait,
            },
        )

    @classmethod
    def for_connection(
        cls,
        links: list[str],
        settings: CloudmaxSettings,
        *,
        smb_conn_id: str | None,
        poll_interval: float,
        deadline: float | None,
    ) -> CloudmaxDownloadLinkTrigger:
        """The trigger for ``links`` with a ``cloudmax`` connection's hosts, TLS, timeout and retry policy."""
        return cls(
            links=list(links),
            api_host=settings.api_host,
            allowed_link_hosts=list(settings.allowed_link_hosts),
            smb_conn_id=smb_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            verify=settings.verify,
            request_timeout=settings.timeout,
            retries=settings.retry.max_attempts,
            retry_min_wait=settings.retry.min_wait,
            retry_max_wait=settings.retry.max_wait,
        )

    # ---- the event ---------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until every link is ready, one fails, or the deadline passes; then fire the one event.

        A triggerer holds thousands of these at once, so between two rounds a waiting trigger holds only
        this generator's frame, its probes, its sleep and its deadline's timer (which interrupts a probe, its
        back-off or the sleep at the exact moment): the loop is here, not in a coroutine awaited from here.
        """
        probes = {link: LinkProbe(link, LinkState.PENDING, message="not checked yet") for link in self.links}
        payload = self._refused(probes)  # refused links fail before any request is sent
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
                while (payload := await self._round(shared, probes, rounds)) is None:
                    last_waiting = self._log_waiting(probes, last_waiting)
                    await _sleep_until(loop, loop.time() + self.poll_interval)  # a real sleep, never a spin
                    rounds += 1
        except TimeoutError:
            if not scope.expired():
                raise
            payload = self._timeout(probes)
        finally:
            await asyncio.shield(release_session(shared))
            if self._readers:
                await asyncio.shield(self._close_readers())
        yield TriggerEvent(payload)

    def _payload(self, status: str, probes: dict[str, LinkProbe], message: str) -> dict[str, Any]:
        return {"status": status, "links": [probes[link].to_dict() for link in self.links], "message": message}

    def _refused(self, probes: dict[str, LinkProbe]) -> dict[str, Any] | None:
        """The ``failed`` payload for the first link that is not a link or whose host is not allowed."""
        for link in self.links:
            try:
                check_link_allowed(DownloadLink.parse(link), self.api_host, self.allowed_link_hosts)
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

    async def _round(self, shared: SharedSession, probes: dict[str, LinkProbe], rounds: int) -> dict[str, Any] | None:
        """Probe every pending link once (``probes`` gets the results); the event's payload if this round
        decides it (a link failed, or all are ready), else None."""
        pending = [link for link, p in probes.items() if p.state is LinkState.PENDING]
        if len(pending) == 1:  # the common case (one sensor, one link): no task, no gather, no semaphore
            results = [await self._probe(shared, pending[0])]
        else:
            limit = asyncio.Semaphore(self.max_concurrency)  # this trigger's probes in flight in this round
            results = await asyncio.gather(*(self._probe(shared, link, limit) for link in pending))
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

    async def _probe(self, shared: SharedSession, link: str, limit: asyncio.Semaphore | None = None) -> LinkProbe:
        # Parsed again each round (microseconds) rather than kept: a waiting trigger holds only its strings.
        parsed = DownloadLink.parse(link)
        # This trigger's own limit, then the event loop's: at most SESSION_CONNECTIONS probes of all the
        # triggers exist at once, so thousands of waiting triggers hold no request state, only a place in line.
        async with limit or _NO_LIMIT, shared.slots:
            if parsed.kind == "unc":
                return await self._probe_unc(parsed)
            return await self._probe_http(shared.session, parsed)

    async def _probe_http(self, session: aiohttp.ClientSession, link: DownloadLink) -> LinkProbe:
        """One ranged GET (at most :data:`PROBE_BYTES` read), judged like the sync hook does.

        Network errors and timeouts are retried with the provider's one policy (tenacity's
        ``AsyncRetrying`` with the connection's ``retry_args``); still failing, the link stays
        pending and the next round tries again. The deadline interrupts any back-off.
        """
        import aiohttp
        from tenacity import AsyncRetrying
        from yarl import URL

        try:
            url = URL(link.url).with_user(None)  # credentials in a link are never sent
            async for attempt in AsyncRetrying(**retry_args(self.retry)):
                with attempt:
                    try:
                        return await self._get_head(session, url, link.url)
                    except (aiohttp.InvalidURL, aiohttp.ClientConnectorCertificateError, ValueError):
                        raise
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        raise CloudmaxTransientError(f"{type(exc).__name__}: {exc}") from None
        except (aiohttp.InvalidURL, aiohttp.ClientConnectorCertificateError, ValueError) as exc:
            error: BaseException = exc  # a URL aiohttp cannot use, a TLS certificate we do not trust
        except CloudmaxTransientError as exc:
            error = exc
        if is_retryable(error):
            return LinkProbe(link.url, LinkState.PENDING, message=f"not reachable yet: {error}"[:300])
        return LinkProbe(link.url, LinkState.FAILED, message=f"cannot be fetched: {error}"[:300])

    async def _get_head(self, session: aiohttp.ClientSession, url: Any, link: str) -> LinkProbe:
        """The ranged GET, following at most MAX_REDIRECTS redirects to allowed hosts (the sync hook's rule)."""
        import aiohttp
        from yarl import URL

        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(
                url,
                headers={"Range": PROBE_RANGE},
                allow_redirects=False,
                auth=None,
                ssl=_ssl_arg(self.verify),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            ) as resp:
                try:
                    target = redirect_target(
                        str(url), resp.status, resp.headers, self.api_host, self.allowed_link_hosts
                    )
                except CloudmaxLinkError as exc:
                    return LinkProbe(link, LinkState.FAILED, message=str(exc))
                if target is not None:
                    url = URL(target).with_user(None)
                    continue
                head = b""
                while len(head) < PROBE_BYTES:
                    chunk = await resp.content.read(PROBE_BYTES - len(head))
                    if not chunk:
                        break
                    head += chunk
                if not resp.content.at_eof():
                    resp.close()  # the server ignored Range: drop the connection, never drain the body
                return judge_http_probe(link, resp.status, resp.headers, head)
        return LinkProbe(link, LinkState.FAILED, message=f"redirects more than {MAX_REDIRECTS} times")

    async def _probe_unc(self, link: DownloadLink) -> LinkProbe:
        """SMB size in a thread; ready when > 0 and equal over ``unc_stable_checks`` checks."""
        try:
            reader, lock = await self._reader_for(link)
            async with lock:  # one smbclient call at a time per connection
                size = await asyncio.to_thread(reader.size, link.url)
        except (ConnectionError, TimeoutError) as exc:  # SmbUnreachableError: may come back
            if self._sizes is not None:
                self._sizes.pop(link.url, None)
            return LinkProbe(link.url, LinkState.PENDING, message=f"SMB server not reachable: {exc}"[:300])
        except Exception as exc:  # login refused, access denied, no share, a directory, bad path
            return LinkProbe(link.url, LinkState.FAILED, message=f"{type(exc).__name__}: {exc}"[:500])
        if self._sizes is None:
            self._sizes = {}
        history = self._sizes.setdefault(link.url, [])
        history.append(size)
        del history[: -self.unc_stable_checks]
        if size is None:
            return LinkProbe(link.url, LinkState.PENDING, None, "the file does not exist yet")
        if size == 0:
            return LinkProbe(link.url, LinkState.PENDING, 0, "the file is empty so far")
        if len(history) == self.unc_stable_checks and len(set(history)) == 1:
            return LinkProbe(link.url, LinkState.READY, size, f"size stable over {self.unc_stable_checks} checks")
        return LinkProbe(link.url, LinkState.PENDING, size, f"{size} bytes so far; waiting for the size to settle")

    async def _reader_for(self, link: DownloadLink) -> tuple[UncReader, asyncio.Lock]:
        """One reader (one SMB connection) per UNC server name, kept for the trigger's life."""
        from cloudmax_provider.unc import SmbTarget, UncPath, UncReader

        unc = UncPath.parse(link.url)
        key = unc.server.lower()
        if self._readers is None:
            self._readers = {}
        readers = self._readers
        if key not in readers:
            # From a worker thread the SDK's sync connection lookup goes through the triggerer's comms.
            target = await asyncio.to_thread(SmbTarget.from_airflow_connection, self.smb_conn_id, unc)
            if key not in readers:
                reader = UncReader(target, connection_timeout=max(1.0, self.request_timeout))
                readers[key] = (reader, asyncio.Lock())
        return readers[key]

    async def _close_readers(self) -> None:
        readers, self._readers = list((self._readers or {}).values()), None
        for reader, lock in readers:
            async with lock:
                await asyncio.to_thread(reader.close)


def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> asyncio.Future[None]:
    """A future the loop resolves at its time ``when``: ``asyncio.sleep`` without the coroutine it creates.

    A waiting trigger spends its life in this await, so it holds only the future and its timer (a
    coroutine frame less: ~250 bytes, times the triggers). Cancelled (the deadline, the triggerer), the
    await ends at once and the timer later fires into a done future, which does nothing.
    """
    wake: asyncio.Future[None] = loop.create_future()
    loop.call_at(when, _wake, wake)
    return wake


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


#: Retry settings are frozen: triggers with the same ones share one object.
_retry_settings = functools.lru_cache(maxsize=64)(RetrySettings)


@functools.lru_cache(maxsize=32)
def _ssl_arg(verify: bool | str) -> Any:
    """aiohttp's ``ssl=``: True (verify), False (don't), or a context trusting a CA bundle path (one per path)."""
    if isinstance(verify, str):
        import ssl

        return ssl.create_default_context(cafile=verify)
    return bool(verify)


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

    A triggerer runs thousands of triggers on one loop: one connection pool for all of them (keep-alive
    connections reused across triggers and rounds) instead of a session, a connector and new TCP/TLS
    connections per trigger, and at most :data:`SESSION_CONNECTIONS` probes in flight over all triggers.
    Per-trigger settings (TLS verification, timeout) go with each request. The session never keeps or
    sends cookies, ignores proxy environment variables and sends no auth.
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
