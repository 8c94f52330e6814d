"""Model cards: what a version is for and how far to trust it, in one file.

A card joins two sources and says, section by section, which one it used: the SME's
prose from the workbook's ``Cards`` sheet (one row per model, not sealed) and the
sealed facts of the version from the ledger (identity, data, code, metrics, gates).
``card_data`` gathers both into a plain dict; ``render_card_markdown`` and
``render_card_html`` are pure renderers over the Jinja2 templates in
``regbook/templates/``; ``write_card`` writes the file atomically::

    data = card_data(ws, ModelRef.parse("credit-risk@7"))
    Path("card.md").write_text(render_card_markdown(data))

Every section is always present; one with nothing to say reads "not documented". A
version with verify findings says so at the top, as the evidence report does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook import __version__
from regbook.check.verify import verify
from regbook.core import fs
from regbook.core.errors import InputError
from regbook.core.ids import ModelRef
from regbook.core.schema import CARDS, TEXT, normalize
from regbook.ledger.state import Registry
from regbook.registry.snapshot import open_registry
from regbook.reports.evidence import (
    TEXT_FORMATS,
    evaluation_data,
    format_of,
    ledger_and_keyring,
    render_text,
)
from regbook.reports.export import write_atomic
from regbook.workbook.read import read_workbook


def card_data(ws: Any, ref: ModelRef) -> dict[str, Any]:
    """The facts of the model card of ``ref``, as plain data (JSON-friendly); verify runs
    scoped to the version, its artefact re-hashed."""

    if ref.version is None:
        raise InputError(f"{ref}: name a version (MODEL@VERSION)")
    report = verify(open_registry(ws, threads=1), scope=ref, threads=1)
    return build_card(ws, ref, report)


# --- rendering -------------------------------------------------------------------------


def card_format(path: Path) -> str:
    """The format, "markdown" or "html", from the suffix of ``path``."""

    return format_of(path, TEXT_FORMATS, "model cards are .md or .html files")


def write_card(ws: Any, ref: ModelRef, output: Path) -> dict[str, Any]:
    """Build the card of ``ref`` and write it atomically to ``output``; the data."""

    kind = card_format(output)
    data = card_data(ws, ref)
    text = render_text("card", kind, data, not_documented=NOT_DOCUMENTED)
    write_atomic(output, text.encode("utf-8"))
    return data


def archive_card(ws: Any, state: Any) -> bytes:
    """The card written into a version's archive bag, as Markdown: verify without
    re-hashing the artefact (archiving has just checked it)."""

    ref = ModelRef(state.model, state.version)
    report = verify(open_registry(ws, threads=1), scope=ref, artefacts=False, threads=1)
    context = (
        f"Written by `regbook archive` into the archive bag of {ref}; the stage shown is "
        "the one the version had before it was archived."
    )
    return render_card_markdown(build_card(ws, ref, report, context)).encode("utf-8")


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


def read_card_row(workbook: Path, model: str) -> CardRow:
    """The Cards row naming ``model``; two rows naming it are an InputError by cell."""

    data = read_workbook(workbook, sheets=(CARDS,))
    table = data.tables.get(CARDS.name)
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


def _prose(value: Any) -> str | None:
    text = normalize(TEXT, value)
    if text is None:
        return None
    return "\n".join(line.rstrip() for line in str(text).replace("\r\n", "\n").split("\n"))


def build_card(ws: Any, ref: ModelRef, report: Any, context: str | None = None) -> dict[str, Any]:
    """The card of ``ref`` given ``verify``'s report on it; ``context`` is a sentence on
    where the card was written (the archive bag)."""

    events, _keyring = ledger_and_keyring(ws)
    registry, _ = Registry.replay(events)
    state = registry.get(ref.name, ref.version or 0)
    if state is None:  # verify refuses this first; kept for a clear message
        raise InputError(f"{ref}: no such sealed version in the ledger")
    row = read_card_row(ws.workbook_path, state.model)
    findings = [f.to_json() for f in report.findings]
    problems = [f for f in findings if f["severity"] in ("error", "warning")]
    sections = {key: _prose_section(row, key) for key in PROSE}
    sections["training_data"]["facts"] = _training_facts(state)
    sections["evaluation"].update(_evaluation(state))
    return {
        "title": f"Model card: {state.model}@{state.version}",
        "composite_id": state.composite_id,
        "context": context,
        "problems": {"count": len(problems), "findings": problems},
        "cards": {"status": row.status, "notice": _cards_notice(row)},
        "details": _details(state),
        **sections,
        "footer": {
            "generated_at": fs.utc_now(),  # one clock for every report
            "regbook_version": __version__,
            "ledger_head": report.ledger_head,
            "keyring_sha256": report.keyring_sha256,
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


def _sealed_source(state: Any) -> str:
    event = state.register
    return (
        f"the sealed registration, ledger event {event.seq}, signed by {event.signer} at {event.at}"
    )


def _details(state: Any) -> dict[str, Any]:
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


def _training_facts(state: Any) -> dict[str, Any]:
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


def render_card_markdown(data: dict[str, Any]) -> str:

    return render_text("card", "markdown", data, not_documented=NOT_DOCUMENTED)


def render_card_html(data: dict[str, Any]) -> str:

    return render_text("card", "html", data, not_documented=NOT_DOCUMENTED)


def _evaluation(state: Any) -> dict[str, Any]:

    found = evaluation_data(state)
    gate = found["gate"]
    return {
        "metrics": found["metrics"],
        "gates": found["gates"],
        "gate": gate,
        "metrics_source": _sealed_source(state)
        + (
            f"; gate results from ledger event {gate['seq']}, signed by {gate['signer']}"
            if gate
            else "; no gate result is recorded"
        ),
    }
