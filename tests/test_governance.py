"""Tests for governance (DESIGN section 6): approvals, gates, the stage workflow, the
CI-only promotion to Production, the workflow findings of ``verify`` and the deploy check.

Two workspaces are built once per session and copied per test: ``gov`` has four
versions registered (None) and ``flow`` has them moved along the workflow by the CLI.
Tamper tests break one workflow rule the way someone with a signing key and openpyxl
could: an event signed with ``regbook.ledger.events.new_event`` and written as regbook writes
rows (Ledger row, the version's Models row and the regbook-only sheets), so the chain
and the views stay sound and only the rule is broken; or a view cell typed over in
Excel; or a setting changed in regbook.toml.
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import Env, copied_env, edit_workbook, finding, problems, snapshot
from factory import PASSING, STAFF, Built, Version, advance, build
from regbook.core.schema import APPROVALS, HISTORY, LEDGER, MODELS, Sheet
from regbook.crypto import keys
from regbook.crypto.keys import load_keyring
from regbook.ledger.events import LedgerEvent, new_event, read_events
from regbook.ledger.rules import ONLY_CI
from regbook.ledger.state import Registry
from regbook.registry.transaction import append_ledger_rows, models_row_of, refresh_derived_views
from regbook.registry.views import models_values, write_row
from regbook.workbook.read import read_workbook

ROLES = tuple(STAFF)
PRINCIPAL = STAFF  # key name (its role) -> principal
# churn@1 fails performance and has no security scan result: a missing metric.
FAILING = ("auc_roc=0.70", "demographic_parity_ratio=0.91")
# Registered by the SME from artefacts/MODEL-N.bin in pipeline run run-N.
VERSIONS = tuple(
    Version(model, metrics, pipeline_run=f"run-{n}")
    for n, (model, metrics) in enumerate(
        (("credit-risk", PASSING), ("credit-risk", PASSING), ("fraud-score", PASSING),
         ("churn", FAILING))
    )
)  # fmt: skip
# The Models row of each version in both prepared workspaces.
ROW = {"credit-risk@1": 2, "credit-risk@2": 3, "fraud-score@1": 4, "churn@1": 5}


# --- the prepared workspaces -----------------------------------------------------------


def cli_run(env: Env, *args: str, key: str | None = None) -> Result:
    result = env.run(*args, key=key)
    assert "Traceback" not in result.output
    return result


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def walk(env: Env, steps: list[tuple[str, str, str | None, str]]) -> None:
    """Run (command, MODEL@VERSION, --to or None, key role) steps; each must succeed."""
    for command, ref, to, role in steps:
        ok(cli_run(env, command, ref, *(("--to", to) if to else ()), key=role))


# credit-risk@1 the whole way to Production; credit-risk@2 to Staging; fraud-score@1 to
# Staging with a PASS and a Production approval, ready for CI; churn@1 stays in None.
FLOW = [
    ("approve", "credit-risk@1", "Staging", "sme"),
    ("promote", "credit-risk@1", "Staging", "sme"),
    ("gate", "credit-risk@1", None, "ci"),
    ("approve", "credit-risk@1", "Production", "governance-lead"),
    ("promote", "credit-risk@1", "Production", "ci"),
    ("approve", "credit-risk@2", "Staging", "governance-lead"),
    ("promote", "credit-risk@2", "Staging", "governance-lead"),
    ("approve", "fraud-score@1", "Staging", "sme"),
    ("promote", "fraud-score@1", "Staging", "sme"),
    ("gate", "fraud-score@1", None, "ci"),
    ("approve", "fraud-score@1", "Production", "governance-lead"),
]


# Steps used by several tests.
RETIRE_CREDIT_RISK_1 = [
    ("approve", "credit-risk@1", "Archived", "governance-lead"),
    ("promote", "credit-risk@1", "Archived", "governance-lead"),
]
CHURN_TO_STAGING_WITH_PRODUCTION_APPROVAL = [
    ("approve", "churn@1", "Staging", "sme"),
    ("promote", "churn@1", "Staging", "sme"),
    ("approve", "churn@1", "Production", "governance-lead"),
]


@pytest.fixture(scope="session")
def _gov_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gov-master"), VERSIONS).base


@pytest.fixture(scope="session")
def _flow_master(_gov_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("flow-master")
    shutil.copytree(_gov_master, base, symlinks=True, dirs_exist_ok=True)
    advance(Built.at(base), FLOW)
    return base


@pytest.fixture
def gov(_gov_master: Path, tmp_path: Path, runner: CliRunner, monkeypatch) -> Env:
    """credit-risk@1, credit-risk@2, fraud-score@1 (gates pass) and churn@1 (performance
    fails, security scan missing), all in None; keys for sme, governance-lead and ci."""
    return copied_env(_gov_master, tmp_path, runner, monkeypatch)


@pytest.fixture
def flow(_flow_master: Path, tmp_path: Path, runner: CliRunner, monkeypatch) -> Env:
    """gov moved along the workflow (FLOW): credit-risk@1 Production, credit-risk@2
    Staging, fraud-score@1 Staging with a PASS and a Production approval, churn@1 None."""
    return copied_env(_flow_master, tmp_path, runner, monkeypatch)


# --- helpers ---------------------------------------------------------------------------


def run_verify(env: Env, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli_run(env, "verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def ledger_events(env: Env) -> list[LedgerEvent]:
    events, bad = read_events(read_workbook(env.workbook)[LEDGER.name])
    assert not bad
    return events


def last_event(env: Env, kind: str, ref: str) -> LedgerEvent:
    model, version = ref.split("@")
    return [
        e
        for e in ledger_events(env)
        if e.kind == kind and e.model == model and e.version == int(version)
    ][-1]


def content_hash(env: Env, ref: str) -> str:
    return last_event(env, "register", ref).payload["artefact"]["hash"]


def link(event: LedgerEvent) -> dict[str, Any]:
    return {"hash": event.hash, "seq": event.seq}


def forge(env: Env, kind: str, ref: str, payload: dict[str, Any], role: str) -> int:
    """Sign an event as ``role``'s key would, after the ledger's head, and write it the
    way regbook writes: the Ledger row, the version's Models row and the regbook-only
    sheets from the replayed ledger. The event carries the registry's ID, as every event
    regbook signs does (an insider with the workspace reads it from regbook.toml).
    Returns the event's Ledger row."""
    model, version = ref.split("@")
    data = read_workbook(env.workbook)
    events, bad = read_events(data[LEDGER.name])
    assert not bad
    key = keys.load_private_key(env.keys[role])
    payload = {**payload, "registry": env.ws.settings.registry_id}
    event = new_event(events[-1], kind, model, int(version), payload, key, PRINCIPAL[role], role)
    registry, _ = Registry.replay([*events, event])
    state = registry.get(model, int(version))
    row = max(data[LEDGER.name].row_numbers) + 1

    def change(wb: Any) -> None:
        append_ledger_rows(wb, data[LEDGER.name].row_numbers, [event])
        if state is not None:
            at = models_row_of(data[MODELS.name], state)
            write_row(wb[MODELS.name], MODELS, at, models_values(state), "sealed", ("notes",))
        refresh_derived_views(wb, registry, load_keyring(env.ws))

    edit_workbook(env.workbook, change)
    return row


