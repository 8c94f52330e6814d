"""Generate the empty registry workbook from the schema, and style its cells.

Every sheet, header, width, number format, drop-down and header comment comes from
``regbook.core.schema``; nothing about the workbook's shape is decided here. Writers use
the cell stylers so a sealed row looks and locks the same everywhere, and
``refresh_header_comments`` before saving a workbook openpyxl loaded::

    from regbook.workbook import template
    template.write_template(Path("templates/registry.xlsx"))   # or: make template
    template.style_sealed_cell(ws["I7"], schema.MODELS.column("code_commit"))

From the shell: ``python -m regbook.workbook.template templates/registry.xlsx``.
"""

from __future__ import annotations

import argparse
import io
import sys
import textwrap
import zipfile
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from regbook.core import fs, schema
from regbook.core.schema import Column, Sheet

if TYPE_CHECKING:  # openpyxl costs start-up time: imported where a workbook is built
    import openpyxl
    from openpyxl.cell.cell import Cell, MergedCell
    from openpyxl.comments import Comment
    from openpyxl.worksheet.datavalidation import DataValidation
    from openpyxl.worksheet.worksheet import Worksheet

# Fixed, so that regenerating the template changes nothing unless the schema did.
GENERATED_AT = datetime(2026, 1, 1, 0, 0, 0)
MAX_ROW = 1048576  # Excel's last row: filters and drop-downs cover rows typed later
AUTHOR = "regbook"
TITLE = "regbook model registry"

# Sheets where the SME types rows (drafts, and the Cards prose): protected, but new
# cells are unlocked.
DRAFT_SHEETS = frozenset({schema.MODELS.name, schema.METRICS.name, schema.CARDS.name})
# Models and Cards keep the model name in view too.
FREEZE = {schema.MODELS.name: "B2", schema.CARDS.name: "B2"}
HEADER_HEIGHT = 30.0  # two lines: the longest headers wrap once at their widths


@cache
def _styles() -> SimpleNamespace:
    """The styles regbook gives cells, made once, when a workbook is first styled."""
    from openpyxl.styles import Alignment, Font, PatternFill, Protection

    return SimpleNamespace(
        locked=Protection(locked=True),
        unlocked=Protection(locked=False),
        no_fill=PatternFill(fill_type=None),
        sealed_fill=PatternFill(fill_type="solid", fgColor=schema.SHADE_SEALED),
        header_fill=PatternFill(fill_type="solid", fgColor=schema.SHADE_HEADER),
        header_font=Font(bold=True, color="FFFFFFFF"),
        header_align=Alignment(wrap_text=True, vertical="center"),
        guide_align=Alignment(wrap_text=True, vertical="top"),
        wrap_align=Alignment(wrap_text=True, vertical="top"),  # prose columns (Cards)
        bold=Font(bold=True),
    )


# Comment boxes: Excel draws notes in a ~9 pt font; size the box to the text so it
# neither clips nor floats in empty space.
_COMMENT_WIDTH_PX = 320
_COMMENT_CHARS_PER_LINE = 46
_COMMENT_LINE_PX = 15


def style_header(cell: Cell | MergedCell, column: Column) -> None:
    """Header band: bold white on dark blue, wrapped, locked."""
    cell.font = _styles().header_font
    cell.fill = _styles().header_fill
    cell.alignment = _styles().header_align
    cell.protection = _styles().locked


def style_sealed_cell(cell: Cell | MergedCell, column: Column) -> None:
    """A cell of a sealed row: locked and shaded, unless its column is never sealed (Notes)."""
    if not column.sealed:
        style_open_cell(cell, column)
        return
    cell.protection = _styles().locked
    cell.fill = _styles().sealed_fill
    cell.number_format = column.number_format


def style_open_cell(cell: Cell | MergedCell, column: Column) -> None:
    """A cell the SME may edit on a protected sheet: a draft row, or Notes of a sealed row.

    For rows of regbook-only sheets, ``style_view_cell`` keeps them locked.
    """
    cell.protection = _styles().unlocked
    cell.fill = _styles().no_fill
    cell.number_format = column.number_format


