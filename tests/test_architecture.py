"""The shape of the package: imports of regbook's own modules stand at the top of each
module, and no module reaches into another's private names. The layering itself is
import-linter's contract in pyproject.toml, run by `make lint`."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
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


def test_every_name_of_the_public_api_is_there():
    import regbook

    assert "open_registry" in regbook.__all__ and "verify" in regbook.__all__
    for name in regbook.__all__:
        assert getattr(regbook, name) is not None, name


def test_the_readme_python_section_runs(tmp_path: Path):
    """The README's "Using regbook from Python" example, run as written."""
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using regbook from Python", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("REGBOOK_")},
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert re.fullmatch(r"credit-risk@1\+[0-9a-f]{12}\.3f6c1e0d\.c0ffee12", first)
    assert re.fullmatch(r"None sha256:[0-9a-f]{64}", second)
    assert (tmp_path / "registry" / "registry.xlsx").is_file()
