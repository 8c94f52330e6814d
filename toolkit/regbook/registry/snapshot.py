"""Open a registry once: read the workbook, check the chain and every signature, replay
the ledger, and compare the views, into one snapshot that every command works from.

    snapshot = open_registry(ws)               # read and checked once
    snapshot.version(ModelRef.parse("credit-risk@7"))   # a version's replayed state
    snapshot.findings                          # everything found on the way

Nothing reads the workbook again after this: ``verify``, the reports, ``trace``,
``list`` and ``export`` are functions of a snapshot, and the writers open theirs
through a ``Transaction`` (``regbook.registry.transaction``), under the writer lock.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from regbook.core import fs
from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.schema import APPROVALS, CARDS, HISTORY, LEDGER, READ_SHEETS, Sheet
from regbook.core.workspace import Workspace
from regbook.crypto import sigbatch
from regbook.crypto.keys import Keyring, load_keyring
from regbook.ledger.anchors import Anchors
from regbook.ledger.events import CHAIN_CODES, LedgerEvent, check_chain, read_events
from regbook.ledger.rules import workflow_findings
from regbook.ledger.signatures import SignatureChecks, allowed_roles_for, signature_pool
from regbook.ledger.state import Registry, VersionState
from regbook.registry.diff import Unread, Vouched, keys_findings, view_findings
from regbook.registry.display import DISPLAY_SHEET_NAMES, accepted_formats, display_findings
from regbook.registry.witness import WITNESS_CODES, Witness, signatures_sha256, witness_findings
from regbook.workbook.presentation import read_presentation
from regbook.workbook.read import Table, WorkbookData, read_workbook

LEDGER_ONLY: tuple[Sheet, ...] = (LEDGER,)
# Sheets that only grow, row by row with the ledger: a witnessed read takes their tails.
_TAIL_SHEETS: tuple[Sheet, ...] = (APPROVALS, HISTORY)
# A witness vouches for nothing in a ledger it does not match, or where the keyring is not
# the pinned one or the one the ledger names.
_NOT_VOUCHED = (*WITNESS_CODES, "RB110", "RB116")
# Every sheet, the Cards prose included: what a model card is made from.
CARD_SHEETS: tuple[Sheet, ...] = (*READ_SHEETS, CARDS)


@dataclass(frozen=True)
class Snapshot:
    """A registry as read once: the sheets, the keyring, the ledger's events replayed,
    and what was found. ``signatures_checked`` and ``views_checked`` say how far it was
    checked: a writer's transaction checks the chain only (its command adds the rest)."""

    workspace: Workspace
    data: WorkbookData
    keyring: Keyring
    events: Sequence[LedgerEvent]
    registry: Registry
    anchors: Anchors
    ledger_findings: list[Finding] = field(default_factory=list)
    rule_findings: list[Finding] = field(default_factory=list)
    view_findings: list[Finding] = field(default_factory=list)
    keys_findings: list[Finding] = field(default_factory=list)
    signatures_checked: bool = True
    views_checked: bool = True
    # What a trusted witness vouches for in the views (None without one).
    vouched: Vouched | None = None
    # A writer's snapshot resumed from a stored state: what the rows not read show.
    unread: Unread | None = None

    @property
    def findings(self) -> list[Finding]:
        return self.ledger_findings + self.rule_findings + self.view_findings + self.keys_findings

    @property
    def chain_findings(self) -> list[Finding]:
        """The ledger's rows and chain: what makes a ledger unfit to write to."""
        return [f for f in self.ledger_findings if f.code in CHAIN_CODES]

    @property
    def registry_id(self) -> str:
        """The registry's ID: the one its events carry, else regbook.toml's."""
        return self.anchors.registry_id or self.workspace.settings.registry_id

    @property
    def head(self) -> LedgerEvent | None:
        return self.events[-1] if self.events else None

    @property
    def ledger_head(self) -> str:
        return self.events[-1].hash if self.events else ""

    def version(self, ref: ModelRef) -> VersionState:
        """The sealed version ``ref`` names (InputError if the ledger has none)."""
        state = self.registry.get(ref.name, ref.version or 0)
        if state is None:
            raise InputError(self.registry.unknown(ref, ref.name, ref.version))
        return state

    def cards(self) -> Table | None:
        """The Cards sheet, when the workbook has one and it was read."""
        return self.data.tables.get(CARDS.name)