def transition(ref_env: Env, ref: str, to: str, **extra: Any) -> dict[str, Any]:
    """A transition payload for ``ref`` from its stage now."""
    model, version = ref.split("@")
    registry, _ = Registry.replay(ledger_events(ref_env))
    state = registry.get(model, int(version))
    assert state is not None
    return {"content_hash": state.content_hash, "from": state.stage, "to": to, **extra}


def revoke(env: Env, role: str, at: str = "2020-01-01T00:00:00Z") -> None:
    """Revoke the key of ``role`` as from ``at`` (valid-before in the past), as a
    governance lead does: `regbook keys revoke`, a signed keyring event. The lead's own
    key is revoked by a second lead, whom the first adds beforehand."""
    signer = "governance-lead"
    if role == "governance-lead":
        second = env.root.parent / "keys" / "second-lead"
        ok(cli_run(env, "keys", "new", "gail@example.com", "--role", "governance-lead",
                   "--out", str(second), key="governance-lead"))  # fmt: skip
        env.keys["second-lead"] = second
        signer = "second-lead"
    ok(cli_run(env, "keys", "revoke", PRINCIPAL[role], "--at", at, key=signer))


def set_setting(env: Env, section: str, line: str, new: str, *, sign: bool = True) -> None:
    """Change a line of regbook.toml; a policy setting is then signed into the ledger by
    the governance lead (unless ``sign`` is False), as the policy's owner does."""
    config = env.root / "regbook.toml"
    text = config.read_text()
    head, sep, tail = text.partition(f"[{section}]\n")
    assert sep and line in tail, f"{line!r} not in [{section}]"
    config.write_text(head + sep + tail.replace(line, new, 1))
    if sign and section in ("roles", "transitions", "gates"):
        ok(env.run("policy", "sign", key="governance-lead"))


def rows(env: Env, sheet: Sheet) -> list[dict[str, Any]]:
    """A view sheet read back with openpyxl, one dict per data row by column key."""
    import openpyxl

    ws = openpyxl.load_workbook(env.workbook)[sheet.name]
    out = []
    for values in ws.iter_rows(min_row=2, values_only=True):
        if any(v not in (None, "") for v in values):
            out.append({c.key: values[i] for i, c in enumerate(sheet.columns)})
    return out


def models_row(env: Env, ref: str) -> dict[str, Any]:
    model, version = ref.split("@")
    found = [r for r in rows(env, MODELS) if (r["model"], r["version"]) == (model, int(version))]
    assert len(found) == 1
    return found[0]


def artefact_path(env: Env, ref: str) -> Path:
    return env.root / models_row(env, ref)["storage"]


def workbook_unchanged(env: Env) -> Callable[[], None]:
    """Call before a refused command; the returned check asserts nothing was written."""
    before = snapshot(env.root)

    def check() -> None:
        assert snapshot(env.root) == before

    return check


# --- every transition with the right role, the wrong role and a revoked key -----------

# transition: (MODEL@VERSION in ``flow``, target, roles that may approve, a role that
# may not, roles that may sign the transition, roles that may not)
TRANSITIONS = {
    "None->Staging": ("churn@1", "Staging", ("sme", "governance-lead"), ("ci",),
                      ("sme", "governance-lead"), ("ci",)),
    "Staging->Production": ("fraud-score@1", "Production", ("governance-lead",), ("sme", "ci"),
                            ("ci",), ("governance-lead", "sme")),
    "Production->Archived": ("credit-risk@1", "Archived", ("governance-lead",), ("sme", "ci"),
                             ("governance-lead",), ("sme", "ci")),
    "Staging->Archived": ("credit-risk@2", "Archived", ("sme", "governance-lead"), ("ci",),
                          ("sme", "governance-lead"), ("ci",)),
    "None->Archived": ("churn@1", "Archived", ("sme", "governance-lead"), ("ci",),
                       ("sme", "governance-lead"), ("ci",)),
}  # fmt: skip


def _cases(which: int) -> list[Any]:
    return [
        pytest.param(name, role, id=f"{name}-{role}")
        for name, spec in TRANSITIONS.items()
        for role in spec[which]
    ]


@pytest.mark.parametrize("name,role", _cases(2))
def test_approve_with_a_role_that_may(flow: Env, name: str, role: str):
    ref, target, *_ = TRANSITIONS[name]
    before = len(rows(flow, APPROVALS))
    result = ok(cli_run(flow, "approve", ref, "--to", target, "--note", "review R-7", key=role))
    start = name.split("->")[0]
    assert f"approved {ref}: {start} -> {target} by {PRINCIPAL[role]} ({role})" in result.stdout
    assert content_hash(flow, ref) in result.stdout
    approvals = rows(flow, APPROVALS)
    assert len(approvals) == before + 1
    last = approvals[-1]
    model, version = ref.split("@")
    assert (last["model"], last["version"]) == (model, int(version))
    assert last["from_stage"] == start and last["to_stage"] == target
    assert last["principal"] == PRINCIPAL[role] and last["role"] == role
    assert last["content_hash"] == content_hash(flow, ref) and last["note"] == "review R-7"
    assert last["seq"] == ledger_events(flow)[-1].seq
    # An approval alone moves nothing.
    assert models_row(flow, ref)["stage"] == start
    assert run_verify(flow)[0] == 0


@pytest.mark.parametrize("name,role", _cases(3))
def test_approve_with_a_role_that_may_not(flow: Env, name: str, role: str):
    ref, target, allowed, *_ = TRANSITIONS[name]
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "approve", ref, "--to", target, key=role)
    assert result.exit_code == 2
    start = name.split("->")[0]
    assert (
        f"approving {start} -> {target} needs a key with role {' or '.join(allowed)}"
        in result.stderr
    )
    assert f"has {role}" in result.stderr and len(result.stderr.splitlines()) == 1
    unchanged()


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_approve_with_a_revoked_key(flow: Env, name: str):
    ref, target, allowed, *_ = TRANSITIONS[name]
    revoke(flow, allowed[0])
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "approve", ref, "--to", target, key=allowed[0])
    assert result.exit_code == 2
    assert "outside its validity window in allowed_signers (revoked" in result.stderr
    unchanged()


@pytest.mark.parametrize("name,role", _cases(4))
def test_promote_with_a_role_that_may(flow: Env, name: str, role: str):
    ref, target, allowed, *_ = TRANSITIONS[name]
    if target != "Production":  # fraud-score@1 has its approval already
        ok(cli_run(flow, "approve", ref, "--to", target, key=allowed[-1]))
    approval = last_event(flow, "approve", ref)
    result = ok(cli_run(flow, "promote", ref, "--to", target, key=role))
    start = name.split("->")[0]
    assert f"promoted {ref}: {start} -> {target} (signed by {PRINCIPAL[role]}" in result.stdout
    view = models_row(flow, ref)
    assert view["stage"] == target
    assert view["approval"] == f"{approval.signer} ({allowed[-1]}) {approval.at[:10]}"
    event = ledger_events(flow)[-1]
    assert (event.kind, event.signer, event.payload["to"]) == ("promote", PRINCIPAL[role], target)
    assert event.payload["approval"] == link(approval)
    assert run_verify(flow)[0] == 0


