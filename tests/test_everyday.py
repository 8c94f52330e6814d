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
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import docblocks
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
    rb("report", "pack", "credit-risk@1", "-o", str(out / "pack.zip"))
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
        out / "pack.zip",
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
    # A link planted where init would read or make something: refused, nothing written.
    secret = tmp_path / "secret.txt"
    secret.write_text("a private note\n", encoding="utf-8")
    for planted, link_to in ((".gitignore", secret), ("archive", tmp_path)):
        trap = tmp_path / f"trap-{planted.strip('.')}"
        trap.mkdir()
        (trap / planted).symlink_to(link_to)
        result = runner.invoke(cli, ["init", str(trap), "--force"])
        assert result.exit_code == 2 and "not a plain" in result.output, result.output
        assert [p.name for p in trap.iterdir()] == [planted]
    assert secret.read_text(encoding="utf-8") == "a private note\n"
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


# --- item 9: log, git, two writers ----------------------------------------------------


def test_log_prints_one_block_per_event(env: Env):
    ok(env.register("credit-risk", None, "--metric", "security_high_findings=0"))
    # A note crafted to reverse the text after it (control characters are refused at
    # input; a bidirectional override is text a cell keeps).
    ok(env.run("approve", "credit-risk@1", "--to", "Staging", "--note",
               "fine\u202eevil", key="sme"))  # fmt: skip
    out = ok(env.run("log"))
    blocks = out.strip().split("\n\n")
    heads = [b.splitlines()[0] for b in blocks]
    assert len(heads) == 5 and [h.split()[1] for h in heads] == ["1", "2", "3", "4", "5"]
    assert heads[3].split()[2:4] == ["register", "credit-risk@1"]
    assert "  signed by alice@example.com (SHA256:" in blocks[3]
    assert "  metrics[0].metric: auc_roc" in blocks[3]
    assert "\x1b" not in out and "\u202e" not in out
    assert 'note: "fine\\u202eevil"' in out
    only = ok(env.run("log", "credit-risk@1"))
    assert only.count("\nevent ") + only.startswith("event ") == 2
    # An edited ledger: the events are printed as stored, then every finding (exit 1).
    edit_workbook(env.workbook, lambda wb: wb[LEDGER.name].cell(5, 2, "2020-01-01T00:00:00Z"))
    result = env.run("log")
    assert result.exit_code == 1
    assert "RB10" in result.output and "not vouched for" in result.output


@needs_git
def test_git_diff_shows_the_events_added(env: Env, tmp_path):
    """The textconv driver of docs/collaboration.md, as a user sets it up."""
    tools = docblocks.tool_env(tmp_path / "tools")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]

    def sh(*args: str) -> str:
        done = subprocess.run(
            list(args), cwd=env.root, env=tools, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    sh(*git, "init", "-q")
    sh("git", "config", "diff.regbook.textconv", "regbook log --textconv")
    attributes = "registry.xlsx diff=regbook\nnotes.xlsx diff=regbook\n"
    (env.root / ".gitattributes").write_text(attributes, encoding="utf-8")
    sh(*git, "add", "-A")
    sh(*git, "commit", "-qm", "registry with keys")
    ok(env.register("credit-risk", None, "--metric", "security_high_findings=0"))
    diff = sh("git", "diff", "registry.xlsx")
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and "+++" not in line]
    assert added[0] == ""  # the blank line between the old last event and the new one
    assert added[1].startswith("event 4  register  credit-risk@1  ")
    assert not [line for line in diff.splitlines() if line.startswith("-") and "---" not in line]
    sh(*git, "commit", "-qam", "register credit-risk@1")
    history = sh("git", "log", "-p", "--format=commit %s", "registry.xlsx")
    assert "+event 4  register  credit-risk@1" in history
    assert "+event 1  keyring" in history
    # A file that is not a workbook does not break git: it says so.
    (env.root / "notes.xlsx").write_text("not a workbook", encoding="utf-8")
    sh(*git, "add", "notes.xlsx")
    assert "(no regbook ledger:" in sh("git", "diff", "--cached", "notes.xlsx")


def _hold_lock(workbook: Path, seconds: float) -> subprocess.Popen[str]:
    """Another regbook command in the middle of its write: it holds the writer lock."""
    code = (
        "import sys, time, filelock\n"
        f"lock = filelock.FileLock({str(workbook.with_name('.' + workbook.name + '.lock'))!r})\n"
        "lock.acquire()\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_and_nothing_is_lost(env: Env, tmp_path):
    ok(env.register("credit-risk", None, "--metric", "security_high_findings=0"))
    before = env.workbook.read_bytes()
    holder = _hold_lock(env.workbook, 30)
    try:
        result = env.run("approve", "credit-risk@1", "--to", "Staging", key="sme")
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 3
    assert "locked by another regbook command" in result.output
    assert env.workbook.read_bytes() == before  # nothing written, nothing lost
    ok(env.run("approve", "credit-risk@1", "--to", "Staging", key="sme"))  # and once it is free

    # Writers at the same time, as separate processes: each one is written or refused,
    # and every one written is in the ledger.
    tools = docblocks.tool_env(tmp_path / "tools")
    writers = []
    for n in range(3):
        artefact = tmp_path / f"team-{n}.pkl"
        artefact.write_bytes(b"model of team %d\n" % n)
        args = ["regbook", "--workspace", str(env.root), "register", f"team-{n}",
                "--artefact", str(artefact), "--data-version", DATA_VERSION,
                "--code-commit", CODE_COMMIT, "--pipeline-run", f"run-{n}",
                "--key", str(env.keys["sme"])]  # fmt: skip
        writers.append(subprocess.Popen(args, env=tools, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))  # fmt: skip
    done = [(w.wait(timeout=300), w.communicate()[0]) for w in writers]
    assert all(code in (0, 3) for code, _ in done), done
    written = {f"team-{n}" for n, (code, _) in enumerate(done) if code == 0}
    assert written, done
    listed = json.loads(env.run("list", "--json").output)
    assert written <= {row["model"] for row in listed}
    result = env.run("verify", "--no-artefacts")
    assert result.exit_code == 0, result.output


# --- item 11: a package you can install --------------------------------------------------


def test_the_version_is_recorded_in_the_changelog_and_the_package_ships_its_files(runner):
    """CI builds the wheel, installs it into a fresh venv and runs the demo (.ci/run);
    this checks, quickly, what that relies on: one version, named by `--version` and by
    the newest CHANGELOG entry, and every non-Python file of the package declared as
    package data, so the wheel carries it."""
    version = runner.invoke(cli, ["--version"]).output.split()[-1]
    changelog = (docblocks.REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    entries = [line[3:].split()[0] for line in changelog.splitlines() if line.startswith("## ")]
    assert entries and entries[0] == version, (entries[:1], version)
    import configparser
    import fnmatch

    setup = configparser.ConfigParser()
    setup.read(docblocks.REPO / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: regbook.__version__"
    patterns = [p.strip() for p in setup["options.package_data"]["regbook"].split(",")]
    package = docblocks.REPO / "toolkit" / "regbook"
    data = [
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file()
        and p.suffix not in (".py", ".pyc")
        # tools' caches (a .mypy_cache run from inside the package) are not package files
        and not any(part.startswith(".") for part in p.relative_to(package).parts)
    ]
    assert data, "the package has no data files: the scan is broken"
    for name in data:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert "templates/evidence.html.j2" in data
    ci = (docblocks.REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "-m build" in ci
    assert '"$pkg/venv/bin/regbook" demo' in ci
