"""Landing a report in an Apache Iceberg table: ``destination="iceberg://<namespace>.<table>"``.

The catalog comes from the ``iceberg`` connection ``destination_conn_id`` (``IcebergHook``). The table is made
when missing, identity-partitioned on :data:`PARTITION_COLUMN` (the start of the grid partition holding each
row). A run replaces exactly the partitions it requested in **one commit and one snapshot** (data files
first, a batch at a time, then one overwrite); a commit lost to another writer is tried again on the
reloaded table, at most :data:`COMMIT_ATTEMPTS` times. Schema policy (``docs/lake-tables.md``): a new column
is added (older rows read null); a missing column or another type is refused before anything is written.
A campaign-state report is upserted instead (:mod:`cloudmax_provider.landing.iceberg_state`).

>>> IcebergTable.parse("iceberg://lake.clicks").identifier
'lake.clicks'
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cloudmax_provider.exceptions import CloudmaxConfigError

if TYPE_CHECKING:
    from cloudmax_provider.api.request import ReportRequest
    from cloudmax_provider.formats.arrow_typing import ArrowBatchEncoder
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.windows.partitions import PartitionGrid

__all__ = [
    "COMMIT_ATTEMPTS",
    "GRID_PROPERTY",
    "ICEBERG_EXTRA_HINT",
    "PARTITION_COLUMN",
    "IcebergTable",
    "is_iceberg",
    "land_iceberg",
    "land_request",
    "load_catalog",
    "orphan_data_files",
    "preflight_iceberg",
]

log = logging.getLogger(__name__)

#: The partition column the provider adds: the start (an instant) of the grid partition holding the row.
PARTITION_COLUMN = "cloudmax_partition"
#: The table property recording the grid the table is cut by, e.g. ``day (Asia/Taipei)``.
GRID_PROPERTY = "cloudmax.partition-grid"
#: The table property listing the columns a served header added (``schema_change="evolve"``): a later run
#: whose expected columns lack them may land without them (null), where a column it did not ask for is refused.
SERVED_COLUMNS_PROPERTY = "cloudmax.columns-added-by-server"
#: Commits tried when another writer commits first (each on the reloaded table).
COMMIT_ATTEMPTS = 8
ICEBERG_EXTRA_HINT = "pip install 'airflow-provider-cloudmax[iceberg]'"
SCHEME = "iceberg://"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_iceberg(destination: Any) -> bool:
    """Whether a destination names an Iceberg table (``iceberg://...``)."""
    return isinstance(destination, str) and destination.startswith(SCHEME)


@dataclass(frozen=True)
class IcebergTable:
    """A table named by ``iceberg://<namespace>.<table>`` (the namespace may have several levels)."""

    namespace: tuple[str, ...]
    name: str

    @classmethod
    def parse(cls, uri: Any) -> IcebergTable:
        """The table a destination names, or :class:`CloudmaxConfigError` saying how to write it.

        >>> IcebergTable.parse("iceberg://lake.raw.clicks").namespace
        ('lake', 'raw')
        """
        fix = "write it as 'iceberg://<namespace>.<table>', e.g. 'iceberg://cloudmax.click_details'"
        if not is_iceberg(uri):
            raise CloudmaxConfigError(f"destination={uri!r} is not an Iceberg table; {fix}")
        parts = str(uri)[len(SCHEME) :].split(".")
        bad = [p for p in parts if not _NAME.match(p)]
        if len(parts) < 2 or bad:
            why = f"{bad[0]!r} is not a name (letters, digits, '_')" if bad else "it has no namespace"
            raise CloudmaxConfigError(f"destination={uri!r}: {why}; {fix}")
        return cls(tuple(parts[:-1]), parts[-1])

    @property
    def identifier(self) -> str:
        return ".".join((*self.namespace, self.name))

    @property
    def uri(self) -> str:
        return SCHEME + self.identifier


def check_iceberg_args(destination: Any, conn_id: Any) -> IcebergTable:
    """Parse-time checks of a literal Iceberg destination and its connection id (no I/O); the table."""
    table = IcebergTable.parse(destination)
    if conn_id is None or conn_id == "":
        raise CloudmaxConfigError(
            f"destination={destination!r} needs destination_conn_id: the 'iceberg' connection whose extra holds "
            'the catalog\'s properties, e.g. {"type": "sql", "uri": "sqlite:///…/catalog.db", "warehouse": "file:///…"}'
        )
    return table


def load_catalog(conn_id: str) -> Any:
    """The pyiceberg catalog of the ``iceberg`` connection ``conn_id`` (``IcebergHook``; from the connection's
    extra with a provider before 2.0, whose ``get_conn()`` returned a token)."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    try:
        from airflow.providers.apache.iceberg.hooks.iceberg import IcebergHook
        from pyiceberg.catalog import Catalog
        from pyiceberg.catalog import load_catalog as pyiceberg_catalog
    except ImportError as exc:
        raise CloudmaxConfigError(
            f"an iceberg:// destination needs pyiceberg and the Iceberg provider ({exc}); {ICEBERG_EXTRA_HINT}"
        ) from None
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise CloudmaxConfigError(
            f"destination_conn_id={conn_id!r} is not a connection; create an 'iceberg' connection (extra: the "
            "catalog's properties) or fix the name"
        ) from None
    if conn.conn_type != "iceberg":
        raise CloudmaxConfigError(
            f"destination_conn_id={conn_id!r} is a {conn.conn_type!r} connection; an iceberg:// destination needs "
            "an 'iceberg' connection whose extra holds the catalog's properties"
        )
    catalog = IcebergHook(iceberg_conn_id=conn_id).get_conn()
    if not isinstance(catalog, Catalog):  # provider < 2.0
        catalog = pyiceberg_catalog(conn_id, **{"type": "rest", **(conn.extra_dejson or {})})
    return catalog


def preflight_iceberg(uri: str, conn_id: str | None) -> None:
    """Before the report is requested: the connection loads a catalog that answers (one metadata call)."""
    table = check_iceberg_args(uri, conn_id)
    assert conn_id
    catalog = load_catalog(conn_id)
    try:
        catalog.table_exists(table.identifier)
    except Exception as exc:
        raise CloudmaxConfigError(
            f"destination={uri!r}: the catalog of destination_conn_id={conn_id!r} does not answer: "
            f"{type(exc).__name__}: {str(exc)[:300]}; check the connection's extra"
        ) from None


# ---- schema ---------------------------------------------------------------------------------------


def _iceberg_type(arrow_type: Any) -> Any:
    """The Iceberg type of a column as the Arrow engine types it: long, double, timestamptz, string."""
    import pyarrow as pa
    from pyiceberg.types import DoubleType, LongType, StringType, TimestamptzType

    if pa.types.is_integer(arrow_type):
        return LongType()
    if pa.types.is_floating(arrow_type):
        return DoubleType()
    if pa.types.is_timestamp(arrow_type):
        return TimestamptzType()
    return StringType()


def table_schema(arrow_schema: Any, partitioned: bool = True) -> Any:
    """The Iceberg schema of a report's columns (all optional), then :data:`PARTITION_COLUMN` (when
    ``partitioned``: an event log's table; a state table, keyed, has none)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField, TimestamptzType

    fields = [
        NestedField(i, f.name, _iceberg_type(f.type), required=False) for i, f in enumerate(arrow_schema, start=1)
    ]
    if partitioned:
        fields.append(NestedField(len(fields) + 1, PARTITION_COLUMN, TimestamptzType(), required=False))
    return Schema(*fields)


def _open_table(catalog: Any, target: IcebergTable, arrow_schema: Any, grid: PartitionGrid, logger: Any) -> Any:
    """The table, made when missing (schema from the report, identity-partitioned on the partition column);
    refused when it is cut by another grid or was not made by this provider."""
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    try:
        table = catalog.load_table(target.identifier)
    except NoSuchTableError:
        schema = table_schema(arrow_schema)
        source = schema.find_field(PARTITION_COLUMN).field_id
        spec = PartitionSpec(PartitionField(source, 1000, IdentityTransform(), PARTITION_COLUMN))
        catalog.create_namespace_if_not_exists(target.namespace)
        try:
            table = catalog.create_table(
                target.identifier, schema=schema, partition_spec=spec, properties={GRID_PROPERTY: grid.describe()}
            )
            logger.info("Created the Iceberg table %s, partitioned on %s", target.uri, PARTITION_COLUMN)
        except TableAlreadyExistsError:  # another task made it meanwhile
            table = catalog.load_table(target.identifier)
    made_by = table.properties.get(GRID_PROPERTY)
    if made_by is None:
        raise CloudmaxConfigError(
            f"destination={target.uri!r}: the table was not made by this provider (no {GRID_PROPERTY!r} property): "
            f"it must be identity-partitioned on {PARTITION_COLUMN!r} for a run to replace whole partitions; "
            "land in a new table, which the provider makes"
        )
    if made_by != grid.describe():
        raise CloudmaxConfigError(
            f"destination={target.uri!r} holds {made_by} partitions, but this run's grid is {grid.describe()}; "
            f"set partition= (and the connection's timezone) to match, or land in another table"
        )
    return table


def fit_schema(
    table: Any,
    arrow_schema: Any,
    target: IcebergTable,
    logger: Any = log,
    partitioned: bool = True,
    served: bool = False,
    allow_missing: bool = False,
) -> Any:
    """The table, its schema widened by the columns the run has and the table lacks (``union_by_name``).

    ``served``: ``arrow_schema`` is a served header, whose added columns are recorded
    (:data:`SERVED_COLUMNS_PROPERTY`). A column of another type is refused; so is a column the table has and
    the run lacks, unless a served header added it or ``allow_missing``.
    """
    from pyiceberg.types import NestedField

    wanted = table_schema(arrow_schema, partitioned)
    current = {f.name: f for f in table.schema().fields}
    by_server = {name for name in table.properties.get(SERVED_COLUMNS_PROPERTY, "").split(",") if name}
    missing = [name for name in current if name not in {f.name for f in wanted.fields} and name not in by_server]
    if missing and not allow_missing:
        raise CloudmaxConfigError(
            f"destination={target.uri!r} has the columns {missing}, which this run does not land (columns= differs "
            "from the table's): replacing its partitions would empty them; set columns= "
            "to the table's columns, or land this column set in another table"
        )
    for field in wanted.fields:
        have: NestedField | None = current.get(field.name)
        if have is not None and have.field_type != field.field_type:
            raise CloudmaxConfigError(
                f"destination={target.uri!r}: column {field.name!r} is {have.field_type} in the table and "
                f"{field.field_type} in this run; land it in another table (or rename it with columns=)"
            )
    added = [f.name for f in wanted.fields if f.name not in current]
    if not added:
        return table
    with table.transaction() as tx:
        with tx.update_schema() as update:
            update.union_by_name(wanted)
        if served:
            tx.set_properties({SERVED_COLUMNS_PROPERTY: ",".join(sorted(by_server | set(added)))})
    logger.warning("Added the column(s) %s to the Iceberg table %s (older rows read null)", added, target.uri)
    return table.refresh()


# ---- writing --------------------------------------------------------------------------------------


def _for_table(batch: Any, start: datetime, table: Any) -> Any:
    """A typed batch as the table stores it: times as UTC instants (Iceberg's timestamptz), the partition column,
    and null columns for the table's columns the body did not have."""
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    columns = [col.cast(utc) if pa.types.is_timestamp(col.type) else col for col in batch.columns]
    columns.append(pa.repeat(pa.scalar(start, utc), batch.num_rows))  # one value, not a list of them
    names = [*batch.column_names, PARTITION_COLUMN]
    for field in table.schema().as_arrow():
        if field.name not in names:
            columns.append(pa.nulls(batch.num_rows, field.type))
            names.append(field.name)
    return pa.Table.from_arrays(columns, names=names)


def _write_partition(
    table: Any, target: IcebergTable, encoder: ArrowBatchEncoder, streams: Iterable[Any], start: datetime, ids: Any
) -> tuple[Any, list[Any]]:
    """Write one partition's batches as data files (pyiceberg's writer, in a thread while the next batch is
    made); the table (its schema fitted to the body) and the data files."""
    from concurrent.futures import Future, ThreadPoolExecutor

    files: list[Any] = []
    fitted = False
    writing: Future[list[Any]] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="iceberg-data-file") as writer:
        for batch in encoder.batches(streams):
            if not fitted:  # the body's columns: new ones added; missing ones (checked by the contract) null
                table = fit_schema(table, batch.schema, target, encoder.log, served=True, allow_missing=True)
                fitted = True
            df = _for_table(batch, start, table)
            if writing is not None:
                files += writing.result()
            writing = writer.submit(_data_files, table, df, ids)
        if writing is not None:
            files += writing.result()
    if not fitted and encoder.schema is not None:
        table = fit_schema(table, encoder.schema, target, encoder.log, served=True, allow_missing=True)
    return table, files


