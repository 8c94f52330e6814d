"""The sheets regbook derives: what each view row should hold, and writing it.

The builders are pure (state in, cell values out) so ``verify`` compares against the
same values ``restore`` writes::

    models_values(state)          # {"model": "credit-risk", "version": 7, ...}
    metrics_values(state)         # one dict per sealed metric
    write_row(ws, MODELS, 8, models_values(state), style="sealed")   # openpyxl (restore)
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from regbook.core.schema import (
    DATE,
    DATETIME,
    KNOWN_METRICS,
    TEXT,
    Sheet,
)
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import Registry, VersionState
from regbook.workbook import template

if TYPE_CHECKING:  # pragma: no cover
    from openpyxl.worksheet.worksheet import Worksheet

# Models cells that are the SME's to keep: never rewritten from the ledger.
SME_OWNED = ("notes",)


def params_text(params: dict[str, str]) -> str:
    return json.dumps(params, sort_keys=True, ensure_ascii=False) if params else ""


def models_values(state: VersionState) -> dict[str, Any]:
    p = state.payload
    shown = {col: state.metric(name) for name, (col, _kind) in KNOWN_METRICS.items() if col}
    return {
        "model": state.model,
        "version": state.version,
        "composite_id": state.composite_id,
        "stage": state.stage,
        "storage": state.storage,
        "content_hash": p["artefact"]["hash"],
        "data_version": p["data_version"],
        "data_repo": p.get("data_repo", ""),
        "code_commit": p["code_commit"],
        "code_repo": p.get("code_repo", ""),
        "pipeline_run": p.get("pipeline_run", ""),
        "trained_on": p.get("trained_on", ""),
        "params": params_text(p.get("params", {})),
        "auc_roc": shown.get("auc_roc"),
        "dpr": shown.get("dpr"),
        "gate": state.gate,
        "approval": state.approval,
        "deployed_on": state.deployed_on,
        "retain_until": state.retain_until,
        "registered_by": state.register.signer,
        "registered_at": state.register.at,
        "seal": state.seal,
    }


def metrics_values(state: VersionState) -> list[dict[str, Any]]:
    return [
        {
            "model": state.model,
            "version": state.version,
            "metric": m["metric"],
            "value": m["value"],
            "kind": m.get("kind", ""),
            "slice": m.get("slice", ""),
        }
        for m in state.metrics
    ]


def approval_row(e: Any) -> dict[str, Any]:
    """The Approvals row of one approve event."""

    p = e.payload
    return {
        "model": e.model, "version": e.version, "content_hash": p.get("content_hash"),
        "from_stage": p.get("from"), "to_stage": p.get("to"), "principal": e.signer,
        "role": signer_role(e), "fingerprint": e.fingerprint, "at": e.at,
        "note": p.get("note", ""), "seq": e.seq,
    }  # fmt: skip


def history_row(e: Any) -> dict[str, Any]:
    """The History row of one registration, transition, gate result or archive move."""

    p = e.payload
    return {
        "at": e.at, "model": e.model, "version": e.version, "event": e.kind,
        "from_stage": p.get("from"),
        "to_stage": p.get("to", "None" if e.kind == "register" else None),
        "result": p.get("result"), "principal": e.signer, "role": signer_role(e),
        "detail": _history_detail(e.kind, p), "seq": e.seq,
    }  # fmt: skip


def approvals_values(registry: Registry, start: int = 0) -> list[dict[str, Any]]:
    """One row per approval event (from the ``start``-th on)."""
    return [approval_row(e) for e in registry.events_of(True, start)]


def history_values(registry: Registry, start: int = 0) -> list[dict[str, Any]]:
    """One row per registration, transition, gate result and archive move (from the
    ``start``-th on)."""
    return [history_row(e) for e in registry.events_of(False, start)]


def _history_detail(kind: str, p: dict[str, Any]) -> str:
    if kind == "register":
        return f"registered {p.get('composite_id', '')}"
    # Payloads are signed but not trusted to be well-formed: never fail on their shape.
    if kind == "metrics":
        metrics = p.get("metrics")
        metrics = [m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else []
        return "metrics added: " + "; ".join(
            f"{m.get('metric')}{' [' + str(m.get('slice')) + ']' if m.get('slice') else ''} = "
            f"{m.get('value')}"
            for m in metrics
        )
    if kind == "gate":
        gates = p.get("gates")
        gates = [g for g in gates if isinstance(g, dict)] if isinstance(gates, list) else []
        return "; ".join(f"{g.get('gate')} {g.get('result')}" for g in gates)
    if kind in ("promote", "archive"):
        approval, gate = p.get("approval"), p.get("gate")
        parts = (
            [f"approval: event {approval.get('seq')}"]
            if isinstance(approval, dict) and approval
            else []
        )
        if isinstance(gate, dict) and gate:
            parts.append(f"gate: event {gate.get('seq')}")
        if p.get("artefact_checked"):
            parts.append("artefact hash re-checked")
        if kind == "promote" and p.get("reinstated_from"):
            parts.append(
                f"rollback: artefact back from its bag {p.get('reinstated_from')} to "
                f"{p.get('storage')}"
            )
        if kind == "archive" and p.get("storage"):
            parts.append(f"bag: {p.get('storage')}; retain until {p.get('retain_until')}")
        return "; ".join(parts)
    if kind == "policy":
        changes = p.get("changes")
        changes = [str(c) for c in changes] if isinstance(changes, list) else []
        return f"policy {str(p.get('policy_sha256'))[:12]} signed" + (
            f": {'; '.join(changes)}" if changes else ""
        )
    if kind == "keyring":
        roles = p.get("roles")
        roles = f" ({', '.join(map(str, roles))})" if isinstance(roles, list) else ""
        until = f" from {p.get('valid_before')}" if p.get("change") == "revoke" else ""
        return f"{p.get('change')} {p.get('principal')}{roles} key {p.get('key')}{until}"
    if kind == "scan":
        return _scan_detail(p)
    return str(p.get("detail", ""))


def _scan_detail(p: dict[str, Any]) -> str:
    counts = p.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    scanner = p.get("scanner")
    scanner = scanner if isinstance(scanner, dict) else {}
    found = ", ".join(f"{counts.get(s)} {s}" for s in ("critical", "high", "medium", "low"))
    inconclusive = p.get("inconclusive")
    names = [str(n) for n in inconclusive] if isinstance(inconclusive, list) else []
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"scan {p.get('verdict')}: {found} ({scanner.get('name')} {scanner.get('version')})" + (
        f"; inconclusive: {', '.join(names[:3])}{more}" if names else ""
    )


def keys_values(keyring: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in keyring.entries:
        rows.append({
            "principal": ",".join(entry.principals),
            "roles": ", ".join(entry.roles),
            "key_type": entry.key.key_type,
            "fingerprint": entry.key.fingerprint,
            "valid_after": _utc(entry.valid_after),
            "valid_before": _utc(entry.valid_before),
            "line": entry.line_no,
        })  # fmt: skip
    return rows


def _utc(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else ""


def cell_value(kind: str, value: Any) -> Any:
    """The Python value to put in a cell of this kind (Excel-native dates and times)."""
    if value is None or value == "":
        return None
    if kind == DATE and isinstance(value, str):
        return date.fromisoformat(value)
    if kind == DATETIME and isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    if kind == TEXT and not isinstance(value, str):
        return str(value)
    return value


def write_row(
    ws: Worksheet,
    sheet: Sheet,
    row: int,
    values: dict[str, Any],
    style: str,
    keep: tuple[str, ...] = (),
) -> None:
    """Write one row. ``style``: "sealed" (locked, shaded), "open" (a draft) or "view"
    (locked, a regbook-only sheet). ``keep`` names columns left as they are (Notes)."""

    styler = {
        "sealed": template.style_sealed_cell,
        "open": template.style_open_cell,
        "view": template.style_view_cell,
    }[style]
    for index, column in enumerate(sheet.columns, start=1):
        cell = ws.cell(row=row, column=index)
        if column.key not in keep and column.key in values:
            value = cell_value(column.kind, values[column.key])
            cell.value = value
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # text from outside is never a formula
        styler(cell, column)


def rewrite_sheet(ws: Worksheet, sheet: Sheet, rows: list[dict[str, Any]]) -> None:
    """Replace every data row of a regbook-only view sheet."""
    if ws.max_row > 1:
        ws.delete_rows(2, ws.max_row - 1)
    for offset, values in enumerate(rows):
        write_row(ws, sheet, 2 + offset, values, style="view")
