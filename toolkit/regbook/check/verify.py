"""Verification: check the ledger, every view cell and every artefact; collect findings.

Like a BagIt validator, ``verify`` never stops at the first problem::

    report = verify(open_registry(Workspace.find()), scope=ModelRef.parse("credit-risk@7"))
    for finding in report.findings:
        print(finding)          # RB301 error Models!I7: code commit changed after sealing...
    report.ok                   # the exit-code policy: no errors or warnings

Ledger findings (RB1xx) are always reported, whatever the scope: one broken link
breaks trust in everything after it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.check.bags import bag_findings, bagged_states, original_findings
from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.ledger.state import VersionState
from regbook.registry.diff import show_value
from regbook.registry.snapshot import Snapshot
from regbook.storage.hashing import ContentHash, hash_path


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    versions: int = 0
    artefacts_checked: int = 0
    ledger_head: str = ""
    keyring_sha256: str = ""
    registry_id: str = ""
    scope: str = ""
    deploy: dict[str, str] | None = None  # a deploy check's version: ID, stage, hash
    ledger_problems: int = 0  # of the problems, those of the ledger (what list counts)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.is_problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scope": self.scope or None,
            "events": self.events,
            "versions": self.versions,
            "artefacts_checked": self.artefacts_checked,
            "ledger_head": self.ledger_head or None,
            "keyring_sha256": self.keyring_sha256,
            "registry_id": self.registry_id or None,
            "findings": [f.to_json() for f in self.findings],
            **({"deployable": self.ok, **self.deploy} if self.deploy is not None else {}),
        }


def verify(
    snapshot: Snapshot,
    *,
    scope: ModelRef | None = None,
    artefacts: bool = True,
    threads: int = 2,
    for_deploy: bool = False,
    deploy_artefact: Path | None = None,
) -> Report:
    """Every finding of ``snapshot`` in ``scope``, and the artefacts re-hashed; with
    ``for_deploy`` (CI's check before deploying ``scope``) also that the version is in
    Production and that the artefact about to be deployed (``deploy_artefact``, default
    its storage location) has the sealed content hash."""
    if for_deploy and (scope is None or scope.version is None):
        raise InputError("a deploy check needs MODEL@VERSION")
    ws, registry = snapshot.workspace, snapshot.registry
    if scope is not None:
        known = {m for (m, _v) in registry.versions}
        if scope.name not in known or (
            scope.version is not None and registry.get(scope.name, scope.version) is None
        ):
            raise InputError(registry.unknown(scope, scope.name, scope.version))

    def in_scope(model: str, version: int | None) -> bool:
        if scope is None:
            return True
        return model == scope.name and (scope.version is None or version == scope.version)

    findings = [
        f for f in snapshot.view_findings if f.model is None or in_scope(f.model, f.version)
    ]
    if scope is None:
        findings += snapshot.keys_findings
    report = Report(
        scope=str(scope) if scope else "",
        events=len(snapshot.events),
        ledger_head=snapshot.ledger_head,
        keyring_sha256=snapshot.keyring.sha256,
        registry_id=snapshot.registry_id,
    )
    states = [s for s in registry.versions.values() if in_scope(s.model, s.version)]
    report.versions = len(states)
    if for_deploy:
        state = states[0]
        report.deploy = {
            "composite_id": state.composite_id,
            "stage": state.stage,
            "content_hash": state.content_hash,
        }
        findings += deploy_findings(state, str(scope))
        if deploy_artefact is not None:
            findings += artefact_findings(
                deploy_artefact, str(deploy_artefact), state, deploying=True
            )
            report.artefacts_checked = 1
            artefacts = False
        else:
            # What is about to be deployed is always re-hashed, --no-artefacts or not.
            artefacts = True
    if artefacts:
        art_findings, count = check_artefacts(ws, states, threads)
        findings += art_findings
        report.artefacts_checked = count
    else:
        # A bag's presence and its signed tag manifest are cheap: always checked.
        for state in bagged_states(registry):
            if in_scope(state.model, state.version):
                findings += bag_findings(ws, state, "tags")
    ledger = [
        f
        for f in snapshot.ledger_findings + snapshot.rule_findings
        if f.code.startswith("RB1") or f.model is None or in_scope(f.model, f.version)
    ]
    report.ledger_problems = sum(1 for f in ledger if f.is_problem)
    report.findings = ledger + [
        f for f in findings if f.model is None or in_scope(f.model, f.version)
    ]
    return report


def deploy_findings(state: VersionState, where: str) -> list[Finding]:
    """Why ``state`` may not be deployed: not in Production, or its latest gate not PASS."""
    findings = []
    if state.stage != "Production":
        findings.append(Finding.make(
            "RB601", where, f"in {state.stage}, not Production: it may not be "
            "deployed", state.model, state.version))  # fmt: skip
    latest = state.gate_event.payload.get("result") if state.gate_event else None
    if latest != "PASS":
        findings.append(Finding.make(
            "RB602", where, f"the latest validation gate result is "
            f"{latest or 'missing'}: it may not be deployed", state.model,
            state.version))  # fmt: skip
    return findings


def artefact_findings(
    path: Path, where: str, state: VersionState, deploying: bool = False
) -> list[Finding]:
    """Whether the artefact at ``path`` is there and has the version's sealed hash."""
    label = f"{state.model}@{state.version}"
    subject = f"the artefact to deploy as {label}" if deploying else f"the artefact of {label}"

    def finding(code: str, text: str) -> list[Finding]:
        return [Finding.make(code, where, text, state.model, state.version)]

    if not path.exists() and not path.is_symlink():
        return finding("RB401", f"{subject} is missing")
    try:
        now = hash_path(path)
    except InputError as err:
        return finding("RB403", f"{label}: {err}")
    sealed = ContentHash.parse(state.content_hash)
    if now == sealed:
        return []
    sealed_text, now_text = show_value(str(sealed), str(now)), show_value(str(now), str(sealed))
    if deploying:
        return finding(
            "RB402",
            f"the artefact to deploy is not {label}: sealed {sealed_text}, this one {now_text}",
        )
    return finding(
        "RB402", f"{subject} changed since sealing: sealed {sealed_text}, now {now_text}"
    )


# --- views ---------------------------------------------------------------------------


# --- artefacts -----------------------------------------------------------------------


def check_artefacts(
    ws: Workspace, states: list[VersionState], threads: int = 2
) -> tuple[list[Finding], int]:
    """Re-hash every version's artefact at its storage location; an archived version's
    storage is its bag, validated in full."""

    work = list(states)  # archived versions keep their storage until bagged

    def one(state: VersionState) -> list[Finding]:
        if state.stage_event is not None and state.stage_event.kind == "archive":
            return bag_findings(ws, state, "full") + original_findings(ws, state)
        # A version rolled back out of its bag: the bag stays, and its tags are cheap.
        bag = bag_findings(ws, state, "tags") if state.bag_event is not None else []
        try:
            path = ws.resolve_storage(state.storage, f"{state.model}@{state.version}")
        except InputError as err:
            return [Finding.make("RB403", state.storage, str(err), state.model, state.version)]
        return bag + artefact_findings(path, state.storage, state)

    findings: list[Finding] = []
    if threads > 1 and len(work) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for part in pool.map(one, work):
                findings.extend(part)
    else:
        for state in work:
            findings.extend(one(state))
    return findings, len(work)
