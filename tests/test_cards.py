"""Model cards: every section with real values or "not documented", the SME's text
escaped in HTML, problems at the top, the Cards sheet's edge cases, and the card in the
archive bag (checked with bagit's own validator)."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import bagit
import pytest

from conftest import CODE_COMMIT, DATA_VERSION, Env, edit_workbook
from regbook.core.ids import ModelRef
from regbook.core.schema import CARDS, LEDGER, MODELS
from regbook.ledger.events import read_events
from regbook.registry.snapshot import CARD_SHEETS, open_registry
from regbook.render import card as card_text
from regbook.reports import card as cards
from regbook.workbook.read import read_workbook
from regbook.workflow import archive as archiving

REF = "credit-risk@1"
HEADINGS = ["Model details", "Intended use", "Out-of-scope uses", "Training data",
            "Evaluation", "Limitations", "Ethical considerations", "Owners"]  # fmt: skip
PROSE = {
    "intended_use": "Ranks consumer loan applications by default risk for underwriters.",
    "out_of_scope": "Not for employment or insurance decisions.",
    "training_data": "Loan book 2019-2024, 412k applications, EU branches only.",
    "evaluation": "Hold-out 2025 Q1; parity compared across age bands and sex.",
    "limitations": "Degrades for thin-file applicants (fewer than 3 accounts).",
    "ethics": "Sex and age are used only to measure parity, never as features.",
    "owners": "Credit Risk Analytics; model owner dana@example.com",
}


def fill_cards(env: Env, *rows: dict[str, str]) -> None:
    """Type rows into the Cards sheet as an SME would in Excel (row 2 onwards)."""

    def change(wb):
        sheet = wb[CARDS.name]
        for r, values in enumerate(rows, start=2):
            for key, value in values.items():
                sheet.cell(row=r, column=CARDS.index(key) + 1, value=value)

    edit_workbook(env.workbook, change)


def write_card(env: Env, name: str):
    out = env.root.parent / name
    result = env.run("report", "card", REF, "-o", str(out))
    return result, (out.read_text(encoding="utf-8") if out.exists() else None)


def in_order(text: str, headings: list[str]) -> None:
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions), "sections missing or out of order"


@pytest.fixture
def gated(registered_fast: Env) -> Env:
    """credit-risk@1 with a recorded gate result (security FAILs: no scan metric)."""
    result = registered_fast.run("gate", REF, key="ci")
    assert result.exit_code in (0, 1), result.output
    return registered_fast


@pytest.mark.parametrize("name", ["card.md", "card.html"])
def test_every_section_has_real_values(gated: Env, name: str):
    fill_cards(gated, {"model": "credit-risk", **PROSE})
    result, text = write_card(gated, name)
    assert result.exit_code == 0, result.output
    text = htmllib.unescape(text)
    in_order(text, HEADINGS)
    assert card_text.NOT_DOCUMENTED not in text
    data = cards.card_data(open_registry(gated.ws, sheets=CARD_SHEETS), ModelRef.parse(REF))
    assert data["problems"]["count"] == 0 and data["cards"]["status"] == "row"
    for value in PROSE.values():
        assert value in text, value
    for key in PROSE:  # each prose section names its cell
        assert f"{CARDS.ref(key, 2)}, the SME's text in the Cards sheet (not sealed)" in text
    payload = data["details"]["facts"]
    sealed = {f["label"]: f["value"] for f in payload}
    # The registration's ledger event (after the keyring events of the workspace's keys).
    events, _ = read_events(read_workbook(gated.workbook)[LEDGER.name])
    (registration,) = [
        e for e in events if (e.kind, e.model, e.version) == ("register", "credit-risk", 1)
    ]
    assert sealed["Stage"] == "None" and sealed["Registered by"] == "alice@example.com"
    for value in (data["composite_id"], sealed["Content hash"], sealed["Seal"],
                  sealed["Registered at"], CODE_COMMIT, DATA_VERSION, "run-1042",
                  "alice@example.com", "demographic_parity_ratio", "0.91", "fairness",
                  "auc_roc", "0.83", ">= 0.8", ">= 0.75", "PASS", "FAIL",
                  "Latest gate result: ", "signed by ci@example.com",
                  f"the sealed registration, ledger event {registration.seq}, signed by "
                  "alice@example.com"):  # fmt: skip
        assert str(value) in text, value
    assert data["training_data"]["facts"]["rows"][2]["value"] in text  # training date
    # Clean, but its latest gate is FAIL (no security scan): never the green banner.
    assert (
        "No problems found" not in text
        and "Gate: the latest validation gate result is FAIL" in text
    )
    assert "though no problem was found" in text and str(gated.root) not in text


def test_no_cards_row_reads_not_documented_and_keeps_every_section(gated: Env):
    fill_cards(gated, {"model": "fraud", "intended_use": "another model's card"})
    result, text = write_card(gated, "card.md")
    assert result.exit_code == 0, result.output
    assert "has no row for credit-risk" in result.output
    in_order(text, HEADINGS)
    for heading in HEADINGS[1:]:
        body = text.split(f"## {heading}\n\n", 1)[1]
        assert body.startswith(card_text.NOT_DOCUMENTED + "\n"), heading
    assert text.count("\n" + card_text.NOT_DOCUMENTED + "\n") == 7
    assert "another model's card" not in text
    assert DATA_VERSION in text and "0.91" in text  # the sealed facts stay


def test_an_empty_cell_reads_not_documented_and_says_so(registered_fast: Env):
    fill_cards(registered_fast, {"model": " credit-risk ", "owners": "Risk team",
                                 "limitations": "   "})  # fmt: skip
    data = cards.card_data(
        open_registry(registered_fast.ws, sheets=CARD_SHEETS), ModelRef.parse(REF)
    )
    assert data["owners"]["text"] == "Risk team"
    assert data["limitations"] == {"title": "Limitations", "text": None,
                                   "source": f"{CARDS.ref('limitations', 2)} is empty"}  # fmt: skip
    html = card_text.render_card_html(data)
    assert html.count(f'<p class="missing">{card_text.NOT_DOCUMENTED}</p>') == 6
    for section in ("details", "intended-use", "out-of-scope", "training-data", "evaluation",
                    "limitations", "ethics", "owners"):  # fmt: skip
        assert f'<section id="{section}">' in html
    # No gate run: the evaluation still shows the sealed metrics and says "not run".
    assert "<strong>not run</strong>" in html and "demographic_parity_ratio" in html


def test_no_metrics_and_no_prose_still_has_every_section():
    data = {
        "title": "Model card: x@1", "composite_id": "x@1+a.b.c", "context": None,
        "problems": {"count": 0, "findings": [], "ready": False, "verification": "v",
                     "gate": "Gate: no validation gate result is recorded."},
        "cards": {"status": "no-sheet", "notice": "no sheet"},
        "details": {"facts": [{"label": "Stage", "value": None, "code": False}],
                    "source": "s"},
        **{k: {"title": k, "text": None, "source": "s"} for k in card_text.PROSE},
        "footer": {"generated_at": "t", "regbook_version": "0", "ledger_head": "",
                   "keyring_sha256": "k", "registry_id": ""},
    }  # fmt: skip
    data["training_data"]["facts"] = {"rows": [], "source": "s"}
    data["evaluation"].update(metrics=[], gates=[], gate=None, metrics_source="s")
    md = card_text.render_card_markdown(data)
    in_order(md, HEADINGS)
    assert md.count(card_text.NOT_DOCUMENTED) == 8  # seven prose sections and the metrics
    assert "| Stage | not recorded |" in md


def test_html_escapes_the_smes_text_and_markdown_keeps_its_structure(registered_fast: Env):
    evil = "<script>alert(1)</script> & <b>bold</b>"
    fill_cards(registered_fast, {"model": "credit-risk", "intended_use": evil,
                                 "limitations": "# Not a heading\nline two\n---"})  # fmt: skip
    result, html = write_card(registered_fast, "card.html")
    assert result.exit_code == 0, result.output
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    _result, md = write_card(registered_fast, "card.md")
    assert "\\# Not a heading\nline two\n\\---" in md
    assert [line for line in md.splitlines() if line.startswith("#")] == [
        "# Model card: credit-risk@1", *(f"## {h}" for h in HEADINGS)]  # fmt: skip


def test_nothing_typed_into_cards_changes_the_markdown_around_it(registered_fast: Env):
    """Read with a CommonMark parser, as a Markdown viewer would: no HTML the SME typed
    takes effect, and an unclosed code fence swallows none of the sections after it."""
    from markdown_it import MarkdownIt

    fill_cards(registered_fast, {
        "model": "credit-risk",
        "intended_use": "<script>alert(1)</script> <img src=x onerror=alert(2)> <!-- hide",
        "out_of_scope": "```\nan unclosed fence",
        "limitations": "~~~\n<div>block</div>\n   ```python",
    })  # fmt: skip
    result, md = write_card(registered_fast, "card.md")
    assert result.exit_code == 0, result.output
    tokens = MarkdownIt("commonmark").parse(md)
    assert not [t for t in tokens if t.type in ("html_block", "fence", "code_block")]
    inline = [c for t in tokens if t.children for c in t.children]
    assert not [c for c in inline if c.type == "html_inline"]
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["Model card: credit-risk@1", *HEADINGS]
    html = MarkdownIt("commonmark").render(md)
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("name", ["card.md", "card.html"])
def test_findings_shown_at_the_top(registered_fast: Env, name: str):
    def change(wb):
        wb[MODELS.name].cell(row=2, column=MODELS.index("code_commit") + 1, value="f" * 40)

    edit_workbook(registered_fast.workbook, change)
    result, text = write_card(registered_fast, name)
    assert result.exit_code == 1, result.output
    assert re.search(r"\d+ problems? found; the card lists them at the top", result.output)
    top = text[text.index("PROBLEMS FOUND") : text.index("Model details")]
    assert "RB301" in top and "code commit changed after sealing" in top
    assert "No problems found" not in text


def test_bad_suffix_and_unknown_version_refused(registered_fast: Env):
    for name in ("card.pdf", "card.txt", "card"):
        result, text = write_card(registered_fast, name)
        assert result.exit_code == 2, result.output
        assert "model cards are .md or .html files" in result.output
        assert text is None
    out = registered_fast.root.parent / "c.md"
    result = registered_fast.run("report", "card", "credit-risk@9", "-o", str(out))
    assert result.exit_code == 2 and "no such sealed version" in result.output
    assert not out.exists()


def test_two_rows_for_one_model_refused_by_cell(registered_fast: Env):
    fill_cards(registered_fast, {"model": "credit-risk", "owners": "a"}, {"model": "fraud"},
               {"model": "credit-risk", "owners": "b"})  # fmt: skip
    result, text = write_card(registered_fast, "card.md")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "regbook: Cards!A4: a second Cards row for credit-risk (the first is Cards!A2); "
        "keep one row per model"
    )
    assert text is None and "Traceback" not in result.output
    # verify does not read Cards: the rest of regbook is unaffected.
    assert registered_fast.run("verify", "--no-artefacts").exit_code == 0


def test_a_renamed_cards_column_is_refused_only_where_cards_are_read(registered_fast: Env):
    edit_workbook(registered_fast.workbook,
                  lambda wb: wb[CARDS.name].cell(row=1, column=2, value="Purpose"))  # fmt: skip
    result, _text = write_card(registered_fast, "card.md")
    assert result.exit_code == 2 and "Cards!B1: column 'Intended use'" in result.output
    assert registered_fast.run("verify", "--no-artefacts").exit_code == 0


def test_a_workbook_made_before_cards_keeps_working(registered_fast: Env):
    edit_workbook(registered_fast.workbook, lambda wb: wb.remove(wb[CARDS.name]))
    env = registered_fast
    assert env.run("verify").exit_code == 0
    assert env.register().exit_code == 0  # writers too
    assert env.run("list").exit_code == 0
    result, text = write_card(env, "card.md")
    assert result.exit_code == 0, result.output
    assert "has no Cards sheet" in result.output and "has no Cards sheet" in text
    assert text.count("\n" + card_text.NOT_DOCUMENTED + "\n") == 7
    assert "the workbook has no Cards sheet" in text


# --- archive ---------------------------------------------------------------------------


def archive(env: Env) -> Path:
    assert env.run("approve", REF, "--to", "Archived", key="sme").exit_code == 0
    result = env.run("archive", REF, key="sme")
    assert result.exit_code == 0, result.output
    return env.root / "archive" / "credit-risk" / "1"


def test_the_archive_bag_holds_the_card_under_its_signed_tag_manifest(registered_fast: Env):
    fill_cards(registered_fast, {"model": "credit-risk", **PROSE})
    bag = archive(registered_fast)
    card = (bag / "model-card.md").read_text(encoding="utf-8")
    assert card.startswith("# Model card: credit-risk@1\n")
    in_order(card, HEADINGS)
    assert PROSE["ethics"] in card and DATA_VERSION in card
    assert "Written by `regbook archive` into the archive bag of credit-risk@1" in card
    manifest = (bag / "tagmanifest-sha256.txt").read_text(encoding="utf-8")
    assert any(line.endswith(" model-card.md") for line in manifest.splitlines())
    assert "model-card.md" not in (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    parsed = bagit.Bag(str(bag))
    parsed.validate()
    assert "model-card.md" in parsed.tagfile_entries()
    result = registered_fast.run("fixity", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True
    assert registered_fast.run("verify").exit_code == 0
    # A changed card breaks the tag manifest, so fixity and verify catch it.
    (bag / "model-card.md").write_text(card.replace("Sex and age", "Age"), encoding="utf-8")
    assert registered_fast.run("fixity").exit_code == 1
    assert "RB802" in registered_fast.run("verify", "--no-artefacts").output


def test_a_bag_made_before_cards_still_validates(
    registered_fast: Env, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(archiving, "bag_card", lambda snapshot, state: None)
    bag = archive(registered_fast)
    assert not (bag / "model-card.md").exists()
    bagit.Bag(str(bag)).validate()
    assert registered_fast.run("fixity").exit_code == 0
    assert registered_fast.run("verify").exit_code == 0
    result = registered_fast.run("retrieve", REF, "--to", str(registered_fast.root.parent / "r"))
    assert result.exit_code == 0, result.output
    result, text = write_card(registered_fast, "card.md")
    assert result.exit_code == 0 and "| Stage | Archived |" in text


def test_a_cards_problem_refuses_the_archive_before_anything_is_written(registered_fast: Env):
    from conftest import snapshot

    env = registered_fast
    assert env.run("approve", REF, "--to", "Archived", key="sme").exit_code == 0
    fill_cards(env, {"model": "credit-risk"}, {"model": "credit-risk"})
    before = snapshot(env.root)
    result = env.run("archive", REF, key="sme")
    assert result.exit_code == 2
    assert "Cards!A3: a second Cards row for credit-risk" in result.output
    assert snapshot(env.root) == before
    assert not (env.root / "archive" / "credit-risk").exists()
