"""Registering and sealing versions: the writes that append to the ledger.

ws = Workspace.find()
key = load_private_key(Path("~/.ssh/id_ed25519").expanduser())
done = register(ws, RegistrationRequest(model="credit-risk", artefact=Path("m.pkl"),
                                        data_version="...", code_commit="...",
                                        pipeline_run="run-42"), key)
done.composite_id
seal(ws, key)        # every draft row of the Models sheet, all or nothing
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regbook.core.errors import DraftProblems, InputError
from regbook.core.ids import (
    CompositeId,
    check_code_commit,
    check_data_version,
    check_model_name,
)
from regbook.core.schema import (
    KNOWN_METRICS,
    METRIC_KINDS,
    METRIC_NAME_RE,
    METRICS,
    MODELS,
    BadValue,
    excel_date,
    normalize,
)
from regbook.core.workspace import Workspace
from regbook.crypto.keys import SigningKey
from regbook.ledger.events import payload_cell
from regbook.registry.diff import normalize_text, same
from regbook.registry.transaction import Transaction, acting_identity, write_changes
from regbook.storage.hashing import ContentHash, hash_path
from regbook.workbook.read import CellValue, Table


@dataclass(frozen=True)
class Metric:
    metric: str
    value: float
    kind: str
    slice: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "metric": self.metric, "slice": self.slice, "value": self.value}

    @classmethod
    def parse_option(cls, text: str) -> Metric:
        """``NAME=VALUE`` from the command line."""
        name, sep, value = text.partition("=")
        if not sep:
            raise InputError(
                f"metric {text!r}: expected NAME=VALUE, e.g. auc_roc=0.81", option="metric"
            )
        try:
            return cls.make(name.strip(), value.strip(), None, "", f"metric {text!r}")
        except InputError as err:
            raise InputError.about("metric", err) from None

    @classmethod
    def make(
        cls,
        name: CellValue,
        value: CellValue,
        kind: CellValue,
        slice_: str,
        where: str,
        cells: dict[str, str] | None = None,
    ) -> Metric:
        """``where`` names the input in messages; ``cells`` the cell of the "value" and
        "kind" when they have their own (a Metrics row)."""
        cells = cells or {}
        if not isinstance(name, str) or not METRIC_NAME_RE.fullmatch(name):
            raise InputError(
                f"{where}: metric name {name!r} must be a lower-case identifier ([a-z][a-z0-9_]*)"
            )
        try:
            number = normalize("float", value)
        except BadValue as err:
            raise InputError(f"{cells.get('value', where)}: {err}") from None
        if number is None:
            raise InputError(f"{cells.get('value', where)}: metric {name} has no value")
        kind = kind or KNOWN_METRICS.get(name, (None, "performance"))[1]
        if not isinstance(kind, str) or kind not in METRIC_KINDS:
            raise InputError(
                f"{cells.get('kind', where)}: kind {kind!r} is not one of {', '.join(METRIC_KINDS)}"
            )
        return cls(name, _plain_number(float(number)), kind, slice_ or "")


def _plain_number(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


@dataclass(frozen=True, kw_only=True)
class RegistrationRequest:
    model: str
    data_version: str
    code_commit: str
    pipeline_run: str
    artefact: Path | None = None  # copied into models/NAME/VERSION/
    storage: str | None = None  # recorded where it already lives
    data_repo: str = ""
    code_repo: str = ""
    trained_on: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True)
class Registered:
    model: str
    version: int
    composite_id: str
    content_hash: str
    storage: str
    seq: int
    copied_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "composite_id": self.composite_id,
            "content_hash": self.content_hash,
            "storage": self.storage,
            "ledger_seq": self.seq,
        }


@dataclass(frozen=True)
class MetricsAdded:
    """Metrics sealed for a version after its registration: a signed addendum."""

    model: str
    version: int
    composite_id: str
    metrics: tuple[str, ...]
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "composite_id": self.composite_id,
            "metrics_added": list(self.metrics),
            "ledger_seq": self.seq,
        }


# --- the write transaction -------------------------------------------------------------


# --- register ------------------------------------------------------------------------


def registration_payload(
    req: RegistrationRequest,
    *,
    version: int,
    content: ContentHash,
    storage: str,
    size: int,
    files: int,
    trained_on: str,
) -> dict[str, Any]:
    """The ``register`` event's payload for ``req`` sealed as ``version`` (docs/formats.md):
    what ``register`` and ``seal`` sign, and what a tool that builds ledgers signs too."""
    cid = CompositeId.build(req.model, version, content.hex, req.data_version, req.code_commit)
    return {
        "artefact": {"bytes": size, "files": files, "hash": str(content), "storage": storage},
        "code_commit": req.code_commit,
        "code_repo": req.code_repo,
        "composite_id": str(cid),
        "data_repo": req.data_repo,
        "data_version": req.data_version,
        "metrics": [m.to_json() for m in sorted(req.metrics, key=lambda m: (m.metric, m.slice))],
        "params": dict(sorted(req.params.items())),
        "pipeline_run": req.pipeline_run,
        "trained_on": trained_on,
    }


def _size(path: Path) -> tuple[int, int]:
    if path.is_file():
        return path.stat().st_size, 1
    total = files = 0
    for p in path.rglob("*"):
        if p.is_file():
            total += p.stat().st_size
            files += 1
    return total, files


def _validated(req: RegistrationRequest) -> RegistrationRequest:
    check_model_name(req.model)
    try:
        data_version = check_data_version(req.data_version, "data_version")
    except InputError as err:
        raise InputError.about("data_version", err) from None
    try:
        code_commit = check_code_commit(req.code_commit, "code_commit")
    except InputError as err:
        raise InputError.about("code_commit", err) from None
    if not req.pipeline_run or not req.pipeline_run.strip():
        raise InputError(
            "pipeline_run: the pipeline execution ID is required", option="pipeline_run"
        )
    if (req.artefact is None) == (req.storage is None):
        raise InputError(
            "give an artefact (copied into the registry) or a storage location (recorded "
            "where it lives), not both and not neither"
        )
    trained_on = req.trained_on
    if trained_on is not None:
        day = None
        try:
            day = normalize("date", trained_on)
            if isinstance(day, str):
                trained_on = excel_date(day)
        except BadValue as err:
            raise InputError(f"trained_on: {err}", option="trained_on") from None
        if not isinstance(day, str):
            raise InputError(
                "trained_on: empty; give a date (YYYY-MM-DD) or leave it out",
                option="trained_on",
            )
    names = [(m.metric, m.slice) for m in req.metrics]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InputError(f"metric: {dup[0]} is given twice", option="metric")
    return RegistrationRequest(
        model=req.model, data_version=data_version, code_commit=code_commit,
        pipeline_run=req.pipeline_run.strip(), artefact=req.artefact, storage=req.storage,
        data_repo=req.data_repo.strip(), code_repo=req.code_repo.strip(),
        trained_on=trained_on, params=req.params, metrics=req.metrics,
    )  # fmt: skip


def _copy_artefact(source: Path, target_dir: Path, expected: ContentHash) -> Path:
    """Copy into storage, make the copy read-only, and re-hash the copy. A copy left by
    an interrupted run with the same content is reused; anything else is refused."""
    target = target_dir / source.name
    if target.exists() or target.is_symlink():
        if hash_path(target, progress=False) == expected:
            return target
        raise InputError(f"{target}: already exists with other content; nothing was written")
    target_dir.mkdir(parents=True, exist_ok=True)
    # Copy into a fresh hidden folder and rename into place: a crash leaves a hidden
    # partial copy (never deleted by regbook), not a half-written artefact.
    staging_dir = Path(tempfile.mkdtemp(prefix=".partial-", dir=target_dir))
    staging = staging_dir / source.name
    if source.is_dir():
        shutil.copytree(source, staging, symlinks=True)
    else:
        shutil.copy2(source, staging)
    _make_read_only(staging)
    copied = hash_path(staging, progress=False)
    if copied != expected:
        raise InputError(f"{source}: changed while it was being copied; nothing was written")
    os.replace(staging, target)
    staging_dir.rmdir()
    return target


def _make_read_only(path: Path) -> None:
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in paths:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def register(
    ws: Workspace, request: RegistrationRequest, key: SigningKey, *, role: str | None = None
) -> Registered:
    """Register and seal one version in one step."""
    req = _validated(request)
    identity = acting_identity(ws, key, ws.settings.register_roles, "register", role)
    if req.artefact is not None:
        source = req.artefact
        if not source.exists() and not source.is_symlink():
            raise InputError(f"artefact {source}: no such file or folder", option="artefact")
        if source.is_dir() and ws.root.is_relative_to(source.resolve()):
            raise InputError(
                f"artefact {source}: holds the workspace itself, which cannot be copied "
                "into its own storage",
                option="artefact",
            )
        content = hash_path(source)
        located = None
    else:
        try:
            located = ws.resolve_storage(req.storage or "", "storage")
        except InputError as err:
            raise InputError.about("storage", err) from None
        if not located.exists():
            raise InputError(f"storage {req.storage}: no such file or folder", option="storage")
        content = hash_path(located)
    size, files = _size(located or req.artefact)  # type: ignore[arg-type]
    with Transaction(ws, resume=True) as tx:
        patch = tx.patch()  # before copying: a workbook that cannot be written gets no copy
        version = tx.registry.next_version(req.model)
        target_dir = ws.models_dir / req.model / str(version)
        if located is None:
            stored = target_dir / req.artefact.name  # type: ignore[union-attr]
        else:
            stored = located
        storage = ws.display_path(stored)
        trained_on = req.trained_on or datetime.now(UTC).date().isoformat()
        payload = registration_payload(
            req,
            version=version,
            content=content,
            storage=storage,
            size=size,
            files=files,
            trained_on=trained_on,
        )
        payload_cell("register", payload)  # refused now, not after the copy
        if located is None:
            _copy_artefact(req.artefact, target_dir, content)  # type: ignore[arg-type]
        event = tx.sign(identity, "register", req.model, version, payload)
        write_changes(tx, patch, [(event.model, version)], draft_rows={})
        tx.save(patch)
    return Registered(
        req.model,
        version,
        payload["composite_id"],
        str(content),
        storage,
        event.seq,
        str(req.artefact) if req.artefact else None,
    )


# --- seal ----------------------------------------------------------------------------


@dataclass
class _Draft:
    row: int
    index: int
    request: RegistrationRequest
    located: Path
    content: ContentHash | None = None
    version: int = 0
    metric_rows: list[int] = field(default_factory=list)


def seal(
    ws: Workspace, key: SigningKey, *, role: str | None = None
) -> list[Registered | MetricsAdded]:
    """Seal every draft row typed into Models, with its Metrics rows, and every Metrics
    row typed for an already sealed version as a signed addendum (``metrics`` event) that
    adds metrics and never changes a sealed one. Every problem in every draft is
    collected and reported by cell; then nothing at all is written."""
    identity = acting_identity(ws, key, ws.settings.register_roles, "seal", role)
    with Transaction(ws) as tx:
        drafts, addenda, problems = _read_drafts(ws, tx)
        if problems:
            raise DraftProblems(problems)
        if not drafts and not addenda:
            return []
        draft_rows: dict[tuple[str, int], tuple[int, list[int]]] = {}
        done: list[Registered | MetricsAdded] = []
        for (model, version), rows in addenda.items():
            state = tx.registry.get(model, version)
            assert state is not None
            added = {
                "content_hash": state.content_hash,
                "metrics": [m.to_json() for m, _row, _cell in rows],
            }
            event = tx.sign(identity, "metrics", model, version, added)
            names = tuple(m.metric + (f" [{m.slice}]" if m.slice else "") for m, _r, _c in rows)
            done.append(MetricsAdded(model, version, state.composite_id, names, event.seq))
        for d in drafts:
            assert d.content is not None
            size, files = _size(d.located)
            storage = (
                ws.display_path(d.located)
                if not Path(d.request.storage or "").is_absolute()
                else str(d.located)
            )
            trained_on = d.request.trained_on or datetime.now(UTC).date().isoformat()
            payload = registration_payload(
                d.request,
                version=d.version,
                content=d.content,
                storage=storage,
                size=size,
                files=files,
                trained_on=trained_on,
            )
            event = tx.sign(identity, "register", d.request.model, d.version, payload)
            draft_rows[(d.request.model, d.version)] = (d.row, d.metric_rows)
            done.append(
                Registered(
                    d.request.model,
                    d.version,
                    payload["composite_id"],
                    str(d.content),
                    storage,
                    event.seq,
                )
            )
        # The addendum rows are sealed now: the views may name them as not (yet) sealed.
        patch = tx.patch(sealing={cell for rows in addenda.values() for _m, _r, cell in rows})
        typed = {key: [row for _m, row, _c in rows] for key, rows in addenda.items()}
        write_changes(tx, patch, [*draft_rows, *addenda], draft_rows, typed)
        tx.save(patch)
    return done


# A version's Metrics rows to seal as an addendum: (metric, row number, its Metric cell).
Addenda = dict[tuple[str, int], list[tuple[Metric, int, str]]]


def _read_drafts(ws: Workspace, tx: Transaction) -> tuple[list[_Draft], Addenda, list[str]]:
    models = tx.data[MODELS.name]
    metrics = tx.data[METRICS.name]
    sealed_hashes = {v.seal for v in tx.registry.versions.values()}
    problems: list[str] = []
    drafts: list[_Draft] = []
    next_version: dict[str, int] = {}
    refused: set[str] = set()  # models with a draft reported by cell: no follow-on problem
    for i, _row in models.indexed():
        seal_value = models.value(i, "seal")
        if seal_value not in (None, ""):
            if str(seal_value).strip() not in sealed_hashes:
                problems.append(
                    f"{models.ref(i, 'seal')}: seal {str(seal_value)[:16]}... "
                    "is not in the ledger (run `regbook verify`)"
                )
            continue
        before = len(problems)
        draft = _read_draft(ws, tx, i, problems)
        typed_n = None
        try:  # checked with the other cells, so every problem of the row is reported
            typed_n = normalize("int", models.value(i, "version"))
        except BadValue as err:
            problems.append(f"{models.ref(i, 'version')}: {err}")
        if draft is None or len(problems) > before:
            named = models.value(i, "model")
            if isinstance(named, str) and named.strip():
                refused.add(named.strip())
            continue
        model = draft.request.model
        version = next_version.get(model, tx.registry.next_version(model))
        if typed_n is not None:
            if typed_n != version:
                problems.append(
                    f"{models.ref(i, 'version')}: version {typed_n} cannot be "
                    f"used; the next version of {model} is {version} (leave the "
                    "cell empty)"
                )
                refused.add(model)
                continue
        draft.version = version
        next_version[model] = version + 1
        drafts.append(draft)
    # Metrics rows of drafts: same model, version empty or the version being sealed.
    sealed_keys = set(tx.registry.versions)
    by_model: dict[str, list[_Draft]] = {}
    for d in drafts:
        by_model.setdefault(d.request.model, []).append(d)
    extra: dict[int, list[tuple[Metric, str]]] = {}  # a draft's Metrics rows, with cells
    addenda: Addenda = {}
    shown: set[tuple[str, int, str, str]] = set()  # sealed metrics whose row was seen
    for i, row in metrics.indexed():
        where = metrics.ref(i, "model")
        model = row[METRICS.index("model")]
        try:
            version = normalize("int", row[METRICS.index("version")])
        except BadValue as err:
            problems.append(f"{metrics.ref(i, 'version')}: {err}")
            continue
        if isinstance(model, str) and (model.strip(), version) in sealed_keys:
            sealed_key = (model.strip(), version if isinstance(version, int) else 0)
            _addendum_row(tx, i, sealed_key, shown, addenda, problems)
            continue
        formula = next((c.key for c in METRICS.columns if metrics.has_formula(i, c.key)), None)
        if formula is not None:
            problems.append(f"{metrics.ref(i, formula)}: a formula; type the value itself")
            continue
        model = model.strip() if isinstance(model, str) else model
        candidates = by_model.get(model, []) if isinstance(model, str) else []
        if version is None:
            if len(candidates) > 1:
                problems.append(
                    f"{where}: {model} has {len(candidates)} draft rows; give "
                    "this metric's Version to say which"
                )
                continue
            target = candidates[0] if candidates else None
        else:
            target = next((d for d in candidates if d.version == version), None)
        if target is None and model in refused:
            continue  # its draft's own problem is reported; this row would follow from it
        if target is None:
            problems.append(
                f"{where}: metric row for {model}"
                f"{'@' + str(version) if version else ''} matches no draft row "
                "and no sealed version"
            )
            continue
        try:
            metric = metric_of_row(metrics, i)
        except InputError as err:
            problems.append(str(err))
            continue
        extra.setdefault(id(target), []).append((metric, metrics.ref(i, "value")))
        target.metric_rows.append(metrics.row_numbers[i])
    for d in drafts:
        # Where each metric was given first: the Models row's own column, else a
        # Metrics row (the draft's metrics come from its AUC-ROC and DPR cells).
        merged = {(m.metric, m.slice): m for m in d.request.metrics}
        given = {
            key: MODELS.ref(KNOWN_METRICS[key[0]][0] or "", d.row)
            for key in merged
            if key[0] in KNOWN_METRICS and KNOWN_METRICS[key[0]][0]
        }
        for m, cell in extra.get(id(d), []):
            key = (m.metric, m.slice)
            first = given.get(key, "another Metrics row")
            if key in merged and merged[key].value != m.value:
                problems.append(
                    f"{cell}: {m.metric}{' [' + m.slice + ']' if m.slice else ''} is "
                    f"{m.value} here but {merged[key].value} in {first}; keep one"
                )
            elif key in merged and m.metric not in KNOWN_METRICS:
                problems.append(f"{cell}: {m.metric} is given twice for {d.request.model}")
            merged[key] = m
            given.setdefault(key, cell)
        d.request = _replace_metrics(d.request, tuple(merged.values()))
    # Hash last, and only when everything else is right: it is the slow part.
    if not problems:
        for d in drafts:
            try:
                d.content = hash_path(d.located)
            except InputError as err:
                problems.append(f"{MODELS.ref('storage', d.row)}: {err}")
    return drafts, addenda, problems


def _addendum_row(
    tx: Transaction,
    i: int,
    key: tuple[str, int],
    shown: set[tuple[str, int, str, str]],
    addenda: Addenda,
    problems: list[str],
) -> None:
    """A Metrics row of a sealed version: the row showing a sealed metric, or a metric
    added since (sealed as an addendum). A row that would change a sealed value is
    refused by its cell: a sealed metric is never changed."""
    metrics = tx.data[METRICS.name]
    state = tx.registry.get(*key)
    assert state is not None
    label = f"{key[0]}@{key[1]}"
    name = normalize_text(metrics.value(i, "metric"))
    slice_ = normalize_text(metrics.value(i, "slice"))
    shown_as = f"{name}{' [' + slice_ + ']' if slice_ else ''}"
    sealed = {(m["metric"], m.get("slice", "")): m for m in state.metrics}.get((name, slice_))
    if sealed is not None:
        by = state.added_by(name, slice_)
        if (*key, name, slice_) in shown:
            problems.append(
                f"{metrics.ref(i, 'metric')}: {shown_as} of {label} is sealed already and "
                "shown in another row; delete this one"
            )
            return
        shown.add((*key, name, slice_))
        for column, want in (("value", sealed["value"]), ("kind", sealed.get("kind", ""))):
            kind = METRICS.column(column).kind
            if metrics.has_formula(i, column) or not same(kind, want, metrics.value(i, column)):
                problems.append(
                    f"{metrics.ref(i, column)}: {shown_as} of {label} was sealed with {column} "
                    f"{want} (ledger event {by.seq}); a sealed metric is never changed: type "
                    f"{want} back (a new value needs a new version)"
                )
        return
    formula = next((c.key for c in METRICS.columns if metrics.has_formula(i, c.key)), None)
    if formula is not None:
        problems.append(f"{metrics.ref(i, formula)}: a formula; type the value itself")
        return
    try:
        metric = metric_of_row(metrics, i)
    except InputError as err:
        problems.append(str(err))
        return
    rows = addenda.setdefault(key, [])
    if any((m.metric, m.slice) == (metric.metric, metric.slice) for m, _r, _c in rows):
        problems.append(f"{metrics.ref(i, 'metric')}: {shown_as} is given twice for {label}")
        return
    rows.append((metric, metrics.row_numbers[i], metrics.ref(i, "metric")))


def _replace_metrics(req: RegistrationRequest, metrics: tuple[Metric, ...]) -> RegistrationRequest:
    from dataclasses import replace

    return replace(req, metrics=metrics)


def _text(value: CellValue) -> str:
    out = normalize("text", value)
    return out if isinstance(out, str) else ""


def _read_draft(ws: Workspace, tx: Transaction, i: int, problems: list[str]) -> _Draft | None:
    models = tx.data[MODELS.name]
    row_number = models.row_numbers[i]

    def read(key: str, kind: str) -> str | int | float | None:
        if models.has_formula(i, key):
            problems.append(f"{models.ref(i, key)}: a formula; type the value itself")
            return None
        try:
            return normalize(kind, models.value(i, key))
        except BadValue as err:
            problems.append(f"{models.ref(i, key)}: {err}")
            return None

    def cell(key: str, kind: str = "text") -> str | None:
        """A text or a date cell: ``normalize`` gives both as text."""
        value = read(key, kind)
        return value if isinstance(value, str) else None

    def missing(key: str) -> bool:
        """Empty, not a formula (that problem is reported already)."""
        return not models.has_formula(i, key)

    model = cell("model")
    if model is None:
        if missing("model"):
            problems.append(f"{models.ref(i, 'model')}: the row has content but no model name")
        return None
    try:
        check_model_name(model, models.ref(i, "model"))
    except InputError as err:
        problems.append(str(err))
    storage = cell("storage")
    located = None
    if storage is None and missing("storage"):
        problems.append(
            f"{models.ref(i, 'storage')}: storage location is required (the "
            "path of the artefact to register)"
        )
    elif storage is not None:
        try:
            located = ws.resolve_storage(storage, models.ref(i, "storage"))
            if not located.exists() and not located.is_symlink():
                problems.append(f"{models.ref(i, 'storage')}: {storage!r}: no such file or folder")
                located = None
        except InputError as err:
            problems.append(str(err))
    values: dict[str, str] = {}
    for key, check, label in (
        ("data_version", check_data_version, "training data version"),
        ("code_commit", check_code_commit, "code commit"),
    ):
        raw = cell(key)
        if raw is None:
            if missing(key):
                problems.append(f"{models.ref(i, key)}: {label} is required")
            continue
        try:
            values[key] = check(raw, models.ref(i, key))
        except InputError as err:
            problems.append(str(err))
    run = cell("pipeline_run")
    if run is None and missing("pipeline_run"):
        problems.append(f"{models.ref(i, 'pipeline_run')}: pipeline execution ID is required")
    trained_on = cell("trained_on", "date")
    if trained_on is not None:
        try:
            excel_date(trained_on)
        except BadValue as err:
            problems.append(f"{models.ref(i, 'trained_on')}: {err}")
    params: dict[str, str] = {}
    raw_params = cell("params")
    if raw_params:
        try:
            params = parse_params(raw_params)
        except InputError as err:
            problems.append(f"{models.ref(i, 'params')}: {err}")
    metrics = []
    for name, (col, _kind) in KNOWN_METRICS.items():
        if col is None:
            continue
        value = read(col, "float")
        if value is not None:
            metrics.append(Metric.make(name, value, None, "", models.ref(i, col)))
    for key in ("data_repo", "code_repo"):
        values[key] = cell(key) or ""
    if (
        located is None
        or "data_version" not in values
        or "code_commit" not in values
        or (run is None)
    ):
        return None
    request = RegistrationRequest(
        model=model, data_version=values["data_version"], code_commit=values["code_commit"],
        pipeline_run=run, storage=storage, data_repo=values["data_repo"],
        code_repo=values["code_repo"], trained_on=trained_on, params=params,
        metrics=tuple(metrics),
    )  # fmt: skip
    return _Draft(row_number, i, request, located)


def parse_params(text: str) -> dict[str, str]:
    """``lr=0.1; depth=6`` or a JSON object; values are kept as the text typed."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"hyperparameters are not valid JSON: {err.msg}") from None
        if not isinstance(data, dict):
            raise InputError("hyperparameters JSON must be an object")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    out: dict[str, str] = {}
    for part in text.replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise InputError(f"hyperparameter {part!r} is not NAME=VALUE")
        if name.strip() in out:
            raise InputError(f"hyperparameter {name.strip()!r} is given twice")
        out[name.strip()] = value.strip()
    return out


def metric_of_row(metrics: Table, i: int) -> Metric:
    """The metric the ``i``-th row of the Metrics sheet holds; InputError naming its
    cell if it cannot be one."""
    row = metrics.rows[i]
    return Metric.make(
        row[METRICS.index("metric")],
        row[METRICS.index("value")],
        row[METRICS.index("kind")],
        _text(row[METRICS.index("slice")]),
        metrics.ref(i, "metric"),
        {"value": metrics.ref(i, "value"), "kind": metrics.ref(i, "kind")},
    )
