"""The ``regbook`` command line: one thin client of the library.

Each command parses its options, calls one library function and renders the result.
Errors map to exit codes in one place (``main``): 1 findings, 2 bad input, 3 workbook
open or locked. Heavy libraries (pandas, openpyxl) are imported only by the commands
that need them, so ``regbook --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from regbook import __version__
from regbook.check.verify import verify as do_verify
from regbook.core.errors import (
    InputError,
    RegbookError,
    VerificationFailed,
    cut,
    message_line,
    message_lines,
    one_line,
)
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.crypto.keys import load_keyring, load_private_key
from regbook.demo import run_demo
from regbook.lineage.trace import LogAudit, audit_log, render_audit, render_trace, trace_version
from regbook.registry.snapshot import open_registry
from regbook.registry.views import keys_values
from regbook.reports.card import card_format, write_card
from regbook.reports.evidence import report_format, write_evidence
from regbook.reports.export import export_provenance as do_export
from regbook.reports.export import export_signatures as do_export_signatures
from regbook.reports.export import write_atomic
from regbook.reports.listing import list_versions, to_csv, to_text
from regbook.reports.pack import write_pack
from regbook.reports.registry import registry_format, write_registry
from regbook.workflow.archive import archive as do_archive
from regbook.workflow.archive import fixity as do_fixity
from regbook.workflow.archive import retrieve as do_retrieve
from regbook.workflow.governance import approve as do_approve
from regbook.workflow.governance import gate as do_gate
from regbook.workflow.governance import promote as do_promote
from regbook.workflow.lifecycle import Metric, RegistrationRequest, add_new_key, parse_params
from regbook.workflow.lifecycle import register as do_register
from regbook.workflow.lifecycle import seal as do_seal
from regbook.workflow.restore import restore as do_restore
from regbook.workflow.setup import init_workspace

ENV_KEY = "REGBOOK_KEY"


class Context:
    def __init__(self, workspace: Path | None, verbose: bool):
        self.workspace_option = workspace
        self.verbose = verbose

    def workspace(self) -> Any:

        return Workspace.find(self.workspace_option)


pass_ctx = click.make_pass_decorator(Context)


def _load_key(path: str | None) -> Any:

    chosen = path or os.environ.get(ENV_KEY)
    if not chosen:
        raise InputError(f"no signing key: give --key PATH or set {ENV_KEY}")

    def prompt() -> str:
        if not sys.stdin.isatty():
            raise InputError(
                f"{chosen} is encrypted: set REGBOOK_KEY_PASSPHRASE or run in a terminal"
            )
        return click.prompt(f"Passphrase for {chosen}", hide_input=True, err=True)

    return load_private_key(Path(chosen).expanduser(), prompt)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _color(text: str, **style: Any) -> str:
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return click.style(text, **style)


key_option = click.option(
    "--key",
    "key_path",
    metavar="KEY",
    envvar=ENV_KEY,
    help=f"Private SSH key (ed25519) to sign with; or ${ENV_KEY}.",
)
role_option = click.option(
    "--role",
    type=click.Choice(["sme", "governance-lead", "ci"]),
    help="Role to act in when the key has several that would do.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


class RegbookGroup(click.Group):
    """Maps regbook's errors to exit codes and one-line messages, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VerificationFailed as err:
            for finding in err.findings:
                click.echo(one_line(str(finding)))
            self._fail(ctx, err, message_lines(err), err.exit_code)
        except RegbookError as err:
            self._fail(ctx, err, message_lines(err), err.exit_code)
        except KeyboardInterrupt:
            click.echo("regbook: interrupted", err=True)
            ctx.exit(130)
        except click.UsageError as err:
            self._usage(ctx, err)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own exits
        except OSError as err:
            # The file system refused: a permission, a full disk, a name too long.
            where = f"{err.filename}: " if err.filename else ""
            self._fail(ctx, err, [message_line(f"{where}{err.strerror or err}")], 2)
        except Exception as err:  # noqa: BLE001 - the last word: one line, never a traceback
            text = f"unexpected error ({type(err).__name__}: {cut(str(err), 200)})"
            self._fail(ctx, err, [message_line(f"{text}; please report it, with --verbose")], 2)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:  # an option of regbook itself
            self._usage(ctx, err)
            raise  # not reached: _usage exits

    def _usage(self, ctx: click.Context, err: click.UsageError) -> None:
        """Bad usage, on one line like every other refusal, pointing at the help (a
        group run without a command shows its help, as click does)."""
        if isinstance(err, click.exceptions.NoArgsIsHelpError):
            raise err
        where = err.ctx.command_path if err.ctx is not None else "regbook"
        line = message_line(f"{err.format_message()} (see `{where} --help`)")
        self._fail(ctx, err, [line], err.exit_code)

    @staticmethod
    def _fail(ctx: click.Context, err: BaseException, lines: list[str], code: int) -> None:
        if isinstance(ctx.obj, Context) and ctx.obj.verbose:
            traceback.print_exception(err)
        for n, line in enumerate(lines):
            click.echo(line if n else f"regbook: {line}", err=True)
        ctx.exit(code)