@pytest.mark.parametrize("name,role", _cases(5))
def test_promote_with_a_role_that_may_not(flow: Env, name: str, role: str):
    ref, target, allowed, _, signers, _ = TRANSITIONS[name]
    if target != "Production":
        ok(cli_run(flow, "approve", ref, "--to", target, key=allowed[-1]))
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "promote", ref, "--to", target, key=role)
    assert result.exit_code == 1
    assert f"promotion of {ref} to {target} refused; nothing was written" in result.stderr
    unmet = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    start = name.split("->")[0]
    if target == "Production":
        assert unmet == [f"  - {ONLY_CI}"]
    else:
        fingerprint = keys.load_private_key(flow.keys[role]).public.fingerprint
        assert unmet == [
            f"  - promotion {start} -> {target} needs a key with role "
            f"{' or '.join(signers)}; key {fingerprint} has {role}"
        ]
    unchanged()


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_promote_with_a_revoked_key(flow: Env, name: str):
    ref, target, allowed, _, signers, _ = TRANSITIONS[name]
    if target != "Production":
        ok(cli_run(flow, "approve", ref, "--to", target, key=allowed[-1]))
    revoke(flow, signers[0])
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "promote", ref, "--to", target, key=signers[0])
    assert result.exit_code == 1
    # The reason is the revocation, not a missing role.
    assert "outside its validity window in allowed_signers (revoked" in result.stderr
    assert ONLY_CI not in result.stderr
    unchanged()


def test_gate_with_the_right_role_the_wrong_role_and_a_revoked_key(flow: Env):
    unchanged = workbook_unchanged(flow)
    for role in ("sme", "governance-lead"):
        result = cli_run(flow, "gate", "credit-risk@2", key=role)
        assert result.exit_code == 2
        assert "recording a gate result needs a key with role ci" in result.stderr
    unchanged()
    ok(cli_run(flow, "gate", "credit-risk@2", key="ci"))
    assert models_row(flow, "credit-risk@2")["gate"] == "PASS"
    revoke(flow, "ci")
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "gate", "credit-risk@2", key="ci")
    assert result.exit_code == 2 and "outside its validity window" in result.stderr
    unchanged()


# --- invalid transitions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ref,target,reason",
    [
        ("churn@1", "Production", "None -> Production is not a transition; from None a "
         "version may go to Staging or Archived"),
        ("credit-risk@2", "None", "Staging -> None is not a transition; from Staging a "
         "version may go to Production or Archived"),
        ("credit-risk@1", "Staging", "Production -> Staging is not a transition; from "
         "Production a version may go to Archived"),
        ("credit-risk@2", "Staging", "the version is already in Staging"),
    ],
)  # fmt: skip
def test_invalid_transitions_are_refused(flow: Env, ref: str, target: str, reason: str):
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "approve", ref, "--to", target, key="governance-lead")
    assert result.exit_code == 2
    assert result.stderr == f"regbook: cannot approve {ref} for {target}: {reason}\n"
    result = cli_run(flow, "promote", ref, "--to", target, key="ci")
    assert result.exit_code == 1
    assert f"refused; nothing was written. Unmet:\n  - {reason}\n" in result.stderr
    unchanged()


def test_archived_is_final(flow: Env):
    walk(flow, RETIRE_CREDIT_RISK_1)
    assert models_row(flow, "credit-risk@1")["stage"] == "Archived"
    unchanged = workbook_unchanged(flow)
    # It was in Production: a rollback there is the only way out (test_everyday).
    final = "the version is Archived: only a rollback to Production takes it out again"
    for target in ("None", "Staging", "Archived"):
        result = cli_run(flow, "approve", "credit-risk@1", "--to", target, key="governance-lead")
        assert result.exit_code == 2 and final in result.stderr
        result = cli_run(flow, "promote", "credit-risk@1", "--to", target, key="ci")
        assert result.exit_code == 1 and final in result.stderr
    unchanged()
    assert run_verify(flow)[0] == 0


# --- gates -----------------------------------------------------------------------------


def test_gate_pass_prints_a_table_and_records(gov: Env):
    result = ok(cli_run(gov, "gate", "credit-risk@1", key="ci"))
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["gate", "rule", "value", "result"]
    assert lines[1].split() == ["performance", "auc_roc", ">=", "0.75", "0.83", "PASS"]
    assert lines[2].split() == ["fairness", "demographic_parity_ratio", ">=", "0.8", "0.91", "PASS"]
    assert lines[3].split() == ["security", "security_high_findings", "==", "0", "0", "PASS"]
    event = ledger_events(gov)[-1]
    assert lines[4] == f"credit-risk@1: PASS (ledger event {event.seq})"
    assert (event.kind, event.signer, event.payload["result"]) == ("gate", PRINCIPAL["ci"], "PASS")
    assert event.payload["content_hash"] == content_hash(gov, "credit-risk@1")
    assert models_row(gov, "credit-risk@1")["gate"] == "PASS"
    history = rows(gov, HISTORY)[-1]
    assert history["event"] == "gate" and history["result"] == "PASS"
    assert history["principal"] == PRINCIPAL["ci"] and history["role"] == "ci"
    assert history["detail"] == "performance PASS; fairness PASS; security PASS"
    assert run_verify(gov)[0] == 0


def test_gate_fail_and_missing_metric_are_recorded_and_exit_1(gov: Env):
    result = cli_run(gov, "gate", "churn@1", key="ci")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["performance", "auc_roc", ">=", "0.75", "0.7", "FAIL"]
    assert lines[2].split()[-2:] == ["0.91", "PASS"]
    assert lines[3].split() == ["security", "security_high_findings", "==", "0", "missing", "FAIL"]
    assert lines[4].startswith("churn@1: FAIL (ledger event ")
    # The FAIL is a signed event like a PASS, shown in Models and History.
    event = ledger_events(gov)[-1]
    assert event.kind == "gate" and event.payload["result"] == "FAIL"
    security = event.payload["gates"][2]
    assert security["value"] is None and security["result"] == "FAIL"
    assert models_row(gov, "churn@1")["gate"] == "FAIL"
    assert rows(gov, HISTORY)[-1]["result"] == "FAIL"
    assert rows(gov, HISTORY)[-1]["detail"] == "performance FAIL; fairness PASS; security FAIL"
    # A recorded FAIL is the truth, not a finding.
    assert run_verify(gov)[0] == 0


def test_gate_json(gov: Env):
    result = cli_run(gov, "gate", "churn@1", "--json", key="ci")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["model"] == "churn" and data["version"] == 1 and data["result"] == "FAIL"
    assert data["ledger_seq"] == ledger_events(gov)[-1].seq
    assert data["gates"] == [
        {
            "gate": "performance",
            "metric": "auc_roc",
            "op": ">=",
            "threshold": 0.75,
            "value": 0.7,
            "result": "FAIL",
        },
        {
            "gate": "fairness",
            "metric": "demographic_parity_ratio",
            "op": ">=",
            "threshold": 0.8,
            "value": 0.91,
            "result": "PASS",
        },
        {
            "gate": "security",
            "metric": "security_high_findings",
            "op": "==",
            "threshold": 0,
            "value": None,
            "result": "FAIL",
        },
    ]
    passing = json.loads(ok(cli_run(gov, "gate", "fraud-score@1", "--json", key="ci")).stdout)
    assert passing["result"] == "PASS" and [g["result"] for g in passing["gates"]] == ["PASS"] * 3


