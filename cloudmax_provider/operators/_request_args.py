"""The Report.aspx request arguments shared by the report and request-links operators: their parse-time
checks and the one window rule that turns them into a :class:`~cloudmax_provider.api.request.ReportRequest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cloudmax_provider.api.catalog import get_report_part
from cloudmax_provider.api.request import ResponseMode, parse_columns, parse_language, parse_launch_ids
from cloudmax_provider.exceptions import CloudmaxConfigError, CloudmaxWindowError
from cloudmax_provider.utils.templating import is_literal
from cloudmax_provider.windows.window import human_duration, report_window_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from cloudmax_provider.api.catalog import ReportPart
    from cloudmax_provider.api.request import ReportRequest
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.windows.partitions import PartitionGrid

#: The templated request arguments (an operator adds its own, e.g. ``destination``).
REQUEST_TEMPLATE_FIELDS: Sequence[str] = (
    "report_part_id",
    "launch_ids",
    "start_time",
    "end_time",
    "columns",
    "language",
    "response_mode",
    "extra_fields",
    "cloudmax_conn_id",
    "smb_conn_id",
)

#: How the UI shows the rendered request arguments that are lists or dicts.
REQUEST_TEMPLATE_RENDERERS: dict[str, str] = {"extra_fields": "json", "columns": "json", "launch_ids": "json"}


def _blank(value: Any) -> bool:
    return value in (None, "")


class ReportRequestArgs:
    """The arguments of one Report.aspx request, for an operator that sends one (a mixin before
    ``BaseOperator``). The operator assigns the arguments in its ``__init__`` (Airflow's rule for template
    fields), then calls :meth:`_validate_request_literals`."""

    task_id: str
    log: Any  # the operator's task logger (its type differs between Airflow versions)
    report_part_id: int | str
    launch_ids: Any
    start_time: Any
    end_time: Any
    window: timedelta
    columns: Any
    language: str | None
    response_mode: int | str | None
    extra_fields: dict[str, Any] | None
    cloudmax_conn_id: str
    smb_conn_id: str | None

    # ---- parse time ----------------------------------------------------------------------------

    def _validate_request_literals(self) -> ReportPart | None:
        """Check the literal request arguments, so a typo never reaches the scheduler; the report part
        when ``report_part_id`` is literal."""
        from cloudmax_provider.api.request import check_literal_window, parse_extra_fields, to_account_time
        from cloudmax_provider.windows.partitions import check_positive_timedelta

        check_positive_timedelta(self.window, "window")
        for name in ("start_time", "end_time"):
            if is_literal(getattr(self, name)):
                from zoneinfo import ZoneInfo

                to_account_time(getattr(self, name), ZoneInfo("UTC"), name)  # readable at all
        if is_literal(self.start_time) and is_literal(self.end_time):
            check_literal_window(self.start_time, self.end_time)
        part = None
        if is_literal(self.report_part_id):
            try:
                part = get_report_part(self.report_part_id)
            except CloudmaxConfigError as exc:  # a DAG import error names the file only: name the task too
                raise CloudmaxConfigError(f"task {self.task_id}: {exc}") from None
        if is_literal(self.launch_ids):
            parse_launch_ids(self.launch_ids)
        if is_literal(self.columns):
            parse_columns(self.columns, part)
        if is_literal(self.language) and part is not None:
            parse_language(self.language, part)
        if is_literal(self.extra_fields):
            parse_extra_fields(self.extra_fields)
        return part

    def _literal_mode(self) -> ResponseMode | None:
        """The ResponseMode when it is literal, else ``None``."""
        if is_literal(self.response_mode):
            return ResponseMode.coerce(self.response_mode)  # type: ignore[arg-type]
        return None

    def _check_unc(self, mode: ResponseMode | None) -> None:
        """ResponseMode 0 needs ``smb_conn_id``."""
        if mode is ResponseMode.UNC_LINK and not self.smb_conn_id:
            raise CloudmaxConfigError(
                "response_mode=0 answers UNC links (\\\\server\\share\\file), read over SMB: set smb_conn_id to "
                "an Airflow 'samba' connection (its host/port say where the share is reached), or use "
                "response_mode=1 (HTTP links) or 3 (attachment)"
            )

    # ---- run time ------------------------------------------------------------------------------

    def _check_smb_connection(self, mode: ResponseMode) -> None:
        """With ResponseMode 0, ``smb_conn_id`` (rendered) names a ``samba`` connection."""
        self._check_unc(mode)
        if mode is not ResponseMode.UNC_LINK:
            return
        from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

        try:
            conn = BaseHook.get_connection(str(self.smb_conn_id))
        except AirflowNotFoundException:
            raise CloudmaxConfigError(
                f"smb_conn_id={self.smb_conn_id!r} is not a connection; create a 'samba' connection whose "
                "host/port say where the UNC share is reached, or fix the name"
            ) from None
        if (conn.conn_type or "").lower() != "samba":
            raise CloudmaxConfigError(
                f"smb_conn_id={self.smb_conn_id!r} is a {conn.conn_type!r} connection; it must be a 'samba' "
                "connection (host/port of the share's server, login and password)"
            )

    def _hook(self) -> CloudmaxHook:
        from cloudmax_provider.hooks.cloudmax import CloudmaxHook

        return CloudmaxHook(self.cloudmax_conn_id, smb_conn_id=self.smb_conn_id)

    def resolve_window(
        self, context: Context, timezone: str, grid: PartitionGrid | None = None
    ) -> tuple[Any, Any, str]:
        """The (start, end) to send, and why: explicit arguments, else the run's window
        (:func:`cloudmax_provider.windows.window.report_window`, on ``grid`` when one is given)."""
        from cloudmax_provider.api.request import get_timezone, to_account_time

        start, end = self.start_time, self.end_time
        if not _blank(start) and not _blank(end):
            return start, end, "start_time/end_time as given"
        if not _blank(start):
            begin = to_account_time(start, get_timezone(timezone), "start_time")
            return begin, begin + self.window, f"start_time as given plus window={human_duration(self.window)}"
        if not _blank(end):
            stop = to_account_time(end, get_timezone(timezone), "end_time")
            return stop - self.window, stop, f"window={human_duration(self.window)} ending at end_time"
        return report_window_of(context, self.window, grid)

    def _request(
        self, hook: CloudmaxHook, context: Context, mode: Any, grid: PartitionGrid | None = None
    ) -> ReportRequest:
        """The rendered arguments as a :class:`ReportRequest` for the resolved window, logged."""
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if isinstance(value, str) and value and not value.strip():
                raise CloudmaxConfigError(
                    f"{name}={value!r} rendered to blank text (a template that rendered nothing?); pass a time "
                    f"or leave {name} unset to use the data interval"
                )
        start, end, why = self.resolve_window(context, hook.settings.timezone, grid)
        try:
            request = hook.build_request(
                self.report_part_id,
                self.launch_ids,
                start,
                end,
                columns=self.columns,
                language=self.language,
                response_mode=mode,
                extra_fields=self.extra_fields,
            )
        except CloudmaxWindowError as exc:
            dis, die = context.get("data_interval_start"), context.get("data_interval_end")
            if dis is not None and dis == die and not _blank(self.start_time):
                raise CloudmaxWindowError(
                    f"{exc}. The run's data interval is empty ({dis} .. {die}): in Airflow 3 a schedule like "
                    "'@daily' is a CronTriggerTimetable, so data_interval_start == data_interval_end. Leave "
                    "start_time/end_time unset (the operator then asks for window= ending at the run's time), or "
                    "schedule with CronDataIntervalTimetable('0 0 * * *', timezone='UTC') for real intervals"
                ) from None
            raise
        self.log.info("Window: %s .. %s (%s); from %s", request.start, request.end, request.start.tzinfo, why)
        return request


__all__ = ["REQUEST_TEMPLATE_FIELDS", "ReportRequestArgs"]
