"""Display forgery (issue 14, item 1): what the workbook shows must be what was sealed.

Each forgery is done as an attacker with write access to the workspace would: once
with openpyxl (as Excel would save it) and once by editing the xlsx parts directly.
Each leaves every value as sealed, so only the presentation check can see it; each
must be named by cell with exit 1. Clean round trips stay silent, and ``restore``
puts the template's look back. LibreOffice shows the forged text in its own
rendering: tests/test_libreoffice.py's helper runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Env, edit_workbook
from regbook.core.schema import MODELS, SHEETS
from regbook.workbook.presentation import read_presentation

# --- helpers ---------------------------------------------------------------------------


def verify(env: Env) -> tuple[int, list[dict[str, Any]]]:
    result = env.run("verify", "--no-artefacts", "--json")
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)["findings"]


def display(findings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(code, where) of the presentation findings (RB312-RB318)."""
    return {(f["code"], f["where"]) for f in findings if "RB312" <= f["code"] <= "RB318"}


def col(key: str) -> str:
    return MODELS.letter(key)


def edit_parts(path: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Rewrite parts of the package as bytes, every other part kept as it was."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        parts = {i.filename: zf.read(i) for i in infos}
    change(parts)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in infos:
            out.writestr(info.filename, parts[info.filename])


def sheet_part(parts: dict[str, bytes], name: str) -> str:
    """The part of sheet ``name`` (as read.py resolves it)."""
    workbook = parts["xl/workbook.xml"].decode()
    rid = re.search(rf'<sheet\b[^>]*name="{name}"[^>]*r:id="([^"]+)"', workbook)
    assert rid, name
    rels = parts["xl/_rels/workbook.xml.rels"].decode()
    target = re.search(rf'<Relationship\b[^>]*Target="([^"]+)"[^>]*Id="{rid.group(1)}"', rels)
    if target is None:
        target = re.search(rf'Id="{rid.group(1)}"[^>]*Target="([^"]+)"', rels)
    assert target, rid.group(1)
    t = target.group(1)
    return t.lstrip("/") if t.startswith("/") else "xl/" + t


def cell_style(parts: dict[str, bytes], sheet: str, ref: str) -> int:
    data = parts[sheet_part(parts, sheet)].decode()
    found = re.search(rf'<c r="{ref}" s="(\d+)"', data)
    assert found, ref
    return int(found.group(1))


def add_xf(parts: dict[str, bytes], like: int, *, numfmt: str | None = None,
           font: str | None = None) -> int:  # fmt: skip
    """Append to styles.xml a copy of cell format ``like`` with another number format
    code and/or font (XML of a <font>); its index."""
    styles = parts["xl/styles.xml"].decode()
    xfs = re.search(r"<cellXfs\b[^>]*>(.*?)</cellXfs>", styles, re.DOTALL)
    assert xfs
    items = re.findall(r"<xf\b(?:[^>]*?/>|.*?</xf>)", xfs.group(1), re.DOTALL)
    xf = items[like]
    if numfmt is not None:
        code = numfmt.replace("&", "&amp;").replace('"', "&quot;")
        entry = f'<numFmt numFmtId="250" formatCode="{code}"/>'
        if "<numFmts" in styles:
            styles = re.sub(r"(<numFmts\b[^>]*>)", r"\1" + entry.replace("\\", "\\\\"), styles)
        else:
            styles = re.sub(r"(<styleSheet\b[^>]*>)", r"\1<numFmts>" + entry + "</numFmts>",
                            styles)  # fmt: skip
        xf = re.sub(r'numFmtId="\d+"', 'numFmtId="250"', xf)
    if font is not None:
        fonts = re.search(r"<fonts\b[^>]*>(.*?)</fonts>", styles, re.DOTALL)
        assert fonts
        count = len(re.findall(r"<font\b(?:[^>]*?/>|.*?</font>)", fonts.group(1), re.DOTALL))
        styles = styles.replace("</fonts>", font + "</fonts>", 1)
        xf = re.sub(r'fontId="\d+"', f'fontId="{count}"', xf)
    styles = styles.replace("</cellXfs>", xf + "</cellXfs>", 1)
    parts["xl/styles.xml"] = styles.encode()
    return len(items)


def restyle(parts: dict[str, bytes], sheet: str, ref: str, index: int) -> None:
    part = sheet_part(parts, sheet)
    data, n = re.subn(rf'<c r="{ref}" s="\d+"', f'<c r="{ref}" s="{index}"',
                      parts[part].decode())  # fmt: skip
    assert n == 1
    parts[part] = data.encode()


def in_sheet(parts: dict[str, bytes], sheet: str, old: str, new: str) -> None:
    part = sheet_part(parts, sheet)
    data = parts[part].decode()
    assert old in data, old
    parts[part] = data.replace(old, new, 1).encode()


# --- forgeries with openpyxl -------------------------------------------------------------


def _fmt(ref: str, code: str) -> Callable[[Any], None]:
    def change(wb: Any) -> None:
        sheet, cell = ref.split("!")
        wb[sheet][cell].number_format = code

    return change


def _font(ref: str, **kwargs: Any) -> Callable[[Any], None]:
    def change(wb: Any) -> None:
        from openpyxl.styles import Font

        sheet, cell = ref.split("!")
        wb[sheet][cell].font = Font(**kwargs)

    return change


def _hide_row(sheet: str, row: int, height: float | None = None) -> Callable[[Any], None]:
    def change(wb: Any) -> None:
        dim = wb[sheet].row_dimensions[row]
        if height is None:
            dim.hidden = True
        else:
            dim.height = height

    return change


def _hide_column(letter: str) -> Callable[[Any], None]:
    def change(wb: Any) -> None:
        wb["Models"].column_dimensions[letter].hidden = True

    return change


def _sheet_state(name: str, state: str) -> Callable[[Any], None]:
    def change(wb: Any) -> None:
        wb[name].sheet_state = state

    return change


def _conditional(wb: Any) -> None:
    from openpyxl.formatting.rule import CellIsRule
    from openpyxl.styles import Font

    rule = CellIsRule(operator="equal", formula=['"None"'], font=Font(color="FFE7E6E6"))
    wb["Models"].conditional_formatting.add(f"{col('stage')}2:{col('stage')}3", rule)


def _table(wb: Any) -> None:
    from openpyxl.worksheet.table import Table

    wb["Models"].add_table(Table(displayName="Versions", ref=f"A1:{col('seal')}3"))


def _unprotect(wb: Any) -> None:
    wb["Models"].protection.sheet = False


FORGERIES = {
    # a sealed cell shows another stage, gate result, AUC-ROC or approver
    "stage shows a constant text": (
        _fmt(f"Models!{col('stage')}2", ';;;"Production"'), ("RB312", f"Models!{col('stage')}2")),
    "gate shows PASS on every value": (
        _fmt(f"Models!{col('gate')}3", ';;;"PASS"'), ("RB312", f"Models!{col('gate')}3")),
    "AUC-ROC shows a rounded number": (
        _fmt(f"Models!{col('auc_roc')}2", "0.0"), ("RB312", f"Models!{col('auc_roc')}2")),
    "AUC-ROC shows a constant number": (
        _fmt(f"Models!{col('auc_roc')}2", '"0.97"'), ("RB312", f"Models!{col('auc_roc')}2")),
    "a metric shows a constant": (_fmt("Metrics!D2", '"0.99"'), ("RB312", "Metrics!D2")),
    "approver shows another name": (
        _fmt(f"Models!{col('registered_by')}2", '"gina@example.com"'),
        ("RB312", f"Models!{col('registered_by')}2")),
    "everything hidden by ;;;": (
        _fmt(f"Models!{col('content_hash')}2", ";;;"), ("RB312", f"Models!{col('content_hash')}2")),
    # the value is there but cannot be read
    "font the colour of the sealed shade": (
        _font(f"Models!{col('content_hash')}2", color="FFE7E6E6"),
        ("RB313", f"Models!{col('content_hash')}2")),
    "white on the shade": (
        _font(f"Models!{col('code_commit')}3", color="FFFFFFFF"),
        ("RB313", f"Models!{col('code_commit')}3")),
    "a symbol typeface": (
        _font(f"Models!{col('registered_by')}2", name="Wingdings"),
        ("RB313", f"Models!{col('registered_by')}2")),
    "a one-point font": (
        _font(f"Models!{col('stage')}2", name="Calibri", size=1),
        ("RB313", f"Models!{col('stage')}2")),
    # a version's row, a column or a sheet out of sight
    "hidden row of a version": (_hide_row("Models", 3), ("RB314", "Models!3:3")),
    "one-point row of a version": (_hide_row("Models", 2, 1.0), ("RB314", "Models!2:2")),
    "hidden History row": (_hide_row("History", 2), ("RB314", "History!2:2")),
    "hidden column": (_hide_column(col("code_commit")),
                      ("RB314", f"Models!{col('code_commit')}:{col('code_commit')}")),
    "hidden Ledger": (_sheet_state("Ledger", "hidden"), ("RB315", "Ledger")),
    "very hidden Ledger": (_sheet_state("Ledger", "veryHidden"), ("RB315", "Ledger")),
    "hidden History": (_sheet_state("History", "hidden"), ("RB315", "History")),
    "conditional format": (_conditional, ("RB316", f"Models!{col('stage')}2:{col('stage')}3")),
    "Models unprotected": (_unprotect, ("RB317", "Models")),
    "a table over Models": (_table, ("RB316", "Models")),
}  # fmt: skip


@pytest.mark.parametrize("name", FORGERIES)
def test_forgery_with_openpyxl_is_named_by_cell(registered: Env, name: str):
    change, expected = FORGERIES[name]
    edit_workbook(registered.workbook, change)
    code, findings = verify(registered)
    assert code == 1, findings
    assert display(findings) == {expected}
    assert all(f["code"] >= "RB312" for f in findings if f["severity"] != "info"), findings


def test_a_whole_column_forged_is_named_ten_cells_and_counted(registered: Env):
    for _ in range(10):  # twelve versions
        assert registered.register().exit_code == 0
    letter = col("stage")

    def change(wb: Any) -> None:
        for row in range(2, 14):
            wb["Models"][f"{letter}{row}"].number_format = '"Production"'

    edit_workbook(registered.workbook, change)
    code, findings = verify(registered)
    assert code == 1
    named = [f for f in findings if f["code"] == "RB312"]
    assert [f["where"] for f in named[:10]] == [f"Models!{letter}{r}" for r in range(2, 12)]
    assert named[10]["where"] == f"Models!{letter}:{letter}"
    assert "2 more" in named[10]["message"]


def test_scoped_verify_names_only_that_version(registered: Env):
    edit_workbook(registered.workbook, _fmt(f"Models!{col('stage')}3", '"Production"'))
    result = registered.run("verify", "credit-risk@1", "--no-artefacts")
    assert result.exit_code == 0, result.output
    result = registered.run("verify", "credit-risk@2", "--no-artefacts")
    assert result.exit_code == 1
    assert f"RB312 error Models!{col('stage')}3: Stage (credit-risk@2)" in result.output


def test_unknown_sheet_is_reported_not_trusted(registered: Env):
    def change(wb: Any) -> None:
        wb.create_sheet("Scratch")["A1"] = "Production"
        wb.create_sheet("Models (2)", 0)

    edit_workbook(registered.workbook, change)
    code, findings = verify(registered)
    assert code == 0  # a sheet of one's own is a note, not a problem
    notes = {f["where"]: f for f in findings if f["code"] == "RB318"}
    assert set(notes) == {"Scratch", "Models (2)"}
    assert all(f["severity"] == "info" for f in notes.values())
    assert "not part of the registry, not verified" in notes["Scratch"]["message"]
    assert "looks like the Models sheet" in notes["Models (2)"]["message"]


def test_unknown_sheet_at_the_top_of_the_evidence_report(registered: Env, tmp_path: Path):
    edit_workbook(registered.workbook, lambda wb: wb.create_sheet("Scratch"))
    for suffix in ("md", "html"):
        out = tmp_path / f"evidence.{suffix}"
        result = registered.run("report", "evidence", "credit-risk@1", "-o", str(out))
        assert result.exit_code == 0, result.output
        text = out.read_text(encoding="utf-8")
        head = text[: text.index("Identity")]
        assert "Scratch" in head and "not part of the registry, not verified" in head.lower()


def test_a_writer_leaves_a_forged_look_for_verify_to_name(registered: Env):
    edit_workbook(registered.workbook, _fmt(f"Models!{col('stage')}2", ';;;"Production"'))
    assert registered.register().exit_code == 0  # appends a row, rewrites none of these
    code, findings = verify(registered)
    assert code == 1
    assert display(findings) == {("RB312", f"Models!{col('stage')}2")}


# --- forgeries in the package's XML ------------------------------------------------------


def _xml_numfmt(parts: dict[str, bytes]) -> None:
    ref = f"{col('stage')}2"
    restyle(parts, "Models", ref, add_xf(parts, cell_style(parts, "Models", ref),
                                         numfmt='"Production"'))  # fmt: skip


def _xml_theme_font(parts: dict[str, bytes]) -> None:
    # White by the theme (index 0 is light 1), tinted a little: on the grey shade.
    ref = f"{col('approval')}2"
    font = '<font><color theme="0" tint="-0.05"/><sz val="11"/><name val="Calibri"/></font>'
    restyle(parts, "Models", ref, add_xf(parts, cell_style(parts, "Models", ref), font=font))


def _xml_shared_format(parts: dict[str, bytes]) -> None:
    # The sealed date format itself is changed in styles.xml: the sheet is untouched.
    styles = parts["xl/styles.xml"].decode()
    styles, n = re.subn(r'formatCode="yyyy-mm-dd"', 'formatCode="&quot;2020-01-01&quot;"', styles)
    assert n == 1
    parts["xl/styles.xml"] = styles.encode()


def _xml_reordered_attributes(parts: dict[str, bytes]) -> None:
    # Attributes in another order than any program writes: the full parse must see it.
    ref = f"{col('stage')}3"
    index = add_xf(parts, cell_style(parts, "Models", ref), numfmt='"Production"')
    part = sheet_part(parts, "Models")
    data, n = re.subn(rf'<c r="{ref}" s="\d+"', f'<c s="{index}" r="{ref}"', parts[part].decode())
    assert n == 1
    parts[part] = data.encode()


def _xml_cell_in_the_header_row(parts: dict[str, bytes]) -> None:
    # Version 1's Stage cell, forged and moved into the header row's element.
    ref = f"{col('stage')}2"
    index = add_xf(parts, cell_style(parts, "Models", ref), numfmt=';;;"Production"')
    part = sheet_part(parts, "Models")
    data = parts[part].decode()
    cell = re.search(rf'<c r="{ref}" s="\d+"[^>]*?(?:/>|>.*?</c>)', data)
    assert cell
    moved = re.sub(r's="\d+"', f's="{index}"', cell.group(0), count=1)
    data = data.replace(cell.group(0), "", 1)
    data = data.replace("</row>", moved + "</row>", 1)
    parts[part] = data.encode()


def _xml_hidden_row(parts: dict[str, bytes]) -> None:
    in_sheet(parts, "Models", '<row r="3"', '<row r="3" hidden="1"')


def _xml_tiny_row(parts: dict[str, bytes]) -> None:
    in_sheet(parts, "Models", '<row r="2"', '<row r="2" ht="0.5" customHeight="1"')


def _xml_very_hidden(parts: dict[str, bytes]) -> None:
    workbook = parts["xl/workbook.xml"].decode()
    entry = re.search(r'<sheet\b[^>]*name="Ledger"[^>]*>', workbook)
    assert entry and 'state="visible"' in entry.group(0)
    hidden = entry.group(0).replace('state="visible"', 'state="veryHidden"')
    parts["xl/workbook.xml"] = workbook.replace(entry.group(0), hidden).encode()


def _xml_conditional(parts: dict[str, bytes]) -> None:
    rule = ('<conditionalFormatting sqref="N2:N3"><cfRule type="expression" dxfId="0" '
            'priority="1"><formula>TRUE</formula></cfRule></conditionalFormatting>')  # fmt: skip
    in_sheet(parts, "Models", "</sheetData>", "</sheetData>" + rule)


def _xml_zeros(parts: dict[str, bytes]) -> None:
    in_sheet(parts, "Metrics", "<sheetView ", '<sheetView showZeros="0" ')


def _xml_comment_shown(parts: dict[str, bytes]) -> None:
    # The Models header's comment box made always visible: it sits over the cells.
    part = sheet_part(parts, "Models")
    rels = parts[part.replace("worksheets/", "worksheets/_rels/") + ".rels"].decode()
    target = re.search(r'Target="([^"]+\.vml)"', rels)
    assert target
    vml_part = target.group(1).lstrip("/")
    vml = parts[vml_part].decode()
    # The excel namespace's own prefix, whatever the writer called it.
    shown, n = re.subn(r'<(\w+):ClientData ObjectType="Note">',
                       r'<\1:ClientData ObjectType="Note"><\1:Visible/>', vml, count=1)  # fmt: skip
    assert n == 1
    parts[vml_part] = shown.encode()


def _xml_tabs_hidden(parts: dict[str, bytes]) -> None:
    workbook = parts["xl/workbook.xml"].decode()
    if "showSheetTabs=" in workbook:
        workbook, n = re.subn(r'showSheetTabs="[^"]*"', 'showSheetTabs="0"', workbook)
    else:
        workbook, n = re.subn(r"<workbookView\b", '<workbookView showSheetTabs="0"', workbook)
    assert n == 1
    parts["xl/workbook.xml"] = workbook.encode()


def _xml_unprotected(parts: dict[str, bytes]) -> None:
    part = sheet_part(parts, "Models")
    data, n = re.subn(r"<sheetProtection\b[^>]*/>", "", parts[part].decode())
    assert n == 1
    parts[part] = data.encode()


XML_FORGERIES = {
    "custom number format": (_xml_numfmt, {("RB312", f"Models!{col('stage')}2")}),
    "theme colour on the shade": (_xml_theme_font, {("RB313", f"Models!{col('approval')}2")}),
    "shared date format rewritten": (
        _xml_shared_format,
        # every sealed date cell has it, the empty Deployment date and Retain until too
        {("RB312", f"Models!{col(k)}{r}")
         for k in ("trained_on", "deployed_on", "retain_until") for r in (2, 3)}),
    "attributes reordered": (_xml_reordered_attributes, {("RB312", f"Models!{col('stage')}3")}),
    "forged cell moved into the header row": (
        _xml_cell_in_the_header_row, {("RB312", f"Models!{col('stage')}2")}),
    "hidden row": (_xml_hidden_row, {("RB314", "Models!3:3")}),
    "half-point row": (_xml_tiny_row, {("RB314", "Models!2:2")}),
    "very hidden Ledger": (_xml_very_hidden, {("RB315", "Ledger")}),
    "conditional format": (_xml_conditional, {("RB316", "Models!N2:N3")}),
    "zeros not shown": (_xml_zeros, {("RB316", "Metrics")}),
    "protection removed": (_xml_unprotected, {("RB317", "Models")}),
    "sheet tabs hidden": (_xml_tabs_hidden, {("RB315", "registry.xlsx")}),
    "a comment box always shown": (_xml_comment_shown, {("RB316", "Models")}),
}  # fmt: skip


@pytest.mark.parametrize("name", XML_FORGERIES)
def test_forgery_in_the_xml_is_named_by_cell(registered: Env, name: str):
    change, expected = XML_FORGERIES[name]
    edit_parts(registered.workbook, change)
    code, findings = verify(registered)
    assert code == 1, findings
    assert display(findings) == expected
    assert not [f for f in findings if f["code"] < "RB312" and f["severity"] != "info"]


def test_presentation_reader_resolves_effective_formats(registered: Env):
    edit_parts(registered.workbook, _xml_reordered_attributes)
    shown = read_presentation(registered.workbook, ["Models", "Ledger"])
    models = shown.sheets["Models"]
    assert not models.fast  # the unusual cell was read by the full parse
    assert shown.sheets["Ledger"].fast
    stage = MODELS.index("stage")
    forged = [i for c, i in models.cells if c == stage and shown.looks[i][0].format_code != "@"]
    assert len(forged) == 1
    assert shown.rows_with("Models", stage, forged[0]) == [3]


# --- clean round trips stay silent -------------------------------------------------------


def _widths(wb: Any) -> None:
    wb["Models"].column_dimensions[col("content_hash")].width = 4
    wb["Models"].column_dimensions[col("stage")].width = 60
    wb["Models"].row_dimensions[2].height = 40


def _sorted(wb: Any) -> None:
    """Rows 2 and 3 swapped, values and looks, as Excel's sort moves whole rows."""
    from copy import copy

    ws = wb["Models"]
    for c in range(1, len(MODELS.columns) + 1):
        a, b = ws.cell(row=2, column=c), ws.cell(row=3, column=c)
        a_value, a_style = a.value, copy(a._style)
        a.value, a._style = b.value, copy(b._style)
        b.value, b._style = a_value, a_style


def _filter_applied_and_cleared(wb: Any) -> None:
    ws = wb["Models"]
    ws.auto_filter.add_filter_column(MODELS.index("stage"), ["Staging"])
    ws.row_dimensions[2].hidden = True  # what applying the filter does to the rows
    ws.row_dimensions[3].hidden = True
    ws.auto_filter.filterColumn = []  # cleared: the rows show again
    ws.row_dimensions[2].hidden = False
    ws.row_dimensions[3].hidden = False


def _notes(wb: Any) -> None:
    from openpyxl.styles import Font, PatternFill

    cell = wb["Models"][f"{col('notes')}2"]
    cell.value = "checked by the model risk team"
    cell.font = Font(color="FFFFFFFF", name="Wingdings")
    cell.fill = PatternFill("solid", fgColor="FFFFFFFF")
    cell.number_format = '"anything"'


def _readable_fill(wb: Any) -> None:
    from openpyxl.styles import Font, PatternFill

    cell = wb["Models"][f"{col('stage')}2"]
    cell.fill = PatternFill("solid", fgColor="FFFFFF99")  # highlighted, still readable
    cell.font = Font(name="Calibri", bold=True)


CLEAN = {
    "widths and heights changed": _widths,
    "rows sorted": _sorted,
    "filter applied and cleared": _filter_applied_and_cleared,
    "Notes edited and restyled": _notes,
    "a readable highlight": _readable_fill,
}


@pytest.mark.parametrize("name", CLEAN)
def test_clean_round_trip_is_silent(registered: Env, name: str):
    edit_workbook(registered.workbook, CLEAN[name])
    code, findings = verify(registered)
    assert code == 0, findings
    assert display(findings) == set()


def test_draft_rows_look_is_the_smes(registered: Env):
    def change(wb: Any) -> None:
        ws = wb["Models"]
        ws.cell(row=4, column=1, value="fraud-score")
        ws.cell(row=4, column=MODELS.index("stage") + 1).number_format = '"Production"'

    edit_workbook(registered.workbook, change)
    code, findings = verify(registered)
    assert code == 0, findings
    assert display(findings) == set()


# --- restore puts the look back ------------------------------------------------------------


def test_restore_puts_presentation_and_protection_back(registered: Env):
    def change(wb: Any) -> None:
        for name in ("stage shows a constant text", "white on the shade", "hidden row of a version",
                     "hidden column", "very hidden Ledger", "conditional format",
                     "Models unprotected", "a metric shows a constant",
                     "a table over Models"):  # fmt: skip
            FORGERIES[name][0](wb)
        _notes(wb)

    edit_workbook(registered.workbook, change)
    edit_parts(registered.workbook, _xml_zeros)
    edit_parts(registered.workbook, _xml_tabs_hidden)
    edit_parts(registered.workbook, _xml_comment_shown)
    code, findings = verify(registered)
    shown = [f for f in findings if "RB312" <= f["code"] <= "RB318"]
    assert code == 1 and len(shown) == 12, findings
    result = registered.run("restore")
    assert result.exit_code == 0, result.output
    code, findings = verify(registered)
    assert code == 0, findings
    assert display(findings) == set()
    import openpyxl

    wb = openpyxl.load_workbook(registered.workbook)
    assert all(wb[s.name].protection.sheet for s in SHEETS)
    assert wb["Ledger"].sheet_state == "visible"
    notes = wb["Models"][f"{col('notes')}2"]
    assert notes.value == "checked by the model risk team"  # the SME's cell is left alone
    assert notes.font.name == "Wingdings"


# --- the benchmark's fast path is the one taken --------------------------------------------


def test_fast_path_on_what_regbook_writes(registered: Env):
    shown = read_presentation(registered.workbook, ["Models", "Metrics", "History", "Ledger"])
    assert all(shown.sheets[n].fast for n in ("Models", "Metrics", "History", "Ledger"))


# --- LibreOffice shows the forged text -------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_office = pytest.mark.skipif(
    SOFFICE is None and not os.environ.get("CI"),
    reason="LibreOffice is not installed (.ci/run installs it in CI)",
)
# LibreOffice's CSV export of the first sheet, cells as shown (number formats applied).
AS_SHOWN = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true"