def not_compared(found: Finding) -> Finding:
    """A view cell of a version whose Ledger row was edited: noted, not blamed."""
    return Finding.make(
        "RB322",
        found.where,
        f"not compared: a Ledger row of {found.model}@{found.version} was edited (RB102), "
        "so what was sealed is not known here",
        found.model,
        found.version,
    )


def open_registry(
    ws: Workspace,
    *,
    sheets: tuple[Sheet, ...] = READ_SHEETS,
    signatures: bool = True,
    views: bool = True,
    keyring_sha256: str | None = None,
    threads: int = 2,
    meanwhile: Callable[[], object] | None = None,
    witness: Witness | None = None,
) -> Snapshot:
    """Read ``sheets`` of the workbook once and check the registry: the ledger's rows and
    chain, the keyring pin, and with ``signatures`` every signature and workflow rule;
    with ``views`` every view cell against the ledger (where those sheets were read).
    The signatures are checked on worker threads or processes while the rest runs;
    ``meanwhile`` (the caller's own preparation, such as loading a PDF's fonts) runs on
    a thread of its own, started once the worker processes exist, and is waited for.

    With a ``witness`` the ledger must hold the witnessed head (RB119, RB120). When the
    witness is a ci key's and the keyring is the one it names, the signatures of the
    events up to the witnessed head are not checked again: the chain proves they are
    the bytes CI verified, under the same keys and the same policy; nor are the rows the
    witness's digests vouch for (docs/formats.md); of Approvals and History only the
    rows after those are read (``Table.omitted``)."""
    if keyring_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", keyring_sha256.strip()):
        raise InputError(
            f"keyring sha256 {keyring_sha256!r}: expected the 64 hex digits sha256sum prints"
        )
    keyring = load_keyring(ws)
    # With a witness most signatures need no check: no worker processes for the rest.
    pool = signature_pool(ws.workbook_path, threads) if signatures and witness is None else None
    # Only now may a thread start: the worker processes are forked above.
    side = ThreadPoolExecutor(max_workers=1) if meanwhile is not None else None
    try:
        prepared = side.submit(meanwhile) if side is not None and meanwhile else None
        with gc_paused():
            snapshot = _open(
                ws, keyring, sheets, signatures, views, keyring_sha256, threads, pool, witness
            )  # fmt: skip
        if prepared is not None:
            prepared.result()  # its error, if any, is the caller's
        return snapshot
    finally:
        sigbatch.shutdown(pool)
        if side is not None:
            side.shutdown(wait=True)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a ledger is read and checked: it allocates
    millions of objects that all stay alive, and each full collection walks every one of
    them again to free nothing. Reference counting still frees everything else at once."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True)
class _Replayed:
    """The ledger's events, replayed as soon as they are read: on the thread that read
    them, while the other one still reads the other sheets."""

    events: list[LedgerEvent]
    bad_rows: list[Finding]
    anchors: Anchors
    registry: Registry
    replay_findings: list[Finding]

    @classmethod
    def of(
        cls, events: list[LedgerEvent], bad: list[Finding], keyring: Keyring, vouched: int = 0
    ) -> _Replayed:
        registry, found = Registry.replay(events, vouched)
        return cls(events, bad, Anchors.replay(events, keyring), registry, found)