def test_gates_come_from_regbook_toml(gov: Env):
    set_setting(gov, "gates", 'performance = "auc_roc >= 0.75"', 'performance = "auc_roc >= 0.65"')
    set_setting(gov, "gates", 'security = "security_high_findings == 0"', "")
    result = ok(cli_run(gov, "gate", "churn@1", key="ci"))
    assert "auc_roc >= 0.65" in result.stdout and "security" not in result.stdout


# --- promotion refused for each unmet precondition, all listed at once -----------------


def _unmet(result: Result) -> list[str]:
    return [line[4:] for line in result.stderr.splitlines() if line.startswith("  - ")]


def test_promotion_lists_every_unmet_precondition_at_once(flow: Env):
    # credit-risk@2 is in Staging: no gate result, no Production approval; credit-risk@1
    # is in Production; its artefact is changed; and the key is the lead's, not CI's.
    path = artefact_path(flow, "credit-risk@2")
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    path.write_bytes(b"swapped")
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "promote", "credit-risk@2", "--to", "Production", key="governance-lead")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "regbook: promotion of credit-risk@2 to Production refused; nothing was written."
    )
    unmet = _unmet(result)
    assert unmet[0] == ONLY_CI
    assert unmet[1] == (
        "no signed approval for Staging -> Production (needs governance-lead: "
        "`regbook approve credit-risk@2 --to Production`)"
    )
    assert unmet[2] == "no validation gate result: run `regbook gate credit-risk@2` in CI"
    assert unmet[3].startswith(f"the artefact at {models_row(flow, 'credit-risk@2')['storage']} ")
    assert "not the sealed" in unmet[3]
    assert unmet[4] == (
        "credit-risk@1 is in Production (at most one Production version per model): give "
        "--archive-previous to archive it into its bag in this command, with its signed "
        "approval to Archived (`regbook approve credit-risk@1 --to Archived`)"
    )
    assert len(unmet) == 5
    unchanged()


def test_promotion_refused_on_a_failed_gate(gov: Env):
    walk(gov, CHURN_TO_STAGING_WITH_PRODUCTION_APPROVAL)
    assert cli_run(gov, "gate", "churn@1", key="ci").exit_code == 1
    gate = last_event(gov, "gate", "churn@1")
    result = cli_run(gov, "promote", "churn@1", "--to", "Production", key="ci")
    assert result.exit_code == 1
    assert _unmet(result) == [f"the latest gate result (ledger event {gate.seq}) is FAIL"]


def test_promotion_counts_the_latest_gate_result(flow: Env):
    # fraud-score@1 passed; the thresholds are tightened and CI gates it again: FAIL.
    set_setting(flow, "gates", '"auc_roc >= 0.75"', '"auc_roc >= 0.90"')
    assert cli_run(flow, "gate", "fraud-score@1", key="ci").exit_code == 1
    result = cli_run(flow, "promote", "fraud-score@1", "--to", "Production", key="ci")
    assert result.exit_code == 1
    assert _unmet(result) == [
        f"the latest gate result (ledger event {ledger_events(flow)[-1].seq}) is FAIL"
    ]


def test_promotion_refused_when_the_thresholds_changed_since_the_pass(flow: Env):
    # fraud-score@1 passed at auc_roc >= 0.75; the bar is now 0.90 and CI did not re-gate.
    set_setting(flow, "gates", '"auc_roc >= 0.75"', '"auc_roc >= 0.90"')
    gate = last_event(flow, "gate", "fraud-score@1")
    unchanged = workbook_unchanged(flow)
    result = cli_run(flow, "promote", "fraud-score@1", "--to", "Production", key="ci")
    assert result.exit_code == 1
    assert _unmet(result) == [
        f"the latest gate result (ledger event {gate.seq}) is PASS, but the thresholds in "
        "regbook.toml now give FAIL: run `regbook gate fraud-score@1` again"
    ]
    unchanged()


def test_promotion_refused_on_a_gate_result_that_does_not_follow(gov: Env):
    walk(gov, CHURN_TO_STAGING_WITH_PRODUCTION_APPROVAL)
    real = json.loads(cli_run(gov, "gate", "churn@1", "--json", key="ci").stdout)
    gates = [dict(g, result="PASS") for g in real["gates"]]
    gates[0]["value"], gates[2]["value"] = 0.95, 0
    payload = {
        "content_hash": content_hash(gov, "churn@1"),
        "stage": "Staging",
        "gates": gates,
        "result": "PASS",
    }
    row = forge(gov, "gate", "churn@1", payload, "ci")
    result = cli_run(gov, "promote", "churn@1", "--to", "Production", key="ci")
    assert result.exit_code == 1
    assert _unmet(result) == [
        f"the latest gate result (ledger event {row - 1}) does not follow from the sealed "
        "metrics (run `regbook verify`)"
    ]


def test_promotion_refused_on_a_missing_artefact(flow: Env):
    path = artefact_path(flow, "fraud-score@1")
    path.chmod(stat.S_IWUSR | stat.S_IRUSR)
    path.unlink()
    result = cli_run(flow, "promote", "fraud-score@1", "--to", "Production", key="ci")
    assert result.exit_code == 1
    storage = models_row(flow, "fraud-score@1")["storage"]
    assert _unmet(result) == [f"the artefact of fraud-score@1 is missing at {storage}"]


def test_promotion_refused_on_an_approval_by_the_wrong_role(flow: Env):
    # An sme signs a Production approval (the CLI refuses; made by hand here).
    row = forge(
        flow,
        "approve",
        "credit-risk@2",
        transition(flow, "credit-risk@2", "Production", note=""),
        "sme",
    )
    ok(cli_run(flow, "gate", "credit-risk@2", key="ci"))
    walk(flow, RETIRE_CREDIT_RISK_1)
    result = cli_run(flow, "promote", "credit-risk@2", "--to", "Production", key="ci")
    assert result.exit_code == 1
    seq = row - 1
    assert _unmet(result) == [
        f"the approval in ledger event {seq} was signed as sme; Staging -> Production "
        "needs governance-lead"
    ]
    # verify names the event: an sme may not sign that approval.
    code, report = run_verify(flow)
    assert code == 1 and problems(report) == {("RB106", f"Ledger!K{row}")}


