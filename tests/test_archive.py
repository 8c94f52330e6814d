"""Tests for the archive (DESIGN section 7): ``archive``, ``retrieve`` and ``fixity``.

The bags are checked with bagit's own validator and with ``sha256sum -c``; tampered
bags must be caught by retrieve, fixity and verify alike; and a crash at each step of
the move (a subprocess killed by ``REGBOOK_FAULT``) leaves either the old state or one
that running the command again finishes, never a lost artefact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bagit
import pytest

from conftest import CODE_COMMIT, DATA_VERSION, Env, snapshot
from regbook.check.bags import read_bag_info
from regbook.workflow.archive import STEPS

REF = "credit-risk@1"


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def approve_archive(env: Env, ref: str = REF, key: str = "sme") -> None:
    ok(env.run("approve", ref, "--to", "Archived", key=key))


def bag(env: Env, ref: str = REF) -> Path:
    name, version = ref.split("@")
    return env.root / "archive" / name / version


def original(env: Env, ref: str = REF) -> Path:
    name, version = ref.split("@")
    folder = env.root / "models" / name / version
    return next(folder.iterdir())


def verify_json(env: Env, *args: str) -> tuple[int, dict]:
    result = env.run("verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def codes(report: dict) -> set[str]:
    return {f["code"] for f in report["findings"] if f["severity"] != "info"}


@pytest.fixture
def archived(registered_fast: Env) -> Env:
    """registered_fast with credit-risk@1 archived (file artefact, in models/)."""
    env = registered_fast
    approve_archive(env)
    ok(env.run("archive", REF, key="sme"))
    return env


# --- archive -------------------------------------------------------------------------


def test_archive_makes_a_valid_bag_and_moves_the_artefact(registered_fast: Env):
    env = registered_fast
    src = original(env)
    payload = src.read_bytes()
    approve_archive(env)
    result = ok(env.run("archive", REF, key="sme"))
    assert "archived credit-risk@1 in archive/credit-risk/1" in result.output
    assert "removed the original" in result.output
    assert not src.exists() and not (env.root / "models" / "credit-risk" / "1").exists()
    root = bag(env)
    assert (root / "data" / src.name).read_bytes() == payload
    bagit.Bag(str(root)).validate()
    assert "BagIt-Version: 1.0" in (root / "bagit.txt").read_text()
    for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        check = subprocess.run(
            ["sha256sum", "-c", manifest], cwd=root, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    info = read_bag_info(root)
    for label in ("External-Identifier", "Bagging-Date", "Payload-Oxum", "Content-Hash",
                  "Training-Data-Version", "Code-Commit", "Pipeline-Execution-ID",
                  "Archived-At", "Retain-Until"):  # fmt: skip
        assert info.get(label), label
    assert info["External-Identifier"].startswith("credit-risk@1+")
    assert info["Code-Commit"] == CODE_COMMIT and info["Training-Data-Version"] == DATA_VERSION
    year = int(info["Archived-At"][:4])
    assert info["Retain-Until"][:4] == str(year + 10)
    events = [json.loads(line) for line in (root / "ledger-events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["register", "approve"]
    assert all(e["signature"].startswith("-----BEGIN SSH SIGNATURE") for e in events)
    assert (root / "allowed_signers").read_bytes() == (env.root / "allowed_signers").read_bytes()
    assert (root / "tagmanifest-sha256.txt.sig").read_text().startswith("-----BEGIN SSH")
    tags = (root / "tagmanifest-sha256.txt").read_text()
    assert "ledger-events.jsonl" in tags and "allowed_signers" in tags
    code, report = verify_json(env)
    assert code == 0, report["findings"]
    listed = json.loads(ok(env.run("list", "--json")).stdout)
    row = next(r for r in listed if r["version"] == 1 and r["model"] == "credit-risk")
    assert row["stage"] == "Archived"


def test_the_tag_manifest_signature_verifies_with_ssh_keygen(archived: Env):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed")
    root = bag(archived)
    with (root / "tagmanifest-sha256.txt").open("rb") as stdin:
        check = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(archived.root / "allowed_signers"),
             "-I", "alice@example.com", "-n", "regbook-sme",
             "-s", str(root / "tagmanifest-sha256.txt.sig")],
            stdin=stdin, capture_output=True, text=True,
        )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_archive_event_payload(archived: Env):
    from regbook.core.schema import LEDGER
    from regbook.ledger.events import read_events
    from regbook.workbook.read import read_workbook

    events, _ = read_events(read_workbook(archived.workbook)[LEDGER.name])
    event = events[-1]
    assert event.kind == "archive"
    p = event.payload
    assert p["from"] == "None" and p["to"] == "Archived"
    assert p["storage"] == "archive/credit-risk/1"
    assert p["approval"]["seq"] == event.seq - 1
    digest = hashlib.sha256((bag(archived) / "tagmanifest-sha256.txt").read_bytes()).hexdigest()
    assert p["bag_tagmanifest_sha256"] == digest
    assert p["retain_until"] == read_bag_info(bag(archived))["Retain-Until"]


def test_archive_refused_without_approval(registered_fast: Env):
    env = registered_fast
    before = snapshot(env.root)
    result = env.run("archive", REF, key="sme")
    assert result.exit_code == 1
    assert "no signed approval" in result.output and "nothing was written" in result.output
    assert snapshot(env.root) == before


def test_archive_refused_with_a_key_whose_role_may_not(registered_fast: Env):
    env = registered_fast
    approve_archive(env)
    before = snapshot(env.root)
    result = env.run("archive", REF, key="ci")
    assert result.exit_code == 1
    assert snapshot(env.root) == before


def test_archived_is_final_and_a_rerun_does_nothing(archived: Env):
    result = ok(archived.run("archive", REF, key="sme"))
    assert "already archived" in result.output
    assert archived.run("approve", REF, "--to", "Staging", key="sme").exit_code == 2


def test_a_folder_artefact(registered_fast: Env, tmp_path: Path):
    env = registered_fast
    folder = tmp_path / "model-dir"
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "w.bin").write_bytes(b"\x00\x01" * 500)
    (folder / "config.json").write_text('{"a": 1}\n')
    result = ok(env.register("credit-risk", folder))
    approve_archive(env, "credit-risk@3")
    ok(env.run("archive", "credit-risk@3", key="sme"))
    root = bag(env, "credit-risk@3")
    assert (root / "data" / "weights" / "w.bin").is_file()
    bagit.Bag(str(root)).validate()
    assert verify_json(env)[0] == 0
    out = tmp_path / "out"
    result = ok(env.run("retrieve", "credit-risk@3", "--to", str(out)))
    assert result.stdout.startswith("credit-risk@3+")
    assert (out / "config.json").read_text() == '{"a": 1}\n'


def test_an_artefact_outside_the_workspace_is_copied_and_left_in_place(
    registered_fast: Env, tmp_path: Path
):
    env = registered_fast
    outside = tmp_path / "share" / "model.bin"
    outside.parent.mkdir()
    outside.write_bytes(b"on a mounted share\n" * 50)
    ok(env.run(
        "register", "credit-risk", "--storage", str(outside), "--data-version", DATA_VERSION,
        "--code-commit", CODE_COMMIT, "--pipeline-run", "run-9", key="sme",
    ))  # fmt: skip
    approve_archive(env, "credit-risk@3")
    result = ok(env.run("archive", "credit-risk@3", key="sme"))
    assert "outside the workspace's models/: copied, left in place" in result.output
    assert outside.read_bytes() == b"on a mounted share\n" * 50
    assert (bag(env, "credit-risk@3") / "data" / "model.bin").read_bytes() == outside.read_bytes()
    assert verify_json(env)[0] == 0


# --- retrieve and fixity -------------------------------------------------------------


def test_retrieve_good(archived: Env, tmp_path: Path):
    out = tmp_path / "restored"
    result = ok(archived.run("retrieve", REF, "--to", str(out)))
    assert result.stdout.strip().startswith("credit-risk@1+")
    files = list(out.iterdir())
    assert len(files) == 1
    data = next((bag(archived) / "data").iterdir()).read_bytes()
    assert files[0].read_bytes() == data


def test_retrieve_refuses_a_non_empty_target(archived: Env, tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert archived.run("retrieve", REF, "--to", str(tmp_path / "full")).exit_code == 2


def test_retrieve_of_a_version_not_archived(registered_fast: Env, tmp_path: Path):
    assert registered_fast.run("retrieve", REF, "--to", str(tmp_path / "o")).exit_code == 2


def test_fixity_json_shape(archived: Env):
    result = archived.run("fixity", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["mode"] == "full" and report["checked"] == 1
    entry = report["bags"][0]
    assert set(entry) == {"model", "version", "composite_id", "storage", "retain_until",
                          "ok", "problems", "due_within_12_months"}  # fmt: skip
    assert entry["due_within_12_months"] is False  # ten years away
    assert entry["storage"] == "archive/credit-risk/1" and entry["ok"] is True
    assert report["findings"] == []
    fast = json.loads(ok(archived.run("fixity", "--fast", "--json")).stdout)
    assert fast["mode"] == "fast" and fast["ok"] is True


def _flip_payload_byte(root: Path) -> None:
    target = next((root / "data").iterdir())
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.chmod(0o644)
    target.write_bytes(bytes(data))


def _edit_manifest_line(root: Path) -> None:
    path = root / "manifest-sha256.txt"
    text = path.read_text()
    path.write_text(("0" * 64) + text[64:])


def _edit_bag_info(root: Path) -> None:
    path = root / "bag-info.txt"
    path.write_text(path.read_text().replace("Retain-Until: ", "Retain-Until: 1"))


def _remove_tag_file(root: Path) -> None:
    (root / "ledger-events.jsonl").unlink()


def _edit_bag_info_and_regenerate(root: Path) -> None:
    b = bagit.Bag(str(root))
    b.info["Retain-Until"] = "2027-01-01"
    b.save()


def _swap_signature(root: Path) -> None:
    """A valid signature over the very same tag manifest, by a key the keyring lacks."""
    from regbook.crypto import keys

    other = keys.generate_key(root.parent / "mallory-key")
    manifest = (root / "tagmanifest-sha256.txt").read_bytes()
    (root / "tagmanifest-sha256.txt.sig").write_text(keys.sign(manifest, other, "regbook-sme"))


TAMPERS = {
    "signature-swapped": (_swap_signature, {"RB804"}, True),
    "payload-byte-flipped": (_flip_payload_byte, {"RB802"}, False),
    "manifest-line-edited": (_edit_manifest_line, {"RB802", "RB804"}, True),
    "bag-info-edited": (_edit_bag_info, {"RB802"}, True),
    "tag-file-removed": (_remove_tag_file, {"RB802"}, True),
    "bag-info-edited-manifests-regenerated": (_edit_bag_info_and_regenerate, {"RB804"}, True),
    "bag-removed": (lambda root: shutil.rmtree(root), {"RB801"}, True),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampered_bags_are_caught_everywhere(archived: Env, tmp_path: Path, name: str):
    tamper, expected, fast_sees_it = TAMPERS[name]
    tamper(bag(archived))
    out = tmp_path / "restored"
    result = archived.run("retrieve", REF, "--to", str(out))
    assert result.exit_code == 1 and not out.exists()
    assert "nothing was copied" in result.output
    report = json.loads(archived.run("fixity", "--json").stdout)
    assert report["ok"] is False and codes(report) & expected
    fast = json.loads(archived.run("fixity", "--fast", "--json").stdout)
    assert (fast["ok"] is False) == fast_sees_it
    code, verified = verify_json(archived)
    assert code == 1 and codes(verified) & expected
    if name != "payload-byte-flipped":  # the payload is only re-read with artefacts
        code, verified = verify_json(archived, "--no-artefacts")
        assert code == 1 and codes(verified) & (expected | {"RB804"})


def test_retrieve_lists_the_failing_files(archived: Env, tmp_path: Path):
    _flip_payload_byte(bag(archived))
    result = archived.run("retrieve", REF, "--to", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "RB802" in result.output and "data/" in result.output


# --- crash safety --------------------------------------------------------------------


# Runs the CLI in a child process whose archive dies (exit 9) when it passes FAULT.
CRASH_AT = """
import os, sys
from regbook import cli
from regbook.workflow import archive

