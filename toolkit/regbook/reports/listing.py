"""``regbook list``: the sealed versions as a table, from the ledger (not the views),
each marked verified or not.

frame, warning = list_versions(open_registry(ws, sheets=LEDGER_ONLY), stage="Production")
print(to_csv(frame))     # safe to open in Excel: no cell is read as a formula

A version is verified when nothing the snapshot found is about it, and nothing is about
the ledger or the keyring as a whole (a broken chain, a keyring edited by hand or
another than the pinned one, a witness the ledger does not match): then no row is.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from regbook.core.errors import plural
from regbook.core.findings import Finding
from regbook.ledger.events import CHAIN_CODES
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
    "verified",
]

# A cell starting with one of these is read as a formula by spreadsheet programs.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def about_the_whole_ledger(finding: Finding) -> bool:
    """A problem no version can be vouched for past: a broken chain, a keyring edited by
    hand or another than the pinned one, a witness the ledger does not hold. (regbook.toml
    differing from the signed policy is not one: the file's word judges nothing.)"""
    return (
        finding.is_problem
        and (finding.model is None or finding.code in CHAIN_CODES)
        and finding.code != "RB117"
    )


def unvouched(snapshot: Snapshot) -> set[tuple[str, int]] | None:
    """The versions a reader cannot take on trust, from what the snapshot found about
    the ledger and its workflow; None when that is every version (a problem about the
    ledger or the keyring as a whole)."""
    if not snapshot.signatures_checked:
        return None  # a snapshot whose signatures were not checked vouches for nothing
    found: set[tuple[str, int]] = set()
    for f in snapshot.ledger_findings + snapshot.rule_findings:
        if about_the_whole_ledger(f):
            return None
        if f.is_problem and f.model is not None:
            found.add((f.model, f.version or 0))
    return found


def list_versions(snapshot: Snapshot, *, stage: str | None = None) -> tuple[pd.DataFrame, str]:
    """The sealed versions (in ``stage``) as a table, each marked ``verified`` or not,
    and a warning naming how many are not."""
    import pandas as pd

    registry = snapshot.registry
    doubtful = unvouched(snapshot)
    rows: list[dict[str, str | int | float | bool | None]] = []
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
            "verified": doubtful is not None
            and (state.model, state.version) not in doubtful,
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.sort_values(["model", "version"], kind="stable").reset_index(drop=True)
    warning = ""
    # Counted as verify counts the ledger's problems, so the two say the same number.
    problems = plural(
        sum(1 for f in snapshot.ledger_findings + snapshot.rule_findings if f.is_problem),
        "problem",
    )
    if doubtful is None:
        warning = (
            f"the ledger has {problems} and does not verify as a whole: no row of this "
            "list is verified (`regbook verify` lists them)"
        )
    elif doubtful:
        count = int((~frame["verified"]).sum()) if not frame.empty else 0
        warning = (
            f"the ledger has {problems}; {plural(len(doubtful), 'version')} not verified"
            + (f" ({count} listed here, marked NO)" if count else " (none listed here)")
            + ": `regbook verify` lists them"
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


def to_text(frame: pd.DataFrame, stage: str | None = None, total: int | None = None) -> str:
    """The table as text; for an empty one, why it is empty (``total``: how many sealed
    versions there are in any stage)."""
    if frame.empty:
        if stage is not None and total:
            return f"no version in {stage} ({plural(total, 'sealed version')} in other stages)"
        return f"no version in {stage}" if stage is not None else "no sealed versions"
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
            "verified",
        ]
    ].fillna("")
    shown = shown.assign(verified=shown["verified"].map({True: "yes", False: "NO"}))
    return shown.to_string(index=False)
