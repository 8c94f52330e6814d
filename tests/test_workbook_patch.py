"""PackagePatch finds rows without walking a whole sheet where it can, and finds the
same rows as the walk does."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl

from regbook.workbook.deflate import rows_end
from regbook.workbook.patch import PackagePatch


def _workbook(path: Path, rows: int) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Models"
    for r in range(1, rows + 1):
        ws.cell(r, 1, f"row-{r}")
        ws.cell(r, 2, r)
    wb.save(path)
    return path


def test_row_cells_names_the_row_asked_for_not_one_that_starts_alike(tmp_path: Path) -> None:
    patch = PackagePatch(_workbook(tmp_path / "w.xlsx", 60))
    cells = patch.row_cells("Models", 5)
    assert sorted(cells) == [0, 1]
    assert 'r="A5"' in cells[0] and 'r="A50"' not in cells[0]
    assert 'r="B50"' in patch.row_cells("Models", 50)[1]


def test_a_row_past_the_last_has_no_cells_and_is_appended_at_the_end(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "w.xlsx", 60)
    patch = PackagePatch(path)
    assert patch.row_cells("Models", 61) == {}
    patch.put_rows("Models", {61: '<c r="A61" t="inlineStr"><is><t>new</t></is></c>'})
    out = io.BytesIO()
    patch.save(out)
    out.seek(0)
    with zipfile.ZipFile(out) as zf:
        assert b'<dimension ref="A1:B61" />' in zf.read("xl/worksheets/sheet1.xml")
    out.seek(0)
    ws = openpyxl.load_workbook(out)["Models"]
    assert ws.max_row == 61 and ws["A61"].value == "new" and ws["A60"].value == "row-60"


def test_a_row_written_in_another_form_is_still_found_by_the_walk(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "w.xlsx", 3)
    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    # Attributes before r (as some writers put them): no plain `<row r="2"` start.
    parts[sheet] = parts[sheet].replace(b'<row r="2"', b'<row spans="1:2" r="2"')
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    assert 'r="B2"' in PackagePatch(path).row_cells("Models", 2)[1]


def test_the_end_of_sheet_data_is_found_from_the_end() -> None:
    plain = b'<sheetData><row r="1"/></sheetData><extLst/>'
    assert plain[rows_end(plain) :].startswith(b"</sheetData>")
    spaced = b'<x:sheetData><x:row r="1"/></x:sheetData><x:t>sheetData></x:t>'
    assert spaced[rows_end(spaced) :].startswith(b"</x:sheetData>")
    assert rows_end(b"<worksheet/>") == len(b"<worksheet/>")


def test_rows_go_into_an_empty_sheet_data_of_either_spelling(tmp_path: Path) -> None:
    for tag in (b"<sheetData/>", b"<sheetData />"):
        path = _workbook(tmp_path / "w.xlsx", 1)
        with zipfile.ZipFile(path) as zf:
            parts = {i.filename: zf.read(i) for i in zf.infolist()}
        sheet = "xl/worksheets/sheet1.xml"
        start = parts[sheet].index(b"<sheetData>")
        end = parts[sheet].index(b"</sheetData>") + len(b"</sheetData>")
        parts[sheet] = parts[sheet][:start] + tag + parts[sheet][end:]
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in parts.items():
                zf.writestr(name, data)
        patch = PackagePatch(path)
        patch.put_rows("Models", {2: '<c r="A2" t="inlineStr"><is><t>first</t></is></c>'})
        out = io.BytesIO()
        patch.save(out)
        out.seek(0)
        assert openpyxl.load_workbook(out)["Models"]["A2"].value == "first"
