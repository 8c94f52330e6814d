"""PackagePatch finds rows without walking a whole sheet where it can, and finds the
same rows as the walk does."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import openpyxl

from regbook.workbook import deflate
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


# --- deflate streams spliced, not compressed again ---------------------------------------

SHEET = "xl/worksheets/sheet1.xml"


def _append(path: Path, out: Path, number: int) -> PackagePatch:
    patch = PackagePatch(path)
    patch.put_rows(
        "Models", {number: f'<c r="A{number}" t="inlineStr"><is><t>new-{number}</t></is></c>'}
    )
    with open(out, "wb") as handle:
        patch.save(handle)
    return patch


def test_a_later_append_copies_the_compressed_rows_it_kept(tmp_path: Path) -> None:
    first = _append(_workbook(tmp_path / "w.xlsx", 3000), tmp_path / "1.xlsx", 3001)
    assert not first.pieces  # openpyxl wrote it: no points to splice at
    second = _append(tmp_path / "1.xlsx", tmp_path / "2.xlsx", 3002)
    rows = [p for p in second.pieces[SHEET] if p.start > 0]
    assert rows and rows[0].end - rows[0].start > 100_000  # the rows, between the cuts
    # Those compressed bytes stand in the new file as they were: not compressed again.
    assert rows[0].data in (tmp_path / "2.xlsx").read_bytes()
    third = PackagePatch(tmp_path / "2.xlsx")
    assert [p.end for p in third.pieces[SHEET]][-1] > rows[0].end  # the new row joined
    with zipfile.ZipFile(tmp_path / "2.xlsx") as zf:
        assert zf.testzip() is None
    ws = openpyxl.load_workbook(tmp_path / "2.xlsx")["Models"]
    assert [ws["A3000"].value, ws["A3001"].value, ws["A3002"].value] == [
        "row-3000", "new-3001", "new-3002",
    ]  # fmt: skip


def test_cuts_that_do_not_fall_where_blocks_end_are_not_trusted() -> None:
    xml = b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (n, n, n) for n in range(1, 5000)
    )
    data = b'<worksheet><dimension ref="A1:A4999"/><sheetData>' + xml + b"</sheetData></worksheet>"
    stream, cuts = deflate.deflate(data, 6)
    assert len(cuts) == 2 and deflate.inflate(stream, cuts, len(data)) is not None
    plain, pieces = deflate.inflate(stream, cuts, len(data)) or (b"", [])
    assert plain == data and [p.end for p in pieces] == [c[0] for c in cuts]
    (start, at), (end, stop) = cuts
    for forged in (
        [(start, at), (end, stop - 7)],  # a compressed offset inside a block
        [(start, at), (end - 1, stop)],  # a part offset the stretch does not end at
        [(start + 10, at), (end, stop)],
        [(end, stop), (start, at)],  # not rising
    ):
        assert deflate.inflate(stream, forged, len(data)) is None, forged
    # A stream compressed in one go has no point a stretch decodes on its own from.
    whole = zlib.compress(data, 6, wbits=-15)
    assert deflate.inflate(whole, [(len(data) // 2, len(whole) // 2)], len(data)) is None
    assert deflate.read_cuts(deflate.cuts_field(cuts)) == cuts
    assert deflate.read_cuts(b"\x01\x00\x02\x00ab" + deflate.cuts_field(cuts)) == cuts


def test_a_package_with_forged_cuts_is_read_in_full_and_written_right(tmp_path: Path) -> None:
    _append(_workbook(tmp_path / "w.xlsx", 3000), tmp_path / "1.xlsx", 3001)
    with zipfile.ZipFile(tmp_path / "1.xlsx") as zf:
        parts = {i.filename: (i, zf.read(i)) for i in zf.infolist()}
    forged = tmp_path / "forged.xlsx"
    with zipfile.ZipFile(forged, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (info, data) in parts.items():
            fresh = zipfile.ZipInfo(name, date_time=info.date_time)
            fresh.compress_type = zipfile.ZIP_DEFLATED
            if name == SHEET:  # cuts that name points zipfile's stream has no flush at
                fresh.extra = deflate.cuts_field([(100, 40), (len(data) - 30, 9000)])
            zf.writestr(fresh, data)
    patch = PackagePatch(forged)
    assert SHEET not in patch.pieces
    _append(forged, tmp_path / "2.xlsx", 3002)
    ws = openpyxl.load_workbook(tmp_path / "2.xlsx")["Models"]
    assert [ws["A3001"].value, ws["A3002"].value] == ["new-3001", "new-3002"]
