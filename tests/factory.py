"""The one builder of the registries that tests and benchmarks use: a workspace with
named keys, any number of registered versions, and a history along the stage workflow.

:func:`build` goes through the library's public functions, one call per step, as a
person or a pipeline would: ``init_workspace``, ``add_new_key``, ``register``,
``approve``, ``gate``, ``promote`` and ``archive``. :func:`register_bulk` is the
benchmarks' fast path for registries of 10,000 versions: it signs the same events with
``ledger.events.new_event`` and writes every sheet in one save with the row builders of
``regbook.registry.views``, where ``register`` would read the whole workbook again for
each version.

Tests import it from their own folder; bench/generate.py puts this folder on its path.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# regbook's own modules at the top, as the library imports them (docs/architecture.md).
from regbook.core import fs, schema
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.crypto import keys as crypto_keys
from regbook.crypto.keys import Keyring, load_private_key
from regbook.ledger.events import new_event, read_events
from regbook.ledger.gates import evaluate, parse_gates
from regbook.ledger.state import Registry
from regbook.registry.transaction import (
    acting_identity,
    append_ledger_rows,
    refresh_derived_views,
)
from regbook.registry.views import metrics_values, models_values, write_row
from regbook.storage.hashing import ContentHash
from regbook.workbook.read import WorkbookWriter, read_workbook
from regbook.workflow.archive import archive
from regbook.workflow.governance import approve, gate, promote
from regbook.workflow.lifecycle import (
    Metric,
    RegistrationRequest,
    register,
    registration_payload,
)
from regbook.workflow.setup import init_workspace
from regbook.workflow.trust import new_key

DATA_VERSION = "3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a"  # a DVC md5
CODE_COMMIT = "c0ffee1234567890abcdef1234567890abcdef12"
CODE_COMMIT_2 = "0badc0de34567890abcdef1234567890abcdef12"
# Key name -> principal; a key acts in the role it is named after.
STAFF = {"sme": "alice@example.com", "governance-lead": "gina@example.com",
         "ci": "ci@example.com"}  # fmt: skip
GOVERNANCE = "governance-lead"
FIXED_REGISTRY_ID = "00000000-0000-4000-8000-000000000001"
METRICS = ("auc_roc=0.83", "demographic_parity_ratio=0.91")
PASSING = (*METRICS, "security_high_findings=0")  # and every default gate passes

# A workflow step: (action, MODEL@VERSION, target stage or None, key name[, note]), the
# action one of approve, promote, gate, archive.
Step = tuple
# credit-risk@1 from None to Production, each step by the role the workflow asks for.
TO_PRODUCTION = (
    ("approve", "credit-risk@1", "Staging", "sme", "offline evaluation reviewed"),
    ("promote", "credit-risk@1", "Staging", "sme"),
    ("gate", "credit-risk@1", None, "ci"),
    ("approve", "credit-risk@1", "Production", "governance-lead", "model risk review MR-7"),
    ("promote", "credit-risk@1", "Production", "ci"),
)


@dataclass(frozen=True)
class Version:
    """One version to register. ``artefact`` is a file or folder to copy in, or the
    bytes of a file called ``name`` (default ``MODEL-I.bin``, I its place in the
    registry); None gives it bytes of its own. ``storage`` registers a path inside the
    workspace where it lies instead. Metrics are ``NAME=VALUE`` texts or ``Metric``s."""

    model: str = "credit-risk"
    metrics: tuple[Any, ...] = METRICS
    artefact: Path | bytes | None = None
    name: str = ""
    storage: str | None = None
    data_version: str = DATA_VERSION
    code_commit: str = CODE_COMMIT
    pipeline_run: str = "run-1042"
    data_repo: str = ""
    code_repo: str = ""
    trained_on: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    key: str = "sme"

    def content(self, i: int) -> bytes:
        if isinstance(self.artefact, bytes):
            return self.artefact
        return f"{self.model} model number {i}\n".encode() * 200

    def file_name(self, i: int) -> str:
        return self.name or f"{self.model}-{i}.bin"

    def parsed_metrics(self) -> tuple[Any, ...]:
        return tuple(m if isinstance(m, Metric) else Metric.parse_option(m) for m in self.metrics)


@dataclass
class Built:
    """A workspace at ``root``, its private keys by name, and the composite IDs of the
    versions registered, in order. Artefacts to copy in are written to ``base``."""

    root: Path
    keys: dict[str, Path]
    ids: list[str] = field(default_factory=list, init=False)

    @classmethod
    def at(cls, base: Path, names: Iterable[str] = STAFF) -> Built:
        """The usual layout: the workspace in BASE/ws, the keys in BASE/keys/NAME."""
        return cls(base / "ws", {name: base / "keys" / name for name in names})

    @property
    def base(self) -> Path:
        return self.root.parent

    @property
    def ws(self) -> Any:
        return Workspace.load(self.root)

    def key(self, name: str) -> Any:
        return load_private_key(self.keys[name])


def build(
    base: Path,
    versions: Sequence[Version] = (),
    history: Sequence[Step] = (),
    *,
    keys: Mapping[str, str] = STAFF,
    times: Iterable[str] = (),
    fixed_keys: bool = False,
) -> Built:
    """BASE/ws with a key per entry of ``keys`` in BASE/keys/, then ``versions``
    registered and ``history`` walked. ``times`` pins the ledger's clock, one time per
    event; ``fixed_keys`` makes the same keys on every run (for golden files)."""
    times = list(times)
    # The keyring events are dated at the first pinned time, ahead of the rest.
    with ledger_clock(times[:1] * len(keys)):
        made = workspace(base / "ws", keys, key_dir=base / "keys", fixed_keys=fixed_keys)
    with ledger_clock(times):
        register_all(made, versions)
        advance(made, history)
    return made


def workspace(
    root: Path,
    keys: Mapping[str, str] = STAFF,
    *,
    key_dir: Path | None = None,
    fixed_keys: bool = False,
) -> Built:
    """``init_workspace(root)`` and ``new_key`` for each (name, principal) of ``keys``,
    written to KEY_DIR/NAME (default: keys/ beside the workspace). The governance lead's
    key comes first and signs its own keyring event, then every other one's."""
    key_dir = root.parent / "keys" if key_dir is None else key_dir
    made = Built(root, {name: key_dir / name for name in keys})
    ws = init_workspace(root)
    if fixed_keys:  # and a fixed registry ID, for the same bytes on every run
        config = ws.config_path.read_text(encoding="utf-8")
        drawn = ws.settings.registry_id
        ws.config_path.write_text(config.replace(drawn, FIXED_REGISTRY_ID), encoding="utf-8")
        ws = Workspace.load(root)
    with _seeded_keys() if fixed_keys else nullcontext():
        lead = None
        for name, principal in sorted(keys.items(), key=lambda k: k[0] != GOVERNANCE):
            key = new_key(ws, principal, (name,), out=made.keys[name], gov_key=lead).key
            if name == GOVERNANCE:
                lead = key
    return made


