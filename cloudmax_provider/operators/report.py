"""CloudmaxReportOperator: one ReportPartID for a window, into XCom or any object store.

Example::

    CloudmaxReportOperator(
        task_id="removals",
        report_part_id="removals",            # or 31033
        launch_ids=[1225, 1116],
        destination="s3://lake/cloudmax/removals/{window_start:%Y-%m-%d}.csv",
        destination_conn_id="aws_default",
    )

The window is :func:`cloudmax_provider.windows.window.report_window`: a non-empty data interval; else
``window`` (one day) ending at the logical date; else ending at the run's ``run_after``. The log says which.
``{window_start:%Y-%m-%d}`` / ``{window_end:...}`` in ``destination`` are filled with the window requested
(in the account's timezone) after Jinja; the filled name is returned and logged, never written back to
``destination``. With ResponseMode 0/1 this is the one-task form of request -> wait -> download.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from cloudmax_provider.api.catalog import get_report_part
from cloudmax_provider.api.request import ResponseMode
from cloudmax_provider.exceptions import CloudmaxConfigError, CloudmaxLinkError
from cloudmax_provider.formats.cells import to_jsonable
from cloudmax_provider.formats.writers import DEFAULT_BATCH_SIZE
from cloudmax_provider.landing.iceberg import is_iceberg
from cloudmax_provider.operators._request_args import (
    REQUEST_TEMPLATE_FIELDS,
    REQUEST_TEMPLATE_RENDERERS,
    ReportRequestArgs,
)
from cloudmax_provider.utils.templating import is_literal
from cloudmax_provider.windows.window import (
    check_names_partitions,
    check_placeholders,
    fill_window_placeholders,
    has_window_placeholders,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from cloudmax_provider.api.request import ReportRequest
    from cloudmax_provider.formats.writers import OutputFormat
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.landing.lineage import LandedDataset
    from cloudmax_provider.windows.partitions import PartitionGrid


class CloudmaxReportOperator(ReportRequestArgs, BaseOperator):
    """Land one Cloudmax report for a time window.

    What the task returns (its ``return_value`` XCom), one type per landing:

    * no ``destination``: the report's typed rows, a list of dicts (at most ``max_xcom_rows``), whatever
      the ResponseMode, with or without ``chunk``;
    * a ``destination`` naming one object: that object's URI, a string (``{window_start:...}`` filled);
    * ``one_object_per_link=True``: a list of URIs, one per DOWNLOADLINK;
    * ``chunk=``: a list of URIs, one per partition; a destination with ``{window_start:...}`` whose window
      covers several partitions (ResponseMode 2/3) likewise returns one URI per partition (one: a string).

    With a destination it also pushes ``rows`` and ``bytes`` (totals) and ``chunks``
    (``[{start, end, uri, rows, bytes}]``, one per object); with ``lookback``, ``relanded``
    (``[{start, end, rows, rows_before, rows_changed}]``, one per partition the lookback re-landed).

    :param report_part_id: a ReportPartID (``31033``) or its catalog slug (``"removals"``).
    :param launch_ids: LaunchIDs: an int, a list, a CSV string ``"1225,1116"`` or an XComArg.
    :param start_time: window start (datetime or string); default: see
        :func:`~cloudmax_provider.windows.window.report_window`.
    :param end_time: window end; default: see ``report_window``.
    :param window: the window's length when the data interval is empty (``"@daily"``, manual and
        asset-triggered runs) or when only one of start_time/end_time is given. Default one day. When the
        destination names partitions, it is how far back: the last complete partitions covering it.
    :param columns: CustomColName: column names, ``(name, new_name)`` pairs or a dict (at most 99).
    :param language: ``"zh-TW"`` or ``"en"`` (ReportCharacterSetID; report 31033 only).
    :param response_mode: 0 (UNC link), 1 (HTTP link), 2 (CSV body), 3 (attachment). Default 2
        into XCom, 3 into a destination.
    :param destination: ``None``: typed rows into XCom (at most ``max_xcom_rows``). Otherwise an
        ``ObjectStoragePath`` URI (``s3://``, ``gs://``, ``file://`` ...) the report is streamed to,
        atomically. With ``one_object_per_link=True`` it is a prefix ending in ``/``. ``"iceberg://<namespace>.<table>"``
        lands in an Iceberg table (``destination_conn_id``: an ``iceberg`` connection), replacing the run's
        partitions in one commit; a summary report (campaign state) is upserted on its row key
        (``docs/lake-tables.md``). ``{window_start:<strftime>}`` and ``{window_end:<strftime>}`` are filled
        with the requested window in the account's timezone (after Jinja), e.g. ``"s3://lake/opens/{window_start:%Y-%m-%d}.csv"``.
    :param destination_conn_id: the connection for the destination's store (e.g. ``aws_default``).
    :param output_encoding: the written file's encoding (BOM removed); ``None`` keeps the bytes as served.
    :param one_object_per_link: with several DOWNLOADLINKs, write one object per link instead of one
        merged report with the header once.
    :param output_format: ``"csv"`` (the report as served), ``"parquet"`` (typed columns from the catalog,
        written in row groups; needs the ``[parquet]`` extra) or ``"jsonl"`` (one JSON object per row, typed as
        XCom rows are). Only with a destination.
    :param batch_size: rows per Parquet row group (and the most rows held in memory while writing).
    :param compression: the Parquet codec: ``"snappy"`` (default), ``"zstd"``, ``"gzip"``, ``"none"`` ...
    :param partition: the partition grid of a destination that names partitions (``{window_start:...}`` or
        ``chunk=``): ``"hour"``, ``"day"`` (default) or ``"month"`` of the account's clock (the connection's
        ``timezone``). Such a destination gets one object per partition; a run requests whole partitions
        only, widening its window to the partitions it touches (logged), and a run without a data interval
        takes the last complete partition(s) before its logical date or ``run_after``.
        See ``docs/partitions.md`` and :mod:`cloudmax_provider.windows.partitions`.
    :param chunk: ``True`` (or ``timedelta(days=1)`` / ``timedelta(hours=1)``, the day/hour grid): the window
        is requested partition by partition, one request and one object each, named by its window under
        ``destination`` (a prefix ending in ``/``); a retry skips the partitions an earlier try of the run
        landed. See :mod:`cloudmax_provider.windows.chunks`.
    :param schema_change: what a served header that differs from the expected columns (``columns=``, else the
        catalog's) does, found before anything lands: ``"evolve"`` (default: land the columns as served, logged
        and in the ``chunks`` XCom), ``"fail"``, or ``"ignore"`` (land exactly the expected columns; not with CSV,
        which lands bytes as served). See :mod:`cloudmax_provider.api.schema`.
    :param lookback: a number of partitions (a positive int, e.g. ``3``: the 3 partitions of the ``partition=``
        grid before the run's own; months too) or a ``timedelta`` of whole partitions (e.g. ``timedelta(days=3)``
        on the day grid): each run also re-lands that many partitions before its window, for events that arrive
        late. Only with a destination that names partitions, ``chunk=`` or an Iceberg table (each partition is
        replaced whole, so this is safe). The log and the ``relanded`` XCom say which partitions were re-landed
        and how their row counts changed. See ``docs/partitions.md``.
    :param resume: with ``chunk``, keep a manifest beside the chunks so retries resume (default True).
    :param max_concurrent_requests: how many partitions of a ``chunk=`` (or ``{window_start:...}``) window are
        requested and landed at once, each its own request, atomic object and manifest entry (1 to 16; default 1,
        one request at a time). The account's limits are the account's, shared by all its tasks, and an
        ErrorCode 100 can lock it: the first 100 stops every request of the task. See ``docs/partitions.md``.
    :param max_xcom_rows: the most rows pushed to XCom; past it the task fails and says to set destination.
    :param cloudmax_conn_id: the ``cloudmax`` connection.
    :param smb_conn_id: a ``samba`` connection for UNC DOWNLOADLINKs (ResponseMode 0).
    :param deferrable: with ResponseMode 0/1, links whose files are not ready yet are waited for in the
        triggerer; ``False`` waits in the worker slot, checking every ``poll_interval`` seconds (default:
        ``[operators] default_deferrable``, as every Airflow operator). To wait in reschedule mode, use
        ``CloudmaxRequestLinksOperator`` -> ``CloudmaxDownloadLinkSensor`` -> ``CloudmaxDownloadLinksOperator``.
    :param poll_interval: seconds between the trigger's checks of DOWNLOADLINK files.
    :param link_timeout: seconds to wait for DOWNLOADLINK files before failing.
    :param emit_asset: declare the destination (when known at parse time) as an Asset outlet.
    :param extra_fields: other Report.aspx fields, passed through as given.
    """

    template_fields: Sequence[str] = (*REQUEST_TEMPLATE_FIELDS, "destination", "destination_conn_id")
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
        columns: Any = None,
        language: str | None = None,
        response_mode: int | str | None = None,
        destination: str | None = None,
        destination_conn_id: str | None = None,
        output_encoding: str | None = "utf-8",
        one_object_per_link: bool = False,
        output_format: str = "csv",
        batch_size: int = DEFAULT_BATCH_SIZE,
        compression: str | None = "snappy",
        chunk: timedelta | bool | None = None,
        partition: str | None = None,
        lookback: int | timedelta | None = None,
        schema_change: str = "evolve",
        resume: bool = True,
        max_concurrent_requests: int = 1,
        max_xcom_rows: int = 5000,
        cloudmax_conn_id: str = "cloudmax_default",
        smb_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        link_timeout: float = 6 * 3600.0,
        emit_asset: bool = True,
        extra_fields: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if emit_asset and destination is not None:
            from cloudmax_provider.landing.lineage import dataset_uri, declared_outlet

            uri = dataset_uri(destination, in_prefix=one_object_per_link or chunk not in (None, False))
            if uri is not None:  # the object, or the prefix of the objects (one dataset)
                kwargs["outlets"] = [*(kwargs.get("outlets") or []), declared_outlet(uri)]
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
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.output_encoding = output_encoding
        self.one_object_per_link = one_object_per_link
        self.output_format = output_format
        self.batch_size = batch_size
        self.compression = compression
        self.chunk = chunk
        self.partition = partition
        self.lookback = lookback
        self.schema_change = schema_change
        self.resume = resume
        self.max_concurrent_requests = max_concurrent_requests
        self.max_xcom_rows = max_xcom_rows
        self._landed: LandedDataset | None = None  # what was written, for OpenLineage
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.link_timeout = link_timeout
        self._validate_literals()

    # ---- parse-time validation ----------------------------------------------------------------

    def _validate_literals(self) -> None:
        """Check what is known at parse time, so a typo never reaches the scheduler."""
        if isinstance(self.max_xcom_rows, bool) or not isinstance(self.max_xcom_rows, int) or self.max_xcom_rows < 0:
            raise CloudmaxConfigError(f"max_xcom_rows={self.max_xcom_rows!r} must be an int >= 0, e.g. 5000")
        for name in ("poll_interval", "link_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise CloudmaxConfigError(f"{name}={value!r} must be a number of seconds > 0")
        self._validate_request_literals()
        mode = self._literal_mode()
        if mode is None and self.response_mode is None and self.destination is not None:
            mode = ResponseMode.ATTACHMENT
        self._check_mode(mode)
        from cloudmax_provider.landing.destinations import check_landing_args

        self._validate_output()
        self._validate_concurrency()
        check_landing_args(
            self.destination,
            self.output_encoding,
            one_object_per_link=self._lands_in_prefix,
            output_format=self.output_format,
        )

    def _check_mode(self, mode: ResponseMode | None) -> None:
        """ResponseMode against the arguments it needs (parse time when literal, else at execute)."""
        self._check_unc(mode)
        if self.one_object_per_link:
            if self.destination is None:
                raise CloudmaxConfigError("one_object_per_link=True needs a destination prefix ending in '/'")
            if mode is not None and not mode.returns_links:
                raise CloudmaxConfigError(
                    f"one_object_per_link=True needs response_mode 0 or 1 (DOWNLOADLINKs), not {int(mode)}; "
                    "ResponseMode 2 and 3 answer one report"
                )

    def _check_rendered(self, request: ReportRequest) -> None:
        """Checks of rendered arguments and of the connections they name, before anything is sent."""
        self._check_mode(request.response_mode)
        self._check_smb_connection(request.response_mode)
        if self.destination is not None:
            from cloudmax_provider.landing.destinations import check_destination, preflight_destination

            self._check_chunk_destination(self.destination)
            check_destination(
                self.destination, one_object_per_link=self._lands_in_prefix, output_format=self.output_format
            )
            preflight_destination(self.destination, self.destination_conn_id)

    def _validate_output(self) -> None:
        """output_format, batch_size, compression and chunk: each alone, then how they combine."""
        from cloudmax_provider.api.schema import SchemaChange
        from cloudmax_provider.formats.writers import check_output_args

        check_output_args(self.output_format, self.batch_size, self.compression)
        ignore = SchemaChange.coerce(self.schema_change) is SchemaChange.IGNORE
        if ignore and self.output_format == "csv" and self.destination is not None and not is_iceberg(self.destination):
            raise CloudmaxConfigError(
                "schema_change='ignore' lands exactly the expected columns, but output_format='csv' lands the bytes "
                "as served; set output_format='parquet' or 'jsonl', or schema_change='evolve' or 'fail'"
            )
        if self.output_format != "csv" and self.destination is None:
            raise CloudmaxConfigError(
                f"output_format={self.output_format!r} needs a destination; XCom rows are typed already"
            )
        self._validate_partitions()
        if is_iceberg(self.destination):
            self._validate_iceberg()
        if self.chunk is None:
            return
        if self.one_object_per_link:
            raise CloudmaxConfigError("chunk= and one_object_per_link=True do not combine; use one of them")
        mode = self._literal_mode()
        if mode is not None and mode.returns_links:
            raise CloudmaxConfigError("chunk= needs response_mode 2 or 3 (the report as the answer), not a link mode")
        if is_literal(self.destination):
            self._check_chunk_destination(self.destination)

    def _validate_concurrency(self) -> None:
        """``max_concurrent_requests``: 1..16, and above 1 only where a window is landed partition by partition."""
        value = self.max_concurrent_requests
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
            raise CloudmaxConfigError(
                f"max_concurrent_requests={value!r} must be an int from 1 to 16, e.g. 4: the account's limits are "
                "shared by all its tasks and repeated failures (ErrorCode 100) can lock it, so one task holds at "
                "most 16 requests at once"
            )
        if value == 1:
            return
        where = "needs a destination that names partitions: a prefix ending in '/' with chunk=, or {window_start:...}"
        if self.destination is None or is_iceberg(self.destination):
            raise CloudmaxConfigError(
                f"max_concurrent_requests={value} {where} (destination={self.destination!r}); "
                "set max_concurrent_requests=1 or use such a destination"
            )
        if is_literal(self.destination) and not self._names_partitions:
            raise CloudmaxConfigError(
                f"max_concurrent_requests={value} {where}; destination={self.destination!r} is one object "
                "(one request): add chunk=True, or set max_concurrent_requests=1"
            )

    def _validate_iceberg(self) -> None:
        """An Iceberg table: its connection, no chunk=, no link modes."""
        from cloudmax_provider.landing.iceberg import check_iceberg_args

        if self.destination_conn_id is None or is_literal(self.destination_conn_id):
            check_iceberg_args(self.destination, self.destination_conn_id)
        if self.chunk is not None or self.one_object_per_link:
            raise CloudmaxConfigError(
                f"destination={self.destination!r} is an Iceberg table, which each run lands partition by partition "
                "in one commit; remove chunk= and one_object_per_link"
            )
        if self.output_format not in ("csv", "parquet"):  # "csv" is the default: the data files are Parquet
            raise CloudmaxConfigError(
                f"output_format={self.output_format!r}: an Iceberg table's data files are Parquet; leave output_format "
                "unset (or 'parquet')"
            )
        mode = self._literal_mode()
        if mode is not None and mode.returns_links:
            raise CloudmaxConfigError(
                f"destination={self.destination!r} is an Iceberg table: it needs response_mode 2 or 3 (the report "
                f"as the answer, one request per partition), not {int(mode)}"
            )

    def _validate_partitions(self) -> None:
        """The grid, ``chunk`` as one partition of it, placeholders naming each partition apart, ``lookback``."""
        from cloudmax_provider.windows.partitions import check_lookback, check_partition, partition_of_chunk

        if self.chunk is not None and self.chunk is not False:
            self.partition = partition_of_chunk(self.chunk, self.partition)
        elif self.chunk is False:
            self.chunk = None
        elif self.partition is not None:
            check_partition(self.partition)
        check_placeholders(self.destination)  # Jinja's {{ }} skipped; checked again once rendered
        if is_literal(self.destination):
            check_names_partitions(self.destination, self.partition or "day")
        check_lookback(self.lookback, self.partition or "day")
        if self.lookback is not None and is_literal(self.destination) and not self._names_partitions:
            raise CloudmaxConfigError(
                f"lookback={self.lookback!r} needs a destination whose partitions are replaced whole: one naming "
                "{window_start:...}, a prefix with chunk=, or an Iceberg table 'iceberg://<namespace>.<table>'; "
                f"destination={self.destination!r} is not one (remove lookback)"
            )

    @property
    def _names_partitions(self) -> bool:
        """The destination holds one object per partition (chunk=, or placeholders named by the window)."""
        return self.chunk is not None or has_window_placeholders(self.destination) or is_iceberg(self.destination)

    def _grid(self, timezone: str) -> PartitionGrid:
        from cloudmax_provider.api.request import get_timezone
        from cloudmax_provider.windows.partitions import PartitionGrid

        return PartitionGrid.of(self.partition, get_timezone(timezone))

    @property
    def _lands_in_prefix(self) -> bool:
        """The destination is a prefix ending in '/' (one object per link, or per chunk)."""
        return self.one_object_per_link or self.chunk is not None

    def _check_chunk_destination(self, destination: Any) -> None:
        if self.chunk is not None and destination is not None and not str(destination).endswith("/"):
            raise CloudmaxConfigError(
                f"destination={destination!r}: with chunk= it is a prefix ending in '/', "
                "under which each chunk is named by its window"
            )

    # ---- the request ---------------------------------------------------------------------------

    def build_request(self, hook: CloudmaxHook, context: Context) -> ReportRequest:
        """The request of this run, widened to whole partitions when the destination names them."""
        check_placeholders(self.destination)  # as rendered
        grid = self._grid(hook.settings.timezone) if self._names_partitions else None
        if grid is not None:
            check_names_partitions(self.destination, grid.unit)
        mode = self.response_mode
        if mode in (None, ""):
            mode = ResponseMode.CSV_BODY if self.destination is None else ResponseMode.ATTACHMENT
        request = self._request(hook, context, mode, grid)
        if grid is not None:
            request = self._widen(request, grid)
            request = self._look_back(request, grid)
        return request

    def _look_back(self, request: ReportRequest, grid: PartitionGrid) -> ReportRequest:
        """``lookback``: the window widened backwards by whole partitions, so late events are landed too."""
        count = self._lookback_count(grid)
        if not count:
            return request
        start = grid.back(request.start, count)
        self.log.info(
            "lookback=%s: also re-landing the %d %s partition(s) %s .. %s",
            self.lookback,
            count,
            grid.describe(),
            start,
            request.start,
        )
        return dataclasses.replace(request, start=start)

    def _widen(self, request: ReportRequest, grid: PartitionGrid) -> ReportRequest:
        """The request widened to the whole partitions its window touches (an object holds a whole partition)."""
        start, end = grid.widen(request.start, request.end)
        if (start, end) != (request.start, request.end):
            self.log.warning(
                "Window widened to whole %s partitions: %s .. %s instead of %s .. %s (each object under the "
                "destination holds one whole partition; set partition= or schedule in the account's timezone "
                "to request exactly your window)",
                grid.describe(),
                start,
                end,
                request.start,
                request.end,
            )
            request = dataclasses.replace(request, start=start, end=end)
        from datetime import datetime

        if end > datetime.now(grid.tz):
            self.log.warning(
                "The partition ending %s is not complete yet: it is landed with the rows so far, and the next run "
                "whose window touches it rewrites it whole",
                end,
            )
        return request

    def _single_destination(self, hook: CloudmaxHook, request: ReportRequest) -> str | None:
        """The destination of a one-object landing, placeholders filled by the window's one partition."""
        if self.destination is None or not has_window_placeholders(self.destination):
            return self.destination
        grid = self._grid(hook.settings.timezone)
        if len(grid.partitions(request.start, request.end)) > 1:
            raise CloudmaxConfigError(
                f"destination={self.destination!r} names one {grid.describe()} partition, but the window "
                f"{request.start} .. {request.end} covers several and response_mode {int(request.response_mode)} "
                "answers the whole window at once; use response_mode 2 or 3 (one request per partition), or "
                "schedule in the account's timezone so that a run is one partition"
            )
        destination = fill_window_placeholders(str(self.destination), request.start, request.end)
        self.log.info("Destination named by the window: %s", destination)
        return destination

    # ---- execution ---------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Request the report and land it (see the class docstring for what is returned)."""
        started = time.time()
        hook = self._hook()
        request = self.build_request(hook, context)
        self._check_rendered(request)
        self.log.info("Requesting %s", request.describe())
        if is_iceberg(self.destination):
            return self._land_iceberg(context, hook, request)
        if self.chunk is not None or (self._names_partitions and not request.response_mode.returns_links):
            return self._land_chunks(context, hook, request)
        if not request.response_mode.returns_links:
            return self._land(context, hook, request, None, self.destination)
        destination = self._single_destination(hook, request)
        links = hook.request_links(request)
        pending = self._not_ready(hook, links)
        if pending and self.deferrable:
            self._defer_until_ready(hook, links, len(pending), deadline=started + self.link_timeout)
        if pending:
            self._wait_in_worker(hook, links, deadline=started + self.link_timeout)
        return self._land(context, hook, request, links, destination)

    def _not_ready(self, hook: CloudmaxHook, links: list[str]) -> list[str]:
        """The links whose files are not there yet (one check each); a failed link fails the task."""
        from cloudmax_provider.links.download_link import LinkState

        pending = []
        for link in links:
            probe = hook.probe_link(link)
            if probe.state is LinkState.FAILED:
                raise CloudmaxLinkError(f"DOWNLOADLINK {link}: {probe.message}")
            if probe.state is not LinkState.READY:
                pending.append(link)
        return pending

    def _wait_in_worker(self, hook: CloudmaxHook, links: list[str], deadline: float) -> None:
        """``deferrable=False``: check the links every ``poll_interval`` seconds until every file is ready."""
        while pending := self._not_ready(hook, links):
            if time.time() + self.poll_interval > deadline:
                raise CloudmaxLinkError(
                    f"{len(pending)} DOWNLOADLINK file(s) not ready after link_timeout={self.link_timeout}s: "
                    + "; ".join(pending[:10])
                )
            self.log.info("%d DOWNLOADLINK file(s) not ready; next check in %ss", len(pending), self.poll_interval)
            time.sleep(self.poll_interval)

    def _defer_until_ready(self, hook: CloudmaxHook, links: list[str], pending: int, deadline: float) -> None:
        """Hand the waiting to the trigger; :meth:`execute_complete` lands the links once it reports."""
        from cloudmax_provider.triggers.download_link import CloudmaxDownloadLinkTrigger

        self.log.info("Deferring until %d DOWNLOADLINK file(s) exist", pending)
        self.defer(
            # the connection ids and the sizes this check saw: the trigger reads the connection when it runs
            trigger=CloudmaxDownloadLinkTrigger.for_hook(
                links, hook, poll_interval=self.poll_interval, deadline=deadline
            ),
            method_name="execute_complete",
            kwargs={"links": list(links)},
        )

    def execute_complete(self, context: Context, event: dict[str, Any], links: list[str] | None = None) -> Any:
        """Resume after the trigger: download the links it found ready (Report.aspx is not asked again)."""
        status = event.get("status")
        if status != "success":
            raise CloudmaxLinkError(f"Waiting for DOWNLOADLINK files ended with {status}: {event.get('message')}")
        hook = self._hook()
        request = self.build_request(hook, context)
        destination = self._single_destination(hook, request)
        found = links or [str(p["link"]) for p in event.get("links", [])]
        return self._land(context, hook, request, found, destination)

    # ---- landing -----------------------------------------------------------------------------

    def _output(self, hook: CloudmaxHook, request: ReportRequest) -> OutputFormat:
        from cloudmax_provider.api.request import get_timezone
        from cloudmax_provider.formats.writers import OutputFormat, RowTyping

        typing = RowTyping.for_request(request, get_timezone(hook.settings.timezone), self.schema_change)
        return OutputFormat(self.output_format, self.batch_size, self.compression, typing)

    def _land(
        self,
        context: Context,
        hook: CloudmaxHook,
        request: ReportRequest,
        links: list[str] | None,
        destination: str | None,
    ) -> Any:
        """Rows into XCom (no destination), else one object (its URI) or one per link (their URIs)."""
        if destination is None:
            rows = hook.get_rows(request, max_rows=self.max_xcom_rows, links=links, schema_change=self.schema_change)
            self.log.info("Pushing %d typed rows to XCom", len(rows))
            return [to_jsonable(row) for row in rows]
        from cloudmax_provider.landing.land import land

        conn_id = self.destination_conn_id or None  # a template may render to ''
        per_link = self.one_object_per_link and bool(links)
        each = land(
            hook,
            hook.sources(request, links),
            destination,
            conn_id,
            self.output_encoding,
            self.log,
            links=links,
            one_object_per_link=per_link,
            output=self._output(hook, request),
        )
        window = {"start": request.start.isoformat(), "end": request.end.isoformat()}
        uris = self._landed_in(context, [{**window, **entry.as_xcom()} for entry in each])
        return uris if per_link else destination

    def _landed_in(self, context: Context, landed: list[dict[str, Any]], lookback: int = 0) -> list[str]:
        """:func:`~cloudmax_provider.landing.lineage.record_landing` of ``landed``; the URIs landed."""
        from cloudmax_provider.landing.lineage import record_landing

        self._landed = record_landing(
            context,
            landed,
            destination=self.destination,
            in_prefix=self._lands_in_prefix,
            outlets=list(self.outlets),
            lookback=lookback,
            logger=self.log,
        )
        return [entry["uri"] for entry in landed]

    def _land_iceberg(self, context: Context, hook: CloudmaxHook, request: ReportRequest) -> str:
        """The window's partitions replaced in the Iceberg table in one commit (campaign state: upserted)."""
        from cloudmax_provider.landing.iceberg import land_request
        from cloudmax_provider.landing.iceberg_state import land_state

        if request.response_mode.returns_links:
            raise CloudmaxConfigError("an Iceberg destination needs response_mode 2 or 3, not a link mode")
        options = {
            "destination": str(self.destination),
            "conn_id": self.destination_conn_id,
            "batch_size": self.batch_size,
            "schema_change": self.schema_change,
            "logger": self.log,
        }
        grid = self._grid(hook.settings.timezone)
        if request.report_part.is_state:  # one upsert of the whole window: no partitions to re-land
            self._landed_in(context, land_state(context, hook, request, grid, options))
        else:
            self._landed_in(context, land_request(context, hook, request, grid, options), self._lookback_count(grid))
        return str(self.destination)

    def _lookback_count(self, grid: PartitionGrid) -> int:
        """How many partitions before the run's own ``lookback`` re-lands (0 without one)."""
        from cloudmax_provider.windows.partitions import check_lookback

        return check_lookback(self.lookback, grid.unit)

    def _land_chunks(self, context: Context, hook: CloudmaxHook, request: ReportRequest) -> Any:
        """One request per partition: typed rows into XCom, or one object per partition."""
        from cloudmax_provider.landing.land import land_chunks
        from cloudmax_provider.windows.chunks import chunk_object_name, manifest_prefix

        if request.response_mode.returns_links:
            raise CloudmaxConfigError("chunk= needs response_mode 2 or 3 (the report as the answer), not a link mode")
        grid = self._grid(hook.settings.timezone)
        partitions = grid.partitions(request.start, request.end)
        if self.destination is None:
            rows: list[dict[str, Any]] = []
            for start, end in partitions:
                sub = dataclasses.replace(request, start=start, end=end)
                rows += hook.get_rows(sub, max_rows=self.max_xcom_rows - len(rows), schema_change=self.schema_change)
            self.log.info("Pushing %d typed rows to XCom", len(rows))
            return [to_jsonable(row) for row in rows]
        output = self._output(hook, request)
        template = str(self.destination)
        chunked = self.chunk is not None

        def name_of(start: Any, end: Any) -> str:
            name = fill_window_placeholders(template, start, end)
            return name + chunk_object_name(start, end, output.extension) if chunked else name

        folder = template if chunked and "{" not in template else manifest_prefix(template)
        lookback = self._lookback_count(grid)
        landed = land_chunks(
            context,
            hook,
            request,
            partitions,
            name_of,
            self.destination_conn_id or None,  # a template may render to ''
            self.output_encoding,
            output,
            self.log,
            resume=self.resume,
            folder=folder,
            grid=grid.unit,
            max_concurrent=self.max_concurrent_requests,
            count_before=lookback,
        )
        uris = self._landed_in(context, landed, lookback)
        return uris if chunked or len(uris) > 1 else uris[0]  # one object, named by its partition

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The report in, the dataset written out (:func:`cloudmax_provider.landing.lineage.openlineage`)."""
        from cloudmax_provider.api.request import parse_columns
        from cloudmax_provider.landing.lineage import dataset_uri, openlineage

        hook = self._hook()
        part = get_report_part(self.report_part_id)
        requested = parse_columns(self.columns, part) if is_literal(self.columns) and part.columns else ()
        names = [(new or name, name) for name, new in requested]
        destination = dataset_uri(self.destination, in_prefix=self._lands_in_prefix) or self.destination or None
        evolved = self.schema_change == "evolve"  # "ignore" lands the expected columns whatever was served
        return openlineage(
            hook.settings.api_host, part, names, hook.settings.timezone, self._landed, destination, evolved
        )


__all__ = ["CloudmaxReportOperator"]
