"""Governance: signed approvals, validation gates and the stage workflow.

Stages run ``None -> Staging -> Production -> Archived``; any stage may go to
``Archived``, which is final but for a rollback: a version that was once in Production
may go back there, with every precondition again and its artefact out of its bag.
Every transition needs a signed approval naming the version's content hash; Production
also needs the latest gate result PASS, the artefact re-hashed, and the transition
signed by a ``ci`` key::

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

from regbook.check.bags import bag_findings
from regbook.core.errors import InputError, Listed, RegbookError
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.crypto.keys import SigningKey, load_keyring
from regbook.ledger.events import LedgerEvent, payload_cell
from regbook.ledger.gates import PASS, Outcome, evaluate, parse_gates
from regbook.ledger.rules import (
    ONLY_CI,
    gate_findings,
    gated_metrics,
    scan_reference,
    transition_problem,
    usable_approval,
)
from regbook.ledger.scans import SECURITY_METRIC, security_scan
from regbook.ledger.state import VersionState
from regbook.registry.transaction import Transaction, acting_identity, write_changes
from regbook.storage.hashing import ContentHash, hash_path
from regbook.storage.scanning import ScanReport, scan_artefact
from regbook.workflow.archive import bag_version, dispose_original, reinstate_from_bag


class PromotionRefused(RegbookError, Listed):
    """Promotion refused: every unmet precondition is listed (exit 1)."""

    exit_code = 1
    bullet = "  - "

    def __init__(self, ref: ModelRef, target: str, unmet: list[str]):
        self.unmet = unmet
        head = f"promotion of {ref} to {target} refused; nothing was written. Unmet:"
        super().__init__(self.listed(head, unmet))


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
    ws: Workspace,
    ref: ModelRef,
    to_stage: str,
    key: SigningKey,
    *,
    note: str = "",
    role: str | None = None,
) -> Approved:
    """Append a signed approval of ``ref`` moving from its current stage to ``to_stage``."""
    with Transaction(ws, resume=True) as tx:
        state = tx.version(ref)
        problem = transition_problem(
            state.stage, to_stage, was_in_production=state.was_in_production
        )
        if problem:
            raise InputError(f"cannot approve {ref} for {to_stage}: {problem}")
        roles = ws.settings.transition_roles(state.stage, to_stage)
        if not roles:
            raise InputError(
                f"cannot approve {ref} for {to_stage}: {no_roles(state.stage, to_stage)}"
            )
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
    security: str = ""  # where security_high_findings came from, when a scan set it

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "ledger_seq": self.seq,
            **self.outcome.to_json(),
            **({"security": self.security} if self.security else {}),
        }


def gate(ws: Workspace, ref: ModelRef, key: SigningKey, *, role: str | None = None) -> Gated:
    """Evaluate the gates in regbook.toml over the sealed metrics; record the result as a
    signed event, PASS or FAIL alike."""
    gates = parse_gates(ws.settings.gates)
    with Transaction(ws, resume=True) as tx:
        state = tx.version(ref)
        if state.stage == "Archived" and not state.was_in_production:
            raise InputError(
                f"cannot gate {ref}: it is Archived and was never in Production (only a "
                "rollback to Production gates an Archived version again)"
            )
        identity = acting_identity(ws, key, ws.settings.gate_roles, "recording a gate result", role)
        policy_at = tx.snapshot.anchors.policy_at
        outcome = evaluate(gates, gated_metrics(state, policy_at))
        payload = {"content_hash": state.content_hash, "stage": state.stage, **outcome.to_json()}
        scanned = scan_reference(state, policy_at)
        if scanned is not None:
            payload["scan"] = scanned
        security = _security_source(state, policy_at)
        event = tx.sign(identity, "gate", ref.name, ref.version, payload)
        _commit(tx, [state])
    return Gated(ref, outcome, event.seq, security)


def _scan_said(state: VersionState, policy_at: Any, before: int) -> str:
    """What the scan a failed gate read found, for a refusal to name."""
    found = security_scan(state, policy_at, before)
    if found is None:
        return ""
    event, scan = found
    if not scan.conclusive:
        return f"; the security scan (ledger event {event.seq}) is {scan.why_inconclusive()}"
    named = [
        f"{f.get('path')}: {item.get('rule')} {item.get('global')} ({item.get('severity')})"
        for f in scan.files
        for item in f.get("findings", [])
        if isinstance(item, dict) and item.get("severity") in ("critical", "high")
    ]
    if not named:
        return ""
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    return f"; the security scan (ledger event {event.seq}) found " + "; ".join(named[:3]) + more


def _security_source(state: VersionState, policy_at: Any) -> str:
    found = security_scan(state, policy_at)
    if found is None:
        return ""
    event, scan = found
    if scan.conclusive:
        return (
            f"{SECURITY_METRIC} = {scan.high_findings} (critical + high) from the scan in "
            f"ledger event {event.seq}"
        )
    return f"the scan in ledger event {event.seq} is {scan.why_inconclusive()}"


# --- scan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scanned:
    ref: ModelRef
    report: ScanReport
    seq: int
    payload: dict[str, Any]
    typed: float | None  # a security_high_findings sealed with the version, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "ledger_seq": self.seq,
            "sealed_metric": self.typed,
            **self.payload,
        }


def scan(ws: Workspace, ref: ModelRef, key: SigningKey, *, role: str | None = None) -> Scanned:
    """Hash and scan every file of the version's artefact without loading it; refuse an
    artefact whose hash is not the sealed one; record the scan as a signed event."""
    with Transaction(ws, resume=True) as tx:
        state = tx.version(ref)
        if state.stage == "Archived":
            raise InputError(f"cannot scan {ref}: it is Archived (its artefact is in its bag)")
        identity = acting_identity(ws, key, ws.settings.scan_roles, "signing a security scan", role)
        path = ws.resolve_storage(state.storage, str(ref))
        if not path.exists():
            raise InputError(f"the artefact of {ref} is missing at {state.storage}")
        report = scan_artefact(path)
        if report.content_hash != ContentHash.parse(state.content_hash):
            raise InputError(
                f"the artefact at {state.storage} has hash {str(report.content_hash)[:24]}..., "
                f"not the sealed {state.content_hash[:24]}...: a changed artefact is not "
                "scanned; nothing was written"
            )
        payload = scan_payload(report, state.stage)
        event = tx.sign(identity, "scan", ref.name, ref.version, payload)
        _commit(tx, [state])
    typed = next(
        (float(m["value"]) for m in state.metrics
         if m["metric"] == SECURITY_METRIC and not m.get("slice")),
        None,
    )  # fmt: skip
    return Scanned(ref, report, event.seq, payload, typed)


def scan_payload(report: ScanReport, stage: str) -> dict[str, Any]:
    """The scan event's payload (docs/formats.md). Every file is listed while the list
    fits the Ledger cell; past that, the files with findings or problems are listed and
    the others counted per format."""
    payload: dict[str, Any] = {
        "content_hash": str(report.content_hash),
        "stage": stage,
        "scanner": {"name": report.scanner, "version": report.scanner_version},
        "verdict": report.verdict,
        "counts": report.counts,
        "inconclusive": list(report.inconclusive),
        "files": [f.to_json() for f in report.files],
    }
    try:
        payload_cell("scan", payload)
        return payload
    except InputError:
        pass
    listed = [f for f in report.files if f.findings or f.problem]
    rest = [f for f in report.files if not (f.findings or f.problem)]
    formats: dict[str, int] = {}
    for f in rest:
        formats[f.format] = formats.get(f.format, 0) + 1
    payload["files"] = [f.to_json() for f in listed]
    payload["clean_files"] = {
        "count": len(rest),
        "runs_code": sum(f.runs_code for f in rest),
        "formats": dict(sorted(formats.items())),
    }
    if not listed:
        payload["files"] = [rest[0].to_json()]
        payload["clean_files"]["count"] -= 1
        payload["clean_files"]["formats"][rest[0].format] -= 1
    payload_cell("scan", payload)  # InputError if even this does not fit
    return payload


# --- promote -------------------------------------------------------------------------


@dataclass(frozen=True)
class Promoted:
    ref: ModelRef
    from_stage: str
    to_stage: str
    principal: str
    seq: int
    archived: tuple[str, ...] = ()  # versions archived into their bags on the way
    reinstated: str | None = None  # a rollback: where the artefact came back to

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "from": self.from_stage,
            "to": self.to_stage,
            "principal": self.principal,
            "ledger_seq": self.seq,
            "archived": list(self.archived),
            "rollback": self.reinstated is not None,
            "storage": self.reinstated,
        }


def promote(
    ws: Workspace,
    ref: ModelRef,
    to_stage: str,
    key: SigningKey,
    *,
    role: str | None = None,
    archive_previous: bool = False,
) -> Promoted:
    """Append the transition only if every precondition holds; else list every unmet one.

    With ``archive_previous`` a promotion to Production also archives the model's
    Production version into its bag in the same command (it needs its own signed
    approval to Archived); the ci key signs both events, the archive first."""
    if archive_previous and to_stage != "Production":
        raise InputError(
            "archive_previous: only a promotion to Production archives the version it replaces",
            option="archive_previous",
        )
    to_archive: list[tuple[VersionState, LedgerEvent]] = []
    # Archiving the previous version writes a model card with what verify finds: the
    # transaction checks everything first.
    with Transaction(ws, checked=archive_previous, resume=True) as tx:
        state = tx.version(ref)
        keyring = load_keyring(ws)
        unmet: list[str] = []
        problem = transition_problem(
            state.stage, to_stage, was_in_production=state.was_in_production
        )
        if problem:
            raise PromotionRefused(ref, to_stage, [problem])
        # A rollback brings the artefact back out of its bag; a version archived by a
        # transition without a bag (promote --to Archived) never left its storage.
        rollback = state.stage_event is not None and state.stage_event.kind == "archive"
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
                    + _scan_said(state, tx.snapshot.anchors.policy_at, gate_event.seq)
                )
            elif (
                state.stage == "Archived"
                and state.stage_event
                and gate_event.seq < state.stage_event.seq
            ):
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) is older than "
                    f"the archive (event {state.stage_event.seq}): a rollback needs a fresh "
                    f"gate under the policy in force: run `regbook gate {ref}` in CI"
                )
            elif gate_event.payload.get("content_hash") != state.content_hash:
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) is for "
                    "another content hash"
                )
            elif gate_findings(
                gate_event,
                state,
                "",
                tx.snapshot.anchors.policy_at(gate_event.seq).gates,
                tx.snapshot.anchors.policy_at,
            ):
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) does not "
                    "follow from the sealed metrics (run `regbook verify`)"
                )
            elif (
                evaluate(
                    parse_gates(ws.settings.gates),
                    gated_metrics(state, tx.snapshot.anchors.policy_at),
                ).result
                != PASS
            ):
                # verify would report RB505 on the very PASS this promotion rests on.
                unmet.append(
                    f"the latest gate result (ledger event {gate_event.seq}) is PASS, but "
                    f"the thresholds in regbook.toml now give FAIL: run `regbook gate {ref}` "
                    "again"
                )
            else:
                payload["gate"] = {"hash": gate_event.hash, "seq": gate_event.seq}
            checked = _bag_problem(ws, state) if rollback else _recheck_artefact(ws, state)
            if checked:
                unmet.append(checked)
            else:
                payload["artefact_checked"] = state.content_hash
            others = [v for v in tx.registry.production(ref.name) if v.version != ref.version]
            for other in others:
                if not archive_previous:
                    unmet.append(
                        f"{other.model}@{other.version} is in Production (at most one "
                        "Production version per model): give --archive-previous to archive "
                        "it into its bag in this command, with its signed approval to "
                        f"Archived (`regbook approve {other.model}@{other.version} --to "
                        "Archived`)"
                    )
                    continue
                retiring, why = usable_approval(ws, keyring, tx.registry, other, "Archived")
                unmet.extend(why)
                if retiring is not None:
                    to_archive.append((other, retiring))
        if unmet or identity is None:
            raise PromotionRefused(ref, to_stage, unmet)
        if rollback:
            # The artefact comes back from its bag, which stays: checked, then in place
            # before any event is signed (a copy left by a failed save is harmless, and
            # the next run reuses it once it hashes as sealed).
            payload["storage"] = reinstate_from_bag(ws, state)
            payload["reinstated_from"] = state.storage
        if not to_archive:
            event = tx.sign(identity, "promote", ref.name, ref.version, payload)
            _commit(tx, [state])
            return Promoted(
                ref,
                payload["from"],
                to_stage,
                identity.principal,
                event.seq,
                reinstated=payload.get("storage"),
            )

        patch = tx.patch()  # first: a workbook that cannot be written gets no bag
        for other, retiring in to_archive:
            bagged, _notes = bag_version(tx, other, identity, retiring)
            bagged["superseded_by"] = {"model": ref.name, "version": ref.version}
            tx.sign(identity, "archive", other.model, other.version, bagged)
        event = tx.sign(identity, "promote", ref.name, ref.version, payload)
        changed = [(s.model, s.version) for s in (state, *(o for o, _ in to_archive))]
        write_changes(tx, patch, changed, draft_rows={})
        tx.save(patch)
        for other, _ in to_archive:
            dispose_original(ws, other)
    archived = tuple(f"{o.model}@{o.version}" for o, _ in to_archive)
    return Promoted(
        ref,
        payload["from"],
        to_stage,
        identity.principal,
        event.seq,
        archived,
        reinstated=payload.get("storage"),
    )


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


def _bag_problem(ws: Workspace, state: VersionState) -> str | None:
    """Why the artefact cannot come back from the version's bag, or None."""
    found = [f for f in bag_findings(ws, state, "full") if f.is_problem]
    if found:
        return (
            f"the bag of {state.model}@{state.version} does not validate, so its artefact "
            f"cannot come back: {found[0].message} (run `regbook fixity`)"
        )
    return None


def no_roles(from_stage: str, to_stage: str) -> str:
    return (
        f"the policy in force names no role that may approve {from_stage} -> {to_stage}: "
        f'a governance lead adds "{from_stage}->{to_stage}" under [transitions] in '
        "regbook.toml and signs it (`regbook policy sign`)"
    )


def _commit(tx: Transaction, states: list[VersionState]) -> None:
    patch = tx.patch()
    write_changes(tx, patch, [(s.model, s.version) for s in states], draft_rows={})
    tx.save(patch)


# --- verify's side: the rules replayed over the ledger -------------------------------