def style_view_cell(cell: Cell | MergedCell, column: Column) -> None:
    """A cell of a regbook-only view (Approvals, History, Keys, Ledger): locked, unshaded."""
    cell.protection = _styles().locked
    cell.fill = _styles().no_fill
    cell.number_format = column.number_format


def plain_look(cell: Cell | MergedCell) -> None:
    """The template's font and alignment, and no border: what ``restore`` gives a cell
    whose look may have been changed to show a reader something else than its value."""
    from openpyxl.styles import Alignment, Border, Color, Font

    cell.font = Font(name="Calibri", size=11, family=2, scheme="minor", color=Color(theme=1))
    cell.alignment = Alignment()
    cell.border = Border()


def protect_sheet(ws: Worksheet, sheet: Sheet) -> None:
    """Protect a sheet as the template does (``restore`` protects every sheet again)."""
    _protect(ws, drafts=sheet.name in DRAFT_SHEETS)


def refresh_header_comments(wb: openpyxl.Workbook) -> None:
    """Give every schema sheet's header its note again, sized to fit.

    openpyxl does not read a note's size back, so a workbook it loaded and saves would
    show every header note in a small default box that cuts the text off.
    """
    for sheet in schema.SHEETS:
        if sheet.name not in wb.sheetnames:
            continue
        ws = wb[sheet.name]
        for index, column in enumerate(sheet.columns, start=1):
            ws.cell(row=1, column=index).comment = _comment(header_comment(sheet, column))


def header_comment(sheet: Sheet, column: Column) -> str:
    """The note on a header cell: what the column means, how to write it, who may edit."""
    lines = [column.header, column.meaning or sheet.purpose]
    if column.format:
        lines.append(f"Format: {column.format}")
    if column.choices:
        lines.append(f"Drop-down: {', '.join(column.choices)}")
    lines.append(f"Who may edit: {column.editor or sheet.written_by}")
    return "\n".join(lines)


def build_workbook() -> openpyxl.Workbook:
    """A fresh registry workbook generated from ``schema.SHEETS``, in that order."""
    import openpyxl

    wb = openpyxl.Workbook()
    for i, sheet in enumerate(schema.SHEETS):
        if i == 0:
            ws = wb.worksheets[0]  # the one sheet a new workbook has, and its active one
            ws.title = sheet.name
        else:
            ws = wb.create_sheet(sheet.name)
        _build_sheet(ws, sheet)
    _fill_guide(wb[schema.GUIDE.name])
    wb.active = schema.SHEETS.index(schema.MODELS)
    props = wb.properties
    props.creator = AUTHOR
    props.title = TITLE
    props.created = GENERATED_AT
    props.modified = GENERATED_AT
    return wb


def write_template(path: Path) -> None:
    """Build the workbook and write it to ``path`` atomically, byte for byte reproducible."""
    from openpyxl.xml.constants import ARC_CORE
    from openpyxl.xml.functions import tostring

    path = Path(path)
    workbook = build_workbook()
    buffer = io.BytesIO()
    workbook.save(buffer)  # openpyxl stamps "modified" with the clock here
    workbook.properties.modified = GENERATED_AT
    core = tostring(workbook.properties.to_tree())
    data = _stable_zip(buffer.getvalue(), replace={ARC_CORE: core})
    fs.atomic_write(path, data)


PROG = "python -m regbook.workbook.template"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m regbook.workbook.template PATH``: write the empty registry template."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write the empty registry workbook generated from regbook.core.schema.",
        epilog="example: python -m regbook.workbook.template templates/registry.xlsx",
    )
    parser.add_argument("path", type=Path, help="where to write the .xlsx file")
    args = parser.parse_args(argv)
    try:
        write_template(args.path)
    except OSError as err:
        print(
            f"regbook.workbook.template: cannot write {args.path}: {err.strerror or err}",
            file=sys.stderr,
        )
        return 2
    return 0


# --- building one sheet ----------------------------------------------------------------


