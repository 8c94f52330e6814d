"""Restore: rewrite every view from the ledger, keeping drafts and Notes.

Restore trusts only a sound ledger: if the chain, a signature or a registration is
broken it refuses with the findings, since rewriting views from a forged ledger would
launder the forgery::

    result = restore(Workspace.find())
    result.repaired        # the view findings that are now fixed
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regbook.core.errors import VerificationFailed, plural
from regbook.core.findings import Finding
from regbook.core.schema import LEDGER, METRICS, MODELS, SHEETS, BadValue, column_letter, normalize
from regbook.core.workspace import Workspace, backup_path
from regbook.ledger.state import Registry, VersionState
from regbook.registry.diff import claimed_version, normalize_text, sealed_rows
from regbook.registry.display import DISPLAY_SHEETS
from regbook.registry.snapshot import open_registry
from regbook.registry.transaction import refresh_derived_views
from regbook.registry.views import (
    metrics_values,
    models_values,
    write_row,
)
from regbook.workbook.presentation import MIN_COLUMN_WIDTH, MIN_ROW_HEIGHT
from regbook.workbook.read import Table, WorkbookWriter
from regbook.workbook.template import plain_look, protect_sheet, style_open_cell, style_view_cell

if TYPE_CHECKING:  # openpyxl is imported where a workbook is written
    from openpyxl.worksheet.worksheet import Worksheet

# Models cells that only regbook writes: cleared when a row turns back into a draft.
_REGBOOK_CELLS = (
    "version",
    "composite_id",
    "stage",
    "content_hash",
    "gate",
    "approval",
    "deployed_on",
    "retain_until",
    "registered_by",
    "registered_at",
    "seal",
)


@dataclass
class RestoreResult:
    repaired: list[Finding] = field(default_factory=list)
    rows_to_drafts: list[int] = field(default_factory=list)
    rows_appended: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "repaired": [f.to_json() for f in self.repaired],
            "rows_to_drafts": self.rows_to_drafts,
            "rows_appended": self.rows_appended,
        }


def backup_advice(workbook: Path) -> str:
    """How to put the workbook back from its newest backup, as one exact command."""
    backup = backup_path(workbook, 1)
    if not backup.exists():
        return f"There is no backup ({backup.name}) to put it back from."
    copy = "copy" if os.name == "nt" else "cp"
    return (
        f"The backup {backup.name} beside it is the workbook as it was before the last "
        f'write: put it back with `{copy} "{backup}" "{workbook}"` (keep the broken one '
        "aside first: it is evidence), then run `regbook verify`"
    )


def restore(ws: Workspace) -> RestoreResult:

    with WorkbookWriter(ws.workbook_path, ws.settings.backups) as writer:
        checked = open_registry(ws)
        broken = [f for f in checked.ledger_findings if f.code[:3] in ("RB1", "RB2")]
        if broken:
            raise VerificationFailed(
                f"the ledger itself has {plural(len(broken), 'problem')}; restore rewrites "
                "views from a sound ledger only, so nothing was written. "
                + backup_advice(ws.workbook_path),
                broken,
            )
        registry = checked.registry
        models_table = checked.data[MODELS.name]
        result = RestoreResult()
        # Every view difference, which rewriting the views from the ledger repairs.
        # (A sheet regbook does not know is left as it is: it is reported, not repaired.)
        result.repaired = [f for f in checked.view_findings if f.code not in ("RB310", "RB318")]
        result.repaired += checked.keys_findings
        wb = writer.load()
        ws_models = wb[MODELS.name]
        by_seal = registry.by_seal
        placed: set[tuple[str, int]] = set()
        genuine = sealed_rows(models_table, registry)
        for i, row in models_table.indexed():
            number = models_table.row_numbers[i]
            seal = normalize_text(row[MODELS.index("seal")])
            state = by_seal.get(seal) if seal else None
            if state is None:
                state = claimed_version(models_table, i, registry)
                if state is not None and (state.model, state.version) in genuine:
                    _to_draft(ws_models, number, state)  # a copy: the sealed row is elsewhere
                    result.rows_to_drafts.append(number)
                    continue
            if state is not None and (state.model, state.version) not in placed:
                placed.add((state.model, state.version))
                write_row(
                    ws_models, MODELS, number, models_values(state), style="sealed", keep=("notes",)
                )
            elif seal or state is not None:
                _to_draft(ws_models, number, state)
                result.rows_to_drafts.append(number)
        next_row = max(models_table.row_numbers, default=1) + 1
        for key, state in registry.versions.items():
            if key not in placed:
                write_row(ws_models, MODELS, next_row, models_values(state), style="sealed")
                next_row += 1
                result.rows_appended += 1
        _rewrite_metrics(wb[METRICS.name], checked.data[METRICS.name], registry)
        refresh_derived_views(wb, registry, checked.keyring)
        restore_presentation(wb, {r for r, _ in sealed_rows_after(models_table, registry, placed)})
        writer.save(wb)
    return result


def _to_draft(ws: Worksheet, row: int, state: VersionState | None) -> None:
    """A row that claims a seal it cannot have becomes a draft again, with a note."""

    for column in MODELS.columns:
        cell = ws.cell(row=row, column=MODELS.index(column.key) + 1)
        if column.key in _REGBOOK_CELLS:
            cell.value = None
        style_open_cell(cell, column)
    notes = ws.cell(row=row, column=MODELS.index("notes") + 1)
    why = (
        f"copy of {state.model}@{state.version}"
        if state is not None
        else "its seal is not in the ledger"
    )
    # Whatever was typed into Notes is kept, as text (a number typed there included).
    note = "" if notes.value is None else str(notes.value)
    notes.value = f"[restore] row turned back into a draft: {why}. " + note


def _rewrite_metrics(ws: Worksheet, table: Table, registry: Registry) -> None:
    """Sealed metrics exactly as the ledger has them, then the drafts' rows as typed."""

    drafts = []
    for row in table.rows:
        model = normalize_text(row[METRICS.index("model")])
        try:
            version = normalize("int", row[METRICS.index("version")])
        except BadValue:
            version = None
        if isinstance(version, int) and registry.get(model, version) is not None:
            continue
        drafts.append({c.key: row[METRICS.index(c.key)] for c in METRICS.columns})
    if ws.max_row > 1:
        ws.delete_rows(2, ws.max_row - 1)
    row = 2
    for state in registry.versions.values():
        for values in metrics_values(state):
            write_row(ws, METRICS, row, values, style="sealed")
            row += 1
    for values in drafts:
        write_row(ws, METRICS, row, values, style="open")
        row += 1


