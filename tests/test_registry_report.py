"""The registry description: the rules it states are the workspace's own (change
regbook.toml and they change), the keyring and the Production versions come from the
workspace and the ledger, problems are at the top, and HTML is escaped."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest

from conftest import run, snapshot
from regbook.core.workspace import Workspace
from regbook.crypto.keys import load_keyring
from regbook.registry.snapshot import open_registry
from regbook.reports.registry import registry_data
from test_reports import REPORT_TIME, tamper_code_commit


def sign_policy(root: Path) -> None:
    """The governance lead signs regbook.toml's policy into the ledger: only then is it
    in force, and only the policy in force is what the description states."""
    result = run(root, "policy", "sign", key=root.parent / "keys" / "governance-lead")
    assert result.exit_code == 0, result.output


def write(root: Path, name: str, *extra: str) -> tuple[object, str]:
    out = root.parent / name
    result = run(root, "report", "registry", "-o", str(out), *extra)
    return result, out.read_text(encoding="utf-8") if out.exists() else ""


def row(text: str, first_cell: str) -> str:
    """The Markdown table row that starts with ``first_cell``."""
    lines = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(lines) == 1, (first_cell, lines)
    return lines[0]


def test_production_versions_with_their_tags(prod: Path):
    result, md = write(prod, "registry.md")
    assert result.exit_code == 0, result.output
    data = registry_data(open_registry(Workspace.load(prod)))
    assert [v["version"] for v in data["production"]] == [1]
    tags = data["production"][0]
    line = row(md, "credit-risk")
    for value in (tags["composite_id"], tags["content_hash"], tags["data_version"],
                  tags["code_commit"], "train-0042", "gina@example.com (governance-lead)",
                  "PASS", "2026-01-12"):  # fmt: skip
        assert value in line, value
    assert "No problems found" in md and "PROBLEMS FOUND" not in md
    assert f"Generated {REPORT_TIME}" in md
    assert data["footer"]["keyring_sha256"] in md and data["footer"]["ledger_head"] in md
    assert f"--keyring-sha256 {data['footer']['keyring_sha256']}" in md


def test_keyring_principals_roles_and_fingerprints(prod: Path):
    from regbook.registry.views import keys_values

    _, md = write(prod, "registry.md")
    keys = keys_values(load_keyring(Workspace.load(prod)))
    assert len(keys) == 3
    for key in keys:
        line = row(md, key["principal"])
        assert key["roles"] in line and key["fingerprint"] in line


def test_rules_are_read_from_regbook_toml(prod: Path):
    _, before = write(prod, "before.md")
    assert row(before, "None → Staging").startswith("| None → Staging | sme, governance-lead |")
    assert "`auc_roc >= 0.75`" in before and "archived for 10 years" in before
    config = prod / "regbook.toml"
    text = config.read_text()
    for old, new in (
        ('"None->Staging" = ["sme", "governance-lead"]', '"None->Staging" = ["governance-lead"]'),
        ('performance = "auc_roc >= 0.75"',
         'performance = "auc_roc >= 0.9"\nrecall = "recall > 0.6"'),
        ("years = 10", "years = 12"),
    ):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    # Not signed yet: the policy in force is still the old one, and the edited file is
    # a problem the report states first (the retention period is no policy setting).
    result, unsigned = write(prod, "unsigned.md", "--no-artefacts")
    assert result.exit_code == 1, result.output
    assert unsigned.index("PROBLEMS FOUND") < unsigned.index("Role in the architecture")
    assert "RB117" in unsigned and "RB505" not in unsigned
    assert row(unsigned, "None → Staging").startswith("| None → Staging | sme, governance-lead |")
    assert "`auc_roc >= 0.75`" in unsigned and "`auc_roc >= 0.9`" not in unsigned
    assert "archived for 12 years" in unsigned
    sign_policy(prod)
    result, after = write(prod, "after.md", "--no-artefacts")
    # stricter thresholds than those credit-risk@1 was gated under: its PASS no longer
    # holds, and the report says so first (its sme approval was right under the policy
    # in force when it was signed)
    assert result.exit_code == 1, result.output
    assert after.index("PROBLEMS FOUND") < after.index("Role in the architecture")
    assert "RB505" in after and "RB117" not in after
    assert row(after, "None → Staging").startswith("| None → Staging | governance-lead |")
    assert "`auc_roc >= 0.9`" in after and "`auc_roc >= 0.75`" not in after
    assert row(after, "recall") == "| recall | `recall > 0.6` |"
    assert "archived for 12 years" in after and "10 years" not in after
    # Production is always carried out by ci, whatever the approvers
    assert "| ci (`regbook promote`) |" in row(after, "Staging → Production")


def test_no_production_version_says_so(registered_fast):
    result, md = write(registered_fast.root, "r.md")
    assert result.exit_code == 0, result.output
    assert "| (no version is in Production) |" in md
    assert "versions of 1 model: " in md and ", 0 Production, 0 Archived." in md


@pytest.mark.parametrize("name", ["registry.md", "registry.html"])
def test_problems_are_at_the_top(prod: Path, name: str):
    tamper_code_commit(prod)
    result, text = write(prod, name)
    assert result.exit_code == 1, result.output
    assert re.search(r"\d+ problems? found", result.output)
    text = htmllib.unescape(text)
    banner = text.index("PROBLEMS FOUND: 1.")
    assert banner < text.index("Role in the architecture") < text.index("Verify findings")
    assert "RB301" in text[banner : text.index("Role in the architecture")]


def test_html_is_escaped_and_self_contained(prod: Path):
    config = prod / "regbook.toml"
    hostile = '"<script>alert(1)</script>" = "auc_roc >= 0.5"'
    old = 'performance = "auc_roc >= 0.75"'
    config.write_text(config.read_text().replace(old, f"{old}\n{hostile}"))
    sign_policy(prod)
    result, page = write(prod, "registry.html")
    assert result.exit_code == 0, result.output
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page
    assert "http://" not in page and "https://" not in page


@pytest.mark.parametrize("name", ["registry.pdf", "registry.txt", "registry"])
def test_bad_suffix_is_refused_and_nothing_written(prod: Path, name: str):
    before = snapshot(prod.parent)
    result, _ = write(prod, name)
    assert result.exit_code == 2, result.output
    assert "the registry description is a .md or .html file" in result.output
    assert snapshot(prod.parent) == before


def test_key_status_follows_the_validity_window(prod: Path):
    ring = prod / "allowed_signers"
    text = ring.read_text()
    old = 'ci@example.com namespaces="regbook-ci"'
    assert old in text
    ring.write_text(
        text.replace(old, 'ci@example.com valid-before="20260115",namespaces="regbook-ci"')
    )
    _, md = write(prod, "registry.md", "--no-artefacts")
    assert row(md, "ci@example.com").endswith("| 2026-01-15T00:00:00Z | expired |")
    assert row(md, "alice@example.com").endswith("| - | - | valid |")


def test_an_empty_registry_is_described(tmp_path: Path):
    from regbook.workflow.setup import init_workspace

    root = init_workspace(tmp_path / "ws").root
    result, md = write(root, "registry.md")
    assert result.exit_code == 0, result.output
    assert "0 versions of 0 models" in md and "| (no version is in Production) |" in md
    assert "| (the keyring is empty: nobody can sign) |" in md
    assert "Ledger head: `(empty ledger)`." in md


def test_writing_it_changes_nothing_in_the_workspace(prod: Path):
    before = snapshot(prod)
    result, _ = write(prod, "registry.html")
    assert result.exit_code == 0, result.output
    assert snapshot(prod) == before


def test_a_missing_output_folder_is_refused(prod: Path):
    before = snapshot(prod.parent)
    result = run(prod, "report", "registry", "-o", str(prod.parent / "nowhere" / "r.md"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert snapshot(prod.parent) == before
