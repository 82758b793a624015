"""The schema contract: the columns a report is expected to have, against the header Cloudmax served.

The expected columns are the requested ones (CustomColName, under their new names) or, without ``columns=``,
the catalog's. A served header that differs (a column missing, added, or renamed: one of each) is found when
the header is read, before any row is written, and ``schema_change`` decides:

* ``"evolve"`` (the default): land the columns as served (a new column typed by the catalog's rule for its
  name; an Iceberg table gains it, and keeps a missing one, null in the new rows), and say so in the log and
  in the landing's XCom. Cloudmax adding a column does not stop a nightly pipeline.
* ``"fail"``: fail the task before anything lands, naming the columns.
* ``"ignore"``: land exactly the expected columns: added ones dropped, missing ones null (typed formats and
  XCom rows; CSV lands bytes as served, so it takes ``"evolve"`` or ``"fail"``).

Reports whose columns the spec does not document (11001-11004, 21001) have no contract: they land as served.

Example::

    >>> diff = HeaderDiff.of(("LaunchID", "OpenCount"), ["LaunchID", "OpenCount", "F3OpenCount"])
    >>> diff.added, diff.missing, diff.describe()
    (('F3OpenCount',), (), 'added F3OpenCount')
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudmax_provider.exceptions import CloudmaxConfigError, CloudmaxSchemaChangeError


class SchemaChange(enum.StrEnum):
    """What a served header that differs from the expected columns does (see the module's docstring)."""

    EVOLVE = "evolve"
    FAIL = "fail"
    IGNORE = "ignore"

    @classmethod
    def coerce(cls, value: Any) -> SchemaChange:
        """``"evolve"``, ``"fail"`` or ``"ignore"`` (exactly; a typo is refused, naming the choices)."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in cls)
            raise CloudmaxConfigError(
                f"schema_change={value!r} must be one of {choices}: what a report header that differs from the "
                "expected columns does (docs/lake-tables.md)"
            ) from None


@dataclass(frozen=True)
class HeaderDiff:
    """The columns a served header adds to, and lacks from, the expected ones (order is not a change)."""

    added: tuple[str, ...]
    missing: tuple[str, ...]

    @classmethod
    def of(cls, expected: Sequence[str], served: Sequence[str]) -> HeaderDiff | None:
        """The difference, or None when the served header has exactly the expected columns."""
        known = set(expected)
        added = tuple(name for name in served if name not in known)
        missing = tuple(name for name in expected if name not in set(served))
        return cls(added, missing) if added or missing else None

    def describe(self) -> str:
        parts = [f"added {', '.join(self.added)}"] if self.added else []
        parts += [f"missing {', '.join(self.missing)}"] if self.missing else []
        return "; ".join(parts)

    def as_xcom(self) -> dict[str, list[str]]:
        return {"added": list(self.added), "missing": list(self.missing)}


def check_header(
    expected: Sequence[str], served: Sequence[str], policy: SchemaChange, source: str
) -> tuple[HeaderDiff | None, list[str]]:
    """The difference between the expected columns and a served header, and the columns to land: the served
    ones (``evolve``), the expected ones (``ignore``); ``fail`` raises on any difference. No contract (nothing
    expected): the served header, unchanged.

    Example::

        >>> check_header(("a", "b"), ["a", "c"], SchemaChange.IGNORE, "r.csv")
        (HeaderDiff(added=('c',), missing=('b',)), ['a', 'b'])
    """
    diff = HeaderDiff.of(expected, served) if expected else None
    if diff is None:
        return None, list(served)
    if policy is SchemaChange.FAIL:
        raise CloudmaxSchemaChangeError(
            f"{source}: the report's columns changed ({diff.describe()}; expected {', '.join(expected)}); nothing "
            "was landed. Set schema_change='evolve' to land the columns as served, or 'ignore' to land the "
            "expected ones, or columns= to request the ones you want"
        )
    return diff, list(expected) if policy is SchemaChange.IGNORE else list(served)


__all__ = ["HeaderDiff", "SchemaChange", "check_header"]
