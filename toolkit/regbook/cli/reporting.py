"""Commands that write evidence: ``report ...`` and ``export ...``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from regbook.cli.common import load_key, open_workspace
from regbook.cli.options import (
    Context,
    echo_json,
    json_option,
    key_option,
    pass_ctx,
)
from regbook.cli.trust import load_witness, witness_option
from regbook.core.errors import InputError, plural
from regbook.core.ids import ModelRef
from regbook.registry.snapshot import CARD_SHEETS, LEDGER_ONLY, open_registry
from regbook.reports.card import card_format, write_card
from regbook.reports.evidence import report_format, write_evidence
from regbook.reports.export import export_provenance as do_export
from regbook.reports.export import export_signatures as do_export_signatures
from regbook.reports.export import write_atomic
from regbook.reports.pack import write_pack
from regbook.reports.registry import registry_format, write_registry


@click.group("export")
def export_group() -> None:
    """Export provenance (in-toto / SLSA) and ledger signatures for auditors.

    \b
    Example:
      regbook export provenance credit-risk@7 -o credit-risk-7.intoto.json
      regbook export signatures evidence/signatures
    """


@export_group.command("provenance")
@click.argument("target", metavar="MODEL@VERSION")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Write to FILE (default: standard output).",
)
@click.option("--sign", is_flag=True, help="Wrap the statement in a DSSE envelope signed by --key.")
@click.option(
    "--data-repo",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Local clone of the data repository, to annotate the DVC outputs.",
)
@key_option
@pass_ctx
def export_provenance(
    obj: Context,
    target: str,
    output: Path | None,
    sign: bool,
    data_repo: Path | None,
    key_path: str | None,
) -> None:
    """Write an in-toto Statement v1 with an SLSA Provenance v1 predicate for a version.

    With --sign, a DSSE envelope (payloadType application/vnd.in-toto+json) signed with
    the Ed25519 key; its keyid is the key's SHA256 fingerprint.

    \b
    Example:
      regbook export provenance credit-risk@7 --data-repo ../credit-data -o prov.json
      regbook export provenance credit-risk@7 --sign --key ~/.ssh/regbook_ci -o prov.dsse.json
    """

    source = click.get_current_context().get_parameter_source("key_path")
    if key_path and not sign and source == click.core.ParameterSource.COMMANDLINE:
        raise InputError("--key goes with --sign")
    ref = ModelRef.parse(target)
    ws = open_workspace(obj)
    key = load_key(key_path) if sign else None
    data = do_export(open_registry(ws, sheets=LEDGER_ONLY), ref, key=key, data_repo=data_repo)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    write_atomic(output, data)
    what = "DSSE envelope" if sign else "in-toto statement"
    click.echo(f"wrote {output} ({what} for {ref})", err=True)


@export_group.command("signatures")
@click.argument("directory", type=click.Path(path_type=Path), metavar="DIR")
@json_option
@pass_ctx
def export_signatures(obj: Context, directory: Path, as_json: bool) -> None:
    """Write every ledger event's signed bytes and .sig, the keyring, and a shell script
    that re-checks them all with stock `ssh-keygen -Y verify`.

    \b
    Example:
      regbook export signatures evidence/signatures && sh evidence/signatures/verify-signatures.sh
    """

    # Exported as they are, bad ones included (the script names them); but the ledger is
    # checked first, and the command says so and exits 1 when it has findings.
    snapshot = open_registry(open_workspace(obj), sheets=LEDGER_ONLY)
    done = do_export_signatures(snapshot, directory)
    problems = [f for f in snapshot.ledger_findings + snapshot.rule_findings if f.is_problem]
    if as_json:
        echo_json(done.to_json() | {"ledger_problems": len(problems)})
    else:
        click.echo(f"wrote {done.events} events to {done.folder}")
        if done.unreadable_rows:
            click.echo(
                f"regbook: warning: {plural(done.unreadable_rows, 'ledger row')} unreadable",
                err=True,
            )
        click.echo(f"check them: sh {done.script}")
    if problems:
        click.echo(f"regbook: warning: the ledger has {plural(len(problems), 'problem')}; "
                   "`regbook verify` lists them", err=True)  # fmt: skip
        sys.exit(1)


# --- reports ---------------------------------------------------------------------------


# A command's function, as click's decorators take and give it.
F = TypeVar("F", bound=Callable[..., object])


def output_option(what: str, metavar: str = "FILE") -> Callable[[F], F]:
    return click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(path_type=Path),
        metavar=metavar,
        help=f"Write to {what}.",
    )


def _exit_on_problems(count: int, where: str) -> None:
    """A report is written even when it has problems; then the command exits 1."""
    if count:
        click.echo(f"regbook: {plural(count, 'problem')} found; {where} them at the top", err=True)
        sys.exit(1)


@click.group("report")
def report_group() -> None:
    """Write reports for auditors: a version's evidence report, model card and evidence
    pack, and the registry's own description.

    \b
    Example:
      regbook report evidence credit-risk@7 -o credit-risk-7-evidence.html
      regbook report card credit-risk@7 -o credit-risk-7-card.md
      regbook report pack credit-risk@7 -o credit-risk-7-evidence.zip
      regbook report registry -o registry-description.html
    """


@report_group.command("evidence")
@click.argument("target", metavar="MODEL@VERSION")
@output_option("FILE: .html (one self-contained, printable file), .pdf (A4) or .md")
@pass_ctx
def report_evidence(obj: Context, target: str, output: Path) -> None:
    """Write the evidence report of MODEL@VERSION: identity, artefact check, provenance,
    gates, approvals with their signatures re-checked, archive status, verify findings.

    Problems are never hidden: a version with findings says so at the top of the report,
    and the command exits 1 after writing it.

    \b
    Example:
      regbook report evidence credit-risk@7 -o credit-risk-7-evidence.html
      regbook report evidence credit-risk@7 -o credit-risk-7-evidence.pdf
      regbook report evidence credit-risk@7 -o credit-risk-7-evidence.md
    """

    report_format(output)  # refuse a wrong suffix before any work
    data = write_evidence(open_registry(open_workspace(obj)), ModelRef.parse(target), output)
    click.echo(f"wrote {output} (evidence report for {data['identity']['composite_id']})", err=True)
    _exit_on_problems(data["problems"]["count"], "the report lists")


@report_group.command("card")
@click.argument("target", metavar="MODEL@VERSION")
@output_option("FILE: .md or .html (one self-contained file)")
@pass_ctx
def report_card(obj: Context, target: str, output: Path) -> None:
    """Write the model card of MODEL@VERSION: model details, intended use, out-of-scope
    uses, training data, evaluation (metrics, fairness included, with gate results),
    limitations, ethical considerations, owners.

    The prose comes from the model's row in the Cards sheet (the SME's, not sealed), the
    facts from the sealed ledger; each section names its source, and one with nothing in
    it reads "not documented". A version with findings says so at the top of the card,
    and the command exits 1 after writing it.

    \b
    Example:
      regbook report card credit-risk@7 -o credit-risk-7-card.md
      regbook report card credit-risk@7 -o credit-risk-7-card.html
    """

    card_format(output)  # refuse a wrong suffix before any work
    snapshot = open_registry(open_workspace(obj), sheets=CARD_SHEETS)
    data = write_card(snapshot, ModelRef.parse(target), output)
    click.echo(f"wrote {output} (model card for {data['composite_id']})", err=True)
    if data["cards"]["notice"]:
        click.echo(f"regbook: {data['cards']['notice']}", err=True)
    _exit_on_problems(data["problems"]["count"], "the card lists")


@report_group.command("registry")
@output_option("FILE: .md or .html (one self-contained file)")
@click.option("--no-artefacts", is_flag=True, help="Do not re-hash the artefacts.")
@pass_ctx
def report_registry(obj: Context, output: Path, no_artefacts: bool) -> None:
    """Write the registry's own description for the technical documentation (AISDP
    Modules 3 and 2): its role in the architecture, the versioning scheme and composite
    ID, the stage workflow with the roles and checks for each transition, the gates and
    retention as regbook.toml sets them, the keyring's principals and roles, the CI/CD
    integration and how provenance is kept, and the current Production versions with
    their traceability tags.

    The whole registry is verified first; problems are listed at the top, and the
    command exits 1 after writing.

    \b
    Example:
      regbook report registry -o registry-description.html
    """

    registry_format(output)  # refuse a wrong suffix before any work
    data = write_registry(open_registry(open_workspace(obj)), output, artefacts=not no_artefacts)
    versions = len(data["production"])
    click.echo(f"wrote {output} (registry description, {plural(versions, 'Production version')})",
               err=True)  # fmt: skip
    _exit_on_problems(data["problems"]["count"], "the report lists")


@report_group.command("pack")
@click.argument("target", metavar="MODEL@VERSION")
@output_option("FILE.zip", metavar="FILE.zip")
@witness_option
@json_option
@pass_ctx
def report_pack(
    obj: Context, target: str, output: Path, witness_file: Path | None, as_json: bool
) -> None:
    """Write the evidence pack of MODEL@VERSION: one zip with the evidence report (HTML
    and PDF), the model card, the provenance statement, every ledger signature with a
    script to re-check them with ssh-keygen, copies of the workbook and the keyring, and
    MANIFEST.sha256 (check it with `sha256sum -c`).

    A version with problems still gets its pack, with the problems at the top of every
    report; the command then exits 1.

    \b
    Example:
      regbook report pack credit-risk@7 -o credit-risk-7-evidence.zip
      unzip credit-risk-7-evidence.zip && cd credit-risk-7-evidence && sha256sum -c MANIFEST.sha256
    """

    pack = write_pack(
        open_workspace(obj), ModelRef.parse(target), output, witness=load_witness(witness_file)
    )
    if as_json:
        echo_json(pack.to_json())
    else:
        click.echo(f"wrote {output} (evidence pack for {pack.composite_id}, "
                   f"{len(pack.files)} files under {pack.folder}/)")  # fmt: skip
    for name, why in pack.missing.items():
        click.echo(f"regbook: warning: {name} left out: {why}", err=True)
    _exit_on_problems(pack.problems, "the reports list")
