"""Tests for ``regbook verify`` (issue item 10): every tamper case names its finding.

Each tamper test edits the workbook with openpyxl, the way a person in Excel would
(open, change cells, save), and expects the exact finding code and cell, with the
sealed and the current value in the sentence. The chain and one signature are also
re-checked with independent tools: hashlib over hand-built canonical bytes, and stock
``ssh-keygen -Y verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    CODE_COMMIT,
    CODE_COMMIT_2,
    Env,
    add_draft,
    draft_values,
    edit_workbook,
    finding,
    problems,
)
from regbook.core.ids import CompositeId
from regbook.core.schema import LEDGER, MODELS
from regbook.crypto import keys
from regbook.ledger.events import LedgerEvent, new_event, read_events
from regbook.workbook.read import read_workbook

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None and not os.environ.get("CI"), reason="ssh-keygen is not installed"
)


# --- helpers ---------------------------------------------------------------------------


def run_verify(env: Env, *args: str) -> tuple[int, dict[str, Any]]:
    """``regbook verify --json ARGS``: the exit code and the parsed report."""
    result = env.run("verify", "--json", *args)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def shows(message: str, value: Any) -> bool:
    """Whether the message shows the value: whole, or cut short with '...' (long ones)."""
    if value is None or value == "":
        return "(empty)" in message
    text = str(value)
    if text in message:
        return True
    return any(text[:k] + "..." in message for k in range(12, len(text)))


def ledger_events(env: Env) -> list[LedgerEvent]:
    events, bad = read_events(read_workbook(env.workbook)[LEDGER.name])
    assert not bad
    return events


def event_of(
    env: Env, kind: str = "register", model: str = "credit-risk", version: int = 1
) -> LedgerEvent:
    """The one event of ``kind`` for MODEL@VERSION (the workspace's keyring events come
    first, so registrations are not at Ledger row 2 / seq 1)."""
    (event,) = [e for e in ledger_events(env)
                if (e.kind, e.model, e.version) == (kind, model, version)]  # fmt: skip
    return event


def event_row(
    env: Env, kind: str = "register", model: str = "credit-risk", version: int = 1
) -> int:
    """The Ledger row of that event."""
    return event_of(env, kind, model, version).row


def view_row(env: Env, sheet: str, key: str, value: Any) -> int:
    """The one row of view ``sheet`` whose column ``key`` holds ``value``."""
    import openpyxl

    from regbook.core.schema import SHEETS_BY_NAME

    column = SHEETS_BY_NAME[sheet].index(key) + 1
    ws = openpyxl.load_workbook(env.workbook)[sheet]
    (row,) = [r for r in range(2, ws.max_row + 1) if ws.cell(r, column).value == value]
    return row


def load_key(env: Env, role: str) -> keys.SigningKey:
    return keys.load_private_key(env.keys[role])


def registration_payload(env: Env, version: int, like: LedgerEvent | None = None) -> dict:
    """A consistent registration payload for ``version``, copied from an existing one."""
    like = like or ledger_events(env)[-1]
    payload = json.loads(like.payload_text)
    payload["composite_id"] = str(
        CompositeId.build(
            like.model,
            version,
            payload["artefact"]["hash"].split(":", 1)[1],
            payload["data_version"],
            payload["code_commit"],
        )
    )
    return payload


def append_event(env: Env, event: LedgerEvent) -> int:
    """Write one more Ledger row with openpyxl; returns its row number."""
    rows: list[int] = []

    def change(wb):
        sheet = wb[LEDGER.name]
        sheet.append(event.to_row())
        rows.append(sheet.max_row)

    edit_workbook(env.workbook, change)
    return rows[0]


def forge_register(
    env: Env, key: keys.SigningKey, principal: str, role: str, version: int = 3
) -> int:
    """Sign a registration of credit-risk@VERSION that follows the ledger's head."""
    head = ledger_events(env)[-1]
    event = new_event(
        head, "register", "credit-risk", version, registration_payload(env, version), key,
        principal, role,
    )  # fmt: skip
    return append_event(env, event)


