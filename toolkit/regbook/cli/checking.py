"""Commands that check: ``verify`` and ``trace``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from regbook.check.verify import verify as do_verify
from regbook.cli.common import load_key, open_workspace
from regbook.cli.options import (
    Context,
    color,
    echo_json,
    json_option,
    key_option,
    pass_ctx,
)
from regbook.cli.trust import load_witness, witness_option, witness_out_option
from regbook.core.errors import InputError, plural
from regbook.core.ids import ModelRef
from regbook.lineage.trace import LogAudit, audit_log, render_audit, render_trace, trace_version
from regbook.registry.snapshot import LEDGER_ONLY, open_registry
from regbook.workflow.trust import take_witness

# --- verify / restore ------------------------------------------------------------------


@click.command()
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]")
@click.option("--no-artefacts", is_flag=True, help="Skip re-hashing the artefacts.")
@click.option(
    "--keyring-sha256",
    metavar="HEX",
    help="Fail unless the keyring file has this SHA-256 (pin it in CI).",
)
@click.option(
    "--for-deploy",
    is_flag=True,
    help="CI's check before deploying MODEL@VERSION: exit 0 only if it is in "
    "Production, its workflow is sound and the artefact has the sealed hash.",
)
@click.option(
    "--artefact",
    type=click.Path(path_type=Path),
    help="With --for-deploy: the artefact about to be deployed (default: its storage location).",
)
@witness_option
@witness_out_option("With --for-deploy: after a clean check")
@key_option
@json_option
@pass_ctx
def verify(
    obj: Context,
    target: str | None,
    no_artefacts: bool,
    keyring_sha256: str | None,
    for_deploy: bool,
    artefact: Path | None,
    witness_file: Path | None,
    witness_out: Path | None,
    key_path: str | None,
    as_json: bool,
) -> None:
    """Check the ledger, every view cell and every artefact; list every finding.

    Exit 0 when nothing is wrong, 1 when findings were printed.

    \b
    Example:
      regbook verify --keyring-sha256 $(sha256sum allowed_signers | cut -c1-64)
      regbook verify credit-risk@7 --json
      regbook verify --for-deploy credit-risk@7 --artefact build/model.pkl \\
          --witness witness/regbook.witness --witness-out witness/regbook.witness \\
          --key "$RUNNER_TEMP/ci_key"
    """

    ws = open_workspace(obj)
    scope = ModelRef.parse(target, version_required=for_deploy) if target else None
    if artefact is not None and not for_deploy:
        raise InputError("--artefact goes with --for-deploy")
    if for_deploy and scope is None:
        raise InputError("--for-deploy needs MODEL@VERSION")
    if keyring_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", keyring_sha256.strip()):
        raise InputError(
            f"--keyring-sha256 {keyring_sha256!r}: expected the 64 hex digits sha256sum prints"
        )
    if witness_out is not None and not for_deploy:
        raise InputError("--witness-out goes with --for-deploy (or use `regbook witness`)")
    key = load_key(key_path) if witness_out is not None else None
    witness = load_witness(witness_file)
    snapshot = open_registry(ws, keyring_sha256=keyring_sha256, witness=witness)
    report = do_verify(
        snapshot,
        scope=scope,
        artefacts=not no_artefacts,
        for_deploy=for_deploy,
        deploy_artefact=artefact,
    )
    witnessed = None
    if witness_out is not None and key is not None and report.ok:
        witnessed = take_witness(ws, key, witness_out, snapshot=snapshot)
    if as_json:
        echo_json(report.to_json() | ({"witness": witnessed.to_json()} if witnessed else {}))
    else:
        for finding in report.findings:
            style = {"error": "red", "warning": "yellow"}.get(finding.severity)
            click.echo(color(str(finding), fg=style) if style else str(finding))
        problems = len(report.problems)
        checked = report.artefacts_checked
        what = f"{plural(report.events, 'ledger event')}, {plural(report.versions, 'version')}" + (
            f", {plural(checked, 'artefact')}" if checked else ""
        )
        if problems:
            # The ledger's share is what `regbook list` counts: the two agree.
            click.echo(
                f"verify: {plural(problems, 'problem')} in {what} ({report.ledger_problems} "
                f"in the ledger, {problems - report.ledger_problems} in view cells, keys "
                "and artefacts)"
            )
        else:
            click.echo(f"verify: ok ({what}; registry {report.registry_id or '(no ID)'})")
        if report.deploy is not None:
            verdict = "may be deployed" if report.ok else "must NOT be deployed"
            click.echo(f"{report.deploy['composite_id']} ({report.deploy['stage']}) {verdict}")
        if witnessed is not None:
            click.echo(f"witnessed event {witnessed.seq}: wrote {witnessed.path}")
    if not report.ok:
        sys.exit(1)


# --- lineage: trace and export ---------------------------------------------------------


@click.command()
@click.argument("target", required=False, metavar="[MODEL@VERSION | COMPOSITE-ID]")
@click.option(
    "--code-repo",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Local clone of the code repository (default: the Code repository column "
    "when it is a local folder, else [links] code_repo in regbook.toml).",
)
@click.option(
    "--data-repo",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Local clone of the data (DVC) repository (default: as for --code-repo).",
)
@click.option(
    "--log",
    "log_file",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Audit an inference log (JSON lines or CSV) instead of tracing one version.",
)
@click.option(
    "--id-field",
    default="composite_id",
    show_default=True,
    metavar="NAME",
    help="With --log: the field or column holding the composite ID.",
)
@click.option(
    "--time-field",
    default="timestamp",
    show_default=True,
    metavar="NAME",
    help="With --log: the field or column holding the inference's time (ISO 8601).",
)
@witness_option
@json_option
@pass_ctx
def trace(
    obj: Context,
    target: str | None,
    code_repo: Path | None,
    data_repo: Path | None,
    log_file: Path | None,
    id_field: str,
    time_field: str,
    witness_file: Path | None,
    as_json: bool,
) -> None:
    """Walk a version's provenance chain, or audit an inference log.

    Each link (composite ID, sealed version, artefact, code commit, training data,
    pipeline run, evaluation, approvals and stages) is verified (checked now), signed
    only (the pipeline run: signed with the registration, nothing more to check), not
    checkable (with the reason), or broken. Exit 1 when a link is broken or the log has
    problems, records without a readable time among them.

    \b
    Example:
      regbook trace credit-risk@7+3f9a1c2b7d4e.d1e2f3a4.c0ffee12 --code-repo ../credit-risk
      regbook trace credit-risk@7 --data-repo ../credit-data --json
      regbook trace --log predictions.jsonl
      regbook trace --log served.csv --id-field model_id --time-field served_at
    """

    if (target is None) == (log_file is None):
        raise InputError("give MODEL@VERSION or a composite ID, or --log FILE (not both)")
    for name in ("id_field", "time_field"):
        source = click.get_current_context().get_parameter_source(name)
        if log_file is None and source == click.core.ParameterSource.COMMANDLINE:
            raise InputError(f"--{name.replace('_', '-')} goes with --log")
    if log_file is not None:
        if code_repo is not None or data_repo is not None:
            raise InputError("--code-repo and --data-repo go with a target, not --log")
    witness = load_witness(witness_file)
    snapshot = open_registry(open_workspace(obj), sheets=LEDGER_ONLY, witness=witness)
    if log_file is not None:
        report = audit_log(snapshot, log_file, id_field=id_field, time_field=time_field)
    else:
        report = trace_version(snapshot, target or "", code_repo=code_repo, data_repo=data_repo)
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(render_audit(report) if isinstance(report, LogAudit) else render_trace(report))
    if not report.ok:
        sys.exit(1)
