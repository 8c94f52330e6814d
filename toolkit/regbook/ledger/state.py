"""The registry's state, replayed from the ledger: one entry per sealed version.

registry, findings = Registry.replay(events)
registry.versions[("credit-risk", 7)].stage
registry.next_version("credit-risk")
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from regbook.core.errors import cut
from regbook.core.findings import Finding
from regbook.core.ids import CompositeId
from regbook.core.schema import MODEL_NAME_RE, finite_number
from regbook.ledger.events import LedgerEvent
from regbook.ledger.signatures import signer_role
from regbook.storage.hashing import CONTENT_HASH_RE


@dataclass
class VersionState:
    model: str
    version: int
    register: LedgerEvent
    stage: str = "None"
    events: list[LedgerEvent] = field(default_factory=list)
    storage: str = ""
    gate: str | None = None
    approval: str | None = None
    deployed_on: str | None = None
    retain_until: str | None = None
    approvals: list[LedgerEvent] = field(default_factory=list)
    gate_event: LedgerEvent | None = None
    stage_event: LedgerEvent | None = None  # the transition that set the stage
    scans: list[LedgerEvent] = field(default_factory=list)  # every scan event, in order
    addenda: list[LedgerEvent] = field(default_factory=list)  # metrics sealed later

    @property
    def payload(self) -> dict[str, Any]:
        return self.register.payload

    @property
    def seal(self) -> str:
        return self.register.hash

    @property
    def content_hash(self) -> str:
        return self.payload["artefact"]["hash"]

    @property
    def composite_id(self) -> str:
        return self.payload["composite_id"]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """Every sealed metric: the registration's, then each addendum's in chain order."""
        out = list(self.payload.get("metrics", []))
        for event in self.addenda:
            out.extend(event.payload["metrics"])
        return out

    def metrics_at(self, seq: int) -> list[dict[str, Any]]:
        """The metrics sealed before the event at ``seq`` (what a gate there read)."""
        out = list(self.payload.get("metrics", []))
        for event in self.addenda:
            if event.seq < seq:
                out.extend(event.payload["metrics"])
        return out

    def added_by(self, metric: str, slice_: str = "") -> LedgerEvent:
        """The event that sealed a metric: the registration or a metrics addendum."""
        for event in self.addenda:
            for m in event.payload["metrics"]:
                if m["metric"] == metric and m.get("slice", "") == slice_:
                    return event
        return self.register

    @property
    def was_in_production(self) -> bool:
        """Whether a promotion ever took the version to Production (a rollback may bring
        it back there from Archived, and only then)."""
        return any(e.kind == "promote" and e.payload.get("to") == "Production" for e in self.events)

    @property
    def bag_event(self) -> LedgerEvent | None:
        """The latest archive event: it names the bag, which stays after a rollback."""
        return next((e for e in reversed(self.events) if e.kind == "archive"), None)

    @property
    def artefact_storage(self) -> str:
        """Where the artefact lives outside its bag: where it was sealed, or where the
        latest rollback put it back from the bag."""
        storage = self.payload["artefact"]["storage"]
        for e in self.events:
            if e.kind == "promote" and isinstance(e.payload.get("storage"), str):
                storage = e.payload["storage"]
        return storage

    def metric(self, name: str, slice_: str = "") -> float | None:
        for m in self.metrics:
            if m["metric"] == name and m.get("slice", "") == slice_:
                return m["value"]
        return None


@dataclass
class Registry:
    """Every sealed version's state, replayed from ``events``. A writer may hold one whose
    events and versions are read on demand from a stored state (regbook.registry.resume):
    it behaves the same, so its containers are typed by what they do, not as lists."""

    events: MutableSequence[LedgerEvent] = field(default_factory=list)
    versions: MutableMapping[tuple[str, int], VersionState] = field(default_factory=dict)
    highest: dict[str, int] = field(default_factory=dict)  # model -> highest version

    @property
    def by_seal(self) -> Mapping[str, VersionState]:
        return {v.seal: v for v in self.versions.values()}

    def events_of(self, approvals: bool, start: int = 0) -> list[LedgerEvent]:
        """The approvals (or every other event), from the ``start``-th of them on: the
        rows of Approvals (or History) from that one on."""
        chosen = (e for e in self.events if (e.kind == "approve") is approvals)
        return list(islice(chosen, start, None))

    def max_version(self, model: str) -> int:
        return self.highest.get(model, 0)

    def next_version(self, model: str) -> int:
        return self.max_version(model) + 1

    def get(self, model: str, version: int) -> VersionState | None:
        return self.versions.get((model, version))

    @classmethod
    def replay(cls, events: list[LedgerEvent], vouched: int = 0) -> tuple[Registry, list[Finding]]:
        """The registry the events make, and what replaying them found. The
        registrations among the first ``vouched`` events are not checked for their shape
        again: they were read from rows that are, byte for byte, the ones a trusted
        witness's verifier replayed and found clean."""
        registry = cls()
        return registry, registry.extend(events, vouched)

    def extend(self, events: list[LedgerEvent], vouched: int = 0) -> list[Finding]:
        """Replay ``events`` after those replayed already (a writer's new ones)."""
        self.events.extend(events)
        findings: list[Finding] = []
        for i, event in enumerate(events):
            if event.kind == "register":
                findings.extend(self._register(event, checked=i >= vouched))
            else:
                state = self.versions.get((event.model, event.version or 0))
                if state is not None and event.kind == "metrics":
                    findings.extend(_add_metrics(state, event))
                elif state is not None:
                    self._apply(state, event)
        return findings

    def _apply(self, state: VersionState, event: LedgerEvent) -> None:
        """What a governance event changes in a version's views. Whether the event was
        allowed is verify's question (governance.workflow_findings), not replay's."""

        state.events.append(event)
        payload = event.payload
        if event.kind == "approve":
            state.approvals.append(event)
        elif event.kind == "scan":
            state.scans.append(event)
        elif event.kind == "gate":
            state.gate = payload.get("result")
            state.gate_event = event
        elif event.kind in ("promote", "archive"):
            state.stage = str(payload.get("to"))
            state.stage_event = event
            link = payload.get("approval")
            approval = self.event(link.get("seq")) if isinstance(link, dict) else None
            state.approval = (
                f"{approval.signer} ({signer_role(approval)}) {approval.at[:10]}"
                if approval is not None and approval.kind == "approve"
                else None
            )
            if state.stage == "Production":
                state.deployed_on = event.at[:10]
            if payload.get("storage"):
                state.storage = payload["storage"]
            if event.kind == "archive" and isinstance(payload.get("retain_until"), str):
                state.retain_until = payload["retain_until"]

    def event(self, seq: object) -> LedgerEvent | None:
        if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= len(self.events):
            event = self.events[seq - 1]
            return event if event.seq == seq else None
        return None

    def unknown(self, ref: object, model: str, version: int | None) -> str:
        """The message for a reference to no sealed version: the closest names there
        are, and where to see them all."""
        models = sorted({m for m, _v in self.versions})
        if model in models:
            have = sorted(v for m, v in self.versions if m == model)
            hint = f"{model} has version{'s' if len(have) != 1 else ''} " + ", ".join(
                map(str, have[-5:])
            )
            if version is None:
                hint = f"name the version, e.g. {model}@{have[-1]}"
        else:
            close = difflib.get_close_matches(model, models, n=3, cutoff=0.6)
            at = f"@{version}" if version is not None else ""
            hint = (
                "did you mean " + " or ".join(f"{m}{at}" for m in close) + "?"
                if close
                else "no model of that name is sealed"
            )
        return (
            f"{ref}: no such sealed version in the ledger; {hint} (`regbook list` shows them all)"
        )

    def production(self, model: str) -> list[VersionState]:
        return [v for (m, _), v in self.versions.items() if m == model and v.stage == "Production"]

    def _register(self, event: LedgerEvent, checked: bool = True) -> list[Finding]:
        findings = []
        key = (event.model, event.version or 0)
        label = f"{event.model}@{event.version}"
        if key in self.versions:
            findings.append(Finding.make(
                "RB201", event.where("version"),
                f"{label} is registered again by event {event.seq}; it was sealed by event "
                f"{self.versions[key].register.seq} and a version is never reused",
                event.model, event.version))  # fmt: skip
            return findings
        expected = self.next_version(event.model)
        if event.version != expected:
            findings.append(Finding.make(
                "RB202", event.where("version"),
                f"{label} was registered where version {expected} was next: versions are "
                "max+1 over every version ever sealed", event.model, event.version))  # fmt: skip
        # A version number is used up even by a registration that cannot be replayed.
        self.highest[event.model] = max(self.highest.get(event.model, 0), event.version or 0)
        problem = (
            None
            if MODEL_NAME_RE.fullmatch(event.model)
            else f"the model name {event.model!r} is not one register accepts (lower case "
            "a-z 0-9 . _ -): a look-alike of another name, or a name no reader can tell apart"
        ) or (payload_problem(event.payload) if checked else None)
        if problem is not None:
            # Everything downstream reads these fields; such a version is not replayed.
            findings.append(Finding.make(
                "RB203", event.where("payload"),
                f"registration {event.seq} cannot be read: {problem}; the version is left "
                "out of every view", event.model, event.version))  # fmt: skip
            return findings
        if checked:
            findings.extend(_check_payload(event))
        state = VersionState(event.model, event.version or 0, event, events=[event])
        state.storage = event.payload["artefact"]["storage"]
        self.versions[key] = state
        return findings