def register_all(made: Built, versions: Sequence[Version]) -> list[str]:
    """Register each version with ``lifecycle.register``; their composite IDs."""
    ws = made.ws
    first = len(made.ids)
    for v in versions:
        i = len(made.ids)
        artefact = v.artefact if isinstance(v.artefact, Path) else None
        if artefact is None and v.storage is None:
            artefact = made.base / "artefacts" / str(i) / v.file_name(i)
            artefact.parent.mkdir(parents=True, exist_ok=True)
            artefact.write_bytes(v.content(i))
        request = RegistrationRequest(
            model=v.model, data_version=v.data_version, code_commit=v.code_commit,
            pipeline_run=v.pipeline_run, artefact=artefact, storage=v.storage,
            data_repo=v.data_repo, code_repo=v.code_repo, trained_on=v.trained_on,
            params=dict(v.params), metrics=v.parsed_metrics(),
        )  # fmt: skip
        made.ids.append(register(ws, request, made.key(v.key)).composite_id)
    return made.ids[first:]


def advance(made: Built, steps: Sequence[Step]) -> None:
    """Walk the steps with ``approve``, ``promote``, ``gate`` and ``archive``."""
    ws = made.ws
    for action, ref, to, key_name, *note in steps:
        target, key = ModelRef.parse(ref), made.key(key_name)
        if action == "approve":
            approve(ws, target, to, key, note=note[0] if note else "")
        elif action == "promote":
            promote(ws, target, to, key)
        elif action == "gate":
            gate(ws, target, key)
        elif action == "archive":
            archive(ws, target, key)
        else:
            raise ValueError(f"unknown workflow step {action!r}")


