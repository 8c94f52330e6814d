"""The governance commands: ``approve``, ``gate``, ``promote``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from regbook.cli.common import load_key, open_workspace, role_option
from regbook.cli.options import (
    Context,
    color,
    echo_json,
    json_option,
    key_option,
    pass_ctx,
)
from regbook.cli.trust import witness_out_option
from regbook.core.errors import InputError
from regbook.core.ids import ModelRef
from regbook.core.schema import STAGES
from regbook.core.workspace import refuse_own_files
from regbook.registry.transaction import acting_identity
from regbook.registry.witness import WITNESS_ROLE
from regbook.workflow.governance import approve as do_approve
from regbook.workflow.governance import gate as do_gate
from regbook.workflow.governance import promote as do_promote
from regbook.workflow.trust import take_witness

# --- governance ------------------------------------------------------------------------

stage_choice = click.Choice(STAGES)


@click.command()
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--to", "to_stage", required=True, type=stage_choice, help="Stage approved.")
@click.option("--note", default="", help="Why: kept with the signed approval.")
@key_option
@role_option
@json_option
@pass_ctx
def approve(
    obj: Context,
    target: str,
    to_stage: str,
    note: str,
    key_path: str | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Sign an approval of MODEL@VERSION moving to a stage, naming its content hash.

    \b
    Example:
      regbook approve credit-risk@7 --to Production \\
          --note "fairness review FR-12" --key ~/.ssh/regbook_gina
    """

    done = do_approve(
        open_workspace(obj),
        ModelRef.parse(target),
        to_stage,
        load_key(key_path),
        note=note,
        role=role,
    )
    if as_json:
        echo_json(done.to_json())
        return
    click.echo(
        f"approved {done.ref}: {done.from_stage} -> {done.to_stage} by "
        f"{done.principal} ({done.role}) for {done.content_hash} (ledger event "
        f"{done.seq})"
    )


@click.command()
@click.argument("target", metavar="MODEL@VERSION")
@key_option
@role_option
@json_option
@pass_ctx
def gate(obj: Context, target: str, key_path: str | None, role: str | None, as_json: bool) -> None:
    """Run the validation gates of regbook.toml on the sealed metrics; record the result.

    Once the version has a security scan (`regbook scan`), security_high_findings is the
    scan's critical plus high count, and unknown when the scan was inconclusive.

    Exit 1 when a gate fails (the FAIL is recorded too).

    \b
    Example:
      regbook gate credit-risk@7 --key "$RUNNER_TEMP/ci_key"
    """

    done = do_gate(open_workspace(obj), ModelRef.parse(target), load_key(key_path), role=role)
    if as_json:
        echo_json(done.to_json())
    else:
        click.echo(f"{'gate':<12} {'rule':<36} {'value':>10}  result")
        for r in done.outcome.results:
            value = "missing" if r.value is None else f"{r.value:g}"
            mark = color(r.result, fg="green" if r.result == "PASS" else "red")
            click.echo(f"{r.gate.name:<12} {str(r.gate):<36} {value:>10}  {mark}")
        if done.security:
            click.echo(f"security: {done.security}")
        click.echo(f"{done.ref}: {done.outcome.result} (ledger event {done.seq})")
    if done.outcome.result != "PASS":
        sys.exit(1)


@click.command()
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--to", "to_stage", required=True, type=stage_choice, help="Stage to move to.")
@click.option(
    "--archive-previous",
    is_flag=True,
    help="With --to Production: archive the model's Production version into its bag in "
    "the same command (it needs a signed approval to Archived).",
)
@witness_out_option("After the promotion and a clean verify")
@key_option
@role_option
@json_option
@pass_ctx
def promote(
    obj: Context,
    target: str,
    to_stage: str,
    archive_previous: bool,
    witness_out: Path | None,
    key_path: str | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Move MODEL@VERSION to a stage if every precondition holds; else list every unmet one.

    To Production: a governance-lead approval naming this content hash, the latest gate
    PASS, the artefact's hash re-checked now, and a key with role ci.

    Rollback: an Archived version that was once in Production goes back there with the
    same preconditions (its approval and gate given after the archive); its artefact
    comes back from its bag, which stays.

    \b
    Example:
      regbook promote credit-risk@7 --to Production --key "$RUNNER_TEMP/ci_key"
      regbook promote credit-risk@8 --to Production --archive-previous --key "$RUNNER_TEMP/ci_key"
      regbook promote credit-risk@7 --to Production --archive-previous --key "$RUNNER_TEMP/ci_key"
    """

    ws, ref, key = open_workspace(obj), ModelRef.parse(target), load_key(key_path)
    if archive_previous and to_stage != "Production":
        raise InputError("--archive-previous goes with --to Production")
    if witness_out is not None:
        # Refused before anything is written: the witness needs a ci key and a place.
        refuse_own_files(witness_out, "--witness-out")
        acting_identity(ws, key, (WITNESS_ROLE,), "--witness-out (taking a witness)")
    done = do_promote(ws, ref, to_stage, key, role=role, archive_previous=archive_previous)
    witnessed = take_witness(ws, key, witness_out) if witness_out is not None else None
    if as_json:
        echo_json(done.to_json() | ({"witness": witnessed.to_json()} if witnessed else {}))
        return
    for previous in done.archived:
        click.echo(f"archived {previous} into its bag (archive/{previous.replace('@', '/')})")
    click.echo(
        f"{'rolled back' if done.reinstated else 'promoted'} {done.ref}: {done.from_stage} "
        f"-> {done.to_stage} (signed by {done.principal}, ledger event {done.seq})"
    )
    if done.reinstated:
        click.echo(f"artefact back from its bag (which stays) at {done.reinstated}")
    if witnessed is not None:
        click.echo(f"witnessed event {witnessed.seq}: wrote {witnessed.path}")
