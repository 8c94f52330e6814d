"""The README walkthrough and the docs/ci.md examples run as written.

Every ``console`` block of README.md runs in order in one scratch folder, with ``HOME``
in it so the keys the README keeps under ``~/.ssh`` are temporary ones; every exit code
and every output line shown must match (the convention: docs/contributing-docs.md).
docs/ci.md's examples then run on the registry the walkthrough left behind, as far as a
machine without a CI service can: its console blocks, and the regbook steps of its
GitHub Actions release and deploy jobs with the secrets and inputs set as CI sets them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import docblocks

# What the documents' examples run besides regbook; CI installs them (.ci/run).
TOOLS = ("bash", "git", "unzip", "sha256sum", "ssh-keygen")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"the examples need {', '.join(MISSING)} (CI installs them)",
)

README = docblocks.REPO / "README.md"
CI_DOC = docblocks.REPO / "docs" / "ci.md"


@pytest.fixture(scope="module")
def walked(tmp_path_factory) -> tuple[Path, dict[str, str], list[docblocks.Ran]]:
    """The README's commands, run once for the module."""
    scratch = tmp_path_factory.mktemp("readme")
    env = docblocks.tool_env(scratch)
    ran = docblocks.run_commands(docblocks.parse(README).commands, scratch, env)
    return scratch, env, ran


def test_readme_walkthrough_runs_as_written(walked):
    scratch, _, ran = walked
    assert len(ran) > 40, "the README lost its console blocks"
    problems = docblocks.problems("README.md", ran)
    assert not problems, "\n\n".join(problems)
    # It reaches Production, and the version it replaced is in its bag.
    assert (scratch / "registry" / "archive" / "credit-risk" / "1" / "bagit.txt").is_file()
    assert (scratch / "credit-risk-2-evidence" / "MANIFEST.sha256").is_file()
    # The keys went to the temporary home, and none into the workspace.
    assert (scratch / ".home" / ".ssh" / "regbook_ci").is_file()
    assert not [p for p in (scratch / "registry").rglob("*") if "regbook_" in p.name]


def test_every_regbook_example_in_the_readme_is_run():
    doc = docblocks.parse(README)
    assert doc.unchecked == [], f"README.md blocks at lines {doc.unchecked} are never run"
    assert doc.python, "the README lost its Python example"


def test_readme_python_example_runs(tmp_path):
    env = docblocks.tool_env(tmp_path)
    for line, code in docblocks.parse(README).python:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"README.md:{line}: {done.stderr[-2000:]}"


def test_the_check_fails_when_the_readme_and_the_tool_disagree(tmp_path):
    """A README that shows another exit code, or output the tool does not print, fails:
    the harness is not a test that cannot fail."""
    commands = docblocks.parse(README).commands
    init = next(c for c in commands if c.text.startswith("regbook init"))
    keys = next(c for c in commands if c.text.startswith("regbook keys list"))
    upto = commands[: commands.index(keys) + 1]
    wrong_exit = docblocks.Command(keys.text, keys.line, exit_code=1)
    wrong_output = docblocks.Command(init.text, init.line, output=["created registry ..."])
    again = docblocks.Command("regbook init .", init.line, exit_code=0)  # refused: exit 2
    prefix = upto[: upto.index(init)]
    ran = docblocks.run_commands(
        [*prefix, wrong_output, *upto[upto.index(init) + 1 : -1], wrong_exit, again],
        tmp_path,
        docblocks.tool_env(tmp_path),
    )
    problems = docblocks.problems("README.md", ran)
    assert len(problems) == 3, "\n".join(problems)
    assert "created registry ..." in problems[0]
    assert "exit 0, the document says 1" in problems[1]
    assert "exit 2, the document says 0" in problems[2]


