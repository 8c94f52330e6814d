"""Bad input (issue item 14): exit 2, one line naming what and where, no traceback, and
not one byte of the workspace changed; exit 3 while the workbook is open in Excel or
LibreOffice, or another regbook holds the writer lock.

Every case runs each command it applies to (``register``, ``seal``, ``verify``,
``restore``, ``keys new``) and compares a snapshot() of the workspace before and after.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import Result

from conftest import (
    CODE_COMMIT,
    DATA_VERSION,
    Env,
    add_draft,
    draft_values,
    edit_workbook,
    snapshot,
)
from regbook.core.schema import MODELS
from regbook.workbook import read as workbook_module


def one_line_error(result: Result, code: int, *parts: str) -> str:
    """The command failed with ``code`` and one stderr line holding every part."""
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    assert lines[0].startswith("regbook: ")
    return lines[0]


def register_cmd(env: Env) -> Result:
    return env.register()


def seal_cmd(env: Env) -> Result:
    return env.run("seal", key="sme")


def verify_cmd(env: Env) -> Result:
    return env.run("verify")


def restore_cmd(env: Env) -> Result:
    return env.run("restore")


def keys_new_cmd(env: Env) -> Result:
    """A new key, with the governance lead's key that signs its keyring event."""
    return env.run(
        "keys", "new", "bob@example.com", "--role", "sme",
        "--out", str(env.root.parent / "keys" / "bob"), key="governance-lead",
    )  # fmt: skip


COMMANDS = {"register": register_cmd, "seal": seal_cmd, "verify": verify_cmd,
            "restore": restore_cmd}  # fmt: skip
WRITERS = {"register": register_cmd, "seal": seal_cmd, "restore": restore_cmd,
           "keys new": keys_new_cmd}  # fmt: skip


# --- workbooks that are not what they claim --------------------------------------------


def _rezip(path: Path, change: Callable[[str, bytes], bytes], extra: dict[str, bytes]) -> None:
    """Rewrite the xlsx package member by member, adding ``extra`` members."""
    with zipfile.ZipFile(path) as zin:
        members = [(info, zin.read(info)) for info in zin.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info, data in members:
            zout.writestr(info, change(info.filename, data))
        for name, data in extra.items():
            zout.writestr(name, data)


def _billion_laughs(padding: int = 0, bom: bool = False) -> bytes:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + ("" if i == 1 else str(i - 1)) + ";") * 10}">'
        for i in range(1, 10)
    ]
    comment = f"<!--{' ' * padding}-->" if padding else ""
    return ("\ufeff" if bom else "").encode() + (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f"{comment}<!DOCTYPE lolz [{''.join(entities)}]>"
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
        'uniqueCount="1"><si><t>&lol9;</t></si></sst>'
    ).encode()


def xml_bomb(path: Path, padding: int = 0, bom: bool = False) -> None:
    """xl/sharedStrings.xml holding a billion-laughs DTD, wired in as Excel wires it:
    content type, workbook relationship, and Models!A2 reading shared string 0."""

    def change(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return data.replace(
                b"</Types>",
                b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
            )
        if name == "xl/_rels/workbook.xml.rels":
            return data.replace(
                b"</Relationships>",
                b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/'
                b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
                b"</Relationships>",
            )
        if name == "xl/worksheets/sheet1.xml":
            data, count = re.subn(
                rb'<c r="A2" s="(\d+)" t="inlineStr"><is><t[^>]*>[^<]*</t></is></c>',
                rb'<c r="A2" s="\1" t="s"><v>0</v></c>',
                data,
            )
            assert count == 1
        return data

    with zipfile.ZipFile(path) as zf:
        assert "xl/sharedStrings.xml" not in zf.namelist()  # openpyxl writes inline text
    _rezip(path, change, {"xl/sharedStrings.xml": _billion_laughs(padding, bom)})


MODELS_PART = "xl/worksheets/sheet1.xml"


def _swap_part(path: Path, name: str, change: Callable[[bytes], bytes]) -> None:
    """Replace one part of the package, as an attacker with a zip tool would."""

    def swap(member: str, data: bytes) -> bytes:
        return change(data) if member == name else data

    _rezip(path, swap, {})


def _declare(data: bytes, encoding: str) -> str:
    """The part's XML text under a declaration naming ``encoding`` (regbook writes none)."""
    text = data.decode("utf-8")
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :]
    return f'<?xml version="1.0" encoding="{encoding}" standalone="yes"?>\n{text}'