@needs_office
def test_libreoffice_shows_the_forged_stage_and_verify_names_it(registered: Env, tmp_path: Path):
    import csv

    from test_libreoffice import resave

    stage = f"{col('stage')}2"
    # A text cell shows a format's fourth section: a constant there replaces any text.
    edit_workbook(registered.workbook, _fmt(f"Models!{stage}", ';;;"Production"'))
    rendered = resave(registered.workbook, tmp_path / "csv", AS_SHOWN)
    rows = list(csv.reader(rendered.read_text(encoding="utf-8").splitlines()))
    index = MODELS.index("stage")
    assert rows[0][index] == "Stage"
    assert rows[1][index] == "Production"  # what a reader sees in LibreOffice
    assert rows[2][index] == "None"  # the row left alone shows its value
    code, findings = verify(registered)
    assert code == 1
    assert display(findings) == {("RB312", f"Models!{stage}")}
    # Re-saved by LibreOffice (every style renumbered), the forgery is still named.
    saved = resave(registered.workbook, tmp_path / "xlsx", "xlsx")
    shutil.copyfile(saved, registered.workbook)
    code, findings = verify(registered)
    assert code == 1
    assert display(findings) == {("RB312", f"Models!{stage}")}


@needs_office
def test_libreoffice_hides_a_white_font_and_verify_names_it(registered: Env, tmp_path: Path):
    from test_libreoffice import resave

    ref = f"{col('content_hash')}2"
    edit_workbook(registered.workbook, _font(f"Models!{ref}", color="FFE7E6E6"))
    saved = resave(registered.workbook, tmp_path / "xlsx", "xlsx")
    shutil.copyfile(saved, registered.workbook)
    code, findings = verify(registered)
    assert code == 1
    assert display(findings) == {("RB313", f"Models!{ref}")}


