"""Commands that set a registry up: ``init``, ``keys``, ``demo``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from regbook.cli.common import load_key, open_workspace
from regbook.cli.options import (
    Context,
    echo_json,
    json_option,
    pass_ctx,
)
from regbook.core.errors import InputError, KeyProblem
from regbook.core.schema import ROLES
from regbook.crypto.keys import PublicKey, SigningKey, load_keyring
from regbook.demo import run_demo
from regbook.registry.views import keys_values
from regbook.workflow.setup import init_workspace
from regbook.workflow.trust import KeyringChanged, add_key, new_key, revoke_key

# --- init ------------------------------------------------------------------------------


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Make the workspace in a folder that already holds other files (a git "
    "checkout); no file is overwritten.",
)
def init(directory: Path, force: bool) -> None:
    """Create a workspace in DIRECTORY: settings, workbook, keyring, storage.

    DIRECTORY must be new or empty unless --force is given. A .gitignore keeps private
    keys and lock files out of git.

    \b
    Example:
      regbook init registry
      regbook init . --force      # in a git checkout that has a README already
    """

    ws = init_workspace(directory, force=force)
    click.echo(f"created workspace {ws.root}")
    for label, path in (
        ("settings", ws.config_path),
        ("workbook", ws.workbook_path),
        ("keyring", ws.keyring_path),
        ("models", ws.models_dir),
        ("archive", ws.archive_dir),
        ("git", ws.root / ".gitignore"),
    ):
        click.echo(f"  {label:<9} {path.relative_to(ws.root).as_posix()}")
    click.echo(f"  registry  {ws.settings.registry_id}")
    click.echo(
        "next: the governance lead's key first, which signs its own keyring event: "
        "`regbook keys new PRINCIPAL --role governance-lead`"
    )


# --- keys ------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Make, add, revoke and list signing keys (the allowed_signers keyring).

    Every change is a keyring event in the ledger, signed by a governance lead's key
    (--key GOV_KEY). The registry's first governance-lead key signs its own; until a
    registry has one, keys are added without an event.

    \b
    Example:
      regbook keys new gina@example.com --role governance-lead --out keys/gina
      regbook keys new ci@example.com --role ci --out keys/ci --key keys/gina
      regbook keys revoke ci@example.com --key keys/gina
      regbook keys list
    """


roles_option = click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="Role the key may act in; repeat for several.",
)
# Not $REGBOOK_KEY: that is usually the key a command acts with, not a lead's.
gov_key_option = click.option(
    "--key",
    "gov_key",
    metavar="GOV_KEY",
    help="A governance lead's private key, to sign the keyring event.",
)


def _gov_key(path: str | None) -> SigningKey | None:
    return load_key(path) if path else None


def _echo_changed(obj: KeyringChanged, keyring: str) -> None:
    for line in obj.lines:
        click.echo(f"{keyring}: {line}")
    if obj.seqs:
        click.echo(f"keyring event{'s' if len(obj.seqs) > 1 else ''} "
                   f"{', '.join(map(str, obj.seqs))} signed into the ledger")  # fmt: skip
    else:
        click.echo("no keyring event: the registry has no governance-lead key yet")


@keys.command("new")
@click.argument("principal")
@roles_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Where to write the private key (default ~/.ssh/regbook_PRINCIPAL); "
    "the public key goes beside it as .pub.",
)
@gov_key_option
@json_option
@pass_ctx
def keys_new(
    obj: Context,
    principal: str,
    roles: tuple[str, ...],
    out: Path | None,
    gov_key: str | None,
    as_json: bool,
) -> None:
    """Make an ed25519 key for PRINCIPAL and add it to the keyring.

    \b
    Example:
      regbook keys new ci@example.com --role ci --out keys/ci --key keys/gina
    """

    ws = open_workspace(obj)
    done = new_key(ws, principal, roles, out=out, gov_key=_gov_key(gov_key))
    if as_json:
        echo_json(done.to_json())
        return
    click.echo(f"wrote {done.key_path} (private, mode 0600) and {done.key_path}.pub")
    _echo_changed(done, ws.settings.keyring)


@keys.command("add")
@click.argument("principal")
@roles_option
@click.option(
    "--pubkey",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The public key (an id_ed25519.pub line) of a key PRINCIPAL already has.",
)
@gov_key_option
@json_option
@pass_ctx
def keys_add(
    obj: Context,
    principal: str,
    roles: tuple[str, ...],
    pubkey: Path,
    gov_key: str | None,
    as_json: bool,
) -> None:
    """Add a key PRINCIPAL already has (its public half) to the keyring.

    \b
    Example:
      regbook keys add bob@example.com --role sme --pubkey bob.pub --key keys/gina
    """

    ws = open_workspace(obj)
    try:
        text = pubkey.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--pubkey {pubkey}: cannot read: {err}") from None
    try:
        public = PublicKey.parse(text.strip())
    except KeyProblem as err:
        raise KeyProblem(f"--pubkey {pubkey}: {err}") from None
    done = add_key(ws, principal, roles, public, gov_key=_gov_key(gov_key))
    if as_json:
        echo_json(done.to_json())
        return
    _echo_changed(done, ws.settings.keyring)


@keys.command("revoke")
@click.argument("who", metavar="PRINCIPAL|FINGERPRINT")
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="When the key stopped being trusted (UTC, e.g. 2026-12-04T10:00:00Z; "
    "default now). Events the ledger records after the revocation are refused "
    "whatever time they claim.",
)
@gov_key_option
@json_option
@pass_ctx
def keys_revoke(obj: Context, who: str, at: str | None, gov_key: str | None, as_json: bool) -> None:
    """Revoke every key of PRINCIPAL, or the key with FINGERPRINT: valid-before=TIME.

    \b
    Example:
      regbook keys revoke ci@example.com --key keys/gina
      regbook keys revoke SHA256:Jx2c... --at 2026-12-01T00:00:00Z --key keys/gina
    """

    ws = open_workspace(obj)
    when = _time(at) if at else None
    done = revoke_key(ws, who, at=when, gov_key=_gov_key(gov_key))
    if as_json:
        echo_json(done.to_json())
        return
    _echo_changed(done, ws.settings.keyring)


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {text!r}: expected a time like 2026-12-04T10:00:00Z") from None
    if when.tzinfo is None:
        raise InputError(f"--at {text!r}: give the zone, e.g. 2026-12-04T10:00:00Z")
    return when.astimezone(UTC)


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
