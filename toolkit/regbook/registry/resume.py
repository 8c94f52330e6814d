"""Where a writer starts when CI left a witness in the workspace: the registry as CI
replayed it at the witnessed head, stored beside the witness and bound to it by the
SHA-256 the witness signs (``state``). A writer that finds both reads only what was
written after the head, instead of reading and replaying the whole ledger::

    state = state_bytes(snapshot, parts)      # CI: written beside the witness, which signs
                                              # its SHA-256 (regbook.workflow.trust)
    snapshot = open_resumed(ws, keyring, witness, patch.parts, identity)
                                              # a writer; None: read the workbook in full

What a resumed writer trusts, and why it may:

- The stored state is the bytes CI wrote: their SHA-256 is the one a ci key signed in
  the witness, under the keyring the writer has. It is parsed only after that check.
- The Ledger rows up to the witnessed head are the bytes CI verified: the witness's
  last Ledger checkpoint covers them, and every part but the worksheets (styles, shared
  strings) is as witnessed. The state is what CI replayed from exactly those rows.
- Of the view sheets, the rows up to a matching checkpoint are the bytes CI found equal
  to the ledger; the state says which version (and which metric) each of them shows.

Everything after is read and checked in full: the Ledger's tail (its rows, its chain
from the witnessed head, its anchors and its replay) and the views' tails. A resumed
open only ever finds a registry clean: at the first thing that is not (a finding of any
kind, a row that does not fit) it gives up, and the writer reads the whole workbook as
it always did, which reports what is wrong.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator, Mapping, MutableMapping, MutableSequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, overload

from regbook.core import fs
from regbook.core.findings import Finding
from regbook.core.policy import Policy
from regbook.core.schema import LEDGER, METRICS, MODELS, READ_SHEETS
from regbook.core.workspace import Workspace
from regbook.crypto.keys import Keyring
from regbook.ledger.anchors import Anchors
from regbook.ledger.events import LedgerEvent, check_chain, read_events
from regbook.ledger.state import Registry, VersionState
from regbook.registry.diff import (
    Unread,
    normalize_text,
    sealed_rows,
    view_findings,
    whole_number,
)
from regbook.registry.snapshot import Snapshot
from regbook.registry.views import metrics_values, models_values
from regbook.registry.witness import Witness
from regbook.workbook.digests import PackageDigests
from regbook.workbook.read import CellValue, Table, WorkbookData, read_tails

FORMAT = "regbook-state/1"
# Beside the witness it belongs to: ``regbook.witness`` -> ``regbook.witness.state``.
SUFFIX = ".state"
_EVENT_FIELDS = (
    "seq", "at", "kind", "model", "version", "payload_text", "prev", "hash", "signer",
    "fingerprint", "signature", "row",
)  # fmt: skip
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

Key = tuple[str, int]


def state_path(witness: Path) -> Path:
    """Where the state of the witness at ``witness`` is kept."""
    return witness.with_name(witness.name + SUFFIX)


# --- written by CI -------------------------------------------------------------------


def state_bytes(snapshot: Snapshot, parts: PackageDigests) -> bytes:
    """The stored state of a snapshot that verified clean, read in full, whose workbook
    has the digests ``parts``: one line of JSON with the replayed registry, the anchors,
    which version each view row shows and where each checkpoint ends, then one line per
    event (its Ledger cells and row)."""
    registry, anchors, events = snapshot.registry, snapshot.anchors, snapshot.events
    models, metrics = snapshot.data[MODELS.name], snapshot.data[METRICS.name]
    if models.omitted or metrics.omitted:
        raise ValueError("a stored state needs the Models and Metrics rows read in full")
    lines = [_JSON([getattr(e, name) for name in _EVENT_FIELDS]).encode() for e in events]
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    head = events[-1] if events else None
    header = {
        "format": FORMAT,
        "seq": head.seq if head else 0,
        "hash": head.hash if head else "",
        "row": head.row if head else 0,
        "highest": registry.highest,
        "versions": [_version_record(s) for s in registry.versions.values()],
        "approvals": [e.seq for e in events if e.kind == "approve"],
        "anchors": {
            "registry": anchors.registry_id,
            "policies": [e.seq for _s, _p, e in anchors.policies],
            "revoked": {fp: e.seq for fp, e in anchors.revoked.items()},
            "keyring": anchors.keyring_event.seq if anchors.keyring_event else None,
        },
        "models": _model_rows(models, registry),
        "metrics": _metric_rows(metrics, registry),
        "spans": parts.spans,
        "offsets": offsets[:-1],
    }
    return _JSON(header).encode() + b"\n" + b"".join(line + b"\n" for line in lines)


def _version_record(s: VersionState) -> list[Any]:
    def seqs(events: list[LedgerEvent]) -> list[int]:
        return [e.seq for e in events]

    return [
        s.model, s.version, s.seal, s.stage, s.storage, s.gate, s.approval, s.deployed_on,
        s.retain_until, seqs(s.events), seqs(s.approvals),
        s.gate_event.seq if s.gate_event else None,
        s.stage_event.seq if s.stage_event else None, seqs(s.scans), seqs(s.addenda),
    ]  # fmt: skip


def _model_rows(table: Table, registry: Registry) -> list[list[Any]]:
    """[row, model, version, digest of its values] of the Models row showing each
    version."""
    at = {number: i for i, number in enumerate(table.row_numbers)}
    return [
        [row, *key, row_digest(table.rows[at[row]])]
        for key, row in sealed_rows(table, registry).items()
    ]


def _metric_rows(table: Table, registry: Registry) -> list[list[Any]]:
    """[row, model, version, metric, slice, digest of its values] of each Metrics row of
    a sealed version."""
    out = []
    for i, row in table.indexed():
        model = normalize_text(row[METRICS.index("model")])
        number = whole_number(row[METRICS.index("version")]) or 0
        if (model, number) in registry.versions:
            metric = normalize_text(row[METRICS.index("metric")])
            slice_ = normalize_text(row[METRICS.index("slice")])
            out.append([table.row_numbers[i], model, number, metric, slice_, row_digest(row)])
    return out


def row_digest(values: list[CellValue]) -> str:
    """A short digest of a row's values as read (their types too): equal for a row that
    reads as it did."""
    return hashlib.blake2b(repr(values).encode("utf-8"), digest_size=12).hexdigest()


# --- read by writers -------------------------------------------------------------------


class StoredState:
    """A stored state whose bytes are the ones a witness names."""

    def __init__(self, data: bytes, header: dict[str, Any]):
        self.data = data
        self.header = header
        self.body = data.index(b"\n") + 1
        self.offsets: list[int] = header["offsets"]
        self.cache: dict[int, LedgerEvent] = {}
        self.records: dict[Key, list[Any]] = {(r[0], r[1]): r for r in header["versions"]}

    @classmethod
    def load(cls, path: Path, witness: Witness) -> StoredState | None:
        """The state at ``path`` if its SHA-256 is the witness's and it is of the
        witnessed head; else None."""
        # Only a regular file: a FIFO or a device planted under the name would never
        # end a read.
        if witness.state is None or not path.is_file():
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        # The digest is taken on a second thread (hashlib lets go of the interpreter)
        # while the first line is parsed; nothing parsed is used unless it matches.
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
            try:
                header = json.loads(data[: data.index(b"\n")])
            except (ValueError, RecursionError):
                header = None
            if digest.result() != witness.state or not isinstance(header, dict):
                return None
        if header.get("format") != FORMAT or header["seq"] != witness.seq:
            return None
        if header["hash"] != witness.hash or len(header["offsets"]) != witness.seq:
            return None
        return cls(data, header)

    @property
    def seq(self) -> int:
        return int(self.header["seq"])

    def event(self, seq: int) -> LedgerEvent:
        """The event at ``seq`` (1 up to the head), one object per event."""
        event = self.cache.get(seq)
        if event is None:
            start = self.body + self.offsets[seq - 1]
            values = json.loads(self.data[start : self.data.index(b"\n", start)])
            event = object.__new__(LedgerEvent)
            event.__dict__.update(zip(_EVENT_FIELDS, values, strict=True))
            # CI verified each hash against the content it hashes.
            event.__dict__["_computed_hash"] = event.hash
            self.cache[seq] = event
        return event

    def version(self, key: Key) -> VersionState:
        (
            model, version, _seal, stage, storage, gate, approval, deployed_on, retain_until,
            events, approvals, gate_seq, stage_seq, scans, addenda,
        ) = self.records[key]  # fmt: skip
        ev = self.event
        return VersionState(
            model, version, ev(events[0]), stage, [ev(s) for s in events], storage, gate,
            approval, deployed_on, retain_until, [ev(s) for s in approvals],
            ev(gate_seq) if gate_seq else None, ev(stage_seq) if stage_seq else None,
            [ev(s) for s in scans], [ev(s) for s in addenda],
        )  # fmt: skip

    def anchors(self) -> Anchors:
        """The anchors CI replayed, to be stepped on by the events after the head."""
        a = self.header["anchors"]
        policies = []
        for seq in a["policies"]:
            event = self.event(seq)
            policies.append((seq, Policy.from_json(event.payload.get("policy")), event))
        return Anchors(
            a["registry"],
            policies,
            {fp: self.event(seq) for fp, seq in a["revoked"].items()},
            self.event(a["keyring"]) if a["keyring"] else None,
        )


class _Events(MutableSequence[LedgerEvent]):
    """The ledger's events: those up to the head from the stored state, on demand, then
    the ones read or signed after it. It only grows."""

    def __init__(self, stored: StoredState):
        self.stored = stored
        self.after: list[LedgerEvent] = []

    def __len__(self) -> int:
        return self.stored.seq + len(self.after)

    @overload
    def __getitem__(self, i: int) -> LedgerEvent: ...
    @overload
    def __getitem__(self, i: slice) -> MutableSequence[LedgerEvent]: ...
    def __getitem__(self, i: int | slice) -> LedgerEvent | MutableSequence[LedgerEvent]:
        if isinstance(i, slice):
            return [self[n] for n in range(*i.indices(len(self)))]
        n = i + len(self) if i < 0 else i
        if not 0 <= n < len(self):
            raise IndexError(i)
        base = self.stored.seq
        return self.stored.event(n + 1) if n < base else self.after[n - base]

    def insert(self, index: int, value: LedgerEvent) -> None:
        if index != len(self):
            raise TypeError("the ledger only grows at its end")
        self.after.append(value)

    def __setitem__(self, i: Any, value: Any) -> None:
        raise TypeError("ledger events are never replaced")

    def __delitem__(self, i: Any) -> None:
        raise TypeError("ledger events are never removed")


class _Versions(MutableMapping[Key, VersionState]):
    """Each sealed version's state: built from the stored state when first asked for, in
    the order the versions were sealed; the ones sealed after the head as replayed."""

    def __init__(self, stored: StoredState):
        self.stored = stored
        self.order: dict[Key, None] = dict.fromkeys(stored.records)
        self.built: dict[Key, VersionState] = {}

    def __getitem__(self, key: Key) -> VersionState:
        state = self.built.get(key)
        if state is None:
            if key not in self.stored.records:
                raise KeyError(key)
            state = self.built[key] = self.stored.version(key)
        return state

    def __contains__(self, key: object) -> bool:
        return key in self.order

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self.order))

    def __len__(self) -> int:
        return len(self.order)

    def __setitem__(self, key: Key, value: VersionState) -> None:
        self.order[key] = None
        self.built[key] = value

    def __delitem__(self, key: Key) -> None:
        raise TypeError("a sealed version is never removed")

    def stage(self, key: Key) -> str:
        """The version's stage, without building it if it was not asked for yet."""
        built = self.built.get(key)
        return built.stage if built is not None else str(self.stored.records[key][3])


