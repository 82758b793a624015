"""Run real DAGs with ``dag.test()`` on the session's SQLite metadata DB.

Airflow 3.3's ``dag.test()`` needs the DAG in a file of the DAGs folder (it syncs the bundle to the
DB), so :func:`run_dag` writes the DAG source there, imports it and runs it.
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path
from typing import Any

import pendulum

from cloudmax_provider.utils.compat import AIRFLOW_V_3_0_PLUS

# dag.test()'s argument was execution_date before Airflow 3.
LOGICAL_DATE_KWARG = "logical_date" if AIRFLOW_V_3_0_PLUS else "execution_date"


def dags_folder() -> Path:
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_dag(source: str, dag_id: str) -> Any:
    """Write ``source`` (defining a DAG called ``dag``) as ``<dag_id>.py`` in the DAGs folder and import it."""
    path = dags_folder() / f"{dag_id}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(f"testdag_{dag_id}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_dag(source: str, dag_id: str, logical_date: Any = None, **kwargs: Any) -> Any:
    """Run the DAG once with ``dag.test()`` (triggers run in-process); return the DagRun."""
    dag = load_dag(source, dag_id)
    return dag_test(dag, logical_date or pendulum.datetime(2026, 11, 1, tz="UTC"), **kwargs)


def dag_test(dag: Any, logical_date: Any = None, run_after: Any = None, **kwargs: Any) -> Any:
    """``dag.test()`` on every supported Airflow: the logical date is ``execution_date`` before Airflow 3;
    ``run_after`` exists only from Airflow 3, so a run without a logical date skips before it (and a run
    with one ignores ``run_after`` there)."""
    import pytest

    if run_after is not None and AIRFLOW_V_3_0_PLUS:
        kwargs["run_after"] = run_after
    elif logical_date is None:
        pytest.skip("needs Airflow >= 3.0: a run without a logical date")
    return dag.test(**{LOGICAL_DATE_KWARG: logical_date}, **kwargs)  # as users run it: nothing written first


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """An XCom value the run pushed, deserialized."""
    from airflow.utils.session import create_session

    from tests.airflow_compat import xcom_model, xcom_value

    XComModel = xcom_model()

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=map_index)
            .one_or_none()
        )
        if row is None:
            return None
        return xcom_value(row)
