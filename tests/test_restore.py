"""Tests for ``regbook restore`` (issue item 11): views rewritten from a sound ledger.

Restore verifies the ledger first and refuses, with the findings and without writing a
byte, when the ledger itself is broken; otherwise it rewrites every view cell from it,
keeping draft rows and Notes, and ``verify`` is clean afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import openpyxl
import pytest

from conftest import (
    CODE_COMMIT,
    CODE_COMMIT_2,
    Env,
    add_draft,
    draft_values,
    edit_workbook,
    snapshot,
)
from regbook.core.schema import LEDGER, MODELS
from regbook.ledger.events import read_events
from regbook.workbook.read import read_workbook


def verify_report(env: Env) -> tuple[int, dict[str, Any]]:
    result = env.run("verify", "--json")
    return result.exit_code, json.loads(result.stdout)


def restore(env: Env) -> Any:
    result = env.run("restore")
    assert "Traceback" not in result.output
    return result


def sheet(env: Env, name: str) -> Any:
    return openpyxl.load_workbook(env.workbook)[name]


def _copy_row(wb: Any) -> None:
    models = wb["Models"]
    for col in range(1, len(MODELS.columns) + 1):
        models.cell(row=4, column=col, value=models.cell(row=2, column=col).value)


def _set(ref: str, value: Any) -> Callable[[Any], None]:
    name, cell = ref.split("!")

    def change(wb: Any) -> None:
        wb[name][cell] = value

    return change


# name: (the edit, the cells restore says it repaired)
VIEW_EDITS: dict[str, tuple[Callable[[Any], None], set[str]]] = {
    "sme-cell": (_set("Models!I2", CODE_COMMIT_2), {"Models!I2"}),
    "derived-cell": (_set("Models!D3", "Production"), {"Models!D3"}),
    "date-cell": (_set("Models!L2", date(2020, 1, 31)), {"Models!L2"}),
    "metric-column": (_set("Models!N3", 0.99), {"Models!N3"}),
    "formula": (_set("Models!I2", f'=LOWER("{CODE_COMMIT.upper()}")'), {"Models!I2"}),
    "metric-value": (_set("Metrics!D2", 0.5), {"Metrics!D2"}),
    "metric-row-deleted": (
        lambda wb: wb["Metrics"].delete_rows(3),
        {"Metrics!credit-risk@1"},
    ),
    "metric-row-added": (
        lambda wb: wb["Metrics"].append(["credit-risk", 2, "extra", 1, "performance", None]),
        {"Metrics!C6"},
    ),
    "models-row-deleted": (lambda wb: wb["Models"].delete_rows(2), {"Models!credit-risk@1"}),
    "seal-cleared": (_set("Models!W2", None), {"Models!W2"}),
    "seal-faked": (_set("Models!W3", "ab" * 32), {"Models!W3"}),
    "history-cell": (_set("History!H2", "mallory@example.com"), {"History!H2"}),
    "keys-cell": (_set("Keys!A2", "mallory@example.com"), {"Keys!A2"}),
}


@pytest.mark.parametrize("name", list(VIEW_EDITS))
def test_restore_repairs_view_edit(registered: Env, name: str):
    edit, cells = VIEW_EDITS[name]
    edit_workbook(registered.workbook, edit)
    code, before = verify_report(registered)
    assert {f["where"] for f in before["findings"]} == cells
    result = restore(registered)
    assert result.exit_code == 0, result.output
    for cell in cells:
        assert f"repaired {cell}:" in result.stdout
    assert "restore: views rewritten from the ledger" in result.stdout
    code, after = verify_report(registered)
    assert code == 0 and after["findings"] == [], after["findings"]


def test_restore_of_clean_workbook_changes_no_cell(registered: Env):
    def cells(env: Env) -> dict[str, list]:
        wb = openpyxl.load_workbook(env.workbook)
        return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb}

    before = cells(registered)
    result = restore(registered)
    assert result.exit_code == 0, result.output
    assert "(0 findings repaired)" in result.stdout
    assert cells(registered) == before


def test_repaired_sealed_cells_stay_locked_and_shaded(registered: Env):
    edit_workbook(registered.workbook, _set("Models!I2", CODE_COMMIT_2))
    assert restore(registered).exit_code == 0
    cell = sheet(registered, "Models")["I2"]
    assert cell.value == CODE_COMMIT
    assert cell.protection.locked
    assert cell.fill.fgColor.rgb.endswith("E7E6E6")


def test_copied_sealed_row_becomes_a_draft_with_a_note(registered: Env):
    edit_workbook(registered.workbook, _copy_row)
    result = restore(registered)
    assert result.exit_code == 0, result.output
    assert "Models row 4 turned back into a draft" in result.stdout
    models = sheet(registered, "Models")
    assert models["W4"].value is None and models["B4"].value is None
    assert models["V4"].value.startswith("[restore] row turned back into a draft: copy of ")
    assert models["A4"].value == "credit-risk" and models["I4"].value == CODE_COMMIT
    assert models["W2"].value is not None  # the original keeps its seal
    code, after = verify_report(registered)
    assert code == 0
    assert [f["code"] for f in after["findings"]] == ["RB310"]


def test_a_number_typed_into_notes_is_kept_when_the_row_becomes_a_draft(registered: Env):
    def change(wb: Any) -> None:
        _copy_row(wb)
        wb["Models"]["V4"] = 42

    edit_workbook(registered.workbook, change)
    result = restore(registered)
    assert result.exit_code == 0, result.output
    note = sheet(registered, "Models")["V4"].value
    assert note.startswith("[restore] row turned back into a draft: copy of ") and note.endswith(
        ". 42"
    )


def test_copy_above_the_sealed_row_becomes_the_draft(registered: Env):
    """The row with the seal stays the version's row; the copy above it, with the
    person's changes, becomes the draft, whatever the order of the rows."""

    def change(wb: Any) -> None:
        models = wb["Models"]
        values = [c.value for c in models[2]]
        models.insert_rows(2)
        for col, value in enumerate(values, start=1):
            models.cell(row=2, column=col, value=value)
        models["W2"] = None
        models["I2"] = CODE_COMMIT_2
        models["V2"] = "retrain with the new code"
        models["V3"] = "the original"

    edit_workbook(registered.workbook, change)
    sealed = sheet(registered, "Models")["W3"].value
    result = restore(registered)
    assert result.exit_code == 0, result.output
    assert "Models row 2 turned back into a draft" in result.stdout
    models = sheet(registered, "Models")
    assert (models["I2"].value, models["W2"].value, models["B2"].value) == (
        CODE_COMMIT_2,
        None,
        None,
    )
    assert models["V2"].value.endswith("retrain with the new code")
    assert (models["W3"].value, models["V3"].value) == (sealed, "the original")
    code, after = verify_report(registered)
    assert code == 0 and [f["code"] for f in after["findings"]] == ["RB310"]


