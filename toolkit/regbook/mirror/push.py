"""``regbook mlflow push``: mirror verified sealed versions into an MLflow registry.

    pushed = push(open_registry(ws, sheets=CARD_SHEETS), "http://mlflow:5000")
    pushed.created          # [{"composite_id": ..., "mlflow_version": "3"}, ...]
    pushed.requests         # {"read": 4, "write": 0} on a push with nothing new

Each sealed version becomes a version of the registered model of its name: a run in the
experiment ``regbook/<registry ID>`` holds its artefact, its metrics and parameters, and
the version carries the regbook tags (``mapping.version_tags``), the model card as its
description, and the stage aliases. Versions are found again by their composite ID tag,
so a second push writes only what the ledger changed since.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError, VerificationFailed
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.ledger.state import VersionState
from regbook.mirror.mapping import (
    COMPOSITE_TAG,
    DEFAULT_ALIASES,
    PREFIX,
    REGISTRY_TAG,
    Mirrored,
    MirrorRecord,
    alias_targets,
    description,
    experiment_name,
    run_metrics,
    version_tags,
)
from regbook.mirror.remote import Remote, connect, public_uri
from regbook.registry.snapshot import Snapshot
from regbook.storage.hashing import hash_path

ARTEFACT_PATH = "model"  # where a run holds the artefact
RUN_THREADS = 4  # runs made at once: uploads and requests wait on the server, not the CPU


@dataclass
class Pushed:
    uri: str
    created: list[dict[str, str]] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return self.requests.get("write", 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.uri,
            "created": self.created,
            "updated": self.updated,
            "aliases": self.aliases,
            "requests": self.requests,
        }


def ledger_problems(snapshot: Snapshot) -> list[Finding]:
    """What keeps the ledger from verifying: its rows, chain, signatures, anchors and
    workflow rules (the views are not what the mirror reads). A regbook.toml that differs
    from the signed policy (RB117) is not one: the file's word judges nothing, as in
    ``regbook list``."""
    if not snapshot.signatures_checked:
        raise InputError("the mirror needs a snapshot whose signatures were checked")
    found = snapshot.ledger_findings + snapshot.rule_findings
    return [f for f in found if f.is_problem and f.code != "RB117"]


def refuse_unverified(snapshot: Snapshot, doing: str) -> None:
    problems = ledger_problems(snapshot)
    if problems:
        raise VerificationFailed(
            f"the ledger does not verify ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}); nothing was {doing}. "
            "`regbook verify` says why",
            problems,
        )


def selected(snapshot: Snapshot, only: ModelRef | None) -> list[VersionState]:
    states = sorted(snapshot.registry.versions.values(), key=lambda s: (s.model, s.version))
    if only is None:
        return states
    chosen = [
        s
        for s in states
        if s.model == only.name and (only.version is None or s.version == only.version)
    ]
    if not chosen:
        raise InputError(f"{only}: no such sealed version in the ledger")
    return chosen


def artefact_path(ws: Workspace, state: VersionState) -> Path:
    """Where the sealed artefact is now: its storage, or the payload of its bag (a file
    artefact is the one file there)."""
    path = ws.resolve_storage(state.storage, f"{state.model}@{state.version}")
    if path.is_dir() and (path / "bagit.txt").is_file() and (path / "data").is_dir():
        path = path / "data"
        if state.content_hash.startswith("sha256:"):
            files = [p for p in path.iterdir()]
            if len(files) == 1:
                path = files[0]
    return path


def remote_versions(
    remote: Remote, model: str, registry_id: str
) -> tuple[dict[str, Any], list[Any], Any | None]:
    """The registered model ``model`` on the server: its versions carrying this registry's
    composite ID tags (by composite ID), all its versions, and the model itself."""
    registered = remote.registered_model(model)
    if registered is None:
        return {}, [], None
    everything = remote.versions(model)
    ours: dict[str, Any] = {}
    for mv in everything:
        tags = mv.tags or {}
        if tags.get(REGISTRY_TAG) == registry_id and COMPOSITE_TAG in tags:
            ours.setdefault(tags[COMPOSITE_TAG], mv)
    return ours, everything, registered


def push(
    snapshot: Snapshot,
    uri: str,
    *,
    only: ModelRef | None = None,
    aliases: dict[str, str] | None = None,
) -> Pushed:
    """Mirror the sealed versions (``only`` one model or version) into the MLflow registry
    at ``uri``; refuses a ledger that does not verify and an artefact that is not the
    sealed one, before writing anything."""
    refuse_unverified(snapshot, "pushed")
    ws = snapshot.workspace
    states = selected(snapshot, only)
    record = MirrorRecord.load(ws, record_key(uri))
    # The alias map is the caller's (its command line), never the record's word: a
    # record edited to rename `production` must not hide a moved alias.
    record.aliases = dict(aliases) if aliases is not None else dict(DEFAULT_ALIASES)
    record.registry = snapshot.registry_id
    result = Pushed(record.uri)
    with connect(uri) as remote:
        try:
            _push(snapshot, remote, states, record, result)
        finally:
            result.requests = remote.counts.to_json()
            record.save(ws)
    return result


def record_key(uri: str) -> str:
    return public_uri(uri).rstrip("/")


def _push(
    snapshot: Snapshot,
    remote: Remote,
    states: list[VersionState],
    record: MirrorRecord,
    result: Pushed,
) -> None:
    ws = snapshot.workspace
    registry_id = snapshot.registry_id
    by_model: dict[str, list[VersionState]] = {}
    for s in states:
        by_model.setdefault(s.model, []).append(s)
    found: dict[str, tuple[dict[str, Any], Any | None]] = {}
    new: list[tuple[VersionState, Path]] = []
    for model, versions in by_model.items():
        ours, _all, registered = remote_versions(remote, model, registry_id)
        found[model] = (ours, registered)
        for s in versions:
            if s.composite_id not in ours:
                new.append((s, artefact_path(ws, s)))
    # Every new artefact must be the sealed one before anything is written.
    for s, path in new:
        got = hash_path(path)
        if str(got) != s.content_hash:
            raise InputError(
                f"{s.model}@{s.version}: the artefact at {ws.display_path(path)} hashes to "
                f"{got}, not the sealed {s.content_hash}; nothing was pushed (`regbook verify`)"
            )
    experiment = remote.experiment_id(experiment_name(registry_id), create=True) if new else None
    # The runs (artefact uploads included) on a few threads; each model's versions in
    # order as their runs finish, so that MLflow numbers them as regbook does, the
    # models side by side.
    with (
        ThreadPoolExecutor(max_workers=RUN_THREADS) as runs_pool,
        ThreadPoolExecutor(max_workers=RUN_THREADS) as models_pool,
    ):
        runs: dict[str, Future[tuple[str, str]]] = {}
        if new:
            assert experiment is not None
            for s, path in new:
                runs[s.composite_id] = runs_pool.submit(_make_run, remote, experiment, s, path)
        streams = [
            models_pool.submit(
                _push_model, snapshot, remote, model, versions, found[model], runs, record
            )
            for model, versions in by_model.items()
        ]
        for stream in streams:
            created, updated, moved = stream.result()
            result.created += created
            result.updated += updated
            result.aliases += moved


def _push_model(
    snapshot: Snapshot,
    remote: Remote,
    model: str,
    versions: list[VersionState],
    found: tuple[dict[str, Any], Any | None],
    runs: dict[str, Future[tuple[str, str]]],
    record: MirrorRecord,
) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """One model's versions, in order (each new one once its run is made), then its
    stage aliases: what was created, updated and moved."""
    ours, registered = found
    created: list[dict[str, str]] = []
    updated: list[str] = []
    if registered is None:
        remote.call("create_registered_model", model, tags={REGISTRY_TAG: snapshot.registry_id})
    for s in versions:
        tags = version_tags(snapshot, s)
        text = description(snapshot, s)
        mv = ours.get(s.composite_id)
        if mv is None:
            run_id, source = runs[s.composite_id].result()
            mv = remote.call(
                "create_model_version", s.model, source, run_id=run_id, tags=tags,
                description=text, await_creation_for=0,
            )  # fmt: skip
            ours[s.composite_id] = mv
            created.append({"composite_id": s.composite_id, "mlflow_version": str(mv.version)})
        elif _update(remote, mv, tags, text):
            updated.append(s.composite_id)
        record.versions[s.composite_id] = Mirrored(
            model, str(mv.version), str(mv.run_id or ""), str(mv.source), tags
        )
    return created, updated, _move_aliases(snapshot, remote, model, ours, registered, record)


def _make_run(remote: Remote, experiment: str, s: VersionState, path: Path) -> tuple[str, str]:
    """A finished run holding the version's artefact, metrics and params; its ID and
    the artefact's URI (the version's source)."""
    from mlflow.entities import Metric, Param

    p = s.payload
    run_tags = {
        "mlflow.source.git.commit": p["code_commit"],
        COMPOSITE_TAG: s.composite_id,
    }
    if p.get("code_repo"):
        run_tags["mlflow.source.git.repoURL"] = p["code_repo"]
    run = remote.call("create_run", experiment, run_name=s.composite_id, tags=run_tags)
    run_id = run.info.run_id
    at = int(_epoch_ms(s.register.at))
    metrics = [Metric(k, v, at, 0) for k, v in run_metrics(s).items()]
    params = [Param(k[:250], str(v)[:6000]) for k, v in p.get("params", {}).items()]
    params += [Param(k, str(p[k])) for k in ("data_version", "pipeline_run") if p.get(k)]
    if metrics or params:
        remote.call("log_batch", run_id, metrics=metrics, params=params)
    # The run's artifact store is the one its answer names: no request to look it up.
    remote.upload(run.info.artifact_uri, path, ARTEFACT_PATH)
    remote.call("set_terminated", run_id)
    return run_id, f"{run.info.artifact_uri.rstrip('/')}/{ARTEFACT_PATH}"


def _update(remote: Remote, mv: Any, tags: dict[str, str], text: str) -> bool:
    """Bring an existing version's regbook tags and description to the ledger's."""
    changed = False
    have = mv.tags or {}
    for key, value in tags.items():
        if have.get(key) != value:
            remote.call("set_model_version_tag", mv.name, mv.version, key, value)
            changed = True
    for key in have:
        if key.startswith(PREFIX) and key not in tags:
            remote.call("delete_model_version_tag", mv.name, mv.version, key)
            changed = True
    if (mv.description or "") != text:
        remote.call("update_model_version", mv.name, mv.version, description=text)
        changed = True
    return changed


def _move_aliases(
    snapshot: Snapshot,
    remote: Remote,
    model: str,
    ours: dict[str, Any],
    registered: Any | None,
    record: MirrorRecord,
) -> list[str]:
    """Point each stage alias at the version in that stage; remove an alias whose stage
    holds no mirrored version (Archived removes them)."""
    states = [s for (m, _v), s in snapshot.registry.versions.items() if m == model]
    mirrored = [s for s in states if s.composite_id in ours]
    wanted = {
        alias: str(ours[s.composite_id].version)
        for alias, s in alias_targets(mirrored, record.aliases).items()
    }
    have = dict(getattr(registered, "aliases", None) or {}) if registered is not None else {}
    moved = []
    for alias in record.aliases.values():
        target = wanted.get(alias)
        if target is not None and have.get(alias) != target:
            remote.call("set_registered_model_alias", model, alias, target)
            moved.append(f"{model}@{alias} -> {target}")
        elif target is None and alias in have:
            remote.call("delete_registered_model_alias", model, alias)
            moved.append(f"{model}@{alias} removed")
    record.pushed_aliases[model] = wanted
    return moved


def _epoch_ms(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000
