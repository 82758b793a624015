"""Landing a campaign-state report (20001, 20003, 20005, 30023) in an Iceberg table: an upsert on its row key.

A summary report is **state** (:attr:`~cloudmax_provider.api.catalog.ReportPart.is_state`): one row per
:attr:`~cloudmax_provider.api.catalog.ReportPart.row_key` whose numbers keep growing. Its table holds each
key's latest row once: unpartitioned (keyed, not cut by window), the key in :data:`ROW_KEY_PROPERTY`. A run
is one request over its whole window, read into one Arrow table (a row per campaign; a key seen twice keeps
its last row), then one ``Transaction.upsert`` commit on the key, planned again on the reloaded table when
another writer commits first (pyiceberg's own rebase, which could insert a key twice, is off:
:data:`STATE_TABLE_PROPERTIES`). Schema: the event tables' policy (``docs/lake-tables.md``).

>>> ROW_KEY_PROPERTY
'cloudmax.row-key'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudmax_provider.exceptions import CloudmaxConfigError
from cloudmax_provider.landing.iceberg import (
    GRID_PROPERTY,
    IcebergTable,
    commit_retrying,
    fit_schema,
    load_catalog,
    log,
    snapshot_properties,
    table_schema,
)

if TYPE_CHECKING:
    from cloudmax_provider.api.request import ReportRequest
    from cloudmax_provider.hooks.cloudmax import CloudmaxHook
    from cloudmax_provider.windows.partitions import PartitionGrid

__all__ = ["ROW_KEY_PROPERTY", "land_state", "upsert_state"]

#: The table property recording a state table's row key, e.g. ``LaunchID,JobID``.
ROW_KEY_PROPERTY = "cloudmax.row-key"
#: A state table's properties besides the key: pyiceberg's own commit retries are off. They rebase the
#: snapshots on the other writer's, which for an upsert would insert a key the other writer inserted
#: meanwhile a second time; :func:`upsert_state` plans the whole upsert again on the reloaded table instead.
STATE_TABLE_PROPERTIES = {"commit.retry.num-retries": "0"}


def _open_state_table(catalog: Any, target: IcebergTable, arrow_schema: Any, key: tuple[str, ...], logger: Any) -> Any:
    """The state table, made when missing (the report's columns, unpartitioned, the key as a property);
    refused when it is an event table or keyed otherwise."""
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError

    wanted = ",".join(key)
    try:
        table = catalog.load_table(target.identifier)
    except NoSuchTableError:
        catalog.create_namespace_if_not_exists(target.namespace)
        try:
            table = catalog.create_table(
                target.identifier,
                schema=table_schema(arrow_schema, False),
                properties={ROW_KEY_PROPERTY: wanted, **STATE_TABLE_PROPERTIES},
            )
            logger.info("Created the Iceberg table %s, keyed on %s", target.uri, wanted)
        except TableAlreadyExistsError:  # another task made it meanwhile
            table = catalog.load_table(target.identifier)
    have = table.properties.get(ROW_KEY_PROPERTY)
    if have != wanted:
        what = (
            f"is keyed on {have}"
            if have
            else "is an event table (partitioned by window)"
            if GRID_PROPERTY in table.properties
            else "was not made by this provider"
        )
        raise CloudmaxConfigError(
            f"destination={target.uri!r} {what}, but this report is campaign state keyed on {wanted}: its rows are "
            "upserted on the key; land it in another table (the provider makes it), one table per summary report"
        )
    return table


def _state_rows(batches: list[Any], schema: Any, key: tuple[str, ...], target: IcebergTable, logger: Any) -> Any:
    """The run's rows as one Arrow table as the table stores them (times as UTC instants), one row per key
    (the last one seen); rows with an empty key cell are left out, with a warning."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in key if c not in schema.names]
    if missing:
        raise CloudmaxConfigError(
            f"destination={target.uri!r} is keyed on {list(key)}, but columns= leaves out {missing}; keep the key "
            "columns (under their own names) in columns="
        )
    rows = pa.concat_tables(batches) if batches else schema.empty_table()
    utc = pa.timestamp("us", tz="UTC")
    rows = pa.Table.from_arrays(
        [c.cast(utc) if pa.types.is_timestamp(c.type) else c for c in rows.columns], names=rows.column_names
    )
    keyed = rows.filter(
        pc.and_kleene(*[pc.is_valid(rows[c]) for c in key]) if len(key) > 1 else pc.is_valid(rows[key[0]])
    )
    if keyed.num_rows < rows.num_rows:
        logger.warning("%d row(s) without %s left out of %s", rows.num_rows - keyed.num_rows, "/".join(key), target.uri)
    last = {tuple(values): i for i, values in enumerate(zip(*(keyed[c].to_pylist() for c in key), strict=True))}
    return keyed.take(sorted(last.values())) if len(last) < keyed.num_rows else keyed


def upsert_state(
    catalog: Any,
    target: IcebergTable,
    rows: Any,
    key: tuple[str, ...],
    properties: dict[str, str],
    logger: Any = log,
    before_commit: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Upsert ``rows`` (an Arrow table, one row per key) on ``key`` in one commit, redone on the reloaded
    table when another writer commits first; ``{"updated": n, "inserted": m, "attempts": k}``.

    Example: ``upsert_state(catalog, IcebergTable.parse("iceberg://lake.reads"), rows, ("LaunchID", "JobID"), {})``
    """
    table = _open_state_table(catalog, target, rows.schema, key, logger)
    fit_schema(table, rows.schema, target, logger, partitioned=False, served=True)
    if not rows.num_rows:
        logger.info("No rows: %s left as it is", target.uri)
        return {"updated": 0, "inserted": 0, "attempts": 0}
    retrying = commit_retrying(target, logger)
    for attempt in retrying:
        with attempt:
            txn = catalog.load_table(target.identifier).transaction()
            result = txn.upsert(rows, join_cols=list(key), snapshot_properties=properties)
            if before_commit is not None:
                before_commit(attempt.retry_state.attempt_number)
            txn.commit_transaction()
    logger.info(
        "Committed to %s: %d row(s) updated, %d inserted (key %s)",
        target.uri,
        result.rows_updated,
        result.rows_inserted,
        "/".join(key),
    )
    attempts = retrying.statistics.get("attempt_number", 1)
    return {"updated": result.rows_updated, "inserted": result.rows_inserted, "attempts": attempts}


def land_state(
    context: Any, hook: CloudmaxHook, request: ReportRequest, grid: PartitionGrid, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """Land the state report ``request`` (one request) in ``options["destination"]``, upserted on its row key;
    ``[{start, end, uri, rows, bytes}]`` (one entry, ``bytes`` 0). ``grid`` is unused (:func:`land_request`'s
    signature).

    Example: ``land_state(context, hook, request, grid, {"destination": "iceberg://lake.read_summary",
    "conn_id": "iceberg_default", "batch_size": 65536})``
    """
    from cloudmax_provider.api.request import get_timezone
    from cloudmax_provider.formats.arrow_typing import ArrowBatchEncoder
    from cloudmax_provider.formats.streams import open_each
    from cloudmax_provider.formats.writers import RowTyping, require_pyarrow

    require_pyarrow("iceberg")
    destination, logger = options["destination"], options.get("logger", log)
    target, key = IcebergTable.parse(destination), request.report_part.row_key
    typing = RowTyping.for_request(
        request, get_timezone(hook.settings.timezone), options.get("schema_change", "evolve")
    )
    for attempt in hook.retrying():  # a transient failure requests the window again
        with attempt:
            encoder = ArrowBatchEncoder(typing, f"Landing {destination}", logger, options["batch_size"])
            batches = list(encoder.batches(open_each(hook.sources(request))))
    rows = _state_rows(batches, encoder.schema or encoder.expected_schema(), key, target, logger)
    properties = snapshot_properties(context, (request.start, request.end), request.report_part.id)
    upsert_state(load_catalog(options["conn_id"]), target, rows, key, properties, logger)
    entry = {"start": request.start.isoformat(), "end": request.end.isoformat(), "uri": target.uri}
    return [{**entry, "rows": rows.num_rows, "bytes": 0}]
