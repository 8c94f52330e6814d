"""Verification: check the ledger, every view cell and every artefact; collect findings.

Like a BagIt validator, ``verify`` never stops at the first problem::

    report = verify(Workspace.find(), scope=ModelRef.parse("credit-risk@7"))
    for finding in report.findings:
        print(finding)          # RB301 error Models!I7: code commit changed after sealing...
    report.ok                   # the exit-code policy: no errors or warnings

Ledger findings (RB1xx) are always reported, whatever the scope: one broken link
breaks trust in everything after it.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.schema import (
    APPROVALS,
    DATE,
    DATETIME,
    FLOAT,
    HISTORY,
    INT,
    KEYS,
    LEDGER,
    METRICS,
    MODELS,
    TEXT,
    BadValue,
    Sheet,
    normalize,
)
from regbook.core.schema import same as _same_uncached
from regbook.core.workspace import Workspace
from regbook.crypto import sigbatch
from regbook.ledger.events import LedgerEvent, SignatureChecks, check_chain, read_events
from regbook.ledger.state import Registry, VersionState
from regbook.storage.hashing import ContentHash, hash_path
from regbook.workbook.read import Table, WorkbookData, read_workbook
from regbook.workbook.views import (
    approvals_values,
    history_values,
    keys_values,
    metrics_values,
    models_values,
)
from regbook.workflow.governance import workflow_findings

# Models cells that show the workflow (later ledger events), never typed by hand.
WORKFLOW_CELLS = ("stage", "approval", "gate", "deployed_on", "retain_until")
# Models cells compared with the ledger (Notes is the SME's; Seal is checked first).
_SEAL = MODELS.index("seal")
_CHECKED_MODELS_COLUMNS = [
    (i, c) for i, c in enumerate(MODELS.columns) if c.key not in ("notes", "seal")
]


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    versions: int = 0
    artefacts_checked: int = 0
    ledger_head: str = ""
    keyring_sha256: str = ""
    scope: str = ""
    deploy: dict[str, Any] | None = None

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.is_problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scope": self.scope or None,
            "events": self.events,
            "versions": self.versions,
            "artefacts_checked": self.artefacts_checked,
            "ledger_head": self.ledger_head or None,
            "keyring_sha256": self.keyring_sha256,
            "findings": [f.to_json() for f in self.findings],
            **({"deployable": self.ok, **self.deploy} if self.deploy is not None else {}),
        }


def allowed_roles_for(ws: Workspace):
    """The roles that may sign each kind of event, from regbook.toml."""
    settings = ws.settings

    def roles(event: LedgerEvent) -> tuple[str, ...]:
        if event.kind == "register":
            return settings.register_roles
        if event.kind == "gate":
            return settings.gate_roles
        if event.kind in ("approve", "archive", "promote"):
            p = event.payload
            if event.kind == "promote" and p.get("to") == "Production":
                return ("ci",)
            roles = settings.transition_roles(str(p.get("from")), str(p.get("to")))
            if event.kind == "archive" and p.get("superseded_by"):
                # promote --archive-previous: CI archives the version it replaces
                # (workflow_findings checks that the promotion follows).
                return (*roles, "ci")
            return roles
        return ()

    return roles


@dataclass
class LedgerCheck:
    """The ledger read, checked and replayed: what verify and restore both start from."""

    data: WorkbookData
    keyring: Any
    events: list[LedgerEvent]
    registry: Registry
    findings: list[Finding]
    pending: Any = None  # waits for the signature findings
    pool: Any = None  # the worker processes checking them, if any

    def wait(self) -> list[Finding]:
        if self.pending is not None:
            self.findings += self.pending()
            self.pending = None
        return self.findings

    def abandon(self) -> None:
        """Stop waiting for the signature checks (the caller failed)."""
        self.pending = None
        sigbatch.shutdown(self.pool)


def check_ledger(
    ws: Workspace, keyring_sha256: str | None = None, threads: int = 2, background: bool = False
) -> LedgerCheck:
    """Read the workbook, check and replay the ledger. With ``background`` the signature
    checks keep running on worker threads until ``wait()``."""

    pool = _signature_pool(ws, threads)
    try:
        with gc_paused():
            checked = _check_ledger(ws, keyring_sha256, threads, pool)
    except BaseException:
        sigbatch.shutdown(pool)
        raise
    if not background:
        checked.wait()
    return checked


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


def _check_ledger(
    ws: Workspace, keyring_sha256: str | None, threads: int, pool: Any
) -> LedgerCheck:
    if keyring_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", keyring_sha256.strip()):
        raise InputError(
            f"--keyring-sha256 {keyring_sha256!r}: expected the 64 hex digits sha256sum prints"
        )
    keyring = ws.keyring()
    findings: list[Finding] = []
    if keyring_sha256 is not None and keyring.sha256 != keyring_sha256.strip().lower():
        findings.append(Finding.make(
            "RB110", ws.settings.keyring,
            f"the keyring's sha256 is {keyring.sha256}, the pin says "
            f"{keyring_sha256.strip().lower()}: someone changed who may sign"))  # fmt: skip
    checks = SignatureChecks(keyring, allowed_roles_for(ws), threads, pool)
    parsed: list[tuple[list[LedgerEvent], list[Finding]]] = []

    def parse_ledger(table: Table) -> None:
        # While the other sheets are read, parse the ledger and start the signature checks.
        parsed.append(read_events(table, checks.add))

    data = read_workbook(ws.workbook_path, first=LEDGER, on_first=parse_ledger)
    events, bad_rows = parsed[0]
    signatures = checks.started()
    findings += bad_rows
    findings += check_chain(events)

    def pending() -> list[Finding]:
        try:
            return signatures()
        finally:
            sigbatch.shutdown(pool)

    registry, replay_findings = Registry.replay(events)
    findings += replay_findings
    return LedgerCheck(data, keyring, events, registry, findings, pending, pool)


# Workbooks this large hold enough events (about 750 bytes each on disk) to check their
# signatures on worker processes; see sigbatch.PROCESS_MIN_EVENTS.
_POOL_MIN_BYTES = 750 * sigbatch.PROCESS_MIN_EVENTS


def _signature_pool(ws: Workspace, threads: int) -> Any:
    """Worker processes for the signature checks, started before the workbook is read:
    no thread runs yet (fork is safe) and the process is still small (forking is cheap).
    None for small workbooks and ``threads <= 1``."""
    if threads <= 1:
        return None
    try:
        size = ws.workbook_path.stat().st_size
    except OSError:
        return None  # read_workbook says what is wrong
    return sigbatch.start_pool(threads) if size >= _POOL_MIN_BYTES else None


def verify(
    ws: Workspace,
    scope: ModelRef | None = None,
    artefacts: bool = True,
    keyring_sha256: str | None = None,
    threads: int = 2,
    for_deploy: bool = False,
    deploy_artefact: Path | None = None,
) -> Report:
    """Every finding; with ``for_deploy`` (CI's check before deploying ``scope``) also
    that the version is in Production and that the artefact about to be deployed
    (``deploy_artefact``, default its storage location) has the sealed content hash."""
    if for_deploy and (scope is None or scope.version is None):
        raise InputError("--for-deploy needs MODEL@VERSION")
    checked = check_ledger(ws, keyring_sha256, threads, background=True)
    try:
        with gc_paused():
            return _verify(ws, checked, scope, artefacts, threads, for_deploy, deploy_artefact)
    except BaseException:
        checked.abandon()
        raise


def _verify(
    ws: Workspace,
    checked: LedgerCheck,
    scope: ModelRef | None,
    artefacts: bool,
    threads: int,
    for_deploy: bool,
    deploy_artefact: Path | None,
) -> Report:
    registry = checked.registry
    if scope is not None:
        known = {m for (m, _v) in registry.versions}
        if scope.name not in known or (
            scope.version is not None and registry.get(scope.name, scope.version) is None
        ):
            raise InputError(f"{scope}: no such sealed version in the ledger")

    def in_scope(model: Any, version: Any) -> bool:
        if scope is None:
            return True
        return model == scope.name and (scope.version is None or version == scope.version)

    findings: list[Finding] = []
    view = _models_findings(checked.data[MODELS.name], registry)
    view += _metrics_findings(checked.data[METRICS.name], registry)
    view += _sheet_findings(checked.data[APPROVALS.name], APPROVALS, approvals_values(registry))
    view += _sheet_findings(checked.data[HISTORY.name], HISTORY, history_values(registry))
    view += workflow_findings(registry, ws.settings)
    findings += [f for f in view if f.model is None or in_scope(f.model, f.version)]
    if scope is None:
        findings += _sheet_findings(
            checked.data[KEYS.name], KEYS, keys_values(checked.keyring), code="RB308"
        )
    report = Report(
        scope=str(scope) if scope else "",
        events=len(checked.events),
        ledger_head=checked.events[-1].hash if checked.events else "",
        keyring_sha256=checked.keyring.sha256,
    )
    states = [s for s in registry.versions.values() if in_scope(s.model, s.version)]
    report.versions = len(states)
    if for_deploy:
        state = states[0]
        report.deploy = {
            "composite_id": state.composite_id,
            "stage": state.stage,
            "content_hash": state.content_hash,
        }
        if state.stage != "Production":
            findings.append(Finding.make(
                "RB601", str(scope), f"in {state.stage}, not Production: it may not be "
                "deployed", state.model, state.version))  # fmt: skip
        latest = state.gate_event.payload.get("result") if state.gate_event else None
        if latest != "PASS":
            findings.append(Finding.make(
                "RB602", str(scope), f"the latest validation gate result is "
                f"{latest or 'missing'}: it may not be deployed", state.model,
                state.version))  # fmt: skip
        if deploy_artefact is not None:
            findings += artefact_findings(
                deploy_artefact, str(deploy_artefact), state, deploying=True
            )
            report.artefacts_checked = 1
            artefacts = False
        else:
            # What is about to be deployed is always re-hashed, --no-artefacts or not.
            artefacts = True
    if artefacts:
        art_findings, count = check_artefacts(ws, states, threads)
        findings += art_findings
        report.artefacts_checked = count
    else:
        from regbook.workflow.archive import archived_states, bag_findings

        # A bag's presence and its signed tag manifest are cheap: always checked.
        for state in archived_states(registry):
            if in_scope(state.model, state.version):
                findings += bag_findings(ws, state, "tags")
    findings = [
        f
        for f in checked.wait() + findings
        if f.code.startswith("RB1") or f.model is None or in_scope(f.model, f.version)
    ]
    report.findings = findings
    return report


def artefact_findings(
    path: Path, where: str, state: VersionState, deploying: bool = False
) -> list[Finding]:
    """Whether the artefact at ``path`` is there and has the version's sealed hash."""
    label = f"{state.model}@{state.version}"
    subject = f"the artefact to deploy as {label}" if deploying else f"the artefact of {label}"

    def finding(code: str, text: str) -> list[Finding]:
        return [Finding.make(code, where, text, state.model, state.version)]

    if not path.exists() and not path.is_symlink():
        return finding("RB401", f"{subject} is missing")
    try:
        now = hash_path(path)
    except InputError as err:
        return finding("RB403", f"{label}: {err}")
    sealed = ContentHash.parse(state.content_hash)
    if now == sealed:
        return []
    sealed_text, now_text = _show(str(sealed), str(now)), _show(str(now), str(sealed))
    if deploying:
        return finding(
            "RB402",
            f"the artefact to deploy is not {label}: sealed {sealed_text}, this one {now_text}",
        )
    return finding(
        "RB402", f"{subject} changed since sealing: sealed {sealed_text}, now {now_text}"
    )


# --- views ---------------------------------------------------------------------------


def _show(value: Any, other: Any) -> str:
    """A value for a message, cut short but never so short the difference is hidden."""
    if value is None or value == "":
        return "(empty)"
    text = str(value)
    other_text = "" if other is None else str(other)
    if len(text) <= 24:
        return text
    differ = next(
        (i for i, (a, b) in enumerate(zip(text, other_text, strict=False)) if a != b),
        min(len(text), len(other_text)),
    )
    keep = max(12, differ + 4)
    return text if keep >= len(text) else text[:keep] + "..."


def _comparable(kind: str, value: Any) -> Any:
    """A cell value as the ledger writes it (dates as yyyy-mm-dd, not Excel's datetime)."""
    try:
        return normalize(kind, value)
    except BadValue:
        return value


def _cell_finding(
    code: str,
    sheet: Sheet,
    key: str,
    row: int,
    expected: Any,
    found: Any,
    model: str,
    version: int,
    sealed_column: bool,
    source: str = "the ledger",
) -> Finding:
    column = sheet.column(key)
    expected, found = _comparable(column.kind, expected), _comparable(column.kind, found)
    label = (
        column.header[0].lower() + column.header[1:]
        if column.header[:2] != "AU"
        else (column.header)
    )
    if sealed_column and column.editor.startswith("SME"):
        text = (
            f"{label} changed after sealing: sealed {_show(expected, found)}, now "
            f"{_show(found, expected)}"
        )
    else:
        text = (
            f"{label} differs from {source}: {source.removeprefix('the ')} says "
            f"{_show(expected, found)}, cell says {_show(found, expected)}"
        )
    return Finding.make(code, sheet.ref(key, row), text, model, version)


def sealed_rows(table: Table, registry: Registry) -> dict[tuple[str, int], int]:
    """The first Models row that carries each version's own seal. Such a row is the
    version's row even below a copy that names the version without its seal."""
    by_seal = registry.by_seal
    rows: dict[tuple[str, int], int] = {}
    for i, row in table.indexed():
        state = by_seal.get(normalize_text(row[MODELS.index("seal")]))
        if state is not None:
            rows.setdefault((state.model, state.version), table.row_numbers[i])
    return rows


def _models_findings(table: Table, registry: Registry) -> list[Finding]:
    findings: list[Finding] = []
    by_seal = registry.by_seal
    genuine = sealed_rows(table, registry)
    seen: dict[tuple[str, int], int] = {}
    drafts = 0
    for i, row in table.indexed():
        seal = normalize_text(row[_SEAL])
        state: VersionState | None = by_seal.get(seal) if seal else None
        number = table.row_numbers[i]
        claimed = _claimed_version(table, i, registry) if state is None else None
        if not seal and claimed is None:
            drafts += 1
        if state is None and claimed is not None:
            state = claimed
            key = (state.model, state.version)
            if key in genuine:
                findings.append(Finding.make(
                    "RB304", table.ref(i, "model"),
                    f"{state.model}@{state.version} is also shown in row {genuine[key]}; a "
                    "version has one row", state.model, state.version))  # fmt: skip
                continue
            if not seal:
                findings.append(
                    Finding.make(
                        "RB301",
                        table.ref(i, "seal"),
                        f"seal removed from {state.model}@{state.version}: ledger says "
                        f"{state.seal[:12]}..., cell is empty",
                        state.model,
                        state.version,
                    )
                )
            else:
                findings.append(
                    _cell_finding(
                        "RB301",
                        MODELS,
                        "seal",
                        number,
                        state.seal,
                        seal,
                        state.model,
                        state.version,
                        False,
                    )
                )
                seal = state.seal
        if state is None:
            if seal:
                findings.append(Finding.make(
                    "RB303", table.ref(i, "seal"),
                    f"the row claims seal {seal[:16]}..., which no ledger event has "
                    "(a row typed or copied to look sealed)"))  # fmt: skip
            continue
        key = (state.model, state.version)
        if key in seen:
            findings.append(Finding.make(
                "RB304", table.ref(i, "model"),
                f"{state.model}@{state.version} is also shown in row {seen[key]}; a version "
                "has one row", state.model, state.version))  # fmt: skip
            continue
        seen[key] = number
        expected = models_values(state)
        formulas = bool(table.formulas)
        for index, column in _CHECKED_MODELS_COLUMNS:
            want, found = expected[column.key], row[index]
            if not formulas and untouched(column.kind, want, found):
                continue
            if formulas and table.has_formula(i, column.key):
                findings.append(Finding.make(
                    "RB307", table.ref(i, column.key),
                    f"a formula in a sealed cell of {state.model}@{state.version}; sealed "
                    "cells hold values", state.model, state.version))  # fmt: skip
                continue
            if not same(column.kind, want, found):
                findings.append(
                    _cell_finding(
                        "RB311" if column.key in WORKFLOW_CELLS else "RB301",
                        MODELS,
                        column.key,
                        number,
                        expected[column.key],
                        found,
                        state.model,
                        state.version,
                        column.sealed,
                    )
                )
    for key, state in registry.versions.items():
        if key not in seen:
            findings.append(Finding.make(
                "RB302", f"{MODELS.name}!{state.model}@{state.version}",
                f"{state.model}@{state.version} is sealed in the ledger (event "
                f"{state.register.seq}) but has no row in Models", state.model,
                state.version))  # fmt: skip
    if drafts:
        findings.append(
            Finding.make(
                "RB310",
                MODELS.name,
                f"{drafts} draft row{'s' if drafts != 1 else ''} not "
                "yet sealed (run `regbook seal`)",
            )
        )
    return findings


_DATED = (DATE, DATETIME)


def same(kind: str, a: Any, b: Any) -> bool:
    """``schema.same``, with date and date-time cells normalized once per distinct value
    (a ledger of 40,000 events has a few thousand distinct times, each shown in several
    sheets, and Excel hands them back as datetimes, never equal to the ledger's text)."""
    if kind not in _DATED or (type(a) is type(b) and a == b):
        return _same_uncached(kind, a, b)
    na, nb = _normal_dated(kind, type(a), a), _normal_dated(kind, type(b), b)
    return na is not _BAD and na == nb


_BAD = object()


@lru_cache(maxsize=1 << 16)
def _normal_dated(kind: str, _type: type, value: Any) -> Any:
    # The type is part of the key: 1, 1.0 and True are equal and hash alike.
    try:
        return normalize(kind, value)
    except BadValue:
        return _BAD


def normalize_text(value: Any) -> str:
    if type(value) is str:
        return value.strip()  # what normalize gives text ("" for blanks, here)
    try:
        out = normalize("text", value)
    except BadValue:
        return ""
    return out if isinstance(out, str) else ""


def _claimed_version(table: Table, i: int, registry: Registry) -> VersionState | None:
    """The sealed version a row names by model and version, if any."""
    model = normalize_text(table.value(i, "model"))
    version = _whole_number(table.value(i, "version"))
    if not model or version is None:
        return None
    return registry.get(model, version)


_M_MODEL, _M_VERSION, _M_METRIC, _M_SLICE = (
    METRICS.index(k) for k in ("model", "version", "metric", "slice")
)
_M_SEALED = tuple((k, METRICS.index(k), METRICS.column(k).kind) for k in ("value", "kind"))


def _metrics_findings(table: Table, registry: Registry) -> list[Finding]:
    findings: list[Finding] = []
    expected: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for state in registry.versions.values():
        for values in metrics_values(state):
            expected[(state.model, state.version, values["metric"], values["slice"])] = values
    seen: set[tuple[str, int, str, str]] = set()
    versions = registry.versions
    formulas = bool(table.formulas)
    for i, row in table.indexed():
        model = normalize_text(row[_M_MODEL])
        version = _whole_number(row[_M_VERSION])
        if (model, version) not in versions:
            continue  # a draft's metric
        metric = normalize_text(row[_M_METRIC])
        slice_ = normalize_text(row[_M_SLICE])
        key = (model, version, metric, slice_)
        if key not in expected or key in seen:
            findings.append(Finding.make(
                "RB305", table.ref(i, "metric"),
                f"{metric or '(no name)'} for {model}@{version} is not among the metrics "
                "sealed with that version", model, version))  # fmt: skip
            continue
        seen.add(key)
        sealed = expected[key]
        for column, index, kind in _M_SEALED:
            want, found = sealed[column], row[index]
            if not formulas and untouched(kind, want, found):
                continue
            if formulas and table.has_formula(i, column):
                findings.append(Finding.make(
                    "RB307", table.ref(i, column),
                    f"a formula in a sealed cell of {model}@{version}", model,
                    version))  # fmt: skip
                continue
            if not same(kind, want, found):
                findings.append(_cell_finding(
                    "RB301", METRICS, column, table.row_numbers[i], want, found, model,
                    version, True))  # fmt: skip
    for key in expected.keys() - seen:
        model, version, metric, slice_ = key
        findings.append(Finding.make(
            "RB306", f"{METRICS.name}!{model}@{version}",
            f"{metric}{' [' + slice_ + ']' if slice_ else ''} = {expected[key]['value']} was "
            f"sealed with {model}@{version} but has no row in Metrics", model,
            version))  # fmt: skip
    return findings


def _whole_number(value: Any) -> int | None:
    """A version cell as a whole number (Excel hands numbers back as floats); None if it
    is not one."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    try:
        out = normalize("int", value)
    except BadValue:
        return None
    return out if isinstance(out, int) else None


_NUMBERS = (int, float)
_NUMBER_KINDS = (INT, FLOAT)
_INF = float("inf")


def untouched(kind: str, want: Any, found: Any) -> bool:
    """A quick yes for the common case, a cell as regbook wrote it: equal values that
    ``same`` calls equal too (equal values of one type other than float; in a number
    column also equal finite numbers, which Excel hands back as floats; in a date or
    date-time column the ledger's text and the date or whole-second time Excel hands
    back for it). False means ask ``same``."""
    kind_w, kind_f = type(want), type(found)
    if kind_w is str and kind != TEXT:
        # Dates and times: the ledger's text against the datetime or date Excel gives.
        if kind_f is datetime:
            return (
                kind == DATETIME
                and not found.microsecond
                and found.tzinfo is None
                and want == found.isoformat() + "Z"
            )
        if kind_f is date:
            return kind == DATE and want == found.isoformat()
    if want != found:
        return False
    if kind_w is kind_f and kind_w is not float:
        return True
    return (
        kind in _NUMBER_KINDS and kind_w in _NUMBERS and kind_f in _NUMBERS and -_INF < found < _INF
    )


def _sheet_findings(
    table: Table, sheet: Sheet, expected: list[dict[str, Any]], code: str = "RB309"
) -> list[Finding]:
    """A regbook-only sheet must equal its derivation, row by row."""
    findings: list[Finding] = []
    for i, want in enumerate(expected):
        if i >= len(table.rows):
            findings.append(
                Finding.make(
                    code,
                    f"{sheet.name}!A{i + 2}",
                    f"{len(expected) - i} row(s) missing; `regbook restore` rewrites the sheet",
                    want.get("model"),
                    want.get("version"),
                )
            )
            break
        row = table.rows[i]
        for index, column in enumerate(sheet.columns):
            found, expected_value = row[index], want[column.key]
            if untouched(column.kind, expected_value, found):
                continue
            if not same(column.kind, expected_value, found):
                findings.append(
                    _cell_finding(
                        code,
                        sheet,
                        column.key,
                        table.row_numbers[i],
                        want[column.key],
                        found,
                        want.get("model"),
                        want.get("version"),
                        False,
                        "allowed_signers" if sheet is KEYS else "the ledger",
                    )
                )
    if len(table.rows) > len(expected):
        extra = len(table.rows) - len(expected)
        findings.append(
            Finding.make(
                code,
                f"{sheet.name}!A{table.row_numbers[len(expected)]}",
                f"{extra} row(s) that the ledger does not have",
            )
        )
    return findings


# --- artefacts -----------------------------------------------------------------------


def check_artefacts(
    ws: Workspace, states: list[VersionState], threads: int = 2
) -> tuple[list[Finding], int]:
    """Re-hash every version's artefact at its storage location; an archived version's
    storage is its bag, validated in full."""
    from regbook.workflow.archive import bag_findings, original_findings

    work = list(states)  # archived versions keep their storage until bagged

    def one(state: VersionState) -> list[Finding]:
        if state.stage_event is not None and state.stage_event.kind == "archive":
            return bag_findings(ws, state, "full") + original_findings(ws, state)
        try:
            path = ws.resolve_storage(state.storage, f"{state.model}@{state.version}")
        except InputError as err:
            return [Finding.make("RB403", state.storage, str(err), state.model, state.version)]
        return artefact_findings(path, state.storage, state)

    findings: list[Finding] = []
    if threads > 1 and len(work) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for part in pool.map(one, work):
                findings.extend(part)
    else:
        for state in work:
            findings.extend(one(state))
    return findings, len(work)
