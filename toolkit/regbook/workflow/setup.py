"""Setting up a workspace: its settings, an empty keyring, the storage folders and the
workbook made from the template.

    ws = init_workspace(Path("registry"))
"""

from __future__ import annotations

import uuid
from pathlib import Path

from regbook.core.errors import InputError
from regbook.core.workspace import CONFIG_NAME, CONFIG_TEMPLATE, Settings, Workspace
from regbook.workbook.template import write_template


def init_workspace(target: Path) -> Workspace:
    """Create a workspace: settings, an empty keyring, storage folders and the workbook."""

    if (target / CONFIG_NAME).exists():
        raise InputError(f"{target}: already a regbook workspace; nothing was changed")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    settings = Settings()
    for name in (settings.workbook, settings.keyring):
        if (target / name).exists():
            raise InputError(f"{target / name}: already exists; nothing was changed")
    target.mkdir(parents=True, exist_ok=True)
    (target / settings.models).mkdir(exist_ok=True)
    (target / settings.archive).mkdir(exist_ok=True)
    keyring = target / settings.keyring
    keyring.write_text(
        "# regbook keyring (OpenSSH allowed_signers). One line per key:\n"
        '#   PRINCIPAL namespaces="regbook-ROLE[,regbook-ROLE]" ssh-ed25519 KEY [comment]\n'
        "# Roles: regbook-sme, regbook-governance-lead, regbook-ci.\n",
        encoding="utf-8",
    )
    write_template(target / settings.workbook)
    # The registry's identity: random, so that no two registries share one.
    config = CONFIG_TEMPLATE.replace("{registry_id}", str(uuid.uuid4()))
    (target / CONFIG_NAME).write_text(config, encoding="utf-8")
    return Workspace.load(target)
