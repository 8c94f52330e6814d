"""Commands that set a registry up: ``init``, ``keys``, ``demo``."""

from __future__ import annotations

from pathlib import Path

import click

from regbook.cli.common import open_workspace
from regbook.cli.options import (
    Context,
    echo_json,
    json_option,
    pass_ctx,
)
from regbook.core.schema import ROLES
from regbook.crypto.keys import load_keyring
from regbook.demo import run_demo
from regbook.registry.views import keys_values
from regbook.workflow.lifecycle import add_new_key
from regbook.workflow.setup import init_workspace

# --- init ------------------------------------------------------------------------------


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a workspace in DIRECTORY: settings, workbook, keyring, storage.

    \b
    Example:
      regbook init registry
    """

    ws = init_workspace(directory)
    click.echo(f"created workspace {ws.root}")
    for label, path in (
        ("settings", ws.config_path),
        ("workbook", ws.workbook_path),
        ("keyring", ws.keyring_path),
        ("models", ws.models_dir),
        ("archive", ws.archive_dir),
    ):
        click.echo(f"  {label:<9} {path.relative_to(ws.root).as_posix()}")
    click.echo("next: add keys with `regbook keys new PRINCIPAL --role sme`")


# --- keys ------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Make and list signing keys (the allowed_signers keyring).

    \b
    Example:
      regbook keys new gina@example.com --role governance-lead --out keys/gina
      regbook keys list
    """


@keys.command("new")
@click.argument("principal")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="Role the key may act in; repeat for several.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Where to write the private key (default ~/.ssh/regbook_PRINCIPAL); "
    "the public key goes beside it as .pub.",
)
@pass_ctx
def keys_new(obj: Context, principal: str, roles: tuple[str, ...], out: Path | None) -> None:
    """Make an ed25519 key for PRINCIPAL and add it to the keyring.

    \b
    Example:
      regbook keys new ci@example.com --role ci --out keys/ci
    """

    ws = open_workspace(obj)
    key, line = add_new_key(ws, principal, roles, out=out)
    click.echo(f"wrote {key.path} (private, mode 0600) and {key.path}.pub")
    click.echo(f"added to {ws.settings.keyring}: {line}")


@keys.command("list")
@json_option
@pass_ctx
def keys_list(obj: Context, as_json: bool) -> None:
    """Show each keyring entry: principal, roles, fingerprint, validity.

    \b
    Example:
      regbook keys list --json
    """

    ws = open_workspace(obj)
    rows = keys_values(load_keyring(ws))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("the keyring is empty: add keys with `regbook keys new`")
        return
    for r in rows:
        window = ""
        if r["valid_after"] or r["valid_before"]:
            window = f"  valid {r['valid_after'] or '...'} to {r['valid_before'] or '...'}"
        click.echo(
            f"{r['principal']:<28} {r['roles'] or '(no role)':<26} {r['fingerprint']}{window}"
        )


# --- demo ------------------------------------------------------------------------------


@click.command()
@click.argument(
    "directory", required=False, type=click.Path(path_type=Path), default=Path("regbook-demo")
)
def demo(directory: Path) -> None:
    """Build a demo workspace in DIRECTORY (default ./regbook-demo) and walk through it.

    It replaces a demo folder it made itself and refuses any other existing folder.

    \b
    Example:
      regbook demo /tmp/regbook-demo
    """

    run_demo(directory, click.echo)