def set_cell(env: Env, ref: str, value: Any) -> None:
    sheet, cell = ref.split("!")

    def change(wb):
        wb[sheet][cell] = value

    edit_workbook(env.workbook, change)


def cell_value(env: Env, ref: str) -> Any:
    import openpyxl

    sheet, cell = ref.split("!")
    return openpyxl.load_workbook(env.workbook)[sheet][cell].value


def artefact(env: Env, version: int) -> Path:
    return env.root / cell_value(env, f"Models!E{version + 1}")


# --- a clean registry ------------------------------------------------------------------


def test_clean_registry_verifies(registered: Env):
    result = registered.run("verify")
    assert result.exit_code == 0, result.output
    # 3 keyring events (the workspace's keys) and 2 registrations.
    registry_id = registered.ws.settings.registry_id
    assert registry_id and len(ledger_events(registered)) == 5
    assert (
        f"verify: ok (5 ledger events, 2 versions, 2 artefacts; registry {registry_id})"
        in result.stdout
    )


def test_notes_stay_editable(registered: Env):
    set_cell(registered, "Models!V2", "retrained weekly; owner: risk team")
    code, report = run_verify(registered)
    assert code == 0 and report["ok"] and report["findings"] == []


# --- Models: every column of a sealed row ----------------------------------------------

# (column key, new value) for each cell the SME typed before sealing...
SME_EDITS = [
    ("model", "credit-risk-v2"),
    ("storage", "models/credit-risk/1/other.bin"),
    ("data_version", "0" * 32),
    ("data_repo", "https://git.example.com/data.git"),
    ("code_commit", CODE_COMMIT_2),
    ("code_repo", "git@example.com:risk/train.git"),
    ("pipeline_run", "run-9999"),
    ("trained_on", date(2020, 1, 31)),
    ("params", "lr=0.1; depth=6"),
    ("auc_roc", 0.97),
    ("dpr", 0.55),
]
# ... and for each cell regbook derives from the ledger.
DERIVED_EDITS = [
    ("version", 7),
    ("composite_id", "credit-risk@1+000000000000.3f6c1e0d.c0ffee12"),
    ("stage", "Production"),
    ("content_hash", "sha256:" + "0" * 64),
    ("gate", "PASS"),
    ("approval", "gina@example.com (governance-lead) 2026-01-02"),
    ("deployed_on", date(2026, 1, 3)),
    ("registered_by", "mallory@example.com"),
    ("registered_at", datetime(2020, 1, 1, 9, 30, 0)),
]


def _sealed_and_now(env: Env, key: str, new: Any) -> tuple[Any, Any]:
    """The sealed value of credit-risk@1's cell, and the value typed over it."""
    from regbook.core.schema import normalize

    kind = MODELS.column(key).kind
    sealed = normalize(kind, cell_value(env, MODELS.ref(key, 2)))
    return sealed, normalize(kind, new)


@pytest.mark.parametrize(("key", "new"), SME_EDITS, ids=[k for k, _ in SME_EDITS])
def test_edit_sme_cell_of_sealed_row(registered: Env, key: str, new: Any):
    ref = MODELS.ref(key, 2)
    sealed, now = _sealed_and_now(registered, key, new)
    set_cell(registered, ref, new)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB301", ref)}
    f = finding(report, "RB301", ref)
    assert "changed after sealing" in f["message"]
    assert shows(f["message"], sealed) and shows(f["message"], now), f["message"]
    assert (f["model"], f["version"]) == ("credit-risk", 1)


