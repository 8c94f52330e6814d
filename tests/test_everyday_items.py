"""Everyday use through the command line, more: rollback, metrics sealed after registration,
messages that say what to do next, log audits and reports (issue items 3-7)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import Env, copied_env, snapshot
from factory import PASSING, TO_PRODUCTION, Version, build
from regbook.core.schema import HISTORY
from regbook.workbook.read import read_workbook
from test_archive import bag, in_production, ok, verify_json

__all__ = ["in_production"]  # the fixture, used by name


def sha256(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# --- rollback --------------------------------------------------------------------------


def test_rollback_reinstates_an_archived_production_version(in_production: Env):
    env = in_production
    first = next((env.root / "models" / "credit-risk" / "1").iterdir())
    sealed = sha256(first)
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    ok(env.run("promote", "credit-risk@2", "--to", "Production", "--archive-previous", key="ci"))
    assert not first.exists() and (bag(env, "credit-risk@1") / "bagit.txt").is_file()

    # Every Production precondition, and a gate given after the archive.
    before = snapshot(env.root)
    refused = env.run("promote", "credit-risk@1", "--to", "Production", key="ci")
    assert refused.exit_code == 1, refused.output
    assert "no signed approval for Archived -> Production" in refused.output
    assert "older than the archive" in refused.output
    assert "credit-risk@2 is in Production" in refused.output
    assert "--archive-previous" in refused.output
    assert snapshot(env.root) == before

    ok(env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead"))
    ok(env.run("gate", "credit-risk@1", key="ci"))
    ok(env.run("approve", "credit-risk@2", "--to", "Archived", key="governance-lead"))
    by_lead = env.run(
        "promote", "credit-risk@1", "--to", "Production", "--archive-previous",
        key="governance-lead",
    )  # fmt: skip
    assert by_lead.exit_code == 1 and "only the CI pipeline" in by_lead.output

    done = ok(env.run(
        "promote", "credit-risk@1", "--to", "Production", "--archive-previous", key="ci"
    ))  # fmt: skip
    assert "archived credit-risk@2 into its bag" in done.output
    assert "rolled back credit-risk@1: Archived -> Production" in done.output
    # The artefact is back where it was sealed, as sealed and read-only; the bag stays.
    assert first.is_file() and sha256(first) == sealed
    assert not first.stat().st_mode & 0o222
    assert (bag(env, "credit-risk@1") / "bagit.txt").is_file()
    listed = {r["version"]: r for r in json.loads(ok(env.run("list", "--json")).stdout)}
    assert listed[1]["stage"] == "Production" and listed[2]["stage"] == "Archived"
    history = read_workbook(env.workbook)[HISTORY.name].rows
    last = [r for r in history if r[HISTORY.index("event")] == "promote"][-1]
    assert last[HISTORY.index("from_stage")] == "Archived"
    assert "rollback: artefact back from its bag archive/credit-risk/1" in str(
        last[HISTORY.index("detail")]
    )
    code, report = verify_json(env)
    assert code == 0 and not report["findings"], report["findings"]
    fixed = json.loads(ok(env.run("fixity", "--json")).stdout)
    assert fixed["ok"] and fixed["checked"] == 2, fixed

    # Archived again by a governance lead (another signer than the bag's): the bag is
    # the one the ledger records, so it is reused, and the copy in models/ goes.
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    ok(env.run("archive", "credit-risk@1", key="governance-lead"))
    assert not first.exists()
    code, report = verify_json(env)
    assert code == 0 and not report["findings"], report["findings"]


def test_rollback_needs_a_version_once_in_production_and_an_intact_bag(in_production: Env):
    env = in_production
    # credit-risk@2 never reached Production: Archived stays final for it.
    ok(env.run("approve", "credit-risk@2", "--to", "Archived", key="governance-lead"))
    ok(env.run("archive", "credit-risk@2", key="governance-lead"))
    never = env.run("approve", "credit-risk@2", "--to", "Production", key="governance-lead")
    assert never.exit_code == 2 and "which is final" in never.output
    assert env.run("gate", "credit-risk@2", key="ci").exit_code == 2

    # A bag whose payload was swapped: the artefact is not brought back.
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    ok(env.run("archive", "credit-risk@1", key="governance-lead"))
    ok(env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead"))
    ok(env.run("gate", "credit-risk@1", key="ci"))
    payload = next((bag(env, "credit-risk@1") / "data").iterdir())
    payload.chmod(0o644)
    payload.write_bytes(b"a swapped model")
    before = snapshot(env.root)
    refused = env.run("promote", "credit-risk@1", "--to", "Production", key="ci")
    assert refused.exit_code == 1 and "does not validate" in refused.output, refused.output
    assert snapshot(env.root) == before


# --- metrics that come later -------------------------------------------------------------


def _add_metric_row(env: Env, *values) -> int:
    from conftest import edit_workbook
    from regbook.core.schema import METRICS

    rows: list[int] = []

    def change(wb) -> None:
        sheet = wb[METRICS.name]
        rows.append(sheet.max_row + 1)
        for column, value in enumerate(values, start=1):
            sheet.cell(row=rows[0], column=column, value=value)

    edit_workbook(env.workbook, change)
    return rows[0]


def test_metrics_typed_later_are_sealed_as_a_signed_addendum(registered: Env):
    env = registered
    # The security scan result comes after the registration; the gate needs it.
    failed = env.run("gate", "credit-risk@1", key="ci")
    assert failed.exit_code == 1 and "missing" in failed.output
    row = _add_metric_row(env, "credit-risk", 1, "security_high_findings", 0, "security", None)
    done = ok(env.run("seal", key="sme"))
    assert "metrics added security_high_findings" in done.output
    code, report = verify_json(env)
    assert code == 0 and not report["findings"], report["findings"]
    assert "PASS" in ok(env.run("gate", "credit-risk@1", key="ci")).output

    history = read_workbook(env.workbook)[HISTORY.name].rows
    added = [r for r in history if r[HISTORY.index("event")] == "metrics"]
    assert len(added) == 1 and "security_high_findings = 0" in added[0][HISTORY.index("detail")]
    out = env.root.parent / "evidence.md"
    ok(env.run("report", "evidence", "credit-risk@1", "-o", str(out)))
    text = out.read_text()
    seq = json.loads(ok(env.run("verify", "--json")).stdout)["events"] - 1
    assert f"(added, event {seq})" in text and "(registration)" in text

    # A row that would change a sealed value is refused at seal, by its cell.
    from conftest import edit_workbook
    from regbook.core.schema import METRICS

    edit_workbook(env.workbook, lambda wb: wb[METRICS.name].cell(row=row, column=4, value=3))
    before = snapshot(env.root)
    refused = env.run("seal", key="sme")
    assert refused.exit_code == 2, refused.output
    assert f"Metrics!D{row}: security_high_findings of credit-risk@1 was sealed" in refused.output
    assert "never changed" in refused.output
    assert snapshot(env.root) == before


# --- messages that say what to do next ---------------------------------------------------


def test_messages_say_what_to_do_next(registered: Env):
    from conftest import add_draft, draft_values, edit_workbook
    from regbook.core.schema import LEDGER, METRICS

    env = registered
    typo = env.run("approve", "credit-rsk@1", "--to", "Staging", key="sme")
    assert typo.exit_code == 2 and "did you mean credit-risk@1?" in typo.output
    assert "`regbook list`" in typo.output
    beyond = env.run("approve", "credit-risk@9", "--to", "Staging", key="sme")
    assert beyond.exit_code == 2 and "credit-risk has versions 1, 2" in beyond.output
    empty = env.run("list", "--stage", "Staging")
    assert empty.exit_code == 0
    assert "no version in Staging (2 sealed versions in other stages)" in empty.output
    assert "1 version," in ok(env.run("verify", "credit-risk@1")).output

    lock = env.root / ".~lock.registry.xlsx#"
    lock.write_text("someone,host,2026\n")
    locked = env.run("approve", "credit-risk@1", "--to", "Staging", key="sme")
    assert locked.exit_code == 3 and "stale: deleting .~lock.registry.xlsx# is then safe" in (
        locked.output
    )
    lock.unlink()

    moved = env.root / "elsewhere.xlsx"
    env.workbook.rename(moved)
    missing = env.run("list")
    assert missing.exit_code == 2 and "its backup registry.1.bak.xlsx is beside it" in (
        missing.output
    )
    moved.rename(env.workbook)

    # seal names the bad cell, not the draft's Metrics row that follows from it.
    def draft(wb) -> None:
        values = draft_values(env) | {"code_commit": "c0ffee"}
        row = add_draft(wb, **values)
        sheet = wb[METRICS.name]
        at = sheet.max_row + 1
        for column, value in enumerate(("fraud-score", None, "auc_roc", 0.8), start=1):
            sheet.cell(row=at, column=column, value=value)
        assert row

    edit_workbook(env.workbook, draft)
    refused = env.run("seal", key="sme")
    assert refused.exit_code == 2 and "Models!I4: 'c0ffee' is not a full git commit" in (
        refused.output
    )
    assert "1 problem in draft rows" in refused.output and "matches no draft" not in refused.output

    # An edited Ledger row: a Ledger finding, not one on the views it no longer matches.
    def forge(wb) -> None:
        sheet = wb[LEDGER.name]
        kind, payload = LEDGER.index("kind") + 1, LEDGER.index("payload") + 1
        row = next(
            r for r in range(2, sheet.max_row + 1) if sheet.cell(r, kind).value == "register"
        )
        cell = sheet.cell(row=row, column=payload)
        assert '"value":0.83' in cell.value
        cell.value = cell.value.replace('"value":0.83', '"value":0.93')

    edit_workbook(env.workbook, forge)
    code, report = verify_json(env)
    assert code == 1
    where = {f["where"].split("!")[0] for f in report["findings"] if f["severity"] == "error"}
    assert where == {"Ledger"}, report["findings"]
    shown = env.run("verify")
    ledger_count = len([f for f in report["findings"] if f["severity"] == "error"])
    assert f"({ledger_count} in the ledger, 0 in view cells" in shown.output
    listed = env.run("list")
    assert listed.exit_code == 1
    assert f"the ledger has {ledger_count} problem" in listed.output
    broken = env.run("restore")
    assert broken.exit_code == 1
    assert "The backup registry.1.bak.xlsx beside it" in broken.output
    assert f'cp "{env.root / "registry.1.bak.xlsx"}" "{env.workbook}"' in broken.output


def test_help_and_guide_read_well(tmp_path):
    import openpyxl

    from conftest import run
    from regbook.core.schema import GUIDE

    help_text = run(tmp_path, "approve", "--help").output
    example = help_text[help_text.index("Example:") :].split("\n\n")[0]
    assert all(len(line) <= 79 for line in example.splitlines()), example
    wb = openpyxl.load_workbook(
        __import__("pathlib").Path(__file__).parents[1] / "templates" / "registry.xlsx"
    )
    rows = list(wb[GUIDE.name].iter_rows(min_row=2, values_only=True))
    assert not [r for r in rows if r[3] and "or Archived (None, Staging" in r[3]]
    editors = {r[0]: r[4] for r in rows if r[1] != "(sheet)"}
    assert "view of the ledger" not in editors["Keys"] + editors["Ledger"]
    assert editors["Keys"] == "regbook only (a view of allowed_signers)"


# --- log audits ----------------------------------------------------------------------------


def test_log_audit_time_field_and_records_without_a_time(prod):
    from conftest import run

    state = json.loads(run(prod, "list", "--json").stdout)[0]
    cid = state["composite_id"]
    log = prod.parent / "served.jsonl"
    log.write_text(
        "".join(
            json.dumps({"composite_id": cid, "served_at": f"2026-01-2{i}T10:00:00Z"}) + "\n"
            for i in range(3)
        )
    )
    # The time is under another name: with --time-field every record is checked.
    passed = run(prod, "trace", "--log", str(log), "--time-field", "served_at")
    assert passed.exit_code == 0, passed.output
    assert "Production 3" in passed.output and "audit: ok" in passed.output
    # Without it no record has a time: the Production check cannot run, and says so.
    failed = run(prod, "trace", "--log", str(log))
    assert failed.exit_code == 1
    assert "RB708" in failed.output and "3 records" in failed.output
    report = json.loads(run(prod, "trace", "--log", str(log), "--json").stdout)
    assert not report["ok"] and report["problems"][0]["code"] == "RB708"
    assert run(prod, "trace", "credit-risk@1", "--time-field", "x").exit_code == 2

    # A link is "verified" only when it was checked: the pipeline run is signed only.
    traced = run(prod, "trace", "credit-risk@1")
    line = next(x for x in traced.output.splitlines() if "pipeline run" in x)
    assert "[signed only  ]" in line and "no link configured" in line
    assert "1 signed only" in traced.output


# --- reports -------------------------------------------------------------------------------


def test_reports_banner_gate_and_stage_apart_and_print_setup(registered: Env):
    import openpyxl

    env = registered
    assert env.run("gate", "credit-risk@1", key="ci").exit_code == 1  # FAIL, recorded
    for name in ("evidence.md", "evidence.html"):
        out = env.root.parent / name
        ok(env.run("report", "evidence", "credit-risk@1", "-o", str(out)))
        text = out.read_text()
        # Nothing is wrong, but the gate FAILs (no security scan) and it is not in
        # Production: no green banner, and each fact is said apart.
        assert "No problems found" not in text and "Not cleared for Production" in text
        assert "Gate: the latest validation gate result is FAIL" in text
        assert "Stage: None, not Production" in text

    # The workbook prints one page wide in landscape, with its header row on every page.
    wb = openpyxl.load_workbook(env.workbook)
    for ws in wb.worksheets:
        setup = ws.page_setup
        assert setup.orientation == "landscape" and setup.fitToWidth == 1, ws.title
        assert not setup.fitToHeight and ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.print_title_rows == "$1:$1", (ws.title, ws.print_title_rows)


def test_pdf_banner_and_columns_that_keep_words_whole(prod):
    from conftest import run
    from test_report_pdf import pages

    out = prod.parent / "evidence.pdf"
    assert run(prod, "report", "evidence", "credit-risk@1", "-o", str(out)).exit_code == 0
    whole = "\n".join(pages(out))
    assert "No problems found" in whole and "Stage: Production." in whole
    # Table cells break between words, never inside one.
    assert "governance-lead" in whole and "governance-lea\n" not in whole


# --- what an insider with a key could forge ------------------------------------------------


@pytest.fixture(scope="session")
def _insider_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """credit-risk@1 in Production, credit-risk@2 registered; every gate passes."""
    versions = [Version(metrics=PASSING), Version(metrics=PASSING)]
    return build(tmp_path_factory.mktemp("insider-master"), versions, TO_PRODUCTION).base


@pytest.fixture
def insider(_insider_master: Path, tmp_path: Path, runner, monkeypatch) -> Env:
    return copied_env(_insider_master, tmp_path, runner, monkeypatch)


def test_forged_rollbacks_and_addenda_are_found(insider: Env):
    from test_trust import forge, version

    env = insider
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    ok(env.run("archive", "credit-risk@1", key="governance-lead"))
    ok(env.run("approve", "credit-risk@2", "--to", "Archived", key="sme"))
    ok(env.run("archive", "credit-risk@2", key="sme"))
    one, two = version(env, "credit-risk@1"), version(env, "credit-risk@2")

    # The ci key alone, on the gate from before the archive and with no approval.
    forge(env, "ci", "promote", "credit-risk@1",
          {"content_hash": one.content_hash, "from": "Archived", "to": "Production"})  # fmt: skip
    code, report = verify_json(env)
    found = {f["code"]: f["message"] for f in report["findings"]}
    assert code == 1 and "RB501" in found and "a rollback needs a fresh gate" in found["RB507"]

    # A version that was never in Production stays Archived, whatever the ci key signs.
    forge(env, "ci", "promote", "credit-risk@2",
          {"content_hash": two.content_hash, "from": "Archived", "to": "Production"})  # fmt: skip
    code, report = verify_json(env)
    assert any(
        f["code"] == "RB506" and "credit-risk@2" in f["message"] and "final" in f["message"]
        for f in report["findings"]
    ), report["findings"]

    # An addendum that would change a sealed metric adds nothing, and is named.
    forge(env, "sme", "metrics", "credit-risk@2", {"content_hash": two.content_hash, "metrics": [
        {"kind": "performance", "metric": "auc_roc", "slice": "", "value": 0.99}]})  # fmt: skip
    code, report = verify_json(env)
    changed = [f for f in report["findings"] if f["code"] == "RB509"]
    assert changed and "would change auc_roc" in changed[0]["message"]
    assert version(env, "credit-risk@2").metric("auc_roc") == two.metric("auc_roc")


def test_rollback_follows_the_signed_policy(insider: Env):
    env = insider
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    ok(env.run("archive", "credit-risk@1", key="governance-lead"))
    config = env.root / "regbook.toml"
    config.write_text(
        config.read_text().replace(
            '"*->Archived" = ["sme", "governance-lead"]',
            '"*->Archived" = ["sme", "governance-lead"]\n"Archived->Production" = ["sme"]',
        )
    )
    # Edited, not signed: no writer acts on it, so an SME cannot open rollbacks to itself.
    unsigned = env.run("approve", "credit-risk@1", "--to", "Production", key="sme")
    assert unsigned.exit_code == 2 and "differs from the one in force" in unsigned.output
    config.write_text(config.read_text().replace('= ["sme"]', "= []"))
    ok(env.run("policy", "sign", key="governance-lead"))
    closed = env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead")
    assert closed.exit_code == 2
    assert "names no role that may approve Archived -> Production" in closed.output


def test_the_workbook_prints_one_page_wide_in_libreoffice(registered: Env, tmp_path):
    """Printed as LibreOffice prints it: each sheet one landscape page wide, with its
    header row on top. Needs LibreOffice (installed in CI, where this never skips)."""
    from pypdf import PdfReader

    from regbook.core.schema import SHEETS
    from test_libreoffice import SOFFICE, resave

    if SOFFICE is None and not __import__("os").environ.get("CI"):
        pytest.skip("LibreOffice is not installed (.ci/run installs it in CI)")
    pdf = PdfReader(resave(registered.workbook, tmp_path / "lo", "pdf"))
    texts = [page.extract_text() for page in pdf.pages]
    heads = [text.split("\n", 1)[0] for text in texts]
    assert all(p.mediabox.width > p.mediabox.height for p in pdf.pages)  # landscape
    # One page per sheet but the Guide, whose many rows run down (never across) pages.
    assert len(pdf.pages) <= len(SHEETS) + 3, heads
    for sheet in SHEETS:
        first, last = sheet.columns[0].header, sheet.columns[-1].header
        # The first and the last column on the same page: the sheet is one page wide.
        assert any(t.startswith(first) and last in " ".join(t.split()) for t in texts), (
            sheet.name,
            heads,
        )
