"""Findings: what ``verify`` (and the commands built on it) report.

A finding has a stable code, a severity, the cell or path it is about, and one
sentence. Every code is listed in ``CODES`` and documented in docs/findings.md::

    >>> f = Finding.make("RB301", "Models!I7", "code commit changed after sealing")
    >>> str(f)
    'RB301 error Models!I7: code commit changed after sealing'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"

# code: (severity, title). Titles are the headings of docs/findings.md.
CODES: dict[str, tuple[str, str]] = {
    # the ledger itself
    "RB101": (ERROR, "Ledger chain broken"),
    "RB102": (ERROR, "Ledger event altered"),
    "RB103": (ERROR, "Ledger rows reordered, deleted or inserted"),
    "RB104": (ERROR, "Signature invalid"),
    "RB105": (ERROR, "Signing key not in the keyring"),
    "RB106": (ERROR, "Signer lacks the role"),
    "RB107": (ERROR, "Key used outside its validity window"),
    "RB108": (ERROR, "Ledger row malformed"),
    "RB109": (ERROR, "Ledger time runs backwards"),
    "RB110": (ERROR, "Keyring does not match the pinned hash"),
    "RB111": (ERROR, "Key fingerprint cell disagrees with the signature"),
    # the trust anchors: registry identity, clock, keyring history, policy, witness
    "RB112": (ERROR, "Event of another registry"),
    "RB113": (INFO, "Registry has no ID"),
    "RB114": (ERROR, "Event dated in the future"),
    "RB115": (ERROR, "Signed by a key revoked earlier in the chain"),
    "RB116": (ERROR, "Keyring edited outside regbook keys"),
    "RB117": (ERROR, "regbook.toml differs from the policy in force"),
    "RB118": (ERROR, "Policy or keyring event unreadable"),
    "RB119": (ERROR, "Ledger does not hold the witnessed head"),
    "RB120": (ERROR, "Witness not signed by a ci key"),
    "RB121": (ERROR, "Ledger cell not as regbook wrote it"),
    # versions
    "RB201": (ERROR, "Version reused"),
    "RB202": (ERROR, "Version skipped"),
    "RB203": (ERROR, "Registration payload inconsistent"),
    # views of the ledger
    "RB301": (ERROR, "View cell differs from the ledger"),
    "RB302": (ERROR, "Sealed version missing from Models"),
    "RB303": (ERROR, "Row claims a seal the ledger does not have"),
    "RB304": (ERROR, "Sealed version shown twice"),
    "RB305": (ERROR, "Metric added after sealing"),
    "RB306": (ERROR, "Sealed metric missing from Metrics"),
    "RB307": (ERROR, "Formula in a sealed cell"),
    "RB308": (INFO, "Keys sheet differs from allowed_signers"),
    "RB309": (ERROR, "Approvals or History view differs from the ledger"),
    "RB310": (INFO, "Draft rows not yet sealed"),
    "RB311": (ERROR, "Workflow cell edited by hand"),
    # what the workbook shows besides its values (display forgery)
    "RB312": (ERROR, "Number format shows another text than the value"),
    "RB313": (ERROR, "Cell styled so its value cannot be read"),
    "RB314": (ERROR, "Row or column of the registry hidden"),
    "RB315": (ERROR, "Registry sheet hidden"),
    "RB316": (ERROR, "Conditional format, drawing or setting over registry cells"),
    "RB317": (WARNING, "Models sheet not protected"),
    "RB318": (INFO, "Sheet not part of the registry, not verified"),
    "RB322": (INFO, "View cell not compared: its version's Ledger row was edited"),
    # the stage workflow
    "RB501": (ERROR, "Stage reached without its approval"),
    "RB502": (ERROR, "Production transition not signed by a ci key"),
    "RB503": (ERROR, "Approval names another content hash (replayed approval)"),
    "RB504": (ERROR, "Two Production versions of one model"),
    "RB505": (ERROR, "Gate result does not follow from the sealed metrics and thresholds"),
    "RB506": (ERROR, "Transition not allowed"),
    "RB507": (ERROR, "Production without a PASS gate result"),
    "RB508": (ERROR, "Event for a version never registered"),
    "RB509": (ERROR, "Metrics addendum that changes a sealed metric or cannot be read"),
    # the pre-deploy check
    "RB601": (ERROR, "Version not in Production"),
    "RB602": (ERROR, "Latest gate result is not PASS"),
    # artefacts
    "RB401": (ERROR, "Artefact missing"),
    "RB402": (ERROR, "Artefact content changed"),
    "RB403": (ERROR, "Artefact cannot be hashed"),
    # lineage: trace and inference-log audits
    "RB701": (ERROR, "Composite ID disagrees with the sealed version"),
    "RB702": (ERROR, "Composite ID names no sealed version"),
    "RB703": (ERROR, "Code commit not in the code repository"),
    "RB704": (ERROR, "Training data version not in the data repository"),
    "RB705": (ERROR, "Inference served by a version not in Production"),
    "RB706": (ERROR, "Inference log record unreadable"),
    "RB707": (INFO, "Lineage link not checkable"),
    "RB708": (ERROR, "Inference records without a readable time: Production check not run"),
    # the archive: BagIt bags of archived versions
    "RB801": (ERROR, "Archived bag missing"),
    "RB802": (ERROR, "Archived bag does not validate"),
    "RB803": (ERROR, "Archived payload is not the sealed artefact"),
    "RB804": (ERROR, "Bag tag manifest not the one archived and signed"),
    "RB805": (INFO, "Archived version's original still in storage"),
    "RB806": (WARNING, "Bag with no archive event"),
    # the security scan
    "RB901": (WARNING, "Typed security metric disagrees with the scan"),
    "RB902": (ERROR, "Scan of another content hash (replayed scan)"),
    "RB903": (ERROR, "Scan event malformed"),
    # the MLflow mirror: regbook mlflow check
    "RB951": (ERROR, "MLflow alias points at a version not in that stage"),
    "RB952": (ERROR, "regbook tag changed or removed in MLflow"),
    "RB953": (ERROR, "Mirrored version deleted from MLflow"),
    "RB954": (ERROR, "Mirrored version's source changed"),
    "RB955": (ERROR, "Artefact in MLflow differs from the sealed content hash"),
    "RB956": (ERROR, "MLflow version with regbook tags the ledger does not know"),
    "RB957": (WARNING, "Sealed version not mirrored"),
    "RB958": (WARNING, "Mirror behind the ledger"),
    "RB959": (ERROR, "Artefact in MLflow cannot be checked"),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    where: str
    message: str
    model: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.severity} {self.where}: {self.message}"

    @classmethod
    def make(
        cls,
        code: str,
        where: str,
        message: str,
        model: str | None = None,
        version: int | None = None,
    ) -> Finding:
        severity, _title = CODES[code]
        return cls(code, severity, where, message, model, version)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_problem(self) -> bool:
        """Errors and warnings make verification fail; info notes do not."""
        return self.severity in (ERROR, WARNING)