def _utf16(data: bytes, codec: str = "utf-16", declared: str = "UTF-16") -> bytes:
    """The same XML encoded in UTF-16 ("utf-16" writes a BOM, "utf-16-le" none), as
    declared: a parser would read it just as well as the UTF-8 original."""
    return _declare(data, declared).encode(codec)


def _declared(encoding: str) -> Callable[[bytes], bytes]:
    """The same bytes under a declaration claiming another encoding."""
    return lambda data: _declare(data, encoding).encode("utf-8")


def _doctype(data: bytes) -> bytes:
    """A DOCTYPE declaring an (external) entity between the declaration and the root,
    used in no cell: a parser that sees the DTD may already fetch or expand it."""
    text = _declare(data, "UTF-8")
    decl, sep, body = text.partition("?>\n")
    dtd = '<!DOCTYPE worksheet [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    return (decl + sep + dtd + body).encode("utf-8")


def _text_file(path: Path) -> None:
    path.write_text("Model name,Version\ncredit-risk,1\n")


def _zip_not_workbook(path: Path) -> None:
    path.unlink()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not a workbook")


def _edit(change: Callable[[Any], None]) -> Callable[[Path], None]:
    return lambda path: edit_workbook(path, change)


def _set(ref: str, value: Any) -> Callable[[Any], None]:
    name, cell = ref.split("!")

    def change(wb: Any) -> None:
        wb[name][cell] = value

    return change


def _move_column(wb: Any) -> None:
    """Swap Content hash (F) and Training data version (G), values and all."""
    sheet = wb["Models"]
    for row in range(1, sheet.max_row + 1):
        f, g = sheet.cell(row=row, column=6), sheet.cell(row=row, column=7)
        f.value, g.value = g.value, f.value


BROKEN_WORKBOOKS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "text-file": (_text_file, ("registry.xlsx", "not an Excel workbook", "not a zip")),
    "zip-not-workbook": (_zip_not_workbook, ("registry.xlsx", "no xl/workbook.xml")),
    "xml-bomb": (xml_bomb, ("registry.xlsx", "xl/sharedStrings.xml", "entity-expansion")),
    "xml-bomb-padded": (
        lambda path: xml_bomb(path, padding=100_000),
        ("registry.xlsx", "xl/sharedStrings.xml", "entity-expansion"),
    ),
    "xml-bomb-after-bom-and-comment": (
        lambda path: xml_bomb(path, padding=100_000, bom=True),
        ("registry.xlsx", "xl/sharedStrings.xml", "entity-expansion"),
    ),
    "sheet-in-utf16": (
        lambda path: _swap_part(path, MODELS_PART, _utf16),
        ("registry.xlsx", MODELS_PART, "UTF-16", "not UTF-8"),
    ),
    "sheet-in-utf16-without-bom": (
        lambda path: _swap_part(path, MODELS_PART, lambda data: _utf16(data, "utf-16-le")),
        ("registry.xlsx", MODELS_PART, "UTF-16 or UTF-32", "not UTF-8"),
    ),
    "sheet-in-utf32": (
        lambda path: _swap_part(path, MODELS_PART, lambda data: _utf16(data, "utf-32", "UTF-32")),
        ("registry.xlsx", MODELS_PART, "UTF-32", "not UTF-8"),
    ),
    "sheet-declared-latin1": (
        lambda path: _swap_part(path, MODELS_PART, _declared("ISO-8859-1")),
        ("registry.xlsx", MODELS_PART, "'ISO-8859-1'", "not UTF-8"),
    ),
    "sheet-with-doctype": (
        lambda path: _swap_part(path, MODELS_PART, _doctype),
        ("registry.xlsx", MODELS_PART, "entity-expansion"),
    ),
    "missing-workbook": (lambda path: path.unlink(), ("registry.xlsx", "not found")),
    "missing-sheet": (
        _edit(lambda wb: wb.remove(wb["Metrics"])),
        ("registry.xlsx", "sheet 'Metrics' is missing"),
    ),
    "renamed-column": (
        _edit(_set("Models!F1", "Hash")),
        ("Models!F1", "'Content hash'", "missing or renamed", "'Hash'"),
    ),
    "missing-column": (
        _edit(lambda wb: wb["Models"].delete_cols(23)),
        ("Models!W1", "'Seal'", "missing"),
    ),
    "moved-column": (_edit(_move_column), ("Models!F1", "'Content hash'", "has moved")),
    "merged-cells": (
        _edit(lambda wb: wb["Models"].merge_cells("V2:V3")),
        ("Models!V2:V3", "merged cells"),
    ),
    "merged-metrics": (
        _edit(lambda wb: wb["Metrics"].merge_cells("A2:A3")),
        ("Metrics!A2:A3", "merged cells"),
    ),
    # verify reads the Ledger first and the other sheets beside its parsing: a problem
    # in either is the same one-line refusal.
    "missing-ledger": (
        _edit(lambda wb: wb.remove(wb["Ledger"])),
        ("registry.xlsx", "sheet 'Ledger' is missing"),
    ),
    "merged-ledger": (
        _edit(lambda wb: wb["Ledger"].merge_cells("B2:C2")),
        ("Ledger!B2:C2", "merged cells"),
    ),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(BROKEN_WORKBOOKS))
