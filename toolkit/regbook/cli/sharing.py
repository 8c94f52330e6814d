"""Commands for using a registry day to day: ``resolve`` (the version a stage holds, for
deploy scripts) and ``log`` (the ledger as text, for people and for git)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from regbook.cli.common import open_workspace
from regbook.cli.options import Context, echo_json, json_option, pass_ctx
from regbook.cli.trust import load_witness, witness_option
from regbook.core.errors import InputError, RegbookError, one_line
from regbook.core.ids import ModelRef
from regbook.registry.snapshot import LEDGER_ONLY, open_registry
from regbook.reports.ledgerlog import read_ledger_file, render_log
from regbook.reports.resolve import resolve_stage

# --- resolve ---------------------------------------------------------------------------


@click.command()
@click.argument("target", metavar="MODEL@STAGE")
@click.option(
    "--keyring-sha256",
    metavar="HEX",
    help="Fail unless the keyring file has this SHA-256 (pin it in CI).",
)
@witness_option
@json_option
@pass_ctx
def resolve(
    obj: Context,
    target: str,
    keyring_sha256: str | None,
    witness_file: Path | None,
    as_json: bool,
) -> None:
    """Print the composite ID and artefact path of the version now in a stage.

    MODEL@Production or MODEL@Staging, as MLflow's models:/MODEL@production: a deploy
    script never hard-codes a version number. --json adds the content hash. Answers
    from the verified ledger only: exit 1, with the findings, when it has any.

    \b
    Example:
      regbook resolve credit-risk@Production
      regbook resolve credit-risk@Staging --json --keyring-sha256 "$KEYRING_SHA256"
    """

    snapshot = open_registry(
        open_workspace(obj),
        sheets=LEDGER_ONLY,
        keyring_sha256=keyring_sha256,
        witness=load_witness(witness_file),
    )
    found = resolve_stage(snapshot, target)
    if as_json:
        echo_json(found.to_json())
    elif found.ok:
        click.echo(f"{found.composite_id} {found.artefact}")
        if found.also_in_stage:
            count = len(found.also_in_stage)
            others = ", ".join(f"@{v}" for v in found.also_in_stage[-5:])
            more = f"{count} others, the last " if count > 5 else ""
            click.echo(
                f"regbook: note: {found.ref.model} {more}{others} also in "
                f"{found.ref.stage}; @{found.version} was moved there last",
                err=True,
            )
    else:
        for finding in found.findings:
            click.echo(str(finding))
        count = len(found.findings)
        click.echo(
            f"resolve: {count} problem{'s' if count != 1 else ''} in the ledger; "
            f"{found.ref} is not resolved (`regbook verify` for details)"
        )
    if not found.ok:
        sys.exit(1)


# --- log -------------------------------------------------------------------------------


@click.command()
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]")
@click.option(
    "--textconv",
    "textconv_file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="For git: print the ledger stored in the workbook FILE, unchecked, and exit 0 "
    "(a file that is no workbook prints why).",
)
@pass_ctx
def log(obj: Context, target: str | None, textconv_file: Path | None) -> None:
    """Print the ledger as text, one event per block.

    Without --textconv the ledger is checked first, and every finding is listed after
    the events (exit 1). With --textconv FILE, git's diff driver: `git diff` and
    `git log -p` on registry.xlsx then print the events added (docs/collaboration.md).

    \b
    Example:
      regbook log credit-risk@7
      git config diff.regbook.textconv "regbook log --textconv"
      echo 'registry.xlsx diff=regbook' >> .gitattributes
    """

    if textconv_file is not None:
        if target is not None:
            raise InputError("--textconv prints a whole workbook's ledger: give no MODEL")
        try:
            events, _ = read_ledger_file(textconv_file)
        except RegbookError as err:
            click.echo(f"(no regbook ledger: {one_line(str(err))})")
            return
        click.echo(render_log(events), nl=False)
        return
    scope = ModelRef.parse(target, version_required=False) if target else None
    snapshot = open_registry(open_workspace(obj), sheets=LEDGER_ONLY)
    events = [
        e
        for e in snapshot.events
        if scope is None
        or (e.model == scope.name and (scope.version is None or e.version == scope.version))
    ]
    if scope is not None and not events:
        raise InputError(f"{scope}: no event in the ledger (`regbook list` names the versions)")
    click.echo(render_log(events), nl=False)
    problems = [f for f in snapshot.findings if f.is_problem]
    if problems:
        click.echo()
        for finding in problems:
            click.echo(str(finding))
        click.echo(
            f"log: {len(problems)} problem{'s' if len(problems) != 1 else ''} in the ledger; "
            "the events above are as stored, not vouched for"
        )
        sys.exit(1)
