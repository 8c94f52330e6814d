"""Governance: signed approvals, validation gates and the stage workflow.

Stages run ``None -> Staging -> Production -> Archived``; any stage may go to
``Archived``, which is final. Every transition needs a signed approval naming the
version's content hash; Production also needs the latest gate result PASS, the
artefact re-hashed, and the transition signed by a ``ci`` key::

    approve(ws, ModelRef.parse("credit-risk@7"), "Staging", sme_key)
    promote(ws, ModelRef.parse("credit-risk@7"), "Staging", sme_key)
    outcome = gate(ws, ModelRef.parse("credit-risk@7"), ci_key)
    approve(ws, ModelRef.parse("credit-risk@7"), "Production", lead_key)
    promote(ws, ModelRef.parse("credit-risk@7"), "Production", ci_key)

``workflow_findings`` replays the same rules over the ledger for ``verify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regbook.core.errors import InputError, Listed, RegbookError
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.schema import STAGES
from regbook.core.workspace import Settings, Workspace
from regbook.ledger.events import LedgerEvent, signer_role
from regbook.ledger.gates import FAIL, PASS, Outcome, evaluate, parse_gates, recorded_outcome
from regbook.ledger.state import Registry, VersionState
from regbook.storage.hashing import ContentHash, hash_path
from regbook.workflow.lifecycle import Transaction, acting_identity, write_changes

# The forward transitions; any stage but Archived may also go to Archived.
FORWARD = {"None": "Staging", "Staging": "Production"}
ONLY_CI = "only the CI pipeline may promote to Production (needs a key with role ci)"


class PromotionRefused(RegbookError, Listed):
    """Promotion refused: every unmet precondition is listed (exit 1)."""

    exit_code = 1
    bullet = "  - "

    def __init__(self, ref: ModelRef, target: str, unmet: list[str]):
        self.unmet = unmet
        head = f"promotion of {ref} to {target} refused; nothing was written. Unmet:"
        super().__init__(self.listed(head, unmet))


def transition_problem(current: str, target: str) -> str | None:
    """Why ``current -> target`` is not a transition, or None if it is."""
    if target not in STAGES:
        return f"{target!r} is not a stage ({', '.join(STAGES)})"
    if current == "Archived":
        return (
            "the version is Archived, which is final: register the artefact again as a "
            "new version that names this one"
        )
    if current == target:
        return f"the version is already in {current}"
    if target == "Archived" or FORWARD.get(current) == target:
        return None
    allowed = [s for s in (FORWARD.get(current), "Archived") if s]
    return (
        f"{current} -> {target} is not a transition; from {current} a version may go to "
        f"{' or '.join(allowed)}"
    )


def _version(tx: Transaction, ref: ModelRef) -> VersionState:
    state = tx.registry.get(ref.name, ref.version or 0)
    if state is None:
        raise InputError(f"{ref}: no such sealed version")
    return state


# --- approve -------------------------------------------------------------------------


@dataclass(frozen=True)
class Approved:
    ref: ModelRef
    from_stage: str
    to_stage: str
    principal: str
    role: str
    content_hash: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "from": self.from_stage,
            "to": self.to_stage,
            "principal": self.principal,
            "role": self.role,
            "content_hash": self.content_hash,
            "ledger_seq": self.seq,
        }


def approve(
    ws: Workspace, ref: ModelRef, to_stage: str, key: Any, note: str = "", role: str | None = None
) -> Approved:
    """Append a signed approval of ``ref`` moving from its current stage to ``to_stage``."""
    with Transaction(ws) as tx:
        state = _version(tx, ref)
        problem = transition_problem(state.stage, to_stage)
        if problem:
            raise InputError(f"cannot approve {ref} for {to_stage}: {problem}")
        roles = ws.settings.transition_roles(state.stage, to_stage)
        identity = acting_identity(ws, key, roles, f"approving {state.stage} -> {to_stage}", role)
        payload = {
            "content_hash": state.content_hash,
            "from": state.stage,
            "to": to_stage,
            "note": note,
        }
        event = tx.sign(identity, "approve", ref.name, ref.version, payload)
        _commit(tx, [state])
    return Approved(
        ref, state.stage, to_stage, identity.principal, identity.role, state.content_hash, event.seq
    )


# --- gate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gated:
    ref: ModelRef
    outcome: Outcome
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "ledger_seq": self.seq,
            **self.outcome.to_json(),
        }


def sealed_metrics(state: VersionState) -> dict[str, float]:
    """The whole-evaluation-set value of every metric sealed with the version."""
    return {m["metric"]: m["value"] for m in state.metrics if not m.get("slice")}


def gate(ws: Workspace, ref: ModelRef, key: Any, role: str | None = None) -> Gated:
    """Evaluate the gates in regbook.toml over the sealed metrics; record the result as a
    signed event, PASS or FAIL alike."""
    gates = parse_gates(ws.settings.gates)
    with Transaction(ws) as tx:
        state = _version(tx, ref)
        if state.stage == "Archived":
            raise InputError(f"cannot gate {ref}: it is Archived")
        identity = acting_identity(ws, key, ws.settings.gate_roles, "recording a gate result", role)
        outcome = evaluate(gates, sealed_metrics(state))
        payload = {"content_hash": state.content_hash, "stage": state.stage, **outcome.to_json()}
        event = tx.sign(identity, "gate", ref.name, ref.version, payload)
        _commit(tx, [state])
    return Gated(ref, outcome, event.seq)


# --- promote -------------------------------------------------------------------------


@dataclass(frozen=True)
class Promoted:
    ref: ModelRef
    from_stage: str
    to_stage: str
    principal: str
    seq: int
    archived: tuple[str, ...] = ()  # versions archived into their bags on the way

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "from": self.from_stage,
            "to": self.to_stage,
            "principal": self.principal,
            "ledger_seq": self.seq,
            "archived": list(self.archived),
        }


def usable_approval(
    ws: Workspace, keyring: Any, registry: Registry, state: VersionState, target: str
) -> tuple[LedgerEvent | None, list[str]]:
    """The latest approval that allows ``state`` to move to ``target`` now, or why none
    does."""
    from regbook.crypto.keys import check_signature, namespace_for

    roles = ws.settings.transition_roles(state.stage, target)
    since = state.stage_event.seq if state.stage_event else state.register.seq
    reasons: list[str] = []
    for event in reversed(state.approvals):
        p = event.payload
        if p.get("from") != state.stage or p.get("to") != target or event.seq < since:
            continue
        label = f"the approval in ledger event {event.seq}"
        if p.get("content_hash") != state.content_hash:
            reasons.append(
                f"{label} names content hash {str(p.get('content_hash'))[:24]}..., "
                f"not this version's {state.content_hash[:24]}... (a replayed "
                "approval)"
            )
            continue
        role = signer_role(event)
        if role not in roles:
            reasons.append(
                f"{label} was signed as {role}; {state.stage} -> {target} needs "
                f"{' or '.join(roles)}"
            )
            continue
        check = check_signature(
            event.signed_bytes(),
            event.signature,
            keyring,
            event.signer,
            namespace_for(role),
            event.when,
        )
        if not check.ok:
            reasons.append(f"{label} does not verify: {check.detail}")
            continue
        return event, []
    if not reasons:
        reasons.append(
            f"no signed approval for {state.stage} -> {target} (needs "
            f"{' or '.join(roles)}: `regbook approve {state.model}@{state.version} "
            f"--to {target}`)"
        )
    return None, reasons


def promote(
    ws: Workspace,
    ref: ModelRef,
    to_stage: str,
    key: Any,
    role: str | None = None,
    archive_previous: bool = False,
) -> Promoted:
    """Append the transition only if every precondition holds; else list every unmet one.

    With ``archive_previous`` a promotion to Production also archives the model's
    Production version into its bag in the same command (it needs its own signed
    approval to Archived); the ci key signs both events, the archive first."""
    if archive_previous and to_stage != "Production":
        raise InputError("--archive-previous goes with --to Production")
    to_archive: list[tuple[VersionState, LedgerEvent]] = []
    with Transaction(ws) as tx:
        state = _version(tx, ref)
        keyring = ws.keyring()
        unmet: list[str] = []
        problem = transition_problem(state.stage, to_stage)
        if problem:
            raise PromotionRefused(ref, to_stage, [problem])
        identity = None
        try:
            if to_stage == "Production":
                identity = acting_identity(ws, key, ("ci",), "promotion to Production", role)
            else:
                identity = acting_identity(
                    ws,
                    key,
                    ws.settings.transition_roles(state.stage, to_stage),
                    f"promotion {state.stage} -> {to_stage}",
                    role,
                )
        except InputError as err:
            # A ci key that is revoked or unknown is refused for that reason, not its role.
            holds_ci = any("ci" in e.roles for e in keyring.entries_for_key(key.public))
            unmet.append(ONLY_CI if to_stage == "Production" and not holds_ci else str(err))
        approval, reasons = usable_approval(ws, keyring, tx.registry, state, to_stage)
        unmet.extend(reasons)
        payload: dict[str, Any] = {
            "content_hash": state.content_hash,
            "from": state.stage,
            "to": to_stage,
        }
        if approval is not None:
            payload["approval"] = {"hash": approval.hash, "seq": approval.seq}
        if to_stage == "Production":
            gate_event = state.gate_event
            if gate_event is None:
                unmet.append(f"no validation gate result: run `regbook gate {ref}` in CI")
            elif gate_event.payload.get("result") != PASS:
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) is "
                    f"{gate_event.payload.get('result')}"
                )
            elif gate_event.payload.get("content_hash") != state.content_hash:
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) is for "
                    "another content hash"
                )
            elif _gate_findings(gate_event, state, ""):
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) does not "
                    "follow from the sealed metrics (run `regbook verify`)"
                )
            elif evaluate(parse_gates(ws.settings.gates), sealed_metrics(state)).result != PASS:
                # verify would report RB505 on the very PASS this promotion rests on.
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) is PASS, but "
                    f"the thresholds in regbook.toml now give FAIL: run `regbook gate {ref}` "
                    "again"
                )
            else:
                payload["gate"] = {"hash": gate_event.hash, "seq": gate_event.seq}
            checked = _recheck_artefact(ws, state)
            if checked:
                unmet.append(checked)
            else:
                payload["artefact_checked"] = state.content_hash
            others = [v for v in tx.registry.production(ref.name) if v.version != ref.version]
            for other in others:
                if not archive_previous:
                    unmet.append(
                        f"{other.model}@{other.version} is in Production: archive it "
                        "first (at most one Production version per model)"
                    )
                    continue
                retiring, why = usable_approval(ws, keyring, tx.registry, other, "Archived")
                unmet.extend(why)
                if retiring is not None:
                    to_archive.append((other, retiring))
        if unmet or identity is None:
            raise PromotionRefused(ref, to_stage, unmet)
        if not to_archive:
            event = tx.sign(identity, "promote", ref.name, ref.version, payload)
            _commit(tx, [state])
            return Promoted(ref, payload["from"], to_stage, identity.principal, event.seq)
        from regbook.workflow.archive import bag_version, dispose_original

        patch = tx.patch()  # first: a workbook that cannot be written gets no bag
        for other, retiring in to_archive:
            bagged, _notes = bag_version(ws, other, identity, retiring)
            bagged["superseded_by"] = {"model": ref.name, "version": ref.version}
            tx.sign(identity, "archive", other.model, other.version, bagged)
        event = tx.sign(identity, "promote", ref.name, ref.version, payload)
        changed = [(s.model, s.version) for s in (state, *(o for o, _ in to_archive))]
        write_changes(tx, patch, changed, draft_rows={})
        tx.save(patch)
        for other, _ in to_archive:
            dispose_original(ws, other)
    archived = tuple(f"{o.model}@{o.version}" for o, _ in to_archive)
    return Promoted(ref, payload["from"], to_stage, identity.principal, event.seq, archived)


def _recheck_artefact(ws: Workspace, state: VersionState) -> str | None:
    label = f"{state.model}@{state.version}"
    try:
        path = ws.resolve_storage(state.storage, label)
        if not path.exists():
            return f"the artefact of {label} is missing at {state.storage}"
        now = hash_path(path)
    except InputError as err:
        return f"the artefact of {label} cannot be hashed: {err}"
    if now != ContentHash.parse(state.content_hash):
        return (
            f"the artefact at {state.storage} has hash {str(now)[:24]}..., not the sealed "
            f"{state.content_hash[:24]}..."
        )
    return None


def _commit(tx: Transaction, states: list[VersionState]) -> None:
    patch = tx.patch()
    write_changes(tx, patch, [(s.model, s.version) for s in states], draft_rows={})
    tx.save(patch)


# --- verify's side: the rules replayed over the ledger -------------------------------


def workflow_findings(registry: Registry, settings: Settings) -> list[Finding]:
    """Every workflow rule broken anywhere in the ledger, event by event."""
    findings: list[Finding] = []
    stage: dict[tuple[str, int], str] = {}
    stage_seq: dict[tuple[str, int], int] = {}
    production: dict[str, set[int]] = {}
    last_gate: dict[tuple[str, int], LedgerEvent] = {}
    for event in registry.events:
        key = (event.model, event.version or 0)
        if event.kind == "register":
            stage.setdefault(key, "None")
            stage_seq.setdefault(key, event.seq)
            continue
        state = registry.get(*key)
        label = f"event {event.seq} ({event.kind} {event.model}@{event.version})"

        def add(code: str, text: str, ev: LedgerEvent = event, lab: str = label) -> None:
            findings.append(
                Finding.make(code, ev.where("payload"), f"{lab}: {text}", ev.model, ev.version)
            )

        if state is None:
            add("RB508", "no such version was ever registered")
            continue
        p = event.payload
        if event.kind == "approve":
            if p.get("content_hash") != state.content_hash:
                add(
                    "RB503",
                    f"approves content hash {str(p.get('content_hash'))[:24]}..., "
                    f"not this version's {state.content_hash[:24]}... (a replayed approval)",
                )
        elif event.kind == "gate":
            findings.extend(_gate_findings(event, state, label))
            last_gate[key] = event
        elif event.kind in ("promote", "archive"):
            current, target = stage.get(key, "None"), p.get("to")
            if event.kind == "archive" and signer_role(event) == "ci":
                follow = registry.event(event.seq + 1)
                by = p.get("superseded_by")
                by = by if isinstance(by, dict) else {}
                while follow is not None and follow.kind == "archive":
                    follow = registry.event(follow.seq + 1)
                if not (
                    follow is not None
                    and follow.kind == "promote"
                    and follow.payload.get("to") == "Production"
                    and (follow.model, follow.version) == (by.get("model"), by.get("version"))
                    and follow.model == event.model
                    and signer_role(follow) == "ci"
                ):
                    add(
                        "RB506",
                        "archived by a ci key without the promotion to Production that "
                        "supersedes it (`promote --archive-previous`)",
                    )
            if p.get("from") != current:
                add("RB506", f"moves from {p.get('from')} but the version was in {current}")
            if p.get("content_hash") != state.content_hash:
                add(
                    "RB503",
                    f"names content hash {str(p.get('content_hash'))[:24]}..., not "
                    f"this version's {state.content_hash[:24]}...",
                )
            problem = transition_problem(current, str(target))
            if problem:
                add("RB506", problem)
            findings.extend(
                _approval_findings(
                    event,
                    registry,
                    state,
                    current,
                    str(target),
                    stage_seq.get(key, 0),
                    settings,
                    label,
                )
            )
            if target == "Production":
                if signer_role(event) != "ci":
                    add(
                        "RB502",
                        f"signed by {event.signer} acting as {signer_role(event)}; " + ONLY_CI,
                    )
                gated = last_gate.get(key)
                if gated is None or gated.payload.get("result") != PASS:
                    add(
                        "RB507",
                        "promoted to Production without a PASS gate result "
                        + (
                            "(none recorded)"
                            if gated is None
                            else f"(event {gated.seq} says {gated.payload.get('result')})"
                        ),
                    )
                others = production.get(event.model, set()) - {event.version}
                if others:
                    add(
                        "RB504",
                        f"{event.model} already had version(s) "
                        f"{', '.join(map(str, sorted(others)))} in Production: two Production "
                        "versions of one model",
                    )
                production.setdefault(event.model, set()).add(event.version or 0)
            elif current == "Production":
                production.get(event.model, set()).discard(event.version or 0)
            stage[key] = str(target)
            stage_seq[key] = event.seq
        else:
            add("RB508", f"unknown event kind {event.kind!r}")
    # Thresholds in force: the latest PASS of each live version must still hold. (A FAIL
    # that looser thresholds would now pass is harmless: promotion needs a new gate run.)
    try:
        gates = parse_gates(settings.gates)
    except InputError:
        gates = ()
    for key, event in last_gate.items():
        state = registry.get(*key)
        if state is None or state.stage == "Archived" or not gates:
            continue
        now = evaluate(gates, sealed_metrics(state))
        if event.payload.get("result") == PASS and now.result != PASS:
            findings.append(
                Finding.make(
                    "RB505",
                    event.where("payload"),
                    f"the latest gate result of {state.model}@{state.version} (event {event.seq}) "
                    f"is {event.payload.get('result')}, but the thresholds in regbook.toml give "
                    f"{now.result} on the sealed metrics",
                    state.model,
                    state.version,
                )
            )
    return findings


def _gate_findings(event: LedgerEvent, state: VersionState, label: str) -> list[Finding]:
    out = []

    def add(text: str) -> None:
        out.append(
            Finding.make(
                "RB505", event.where("payload"), f"{label}: {text}", event.model, event.version
            )
        )

    p = event.payload
    if p.get("content_hash") != state.content_hash:
        add("the gate result is for another content hash")
    try:
        recorded = recorded_outcome(p)
    except InputError as err:
        add(str(err))
        return out
    metrics = sealed_metrics(state)
    for r in recorded.results:
        sealed = metrics.get(r.gate.metric)
        if r.value != (None if sealed is None else float(sealed)):
            add(
                f"gate {r.gate.name} recorded {r.gate.metric} = {r.value}, but the sealed "
                f"value is {sealed}"
            )
        if r.gate.check(r.value) != r.result:
            add(f"gate {r.gate.name} recorded {r.result} for {r.gate} with value {r.value}")
    if recorded.result != p.get("result") or p.get("result") not in (PASS, FAIL):
        add(f"the overall result {p.get('result')} does not follow from the gates recorded")
    return out


def _approval_findings(
    event: LedgerEvent,
    registry: Registry,
    state: VersionState,
    current: str,
    target: str,
    since: int,
    settings: Settings,
    label: str,
) -> list[Finding]:
    ref = event.payload.get("approval")
    ref = ref if isinstance(ref, dict) else {}
    approval = registry.event(ref.get("seq"))

    def finding(code: str, text: str) -> list[Finding]:
        return [
            Finding.make(
                code, event.where("payload"), f"{label}: {text}", event.model, event.version
            )
        ]

    if approval is None or approval.hash != ref.get("hash") or approval.kind != "approve":
        return finding("RB501", f"{current} -> {target} was reached without a signed approval")
    if (approval.model, approval.version) != (event.model, event.version):
        return finding(
            "RB503",
            f"uses the approval of {approval.model}@{approval.version} "
            f"(event {approval.seq}), another version's",
        )
    p = approval.payload
    if p.get("content_hash") != state.content_hash:
        return finding(
            "RB503",
            f"the approval it uses (event {approval.seq}) names another "
            "content hash (a replayed approval)",
        )
    if p.get("from") != current or p.get("to") != target or approval.seq < since:
        return finding(
            "RB501",
            f"the approval it uses (event {approval.seq}) is for "
            f"{p.get('from')} -> {p.get('to')}, given before the version reached "
            f"{current}"
            if approval.seq < since
            else f"the approval it uses (event {approval.seq}) is for "
            f"{p.get('from')} -> {p.get('to')}, not {current} -> {target}",
        )
    roles = settings.transition_roles(current, target)
    if signer_role(approval) not in roles:
        return finding(
            "RB501",
            f"the approval it uses (event {approval.seq}) was signed as "
            f"{signer_role(approval)}; {current} -> {target} needs "
            f"{' or '.join(roles)}",
        )
    return []
