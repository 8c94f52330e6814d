"""The trust anchors (DESIGN section 13), tried as an attacker with write access to the
workspace would: by editing the workbook with openpyxl, regbook.toml and the keyring
with a text editor, and by running regbook itself under a shifted clock (libfaketime).

Each attack must end in a finding and exit 1: a rollback, a removed gate FAIL, a `.bak`
swap and another registry's workbook against the witness CI keeps; an unsigned policy;
backdating with a revoked key; future dates.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import Env, copied_env, edit_part, edit_workbook, problems
from factory import PASSING, TO_PRODUCTION, Version, build
from regbook.core.schema import LEDGER, MODELS
from regbook.core.workspace import Workspace
from regbook.crypto import keys
from regbook.ledger.events import LedgerEvent, new_event, read_events
from regbook.ledger.state import Registry, VersionState
from regbook.registry.resume import ResumedRegistry, state_path
from regbook.registry.snapshot import open_registry
from regbook.registry.transaction import (
    Transaction,
    append_ledger_rows,
    models_row_of,
    refresh_derived_views,
)
from regbook.registry.views import models_values, write_row
from regbook.registry.witness import Witness, witness_text
from regbook.workbook import digests
from regbook.workbook.digests import package_digests
from regbook.workbook.read import read_tails, read_workbook

ROOT = Path(__file__).resolve().parents[1]
FAKETIME = shutil.which("faketime")
# CI installs libfaketime (.ci/run): there these tests run, never skip.
needs_faketime = pytest.mark.skipif(
    FAKETIME is None and not os.environ.get("CI"), reason="libfaketime is not installed"
)
PRINCIPAL = {"sme": "alice@example.com", "governance-lead": "gina@example.com",
             "ci": "ci@example.com"}  # fmt: skip


@pytest.fixture(scope="session")
def _production_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """credit-risk@1 in Production, credit-risk@2 registered; every gate passes."""
    versions = [Version(metrics=PASSING), Version(metrics=PASSING)]
    return build(tmp_path_factory.mktemp("trust-master"), versions, TO_PRODUCTION).base


@pytest.fixture
def prod(_production_master: Path, tmp_path: Path, runner: CliRunner, monkeypatch) -> Env:
    return copied_env(_production_master, tmp_path, runner, monkeypatch)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def verify(env: Env, *args: str) -> tuple[int, dict[str, Any]]:
    result = env.run("verify", "--json", "--no-artefacts", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def codes(report: dict[str, Any]) -> set[str]:
    return {code for code, _where in problems(report)}


def pin(env: Env) -> str:
    return keys.Keyring.load(env.root / "allowed_signers").sha256


def take_witness(env: Env, name: str = "witness") -> Path:
    out = env.root.parent / "ci-only" / name
    out.parent.mkdir(exist_ok=True)
    ok(env.run("witness", "-o", str(out), key="ci"))
    return out


def ledger(env: Env) -> list[LedgerEvent]:
    events, bad = read_events(read_workbook(env.workbook, sheets=(LEDGER,))[LEDGER.name])
    assert not bad
    return events


def version(env: Env, ref: str) -> VersionState:
    """The replayed state of the sealed version ``ref``."""
    model, number = ref.split("@")
    state = Registry.replay(ledger(env))[0].get(model, int(number))
    assert state is not None
    return state


def add_key_by_hand(env: Env, tmp_path: Path) -> None:
    """A ci key made with ssh-keygen and appended to allowed_signers with a text editor,
    outside `regbook keys`."""
    mallory = tmp_path / "mallory"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(mallory)],
                   check=True)  # fmt: skip
    line = f'mallory@example.com namespaces="regbook-ci" {Path(f"{mallory}.pub").read_text()}'
    with (env.root / "allowed_signers").open("a") as ring:
        ring.write(line)


def delete_ledger_rows(env: Env, count: int) -> None:
    """Delete the last ``count`` Ledger rows, as in Excel."""

    def change(wb: Any) -> None:
        sheet = wb[LEDGER.name]
        sheet.delete_rows(sheet.max_row - count + 1, count)

    edit_workbook(env.workbook, change)


def forge(env: Env, role: str, kind: str, ref: str, payload: dict[str, Any], **kw: Any) -> int:
    """Sign an event with ``role``'s key after the ledger's head and write it, with the
    views regbook derives, straight into the workbook: what an insider holding that key
    can do without regbook. The event carries the registry's ID. Its Ledger row."""
    model, version = ref.split("@")
    data = read_workbook(env.workbook)
    events = ledger(env)
    key = keys.load_private_key(env.keys[role])
    payload = {**payload, "registry": env.ws.settings.registry_id}
    event = new_event(events[-1], kind, model, int(version), payload, key, PRINCIPAL[role],
                      role, **kw)  # fmt: skip
    registry, _ = Registry.replay([*events, event])
    state = registry.get(model, int(version))

    def change(wb: Any) -> None:
        append_ledger_rows(wb, data[LEDGER.name].row_numbers, [event])
        if state is not None:
            at = models_row_of(data[MODELS.name], state)
            write_row(wb[MODELS.name], MODELS, at, models_values(state), "sealed", ("notes",))
        refresh_derived_views(wb, registry, keys.Keyring.load(env.root / "allowed_signers"))

    edit_workbook(env.workbook, change)
    return max(data[LEDGER.name].row_numbers) + 1


def faketime_run(env: Env, when: str, *args: str, key: str | None = None) -> Any:
    """regbook itself, in a process whose clock libfaketime sets to ``when``."""
    assert FAKETIME is not None, "libfaketime (faketime) is needed"
    argv = [FAKETIME, when, sys.executable, "-m", "regbook", "--workspace", str(env.root), *args]
    if key is not None:
        argv += ["--key", str(env.keys[key])]
    pythonpath = os.pathsep.join(
        filter(None, [str(ROOT / "toolkit"), os.environ.get("PYTHONPATH")])
    )
    return subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": pythonpath, "TZ": "UTC"})  # fmt: skip


# --- a clean registry -------------------------------------------------------------------


def test_a_clean_witnessed_registry_verifies_and_checks_with_ssh_keygen(prod: Env):
    witness = take_witness(prod)
    code, report = verify(prod, "--witness", str(witness), "--keyring-sha256", pin(prod))
    assert code == 0, report["findings"]
    assert report["registry_id"] == prod.ws.settings.registry_id
    data = json.loads(witness.read_bytes().split(b"-----BEGIN SSH SIGNATURE-----")[0])
    head = ledger(prod)[-1]
    assert (data["seq"], data["hash"], data["registry"]) == (
        head.seq, head.hash, prod.ws.settings.registry_id)  # fmt: skip
    # Stock ssh-keygen checks the witness as docs/formats.md says, and every event.
    body, _sep, _rest = witness.read_bytes().partition(b"-----BEGIN SSH SIGNATURE-----")
    (prod.root.parent / "w.json").write_bytes(body)
    (prod.root.parent / "w.sig").write_bytes(witness.read_bytes()[len(body) :])
    check = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(prod.root / "allowed_signers"), "-I",
         data["signer"], "-n", "regbook-ci", "-s", str(prod.root.parent / "w.sig")],
        input=body, capture_output=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    ok(prod.run("export", "signatures", str(prod.root.parent / "sigs")))
    script = subprocess.run(["sh", str(prod.root.parent / "sigs" / "verify-signatures.sh")],
                            capture_output=True, text=True)  # fmt: skip
    assert script.returncode == 0 and " 0 failed" in script.stdout, script.stdout + script.stderr