def test_promotion_to_production_archives_nothing_and_needs_the_old_one_archived(flow: Env):
    walk(
        flow,
        [
            ("approve", "credit-risk@2", "Production", "governance-lead"),
            ("gate", "credit-risk@2", None, "ci"),
        ],
    )
    result = cli_run(flow, "promote", "credit-risk@2", "--to", "Production", key="ci")
    assert result.exit_code == 1
    assert _unmet(result) == [
        "credit-risk@1 is in Production (at most one Production version per model): give "
        "--archive-previous to archive it into its bag in this command, with its signed "
        "approval to Archived (`regbook approve credit-risk@1 --to Archived`)"
    ]
    walk(flow, [*RETIRE_CREDIT_RISK_1, ("promote", "credit-risk@2", "Production", "ci")])
    assert models_row(flow, "credit-risk@1")["stage"] == "Archived"
    assert models_row(flow, "credit-risk@2")["stage"] == "Production"
    assert run_verify(flow)[0] == 0


# --- replayed approval -----------------------------------------------------------------


def test_replayed_approval_is_refused_and_found(flow: Env):
    # Version 1's signed Production approval, replayed onto version 2: same transition,
    # same signer, but it names version 1's content hash.
    old = last_event(flow, "approve", "credit-risk@1")
    assert old.payload["to"] == "Production"
    row = forge(flow, "approve", "credit-risk@2", dict(old.payload), "governance-lead")
    code, report = run_verify(flow)
    assert code == 1 and problems(report) == {("RB503", f"Ledger!F{row}")}
    message = finding(report, "RB503", f"Ledger!F{row}")["message"]
    assert "(a replayed approval)" in message and old.payload["content_hash"][:24] in message
    # The Approvals sheet shows what the ledger says: the other version's hash.
    assert rows(flow, APPROVALS)[-1]["content_hash"] == content_hash(flow, "credit-risk@1")
    # promote will not use it.
    walk(flow, [("gate", "credit-risk@2", None, "ci"), *RETIRE_CREDIT_RISK_1])
    result = cli_run(flow, "promote", "credit-risk@2", "--to", "Production", key="ci")
    assert result.exit_code == 1
    assert _unmet(result) == [
        f"the approval in ledger event {row - 1} names content hash "
        f"{old.payload['content_hash'][:24]}..., not this version's "
        f"{content_hash(flow, 'credit-risk@2')[:24]}... (a replayed approval)"
    ]


def test_transition_that_uses_another_versions_approval(gov: Env):
    ok(cli_run(gov, "approve", "credit-risk@1", "--to", "Staging", key="sme"))
    approval = last_event(gov, "approve", "credit-risk@1")
    payload = transition(gov, "credit-risk@2", "Staging", approval=link(approval))
    row = forge(gov, "promote", "credit-risk@2", payload, "sme")
    code, report = run_verify(gov)
    assert code == 1 and problems(report) == {("RB503", f"Ledger!F{row}")}
    message = finding(report, "RB503", f"Ledger!F{row}")["message"]
    assert f"uses the approval of credit-risk@1 (event {approval.seq})" in message


# --- each workflow finding, produced by hand -------------------------------------------


def test_stage_reached_without_approval(gov: Env):
    row = forge(gov, "promote", "churn@1", transition(gov, "churn@1", "Staging"), "sme")
    assert models_row(gov, "churn@1")["stage"] == "Staging"
    code, report = run_verify(gov)
    assert code == 1 and problems(report) == {("RB501", f"Ledger!F{row}")}
    message = finding(report, "RB501", f"Ledger!F{row}")["message"]
    assert message == (
        f"event {row - 1} (promote churn@1): None -> Staging was reached without a signed approval"
    )


def test_stage_reached_with_the_approval_of_another_transition(gov: Env):
    ok(cli_run(gov, "approve", "churn@1", "--to", "Archived", key="sme"))
    approval = last_event(gov, "approve", "churn@1")
    payload = transition(gov, "churn@1", "Staging", approval=link(approval))
    row = forge(gov, "promote", "churn@1", payload, "sme")
    code, report = run_verify(gov)
    assert code == 1 and problems(report) == {("RB501", f"Ledger!F{row}")}
    message = finding(report, "RB501", f"Ledger!F{row}")["message"]
    assert f"(event {approval.seq}) is for None -> Archived, not None -> Staging" in message


def test_production_not_signed_by_ci(flow: Env):
    # The lead has every precondition but signs the transition herself.
    gate = last_event(flow, "gate", "fraud-score@1")
    approval = last_event(flow, "approve", "fraud-score@1")
    payload = transition(
        flow, "fraud-score@1", "Production", approval=link(approval), gate=link(gate)
    )
    row = forge(flow, "promote", "fraud-score@1", payload, "governance-lead")
    code, report = run_verify(flow)
    assert code == 1
    # The signature check says the role may not sign it; the workflow says why.
    assert problems(report) == {("RB502", f"Ledger!F{row}"), ("RB106", f"Ledger!K{row}")}
    message = finding(report, "RB502", f"Ledger!F{row}")["message"]
    assert f"signed by gina@example.com acting as governance-lead; {ONLY_CI}" in message
    assert cli_run(flow, "verify", "--for-deploy", "fraud-score@1").exit_code == 1


def test_approval_signed_with_a_revoked_key(gov: Env):
    # The lead's key was revoked (valid-before 2020); an approval is signed with it anyway.
    revoke(gov, "governance-lead")
    row = forge(
        gov,
        "approve",
        "credit-risk@1",
        transition(gov, "credit-risk@1", "Staging", note=""),
        "governance-lead",
    )
    code, report = run_verify(gov)
    # Every event of the lead's is outside the window (valid-before 2020): this one, and
    # the keyring events it signed since (revoked as from 2020, the key vouches for
    # nothing after it). This one also comes after the revocation in the chain (RB115).
    lead_rows = {e.row for e in ledger_events(gov) if e.signer == PRINCIPAL["governance-lead"]}
    assert row in lead_rows and len(lead_rows) == 5
    assert code == 1 and problems(report) == {
        *{("RB107", f"Ledger!K{r}") for r in lead_rows},
        ("RB115", f"Ledger!K{row}"),
    }
    assert (
        "valid until 2020-01-01T00:00:00Z" in finding(report, "RB107", f"Ledger!K{row}")["message"]
    )
    result = cli_run(gov, "promote", "credit-risk@1", "--to", "Staging", key="sme")
    assert result.exit_code == 1
    assert _unmet(result)[0].startswith(f"the approval in ledger event {row - 1} does not verify")
    assert "valid until 2020-01-01T00:00:00Z" in _unmet(result)[0]


def test_transition_signed_with_a_revoked_key(flow: Env):
    # The lead approves retiring credit-risk@2; the sme, whose key has since been revoked,
    # signs the transition anyway (the CLI refuses; made by hand here).
    ok(cli_run(flow, "approve", "credit-risk@2", "--to", "Archived", key="governance-lead"))
    # The lead revokes the sme's key as regbook keys does: a signed keyring event.
    ok(cli_run(flow, "keys", "revoke", PRINCIPAL["sme"], "--at", "2020-01-01T00:00:00Z",
               key="governance-lead"))  # fmt: skip
    payload = transition(
        flow,
        "credit-risk@2",
        "Archived",
        approval=link(last_event(flow, "approve", "credit-risk@2")),
    )
    row = forge(flow, "promote", "credit-risk@2", payload, "sme")
    code, report = run_verify(flow)
    # Every event of the sme's is outside the window (valid-before 2020), this one too.
    sme_rows = {e.row for e in ledger_events(flow) if e.signer == PRINCIPAL["sme"]}
    assert row in sme_rows
    # And this one comes after the keyring event that revoked the key (RB115).
    assert code == 1 and problems(report) == {("RB107", f"Ledger!K{r}") for r in sme_rows} | {
        ("RB115", f"Ledger!K{row}")
    }