@pytest.mark.parametrize(("key", "new"), DERIVED_EDITS, ids=[k for k, _ in DERIVED_EDITS])
def test_edit_derived_cell_of_sealed_row(registered: Env, key: str, new: Any):
    ref = MODELS.ref(key, 2)
    sealed, now = _sealed_and_now(registered, key, new)
    set_cell(registered, ref, new)
    code, report = run_verify(registered)
    assert code == 1
    # Workflow cells (stage, approval, gate, deployment date) have their own code.
    expected = "RB311" if key in ("stage", "approval", "gate", "deployed_on") else "RB301"
    assert problems(report) == {(expected, ref)}
    f = finding(report, expected, ref)
    assert "differs from the ledger" in f["message"]
    assert shows(f["message"], sealed) and shows(f["message"], now), f["message"]


def test_a_date_cell_that_gains_a_time_of_day_is_an_edit(registered: Env):
    """Training date is a date: the same day at 14:30 is not what was sealed."""
    from regbook.core.schema import DATE, normalize

    ref = MODELS.ref("trained_on", 2)
    day = date.fromisoformat(normalize(DATE, cell_value(registered, ref)))
    set_cell(registered, ref, datetime(day.year, day.month, day.day, 14, 30))
    code, report = run_verify(registered)
    assert code == 1 and problems(report) == {("RB301", ref)}
    set_cell(registered, ref, datetime(day.year, day.month, day.day))  # midnight: the day
    assert run_verify(registered)[0] == 0


def test_edit_code_commit_message_reads_well(registered: Env):
    set_cell(registered, "Models!I2", CODE_COMMIT.replace("c0ffee12", "c0ffe312"))
    result = registered.run("verify")
    assert result.exit_code == 1
    assert (
        "RB301 error Models!I2: code commit changed after sealing: sealed c0ffee123456..., "
        "now c0ffe3123456..."
    ) in result.stdout
    assert "verify: 1 problem in 5 ledger events, 2 versions, 2 artefacts" in result.stdout


def test_formula_in_sealed_cell(registered: Env):
    set_cell(registered, "Models!I2", f'=LOWER("{CODE_COMMIT.upper()}")')
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB307", "Models!I2")}
    assert "formula" in finding(report, "RB307", "Models!I2")["message"]


def test_delete_models_row(registered: Env):
    edit_workbook(registered.workbook, lambda wb: wb["Models"].delete_rows(2))
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB302", "Models!credit-risk@1")}
    assert "credit-risk@1" in finding(report, "RB302", "Models!credit-risk@1")["message"]


def test_copy_sealed_row(registered: Env):
    def change(wb):
        sheet = wb["Models"]
        for col in range(1, len(MODELS.columns) + 1):
            sheet.cell(row=4, column=col, value=sheet.cell(row=2, column=col).value)

    edit_workbook(registered.workbook, change)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB304", "Models!A4")}
    assert "row 2" in finding(report, "RB304", "Models!A4")["message"]


def _copy_above_without_seal(wb) -> None:
    """A person copies credit-risk@1's row above it to start a retrain, clears the Seal
    and changes the code commit: a draft in the making, still naming version 1."""
    sheet = wb["Models"]
    values = [cell.value for cell in sheet[2]]
    sheet.insert_rows(2)
    for col, value in enumerate(values, start=1):
        sheet.cell(row=2, column=col, value=value)
    sheet["W2"] = None
    sheet["I2"] = CODE_COMMIT_2


def test_copy_above_the_sealed_row_is_the_copy(registered: Env):
    edit_workbook(registered.workbook, _copy_above_without_seal)
    code, report = run_verify(registered)
    assert code == 1
    # The row that carries the seal is the version's row, wherever it stands.
    assert problems(report) == {("RB304", "Models!A2")}
    assert "also shown in row 3" in finding(report, "RB304", "Models!A2")["message"]


def test_two_cells_of_one_history_row(registered: Env):
    # The History row of credit-risk@1's registration (after the keyring events' rows).
    row = view_row(registered, "History", "seq", event_of(registered).seq)

    def change(wb):
        wb["History"][f"H{row}"] = "mallory@example.com"
        wb["History"][f"J{row}"] = "registered something else"

    edit_workbook(registered.workbook, change)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB309", f"History!H{row}"), ("RB309", f"History!J{row}")}
    message = finding(report, "RB309", f"History!H{row}")["message"]
    assert "ledger says alice@example.com, cell says mallory@example.com" in message