def test_every_event_carries_the_registry_id_shown_by_verify_and_bag_info(prod: Env):
    registry_id = prod.ws.settings.registry_id
    assert all(e.payload.get("registry") == registry_id for e in ledger(prod))
    result = ok(prod.run("verify", "--no-artefacts"))
    assert f"registry {registry_id}" in result.output
    ok(prod.run("approve", "credit-risk@2", "--to", "Archived", key="sme"))
    ok(prod.run("archive", "credit-risk@2", key="sme"))
    bag_info = (prod.root / "archive" / "credit-risk" / "2" / "bag-info.txt").read_text()
    assert f"Registry-ID: {registry_id}" in bag_info


# --- attack 1: rollback ------------------------------------------------------------------


def test_rollback_of_an_archive_is_caught_by_the_witness(prod: Env):
    ok(prod.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    ok(prod.run("archive", "credit-risk@1", key="governance-lead"))
    witness = take_witness(prod)
    sealed = keys.Keyring.load(prod.root / "allowed_signers").sha256
    # The attack: delete the two rows, put the artefact back from its bag, restore.
    delete_ledger_rows(prod, 2)
    bag = prod.root / "archive" / "credit-risk" / "1"
    back = prod.root / "models" / "credit-risk" / "1"
    back.mkdir(parents=True, exist_ok=True)
    for item in (bag / "data").iterdir():
        shutil.copy2(item, back / item.name)
    ok(prod.run("restore"))
    # Without the witness the rollback passes: the chain that is left is whole.
    assert prod.run("verify", "--for-deploy", "credit-risk@1", "--keyring-sha256",
                    sealed).exit_code == 0  # fmt: skip
    result = prod.run("verify", "--for-deploy", "credit-risk@1", "--keyring-sha256", sealed,
                      "--witness", str(witness))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "RB119" in result.output and "rolled back or truncated" in result.output
    assert "must NOT be deployed" in result.output


def test_removing_a_later_gate_fail_is_caught(prod: Env, tmp_path: Path):
    weak = tmp_path / "weak.bin"
    weak.write_bytes(b"a weaker model\n" * 50)
    ok(prod.run("register", "credit-risk", "--artefact", str(weak), "--data-version",
                "3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a", "--code-commit", "c0ffee12" * 5,
                "--pipeline-run", "run-7", "--metric", "auc_roc=0.5", "--metric",
                "demographic_parity_ratio=0.91", "--metric", "security_high_findings=0",
                key="sme"))  # fmt: skip
    assert prod.run("gate", "credit-risk@3", key="ci").exit_code == 1  # FAIL, recorded
    witness = take_witness(prod)
    delete_ledger_rows(prod, 1)
    ok(prod.run("restore"))
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and "RB119" in codes(report)


def test_a_bak_swap_is_caught(prod: Env):
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    witness = take_witness(prod)
    shutil.copy2(prod.root / "registry.1.bak.xlsx", prod.workbook)
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and codes(report) == {"RB119"}


def _second_registry(prod: Env, tmp_path: Path) -> Path:
    """Another registry of the same team, with the same keys (the keyring copied)."""
    other = tmp_path / "other"
    ok(prod.run("init", str(other)))
    shutil.copy2(prod.root / "allowed_signers", other / "allowed_signers")
    artefact = tmp_path / "other-model.bin"
    artefact.write_bytes(b"another model\n" * 100)
    env = Env(other, prod.keys, prod.runner)
    ok(env.register("credit-risk", artefact, key="sme"))
    return other


def test_a_workbook_from_another_registry_with_the_same_keys_is_caught(prod: Env, tmp_path):
    witness = take_witness(prod)
    other = _second_registry(prod, tmp_path)
    # The workbook alone: its events carry the other registry's ID.
    shutil.copy2(other / "registry.xlsx", prod.workbook)
    code, report = verify(prod)
    assert code == 1 and "RB112" in codes(report)
    # The workbook and regbook.toml together agree with each other; the witness does not.
    shutil.copy2(other / "regbook.toml", prod.root / "regbook.toml")
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and codes(report) == {"RB119"}
    assert any("another registry" in f["message"] for f in report["findings"])


def test_a_forked_ledger_is_caught(prod: Env):
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    witness = take_witness(prod)
    witnessed = ledger(prod)[-1]
    delete_ledger_rows(prod, 1)
    ok(prod.run("restore"))
    state = version(prod, "credit-risk@2")
    forge(prod, "sme", "approve", "credit-risk@2", {
        "content_hash": state.content_hash, "from": "None", "to": "Staging",
        "note": "a different approval at the same seq"})  # fmt: skip
    assert ledger(prod)[-1].seq == witnessed.seq and ledger(prod)[-1].hash != witnessed.hash
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and codes(report) == {"RB119"}
    assert any("forked" in f["message"] for f in report["findings"])


def test_a_witness_signed_by_a_key_without_the_ci_role_is_refused(prod: Env):
    events = ledger(prod)
    ring = keys.Keyring.load(prod.root / "allowed_signers")
    sme = keys.load_private_key(prod.keys["sme"])
    text = witness_text(prod.ws.settings.registry_id, events, ring.sha256, "0" * 64,
                        PRINCIPAL["sme"], events[-1].at, sme,
                        package_digests(prod.ws.workbook_path, ["Ledger"]), "0" * 64)  # fmt: skip
    forged = prod.root.parent / "forged-witness"
    forged.write_bytes(text)
    code, report = verify(prod, "--witness", str(forged))
    assert code == 1 and codes(report) == {"RB120"}


def test_a_tampered_witness_is_refused(prod: Env):
    witness = take_witness(prod)
    head = ledger(prod)[-1]
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    newer = ledger(prod)[-1]
    # Roll the ledger back, and move the witness back with it by editing its JSON.
    delete_ledger_rows(prod, 1)
    ok(prod.run("restore"))
    assert newer.seq == head.seq + 1
    raw = witness.read_text()
    witness.write_text(raw.replace(f'"seq": {head.seq}', f'"seq": {head.seq - 1}'))
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and codes(report) == {"RB120"}
    # Not a witness at all is bad input: exit 2, one line.
    witness.write_text("{}\n")
    result = prod.run("verify", "--witness", str(witness))
    assert result.exit_code == 2 and "no SSH signature after the JSON" in result.output


def test_a_witness_vouches_for_signature_cells_too(prod: Env):
    """Events up to the witnessed head are not checked again, but only while their
    signature cells are the ones CI checked."""
    witness = take_witness(prod)

    def change(wb: Any) -> None:
        sheet = wb[LEDGER.name]
        cell = sheet[f"{LEDGER.letter('signature')}3"]
        other = sheet[f"{LEDGER.letter('signature')}4"].value
        cell.value = other

    edit_workbook(prod.workbook, change)
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and "RB104" in codes(report)


def test_witness_out_writes_the_next_witness_after_a_clean_deploy_check(prod: Env):
    first = take_witness(prod)
    nxt = prod.root.parent / "ci-only" / "next"
    result = prod.run("verify", "--for-deploy", "credit-risk@1", "--witness", str(first),
                      "--witness-out", str(nxt), key="ci")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Witness.load(nxt).seq == ledger(prod)[-1].seq
    # promote --witness-out too, CI's usual promotion with --archive-previous.
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("gate", "credit-risk@2", key="ci"))
    ok(prod.run("approve", "credit-risk@2", "--to", "Production", key="governance-lead"))
    ok(prod.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    after = prod.root.parent / "ci-only" / "after-promote"
    ok(prod.run("promote", "credit-risk@2", "--to", "Production", "--archive-previous",
                "--witness-out", str(after), key="ci"))  # fmt: skip
    assert Witness.load(after).seq == ledger(prod)[-1].seq
    code, report = verify(prod, "--witness", str(after))
    assert code == 0, report["findings"]


def test_no_witness_is_written_for_a_registry_that_does_not_verify(prod: Env):
    config = prod.root / "regbook.toml"
    config.write_text(config.read_text().replace("auc_roc >= 0.75", "auc_roc >= 0.5"))
    out = prod.root.parent / "w"
    result = prod.run("witness", "-o", str(out), key="ci")
    assert result.exit_code == 1 and not out.exists()
    result = prod.run("witness", "-o", str(prod.root.parent / "w2"), key="sme")
    assert result.exit_code == 2 and "role ci" in result.output


# --- attack 2: an unsigned policy ---------------------------------------------------------


def test_an_unsigned_policy_is_not_in_force(prod: Env):
    """With only an SME key: loosen regbook.toml, sign a gate PASS and a Production
    approval for a version that failed the real gates, and let CI promote."""
    config = prod.root / "regbook.toml"
    text = config.read_text()
    for old, new in (
        ('"Staging->Production" = ["governance-lead"]', '"Staging->Production" = ["sme"]'),
        ('gate = ["ci"]', 'gate = ["sme", "ci"]'),
        ('auc_roc >= 0.75', 'auc_roc >= 0.1'),
    ):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    # regbook itself refuses to act on it, and names the fix.
    result = prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme")
    assert result.exit_code == 2 and "regbook policy sign" in result.output
    ok_policy = prod.run("policy", "show")
    assert "regbook.toml differs" in ok_policy.output
    # So the SME forges the events by hand: credit-risk@2 fails the real gate (0.83 is
    # below the 0.9 the attacker's forged gate ignores; here: the forged gate's rules).
    state = version(prod, "credit-risk@2")
    h = state.content_hash
    forge(prod, "sme", "approve", "credit-risk@2", {"content_hash": h, "from": "None",
          "to": "Staging", "note": ""})  # fmt: skip
    approval = ledger(prod)[-1]
    forge(prod, "sme", "promote", "credit-risk@2", {"content_hash": h, "from": "None",
          "to": "Staging", "approval": {"hash": approval.hash, "seq": approval.seq}})  # fmt: skip
    forge(prod, "sme", "gate", "credit-risk@2", {
        "content_hash": h, "stage": "Staging", "result": "PASS",
        "gates": [{"gate": "performance", "metric": "auc_roc", "op": ">=", "threshold": 0.1,
                   "value": 0.83, "result": "PASS"}]})  # fmt: skip
    forge(prod, "sme", "approve", "credit-risk@2", {"content_hash": h, "from": "Staging",
          "to": "Production", "note": ""})  # fmt: skip
    result = prod.run("promote", "credit-risk@2", "--to", "Production", "--archive-previous",
                      key="ci")  # fmt: skip
    assert result.exit_code == 2 and "regbook policy sign" in result.output
    code, report = verify(prod, "--keyring-sha256", pin(prod))
    assert code == 1
    assert {"RB117", "RB106", "RB505"} <= codes(report)
    result = prod.run("verify", "--for-deploy", "credit-risk@1", "--keyring-sha256", pin(prod))
    assert result.exit_code == 1 and "RB117" in result.output


def test_policy_sign_and_show(prod: Env):
    config = prod.root / "regbook.toml"
    config.write_text(config.read_text().replace("auc_roc >= 0.75", "auc_roc >= 0.8"))
    assert "auc_roc >= 0.8" in prod.run("policy", "show").output
    result = prod.run("policy", "sign", key="sme")
    assert result.exit_code == 2 and "governance-lead" in result.output
    ok(prod.run("policy", "sign", key="governance-lead"))
    shown = json.loads(ok(prod.run("policy", "show", "--json")).stdout)
    assert shown["policy"]["gates"]["performance"] == "auc_roc >= 0.8"
    assert shown["file_differs"] == [] and shown["signed"]["signer"] == PRINCIPAL["governance-lead"]
    assert verify(prod)[0] == 0
    # Signing again with nothing changed writes nothing.
    events = len(ledger(prod))
    assert "already in force" in ok(prod.run("policy", "sign", key="governance-lead")).output
    assert len(ledger(prod)) == events


def test_a_gate_judged_under_the_thresholds_in_force_at_it(prod: Env):
    """A gate recorded under the policy in force stays valid when a later signed policy
    tightens nothing for it; one recorded with thresholds not in force is RB505."""
    state = version(prod, "credit-risk@2")
    forge(prod, "ci", "gate", "credit-risk@2", {
        "content_hash": state.content_hash, "stage": "None", "result": "PASS",
        "gates": [{"gate": "performance", "metric": "auc_roc", "op": ">=", "threshold": 0.1,
                   "value": 0.83, "result": "PASS"}]})  # fmt: skip
    code, report = verify(prod)
    assert code == 1 and codes(report) == {"RB505"}
    assert any("not the gates of the policy in force" in f["message"] for f in report["findings"])


# --- attack 3: backdating with a revoked key --------------------------------------------


def _rotate_ci(prod: Env) -> Path:
    """Rotate the ci key as docs/ci.md says: a new key, the old one revoked."""
    new = prod.root.parent / "keys" / "ci2"
    ok(prod.run("keys", "new", "ci2@example.com", "--role", "ci", "--out", str(new),
                key="governance-lead"))  # fmt: skip
    ok(prod.run("keys", "revoke", "ci@example.com", key="governance-lead"))
    return new


def test_backdating_with_a_revoked_key_is_caught_by_chain_position(prod: Env):
    _rotate_ci(prod)
    new_pin = pin(prod)
    assert verify(prod, "--keyring-sha256", new_pin)[0] == 0
    last = ledger(prod)[-1]
    state = version(prod, "credit-risk@2")
    row = forge(prod, "ci", "gate", "credit-risk@2", {
        "content_hash": state.content_hash, "stage": "None", "result": "PASS",
        "gates": [{"gate": g, "metric": m, "op": op, "threshold": t, "value": v,
                   "result": "PASS"} for g, m, op, t, v in (
            ("fairness", "demographic_parity_ratio", ">=", 0.8, 0.91),
            ("performance", "auc_roc", ">=", 0.75, 0.83),
            ("security", "security_high_findings", "==", 0, 0.0))]},
        at=last.at)  # fmt: skip
    code, report = verify(prod, "--keyring-sha256", new_pin)
    assert code == 1 and ("RB115", f"Ledger!K{row}") in problems(report)
    # Dated inside the old key's window, it is caught by chain position alone; RB107
    # too only when a second ticked between the revocation's valid-before (inclusive)
    # and its event's time.
    ring = keys.Keyring.load(prod.root / "allowed_signers")
    until = next(e.valid_before for e in ring.entries if "ci@example.com" in e.principals)
    assert until is not None
    late = last.at > until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert codes(report) == ({"RB115", "RB107"} if late else {"RB115"})


@needs_faketime
def test_a_revoked_key_under_a_clock_set_back_is_caught(prod: Env):
    """regbook itself, run with the old ci key under a clock set to before the
    revocation: the key looks valid to it, but the chain says it was revoked."""
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    first = ledger(prod)[0].at  # long before the revocation
    _rotate_ci(prod)
    when = first.replace("T", " ").rstrip("Z")
    done = faketime_run(prod, when, "gate", "credit-risk@2", key="ci")
    assert done.returncode in (0, 1), done.stderr
    code, report = verify(prod, "--keyring-sha256", pin(prod))
    assert code == 1 and "RB115" in codes(report)


def test_keyring_changes_are_signed_keyring_events(prod: Env, tmp_path: Path):
    bob = tmp_path / "bob"
    result = prod.run("keys", "new", "bob@example.com", "--role", "sme", "--out", str(bob))
    assert result.exit_code == 2 and "--key GOV_KEY" in result.output and not bob.exists()
    result = prod.run("keys", "new", "bob@example.com", "--role", "sme", "--out", str(bob),
                      key="sme")  # fmt: skip
    assert result.exit_code == 2 and not bob.exists()
    ok(prod.run("keys", "new", "bob@example.com", "--role", "sme", "--out", str(bob),
                key="governance-lead"))  # fmt: skip
    event = ledger(prod)[-1]
    assert (event.kind, event.model, event.payload["change"]) == ("keyring", "(registry)", "add")
    assert event.payload["principal"] == "bob@example.com"
    assert event.payload["keyring_sha256"] == pin(prod)
    # A key someone already has, then its revocation by fingerprint at a given time.
    carol = tmp_path / "carol"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(carol)], check=True)
    ok(prod.run("keys", "add", "carol@example.com", "--role", "sme", "--pubkey",
                f"{carol}.pub", key="governance-lead"))  # fmt: skip
    fingerprint = keys.PublicKey.parse(Path(f"{carol}.pub").read_text()).fingerprint
    ok(prod.run("keys", "revoke", fingerprint, "--at", "2026-01-01T00:00:00Z",
                key="governance-lead"))  # fmt: skip
    assert 'valid-before="20260101000000Z"' in (prod.root / "allowed_signers").read_text()
    revoked = ledger(prod)[-1]
    assert revoked.payload["change"] == "revoke" and revoked.payload["key"] == fingerprint
    assert verify(prod, "--keyring-sha256", pin(prod))[0] == 0
    history = ok(prod.run("keys", "list")).output
    assert "carol@example.com" in history