def sealed_rows_after(
    table: Table, registry: Registry, placed: set[tuple[str, int]]
) -> list[tuple[int, tuple[str, int]]]:
    """The Models rows that show a sealed version once restore has written them."""
    out = []
    for i, row in table.indexed():
        state = registry.by_seal.get(normalize_text(row[MODELS.index("seal")]))
        if state is not None and (state.model, state.version) in placed:
            out.append((table.row_numbers[i], (state.model, state.version)))
    return out


def restore_presentation(wb: Any, models_rows: set[int]) -> None:
    """The template's look on every sheet regbook writes, and every sheet protected:
    visible sheets, rows and columns; no conditional format, picture or chart; zeros
    shown; the template's font and alignment on every checked cell (the Notes column
    and draft rows are the SME's). Rows appended by restore are styled already."""
    from openpyxl.formatting.formatting import ConditionalFormattingList

    if wb.views:
        wb.views[0].visibility = "visible"
        wb.views[0].showSheetTabs = None
    for sheet in SHEETS:
        if sheet.name in wb.sheetnames:
            protect_sheet(wb[sheet.name], sheet)
    for sheet in DISPLAY_SHEETS:
        if sheet.name not in wb.sheetnames:
            continue
        ws = wb[sheet.name]
        ws.sheet_state = "visible"
        ws.conditional_formatting = ConditionalFormattingList()
        ws._images = []  # openpyxl keeps pictures; shapes it never reads back
        ws._charts = []
        ws.tables.clear()  # a table's style can recolour cells; the template has none
        ws.sheet_view.showZeros = None
        ws.sheet_format.zeroHeight = None
        if (ws.sheet_format.defaultRowHeight or 15) < MIN_ROW_HEIGHT:
            ws.sheet_format.defaultRowHeight = 15
        for number, dim in list(ws.row_dimensions.items()):
            if number > 1:
                dim.hidden = False
                if dim.height is not None and dim.height < MIN_ROW_HEIGHT:
                    dim.height = None
        for index, column in enumerate(sheet.columns, start=1):
            dim = ws.column_dimensions[column_letter(index)]
            dim.hidden = False
            if dim.width is not None and dim.width < MIN_COLUMN_WIDTH:
                dim.width = column.width
        if sheet is MODELS:
            rows: Any = sorted(models_rows)
        else:
            rows = range(2, ws.max_row + 1)
        for row in rows:
            for index, column in enumerate(sheet.columns, start=1):
                if column.key == "notes" and sheet is MODELS:
                    continue
                cell = ws.cell(row=row, column=index)
                if sheet is LEDGER:
                    style_view_cell(cell, column)
                plain_look(cell)
