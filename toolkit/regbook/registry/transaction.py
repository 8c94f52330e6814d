"""The write engine: open the registry under the writer lock, sign new events, write
them and the views they change in one atomic save.

    with Transaction(ws) as tx:
        event = tx.sign(identity, "approve", "credit-risk", 7, payload)
        patch = tx.patch()
        write_changes(tx, patch, [("credit-risk", 7)])
        tx.save(patch)

A transaction refuses a broken ledger, and a workbook whose views differ from the
ledger: writing over a hand edit would erase the evidence of it. A witness CI left in
the workspace (``regbook.witness``) spares it the checks of the rows CI verified; with
the state stored beside it, a ``resume`` transaction reads only the rows after them
(``regbook.registry.resume``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regbook.core.errors import InputError, KeyProblem, VerificationFailed
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.schema import (
    APPROVALS,
    HISTORY,
    KEYS,
    LEDGER,
    METRICS,
    MODELS,
    READ_SHEETS,
    BadValue,
    normalize,
)
from regbook.core.workspace import Workspace
from regbook.crypto.keys import load_keyring
from regbook.ledger.events import LedgerEvent, new_event
from regbook.ledger.state import Registry, VersionState
from regbook.registry.diff import (
    metrics_findings,
    models_findings,
    normalize_text,
    sheet_findings,
    view_findings,
)
from regbook.registry.resume import open_resumed
from regbook.registry.snapshot import CARD_SHEETS, Snapshot, open_registry
from regbook.registry.views import (
    approval_row,
    approvals_values,
    history_row,
    history_values,
    keys_values,
    metrics_values,
    models_values,
    rewrite_sheet,
    write_row,
)
from regbook.registry.witness import Witness, workspace_witness
from regbook.workbook.patch import PackagePatch
from regbook.workbook.read import Table, WorkbookData, WorkbookWriter, file_identity


@dataclass(frozen=True)
class Identity:
    principal: str
    role: str
    key: Any  # keys.SigningKey


def acting_identity(
    ws: Workspace, key: Any, allowed: Iterable[str], action: str, role: str | None = None
) -> Identity:
    """Who the key speaks for, and the role it acts in for ``action``.

    A key with several roles acts in the one the action needs; where two would do, the
    first allowed in ``regbook.toml`` order is taken unless ``role`` chooses."""

    keyring = load_keyring(ws)
    now = datetime.now(UTC)
    entries = [e for e in keyring.entries_for_key(key.public)]
    if not entries:
        raise KeyProblem(
            f"key {key.public.fingerprint} is not in {ws.settings.keyring}; "
            "add it with `regbook keys new` or by hand"
        )
    allowed = tuple(allowed)
    candidates: list[tuple[str, str]] = []
    lapsed = []
    for entry in entries:
        if not entry.valid_at(now):
            lapsed.append(entry)
            continue
        if any(ch in p for p in entry.principals for ch in "*?"):
            continue
        for r in entry.roles:
            if r in allowed and (role is None or r == role):
                candidates.append((entry.principals[0], r))
    if not candidates:
        held = sorted({r for e in entries for r in e.roles})
        if lapsed and not any(e.valid_at(now) for e in entries):
            raise KeyProblem(
                f"key {key.public.fingerprint} is outside its validity window "
                f"in {ws.settings.keyring} (revoked or not yet valid)"
            )
        if role is not None and role not in allowed:
            raise KeyProblem(
                f"{action} needs role {' or '.join(allowed)}; --role {role} is not one of them"
            )
        raise KeyProblem(
            f"{action} needs a key with role {' or '.join(allowed)}; key "
            f"{key.public.fingerprint} has {', '.join(held) or 'no role'}"
        )
    candidates.sort(key=lambda c: allowed.index(c[1]))
    principal, chosen = candidates[0]
    return Identity(principal, chosen, key)


class Transaction:
    """Open the registry under the writer lock and refuse a broken chain; ``sign`` adds
    events, ``patch`` and ``save`` write them and the views in one atomic save.

    With ``checked`` the snapshot is checked in full first (signatures, workflow rules,
    views), for a writer that puts what it found into evidence (an archive's model card).

    A transaction refuses a regbook.toml whose policy is not the one in force (the one a
    governance lead signed last): a writer acts under the signed policy or not at all.
    Only the commands that change the policy or the keyring pass ``any_policy``.

    With ``resume`` (the writers that change a version or two and read no draft rows),
    a witness and the state stored beside it spare the reading of every row CI verified.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        checked: bool = False,
        any_policy: bool = False,
        resume: bool = False,
    ):
        self.ws = ws
        self.checked = checked
        self.any_policy = any_policy
        self.resume = resume and not checked
        self.writer = WorkbookWriter(ws.workbook_path, ws.settings.backups)
        self.snapshot: Snapshot
        self.data: WorkbookData
        self.new_events: list[LedgerEvent] = []
        self.registry: Registry
        # The package as read for a resumed open, kept to be written to, and its file.
        self._patch: PackagePatch | None = None
        self._patch_of: tuple[int, int, int, int] | None = None

    def __enter__(self) -> Transaction:
        self.writer.__enter__()
        try:
            witness = workspace_witness(self.ws)
            snapshot = self._resumed(witness) if self.resume and witness else None
            if snapshot is None:
                snapshot = open_registry(
                    self.ws,
                    sheets=CARD_SHEETS if self.checked else READ_SHEETS,
                    signatures=self.checked,
                    views=self.checked,
                    witness=witness,
                )
            findings = snapshot.chain_findings
            if findings:
                raise VerificationFailed(
                    f"the ledger is broken ({len(findings)} finding"
                    f"{'s' if len(findings) != 1 else ''}); nothing was written. Run "
                    "`regbook verify` for details and restore the workbook from a backup",
                    findings,
                )
            if not self.any_policy:
                _refuse_unsigned_policy(snapshot)
                _refuse_hand_edited_keyring(snapshot)
            self.snapshot = snapshot
            self.data, self.registry = snapshot.data, snapshot.registry
            _refuse_formulas_in_sealed_cells(self.data, self.registry)
        except BaseException:
            self.writer.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.__exit__(*exc)

    def _resumed(self, witness: Witness) -> Snapshot | None:
        """The snapshot resumed from the witness's stored state, or None (the workbook
        is then read in full). The package read for it is the one written to."""
        path = self.ws.workbook_path
        before = file_identity(path)
        try:
            patch = PackagePatch(path)
        except (OSError, KeyError, ValueError, InputError):
            return None  # patch() reports why it cannot be written
        if file_identity(path) != before:
            return None
        self._patch, self._patch_of = patch, before
        try:
            return open_resumed(self.ws, load_keyring(self.ws), witness, patch.parts, before)
        except (InputError, LookupError, ValueError):
            return None  # the full read reports what is wrong

    def version(self, ref: ModelRef) -> VersionState:
        """The sealed version ``ref`` names, or an InputError."""
        state = self.registry.get(ref.name, ref.version or 0)
        if state is None:
            raise InputError(self.registry.unknown(ref, ref.name, ref.version))
        return state

    @property
    def head(self) -> LedgerEvent | None:
        return self.new_events[-1] if self.new_events else self.snapshot.head

    def sign(
        self,
        identity: Identity,
        kind: str,
        model: str,
        version: int | None,
        payload: dict[str, Any],
    ) -> LedgerEvent:
        registry_id = self.ws.settings.registry_id
        if registry_id:  # every event carries the registry's ID (not one made before IDs)
            payload = {**payload, "registry": registry_id}
        event = new_event(
            self.head,
            kind,
            model,
            version,
            payload,
            identity.key,
            identity.principal,
            identity.role,
        )
        self.new_events.append(event)
        return event

    def patch(self, *, sealing: Collection[str] = ()) -> Any:
        """The workbook package to append to, once the command's own checks have passed
        and the views are known to equal the ledger. ``sealing``: the Metric cells of
        rows this transaction seals as a metrics addendum (not sealed yet, so the views
        name them as rows the ledger lacks)."""

        # A checked transaction compared the views when it opened; else compare now.
        snapshot = self.snapshot
        edited = (
            snapshot.view_findings
            if snapshot.views_checked
            else view_findings(self.data, self.registry, snapshot.vouched)
        )
        _refuse_edited_views([f for f in edited if not (f.code == "RB305" and f.where in sealing)])
        path = self.ws.workbook_path
        if self._patch is not None and self._patch_of == snapshot.data.identity:
            if file_identity(path) == self._patch_of:
                return self._patch
        try:
            return PackagePatch(path)
        except (OSError, KeyError, ValueError) as err:
            raise InputError(
                f"{self.ws.workbook_path}: cannot be opened for writing: {err}"
            ) from None

    def save(self, patch: Any) -> None:
        self.writer.save(patch)