def test_the_first_governance_lead_key_signs_its_own_event(tmp_path: Path, runner: CliRunner):
    env = Env(tmp_path / "ws", {}, runner)
    ok(env.run("init", str(env.root)))
    ok(env.run("keys", "new", "sam@example.com", "--role", "sme", "--out",
               str(tmp_path / "sam")))  # fmt: skip
    assert ledger(env) == []  # no lead yet: no event, as a team starting out needs
    ok(env.run("keys", "new", "gina@example.com", "--role", "governance-lead", "--out",
               str(tmp_path / "gina")))  # fmt: skip
    (first,) = ledger(env)
    assert first.kind == "keyring" and first.signer == "gina@example.com"
    result = env.run("keys", "new", "ci@example.com", "--role", "ci", "--out",
                     str(tmp_path / "ci"))  # fmt: skip
    assert result.exit_code == 2 and "governance lead" in result.output
    code, report = verify(env)
    assert code == 0, report["findings"]


def test_a_keyring_edited_by_hand_is_found(prod: Env, tmp_path: Path):
    add_key_by_hand(prod, tmp_path)
    code, report = verify(prod)
    assert code == 1 and codes(report) == {"RB116"}
    result = prod.run("keys", "new", "x@example.com", "--role", "sme", "--out",
                      str(tmp_path / "x"), key="governance-lead")  # fmt: skip
    assert result.exit_code == 2 and "edited outside" in result.output
    # No writer signs with a keyring the ledger does not name.
    result = prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme")
    assert result.exit_code == 1 and "edited outside" in result.output