def _data_files(table: Any, df: Any, ids: Any) -> list[Any]:
    """``df`` (one partition's rows) written as data files of ``table`` by pyiceberg's writer."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    return list(_dataframe_to_data_files(table.metadata, df, table.io, write_uuid=ids[0], counter=ids[1]))


def _window_filter(start: datetime, end: datetime) -> Any:
    """Rows of the partitions starting in ``[start, end)``: the run's partitions."""
    from pyiceberg import expressions

    ex: Any = expressions  # pydantic models: their signatures confuse mypy
    return ex.And(
        ex.GreaterThanOrEqual(PARTITION_COLUMN, start.isoformat()), ex.LessThan(PARTITION_COLUMN, end.isoformat())
    )


def commit_retrying(target: IcebergTable, logger: Any = log) -> Any:
    """The retry policy of a commit: a commit another writer got in before (``CommitFailedException``) is
    tried again, at most :data:`COMMIT_ATTEMPTS` times; each attempt must reload the table.

    Example: ``for attempt in commit_retrying(target): with attempt: table = catalog.load_table(...); ...``
    """
    from pyiceberg import exceptions
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    # ValidationException: a concurrent commit changed the run's partitions (pyiceberg checks, on its own retries,
    # that nothing was added in the window filter since the plan): planned again on the reloaded table
    conflicts = (
        exceptions.CommitFailedException,
        getattr(exceptions, "ValidationException", exceptions.CommitFailedException),
    )
    return Retrying(
        retry=retry_if_exception_type(conflicts),
        stop=stop_after_attempt(COMMIT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.1, max=5),
        reraise=True,
        before_sleep=lambda state: logger.warning(
            "Commit to %s lost to another writer (attempt %d); trying again on the reloaded table",
            target.uri,
            state.attempt_number,
        ),
    )


