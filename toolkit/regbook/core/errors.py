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
    from regbook.core.findings import Finding


# Line breaks and other control characters a value can carry from a cell, escaped so
# that a message stays on its line
# (str.splitlines also breaks at NEL and the Unicode line and paragraph separators).
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(32), 127, 0x85)} | {
    10: "\\n",
    13: "\\r",
    9: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with every control character escaped: one line, whatever it quotes."""
    return text.translate(_CONTROLS)


def cut(text: str, limit: int = 60) -> str:
    """``text``, cut to ``limit`` characters with "..." for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and the noun in the number it takes: "1 version", "2 versions"."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def message_lines(err: BaseException) -> list[str]:
    """What the command line prints for ``err``: one line, or for a ``Listed`` error
    its heading line and one line per item."""
    if isinstance(err, Listed):
        return [message_line(err.head), *(err.bullet + message_line(i) for i in err.items)]
    return [message_line(str(err))]


def message_line(text: str) -> str:
    """``text`` as one line of a message: control characters escaped, cut at
    ``MESSAGE_LIMIT``."""
    # What and where come first; a 40,000-character value quoted whole helps nobody.
    return cut(one_line(text), MESSAGE_LIMIT)


MESSAGE_LIMIT = 1000


class Listed:
    """An error that lists every problem at once (draft rows, unmet preconditions): a
    heading line, then one line per item."""

    head: str
    items: list[str]
    bullet = "  "

    def listed(self, head: str, items: Sequence[str]) -> str:
        """Keep the heading and items; the whole message, for ``Exception``."""
        self.head, self.items = head, list(items)
        return head + "".join(f"\n{self.bullet}{i}" for i in self.items)


class RegbookError(Exception):
    """Base class: anything regbook refuses to do, with a message fit for a user."""

    exit_code = 2


class InputError(RegbookError):
    """Bad usage or bad input: a one-line cause that says what and where.

    ``option`` names the argument of the library call the message is about, which the
    message starts with ("trained_on: expected a date"); a client names it its own way
    (the command line says ``--trained-on``)."""

    exit_code = 2

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option

    @classmethod
    def about(cls, option: str, err: InputError) -> InputError:
        """``err`` said of ``option``: its message with ``where`` set to the option."""
        return cls(str(err), option=option)


class DraftProblems(InputError, Listed):
    """One or more draft rows cannot be sealed; every problem is listed by cell."""

    def __init__(self, problems: Sequence[str]):
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in draft rows; nothing was written"
        super().__init__(self.listed(head, problems))

    @property
    def problems(self) -> list[str]:
        return self.items


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