def test_rows_sorted_by_a_person_are_fine(registered: Env):
    def change(wb):
        for name in ("Models", "Metrics"):
            sheet = wb[name]
            rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=2)]
            for r, values in enumerate(reversed(rows), start=2):
                for col, value in enumerate(values, start=1):
                    sheet.cell(row=r, column=col, value=value)

    edit_workbook(registered.workbook, change)
    code, report = run_verify(registered)
    assert code == 0 and report["findings"] == []


def test_fake_seal_on_new_row(registered: Env):
    fake = "ab" * 32

    def change(wb):
        values = [cell.value for cell in wb["Models"][3]]
        values[MODELS.index("version")] = 3
        values[MODELS.index("seal")] = fake
        wb["Models"].append(values)

    edit_workbook(registered.workbook, change)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB303", "Models!W4")}
    assert fake[:16] in finding(report, "RB303", "Models!W4")["message"]


def test_fake_seal_over_real_seal(registered: Env):
    sealed = cell_value(registered, "Models!W2")
    fake = "ab" * 32
    set_cell(registered, "Models!W2", fake)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB301", "Models!W2")}
    message = finding(report, "RB301", "Models!W2")["message"]
    assert shows(message, sealed) and shows(message, fake), message


def test_clear_seal(registered: Env):
    sealed = cell_value(registered, "Models!W2")
    set_cell(registered, "Models!W2", None)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB301", "Models!W2")}
    message = finding(report, "RB301", "Models!W2")["message"]
    assert "seal removed" in message and sealed[:12] in message and "empty" in message


# --- Metrics ---------------------------------------------------------------------------


def test_edit_metric_value(registered: Env):
    set_cell(registered, "Metrics!D2", 0.5)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB301", "Metrics!D2")}
    message = finding(report, "RB301", "Metrics!D2")["message"]
    assert "sealed 0.83" in message and "now 0.5" in message


def test_delete_metric_row(registered: Env):
    edit_workbook(registered.workbook, lambda wb: wb["Metrics"].delete_rows(3))
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB306", "Metrics!credit-risk@1")}
    message = finding(report, "RB306", "Metrics!credit-risk@1")["message"]
    assert "demographic_parity_ratio = 0.91" in message


def test_add_metric_row_to_sealed_version(registered: Env):
    edit_workbook(
        registered.workbook,
        lambda wb: wb["Metrics"].append(
            ["credit-risk", 1, "security_high_findings", 0, "security", None]
        ),
    )
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB305", "Metrics!C6")}
    assert "security_high_findings" in finding(report, "RB305", "Metrics!C6")["message"]


# --- the Ledger ------------------------------------------------------------------------


def test_edit_ledger_payload(registered: Env):
    row = event_row(registered)  # credit-risk@1's registration
    payload = cell_value(registered, f"Ledger!F{row}")
    assert '"value":0.83' in payload
    set_cell(registered, f"Ledger!F{row}", payload.replace('"value":0.83', '"value":0.93', 1))
    code, report = run_verify(registered)
    assert code == 1
    assert "was altered" in finding(report, "RB102", f"Ledger!H{row}")["message"]
    assert (
        "does not match the signed bytes" in finding(report, "RB104", f"Ledger!K{row}")["message"]
    )
    # The views still show what was sealed: the edit is the Ledger's, not blamed on them.
    assert not {p for p in problems(report) if p[0].startswith("RB3")}
    assert finding(report, "RB322", "Models!N2")["severity"] == "info"
    assert finding(report, "RB322", "Metrics!D2")["severity"] == "info"