def _open(
    ws: Workspace,
    keyring: Keyring,
    sheets: tuple[Sheet, ...],
    signatures: bool,
    views: bool,
    keyring_sha256: str | None,
    threads: int,
    pool: sigbatch.Executor | None,
    witness: Witness | None,
) -> Snapshot:
    findings: list[Finding] = []
    if keyring_sha256 is not None and keyring.sha256 != keyring_sha256.strip().lower():
        findings.append(Finding.make(
            "RB110", ws.settings.keyring,
            f"the keyring's sha256 is {keyring.sha256}, the pin says "
            f"{keyring_sha256.strip().lower()}: someone changed who may sign"))  # fmt: skip
    # The roles each event needs are known once the ledger's policy events are read.
    checks = SignatureChecks(keyring, None, threads, pool)
    parsed: list[_Replayed] = []
    # Up to a trusted witness's head, the rows CI verified need no check again, nor their
    # events' signatures, if the chain holds that head.
    trusted = (
        witness.seq
        if witness is not None
        and witness.keyring_sha256 == keyring.sha256
        and witness.signed_by_ci(keyring) is None
        else 0
    )
    skipped: list[LedgerEvent] = []

    def check(event: LedgerEvent) -> None:
        if event.seq <= trusted:
            skipped.append(event)
        else:
            checks.add(event)

    ledger: list[Table] = []

    def parse_ledger(table: Table) -> None:
        # While the other sheets are read, parse the ledger and start the signature checks.
        ledger.append(table)
        events, bad = read_events(table, check if signatures else None, vouched=bool(trusted))
        # The events of the rows that are still the bytes CI read (the first ones): CI
        # replayed them and found them clean. A row edited since is not among them,
        # whatever seq it claims.
        clean = (
            next(
                (i for i, e in enumerate(events) if e.row is None or e.row > table.vouched_to),
                len(events),
            )
            if trusted
            else 0
        )
        parsed.append(_Replayed.of(events, bad, keyring, clean))

    # A trusted witness's digests tell which rows are still the bytes CI verified.
    parts = witness.parts if witness is not None and trusted else None
    data = read_workbook(
        ws.workbook_path, sheets=sheets, first=LEDGER, on_first=parse_ledger, witnessed=parts,
        tail_only=_TAIL_SHEETS,
    )  # fmt: skip
    ledger_read = parsed[0]
    events, anchors = ledger_read.events, ledger_read.anchors
    anchored = anchors.file_findings(ws.settings, keyring, events, fs.verifier_now())
    registry_id = anchors.registry_id or ws.settings.registry_id
    witnessed = witness_findings(witness, events, keyring, anchors, registry_id) if witness else []
    vouched = bool(
        witness is not None
        and trusted
        and not any(f.code in _NOT_VOUCHED for f in findings + anchored + witnessed)
        and signatures_sha256(events, trusted) == witness.signatures_sha256
    )
    if not vouched and ledger and ledger[0].vouched_to:
        # The witness vouches for nothing after all: every row is read and checked.
        ledger_read = _Replayed.of(*read_events(ledger[0]), keyring)
        events, anchors = ledger_read.events, ledger_read.anchors
    registry = ledger_read.registry
    findings += ledger_read.bad_rows
    findings += check_chain(events)
    findings += anchors.findings
    findings += anchored
    findings += witnessed
    vouched = vouched and not any(f.code in CHAIN_CODES for f in findings)
    omitted = tuple(s for s in _TAIL_SHEETS if s.name in data.tables and data[s.name].omitted)
    if not vouched and omitted:  # read the rows left unread after all
        data.tables.update(read_workbook(ws.workbook_path, sheets=omitted).tables)
    if not vouched:
        for event in skipped:  # the witness vouches for none of them: check them all
            checks.add(event)
    checks.allowed_roles = allowed_roles_for(anchors.policy_at)
    waiting = checks.started() if signatures else None
    findings += ledger_read.replay_findings
    rules: list[Finding] = []
    compared: list[Finding] = []
    keys: list[Finding] = []
    views = views and all(s in sheets for s in READ_SHEETS)
    since = (
        Vouched(frozenset((e.model, e.version or 0) for e in events[trusted:])) if vouched else None
    )
    if views:
        # A version whose Ledger row was edited is reported there (RB102): its view cells
        # may well show what was sealed, and are not blamed for differing from the edit.
        altered = {(f.model, f.version) for f in findings if f.code == "RB102" and f.model}
        compared = [
            f if f.model is None or (f.model, f.version) not in altered else not_compared(f)
            for f in view_findings(data, registry, since)
        ]
        # The look of the rows a witness vouches for was checked by its verifier.
        skip = {n: t.vouched_end for n, t in data.tables.items() if t.vouched_end and vouched}
        shown = read_presentation(ws.workbook_path, DISPLAY_SHEET_NAMES, skip, accepted_formats)
        compared += display_findings(shown, data, registry)
        keys = keys_findings(data, keyring)
    if waiting is not None:
        rules = workflow_findings(registry, anchors, vouched=trusted if vouched else 0)
        findings += waiting()
    return Snapshot(
        ws,
        data,
        keyring,
        events,
        registry,
        anchors,
        findings,
        rules,
        compared,
        keys,
        signatures,
        views,
        since,
    )
