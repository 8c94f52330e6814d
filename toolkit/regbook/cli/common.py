"""What the commands share that needs the library: the workspace the root command's
options name, the signing key a command is given (``--key`` or $REGBOOK_KEY), and
``--role``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from regbook.cli.options import ENV_KEY, Context
from regbook.core.errors import InputError
from regbook.core.schema import ROLES
from regbook.core.workspace import Workspace
from regbook.crypto.keys import SigningKey, load_private_key


def load_key(path: str | None) -> SigningKey:
    """The private key ``--key`` (or $REGBOOK_KEY) names; a passphrase is asked for at a
    terminal, or read from REGBOOK_KEY_PASSPHRASE."""
    chosen = path or os.environ.get(ENV_KEY)
    if not chosen:
        raise InputError(f"no signing key: give --key PATH or set {ENV_KEY}")

    def prompt() -> str:
        if not sys.stdin.isatty():
            raise InputError(
                f"{chosen} is encrypted: set REGBOOK_KEY_PASSPHRASE or run in a terminal"
            )
        return click.prompt(f"Passphrase for {chosen}", hide_input=True, err=True)

    return load_private_key(Path(chosen).expanduser(), prompt)


def open_workspace(obj: Context) -> Workspace:
    """The workspace ``--workspace`` (or $REGBOOK_WORKSPACE, or the folders above) names."""
    return Workspace.find(obj.workspace_option)


role_option = click.option(
    "--role",
    type=click.Choice(ROLES),
    help="Role to act in when the key has several that would do.",
)
