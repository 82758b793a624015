"""What a landing tells Airflow, in one place, for every operator that lands: the XComs (``rows``,
``bytes``, ``chunks``; ``relanded`` with a lookback), the Asset (Dataset on Airflow 2) a destination declares
and its event, the OpenLineage output dataset with its schema and statistics, and the hook lineage of each
object written.

The dataset of a destination is one object, or the prefix of a destination naming partitions or links (the
text before the first placeholder up to its last ``/``). A destination built by Jinja declares nothing.

>>> dataset_uri("s3://lake/opens/{window_start:%Y-%m-%d}.parquet", in_prefix=False)
's3://lake/opens/'
>>> dataset_uri("s3://lake/opens/", in_prefix=True)
's3://lake/opens/'
>>> dataset_uri("s3://lake/latest.csv", in_prefix=False)
's3://lake/latest.csv'
>>> dataset_uri("s3://lake/{{ ds }}/r.csv", in_prefix=False) is None
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS
from cloudmax_provider.utils.templating import is_literal
from cloudmax_provider.windows.chunks import manifest_prefix
from cloudmax_provider.windows.window import has_window_placeholders

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from cloudmax_provider.api.catalog import ReportPart

__all__ = [
    "ALIAS_PREFIX",
    "LandedDataset",
    "dataset_uri",
    "declared_outlet",
    "describe_relanded",
    "openlineage",
    "push_landed",
    "record_landing",
    "record_outlet_events",
    "record_output_lineage",
    "relanded",
]

#: The name of the AssetAlias declared on Airflow 3.0 (see :func:`declared_outlet`): this, then the URI.
ALIAS_PREFIX = "cloudmax-landing:"

_ARROW_TYPES = {"int": "int64", "float": "double", "datetime": "timestamp[us, tz={tz}]", "text": "string"}


@dataclass(frozen=True)
class LandedDataset:
    """What one landing wrote, for lineage: the dataset's URI, and the totals over its objects."""

    uri: str
    rows: int
    bytes: int
    files: int
    in_prefix: bool
    added: tuple[str, ...] = ()  # columns a served header added (``schema_change``), over the objects
    missing: tuple[str, ...] = ()  # ... and the expected ones it lacked

    @classmethod
    def of(cls, uri: str, landed: list[dict[str, Any]], *, in_prefix: bool) -> LandedDataset:
        """The totals of the ``chunks`` XCom entries (``{uri, rows, bytes}``, and ``schema_change``) landed in
        ``uri``."""
        rows, size = sum(c["rows"] for c in landed), sum(c["bytes"] for c in landed)
        changes = [c["schema_change"] for c in landed if c.get("schema_change")]
        added = tuple(dict.fromkeys(name for change in changes for name in change["added"]))
        missing = tuple(dict.fromkeys(name for change in changes for name in change["missing"]))
        return cls(uri, rows, size, len(landed), in_prefix, added, missing)


def dataset_uri(destination: Any, *, in_prefix: bool) -> str | None:
    """The URI of the dataset a literal destination lands in (an object, or the prefix of its objects);
    ``None`` when it is not known at parse time (Jinja) or is not a URI."""
    if destination is None or not is_literal(destination) or "://" not in str(destination):
        return None
    text = str(destination)
    if "{{" in text or "{%" in text:
        return None
    if has_window_placeholders(text):
        return manifest_prefix(text)
    return text


def declared_outlet(uri: str) -> Any:
    """The outlet that declares ``uri``: an Asset (a Dataset on Airflow 2).

    On Airflow 3.0 an ``AssetAlias`` named after the URI, to which :func:`record_outlet_events` adds the Asset
    when the task lands: 3.0's ``dag.test()`` refuses an Asset outlet not active in the DB
    (``docs/compatibility.md``).
    """
    from airflow.providers.common.compat.sdk import Asset, AssetAlias

    asset = Asset(uri=uri)
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        return AssetAlias(name=ALIAS_PREFIX + asset.uri)  # the URI as the Asset normalizes it (no last '/')
    return asset


def record_outlet_events(context: Context, outlets: list[Any]) -> None:
    """Add the Asset of each alias :func:`declared_outlet` declared to that alias's events (Airflow 3.0)."""
    from airflow.providers.common.compat.sdk import Asset, AssetAlias

    for outlet in outlets:
        if isinstance(outlet, AssetAlias) and outlet.name.startswith(ALIAS_PREFIX):
            context["outlet_events"][outlet].add(Asset(uri=outlet.name.removeprefix(ALIAS_PREFIX)))


def push_landed(context: Context, landed: list[dict[str, Any]], lookback: int = 0, logger: Any = None) -> None:
    """Push the XComs of a landing: ``rows`` and ``bytes`` (totals), ``chunks`` (one entry an object) and with
    ``lookback`` (the first that many entries were re-landed) ``relanded``, logged."""
    ti = context["ti"]
    ti.xcom_push(key="rows", value=sum(entry["rows"] for entry in landed))
    ti.xcom_push(key="bytes", value=sum(entry["bytes"] for entry in landed))
    ti.xcom_push(key="chunks", value=[{k: v for k, v in entry.items() if k != "rows_before"} for entry in landed])
    if lookback:
        again = relanded(landed, lookback)
        ti.xcom_push(key="relanded", value=again)
        (logger or logging.getLogger(__name__)).info(
            "lookback re-landed %d partition(s): %s", len(again), "; ".join(map(describe_relanded, again))
        )