def test_edit_ledger_hash(registered: Env):
    set_cell(registered, "Ledger!H2", "0" * 64)
    code, report = run_verify(registered)
    assert code == 1
    assert "0000000000000000..." in finding(report, "RB102", "Ledger!H2")["message"]
    assert "event 2 links to" in finding(report, "RB101", "Ledger!G3")["message"]
    ledger = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger == {("RB102", "Ledger!H2"), ("RB101", "Ledger!G3")}


def test_swap_ledger_rows(registered: Env):
    def change(wb):
        sheet = wb["Ledger"]
        two = [c.value for c in sheet[2]]
        three = [c.value for c in sheet[3]]
        for col, (a, b) in enumerate(zip(two, three, strict=True), start=1):
            sheet.cell(row=2, column=col, value=b)
            sheet.cell(row=3, column=col, value=a)

    edit_workbook(registered.workbook, change)
    code, report = run_verify(registered)
    assert code == 1
    assert "seq 2 stands where seq 1" in finding(report, "RB103", "Ledger!A2")["message"]
    assert "seq 1 stands where seq 2" in finding(report, "RB103", "Ledger!A3")["message"]
    finding(report, "RB101", "Ledger!G2")
    finding(report, "RB101", "Ledger!G3")


def test_delete_middle_ledger_row(registered: Env):
    assert registered.register().exit_code == 0
    # Delete credit-risk@2's registration, between credit-risk@1's and credit-risk@3's.
    deleted = event_of(registered, version=2)
    row, seq = deleted.row, deleted.seq
    edit_workbook(registered.workbook, lambda wb: wb["Ledger"].delete_rows(row))
    code, report = run_verify(registered)
    assert code == 1
    message = finding(report, "RB103", f"Ledger!A{row}")["message"]
    assert f"seq {seq + 1} stands where seq {seq}" in message
    finding(report, "RB101", f"Ledger!G{row}")
    # Replayed without credit-risk@2's registration, credit-risk@3 skips a version.
    finding(report, "RB202", f"Ledger!E{row}")


def test_forged_row_signed_by_unknown_key(registered: Env, tmp_path: Path):
    mallory = keys.generate_key(tmp_path / "mallory", comment="mallory")
    row = forge_register(registered, mallory, "alice@example.com", "sme")
    code, report = run_verify(registered)
    assert code == 1
    ledger = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger == {("RB105", f"Ledger!K{row}")}
    assert mallory.public.fingerprint in finding(report, "RB105", f"Ledger!K{row}")["message"]


def test_forged_row_signed_by_key_without_the_role(registered: Env):
    row = forge_register(
        registered, load_key(registered, "governance-lead"), "gina@example.com", "governance-lead"
    )
    code, report = run_verify(registered)
    assert code == 1
    ledger = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger == {("RB106", f"Ledger!K{row}")}
    message = finding(report, "RB106", f"Ledger!K{row}")["message"]
    assert "acting as governance-lead" in message and "needs sme or ci" in message


def test_forged_row_in_a_namespace_the_key_is_not_granted(registered: Env):
    """alice's key is an sme key: a signature in the ci namespace is refused (ssh-keygen
    would refuse it too: namespaces= on her line)."""
    row = forge_register(registered, load_key(registered, "sme"), "alice@example.com", "ci")
    code, report = run_verify(registered)
    assert code == 1
    ledger = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger == {("RB106", f"Ledger!K{row}")}
    assert "may not sign in 'regbook-ci'" in finding(report, "RB106", f"Ledger!K{row}")["message"]


def test_garbled_signature(registered: Env):
    sig = cell_value(registered, "Ledger!K3")
    set_cell(registered, "Ledger!K3", sig.replace("U1NIU0lH", "U1NIU0lI", 1))
    code, report = run_verify(registered)
    assert code == 1
    # The signature is not part of the hashed bytes: the chain itself is intact. (The
    # History sheet's Role, read from the signature's namespace, now differs too.)
    assert problems(report) == {("RB104", "Ledger!K3"), ("RB309", "History!I3")}
    assert "not a valid SSH signature" in finding(report, "RB104", "Ledger!K3")["message"]