def test_two_production_versions(flow: Env):
    walk(
        flow,
        [
            ("approve", "credit-risk@2", "Production", "governance-lead"),
            ("gate", "credit-risk@2", None, "ci"),
        ],
    )
    payload = transition(
        flow,
        "credit-risk@2",
        "Production",
        approval=link(last_event(flow, "approve", "credit-risk@2")),
        gate=link(last_event(flow, "gate", "credit-risk@2")),
        artefact_checked=content_hash(flow, "credit-risk@2"),
    )
    row = forge(flow, "promote", "credit-risk@2", payload, "ci")
    assert models_row(flow, "credit-risk@1")["stage"] == "Production"
    assert models_row(flow, "credit-risk@2")["stage"] == "Production"
    code, report = run_verify(flow)
    assert code == 1 and problems(report) == {("RB504", f"Ledger!F{row}")}
    message = finding(report, "RB504", f"Ledger!F{row}")["message"]
    assert "credit-risk already had version 1 in Production" in message
    # The version promoted against the rule may not be deployed.
    assert cli_run(flow, "verify", "--for-deploy", "credit-risk@2").exit_code == 1


def test_gate_result_stale_after_thresholds_tightened(flow: Env):
    set_setting(flow, "gates", '"auc_roc >= 0.75"', '"auc_roc >= 0.90"')
    code, report = run_verify(flow)
    assert code == 1
    gates = {ref: last_event(flow, "gate", ref).row for ref in ("credit-risk@1", "fraud-score@1")}
    assert problems(report) == {("RB505", f"Ledger!F{row}") for row in gates.values()}
    message = finding(report, "RB505", f"Ledger!F{gates['credit-risk@1']}")["message"]
    assert "is PASS, but the thresholds in force give FAIL on the sealed metrics" in message
    # The version in Production may not be deployed on a result that no longer holds.
    result = cli_run(flow, "verify", "--for-deploy", "credit-risk@1")
    assert result.exit_code == 1 and "RB505" in result.stdout


def test_forged_gate_with_a_wrong_value(gov: Env):
    # CI's key signs a PASS for churn@1 claiming auc_roc 0.95 and no security findings.
    real = json.loads(cli_run(gov, "gate", "churn@1", "--json", key="ci").stdout)
    gates = [dict(g, result="PASS") for g in real["gates"]]
    gates[0]["value"] = 0.95
    gates[2]["value"] = 0
    payload = {
        "content_hash": content_hash(gov, "churn@1"),
        "stage": "None",
        "gates": gates,
        "result": "PASS",
    }
    row = forge(gov, "gate", "churn@1", payload, "ci")
    assert models_row(gov, "churn@1")["gate"] == "PASS"
    code, report = run_verify(gov)
    assert code == 1
    messages = [f["message"] for f in report["findings"] if f["where"] == f"Ledger!F{row}"]
    assert problems(report) == {("RB505", f"Ledger!F{row}")}
    assert any("recorded auc_roc = 0.95, but the sealed value is 0.7" in m for m in messages)
    assert any("recorded security_high_findings = 0" in m and "None" in m for m in messages)


def test_forged_gate_with_a_result_that_does_not_follow(gov: Env):
    # The values are the sealed ones but the recorded results say PASS.
    real = json.loads(cli_run(gov, "gate", "churn@1", "--json", key="ci").stdout)
    payload = {
        "content_hash": content_hash(gov, "churn@1"),
        "stage": "None",
        "gates": [dict(g, result="PASS") for g in real["gates"]],
        "result": "PASS",
    }
    row = forge(gov, "gate", "churn@1", payload, "ci")
    code, report = run_verify(gov)
    assert code == 1
    assert {(f["code"], f["where"]) for f in report["findings"]} == {("RB505", f"Ledger!F{row}")}
    messages = " | ".join(f["message"] for f in report["findings"])
    assert "gate performance recorded PASS for auc_roc >= 0.75 with value 0.7" in messages
    assert "thresholds in force give FAIL" in messages


@pytest.mark.parametrize(
    "key,value",
    [
        ("stage", "Staging"),
        ("approval", "mallory@example.com (governance-lead) 2026-01-02"),
        ("gate", "FAIL"),
        ("deployed_on", datetime(2020, 1, 3)),
    ],
)
def test_workflow_cell_edited_by_hand(flow: Env, key: str, value: Any):
    ref = MODELS.ref(key, ROW["credit-risk@1"])

    def change(wb: Any) -> None:
        sheet, cell = ref.split("!")
        wb[sheet][cell] = value

    edit_workbook(flow.workbook, change)
    code, report = run_verify(flow)
    assert code == 1 and problems(report) == {("RB311", ref)}
    assert "differs from the ledger" in finding(report, "RB311", ref)["message"]
    # Deploying trusts the ledger, but a hand-edited workflow cell still fails the check.
    assert cli_run(flow, "verify", "--for-deploy", "credit-risk@1").exit_code == 1
    ok(cli_run(flow, "restore"))
    assert run_verify(flow)[0] == 0


def test_transition_not_in_the_workflow(gov: Env):
    row = forge(gov, "promote", "churn@1", transition(gov, "churn@1", "Production"), "ci")
    code, report = run_verify(gov)
    assert code == 1
    # Not a transition, no approval, no gate result: each rule says so.
    assert problems(report) == {(c, f"Ledger!F{row}") for c in ("RB506", "RB501", "RB507")}
    message = finding(report, "RB506", f"Ledger!F{row}")["message"]
    assert "None -> Production is not a transition" in message


def test_transition_out_of_archived(flow: Env):
    walk(
        flow,
        [
            ("approve", "credit-risk@2", "Archived", "sme"),
            ("promote", "credit-risk@2", "Archived", "sme"),
        ],
    )
    row = forge(
        flow, "promote", "credit-risk@2", transition(flow, "credit-risk@2", "Staging"), "sme"
    )
    code, report = run_verify(flow)
    assert code == 1
    # No role may sign a transition out of Archived, so the signature check says so too.
    assert problems(report) == {
        ("RB506", f"Ledger!F{row}"),
        ("RB501", f"Ledger!F{row}"),
        ("RB106", f"Ledger!K{row}"),
    }
    assert "Archived, which is final" in finding(report, "RB506", f"Ledger!F{row}")["message"]


def test_production_without_a_pass(gov: Env):
    walk(gov, CHURN_TO_STAGING_WITH_PRODUCTION_APPROVAL)
    assert cli_run(gov, "gate", "churn@1", key="ci").exit_code == 1
    payload = transition(
        gov, "churn@1", "Production", approval=link(last_event(gov, "approve", "churn@1"))
    )
    row = forge(gov, "promote", "churn@1", payload, "ci")
    code, report = run_verify(gov)
    assert code == 1 and problems(report) == {("RB507", f"Ledger!F{row}")}
    assert (
        "without a PASS gate result (event" in finding(report, "RB507", f"Ledger!F{row}")["message"]
    )


