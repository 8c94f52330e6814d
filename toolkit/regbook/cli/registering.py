"""Commands that register versions and keep the views: ``register``, ``seal``,
``restore``, ``list``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from regbook.cli.common import load_key, open_workspace, role_option
from regbook.cli.options import (
    Context,
    echo_json,
    json_option,
    key_option,
    pass_ctx,
)
from regbook.core.errors import (
    InputError,
)
from regbook.core.schema import STAGES
from regbook.registry.snapshot import LEDGER_ONLY, open_registry
from regbook.reports.listing import list_versions, to_csv, to_text, unvouched
from regbook.workflow.lifecycle import Metric, MetricsAdded, RegistrationRequest, parse_params
from regbook.workflow.lifecycle import register as do_register
from regbook.workflow.lifecycle import seal as do_seal
from regbook.workflow.restore import restore as do_restore

# --- register / seal -------------------------------------------------------------------


@click.command()
@click.argument("model")
@click.option(
    "--artefact",
    type=click.Path(path_type=Path),
    help="File or folder to copy into models/MODEL/VERSION/ and register.",
)
@click.option(
    "--storage",
    help="Register the artefact where it already lives (a path in "
    "the workspace or on a mounted share) instead of copying it.",
)
@click.option(
    "--data-version",
    required=True,
    metavar="HEX",
    help="Training data version: full git commit (40/64 hex) or DVC md5 (32 hex).",
)
@click.option(
    "--code-commit", required=True, metavar="HEX", help="Full git commit of the training code."
)
@click.option("--pipeline-run", required=True, metavar="ID", help="Pipeline execution ID.")
@click.option("--data-repo", default="", metavar="URL", help="Data repository.")
@click.option("--code-repo", default="", metavar="URL", help="Code repository.")
@click.option("--trained-on", metavar="DATE", help="Training date (default: today).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A hyperparameter; repeat for several.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME=VALUE",
    help="A metric, e.g. auc_roc=0.81; repeat for several.",
)
@key_option
@role_option
@json_option
@pass_ctx
def register(
    obj: Context,
    model: str,
    artefact: Path | None,
    storage: str | None,
    data_version: str,
    code_commit: str,
    pipeline_run: str,
    data_repo: str,
    code_repo: str,
    trained_on: str | None,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    key_path: str | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Register and seal a new version of MODEL; print its composite ID.

    \b
    Example:
      regbook register credit-risk --artefact model.pkl \\
          --data-version 3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a --code-commit $(git rev-parse HEAD) \\
          --pipeline-run run-1042 --metric auc_roc=0.83 --key ~/.ssh/regbook_alice
    """

    ws = open_workspace(obj)
    parsed_params: dict[str, str] = {}
    for p in params:
        for name, value in parse_params(p).items():
            if name in parsed_params:
                raise InputError(f"--param {name} is given twice")
            parsed_params[name] = value
    if (artefact is None) == (storage is None):
        raise InputError(
            "give --artefact PATH (copied into the registry) or --storage PATH "
            "(recorded where it lives), not both and not neither"
        )
    request = RegistrationRequest(
        model=model, data_version=data_version, code_commit=code_commit,
        pipeline_run=pipeline_run, artefact=artefact, storage=storage, data_repo=data_repo,
        code_repo=code_repo, trained_on=trained_on, params=parsed_params,
        metrics=tuple(Metric.parse_option(m) for m in metrics),
    )  # fmt: skip
    done = do_register(ws, request, load_key(key_path), role=role)
    if as_json:
        echo_json(done.to_json())
        return
    click.echo(done.composite_id)
    where = f"copied to {done.storage}" if done.copied_from else f"at {done.storage}"
    click.echo(
        f"sealed {done.model}@{done.version} ({done.content_hash}, {where}, ledger "
        f"event {done.seq})",
        err=True,
    )


@click.command()
@key_option
@role_option
@json_option
@pass_ctx
def seal(obj: Context, key_path: str | None, role: str | None, as_json: bool) -> None:
    """Seal every draft row typed into the Models sheet; print their composite IDs.

    Metrics rows typed for a version sealed before (a fairness review done later) are
    sealed as a signed addendum: they add metrics and never change a sealed one.
    If any draft has a problem, every problem is listed by cell and nothing is written.

    \b
    Example:
      regbook seal --key ~/.ssh/regbook_alice
    """

    ws = open_workspace(obj)
    done = do_seal(ws, load_key(key_path), role=role)
    if as_json:
        echo_json([d.to_json() for d in done])
        return
    if not done:
        click.echo("no draft rows to seal", err=True)
    for d in done:
        if isinstance(d, MetricsAdded):
            click.echo(
                f"{d.composite_id}: metrics added {', '.join(d.metrics)} (ledger event {d.seq})"
            )
        else:
            click.echo(d.composite_id)


@click.command()
@json_option
@pass_ctx
def restore(obj: Context, as_json: bool) -> None:
    """Rewrite every view cell from the ledger, keeping drafts and Notes.

    Refuses, listing the findings, when the ledger itself is broken.

    \b
    Example:
      regbook restore
    """

    result = do_restore(open_workspace(obj))
    if as_json:
        echo_json(result.to_json())
        return
    for finding in result.repaired:
        click.echo(f"repaired {finding.where}: {finding.message}")
    for row in result.rows_to_drafts:
        click.echo(f"Models row {row} turned back into a draft (see its Notes)")
    count = len(result.repaired)
    click.echo(
        f"restore: views rewritten from the ledger ({count} finding"
        f"{'s' if count != 1 else ''} repaired)"
    )


# --- list ------------------------------------------------------------------------------


@click.command("list")
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    help="Only versions in this stage.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (safe to open in Excel).")
@json_option
@pass_ctx
def list_(obj: Context, stage: str | None, as_csv: bool, as_json: bool) -> None:
    """List the sealed versions, from the ledger.

    \b
    Example:
      regbook list --stage Production --csv > production.csv
    """

    if as_csv and as_json:
        raise InputError("--csv and --json: choose one")
    # Every row is checked before it is shown: signatures and workflow included.
    snapshot = open_registry(open_workspace(obj), sheets=LEDGER_ONLY)
    frame, warning = list_versions(snapshot, stage=stage)
    if warning:
        click.echo(f"regbook: warning: {warning}", err=True)
    if as_json:
        click.echo(frame.to_json(orient="records", indent=2, force_ascii=False))
    elif as_csv:
        click.echo(to_csv(frame), nl=False)
    else:
        click.echo(to_text(frame, stage, len(snapshot.registry.versions)))
    if unvouched(snapshot) != set():  # the ledger has findings (listed or not)
        sys.exit(1)
