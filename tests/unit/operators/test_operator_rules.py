"""Airflow's rules for operators, checked on the source of every operator and sensor of the package.

As Airflow's own ``validate_operators_init`` pre-commit check does: a template field is assigned in
``__init__`` straight from the parameter of the same name (``self.x = x``; rendering replaces it, so a
value derived at parse time would be lost), never through ``setattr``; and an operator that can defer takes
its default from ``[operators] default_deferrable``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from cloudmax_provider.operators.download_links import CloudmaxDownloadLinksOperator
from cloudmax_provider.operators.report import CloudmaxReportOperator
from cloudmax_provider.operators.request_links import CloudmaxRequestLinksOperator
from cloudmax_provider.sensors.download_link import CloudmaxDownloadLinkSensor

OPERATORS = [
    CloudmaxReportOperator,
    CloudmaxRequestLinksOperator,
    CloudmaxDownloadLinksOperator,
    CloudmaxDownloadLinkSensor,
]


def _init_of(cls: type) -> ast.FunctionDef:
    tree = ast.parse(Path(inspect.getfile(cls)).read_text(encoding="utf-8"))
    [node] = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    [init] = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    return init


def _direct_assignments(init: ast.FunctionDef) -> set[str]:
    """``self.<name> = <name>`` statements at the top level of ``__init__``."""
    names = set()
    for stmt in init.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and isinstance(value, ast.Name)
                and value.id == target.attr
            ):
                names.add(target.attr)
    return names


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_template_fields_are_assigned_directly_in_init(cls: type) -> None:
    init = _init_of(cls)
    params = {a.arg for a in init.args.kwonlyargs + init.args.args}
    fields = set(cls.template_fields)  # type: ignore[attr-defined]
    assert fields <= params, f"{cls.__name__}: template fields that are no __init__ parameter: {fields - params}"
    missing = fields - _direct_assignments(init)
    assert not missing, f"{cls.__name__}.__init__ does not assign self.<f> = <f> for {sorted(missing)}"
    calls = {n.func.id for n in ast.walk(init) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "setattr" not in calls


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_deferrable_defaults_to_the_airflow_setting(cls: type) -> None:
    init = _init_of(cls)
    defaults = dict(zip([a.arg for a in init.args.kwonlyargs], init.args.kw_defaults, strict=True))
    if "deferrable" not in defaults:
        assert not hasattr(cls, "execute_complete"), f"{cls.__name__} defers but takes no deferrable="
        return
    assert ast.unparse(defaults["deferrable"]) == ("conf.getboolean('operators', 'default_deferrable', fallback=False)")
    module = importlib.import_module(cls.__module__)
    from airflow.providers.common.compat.sdk import conf

    assert module.conf is conf
    expected = conf.getboolean("operators", "default_deferrable", fallback=False)
    assert inspect.signature(cls.__init__).parameters["deferrable"].default is expected


def test_the_dict_and_list_fields_render_as_json() -> None:
    for cls in (CloudmaxReportOperator, CloudmaxRequestLinksOperator):
        assert cls.template_fields_renderers == {"extra_fields": "json", "columns": "json", "launch_ids": "json"}
