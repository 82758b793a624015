"""The layer rule, read from the imports: ARCHITECTURE.md's "Layers" table is the rule, the code must follow it.

Every import of a ``cloudmax_provider`` module counts, at module level, inside functions and under
``TYPE_CHECKING``: a module imports only its own layer and the layers below it, the import graph has no
cycle, ``testing/`` imports only layers 0-1 and nothing outside ``testing/`` imports it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cloudmax_provider"
ASIDE = "testing"


def layer_table() -> dict[str, int]:
    """Top-level name (sub-package or module of ``cloudmax_provider``) -> layer number, from ARCHITECTURE.md.

    >>> layer_table()["api"], layer_table()["operators"]
    (1, 7)
    """
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    table: dict[str, int] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.match(r"^(\d+|aside)\b", cells[0]):
            continue
        layer = int(cells[0].split()[0]) if cells[0][0].isdigit() else -1
        outside_parentheses = re.sub(r"\([^)]*\)", "", cells[1])
        for name in re.findall(r"`([^`]+)`", outside_parentheses):
            table[name.strip("/")] = layer
    return table


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports anywhere in its file (``from pkg import module`` is the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return {t for t in targets if t in known and t != name}


def layer_of(module: str, table: dict[str, int]) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in table:
        raise AssertionError(f"{module}: {top!r} is in no row of ARCHITECTURE.md's Layers table; add it there")
    return table[top]


GRAPH = {name: imported(name, path, modules()) for name, path in modules().items()}


def test_table_names_every_top_level_module_and_package():
    table = layer_table()
    tops = {name.split(".")[1] if "." in name else "__init__" for name in GRAPH}
    assert tops - set(table) == set(), "modules missing from ARCHITECTURE.md's Layers table"
    assert set(table) - tops == set(), "ARCHITECTURE.md's Layers table names modules that do not exist"
    assert table[ASIDE] == -1
    assert max(table.values()) == 7


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_only_own_and_lower_layers(name):
    table = layer_table()
    mine = layer_of(name, table)
    for target in sorted(GRAPH[name]):
        theirs = layer_of(target, table)
        if mine == -1:  # testing/: layers 0-1 and itself only
            assert theirs in (-1, 0, 1), f"{name} (testing/) imports {target} (layer {theirs}); testing/ uses 0-1"
        else:
            assert theirs != -1, f"{name} imports {target}: nothing outside testing/ imports testing/"
            assert theirs <= mine, f"{name} (layer {mine}) imports {target} (layer {theirs}), a higher layer"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_higher_layer_import(tmp_path):
    """A module that imports upward is caught, so the checks above cannot pass by reading nothing."""
    fake = tmp_path / "window.py"
    fake.write_text("def f():\n    from cloudmax_provider.hooks import cloudmax\n", encoding="utf-8")
    found = imported("cloudmax_provider.windows.window", fake, modules())
    assert found == {"cloudmax_provider.hooks", "cloudmax_provider.hooks.cloudmax"}
    table = layer_table()
    assert layer_of("cloudmax_provider.hooks.cloudmax", table) > layer_of("cloudmax_provider.windows.window", table)
