"""CloudmaxDownloadLinksOperator: stream DOWNLOADLINK files (HTTP or UNC) into an object store.

The last step of a request -> wait -> download DAG::

    links = request_links.expand(launch_id=[1225, 1116])          # hook.request_links in a @task
    ready = CloudmaxDownloadLinkSensor.partial(task_id="wait", deferrable=True).expand(links=links)
    CloudmaxDownloadLinksOperator.partial(
        task_id="download", destination="s3://lake/clicks/{window_start:%Y-%m-%d}/", one_object_per_link=True
    ).expand(links=ready.output)

``{window_start:<strftime>}`` / ``{window_end:<strftime>}`` in ``destination`` are filled, after Jinja,
with the run's report window (:func:`cloudmax_provider.windows.report_window`, ``window`` long, in the
account's timezone): the same window a ``request_links`` task computes with ``report_window_of(context)``.

The links are fetched without any API credential; hosts other than the connection's must be in
its ``allowed_link_hosts`` extra. Like every operator here, it imports no HTTP/SMB library at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from cloudmax_provider.windows import fill_window_placeholders, has_window_placeholders, report_window_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudmaxDownloadLinksOperator(BaseOperator):
    """Write one or more DOWNLOADLINK files to ``destination`` as one CSV (header once), atomically.

    :param links: a link, a list of links, or the sensor's ``[{"link": ..., "size": ...}]`` (templated).
    :param destination: an ``ObjectStoragePath`` URI (templated); a prefix ending in ``/`` with
        ``one_object_per_link=True``.
    :param destination_conn_id: the connection of the destination's store.
    :param output_encoding: the written encoding (BOM removed); ``None`` keeps a single file's bytes.
    :param one_object_per_link: write each link to ``destination/<file name>``.
    :param cloudmax_conn_id: the ``cloudmax`` connection (for allowed link hosts and timeouts; no
        credential is sent to a link).
    :param smb_conn_id: a ``samba`` connection for UNC links.
    :param window: the report window's length for ``{window_start}``/``{window_end}`` placeholders
        when the run's data interval is empty (default one day, as in ``CloudmaxReportOperator``).
    """

    template_fields: Sequence[str] = ("links", "destination", "destination_conn_id", "cloudmax_conn_id", "smb_conn_id")

    def __init__(
        self,
        *,
        links: Any,
        destination: str,
        destination_conn_id: str | None = None,
        output_encoding: str | None = "utf-8",
        one_object_per_link: bool = False,
        cloudmax_conn_id: str = "cloudmax_default",
        smb_conn_id: str | None = None,
        window: timedelta = timedelta(days=1),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(window, timedelta) or window <= timedelta(0):
            from cloudmax_provider.errors import CloudmaxConfigError

            raise CloudmaxConfigError(f"window={window!r} must be a positive timedelta, e.g. timedelta(days=1)")
        from cloudmax_provider.transfer import check_landing_args

        check_landing_args(destination, output_encoding, one_object_per_link=one_object_per_link)
        self.links = links
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.output_encoding = output_encoding
        self.one_object_per_link = one_object_per_link
        self.cloudmax_conn_id = cloudmax_conn_id
        self.smb_conn_id = smb_conn_id
        self.window = window

    def execute(self, context: Context) -> str | list[str]:
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook
        from cloudmax_provider.links import parse_links
        from cloudmax_provider.transfer import land

        hook = CloudmaxHook(self.cloudmax_conn_id, smb_conn_id=self.smb_conn_id)
        links = [link.url for link in parse_links(self.links)]
        destination = self.destination
        if has_window_placeholders(destination):
            from cloudmax_provider.request import get_timezone, to_account_time

            start, end, why = report_window_of(context, self.window)
            tz = get_timezone(hook.settings.timezone)
            start, end = to_account_time(start, tz, "window_start"), to_account_time(end, tz, "window_end")
            destination = fill_window_placeholders(destination, start, end)
            self.log.info("Destination named by the window %s .. %s (%s): %s", start, end, why, destination)
        return land(
            context,
            hook,
            hook.sources(None, links),
            destination,
            self.destination_conn_id or None,  # a template may render to ''
            self.output_encoding,
            self.log,
            links=links,
            one_object_per_link=self.one_object_per_link,
        )
