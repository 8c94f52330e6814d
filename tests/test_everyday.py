"""Everyday use through the command line: file modes on a shared drive, setting up a
workspace, backups that open in Excel, ``resolve`` for deploy scripts, ``log`` and its
git textconv driver, and two writers at once."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import Env, edit_workbook, run
from factory import CODE_COMMIT, DATA_VERSION
from regbook.cli import cli
from regbook.core.schema import LEDGER

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(
    GIT is None and not os.environ.get("CI"), reason="git is not installed (CI installs it)"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


# --- item 2: only private keys are private ---------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002], indirect=True)
def test_only_private_keys_are_private(tmp_path, umask, monkeypatch):
    monkeypatch.delenv("REGBOOK_KEY", raising=False)
    monkeypatch.delenv("REGBOOK_WORKSPACE", raising=False)
    runner = CliRunner()
    root, keys = tmp_path / "share" / "registry", tmp_path / "home" / ".ssh"

    def rb(*args: str, key: str | None = None) -> str:
        return ok(run(root, *args, key=None if key is None else keys / key, runner=runner))

    ok(runner.invoke(cli, ["init", str(root)]))
    rb("keys", "new", "gina@example.com", "--role", "governance-lead", "--out", str(keys / "gina"))
    for who, role in (("alice", "sme"), ("ci", "ci")):
        rb("keys", "new", f"{who}@example.com", "--role", role, "--out", str(keys / who),
           "--key", str(keys / "gina"))  # fmt: skip
    for n in (1, 2):
        artefact = tmp_path / f"model-{n}.pkl"
        artefact.write_bytes(b"model %d\n" % n)
        rb("register", "credit-risk", "--artefact", str(artefact), "--data-version",
           DATA_VERSION, "--code-commit", CODE_COMMIT, "--pipeline-run", f"run-{n}",
           "--metric", "auc_roc=0.83", key="alice")  # fmt: skip
    rb("approve", "credit-risk@2", "--to", "Archived", key="alice")
    rb("archive", "credit-risk@2", key="alice")
    out = tmp_path / "out"
    out.mkdir()
    rb("retrieve", "credit-risk@2", "--to", str(out / "restored"))
    rb("report", "evidence", "credit-risk@1", "-o", str(out / "evidence.html"))
    rb("report", "card", "credit-risk@1", "-o", str(out / "card.md"))
    rb("export", "signatures", str(out / "signatures"))

    private, shared_file, shared_folder = 0o600, 0o666 & ~umask, 0o777 & ~umask
    for name in ("gina", "alice", "ci"):
        assert mode(keys / name) == private, name
        assert mode(keys / f"{name}.pub") == shared_file
    for path in (
        root / "registry.xlsx",
        root / "registry.1.bak.xlsx",
        root / "allowed_signers",
        root / "regbook.toml",
        root / ".gitignore",
        out / "evidence.html",
        out / "card.md",
    ):
        assert mode(path) == shared_file, path
    bag = root / "archive" / "credit-risk" / "2"
    for folder in (bag, bag / "data", out / "restored", out / "signatures"):
        assert mode(folder) == shared_folder, folder
    for path in [*bag.rglob("*"), *(out / "restored").rglob("*")]:
        if path.is_file():
            assert mode(path) & 0o044 == shared_file & 0o044, path  # readable as shared

    # A mode the team chose is kept by every later write.
    (root / "registry.xlsx").chmod(0o640)
    rb("approve", "credit-risk@1", "--to", "Staging", key="alice")
    assert mode(root / "registry.xlsx") == 0o640
    assert mode(root / "registry.1.bak.xlsx") == 0o640


# --- item 8: setting up ----------------------------------------------------------------


def test_init_refuses_a_folder_with_files_unless_forced(tmp_path, runner):
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / "README.md").write_text("our models\n", encoding="utf-8")
    (folder / ".gitignore").write_text("*.pyc\n", encoding="utf-8")
    result = runner.invoke(cli, ["init", str(folder)])
    assert result.exit_code == 2
    assert "not empty" in result.output and "--force" in result.output
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "README.md"]

    ok(runner.invoke(cli, ["init", str(folder), "--force"]))
    assert (folder / "README.md").read_text(encoding="utf-8") == "our models\n"
    ignore = (folder / ".gitignore").read_text(encoding="utf-8")
    assert ignore.startswith("*.pyc\n") and "*_key" in ignore  # kept, then added to
    # Forced or not, a workspace is never made over another.
    again = runner.invoke(cli, ["init", str(folder), "--force"])
    assert again.exit_code == 2 and "already a regbook workspace" in again.output
    # An empty folder needs no --force.
    (tmp_path / "empty").mkdir()
    ok(runner.invoke(cli, ["init", str(tmp_path / "empty")]))


@needs_git
def test_gitignore_keeps_private_keys_and_lock_files_out_of_git(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("REGBOOK_KEY", raising=False)
    root = tmp_path / "registry"
    ok(runner.invoke(cli, ["init", str(root)]))
    # Keys made inside the workspace against the advice, lock files, a backup.
    ok(run(root, "keys", "new", "gina@example.com", "--role", "governance-lead",
           "--out", str(root / "regbook_gina"), runner=runner))  # fmt: skip
    ok(run(root, "keys", "new", "ci@example.com", "--role", "ci", "--out",
           str(root / "ci_key"), "--key", str(root / "regbook_gina"), runner=runner))  # fmt: skip
    (root / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n", encoding="utf-8")
    (root / "~$registry.xlsx").write_bytes(b"excel")
    (root / ".~lock.registry.xlsx#").write_bytes(b"libreoffice")
    (root / ".registry.xlsx.lock").write_bytes(b"")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    listed = subprocess.run(
        ["git", "ls-files"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.split()
    kept_out = ["regbook_gina", "ci_key", "id_ed25519", "~$registry.xlsx"]
    kept_out += [".~lock.registry.xlsx#", ".registry.xlsx.lock", "registry.1.bak.xlsx"]
    for private in kept_out:
        assert private not in listed, private
    shared = ["registry.xlsx", "allowed_signers", "regbook.toml", ".gitignore"]
    for public in [*shared, "regbook_gina.pub", "ci_key.pub"]:
        assert public in listed, public


def test_backups_are_named_to_open_as_workbooks(env: Env):
    ok(env.register())
    backups = sorted(p.name for p in env.root.glob("*.bak*"))
    assert backups == ["registry.1.bak.xlsx"]
    # The backup is a workbook regbook reads as such: put back, it verifies.
    ok(env.register())
    shutil.copy2(env.root / "registry.1.bak.xlsx", env.workbook)
    result = env.run("verify", "--no-artefacts")
    assert result.exit_code == 0, result.output
    assert "1 versions" in result.output or "1 version" in result.output


# --- item 10: resolve ------------------------------------------------------------------


def _in_production(env: Env) -> None:
    for _ in (1, 2):
        ok(env.register("credit-risk", None, "--metric", "security_high_findings=0"))
    ok(env.run("approve", "credit-risk@1", "--to", "Staging", key="sme"))
    ok(env.run("promote", "credit-risk@1", "--to", "Staging", key="sme"))
    ok(env.run("gate", "credit-risk@1", key="ci"))
    ok(env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead"))
    ok(env.run("promote", "credit-risk@1", "--to", "Production", key="ci"))
    ok(env.run("approve", "credit-risk@2", "--to", "Staging", key="sme"))
    ok(env.run("promote", "credit-risk@2", "--to", "Staging", key="sme"))


def test_resolve_names_the_version_in_a_stage(env: Env):
    _in_production(env)
    out = ok(env.run("resolve", "credit-risk@Production"))
    composite, path = out.strip().split(" ", 1)
    assert composite.startswith("credit-risk@1+")
    assert Path(path).is_file() and Path(path).is_relative_to(env.root / "models")
    data = json.loads(ok(env.run("resolve", "credit-risk@staging", "--json")))
    assert data["version"] == 2 and data["stage"] == "Staging"
    assert data["content_hash"].startswith("sha256:")
    assert data["composite_id"].startswith("credit-risk@2+")
    # Not a stage a deploy runs from, a model that does not exist, a version number.
    for bad in ("credit-risk@Archived", "credit-rsk@Production", "credit-risk@1"):
        result = env.run("resolve", bad)
        assert result.exit_code == 2 and "\n" == result.output[-1:], result.output


def test_resolve_answers_nothing_when_the_ledger_has_findings(env: Env):
    """An attacker who edits the Ledger to put another version in Production gets no
    answer a deploy script could use."""
    _in_production(env)

    def forge(wb):
        sheet = wb[LEDGER.name]
        version = 1 + [c.key for c in LEDGER.columns].index("version")
        rows = [
            row[0].row
            for row in sheet.iter_rows(min_row=2)
            if any(isinstance(c.value, str) and '"to":"Production"' in c.value for c in row)
        ]
        sheet.cell(rows[-1], version).value = 2  # the promotion (after its approval), of @2

    before = ok(env.run("resolve", "credit-risk@Production"))
    edit_workbook(env.workbook, forge)
    result = env.run("resolve", "credit-risk@Production")
    assert result.exit_code == 1
    assert "is not resolved" in result.output and "RB102" in result.output
    assert not [line for line in result.output.splitlines() if line.startswith("credit-risk@")]
    assert before.split()[1] not in result.output  # no artefact path to deploy
    data = json.loads(env.run("resolve", "credit-risk@Production", "--json").output)
    assert data["ok"] is False and data["findings"] and "composite_id" not in data
    # A keyring that is not the pinned one is a finding too.
    result = env.run("resolve", "credit-risk@Production", "--keyring-sha256", "0" * 64)
    assert result.exit_code == 1


_ = sys  # the textconv test below runs regbook as git would, with this interpreter
_ = threading