def commit_overwrite(
    catalog: Any,
    target: IcebergTable,
    window: tuple[datetime, datetime],
    files: list[Any],
    properties: dict[str, str],
    logger: Any = log,
    before_commit: Callable[[int], None] | None = None,
) -> dict[datetime, int]:
    """One snapshot replacing the partitions in ``window`` by ``files``, committed once; a commit another
    writer got in before is tried again on the reloaded table. Returns the rows the commit removed, by
    partition start (UTC): what the partitions held before (a partition absent held none).

    ``before_commit(attempt)`` is called just before each commit (tests use it to make two writers race)."""
    retrying = commit_retrying(target, logger)
    for attempt in retrying:
        with attempt:
            table = catalog.load_table(target.identifier)
            replaced = [task.file for task in table.scan(row_filter=_window_filter(*window)).plan_files()]
            txn = table.transaction()
            with txn.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                if hasattr(overwrite, "delete_by_predicate"):  # the conflict filter: only the run's partitions
                    overwrite.delete_by_predicate(_window_filter(*window))
                for old in replaced:
                    overwrite.delete_data_file(old)
                for new in files:
                    overwrite.append_data_file(new)
            if before_commit is not None:
                before_commit(attempt.retry_state.attempt_number)
            txn.commit_transaction()
            logger.info("Committed to %s: %d data file(s) replaced by %d", target.uri, len(replaced), len(files))
    removed: dict[datetime, int] = {}
    for old in replaced:
        start = _partition_start(old.partition[0])
        removed[start] = removed.get(start, 0) + old.record_count
    return removed