def test_event_for_a_version_never_registered(gov: Env):
    payload = {
        "content_hash": content_hash(gov, "churn@1"),
        "from": "None",
        "to": "Staging",
        "note": "",
    }
    row = forge(gov, "approve", "churn@9", payload, "sme")
    code, report = run_verify(gov)
    assert code == 1 and problems(report) == {("RB508", f"Ledger!F{row}")}


# --- the views after each step, and verify clean after a full path ---------------------


def test_views_after_each_step_of_the_full_path(gov: Env):
    ref = "credit-risk@1"
    row = models_row(gov, ref)
    assert (row["stage"], row["approval"], row["gate"], row["deployed_on"]) == (
        "None",
        None,
        None,
        None,
    )
    assert rows(gov, APPROVALS) == []
    # The three keyring events of the keys made with the workspace, then 4 registrations.
    assert [(h["event"], h["model"]) for h in rows(gov, HISTORY)] == [
        ("keyring", "(registry)")
    ] * 3 + [
        ("register", model) for model in ("credit-risk", "credit-risk", "fraud-score", "churn")
    ]

    def step(command: str, to: str | None, role: str) -> LedgerEvent:
        walk(gov, [(command, ref, to, role)])
        assert run_verify(gov)[0] == 0
        return ledger_events(gov)[-1]

    approval = step("approve", "Staging", "sme")
    assert models_row(gov, ref)["stage"] == "None"  # approved, not moved
    first = rows(gov, APPROVALS)[0]
    assert {
        k: first[k]
        for k in ("model", "version", "from_stage", "to_stage", "principal", "role", "seq")
    } == {
        "model": "credit-risk",
        "version": 1,
        "from_stage": "None",
        "to_stage": "Staging",
        "principal": "alice@example.com",
        "role": "sme",
        "seq": approval.seq,
    }
    assert first["fingerprint"] == approval.fingerprint
    assert first["at"] == datetime.strptime(approval.at, "%Y-%m-%dT%H:%M:%SZ")

    moved = step("promote", "Staging", "sme")
    row = models_row(gov, ref)
    assert row["stage"] == "Staging"
    assert row["approval"] == f"alice@example.com (sme) {approval.at[:10]}"
    history = rows(gov, HISTORY)[-1]
    assert {k: v for k, v in history.items() if k not in ("at", "result")} == {
        "model": "credit-risk",
        "version": 1,
        "event": "promote",
        "from_stage": "None",
        "to_stage": "Staging",
        "principal": "alice@example.com",
        "role": "sme",
        "detail": f"approval: event {approval.seq}",
        "seq": moved.seq,
    }

    gate = step("gate", None, "ci")
    assert models_row(gov, ref)["gate"] == "PASS"
    assert rows(gov, HISTORY)[-1]["seq"] == gate.seq

    lead = step("approve", "Production", "governance-lead")
    assert len(rows(gov, APPROVALS)) == 2 and rows(gov, APPROVALS)[1]["seq"] == lead.seq
    assert models_row(gov, ref)["approval"] == f"alice@example.com (sme) {approval.at[:10]}"

    live = step("promote", "Production", "ci")
    row = models_row(gov, ref)
    assert row["stage"] == "Production"
    assert row["approval"] == f"gina@example.com (governance-lead) {lead.at[:10]}"
    assert row["deployed_on"].date().isoformat() == live.at[:10]
    history = rows(gov, HISTORY)[-1]
    assert (history["principal"], history["role"], history["to_stage"]) == (
        "ci@example.com",
        "ci",
        "Production",
    )
    assert history["detail"] == (
        f"approval: event {lead.seq}; gate: event {gate.seq}; artefact hash re-checked"
    )
    assert live.payload["artefact_checked"] == content_hash(gov, ref)

    retire = step("approve", "Archived", "governance-lead")
    step("promote", "Archived", "governance-lead")
    row = models_row(gov, ref)
    assert row["stage"] == "Archived"
    assert row["approval"] == f"gina@example.com (governance-lead) {retire.at[:10]}"
    assert row["deployed_on"].date().isoformat() == live.at[:10]  # when it went live
    assert [h["event"] for h in rows(gov, HISTORY)] == ["keyring"] * 3 + ["register"] * 4 + [
        "promote",
        "gate",
        "promote",
        "promote",
    ]
    assert [a["to_stage"] for a in rows(gov, APPROVALS)] == ["Staging", "Production", "Archived"]
    result = ok(cli_run(gov, "verify"))
    assert result.stdout.startswith("verify: ok (")


def test_flow_verifies_clean(flow: Env):
    code, report = run_verify(flow)
    assert code == 0 and report["findings"] == []


def test_approve_json(flow: Env):
    result = ok(
        cli_run(
            flow, "approve", "credit-risk@2", "--to", "Production", "--json", key="governance-lead"
        )
    )
    data = json.loads(result.stdout)
    assert data == {
        "model": "credit-risk",
        "version": 2,
        "from": "Staging",
        "to": "Production",
        "principal": "gina@example.com",
        "role": "governance-lead",
        "content_hash": content_hash(flow, "credit-risk@2"),
        "ledger_seq": ledger_events(flow)[-1].seq,
    }


@pytest.mark.parametrize(
    "payload,code",
    [
        ({"approval": None}, "RB501"),
        ({"approval": "event 3"}, "RB501"),
        ({"approval": {"seq": "3"}}, "RB501"),
        ({"approval": [3], "gate": 7}, "RB501"),
    ],
)
def test_malformed_transition_payload_is_a_finding_not_a_traceback(
    gov: Env, payload: dict, code: str
):
    row = forge(gov, "promote", "churn@1", transition(gov, "churn@1", "Staging", **payload), "sme")
    result = cli_run(gov, "verify", "--json")
    assert result.exit_code == 1
    assert problems(json.loads(result.stdout)) == {(code, f"Ledger!F{row}")}
    ok(cli_run(gov, "restore"))
    ok(cli_run(gov, "approve", "churn@1", "--to", "Archived", key="sme"))


@pytest.mark.parametrize("gates", [None, "x", [1], [{"gate": "performance"}]])
def test_malformed_gate_payload_is_a_finding_not_a_traceback(gov: Env, gates: Any):
    payload = {
        "content_hash": content_hash(gov, "churn@1"),
        "stage": "None",
        "gates": gates,
        "result": "PASS",
    }
    row = forge(gov, "gate", "churn@1", payload, "ci")
    code, report = run_verify(gov)
    assert code == 1 and problems(report) == {("RB505", f"Ledger!F{row}")}
    assert any("gate event payload is malformed" in f["message"] for f in report["findings"])
    ok(cli_run(gov, "restore"))


