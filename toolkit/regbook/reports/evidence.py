"""Evidence reports: everything an auditor needs about one version, in one file.

``evidence_data`` gathers the facts (identity, artefact check, provenance chain, gates,
approvals with their signatures re-checked, archive status, verify findings) into a
plain dict; ``render_markdown`` and ``render_html`` turn that dict into text from the
Jinja2 templates shipped in ``regbook/templates/``, and ``regbook.render.pdf.render_pdf``
into PDF bytes (fpdf2, in-process). The renderers are pure: writing
the file is the caller's job (``write_report``, atomic)::

    data = evidence_data(ws, ModelRef.parse("credit-risk@7"))
    Path("evidence.md").write_text(render_markdown(data))

A report never hides a problem: verify findings and broken provenance links are
counted at the top (``data["problems"]``) as well as listed in their sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regbook.check.bags import read_bag_info
from regbook.check.verify import Report, verify
from regbook.core import fs
from regbook.core.errors import InputError
from regbook.core.ids import ModelRef
from regbook.core.version import __version__
from regbook.core.workspace import Workspace
from regbook.crypto.keys import Keyring, check_signature
from regbook.ledger.events import LedgerEvent
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import Registry, VersionState
from regbook.lineage.trace import BROKEN, trace_version
from regbook.registry.display import unknown_sheets
from regbook.registry.snapshot import Snapshot
from regbook.render.card import banner_status, evaluation_data
from regbook.render.pdf import render_pdf
from regbook.render.text import FORMATS, format_of, render_text
from regbook.reports.export import write_atomic

# Artefact and bag findings: what the "artefact integrity" section reports.
_ARTEFACT_CODES = ("RB4", "RB8")


def evidence_data(
    snapshot: Snapshot, ref: ModelRef, *, report: Report | None = None
) -> dict[str, Any]:
    """The facts of an evidence report for ``ref``, as plain data (JSON-friendly).
    ``report``: verify's report scoped to ``ref``, when the caller has one already."""
    if ref.version is None:
        raise InputError(f"{ref}: name a version (MODEL@VERSION)")
    if report is None:
        report = verify(snapshot, scope=ref, threads=1)
    checked_at = fs.utc_now()
    trace = trace_version(snapshot, str(ref))
    ws, registry, keyring = snapshot.workspace, snapshot.registry, snapshot.keyring
    state = snapshot.version(ref)

    findings = [f.to_json() for f in report.findings]
    artefact_problems = [
        f for f in findings if f["code"].startswith(_ARTEFACT_CODES) and f["severity"] != "info"
    ]
    links = [
        {"name": link.name, "status": link.status, "summary": link.summary,
         "reason": link.reason}
        for link in trace.links
    ]  # fmt: skip
    problems = [f for f in findings if f["severity"] in ("error", "warning")]
    broken = [link for link in links if link["status"] == BROKEN]
    return {
        "title": f"Evidence report: {state.model}@{state.version}",
        # Sheets the workbook holds that regbook does not know: reported, never trusted.
        "unverified_sheets": unknown_sheets(report.findings),
        "problems": {
            "count": len(problems) + len(broken),
            "findings": problems,
            "broken_links": broken,
            # Evidence for deploying: green only for a clean Production version with a PASS.
            **banner_status(state, len(problems) + len(broken), for_stage="Production"),
        },
        "identity": {
            "model": state.model,
            "version": state.version,
            "composite_id": state.composite_id,
            "stage": state.stage,
            "registered_at": state.register.at,
            "registered_by": state.register.signer,
            "deployed_on": state.deployed_on,
        },
        "artefact": {
            "content_hash": state.content_hash,
            "storage": state.storage,
            "checked_at": checked_at,
            "ok": not artefact_problems,
            "problems": artefact_problems,
        },
        "provenance": links,
        "evaluation": evaluation_data(state, snapshot.anchors.policy_at),
        "history": _history(state, registry, keyring),
        "archive": _archive(ws, state),
        "findings": findings,
        "footer": {
            "generated_at": checked_at,
            "regbook_version": __version__,
            "ledger_head": report.ledger_head,
            "keyring_sha256": report.keyring_sha256,
            "registry_id": report.registry_id,
        },
    }


def _signature(event: LedgerEvent, keyring: Keyring) -> dict[str, Any]:

    try:
        check = check_signature(
            event.signed_bytes(), event.signature, keyring, event.signer, None, event.when
        )
        ok, detail = check.ok, check.detail
    except (InputError, ValueError) as err:
        ok, detail = False, str(err)
    return {
        "seq": event.seq,
        "principal": event.signer,
        "role": signer_role(event),
        "at": event.at,
        "fingerprint": event.fingerprint,
        "verified": ok,
        "detail": detail,
    }


def _approval(event: LedgerEvent, keyring: Keyring) -> dict[str, Any]:
    return dict(
        _signature(event, keyring), to=event.payload.get("to"), note=event.payload.get("note", "")
    )


def _history(state: VersionState, registry: Registry, keyring: Keyring) -> list[dict[str, Any]]:
    """Each stage the version entered, with the approvals given for that transition."""
    out: list[dict[str, Any]] = [
        {"from": None, "to": "None", "kind": "register", "at": state.register.at,
         "by": _signature(state.register, keyring), "approvals": []}
    ]  # fmt: skip
    pending = list(state.approvals)
    for event in state.events:
        if event.kind not in ("promote", "archive"):
            continue
        to = event.payload.get("to")
        used = [a for a in pending if a.payload.get("to") == to and a.seq < event.seq]
        pending = [a for a in pending if a not in used]
        out.append({
            "from": event.payload.get("from"), "to": to, "kind": event.kind, "at": event.at,
            "by": _signature(event, keyring),
            "approvals": [_approval(a, keyring) for a in used],
        })  # fmt: skip
    if pending:  # approvals not (yet) used by a transition
        out.append({
            "from": state.stage, "to": None, "kind": "pending", "at": None, "by": None,
            "approvals": [_approval(a, keyring) for a in pending],
        })  # fmt: skip
    return out


def _archive(ws: Workspace, state: VersionState) -> dict[str, Any]:

    event = state.stage_event
    if event is None or event.kind != "archive":
        return {"archived": False}
    bag = state.storage
    info = {}
    try:
        info = read_bag_info(ws.resolve_storage(bag, f"{state.model}@{state.version}"))
    except InputError:
        pass
    return {
        "archived": True,
        "bag": bag,
        "archived_at": event.at,
        "retain_until": state.retain_until or info.get("Retain-Until"),
        "bag_retain_until": info.get("Retain-Until"),
    }


# --- rendering -------------------------------------------------------------------------


def render_markdown(data: Mapping[str, object]) -> str:
    return render_text("evidence", "markdown", data)


def render_html(data: Mapping[str, object]) -> str:
    return render_text("evidence", "html", data)


def report_format(path: Path) -> str:
    """The format, "markdown", "html" or "pdf", from the suffix of ``path``."""
    return format_of(path, FORMATS, "evidence reports are .md, .html or .pdf files")


def write_evidence(snapshot: Snapshot, ref: ModelRef, output: Path) -> dict[str, Any]:
    """Build the report for ``ref`` and write it atomically to ``output``; the data."""

    kind = report_format(output)
    data = evidence_data(snapshot, ref)
    write_atomic(output, render(data, kind))
    return data


def render(data: dict[str, Any], kind: str) -> bytes:
    """The report in ``kind`` ("markdown", "html" or "pdf") as the bytes of its file."""
    if kind == "pdf":
        return render_pdf(data)
    return render_text("evidence", kind, data).encode("utf-8")