_TEXT_FIELDS = ("code_commit", "composite_id", "data_version")
_OPTIONAL_TEXT = ("code_repo", "data_repo", "pipeline_run", "trained_on")


def payload_problem(p: dict[str, Any]) -> str | None:
    """What a registration's payload lacks, or holds in a form regbook never writes;
    None when every field the views, reports and checks read is there as written. A
    signed payload is not trusted to be well-formed: its event may have been edited."""
    artefact = p.get("artefact")
    if type(artefact) is not dict:
        return "artefact is missing or not an object"
    content = artefact.get("hash")
    if type(content) is not str or not CONTENT_HASH_RE.fullmatch(content):
        return f"artefact hash {_json(content)} is not ALGORITHM:HEX"
    if type(artefact.get("storage")) is not str:
        return "artefact storage is missing or not text"
    for key in ("bytes", "files"):
        if key in artefact and type(artefact[key]) is not int:
            return f"artefact {key} is not a whole number"
    for key in _TEXT_FIELDS:
        if type(p.get(key)) is not str:
            return f"{key} is missing or not text"
    for key in _OPTIONAL_TEXT:
        if p.get(key) is not None and type(p[key]) is not str:
            return f"{key} is not text"
    params = p.get("params", {})
    if type(params) is not dict or not all(type(v) is str for v in params.values()):
        return "params is not an object of texts"
    return metrics_problem(p.get("metrics", []))