def test_row_with_fake_seal_becomes_a_draft_with_a_note(registered: Env):
    def change(wb: Any) -> None:
        values = [c.value for c in wb["Models"][3]]
        values[MODELS.index("version")] = 3
        values[MODELS.index("seal")] = "ab" * 32
        values[MODELS.index("notes")] = "typed by hand"
        wb["Models"].append(values)

    edit_workbook(registered.workbook, change)
    result = restore(registered)
    assert result.exit_code == 0, result.output
    assert "repaired Models!W4:" in result.stdout
    assert "Models row 4 turned back into a draft" in result.stdout
    models = sheet(registered, "Models")
    assert models["W4"].value is None and models["B4"].value is None
    assert models["F4"].value is None  # content hash: regbook's to fill when sealing
    assert models["V4"].value == (
        "[restore] row turned back into a draft: its seal is not in the ledger. typed by hand"
    )
    assert not models["A4"].protection.locked  # a draft is the SME's to edit again
    code, after = verify_report(registered)
    assert code == 0 and [f["code"] for f in after["findings"]] == ["RB310"]


def test_restore_keeps_notes_and_drafts(registered: Env):
    values = draft_values(registered)

    def change(wb: Any) -> None:
        wb["Models"]["V2"] = "owner: risk team"
        wb["Models"]["I2"] = CODE_COMMIT_2  # something to repair
        add_draft(wb, notes="draft note", **values)
        wb["Metrics"].append(["fraud-score", None, "auc_roc", 0.81, "performance", None])
        wb["Metrics"].delete_rows(2)  # a sealed metric row to repair

    edit_workbook(registered.workbook, change)
    result = restore(registered)
    assert result.exit_code == 0, result.output
    models = sheet(registered, "Models")
    assert models["V2"].value == "owner: risk team"
    assert models["I2"].value == CODE_COMMIT
    row = [models.cell(row=4, column=i + 1).value for i in range(len(MODELS.columns))]
    typed = {k: row[MODELS.index(k)] for k in values}
    assert typed == values
    assert row[MODELS.index("notes")] == "draft note" and row[MODELS.index("seal")] is None
    metrics = [list(r) for r in sheet(registered, "Metrics").iter_rows(values_only=True)]
    assert ["fraud-score", None, "auc_roc", 0.81, "performance", None] in metrics
    assert len(metrics) == 1 + 4 + 1
    code, after = verify_report(registered)
    assert code == 0 and [f["code"] for f in after["findings"]] == ["RB310"]
    # The draft is still sealable, with its metric.
    sealed = registered.run("seal", key="sme")
    assert sealed.exit_code == 0, sealed.output
    assert sealed.stdout.startswith("fraud-score@1+")
    code, after = verify_report(registered)
    assert code == 0 and after["findings"] == []
    assert sheet(registered, "Models")["N4"].value == 0.81


def _edit_payload(wb: Any) -> int:
    """Change credit-risk@1's AUC-ROC in its registration's payload; that row."""
    led = wb["Ledger"]
    # Both registrations hold 0.83, keyring events none: the first is credit-risk@1's.
    row = next(r for r in range(2, led.max_row + 1) if '"value":0.83' in str(led[f"F{r}"].value))
    led[f"F{row}"] = led[f"F{row}"].value.replace('"value":0.83', '"value":0.93', 1)
    return row


