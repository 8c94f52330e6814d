"""Evidence packs: every file there, the manifest checked by stock sha256sum, the
signatures re-checked by stock ssh-keygen, problems never hidden, bad input refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from conftest import run, snapshot
from test_reports import REPORT_TIME, tamper_code_commit

FOLDER = "credit-risk-1-evidence"
FILES = {"README.txt", "evidence.html", "evidence.pdf", "model-card.md", "provenance.json",
         "registry.xlsx", "allowed_signers", "MANIFEST.sha256",
         "signatures/verify-signatures.sh", "signatures/events.tsv",
         "signatures/allowed_signers"}  # fmt: skip


def write_pack(root: Path, *extra: str):
    out = root.parent / "pack.zip"
    return run(root, "report", "pack", "credit-risk@1", "-o", str(out), *extra), out


def unpack(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert all(n.startswith(f"{FOLDER}/") for n in names), names
        archive.extractall(dest)
    folder = dest / FOLDER
    (folder / "signatures" / "verify-signatures.sh").chmod(0o755)
    return folder


def test_pack_holds_every_file_and_sha256sum_checks_it(prod: Path, tmp_path: Path):
    result, out = write_pack(prod, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    folder = unpack(out, tmp_path / "unzipped")
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert FILES <= names
    events = sorted(n for n in names if n.startswith("signatures/events/"))
    # nine ledger events (3 keyring events, 1 registration, 5 workflow), each with its .sig
    assert len(events) == 2 * 9
    assert set(summary["files"]) == names
    assert summary["composite_id"].startswith("credit-risk@1+")

    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = (folder / "MANIFEST.sha256").read_text().splitlines()
    listed = {line.split("  ", 1)[1] for line in manifest}
    assert listed == names - {"MANIFEST.sha256"}

    # the copies are the workspace's own bytes
    assert (folder / "registry.xlsx").read_bytes() == (prod / "registry.xlsx").read_bytes()
    assert (folder / "allowed_signers").read_bytes() == (prod / "allowed_signers").read_bytes()
    # the signatures re-check with stock ssh-keygen
    script = subprocess.run(["sh", "signatures/verify-signatures.sh", "allowed_signers"],
                            cwd=folder, capture_output=True, text=True)  # fmt: skip
    assert script.returncode == 0, script.stdout + script.stderr
    assert "9 event(s) verified, 0 failed" in script.stdout


def test_pack_reports_name_the_version_and_its_approvals(prod: Path, tmp_path: Path):
    result, out = write_pack(prod)
    assert result.exit_code == 0, result.output
    folder = unpack(out, tmp_path / "unzipped")
    composite = json.loads((folder / "provenance.json").read_text())["subject"][0]
    composite_id = composite["annotations"]["regbook_compositeId"]
    pdf_text = "\n".join(page.extract_text() for page in PdfReader(folder / "evidence.pdf").pages)
    html = (folder / "evidence.html").read_text(encoding="utf-8")
    card = (folder / "model-card.md").read_text(encoding="utf-8")
    for text in (pdf_text, html, card):
        assert composite_id in text.replace("\n", "")
    for who in ("alice@example.com", "gina@example.com", "ci@example.com"):
        assert who in pdf_text and who in html
    assert REPORT_TIME in html
    readme = (folder / "README.txt").read_text()
    assert "sha256sum -c MANIFEST.sha256" in readme and "PROBLEMS" not in readme


def test_tampering_after_packing_is_caught_by_sha256sum(prod: Path, tmp_path: Path):
    result, out = write_pack(prod)
    assert result.exit_code == 0, result.output
    folder = unpack(out, tmp_path / "unzipped")
    card = folder / "model-card.md"
    card.write_text(card.read_text() + "edited afterwards\n")
    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 1
    assert "model-card.md: FAILED" in check.stdout


def test_a_version_with_findings_still_gets_its_pack_saying_so(prod: Path, tmp_path: Path):
    tamper_code_commit(prod)
    result, out = write_pack(prod)
    assert result.exit_code == 1, result.output
    assert re.search(r"\d+ problems? found", result.output)
    folder = unpack(out, tmp_path / "unzipped")
    assert "PROBLEMS: verify found 1 problem;" in (folder / "README.txt").read_text()
    html = (folder / "evidence.html").read_text(encoding="utf-8")
    assert html.index("RB301") < html.index("Identity")
    first_page = PdfReader(folder / "evidence.pdf").pages[0].extract_text()
    assert "RB301" in first_page


@pytest.mark.parametrize(
    ("target", "output", "message"),
    [
        ("credit-risk@1", "pack.tar", "an evidence pack is a .zip file"),
        ("credit-risk", "pack.zip", "is not MODEL@VERSION"),
        ("credit-risk@9", "pack.zip", "credit-risk@9"),
        ("credit-risk@1", "no-such-folder/pack.zip", "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    prod: Path,
    target: str,
    output: str,
    message: str,
):
    before = snapshot(prod.parent)
    result = run(prod, "report", "pack", target, "-o", str(prod.parent / output))
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert snapshot(prod.parent) == before


def test_a_workbook_changed_while_packing_is_refused(
    prod: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    from regbook.reports import export, pack

    real = export.export_provenance

    def provenance_then_edit(snapshot, ref, *args):
        data = real(snapshot, ref, *args)
        book = snapshot.workspace.workbook_path
        shutil.copyfile(book, book.with_suffix(".bak-test"))
        with book.open("ab") as handle:
            handle.write(b"\0")
        return data

    monkeypatch.setattr(pack, "export_provenance", provenance_then_edit)
    result, out = write_pack(prod)
    assert result.exit_code == 2, result.output
    assert "changed while the pack was made" in result.output
    assert not out.exists()