def _copy_of(walked, dest: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the walkthrough's folder, for a test that writes to it."""
    scratch, _, ran = walked
    assert not docblocks.problems("README.md", ran), "the README walkthrough fails first"
    shutil.copytree(scratch, dest, symlinks=True, ignore=shutil.ignore_patterns(".results"))
    return dest, docblocks.tool_env(dest)


def test_ci_doc_examples_run_on_the_walkthrough_registry(walked, tmp_path):
    scratch, env = _copy_of(walked, tmp_path / "ci")
    doc = docblocks.parse(CI_DOC)
    assert doc.unchecked == [], f"docs/ci.md blocks at lines {doc.unchecked} are never run"
    assert len(doc.commands) > 15, "docs/ci.md lost its console blocks"
    results = docblocks.run_commands(doc.commands, scratch, env)
    problems = docblocks.problems("docs/ci.md", results)
    assert not problems, "\n\n".join(problems)


def _run_steps(workflow: dict[str, Any], job: str) -> list[str]:
    return [step["run"] for step in workflow["jobs"][job]["steps"] if "run" in step]


def test_ci_doc_github_jobs_regbook_steps_run(walked, tmp_path):
    """The regbook steps of the GitHub release and deploy jobs, in order, as the runner
    runs them (bash -eo pipefail): the ci key from the secret, the pin from the variable,
    the witness store a folder beside registry/. The release is a new version that
    replaces the walkthrough's Production version; git and the deploy scripts, which
    need the CI service, are left out."""
    work, env = _copy_of(walked, tmp_path / "checkout")
    blocks = re.findall(r"```yaml\n(.*?)```", CI_DOC.read_text(encoding="utf-8"), re.DOTALL)
    github = yaml.safe_load(blocks[0])
    steps = _run_steps(github, "release") + _run_steps(github, "deploy")
    assert any("pip install" in s and "regbook" in s for s in steps)
    regbook_steps = [s for s in steps if re.search(r"^\s*regbook ", s, re.MULTILINE)]
    # verify, gate, promote, then the deploy job's verify --for-deploy
    assert [s.split()[1] for s in regbook_steps] == ["verify", "scan", "gate", "promote", "verify"]

    home = work / ".home" / ".ssh"
    people = f"""
        python3 -c "import pickle; pickle.dump({{'weights': [0.3]}}, open('build-v3.pkl', 'wb'))"
        regbook register credit-risk --artefact build-v3.pkl \\
            --data-version 3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a \\
            --code-commit c0ffee12d4e5f6a7b8c9d0e1f2a3b4c5d6e7f809 --pipeline-run train-0045 \\
            --metric auc_roc=0.88 --metric demographic_parity_ratio=0.93 \\
            --metric security_high_findings=0 --key {home}/regbook_alice
        regbook approve credit-risk@3 --to Staging --key {home}/regbook_alice
        regbook promote credit-risk@3 --to Staging --key {home}/regbook_alice
        regbook approve credit-risk@3 --to Production --key {home}/regbook_gina
        regbook approve credit-risk@2 --to Archived --key {home}/regbook_gina
        mkdir -p build && cp build-v3.pkl build/model.pkl
        export WITNESS_ARGS="--witness witness/regbook.witness"
    """
    ci = dict(env)
    ci.update(
        REGBOOK_WORKSPACE="registry",
        KEYRING_SHA256=hashlib.sha256(
            (work / "registry" / "allowed_signers").read_bytes()
        ).hexdigest(),
        REGBOOK_KEY=str(home / "regbook_ci"),
    )
    jobs = "\n".join(s.replace("${{ inputs.version }}", "credit-risk@3") for s in regbook_steps)
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", people + jobs],
        cwd=work,
        env=ci,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check = json.loads((work / "deploy-check.json").read_text(encoding="utf-8"))
    assert check["ok"] is True
    assert (work / "registry" / "archive" / "credit-risk" / "2" / "bagit.txt").is_file()
    assert (
        "credit-risk@3+"
        in subprocess.run(
            ["regbook", "resolve", "credit-risk@Production"],
            cwd=work,
            env=ci,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