def test_an_event_without_the_registry_id_is_found(prod: Env):
    state = version(prod, "credit-risk@2")
    data = read_workbook(prod.workbook)
    events = ledger(prod)
    key = keys.load_private_key(prod.keys["sme"])
    payload = {"content_hash": state.content_hash, "from": "None", "to": "Staging", "note": ""}
    event = new_event(events[-1], "approve", "credit-risk", 2, payload, key, PRINCIPAL["sme"],
                      "sme")  # fmt: skip
    registry, _ = Registry.replay([*events, event])

    def change(wb: Any) -> None:
        append_ledger_rows(wb, data[LEDGER.name].row_numbers, [event])
        refresh_derived_views(wb, registry, keys.Keyring.load(prod.root / "allowed_signers"))

    edit_workbook(prod.workbook, change)
    row = max(data[LEDGER.name].row_numbers) + 1
    code, report = verify(prod)
    assert code == 1 and problems(report) == {("RB112", f"Ledger!F{row}")}


def test_a_registry_made_before_ids_gets_one_by_a_signed_policy(tmp_path: Path, runner):
    env = Env(tmp_path / "ws", {}, runner)
    ok(env.run("init", str(env.root)))
    config = env.root / "regbook.toml"
    text = config.read_text()
    start, end = text.index("[registry]"), text.index("[paths]")
    config.write_text(text[:start] + text[end:])  # as regbook.toml was before IDs
    for name, role in (("sam", "sme"), ("ci", "ci")):
        ok(env.run("keys", "new", f"{name}@example.com", "--role", role, "--out",
                   str(tmp_path / name)))  # fmt: skip
    env.keys.update({"sme": tmp_path / "sam", "ci": tmp_path / "ci"})
    ok(env.register("credit-risk", key="sme"))
    assert "registry" not in ledger(env)[0].payload
    code, report = verify(env)
    assert code == 0 and {f["code"] for f in report["findings"]} == {"RB113"}
    ok(env.run("keys", "new", "gina@example.com", "--role", "governance-lead", "--out",
               str(tmp_path / "gina")))  # fmt: skip
    env.keys["governance-lead"] = tmp_path / "gina"
    ok(env.run("policy", "sign", key="governance-lead"))
    registry_id = Workspace.load(env.root).settings.registry_id
    assert registry_id and ledger(env)[-1].payload["registry"] == registry_id
    ok(env.register("credit-risk", key="sme"))
    assert ledger(env)[-1].payload["registry"] == registry_id
    code, report = verify(env)
    assert code == 0 and report["findings"] == [], report["findings"]


# --- attack 4: future dates --------------------------------------------------------------


@needs_faketime
def test_an_event_dated_in_the_future_is_found_and_nothing_is_appended_after_it(prod: Env):
    done = faketime_run(prod, "2099-12-31 12:00:00", "approve", "credit-risk@2", "--to",
                        "Staging", key="sme")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ledger(prod)[-1].at.startswith("2099-12-31")
    code, report = verify(prod)
    assert code == 1 and codes(report) == {"RB114"}
    result = prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme")
    assert result.exit_code == 1 and "nothing was written" in result.output


def test_a_witnessed_verify_still_judges_what_came_after_the_witness(prod: Env):
    """The witness spares the checks of the events CI verified, not of the later ones,
    nor the chain: an edit before the witnessed head is still caught."""
    witness = take_witness(prod)
    state = version(prod, "credit-risk@2")
    row = forge(prod, "sme", "promote", "credit-risk@2", {
        "content_hash": state.content_hash, "from": "None", "to": "Staging"})  # fmt: skip
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and problems(report) == {("RB501", f"Ledger!F{row}")}
    delete_ledger_rows(prod, 1)
    ok(prod.run("restore"))

    def change(wb: Any) -> None:
        cell = wb[LEDGER.name][f"{LEDGER.letter('at')}3"]
        seconds = "00" if cell.value[17:19] != "00" else "01"
        cell.value = f"{cell.value[:17]}{seconds}Z"

    edit_workbook(prod.workbook, change)
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and "RB102" in codes(report)


