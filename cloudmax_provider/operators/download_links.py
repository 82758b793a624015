"""CloudmaxDownloadLinksOperator: stream DOWNLOADLINK files (HTTP or UNC) into an object store.

The last step of a request -> wait -> download DAG::

    links = CloudmaxRequestLinksOperator.partial(
        task_id="request_links", report_part_id="click_details"
    ).expand(launch_ids=[1225, 1116])
    ready = CloudmaxDownloadLinkSensor.partial(task_id="wait", deferrable=True).expand(links=links.output)
    CloudmaxDownloadLinksOperator.partial(
        task_id="download", destination="s3://lake/clicks/{window_start:%Y-%m-%d}/", one_object_per_link=True
    ).expand(links=ready.output)

``{window_start:<strftime>}`` / ``{window_end:<strftime>}`` in ``destination`` are filled, after Jinja,
with the run's report window on the ``partition`` grid: the window ``CloudmaxRequestLinksOperator`` requests
with the same ``partition``; a window of several partitions is refused. The links are fetched without any
API credential; hosts other than the connection's must be in its ``allowed_link_hosts`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from cloudmax_provider.utils.templating import is_literal
from cloudmax_provider.windows.window import (
    check_names_partitions,
    check_placeholders,
    fill_window_placeholders,
    has_window_placeholders,
    report_window_of,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from airflow.providers.common.compat.sdk import Context

    from cloudmax_provider.landing.lineage import LandedDataset


class CloudmaxDownloadLinksOperator(BaseOperator):
    """Write one or more DOWNLOADLINK files to ``destination`` as one CSV (header once), atomically.

    :param links: a link, a list of links, or the sensor's ``[{"link": ..., "size": ...}]`` (templated).
    :param destination: an ``ObjectStoragePath`` URI (templated); a prefix ending in ``/`` with
        ``one_object_per_link=True``.
    :param destination_conn_id: the connection of the destination's store.
    :param output_encoding: the written encoding (BOM removed); ``None`` keeps a single file's bytes.
    :param one_object_per_link: write each link to ``destination/<file name>`` (its extension the format's).
    :param output_format: ``"csv"`` (default), ``"parquet"`` or ``"jsonl"``, as for ``CloudmaxReportOperator``;
        the typed formats need ``report_part_id`` (the catalog types the columns, in the connection's timezone).
    :param report_part_id: the report the links hold (ReportPartID or slug), for typed formats.
    :param batch_size: rows per Parquet row group.
    :param compression: the Parquet codec (default ``"snappy"``).
    :param cloudmax_conn_id: the ``cloudmax`` connection (for allowed link hosts and timeouts; no
        credential is sent to a link).
    :param smb_conn_id: a ``samba`` connection for UNC links.
    :param window: the report window's length for ``{window_start}``/``{window_end}`` placeholders
        when the run's data interval is empty (default one day, as in ``CloudmaxReportOperator``).
    :param partition: the partition grid the placeholders name: ``"hour"``, ``"day"`` (default), ``"month"``.
    :param emit_asset: declare the destination (when known at parse time) as an Asset outlet: the object,
        or the prefix of the objects (:mod:`cloudmax_provider.landing.lineage`).

    It pushes the XComs every landing pushes: ``rows``, ``bytes`` and ``chunks``
    (``[{uri, rows, bytes}]``, with the window's ``start``/``end`` when ``destination`` names it).
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
        output_format: str = "csv",
        report_part_id: int | str | None = None,
        batch_size: int = 64 * 1024,
        compression: str | None = "snappy",
        cloudmax_conn_id: str = "cloudmax_default",
        smb_conn_id: str | None = None,
        window: timedelta = timedelta(days=1),
        partition: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        if emit_asset:
            from cloudmax_provider.landing.lineage import dataset_uri, declared_outlet

            uri = dataset_uri(destination, in_prefix=one_object_per_link)
            if uri is not None:
                kwargs["outlets"] = [*(kwargs.get("outlets") or []), declared_outlet(uri)]
        super().__init__(**kwargs)
        from cloudmax_provider.api.catalog import get_report_part
        from cloudmax_provider.exceptions import CloudmaxConfigError
        from cloudmax_provider.formats.writers import check_output_args
        from cloudmax_provider.landing.destinations import check_landing_args
        from cloudmax_provider.windows.partitions import check_partition, check_positive_timedelta

        check_positive_timedelta(window, "window")
        check_landing_args(
            destination, output_encoding, one_object_per_link=one_object_per_link, output_format=output_format
        )
        if partition is not None:
            check_partition(partition)
        check_placeholders(destination)
        if isinstance(destination, str) and is_literal(destination):
            check_names_partitions(destination, partition or "day")
        check_output_args(output_format, batch_size, compression)
        if output_format != "csv" and report_part_id is None:
            raise CloudmaxConfigError(
                f"output_format={output_format!r} needs report_part_id= (the catalog types the columns)"
            )
        if report_part_id is not None:
            get_report_part(report_part_id)
        self.output_format = output_format
        self.report_part_id = report_part_id
        self.batch_size = batch_size
        self.compression = compression
        self.links = links
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.output_encoding = output_encoding
        self.one_object_per_link = one_object_per_link
        self.cloudmax_conn_id = cloudmax_conn_id
        self.smb_conn_id = smb_conn_id
        self.window = window
        self.partition = partition
        self._landed: LandedDataset | None = None  # what was written, for OpenLineage

    def execute(self, context: Context) -> str | list[str]:
        from cloudmax_provider.api.catalog import get_report_part
        from cloudmax_provider.api.request import get_timezone
        from cloudmax_provider.formats.writers import OutputFormat, RowTyping
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook
        from cloudmax_provider.landing.land import land
        from cloudmax_provider.landing.lineage import record_landing
        from cloudmax_provider.links.download_link import parse_links

        hook = CloudmaxHook(self.cloudmax_conn_id, smb_conn_id=self.smb_conn_id)
        links = [link.url for link in parse_links(self.links)]
        typing = None
        if self.output_format != "csv" and self.report_part_id is not None:
            part = get_report_part(self.report_part_id)
            typing = RowTyping(part, get_timezone(hook.settings.timezone), header=part.column_names)
        output = OutputFormat(self.output_format, self.batch_size, self.compression, typing)
        destination, window = self._named(context, get_timezone(hook.settings.timezone))
        from cloudmax_provider.landing.destinations import check_destination, preflight_destination

        check_destination(  # as rendered
            destination, one_object_per_link=self.one_object_per_link, output_format=self.output_format
        )
        preflight_destination(destination, self.destination_conn_id or None)  # before any link is fetched
        landed = land(
            hook,
            hook.sources(None, links),
            destination,
            self.destination_conn_id or None,  # a template may render to ''
            self.output_encoding,
            self.log,
            links=links,
            one_object_per_link=self.one_object_per_link,
            output=output,
        )
        entries = [{**window, **entry.as_xcom()} for entry in landed]
        self._landed = record_landing(
            context, entries, destination=destination, in_prefix=self.one_object_per_link, outlets=list(self.outlets)
        )
        uris = [entry.uri for entry in landed]
        return uris if self.one_object_per_link and links else uris[0]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The report (``report_part_id``, when given) in, the dataset written out."""
        from cloudmax_provider.api.catalog import get_report_part
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook
        from cloudmax_provider.landing.lineage import dataset_uri, openlineage

        settings = CloudmaxHook(self.cloudmax_conn_id).settings
        part = get_report_part(self.report_part_id) if self.report_part_id is not None else None
        destination = dataset_uri(self.destination, in_prefix=self.one_object_per_link) or self.destination
        return openlineage(settings.api_host, part, [], settings.timezone, self._landed, destination)

    def _named(self, context: Context, tz: ZoneInfo) -> tuple[str, dict[str, str]]:
        """The destination filled with the run's window (one partition), and that window (``{}`` if unnamed)."""
        destination = str(self.destination)
        check_placeholders(destination)  # as rendered
        if not has_window_placeholders(destination):
            return destination, {}
        from cloudmax_provider.exceptions import CloudmaxConfigError
        from cloudmax_provider.windows.partitions import PartitionGrid

        grid = PartitionGrid.of(self.partition, tz)
        check_names_partitions(destination, grid.unit)
        start, end, why = report_window_of(context, self.window, grid)
        if len(grid.partitions(start, end)) != 1:
            raise CloudmaxConfigError(
                f"destination={destination!r} names one {grid.describe()} partition, but the run's window "
                f"{start} .. {end} covers {len(grid.partitions(start, end))} ({why}); the links' files cannot be "
                "cut into partitions: schedule in the account's timezone, or set partition= to the schedule's grid"
            )
        destination = fill_window_placeholders(destination, start, end)
        self.log.info("Destination named by the window %s .. %s (%s): %s", start, end, why, destination)
        return destination, {"start": start.isoformat(), "end": end.isoformat()}


__all__ = ["CloudmaxDownloadLinksOperator"]
