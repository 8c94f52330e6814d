"""The ``scan`` command: the security scan of a version's artefact, as a signed event."""

from __future__ import annotations

import sys

import click

from regbook.cli.common import load_key, open_workspace, role_option
from regbook.cli.options import Context, color, echo_json, json_option, key_option, pass_ctx
from regbook.core.ids import ModelRef
from regbook.workflow.governance import scan as do_scan


@click.command()
@click.argument("target", metavar="MODEL@VERSION")
@key_option
@role_option
@json_option
@pass_ctx
def scan(obj: Context, target: str, key_path: str | None, role: str | None, as_json: bool) -> None:
    """Scan every file of MODEL@VERSION's artefact without loading it; record it signed.

    The artefact's content hash is checked first: a changed artefact is refused. Each
    file's format is told by its bytes; pickle-based files are disassembled, never
    loaded. The scan is signed by a ci key by default ([roles] scan). Once a version has
    a scan, the security gate reads it instead of a typed security_high_findings.

    Exit 1 when the scan finds critical or high findings, or cannot vouch for a file
    (inconclusive); the scan is recorded either way.

    \b
    Example:
      regbook scan credit-risk@7 --key "$RUNNER_TEMP/ci_key"
      regbook scan credit-risk@7 --json --key "$RUNNER_TEMP/ci_key" > scan.json
    """

    done = do_scan(open_workspace(obj), ModelRef.parse(target), load_key(key_path), role=role)
    report = done.report
    if as_json:
        echo_json(done.to_json())
    else:
        click.echo(f"{'file':<40} {'format':<22} {'code on load':<13} verdict")
        for f in report.files:
            mark = {"clean": "green", "findings": "red", "inconclusive": "yellow"}[f.verdict]
            runs = "yes" if f.runs_code else "no"
            click.echo(f"{f.path:<40} {f.format:<22} {runs:<13} {color(f.verdict, fg=mark)}")
            for item in f.findings:
                click.echo(f"    {item.severity:<9} {item.rule}: {item.global_name or item.detail}")
            if f.problem:
                click.echo(f"    inconclusive: {f.problem}")
        counts = ", ".join(f"{n} {severity}" for severity, n in report.counts.items())
        click.echo(
            f"{done.ref}: {report.verdict} ({counts}; {report.scanner} "
            f"{report.scanner_version}; ledger event {done.seq})"
        )
        if done.typed is not None and (report.inconclusive or done.typed != report.high_findings):
            click.echo(
                f"note: the sealed security_high_findings is {done.typed:g}; the security "
                "gate now reads this scan instead"
            )
    if report.high_findings or report.inconclusive:
        sys.exit(1)