def _refuse_unsigned_policy(snapshot: Snapshot) -> None:
    """A writer acts under the signed policy or not at all: the snapshot's RB117 (a
    regbook.toml that differs from the policy in force) refuses it, in its words."""
    found = [f for f in snapshot.ledger_findings if f.code == "RB117"]
    if found:
        raise InputError(f"regbook.toml: nothing was written: {found[0].message}")


def _refuse_hand_edited_keyring(snapshot: Snapshot) -> None:
    """A writer signs with a key of the keyring the ledger names, or not at all: a key
    added to allowed_signers by hand is trusted by nobody who verifies."""
    found = [f for f in snapshot.ledger_findings if f.code == "RB116"]
    if found:
        raise VerificationFailed(
            f"{found[0].where} was edited outside `regbook keys` (its sha256 is not the one "
            "the latest keyring event names); nothing was written. Undo the edit, or make "
            "the change with `regbook keys new|add|revoke --key GOV_KEY`",
            found,
        )


def _refuse_edited_views(differences: list[Finding]) -> None:
    """A writer rewrites view rows from the ledger; doing so over a hand edit would erase
    the evidence of it. So every writer refuses while a view differs from the ledger:
    `regbook verify` shows the edits, `regbook restore` repairs them deliberately."""
    found = [f for f in differences if f.is_problem]
    if found:
        raise VerificationFailed(
            f"the workbook's views differ from the ledger in {len(found)} place"
            f"{'s' if len(found) != 1 else ''}; nothing was written. Check the edits with "
            "`regbook verify`, then `regbook restore` rewrites the views from the ledger",
            found,
        )