def step_done(step):
    if step == sys.argv[1]:
        os._exit(9)

archive.step_done = step_done
cli.main(sys.argv[2:])
"""


def _run_archive(env: Env, fault: str | None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "REGBOOK_KEY"}
    environ.pop("REGBOOK_WORKSPACE", None)
    return subprocess.run(
        [sys.executable, "-c", CRASH_AT, fault or "", "--workspace", str(env.root), "archive",
         REF, "--key", str(env.keys["sme"])],
        capture_output=True, text=True, env=environ,
    )  # fmt: skip


@pytest.mark.parametrize("fault", STEPS)
def test_a_crash_at_each_step_is_finished_by_a_rerun(registered_fast: Env, fault: str):
    env = registered_fast
    approve_archive(env)
    src = original(env)
    payload = src.read_bytes()
    killed = _run_archive(env, fault)
    assert killed.returncode == 9, killed.stdout + killed.stderr
    # Nothing lost: verify finds no missing artefact and no broken bag.
    code, report = verify_json(env)
    assert not codes(report) & {"RB401", "RB402", "RB801", "RB802", "RB803", "RB804"}, report
    assert code == 0, report["findings"]
    assert src.exists() or (bag(env) / "data" / src.name).read_bytes() == payload
    done = _run_archive(env, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not src.exists()
    assert (bag(env) / "data" / src.name).read_bytes() == payload
    assert not [p for p in bag(env).parent.iterdir() if p.name.startswith(".partial")]
    code, report = verify_json(env)
    assert code == 0 and not report["findings"], report["findings"]
    from regbook.core.schema import LEDGER
    from regbook.ledger.events import read_events
    from regbook.workbook.read import read_workbook

    events, _ = read_events(read_workbook(env.workbook)[LEDGER.name])
    assert [e.kind for e in events].count("archive") == 1


def test_a_crash_after_the_event_is_noted_by_verify(registered_fast: Env):
    env = registered_fast
    approve_archive(env)
    assert _run_archive(env, "after-event").returncode == 9
    code, report = verify_json(env)
    assert code == 0
    assert [f["code"] for f in report["findings"]] == ["RB805"]


def test_a_bag_left_by_another_key_is_not_reused(registered_fast: Env):
    env = registered_fast
    approve_archive(env)
    assert _run_archive(env, "after-rename").returncode == 9
    before = snapshot(env.root)
    result = env.run("archive", REF, key="governance-lead")
    assert result.exit_code == 1
    assert "rerun with the key that built the bag" in result.output
    assert snapshot(env.root) == before


def test_history_shows_the_move(archived: Env):
    import openpyxl

    from regbook.core.schema import HISTORY

    sheet = openpyxl.load_workbook(archived.workbook)[HISTORY.name]
    last = [c.value for c in sheet[sheet.max_row]]
    detail = last[HISTORY.index("detail")]
    assert last[HISTORY.index("event")] == "archive"
    assert "bag: archive/credit-risk/1; retain until " in detail


# --- promote --archive-previous ------------------------------------------------------


@pytest.fixture
def in_production(registered_fast: Env) -> Env:
    """credit-risk@1 in Production, credit-risk@2 in Staging with a PASS and a Production
    approval. The security gate is dropped: the shared workspace has no scan metric."""
    env = registered_fast
    config = env.root / "regbook.toml"
    text = config.read_text()
    config.write_text(text.replace('security = "security_high_findings == 0"\n', ""))
    ok(env.run("policy", "sign", key="governance-lead"))
    for ref in ("credit-risk@1", "credit-risk@2"):
        ok(env.run("approve", ref, "--to", "Staging", key="sme"))
        ok(env.run("promote", ref, "--to", "Staging", key="sme"))
        ok(env.run("gate", ref, key="ci"))
        ok(env.run("approve", ref, "--to", "Production", key="governance-lead"))
    ok(env.run("promote", "credit-risk@1", "--to", "Production", key="ci"))
    return env


def test_promote_archive_previous(in_production: Env):
    env = in_production
    src = original(env, "credit-risk@1")
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    result = ok(
        env.run("promote", "credit-risk@2", "--to", "Production", "--archive-previous", key="ci")
    )
    assert "archived credit-risk@1 into its bag" in result.output
    assert not src.exists()
    bagit.Bag(str(bag(env, "credit-risk@1"))).validate()
    listed = {r["version"]: r["stage"] for r in json.loads(ok(env.run("list", "--json")).stdout)}
    assert listed == {1: "Archived", 2: "Production"}
    code, report = verify_json(env)
    assert code == 0 and not report["findings"], report["findings"]
    fixed = json.loads(ok(env.run("fixity", "--json")).stdout)
    assert fixed["ok"] and fixed["checked"] == 1


def test_promote_archive_previous_needs_the_archive_approval(in_production: Env):
    env = in_production
    before = snapshot(env.root)
    result = env.run(
        "promote", "credit-risk@2", "--to", "Production", "--archive-previous", key="ci"
    )
    assert result.exit_code == 1
    assert "no signed approval for Production -> Archived" in result.output
    assert snapshot(env.root) == before


def test_archive_previous_goes_with_production(in_production: Env):
    result = in_production.run("promote", "credit-risk@2", "--to", "Archived",
                               "--archive-previous", key="governance-lead")  # fmt: skip
    assert result.exit_code == 2 and "--archive-previous goes with --to Production" in result.output


def test_an_archive_signed_by_ci_without_the_promotion_is_found(in_production: Env):
    from conftest import edit_workbook
    from regbook.core.schema import LEDGER
    from regbook.crypto import keys
    from regbook.ledger.events import new_event, read_events
    from regbook.registry.transaction import append_ledger_rows
    from regbook.workbook.read import read_workbook

    env = in_production
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    data = read_workbook(env.workbook)
    events, _ = read_events(data[LEDGER.name])
    approval = events[-1]
    payload = {
        "approval": {"hash": approval.hash, "seq": approval.seq},
        "content_hash": approval.payload["content_hash"], "from": "Production",
        "to": "Archived", "storage": "archive/credit-risk/1", "retain_until": "2036-01-01",
        "bag_tagmanifest_sha256": "0" * 64,
        "superseded_by": {"model": "credit-risk", "version": 2},
        "registry": env.ws.settings.registry_id,  # as every event of this registry
    }  # fmt: skip
    key = keys.load_private_key(env.keys["ci"])
    event = new_event(events[-1], "archive", "credit-risk", 1, payload, key, "ci@example.com", "ci")
    edit_workbook(
        env.workbook,
        lambda wb: append_ledger_rows(wb, data[LEDGER.name].row_numbers, [event]),
    )
    _code, report = verify_json(env, "--no-artefacts")
    messages = [f["message"] for f in report["findings"] if f["code"] == "RB506"]
    assert any("without the promotion to Production" in m for m in messages), report


def test_archive_from_production_needs_the_governance_lead(in_production: Env):
    env = in_production
    ok(env.run("approve", "credit-risk@1", "--to", "Archived", key="governance-lead"))
    refused = env.run("archive", "credit-risk@1", key="sme")
    assert refused.exit_code == 1 and "governance-lead" in refused.output
    ok(env.run("archive", "credit-risk@1", key="governance-lead"))
    code, report = verify_json(env)
    assert code == 0 and not report["findings"], report["findings"]


def test_a_progress_bar_when_stderr_is_a_terminal(registered_fast: Env, monkeypatch):
    import io

    from regbook.storage import hashing
    from regbook.workflow import archive

    shown = io.StringIO()
    monkeypatch.setattr(hashing, "_PROGRESS_MIN_BYTES", 0)
    monkeypatch.setattr(
        archive,
        "progress_bar",
        lambda progress, total, label: hashing.ProgressBar(total, label, stream=shown),
    )
    approve_archive(registered_fast)
    ok(registered_fast.run("archive", REF, key="sme"))
    assert "archiving credit-risk@1" in shown.getvalue()


def test_archive_json(registered_fast: Env):
    approve_archive(registered_fast)
    data = json.loads(ok(registered_fast.run("archive", REF, "--json", key="sme")).stdout)
    assert data["storage"] == "archive/credit-risk/1" and data["model"] == "credit-risk"
    assert data["original_removed"].startswith("models/credit-risk/1/")
    assert data["original_kept"] is None and data["composite_id"].startswith("credit-risk@1+")
    assert len(data["retain_until"]) == 10 and isinstance(data["ledger_seq"], int)


def test_retain_until_runs_from_a_leap_day_to_the_first_of_march():
    from datetime import date

    from regbook.workflow.archive import retain_until

    assert retain_until(date(2028, 2, 29), 10) == date(2038, 3, 1)
    assert retain_until(date(2026, 11, 26), 10) == date(2036, 11, 26)


def test_trace_finds_the_artefact_in_its_bag(archived: Env):
    result = archived.run("trace", REF, "--json")
    links = {link["link"]: link for link in json.loads(result.stdout)["links"]}
    assert links["artefact"]["status"] == "verified", links["artefact"]
    assert "(in its bag)" in links["artefact"]["summary"]


def test_fixity_text_says_what_it_checked_and_lists_retention(archived: Env):
    full = ok(archived.run("fixity")).stdout
    assert "credit-risk@1  archive/credit-risk/1  retain until 20" in full
    assert "full: every hash checked" in full
    fast = ok(archived.run("fixity", "--fast")).stdout
    assert "sizes and file counts checked, not hashes" in fast


def test_fixity_flags_retention_due_within_twelve_months(archived: Env):
    info = bag(archived) / "bag-info.txt"
    # A bag whose retention ends in 200 days: due within twelve months.
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC).date() + timedelta(days=200)).isoformat()
    text = info.read_text(encoding="utf-8")
    start = text.index("Retain-Until:")
    end = text.index("\n", start)
    info.write_text(text[:start] + f"Retain-Until: {soon}" + text[end:], encoding="utf-8")
    report = json.loads(archived.run("fixity", "--json", "--fast").stdout)
    assert report["bags"][0]["due_within_12_months"] is True


def test_fixity_reports_a_bag_no_ledger_event_records(archived: Env):
    import shutil

    stray = archived.root / "archive" / "credit-risk" / "9"
    shutil.copytree(bag(archived), stray)
    result = archived.run("fixity", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(f["code"], f["where"]) for f in report["findings"]] == [
        ("RB806", "archive/credit-risk/9")
    ]


def test_models_shows_the_bag_and_the_retention_date(archived: Env):
    import openpyxl

    from regbook.check.bags import read_bag_info
    from regbook.core.schema import MODELS

    ws = openpyxl.load_workbook(archived.workbook)[MODELS.name]
    row = next(r for r in range(2, ws.max_row + 1)
               if ws.cell(row=r, column=1).value == "credit-risk"
               and ws.cell(row=r, column=2).value == 1)  # fmt: skip
    cell = {c.key: ws.cell(row=row, column=i + 1).value for i, c in enumerate(MODELS.columns)}
    assert cell["stage"] == "Archived" and cell["storage"] == "archive/credit-risk/1"
    retain = read_bag_info(bag(archived))["Retain-Until"]
    assert cell["retain_until"].date().isoformat() == retain
    # A hand edit of the date is a workflow finding, like the other workflow cells.
    ws.cell(row=row, column=MODELS.index("retain_until") + 1).value = "2099-01-01"
    ws.parent.save(archived.workbook)
    code, report = verify_json(archived)
    assert code == 1 and codes(report) == {"RB311"}


# --- only the workspace's own storage is emptied (issue 14 item 6) --------------------


def _register_in_place(env: Env, where: Path) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes(b"registered in place\n" * 40)
    ok(env.run(
        "register", "credit-risk", "--storage", str(where), "--data-version", DATA_VERSION,
        "--code-commit", CODE_COMMIT, "--pipeline-run", "run-9", key="sme",
    ))  # fmt: skip
    approve_archive(env, "credit-risk@3")


def test_models_set_to_the_root_by_hand_cannot_delete_an_artefact_on_a_share(
    registered_fast: Env, tmp_path: Path
):
    env = registered_fast
    share = tmp_path / "share" / "model.bin"
    _register_in_place(env, share)
    config = env.root / "regbook.toml"
    config.write_text(config.read_text().replace('models = "models"', 'models = "/"'))
    result = env.run("archive", "credit-risk@3", key="sme")
    assert result.exit_code == 2, result.output
    assert "[paths] models: '/' is outside the workspace" in result.output
    assert share.read_bytes() == b"registered in place\n" * 40
    assert not bag(env, "credit-risk@3").exists()


def test_an_artefact_in_the_workspace_but_outside_models_is_left_in_place(
    registered_fast: Env,
):
    env = registered_fast
    kept = env.root / "share" / "model.bin"
    _register_in_place(env, kept)
    result = ok(env.run("archive", "credit-risk@3", key="sme"))
    assert "copied, left in place" in result.output
    assert kept.read_bytes() == b"registered in place\n" * 40
    assert verify_json(env)[0] == 0


def test_inside_models_does_not_rely_on_the_settings(registered_fast: Env, tmp_path: Path):
    """The guard archive removes by holds even for settings Workspace.load would refuse
    (a Workspace made in code), and for links either way across the models/ boundary."""
    from regbook.check.bags import inside_models
    from regbook.core.workspace import Settings, Workspace

    env = registered_fast
    share = tmp_path / "share"
    share.mkdir()
    (share / "model.bin").write_bytes(b"x")
    own = original(env)
    assert inside_models(env.ws, own)
    for models in ("/", ".", "..", str(tmp_path)):
        ws = Workspace(env.root, Settings(models=models))
        assert not inside_models(ws, share / "model.bin"), models
        assert not inside_models(ws, env.root / "registry.xlsx"), models
    assert not inside_models(env.ws, env.root / "models")
    try:
        (env.root / "models" / "link").symlink_to(share, target_is_directory=True)
        (share / "into-models").symlink_to(own)
    except OSError:
        pytest.skip("symlinks not permitted here")
    assert not inside_models(env.ws, env.root / "models" / "link" / "model.bin")
    assert not inside_models(env.ws, share / "into-models")


# --- every model name register accepts can be archived (issue 14 item 7) ----------------

# Names that look like bag files or manifests: bagit-python reads a manifest's algorithm
# from the bag's whole path, so a folder named tagmanifest-x made it fail.
BAG_LIKE_NAMES = (
    "manifest-x", "tagmanifest-x", "x.manifest-sha256.txt", "tagmanifest-sha256.txt",
    "bag-info", "bagit.txt", "data", "a..b", "0", "a_b.c-d", "a" * 64, "z" + "._-" * 21,
)  # fmt: skip


def _independently_valid(root: Path, tmp_path: Path) -> None:
    """The bag checked without regbook: bagit's validator (from a path without
    "manifest-" in it, which it would misread) and ``sha256sum -c``."""
    neutral = tmp_path / "neutral" / "bag"
    shutil.rmtree(neutral.parent, ignore_errors=True)
    shutil.copytree(root, neutral)
    bagit.Bag(str(neutral)).validate()
    if shutil.which("sha256sum"):
        for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
            check = subprocess.run(
                ["sha256sum", "-c", manifest], cwd=root, capture_output=True, text=True
            )
            assert check.returncode == 0, check.stdout + check.stderr


def test_every_kind_of_model_name_archives_retrieves_and_verifies(
    registered_fast: Env, tmp_path: Path
):
    env = registered_fast
    cwd = os.getcwd()
    for name in BAG_LIKE_NAMES:
        ok(env.register(name))
        approve_archive(env, f"{name}@1")
        result = env.run("archive", f"{name}@1", key="sme")
        assert result.exit_code == 0, (name, result.output)
        assert os.getcwd() == cwd  # bagit changes directory; nothing may leave it changed
        _independently_valid(bag(env, f"{name}@1"), tmp_path)
        out = tmp_path / "restored" / name
        ok(env.run("retrieve", f"{name}@1", "--to", str(out)))
        assert [p.read_bytes() for p in out.iterdir()] == [
            p.read_bytes() for p in (bag(env, f"{name}@1") / "data").iterdir()
        ]
    code, report = verify_json(env)
    assert code == 0, report["findings"]
    for mode in ((), ("--fast",)):
        fixed = json.loads(ok(env.run("fixity", "--json", *mode)).stdout)
        assert fixed["ok"] and fixed["checked"] == len(BAG_LIKE_NAMES), fixed["findings"]
    assert env.register("-x").exit_code == 2  # the grammar's one refusal here: no leading -


def test_a_bag_under_any_name_and_any_folder_validates(tmp_path: Path):
    """The bag code against the whole name grammar, in a folder whose own path holds
    "tagmanifest-" (a workspace under such a folder is as likely as such a model)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from regbook.check.bags import validate_bag, write_tagmanifest
    from regbook.core.schema import MODEL_NAME_RE

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.from_regex(MODEL_NAME_RE, fullmatch=True))
    def check(name: str) -> None:
        base = tmp_path / "tagmanifest-sha256.txt-ws" / "archive"
        shutil.rmtree(base, ignore_errors=True)
        root = base / name / "1"
        root.mkdir(parents=True)
        (root / f"{name}.bin").write_bytes(name.encode() * 3)
        bagit.make_bag(str(root), {"External-Identifier": f"{name}@1"}, checksums=["sha256"])
        (root / "ledger-events.jsonl").write_text("{}\n")
        write_tagmanifest(root)
        assert validate_bag(root) == [] and validate_bag(root, fast=True) == []
        (root / "bag-info.txt").write_text("Payload-Oxum: 1.1\n")
        assert validate_bag(root, fast=True)  # and a broken one still fails

    check()


