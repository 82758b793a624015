"""Types are recognised by class, never by name (issue 20): no ``type(x).__name__`` or ``x.__class__.__name__``
inside a comparison or an ``in`` test anywhere in the package (a name in a message is fine).

>>> names_compared("if 'NotFound' in type(exc).__name__: pass")
['<string>:1']
>>> names_compared("log.info('%s', type(exc).__name__)")
[]
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _is_class_name(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Attribute) and node.attr in ("__name__", "__qualname__")):
        return False
    owner = node.value
    called_type = isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "type"
    return called_type or (isinstance(owner, ast.Attribute) and owner.attr == "__class__")


def names_compared(source: str, filename: str = "<string>") -> list[str]:
    """``file:line`` of every comparison (``==``, ``in``, ``str.endswith`` ...) made on a class's name."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        operands: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith", "find", "count")
        ):
            operands = [node.func.value]
        if any(_is_class_name(op) for op in operands):
            found.append(f"{filename}:{node.lineno}")
    return found


def test_no_type_is_recognised_by_its_name() -> None:
    found = []
    for path in sorted((ROOT / "cloudmax_provider").rglob("*.py")):
        found += names_compared(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], f"recognise these types by class (isinstance / except), not by name: {found}"


def test_the_check_finds_a_name_test() -> None:
    assert names_compared("ok = type(e).__name__ == 'ReadTimeoutError'") == ["<string>:1"]
    assert names_compared("ok = e.__class__.__name__.endswith('XComArg')") == ["<string>:1"]
