"""The workflow rules: which stage transitions exist, what approval a transition needs,
and every rule broken anywhere in a replayed ledger.

``verify`` reports ``workflow_findings(registry, anchors)``, judging each event under
the signed policy in force at its place in the chain; the writers (approve,
gate, promote, archive) ask the same questions before they sign, through
``transition_problem`` and ``usable_approval``, so a writer never signs what verify
would then reject.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.policy import Policy
from regbook.core.schema import STAGES
from regbook.core.workspace import Workspace
from regbook.crypto.keys import Keyring, check_signature, namespace_for
from regbook.ledger.anchors import REGISTRY_MODEL, Anchors
from regbook.ledger.events import LedgerEvent
from regbook.ledger.gates import FAIL, PASS, Gate, evaluate, parse_gates, recorded_outcome
from regbook.ledger.scans import SECURITY_METRIC, recorded_scan, security_scan
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import Registry, VersionState

# The forward transitions; any stage but Archived may also go to Archived, and an
# Archived version once in Production back to Production (a rollback).
FORWARD = {"None": "Staging", "Staging": "Production"}


ONLY_CI = "only the CI pipeline may promote to Production (needs a key with role ci)"


def transition_problem(current: str, target: str, *, was_in_production: bool = False) -> str | None:
    """Why ``current -> target`` is not a transition, or None if it is. From Archived
    the only way out is a rollback to Production, for a version that was once there."""
    if target not in STAGES:
        return f"{target!r} is not a stage ({', '.join(STAGES)})"
    if current == "Archived" and target == "Production" and was_in_production:
        return None
    if current == "Archived" and was_in_production:
        return (
            "the version is Archived: only a rollback to Production takes it out again "
            "(it was once there)"
        )
    if current == "Archived":
        return (
            "the version is Archived, which is final: register the artefact again as a "
            "new version that names this one (only a version that was once in Production "
            "may be rolled back there)"
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


def sealed_metrics(state: VersionState, at: int | None = None) -> dict[str, float]:
    """The whole-evaluation-set value of every metric sealed for the version (with it
    or in an addendum since); ``at``: only those sealed before the event at that seq."""
    metrics = state.metrics if at is None else state.metrics_at(at)
    return {m["metric"]: m["value"] for m in metrics if not m.get("slice")}


def gated_metrics(
    state: VersionState,
    policy_at: Callable[[int], Policy],
    before: int | None = None,
    *,
    sealed_at: int | None = None,
) -> dict[str, float]:
    """The metrics a gate reads: the sealed ones (those sealed before ``before``, or
    before ``sealed_at`` when given: a metrics addendum after a gate is not in it),
    except that once the version has a scan of its content hash (before ``before``),
    ``security_high_findings`` is the scan's critical plus high count, and unknown (so
    the gate fails) when the scan was inconclusive."""
    metrics = sealed_metrics(state, at=before if sealed_at is None else sealed_at)
    found = security_scan(state, policy_at, before)
    if found is not None:
        metrics.pop(SECURITY_METRIC, None)
        value = found[1].value
        if value is not None:
            metrics[SECURITY_METRIC] = value
    return metrics


def scan_reference(
    state: VersionState, policy_at: Callable[[int], Policy], before: int | None = None
) -> dict[str, object] | None:
    """How a gate event names the scan its security metric came from."""
    found = security_scan(state, policy_at, before)
    return None if found is None else {"seq": found[0].seq, "hash": found[0].hash}


def usable_approval(
    ws: Workspace, keyring: Keyring, registry: Registry, state: VersionState, target: str
) -> tuple[LedgerEvent | None, list[str]]:
    """The latest approval that allows ``state`` to move to ``target`` now, or why none
    does."""

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


def workflow_findings(registry: Registry, anchors: Anchors, *, vouched: int = 0) -> list[Finding]:
    """Every workflow rule broken anywhere in the ledger, event by event, each under the
    policy in force where it stands. The events up to ``vouched`` are the ones a witness
    vouches for (CI found them clean, and the chain proves they are the same bytes under
    the same keys): their rules depend on nothing after them, so only the state they
    leave is followed."""
    findings: list[Finding] = []
    stage: dict[tuple[str, int], str] = {}
    stage_seq: dict[tuple[str, int], int] = {}
    production: dict[str, set[int]] = {}
    once: set[tuple[str, int]] = set()  # versions ever promoted to Production
    last_gate: dict[tuple[str, int], LedgerEvent] = {}
    for event in registry.events:
        key = (event.model, event.version or 0)
        if event.kind in ("policy", "keyring") and event.model == REGISTRY_MODEL:
            continue  # the anchors' to judge
        if event.kind == "register":
            stage.setdefault(key, "None")
            stage_seq.setdefault(key, event.seq)
            continue
        if event.kind == "metrics" and registry.get(*key) is not None:
            continue  # replay judged it (RB509)
        if event.seq <= vouched:
            _follow(event, key, stage, stage_seq, production, last_gate)
            if event.kind == "promote" and event.payload.get("to") == "Production":
                once.add(key)
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
            findings.extend(
                gate_findings(
                    event, state, label, anchors.policy_at(event.seq).gates, anchors.policy_at
                )
            )
            last_gate[key] = event
        elif event.kind == "scan":
            findings.extend(scan_findings(event, state, label))
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
            problem = transition_problem(current, str(target), was_in_production=key in once)
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
                    anchors.policy_at(event.seq).transition_roles(current, str(target)),
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
                elif current == "Archived" and gated.seq < stage_seq.get(key, 0):
                    add(
                        "RB507",
                        f"rolled back to Production on gate event {gated.seq}, older than "
                        f"the archive (event {stage_seq.get(key)}): a rollback needs a "
                        "fresh gate",
                    )
                once.add(key)
                others = production.get(event.model, set()) - {event.version}
                if others:
                    add(
                        "RB504",
                        f"{event.model} already had version{'s' if len(others) != 1 else ''} "
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
        gates = parse_gates(anchors.policy.gates)
    except InputError:
        gates = ()
    for key, event in last_gate.items():
        state = registry.get(*key)
        if state is None or state.stage == "Archived" or not gates:
            continue
        now = evaluate(gates, gated_metrics(state, anchors.policy_at, sealed_at=event.seq))
        if event.payload.get("result") == PASS and now.result != PASS:
            findings.append(
                Finding.make(
                    "RB505",
                    event.where("payload"),
                    f"the latest gate result of {state.model}@{state.version} (event {event.seq}) "
                    f"is {event.payload.get('result')}, but the thresholds in force give "
                    f"{now.result} on the sealed metrics and the latest scan",
                    state.model,
                    state.version,
                )
            )
    return findings


def _follow(
    event: LedgerEvent,
    key: tuple[str, int],
    stage: dict[tuple[str, int], str],
    stage_seq: dict[tuple[str, int], int],
    production: dict[str, set[int]],
    last_gate: dict[tuple[str, int], LedgerEvent],
) -> None:
    """What a vouched event changes in workflow_findings' state, without its checks."""
    if event.kind == "gate":
        last_gate[key] = event
    elif event.kind in ("promote", "archive"):
        target = str(event.payload.get("to"))
        if target == "Production":
            production.setdefault(event.model, set()).add(event.version or 0)
        elif stage.get(key, "None") == "Production":
            production.get(event.model, set()).discard(event.version or 0)
        stage[key] = target
        stage_seq[key] = event.seq