@needs_office
def test_libreoffice_resave_of_a_clean_registry_is_silent(registered: Env, tmp_path: Path):
    from test_libreoffice import resave

    saved = resave(registered.workbook, tmp_path / "xlsx", "xlsx")
    shutil.copyfile(saved, registered.workbook)
    code, findings = verify(registered)
    assert code == 0, findings
    assert display(findings) == set()


def test_archive_refuses_a_forged_look_until_restore(registered: Env):
    # Version 2's row is forged; the approval of version 1 rewrites only version 1's row.
    edit_workbook(registered.workbook, _fmt(f"Models!{col('stage')}3", ';;;"Archived"'))
    approved = registered.run("approve", "credit-risk@1", "--to", "Archived", key="sme")
    assert approved.exit_code == 0, approved.output
    assert display(verify(registered)[1]) == {("RB312", f"Models!{col('stage')}3")}
    refused = registered.run("archive", "credit-risk@1", key="sme")
    assert refused.exit_code == 1, refused.output
    assert "nothing was written" in refused.output
    assert (registered.root / "models" / "credit-risk" / "1").exists()
    assert registered.run("restore").exit_code == 0
    archived = registered.run("archive", "credit-risk@1", key="sme")
    assert archived.exit_code == 0, archived.output
    code, findings = verify(registered)
    assert code == 0, findings