class _Seals(Mapping[str, VersionState]):
    def __init__(self, registry: ResumedRegistry):
        self.registry = registry

    def __getitem__(self, seal: str) -> VersionState:
        key = self.registry.seals.get(seal)
        if key is None:
            raise KeyError(seal)
        return self.registry.versions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.seals)

    def __len__(self) -> int:
        return len(self.registry.seals)


class ResumedRegistry(Registry):
    """The registry at the witnessed head from the stored state, extended as usual by
    the events after it. It reads a version or an event only when asked for one."""

    def __init__(self, stored: StoredState):
        self.stored_versions = _Versions(stored)
        super().__init__(_Events(stored), self.stored_versions, dict(stored.header["highest"]))
        self.stored = stored
        self.seals: dict[str, Key] = {r[2]: (r[0], r[1]) for r in stored.header["versions"]}
        self.approval_seqs: list[int] = stored.header["approvals"]

    @property
    def by_seal(self) -> Mapping[str, VersionState]:
        return _Seals(self)

    def extend(self, events: list[LedgerEvent], vouched: int = 0) -> list[Finding]:
        found = super().extend(events, vouched)
        for event in (e for e in events if e.kind == "register"):
            key = (event.model, event.version or 0)
            state = self.versions.get(key)
            if state is not None and state.register is event:  # replayed, not refused
                self.seals[event.hash] = key
        return found

    def events_of(self, approvals: bool, start: int = 0) -> list[LedgerEvent]:
        base = self.stored.seq
        if approvals:
            stored = self.approval_seqs
        else:
            chosen = set(self.approval_seqs)
            stored = [s for s in range(1, base + 1) if s not in chosen]
        after = [e for e in self.events[base:] if (e.kind == "approve") is approvals]
        event = self.stored.event
        return [event(s) for s in stored[start:]] + after[max(0, start - len(stored)) :]

    def production(self, model: str) -> list[VersionState]:
        stage = self.stored_versions.stage
        return [
            self.versions[key]
            for key in self.versions
            if key[0] == model and stage(key) == "Production"
        ]


