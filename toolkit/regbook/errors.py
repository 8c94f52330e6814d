"""The one tree of errors regbook raises, and the exit code each maps to.

Library code raises these; ``cli.py`` turns them into a one-line message and an
exit code in one place (``--verbose`` adds the traceback)::

    try:
        ...
    except RegbookError as err:
        print(f"regbook: {err}", file=sys.stderr)
        sys.exit(err.exit_code)

Exit codes (DESIGN section 8): 0 ok, 1 verification found problems, 2 bad usage or
bad input, 3 the workbook is open in Excel/LibreOffice or locked by another regbook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from regbook.findings import Finding


class RegbookError(Exception):
    """Base class: anything regbook refuses to do, with a message fit for a user."""

    exit_code = 2


class InputError(RegbookError):
    """Bad usage or bad input: a one-line cause that says what and where."""

    exit_code = 2


class DraftProblems(InputError):
    """One or more draft rows cannot be sealed; every problem is listed by cell."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in draft rows; nothing was written"
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems))


class KeyProblem(InputError):
    """A key that cannot be loaded, or that may not act in the role a command needs."""


class WorkbookLocked(RegbookError):
    """The workbook is open in Excel/LibreOffice, or another regbook is writing it."""

    exit_code = 3


class VerificationFailed(RegbookError):
    """Verification found problems; ``findings`` holds every one of them."""

    exit_code = 1

    def __init__(self, message: str, findings: Sequence[Finding] = ()):
        self.findings = list(findings)
        super().__init__(message)
