"""regbook: a compliance-grade model registry kept in an Excel workbook.

The workbook's Ledger sheet is an append-only, hash-chained, SSH-signed list of
events; every other sheet is a view regbook derives from it and can check.

    >>> import regbook
    >>> regbook.__version__
    '0.2.0'

A Python user opens a registry once and works from the snapshot (README, "Using regbook
from Python")::

    ws = regbook.Workspace.find()                     # or Workspace.load(path)
    snapshot = regbook.open_registry(ws)              # read and checked once
    report = regbook.verify(snapshot, artefacts=False)
    for finding in report.findings:
        print(finding)

Services that log inferences take the composite ID of the version they serve once, at
start-up, and write it into every prediction they log (docs/lineage.md)::

    cid = regbook.composite_id("path/to/workspace", "credit-risk@7")

The names below are loaded on first use, so `import regbook` stays cheap: a service
that only asks for a composite ID does not load the workbook writer or the reports.
"""

from __future__ import annotations

import importlib

from regbook.core.version import __version__

# The public API: each name and the module that defines it.
_API = {
    # open and check
    "Workspace": "regbook.core.workspace",
    "init_workspace": "regbook.workflow.setup",
    "open_registry": "regbook.registry.snapshot",
    "Snapshot": "regbook.registry.snapshot",
    "verify": "regbook.check.verify",
    "Report": "regbook.check.verify",
    # write
    "load_private_key": "regbook.crypto.keys",
    "new_key": "regbook.workflow.trust",
    "add_key": "regbook.workflow.trust",
    "revoke_key": "regbook.workflow.trust",
    "sign_policy": "regbook.workflow.trust",
    "take_witness": "regbook.workflow.trust",
    "Witness": "regbook.registry.witness",
    "RegistrationRequest": "regbook.workflow.lifecycle",
    "Metric": "regbook.workflow.lifecycle",
    "register": "regbook.workflow.lifecycle",
    "seal": "regbook.workflow.lifecycle",
    "approve": "regbook.workflow.governance",
    "scan": "regbook.workflow.governance",
    "scan_artefact": "regbook.storage.scanning",
    "gate": "regbook.workflow.governance",
    "promote": "regbook.workflow.governance",
    "archive": "regbook.workflow.archive",
    "retrieve": "regbook.workflow.archive",
    "restore": "regbook.workflow.restore",
    # lineage
    "trace_version": "regbook.lineage.trace",
    "audit_log": "regbook.lineage.trace",
    "composite_id": "regbook.lineage.trace",
    # values
    "ModelRef": "regbook.core.ids",
    "CompositeId": "regbook.core.ids",
    "Finding": "regbook.core.findings",
    # errors
    "RegbookError": "regbook.core.errors",
    "InputError": "regbook.core.errors",
    "KeyProblem": "regbook.core.errors",
    "WorkbookLocked": "regbook.core.errors",
    "VerificationFailed": "regbook.core.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    # PEP 562: a name of the API is imported the first time it is asked for.
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'regbook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
