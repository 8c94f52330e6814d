"""Evidence reports: every section with real values, problems shown at the top, HTML
with no external references, a golden Markdown file, other suffixes refused. The PDF
format has its own tests (test_report_pdf)."""

from __future__ import annotations

import html as htmllib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import edit_workbook, run
from factory import PASSING, TO_PRODUCTION, Built, Version, build
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.registry.snapshot import open_registry
from regbook.reports import evidence as reports

GOLDENS = Path(__file__).parent / "assets" / "goldens"
CODE_URL = "https://git.example.com/risk/credit-risk.git"
DATA_URL = "https://git.example.com/risk/credit-data.git"
TIMES = (
    "2026-01-10T09:00:00Z",  # register credit-risk@1
    "2026-01-11T09:00:00Z",  # approve Staging
    "2026-01-11T10:00:00Z",  # promote Staging
    "2026-01-11T11:00:00Z",  # gate
    "2026-01-12T09:00:00Z",  # approve Production
    "2026-01-12T10:00:00Z",  # promote Production
)
REPORT_TIME = "2026-02-01T12:00:00Z"


def build_production(base: Path) -> Built:
    """credit-risk@1 taken to Production on fixed dates with fixed keys; repositories
    recorded as URLs (not available here), so the trace is the same everywhere."""
    return build(base, [Version(
        artefact=b"a trained model\n" * 500, name="model.pkl", pipeline_run="train-0042",
        code_repo=CODE_URL, data_repo=DATA_URL, params={"max_depth": "6"}, metrics=PASSING,
        trained_on="2026-01-09",  # fixed: the default is today, which moves the goldens
    )], TO_PRODUCTION, times=TIMES, fixed_keys=True)  # fmt: skip


def write_report(root: Path, name: str) -> tuple[object, str]:
    out = root.parent / name
    result = run(root, "report", "evidence", "credit-risk@1", "-o", str(out))
    return result, out.read_text(encoding="utf-8") if out.exists() else ""


def sections(text: str, headings: list[str]) -> None:
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions), "sections out of order"


# --- content ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evidence.md", "evidence.html"])
def test_every_section_has_real_values(prod: Path, name: str):
    ws = Workspace.load(prod)
    data = reports.evidence_data(open_registry(ws), ModelRef.parse("credit-risk@1"))
    result, text = write_report(prod, name)
    assert result.exit_code == 0, result.output
    text = htmllib.unescape(text)
    sections(text, ["Identity", "Artefact integrity", "Provenance chain",
                    "Metrics and validation gates", "Stage history and approvals",
                    "Archive and retention", "Verify findings", "Ledger head"])  # fmt: skip
    assert data["identity"]["stage"] == "Production"
    assert data["identity"]["deployed_on"] == "2026-01-12"
    for value in (data["identity"]["composite_id"], data["artefact"]["content_hash"],
                  "models/credit-risk/1/model.pkl", "2026-01-10T09:00:00Z", "2026-01-12",
                  "Production", REPORT_TIME, data["footer"]["ledger_head"],
                  data["footer"]["keyring_sha256"], "Not archived", "None.",
                  ">= 0.75", ">= 0.8", "== 0", "0.83", "PASS"):  # fmt: skip
        assert value in text, value
    assert data["artefact"]["ok"] and data["problems"]["count"] == 0
    assert len(data["footer"]["ledger_head"]) == 64
    approvals = [a for h in data["history"] for a in h["approvals"]]
    assert [(a["principal"], a["role"]) for a in approvals] == [
        ("alice@example.com", "sme"), ("gina@example.com", "governance-lead")]  # fmt: skip
    for a in approvals:
        assert a["verified"] is True
        assert a["fingerprint"].startswith("SHA256:") and a["fingerprint"] in text
        assert a["principal"] in text
    assert [link["name"] for link in data["provenance"]][:3] == [
        "composite ID", "sealed version", "artefact"]  # fmt: skip
    for link in data["provenance"]:
        assert link["name"] in text and link["status"] in text
    assert str(prod) not in text


def test_signature_not_verified_shows_no(prod: Path):
    """An approval whose key has left the keyring is shown, marked 'no'."""
    ws = Workspace.load(prod)
    keyring = ws.keyring_path.read_text(encoding="utf-8").splitlines()
    ws.keyring_path.write_text(
        "\n".join(line for line in keyring if "gina@" not in line) + "\n", encoding="utf-8"
    )
    data = reports.evidence_data(open_registry(ws), ModelRef.parse("credit-risk@1"))
    production = next(h for h in data["history"] if h["to"] == "Production")
    assert production["approvals"][0]["verified"] is False
    assert data["problems"]["count"] > 0
    md = reports.render_markdown(data)
    assert "| gina@example.com | governance-lead |" in md and "| no |" in md


def tamper_code_commit(root: Path) -> None:
    from regbook.core.schema import MODELS

    def change(wb):
        wb[MODELS.name].cell(row=2, column=MODELS.index("code_commit") + 1, value="f" * 40)

    edit_workbook(root / "registry.xlsx", change)


