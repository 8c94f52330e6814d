"""Meta-tests that keep the surface honest: help texts, examples, documented codes,
the README's promises."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from regbook.cli import cli
from regbook.cli.app import COMMANDS
from regbook.core.findings import CODES

ROOT = Path(__file__).resolve().parents[1]


def all_commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        out.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            out.extend(all_commands(command, f"{prefix}{name} "))
    return out


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda x: str(x))
def test_every_command_has_help_and_an_example(name, command):
    assert command.help and len(command.help.strip()) > 20, name
    assert "Example:" in command.help, f"{name} has no example"
    example = command.help.split("Example:", 1)[1]
    assert "regbook " + name.split()[0] in example, f"{name}'s example does not use it"


def test_the_command_table_says_what_each_command_says():
    """`regbook --help` lists the commands from a table (so it imports no command): its
    summaries are the first paragraphs of the commands' own help."""
    for name, (module, function, summary) in COMMANDS.items():
        command = getattr(importlib.import_module(module), function)
        assert command.name == name
        first = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert " ".join(first.split()) == summary, name


def test_help_imports_no_command_and_no_library():
    code = (
        "import sys; from regbook.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('regbook.')"
        " and not m.startswith(('regbook.cli.app', 'regbook.cli.options', 'regbook.core'))"
        " and m != 'regbook.cli'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_finding_code_is_documented():
    doc = (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### (RB\d{3}) ", doc, re.MULTILINE))
    assert documented == set(CODES)
    for code, (severity, title) in CODES.items():
        assert f"### {code} — {title} ({severity})" in doc


def test_every_code_the_code_base_emits_is_known():
    """Every module in every subpackage, but the catalogue itself: it names every code,
    so with it in the scan no code would ever look unused nor the scan broken."""
    import regbook
    from regbook.core import findings

    package = ROOT / "toolkit" / "regbook"
    catalogue = package / Path(findings.__file__).relative_to(Path(regbook.__file__).parent)
    used = set()
    for path in package.rglob("*.py"):
        if path != catalogue:
            used |= set(re.findall(r'"(RB\d{3})"', path.read_text(encoding="utf-8")))
    assert used <= set(CODES), used - set(CODES)
    assert used, "no finding codes found: the scan is broken"


def test_readme_keeps_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```(?:sh)?\n(.*?)```", setup, re.DOTALL)
    assert block and block[0].split("\n")[:2] == ["make demo", "make test"]
    assert len([ln for ln in block[0].splitlines() if ln.strip()]) == 2


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# An absolute checkout root that must never leak into committed files; spelled in
# pieces so that this file does not contain it either.
MACHINE_ROOT = "/" + "work" + "/"


def test_no_machine_paths_in_the_repository():
    for path in ROOT.rglob("*"):
        if any(
            part
            in {
                ".venv",
                ".git",
                "__pycache__",
                ".hypothesis",
                ".pytest_cache",
                ".out",
                "regbook-demo",
                ".ruff_cache",
                ".mypy_cache",
            }
            for part in path.parts
        ):
            continue
        if path.is_file() and path.suffix in {".py", ".md", ".cfg", ".toml", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert MACHINE_ROOT not in text, path