def _refuse_formulas_in_sealed_cells(data: WorkbookData, registry: Registry) -> None:
    """Writers refuse a formula where a sealed value belongs (verify reports it as RB307,
    restore puts the sealed value back): nothing is written around it."""

    if not data[MODELS.name].formulas and not data[METRICS.name].formulas:
        return
    found = [
        f
        for f in models_findings(data[MODELS.name], registry)
        + metrics_findings(data[METRICS.name], registry)
        if f.code == "RB307"
    ]
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InputError(
            f"{found[0].where}: a formula in a sealed cell{more}; sealed cells hold values "
            "(`regbook restore` puts them back): nothing was written"
        )


def append_ledger_rows(wb: Any, table_len_rows: list[int], events: list[LedgerEvent]) -> None:

    ws = wb[LEDGER.name]
    row = max(table_len_rows, default=1) + 1
    for event in events:
        values = dict(zip([c.key for c in LEDGER.columns], event.to_row(), strict=True))
        write_row(ws, LEDGER, row, values, style="view")
        row += 1


def refresh_derived_views(wb: Any, registry: Registry, keyring: Any | None) -> None:
    """Rewrite the regbook-only sheets (Approvals, History, Keys) from the ledger."""

    rewrite_sheet(wb[APPROVALS.name], APPROVALS, approvals_values(registry))
    rewrite_sheet(wb[HISTORY.name], HISTORY, history_values(registry))
    if keyring is not None:
        rewrite_sheet(wb[KEYS.name], KEYS, keys_values(keyring))


def models_row_of(table: Any, state: Any) -> int | None:
    """The Models row showing a sealed version: the one carrying its seal, else one that
    names its model and version."""

    claimed = None
    for i, row in table.indexed():
        if normalize_text(row[MODELS.index("seal")]) == state.seal:
            return table.row_numbers[i]
        if claimed is None and normalize_text(row[MODELS.index("model")]) == state.model:
            try:
                if normalize("int", row[MODELS.index("version")]) == state.version:
                    claimed = table.row_numbers[i]
            except BadValue:
                pass
    return claimed