def _partition_start(value: Any) -> datetime:
    """A data file's :data:`PARTITION_COLUMN` value (microseconds since the epoch, identity) as a UTC time."""
    from datetime import UTC

    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def orphan_data_files(table: Any) -> list[str]:
    """The files under ``table``'s data location that no snapshot references (their URIs, sorted): what a writer
    killed or failed before its commit leaves. Remove them once no writer of the table is running:
    ``for uri in orphan_data_files(table): table.io.delete(uri)``. Needs pyiceberg's pyarrow FileIO.

    Example: ``orphan_data_files(load_catalog("cloudmax_iceberg").load_table("cloudmax.click_details"))``
    """
    from pyarrow.fs import FileSelector, FileType
    from pyiceberg.io.pyarrow import PyArrowFileIO

    referenced: set[str] = set()
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            entries = manifest.fetch_manifest_entry(table.io, discard_deleted=False)
            referenced |= {entry.data_file.file_path for entry in entries}
    data = table.properties.get("write.data.path", f"{table.location().rstrip('/')}/data")
    io = table.io if isinstance(table.io, PyArrowFileIO) else PyArrowFileIO(dict(table.io.properties))
    scheme, netloc, path = PyArrowFileIO.parse_location(data)
    found = io.fs_by_scheme(scheme, netloc).get_file_info(FileSelector(path, recursive=True, allow_not_found=True))
    prefix = "file://" if scheme == "file" else f"{scheme}://"
    files = {prefix + info.path for info in found if info.type == FileType.File}
    return sorted(uri for uri in files if uri not in referenced)


@dataclass
class IcebergLanding:
    """What :func:`land_iceberg` needs besides the requests: where, on which grid, how to type batches."""

    catalog: Any
    target: IcebergTable
    grid: PartitionGrid
    encoder_of: Callable[[], ArrowBatchEncoder]
    properties: dict[str, str]
    before_commit: Callable[[int], None] | None = None
    #: attempts around each partition's request and write (the hook's retry policy); one attempt if None
    retrying: Callable[[], Iterable[Any]] | None = None


