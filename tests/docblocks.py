"""Run the command examples of a Markdown document as a user would type them.

The convention (documented in docs/contributing-docs.md) in short:

- A fenced block whose info string is ``console`` is run. In it, a line starting with
  ``$ `` is a command; a command ending in ``\\`` continues on the next line.
- The other lines of the block, up to the next command, are its expected output: each
  must appear in what the command prints (stdout and stderr together), in that order,
  and ``...`` in a line stands for any text. Lines not shown are not checked.
- A command exits 0 unless its last line ends in a comment that starts ``# exit N``.
- Fenced ``python`` blocks are run as scripts. Any other fenced block that holds a
  ``regbook`` command is an error: it would be an example that nothing checks.

All commands of a document run in order in one ``bash`` (so ``cd`` and ``export``
carry over), in a scratch folder, with ``HOME`` pointing into it: a key the document
keeps under ``~/.ssh`` is a temporary one.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parent.parent
EXIT_COMMENT = re.compile(r"(?:^|\s)#\s*exit\s+(\d+)\b")
SHELLISH = re.compile(r"^(?:\$\s+)?regbook\s", re.MULTILINE)


@dataclass
class Command:
    """One ``$`` command of a document, where it is, and what it must do."""

    text: str
    line: int
    exit_code: int = 0
    output: list[str] = field(default_factory=list)

    def where(self, doc: str) -> str:
        return f"{doc}:{self.line}: $ {self.text.splitlines()[0]}"


@dataclass
class Document:
    commands: list[Command]
    python: list[tuple[int, str]]
    unchecked: list[int]  # lines of blocks that hold regbook commands but are not run


def parse(path: Path) -> Document:
    tokens = MarkdownIt().parse(path.read_text(encoding="utf-8"))
    commands: list[Command] = []
    python: list[tuple[int, str]] = []
    unchecked: list[int] = []
    for token in tokens:
        if token.type != "fence" or token.map is None:
            continue
        first = token.map[0] + 2  # the fence is line map[0] + 1; its content starts after
        info = token.info.strip().split()[0] if token.info.strip() else ""
        if info == "console":
            commands += _commands(token.content, first)
        elif info == "python":
            python.append((first, token.content))
        elif SHELLISH.search(token.content) and info not in ("yaml", "text"):
            unchecked.append(first - 1)
    return Document(commands, python, unchecked)


def _commands(block: str, first: int) -> list[Command]:
    found: list[Command] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            start = first + i
            parts = [line[2:]]
            while parts[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                parts.append(lines[i])
            text = "\n".join(parts)
            match = EXIT_COMMENT.search(parts[-1])
            found.append(Command(text, start, int(match.group(1)) if match else 0))
        elif found and line.strip():
            found[-1].output.append(line.rstrip())
        i += 1
    return found


def tool_env(scratch: Path) -> dict[str, str]:
    """The environment the examples run in: ``regbook`` is this checkout's, ``HOME`` is
    a scratch folder, and no REGBOOK_ setting of the machine leaks in."""
    bin_dir = scratch / ".bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / "regbook"
    tool.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m regbook "$@"\n', encoding="utf-8"
    )
    tool.chmod(0o755)
    home = scratch / ".home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGBOOK_")}
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO / "toolkit"),
        NO_COLOR="1",
        LC_ALL="C.UTF-8",
    )
    return env


@dataclass
class Ran:
    command: Command
    exit_code: int
    output: str


def run_commands(commands: list[Command], scratch: Path, env: dict[str, str]) -> list[Ran]:
    """Run ``commands`` in order in one bash, in ``scratch``; each one's exit code and
    output."""
    results = scratch / ".results"
    results.mkdir(exist_ok=True)
    script = ["set +e", f"cd {shlex.quote(str(scratch))}"]
    for n, command in enumerate(commands):
        out = shlex.quote(str(results / f"{n}.out"))
        rc = shlex.quote(str(results / f"{n}.rc"))
        script.append(f"{{\n{command.text}\n}} >{out} 2>&1 </dev/null; echo $? >{rc}")
    subprocess.run(
        ["bash", "-c", "\n".join(script)], env=env, cwd=scratch, check=False, timeout=1800
    )
    ran = []
    for n, command in enumerate(commands):
        rc_file = results / f"{n}.rc"
        code = int(rc_file.read_text()) if rc_file.exists() else -1
        out_file = results / f"{n}.out"
        output = out_file.read_text(encoding="utf-8", errors="replace") if out_file.exists() else ""
        ran.append(Ran(command, code, output))
    return ran


def output_problem(expected: list[str], output: str) -> str | None:
    """None when every expected line appears in ``output``, in order; else the first
    line that does not."""
    actual = [line.rstrip() for line in output.splitlines()]
    at = 0
    for want in expected:
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")))
        while at < len(actual) and not pattern.fullmatch(actual[at]):
            at += 1
        if at == len(actual):
            return want
        at += 1
    return None


def problems(doc: str, ran: list[Ran]) -> list[str]:
    """Every command whose exit code or output is not what the document says."""
    found = []
    for r in ran:
        if r.exit_code != r.command.exit_code:
            found.append(
                f"{r.command.where(doc)}\n  exit {r.exit_code}, the document says "
                f"{r.command.exit_code}\n  output: {r.output.strip()[:1500]}"
            )
            continue
        missing = output_problem(r.command.output, r.output)
        if missing is not None:
            found.append(
                f"{r.command.where(doc)}\n  the document shows {missing!r}, "
                f"not in the output:\n{r.output.strip()[:1500]}"
            )
    return found
