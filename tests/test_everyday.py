"""Everyday use through the command line: rollback, metrics sealed after registration,
messages that say what to do next, log audits and reports (issue items 3-7)."""

from __future__ import annotations

import hashlib
import json

from conftest import Env, snapshot
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