def test_a_key_with_several_roles_acts_in_the_one_needed(gov: Env, tmp_path: Path):
    multi = tmp_path / "keys" / "multi"
    roles = [x for role in ROLES for x in ("--role", role)]
    ok(cli_run(gov, "keys", "new", "max@example.com", *roles, "--out", str(multi),
               key="governance-lead"))  # fmt: skip
    gov.keys["multi"] = multi
    acting = "max@example.com ({})"
    # Where two roles would do, the first in regbook.toml's order; --role chooses.
    result = ok(cli_run(gov, "approve", "churn@1", "--to", "Staging", key="multi"))
    assert acting.format("sme") in result.stdout
    choose = ("--to", "Staging", "--role", "governance-lead")
    result = ok(cli_run(gov, "approve", "credit-risk@1", *choose, key="multi"))
    assert acting.format("governance-lead") in result.stdout
    result = cli_run(gov, "approve", "churn@1", "--to", "Staging", "--role", "ci", key="multi")
    assert result.exit_code == 2
    assert "needs role sme or governance-lead; --role ci is not one of them" in result.stderr
    walk(
        gov,
        [
            ("promote", "credit-risk@1", "Staging", "multi"),
            ("gate", "credit-risk@1", None, "multi"),
        ],
    )
    # approve --to Production acts as governance-lead; promote --to Production as ci.
    result = ok(cli_run(gov, "approve", "credit-risk@1", "--to", "Production", key="multi"))
    assert acting.format("governance-lead") in result.stdout
    ok(cli_run(gov, "promote", "credit-risk@1", "--to", "Production", key="multi"))
    history = rows(gov, HISTORY)[-1]
    assert (history["principal"], history["role"]) == ("max@example.com", "ci")
    assert models_row(gov, "credit-risk@1")["approval"].startswith(
        "max@example.com (governance-lead) "
    )
    assert run_verify(gov)[0] == 0


# --- roles per transition from regbook.toml --------------------------------------------


def test_transition_roles_are_settings(gov: Env):
    set_setting(
        gov,
        "transitions",
        '"None->Staging" = ["sme", "governance-lead"]',
        '"None->Staging" = ["governance-lead"]',
    )
    unchanged = workbook_unchanged(gov)
    result = cli_run(gov, "approve", "churn@1", "--to", "Staging", key="sme")
    assert result.exit_code == 2
    assert "approving None -> Staging needs a key with role governance-lead" in result.stderr
    unchanged()
    ok(cli_run(gov, "approve", "churn@1", "--to", "Staging", key="governance-lead"))
    result = cli_run(gov, "promote", "churn@1", "--to", "Staging", key="sme")
    assert result.exit_code == 1
    assert "promotion None -> Staging needs a key with role governance-lead" in result.stderr
    ok(cli_run(gov, "promote", "churn@1", "--to", "Staging", key="governance-lead"))
    assert run_verify(gov)[0] == 0
    # Other transitions keep their defaults.
    ok(cli_run(gov, "approve", "churn@1", "--to", "Archived", key="sme"))


def test_an_approval_the_settings_no_longer_allow(gov: Env):
    ok(cli_run(gov, "approve", "churn@1", "--to", "Staging", key="sme"))
    set_setting(
        gov,
        "transitions",
        '"None->Staging" = ["sme", "governance-lead"]',
        '"None->Staging" = ["governance-lead"]',
    )
    result = cli_run(gov, "promote", "churn@1", "--to", "Staging", key="governance-lead")
    assert result.exit_code == 1
    approval = last_event(gov, "approve", "churn@1")
    assert _unmet(result) == [
        f"the approval in ledger event {approval.seq} was signed as sme; None -> Staging "
        "needs governance-lead"
    ]


# --- the deploy check ------------------------------------------------------------------


def test_deploy_check_in_production(flow: Env):
    result = ok(cli_run(flow, "verify", "--for-deploy", "credit-risk@1"))
    cid = models_row(flow, "credit-risk@1")["composite_id"]
    assert f"{cid} (Production) may be deployed" in result.stdout
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1")
    assert code == 0 and report["deployable"] is True
    assert report["stage"] == "Production" and report["composite_id"] == cid
    assert report["content_hash"] == content_hash(flow, "credit-risk@1")


def test_deploy_check_in_staging(flow: Env):
    result = cli_run(flow, "verify", "--for-deploy", "credit-risk@2")
    assert result.exit_code == 1
    assert "RB601 error credit-risk@2: in Staging, not Production" in result.stdout
    assert "(Staging) must NOT be deployed" in result.stdout
    code, report = run_verify(flow, "--for-deploy", "credit-risk@2")
    assert code == 1 and report["deployable"] is False
    assert {f["code"] for f in report["findings"]} == {"RB601", "RB602"}


def test_deploy_check_with_a_swapped_artefact(flow: Env, tmp_path: Path):
    other = artefact_path(flow, "credit-risk@2")
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1", "--artefact", str(other))
    assert code == 1 and report["deployable"] is False
    assert problems(report) == {("RB402", str(other))}
    assert "the artefact to deploy is not credit-risk@1" in report["findings"][0]["message"]


def test_deploy_check_with_an_identical_copy(flow: Env, tmp_path: Path):
    copy = tmp_path / "build" / "model.bin"
    copy.parent.mkdir()
    shutil.copyfile(artefact_path(flow, "credit-risk@1"), copy)
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1", "--artefact", str(copy))
    assert code == 0 and report["deployable"] is True and report["findings"] == []


def test_deploy_check_on_an_archived_version(flow: Env):
    walk(flow, RETIRE_CREDIT_RISK_1)
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1")
    assert code == 1 and {f["code"] for f in report["findings"]} == {"RB601"}


def test_deploy_check_with_the_stored_artefact_swapped(flow: Env):
    stored = artefact_path(flow, "credit-risk@1")
    stored.chmod(stored.stat().st_mode | stat.S_IWUSR)
    stored.write_bytes(artefact_path(flow, "credit-risk@2").read_bytes())
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1")
    assert code == 1 and report["deployable"] is False
    storage = models_row(flow, "credit-risk@1")["storage"]
    assert problems(report) == {("RB402", storage)}
    # Skipping the artefacts is for a quick look, never for the deploy check.
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1", "--no-artefacts")
    assert code == 1 and problems(report) == {("RB402", storage)}


def test_deploy_check_needs_a_version(flow: Env):
    result = cli_run(flow, "verify", "--for-deploy", "credit-risk")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_deploy_check_after_a_production_version_is_regated_to_fail(flow: Env):
    set_setting(flow, "gates", 'performance = "auc_roc >= 0.75"', 'performance = "auc_roc >= 0.99"')
    result = cli_run(flow, "gate", "credit-risk@1", key="ci")
    assert result.exit_code == 1
    code, report = run_verify(flow, "--for-deploy", "credit-risk@1")
    assert code == 1 and report["deployable"] is False
    assert {f["code"] for f in report["findings"]} == {"RB602"}
    assert "latest validation gate result is FAIL" in report["findings"][0]["message"]


def test_loosened_thresholds_do_not_flag_an_old_fail(gov: Env):
    assert cli_run(gov, "gate", "churn@1", key="ci").exit_code == 1
    set_setting(gov, "gates", 'performance = "auc_roc >= 0.75"', 'performance = "auc_roc >= 0.5"')
    set_setting(gov, "gates", 'security = "security_high_findings == 0"', "")
    code, report = run_verify(gov)
    assert code == 0, report["findings"]
