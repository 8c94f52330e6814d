"""``regbook mlflow import``: bring MLflow model versions into the workbook as drafts.

    imported = import_versions(ws, "http://mlflow:5000", "credit-risk", versions=[3, 4])
    imported.drafts        # [{"mlflow_version": "3", "row": 12, "storage": ...}, ...]

Each version's artefact is downloaded into ``models/NAME/mlflow-V/``, and a draft row is
added to Models (its extra metrics to Metrics) from what the version's run says: the
code commit from ``mlflow.source.git.commit``, the data version, pipeline run,
parameters and metrics where the run has them. Nothing is sealed: the SME completes the
row and runs ``regbook seal``, as for any draft.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError
from regbook.core.ids import check_model_name
from regbook.core.schema import KNOWN_METRICS, METRICS, MODELS
from regbook.core.workspace import Workspace
from regbook.mirror.mapping import PREFIX
from regbook.mirror.remote import Remote, connect
from regbook.registry.transaction import Transaction

METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
HEX = re.compile(r"[0-9a-f]+")
# Where a run may say what regbook needs, first found wins (tags, then params).
DATA_KEYS = ("regbook.data_version", "data_version", "dvc_commit", "data_commit")
RUN_KEYS = ("regbook.pipeline_run", "pipeline_run", "pipeline_execution_id")
DATA_REPO_KEYS = ("regbook.data_repo", "data_repo", "data_repository")


@dataclass
class Imported:
    uri: str
    model: str
    drafts: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.uri,
            "model": self.model,
            "drafts": self.drafts,
            "skipped": self.skipped,
        }


def parse_versions(text: str | None) -> list[str] | None:
    """``1,2,5-7`` -> ["1", "2", "5", "6", "7"]; None for every version."""
    if text is None:
        return None
    out: list[str] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise InputError(f"versions {text!r}: expected numbers and ranges, as 1,2,5-7")
        out += [str(n) for n in range(int(low), int(high or low) + 1)]
    return out


def _first(keys: tuple[str, ...], *sources: dict[str, str]) -> str:
    for source in sources:
        for key in keys:
            if source.get(key):
                return str(source[key]).strip()
    return ""


def import_versions(
    ws: Workspace, uri: str, model: str, *, versions: list[str] | None = None
) -> Imported:
    """Draft rows for the versions of the MLflow registered model ``model`` (or the
    ``versions`` named), their artefacts downloaded into ``models/``. Versions that
    regbook pushed (they carry its tags) are skipped: they are sealed already."""
    check_model_name(model, "model")
    with Transaction(ws) as tx, connect(uri) as remote:
        result = Imported(remote.shown, model)
        if remote.registered_model(model) is None:
            raise InputError(f"MLflow at {remote.shown} has no registered model {model!r}")
        found = {str(mv.version): mv for mv in remote.versions(model)}
        wanted = versions if versions is not None else sorted(found, key=int)
        missing = [v for v in wanted if v not in found]
        if missing:
            raise InputError(f"{model}: MLflow has no version {', '.join(missing)}")
        drafts_for = _existing_imports(tx, model)
        rows: list[tuple[dict[str, Any], list[tuple[str, float]], Any]] = []
        next_version = tx.registry.next_version(model) + _draft_count(tx, model)
        for number in wanted:
            mv = found[number]
            if any(k.startswith(PREFIX) for k in (mv.tags or {})):
                result.skipped.append(f"{number}: pushed by regbook (carries its tags)")
                continue
            if number in drafts_for:
                result.skipped.append(f"{number}: imported already ({drafts_for[number]})")
                continue
            values, extra = _draft_values(ws, remote, model, mv)
            values["version"] = next_version
            next_version += 1
            rows.append((values, extra, mv))
        if not rows:
            return result
        patch = tx.patch()
        models = tx.data[MODELS.name]
        metrics = tx.data[METRICS.name]
        model_row = max(models.row_numbers, default=1) + 1
        metric_row = max(metrics.row_numbers, default=1) + 1
        model_xml: dict[int, str] = {}
        metric_xml: dict[int, str] = {}
        for values, extra, mv in rows:
            model_xml[model_row] = patch.cells_xml(model_row, MODELS.columns, values, "open")
            for name, value in extra:
                row = {"model": model, "version": values["version"], "metric": name,
                       "value": value, "kind": "performance", "slice": ""}  # fmt: skip
                metric_xml[metric_row] = patch.cells_xml(metric_row, METRICS.columns, row, "open")
                metric_row += 1
            result.drafts.append({
                "mlflow_version": str(mv.version), "row": model_row,
                "storage": values["storage"], "missing": [
                    k for k in ("data_version", "code_commit", "pipeline_run") if not values.get(k)
                ],
            })  # fmt: skip
            model_row += 1
        patch.put_rows(MODELS.name, model_xml)
        if metric_xml:
            patch.put_rows(METRICS.name, metric_xml)
        tx.save(patch)
    return result


def _note(model: str, version: str) -> str:
    return f"imported from MLflow: {model} version {version}"


def _existing_imports(tx: Transaction, model: str) -> dict[str, str]:
    """MLflow versions already imported as a draft or sealed row (by their Notes)."""
    models = tx.data[MODELS.name]
    out: dict[str, str] = {}
    pattern = re.compile(re.escape(f"imported from MLflow: {model} version ") + r"(\d+)")
    for i, _row in models.indexed():
        found = pattern.search(str(models.value(i, "notes") or ""))
        if found:
            out[found.group(1)] = models.ref(i, "notes")
    return out


def _draft_count(tx: Transaction, model: str) -> int:
    models = tx.data[MODELS.name]
    return sum(
        1
        for i, _row in models.indexed()
        if str(models.value(i, "model") or "").strip() == model
        and models.value(i, "seal") in (None, "")
    )


def _draft_values(
    ws: Workspace, remote: Remote, model: str, mv: Any
) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    run = remote.call("get_run", mv.run_id) if mv.run_id else None
    tags: dict[str, str] = dict(run.data.tags) if run is not None else {}
    params: dict[str, str] = dict(run.data.params) if run is not None else {}
    metrics: dict[str, float] = dict(run.data.metrics) if run is not None else {}
    storage = _download(ws, remote, model, mv)
    commit = tags.get("mlflow.source.git.commit", "").strip().lower()
    values: dict[str, Any] = {
        "model": model,
        "storage": storage,
        "code_commit": commit if HEX.fullmatch(commit or "-") else "",
        "code_repo": tags.get("mlflow.source.git.repoURL", ""),
        "data_version": _first(DATA_KEYS, tags, params),
        "data_repo": _first(DATA_REPO_KEYS, tags, params),
        "pipeline_run": _first(RUN_KEYS, tags, params),
        "notes": _note(model, str(mv.version)) + (f" (run {mv.run_id})" if mv.run_id else ""),
    }
    hyper = {k: v for k, v in params.items() if k not in DATA_KEYS + RUN_KEYS + DATA_REPO_KEYS}
    if hyper:
        values["params"] = "; ".join(
            f"{k}={v}" for k, v in sorted(hyper.items()) if ";" not in k + v and "=" not in k
        )
    extra: list[tuple[str, float]] = []
    for name, value in sorted(metrics.items()):
        if not METRIC_NAME.fullmatch(name):
            continue
        column = KNOWN_METRICS.get(name, (None, ""))[0]
        if column:
            values[column] = value
        else:
            extra.append((name, value))
    return values, extra


def _download(ws: Workspace, remote: Remote, model: str, mv: Any) -> str:
    """Download the version's source into models/NAME/mlflow-V/ (beside it first, then
    renamed into place); the storage location of the artefact: its one file, else the
    folder. A folder left by an earlier import is used as it is."""
    dest = ws.models_dir / model / f"mlflow-{mv.version}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".partial-mlflow-{mv.version}-", dir=dest.parent))
        try:
            remote.download(str(mv.source), staging)
            linked = [p for p in staging.rglob("*") if p.is_symlink()]
            if linked:  # regbook hashes and seals no link (DESIGN 4)
                raise InputError(
                    f"{model} version {mv.version}: the download holds a symbolic link "
                    f"({linked[0].relative_to(staging).as_posix()}); nothing was imported"
                )
            os.replace(staging, dest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    entries = [p for p in dest.rglob("*") if not p.is_dir()]
    top = list(dest.iterdir())
    target = dest
    while len(top) == 1 and top[0].is_dir() and not top[0].is_symlink():
        target = top[0]
        top = list(target.iterdir())
    if len(entries) == 1:
        target = entries[0]
    return ws.display_path(target)