# --- no symbolic links in a bag (issue 14 item 7) ----------------------------------------

TAG_FILES = (
    "bag-info.txt", "manifest-sha256.txt", "bagit.txt", "ledger-events.jsonl",
    "allowed_signers", "model-card.md", "tagmanifest-sha256.txt", "tagmanifest-sha256.txt.sig",
)  # fmt: skip


def _link_to_a_copy(root: Path, name: str, elsewhere: Path) -> None:
    """Replace ``root/name`` by a symlink to an identical copy outside the bag: every
    digest still matches, but the bag no longer holds what it vouches for."""
    copy = elsewhere / name.replace("/", "_")
    elsewhere.mkdir(exist_ok=True)
    shutil.move(root / name, copy)
    try:
        (root / name).symlink_to(copy, target_is_directory=copy.is_dir())
    except OSError:
        pytest.skip("symlinks not permitted here")


def _rb802_naming(report: dict, name: str) -> list[dict]:
    return [
        f for f in report["findings"]
        if f["code"] == "RB802" and f"{name} is a symbolic link" in f["message"]
    ]  # fmt: skip


@pytest.mark.parametrize("name", TAG_FILES)
def test_a_tag_file_replaced_by_a_symlink_is_refused(archived: Env, tmp_path: Path, name: str):
    _link_to_a_copy(bag(archived), name, tmp_path / "copies")
    for args in ((), ("--no-artefacts",)):
        code, report = verify_json(archived, *args)
        assert code == 1 and _rb802_naming(report, name), (args, report["findings"])
    for args in ((), ("--fast",)):
        report = json.loads(archived.run("fixity", "--json", *args).stdout)
        assert not report["ok"] and _rb802_naming(report, name), (args, report["findings"])
    result = archived.run("retrieve", REF, "--to", str(tmp_path / "out"))
    assert result.exit_code == 1 and f"{name} is a symbolic link" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["payload-file", "data-folder"])