@contextmanager
def ledger_clock(times: Iterable[str]) -> Iterator[None]:
    """While it lasts, each read of the clock (``fs.utc_now``: a new ledger event's At)
    takes the next of ``times``."""
    pinned = list(times)
    clock = iter(pinned)
    real = fs.utc_now
    if pinned:
        fs.utc_now = lambda: next(clock)
    try:
        yield
    finally:
        fs.utc_now = real


class _Seeded:
    """Stands in for Ed25519PrivateKey.generate: fixed keys, so signatures, fingerprints
    and the keyring hash are the same on every run (Ed25519 signing is deterministic)."""

    def __init__(self) -> None:
        self.count = 0

    def generate(self) -> Any:
        self.count += 1
        return Ed25519PrivateKey.from_private_bytes(bytes([self.count]) * 32)


@contextmanager
def _seeded_keys() -> Iterator[None]:
    real = crypto_keys.Ed25519PrivateKey
    crypto_keys.Ed25519PrivateKey = _Seeded()
    try:
        yield
    finally:
        crypto_keys.Ed25519PrivateKey = real


# --- the benchmarks' fast path --------------------------------------------------------


def register_bulk(
    made: Built,
    versions: Iterable[Version],
    start: datetime,
    *,
    staged: bool = False,
    step: timedelta = timedelta(minutes=1),
) -> list[str]:
    """Register the versions as ``register`` would, signed at START, START + STEP, ...,
    after the ledger's keyring events (a workspace with no version yet), and write the
    sheets in one save. Each
    artefact (bytes) is written read-only straight into models/MODEL/VERSION/NAME. With
    ``staged`` each version is also approved for Staging and promoted by its registering
    key, and gated by the "ci" key, at the minute of its registration: four events per
    version, as the workflow writes them."""
    ws = made.ws
    signers: dict[str, Any] = {}

    def signer(name: str, allowed: Iterable[str], action: str) -> Any:
        if name not in signers:
            found = acting_identity(ws, made.key(name), allowed, action)
            signers[name] = _Signer(found.principal, found.role, found.key, ws.settings.registry_id)
        return signers[name]

    gates = parse_gates(ws.settings.gates)
    before, bad = read_events(read_workbook(ws.workbook_path, sheets=(schema.LEDGER,))[
        schema.LEDGER.name])  # fmt: skip
    assert not bad and all(e.kind == "keyring" for e in before), "a registry without versions"
    events: list[Any] = list(before)
    if before and before[-1].when > start:
        start = before[-1].when  # the chain's clock never runs backwards
    next_version: dict[str, int] = {}
    for i, v in enumerate(versions):
        version = next_version.get(v.model, 1)
        next_version[v.model] = version + 1
        data = v.content(len(made.ids))
        artefact = ws.models_dir / v.model / str(version) / v.file_name(len(made.ids))
        artefact.parent.mkdir(parents=True, exist_ok=True)
        artefact.write_bytes(data)
        artefact.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # register's read-only copy
        content = ContentHash("sha256", hashlib.sha256(data).hexdigest())
        payload = register_payload(v, version, content, ws.display_path(artefact), len(data))
        made.ids.append(payload["composite_id"])
        sme = signer(v.key, ws.settings.register_roles, "register")
        at = (start + i * step).strftime("%Y-%m-%dT%H:%M:%SZ")
        _sign(events, sme, "register", v.model, version, payload, at)
        if staged:
            moved = {"content_hash": str(content), "from": "None", "to": "Staging"}
            approval = _sign(events, sme, "approve", v.model, version, {**moved, "note": ""}, at)
            link = {"hash": approval.hash, "seq": approval.seq}
            _sign(events, sme, "promote", v.model, version, {**moved, "approval": link}, at)
            outcome = evaluate(gates, {m.metric: m.value for m in v.parsed_metrics()})
            result = {"content_hash": str(content), "stage": "Staging", **outcome.to_json()}
            ci = signer("ci", ("ci",), "gate")
            _sign(events, ci, "gate", v.model, version, result, at)
    write_sheets(made, events[len(before) :], before)
    return made.ids


