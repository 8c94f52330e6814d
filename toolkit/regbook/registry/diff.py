"""The views against the ledger: every cell of Models, Metrics, Approvals, History and
Keys that differs from what the ledger says it must hold, named by cell.

Excel's own changes to types (numbers as floats, dates as serials or datetimes) are
not differences; a hand edit is::

    findings = view_findings(data, registry)   # RB3xx, e.g. "Models!I7: code commit ..."
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from regbook.core.errors import plural
from regbook.core.findings import Finding
from regbook.core.schema import (
    APPROVALS,
    DATE,
    DATETIME,
    FLOAT,
    HISTORY,
    INT,
    KEYS,
    METRICS,
    MODELS,
    TEXT,
    BadValue,
    Sheet,
    normalize,
)
from regbook.core.schema import same as _same_uncached
from regbook.crypto.keys import Keyring
from regbook.ledger.state import Registry, VersionState
from regbook.registry.views import (
    approvals_values,
    history_values,
    keys_values,
    metrics_values,
    models_values,
)
from regbook.workbook.read import Table, WorkbookData


@dataclass(frozen=True)
class Unread:
    """What the view rows a writer resumed from a stored state did not read show, as
    the witness's verifier read them (regbook.registry.resume): the Models row of each
    version shown there, and the sealed metrics the Metrics rows read must show (those
    of every version that has a row read or a later event, less the ones shown in rows
    not read)."""

    models: Mapping[tuple[str, int], int]
    metrics: dict[tuple[str, int, str, str], dict[str, Any]]


@dataclass(frozen=True)
class Vouched:
    """What a trusted witness vouches for in the views: each table's rows up to its
    ``vouched_to`` are the bytes the witness's verifier found equal to the ledger, and
    a version's rows still are unless an event after the witnessed head (``touched``)
    changed what they must hold. Approvals and History only grow, event by event."""

    touched: frozenset[tuple[str, int]]

    def skips(self, table: Table, number: int, key: tuple[str, int]) -> bool:
        return number <= table.vouched_to and key not in self.touched

    @staticmethod
    def leading(table: Table) -> int:
        """How many of the sheet's first rows are vouched for (the omitted ones too)."""
        count = table.omitted
        for number in table.row_numbers:
            if number > table.vouched_to:
                break
            count += 1
        return count


# Models cells that show the workflow (later ledger events), never typed by hand.
WORKFLOW_CELLS = ("stage", "approval", "gate", "deployed_on", "retain_until")


# Models cells compared with the ledger (Notes is the SME's; Seal is checked first).
_SEAL = MODELS.index("seal")


_CHECKED_MODELS_COLUMNS = [
    (i, c) for i, c in enumerate(MODELS.columns) if c.key not in ("notes", "seal")
]


