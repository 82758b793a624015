"""Is an argument known when the DAG is parsed? One answer for every operator and check.

A value is *templated* when Airflow fills it in at run time: a string (or a list/dict holding one) with
Jinja markup, or an upstream task's output (an ``XComArg``, tested by type). Literal values are checked
when the DAG file is parsed; templated ones once rendered, at the start of ``execute``.

>>> is_templated("s3://lake/{{ ds }}/r.csv"), is_templated(["a", "{% if x %}b{% endif %}"])
(True, True)
>>> is_literal("s3://lake/r.csv"), is_literal(None), is_literal({"Foo": 1})
(True, False, True)
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import XComArg

_JINJA = ("{{", "{%")


def is_templated(value: Any) -> bool:
    """True for a value Airflow renders at run time: Jinja markup in a string (also inside a list, tuple
    or dict) or an :class:`XComArg` (an upstream task's output)."""
    if isinstance(value, XComArg):
        return True
    if isinstance(value, str):
        return any(marker in value for marker in _JINJA)
    if isinstance(value, list | tuple):
        return any(is_templated(v) for v in value)
    if isinstance(value, dict):
        return any(is_templated(k) or is_templated(v) for k, v in value.items())
    return False


def is_literal(value: Any) -> bool:
    """True for a value known when the DAG is parsed: given (not ``None``) and not templated."""
    return value is not None and not is_templated(value)


__all__ = ["is_literal", "is_templated"]
