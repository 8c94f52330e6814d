"""Tests for regbook.workbook.template: the committed template is what the generator makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.styles import Color, PatternFill
from python_calamine import CalamineWorkbook

from regbook.core import schema
from regbook.workbook import template

COMMITTED = Path(__file__).resolve().parent.parent / "templates" / "registry.xlsx"

# DESIGN section 3, typed out again as an independent check on schema.MODELS, plus the
# Retain until column the archive issue adds after Deployment date.
DESIGN_MODELS_HEADERS = [
    "Model name",
    "Version",
    "Composite ID",
    "Stage",
    "Storage location",
    "Content hash",
    "Training data version (DVC commit)",
    "Data repository",
    "Code commit",
    "Code repository",
    "Pipeline execution ID",
    "Training date",
    "Hyperparameters",
    "AUC-ROC",
    "Demographic parity ratio",
    "Validation gate result",
    "Approval evidence (approver, role, date)",
    "Deployment date",
    "Retain until",
    "Registered by",
    "Registered at",
    "Notes",
    "Seal",
]

PROTECTION_FLAGS = (
    "sheet",
    "objects",
    "scenarios",
    "formatCells",
    "formatColumns",
    "formatRows",
    "insertColumns",
    "insertRows",
    "insertHyperlinks",
    "deleteColumns",
    "deleteRows",
    "selectLockedCells",
    "selectUnlockedCells",
    "sort",
    "autoFilter",
    "pivotTables",
)


def _fill(fill: PatternFill) -> str | None:
    return fill.fgColor.rgb if fill.fill_type else None


def _colour(color: Color | None) -> str | None:
    if color is None:
        return None
    return color.rgb if color.type == "rgb" else f"{color.type}:{color.value}"


def describe(wb: openpyxl.Workbook) -> dict[str, Any]:
    """Everything about a workbook that the template decides, in comparable form."""
    props = wb.properties
    out: dict[str, Any] = {
        "sheets": wb.sheetnames,
        "active": wb.active.title,
        "properties": (props.creator, props.title, props.created, props.modified),
    }
    for ws in wb.worksheets:
        cells = {
            cell.coordinate: (
                cell.value,
                cell.number_format,
                _fill(cell.fill),
                cell.protection.locked,
                cell.font.b,
                _colour(cell.font.color),
                cell.alignment.wrap_text,
                cell.comment.text if cell.comment else None,
            )
            for row in ws.iter_rows()
            for cell in row
        }
        columns = {
            letter: (dim.width, dim.number_format, dim.protection.locked)
            for letter, dim in ws.column_dimensions.items()
        }
        out[ws.title] = {
            "cells": cells,
            "columns": columns,
            "header_height": ws.row_dimensions[1].height,
            "validations": sorted(
                (str(dv.sqref), dv.type, dv.formula1, dv.allow_blank, dv.showErrorMessage)
                for dv in ws.data_validations.dataValidation
            ),
            "freeze": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
            "protection": {flag: getattr(ws.protection, flag) for flag in PROTECTION_FLAGS},
        }
    return out


@pytest.fixture(scope="module")
def built() -> openpyxl.Workbook:
    return template.build_workbook()


@pytest.fixture(scope="module")
def committed() -> openpyxl.Workbook:
    return openpyxl.load_workbook(COMMITTED)


def test_committed_template_equals_a_fresh_build(tmp_path: Path, committed) -> None:
    # Compare what was loaded from disk on both sides, so openpyxl's reading is the same.
    fresh = tmp_path / "registry.xlsx"
    template.write_template(fresh)
    assert describe(committed) == describe(openpyxl.load_workbook(fresh)), (
        "templates/registry.xlsx is stale: run `make template`"
    )


def test_saved_file_keeps_what_was_built(tmp_path: Path, built) -> None:
    path = tmp_path / "registry.xlsx"
    template.write_template(path)
    assert describe(openpyxl.load_workbook(path)) == describe(built)


def test_generation_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    template.write_template(a)
    template.write_template(b)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xlsx", "b.xlsx"]  # no temp left


def test_sheets_in_schema_order_with_models_active(committed) -> None:
    assert committed.sheetnames == [s.name for s in schema.SHEETS]
    assert committed.active.title == "Models"
    assert committed.properties.creator == "regbook"
    assert committed.properties.title == "regbook model registry"


def test_models_headers_match_schema_and_design(committed) -> None:
    headers = [c.value for c in committed["Models"][1]]
    assert headers == schema.MODELS.headers == DESIGN_MODELS_HEADERS


def test_every_sheet_has_styled_commented_frozen_filtered_headers(committed) -> None:
    for sheet in schema.SHEETS:
        ws = committed[sheet.name]
        last = schema.column_letter(len(sheet.columns))
        assert [c.value for c in ws[1]] == sheet.headers
        for column, cell in zip(sheet.columns, ws[1], strict=True):
            assert cell.font.b and cell.font.color.rgb == "FFFFFFFF"
            assert cell.fill.fgColor.rgb == schema.SHADE_HEADER
            assert cell.comment is not None and cell.comment.author == "regbook"
            assert cell.comment.text.startswith(column.header + "\n")
            assert "Who may edit: " in cell.comment.text
            dim = ws.column_dimensions[cell.column_letter]
            assert dim.width == column.width
            assert dim.number_format == column.number_format
        assert ws.freeze_panes == ("B2" if sheet in (schema.MODELS, schema.CARDS) else "A2")
        assert ws.auto_filter.ref == f"A1:{last}{template.MAX_ROW}"


def test_text_columns_are_formatted_as_text(committed) -> None:
    for sheet in schema.SHEETS:
        ws = committed[sheet.name]
        for index, column in enumerate(sheet.columns, start=1):
            if column.text_format:
                assert ws.column_dimensions[schema.column_letter(index)].number_format == "@"
    models = committed["Models"].column_dimensions
    assert models[schema.MODELS.letter("code_commit")].number_format == "@"
    assert models[schema.MODELS.letter("trained_on")].number_format == "yyyy-mm-dd"


def test_choice_columns_have_a_list_drop_down(committed) -> None:
    for sheet in schema.SHEETS:
        ws = committed[sheet.name]
        found = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
        expected = {
            f"{sheet.letter(c.key)}2:{sheet.letter(c.key)}{template.MAX_ROW}": c
            for c in sheet.columns
            if c.choices
        }
        assert found.keys() == expected.keys()
        for sqref, column in expected.items():
            dv = found[sqref]
            assert dv.type == "list"
            assert dv.formula1 == '"' + ",".join(column.choices) + '"'
            assert dv.allow_blank and dv.showErrorMessage and dv.error
    stage = [str(dv.sqref) for dv in committed["Models"].data_validations.dataValidation]
    assert stage == ["D2:D1048576"]


def test_protection_leaves_draft_sheets_typeable(committed) -> None:
    for sheet in schema.SHEETS:
        ws = committed[sheet.name]
        drafts = sheet.name in ("Models", "Metrics", "Cards")
        assert ws.protection.sheet
        # SheetProtection: False means the action is allowed on the protected sheet.
        assert not ws.protection.autoFilter
        assert not ws.protection.formatColumns
        assert ws.protection.insertRows is not drafts
        assert ws.protection.sort is not drafts
        assert ws.protection.deleteColumns and ws.protection.formatCells
        assert ws.protection.password is None
        for dim in ws.column_dimensions.values():
            assert dim.protection.locked is not drafts
        assert all(cell.protection.locked for cell in ws[1])


def test_cards_sheet_is_open_prose_one_row_per_model(committed) -> None:
    ws = committed["Cards"]
    assert [c.value for c in ws[1]] == schema.CARDS.headers
    assert schema.CARDS.headers[:2] == ["Model name", "Intended use"]
    assert schema.CARDS.optional and schema.CARDS not in schema.READ_SHEETS
    assert not any(c.sealed for c in schema.CARDS.columns)
    for index, column in enumerate(schema.CARDS.columns, start=1):
        dim = ws.column_dimensions[schema.column_letter(index)]
        assert not dim.protection.locked
        assert bool(dim.alignment.wrap_text) is column.wrap
        assert "not sealed" in ws.cell(row=1, column=index).comment.text
    assert sum(c.wrap for c in schema.CARDS.columns) == len(schema.CARDS.columns) - 1


def test_guide_has_a_row_for_every_column_of_every_other_sheet(committed) -> None:
    ws = committed["Guide"]
    rows = {(r[0], r[1]) for r in ws.iter_rows(min_row=2, values_only=True)}
    for sheet in schema.SHEETS:
        if sheet is schema.GUIDE:
            continue
        assert (sheet.name, "(sheet)") in rows
        for column in sheet.columns:
            assert (sheet.name, column.header) in rows
    assert ws.max_row == len(schema.guide_rows()) + 1
    assert ws["C3"].alignment.wrap_text


def test_calamine_reads_the_template() -> None:
    book = CalamineWorkbook.from_path(str(COMMITTED))
    assert book.sheet_names == [s.name for s in schema.SHEETS]
    rows = book.get_sheet_by_name("Models").to_python()
    assert rows[0] == schema.MODELS.headers
    guide = book.get_sheet_by_name("Guide").to_python()
    assert len(guide) == len(schema.guide_rows()) + 1


def test_style_sealed_cell_locks_and_shades_except_notes() -> None:
    ws = openpyxl.Workbook().active
    commit = schema.MODELS.column("code_commit")
    notes = schema.MODELS.column("notes")
    trained = schema.MODELS.column("trained_on")

    template.style_sealed_cell(ws["I2"], commit)
    assert ws["I2"].protection.locked
    assert ws["I2"].fill.fill_type == "solid"
    assert ws["I2"].fill.fgColor.rgb == schema.SHADE_SEALED
    assert ws["I2"].number_format == "@"

    template.style_sealed_cell(ws["L2"], trained)
    assert ws["L2"].number_format == "yyyy-mm-dd" and ws["L2"].protection.locked

    template.style_sealed_cell(ws["V2"], notes)
    assert not ws["V2"].protection.locked
    assert ws["V2"].fill.fill_type is None


def test_style_open_cell_unlocks_and_clears_shading() -> None:
    ws = openpyxl.Workbook().active
    commit = schema.MODELS.column("code_commit")
    template.style_sealed_cell(ws["I2"], commit)
    template.style_open_cell(ws["I2"], commit)
    assert not ws["I2"].protection.locked
    assert ws["I2"].fill.fill_type is None
    assert ws["I2"].number_format == "@"


def test_style_view_cell_locks_without_shading() -> None:
    ws = openpyxl.Workbook().active
    column = schema.HISTORY.column("at")
    template.style_open_cell(ws["A2"], column)
    template.style_view_cell(ws["A2"], column)
    assert ws["A2"].protection.locked
    assert ws["A2"].fill.fill_type is None
    assert ws["A2"].number_format == "yyyy-mm-dd hh:mm:ss"


def test_refresh_header_comments_restores_sized_notes() -> None:
    # openpyxl forgets note sizes on load; writers put them back before saving.
    wb = openpyxl.load_workbook(COMMITTED)
    template.refresh_header_comments(wb)
    fresh = template.build_workbook()
    for sheet in schema.SHEETS:
        for got, want in zip(wb[sheet.name][1], fresh[sheet.name][1], strict=True):
            assert (got.comment.text, got.comment.height, got.comment.width) == (
                want.comment.text,
                want.comment.height,
                want.comment.width,
            )
    assert wb["Models"]["C1"].comment.height > 79


def test_text_cells_keep_hex_and_month_strings(tmp_path: Path) -> None:
    # The Excel trap the text format exists for: these must come back as strings.
    wb = template.build_workbook()
    ws = wb["Models"]
    for key, value in (("code_commit", "1234e567"), ("data_version", "2026-01")):
        cell = ws[schema.MODELS.ref(key, 2).split("!")[1]]
        cell.value = value
        template.style_sealed_cell(cell, schema.MODELS.column(key))
    path = tmp_path / "r.xlsx"
    wb.save(path)
    reloaded = openpyxl.load_workbook(path)["Models"]
    assert reloaded[schema.MODELS.letter("code_commit") + "2"].number_format == "@"
    row = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Models").to_python()[1]
    assert row[schema.MODELS.index("code_commit")] == "1234e567"
    assert row[schema.MODELS.index("data_version")] == "2026-01"


def test_main_writes_the_file_and_reports_bad_paths(tmp_path: Path, capsys) -> None:
    path = tmp_path / "out.xlsx"
    assert template.main([str(path)]) == 0
    assert openpyxl.load_workbook(path).sheetnames[0] == "Models"
    assert template.main([str(tmp_path / "missing" / "out.xlsx")]) == 2
    assert "cannot write" in capsys.readouterr().err