def show_value(value: Any, other: Any) -> str:
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
    model: str | None,
    version: int | None,
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
            f"{label} changed after sealing: sealed {show_value(expected, found)}, now "
            f"{show_value(found, expected)}"
        )
    else:
        text = (
            f"{label} differs from {source}: {source.removeprefix('the ')} says "
            f"{show_value(expected, found)}, cell says {show_value(found, expected)}"
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


def _second_row(table: Table, i: int, state: VersionState, first: int) -> Finding:
    return Finding.make(
        "RB304", table.ref(i, "model"),
        f"{state.model}@{state.version} is also shown in row {first}; a version has one "
        "row", state.model, state.version)  # fmt: skip


def models_findings(
    table: Table,
    registry: Registry,
    vouched: Vouched | None = None,
    shown: Mapping[tuple[str, int], int] | None = None,
) -> list[Finding]:
    """Every Models row against the ledger; ``shown``: the versions shown in rows that
    were not read (``Unread.models``), which count as seen there."""
    findings: list[Finding] = []
    by_seal = registry.by_seal
    genuine = {**sealed_rows(table, registry), **(shown or {})}
    seen: dict[tuple[str, int], int] = dict(shown or {})
    drafts = 0
    for i, row in table.indexed():
        seal = normalize_text(row[_SEAL])
        state: VersionState | None = by_seal.get(seal) if seal else None
        number = table.row_numbers[i]
        claimed = claimed_version(table, i, registry) if state is None else None
        if not seal and claimed is None:
            drafts += 1
        if state is None and claimed is not None:
            state = claimed
            key = (state.model, state.version)
            if key in genuine:
                findings.append(_second_row(table, i, state, genuine[key]))
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
            findings.append(_second_row(table, i, state, seen[key]))
            continue
        seen[key] = number
        if vouched is not None and vouched.skips(table, number, key):
            continue
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
    for key in registry.versions:
        if key not in seen:
            state = registry.versions[key]
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
    # mypy takes type(x) for unhashable (python/mypy#11470); a class is hashable.
    na, nb = _normal_dated(kind, type(a), a), _normal_dated(kind, type(b), b)  # type: ignore[arg-type]
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


def claimed_version(table: Table, i: int, registry: Registry) -> VersionState | None:
    """The sealed version a row names by model and version, if any."""
    model = normalize_text(table.value(i, "model"))
    version = whole_number(table.value(i, "version"))
    if not model or version is None:
        return None
    return registry.get(model, version)


_M_MODEL, _M_VERSION, _M_METRIC, _M_SLICE = (
    METRICS.index(k) for k in ("model", "version", "metric", "slice")
)
_M_SEALED = tuple((k, METRICS.index(k), METRICS.column(k).kind) for k in ("value", "kind"))


def metrics_findings(
    table: Table,
    registry: Registry,
    vouched: Vouched | None = None,
    expected: dict[tuple[str, int, str, str], dict[str, Any]] | None = None,
) -> list[Finding]:
    """Every Metrics row against the ledger, and every sealed metric without one: those
    ``expected`` (``Unread.metrics``) when it is given, else every version's."""
    findings: list[Finding] = []
    skipped = _vouched_metrics(table, registry, vouched) if vouched else set()
    if expected is None:
        expected = {}
        for key, state in registry.versions.items():
            if key in skipped:
                continue
            for values in metrics_values(state):
                expected[(state.model, state.version, values["metric"], values["slice"])] = values
    seen: set[tuple[str, int, str, str]] = set()
    versions = registry.versions
    formulas = bool(table.formulas)
    for i, row in table.indexed():
        model = normalize_text(row[_M_MODEL])
        version = whole_number(row[_M_VERSION])
        if (model, version) not in versions or (model, version) in skipped:
            continue  # a draft's metric, or a version's the witness vouches for
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


def _vouched_metrics(table: Table, registry: Registry, vouched: Vouched) -> set[tuple[str, int]]:
    """Versions whose Metrics rows all stand among the vouched rows, as many as the
    version has sealed metrics, and that no later event touched: the rows the witness's
    verifier found complete and equal to the ledger."""
    inside: Counter[tuple[str, int]] = Counter()
    outside: set[tuple[str, int]] = set()
    for i, row in table.indexed():
        version = whole_number(row[_M_VERSION])
        if version is None:
            continue
        key = (normalize_text(row[_M_MODEL]), version)
        if vouched.skips(table, table.row_numbers[i], key):
            inside[key] += 1
        else:
            outside.add(key)
    versions = registry.versions
    return {
        key
        for key, count in inside.items()
        if key not in outside and key in versions and len(versions[key].metrics) == count
    }


def whole_number(value: Any) -> int | None:
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


def sheet_findings(
    table: Table,
    sheet: Sheet,
    expected: list[dict[str, Any]],
    code: str = "RB309",
    start: int = 0,
) -> list[Finding]:
    """A regbook-only sheet must equal its derivation, row by row. ``expected`` holds
    the rows from the ``start``-th on: the ones before it are vouched for (and the
    table's first ``omitted`` of them were not read)."""
    findings: list[Finding] = []
    total = start + len(expected)
    rows = table.omitted + len(table.rows)  # the sheet's data rows, read or not
    for n, want in enumerate(expected, start=start):
        i = n - table.omitted
        if n >= rows:
            findings.append(
                Finding.make(
                    code,
                    f"{sheet.name}!A{n + 2}",
                    f"{plural(total - n, 'row')} missing; `regbook restore` rewrites the sheet",
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
    if rows > total:
        extra = rows - total
        findings.append(
            Finding.make(
                code,
                f"{sheet.name}!A{table.row_numbers[total - table.omitted]}",
                f"{plural(extra, 'row')} that the ledger does not have",
            )
        )
    return findings


def view_findings(
    data: WorkbookData,
    registry: Registry,
    vouched: Vouched | None = None,
    unread: Unread | None = None,
) -> list[Finding]:
    """Every cell of Models, Metrics, Approvals and History that differs from the ledger;
    with ``vouched``, but for the rows a trusted witness vouches for; with ``unread``,
    of the rows read (a resumed writer's)."""
    approvals, history = data[APPROVALS.name], data[HISTORY.name]
    a_start = Vouched.leading(approvals) if vouched or unread else 0
    h_start = Vouched.leading(history) if vouched or unread else 0
    return (
        models_findings(data[MODELS.name], registry, vouched, unread.models if unread else None)
        + metrics_findings(
            data[METRICS.name], registry, vouched, unread.metrics if unread else None
        )
        + sheet_findings(approvals, APPROVALS, approvals_values(registry, a_start), start=a_start)
        + sheet_findings(history, HISTORY, history_values(registry, h_start), start=h_start)
    )


def keys_findings(data: WorkbookData, keyring: Keyring) -> list[Finding]:
    """Every cell of the Keys sheet that differs from the keyring."""
    return sheet_findings(data[KEYS.name], KEYS, keys_values(keyring), code="RB308")
