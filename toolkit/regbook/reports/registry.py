"""The registry's own description, for the technical documentation (AISDP Modules 2
and 3): what the registry is and does, configured as this workspace configures it.

Every rule the report states is read from the workspace, never written out by hand:
the transitions and the roles allowed for each from ``regbook.toml`` ``[transitions]``,
the gates from ``[gates]``, retention from ``[retention]``, the principals and roles
from the keyring, and the Production versions with their traceability tags from the
ledger (not from the editable view cells)::

    data = registry_data(ws)
    Path("registry.md").write_text(render_text("registry", "markdown", data))

As with every report, problems come first: the registry's verify findings are counted
at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regbook.check.verify import verify
from regbook.core import fs
from regbook.core.schema import GUIDE, LEDGER, SHEETS
from regbook.core.version import __version__
from regbook.crypto.keys import SignerEntry
from regbook.ledger.gates import parse_gates
from regbook.ledger.state import VersionState
from regbook.registry.snapshot import Snapshot
from regbook.registry.views import keys_values, models_values
from regbook.render.text import TEXT_FORMATS, format_of, render_text
from regbook.reports.export import write_atomic

# Each transition of the stage workflow, with what regbook checks before it happens
# beyond the approval itself (governance.promote, archive.archive).
BAG = (
    "the artefact's hash is checked, and it is moved into a BagIt bag that is "
    "validated before the original is removed",
)
TRANSITIONS = (
    ("None", "Staging", "promote", ()),
    ("Staging", "Production", "promote", (
        "the approval names this version's content hash",
        "the latest validation gate result is PASS, for this content hash, and still "
        "follows from the sealed metrics and the thresholds in force",
        "the artefact is re-hashed at promotion and matches its sealed content hash",
        "the promotion is signed by a key acting in the ci role (the CI pipeline)",
        "no other version of the model is in Production (or --archive-previous retires "
        "it in the same step, with its own approval)",
    )),
    ("Production", "Archived", "archive", (*BAG,
        "or, with `promote --archive-previous`, the ci key retires it in the same step as "
        "its successor's promotion, still on its own approval")),
    ("Staging", "Archived", "archive", BAG),
    ("None", "Archived", "archive", BAG),
    ("Archived", "Production", "promote", (
        "a rollback: the version was once in Production",
        "the approval names this version's content hash and was given after the archive",
        "a validation gate PASS recorded after the archive, under the thresholds in force",
        "the artefact comes back out of its bag, validated in full and re-hashed; the bag "
        "stays",
        "the promotion is signed by a key acting in the ci role (the CI pipeline)",
    )),
)  # fmt: skip


def registry_data(snapshot: Snapshot, *, artefacts: bool = True) -> dict[str, Any]:
    """The facts of the registry description, as plain data (JSON-friendly)."""
    report = verify(snapshot, artefacts=artefacts)
    ws, registry, keyring = snapshot.workspace, snapshot.registry, snapshot.keyring
    settings = ws.settings
    policy = snapshot.anchors.policy  # the signed policy in force, not the file's word
    findings = [f.to_json() for f in report.findings]
    problems = [f for f in findings if f["severity"] in ("error", "warning")]
    versions = list(registry.versions.values())
    generated_at = fs.utc_now()
    return {
        "title": "Model registry description",
        "problems": {"count": len(problems), "findings": problems},
        "workspace": {
            "workbook": settings.workbook,
            "sheets": [sheet.name for sheet in SHEETS if sheet not in (LEDGER, GUIDE)],
            "keyring": settings.keyring,
            "models": settings.models,
            "archive": settings.archive,
            "backups": settings.backups,
            "register_roles": list(policy.register_roles),
            "gate_roles": list(policy.gate_roles),
            "scan_roles": list(policy.scan_roles),
            "registry_id": snapshot.registry_id or None,
            "policy_sha256": policy.sha256,
        },
        "counts": {
            "models": len({v.model for v in versions}),
            "versions": len(versions),
            "events": report.events,
            "stages": {
                stage: sum(v.stage == stage for v in versions)
                for stage in ("None", "Staging", "Production", "Archived")
            },  # fmt: skip
        },
        "transitions": [
            {
                "from": source,
                "to": target,
                "command": command,
                "approvers": list(policy.transition_roles(source, target)),
                "signers": ["ci"]
                if target == "Production"
                else list(policy.transition_roles(source, target)),
                "checks": list(checks),
            }
            for source, target, command, checks in TRANSITIONS
        ],
        "gates": [
            {"gate": g.name, "metric": g.metric, "rule": str(g)}
            for g in (parse_gates(policy.gates) if policy.gates else ())
        ],
        "retention_years": settings.retention_years,
        "keys": [
            dict(row, status=_key_status(entry, generated_at))
            for row, entry in zip(keys_values(keyring), keyring.entries, strict=True)
        ],  # fmt: skip
        "production": [
            _tags(v)
            for v in sorted(versions, key=lambda v: (v.model, v.version))
            if v.stage == "Production"
        ],  # fmt: skip
        "verify": {"artefacts_checked": report.artefacts_checked, "findings": findings},
        "footer": {
            "generated_at": generated_at,
            "regbook_version": __version__,
            "ledger_head": report.ledger_head,
            "keyring_sha256": report.keyring_sha256,
            "registry_id": report.registry_id,
        },
    }


def _key_status(entry: SignerEntry, at: str) -> str:
    """Whether the key can sign for regbook at ``at`` (the report's time)."""
    from datetime import UTC, datetime

    now = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if not entry.roles:
        return "no regbook role"
    if entry.valid_at(now):
        return "valid"
    if entry.valid_after is not None and now < entry.valid_after:
        return "not yet valid"
    return "expired"


def _tags(state: VersionState) -> dict[str, Any]:
    """A Production version's AISDP traceability tags, from the ledger."""

    values = models_values(state)
    keys = ("model", "version", "composite_id", "content_hash", "data_version", "code_commit",
            "pipeline_run", "approval", "gate", "deployed_on")  # fmt: skip
    return {key: values[key] for key in keys}


def registry_format(path: Path) -> str:
    """The format, "markdown" or "html", from the suffix of ``path``."""

    return format_of(path, TEXT_FORMATS, "the registry description is a .md or .html file")


def write_registry(snapshot: Snapshot, output: Path, *, artefacts: bool = True) -> dict[str, Any]:
    """Build the description and write it atomically to ``output``; the data."""

    kind = registry_format(output)
    data = registry_data(snapshot, artefacts=artefacts)
    write_atomic(output, render_text("registry", kind, data).encode("utf-8"))
    return data