def test_broken_workbook_is_refused(registered: Env, case: str, command: str):
    breakage, parts = BROKEN_WORKBOOKS[case]
    breakage(registered.workbook)
    before = snapshot(registered.root)
    one_line_error(COMMANDS[command](registered), 2, *parts)
    assert snapshot(registered.root) == before


def _styles_broken(path: Path) -> None:
    """styles.xml without cell formats: readers still read the values, a writer cannot
    style the cells it writes."""
    _rezip(path, lambda name, data: (
        b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>'
        if name == "xl/styles.xml" else data), {})  # fmt: skip


@pytest.mark.parametrize("command", list(WRITERS))
def test_writers_refuse_workbook_they_cannot_write(registered: Env, command: str):
    values = draft_values(registered)
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    _styles_broken(registered.workbook)
    # Readers still read it; what it now shows (dates as day numbers) is a finding.
    shown = verify_cmd(registered)
    codes = {line.split()[0] for line in shown.output.splitlines() if line.startswith("RB")}
    assert shown.exit_code == 1 and codes <= {"RB312", "RB310"}, shown.output
    before = snapshot(registered.root)
    one_line_error(WRITERS[command](registered), 2, "registry.xlsx", "cannot be")
    assert snapshot(registered.root) == before  # no artefact copy, no keyring line
    assert not (registered.root.parent / "keys" / "bob").exists()


def test_keys_new_refuses_broken_workbook_before_writing_a_key(registered: Env):
    xml_bomb(registered.workbook)
    before = snapshot(registered.root)
    one_line_error(keys_new_cmd(registered), 2, "entity-expansion")
    assert snapshot(registered.root) == before
    assert not (registered.root.parent / "keys" / "bob").exists()


# --- a formula where a sealed value belongs --------------------------------------------

FORMULA = f'=LOWER("{CODE_COMMIT.upper()}")'


@pytest.mark.parametrize(
    ("ref", "command"),
    [
        ("Models!I2", "register"),
        ("Models!I2", "seal"),
        ("Metrics!D3", "register"),
        ("Metrics!D3", "seal"),
    ],
)
def test_writers_refuse_formula_in_sealed_cell(registered: Env, ref: str, command: str):
    edit_workbook(registered.workbook, _set(ref, FORMULA))
    before = snapshot(registered.root)
    one_line_error(COMMANDS[command](registered), 2, ref, "formula in a sealed cell")
    assert snapshot(registered.root) == before


