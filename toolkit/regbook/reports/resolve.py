"""``regbook resolve``: the version a stage holds now, the counterpart of MLflow's
``models:/credit-risk@production``, so a deploy script never names a version number.

    snapshot = open_registry(ws, sheets=LEDGER_ONLY)
    found = resolve_stage(snapshot, "credit-risk@Production")
    found.composite_id, found.artefact, found.content_hash

It answers from the verified snapshot only: when the ledger, its signatures, its
workflow or the keyring have any finding, it answers nothing (``Resolved.findings``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError, cut
from regbook.core.findings import Finding
from regbook.core.ids import check_model_name
from regbook.registry.snapshot import Snapshot

# The stages a deployment runs from. None and Archived name no deployable version.
RESOLVABLE = ("Production", "Staging")
_STAGE_REF = re.compile(r"(?P<name>[^@\s]+)@(?P<stage>[A-Za-z]+)")


@dataclass(frozen=True)
class StageRef:
    """``MODEL@STAGE``: a model and a stage (Production or Staging, any case)."""

    model: str
    stage: str

    def __str__(self) -> str:
        return f"{self.model}@{self.stage}"

    @classmethod
    def parse(cls, text: str) -> StageRef:
        match = _STAGE_REF.fullmatch(text.strip())
        if not match:
            raise InputError(
                f"{cut(text)!r} is not MODEL@STAGE (e.g. credit-risk@Production or "
                "credit-risk@Staging); MODEL@VERSION names a version already"
            )
        stages = {s.lower(): s for s in RESOLVABLE}
        stage = stages.get(match["stage"].lower())
        if stage is None:
            raise InputError(
                f"{cut(text)!r}: resolve names the version in Production or Staging, "
                f"not {match['stage']!r}"
            )
        return cls(check_model_name(match["name"], repr(text.strip())), stage)


@dataclass
class Resolved:
    ref: StageRef
    findings: list[Finding] = field(default_factory=list)
    version: int | None = None
    composite_id: str = ""
    content_hash: str = ""
    storage: str = ""
    artefact: Path | None = None
    also_in_stage: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ref": str(self.ref), "ok": self.ok}
        if self.ok:
            data |= {
                "model": self.ref.model,
                "version": self.version,
                "stage": self.ref.stage,
                "composite_id": self.composite_id,
                "content_hash": self.content_hash,
                "storage": self.storage,
                "artefact": str(self.artefact),
                "also_in_stage": self.also_in_stage,
            }
        data["findings"] = [f.to_json() for f in self.findings]
        return data


def resolve_stage(snapshot: Snapshot, text: str) -> Resolved:
    """The version of ``text`` (``MODEL@STAGE``) the ledger puts in that stage now.

    Several versions may be in Staging at once: the one moved there last is the answer,
    and the others are listed in ``also_in_stage``. An empty stage is bad input (exit 2)
    that says which stage the model's versions are in."""
    ref = StageRef.parse(text)
    problems = [f for f in snapshot.findings if f.is_problem]
    if problems or not snapshot.signatures_checked:
        return Resolved(ref, findings=problems)
    ws = snapshot.workspace
    versions = [s for (m, _), s in snapshot.registry.versions.items() if m == ref.model]
    if not versions:
        raise InputError(f"{ref}: no model {ref.model!r} in the ledger (`regbook list` names them)")
    in_stage = [s for s in versions if s.stage == ref.stage]
    if not in_stage:
        where = ", ".join(
            f"{s.model}@{s.version} {s.stage}" for s in sorted(versions, key=lambda s: s.version)
        )
        raise InputError(f"{ref}: no version of {ref.model} is in {ref.stage} ({where})")
    in_stage.sort(key=lambda s: (s.stage_event.seq if s.stage_event else 0, s.version))
    state = in_stage[-1]
    where = f"{state.model}@{state.version}"
    return Resolved(
        ref,
        version=state.version,
        composite_id=state.composite_id,
        content_hash=state.content_hash,
        storage=state.storage,
        artefact=ws.resolve_storage(state.storage, where),
        also_in_stage=[s.version for s in in_stage[:-1]],
    )