def _swap_ledger_rows(wb: Any) -> int:
    led = wb["Ledger"]
    two, three = [c.value for c in led[2]], [c.value for c in led[3]]
    for col, (a, b) in enumerate(zip(two, three, strict=True), start=1):
        led.cell(row=2, column=col, value=b)
        led.cell(row=3, column=col, value=a)
    return 2


def _delete_ledger_row(wb: Any) -> int:
    wb["Ledger"].delete_rows(2)
    return 2


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_edit_payload, "RB102 error Ledger!H{row}"),
        (_swap_ledger_rows, "RB103 error Ledger!A{row}"),
        (_delete_ledger_row, "RB103 error Ledger!A{row}"),
    ],
    ids=["payload-edited", "rows-swapped", "row-deleted"],
)
def test_restore_refuses_broken_ledger(registered: Env, edit: Any, expected: str):
    rows: list[int] = []

    def change(wb: Any) -> None:
        rows.append(edit(wb))
        wb["Models"]["I3"] = CODE_COMMIT_2  # a view edit restore would otherwise repair

    edit_workbook(registered.workbook, change)
    before = snapshot(registered.root)
    result = restore(registered)
    assert result.exit_code == 1
    assert expected.format(row=rows[0]) in result.stdout
    assert "nothing was written" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(registered.root) == before


def test_restore_refuses_ledger_signed_by_revoked_key(registered: Env):
    # The lead revokes alice's key from before she signed anything (a keyring event).
    revoked = registered.run("keys", "revoke", "alice@example.com", "--at",
                             "2020-01-01T00:00:00Z", key="governance-lead")  # fmt: skip
    assert revoked.exit_code == 0, revoked.output
    events, _ = read_events(read_workbook(registered.workbook)[LEDGER.name])
    alice = [e.row for e in events if e.signer == "alice@example.com"]
    assert len(alice) == 2  # her two registrations
    before = snapshot(registered.root)
    result = restore(registered)
    assert result.exit_code == 1
    for row in alice:
        assert f"RB107 error Ledger!K{row}" in result.stdout
    assert snapshot(registered.root) == before


def test_one_rotating_backup_by_default(registered: Env):
    root = registered.root
    edit_workbook(registered.workbook, _set("Models!I2", CODE_COMMIT_2))
    edited = registered.workbook.read_bytes()
    assert restore(registered).exit_code == 0
    assert (root / "registry.1.bak.xlsx").read_bytes() == edited
    assert not (root / "registry.2.bak.xlsx").exists()
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]
    assert registered.workbook.read_bytes() != edited


def test_backups_rotate_when_more_are_kept(registered: Env):
    root = registered.root
    config = root / "regbook.toml"
    config.write_text(config.read_text().replace("backups = 1", "backups = 3"))
    for _ in range(3):
        assert registered.register().exit_code == 0
    names = ["registry.xlsx"] + [f"registry.{n}.bak.xlsx" for n in (1, 2, 3)]
    before = {n: (root / n).read_bytes() for n in names}
    edit_workbook(registered.workbook, _set("Models!I2", CODE_COMMIT_2))
    edited = registered.workbook.read_bytes()
    assert restore(registered).exit_code == 0
    assert (root / "registry.1.bak.xlsx").read_bytes() == edited
    assert (root / "registry.2.bak.xlsx").read_bytes() == before["registry.1.bak.xlsx"]
    assert (root / "registry.3.bak.xlsx").read_bytes() == before["registry.2.bak.xlsx"]
    assert not (root / "registry.4.bak.xlsx").exists()


def test_restore_json(registered: Env):
    edit_workbook(registered.workbook, _copy_row)
    result = registered.run("restore", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"repaired", "rows_to_drafts", "rows_appended"}
    assert data["rows_to_drafts"] == [4] and data["rows_appended"] == 0
    assert [(f["code"], f["where"]) for f in data["repaired"]] == [("RB304", "Models!A4")]


@pytest.mark.parametrize("command", ["register", "approve"])
def test_writers_refuse_to_write_over_hand_edits(registered: Env, command: str):
    """A writer rewrites view rows from the ledger; over a hand edit that would erase the
    evidence. It refuses until the edit has been looked at and restored."""
    edit_workbook(registered.workbook, _set("Models!I2", CODE_COMMIT_2))
    before = snapshot(registered.root)
    if command == "register":
        result = registered.register()
    else:
        result = registered.run("approve", "credit-risk@1", "--to", "Staging", key="sme")
    assert result.exit_code == 1
    assert "RB301 error Models!I2" in result.stdout
    assert "views differ from the ledger" in result.output
    assert snapshot(registered.root) == before
    assert restore(registered).exit_code == 0
    again = (
        registered.register()
        if command == "register"
        else registered.run("approve", "credit-risk@1", "--to", "Staging", key="sme")
    )
    assert again.exit_code == 0, again.output
