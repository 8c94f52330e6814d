"""The PDF evidence report, read back with pypdf: the same facts as the other formats,
problems at the top of page one, "Page N of M" on every page, A4, metadata, long values
wrapped, and text outside the embedded fonts printed visibly as [U+XXXX]."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from conftest import run
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.registry.snapshot import open_registry
from regbook.render.pdf import render_pdf, text
from regbook.reports import evidence as reports
from test_reports import REPORT_TIME, tamper_code_commit

A4 = (595.28, 841.89)  # points


def write_pdf(root: Path) -> tuple[object, Path]:
    out = root.parent / "evidence.pdf"
    result = run(root, "report", "evidence", "credit-risk@1", "-o", str(out))
    return result, out


def pages(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(path).pages]


def flat(page_text: str) -> str:
    """Page text with the line breaks of wrapped table cells taken out."""
    return "".join(page_text.split())


def test_pdf_holds_the_report(prod: Path):
    result, out = write_pdf(prod)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-")
    data = reports.evidence_data(
        open_registry(Workspace.load(prod)), ModelRef.parse("credit-risk@1")
    )
    texts = pages(out)
    whole = "\n".join(texts)
    squashed = flat(whole)
    for value in (data["identity"]["composite_id"], data["artefact"]["content_hash"],
                  data["footer"]["ledger_head"], data["footer"]["keyring_sha256"],
                  data["footer"]["registry_id"],
                  "models/credit-risk/1/model.pkl", REPORT_TIME, "Not archived.", "None.",
                  ">= 0.75", "0.83"):  # fmt: skip
        assert flat(value) in squashed, value
    assert "No problems found" in texts[0] and "PROBLEMS FOUND" not in whole
    approvals = [a for h in data["history"] for a in h["approvals"]]
    assert len(approvals) == 2
    for a in approvals:
        for value in (a["principal"], a["role"], a["fingerprint"], a["at"], a["note"]):
            assert flat(value) in squashed, value
    headings = ["Identity", "Artefact integrity", "Provenance chain",
                "Metrics and validation gates", "Stage history and approvals",
                "Archive and retention", "Verify findings", "Ledger head"]  # fmt: skip
    positions = [whole.index(h) for h in headings]
    assert positions == sorted(positions)
    assert str(prod) not in whole


def test_every_page_numbered_a4_with_metadata(prod: Path):
    result, out = write_pdf(prod)
    assert result.exit_code == 0, result.output
    reader = PdfReader(out)
    count = len(reader.pages)
    assert count >= 2  # the Production report runs past one page
    for number, page in enumerate(reader.pages, start=1):
        assert f"Page {number} of {count}" in page.extract_text()
        size = (float(page.mediabox.width), float(page.mediabox.height))
        assert size == pytest.approx(A4, abs=0.5)
    assert reader.metadata.title == "Evidence report: credit-risk@1"
    assert reader.metadata.creation_date == datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    assert reader.metadata.creator.startswith("regbook ")


def test_findings_banner_on_page_one_and_exit_1(prod: Path):
    tamper_code_commit(prod)
    result, out = write_pdf(prod)
    assert result.exit_code == 1, result.output
    assert re.search(r"\d+ problems? found", result.output)
    first = pages(out)[0]
    banner = first.index("PROBLEMS FOUND")
    identity = first.index("Identity")
    assert banner < identity
    top = first[banner:identity]
    assert "RB301" in top and "code commit changed after sealing" in " ".join(top.split())
    assert "No problems found" not in "\n".join(pages(out))


def test_non_latin1_text_printed_or_shown_as_code_points(prod: Path):
    """Latin, Greek and Cyrillic print as written; a character no embedded font has
    (CJK, emoji) is printed as [U+XXXX], never dropped."""
    from regbook.crypto.keys import load_private_key
    from regbook.workflow.governance import approve

    ws = Workspace.load(prod)
    lead = load_private_key(prod.parent / "keys" / "governance-lead")
    note = "geprüft von Łukasz, Ωμέγα, Иван; 审核 ✅"
    approve(ws, ModelRef.parse("credit-risk@1"), "Archived", lead, note=note)
    result, out = write_pdf(prod)
    assert result.exit_code == 0, result.output
    squashed = flat("\n".join(pages(out)))
    assert "geprüftvonŁukasz,Ωμέγα,Иван;[U+5BA1][U+6838][U+2705]" in squashed
    assert "审" not in squashed and "\N{WHITE HEAVY CHECK MARK}" not in squashed


def test_text_replacement_rules():
    assert text(None) == "-" and text("") == "-"
    assert text("Zoë Ωμέγα Иван") == "Zoë Ωμέγα Иван"
    assert text("模型") == "[U+6A21][U+578B]"
    assert text("a\u0007b\nc") == "a b\nc"
    assert text("\U0001f600") == "[U+1F600]"


def minimal_data(**changes) -> dict:
    data = {
        "title": "Evidence report: x@1",
        "problems": {"count": 0, "findings": [], "broken_links": [], "ready": False,
                     "verification": "Verification: ok.", "gate": "Gate: none.",
                     "stage": "Stage: None, not Production."},
        "identity": {"model": "x", "version": 1, "composite_id": "x@1+abc", "stage": "None",
                     "registered_at": "2026-01-01T00:00:00Z", "registered_by": "a@example.com",
                     "deployed_on": None},
        "artefact": {"content_hash": "sha256:" + "ab" * 32, "storage": "s", "ok": True,
                     "checked_at": "2026-01-02T00:00:00Z", "problems": []},
        "provenance": [], "history": [], "archive": {"archived": False},
        "evaluation": {"metrics": [], "gates": [], "gate": None},
        "findings": [],
        "footer": {"generated_at": "2026-01-02T00:00:00Z", "regbook_version": "0",
                   "ledger_head": "", "keyring_sha256": "k" * 64, "registry_id": "r" * 36},
    }  # fmt: skip
    for section, values in changes.items():
        data[section].update(values)
    return data


def test_long_unbroken_values_wrap(tmp_path: Path):
    """No space nor hyphen to break at: the value is cut by character, not left to run
    off the page, and every character is still there."""
    long_value = "0123456789abcdef" * 16
    out = tmp_path / "e.pdf"
    out.write_bytes(render_pdf(minimal_data(artefact={"storage": long_value})))
    whole = "\n".join(pages(out))
    holding = [line for line in whole.splitlines() if "0123456789abcdef" in line]
    assert len(holding) >= 3, "a long value should wrap over several lines"
    assert long_value in flat(whole)
    assert "(empty ledger)" in whole


def test_fpdf_is_imported_only_when_a_pdf_is_made():
    code = (
        "import sys, regbook.cli, regbook.reports.evidence; "
        "print(any(m.split('.')[0] in ('fpdf', 'pymupdf_fonts') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