def test_revoked_key(registered: Env):
    ring = registered.root / "allowed_signers"
    text = ring.read_text()
    assert 'alice@example.com namespaces="regbook-sme"' in text
    ring.write_text(
        text.replace(
            'alice@example.com namespaces="regbook-sme"',
            'alice@example.com valid-before="20200101Z",namespaces="regbook-sme"',
        )
    )
    code, report = run_verify(registered)
    assert code == 1
    rows = [event_row(registered, version=v) for v in (1, 2)]  # alice's registrations
    for row in rows:
        message = finding(report, "RB107", f"Ledger!K{row}")["message"]
        assert "valid until 2020-01-01T00:00:00Z" in message
    # Edited by hand, the keyring is no longer the one the latest keyring event names.
    assert problems(report) == {("RB107", f"Ledger!K{row}") for row in rows} | {
        ("RB116", "allowed_signers")
    }
    # The Keys sheet shows allowed_signers, which changed under it: a note, since the
    # keyring file is the trust anchor and the next write refreshes the view.
    alice = view_row(registered, "Keys", "principal", "alice@example.com")
    keys_finding = finding(report, "RB308", f"Keys!F{alice}")
    assert keys_finding["severity"] == "info"
    message = keys_finding["message"]
    assert "allowed_signers says 2020-01-01T00:00:00Z, cell says (empty)" in message


def test_version_skipped(registered: Env):
    head = ledger_events(registered)[-1]
    event = new_event(
        head, "register", "credit-risk", 5, registration_payload(registered, 5),
        load_key(registered, "sme"), "alice@example.com", "sme",
    )  # fmt: skip
    row = append_event(registered, event)
    code, report = run_verify(registered)
    assert code == 1
    message = finding(report, "RB202", f"Ledger!E{row}")["message"]
    assert "credit-risk@5" in message and "version 3 was next" in message
    ledger = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger == {("RB202", f"Ledger!E{row}")}


def test_version_reused(registered: Env):
    head = ledger_events(registered)[-1]
    event = new_event(
        head, "register", "credit-risk", 2, registration_payload(registered, 2),
        load_key(registered, "sme"), "alice@example.com", "sme",
    )  # fmt: skip
    row = append_event(registered, event)
    code, report = run_verify(registered)
    assert code == 1
    message = finding(report, "RB201", f"Ledger!E{row}")["message"]
    assert "credit-risk@2 is registered again" in message
    ledger = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger == {("RB201", f"Ledger!E{row}")}


# --- artefacts -------------------------------------------------------------------------


def _writable(path: Path) -> None:
    """Stored copies are read-only: make the file and its folder writable first."""
    for p in (path.parent, path):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_artefact_deleted(registered: Env):
    path = artefact(registered, 1)
    storage = path.relative_to(registered.root).as_posix()
    _writable(path)
    path.unlink()
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB401", storage)}
    assert "credit-risk@1 is missing" in finding(report, "RB401", storage)["message"]


def test_artefact_modified(registered: Env):
    path = artefact(registered, 2)
    storage = path.relative_to(registered.root).as_posix()
    sealed = cell_value(registered, "Models!F3")
    _writable(path)
    path.write_bytes(path.read_bytes() + b"!")
    now = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB402", storage)}
    message = finding(report, "RB402", storage)["message"]
    assert "credit-risk@2 changed since sealing" in message
    assert shows(message, sealed) and shows(message, now), message


def test_artefact_folder_swapped_for_a_symlink(registered: Env):
    """Same bytes, but reached through a symlink out of the workspace: refused."""
    path = artefact(registered, 1)
    storage = path.relative_to(registered.root).as_posix()
    elsewhere = registered.root.parent / "elsewhere"
    shutil.copytree(path.parent, elsewhere)
    _writable(path)
    path.unlink()
    path.parent.rmdir()
    path.parent.symlink_to(elsewhere, target_is_directory=True)
    code, report = run_verify(registered)
    assert code == 1
    assert problems(report) == {("RB403", storage)}
    assert "passes through a symlink" in finding(report, "RB403", storage)["message"]