def open_resumed(
    ws: Workspace,
    keyring: Keyring,
    witness: Witness,
    parts: Mapping[str, bytes],
    identity: tuple[int, int, int, int],
) -> Snapshot | None:
    """The writer's snapshot of the workbook held in ``parts`` (read from the file of
    that ``identity``), resumed from the state stored beside the witness; None wherever
    anything is not as it must be, and the writer reads the workbook in full."""
    if witness.parts is None or witness.seq == 0 or witness.keyring_sha256 != keyring.sha256:
        return None
    stored = StoredState.load(state_path(Path(witness.source)), witness)
    if stored is None:
        return None
    anchors = stored.anchors()
    if witness.signed_by_ci(keyring, anchors) is not None:
        return None
    spans = {name: tuple(s) for name, s in stored.header["spans"].items()}
    tables = read_tails(ws.workbook_path, parts, READ_SHEETS, replace(witness.parts, spans=spans))
    if tables is None or any(t.formulas for t in tables.values()):
        return None
    ledger = tables[LEDGER.name]
    if ledger.vouched_to != stored.header["row"]:
        return None
    after, bad = read_events(ledger)
    if bad:
        return None
    registry = ResumedRegistry(stored)
    touched = {(e.model, e.version or 0) for e in after}
    models = tables[MODELS.name]
    shown = {(m, v): row for row, m, v, _d in stored.header["models"] if row <= models.vouched_to}
    # Rows read that hold what CI read there, of versions no event since touched, are
    # not compared again (a row added, moved or edited since is).
    same = _as_read(models, stored.header["models"], touched)
    tables[MODELS.name] = _without(models, same)
    shown.update({key: row for row, key in same.items()})
    metrics = tables[METRICS.name]
    same_metrics = _as_read(metrics, stored.header["metrics"], touched)
    tables[METRICS.name] = _without(metrics, same_metrics)
    # A version shown in a row not read must still show what it did when CI read it.
    before = {k: models_values(registry.versions[k]) for k in touched & shown.keys()}
    for event in after:
        anchors.step(event, keyring)
    head = stored.event(stored.seq)
    found = check_chain(after, head) + registry.extend(after)
    found += anchors.findings
    # The head is the latest event up to it (CI found their times in order): none of
    # them may be ahead of this clock either.
    found += anchors.file_findings(ws.settings, keyring, [head, *after], fs.verifier_now())
    if found or any(models_values(registry.versions[k]) != v for k, v in before.items()):
        return None
    data = WorkbookData(ws.workbook_path, tables, identity)
    expected = _expected_metrics(data[METRICS.name], registry, stored, touched, set(same_metrics))
    unread = Unread(shown, expected)
    views = view_findings(data, registry, unread=unread)
    if any(f.is_problem for f in views):
        return None
    return Snapshot(
        ws, data, keyring, registry.events, registry, anchors, view_findings=views,
        signatures_checked=False, unread=unread,
    )  # fmt: skip


