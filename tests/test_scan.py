"""The security scan: the corpus verdicts, the signed scan event, the gate that reads it,
and what someone who can edit the workspace can try against it."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import scan_corpus
from conftest import Env, edit_workbook, problems
from factory import METRICS, Version, build
from regbook.core.policy import Policy
from regbook.core.workspace import Workspace
from regbook.storage.scanning import scan_artefact, scan_stream
from test_trust import forge, ledger, version

MALICIOUS = scan_corpus.global_call("os", "system", "echo owned")
CLEAN = scan_corpus.clean_pickle()
# Staging first, then the gate: the steps before a promotion to Production.
TO_STAGING = (
    ("approve", "credit-risk@1", "Staging", "sme", "offline evaluation reviewed"),
    ("promote", "credit-risk@1", "Staging", "sme"),
)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def scanned(env: Env, ref: str = "credit-risk@1", key: str = "ci") -> tuple[int, dict]:
    result = env.run("scan", ref, "--json", key=key)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def verify(env: Env) -> tuple[int, dict]:
    result = env.run("verify", "--json", "--no-artefacts")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def gated(env: Env, ref: str = "credit-risk@1") -> tuple[int, dict]:
    result = env.run("gate", ref, "--json", key="ci")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def security(gate: dict) -> dict:
    return next(g for g in gate["gates"] if g["gate"] == "security")


def clean_claim(env: Env, findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A scan payload for credit-risk@1 (the pickle m.pkl) that claims it is clean, with
    ``findings`` listed for the file nonetheless: what a forger would sign."""
    state = version(env, "credit-risk@1")
    return {
        "content_hash": state.content_hash, "stage": "Staging", "verdict": "clean",
        "scanner": {"name": "picklescan", "version": "1.0.5"},
        "counts": {"critical": 0, "high": 0, "medium": 0, "low": 0}, "inconclusive": [],
        "files": [{"path": "m.pkl", "format": "pickle", "runs_code": True,
                   "verdict": "clean", "findings": findings or []}],
    }  # fmt: skip


def workspace_with(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, *versions: Version
) -> Env:
    monkeypatch.delenv("REGBOOK_KEY", raising=False)
    monkeypatch.delenv("REGBOOK_WORKSPACE", raising=False)
    return Env.of(build(tmp_path, versions, TO_STAGING), runner)


# --- the corpus ------------------------------------------------------------------------


def test_every_corpus_file_gets_its_documented_verdict(tmp_path: Path):
    verdicts = scan_corpus.build(tmp_path / "corpus")
    for name, expected in verdicts.items():
        report = scan_artefact(tmp_path / "corpus" / name)
        (scan,) = report.files
        assert scan.verdict == expected, (name, scan)
    report = scan_artefact(tmp_path / "corpus")
    assert {f.path: f.verdict for f in report.files} == verdicts
    assert set(report.inconclusive) == {n for n, v in verdicts.items() if v == "inconclusive"}


@pytest.mark.parametrize(
    ("name", "rule", "severity", "global_name"),
    [
        ("os_system.pkl", "dangerous-global", "critical", "os.system"),
        ("posix_system.pkl", "dangerous-global", "critical", "posix.system"),
        ("eval_stack_global.pkl", "dangerous-global", "critical", "builtins.eval"),
        ("popen.pkl", "dangerous-global", "critical", "subprocess.Popen"),
        ("model.pt", "dangerous-global", "critical", "os.system"),
        ("objects.npy", "dangerous-global", "critical", "os.system"),
        ("fake.safetensors", "disguised-pickle", "high", ""),
    ],
)
def test_each_malicious_file_names_the_global_it_reaches(
    tmp_path: Path, name: str, rule: str, severity: str, global_name: str
):
    data, _ = scan_corpus.files()[name]
    (tmp_path / name).write_bytes(data)
    (scan,) = scan_artefact(tmp_path / name).files
    assert (rule, severity, global_name) in {
        (f.rule, f.severity, f.global_name) for f in scan.findings
    }
    assert scan.runs_code


def test_formats_are_told_by_their_bytes_and_flagged_when_loading_runs_code(tmp_path: Path):
    scan_corpus.build(tmp_path)
    seen = {f.path: (f.format, f.runs_code) for f in scan_artefact(tmp_path).files}
    assert seen["real.safetensors"] == ("safetensors", False)
    assert seen["fake.safetensors"] == ("pickle", True)
    assert seen["clean.pkl"] == ("pickle", True)
    assert seen["model.pt"] == ("pytorch zip", True)
    assert seen["objects.npy"] == ("numpy (object array)", True)