def test_trace_and_report_pack_take_the_witness(prod: Env, tmp_path: Path):
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    witness = take_witness(prod)
    ok(prod.run("trace", "credit-risk@1", "--witness", str(witness)))
    shutil.copy2(prod.root / "registry.1.bak.xlsx", prod.workbook)  # rolled back
    traced = prod.run("trace", "credit-risk@1", "--witness", str(witness))
    assert traced.exit_code == 1 and "RB119" in traced.output
    pack = tmp_path / "pack.zip"
    packed = prod.run("report", "pack", "credit-risk@1", "-o", str(pack), "--witness", str(witness))
    assert packed.exit_code == 1 and pack.exists()
    assert "RB119" in packed.output or "problem" in packed.output


def test_a_lead_cannot_sign_the_revocation_of_their_own_key_from_the_past(prod: Env):
    result = prod.run("keys", "revoke", "gina@example.com", "--at", "2020-01-01T00:00:00Z",
                      key="governance-lead")  # fmt: skip
    assert result.exit_code == 2 and "another governance lead" in result.output
    assert verify(prod)[0] == 0  # nothing was written


@pytest.mark.parametrize("name", ["Credit-risk", "credit\u2010risk", "credit-risk\u200b"])
def test_a_look_alike_model_name_in_a_signed_event_is_a_finding(prod: Env, name: str):
    first = next(e for e in ledger(prod) if e.kind == "register")
    payload = {k: v for k, v in first.payload.items() if k != "registry"}
    row = forge(prod, "sme", "register", f"{name}@1", payload)
    code, report = verify(prod)
    assert code == 1 and ("RB203", f"Ledger!F{row}") in problems(report)
    listed = prod.run("list", "--json").stdout  # no new model: the version is not replayed
    assert name not in json.dumps(json.loads(listed), ensure_ascii=False)


def test_list_marks_what_it_cannot_vouch_for_and_exits_1(prod: Env):
    """A chained Ledger row with a garbage signature that moves a version to Production
    and points its storage elsewhere: `list` must not show it as verified."""
    listed = json.loads(ok(prod.run("list", "--json")).stdout)
    assert all(r["verified"] for r in listed)
    state = version(prod, "credit-risk@2")
    row = forge(prod, "sme", "promote", "credit-risk@2", {
        "content_hash": state.content_hash, "from": "None", "to": "Production",
        "storage": "/elsewhere/model.bin"})  # fmt: skip

    def garble(wb: Any) -> None:
        # One character of the signature's own bytes, the armor laid out as written.
        cell = wb[LEDGER.name][f"{LEDGER.letter('signature')}{row}"]
        lines = cell.value.split("\n")
        last = next(
            i for i in range(len(lines) - 1, -1, -1) if lines[i] and "-----" not in lines[i]
        )
        text = lines[last]
        lines[last] = text[:5] + ("B" if text[5] != "B" else "C") + text[6:]
        cell.value = "\n".join(lines)

    edit_workbook(prod.workbook, garble)
    result = prod.run("list", "--stage", "Production", "--json")
    assert result.exit_code == 1 and "not verified" in result.stderr
    rows = {r["version"]: r for r in json.loads(result.stdout)}
    assert rows[2]["stage"] == "Production" and rows[2]["verified"] is False
    assert rows[1]["verified"] is True
    text = prod.run("list")
    assert text.exit_code == 1 and "NO" in text.stdout


def test_trace_log_does_not_count_a_forged_stage_as_verified(prod: Env, tmp_path: Path):
    state = version(prod, "credit-risk@2")
    # Signed with a real key, but no approval and not by ci: a rule breach, not a bad
    # signature.
    forge(prod, "sme", "promote", "credit-risk@2", {
        "content_hash": state.content_hash, "from": "None", "to": "Production"})  # fmt: skip
    log = tmp_path / "predictions.jsonl"
    log.write_text(json.dumps({"composite_id": state.composite_id,
                               "ts": "2030-01-01T00:00:00Z"}) + "\n")  # fmt: skip
    result = prod.run("trace", "--log", str(log), "--time-field", "ts")
    assert result.exit_code == 1, result.output
    assert "in the ledger: the stages above are not verified" in result.output
    assert "audit: ok" not in result.output and "RB706" not in result.output
    assert "audit: 0 problems in the log, and" in result.output, result.output
    assert "RB502" in result.output  # the promotion not signed by ci, named


def test_exports_say_when_the_ledger_has_findings(prod: Env, tmp_path: Path):
    state = version(prod, "credit-risk@2")
    forge(prod, "sme", "promote", "credit-risk@2", {
        "content_hash": state.content_hash, "from": "None", "to": "Production"})  # fmt: skip
    sigs = tmp_path / "sigs"
    result = prod.run("export", "signatures", str(sigs))
    assert result.exit_code == 1 and "the ledger has" in result.stderr
    assert (sigs / "verify-signatures.sh").exists()  # written all the same: it is evidence
    # A keyring edited by hand vouches for no version: no provenance is written.
    add_key_by_hand(prod, tmp_path)
    out = tmp_path / "prov.json"
    result = prod.run("export", "provenance", "credit-risk@1", "-o", str(out))
    assert result.exit_code == 1 and not out.exists()
    assert "no provenance written" in result.output


# --- what a witness's digests vouch for ---------------------------------------------------


def vouched(env: Env, witness: Path) -> dict[str, int]:
    """Per sheet, the row up to which a witnessed open of the registry skipped the checks
    CI had already made (0: none)."""
    snap = open_registry(Workspace.load(env.root), witness=Witness.load(witness))
    return {name: table.vouched_to for name, table in snap.data.tables.items()}