def scan_findings(event: LedgerEvent, state: VersionState, label: str) -> list[Finding]:
    """A scan must be of this version's content hash and read back as ``scan`` wrote it;
    a typed security metric that disagrees with it is reported (the scan wins)."""

    def make(code: str, text: str) -> Finding:
        return Finding.make(code, event.where("payload"), f"{label}: {text}", event.model,
                            event.version)  # fmt: skip

    p = event.payload
    if p.get("content_hash") != state.content_hash:
        return [
            make(
                "RB902",
                f"scans content hash {str(p.get('content_hash'))[:24]}..., not this version's "
                f"{state.content_hash[:24]}...: it counts for nothing (a replayed scan)",
            )
        ]
    scan = recorded_scan(p)
    if scan.malformed:
        return [make("RB903", f"the scan cannot be read: {scan.malformed}")]
    typed = sealed_metrics(state).get(SECURITY_METRIC)
    if typed is not None and (not scan.conclusive or float(typed) != scan.high_findings):
        said = scan.high_findings if scan.conclusive else "inconclusive"
        return [
            make(
                "RB901",
                f"the sealed {SECURITY_METRIC} is {typed}, but the scan says {said}; the "
                "security gate reads the scan",
            )
        ]
    return []


def gate_findings(
    event: LedgerEvent,
    state: VersionState,
    label: str,
    in_force: dict[str, str],
    policy_at: Callable[[int], Policy],
) -> list[Finding]:
    """A gate result must follow from the sealed metrics (the security metric from the
    latest scan before it, if any) and the thresholds of the policy in force at the
    gate (``in_force``, its [gates])."""
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
    wanted = _gate_set(tuple(in_force.items()))
    used = frozenset(r.gate for r in recorded.results)
    if used != wanted:
        add(
            f"the gates recorded ({_gate_list(used)}) are not the gates of the policy in "
            f"force at the gate ({_gate_list(wanted)})"
        )
    metrics = gated_metrics(state, policy_at, event.seq)
    scan = scan_reference(state, policy_at, event.seq)
    if p.get("scan") != scan:
        add(
            f"the gate names scan {p.get('scan')}, but the latest scan of this content hash "
            f"before it is {scan}"
        )
    for r in recorded.results:
        sealed = metrics.get(r.gate.metric)
        if r.value != (None if sealed is None else float(sealed)):
            source = "the scan's" if r.gate.metric == SECURITY_METRIC and scan else "the sealed"
            add(
                f"gate {r.gate.name} recorded {r.gate.metric} = {r.value}, but {source} "
                f"value is {sealed}"
            )
        if r.gate.check(r.value) != r.result:
            add(f"gate {r.gate.name} recorded {r.result} for {r.gate} with value {r.value}")
    if recorded.result != p.get("result") or p.get("result") not in (PASS, FAIL):
        add(f"the overall result {p.get('result')} does not follow from the gates recorded")
    return out


@lru_cache(maxsize=64)
def _gate_set(gates: tuple[tuple[str, str], ...]) -> frozenset[Gate]:
    """The gates of a policy's [gates] (none if they do not parse)."""
    try:
        return frozenset(parse_gates(dict(gates)))
    except InputError:
        return frozenset()


def _gate_list(gates: frozenset[Gate]) -> str:
    return "; ".join(sorted(f"{g.name} {g}" for g in gates)) or "none"


def _approval_findings(
    event: LedgerEvent,
    registry: Registry,
    state: VersionState,
    current: str,
    target: str,
    since: int,
    roles: tuple[str, ...],
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
    if signer_role(approval) not in roles:
        return finding(
            "RB501",
            f"the approval it uses (event {approval.seq}) was signed as "
            f"{signer_role(approval)}; {current} -> {target} needs "
            f"{' or '.join(roles)}",
        )
    return []