def test_seal_with_drafts_refuses_formula_in_sealed_cell(registered: Env):
    values = draft_values(registered)

    def change(wb: Any) -> None:
        wb["Models"]["I2"] = FORMULA
        add_draft(wb, **values)

    edit_workbook(registered.workbook, change)
    before = snapshot(registered.root)
    one_line_error(seal_cmd(registered), 2, "Models!I2", "formula in a sealed cell")
    assert snapshot(registered.root) == before


def test_verify_reports_formula_in_sealed_cell(registered: Env):
    edit_workbook(registered.workbook, _set("Models!I2", FORMULA))
    before = snapshot(registered.root)
    result = verify_cmd(registered)
    assert result.exit_code == 1
    assert "RB307 error Models!I2: a formula in a sealed cell" in result.stdout
    assert snapshot(registered.root) == before


def test_restore_puts_the_sealed_value_back_over_a_formula(registered: Env):
    edit_workbook(registered.workbook, _set("Models!I2", FORMULA))
    result = restore_cmd(registered)
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(registered.workbook)["Models"]["I2"].value == CODE_COMMIT
    assert verify_cmd(registered).exit_code == 0


# --- wrong types, in a draft and on the command line -----------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trained_on", "yesterday", 'expected a date (yyyy-mm-dd), found "yesterday"'),
        ("version", "seven", 'expected a whole number, found "seven"'),
        ("auc_roc", "high", 'expected a number, found "high"'),
        ("data_version", "3f6c1e0", "3f6c1e0"),
        ("code_commit", f'=LOWER("{CODE_COMMIT}")', "a formula; type the value itself"),
    ],
    ids=["training-date", "version", "auc-roc", "abbreviated-data-version", "formula"],
)
def test_seal_refuses_draft_with_wrong_type(registered: Env, key: str, value: Any, message: str):
    values = {**draft_values(registered), key: value}
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "regbook: 1 problem in draft rows; nothing was written"
    assert len(lines) == 2
    assert lines[1].strip().startswith(MODELS.ref(key, 4) + ": ")
    assert message in lines[1]
    assert snapshot(registered.root) == before


def test_seal_reports_every_problem_by_cell_and_writes_nothing(registered: Env):
    good = draft_values(registered)

    def change(wb: Any) -> None:
        add_draft(wb, **{**good, "trained_on": "yesterday"})  # row 4
        add_draft(wb, **{**good, "model": "Credit Risk"})  # row 5
        add_draft(wb, **{**good, "storage": "../outside.bin"})  # row 6
        add_draft(wb, **good)  # row 7: fine, but nothing is sealed while others fail

    (registered.root.parent / "outside.bin").write_bytes(b"outside")
    edit_workbook(registered.workbook, change)
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line.strip() for line in result.stderr.strip().splitlines()]
    assert lines[0] == "regbook: 3 problems in draft rows; nothing was written"
    assert len(lines) == 4
    assert lines[1].startswith("Models!L4: ") and "yesterday" in lines[1]
    assert lines[2].startswith("Models!A5: ") and "Credit Risk" in lines[2]
    assert lines[3].startswith("Models!E6: ") and "'..'" in lines[3]
    assert snapshot(registered.root) == before


@pytest.mark.parametrize("typed", [2, 5], ids=["reused", "skipped"])
def test_seal_refuses_a_version_typed_in_a_draft(registered: Env, typed: int):
    values = {**draft_values(registered), "model": "credit-risk", "version": typed}
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[1:] == [
        f"  Models!B4: version {typed} cannot be used; the next version of credit-risk is 3 "
        "(leave the cell empty)"
    ]
    assert snapshot(registered.root) == before


def test_seal_reports_every_problem_of_one_row(registered: Env):
    values = {**draft_values(registered), "trained_on": "yesterday", "version": "seven"}
    values["auc_roc"] = "high"
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    cells = sorted(line.split(":")[0].strip() for line in result.stderr.splitlines()[1:])
    assert cells == ["Models!B4", "Models!L4", "Models!N4"]
    assert snapshot(registered.root) == before


def test_seal_refuses_formula_in_a_drafts_metric(registered: Env):
    values = draft_values(registered)

    def change(wb: Any) -> None:
        add_draft(wb, **values)
        wb["Metrics"].append(["fraud-score", None, "auc_roc", "=0.4+0.4", "performance", None])

    edit_workbook(registered.workbook, change)
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[1:] == ["  Metrics!D6: a formula; type the value itself"]
    assert snapshot(registered.root) == before


