"""What the root command and every command share, and nothing heavier: the context
the root command makes, ``--key`` and ``--json``, and the ways of printing. (What needs
the library, opening the workspace and loading keys, is in ``regbook.cli.common``.)"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

ENV_KEY = "REGBOOK_KEY"


class Context:
    """What the root command's options say, passed down to every command."""

    def __init__(self, workspace: Path | None, verbose: bool):
        self.workspace_option = workspace
        self.verbose = verbose


pass_ctx = click.make_pass_decorator(Context)


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def color(text: str, *, fg: str) -> str:
    """``text`` in the colour ``fg`` on a terminal, unless NO_COLOR is set."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return click.style(text, fg=fg)


key_option = click.option(
    "--key",
    "key_path",
    metavar="KEY",
    envvar=ENV_KEY,
    help=f"Private SSH key (ed25519) to sign with; or ${ENV_KEY}.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
