"""Commands of the MLflow mirror: ``mlflow push``, ``mlflow check``, ``mlflow import``."""

from __future__ import annotations

import sys

import click

from regbook.cli.common import open_workspace
from regbook.cli.options import Context, echo_json, json_option, pass_ctx
from regbook.core.ids import ModelRef
from regbook.mirror.check import check as do_check
from regbook.mirror.imports import import_versions, parse_versions
from regbook.mirror.mapping import parse_aliases
from regbook.mirror.push import push as do_push
from regbook.registry.snapshot import CARD_SHEETS, open_registry

uri_option = click.option(
    "--tracking-uri",
    "tracking_uri",
    required=True,
    envvar="MLFLOW_TRACKING_URI",
    metavar="URI",
    help="The MLflow tracking server (or $MLFLOW_TRACKING_URI).",
)
alias_option = click.option(
    "--alias",
    "alias_pairs",
    multiple=True,
    metavar="STAGE=ALIAS",
    help="The alias of a stage (default Production=production, Staging=staging); "
    "STAGE= for none. Give the same to every push and check.",
)
pin_option = click.option(
    "--keyring-sha256", metavar="HEX", help="Fail unless the keyring file has this SHA-256."
)


@click.group("mlflow")
def mlflow_group() -> None:
    """Mirror the registry into an MLflow Model Registry, check it, import from it.

    Needs the MLflow client: pip install 'regbook[mlflow]'.

    \b
    Example:
      regbook mlflow push --tracking-uri http://mlflow.internal:5000
      regbook mlflow check --tracking-uri http://mlflow.internal:5000 --json
      regbook mlflow import --tracking-uri http://mlflow.internal:5000 credit-risk --versions 3,4
    """


@mlflow_group.command("push")
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]")
@uri_option
@alias_option
@pin_option
@json_option
@pass_ctx
def push(
    obj: Context,
    target: str | None,
    tracking_uri: str,
    alias_pairs: tuple[str, ...],
    keyring_sha256: str | None,
    as_json: bool,
) -> None:
    """Mirror verified sealed versions into MLflow: a registered model per model, a
    version per sealed version (its artefact under a run), regbook tags, metrics, the
    model card, stage aliases. A second push sends only what changed.

    \b
    Example:
      regbook mlflow push --tracking-uri http://127.0.0.1:5000
      regbook mlflow push --tracking-uri http://127.0.0.1:5000 credit-risk --alias Staging=qa
    """
    only = ModelRef.parse(target) if target else None
    aliases = parse_aliases(alias_pairs) if alias_pairs else None
    snapshot = open_registry(
        open_workspace(obj), sheets=CARD_SHEETS, views=False, keyring_sha256=keyring_sha256
    )
    done = do_push(snapshot, tracking_uri, only=only, aliases=aliases)
    if as_json:
        echo_json(done.to_json())
        return
    for made in done.created:
        click.echo(f"created {made['composite_id']} as MLflow version {made['mlflow_version']}")
    for cid in done.updated:
        click.echo(f"updated {cid}")
    for line in done.aliases:
        click.echo(f"alias {line}")
    if not (done.created or done.updated or done.aliases):
        click.echo(f"{done.uri}: up to date, nothing written")
    click.echo(f"requests: {done.requests['read']} read, {done.requests['write']} write", err=True)


@mlflow_group.command("check")
@click.argument("target", required=False, metavar="[MODEL[@VERSION]]")
@uri_option
@click.option("--no-artefacts", is_flag=True, help="Skip downloading and hashing the artefacts.")
@alias_option
@pin_option
@json_option
@pass_ctx
def check(
    obj: Context,
    target: str | None,
    tracking_uri: str,
    no_artefacts: bool,
    alias_pairs: tuple[str, ...],
    keyring_sha256: str | None,
    as_json: bool,
) -> None:
    """Compare the MLflow registry with the verified ledger: aliases moved by hand, tags
    changed, versions deleted or replaced, artefacts changed, versions the ledger does
    not know. Exit 1 when one is found.

    \b
    Example:
      regbook mlflow check --tracking-uri http://127.0.0.1:5000
      regbook mlflow check --tracking-uri "$MLFLOW_TRACKING_URI" --no-artefacts --json
    """
    only = ModelRef.parse(target) if target else None
    aliases = parse_aliases(alias_pairs) if alias_pairs else None
    snapshot = open_registry(
        open_workspace(obj), sheets=CARD_SHEETS, views=False, keyring_sha256=keyring_sha256
    )
    report = do_check(
        snapshot, tracking_uri, only=only, artefacts=not no_artefacts, aliases=aliases
    )
    if as_json:
        echo_json(report.to_json())
    else:
        for finding in report.findings:
            click.echo(str(finding))
        state = "ok" if report.ok else f"{sum(f.is_problem for f in report.findings)} problem(s)"
        click.echo(
            f"{report.uri}: {report.versions} version(s), {report.artefacts_checked} "
            f"artefact(s) checked: {state}"
        )
    if not report.ok:
        sys.exit(1)


@mlflow_group.command("import")
@click.argument("model", metavar="MODEL")
@uri_option
@click.option(
    "--versions", metavar="LIST", help="MLflow versions to import, as 1,2,5-7 (default: all)."
)
@json_option
@pass_ctx
def import_(
    obj: Context, model: str, tracking_uri: str, versions: str | None, as_json: bool
) -> None:
    """Add MLflow versions of MODEL to the Models sheet as draft rows, their artefacts
    downloaded into models/. Complete what is missing, then run `regbook seal`.

    \b
    Example:
      regbook mlflow import --tracking-uri http://127.0.0.1:5000 credit-risk --versions 3,4
      regbook seal --key ~/.ssh/regbook_alice
    """
    done = import_versions(
        open_workspace(obj), tracking_uri, model, versions=parse_versions(versions)
    )
    if as_json:
        echo_json(done.to_json())
        return
    for draft in done.drafts:
        gaps = f"; fill in {', '.join(draft['missing'])}" if draft["missing"] else ""
        click.echo(
            f"MLflow version {draft['mlflow_version']} -> draft in Models row {draft['row']} "
            f"({draft['storage']}){gaps}"
        )
    for line in done.skipped:
        click.echo(f"skipped {line}")
    if done.drafts:
        click.echo("check the drafts, then run `regbook seal`")
