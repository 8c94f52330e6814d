"""``regbook mlflow check``: hold an MLflow registry to the verified ledger.

    report = check(open_registry(ws, sheets=CARD_SHEETS), "http://mlflow:5000")
    report.findings       # RB951 alias moved by hand, RB952 tag changed, ...
    report.ok             # False when any finding is an error or warning

MLflow lets anyone with EDIT permission move an alias, rewrite a tag or delete a
version, and keeps no history of it. The ledger does: each difference is a finding
(RB951-RB959, docs/findings.md). A difference that is only what the ledger gained since
the last push (the record shows the old value was pushed) is RB958, "push needed".
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.ledger.state import VersionState
from regbook.mirror.mapping import (
    COMPOSITE_TAG,
    DEFAULT_ALIASES,
    PREFIX,
    REGISTRY_TAG,
    MirrorRecord,
    alias_targets,
    version_tags,
)
from regbook.mirror.push import record_key, refuse_unverified, selected
from regbook.mirror.remote import Remote, connect
from regbook.registry.snapshot import Snapshot
from regbook.storage.hashing import hash_path


@dataclass
class CheckReport:
    uri: str
    findings: list[Finding] = field(default_factory=list)
    versions: int = 0
    artefacts_checked: int = 0
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.is_problem for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tracking_uri": self.uri,
            "versions": self.versions,
            "artefacts_checked": self.artefacts_checked,
            "requests": self.requests,
            "findings": [f.to_json() for f in self.findings],
        }


def check(
    snapshot: Snapshot,
    uri: str,
    *,
    only: ModelRef | None = None,
    artefacts: bool = True,
    aliases: dict[str, str] | None = None,
) -> CheckReport:
    """Every way the registry at ``uri`` differs from the ledger, for the sealed versions
    (``only`` one model or version); with ``artefacts`` each mirrored artefact is
    downloaded and hashed."""
    refuse_unverified(snapshot, "checked")
    states = selected(snapshot, only)
    record = MirrorRecord.load(snapshot.workspace, record_key(uri))
    # The alias map is the caller's (its command line), never the record's word: a
    # record edited to rename `production` must not hide a moved alias.
    record.aliases = dict(aliases) if aliases is not None else dict(DEFAULT_ALIASES)
    report = CheckReport(record.uri, versions=len(states))
    with connect(uri) as remote:
        by_model: dict[str, list[VersionState]] = {}
        for s in states:
            by_model.setdefault(s.model, []).append(s)
        for model, versions in by_model.items():
            _check_model(snapshot, remote, model, versions, record, report, artefacts, only)
        report.requests = remote.counts.to_json()
    return report


def _where(model: str, mv: Any | None = None, alias: str | None = None) -> str:
    if alias is not None:
        return f"mlflow:{model}@{alias}"
    return f"mlflow:{model}/{mv.version}" if mv is not None else f"mlflow:{model}"


def _check_model(
    snapshot: Snapshot,
    remote: Remote,
    model: str,
    versions: list[VersionState],
    record: MirrorRecord,
    report: CheckReport,
    artefacts: bool,
    only: ModelRef | None,
) -> None:
    registry_id = snapshot.registry_id
    registered = remote.registered_model(model)
    everything = remote.versions(model) if registered is not None else []
    by_number = {str(mv.version): mv for mv in everything}
    by_id: dict[str, Any] = {}
    for mv in everything:
        tags = mv.tags or {}
        cid = tags.get(COMPOSITE_TAG)
        if cid is not None and tags.get(REGISTRY_TAG) == registry_id:
            by_id.setdefault(cid, mv)
    matched: dict[str, Any] = {}  # composite ID -> MLflow version
    out = report.findings
    for s in versions:
        pushed = record.versions.get(s.composite_id)
        mv = by_id.get(s.composite_id)
        if mv is None and pushed is not None:
            mv = by_number.get(pushed.mlflow_version)
            if mv is None:
                out.append(Finding.make(
                    "RB953", f"mlflow:{model}/{pushed.mlflow_version}",
                    f"{s.composite_id} was pushed as version {pushed.mlflow_version}, "
                    "which MLflow no longer has", s.model, s.version))  # fmt: skip
                continue
        if mv is None:
            out.append(Finding.make(
                "RB957", _where(model), f"{s.composite_id} is sealed but not in MLflow: "
                "run `regbook mlflow push`", s.model, s.version))  # fmt: skip
            continue
        matched[s.composite_id] = mv
        if pushed is not None and (
            str(mv.source) != pushed.source or str(mv.version) != pushed.mlflow_version
        ):
            out.append(Finding.make(
                "RB954", _where(model, mv),
                f"{s.composite_id} was pushed as version {pushed.mlflow_version} from "
                f"{pushed.source}; MLflow now has version {mv.version} from {mv.source}",
                s.model, s.version))  # fmt: skip
        _check_tags(snapshot, s, mv, pushed.tags if pushed else {}, out)
        if artefacts:
            _check_artefact(remote, s, mv, out)
            report.artefacts_checked += 1
    known = {id(mv) for mv in matched.values()}
    if only is None or only.version is None:
        for mv in everything:
            tags = mv.tags or {}
            if id(mv) not in known and any(k.startswith(PREFIX) for k in tags):
                out.append(Finding.make(
                    "RB956", _where(model, mv),
                    f"version {mv.version} carries regbook tags (composite ID "
                    f"{tags.get(COMPOSITE_TAG, 'none')!r}) but the ledger has no such "
                    "mirrored version", model))  # fmt: skip
    _check_aliases(snapshot, model, matched, registered, record, out)


def _check_tags(
    snapshot: Snapshot, s: VersionState, mv: Any, pushed: dict[str, str], out: list[Finding]
) -> None:
    want = version_tags(snapshot, s)
    have = {k: v for k, v in (mv.tags or {}).items() if k.startswith(PREFIX)}
    where = _where(s.model, mv)
    for key in sorted(set(want) | set(have)):
        now, should = have.get(key), want.get(key)
        if now == should:
            continue
        if now == pushed.get(key):  # what was pushed: the ledger moved on since
            out.append(Finding.make(
                "RB958", where, f"tag {key} is {now!r}, the ledger now says {should!r}: "
                "run `regbook mlflow push`", s.model, s.version))  # fmt: skip
            continue
        said = "removed" if now is None else f"changed to {now!r}"
        out.append(Finding.make(
            "RB952", where, f"tag {key} was {said} in MLflow; the ledger says "
            f"{should!r}", s.model, s.version))  # fmt: skip


def _check_aliases(
    snapshot: Snapshot,
    model: str,
    matched: dict[str, Any],
    registered: Any | None,
    record: MirrorRecord,
    out: list[Finding],
) -> None:
    states = [s for (m, _v), s in snapshot.registry.versions.items() if m == model]
    mirrored = [s for s in states if s.composite_id in matched]
    targets = alias_targets(mirrored, record.aliases)
    have = dict(getattr(registered, "aliases", None) or {}) if registered is not None else {}
    pushed = record.pushed_aliases.get(model, {})
    stage_of = {alias: stage for stage, alias in record.aliases.items()}
    by_version = {str(mv.version): cid for cid, mv in matched.items()}
    for alias, stage in stage_of.items():
        want = targets.get(alias)
        should = str(matched[want.composite_id].version) if want is not None else None
        now = have.get(alias)
        if now == should:
            continue
        where = _where(model, alias=alias)
        if now == pushed.get(alias):
            out.append(Finding.make(
                "RB958", where, f"alias {alias} points at {now or 'nothing'}; the ledger now "
                f"has {should or 'no version'} in {stage}: run `regbook mlflow push`",
                model))  # fmt: skip
            continue
        held = by_version.get(now or "", f"a version regbook did not push ({now})")
        out.append(Finding.make(
            "RB951", where,
            f"alias {alias} points at version {now} ({held}), which the ledger does not have "
            f"in {stage}" if now is not None else
            f"alias {alias} was removed; the ledger has version {should} in {stage}",
            model))  # fmt: skip


def _check_artefact(remote: Remote, s: VersionState, mv: Any, out: list[Finding]) -> None:
    where = _where(s.model, mv)
    with tempfile.TemporaryDirectory(prefix="regbook-mlflow-") as tmp:
        try:
            got = remote.download(str(mv.source), Path(tmp))
            path = got
            if s.content_hash.startswith("sha256:") and got.is_dir():
                files = [p for p in got.rglob("*") if not p.is_dir()]
                if len(files) != 1:
                    raise InputError(f"{len(files)} files where the sealed artefact is one file")
                path = files[0]
            content = str(hash_path(path))
        except InputError as err:
            out.append(Finding.make(
                "RB959", where, f"the artefact of {s.composite_id} cannot be checked: {err}",
                s.model, s.version))  # fmt: skip
            return
    if content != s.content_hash:
        out.append(Finding.make(
            "RB955", where, f"the artefact in MLflow's store hashes to {content}, not the "
            f"sealed {s.content_hash}", s.model, s.version))  # fmt: skip