def test_a_genuine_safetensors_file_from_the_library_is_clean(tmp_path: Path):
    import numpy
    from safetensors.numpy import save_file

    save_file({"w": numpy.arange(12, dtype="float32").reshape(3, 4)}, str(tmp_path / "m.st"))
    (scan,) = scan_artefact(tmp_path / "m.st").files
    assert (scan.format, scan.runs_code, scan.verdict) == ("safetensors", False, "clean")


def test_a_plain_numpy_array_and_a_gguf_header_are_clean_a_numeric_array_runs_no_code(
    tmp_path: Path,
):
    import numpy

    buf = io.BytesIO()
    numpy.save(buf, numpy.arange(10.0))
    assert scan_stream(io.BytesIO(buf.getvalue()), "a.npy", len(buf.getvalue())).format == "numpy"
    gguf = b"GGUF" + (3).to_bytes(4, "little") + b"\x00" * 16
    assert scan_stream(io.BytesIO(gguf), "m.gguf", len(gguf)).verdict == "clean"
    config = b'{"layers": 4}\n'
    assert scan_stream(io.BytesIO(config), "config.json", len(config)).format == "text"
    code = b"import os\nos.system('id')\n"
    scan = scan_stream(io.BytesIO(code), "modeling.py", len(code))
    assert (scan.format, scan.runs_code, scan.findings[0].severity) == (
        "python source",
        True,
        "medium",
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (CLEAN + b"trailing bytes", "does not parse to its end"),
        (MALICIOUS[:-3], "does not parse to its end"),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 32, "HDF5"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 16, "gzip"),
        (scan_corpus.torch_zip(CLEAN)[:-30], "zip"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}", "not JSON"),
    ],
)
def test_what_cannot_be_read_to_its_end_is_inconclusive_never_clean(data: bytes, why: str):
    scan = scan_stream(io.BytesIO(data), "model.bin", len(data))
    assert scan.verdict == "inconclusive" and why in scan.problem, scan


def test_a_broken_pickle_keeps_the_globals_it_did_reach(tmp_path: Path):
    (tmp_path / "m.pkl").write_bytes(MALICIOUS[:-1] + b"\xff\xff")
    (scan,) = scan_artefact(tmp_path / "m.pkl").files
    assert scan.verdict == "inconclusive"
    assert [f.global_name for f in scan.findings] == ["os.system"]


def test_the_scan_hashes_the_bytes_it_scans_as_coreutils_would(tmp_path: Path):
    from regbook.storage.hashing import hash_path

    scan_corpus.build(tmp_path / "a")
    assert scan_artefact(tmp_path / "a").content_hash == hash_path(tmp_path / "a")
    assert scan_artefact(tmp_path / "a" / "clean.pkl").content_hash == hash_path(
        tmp_path / "a" / "clean.pkl"
    )


# --- the scan command and the gate ----------------------------------------------------------


