"""What the workbook shows against what the template gives: display forgery.

A sealed value can stay unchanged while the reader sees another one: a number format
that prints a constant text, a font the colour of its fill, a hidden row, a hidden
sheet, a conditional format. ``display_findings`` holds the presentation of the sheets
regbook writes (``regbook.workbook.presentation``) against what the template gives each
column, and names every cell where a reader may see something else than the value::

    shown = read_presentation(path, DISPLAY_SHEET_NAMES, accepted=accepted_formats)
    findings = display_findings(shown, data, registry)   # RB312-RB318

Only differences that can change what a reader sees count (docs/findings.md lists
them): column widths, row heights, sorting, filters, LibreOffice's renumbered styles,
the fill behind readable text and the Notes column are the SME's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from regbook.core.findings import Finding
from regbook.core.schema import (
    APPROVALS,
    DATE,
    DATETIME,
    FLOAT,
    HISTORY,
    INT,
    KEYS,
    LEDGER,
    METRICS,
    MODELS,
    SHEETS_BY_NAME,
    TEXT,
    BadValue,
    Sheet,
    column_letter,
    normalize,
)
from regbook.ledger.state import Registry
from regbook.registry.diff import normalize_text
from regbook.workbook.presentation import (
    Accepted,
    Look,
    Presentation,
    SheetLook,
    column_span,
    contrast,
)
from regbook.workbook.read import WorkbookData

# The sheets regbook writes, whose presentation is checked.
DISPLAY_SHEETS: tuple[Sheet, ...] = (MODELS, METRICS, APPROVALS, HISTORY, KEYS, LEDGER)
DISPLAY_SHEET_NAMES = tuple(s.name for s in DISPLAY_SHEETS)
# Columns whose look is the SME's own.
_OWN_COLUMNS = {MODELS.name: frozenset({MODELS.index("notes")})}

# Number formats that show a column's values as the template does. A text cell under
# General, or a whole number under General, reads the same.
_PLAIN_FORMATS = {
    TEXT: frozenset({"@", "general"}),
    INT: frozenset({"0", "general"}),
    FLOAT: frozenset({"general"}),
    # A day shown with its midnight (openpyxl's format for a date typed in) is that day.
    DATE: frozenset({"yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd h:mm:ss"}),
    DATETIME: frozenset({"yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd h:mm:ss"}),
}
# The template's typeface, and the one LibreOffice draws it with where it is missing.
TEXT_FONTS = frozenset({"calibri", "carlito"})
MIN_FONT_SIZE = 6.0
MIN_CONTRAST = 3.0  # WCAG 2's least contrast for large text; black on the shade is 16
MAX_INDENT = 4  # each level is about three characters: more pushes text out of view
# Findings of one kind named cell by cell at most this often per column; the rest are
# counted in one more finding.
PER_COLUMN = 10


def display_findings(shown: Presentation, data: WorkbookData, registry: Registry) -> list[Finding]:
    """Every place where the sheets regbook writes may show a reader something other
    than their values, and every sheet regbook does not know."""
    findings: list[Finding] = []
    if shown.window_hidden:
        findings.append(Finding.make(
            "RB315", data.path.name, "the workbook's window is set hidden: a reader "
            "opening it sees no sheet at all"))  # fmt: skip
    if shown.tabs_hidden:
        findings.append(Finding.make(
            "RB315", data.path.name, "the workbook's sheet tabs are set hidden: a reader "
            "sees only the sheet it opens on, whichever that is"))  # fmt: skip
    for name in shown.sheets:
        if name not in SHEETS_BY_NAME:
            findings.append(_unknown_sheet(name))
    for sheet in DISPLAY_SHEETS:
        sheet_look = shown.sheets.get(sheet.name)
        if sheet_look is None or sheet.name not in data.tables:
            continue
        findings += _sheet_findings(shown, sheet, sheet_look, data, registry)
    return findings


def accepted_formats(name: str, shown: Presentation) -> Accepted:
    """Per column of a sheet regbook writes, the format indices whose look shows its
    values as they are (``cell_problem`` finds nothing), so that reading the sheet need
    only report the others; the SME's own columns accept any."""
    sheet = SHEETS_BY_NAME[name]
    own = _OWN_COLUMNS.get(name, frozenset())
    return {
        i: None
        if i in own
        else frozenset(
            k for k in range(len(shown.looks)) if cell_problem(shown.look(k), c.kind) is None
        )
        for i, c in enumerate(sheet.columns)
    }