def test_no_artefacts_skips_them(registered: Env):
    path = artefact(registered, 1)
    _writable(path)
    path.unlink()
    code, report = run_verify(registered, "--no-artefacts")
    assert code == 0 and report["ok"] and report["artefacts_checked"] == 0
    result = registered.run("verify", "--no-artefacts")
    assert result.exit_code == 0
    registry_id = registered.ws.settings.registry_id
    assert f"verify: ok (5 ledger events, 2 versions; registry {registry_id})" in result.stdout


# --- the keyring pin -------------------------------------------------------------------


def test_keyring_pin_matches(registered: Env):
    pin = hashlib.sha256((registered.root / "allowed_signers").read_bytes()).hexdigest()
    code, report = run_verify(registered, "--keyring-sha256", pin)
    assert code == 0 and report["ok"]
    assert report["keyring_sha256"] == pin
    assert registered.run("verify", "--keyring-sha256", pin.upper()).exit_code == 0


def test_keyring_pin_mismatch(registered: Env):
    ring = registered.root / "allowed_signers"
    pin = hashlib.sha256(ring.read_bytes()).hexdigest()
    with ring.open("a") as f:  # someone trusts one more key
        f.write(
            'mallory@example.com namespaces="regbook-governance-lead" '
            f"{keys.generate_key(registered.root.parent / 'mallory').public.openssh()}\n"
        )
    code, report = run_verify(registered, "--keyring-sha256", pin)
    assert code == 1
    message = finding(report, "RB110", "allowed_signers")["message"]
    assert pin in message
    assert hashlib.sha256(ring.read_bytes()).hexdigest() in message


def test_keyring_pin_that_is_not_hex_is_bad_input(registered: Env):
    result = registered.run("verify", "--keyring-sha256", "not-a-hash")
    assert result.exit_code == 2
    assert "--keyring-sha256" in result.stderr and "Traceback" not in result.output


# --- scope and output ------------------------------------------------------------------


def test_scope_reports_that_versions_views_and_every_ledger_finding(registered: Env):
    row = event_row(registered)  # credit-risk@1's registration

    def change(wb):
        wb["Models"]["I2"] = CODE_COMMIT_2  # credit-risk@1
        wb["Models"]["I3"] = CODE_COMMIT_2  # credit-risk@2
        wb["Metrics"]["D2"] = 0.1  # credit-risk@1
        payload = wb["Ledger"][f"F{row}"].value
        wb["Ledger"][f"F{row}"] = payload.replace('"pipeline_run":"run-1042"', '"pipeline_run":"x"')

    edit_workbook(registered.workbook, change)
    code, everything = run_verify(registered)
    assert code == 1
    # credit-risk@1's Ledger row is edited: its view cells are noted, not blamed (RB322).
    assert ("RB301", "Models!I3") in problems(everything)
    assert finding(everything, "RB322", "Models!I2") and finding(everything, "RB322", "Metrics!D2")
    code, scoped = run_verify(registered, "credit-risk@2")
    assert code == 1
    assert scoped["scope"] == "credit-risk@2"
    assert scoped["versions"] == 1 and scoped["artefacts_checked"] == 1
    assert problems(scoped) == {
        ("RB301", "Models!I3"),
        ("RB102", f"Ledger!H{row}"),
        ("RB104", f"Ledger!K{row}"),
    }


def test_scope_model_without_version(registered: Env):
    set_cell(registered, "Models!I3", CODE_COMMIT_2)
    code, report = run_verify(registered, "credit-risk")
    assert code == 1 and report["versions"] == 2
    assert problems(report) == {("RB301", "Models!I3")}


def test_scope_unknown_version_is_bad_input(registered: Env):
    result = registered.run("verify", "credit-risk@9")
    assert result.exit_code == 2
    assert "credit-risk@9" in result.stderr and "Traceback" not in result.output