@click.group(cls=RegbookGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regbook")
@click.option(
    "--workspace",
    "-w",
    type=click.Path(path_type=Path),
    metavar="DIR",
    envvar="REGBOOK_WORKSPACE",
    help="The workspace (default: the nearest regbook.toml above the current "
    "folder, or $REGBOOK_WORKSPACE).",
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, verbose: bool) -> None:
    """regbook: a compliance-grade model registry kept in an Excel workbook.

    \b
    Example:
      regbook init registry && cd registry
      regbook keys new alice@example.com --role sme --out ~/.ssh/regbook_alice
      regbook register credit-risk --artefact model.pkl --data-version HEX \\
          --code-commit HEX --pipeline-run run-42 --key ~/.ssh/regbook_alice
      regbook verify
    """
    ctx.obj = Context(workspace, verbose)


# --- init ------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a workspace in DIRECTORY: settings, workbook, keyring, storage.

    \b
    Example:
      regbook init registry
    """

    ws = init_workspace(directory)
    click.echo(f"created workspace {ws.root}")
    for label, path in (
        ("settings", ws.config_path),
        ("workbook", ws.workbook_path),
        ("keyring", ws.keyring_path),
        ("models", ws.models_dir),
        ("archive", ws.archive_dir),
    ):
        click.echo(f"  {label:<9} {path.relative_to(ws.root).as_posix()}")
    click.echo("next: add keys with `regbook keys new PRINCIPAL --role sme`")


# --- keys ------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Make and list signing keys (the allowed_signers keyring).

    \b
    Example:
      regbook keys new gina@example.com --role governance-lead --out keys/gina
      regbook keys list
    """


@keys.command("new")
@click.argument("principal")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(["sme", "governance-lead", "ci"]),
    help="Role the key may act in; repeat for several.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Where to write the private key (default ~/.ssh/regbook_PRINCIPAL); "
    "the public key goes beside it as .pub.",
)
@pass_ctx
def keys_new(obj: Context, principal: str, roles: tuple[str, ...], out: Path | None) -> None:
    """Make an ed25519 key for PRINCIPAL and add it to the keyring.

    \b
    Example:
      regbook keys new ci@example.com --role ci --out keys/ci
    """

    ws = obj.workspace()
    key, line = add_new_key(ws, principal, roles, out)
    click.echo(f"wrote {key.path} (private, mode 0600) and {key.path}.pub")
    click.echo(f"added to {ws.settings.keyring}: {line}")


@keys.command("list")
@json_option
@pass_ctx
def keys_list(obj: Context, as_json: bool) -> None:
    """Show each keyring entry: principal, roles, fingerprint, validity.

    \b
    Example:
      regbook keys list --json
    """

    ws = obj.workspace()
    rows = keys_values(load_keyring(ws))
    if as_json:
        _echo_json(rows)
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


# --- register / seal -------------------------------------------------------------------


@cli.command()
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

    ws = obj.workspace()
    parsed_params: dict[str, str] = {}
    for p in params:
        for name, value in parse_params(p).items():
            if name in parsed_params:
                raise InputError(f"--param {name} is given twice")
            parsed_params[name] = value
    request = RegistrationRequest(
        model=model, data_version=data_version, code_commit=code_commit,
        pipeline_run=pipeline_run, artefact=artefact, storage=storage, data_repo=data_repo,
        code_repo=code_repo, trained_on=trained_on, params=parsed_params,
        metrics=tuple(Metric.parse_option(m) for m in metrics),
    )  # fmt: skip
    done = do_register(ws, request, _load_key(key_path), role)
    if as_json:
        _echo_json(done.to_json())
        return
    click.echo(done.composite_id)
    where = f"copied to {done.storage}" if done.copied_from else f"at {done.storage}"
    click.echo(
        f"sealed {done.model}@{done.version} ({done.content_hash}, {where}, ledger "
        f"event {done.seq})",
        err=True,
    )


