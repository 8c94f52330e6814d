"""The commands of the trust anchors: ``policy sign|show`` and ``witness``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from regbook.cli.common import load_key, open_workspace
from regbook.cli.options import Context, echo_json, json_option, key_option, pass_ctx
from regbook.registry.snapshot import LEDGER_ONLY, open_registry
from regbook.registry.witness import Witness
from regbook.workflow.trust import policy_status, sign_policy, take_witness

FC = TypeVar("FC", bound=Callable[..., object])

witness_option = click.option(
    "--witness",
    "witness_file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="The newest witness CI keeps: the ledger must hold the head it names.",
)


def witness_out_option(when: str) -> Callable[[FC], FC]:
    """``--witness-out FILE``: write the next witness ``when`` the command succeeds."""
    return click.option(
        "--witness-out",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help=f"{when}, write the next witness (signed by the ci key given as --key).",
    )


def load_witness(path: Path | None) -> Witness | None:
    return Witness.load(path) if path is not None else None


@click.group()
def policy() -> None:
    """Sign regbook.toml's policy into the ledger, or show the policy in force.

    The policy (roles per event kind, roles per transition, the gates) is in force only
    once a governance lead signs it; a regbook.toml that differs is a finding, and no
    writer acts on it.

    \b
    Example:
      regbook policy show
      regbook policy sign --key keys/gina
    """


@policy.command("sign")
@key_option
@json_option
@pass_ctx
def policy_sign(obj: Context, key_path: str | None, as_json: bool) -> None:
    """Record regbook.toml's policy as a policy event signed by a governance lead.

    \b
    Example:
      regbook policy sign --key keys/gina
    """

    done = sign_policy(open_workspace(obj), load_key(key_path))
    if as_json:
        echo_json(done.to_json())
        return
    if done.seq is None:
        click.echo(f"the policy of regbook.toml ({done.policy.sha256[:16]}...) is already in "
                   "force; nothing was written")  # fmt: skip
        return
    for change in done.changes:
        click.echo(f"  {change}")
    click.echo(
        f"policy {done.policy.sha256[:16]}... signed into the ledger (event {done.seq}) "
        f"for registry {done.registry_id}"
    )


@policy.command("show")
@json_option
@pass_ctx
def policy_show(obj: Context, as_json: bool) -> None:
    """Print the policy in force and where regbook.toml differs from it.

    \b
    Example:
      regbook policy show --json
    """

    status = policy_status(open_registry(open_workspace(obj), sheets=LEDGER_ONLY, views=False,
                                         signatures=False))  # fmt: skip
    if as_json:
        echo_json(status.to_json())
        return
    source = status.source
    click.echo(f"registry {status.registry_id or '(no ID)'}")
    click.echo(
        f"policy in force {status.in_force.sha256[:16]}...: "
        + (
            f"signed by {source.signer} in ledger event {source.seq} ({source.at})"
            if source
            else "the built-in defaults (no policy event yet)"
        )
    )
    policy_json = status.in_force.as_json()
    click.echo(f"  [roles] register = {policy_json['roles']['register']}")
    click.echo(f"  [roles] gate = {policy_json['roles']['gate']}")
    click.echo(f"  [roles] scan = {list(status.in_force.scan_roles)}")
    for name, roles in policy_json["transitions"].items():
        click.echo(f'  [transitions] "{name}" = {roles}')
    for name, rule in policy_json["gates"].items():
        click.echo(f'  [gates] {name} = "{rule}"')
    if status.differences:
        click.echo("regbook.toml differs (not in force until `regbook policy sign`):")
        for line in status.differences:
            click.echo(f"  {line}")
    else:
        click.echo("regbook.toml states the policy in force")


@click.command()
@key_option
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the witness.",
)
@click.option(
    "--keyring-sha256",
    metavar="HEX",
    help="Fail unless the keyring file has this SHA-256.",
)
@witness_option
@json_option
@pass_ctx
def witness(
    obj: Context,
    key_path: str | None,
    out: Path,
    keyring_sha256: str | None,
    witness_file: Path | None,
    as_json: bool,
) -> None:
    """After a clean verify, write a witness of the ledger head signed by a ci key.

    The witness names the registry, the head (seq and hash), the keyring's and the
    policy's sha256 and the time. Keep it where only CI writes, and give it to every
    verify (--witness). Artefacts are not part of it: --for-deploy checks those.

    \b
    Example:
      regbook witness --key "$RUNNER_TEMP/ci_key" -o witness/regbook.witness
    """

    ws = open_workspace(obj)
    done = take_witness(
        ws, load_key(key_path), out, keyring_sha256=keyring_sha256,
        previous=load_witness(witness_file),
    )  # fmt: skip
    if as_json:
        echo_json(done.to_json())
        return
    click.echo(
        f"witnessed event {done.seq} ({done.hash[:16]}...) of registry "
        f"{done.registry_id or '(no ID)'}: wrote {out}"
    )
