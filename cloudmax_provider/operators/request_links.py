"""CloudmaxRequestLinksOperator: ask Report.aspx for a report's DOWNLOADLINKs, download nothing.

The first step of request -> wait -> download, three operators::

    links = CloudmaxRequestLinksOperator.partial(
        task_id="request_links", report_part_id="click_details"
    ).expand(launch_ids=[1225, 1116])
    ready = CloudmaxDownloadLinkSensor.partial(task_id="wait", deferrable=True).expand(links=links.output)
    CloudmaxDownloadLinksOperator.partial(
        task_id="download", destination="s3://lake/clicks/{window_start:%Y-%m-%d}/", one_object_per_link=True
    ).expand(links=ready.output)

The window is the one the download operator names its destination by: the run's data interval widened
to whole partitions of ``partition`` (the account's day by default), or the last complete partition(s)
before the logical date or ``run_after`` (:func:`cloudmax_provider.windows.window.report_window_of` with the
grid); explicit ``start_time``/``end_time`` are sent as given. This module imports no HTTP or SMB library.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from cloudmax_provider.api.request import ResponseMode
from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.operators._request_args import (
    REQUEST_TEMPLATE_FIELDS,
    REQUEST_TEMPLATE_RENDERERS,
    ReportRequestArgs,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class CloudmaxRequestLinksOperator(ReportRequestArgs, BaseOperator):
    """Ask for one report in ResponseMode 1 (HTTP links) or 0 (UNC paths); return its DOWNLOADLINKs.

    The task returns (to XCom) the list of links as strings, in the order Report.aspx gave them; their
    files appear later: wait with :class:`~cloudmax_provider.sensors.download_link.CloudmaxDownloadLinkSensor`
    and land them with :class:`~cloudmax_provider.operators.download_links.CloudmaxDownloadLinksOperator`.

    Example::

        CloudmaxRequestLinksOperator(
            task_id="request_links", report_part_id="click_details", launch_ids=[1225, 1116], response_mode=1
        )

    :param report_part_id: a ReportPartID (``21002``) or its catalog slug (``"click_details"``).
    :param launch_ids: LaunchIDs: an int, a list, a CSV string ``"1225,1116"`` or an XComArg.
    :param start_time: window start; default: the run's window (see above).
    :param end_time: window end; default: the run's window.
    :param window: how far back when the run has no data interval (default one day: the last complete
        partition), or the length when only one of start_time/end_time is given.
    :param partition: the grid of the run's window: ``"hour"``, ``"day"`` (default) or ``"month"`` of the
        account's clock; give the download operator the same one.
    :param columns: CustomColName, as for ``CloudmaxReportOperator``.
    :param language: ``"zh-TW"`` or ``"en"`` (report 31033 only).
    :param response_mode: 1 (HTTP links, default) or 0 (UNC paths, needs ``smb_conn_id``).
    :param extra_fields: other Report.aspx fields, passed through as given.
    :param cloudmax_conn_id: the ``cloudmax`` connection.
    :param smb_conn_id: a ``samba`` connection, checked for ResponseMode 0 (the links are read later).
    """

    template_fields: Sequence[str] = REQUEST_TEMPLATE_FIELDS
    template_fields_renderers = REQUEST_TEMPLATE_RENDERERS
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        report_part_id: int | str,
        launch_ids: Any,
        start_time: Any = None,
        end_time: Any = None,
        window: timedelta = timedelta(days=1),
        partition: str | None = None,
        columns: Any = None,
        language: str | None = None,
        response_mode: int | str = 1,
        extra_fields: dict[str, Any] | None = None,
        cloudmax_conn_id: str = "cloudmax_default",
        smb_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_part_id = report_part_id
        self.launch_ids = launch_ids
        self.start_time = start_time
        self.end_time = end_time
        self.window = window
        self.columns = columns
        self.language = language
        self.response_mode = response_mode
        self.extra_fields = extra_fields
        self.cloudmax_conn_id = cloudmax_conn_id
        self.smb_conn_id = smb_conn_id
        self.partition = partition
        if partition is not None:
            from cloudmax_provider.windows.partitions import check_partition

            check_partition(partition)
        self._validate_request_literals()
        mode = self._literal_mode()
        self._check_link_mode(mode)
        self._check_unc(mode)

    @staticmethod
    def _check_link_mode(mode: ResponseMode | None) -> None:
        if mode is not None and not mode.returns_links:
            raise CloudmaxConfigError(
                f"response_mode={int(mode)} answers the report itself; CloudmaxRequestLinksOperator asks for "
                "DOWNLOADLINKs: use response_mode 1 (HTTP) or 0 (UNC), or CloudmaxReportOperator for modes 2 and 3"
            )

    def execute(self, context: Context) -> list[str]:
        """Send the request; return its DOWNLOADLINKs."""
        from cloudmax_provider.api.request import get_timezone
        from cloudmax_provider.windows.partitions import PartitionGrid

        hook = self._hook()
        mode = ResponseMode.coerce(self.response_mode)  # type: ignore[arg-type]
        self._check_link_mode(mode)
        self._check_smb_connection(mode)
        grid = PartitionGrid.of(self.partition, get_timezone(hook.settings.timezone))
        request = self._request(hook, context, mode, grid)
        self.log.info("Requesting %s", request.describe())
        links = hook.request_links(request)
        self.log.info("%d DOWNLOADLINK(s): %s", len(links), "; ".join(links[:10]))
        return links


__all__ = ["CloudmaxRequestLinksOperator"]