def metrics_problem(metrics: object) -> str | None:
    """What is wrong with a signed list of metrics, or None."""
    if type(metrics) is not list:
        return "metrics is not a list"
    for n, m in enumerate(metrics, start=1):
        if type(m) is not dict or type(m.get("metric")) is not str:
            return f"metric {n} has no name"
        value = m.get("value")
        if not finite_number(value):
            return f"metric {m['metric']} has value {_json(value)}, not a finite number"
        if type(m.get("kind", "")) is not str or type(m.get("slice", "")) is not str:
            return f"metric {m['metric']} has a kind or slice that is not text"
    return None


def _add_metrics(state: VersionState, event: LedgerEvent) -> list[Finding]:
    """A metrics addendum adds metrics to a sealed version and never changes one: an
    addendum that names a metric already sealed, or that cannot be read, adds nothing."""
    state.events.append(event)
    label = f"{state.model}@{state.version}"
    p = event.payload
    problem = metrics_problem(p.get("metrics"))
    if problem is None and not p.get("metrics"):
        problem = "it adds no metric"
    if problem is None and p.get("content_hash") != state.content_hash:
        problem = f"it names content hash {_json(p.get('content_hash'))}, not {label}'s"
    if problem is None:
        sealed = {(m["metric"], m.get("slice", "")): m for m in state.metrics}
        seen: set[tuple[str, str]] = set()
        for m in p["metrics"]:
            key = (m["metric"], m.get("slice", ""))
            if key in sealed:
                problem = (
                    f"it would change {m['metric']}{' [' + key[1] + ']' if key[1] else ''}, "
                    f"sealed as {sealed[key]['value']} by event {state.added_by(*key).seq}; a "
                    "sealed metric is never changed"
                )
                break
            if key in seen:
                problem = f"it gives {m['metric']} twice"
                break
            seen.add(key)
    if problem is not None:
        return [
            Finding.make(
                "RB509",
                event.where("payload"),
                f"metrics addendum {event.seq} for {label} adds nothing: {problem}",
                state.model,
                state.version,
            )
        ]
    state.addenda.append(event)
    return []


def _json(value: object) -> str:
    return cut(json.dumps(value, ensure_ascii=False), 40)


def _check_payload(event: LedgerEvent) -> list[Finding]:
    """A registration's payload (of the shape ``payload_problem`` accepts) must name the
    composite ID its fields give."""
    p = event.payload
    expected = str(
        CompositeId.build(
            event.model,
            event.version or 0,
            p["artefact"]["hash"].split(":", 1)[1],
            p["data_version"],
            p["code_commit"],
        )
    )
    if p.get("composite_id") != expected:
        return [
            Finding.make(
                "RB203",
                event.where("payload"),
                f"registration {event.seq} names composite ID "
                f"{p.get('composite_id')!r}; its fields give {expected}",
                event.model,
                event.version,
            )
        ]
    return []