@dataclass(frozen=True)
class _Signer:
    principal: str
    role: str
    key: Any
    registry_id: str


def _sign(
    events: list[Any], by: Any, kind: str, model: str, version: int, payload: Any, at: str
) -> Any:
    """Sign an event after the last of ``events`` and append it; it carries the
    registry's ID, as every event a writer signs does."""
    head = events[-1] if events else None
    payload = {**payload, "registry": by.registry_id} if by.registry_id else payload
    events.append(new_event(head, kind, model, version, payload, by.key, by.principal,
                            by.role, at=at))  # fmt: skip
    return events[-1]


def register_payload(
    v: Version, version: int, content: Any, storage: str, size: int, files: int = 1
) -> dict[str, Any]:
    """The ``register`` payload the library signs for ``v`` sealed as ``version``."""
    request = RegistrationRequest(
        model=v.model, data_version=v.data_version, code_commit=v.code_commit,
        pipeline_run=v.pipeline_run, data_repo=v.data_repo, code_repo=v.code_repo,
        params=dict(v.params), metrics=tuple(v.parsed_metrics()),
    )  # fmt: skip
    return registration_payload(
        request, version=version, content=content, storage=storage, size=size, files=files,
        trained_on=v.trained_on or "",
    )  # fmt: skip


def write_sheets(made: Built, events: list[Any], before: Sequence[Any] = ()) -> None:
    """Append ``events`` to the Ledger (after ``before``, the events it holds) and write
    the Models and Metrics rows of their registrations and the derived sheets, with the
    row builders restore uses; one save.
    The backup of the workbook before it is removed: it is of no use to anyone."""
    ws = made.ws
    with WorkbookWriter(ws.workbook_path, ws.settings.backups) as writer:
        data = read_workbook(ws.workbook_path)
        wb = writer.load()
        append_ledger_rows(wb, data[schema.LEDGER.name].row_numbers, events)
        registry, findings = Registry.replay([*before, *events])
        if findings:
            raise RuntimeError(f"the events replay with findings: {findings[:3]}")
        models_ws, metrics_ws = wb[schema.MODELS.name], wb[schema.METRICS.name]
        model_row = max(data[schema.MODELS.name].row_numbers, default=1) + 1
        metric_row = max(data[schema.METRICS.name].row_numbers, default=1) + 1
        for event in (e for e in events if e.kind == "register"):
            state = registry.get(event.model, event.version or 0)
            assert state is not None
            write_row(
                models_ws,
                schema.MODELS,
                model_row,
                models_values(state),
                style="sealed",
                keep=("notes",),
            )
            model_row += 1
            for values in metrics_values(state):
                write_row(metrics_ws, schema.METRICS, metric_row, values, style="sealed")
                metric_row += 1
        refresh_derived_views(wb, registry, Keyring.load(ws.keyring_path))
        writer.save(wb)
    for backup in made.root.glob(f"{ws.workbook_path.stem}.*.bak.xlsx"):
        backup.unlink()
