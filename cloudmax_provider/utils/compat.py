"""The differences between the supported Airflow versions (2.11, 3.0 to 3.3) that
``airflow.providers.common.compat`` does not cover, in one place.

Every other module imports Airflow names through ``airflow.providers.common.compat.sdk`` (as
Airflow's own providers do) and asks this module only for what differs in behaviour:

>>> from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS
>>> isinstance(AIRFLOW_V_3_0_PLUS, bool)
True

The version flags are computed here rather than imported from another provider's
``version_compat`` (that module asks providers to copy it, not to import it).
"""

from __future__ import annotations

from typing import Any


def _airflow_version() -> tuple[int, int, int]:
    from airflow import __version__
    from packaging.version import Version

    version = Version(__version__)
    return version.major, version.minor, version.micro


AIRFLOW_VERSION: tuple[int, int, int] = _airflow_version()
AIRFLOW_V_3_0_PLUS: bool = AIRFLOW_VERSION >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS: bool = AIRFLOW_VERSION >= (3, 1, 0)
AIRFLOW_V_3_2_PLUS: bool = AIRFLOW_VERSION >= (3, 2, 0)
AIRFLOW_V_3_3_PLUS: bool = AIRFLOW_VERSION >= (3, 3, 0)


def provider_deprecation_warning() -> type[DeprecationWarning]:
    """The warning class for a deprecated provider feature: Airflow's ``AirflowProviderDeprecationWarning``
    (every supported version has it in ``airflow.exceptions``), else ``DeprecationWarning``.

    >>> issubclass(provider_deprecation_warning(), DeprecationWarning)
    True
    """
    try:
        from airflow.exceptions import AirflowProviderDeprecationWarning
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return DeprecationWarning
    return AirflowProviderDeprecationWarning


def connection_form_widgets(conn_fields: dict[str, Any]) -> dict[str, Any]:
    """The connection form's extra fields as wtforms fields, for the Airflow versions that build the form from
    a hook's ``get_connection_form_widgets()`` (below 3.2; 3.2+ reads ``conn-fields`` from the provider info).

    Built from the same ``conn-fields`` data, so both forms offer the same fields. Only the field classes
    every version accepts are used (String and Integer); a choice is a string field whose help lists the
    choices, and the hook checks the value when it reads the connection. wtforms comes with the webserver
    (Airflow 2) or the FAB provider (3.0, 3.1); without it Airflow shows no extra fields, and the Extra JSON
    box still takes them.

    Example (what ``CloudmaxHook.get_connection_form_widgets`` returns)::

        fields = {"timeout": {"label": "Timeout", "schema": {"type": ["integer", "null"], "default": 60}}}
        connection_form_widgets(fields)  # {"timeout": IntegerField(label="Timeout", default=60, ...)}
    """
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for name, field in conn_fields.items():
        schema = field.get("schema", {})
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else types
        description = field.get("description", "")
        if schema.get("enum"):
            description = f"{description} One of: {', '.join(map(str, schema['enum']))}."
        field_class = IntegerField if "integer" in types else StringField
        widgets[name] = field_class(
            label=field.get("label", name),
            description=description,
            default=schema.get("default"),
            validators=[Optional()],
        )
    return widgets


def write_dags_to_db(*dags: Any) -> None:
    """Record DAGs in the metadata DB before a ``dag.test()`` run, as a dag-processor would.

    Airflow 3.1+'s ``dag.test()`` does this itself; 2.11's and 3.0's do not, and an outlet Asset (Dataset)
    of a DAG that was never written has no row to record its events on (2.11: "DatasetModel ... not
    found"; 3.0: ``AirflowInactiveAssetInInletOrOutletException``). Used by the demo and the tests.
    """
    if AIRFLOW_V_3_1_PLUS or not dags:
        return
    from airflow.models.dag import DAG

    if AIRFLOW_V_3_0_PLUS:  # the DAGs folder's bundle, as `dag.test()` runs them
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.serialization.serialized_objects import SerializedDAG

        DagBundlesManager().sync_bundles_to_db()
        # what 3.0's dag.test() does to get a scheduler DAG (API of 3.0; mypy reads the newest Airflow)
        to_scheduler = SerializedDAG.deserialize_dag  # type: ignore[attr-defined]
        scheduler_dags = [to_scheduler(SerializedDAG.serialize_dag(dag)) for dag in dags]  # type: ignore[attr-defined]
        DAG.bulk_write_to_db("dags-folder", None, scheduler_dags)
    else:
        DAG.bulk_write_to_db(dags)


def object_storage_conn_id(path: Any) -> str | None:
    """The connection id an ``ObjectStoragePath`` was made with: its ``conn_id`` property on the Task SDK's
    path (3.3 here), ``storage_options["conn_id"]`` on 2.11 and 3.0's ``airflow.io.path``."""
    conn_id = getattr(path, "conn_id", None)
    if conn_id is None:
        conn_id = (getattr(path, "storage_options", None) or {}).get("conn_id")
    return conn_id
