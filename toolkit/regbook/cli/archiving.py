"""The archive commands: ``archive``, ``retrieve``, ``fixity``."""

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
from regbook.core.errors import plural
from regbook.core.ids import ModelRef
from regbook.workflow.archive import archive as do_archive
from regbook.workflow.archive import fixity as do_fixity
from regbook.workflow.archive import retrieve as do_retrieve

# --- archive: archive / retrieve / fixity ---------------------------------------------


@click.command("archive")
@click.argument("target", metavar="MODEL@VERSION")
@key_option
@role_option
@json_option
@pass_ctx
def archive_(
    obj: Context, target: str, key_path: str | None, role: str | None, as_json: bool
) -> None:
    """Move MODEL@VERSION into archive/NAME/VERSION/ as a BagIt bag; record it as Archived.

    Needs a signed approval to Archived. Only an original in the workspace's models/
    is removed (after the bag is validated and the move recorded); one elsewhere is
    copied and left in place. Run it again to finish a move that was interrupted.

    \b
    Example:
      regbook approve credit-risk@6 --to Archived --key ~/.ssh/regbook_gina
      regbook archive credit-risk@6 --key ~/.ssh/regbook_gina
    """

    done = do_archive(open_workspace(obj), ModelRef.parse(target), load_key(key_path), role=role)
    if as_json:
        echo_json(done.to_json())
        return
    for note in done.notes:
        click.echo(note)
    click.echo(
        f"archived {done.ref} in {done.storage} (retain until {done.retain_until}, "
        f"ledger event {done.seq})"
    )
    if done.removed:
        click.echo(f"removed the original {done.removed} (the bag holds a verified copy)")
    if done.kept:
        click.echo(
            f"the original {done.kept} is outside the workspace's models/: copied, left in place"
        )


@click.command()
@click.argument("target", metavar="MODEL@VERSION")
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Folder to copy the artefact into (must not exist, or be empty).",
)
@json_option
@pass_ctx
def retrieve(obj: Context, target: str, to: Path, as_json: bool) -> None:
    """Validate an archived version's bag, copy its artefact out, print its composite ID.

    A bag that does not validate is refused (exit 1) with every failing file; nothing
    is copied.

    \b
    Example:
      regbook retrieve credit-risk@6 --to restored/credit-risk-6
    """

    done = do_retrieve(open_workspace(obj), ModelRef.parse(target), to)
    if as_json:
        echo_json(done.to_json())
        return
    click.echo(done.composite_id)
    click.echo(f"copied {plural(done.files, 'file')} to {done.to} ({done.content_hash})", err=True)


@click.command()
@click.option("--fast", is_flag=True, help="Check Payload-Oxum and tag files only.")
@json_option
@pass_ctx
def fixity(obj: Context, fast: bool, as_json: bool) -> None:
    """Validate every archived bag; list every problem. Exit 1 when one is found.

    \b
    Example:
      regbook fixity --json > fixity-$(date +%F).json
    """

    report = do_fixity(open_workspace(obj), fast=fast)
    if as_json:
        echo_json(report.to_json())
    else:
        for finding in report.findings:
            click.echo(str(finding))
        for bag in report.bags:
            due = "  DUE within 12 months" if bag.get("due_within_12_months") else ""
            click.echo(
                f"{bag['model']}@{bag['version']}  {bag['storage']}  retain until "
                f"{bag['retain_until'] or '?'}{due}"
            )
        bad = sum(1 for b in report.bags if not b["ok"])
        mode = (
            "fast: sizes and file counts checked, not hashes"
            if fast
            else "full: every hash checked"
        )
        if bad:
            have = "has" if bad == 1 else "have"
            click.echo(
                f"fixity ({mode}): {bad} of {plural(len(report.bags), 'bag')} {have} problems"
            )
        else:
            click.echo(f"fixity ({mode}): ok ({plural(len(report.bags), 'bag')})")
    if not report.ok:
        sys.exit(1)