def test_seal_names_the_metrics_cell_of_each_problem(registered: Env):
    values = draft_values(registered)

    def change(wb: Any) -> None:
        add_draft(wb, **values)
        metrics = wb["Metrics"]
        metrics.append(["fraud-score", None, "auc_roc", "high", "performance", None])
        metrics.append(["fraud-score", None, "recall", 0.5, "speed", None])
        metrics.append(["fraud-score", None, "precision", None, "performance", None])
        metrics.append(["fraud-score", "seven", "f1", 0.5, "performance", None])
        metrics.append(["fraud-score", None, "F1 score", 0.5, "performance", None])

    edit_workbook(registered.workbook, change)
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [line.strip() for line in result.stderr.splitlines()] == [
        "regbook: 5 problems in draft rows; nothing was written",
        'Metrics!D6: expected a number, found "high"',
        "Metrics!E7: kind 'speed' is not one of performance, fairness, security",
        "Metrics!D8: metric precision has no value",
        'Metrics!B9: expected a whole number, found "seven"',
        "Metrics!C10: metric name 'F1 score' must be a lower-case identifier ([a-z][a-z0-9_]*)",
    ]
    assert snapshot(registered.root) == before


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--trained-on", "yesterday"), "--trained-on: expected a date"),
        (("--trained-on", " "), "--trained-on: empty; give a date"),
        (("--metric", "auc_roc=high"), "--metric 'auc_roc=high': expected a number"),
        (("--metric", "AUC=0.8"), "must be a lower-case identifier"),
        (("--param", "depth"), "'depth' is not NAME=VALUE"),
    ],
    ids=["trained-on", "trained-on-blank", "metric-value", "metric-name", "param"],
)
def test_register_refuses_wrong_type(registered: Env, option: tuple[str, str], message: str):
    before = snapshot(registered.root)
    one_line_error(registered.register("credit-risk", None, *option), 2, message)
    assert snapshot(registered.root) == before


# --- storage paths that leave the workspace --------------------------------------------


@pytest.fixture
def outside(registered: Env) -> Path:
    """A folder beside the workspace holding model.bin; ws/shared links to it and
    ws/incoming/linked.bin links to the file."""
    folder = registered.root.parent / "elsewhere"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"a model that lives elsewhere\n")
    (registered.root / "shared").symlink_to(folder, target_is_directory=True)
    (registered.root / "incoming").mkdir(exist_ok=True)
    (registered.root / "incoming" / "linked.bin").symlink_to(folder / "model.bin")
    return folder


STORAGE_CASES = [
    ("../elsewhere/model.bin", "climbs out of the workspace with '..'"),
    ("models/../../elsewhere/model.bin", "climbs out of the workspace with '..'"),
    ("..\\elsewhere\\model.bin", "climbs out of the workspace with '..'"),
    ("shared/model.bin", "passes through a symlink (shared)"),
    ("incoming/linked.bin", "passes through a symlink (incoming/linked.bin)"),
]
STORAGE_IDS = ["dotdot", "dotdot-inside", "dotdot-windows", "symlinked-folder", "symlinked-file"]


@pytest.mark.parametrize(("storage", "message"), STORAGE_CASES, ids=STORAGE_IDS)
def test_seal_refuses_storage_outside_workspace(
    registered: Env, outside: Path, storage: str, message: str
):
    values = {**draft_values(registered), "storage": storage}
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    before = snapshot(registered.root)
    result = seal_cmd(registered)
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line.strip() for line in result.stderr.strip().splitlines()]
    assert lines[1:] == [f"Models!E4: storage location {storage!r} {message}"]
    assert snapshot(registered.root) == before