def _unknown_sheet(name: str) -> Finding:
    folded = name.casefold()
    alike = next((s for s in SHEETS_BY_NAME if s.casefold() in folded), None)
    if alike:
        return Finding.make(
            "RB318", name, f"sheet {name!r} is not part of the registry, not verified; "
            f"its name looks like the {alike} sheet's, so a reader may take it for it")  # fmt: skip
    return Finding.make(
        "RB318", name, f"sheet {name!r} is not part of the registry, not verified: "
        "nothing in it is vouched for by the ledger")  # fmt: skip


def _checked_rows(
    sheet: Sheet, data: WorkbookData, registry: Registry
) -> dict[int, tuple[str | None, int | None]]:
    """The rows whose look is checked, with the version each shows: sealed rows of
    Models and Metrics (drafts are the SME's until sealed), every row of the others."""
    table = data[sheet.name]
    out: dict[int, tuple[str | None, int | None]] = {}
    if sheet is MODELS:
        by_seal = registry.by_seal
        seal = MODELS.index("seal")
        for i, row in table.indexed():
            state = by_seal.get(normalize_text(row[seal]))
            if state is not None:
                out[table.row_numbers[i]] = (state.model, state.version)
        return out
    if sheet is not METRICS:  # regbook's own sheets: every row, named by cell alone
        return dict.fromkeys(table.row_numbers, (None, None))
    model_at = sheet.index("model") if "model" in {c.key for c in sheet.columns} else None
    version_at = sheet.index("version") if "version" in {c.key for c in sheet.columns} else None
    for i, row in table.indexed():
        model = normalize_text(row[model_at]) if model_at is not None else None
        version = None
        if version_at is not None:
            try:
                number = normalize(INT, row[version_at])
                version = number if isinstance(number, int) else None
            except BadValue:
                version = None
        if sheet is METRICS and (version is None or registry.get(model or "", version) is None):
            continue  # a draft's metric
        out[table.row_numbers[i]] = (model or None, version)
    return out


def _sheet_findings(
    shown: Presentation,
    sheet: Sheet,
    look: SheetLook,
    data: WorkbookData,
    registry: Registry,
) -> list[Finding]:
    findings: list[Finding] = []
    name = sheet.name
    if look.state != "visible":
        findings.append(Finding.make(
            "RB315", name, f"the {name} sheet is set {look.state}: a reader does not see "
            "it among the sheets"))  # fmt: skip
    if sheet is MODELS and not look.protected:
        findings.append(Finding.make(
            "RB317", name, "the Models sheet is not protected: sealed cells can be typed "
            "over without a warning; `regbook restore` protects it again"))  # fmt: skip
    own = _OWN_COLUMNS.get(name, frozenset())
    ncols = len(sheet.columns)
    for ranges in look.conditional:
        if ranges and _only_in(ranges, own):
            continue
        where = f"{name}!{ranges.split()[0]}" if ranges else name
        findings.append(Finding.make(
            "RB316", where, f"a conditional format over {ranges or 'cells'} of the {name} "
            "sheet can show its cells in another colour, number format or icon than "
            "regbook wrote"))  # fmt: skip
    for what in look.objects:
        findings.append(Finding.make(
            "RB316", name, f"the {name} sheet holds {what}, which can cover or stand "
            "in for what its cells show"))  # fmt: skip
    if look.zeros_hidden:
        findings.append(Finding.make(
            "RB316", name, f"the {name} sheet is set not to show zero values: a sealed 0 "
            "reads as an empty cell"))  # fmt: skip
    rows_of: dict[int, tuple[str | None, int | None]] | None = None

    def checked() -> dict[int, tuple[str | None, int | None]]:
        # The rows are only looked at when something is wrong: a clean sheet costs none.
        nonlocal rows_of
        if rows_of is None:
            rows_of = _checked_rows(sheet, data, registry)
        return rows_of

    for column, why in sorted(look.hidden_columns.items()):
        if column < ncols and column not in own:
            letter = column_letter(column + 1)
            header = sheet.columns[column].header
            findings.append(Finding.make(
                "RB314", f"{name}!{letter}:{letter}", f"column {letter} ({header}) is "
                f"{why}: a reader does not see it"))  # fmt: skip
    hidden = [(r, why) for r, why in sorted(look.hidden_rows.items()) if r in checked()]
    findings += _capped(
        [
            Finding.make("RB314", f"{name}!{r}:{r}", f"row {r}{_label(checked()[r])} is "
                         f"{why}: a reader does not see it", *checked()[r])
            for r, why in hidden
        ],
        f"{name}!A:A",
        f"rows of the {name} sheet are hidden",
    )  # fmt: skip
    for column, index in sorted(look.cells):
        if column >= ncols or column in own:
            continue
        col = sheet.columns[column]
        problem = cell_problem(shown.look(index), col.kind)
        if problem is None:
            continue
        code, text = problem
        rows = [r for r in shown.rows_with(name, column, index) if r in checked()]
        letter = column_letter(column + 1)
        findings += _capped(
            [
                Finding.make(code, f"{name}!{letter}{r}", f"{col.header}{_label(checked()[r])}: "
                             f"{text}", *checked()[r])
                for r in rows
            ],
            f"{name}!{letter}:{letter}",
            f"cells of column {letter} ({col.header}) have this format",
        )  # fmt: skip
    return findings