@cli.command()
@key_option
@role_option
@json_option
@pass_ctx
def seal(obj: Context, key_path: str | None, role: str | None, as_json: bool) -> None:
    """Seal every draft row typed into the Models sheet; print their composite IDs.

    If any draft has a problem, every problem is listed by cell and nothing is written.

    \b
    Example:
      regbook seal --key ~/.ssh/regbook_alice
    """

    ws = obj.workspace()
    done = do_seal(ws, _load_key(key_path), role)
    if as_json:
        _echo_json([d.to_json() for d in done])
        return
    if not done:
        click.echo("no draft rows to seal", err=True)
    for d in done:
        click.echo(d.composite_id)


# --- governance ------------------------------------------------------------------------

stage_choice = click.Choice(["None", "Staging", "Production", "Archived"])


@cli.command()
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
      regbook approve credit-risk@7 --to Production --note "fairness review FR-12" \
          --key ~/.ssh/regbook_gina
    """

    done = do_approve(
        obj.workspace(), ModelRef.parse(target), to_stage, _load_key(key_path), note, role
    )
    if as_json:
        _echo_json(done.to_json())
        return
    click.echo(
        f"approved {done.ref}: {done.from_stage} -> {done.to_stage} by "
        f"{done.principal} ({done.role}) for {done.content_hash} (ledger event "
        f"{done.seq})"
    )


@cli.command()
@click.argument("target", metavar="MODEL@VERSION")
@key_option
@role_option
@json_option
@pass_ctx
def gate(obj: Context, target: str, key_path: str | None, role: str | None, as_json: bool) -> None:
    """Run the validation gates of regbook.toml on the sealed metrics; record the result.

    Exit 1 when a gate fails (the FAIL is recorded too).

    \b
    Example:
      regbook gate credit-risk@7 --key "$RUNNER_TEMP/ci_key"
    """

    done = do_gate(obj.workspace(), ModelRef.parse(target), _load_key(key_path), role)
    if as_json:
        _echo_json(done.to_json())
    else:
        click.echo(f"{'gate':<12} {'rule':<36} {'value':>10}  result")
        for r in done.outcome.results:
            value = "missing" if r.value is None else f"{r.value:g}"
            mark = _color(r.result, fg="green" if r.result == "PASS" else "red")
            click.echo(f"{r.gate.name:<12} {str(r.gate):<36} {value:>10}  {mark}")
        click.echo(f"{done.ref}: {done.outcome.result} (ledger event {done.seq})")
    if done.outcome.result != "PASS":
        sys.exit(1)


@cli.command()
@click.argument("target", metavar="MODEL@VERSION")
@click.option("--to", "to_stage", required=True, type=stage_choice, help="Stage to move to.")
@click.option(
    "--archive-previous",
    is_flag=True,
    help="With --to Production: archive the model's Production version into its bag in "
    "the same command (it needs a signed approval to Archived).",
)
@key_option
@role_option
@json_option
@pass_ctx
def promote(
    obj: Context,
    target: str,
    to_stage: str,
    archive_previous: bool,
    key_path: str | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Move MODEL@VERSION to a stage if every precondition holds; else list every unmet one.

    To Production: a governance-lead approval naming this content hash, the latest gate
    PASS, the artefact's hash re-checked now, and a key with role ci.

    \b
    Example:
      regbook promote credit-risk@7 --to Production --key "$RUNNER_TEMP/ci_key"
      regbook promote credit-risk@8 --to Production --archive-previous --key "$RUNNER_TEMP/ci_key"
    """

    done = do_promote(
        obj.workspace(),
        ModelRef.parse(target),
        to_stage,
        _load_key(key_path),
        role,
        archive_previous,
    )
    if as_json:
        _echo_json(done.to_json())
        return
    for previous in done.archived:
        click.echo(f"archived {previous} into its bag (archive/{previous.replace('@', '/')})")
    click.echo(
        f"promoted {done.ref}: {done.from_stage} -> {done.to_stage} (signed by "
        f"{done.principal}, ledger event {done.seq})"
    )