def relanded(landed: list[dict[str, Any]], lookback: int) -> list[dict[str, Any]]:
    """The ``relanded`` XCom: ``{start, end, rows, rows_before, rows_changed}`` for each of the first
    ``lookback`` entries of ``landed`` (``None`` when the rows before are unknown).

    >>> relanded([{"start": "a", "end": "b", "rows": 7, "rows_before": 5, "bytes": 1}], 1)
    [{'start': 'a', 'end': 'b', 'rows': 7, 'rows_before': 5, 'rows_changed': 2}]
    """
    return [
        {
            "start": entry.get("start"),
            "end": entry.get("end"),
            "rows": entry["rows"],
            "rows_before": (before := entry.get("rows_before")),
            "rows_changed": None if before is None else entry["rows"] - before,
        }
        for entry in landed[:lookback]
    ]


def describe_relanded(entry: dict[str, Any]) -> str:
    """One re-landed partition for the log.

    >>> describe_relanded({"start": "11-03", "end": "11-04", "rows": 7, "rows_before": 5, "rows_changed": 2})
    '11-03 .. 11-04: 7 rows, was 5 (+2)'
    """
    was = "unknown" if entry["rows_before"] is None else f"{entry['rows_before']} ({entry['rows_changed']:+d})"
    return f"{entry['start']} .. {entry['end']}: {entry['rows']} rows, was {was}"


def record_landing(
    context: Context,
    landed: list[dict[str, Any]],
    *,
    destination: Any,
    in_prefix: bool,
    outlets: list[Any],
    lookback: int = 0,
    logger: Any = None,
) -> LandedDataset:
    """The one landing contract of every operator that lands: :func:`push_landed`, the Asset events of the
    outlets, and what was written for OpenLineage (returned)."""
    push_landed(context, landed, lookback, logger)
    record_outlet_events(context, outlets)
    uri = dataset_uri(destination, in_prefix=in_prefix) or landed[0]["uri"]
    return LandedDataset.of(uri, landed, in_prefix=in_prefix or len(landed) > 1)


def openlineage(
    api_host: str,
    part: ReportPart | None,
    names: list[tuple[str, str]],
    timezone: str,
    landed: LandedDataset | None,
    destination: str | None,
    evolved: bool = True,
) -> Any:
    """The OpenLineage of a landing: the Cloudmax report in, the dataset written out with a schema facet
    (``names``: ``(column as written, column as served)``; with ``evolved``, as a served header changed them)
    and, once written, an output-statistics facet. ``None`` when the OpenLineage provider is not installed."""
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    from urllib.parse import urlsplit

    inputs = [Dataset(namespace=f"cloudmax://{api_host}", name=f"report/{part.id}" if part else "report")]
    uri = landed.uri if landed is not None else destination
    if not uri:
        return OperatorLineage(inputs=inputs, outputs=[])
    parts = urlsplit(uri)
    facets: dict[str, Any] = {}
    if landed is not None and evolved and part is not None and part.columns is not None:  # the columns landed
        names = [(out, name) for out, name in names or [(c.name, c.name) for c in part.columns]]
        names = [(out, name) for out, name in names if out not in landed.missing]
        names += [(name, name) for name in landed.added]
    schema = _schema_facet(part, names, timezone) if part is not None else None
    if schema is not None:
        facets["schema"] = schema
    stats: dict[str, Any] = {}
    if landed is not None:
        stats["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
            rowCount=landed.rows, size=landed.bytes, fileCount=landed.files if landed.in_prefix else None
        )
    namespace, name = f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    if parts.scheme == "iceberg":  # a table: iceberg://<namespace>.<table> names it whole
        namespace, name = "iceberg://", parts.netloc
    output = OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=stats)
    return OperatorLineage(inputs=inputs, outputs=[output])


def _schema_facet(part: ReportPart, names: list[tuple[str, str]], timezone: str) -> Any:
    """The columns as written, with the types the output holds and the catalog's descriptions."""
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    if part.columns is None:
        return None
    names = names or [(c.name, c.name) for c in part.columns]
    fields = []
    for out, name in names:
        documented = part.column(name)
        fields.append(
            SchemaDatasetFacetFields(
                name=out,
                type=_ARROW_TYPES[part.type_of(name).value].format(tz=timezone),
                description=documented.description if documented else None,
            )
        )
    return SchemaDatasetFacet(fields=fields)


def record_output_lineage(dest: Any) -> None:
    """Tell Airflow's hook-lineage collector, once, that the final object ``dest`` was written."""
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    try:
        get_hook_lineage_collector().add_output_asset(context=dest, uri=str(dest))
    except Exception as exc:  # lineage must never fail a landed report
        logging.getLogger(__name__).debug("Hook lineage not recorded for %s: %s", dest, exc)
