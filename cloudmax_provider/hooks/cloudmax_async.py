r"""CloudmaxAsyncLinkHook: the async I/O of DOWNLOADLINK probes (aiohttp, SMB in a thread), for the trigger.

It only reads (a ranged GET, or one SMB size read) and feeds :mod:`cloudmax_provider.links.readiness`, as the
sync hook does. A triggerer holds thousands, one per waiting trigger: so it is a small slotted object, not a
``BaseHook`` (the trigger hands it the connection's settings), with UNC state created on the first UNC probe.

Example::

    hook = CloudmaxAsyncLinkHook(api_host="api.itpison.com", allowed_link_hosts=[], smb_conn_id=None,
                                 verify=True, request_timeout=60, retry=RetrySettings())
    probe = await hook.probe_http(session, DownloadLink.parse(link))
    await hook.close()
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any

from cloudmax_provider.api.retry import RetrySettings, retry_args
from cloudmax_provider.exceptions import CloudmaxLinkError, CloudmaxTransientError
from cloudmax_provider.links.download_link import PROBE_RANGE, DownloadLink, LinkProbe, LinkState, judge_http_probe
from cloudmax_provider.links.readiness import SizeSeen, StabilityRule, judge_unc_error, next_hop

if TYPE_CHECKING:
    import aiohttp

    from cloudmax_provider.links.unc import UncReader

#: Bytes read from a link to judge it (the ranged GET asks for no more).
PROBE_BYTES = 4096


class CloudmaxAsyncLinkHook:
    """Probe DOWNLOADLINKs from an event loop; UNC observations are kept here between rounds.

    :param api_host: the Report.aspx host; http links to it are always allowed.
    :param allowed_link_hosts: other hosts whose links (and redirect targets) may be fetched.
    :param smb_conn_id: Airflow ``samba`` connection for UNC links.
    :param verify: TLS verification (bool) or a CA bundle path.
    :param request_timeout: seconds allowed for one request.
    :param retry: the connection's retry policy (network errors within one probe).
    :param stability: when a UNC file's size says it is complete.
    :param unc_seen: UNC observations made before (e.g. by the sensor's first poke).
    """

    __slots__ = (
        "allowed_link_hosts",
        "api_host",
        "readers",
        "request_timeout",
        "retry",
        "smb_conn_id",
        "stability",
        "unc_seen",
        "verify",
    )

    def __init__(
        self,
        *,
        api_host: str,
        allowed_link_hosts: list[str],
        smb_conn_id: str | None,
        verify: bool | str,
        request_timeout: float,
        retry: RetrySettings,
        stability: StabilityRule | None = None,
        unc_seen: dict[str, SizeSeen] | None = None,
    ) -> None:
        self.api_host = api_host
        self.allowed_link_hosts = allowed_link_hosts
        self.smb_conn_id = smb_conn_id
        self.verify = verify
        self.request_timeout = request_timeout
        self.retry = retry
        self.stability = stability or StabilityRule()
        self.unc_seen = unc_seen  # link -> last observation; created on the first UNC probe
        #: one reader (SMB connection) and its lock per server name; created on the first UNC probe
        self.readers: dict[str, tuple[UncReader, asyncio.Lock]] | None = None

    async def probe_http(self, session: aiohttp.ClientSession, link: DownloadLink) -> LinkProbe:
        """One ranged GET (at most :data:`PROBE_BYTES` read), judged like the sync hook does.

        Network errors are retried with the connection's policy; still failing, the link stays pending.
        """
        import aiohttp
        from tenacity import AsyncRetrying

        # a URL aiohttp cannot use, a TLS certificate we do not trust
        fatal = (aiohttp.InvalidURL, aiohttp.ClientConnectorCertificateError, ValueError)
        try:
            async for attempt in AsyncRetrying(**retry_args(self.retry)):
                with attempt:
                    try:
                        return await self._get_head(session, link.url)
                    except fatal:
                        raise
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        raise CloudmaxTransientError(f"{type(exc).__name__}: {exc}") from None
        except fatal as exc:
            error = exc
        except CloudmaxTransientError as exc:
            return LinkProbe(link.url, LinkState.PENDING, message=f"not reachable yet: {exc}"[:300])
        return LinkProbe(link.url, LinkState.FAILED, message=f"cannot be fetched: {error}"[:300])

    async def _get_head(self, session: aiohttp.ClientSession, link: str) -> LinkProbe:
        """The ranged GET, following redirects as ``next_hop`` decides."""
        import aiohttp
        from yarl import URL

        url, hops = link, 0
        while True:
            async with session.get(
                URL(url).with_user(None),  # credentials in a link are never sent
                headers={"Range": PROBE_RANGE},
                allow_redirects=False,
                auth=None,
                ssl=_ssl_arg(self.verify),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            ) as resp:
                try:
                    target = next_hop(
                        link, url, resp.status, resp.headers, hops, self.api_host, self.allowed_link_hosts
                    )
                except CloudmaxLinkError as exc:
                    return LinkProbe(link, LinkState.FAILED, message=str(exc))
                if target is None:
                    head = b""
                    while len(head) < PROBE_BYTES:
                        chunk = await resp.content.read(PROBE_BYTES - len(head))
                        if not chunk:
                            break
                        head += chunk
                    if not resp.content.at_eof():
                        resp.close()  # the server ignored Range: drop the connection, never drain the body
                    return judge_http_probe(link, resp.status, resp.headers, head)
            url, hops = target, hops + 1

    async def probe_unc(self, link: DownloadLink) -> LinkProbe:
        """One SMB size read in a thread, judged with the link's previous observation (no waiting)."""
        try:
            reader, lock = await self._reader_for(link)
            async with lock:  # one smbclient call at a time per connection
                size = await asyncio.to_thread(reader.size, link.unc_path)
        except Exception as exc:  # unreachable: "not yet"; login refused, access denied, no share ...: failed
            if self.unc_seen is not None:
                self.unc_seen.pop(link.url, None)
            return judge_unc_error(link.url, exc)
        if self.unc_seen is None:
            self.unc_seen = {}
        return self.stability.observe_into(link.url, size, time.time(), self.unc_seen)

    def recheck_at(self, links: list[str]) -> float | None:
        """The earliest epoch time a probe could find one of these UNC ``links`` ready (None: no size seen)."""
        if not self.unc_seen:
            return None
        times = [self.stability.recheck_at(self.unc_seen.get(link)) for link in links]
        return min((t for t in times if t is not None), default=None)

    async def _reader_for(self, link: DownloadLink) -> tuple[UncReader, asyncio.Lock]:
        """One reader (one SMB connection) per UNC server name, kept for the hook's life."""
        from cloudmax_provider.links.unc import SmbTarget, UncReader

        unc = link.unc_path
        key = unc.server.lower()
        readers = self.readers = self.readers if self.readers is not None else {}
        if key not in readers:
            # From a worker thread the SDK's sync connection lookup goes through the triggerer's comms.
            target = await asyncio.to_thread(SmbTarget.from_airflow_connection, self.smb_conn_id, unc)
            if key not in readers:
                reader = UncReader(target, connection_timeout=max(1.0, self.request_timeout))
                readers[key] = (reader, asyncio.Lock())
        return readers[key]

    async def close(self) -> None:
        """Close the SMB connections (the HTTP session is the caller's)."""
        readers, self.readers = list((self.readers or {}).values()), None
        for reader, lock in readers:
            async with lock:
                await asyncio.to_thread(reader.close)


@functools.lru_cache(maxsize=32)
def _ssl_arg(verify: bool | str) -> Any:
    """aiohttp's ``ssl=``: True (verify), False (don't), or a context trusting a CA bundle path (one per path)."""
    if isinstance(verify, str):
        import ssl

        return ssl.create_default_context(cafile=verify)
    return bool(verify)


__all__ = ["PROBE_BYTES", "CloudmaxAsyncLinkHook"]