# --- verify / restore ------------------------------------------------------------------


@cli.command()
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
@json_option
@pass_ctx
def verify(
    obj: Context,
    target: str | None,
    no_artefacts: bool,
    keyring_sha256: str | None,
    for_deploy: bool,
    artefact: Path | None,
    as_json: bool,
) -> None:
    """Check the ledger, every view cell and every artefact; list every finding.

    Exit 0 when nothing is wrong, 1 when findings were printed.

    \b
    Example:
      regbook verify --keyring-sha256 $(sha256sum allowed_signers | cut -c1-64)
      regbook verify credit-risk@7 --json
      regbook verify --for-deploy credit-risk@7 --artefact build/model.pkl
    """

    ws = obj.workspace()
    scope = ModelRef.parse(target, version_required=for_deploy) if target else None
    if artefact is not None and not for_deploy:
        raise InputError("--artefact goes with --for-deploy")
    if for_deploy and scope is None:
        raise InputError("--for-deploy needs MODEL@VERSION")
    if keyring_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", keyring_sha256.strip()):
        raise InputError(
            f"--keyring-sha256 {keyring_sha256!r}: expected the 64 hex digits sha256sum prints"
        )
    snapshot = open_registry(ws, keyring_sha256=keyring_sha256)
    report = do_verify(
        snapshot,
        scope=scope,
        artefacts=not no_artefacts,
        for_deploy=for_deploy,
        deploy_artefact=artefact,
    )
    if as_json:
        _echo_json(report.to_json())
    else:
        for finding in report.findings:
            style = {"error": "red", "warning": "yellow"}.get(finding.severity)
            click.echo(_color(str(finding), fg=style) if style else str(finding))
        problems = len(report.problems)
        what = f"{report.events} ledger events, {report.versions} versions" + (
            f", {report.artefacts_checked} artefacts" if report.artefacts_checked else ""
        )
        if problems:
            click.echo(f"verify: {problems} problem{'s' if problems != 1 else ''} in {what}")
        else:
            click.echo(f"verify: ok ({what})")
        if report.deploy is not None:
            verdict = "may be deployed" if report.ok else "must NOT be deployed"
            click.echo(f"{report.deploy['composite_id']} ({report.deploy['stage']}) {verdict}")
    if not report.ok:
        sys.exit(1)


@cli.command()
@json_option
@pass_ctx
def restore(obj: Context, as_json: bool) -> None:
    """Rewrite every view cell from the ledger, keeping drafts and Notes.

    Refuses, listing the findings, when the ledger itself is broken.

    \b
    Example:
      regbook restore
    """

    result = do_restore(obj.workspace())
    if as_json:
        _echo_json(result.to_json())
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