@pytest.fixture
def every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint at every row, as a registry of thousands of rows has every 2,048: the
    few rows of a test registry then show what falls inside a vouched prefix."""
    monkeypatch.setattr(digests, "CHECKPOINT_EVERY", 1)


def test_a_witness_vouches_for_the_rows_ci_verified_and_regbook_appends_after(prod: Env):
    witness = take_witness(prod)
    data = json.loads(witness.read_bytes().split(b"-----BEGIN SSH SIGNATURE-----")[0])
    assert data["format"] == "regbook-witness/3"
    assert set(data["parts"]["sheets"]) == {"Ledger", "Models", "Metrics", "Approvals", "History"}
    head = len(ledger(prod))
    assert vouched(prod, witness)["Ledger"] == head + 1  # every event, below the header
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    rows = vouched(prod, witness)
    # The writers appended in place: the rows CI verified are still its bytes.
    assert rows["Ledger"] == head + 1 and rows["History"] > 1 and rows["Approvals"] > 1
    code, report = verify(prod, "--witness", str(witness), "--keyring-sha256", pin(prod))
    assert code == 0, report["findings"]
    # A witness of the first format names the head only: it still verifies, vouching for
    # no rows.
    key = keys.load_private_key(prod.keys["ci"])
    old = {k: v for k, v in data.items() if k not in ("parts", "state")}
    old["format"] = "regbook-witness/1"
    body = (json.dumps(old, indent=2) + "\n").encode()
    first = prod.root.parent / "ci-only" / "first"
    first.write_bytes(body + keys.sign(body, key, "regbook-ci").encode())
    assert set(vouched(prod, first).values()) == {0}
    code, report = verify(prod, "--witness", str(first))
    assert code == 0, report["findings"]


def splice_row(xml: bytes, number: int, row: bytes) -> bytes:
    """``xml`` with its row ``number`` replaced by the bytes ``row``."""
    start = xml.index(f'<row r="{number}"'.encode())
    end = xml.index(b"</row>", start) + len(b"</row>")
    return xml[:start] + row + xml[end:]


def row_bytes(xml: bytes, number: int) -> bytes:
    start = xml.index(f'<row r="{number}"'.encode())
    return xml[start : xml.index(b"</row>", start) + len(b"</row>")]


def sheet_xml(env: Env, sheet: str) -> bytes:
    with zipfile.ZipFile(env.workbook) as zf:
        return zf.read(digests.sheet_parts(zf)[sheet])


@pytest.mark.usefixtures("every_row")
@pytest.mark.parametrize(
    ("sheet", "old", "new", "code", "column"),
    [("Ledger", b"alice@example.com", b"alicf@example.com", "RB102", "H"),
     ("Models", b"credit-risk@1", b"credit-risk@7", "RB301", "C"),
     ("Metrics", b"<v>0.91</v>", b"<v>0.19</v>", "RB301", "D"),
     ("History", b"registered credit-risk@1", b"registered credit-risk@9", "RB309", "J"),
     ("Approvals", b"gina@example.com", b"mallory@example.com", "RB309", "F")],
)  # fmt: skip
def test_a_byte_changed_in_a_witnessed_row_is_still_caught(
    prod: Env, sheet: str, old: bytes, new: bytes, code: str, column: str
):
    witness = take_witness(prod)
    xml = sheet_xml(prod, sheet)
    row = int(re.findall(rb'<row r="([0-9]+)"', xml[: xml.index(old)])[-1])
    edit_part(prod.workbook, sheet, lambda xml: xml.replace(old, new, 1))
    assert 0 < vouched(prod, witness)[sheet] < row  # vouched up to the row before the edit
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1 and (code, f"{sheet}!{column}{row}") in problems(report), report


@pytest.mark.usefixtures("every_row")
@pytest.mark.parametrize(
    ("part", "change"),
    [("xl/styles.xml", lambda xml: xml.replace(b"<cellXfs", b"<cellXfs ", 1)),
     ("xl/workbook.xml", lambda xml: xml.replace(b'state="visible"', b'state="hidden"', 1)),
     ("[Content_Types].xml", lambda xml: xml + b" ")],
)  # fmt: skip
def test_a_change_to_any_other_part_vouches_for_no_row(prod: Env, part: str, change: Any):
    """Styles, shared strings and the sheet list decide what a row's bytes hold and show:
    a witness whose package digest differs vouches for nothing, and every cell is
    compared again."""
    witness = take_witness(prod)
    edit_part(prod.workbook, part, change)
    assert set(vouched(prod, witness).values()) == {0}


@pytest.mark.usefixtures("every_row")
def test_a_shared_strings_part_added_vouches_for_no_row(prod: Env):
    witness = take_witness(prod)

    def add_shared_strings(xml: bytes) -> bytes:
        return xml.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" '
                           b'ContentType="application/vnd.openxmlformats-officedocument.'
                           b'spreadsheetml.sharedStrings+xml"/></Types>')  # fmt: skip

    edit_part(prod.workbook, "[Content_Types].xml", add_shared_strings)
    assert set(vouched(prod, witness).values()) == {0}


@pytest.mark.usefixtures("every_row")
def test_a_cell_after_the_witnessed_rows_cannot_reach_back_into_them(prod: Env):
    """A row appended after the witnessed ones whose cell names a witnessed row would
    overwrite that cell when read: the sheet is then vouched for nothing."""
    witness = take_witness(prod)
    models = sheet_xml(prod, "Models")
    last = int(re.findall(rb'<row r="([0-9]+)"', models)[-1])
    forged = (f'<row r="{last + 1}"><c r="D2" t="inlineStr"><is><t>Archived</t></is></c>'
              "</row>").encode()  # fmt: skip
    edit_part(
        prod.workbook, "Models", lambda xml: xml.replace(b"</sheetData>", forged + b"</sheetData>")
    )
    assert vouched(prod, witness)["Models"] == 0
    shown = read_workbook(prod.workbook)["Models"]
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1
    if shown.rows[0][MODELS.index("stage")] == "Archived":  # the reader took the later cell
        assert ("RB311", "Models!D2") in problems(report), report["findings"]


@pytest.mark.usefixtures("every_row")
def test_a_row_put_back_to_its_witnessed_bytes_is_judged_by_the_events_since(prod: Env):
    """A version touched after the witness must show what those events say, even where
    its row is byte for byte what CI verified."""
    witness = take_witness(prod)
    before = row_bytes(sheet_xml(prod, "Models"), 3)  # credit-risk@2, stage None
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    edit_part(prod.workbook, "Models", lambda xml: splice_row(xml, 3, before))
    assert vouched(prod, witness)["Models"] >= 3
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1 and ("RB311", "Models!D3") in problems(report), report["findings"]


@pytest.mark.usefixtures("every_row")
def test_a_metric_row_deleted_after_the_witnessed_prefix_is_still_missing(prod: Env):
    witness = take_witness(prod)
    metrics = sheet_xml(prod, "Metrics")
    last = int(re.findall(rb'<row r="([0-9]+)"', metrics)[-1])
    edit_part(prod.workbook, "Metrics", lambda xml: splice_row(xml, last, b""))
    assert vouched(prod, witness)["Metrics"] == last - 1
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1 and "RB306" in codes(report), report["findings"]


@pytest.mark.usefixtures("every_row")
def test_writers_use_a_witness_left_in_the_workspace_and_still_refuse_a_hand_edit(prod: Env):
    take_witness(prod)
    shutil.copy2(prod.root.parent / "ci-only" / "witness", prod.root / "regbook.witness")
    with Transaction(Workspace.load(prod.root)) as tx:
        assert tx.snapshot.vouched is not None  # the rows CI verified are not compared again
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    edit_part(prod.workbook, "Models", lambda xml: xml.replace(b"credit-risk@1", b"credit-risk@7"))
    refused = prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme")
    assert refused.exit_code == 1 and "nothing was written" in refused.output
    assert "RB301" in refused.output or "views differ" in refused.output


@pytest.mark.usefixtures("every_row")
def test_writers_with_a_witness_append_after_the_rows_they_did_not_read(prod: Env):
    take_witness(prod)
    shutil.copy2(prod.root.parent / "ci-only" / "witness", prod.root / "regbook.witness")
    before = {name: len(read_workbook(prod.workbook).tables[name].rows)
              for name in ("Approvals", "History")}  # fmt: skip
    with Transaction(Workspace.load(prod.root)) as tx:
        for name in ("Approvals", "History"):  # every row vouched for: none read
            assert tx.data[name].omitted == before[name] and not tx.data[name].rows
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    after = read_workbook(prod.workbook).tables
    assert len(after["Approvals"].rows) == before["Approvals"] + 1
    assert len(after["History"].rows) == before["History"] + 1
    assert after["History"].row_numbers[-1] == before["History"] + 2  # after the header
    code, report = verify(prod)  # every row compared, none vouched for
    assert code == 0, report["findings"]


def test_a_witness_in_the_workspace_that_cannot_be_read_only_saves_nothing(prod: Env):
    (prod.root / "regbook.witness").write_text("not a witness\n")
    with Transaction(Workspace.load(prod.root)) as tx:
        assert tx.snapshot.vouched is None
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    code, report = verify(prod)
    assert code == 0, report["findings"]


@pytest.mark.usefixtures("every_row")
def test_a_witnessed_read_takes_only_the_tails_of_approvals_and_history(prod: Env):
    witness = take_witness(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    snap = open_registry(Workspace.load(prod.root), witness=Witness.load(witness))
    history = snap.data.tables["History"]
    assert history.omitted > 0 and len(history.rows) == 1  # only the promotion's row
    assert not snap.findings
    # The row read from the tail is still compared with the ledger.
    last = history.row_numbers[-1]
    edit_part(prod.workbook, "History", lambda xml: splice_row(
        xml, last, row_bytes(xml, last).replace(b"Staging", b"Production")))  # fmt: skip
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1 and ("RB309", f"History!F{last}") in problems(report), report["findings"]


@pytest.mark.usefixtures("every_row")
def test_a_row_hidden_after_the_witnessed_ones_is_still_caught(prod: Env):
    witness = take_witness(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    history = sheet_xml(prod, "History")
    last = int(re.findall(rb'<row r="([0-9]+)"', history)[-1])
    edit_part(prod.workbook, "History", lambda xml: xml.replace(
        f'<row r="{last}"'.encode(), f'<row r="{last}" hidden="1"'.encode()))  # fmt: skip
    snap = open_registry(Workspace.load(prod.root), witness=Witness.load(witness))
    assert snap.data.tables["History"].vouched_end > 0  # the rows before it were skipped
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1 and "RB314" in codes(report), report["findings"]


def test_registrations_under_a_witness_that_vouches_for_nothing_are_checked_in_full(prod: Env):
    # A genuine witness, then the ledger cut back under its head and a registration with
    # no readable artefact hash signed at the witnessed seq: the witness vouches for
    # nothing there, so that registration is replayed with every check.
    witness = take_witness(prod)
    witnessed = ledger(prod)[-1]
    delete_ledger_rows(prod, 1)
    ok(prod.run("restore"))
    first = next(e for e in ledger(prod) if e.kind == "register" and e.model == "credit-risk")
    after = max(e.version or 0 for e in ledger(prod) if e.model == "credit-risk") + 1
    payload = {k: v for k, v in first.payload.items() if k != "registry"}
    payload["artefact"] = {**payload["artefact"], "hash": "not a hash"}
    row = forge(prod, "sme", "register", f"credit-risk@{after}", payload)
    assert ledger(prod)[-1].seq == witnessed.seq
    code, report = verify(prod, "--witness", str(witness))
    assert code == 1 and "RB119" in codes(report)
    assert ("RB203", f"Ledger!F{row}") in problems(report)


@pytest.mark.usefixtures("every_row")
def test_a_registration_edited_inside_the_witnessed_rows_is_replayed_with_its_checks(prod: Env):
    # Its seq is under the witnessed head, but its row is no longer the bytes CI read:
    # the replay checks its shape (and does not trip over the missing artefact).
    witness = take_witness(prod)
    xml = sheet_xml(prod, "Ledger")
    at = xml.index(b'"artefact":')
    row = int(re.findall(rb'<row r="([0-9]+)"', xml[:at])[-1])
    edit_part(prod.workbook, "Ledger", lambda xml: xml.replace(b'"artefact":', b'"artefakt":', 1))
    assert 0 < vouched(prod, witness)["Ledger"] < row
    found, report = verify(prod, "--witness", str(witness))
    assert found == 1 and {("RB102", f"Ledger!H{row}"), ("RB203", f"Ledger!F{row}")} <= problems(
        report
    ), report["findings"]


# --- writers resumed from the state stored beside the witness ------------------------------
# (regbook.registry.resume): whatever was edited, forged or swapped, a resumed writer
# refuses what a writer that reads everything refuses, and what it writes verifies in full.


def in_workspace(env: Env, witness: Path) -> None:
    """Put a witness CI took, and the state stored beside it, into the workspace."""
    shutil.copy2(witness, env.root / "regbook.witness")
    shutil.copy2(state_path(witness), state_path(env.root / "regbook.witness"))


def resumes(env: Env) -> bool:
    """Whether a writer opening the workspace now starts from the stored state."""
    with Transaction(Workspace.load(env.root), resume=True) as tx:
        return isinstance(tx.registry, ResumedRegistry)


@pytest.fixture
def twin(_production_master: Path, tmp_path: Path, runner: CliRunner, monkeypatch) -> Env:
    """A second copy of the same registry, for a writer that reads everything."""
    return copied_env(_production_master, tmp_path / "twin", runner, monkeypatch)


@pytest.mark.usefixtures("every_row")
def test_writers_resume_from_the_stored_state_and_what_they_write_verifies(prod: Env):
    in_workspace(prod, take_witness(prod))
    assert resumes(prod)
    ok(prod.register("credit-risk", None, "--metric", "security_high_findings=0"))  # @3
    assert resumes(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    assert resumes(prod)  # the Models row it rewrote is read now, the rows before it not
    ok(prod.run("gate", "credit-risk@3", key="ci"))
    ok(prod.run("approve", "credit-risk@3", "--to", "Staging", key="sme"))
    assert resumes(prod)
    # Every cell of every sheet against the ledger, no witness: all as a full read has it.
    code, report = verify(prod)
    assert code == 0, report["findings"]
    with Transaction(Workspace.load(prod.root), resume=True) as tx:
        state = tx.registry.get("credit-risk", 2)
        assert state is not None and state.stage == "Staging"
        assert tx.registry.next_version("credit-risk") == 4


def refused_alike(prod: Env, twin: Env, edit, *command: str, key: str = "sme") -> str:
    """``command`` after ``edit`` in a workspace with a witness and its state and in one
    without: both refuse, with the same words."""
    in_workspace(prod, take_witness(prod))
    outputs = []
    for env in (prod, twin):
        edit(env)
        done = env.run(*command, key=key)
        assert done.exit_code != 0, done.output
        # The same words; hashes differ where each copy's own events have their own times.
        outputs.append((done.exit_code, re.sub(r"[0-9a-f]{16}", "HASH", done.output)))
    assert outputs[0] == outputs[1]
    return outputs[0][1]


def edit_models_commit(env: Env) -> None:
    edit_part(env.workbook, "Models", lambda xml: splice_row(
        xml, 2, row_bytes(xml, 2).replace(b"c0ffee", b"deface")))  # fmt: skip


def edit_ledger_row(env: Env) -> None:
    edit_part(env.workbook, "Ledger", lambda xml: splice_row(
        xml, 3, row_bytes(xml, 3).replace(b"alice@example.com", b"alice@example.org")))  # fmt: skip


def drop_metric_row(env: Env) -> None:
    edit_part(env.workbook, "Metrics", lambda xml: splice_row(xml, 2, b""))


def edit_ledger_after_the_head(env: Env) -> None:
    """An event written after the witnessed head (read and checked in full), edited."""
    ok(env.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    last = len(read_workbook(env.workbook).tables["Ledger"].rows) + 1
    # Its link to the event before (no view shows it): a chain the writer must refuse.
    link = re.compile(rb'(<c r="G[0-9]+"[^>]*><is><t[^>]*>)[0-9a-f]{64}')
    edit_part(env.workbook, "Ledger", lambda xml: splice_row(
        xml, last, link.sub(rb"\g<1>" + b"0" * 64, row_bytes(xml, last))))  # fmt: skip


def loosen_policy(env: Env) -> None:
    config = env.root / "regbook.toml"
    config.write_text(config.read_text().replace("auc_roc >= 0.75", "auc_roc >= 0.5"))


def edit_history_row(env: Env) -> None:
    edit_part(env.workbook, "History", lambda xml: splice_row(
        xml, 2, row_bytes(xml, 2).replace(b"governance-lead", b"sme")))  # fmt: skip


@pytest.mark.usefixtures("every_row")
@pytest.mark.parametrize(
    "edit, expected",
    [
        (edit_models_commit, "views differ"),
        (edit_ledger_row, "ledger is broken"),
        (drop_metric_row, "views differ"),
        (edit_history_row, "views differ"),
        (edit_ledger_after_the_head, "ledger is broken"),
        (loosen_policy, "differs from the one in force"),
    ],
    ids=[
        "a Models cell",
        "a Ledger row",
        "a Metrics row deleted",
        "a History cell",
        "a Ledger row after the head",
        "regbook.toml",
    ],  # fmt: skip
)
def test_a_hand_edit_inside_the_witnessed_rows_is_refused_as_by_a_full_read(
    prod: Env, twin: Env, edit, expected: str
):
    said = refused_alike(
        prod, twin, edit, "approve", "credit-risk@2", "--to", "Staging"
    )  # fmt: skip
    assert expected in said and "nothing was written" in said


@pytest.mark.usefixtures("every_row")
def note_in_row_2(xml: bytes) -> bytes:
    """Models row 2 with a note typed in its Notes cell (V): a cell that is the SME's."""
    row = row_bytes(xml, 2)
    cell = b'<c r="V2" t="inlineStr"><is><t>checked by Gina</t></is></c>'
    if b'<c r="V2"' in row:
        noted = re.sub(rb'<c r="V2"[^>]*?(?:/>|>.*?</c>)', cell, row)
    else:
        at = row.find(b'<c r="W2"')
        noted = row[:at] + cell + row[at:] if at >= 0 else row.replace(b"</row>", cell + b"</row>")
    return splice_row(xml, 2, noted)