def write_changes(
    tx: Transaction,
    patch: Any,
    versions: list[tuple[str, int]],
    draft_rows: dict[tuple[str, int], tuple[int, list[int]]],
    added_rows: dict[tuple[str, int], list[int]] | None = None,
) -> None:
    """Write what the transaction's new events change, by appending and replacing rows:
    the Ledger rows; the Models row of each version in ``versions`` (a sealed draft's
    own row, ``draft_rows[key] = (models row, metrics rows)``, else the row showing it,
    else a new one) with Notes kept as typed; a new version's metrics (into its draft
    rows first); the new Approvals and History rows; the Keys sheet if it is stale.
    ``added_rows``: the Metrics rows typed for a sealed version that a metrics addendum
    seals now."""

    # The transaction's registry is the replay of the events before its own: replay
    # only those (each later view row is the new state's).
    registry = tx.registry
    registry.extend(tx.new_events)
    _append(patch, LEDGER, last_row(tx.data[LEDGER.name]), [
        dict(zip([c.key for c in LEDGER.columns], e.to_row(), strict=True))
        for e in tx.new_events
    ])  # fmt: skip
    models = tx.data[MODELS.name]
    metrics = tx.data[METRICS.name]
    next_model = last_row(models) + 1
    next_metric = last_row(metrics) + 1
    # A resumed transaction did not read the rows CI verified: which version each shows.
    unread = tx.snapshot.unread.models if tx.snapshot.unread else {}
    notes_index = MODELS.index("notes")
    model_rows: dict[int, str] = {}
    metric_rows: dict[int, str] = {}
    new_versions = {(e.model, e.version) for e in tx.new_events if e.kind == "register"}
    for key in dict.fromkeys(versions):
        state = registry.get(*key)
        assert state is not None
        draft = draft_rows.get(key)
        row = draft[0] if draft else unread.get(key) or models_row_of(models, state)
        if row is None:
            row, next_model = next_model, next_model + 1
        kept = patch.row_cells(MODELS.name, row).get(notes_index)
        model_rows[row] = patch.cells_xml(
            row,
            MODELS.columns,
            models_values(state),
            "sealed",
            keep={"notes": kept} if kept else None,
        )
        typed = (draft[1] if draft else []) if key in new_versions else []
        if key not in new_versions:
            typed = (added_rows or {}).get(key, [])
            if not typed:
                continue
        sealed = {(m["metric"], m["slice"] or ""): m for m in metrics_values(state)}
        for metric_row in typed:
            i = metrics.row_numbers.index(metric_row)
            name = normalize_text(metrics.value(i, "metric"))
            slice_ = normalize_text(metrics.value(i, "slice"))
            values = sealed.pop((name, slice_), None)
            if values is not None:
                metric_rows[metric_row] = patch.cells_xml(
                    metric_row, METRICS.columns, values, "sealed"
                )
        if key not in new_versions:
            continue  # an addendum: its rows were typed; the sealed ones are shown already
        for values in sealed.values():
            metric_rows[next_metric] = patch.cells_xml(
                next_metric, METRICS.columns, values, "sealed"
            )
            next_metric += 1
    patch.put_rows(MODELS.name, model_rows)
    patch.put_rows(METRICS.name, metric_rows)
    _append(
        patch,
        APPROVALS,
        last_row(tx.data[APPROVALS.name]),
        [approval_row(e) for e in tx.new_events if e.kind == "approve"],
    )
    _append(
        patch,
        HISTORY,
        last_row(tx.data[HISTORY.name]),
        [history_row(e) for e in tx.new_events if e.kind != "approve"],
    )
    refresh_keys(patch, tx.data, load_keyring(tx.ws))


def last_row(table: Table) -> int:
    """The number of the sheet's last data row (1, the header's, when it has none),
    counting the rows a witness vouches for that were not read (``Table.omitted``)."""
    return max([1, *table.row_numbers, table.vouched_to if table.omitted else 1])


def _append(patch: Any, sheet: Any, last: int, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` after row ``last``."""
    start = last + 1
    patch.put_rows(sheet.name, {
        start + i: patch.cells_xml(start + i, sheet.columns, values, "view")
        for i, values in enumerate(rows)
    })  # fmt: skip


def refresh_keys(patch: Any, data: WorkbookData, keyring: Any) -> None:
    """Rewrite the Keys sheet when it no longer shows allowed_signers."""

    wanted = keys_values(keyring)
    if not sheet_findings(data[KEYS.name], KEYS, wanted, code="RB308"):
        return
    patch.drop_rows_from(KEYS.name, 2)
    _append(patch, KEYS, 1, wanted)
