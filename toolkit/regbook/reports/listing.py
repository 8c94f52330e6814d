"""``regbook list``: the sealed versions as a table, from the ledger (not the views).

frame, warning = list_versions(Workspace.find(), stage="Production")
print(to_csv(frame))     # safe to open in Excel: no cell is read as a formula
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from regbook.registry.snapshot import Snapshot

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

COLUMNS = [
    "model",
    "version",
    "stage",
    "composite_id",
    "content_hash",
    "storage",
    "auc_roc",
    "demographic_parity_ratio",
    "gate",
    "registered_by",
    "registered_at",
]

# A cell starting with one of these is read as a formula by spreadsheet programs.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def list_versions(snapshot: Snapshot, *, stage: str | None = None) -> tuple[pd.DataFrame, str]:
    """The sealed versions (in ``stage``) as a table, and a warning when the ledger's
    rows or chain are broken."""
    import pandas as pd

    registry, bad = snapshot.registry, snapshot.chain_findings
    rows: list[dict[str, str | int | float | None]] = []
    for state in registry.versions.values():
        if stage is not None and state.stage != stage:
            continue
        rows.append({
            "model": state.model, "version": state.version, "stage": state.stage,
            "composite_id": state.composite_id, "content_hash": state.content_hash,
            "storage": state.storage, "auc_roc": state.metric("auc_roc"),
            "demographic_parity_ratio": state.metric("demographic_parity_ratio"),
            "gate": state.gate, "registered_by": state.register.signer,
            "registered_at": state.register.at,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.sort_values(["model", "version"], kind="stable").reset_index(drop=True)
    warning = ""
    if bad:
        warning = (
            f"the ledger has {len(bad)} problem(s); this list may not be trustworthy: "
            "run `regbook verify`"
        )
    return frame, warning


def escape_cell(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula with a single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def to_csv(frame: pd.DataFrame) -> str:
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or str(safe[column].dtype).startswith("str"):
            safe[column] = safe[column].map(escape_cell)
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def to_text(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no sealed versions"
    shown = frame[
        [
            "model",
            "version",
            "stage",
            "composite_id",
            "auc_roc",
            "gate",
            "registered_by",
            "registered_at",
        ]
    ].fillna("")
    return shown.to_string(index=False)