@pytest.mark.parametrize(("storage", "message"), STORAGE_CASES, ids=STORAGE_IDS)
def test_register_refuses_storage_outside_workspace(
    registered: Env, outside: Path, storage: str, message: str
):
    before = snapshot(registered.root)
    result = registered.run(
        "register", "credit-risk", "--storage", storage, "--data-version", DATA_VERSION,
        "--code-commit", CODE_COMMIT, "--pipeline-run", "run-1", key="sme",
    )  # fmt: skip
    one_line_error(result, 2, f"--storage: storage location {storage!r} {message}")
    assert snapshot(registered.root) == before


# --- the workbook open in Excel or LibreOffice -----------------------------------------

# Excel's owner file is ~$NAME, or ~$ over the first two characters of a long NAME.
OFFICE_LOCKS = {
    "excel": "~$registry.xlsx",
    "excel-long-name": "~$gistry.xlsx",
    "libreoffice": ".~lock.registry.xlsx#",
}


@pytest.mark.parametrize("command", list(WRITERS))
@pytest.mark.parametrize("office", list(OFFICE_LOCKS))
def test_writers_refuse_workbook_open_in_office(registered: Env, office: str, command: str):
    values = draft_values(registered)
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    lock = registered.root / OFFICE_LOCKS[office]
    lock.write_text("alice,alice-laptop,/home/alice,26.11.2026 09:00;")
    before = snapshot(registered.root)
    one_line_error(
        WRITERS[command](registered), 3, "open in Excel or LibreOffice",
        OFFICE_LOCKS[office], "nothing was written",
    )  # fmt: skip
    assert snapshot(registered.root) == before
    assert not (registered.root.parent / "keys" / "bob").exists()


@pytest.mark.parametrize("office", list(OFFICE_LOCKS))
def test_verify_reads_workbook_open_in_office(registered: Env, office: str):
    (registered.root / OFFICE_LOCKS[office]).write_text("")
    result = verify_cmd(registered)
    assert result.exit_code == 0, result.output


def test_office_lock_of_another_workbook_does_not_matter(registered: Env):
    (registered.root / "~$other.xlsx").write_text("")
    (registered.root / ".~lock.other.xlsx#").write_text("")
    assert restore_cmd(registered).exit_code == 0


# --- another regbook holding the writer lock -------------------------------------------


@pytest.fixture
def held_lock(registered: Env, monkeypatch: pytest.MonkeyPatch):
    """Another regbook writing: the writer lock held, and a short wait for it."""
    from filelock import FileLock

    monkeypatch.setattr(workbook_module, "LOCK_TIMEOUT", 0.2)
    lock = FileLock(str(registered.root / ".registry.xlsx.lock"))
    lock.acquire()
    yield lock
    lock.release()


@pytest.mark.parametrize("command", list(WRITERS))
def test_writers_refuse_while_another_regbook_writes(registered: Env, held_lock, command: str):
    values = draft_values(registered)
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    before = snapshot(registered.root)
    one_line_error(
        WRITERS[command](registered), 3, "locked by another regbook", "nothing was written"
    )
    assert snapshot(registered.root) == before
    assert not (registered.root.parent / "keys" / "bob").exists()


def test_verify_reads_while_another_regbook_writes(registered: Env, held_lock):
    assert verify_cmd(registered).exit_code == 0


def test_writer_proceeds_once_the_lock_is_released(registered: Env, held_lock):
    held_lock.release()
    result = register_cmd(registered)
    assert result.exit_code == 0, result.output


# --- what a good write leaves behind ---------------------------------------------------


def test_good_write_is_atomic_with_one_rotating_backup(registered: Env):
    previous = registered.workbook.read_bytes()
    result = register_cmd(registered)
    assert result.exit_code == 0, result.output
    assert (registered.root / "registry.1.bak.xlsx").read_bytes() == previous
    leftovers = [p.name for p in registered.root.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    openpyxl.load_workbook(registered.workbook)  # a whole workbook, not a partial one
    assert verify_cmd(registered).exit_code == 0


def test_training_date_typed_as_a_date_is_fine(registered: Env):
    """The type checks refuse text where a date belongs, not a real date cell."""
    values = {**draft_values(registered), "trained_on": date(2026, 1, 15)}
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    result = seal_cmd(registered)
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(registered.workbook)["Models"]["L4"].value.date() == date(
        2026, 1, 15
    )
