"""The ``regbook`` command line: one thin client of the library.

Each command parses its options, calls one library function and renders the result.
Errors map to exit codes in one place (``main``): 1 findings, 2 bad input, 3 workbook
open or locked. Heavy libraries (pandas, openpyxl) are imported only by the commands
that need them, so ``regbook --help`` stays fast.
"""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path
from typing import Any

import click

from regbook.cli.options import Context
from regbook.core.errors import (
    InputError,
    RegbookError,
    VerificationFailed,
    cut,
    message_line,
    message_lines,
    one_line,
)
from regbook.core.version import __version__

# Every command: the module that defines it, its function, and the first paragraph of
# its help (what `regbook --help` lists). A command's module, and the library behind
# it, is imported only when that command runs or shows its own help, so `regbook --help`
# starts without importing the library. tests/test_meta.py holds this table to the
# commands themselves.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "approve": (
        "regbook.cli.governance",
        "approve",
        "Sign an approval of MODEL@VERSION moving to a stage, naming its content hash.",
    ),
    "archive": (
        "regbook.cli.archiving",
        "archive_",
        "Move MODEL@VERSION into archive/NAME/VERSION/ as a BagIt bag; record it as Archived.",
    ),
    "demo": (
        "regbook.cli.setup",
        "demo",
        "Build a demo workspace in DIRECTORY (default ./regbook-demo) and walk through it.",
    ),
    "export": (
        "regbook.cli.reporting",
        "export_group",
        "Export provenance (in-toto / SLSA) and ledger signatures for auditors.",
    ),
    "fixity": (
        "regbook.cli.archiving",
        "fixity",
        "Validate every archived bag; list every problem. Exit 1 when one is found.",
    ),
    "gate": (
        "regbook.cli.governance",
        "gate",
        "Run the validation gates of regbook.toml on the sealed metrics; record the result.",
    ),
    "init": (
        "regbook.cli.setup",
        "init",
        "Create a workspace in DIRECTORY: settings, workbook, keyring, storage.",
    ),
    "keys": (
        "regbook.cli.setup",
        "keys",
        "Make, add, revoke and list signing keys (the allowed_signers keyring).",
    ),
    "mlflow": (
        "regbook.cli.mirroring",
        "mlflow_group",
        "Mirror the registry into an MLflow Model Registry, check it, import from it.",
    ),
    "policy": (
        "regbook.cli.trust",
        "policy",
        "Sign regbook.toml's policy into the ledger, or show the policy in force.",
    ),
    "list": ("regbook.cli.registering", "list_", "List the sealed versions, from the ledger."),
    "log": ("regbook.cli.sharing", "log", "Print the ledger as text, one event per block."),
    "promote": (
        "regbook.cli.governance",
        "promote",
        "Move MODEL@VERSION to a stage if every precondition holds; else list every unmet one.",
    ),
    "register": (
        "regbook.cli.registering",
        "register",
        "Register and seal a new version of MODEL; print its composite ID.",
    ),
    "report": (
        "regbook.cli.reporting",
        "report_group",
        "Write reports for auditors: a version's evidence report, model card and evidence "
        "pack, and the registry's own description.",
    ),
    "resolve": (
        "regbook.cli.sharing",
        "resolve",
        "Print the composite ID and artefact path of the version now in a stage.",
    ),
    "restore": (
        "regbook.cli.registering",
        "restore",
        "Rewrite every view cell from the ledger, keeping drafts and Notes.",
    ),
    "retrieve": (
        "regbook.cli.archiving",
        "retrieve",
        "Validate an archived version's bag, copy its artefact out, print its composite ID.",
    ),
    "scan": (
        "regbook.cli.scanning",
        "scan",
        "Scan every file of MODEL@VERSION's artefact without loading it; record it signed.",
    ),
    "seal": (
        "regbook.cli.registering",
        "seal",
        "Seal every draft row typed into the Models sheet; print their composite IDs.",
    ),
    "trace": (
        "regbook.cli.checking",
        "trace",
        "Walk a version's provenance chain, or audit an inference log.",
    ),
    "verify": (
        "regbook.cli.checking",
        "verify",
        "Check the ledger, every view cell and every artefact; list every finding.",
    ),
    "witness": (
        "regbook.cli.trust",
        "witness",
        "After a clean verify, write a witness of the ledger head signed by a ci key.",
    ),
}


# Library arguments whose option is not --NAME-WITH-DASHES.
FLAGS = {"output": "-o"}


def flag_of(option: str) -> str:
    """The command-line option for the library argument ``option`` (trained_on ->
    --trained-on): the library's messages name its arguments, the CLI names its flags."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


class RegbookGroup(click.Group):
    """Maps regbook's errors to exit codes and one-line messages, in one place, and
    loads each command from ``COMMANDS`` when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name, _summary = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, from the table: as click writes it, with nothing imported."""
        width = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(width))
            for name, (_module, _name, summary) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VerificationFailed as err:
            for finding in err.findings:
                click.echo(one_line(str(finding)))
            self._fail(ctx, err, message_lines(err), err.exit_code)
        except InputError as err:
            lines = message_lines(err)
            if err.option and lines[0].startswith(err.option):
                lines[0] = flag_of(err.option) + lines[0][len(err.option) :]
            self._fail(ctx, err, lines, err.exit_code)
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


def main(argv: list[str] | None = None) -> None:
    """Entry point for the console script and ``python -m regbook``."""
    cli.main(args=argv, prog_name="regbook")


if __name__ == "__main__":  # pragma: no cover
    main()
