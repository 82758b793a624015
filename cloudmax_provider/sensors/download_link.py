r"""Wait until Report.aspx DOWNLOADLINK files exist (ResponseMode 0: UNC, 1: HTTP).

Poke mode probes with :meth:`CloudmaxHook.probe_link` (a poke never sleeps: the hook keeps each UNC file's
last size until the next poke); deferrable mode pokes once, then hands the waiting and the UNC sizes seen to
:class:`~cloudmax_provider.triggers.download_link.CloudmaxDownloadLinkTrigger`. Either way the task returns
``[{"link": ..., "size": ...}, ...]``, one per link in the order given. In ``mode="reschedule"`` nothing
survives a poke: a UNC file is ready once its last write is ``poke_interval`` old by the file server's clock
against the worker's (a poke interval above their skew).

Example::

    links = CloudmaxRequestLinksOperator(             # ResponseMode 1: links only, nothing downloaded
        task_id="request_links", report_part_id="removals", launch_ids=1225
    )
    wait = CloudmaxDownloadLinkSensor(
        task_id="wait", links=links.output, poke_interval=30, timeout=3600, deferrable=True,
    )
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from cloudmax_provider.exceptions import CloudmaxLinkError
from cloudmax_provider.links.download_link import DownloadLink, LinkProbe, LinkState, parse_links

if TYPE_CHECKING:  # imported where used: DAG files parse this module often
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook


class CloudmaxDownloadLinkSensor(BaseSensorOperator):
    """Succeed once every DOWNLOADLINK's file is ready; fail at once on 401/403/410 or an error page.

    :param links: one link, a list of links, or a list of ``{"link": ...}`` dicts (templated, so an
        upstream task's output works).
    :param cloudmax_conn_id: the ``cloudmax`` connection (its host and ``allowed_link_hosts`` decide
        which link hosts may be contacted; no API credential is ever sent to a link).
    :param smb_conn_id: an Airflow ``samba`` connection for UNC links.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("links", "cloudmax_conn_id", "smb_conn_id")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        links: Any,
        cloudmax_conn_id: str = "cloudmax_default",
        smb_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.links = links
        self.cloudmax_conn_id = cloudmax_conn_id
        self.smb_conn_id = smb_conn_id
        self.deferrable = deferrable
        self._ready: dict[str, int | None] = {}  # link -> size, remembered between pokes
        self._last: dict[str, str] = {}  # link -> why it is not ready yet

    @cached_property
    def hook(self) -> CloudmaxHook:
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook

        hook = CloudmaxHook(self.cloudmax_conn_id, smb_conn_id=self.smb_conn_id)
        if self.reschedule:  # quiet for a poke interval, as two pokes would have seen it (and above clock skew)
            hook.unc_stable_seconds = max(hook.unc_stable_seconds, float(self.poke_interval))
        return hook

    def _links(self) -> list[DownloadLink]:
        return parse_links([self.links] if isinstance(self.links, Mapping) else self.links)

    def poke(self, context: Any) -> PokeReturnValue | bool:
        links = self._links()
        for link in links:
            if link.url in self._ready:
                continue
            # reschedule mode keeps nothing between pokes: a UNC file's last-write time stands for the size seen before
            probe = self.hook.probe_link(link, stateless=self.reschedule)
            if probe.state is LinkState.FAILED:
                raise CloudmaxLinkError(f"DOWNLOADLINK {link.url}: {probe.message}")
            if probe.state is LinkState.READY:
                self._ready[link.url] = probe.size
                self.log.info("DOWNLOADLINK ready (%s bytes): %s", probe.size, link.url)
            else:
                self._last[link.url] = probe.message
        waiting = [link.url for link in links if link.url not in self._ready]
        if waiting:
            self.log.info(
                "%d of %d DOWNLOADLINK(s) not ready yet: %s",
                len(waiting),
                len(links),
                "; ".join(f"{u} ({self._last.get(u, '')})" for u in waiting[:10]),
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=[{"link": u.url, "size": self._ready[u.url]} for u in links])

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        try:
            done = self.poke(context)  # files already there never wait a poll interval
        except AirflowFailException as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping (soft_fail): {exc}") from exc
            raise
        if isinstance(done, PokeReturnValue) and done.is_done:
            return done.xcom_value
        from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger

        deadline = started + float(self.timeout)
        self.defer(
            trigger=CloudmaxDownloadLinkTrigger.for_hook(
                [link.url for link in self._links()],
                self.hook,
                poll_interval=float(self.poke_interval),
                deadline=deadline,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, deadline - time.time())),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Resume after the trigger: the ``[{"link", "size"}]`` list, or the failure it reported."""
        status = event.get("status")
        probes = [LinkProbe.from_dict(item) for item in event.get("links", [])]
        if status == "success":
            self.log.info("%s", event.get("message", ""))
            return [{"link": p.link, "size": p.size} for p in probes]
        if status == "timeout":
            pending = [p for p in probes if p.state is not LinkState.READY]
            message = f"DOWNLOADLINK(s) not ready after timeout={self.timeout}s: " + "; ".join(
                f"{p.link} ({p.message})" for p in pending[:20]
            )
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise CloudmaxLinkError(str(event.get("message") or f"the DOWNLOADLINK trigger reported {status!r}"))


__all__ = ["CloudmaxDownloadLinkSensor"]