def test_json_shape(registered: Env):
    set_cell(registered, "Models!I2", CODE_COMMIT_2)
    code, report = run_verify(registered)
    assert code == 1
    assert set(report) == {
        "ok", "scope", "events", "versions", "artefacts_checked", "ledger_head",
        "keyring_sha256", "registry_id", "findings",
    }  # fmt: skip
    assert report["ok"] is False and report["scope"] is None
    # 3 keyring events and 2 registrations.
    assert (report["events"], report["versions"], report["artefacts_checked"]) == (5, 2, 2)
    head = ledger_events(registered)[-1]
    assert head.seq == 5 and report["ledger_head"] == cell_value(registered, f"Ledger!H{head.row}")
    assert report["registry_id"] == registered.ws.settings.registry_id
    ring = (registered.root / "allowed_signers").read_bytes()
    assert report["keyring_sha256"] == hashlib.sha256(ring).hexdigest()
    assert report["findings"] == [
        {
            "code": "RB301",
            "severity": "error",
            "where": "Models!I2",
            "message": finding(report, "RB301", "Models!I2")["message"],
            "model": "credit-risk",
            "version": 1,
        }
    ]


def test_draft_rows_are_an_info_note_not_a_problem(registered: Env):
    values = draft_values(registered)
    edit_workbook(registered.workbook, lambda wb: add_draft(wb, **values))
    code, report = run_verify(registered)
    assert code == 0 and report["ok"]
    assert [(f["code"], f["severity"]) for f in report["findings"]] == [("RB310", "info")]


# --- the chain, re-checked with independent tools --------------------------------------


def _canonical(obj: Any) -> bytes:
    """RFC 8785 for what the ledger holds (ASCII text, integers, short decimals)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@needs_ssh_keygen
def test_chain_and_signature_recheck_independently(registered: Env, tmp_path: Path):
    import openpyxl

    sheet = openpyxl.load_workbook(registered.workbook)["Ledger"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]  # 3 keyring events, 2 registrations
    prev = "0" * 64
    for seq, at, kind, model, version, payload, prev_cell, hash_cell, signer, fp, _sig in rows:
        assert payload == _canonical(json.loads(payload)).decode()
        signed = _canonical(
            {
                "at": at, "fingerprint": fp, "kind": kind, "model": model,
                "payload": json.loads(payload), "prev": prev_cell, "seq": seq,
                "signer": signer, "version": version,
            }
        )  # fmt: skip
        assert hashlib.sha256(signed).hexdigest() == hash_cell
        assert prev_cell == prev
        prev = hash_cell
    # One event, checked by stock OpenSSH against the workspace's keyring: alice's
    # registration of credit-risk@2.
    seq, at, kind, model, version, payload, prev_cell, _hash, signer, fp, sig = rows[4]
    assert (kind, model, version, signer) == ("register", "credit-risk", 2, "alice@example.com")
    signed = _canonical(
        {
            "at": at, "fingerprint": fp, "kind": kind, "model": model,
            "payload": json.loads(payload), "prev": prev_cell, "seq": seq, "signer": signer,
            "version": version,
        }
    )  # fmt: skip
    (tmp_path / "event.sig").write_text(sig)
    done = subprocess.run(
        [SSH_KEYGEN or "ssh-keygen", "-Y", "verify", "-f",
         str(registered.root / "allowed_signers"), "-I", signer, "-n", "regbook-sme",
         "-s", str(tmp_path / "event.sig")],
        input=signed, capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b'Good "regbook-sme" signature for alice@example.com' in done.stdout + done.stderr
    # The same bytes with one character changed do not verify.
    done = subprocess.run(
        [SSH_KEYGEN or "ssh-keygen", "-Y", "verify", "-f",
         str(registered.root / "allowed_signers"), "-I", signer, "-n", "regbook-sme",
         "-s", str(tmp_path / "event.sig")],
        input=signed.replace(b"run-1042", b"run-1043"), capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