@pytest.mark.parametrize("name", ["evidence.md", "evidence.html"])
def test_findings_shown_at_the_top(prod: Path, name: str):
    tamper_code_commit(prod)
    result, text = write_report(prod, name)
    assert result.exit_code == 1, result.output
    assert re.search(r"\d+ problems? found", result.output)
    banner = text.index("PROBLEMS FOUND")
    assert banner < text.index("Identity") < text.index("Verify findings")
    top = text[banner : text.index("Identity")]
    assert "RB301" in top and "code commit changed after sealing" in top
    assert "None." not in text[text.index("Verify findings") :]
    assert "No problems found" not in text


def test_clean_report_says_no_problems(prod: Path):
    data = reports.evidence_data(
        open_registry(Workspace.load(prod)), ModelRef.parse("credit-risk@1")
    )
    for text in (reports.render_markdown(data), reports.render_html(data)):
        assert "No problems found" in text and "PROBLEMS FOUND" not in text


# --- HTML -------------------------------------------------------------------------------


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN201
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster"):
                self.refs.append((tag, name, value or ""))


def test_html_is_self_contained(prod: Path):
    result, text = write_report(prod, "evidence.html")
    assert result.exit_code == 0, result.output
    parser = _References()
    parser.feed(text)
    external = [r for r in parser.refs
                if r[2].strip().lower().startswith(("http:", "https:", "//"))]  # fmt: skip
    assert external == []
    assert "link" not in parser.tags and "script" not in parser.tags
    assert "img" not in parser.tags
    assert "@import" not in text and "url(" not in text
    assert "@page" in text and "size: A4" in text and "break-before: page" in text
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:;" in text


def test_html_values_are_escaped():
    data = {
        "title": "Evidence report: x@1",
        "problems": {"count": 1, "findings": [{"code": "RB301", "severity": "error",
                     "where": "Models!U2", "message": "<script>alert(1)</script>"}],
                     "broken_links": [], "ready": False, "verification": "v",
                     "gate": "Gate: <i>FAIL</i>", "stage": None},
        "identity": {"model": "x", "version": 1, "composite_id": "<b>id</b>", "stage": "None",
                     "registered_at": "t", "registered_by": "a&b", "deployed_on": None},
        "artefact": {"content_hash": "h", "storage": "s", "checked_at": "t", "ok": True,
                     "problems": []},
        "provenance": [], "history": [], "archive": {"archived": False},
        "evaluation": {"metrics": [], "gates": [], "gate": None},
        "findings": [],
        "footer": {"generated_at": "t", "regbook_version": "0", "ledger_head": "",
                   "keyring_sha256": "k", "registry_id": ""},
    }  # fmt: skip
    html = reports.render_html(data)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>id</b>" not in html and "a&amp;b" in html
    md = reports.render_markdown(data)
    assert "<script>alert(1)</script>" in md  # Markdown is text; the HTML is the one escaped


# --- golden -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (("evidence", "credit-risk@1"), "evidence-credit-risk-1.md"),
        (("card", "credit-risk@1"), "card-credit-risk-1.md"),
        (("registry",), "registry.md"),
    ],
)
def test_markdown_golden(
    prod: Path, request: pytest.FixtureRequest, command: tuple[str, ...], name: str
):
    out = prod.parent / name
    result = run(prod, "report", *command, "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    golden = GOLDENS / name
    if request.config.getoption("--update-goldens"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), "no golden yet: run pytest with --update-goldens"
    assert text == golden.read_text(encoding="utf-8")


# --- refusals ---------------------------------------------------------------------------


def test_other_suffix_and_unknown_version_refused(prod: Path):
    result = run(prod, "report", "evidence", "credit-risk@1", "-o", str(prod.parent / "e.txt"))
    assert result.exit_code == 2 and ".md, .html or .pdf" in result.output
    out = prod.parent / "e.md"
    result = run(prod, "report", "evidence", "credit-risk@9", "-o", str(out))
    assert result.exit_code == 2 and "no such sealed version" in result.output
    assert not out.exists()


def test_archived_version_shows_bag_and_retention(prod: Path):
    from regbook.check.bags import read_bag_info
    from regbook.crypto.keys import load_private_key
    from regbook.workflow.archive import archive
    from regbook.workflow.governance import approve

    ws = Workspace.load(prod)
    ref = ModelRef.parse("credit-risk@1")
    lead = load_private_key(prod.parent / "keys" / "governance-lead")
    approve(ws, ref, "Archived", lead, note="superseded")
    archive(ws, ref, lead)
    data = reports.evidence_data(open_registry(ws), ref)
    retain = read_bag_info(prod / "archive" / "credit-risk" / "1")["Retain-Until"]
    assert data["archive"] == {
        "archived": True,
        "bag": "archive/credit-risk/1",
        "archived_at": data["archive"]["archived_at"],
        "retain_until": retain,
        "bag_retain_until": retain,
    }
    assert data["identity"]["stage"] == "Archived" and data["artefact"]["ok"]
    for text in (reports.render_markdown(data), reports.render_html(data)):
        assert "archive/credit-risk/1" in text and retain in text
        assert "Not archived" not in text
