"""No function or method longer than 80 lines (``def`` line to last line, decorators excluded).

The walk covers ``cloudmax_provider/``, ``bench/`` and ``example_dags/``; a file counts when it lies under one
of ``CHECKED`` (all of them).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 80
ROOTS = ["cloudmax_provider", "bench", "example_dags"]
CHECKED = ROOTS  # the whole package, bench/ and example_dags/


def long_functions(paths: list[Path], base: Path = ROOT, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (N lines)`` for every function or method of ``paths`` longer than ``limit`` lines."""
    found: list[str] = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(base)}:{node.lineno} {node.name} ({length} lines)")
    return found


def checked_files() -> list[Path]:
    """The Python files under ``ROOTS`` that lie under one of ``CHECKED``."""
    files = sorted(p for root in ROOTS for p in (ROOT / root).rglob("*.py") if "__pycache__" not in p.parts)
    return [p for p in files if any(p.relative_to(ROOT).as_posix().startswith(c.rstrip("/") + "/") for c in CHECKED)]


def test_checked_folders_exist() -> None:
    assert all((ROOT / c).is_dir() for c in CHECKED), CHECKED
    assert all(any(c == r or c.startswith(r + "/") for r in ROOTS) for c in CHECKED), (CHECKED, ROOTS)


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    """81 lines is too long, at module level or nested; 80 is not."""
    long_body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))  # the def line + 80 = 81 lines
    ok_body = "".join(f"        y{i} = {i}\n" for i in range(MAX_LINES - 1))  # the def line + 79 = 80 lines
    nested = "".join(f"            z{i} = {i}\n" for i in range(MAX_LINES))
    module = tmp_path / "m.py"
    module.write_text(
        f"def long():\n{long_body}\n\nclass C:\n    async def ok(self):\n{ok_body}\n"
        f"    def outer(self):\n        def inner():\n{nested}        return inner\n"
    )
    found = long_functions([module], base=tmp_path)
    assert found[0] == "m.py:1 long (81 lines)"
    assert [f.split(" ", 1)[1] for f in found] == ["long (81 lines)", "outer (83 lines)", "inner (81 lines)"]


def test_no_function_over_80_lines() -> None:
    files = checked_files()
    assert files
    found = long_functions(files)
    assert not found, f"functions over {MAX_LINES} lines (split them):\n" + "\n".join(found)