def _build_sheet(ws: Worksheet, sheet: Sheet) -> None:
    drafts = sheet.name in DRAFT_SHEETS
    last = schema.column_letter(len(sheet.columns))
    for index, column in enumerate(sheet.columns, start=1):
        letter = schema.column_letter(index)
        cell = ws.cell(row=1, column=index, value=column.header)
        style_header(cell, column)
        cell.comment = _comment(header_comment(sheet, column))
        # Column default style: what a cell typed later in Excel inherits. No empty
        # styled cells are created, which would slow every later load.
        dim = ws.column_dimensions[letter]
        dim.width = column.width
        dim.number_format = column.number_format
        dim.protection = _styles().unlocked if drafts else _styles().locked
        if column.wrap:
            dim.alignment = _styles().wrap_align
        if column.choices:
            ws.add_data_validation(_choice_validation(column, f"{letter}2:{letter}{MAX_ROW}"))
    ws.row_dimensions[1].height = HEADER_HEIGHT
    ws.freeze_panes = FREEZE.get(sheet.name, "A2")
    ws.auto_filter.ref = f"A1:{last}{MAX_ROW}"
    _print_setup(ws)
    _protect(ws, drafts=drafts)


def _print_setup(ws: Worksheet) -> None:
    """Printing from Excel or LibreOffice: landscape, every column on the page's width
    (as many pages down as it takes), the header row repeated on every page."""
    from openpyxl.worksheet.properties import PageSetupProperties

    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = "1:1"


def _protect(ws: Worksheet, *, drafts: bool) -> None:
    """Protect without a password: against accidents, not against people.

    In openpyxl's SheetProtection a flag set to True forbids the action and False
    allows it. Every sheet allows filtering and resizing; sheets with draft rows also
    allow inserting rows and sorting (Excel still refuses to move locked cells).
    """
    p = ws.protection
    p.sheet = True
    p.autoFilter = False
    p.formatColumns = False
    p.formatRows = False
    if drafts:
        p.insertRows = False
        p.sort = False


def _choice_validation(column: Column, sqref: str) -> DataValidation:
    choices = column.choices or ()
    for choice in choices:
        # A list formula is a quoted, comma-separated string of at most 255 characters.
        if "," in choice or '"' in choice:
            raise ValueError(f"choice {choice!r} of {column.header!r} cannot be a list item")
    formula = '"' + ",".join(choices) + '"'
    if len(formula) > 257:
        raise ValueError(f"choices of {column.header!r} are too long for a drop-down")
    from openpyxl.worksheet.datavalidation import DataValidation

    dv = DataValidation(
        type="list",
        formula1=formula,
        allow_blank=True,
        showErrorMessage=True,
        errorStyle="stop",
        errorTitle=f"{column.header}: not allowed"[:32],
        error=f"{column.header} must be one of: {', '.join(choices)}."[:255],
    )
    dv.add(sqref)
    return dv


def _comment(text: str) -> Comment:
    from openpyxl.comments import Comment

    lines = sum(len(textwrap.wrap(part, _COMMENT_CHARS_PER_LINE)) or 1 for part in text.split("\n"))
    height = lines * _COMMENT_LINE_PX + 10
    return Comment(text, AUTHOR, height=height, width=_COMMENT_WIDTH_PX)


def _fill_guide(ws: Worksheet) -> None:
    columns = schema.GUIDE.columns
    for row, values in enumerate(schema.guide_rows(), start=2):
        sheet_row = values[1] == "(sheet)"
        for index, (column, value) in enumerate(zip(columns, values, strict=True), start=1):
            cell = ws.cell(row=row, column=index, value=value or None)
            cell.number_format = column.number_format
            cell.alignment = _styles().guide_align
            cell.protection = _styles().locked
            if sheet_row:
                cell.font = _styles().bold


def _stable_zip(data: bytes, replace: dict[str, bytes]) -> bytes:
    """The same archive with fixed timestamps (and some members replaced), so equal
    workbooks give equal bytes."""
    out = io.BytesIO()
    stamp = GENERATED_AT.timetuple()[:6]
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 0  # the same bytes on Windows, macOS and Linux
            dst.writestr(entry, replace.get(info.filename) or src.read(info))
    return out.getvalue()


if __name__ == "__main__":
    sys.exit(main())
