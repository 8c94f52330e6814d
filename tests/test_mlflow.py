"""The MLflow mirror against a real local ``mlflow server`` (tests/mlflow_server.py):
push, idempotence, check and each drift made through MLflow's own client, import."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from factory import PASSING, Version, build
from mlflow_server import needs_mlflow
from regbook.core.workspace import Workspace
from regbook.mirror.server import free_port
from regbook.registry.snapshot import CARD_SHEETS, open_registry

pytestmark = needs_mlflow


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def four_stages(base: Path):
    """A registry whose model has a version in each stage: 1 Production, 2 Staging,
    3 None, 4 Archived; the model name unique to this test (one server per session)."""
    model = f"credit-{uuid.uuid4().hex[:8]}"
    versions = [Version(model=model, metrics=PASSING, params={"lr": "0.1"}) for _ in range(4)]
    ref = lambda n: f"{model}@{n}"  # noqa: E731
    history = [
        ("approve", ref(1), "Staging", "sme", "offline review"),
        ("promote", ref(1), "Staging", "sme"),
        ("gate", ref(1), None, "ci"),
        ("approve", ref(1), "Production", "governance-lead", "MR-7"),
        ("promote", ref(1), "Production", "ci"),
        ("approve", ref(2), "Staging", "sme"),
        ("promote", ref(2), "Staging", "sme"),
        ("approve", ref(4), "Archived", "sme"),
        ("archive", ref(4), None, "sme"),
    ]
    return build(base, versions, history), model


@pytest.fixture
def four(tmp_path: Path, runner, monkeypatch):
    from conftest import Env, unset_regbook_env

    unset_regbook_env(monkeypatch)
    made, model = four_stages(tmp_path)
    return Env.of(made, runner), model


def push(env, uri: str, *args: str) -> dict:
    result = env.run("mlflow", "push", "--tracking-uri", uri, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check(env, uri: str, *args: str) -> tuple[int, dict]:
    result = env.run("mlflow", "check", "--tracking-uri", uri, "--json", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def codes(report: dict) -> set[tuple[str, str]]:
    return {(f["code"], f["where"]) for f in report["findings"]}


def test_push_four_stages_then_nothing_then_only_aliases(four, mlflow_uri):
    env, model = four
    first = push(env, mlflow_uri)
    assert [c["mlflow_version"] for c in first["created"]] == ["1", "2", "3", "4"]
    c = client(mlflow_uri)
    versions = {v.version: v for v in c.search_model_versions(f"name='{model}'")}
    snapshot = open_registry(env.ws, sheets=CARD_SHEETS)
    for n in range(1, 5):
        state = snapshot.registry.get(model, n)
        tags = versions[str(n)].tags
        assert tags["regbook.composite_id"] == state.composite_id
        assert tags["regbook.content_hash"] == state.content_hash
        assert tags["regbook.ledger_hash"] == state.register.hash
        assert tags["regbook.stage"] == state.stage
        assert tags["regbook.registry"] == snapshot.registry_id
        assert versions[str(n)].description.startswith("# Model card")
    assert versions["1"].tags["regbook.approval.note"] == "MR-7"
    assert versions["1"].tags["regbook.gate"] == "PASS"
    run = c.get_run(versions["1"].run_id)
    assert run.data.metrics["auc_roc"] == pytest.approx(0.83)
    assert run.data.params["lr"] == "0.1"
    assert (
        run.data.tags["mlflow.source.git.commit"]
        == snapshot.registry.get(model, 1).payload["code_commit"]
    )
    assert c.get_registered_model(model).aliases == {"production": "1", "staging": "2"}
    record = json.loads((env.root / "mlflow-mirror.json").read_text())
    mirrored = record["servers"][mlflow_uri]["versions"]
    assert {v["mlflow_version"] for v in mirrored.values()} == {"1", "2", "3", "4"}

    again = push(env, mlflow_uri)
    assert again["created"] == [] and again["updated"] == [] and again["aliases"] == []
    assert again["requests"]["write"] == 0

    # Promote 2 to Production (archiving 1): only the stage tags and aliases move.
    from conftest import Built
    from factory import advance

    made = Built.at(env.root.parent)
    advance(made, [
        ("gate", f"{model}@2", None, "ci"),
        ("approve", f"{model}@1", "Archived", "governance-lead"),
        ("archive", f"{model}@1", None, "governance-lead"),
        ("approve", f"{model}@2", "Production", "governance-lead", "MR-8"),
        ("promote", f"{model}@2", "Production", "ci"),
    ])  # fmt: skip
    code, report = check(env, mlflow_uri, "--no-artefacts")
    assert code == 1 and {f["code"] for f in report["findings"]} == {"RB958"}
    third = push(env, mlflow_uri)
    assert third["created"] == []
    assert sorted(third["updated"]) == sorted(
        open_registry(env.ws, sheets=CARD_SHEETS).registry.get(model, n).composite_id
        for n in (1, 2)
    )
    assert c.get_registered_model(model).aliases == {"production": "2"}
    assert check(env, mlflow_uri)[0] == 0


def test_check_catches_each_drift_made_through_mlflow(four, mlflow_uri, tmp_path):
    env, model = four
    push(env, mlflow_uri)
    code, report = check(env, mlflow_uri)
    assert code == 0, report
    assert report["artefacts_checked"] == 4
    c = client(mlflow_uri)

    c.set_registered_model_alias(model, "production", "3")  # moved by hand
    code, report = check(env, mlflow_uri, "--no-artefacts")
    assert code == 1 and ("RB951", f"mlflow:{model}@production") in codes(report)
    c.set_registered_model_alias(model, "production", "1")

    c.set_model_version_tag(model, "2", "regbook.stage", "Production")  # tag changed
    c.delete_model_version_tag(model, "3", "regbook.code_commit")  # tag removed
    report = check(env, mlflow_uri, "--no-artefacts")[1]
    assert {("RB952", f"mlflow:{model}/2"), ("RB952", f"mlflow:{model}/3")} <= codes(report)

    # A version carrying regbook tags the ledger does not know.
    rogue = tmp_path / "rogue.bin"
    rogue.write_bytes(b"not sealed")
    run = c.create_run(
        c.get_experiment_by_name(
            f"regbook/{open_registry(env.ws, sheets=CARD_SHEETS).registry_id}"
        ).experiment_id
    )
    c.log_artifact(run.info.run_id, str(rogue), "model")
    made = c.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                  tags={"regbook.composite_id": f"{model}@9+x"})  # fmt: skip
    report = check(env, mlflow_uri, "--no-artefacts")[1]
    assert ("RB956", f"mlflow:{model}/{made.version}") in codes(report)

    # The artefact in MLflow's store changed: overwrite it through the run.
    v1 = c.get_model_version(model, "1")
    local = Path(c.download_artifacts(v1.run_id, "model", str(tmp_path / "dl")))
    target = next(p for p in local.iterdir())
    target.chmod(0o644)
    target.write_bytes(b"swapped weights")
    c.log_artifact(v1.run_id, str(target), "model")
    report = check(env, mlflow_uri)[1]
    assert ("RB955", f"mlflow:{model}/1") in codes(report)

    # A mirrored version deleted.
    c.delete_model_version(model, "4")
    report = check(env, mlflow_uri, "--no-artefacts")[1]
    assert ("RB953", f"mlflow:{model}/4") in codes(report)
    text = env.run("mlflow", "check", "--tracking-uri", mlflow_uri, "--no-artefacts")
    assert text.exit_code == 1 and "RB953 error" in text.stdout


def test_source_changed_is_caught(four, mlflow_uri, tmp_path):
    """A version deleted and made again with the same tags from another source."""
    env, model = four
    push(env, mlflow_uri)
    c = client(mlflow_uri)
    old = c.get_model_version(model, "3")
    c.delete_model_version(model, "3")
    run = c.create_run(c.get_run(old.run_id).info.experiment_id)
    fake = tmp_path / "fake.bin"
    fake.write_bytes(b"other")
    c.log_artifact(run.info.run_id, str(fake), "model")
    c.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                           tags=old.tags)  # fmt: skip
    report = check(env, mlflow_uri)[1]
    found = {f["code"] for f in report["findings"]}
    assert {"RB954", "RB955"} <= found


def test_push_refused_when_the_ledger_does_not_verify(four, mlflow_uri):
    env, model = four
    from conftest import edit_workbook

    def garble(wb):
        sheet = wb["Ledger"]
        row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 3).value == "register")
        payload = sheet.cell(row, 6)
        payload.value = payload.value.replace("run-1042", "run-1043")

    edit_workbook(env.workbook, garble)
    result = env.run("mlflow", "push", "--tracking-uri", mlflow_uri)
    assert result.exit_code == 1
    assert "does not verify" in result.stderr and "nothing was pushed" in result.stderr
    assert client(mlflow_uri).search_registered_models(f"name='{model}'") == []
    assert not (env.root / "mlflow-mirror.json").exists()


def test_push_refuses_an_artefact_that_is_not_the_sealed_one(four, mlflow_uri):
    env, model = four
    state = open_registry(env.ws, sheets=CARD_SHEETS).registry.get(model, 3)
    path = env.root / state.storage
    path.chmod(0o644)
    path.write_bytes(b"swapped")
    result = env.run("mlflow", "push", "--tracking-uri", mlflow_uri)
    assert result.exit_code == 2 and "nothing was pushed" in result.stderr
    assert client(mlflow_uri).search_registered_models(f"name='{model}'") == []


def test_server_down_one_line_exit_2_nothing_written(four):
    env, _model = four
    before = env.workbook.read_bytes()

    uri = f"http://127.0.0.1:{free_port()}"
    for command in (["push"], ["check"], ["import", "credit-risk"]):
        result = env.run("mlflow", *command, "--tracking-uri", uri)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert "does not answer" in result.stderr
    assert env.workbook.read_bytes() == before
    assert not (env.root / "mlflow-mirror.json").exists()


def test_import_versions_made_by_mlflow_then_seal_and_verify(env, mlflow_uri, tmp_path):
    model = f"churn-{uuid.uuid4().hex[:8]}"
    c = client(mlflow_uri)
    experiment = c.create_experiment(f"training-{model}")
    commit = "ab" * 20
    for n in range(2):
        folder = tmp_path / f"model{n}"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(f"weights {n}".encode() * 100)
        (folder / "MLmodel").write_text("flavors: {}\n")
        run = c.create_run(experiment, tags={"mlflow.source.git.commit": commit})
        c.log_param(run.info.run_id, "data_version", "0f" * 16)
        c.log_param(run.info.run_id, "max_depth", "6")
        if n == 0:
            c.set_tag(run.info.run_id, "pipeline_run", "airflow-77")
        c.log_metric(run.info.run_id, "auc_roc", 0.8 + n / 100)
        c.log_metric(run.info.run_id, "recall", 0.5)
        c.log_artifacts(run.info.run_id, str(folder), "model")
        if n == 0:
            c.create_registered_model(model)
        c.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    result = env.run("mlflow", "import", "--tracking-uri", mlflow_uri, model, "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert [d["mlflow_version"] for d in done["drafts"]] == ["1", "2"]
    assert done["drafts"][0]["missing"] == [] and done["drafts"][1]["missing"] == ["pipeline_run"]
    assert (env.root / done["drafts"][0]["storage"] / "weights.bin").is_file()
    # Nothing sealed until a person completes the draft and seals.
    assert open_registry(env.ws).registry.versions == {}
    again = json.loads(env.run("mlflow", "import", "--tracking-uri", mlflow_uri, model,
                               "--json").stdout)  # fmt: skip
    assert again["drafts"] == [] and len(again["skipped"]) == 2
    from conftest import edit_workbook

    row = done["drafts"][1]["row"]
    edit_workbook(env.workbook, lambda wb: wb["Models"].cell(row=row, column=11, value="run-2"))
    sealed = env.run("seal", key="sme")
    assert sealed.exit_code == 0, sealed.output
    verified = env.run("verify", "--json")
    assert verified.exit_code == 0, verified.output
    state = open_registry(Workspace.load(env.root)).registry.get(model, 1)
    assert state.payload["code_commit"] == commit
    assert state.payload["pipeline_run"] == "airflow-77"
    assert state.metric("auc_roc") == pytest.approx(0.8)
    assert state.metric("recall") == pytest.approx(0.5)
    assert state.payload["params"] == {"max_depth": "6"}


def test_missing_client_says_how_to_install(env, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    result = env.run("mlflow", "check", "--tracking-uri", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "pip install 'regbook[mlflow]'" in result.stderr


def test_aliases_configurable_and_not_taken_from_the_record(four, mlflow_uri):
    env, model = four
    push(env, mlflow_uri, "--alias", "Staging=candidate")
    c = client(mlflow_uri)
    assert c.get_registered_model(model).aliases == {"production": "1", "candidate": "2"}
    assert check(env, mlflow_uri, "--no-artefacts", "--alias", "Staging=candidate")[0] == 0
    # Someone moves production by hand, and renames it in the workspace's record to hide it.
    c.set_registered_model_alias(model, "production", "3")
    path = env.root / "mlflow-mirror.json"
    record = json.loads(path.read_text())
    record["servers"][mlflow_uri]["aliases"]["Production"] = "unused"
    path.write_text(json.dumps(record))
    code, report = check(env, mlflow_uri, "--no-artefacts", "--alias", "Staging=candidate")
    assert code == 1 and ("RB951", f"mlflow:{model}@production") in codes(report)
    bad = env.run("mlflow", "push", "--tracking-uri", mlflow_uri, "--alias", "Archived=old")
    assert bad.exit_code == 2 and "STAGE=ALIAS" in bad.stderr
