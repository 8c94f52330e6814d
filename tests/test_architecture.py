"""The shape of the package: imports of regbook's own modules stand at the top of each
module, and no module reaches into another's private names. The layering itself is
import-linter's contract in pyproject.toml, run by `make lint`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toolkit" / "regbook"


def _modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        found.append((rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)))
    assert len(found) > 30, "the scan found too few modules: it is broken"
    return found


def _own_imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    out: list[ast.ImportFrom | ast.Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "regbook" or node.module.startswith("regbook."):
                out.append(node)
        elif isinstance(node, ast.Import):
            if any(a.name == "regbook" or a.name.startswith("regbook.") for a in node.names):
                out.append(node)
    return out


def test_no_function_imports_a_regbook_module():
    local = []
    for rel, tree in _modules():
        if rel == "__init__.py":
            continue  # the package's face loads its API on first use (PEP 562), see there
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{rel}:{n.lineno}" for n in _own_imports(fn)]
    assert local == []


def test_the_scan_sees_a_function_local_import():
    tree = ast.parse("def f():\n    from regbook.core import fs\n")
    fn = tree.body[0]
    assert len(_own_imports(fn)) == 1


def test_no_module_imports_another_modules_private_name():
    reached = []
    for rel, tree in _modules():
        for node in _own_imports(tree):
            if isinstance(node, ast.ImportFrom):
                reached += [
                    f"{rel}:{node.lineno} {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert reached == []


def test_every_subpackage_says_what_it_is_for():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name == "templates":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.parent.name}/__init__.py has no docstring"