@cli.command("list")
@click.option(
    "--stage",
    type=click.Choice(["None", "Staging", "Production", "Archived"]),
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
    frame, warning = list_versions(obj.workspace(), stage)
    if warning:
        click.echo(f"regbook: warning: {warning}", err=True)
    if as_json:
        click.echo(frame.to_json(orient="records", indent=2, force_ascii=False))
    elif as_csv:
        click.echo(to_csv(frame), nl=False)
    else:
        click.echo(to_text(frame))


# --- demo ------------------------------------------------------------------------------


@cli.command()
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


# --- lineage: trace and export ---------------------------------------------------------


@cli.command()
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
@json_option
@pass_ctx
def trace(
    obj: Context,
    target: str | None,
    code_repo: Path | None,
    data_repo: Path | None,
    log_file: Path | None,
    id_field: str,
    as_json: bool,
) -> None:
    """Walk a version's provenance chain, or audit an inference log.

    Each link (composite ID, sealed version, artefact, code commit, training data,
    pipeline run, evaluation, approvals and stages) is verified, not checkable (with
    the reason), or broken. Exit 1 when a link is broken or the log has problems.

    \b
    Example:
      regbook trace credit-risk@7+3f9a1c2b7d4e.d1e2f3a4.c0ffee12 --code-repo ../credit-risk
      regbook trace credit-risk@7 --data-repo ../credit-data --json
      regbook trace --log predictions.jsonl
    """

    if (target is None) == (log_file is None):
        raise InputError("give MODEL@VERSION or a composite ID, or --log FILE (not both)")
    source = click.get_current_context().get_parameter_source("id_field")
    if log_file is None and source == click.core.ParameterSource.COMMANDLINE:
        raise InputError("--id-field goes with --log")
    if log_file is not None:
        if code_repo is not None or data_repo is not None:
            raise InputError("--code-repo and --data-repo go with a target, not --log")
        report = audit_log(obj.workspace(), log_file, id_field)
    else:
        report = trace_version(obj.workspace(), target or "", code_repo, data_repo)
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(render_audit(report) if isinstance(report, LogAudit) else render_trace(report))
    if not report.ok:
        sys.exit(1)


@cli.group("export")
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
    ws = obj.workspace()
    key = _load_key(key_path) if sign else None
    data = do_export(ws, ref, key, data_repo)
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

    done = do_export_signatures(obj.workspace(), directory)
    if as_json:
        _echo_json(done.to_json())
        return
    click.echo(f"wrote {done.events} events to {done.folder}")
    if done.unreadable_rows:
        click.echo(f"regbook: warning: {done.unreadable_rows} ledger row(s) unreadable", err=True)
    click.echo(f"check them: sh {done.script}")


# --- archive: archive / retrieve / fixity ---------------------------------------------


@cli.command("archive")
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

    done = do_archive(obj.workspace(), ModelRef.parse(target), _load_key(key_path), role)
    if as_json:
        _echo_json(done.to_json())
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


@cli.command()
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

    done = do_retrieve(obj.workspace(), ModelRef.parse(target), to)
    if as_json:
        _echo_json(done.to_json())
        return
    click.echo(done.composite_id)
    click.echo(f"copied {done.files} file(s) to {done.to} ({done.content_hash})", err=True)


@cli.command()
@click.option("--fast", is_flag=True, help="Check Payload-Oxum and tag files only.")
@json_option
@pass_ctx
def fixity(obj: Context, fast: bool, as_json: bool) -> None:
    """Validate every archived bag; list every problem. Exit 1 when one is found.

    \b
    Example:
      regbook fixity --json > fixity-$(date +%F).json
    """

    report = do_fixity(obj.workspace(), fast)
    if as_json:
        _echo_json(report.to_json())
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
            click.echo(f"fixity ({mode}): {bad} of {len(report.bags)} bags have problems")
        else:
            click.echo(f"fixity ({mode}): ok ({len(report.bags)} bags)")
    if not report.ok:
        sys.exit(1)


# --- reports ---------------------------------------------------------------------------


def output_option(what: str, metavar: str = "FILE") -> Callable:
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
        click.echo(f"regbook: {count} problem(s) found; {where} them at the top", err=True)
        sys.exit(1)


@cli.group("report")
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
    data = write_evidence(obj.workspace(), ModelRef.parse(target), output)
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
    data = write_card(obj.workspace(), ModelRef.parse(target), output)
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
    data = write_registry(obj.workspace(), output, artefacts=not no_artefacts)
    versions = len(data["production"])
    click.echo(f"wrote {output} (registry description, {versions} Production version(s))",
               err=True)  # fmt: skip
    _exit_on_problems(data["problems"]["count"], "the report lists")


@report_group.command("pack")
@click.argument("target", metavar="MODEL@VERSION")
@output_option("FILE.zip", metavar="FILE.zip")
@json_option
@pass_ctx
def report_pack(obj: Context, target: str, output: Path, as_json: bool) -> None:
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

    pack = write_pack(obj.workspace(), ModelRef.parse(target), output)
    if as_json:
        _echo_json(pack.to_json())
    else:
        click.echo(f"wrote {output} (evidence pack for {pack.composite_id}, "
                   f"{len(pack.files)} files under {pack.folder}/)")  # fmt: skip
    for name, why in pack.missing.items():
        click.echo(f"regbook: warning: {name} left out: {why}", err=True)
    _exit_on_problems(pack.problems, "the reports list")


def main(argv: list[str] | None = None) -> None:
    """Entry point for the console script and ``python -m regbook``."""
    cli.main(args=argv, prog_name="regbook")


if __name__ == "__main__":  # pragma: no cover
    main()
