"""What a sealed version looks like in MLflow, and the record of what was pushed.

    tags = version_tags(snapshot, state)     # {"regbook.composite_id": "...", ...}
    targets = alias_targets(states, DEFAULT_ALIASES)   # {"production": state, ...}
    record = MirrorRecord.load(ws, uri)      # mlflow-mirror.json, this server's part

The record keeps, per tracking server, each mirrored version's MLflow version number,
run and source, and the tags and aliases last pushed: ``check`` tells a mirror that is
merely behind the ledger (it shows what was pushed) from one changed by hand (it shows
neither). The record is a convenience, never evidence: versions are matched by the
composite ID tag, and a record edited by hand can only turn a finding into another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.core import fs
from regbook.core.errors import InputError, cut
from regbook.core.schema import STAGES
from regbook.core.workspace import Workspace
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import VersionState
from regbook.registry.snapshot import Snapshot
from regbook.render.card import build_card, render_card_markdown

PREFIX = "regbook."
COMPOSITE_TAG = PREFIX + "composite_id"
REGISTRY_TAG = PREFIX + "registry"
RECORD_NAME = "mlflow-mirror.json"
RECORD_FORMAT = "regbook-mlflow-mirror/1"
DEFAULT_ALIASES = {"Production": "production", "Staging": "staging"}
TAG_LIMIT = 5000  # MLflow's longest tag value


def experiment_name(registry_id: str) -> str:
    """The experiment whose runs hold the registry's artefacts."""
    return f"regbook/{registry_id or 'registry'}"


def parse_aliases(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("Production=prod", "Staging=")``: the stage -> alias map, from the defaults;
    an empty alias means none for that stage."""
    out = dict(DEFAULT_ALIASES)
    for pair in pairs:
        stage, sep, alias = pair.partition("=")
        stage, alias = stage.strip(), alias.strip()
        if not sep or stage not in STAGES or stage in ("None", "Archived"):
            raise InputError(
                f"alias {pair!r}: expected STAGE=ALIAS with STAGE Production or Staging"
            )
        if alias and not alias.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"alias {pair!r}: an alias is letters, digits, - and _")
        if alias:
            out[stage] = alias
        else:
            out.pop(stage, None)
    if len(set(out.values())) != len(out):
        raise InputError("alias: two stages cannot share one alias")
    return out


def _clip(value: object) -> str:
    return str(value)[:TAG_LIMIT]


def approval_of(snapshot: Snapshot, state: VersionState) -> dict[str, str]:
    """The approval evidence of the version's current stage: the approval its stage
    event links (approver, role, date, note)."""
    event = state.stage_event
    link = event.payload.get("approval") if event is not None else None
    approval = snapshot.registry.event(link.get("seq")) if isinstance(link, dict) else None
    if approval is None or approval.kind != "approve":
        return {}
    return {
        "approver": approval.signer,
        "role": signer_role(approval) or "",
        "date": approval.at[:10],
        "note": str(approval.payload.get("note", "")),
    }


def version_tags(snapshot: Snapshot, state: VersionState) -> dict[str, str]:
    """The regbook tags of a sealed version, as the ledger says now."""
    p = state.payload
    tags: dict[str, str | None] = {
        "registry": snapshot.registry_id,
        "composite_id": state.composite_id,
        "content_hash": state.content_hash,
        "ledger_seq": str(state.register.seq),
        "ledger_hash": state.register.hash,
        "data_version": p.get("data_version"),
        "data_repo": p.get("data_repo"),
        "code_commit": p.get("code_commit"),
        "code_repo": p.get("code_repo"),
        "pipeline_run": p.get("pipeline_run"),
        "gate": state.gate,
        "stage": state.stage,
    }
    for key, value in approval_of(snapshot, state).items():
        tags[f"approval.{key}"] = value
    return {PREFIX + k: _clip(v) for k, v in tags.items() if v not in (None, "")}


def run_metrics(state: VersionState) -> dict[str, float]:
    """The sealed metrics as MLflow run metrics: ``name`` or ``name.slice``."""
    out: dict[str, float] = {}
    for m in state.metrics:
        name = m["metric"] + (f".{m['slice']}" if m.get("slice") else "")
        out[name] = float(m["value"])
    return out


def description(snapshot: Snapshot, state: VersionState) -> str:
    """The model card, in Markdown, as the version's description. It is dated by the
    version's own latest event, so it changes only when something about it does."""
    data = build_card(snapshot, state, [])
    last = state.events[-1] if state.events else state.register
    data["footer"] = {**data["footer"], "generated_at": last.at, "ledger_head": last.hash}
    return render_card_markdown(data)


def alias_targets(states: list[VersionState], aliases: dict[str, str]) -> dict[str, VersionState]:
    """Which version each alias should point at: the version in its stage (the highest,
    when several versions are in Staging). An alias whose stage holds no version is not
    in the result: it should not exist."""
    out: dict[str, VersionState] = {}
    for stage, alias in aliases.items():
        held = [s for s in states if s.stage == stage]
        if held:
            out[alias] = max(held, key=lambda s: s.version)
    return out


@dataclass
class Mirrored:
    """One version as pushed: its MLflow version, run and source, and the tags sent."""

    model: str
    mlflow_version: str
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mlflow_version": self.mlflow_version,
            "run_id": self.run_id,
            "source": self.source,
            "tags": self.tags,
        }


@dataclass
class MirrorRecord:
    """This workspace's record of one tracking server (``mlflow-mirror.json``)."""

    uri: str
    registry: str = ""
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    versions: dict[str, Mirrored] = field(default_factory=dict)  # by composite ID
    pushed_aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> alias -> v
    others: dict[str, Any] = field(default_factory=dict)  # the file's other servers

    @staticmethod
    def path(ws: Workspace) -> Path:
        return ws.root / RECORD_NAME

    @classmethod
    def load(cls, ws: Workspace, uri: str) -> MirrorRecord:
        path = cls.path(ws)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(uri)
        except OSError as err:
            raise InputError(f"{RECORD_NAME}: cannot be read: {err.strerror}") from None
        try:
            data = json.loads(raw)
            servers = data["servers"]
            if data.get("format") != RECORD_FORMAT or not isinstance(servers, dict):
                raise ValueError("not a regbook mirror record")
            mine = servers.get(uri, {})
            record = cls(
                uri,
                str(mine.get("registry", "")),
                {str(k): str(v) for k, v in mine.get("aliases", DEFAULT_ALIASES).items()},
                {
                    str(cid): Mirrored(
                        str(v["model"]),
                        str(v["mlflow_version"]),
                        str(v["run_id"]),
                        str(v["source"]),
                        {str(k): str(t) for k, t in v.get("tags", {}).items()},
                    )
                    for cid, v in mine.get("versions", {}).items()
                },
                {
                    str(m): {str(a): str(v) for a, v in targets.items()}
                    for m, targets in mine.get("pushed_aliases", {}).items()
                },
                {k: v for k, v in servers.items() if k != uri},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise InputError(
                f"{RECORD_NAME}: not a mirror record regbook wrote ({cut(str(err), 80)}); "
                "move it aside and push again"
            ) from None
        return record

    def save(self, ws: Workspace) -> None:
        servers = dict(self.others)
        servers[self.uri] = {
            "registry": self.registry,
            "aliases": self.aliases,
            "versions": {cid: m.to_json() for cid, m in sorted(self.versions.items())},
            "pushed_aliases": self.pushed_aliases,
        }
        data = {"format": RECORD_FORMAT, "servers": servers}
        text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        fs.atomic_write(self.path(ws), text.encode("utf-8"))
