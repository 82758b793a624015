"""What the tests need from Airflow that differs between 2.11 and 3.x, in one place.

Airflow names themselves come from ``airflow.providers.common.compat.sdk``; this module holds only the
few test-side reads that have no public, version-independent name: the process-wide secrets masker
(to save and restore its patterns) and the ORM class that stores XComs.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_2_PLUS, AIRFLOW_VERSION


def secrets_masker() -> Any:
    """The masker instance behind ``redact`` (its module moved in every 3.x release; the accessor did not)."""
    from airflow.providers.common.compat.sdk import redact

    return importlib.import_module(redact.__module__)._secrets_masker()


def xcom_model() -> Any:
    """The ORM class of the ``xcom`` table: ``XComModel`` on Airflow 3, ``XCom`` on 2.x."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        return XComModel
    from airflow.models.xcom import XCom

    return XCom


def xcom_value(row: Any) -> Any:
    """The deserialized value of a row of :func:`xcom_model` (Airflow 2 deserializes it on load)."""
    if AIRFLOW_V_3_0_PLUS:
        return row.deserialize_value(row)
    return row.value


def dag_bag(dag_folder: str) -> Any:
    """A ``DagBag`` of ``dag_folder``, parsed as a dag-processor parses it (the class moved in Airflow 3.2)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=dag_folder)  # AIRFLOW__CORE__LOAD_EXAMPLES=False (tests/conftest.py)


def load_orm_models() -> None:
    """Import every ORM model a DagRun's rows refer to, in a bare process (not pytest's, not Airflow's CLI):
    on Airflow 2, ``dag_run_note.user_id`` refers to the FAB provider's ``ab_user`` table, and deleting a run
    fails until that model is imported."""
    if not AIRFLOW_V_3_0_PLUS:
        importlib.import_module("airflow.providers.fab.auth_manager.models")


def allow_direct_execute_in_this_thread() -> None:
    """Let a test call ``operator.execute()`` directly from a thread other than the main one on Airflow 2.

    Airflow 2's ``ExecutorSafeguard`` (the check that warns when ``execute()`` runs outside a task instance)
    keeps its callers in a thread-local created in the main thread only, so in any other thread a direct
    call fails with ``'_thread._local' object has no attribute 'callers'``. Workers call ``execute()`` in
    their main thread; only tests that run many tasks in a thread pool need this.
    """
    if AIRFLOW_V_3_0_PLUS:
        return
    from airflow.models.baseoperator import ExecutorSafeguard

    if not hasattr(ExecutorSafeguard._sentinel, "callers"):
        ExecutorSafeguard._sentinel.callers = {}


def requires_airflow(*version: int, reason: str) -> pytest.MarkDecorator:
    """Skip a test on Airflow older than ``version`` (counted per version in the matrix's summary)."""
    wanted = ".".join(map(str, version))
    return pytest.mark.skipif(version > AIRFLOW_VERSION, reason=f"needs Airflow >= {wanted}: {reason}")


def declared_uris(task: Any) -> list[str]:
    """The URIs a task's outlets declare: an Asset's (a Dataset's on 2.11), or the one an AssetAlias of
    :func:`cloudmax_provider.landing.lineage.declared_outlet` names (Airflow 3.0)."""
    from cloudmax_provider.landing.lineage import ALIAS_PREFIX

    return [getattr(o, "uri", None) or o.name.removeprefix(ALIAS_PREFIX) for o in task.outlets]
