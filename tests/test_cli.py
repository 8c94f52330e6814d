"""CLI tests for init, keys, register, seal, list and demo: exit codes, messages and the
resulting workbook state."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from conftest import CODE_COMMIT, DATA_VERSION, Env, edit_workbook, snapshot
from regbook.cli import cli
from regbook.core.schema import METRICS, MODELS


def models_rows(path: Path) -> list[dict]:
    ws = openpyxl.load_workbook(path)[MODELS.name]
    rows = []
    for values in ws.iter_rows(min_row=2, values_only=True):
        if any(v is not None for v in values):
            rows.append(dict(zip([c.key for c in MODELS.columns], values, strict=False)))
    return rows


# --- init ------------------------------------------------------------------------------


def test_init_creates_workspace(tmp_path, runner):
    result = runner.invoke(cli, ["init", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    for name in ("regbook.toml", "registry.xlsx", "allowed_signers", "models", "archive"):
        assert (tmp_path / "reg" / name).exists()
    toml = (tmp_path / "reg" / "regbook.toml").read_text()
    for setting in (
        "workbook =",
        "keyring =",
        "years = 10",
        "register =",
        '"None->Staging"',
        "performance =",
        "pipeline =",
    ):
        assert setting in toml
    # every setting line is preceded by a comment
    assert toml.count("# ") >= 10


def test_init_refuses_existing_workspace(tmp_path, runner):
    runner.invoke(cli, ["init", str(tmp_path / "reg")])
    before = snapshot(tmp_path / "reg")
    result = runner.invoke(cli, ["init", str(tmp_path / "reg")])
    assert result.exit_code == 2
    assert "already a regbook workspace" in result.output
    assert snapshot(tmp_path / "reg") == before


def test_workspace_found_by_walking_up(registered: Env, monkeypatch):
    sub = registered.root / "models"
    monkeypatch.chdir(sub)
    result = registered.runner.invoke(cli, ["verify", "--no-artefacts"])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(registered.root.parent)
    result = registered.runner.invoke(cli, ["verify"])
    assert result.exit_code == 2
    assert "no regbook.toml" in result.output


def test_workspace_from_environment(registered: Env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = registered.runner.invoke(
        cli, ["verify"], env={"REGBOOK_WORKSPACE": str(registered.root)}
    )
    assert result.exit_code == 0, result.output


# --- keys ------------------------------------------------------------------------------


def test_keys_new_writes_key_keyring_and_keys_sheet(env: Env):
    key = env.keys["sme"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert Path(str(key) + ".pub").read_text().startswith("ssh-ed25519 ")
    lines = [
        ln
        for ln in (env.root / "allowed_signers").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    # The governance lead's key is made first (it signs its own keyring event), then
    # the others, each added by a keyring event the lead signs.
    assert len(lines) == 3
    assert lines[0].startswith('gina@example.com namespaces="regbook-governance-lead" ssh-ed25519 ')
    assert lines[1].startswith('alice@example.com namespaces="regbook-sme" ssh-ed25519 ')
    ws = openpyxl.load_workbook(env.workbook)["Keys"]
    principals = [ws.cell(row=r, column=1).value for r in range(2, 5)]
    assert principals == ["gina@example.com", "alice@example.com", "ci@example.com"]
    from regbook.core.schema import LEDGER
    from regbook.ledger.events import read_events
    from regbook.workbook.read import read_workbook

    events, bad = read_events(read_workbook(env.workbook)[LEDGER.name])
    assert not bad
    assert [(e.kind, e.model, e.signer, e.payload["principal"]) for e in events] == [
        ("keyring", "(registry)", "gina@example.com", p) for p in principals
    ]


def test_keys_new_several_roles_and_refuses_overwrite(env: Env, tmp_path):
    out = tmp_path / "keys" / "both"
    result = env.run(
        "keys", "new", "bob@example.com", "--role", "sme", "--role", "ci", "--out", str(out),
        key="governance-lead",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert 'namespaces="regbook-sme,regbook-ci"' in (env.root / "allowed_signers").read_text()
    before = snapshot(env.root)
    result = env.run("keys", "new", "bob@example.com", "--role", "sme", "--out", str(out),
                     key="governance-lead")  # fmt: skip
    assert result.exit_code == 2
    assert str(out) in result.output
    assert snapshot(env.root) == before


def test_keys_new_refuses_bad_principal(env: Env, tmp_path):
    result = env.run("keys", "new", "two words", "--role", "sme", "--out", str(tmp_path / "k"))
    assert result.exit_code == 2
    assert "principal" in result.output
    assert not (tmp_path / "k").exists()


def test_keys_list_text_and_json(env: Env):
    result = env.run("keys", "list")
    assert result.exit_code == 0
    assert "gina@example.com" in result.output and "governance-lead" in result.output
    rows = json.loads(env.run("keys", "list", "--json").output)
    assert [r["roles"] for r in rows] == ["governance-lead", "sme", "ci"]  # the lead's first
    assert all(r["fingerprint"].startswith("SHA256:") for r in rows)


def test_keys_made_by_ssh_keygen_sign(env: Env, tmp_path):
    key = tmp_path / "stock"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-C", "x", "-f", str(key)], check=True
    )
    # The lead adds the key dora already has (a hand edit of the keyring is RB116).
    added = env.run("keys", "add", "dora@example.com", "--role", "sme", "--pubkey",
                    str(key) + ".pub", key="governance-lead")  # fmt: skip
    assert added.exit_code == 0, added.output
    artefact = tmp_path / "m.bin"
    artefact.write_bytes(b"model")
    result = env.run(
        "register",
        "stock-model",
        "--artefact",
        str(artefact),
        "--data-version",
        DATA_VERSION,
        "--code-commit",
        CODE_COMMIT,
        "--pipeline-run",
        "r1",
        "--key",
        str(key),
        env={"REGBOOK_KEY_PASSPHRASE": "secret"},
    )
    assert result.exit_code == 0, result.output
    assert models_rows(env.workbook)[0]["registered_by"] == "dora@example.com"


# --- register --------------------------------------------------------------------------


def test_register_copies_hashes_and_prints_composite_id(env: Env, tmp_path):
    artefact = tmp_path / "model.pkl"
    artefact.write_bytes(b"weights" * 1000)
    result = env.register(
        "credit-risk", artefact, "--param", "lr=0.1", "--trained-on", "2026-11-20"
    )
    assert result.exit_code == 0, result.output
    digest = subprocess.run(
        ["sha256sum", str(artefact)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert (
        result.stdout.strip() == f"credit-risk@1+{digest[:12]}.{DATA_VERSION[:8]}.{CODE_COMMIT[:8]}"
    )
    copy = env.root / "models" / "credit-risk" / "1" / "model.pkl"
    assert copy.read_bytes() == artefact.read_bytes()
    assert not os.access(copy, os.W_OK) or os.geteuid() == 0
    assert not copy.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert artefact.exists()  # the original is never moved
    row = models_rows(env.workbook)[0]
    assert row["version"] == 1 and row["stage"] == "None"
    assert row["content_hash"] == f"sha256:{digest}"
    assert row["storage"] == "models/credit-risk/1/model.pkl"
    assert row["params"] == '{"lr": "0.1"}'
    assert row["auc_roc"] == 0.83 and row["dpr"] == 0.91
    assert row["registered_by"] == "alice@example.com"
    assert len(row["seal"]) == 64
    metrics = openpyxl.load_workbook(env.workbook)[METRICS.name]
    assert [c.value for c in metrics[2]] == ["credit-risk", 1, "auc_roc", 0.83, "performance", None]


def test_register_versions_increase(env: Env):
    outputs = [env.register().stdout.strip() for _ in range(3)]
    assert [o.split("+")[0] for o in outputs] == ["credit-risk@1", "credit-risk@2", "credit-risk@3"]
    assert env.register("other-model").stdout.startswith("other-model@1+")


def test_register_directory_and_storage_in_place(env: Env, tmp_path):
    tree = env.root / "shared" / "detector"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.bin").write_bytes(b"a")
    (tree / "sub" / "b.txt").write_text("b")
    result = env.run(
        "register",
        "detector",
        "--storage",
        "shared/detector",
        "--data-version",
        DATA_VERSION,
        "--code-commit",
        CODE_COMMIT,
        "--pipeline-run",
        "r2",
        key="sme",
    )
    assert result.exit_code == 0, result.output
    row = models_rows(env.workbook)[0]
    assert row["storage"] == "shared/detector"
    assert row["content_hash"].startswith("sha256-tree:")
    assert not (env.root / "models" / "detector").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-version", "3f6c1e0"], "abbreviated"),
        (["--code-commit", "c0ffee12"], "not a full git commit"),
        (["--metric", "AUC=0.8"], "lower-case identifier"),
        (["--metric", "auc_roc=high"], "expected a number"),
        (["--trained-on", "yesterday"], "expected a date"),
        (["--storage", "elsewhere.bin"], "not both"),
    ],
)
def test_register_refuses_bad_options(env: Env, tmp_path, args, message):
    artefact = tmp_path / "m.bin"
    artefact.write_bytes(b"m")
    base = {"--data-version": DATA_VERSION, "--code-commit": CODE_COMMIT}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["register", "credit-risk", "--artefact", str(artefact), "--pipeline-run", "r"]
    for flag, value in base.items():
        argv += [flag, value]
    before = snapshot(env.root)
    result = env.run(*argv, key="sme")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(env.root) == before


def test_register_bad_model_name(env: Env):
    result = env.register("Credit Risk")
    assert result.exit_code == 2
    assert "not a valid model name" in result.output


def test_register_refused_for_role_without_permission(env: Env):
    before = snapshot(env.root)
    result = env.register(key="governance-lead")
    assert result.exit_code == 2
    assert "register needs a key with role sme or ci" in result.output
    assert snapshot(env.root) == before


def test_register_by_ci_and_key_from_environment(env: Env):
    artefact = env.root.parent / "ci.bin"
    artefact.write_bytes(b"ci")
    result = env.run(
        "register",
        "credit-risk",
        "--artefact",
        str(artefact),
        "--data-version",
        DATA_VERSION,
        "--code-commit",
        CODE_COMMIT,
        "--pipeline-run",
        "r",
        env={"REGBOOK_KEY": str(env.keys["ci"])},
    )
    assert result.exit_code == 0, result.output
    assert models_rows(env.workbook)[0]["registered_by"] == "ci@example.com"


def test_register_without_key(env: Env):
    result = env.run(
        "register",
        "m",
        "--artefact",
        "x",
        "--data-version",
        DATA_VERSION,
        "--code-commit",
        CODE_COMMIT,
        "--pipeline-run",
        "r",
    )
    assert result.exit_code == 2
    assert "no signing key" in result.output


def test_register_json(env: Env):
    result = env.register("credit-risk", None, "--json")
    data = json.loads(result.stdout)
    assert data["model"] == "credit-risk" and data["version"] == 1
    assert data["composite_id"].startswith("credit-risk@1+")


def test_unknown_key_is_refused(env: Env, tmp_path):
    from regbook.crypto.keys import generate_key

    stranger = tmp_path / "stranger"
    generate_key(stranger)
    artefact = tmp_path / "m.bin"
    artefact.write_bytes(b"m")
    result = env.run(
        "register",
        "m",
        "--artefact",
        str(artefact),
        "--data-version",
        DATA_VERSION,
        "--code-commit",
        CODE_COMMIT,
        "--pipeline-run",
        "r",
        "--key",
        str(stranger),
    )
    assert result.exit_code == 2
    assert "not in allowed_signers" in result.output


# --- seal ------------------------------------------------------------------------------


def type_draft(env: Env, **cells) -> None:
    def change(wb):
        wb[MODELS.name].append([cells.get(c.key) for c in MODELS.columns])

    edit_workbook(env.workbook, change)


def test_seal_drafts_with_metrics(env: Env):
    (env.root / "incoming").mkdir()
    (env.root / "incoming" / "m.bin").write_bytes(b"model bytes")
    type_draft(
        env,
        model="fraud",
        storage="incoming/m.bin",
        data_version=DATA_VERSION,
        code_commit=CODE_COMMIT.upper(),
        pipeline_run="run-9",
        params="a=1; b=two",
        auc_roc=0.8,
        notes="keep me",
    )

    def metrics(wb):
        wb[METRICS.name].append(["fraud", None, "recall", 0.7, None, "eu"])

    edit_workbook(env.workbook, metrics)
    result = env.run("seal", key="sme")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("fraud@1+")
    row = models_rows(env.workbook)[0]
    assert row["version"] == 1 and row["code_commit"] == CODE_COMMIT
    assert row["notes"] == "keep me"
    assert row["params"] == '{"a": "1", "b": "two"}'
    ws = openpyxl.load_workbook(env.workbook)[METRICS.name]
    sealed = sorted(tuple(c.value for c in r) for r in ws.iter_rows(min_row=2))
    assert sealed == [
        ("fraud", 1, "auc_roc", 0.8, "performance", None),
        ("fraud", 1, "recall", 0.7, "performance", "eu"),
    ]
    assert env.run("verify").exit_code == 0
    again = env.run("seal", key="sme")
    assert again.exit_code == 0 and "no draft rows" in again.output


def test_seal_two_drafts_of_one_model_get_consecutive_versions(env: Env):
    for name in ("a.bin", "b.bin"):
        (env.root / name).write_bytes(name.encode())
        type_draft(
            env,
            model="twin",
            storage=name,
            data_version=DATA_VERSION,
            code_commit=CODE_COMMIT,
            pipeline_run="r",
        )
    result = env.run("seal", key="sme")
    assert result.exit_code == 0, result.output
    assert [line.split("+")[0] for line in result.stdout.split()] == ["twin@1", "twin@2"]


def test_seal_reports_every_problem_and_writes_nothing(env: Env):
    (env.root / "ok.bin").write_bytes(b"ok")
    type_draft(
        env,
        model="good",
        storage="ok.bin",
        data_version=DATA_VERSION,
        code_commit=CODE_COMMIT,
        pipeline_run="r",
    )
    type_draft(
        env,
        model="bad",
        storage="missing.bin",
        data_version="abc",
        code_commit=CODE_COMMIT,
        pipeline_run=None,
    )
    before = snapshot(env.root)
    result = env.run("seal", key="sme")
    assert result.exit_code == 2
    assert "Models!E3" in result.output  # missing artefact
    assert "Models!G3" in result.output  # abbreviated data version
    assert "Models!K3" in result.output  # no pipeline run
    assert "nothing was written" in result.output
    assert snapshot(env.root) == before


# --- list ------------------------------------------------------------------------------


def test_list_text_json_csv(registered: Env):
    text = registered.run("list")
    assert text.exit_code == 0 and "credit-risk" in text.output
    rows = json.loads(registered.run("list", "--json").stdout)
    assert [r["version"] for r in rows] == [1, 2]
    assert rows[0]["stage"] == "None"
    assert json.loads(registered.run("list", "--stage", "Production", "--json").stdout) == []
    table = list(csv.DictReader(io.StringIO(registered.run("list", "--csv").stdout)))
    assert table[1]["composite_id"].startswith("credit-risk@2+")


def test_list_csv_escapes_formula_injection(env: Env, tmp_path):
    from regbook.reports.listing import escape_cell

    for text in ("=cmd|' /C calc'!A0", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert escape_cell(text) == "'" + text
    assert escape_cell("safe") == "safe" and escape_cell(-1.5) == -1.5
    # a pipeline run ID crafted as a formula comes out escaped
    artefact = tmp_path / "m.bin"
    artefact.write_bytes(b"m")
    env.run(
        "register",
        "m",
        "--artefact",
        str(artefact),
        "--data-version",
        DATA_VERSION,
        "--code-commit",
        CODE_COMMIT,
        "--pipeline-run",
        '=HYPERLINK("x")',
        key="sme",
    )
    assert env.run("verify").exit_code == 0
    ws = openpyxl.load_workbook(env.workbook)[MODELS.name]
    cell = ws.cell(row=2, column=MODELS.index("pipeline_run") + 1)
    assert cell.data_type == "s"  # stored as text, not a formula


def test_csv_cells_are_escaped_in_output(registered: Env, monkeypatch):
    import pandas as pd

    from regbook.reports.listing import to_csv

    frame = pd.DataFrame([{"model": "=evil()", "version": 1}])
    assert to_csv(frame).splitlines()[1] == "'=evil(),1"


# --- demo and entry points -------------------------------------------------------------


def test_demo_runs_and_reruns(tmp_path, runner, monkeypatch, mlflow_uri):
    # The demo's MLflow part runs against the session's server (it starts its own else).
    monkeypatch.setenv("REGBOOK_DEMO_MLFLOW", mlflow_uri)
    target = tmp_path / "demo"
    result = runner.invoke(cli, ["demo", str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "RB951 error mlflow:credit-risk@production" in result.output
    assert "verify: ok" in result.output
    assert "RB301 error Models!I2: code commit changed after sealing" in result.output
    assert "RB402" in result.output
    assert (target / "registry" / "registry.xlsx").exists()
    pack = target / "evidence" / "credit-risk-1-evidence.zip"
    assert f"evidence pack: {pack}" in result.output
    with zipfile.ZipFile(pack) as archive:
        archive.extractall(tmp_path / "unzipped")
    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], capture_output=True,
                           cwd=tmp_path / "unzipped" / "credit-risk-1-evidence")  # fmt: skip
    assert check.returncode == 0, check.stdout
    again = runner.invoke(cli, ["demo", str(target)], catch_exceptions=False)
    assert again.exit_code == 0


def test_demo_refuses_foreign_folder(tmp_path, runner):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    result = runner.invoke(cli, ["demo", str(tmp_path / "mine")])
    assert result.exit_code == 2
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"


def test_python_m_regbook_and_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "regbook", "--version"], capture_output=True, text=True, check=True
    )
    assert "regbook" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "regbook", "verify", "--no-such-option"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