def test_a_payload_symlink_is_refused(archived: Env, tmp_path: Path, where: str):
    root = bag(archived)
    name = "data" if where == "data-folder" else f"data/{next((root / 'data').iterdir()).name}"
    _link_to_a_copy(root, name, tmp_path / "copies")
    code, report = verify_json(archived)
    assert code == 1 and _rb802_naming(report, name), report["findings"]
    for args in ((), ("--fast",)):
        report = json.loads(archived.run("fixity", "--json", *args).stdout)
        assert not report["ok"] and _rb802_naming(report, name), (args, report["findings"])
    assert archived.run("retrieve", REF, "--to", str(tmp_path / "out")).exit_code == 1


def test_the_copy_into_a_bag_follows_no_symlink(tmp_path: Path):
    """archive copies the artefact as hashing opens it: a symlink swapped in after the
    hash was checked is refused, not followed into the bag."""
    from regbook.core.errors import InputError
    from regbook.storage.hashing import progress_bar
    from regbook.workflow.archive import _counting_copy

    real = tmp_path / "model.bin"
    real.write_bytes(b"the sealed bytes")
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"the sealed bytes")
    swapped = tmp_path / "swapped.bin"
    swapped.symlink_to(elsewhere)
    copy = _counting_copy(progress_bar(False, 0, "copy"))
    copy(real, tmp_path / "copy.bin")
    with pytest.raises(InputError, match="symlink"):
        copy(swapped, tmp_path / "copy2.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"the sealed bytes"