def land_iceberg(
    landing: IcebergLanding,
    partitions: list[tuple[datetime, datetime]],
    sources_of: Callable[[datetime, datetime], Iterator[Any]],
    logger: Any = log,
) -> list[dict[str, Any]]:
    """Request each partition (``sources_of(start, end)`` opens its bodies), write its data files, then
    replace the run's partitions in one commit; ``[{start, end, uri, rows, bytes, rows_before}]``, one per
    partition (``rows_before``: the rows the commit replaced in it).

    Example::

        landed = land_iceberg(landing, grid.partitions(start, end), lambda s, e: open_each(hook.sources(...)))
    """
    target = landing.target
    expected = landing.encoder_of().expected_schema()
    table = fit_schema(_open_table(landing.catalog, target, expected, landing.grid, logger), expected, target, logger)
    ids = (uuid.uuid4(), itertools.count())
    files: list[Any] = []
    landed: list[dict[str, Any]] = []
    for start, end in partitions:
        for attempt in landing.retrying() if landing.retrying else [contextlib.nullcontext()]:
            with attempt:  # a transient failure requests the partition again (its files so far are left unused)
                encoder = landing.encoder_of()
                table, written = _write_partition(table, target, encoder, sources_of(start, end), start, ids)
        files += written
        size = sum(f.file_size_in_bytes for f in written)
        entry = {"start": start.isoformat(), "end": end.isoformat(), "uri": target.uri, "rows": encoder.rows}
        if encoder.schema_diff is not None:
            entry["schema_change"] = encoder.schema_diff.as_xcom()
        landed.append({**entry, "bytes": size})
        logger.info("Partition %s .. %s: %d rows in %d data file(s)", start, end, encoder.rows, len(written))
    window = (partitions[0][0], partitions[-1][1])
    removed = commit_overwrite(
        landing.catalog, target, window, files, landing.properties, logger, landing.before_commit
    )
    for entry, (start, _) in zip(landed, partitions, strict=True):
        entry["rows_before"] = removed.get(start, 0)  # aware datetimes: equal (and hashed) as instants
    return landed


def snapshot_properties(context: Any, window: tuple[datetime, datetime], report_part_id: int) -> dict[str, str]:
    """The snapshot summary of a run: which DAG, run, task (and map index) and window wrote it."""
    ti = context["ti"]
    return {
        "cloudmax.dag-id": str(ti.dag_id),
        "cloudmax.run-id": str(context["run_id"]),
        "cloudmax.task-id": str(ti.task_id),
        "cloudmax.map-index": str(getattr(ti, "map_index", -1)),
        "cloudmax.window-start": window[0].isoformat(),
        "cloudmax.window-end": window[1].isoformat(),
        "cloudmax.report-part-id": str(report_part_id),
    }


def land_request(
    context: Any, hook: CloudmaxHook, request: ReportRequest, grid: PartitionGrid, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """Land ``request``'s window (whole partitions of ``grid``) in the table ``options["destination"]`` of the
    connection ``options["conn_id"]``, in batches of ``options["batch_size"]`` rows; what
    :func:`land_iceberg` returns.

    Example: ``land_request(context, hook, request, grid, {"destination": "iceberg://lake.clicks",
    "conn_id": "iceberg_default", "batch_size": 65536})``
    """
    import dataclasses

    from cloudmax_provider.api.request import get_timezone
    from cloudmax_provider.formats.arrow_typing import ArrowBatchEncoder
    from cloudmax_provider.formats.streams import open_each
    from cloudmax_provider.formats.writers import RowTyping, require_pyarrow

    require_pyarrow("iceberg")
    destination, logger = options["destination"], options.get("logger", log)
    typing = RowTyping.for_request(
        request, get_timezone(hook.settings.timezone), options.get("schema_change", "evolve")
    )
    partitions = grid.partitions(request.start, request.end)
    landing = IcebergLanding(
        catalog=load_catalog(options["conn_id"]),
        target=IcebergTable.parse(destination),
        grid=grid,
        encoder_of=lambda: ArrowBatchEncoder(typing, f"Landing {destination}", logger, options["batch_size"]),
        properties=snapshot_properties(context, (request.start, request.end), request.report_part.id),
        retrying=hook.retrying,
    )

    def sources_of(start: datetime, end: datetime) -> Iterator[Any]:
        sub = dataclasses.replace(request, start=start, end=end)
        logger.info("Partition %s .. %s: requesting %s", start, end, sub.describe())
        return open_each(hook.sources(sub))

    return land_iceberg(landing, partitions, sources_of, logger)