@pytest.mark.usefixtures("every_row")
@pytest.mark.parametrize("read", [False, True], ids=["among the rows not read", "among those read"])
def test_a_version_whose_row_still_shows_an_older_state_is_refused(
    prod: Env, twin: Env, read: bool
):
    """An event after the witnessed head that changes what a version's Models row must
    show, written without its row (by hand, or by a tool that is not regbook), leaves
    the row CI read: it no longer shows the ledger. A note typed in the row above has
    the resumed writer read the stale row too, unchanged since CI read it."""

    def stale(env: Env) -> None:
        row = row_bytes(sheet_xml(env, "Models"), 3)  # credit-risk@2, as it stands
        ok(env.register("credit-risk", None, "--metric", "security_high_findings=0"))
        ok(env.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
        ok(env.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
        edit_part(env.workbook, "Models", lambda xml: splice_row(xml, 3, row))
        if read:
            edit_part(env.workbook, "Models", note_in_row_2)

    said = refused_alike(
        prod, twin, stale, "approve", "credit-risk@2", "--to", "Production",
        key="governance-lead",
    )  # fmt: skip
    assert "views differ" in said


def test_a_state_that_is_not_the_witnessed_one_is_not_used(prod: Env):
    in_workspace(prod, take_witness(prod))
    stored = state_path(prod.root / "regbook.witness")
    # Forged: the header line says credit-risk@2 is in Production.
    data = stored.read_bytes()
    stored.write_bytes(data.replace(b'"None"', b'"Production"', 1))
    assert not resumes(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    code, report = verify(prod)
    assert code == 0, report["findings"]
    # Another witness's state, genuine but of an older head.
    older = take_witness(prod, "older")
    ok(prod.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))
    newer = take_witness(prod, "newer")
    in_workspace(prod, newer)
    shutil.copy2(state_path(older), stored)
    assert not resumes(prod)
    # The older witness with its own state: it only costs time (the events after its
    # head are read and checked in full).
    in_workspace(prod, older)
    assert resumes(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Production", key="governance-lead"))
    code, report = verify(prod)
    assert code == 0, report["findings"]


def test_a_witness_signed_by_another_key_vouches_for_no_state(prod: Env):
    """An SME key holder forges a state and a witness naming its digest: only a ci
    key's witness makes a writer trust a stored state."""
    witness = take_witness(prod)
    in_workspace(prod, witness)
    stored = state_path(prod.root / "regbook.witness")
    forged = stored.read_bytes().replace(b'"None"', b'"Production"', 1)
    stored.write_bytes(forged)
    text = Witness.load(witness).signed.decode()
    data = json.loads(text)
    data["state"] = hashlib.sha256(forged).hexdigest()
    data["signer"] = PRINCIPAL["sme"]
    body = (json.dumps(data, indent=2) + "\n").encode()
    sme = keys.load_private_key(prod.keys["sme"])
    (prod.root / "regbook.witness").write_bytes(body + keys.sign(body, sme, "regbook-ci").encode())
    assert not resumes(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    code, report = verify(prod)
    assert code == 0, report["findings"]


def test_a_keyring_changed_since_the_witness_stops_the_resume(prod: Env):
    in_workspace(prod, take_witness(prod))
    ok(prod.run("keys", "new", "bob@example.com", "--role", "sme",
                "--out", str(prod.root.parent / "bob"), key="governance-lead"))  # fmt: skip
    assert not resumes(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    code, report = verify(prod)
    assert code == 0, report["findings"]


@pytest.mark.usefixtures("every_row")
def test_the_rows_after_the_witnessed_ones_are_read_in_their_own_rows_and_columns(prod: Env):
    witness = Witness.load(take_witness(prod))
    models = sheet_xml(prod, "Models")
    last = int(re.findall(rb'<row r="([0-9]+)"', models)[-1])
    # The last row without its first cell: what is read must stay in its columns.
    first_cell = re.compile(rb'<c r="A[0-9]+"[^>]*?(?:/>|>.*?</c>)')
    edit_part(prod.workbook, "Models", lambda xml: splice_row(
        xml, last, first_cell.sub(b"", row_bytes(xml, last))))  # fmt: skip
    with zipfile.ZipFile(prod.workbook) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    full = read_workbook(prod.workbook).tables["Models"]
    assert witness.parts is not None
    tails = read_tails(prod.workbook, parts, (MODELS, LEDGER), witness.parts)
    assert tails is not None
    tail = tails["Models"]
    assert tail.vouched_to == last - 1 and tail.omitted == last - 2
    assert tail.row_numbers == [last] and tail.rows == [full.rows[-1]]
    assert tail.rows[0][0] is None and tail.rows[0][1] == full.rows[-1][1]
    assert tails["Ledger"].rows == [] and tails["Ledger"].omitted == len(ledger(prod))


def test_a_state_that_is_not_a_file_is_not_read(prod: Env):
    """A FIFO planted under the state's name would hold a writer forever: it is not
    read, and the writer reads the workbook in full."""
    in_workspace(prod, take_witness(prod))
    stored = state_path(prod.root / "regbook.witness")
    stored.unlink()
    os.mkfifo(stored)
    assert not resumes(prod)
    ok(prod.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
