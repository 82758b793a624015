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
    when = logical_date or pendulum.datetime(2026, 11, 1, tz="UTC")
    return dag.test(logical_date=when, **kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """An XCom value the run pushed, deserialized."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=map_index)
            .one_or_none()
        )
        if row is None:
            return None
        return XComModel.deserialize_value(row)
