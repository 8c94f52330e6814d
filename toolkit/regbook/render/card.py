"""The model card as data and as text: pure functions of a snapshot.

A card joins two sources and says, section by section, which one it used: the SME's
prose from the workbook's ``Cards`` sheet (one row per model, not sealed) and the
sealed facts of the version from the ledger (identity, data, code, metrics, gates)::

    data = build_card(snapshot, snapshot.version(ref), report.findings)
    text = render_card_markdown(data)

Every section is always present; one with nothing to say reads "not documented". A
version with verify findings says so at the top, as the evidence report does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from regbook.core import fs
from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.policy import Policy
from regbook.core.schema import CARDS, TEXT, normalize
from regbook.core.version import __version__
from regbook.ledger.scans import security_scan
from regbook.ledger.state import VersionState
from regbook.registry.snapshot import Snapshot
from regbook.render.text import render_text
from regbook.workbook.read import CellValue, Table


def banner_status(
    state: VersionState, problems: int, *, for_stage: str | None = None
) -> dict[str, Any]:
    """What a report's banner says, verification and gate each in its own sentence.
    ``ready`` (the green banner) only when nothing is wrong, the latest gate result is
    PASS and, for a report that is evidence for a stage (``for_stage``), the version is
    in it."""
    gate = state.gate_event
    result = gate.payload.get("result") if gate is not None else None
    if problems:
        verification = f"Verification: {problems} problem{'s' if problems != 1 else ''} found."
    else:
        verification = "Verification: `regbook verify` reports no error or warning."
    if gate is None:
        gate_line = "Gate: no validation gate result is recorded."
    else:
        gate_line = (
            f"Gate: the latest validation gate result is {result} (ledger event {gate.seq})."
        )
    stage_line = None
    if for_stage is not None:
        stage_line = (
            f"Stage: {state.stage}."
            if state.stage == for_stage
            else f"Stage: {state.stage}, not {for_stage}: this report is not evidence for a "
            f"{for_stage} version."
        )
    return {
        "ready": not problems and result == "PASS" and stage_line in (None, f"Stage: {for_stage}."),
        "verification": verification,
        "gate": gate_line,
        "stage": stage_line,
    }


def security_scan_data(
    state: VersionState, policy_at: Callable[[int], Policy]
) -> dict[str, Any] | None:
    """The scan the security gate reads (the latest of this content hash), file by file:
    its format, whether loading it can run code, its verdict and findings."""
    found = security_scan(state, policy_at)
    if found is None:
        return None
    event, scan = found
    files = []
    for f in scan.files:
        items = f.get("findings")
        items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        files.append({
            "path": f.get("path"), "format": f.get("format"), "runs_code": f.get("runs_code"),
            "verdict": f.get("verdict"), "problem": f.get("problem") or "",
            "findings": "; ".join(
                f"{i.get('severity')} {i.get('rule')} {i.get('global') or ''}".strip()
                for i in items
            ),
        })  # fmt: skip
    rest = event.payload.get("clean_files")
    return {
        "seq": event.seq,
        "at": event.at,
        "signer": event.signer,
        "scanner": scan.scanner,
        "verdict": "malformed" if scan.malformed else event.payload.get("verdict"),
        "counts": scan.counts,
        "high_findings": scan.high_findings,
        "inconclusive": list(scan.inconclusive),
        "files": files,
        "clean_files": rest if isinstance(rest, dict) else None,
    }


def evaluation_data(
    state: VersionState, policy_at: Callable[[int], Policy] | None = None
) -> dict[str, Any]:
    gate = state.gate_event
    recorded = gate.payload.get("gates") if gate is not None else None
    gates = recorded if isinstance(recorded, list) else []  # verify names a malformed one
    by_metric = {
        g["metric"]: g for g in gates if isinstance(g, dict) and type(g.get("metric")) is str
    }
    metrics = []
    for m in state.metrics:
        g = by_metric.get(m["metric"]) if not m.get("slice") else None
        by = state.added_by(m["metric"], m.get("slice", ""))
        metrics.append({
            "metric": m["metric"], "slice": m.get("slice", ""), "kind": m.get("kind", ""),
            "value": m["value"],
            "sealed": f"{by.at[:10]} " + (
                "(registration)" if by.kind == "register" else f"(added, event {by.seq})"),
            "gate": g.get("gate") if g else None,
            "threshold": f"{g.get('op')} {g.get('threshold')}" if g else None,
            "result": g.get("result") if g else None,
        })  # fmt: skip
    return {
        "metrics": metrics,
        "gates": [
            {
                "gate": g.get("gate"),
                "metric": g.get("metric"),
                "op": g.get("op"),
                "threshold": g.get("threshold"),
                "value": g.get("value"),
                "result": g.get("result"),
            }
            for g in gates
            if isinstance(g, dict)
        ],
        "gate": None
        if gate is None
        else {
            "result": gate.payload.get("result"),
            "seq": gate.seq,
            "at": gate.at,
            "signer": gate.signer,
        },
        "security_scan": None if policy_at is None else security_scan_data(state, policy_at),
    }


NOT_DOCUMENTED = "not documented"


# The Cards columns a card shows, in section order.
PROSE = ("intended_use", "out_of_scope", "training_data", "evaluation", "limitations",
         "ethics", "owners")  # fmt: skip


@dataclass(frozen=True)
class CardRow:
    """The Cards sheet as it bears on one model: ``status`` is "row", "no-row" (the sheet
    has no row naming the model) or "no-sheet" (a workbook made before Cards existed)."""

    model: str
    status: str
    text: dict[str, str | None] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # column key -> cell (Cards!B2)


def card_row(table: Table | None, model: str) -> CardRow:
    """The row of the Cards sheet ``table`` naming ``model``; two rows naming it are an
    InputError by cell. ``table`` is None for a workbook made before Cards existed."""
    if table is None:
        return CardRow(model, "no-sheet")
    found: int | None = None
    for i, _row in table.indexed():
        if normalize(TEXT, table.value(i, "model")) != model:
            continue
        if found is not None:
            raise InputError(
                f"{table.ref(i, 'model')}: a second Cards row for {model} (the first is "
                f"{table.ref(found, 'model')}); keep one row per model"
            )
        found = i
    if found is None:
        return CardRow(model, "no-row")
    text = {key: _prose(table.value(found, key)) for key in PROSE}
    refs = {key: table.ref(found, key) for key in PROSE}
    return CardRow(model, "row", text, refs)


def _prose(value: CellValue) -> str | None:
    text = normalize(TEXT, value)
    if text is None:
        return None
    return "\n".join(line.rstrip() for line in str(text).replace("\r\n", "\n").split("\n"))


def build_card(
    snapshot: Snapshot,
    state: VersionState,
    found: list[Finding],
    context: str | None = None,
) -> dict[str, Any]:
    """The card of ``state`` from ``snapshot`` (its Cards sheet read), given what verify
    ``found`` for it; ``context`` is a sentence on where the card was written (the
    archive bag)."""
    row = card_row(snapshot.cards(), state.model)
    findings = [f.to_json() for f in found]
    problems = [f for f in findings if f["severity"] in ("error", "warning")]
    sections = {key: _prose_section(row, key) for key in PROSE}
    sections["training_data"]["facts"] = _training_facts(state)
    sections["evaluation"].update(_evaluation(state, snapshot.anchors.policy_at))
    return {
        "title": f"Model card: {state.model}@{state.version}",
        "composite_id": state.composite_id,
        "context": context,
        "problems": {
            "count": len(problems),
            "findings": problems,
            **banner_status(state, len(problems)),
        },
        "cards": {"status": row.status, "notice": _cards_notice(row)},
        "details": _details(state),
        **sections,
        "footer": {
            "generated_at": fs.utc_now(),  # one clock for every report
            "regbook_version": __version__,
            "ledger_head": snapshot.ledger_head,
            "keyring_sha256": snapshot.keyring.sha256,
            "registry_id": snapshot.registry_id,
        },
    }


def _cards_notice(row: CardRow) -> str | None:
    if row.status == "no-sheet":
        return (
            "The workbook has no Cards sheet (it was made before regbook had one), so the "
            'SME\'s sections read "not documented". Copy the Cards sheet from a new '
            "template (`regbook init`) into the workbook and fill in a row for "
            f"{row.model}."
        )
    if row.status == "no-row":
        return (
            f"The Cards sheet has no row for {row.model}, so the SME's sections read "
            f'"not documented". Add one to fill them.'
        )
    return None


def _prose_section(row: CardRow, key: str) -> dict[str, Any]:
    text = row.text.get(key)
    if row.status == "row":
        source = f"{row.refs[key]}, the SME's text in the Cards sheet (not sealed)"
        if text is None:
            source = f"{row.refs[key]} is empty"
    elif row.status == "no-row":
        source = f"the Cards sheet has no row for {row.model}"
    else:
        source = "the workbook has no Cards sheet"
    return {"title": CARDS.header(key), "text": text, "source": source}


def _sealed_source(state: VersionState) -> str:
    event = state.register
    return (
        f"the sealed registration, ledger event {event.seq}, signed by {event.signer} at {event.at}"
    )


def _details(state: VersionState) -> dict[str, Any]:
    p = state.payload
    params = p.get("params") or {}
    if isinstance(params, dict):
        params_text = "; ".join(f"{k}={v}" for k, v in sorted(params.items()))
    else:
        params_text = str(params)
    stage_event = state.stage_event
    stage_source = (
        f"ledger event {stage_event.seq} ({stage_event.kind}, {stage_event.at})"
        if stage_event is not None
        else "no transition recorded since registration"
    )
    facts = [
        ("Composite ID", state.composite_id, True),
        ("Stage", state.stage, False),
        ("Content hash", state.content_hash, True),
        ("Storage location", state.storage, True),
        ("Registered by", state.register.signer, False),
        ("Registered at", state.register.at, False),
        ("Code commit", p.get("code_commit"), True),
        ("Code repository", p.get("code_repo"), False),
        ("Pipeline execution ID", p.get("pipeline_run"), True),
        ("Hyperparameters", params_text, True),
        ("Seal", state.seal, True),
    ]
    return {
        "facts": [{"label": a, "value": b or None, "code": c} for a, b, c in facts],
        "source": _sealed_source(state) + f"; the stage from {stage_source}",
    }


def _training_facts(state: VersionState) -> dict[str, Any]:
    p = state.payload
    facts = [
        ("Training data version", p.get("data_version"), True),
        ("Data repository", p.get("data_repo"), False),
        ("Training date", p.get("trained_on"), False),
    ]
    return {
        "rows": [{"label": a, "value": b or None, "code": c} for a, b, c in facts],
        "source": _sealed_source(state),
    }


def render_card_markdown(data: Mapping[str, object]) -> str:

    return render_text("card", "markdown", data, not_documented=NOT_DOCUMENTED)


def render_card_html(data: Mapping[str, object]) -> str:

    return render_text("card", "html", data, not_documented=NOT_DOCUMENTED)


def _evaluation(state: VersionState, policy_at: Callable[[int], Policy]) -> dict[str, Any]:

    found = evaluation_data(state, policy_at)
    gate = found["gate"]
    return {
        "metrics": found["metrics"],
        "gates": found["gates"],
        "gate": gate,
        "security_scan": found["security_scan"],
        "metrics_source": _sealed_source(state)
        + (
            f"; gate results from ledger event {gate['seq']}, signed by {gate['signer']}"
            if gate
            else "; no gate result is recorded"
        ),
    }