def _as_read(table: Table, stored: list[list[Any]], touched: set[Key]) -> dict[int, Key]:
    """The rows of ``table`` (but its last) that hold the values CI read in the same row,
    of a version no later event touched: row -> the version."""
    # The rows CI read after the ones not read now (stored in row order).
    tail = stored[bisect.bisect_right(stored, table.vouched_to, key=lambda entry: entry[0]) :]
    read = {entry[0]: ((entry[1], entry[2]), entry[-1]) for entry in tail}
    same: dict[int, Key] = {}
    for i, row in enumerate(table.rows[:-1]):
        number = table.row_numbers[i]
        found = read.get(number)
        if found is not None and found[0] not in touched and row_digest(row) == found[1]:
            same[number] = found[0]
    return same


def _without(table: Table, rows: Mapping[int, Key]) -> Table:
    """``table`` without ``rows`` (its last row stays: it tells where to append)."""
    keep = [i for i, number in enumerate(table.row_numbers) if number not in rows]
    return replace(
        table,
        rows=[table.rows[i] for i in keep],
        row_numbers=[table.row_numbers[i] for i in keep],
    )


def _expected_metrics(
    metrics: Table, registry: Registry, stored: StoredState, touched: set[Key], same: set[int]
) -> dict[tuple[str, int, str, str], dict[str, Any]]:
    """The sealed metrics the Metrics rows read must show: of each version with a row
    compared, a row CI read that was not compared now, or an event after the head,
    those that no row left uncompared (``same``, or before the tail) shows."""
    entries = stored.header["metrics"]
    first = bisect.bisect_right(entries, metrics.vouched_to, key=lambda entry: entry[0])
    beyond = {(e[1], e[2]) for e in entries[first:] if e[0] not in same}
    model_at, version_at = METRICS.index("model"), METRICS.index("version")
    read = {(normalize_text(r[model_at]), whole_number(r[version_at])) for r in metrics.rows}
    checked = {key for key in (touched | beyond | read) if key in registry.versions}
    unread: dict[Key, set[tuple[str, str]]] = {}
    for row, model, version, metric, slice_, _digest in entries:
        if (model, version) in checked and (row <= metrics.vouched_to or row in same):
            unread.setdefault((model, version), set()).add((metric, slice_))
    expected: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for key in registry.versions:
        if key not in checked:
            continue
        shown = unread.get(key, set())
        for values in metrics_values(registry.versions[key]):
            if (values["metric"], values["slice"]) not in shown:
                expected[(*key, values["metric"], values["slice"])] = values
    return expected
