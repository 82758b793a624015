"""``get_provider_info()`` names every hook, operator, sensor and trigger module the package has, and every
module and class it names imports (Airflow's ``providers list``, its docs links and lineage read this list)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import cloudmax_provider
from cloudmax_provider import get_provider_info

KINDS = ("hooks", "operators", "sensors", "triggers")


def _base_class(kind: str) -> type:
    """The Airflow class every public class of a ``kind`` module derives from."""
    if kind == "triggers":
        from airflow.triggers.base import BaseTrigger

        return BaseTrigger
    from airflow.providers.common.compat import sdk

    name = {"hooks": "BaseHook", "operators": "BaseOperator", "sensors": "BaseSensorOperator"}[kind]
    return getattr(sdk, name)


def _listed(kind: str) -> list[str]:
    return [module for entry in get_provider_info()[kind] for module in entry["python-modules"]]


def _own_classes(module_name: str, base: type) -> list[Any]:
    """The public classes ``module_name`` defines that derive from ``base``."""
    module = importlib.import_module(module_name)
    return [
        cls
        for cls_name, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module_name and not cls_name.startswith("_") and issubclass(cls, base)
    ]


def _present(kind: str) -> set[str]:
    """The modules of ``cloudmax_provider.<kind>`` that define an Airflow hook/operator/sensor/trigger class.

    Helpers beside them are not listed: ``operators._request_args`` (the arguments the report and request-links
    operators share) and ``hooks.cloudmax_async`` (the trigger's I/O, not an Airflow hook: no connection form,
    no ``conn_type``).
    """
    package = importlib.import_module(f"cloudmax_provider.{kind}")
    names = {info.name for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}.")}
    return {name for name in names if _own_classes(name, _base_class(kind))}


def test_the_helpers_beside_the_listed_modules_are_known() -> None:
    """A module that defines no Airflow class is a helper on purpose, not one forgotten in the list."""
    helpers = {
        f"cloudmax_provider.{kind}.{info.name}"
        for kind in KINDS
        for info in pkgutil.iter_modules(importlib.import_module(f"cloudmax_provider.{kind}").__path__)
    } - {name for kind in KINDS for name in _present(kind)}
    assert helpers == {"cloudmax_provider.operators._request_args", "cloudmax_provider.hooks.cloudmax_async"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_module_is_listed_once(kind: str) -> None:
    listed = _listed(kind)
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == _present(kind), f"{kind}: listed {sorted(listed)}, in the package {sorted(_present(kind))}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_listed_module_imports_and_defines_its_kind(kind: str) -> None:
    base = _base_class(kind)
    for name in _listed(kind):
        assert _own_classes(name, base), f"{name} defines no {base.__name__}"


def test_the_connection_type_names_an_importable_hook() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    module_name, _, class_name = conn_type["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module_name), class_name)
    assert hook.conn_type == conn_type["connection-type"] == "cloudmax"
    assert module_name in _listed("hooks")


def test_the_listed_packages_are_the_ones_airflow_knows() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-cloudmax"
    assert info["versions"] == [cloudmax_provider.__version__]
    assert set(KINDS) <= set(info)