def test_a_clean_artefact_reaches_production_without_a_typed_security_metric(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=CLEAN, name="model.pkl"))
    assert gated(env)[0] == 1  # no scan, no metric: the security gate fails, as before
    code, report = scanned(env)
    assert code == 0 and report["verdict"] == "clean"
    assert report["scanner"]["name"] == "picklescan" and report["scanner"]["version"]
    assert report["files"] == [
        {"path": "model.pkl", "format": "pickle", "runs_code": True, "verdict": "clean",
         "findings": []}
    ]  # fmt: skip
    code, gate = gated(env)
    assert code == 0 and security(gate)["value"] == 0
    assert "from the scan in ledger event" in gate["security"]
    ok(env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead"))
    ok(env.run("promote", "credit-risk@1", "--to", "Production", key="ci"))
    assert verify(env)[0] == 0


def test_a_pickle_calling_os_system_fails_the_gate_and_promotion_names_it(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(
        tmp_path, runner, monkeypatch, Version(artefact=MALICIOUS, name="model.pkl")
    )
    result = env.run("scan", "credit-risk@1", key="ci")
    assert result.exit_code == 1
    assert "critical  dangerous-global: os.system" in result.output
    code, gate = gated(env)
    assert code == 1 and security(gate)["value"] == 1 and security(gate)["result"] == "FAIL"
    ok(env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead"))
    refused = env.run("promote", "credit-risk@1", "--to", "Production", key="ci")
    assert refused.exit_code == 1
    assert "model.pkl: dangerous-global os.system (critical)" in refused.output
    assert verify(env)[0] == 0  # a FAIL honestly recorded is no finding


def test_the_scan_is_signed_by_a_ci_key_by_default(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=CLEAN, name="m.pkl"))
    before = len(ledger(env))
    refused = env.run("scan", "credit-risk@1", key="sme")
    assert refused.exit_code == 2 and "ci" in refused.output
    assert len(ledger(env)) == before


def test_a_changed_artefact_is_refused_and_nothing_is_written(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=CLEAN, name="m.pkl"))
    stored = env.root / version(env, "credit-risk@1").storage
    os.chmod(stored, stat.S_IWUSR | stat.S_IRUSR)
    stored.write_bytes(MALICIOUS)
    before = env.workbook.read_bytes()
    result = env.run("scan", "credit-risk@1", key="ci")
    assert result.exit_code == 2 and "a changed artefact is not scanned" in result.output
    assert env.workbook.read_bytes() == before


def test_an_inconclusive_scan_fails_the_gate_naming_the_file(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(
        tmp_path,
        runner,
        monkeypatch,
        Version(artefact=CLEAN[:-9], name="truncated.pkl", metrics=(*METRICS,
                "security_high_findings=0")),
    )  # fmt: skip
    code, report = scanned(env)
    assert code == 1 and report["inconclusive"] == ["truncated.pkl"]
    code, gate = gated(env)
    assert code == 1 and security(gate)["value"] is None
    assert "inconclusive for truncated.pkl" in gate["security"]
    result = env.run("gate", "credit-risk@1", key="ci")
    assert "inconclusive for truncated.pkl" in result.output
    code, report = verify(env)
    assert ("RB901", report["findings"][0]["where"]) in problems(report)


def test_a_typed_metric_that_disagrees_is_a_finding_and_the_scan_wins(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(
        tmp_path,
        runner,
        monkeypatch,
        Version(artefact=MALICIOUS, name="m.pkl", metrics=(*METRICS, "security_high_findings=0")),
    )
    result = env.run("scan", "credit-risk@1", key="ci")
    assert result.exit_code == 1 and "the security gate now reads this scan" in result.output
    code, gate = gated(env)
    assert code == 1 and security(gate)["value"] == 1
    code, report = verify(env)
    assert code == 1 and {f["code"] for f in report["findings"] if f["severity"] != "info"} == {
        "RB901"
    }


def test_verify_re_derives_the_gate_from_the_scan(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    """A ci-key holder who signs a PASS gate by hand, with the typed 0, after a scan that
    found os.system: verify re-derives the gate from the scan."""
    env = workspace_with(
        tmp_path,
        runner,
        monkeypatch,
        Version(artefact=MALICIOUS, name="m.pkl", metrics=(*METRICS, "security_high_findings=0")),
    )
    scanned(env)
    state = version(env, "credit-risk@1")
    row = forge(env, "ci", "gate", "credit-risk@1", {
        "content_hash": state.content_hash, "stage": "Staging", "result": "PASS",
        "gates": [{"gate": g, "metric": m, "op": op, "threshold": t, "value": v,
                   "result": "PASS"} for g, m, op, t, v in (
            ("fairness", "demographic_parity_ratio", ">=", 0.8, 0.91),
            ("performance", "auc_roc", ">=", 0.75, 0.83),
            ("security", "security_high_findings", "==", 0, 0.0))]})  # fmt: skip
    code, report = verify(env)
    assert code == 1 and ("RB505", f"Ledger!F{row}") in problems(report)
    ok(env.run("approve", "credit-risk@1", "--to", "Production", key="governance-lead"))
    assert env.run("promote", "credit-risk@1", "--to", "Production", key="ci").exit_code == 1


def test_a_scan_of_another_artefact_replayed_onto_this_version_counts_for_nothing(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(
        tmp_path,
        runner,
        monkeypatch,
        Version(artefact=MALICIOUS, name="bad.pkl"),
        Version(artefact=CLEAN, name="good.pkl"),
    )
    ok(env.run("scan", "credit-risk@2", key="ci"))
    clean_scan = [e for e in ledger(env) if e.kind == "scan"][-1].payload
    clean_scan.pop("registry", None)
    row = forge(env, "ci", "scan", "credit-risk@1", clean_scan)
    code, report = verify(env)
    assert code == 1 and ("RB902", f"Ledger!F{row}") in problems(report)
    code, gate = gated(env)  # the replayed scan is not read: no metric, no scan
    assert code == 1 and security(gate)["value"] is None and "security" not in gate


def test_a_scan_event_edited_in_the_workbook_is_caught(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=MALICIOUS, name="m.pkl"))
    scanned(env)
    event = [e for e in ledger(env) if e.kind == "scan"][-1]
    row = event.row

    def clean_it(wb: Any) -> None:
        cell = wb["Ledger"][f"F{row}"]
        payload = json.loads(cell.value)
        payload["counts"]["critical"] = 0
        payload["files"][0]["findings"] = []
        payload["files"][0]["verdict"] = "clean"
        payload["verdict"] = "clean"
        cell.value = json.dumps(payload, separators=(",", ":"), sort_keys=True)

    edit_workbook(env.workbook, clean_it)
    code, report = verify(env)
    assert code == 1 and {"RB102"} <= {f["code"] for f in report["findings"]}
    assert env.run("gate", "credit-risk@1", key="ci").exit_code != 0  # writers refuse


def test_a_scan_signed_by_a_role_the_policy_does_not_allow_is_not_read(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=MALICIOUS, name="m.pkl"))
    forge(env, "sme", "scan", "credit-risk@1", clean_claim(env))
    code, report = verify(env)
    assert code == 1 and "RB106" in {f["code"] for f in report["findings"]}
    assert security(gated(env)[1])["value"] is None  # not read: no scan, no metric


# --- the policy -------------------------------------------------------------------------


def test_scan_roles_are_policy_and_the_default_policy_keeps_its_sha256():
    assert "scan" not in Policy().as_json()["roles"]
    moved = Policy(scan_roles=("ci", "sme"))
    assert moved.as_json()["roles"]["scan"] == ["ci", "sme"]
    assert Policy.from_json(moved.as_json()) == moved
    assert Policy.from_json(Policy().as_json()).scan_roles == ("ci",)
    assert moved.differences(Policy()) == ['[roles] scan: ["ci"] (in force: ["ci", "sme"])']


def test_regbook_toml_names_the_scan_roles(env: Env):
    toml = env.root / "regbook.toml"
    assert 'scan = ["ci"]' in toml.read_text()
    toml.write_text(toml.read_text().replace('scan = ["ci"]', 'scan = ["ci", "sme"]'))
    assert Workspace.load(env.root).settings.scan_roles == ("ci", "sme")
    code, report = verify(env)
    assert code == 1 and "RB117" in {f["code"] for f in report["findings"]}


# --- reports ----------------------------------------------------------------------------


def test_evidence_report_and_card_show_each_files_format_and_whether_it_runs_code(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "artefact"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(scan_corpus.safetensors_bytes())
    (folder / "head.pkl").write_bytes(MALICIOUS)
    env = workspace_with(tmp_path / "w", runner, monkeypatch, Version(artefact=folder))
    scanned(env)
    out = tmp_path / "out"
    out.mkdir()
    ok(env.run("report", "evidence", "credit-risk@1", "-o", str(out / "evidence.md")))
    ok(env.run("report", "card", "credit-risk@1", "-o", str(out / "card.md")))
    ok(env.run("report", "evidence", "credit-risk@1", "-o", str(out / "evidence.html")))
    ok(env.run("report", "evidence", "credit-risk@1", "-o", str(out / "evidence.pdf")))
    for name in ("evidence.md", "card.md"):
        text = (out / name).read_text()
        assert "| weights.safetensors | safetensors | no | clean | - |" in text
        assert "| head.pkl | pickle | yes | findings | critical dangerous-global os.system |" in (
            text
        )
        assert "critical + high: 1" in text
    html = (out / "evidence.html").read_text()
    assert "<td>head.pkl</td><td>pickle</td><td>yes</td>" in html
    from pypdf import PdfReader

    pdf = "".join(page.extract_text() for page in PdfReader(out / "evidence.pdf").pages)
    assert "weights.safetensors" in pdf and "os.system" in pdf


# --- joblib ---------------------------------------------------------------------------------


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo owned",))  # pickled by reference, never called


def _joblib(obj: object) -> bytes:
    import joblib

    out = io.BytesIO()
    joblib.dump(obj, out)
    return out.getvalue()


def test_joblib_arrays_are_stepped_over_and_what_follows_them_is_scanned():
    import numpy

    plain = _joblib({"coef": numpy.arange(64.0), "shape": numpy.zeros((3, 4), "int16")})
    scan = scan_stream(io.BytesIO(plain), "m.joblib", len(plain))
    assert scan.verdict == "findings" and not scan.problem
    assert {(f.severity, f.global_name) for f in scan.findings} == {
        ("medium", "joblib.numpy_pickle.NumpyArrayWrapper")
    }
    evil = _joblib({"coef": numpy.arange(64.0), "hook": _Evil()})
    scan = scan_stream(io.BytesIO(evil), "m.joblib", len(evil))
    assert not scan.problem
    assert {f.global_name for f in scan.findings if f.severity == "critical"} & {
        "os.system",
        "posix.system",
    }


def test_a_joblib_array_that_runs_past_the_file_is_inconclusive():
    import numpy

    data = _joblib({"coef": numpy.arange(64.0)})[:-20]
    scan = scan_stream(io.BytesIO(data), "m.joblib", len(data))
    assert scan.verdict == "inconclusive" and "past the end" in scan.problem


def test_a_scan_of_many_files_lists_those_with_findings_and_counts_the_rest(tmp_path: Path):
    from regbook.ledger.events import payload_cell
    from regbook.ledger.scans import recorded_scan
    from regbook.workflow.governance import scan_payload

    folder = tmp_path / "many"
    for i in range(1500):
        (folder / f"part-{i // 100:02}").mkdir(parents=True, exist_ok=True)
        (folder / f"part-{i // 100:02}" / f"shard-{i:04}.safetensors").write_bytes(
            scan_corpus.safetensors_bytes()
        )
    (folder / "hook.pkl").write_bytes(MALICIOUS)
    payload = scan_payload(scan_artefact(folder), "Staging")
    payload_cell("scan", payload)  # fits one Ledger cell
    assert [f["path"] for f in payload["files"]] == ["hook.pkl"]
    assert payload["clean_files"] == {
        "count": 1500, "runs_code": 0, "formats": {"safetensors": 1500}
    }  # fmt: skip
    read = recorded_scan(payload)
    assert not read.malformed and read.high_findings == 1


def test_the_history_sheet_shows_the_scan(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    from regbook.core.schema import HISTORY
    from regbook.workbook.read import read_workbook

    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=MALICIOUS, name="m.pkl"))
    scanned(env)
    rows = read_workbook(env.workbook, sheets=(HISTORY,))[HISTORY.name]
    assert any(
        str(v).startswith("scan findings: 1 critical, 0 high, 0 medium, 0 low (picklescan ")
        for v in (rows.value(i, "detail") for i in range(len(rows)))
    ), rows
    assert verify(env)[0] == 0


def test_a_signed_policy_can_let_another_role_sign_scans(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=MALICIOUS, name="m.pkl"))
    toml = env.root / "regbook.toml"
    toml.write_text(toml.read_text().replace('scan = ["ci"]', 'scan = ["ci", "sme"]'))
    assert env.run("scan", "credit-risk@1", key="sme").exit_code == 2  # not in force yet
    ok(env.run("policy", "sign", key="governance-lead"))
    shown = ok(env.run("policy", "show")).output
    assert "[roles] scan = ['ci', 'sme']" in shown
    assert env.run("scan", "credit-risk@1", key="sme").exit_code == 1  # signed, found os.system
    code, gate = gated(env)
    assert code == 1 and security(gate)["value"] == 1
    assert verify(env)[0] == 0


def test_a_ci_signed_scan_whose_counts_do_not_add_up_is_malformed_and_vouches_for_nothing(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
):
    env = workspace_with(tmp_path, runner, monkeypatch, Version(artefact=MALICIOUS, name="m.pkl"))
    found = {"rule": "dangerous-global", "severity": "critical", "global": "os.system",
             "detail": ""}  # fmt: skip
    row = forge(env, "ci", "scan", "credit-risk@1", clean_claim(env, [found]))
    code, report = verify(env)
    assert code == 1 and ("RB903", f"Ledger!F{row}") in problems(report)
    code, gate = gated(env)
    assert code == 1 and security(gate)["value"] is None
    assert "malformed" in gate["security"]