def _label(version: tuple[str | None, int | None]) -> str:
    model, number = version
    return f" ({model}@{number})" if model and number is not None else ""


def _capped(findings: list[Finding], where: str, more: str) -> list[Finding]:
    if len(findings) <= PER_COLUMN:
        return findings
    rest = len(findings) - PER_COLUMN
    first = findings[0]
    return [
        *findings[:PER_COLUMN],
        Finding.make(first.code, where, f"{rest:,} more {more} (the first {PER_COLUMN} are "
                     f"named above): {first.message.split(': ', 1)[-1]}"),
    ]  # fmt: skip


def _only_in(ranges: str, columns: frozenset[int]) -> bool:
    """Whether every range of an sqref lies in the given columns."""
    spans = [column_span(part) for part in ranges.split()]
    return bool(spans) and all(
        span is not None and all(c in columns for c in range(span[0], span[1] + 1))
        for span in spans
    )


@lru_cache(maxsize=512)
def _problem(looks: tuple[Look, ...], kind: str) -> tuple[str, str] | None:
    for look in looks:
        if look.number_format not in _PLAIN_FORMATS[kind]:
            return ("RB312", f"its number format {look.format_code!r} can show another "
                    "text than the value (the template's shows the value as it is)")  # fmt: skip
    for look in looks:
        if look.font_name not in TEXT_FONTS:
            return ("RB313", f"drawn in the typeface {look.font_name or '(none)'!r}, not "
                    "the template's: a symbol font shows other characters")  # fmt: skip
        if look.font_size < MIN_FONT_SIZE:
            return ("RB313", f"its font is {look.font_size:g} pt: too small to read")
        color = look.font_color or (0.0, 0.0, 0.0)
        if contrast(color, look.background) < MIN_CONTRAST:
            return ("RB313", "its text colour is (nearly) that of the fill behind it: "
                    "the value cannot be seen")  # fmt: skip
        if look.horizontal == "fill":
            return ("RB313", "its alignment repeats the text to fill the cell")
        if look.indent > MAX_INDENT:
            return ("RB313", f"indented {look.indent} levels: the text is pushed out of view")
    return None


def cell_problem(looks: tuple[Look, ...] | None, kind: str) -> tuple[str, str] | None:
    """Why a cell of a column of ``kind`` with these looks may show a reader something
    else than its value (code and sentence), or None."""
    if looks is None:
        return ("RB312", "its cell format is not in the workbook's styles: readers show "
                "it as they please")  # fmt: skip
    return _problem(looks, kind)


def unknown_sheets(findings: Iterable[Finding]) -> list[str]:
    """The sheets reported as not part of the registry (RB318), in order."""
    return [f.where for f in findings if f.code == "RB318"]
