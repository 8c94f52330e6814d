"""Lineage: the provenance walk over real git repositories, DVC metadata in both of its
forms, the inference-log audit (100k lines, both formats), and the Python API."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from conftest import run
from factory import PASSING, TO_PRODUCTION, Version, build
from regbook.core.errors import InputError, VerificationFailed
from regbook.core.workspace import Workspace
from regbook.lineage import trace as lineage
from regbook.lineage.trace import (
    BROKEN,
    NOT_CHECKABLE,
    VERIFIED,
    audit_log,
    make_demo_repos,
    parse_dvc_file,
    render_audit,
    trace_version,
)
from regbook.registry.snapshot import LEDGER_ONLY, open_registry

# CI must have git (lineage reads repositories with it); a developer without it skips.
pytestmark = pytest.mark.skipif(
    shutil.which("git") is None and not os.environ.get("CI"), reason="git is not installed"
)

MISSING_COMMIT = "0badbadbadbadbadbadbadbadbadbadbadbadbad"
MISSING_DATA = "feedfacefeedfacefeedfacefeedfacefeedface"
DATA_URL = "https://git.example.com/risk/credit-data.git"
CODE_URL = "https://git.example.com/risk/credit-risk.git"
# When each event of the fixture happened (fs.utc_now is pinned while it is built).
TIMES = {
    "register-1": "2026-01-10T09:00:00Z",
    "register-2": "2026-01-10T10:00:00Z",
    "register-3": "2026-01-10T11:00:00Z",
    "approve-staging": "2026-01-11T09:00:00Z",
    "staging": "2026-01-11T10:00:00Z",
    "gate": "2026-01-11T11:00:00Z",
    "approve-production": "2026-01-12T09:00:00Z",
    "production": "2026-01-12T10:00:00Z",
}


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="Test Author", GIT_AUTHOR_EMAIL="author@example.com",
        GIT_COMMITTER_NAME="Test Author", GIT_COMMITTER_EMAIL="author@example.com",
        GIT_AUTHOR_DATE="2026-02-01T12:00:00Z", GIT_COMMITTER_DATE="2026-02-01T12:00:00Z",
        GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
    )  # fmt: skip
    return env


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args],
        env=git_env(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Lineage:
    base: Path
    ws_root: Path
    keys: dict[str, Path]
    code: Path
    data: Path
    code_commit: str
    data_commit: str
    later_data_commit: str
    ids: dict[int, str]

    @property
    def ws(self) -> Workspace:
        return Workspace.load(self.ws_root)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run(self.ws_root, *args, env=env)


def build_lineage(base: Path) -> Lineage:
    """credit-risk@1 (a file; data = a git commit of the data registry; code repository
    recorded as a local folder; taken to Production on fixed dates), @2 (a folder; data =
    a DVC md5; repositories recorded as URLs) and @3 (commits no repository has)."""
    code, data, code_commit, data_commit = make_demo_repos(base / "repos")
    later = commit_files(
        data, {"data/holdout.csv.dvc": f"outs:\n- md5: {md5('holdout-2')}\n  size: 5\n"
               "  hash: md5\n  path: holdout.csv\n"}, "Refresh the holdout set")  # fmt: skip
    model = b"a trained model\n" * 500
    tree = base / "fraud"
    (tree / "sub").mkdir(parents=True)
    (tree / "weights.bin").write_bytes(b"\x00\x01" * 4000)
    (tree / "sub" / "vocab.txt").write_text("amount\nmerchant\n", encoding="utf-8")
    made = build(base, [
        Version(artefact=model, name="model.pkl", data_version=data_commit,
                code_commit=code_commit, pipeline_run="train-0042", code_repo=str(code),
                data_repo=DATA_URL, params={"max_depth": "6"}, metrics=PASSING),
        Version(artefact=tree, data_version=md5("applications"), code_commit=code_commit,
                pipeline_run="train-0043", code_repo=CODE_URL, data_repo=DATA_URL,
                metrics=PASSING),
        Version(artefact=model, name="model.pkl", data_version=MISSING_DATA,
                code_commit=MISSING_COMMIT, pipeline_run="train-0044", code_repo=str(code),
                data_repo=str(data), metrics=PASSING),
    ], TO_PRODUCTION, times=TIMES.values())  # fmt: skip
    ids = dict(enumerate(made.ids, start=1))
    return Lineage(base, made.root, made.keys, code, data, code_commit, data_commit, later, ids)


def copy_lineage(m: Lineage, target: Path) -> Lineage:
    """``m`` with its paths moved into ``target``, where a copy of ``m.base`` lies."""

    def moved(p: Path) -> Path:
        return target / p.relative_to(m.base)

    return Lineage(target, moved(m.ws_root), {k: moved(v) for k, v in m.keys.items()},
                   moved(m.code), moved(m.data), m.code_commit, m.data_commit,
                   m.later_data_commit, dict(m.ids))  # fmt: skip


def tamper_registration(ws_root: Path, old: str = "train-0042", new: str = "train-0666") -> int:
    """Type over the Ledger payload of the one registration that holds ``old`` (by
    default credit-risk@1's pipeline run), as a person in Excel would; returns its row.
    The row is found, not assumed: keyring events come first in the ledger."""
    from conftest import edit_workbook
    from regbook.core.schema import LEDGER

    rows: list[int] = []

    def change(wb) -> None:
        sheet = wb[LEDGER.name]
        for row in range(2, sheet.max_row + 1):
            cell = sheet[f"{LEDGER.letter('payload')}{row}"]
            if isinstance(cell.value, str) and old in cell.value:
                cell.value = cell.value.replace(old, new)
                rows.append(row)

    edit_workbook(ws_root / "registry.xlsx", change)
    assert len(rows) == 1, f"{old!r} is in Ledger rows {rows}, not in exactly one"
    return rows[0]


def statuses(trace) -> dict[str, str]:
    return {link.name: link.status for link in trace.links}


# --- the trace ------------------------------------------------------------------------------


def test_trace_composite_id_all_links_verified(built: Lineage):
    result = built.run("trace", built.ids[1], "--data-repo", str(built.data))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.splitlines()[0] == built.ids[1]
    for name in ("composite ID", "sealed version", "artefact", "code commit", "training data",
                 "evaluation", "approvals and stages"):  # fmt: skip
        line = next(ln for ln in out.splitlines() if f"] {name}" in ln)
        assert "[verified" in line, line
    # Nothing checks the run against the pipeline service: signed only, never verified.
    line = next(ln for ln in out.splitlines() if "] pipeline run" in ln)
    assert "[signed only" in line, line
    assert "matches the sealed row" in out
    assert "signature good" in out
    assert "Dana Scientist <dana@example.com>" in out and "Add the debt-to-income feature" in out
    assert f"data/bureau: md5 {md5('bureau')}, 912,004,551 bytes, 24 files" in out
    assert f"data/holdout.csv: md5 {md5('holdout')}, 5,120,877 bytes, DVC 2 md5" in out
    assert f"data/train.parquet: md5 {md5('train')}" in out and "(dvc.lock:prepare)" in out
    assert "gate PASS" in out and "now Production" in out
    assert "approved Staging -> Production by gina@example.com (governance-lead)" in out
    assert "(model risk review MR-7)" in out
    assert out.rstrip().endswith("trace: 7 verified, 1 signed only, 0 not checkable, 0 broken")


def test_trace_json_reports_dvc_outputs_of_both_forms(built: Lineage):
    result = built.run("trace", "credit-risk@1", "--data-repo", str(built.data), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["composite_id"] == built.ids[1]
    links = {link["link"]: link for link in report["links"]}
    data = links["training data"]["details"]
    assert data["kind"] == "git-commit" and data["commit"]["commit"] == built.data_commit
    outputs = {o["path"]: o for o in data["outputs"]}
    assert outputs["data/applications.csv"] == {
        "path": "data/applications.csv", "md5": md5("applications"), "dir": False,
        "size": 48213377, "nfiles": None, "hash": "md5", "source": "data/applications.csv.dvc",
    }  # fmt: skip
    assert outputs["data/bureau"]["dir"] is True and outputs["data/bureau"]["nfiles"] == 24
    assert outputs["data/holdout.csv"]["hash"] == "md5-dos2unix"  # the form without `hash`
    assert outputs["data/train.parquet"]["source"] == "dvc.lock:prepare"
    code = links["code commit"]["details"]
    assert code["commit"] == built.code_commit and code["author"] == "Dana Scientist"
    assert code["date"] == "2026-03-09T14:30:00+00:00"
    assert links["pipeline run"]["details"]["pipeline_run"] == "train-0042"
    history = links["approvals and stages"]["details"]["history"]
    assert [h["to"] for h in history] == ["None", "Staging", "Production"]
    assert [h["at"] for h in history] == [TIMES["register-1"], TIMES["staging"],
                                          TIMES["production"]]  # fmt: skip


def test_code_repository_from_the_column_when_it_is_a_local_folder(built: Lineage):
    trace = trace_version(open_registry(built.ws, sheets=LEDGER_ONLY), "credit-risk@1")
    assert statuses(trace)["code commit"] == VERIFIED  # the column holds a local path
    link = next(x for x in trace.links if x.name == "training data")
    assert link.status == NOT_CHECKABLE  # the data column holds a URL


def test_repository_not_given_is_not_checkable_with_a_note_and_exit_0(built: Lineage):
    result = built.run("trace", "credit-risk@2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    code = lines.index(next(ln for ln in lines if "] code commit" in ln))
    assert "[not checkable]" in lines[code]
    assert "RB707 no code repository available" in lines[code + 1]
    assert CODE_URL in lines[code + 1] and "--code-repo PATH" in lines[code + 1]
    assert "3 not checkable, 0 broken" in lines[-1]  # code, data, evaluation (no gate)
    report = json.loads(built.run("trace", "credit-risk@2", "--json").output)
    codes = {f["code"] for link in report["links"] for f in link["findings"]}
    assert codes == {"RB707"} and report["ok"] is True


def test_repositories_from_regbook_toml(fresh: Lineage):
    config = fresh.ws_root / "regbook.toml"
    text = config.read_text(encoding="utf-8")
    rel = os.path.relpath(fresh.data, fresh.ws_root)
    config.write_text(
        text.replace('pipeline = ""', 'pipeline = "https://ci.example/runs/{id}"\n'
                     f'code_repo = "{fresh.code.as_posix()}"\n'
                     f'[links.repositories]\n"{DATA_URL}" = "{Path(rel).as_posix()}"'),
        encoding="utf-8",
    )  # fmt: skip
    Workspace.load(fresh.ws_root)  # still valid settings
    trace = trace_version(open_registry(fresh.ws, sheets=LEDGER_ONLY), "credit-risk@2")
    assert statuses(trace)["code commit"] == VERIFIED
    assert statuses(trace)["training data"] == VERIFIED
    pipeline = next(x for x in trace.links if x.name == "pipeline run")
    assert pipeline.details["url"] == "https://ci.example/runs/train-0043"


def test_a_dvc_md5_data_version_is_found_in_the_commit_that_added_it(built: Lineage):
    trace = trace_version(
        open_registry(built.ws, sheets=LEDGER_ONLY),
        "credit-risk@2",
        code_repo=built.code,
        data_repo=built.data,
    )
    link = next(x for x in trace.links if x.name == "training data")
    assert link.status == VERIFIED, link
    assert link.details["commit"]["commit"] == built.data_commit  # not the later one
    assert [o["path"] for o in link.details["matched"]] == ["data/applications.csv"]
    assert "data/applications.csv (data/applications.csv.dvc)" in link.summary


def test_an_unknown_dvc_md5_is_a_broken_link(fresh: Lineage):
    from regbook.crypto.keys import load_private_key
    from regbook.workflow.lifecycle import RegistrationRequest, register

    model = fresh.base / "other.bin"
    model.write_bytes(b"other")
    request = RegistrationRequest(
        model="scorer",
        artefact=model,
        data_version=md5("never recorded"),
        code_commit=fresh.code_commit,
        pipeline_run="r-1",
    )
    done = register(fresh.ws, request, load_private_key(fresh.keys["sme"]))
    result = fresh.run("trace", done.composite_id, "--data-repo", str(fresh.data))
    assert result.exit_code == 1
    assert "[BROKEN       ] training data" in result.output
    assert "RB704 no .dvc file or dvc.lock in the history" in result.output
    assert f"records md5 {md5('never recorded')}" in result.output


def test_missing_commits_are_broken_links_exit_1(built: Lineage):
    result = built.run("trace", "credit-risk@3", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    links = {link["link"]: link for link in report["links"]}
    assert links["code commit"]["status"] == BROKEN
    assert MISSING_COMMIT in links["code commit"]["reason"]
    assert links["code commit"]["findings"][0]["code"] == "RB703"
    assert links["training data"]["status"] == BROKEN
    assert links["training data"]["findings"][0]["code"] == "RB704"
    assert report["ok"] is False


def test_composite_id_prefix_mismatch_is_a_broken_link(built: Lineage):
    sealed = built.ids[1]
    head, _, tail = sealed.partition("+")
    a, d, c = tail.split(".")
    for wrong, label in (
        (f"{head}+{'0' * 12}.{d}.{c}", "artefact prefix 000000000000"),
        (f"{head}+{a}.{'1' * 8}.{c}", "data version prefix 11111111"),
        (f"{head}+{a}.{d}.{'2' * 8}", "code commit prefix 22222222"),
    ):
        result = built.run("trace", wrong)
        assert result.exit_code == 1, result.output
        line = next(ln for ln in result.output.splitlines() if "] composite ID" in ln)
        assert "[BROKEN" in line and wrong in line
        assert label in result.output
    report = json.loads(built.run("trace", f"{head}+{'0' * 12}.{d}.{c}", "--json").output)
    assert report["links"][0]["findings"][0]["code"] == "RB701"


def test_a_composite_id_for_a_version_never_sealed_is_broken(built: Lineage):
    result = built.run("trace", "credit-risk@99+000000000000.11111111.22222222")
    assert result.exit_code == 1
    assert "never sealed" in result.output


@pytest.mark.parametrize(
    "target", ["credit-risk@99", "credit-risk", "credit-risk@1+xyz", "Credit Risk@1", ""]
)
def test_bad_targets_are_one_line_errors(built: Lineage, target: str):
    result = built.run("trace", target)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_trace_needs_one_of_target_or_log(built: Lineage):
    for args in (("trace",), ("trace", "credit-risk@1", "--log", "x.jsonl")):
        result = built.run(*args)
        assert result.exit_code == 2 and "not both" in result.output


def test_a_changed_artefact_is_broken(fresh: Lineage):
    stored = next((fresh.ws_root / "models" / "credit-risk" / "1").iterdir())
    stored.chmod(0o644)
    stored.write_bytes(b"swapped")
    trace = trace_version(open_registry(fresh.ws, sheets=LEDGER_ONLY), "credit-risk@1")
    link = next(x for x in trace.links if x.name == "artefact")
    assert link.status == BROKEN and link.findings[0].code == "RB402"
    assert not trace.ok


def test_a_tampered_ledger_breaks_the_sealed_link(fresh: Lineage):
    tamper_registration(fresh.ws_root)
    trace = trace_version(open_registry(fresh.ws, sheets=LEDGER_ONLY), "credit-risk@1")
    link = next(x for x in trace.links if x.name == "sealed version")
    assert link.status == BROKEN and "chain is broken" in link.reason


def test_paths_that_are_not_repositories_are_not_checkable(built: Lineage, tmp_path: Path):
    plain = built.code / "not-a-repo"  # a plain folder inside a git checkout
    plain.mkdir(exist_ok=True)
    try:
        trace = trace_version(
            open_registry(built.ws, sheets=LEDGER_ONLY),
            "credit-risk@1",
            code_repo=plain,
            data_repo=tmp_path / "nowhere",
        )
    finally:
        plain.rmdir()
    links = {x.name: x for x in trace.links}
    assert links["code commit"].status == NOT_CHECKABLE
    assert "is not a git repository" in links["code commit"].reason
    assert links["training data"].status == NOT_CHECKABLE
    assert "is not a folder here" in links["training data"].reason


def test_git_not_installed_is_not_checkable(built: Lineage, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(lineage.shutil, "which", lambda name: None)
    trace = trace_version(
        open_registry(built.ws, sheets=LEDGER_ONLY),
        "credit-risk@1",
        code_repo=built.code,
        data_repo=built.data,
    )
    links = {x.name: x for x in trace.links}
    assert links["code commit"].status == NOT_CHECKABLE
    assert "git program is not installed" in links["code commit"].reason
    assert trace.ok


# --- DVC files --------------------------------------------------------------------------


def test_parse_dvc3_file_and_directory_output():
    text = (
        "outs:\n- md5: 3863d0e317dee0a55c4e59d2ec0eef33.dir\n  size: 1048576\n  nfiles: 12\n"
        "  hash: md5\n  path: images\n"
    )
    (out,) = parse_dvc_file("data/images.dvc", text)
    assert out.path == "data/images" and out.md5 == "3863d0e317dee0a55c4e59d2ec0eef33"
    assert out.is_dir and out.size == 1048576 and out.nfiles == 12 and out.hash == "md5"


def test_parse_older_dvc_file_without_hash_and_with_wdir():
    text = "wdir: ../raw\nouts:\n- md5: a304afb96060aad90176268345e10355\n  path: data.xml\n"
    (out,) = parse_dvc_file("pipeline/data.xml.dvc", text)
    assert out.path == "raw/data.xml" and out.hash == "md5-dos2unix"
    assert out.size is None and out.nfiles is None and not out.is_dir


def test_parse_dvc_lock_both_schemas():
    new = (
        "schema: '2.0'\nstages:\n  featurize:\n    cmd: python featurize.py\n"
        "    outs:\n    - path: data/features\n      hash: md5\n"
        "      md5: 153aad06d376b6595932470e459ef42a.dir\n      size: 8437363\n      nfiles: 2\n"
    )
    old = (
        "featurize:\n  cmd: python featurize.py\n  outs:\n  - path: data/features\n"
        "    md5: 153aad06d376b6595932470e459ef42a.dir\n"
    )
    (a,) = parse_dvc_file("sub/dvc.lock", new)
    (b,) = parse_dvc_file("dvc.lock", old)
    assert (a.path, a.hash, a.nfiles, a.source) == ("sub/data/features", "md5", 2,
                                                   "sub/dvc.lock:featurize")  # fmt: skip
    assert (b.path, b.hash, b.is_dir) == ("data/features", "md5-dos2unix", True)


@pytest.mark.parametrize("text", ["outs: [\n", "- just\n- a list\n", "meta: {}\n", "outs: 3\n"])
def test_bad_dvc_files_are_input_errors(text: str):
    with pytest.raises(InputError):
        parse_dvc_file("x.dvc", text)


def test_an_unreadable_dvc_file_is_named_not_fatal(tmp_path: Path):
    repo = tmp_path / "data"
    sha = commit_files(repo, {"a.dvc": "outs: [\n", "b.dvc": "outs:\n- md5: " + md5("b")
                              + "\n  hash: md5\n  path: b\n"}, "two files")  # fmt: skip
    outputs, unreadable = lineage.dvc_outputs(lineage.GitRepo.open(repo), sha)
    assert [o.path for o in outputs] == ["b"]
    assert len(unreadable) == 1 and unreadable[0].startswith("a.dvc: not valid YAML")


def test_make_demo_repos_is_deterministic(tmp_path: Path):
    first = make_demo_repos(tmp_path / "one")
    second = make_demo_repos(tmp_path / "two")
    assert first[2:] == second[2:]
    code, data, code_commit, data_commit = first
    assert git(code, "cat-file", "-t", code_commit) == "commit"
    assert git(data, "cat-file", "-t", data_commit) == "commit"
    files = git(data, "ls-tree", "-r", "--name-only", data_commit).splitlines()
    assert {"dvc.lock", "data/applications.csv.dvc", "data/bureau.dvc"} <= set(files)


# --- the Python API for services --------------------------------------------------------


def test_composite_id_api(built: Lineage):
    import regbook

    assert regbook.composite_id(built.ws_root, "credit-risk@2") == built.ids[2]
    assert regbook.composite_id(str(built.ws_root), "credit-risk") == built.ids[1]  # Production
    with pytest.raises(InputError, match="no such sealed version"):
        regbook.composite_id(built.ws_root, "credit-risk@42")
    with pytest.raises(InputError):
        regbook.composite_id(built.ws_root, "fraud")


def test_composite_id_refuses_a_tampered_ledger(fresh: Lineage):
    import regbook

    tamper_registration(fresh.ws_root)
    with pytest.raises(VerificationFailed):
        regbook.composite_id(fresh.ws_root, "credit-risk@1")


def test_import_regbook_stays_cheap():
    code = (
        "import sys, regbook; regbook.__version__; "
        "print(sorted(m for m in ('pandas', 'openpyxl', 'yaml', 'python_calamine', "
        "'regbook.lineage.trace') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the inference-log audit -------------------------------------------------------------


def _record(cid: str, when: str | None, i: int, **extra: object) -> dict:
    rec = {"request_id": f"req-{i:06d}", "composite_id": cid, "score": round((i % 97) / 97, 4)}
    if when is not None:
        rec["timestamp"] = when
    rec.update(extra)
    return rec


def test_audit_100k_line_log(built: Lineage, tmp_path: Path):
    """A 100k-line log mixing every case, audited through the CLI; checked against
    counts kept while writing it."""
    id1, id2 = built.ids[1], built.ids[2]
    head, _, tail = id1.partition("+")
    mismatch = f"{head}+{'0' * 12}.{tail.split('.', 1)[1]}"
    unknown = "credit-risk@99+000000000000.11111111.22222222"
    rng = random.Random(7)
    expected = {"prod": 0, "staging": 0, "none2": 0, "notime": 0, "offset": 0, "nested": 0}
    lines_of: dict[str, list[int]] = {"mismatch": [], "unknown": [], "garbage": [],
                                      "noid": [], "staging": []}  # fmt: skip
    path = tmp_path / "predictions.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for number in range(1, 100_001):
            roll = rng.random()
            if number == 500:
                out.write("{not json at all\n")
                lines_of["garbage"].append(number)
                continue
            if number == 501:
                out.write('{"score": 0.5}\n')
                lines_of["noid"].append(number)
                continue
            if number == 502:
                out.write("\n")  # blank lines are skipped
                continue
            if roll < 0.90:
                rec = _record(id1, f"2026-02-{1 + number % 28:02d}T{number % 24:02d}:"
                              f"{number % 60:02d}:{number % 60:02d}.{number % 1000:03d}Z",
                              number)  # fmt: skip
                expected["prod"] += 1
            elif roll < 0.93:
                rec = _record(id1, "2026-01-11T15:30:00Z", number)  # in Staging then
                expected["staging"] += 1
                lines_of["staging"].append(number)
            elif roll < 0.95:
                rec = _record(id2, "2026-02-01T00:00:00Z", number)  # @2 never left None
                expected["none2"] += 1
            elif roll < 0.96:
                rec = _record(id1, None, number)
                expected["notime"] += 1
            elif roll < 0.97:
                # Another spelling of a Production time: the general path reads it.
                rec = _record(id1, "2026-02-03T01:00:00+02:00", number)
                expected["offset"] += 1
            elif roll < 0.98:
                rec = _record(id1, "2026-02-03T01:00:00Z", number, features={"a": 1, "b": [2]})
                expected["nested"] += 1
            elif roll < 0.99:
                rec = _record(mismatch, "2026-02-03T01:00:00Z", number)
                lines_of["mismatch"].append(number)
            else:
                rec = _record(unknown, "2026-02-03T01:00:00Z", number)
                lines_of["unknown"].append(number)
            out.write(json.dumps(rec) + "\n")
    result = built.run("trace", "--log", str(path), "--json")
    assert result.exit_code == 1, result.output[-2000:]
    report = json.loads(result.output)
    assert report["lines"] == 100_000
    versions = {v["version"]: v for v in report["versions"]}
    v1 = versions[1]
    prod = expected["prod"] + expected["offset"] + expected["nested"]
    assert v1["records_by_stage"] == {"Production": prod, "Staging": expected["staging"],
                                      "(no timestamp)": expected["notime"]}  # fmt: skip
    assert versions[2]["records_by_stage"] == {"None": expected["none2"]}
    problems = {(p["kind"], p["subject"]): p for p in report["problems"]}
    mm = problems[("id-mismatch", mismatch)]
    assert mm["code"] == "RB701" and mm["count"] == len(lines_of["mismatch"])
    assert mm["lines"] == lines_of["mismatch"][:1000]
    assert "artefact prefix 000000000000" in mm["message"]
    un = problems[("unknown-id", unknown)]
    assert un["code"] == "RB702" and un["lines"] == lines_of["unknown"][:1000]
    st = problems[("not-production", "credit-risk@1 Staging")]
    assert st["code"] == "RB705" and st["count"] == expected["staging"]
    assert st["lines"] == lines_of["staging"][:1000] and len(st["lines"]) == 1000
    assert problems[("not-production", "credit-risk@2 None")]["count"] == expected["none2"]
    assert problems[("unreadable", "that are not JSON")]["lines"] == lines_of["garbage"]
    assert problems[("missing-id", "composite_id")]["lines"] == lines_of["noid"]
    total = sum(v["records"] for v in report["versions"])
    assert report["records"] == total + len(lines_of["mismatch"]) + len(lines_of["unknown"])
    text = built.run("trace", "--log", str(path))
    assert text.exit_code == 1
    assert f"RB705 error {path}: inferences served by credit-risk@1 while it was in Staging" in (
        text.output
    )
    assert "(first 10 shown)" in text.output


def test_audit_of_a_clean_log_is_ok(built: Lineage, tmp_path: Path):
    path = tmp_path / "ok.jsonl"
    path.write_text(
        "".join(
            json.dumps(_record(built.ids[1], "2026-03-01T00:00:00Z", i)) + "\n" for i in range(10)
        ),  # fmt: skip
        encoding="utf-8",
    )
    result = built.run("trace", "--log", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("audit: ok")
    assert "Production 10" in result.output


def test_timestamps_before_registration_and_in_other_zones(built: Lineage, tmp_path: Path):
    path = tmp_path / "zones.jsonl"
    cid = built.ids[1]
    cases = [
        ("2026-01-09T23:59:59Z", "unregistered"),
        ("2026-01-10T09:00:00Z", "None"),  # the second it was registered
        ("2026-01-11T10:00:00Z", "Staging"),
        ("2026-01-12T11:00:00+02:00", "Staging"),  # 09:00 UTC
        ("2026-01-12T10:00:00", "Production"),  # no offset: UTC
        ("2026-01-12T10:00:00.250Z", "Production"),
        ("2026-01-12", "Staging"),  # a date alone: midnight UTC
    ]
    path.write_text("".join(json.dumps({"composite_id": cid, "timestamp": t}) + "\n"
                            for t, _ in cases), encoding="utf-8")  # fmt: skip
    audit = audit_log(open_registry(built.ws, sheets=LEDGER_ONLY), path)
    track = next(t for t in audit.versions if t.version == 1)
    want: dict[str, int] = {}
    for _, stage in cases:
        want[stage] = want.get(stage, 0) + 1
    assert track.by_stage == want
    assert any("not yet registered" in p.message for p in audit.problems)


def test_numeric_and_bad_timestamps_fail_the_audit(built: Lineage, tmp_path: Path):
    path = tmp_path / "epoch.jsonl"
    cid = built.ids[1]
    path.write_text(
        json.dumps({"composite_id": cid, "timestamp": 1767225600})
        + "\n"
        + json.dumps({"composite_id": cid, "timestamp": "2026-13-45T00:00:00Z"})
        + "\n"
        + json.dumps({"composite_id": cid, "timestamp": "yesterday"})
        + "\n",
        encoding="utf-8",
    )
    audit = audit_log(open_registry(built.ws, sheets=LEDGER_ONLY), path)
    # Their stage cannot be judged: counted, and a problem (the check could not run).
    assert audit.timestamp_not_iso == 3 and not audit.ok
    (problem,) = audit.problems
    assert problem.code == "RB708" and problem.lines == [1, 2, 3]
    assert "records with a timestamp that is not ISO 8601 in 'timestamp'" in render_audit(audit)


def test_fast_and_general_paths_agree(built: Lineage, tmp_path: Path):
    """Each record written twice: flat (the regex path) and with an escaped character
    (which forces json.loads); both halves must count the same."""
    rng = random.Random(3)
    ids = [built.ids[1], built.ids[2], "nonsense", built.ids[1].replace("+", "+f")]
    times = [None, "2026-01-11T12:00:00Z", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00.5Z"]
    records = [
        {"composite_id": rng.choice(ids), **({"timestamp": t} if (t := rng.choice(times)) else {})}
        for _ in range(400)
    ]
    flat = tmp_path / "flat.jsonl"
    escaped = tmp_path / "escaped.jsonl"
    flat.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    escaped.write_text(
        "".join(json.dumps({**r, "note": 'a "quoted" word'}) + "\n" for r in records),
        encoding="utf-8",
    )
    a, b = (
        audit_log(open_registry(built.ws, sheets=LEDGER_ONLY), flat),
        audit_log(open_registry(built.ws, sheets=LEDGER_ONLY), escaped),
    )
    assert a.to_json()["versions"] == b.to_json()["versions"]
    assert [p.to_json() for p in a.problems] == [p.to_json() for p in b.problems]


def test_audit_csv_log_with_quoted_fields_and_custom_column(built: Lineage, tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_text(
        "timestamp,model_id,comment\n"
        f"2026-02-01T00:00:00Z,{built.ids[1]},plain\n"
        f'2026-02-01T00:00:01Z,{built.ids[1]},"with, a comma\nand a newline"\n'
        f"2026-01-11T12:00:00Z,{built.ids[1]},in staging\n"
        f"2026-02-01T00:00:02Z,credit-risk@77+000000000000.11111111.22222222,x\n"
        "2026-02-01T00:00:03Z,,no id\n",
        encoding="utf-8",
    )
    result = built.run("trace", "--log", str(path), "--id-field", "model_id", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["format"] == "CSV"
    v1 = next(v for v in report["versions"] if v["version"] == 1)
    assert v1["records_by_stage"] == {"Production": 2, "Staging": 1}
    problems = {p["kind"]: p for p in report["problems"]}
    assert problems["not-production"]["lines"] == [5]  # physical line of the record
    assert problems["unknown-id"]["lines"] == [6]
    assert problems["missing-id"]["lines"] == [7]


def test_csv_without_the_column_is_bad_input(built: Lineage, tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_text("when,id\n1,2\n", encoding="utf-8")
    result = built.run("trace", "--log", str(path))
    assert result.exit_code == 2
    assert "no 'composite_id' column" in result.output and "--id-field" in result.output


def test_missing_log_is_bad_input(built: Lineage, tmp_path: Path):
    result = built.run("trace", "--log", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and "cannot read the log" in result.output


def test_problem_line_numbers_are_bounded(built: Lineage, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    monkeypatch.setattr(lineage, "LINES_KEPT", 5)
    monkeypatch.setattr(lineage, "PROBLEMS_KEPT", 3)
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"composite_id": f"junk-{i % 10}"}) + "\n"
                            for i in range(100)), encoding="utf-8")  # fmt: skip
    audit = audit_log(open_registry(built.ws, sheets=LEDGER_ONLY), path)
    assert len(audit.problems) == 3
    assert all(p.count == 10 and len(p.lines) == 5 for p in audit.problems)
    assert audit.problems_not_listed == 7 and audit.records_not_listed == 70
    assert not audit.ok
    assert "7 more distinct problems (70 records) not listed" in render_audit(audit)


def test_an_over_long_line_is_flagged_and_skipped(built: Lineage, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    monkeypatch.setattr(lineage, "MAX_LINE", 64)
    path = tmp_path / "long.jsonl"
    good = json.dumps({"composite_id": built.ids[1]})
    path.write_text(
        json.dumps({"composite_id": built.ids[1], "pad": "x" * 300}) + "\n" + good + "\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(lineage, "MAX_LINE", max(64, len(good) + 2))
    audit = audit_log(open_registry(built.ws, sheets=LEDGER_ONLY), path)
    untimed, problem = audit.problems
    assert problem.kind == "unreadable" and problem.lines == [1]
    assert untimed.code == "RB708" and untimed.lines == [2]
    assert sum(t.records for t in audit.versions) == 1 and audit.lines == 2


def test_an_archived_artefact_is_hashed_inside_its_bag(built: Lineage, tmp_path: Path):
    """Once archived, the storage location may be a BagIt bag: the artefact is its
    payload under data/."""
    from types import SimpleNamespace

    from regbook.storage.hashing import hash_path

    bag = tmp_path / "archive" / "credit-risk" / "1"
    (bag / "data").mkdir(parents=True)
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\n", encoding="utf-8")
    (bag / "data" / "model.pkl").write_bytes(b"a trained model\n" * 500)
    sealed = str(hash_path(bag / "data" / "model.pkl"))
    state = SimpleNamespace(
        model="credit-risk", version=1, content_hash=sealed, storage=str(bag),
        payload={"artefact": {"storage": "models/credit-risk/1/model.pkl", "hash": sealed}},
    )  # fmt: skip
    link = lineage._artefact_link(built.ws, state)
    assert link.status == VERIFIED and "(in its bag)" in link.summary
    (bag / "data" / "model.pkl").write_bytes(b"changed")
    assert lineage._artefact_link(built.ws, state).status == BROKEN


def test_make_demo_repos_needs_a_fresh_folder(tmp_path: Path):
    make_demo_repos(tmp_path)
    with pytest.raises(InputError, match="already exists"):
        make_demo_repos(tmp_path)
