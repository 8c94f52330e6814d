"""Setting up a workspace: its settings, an empty keyring, the storage folders and the
workbook made from the template.

    ws = init_workspace(Path("registry"))
"""

from __future__ import annotations

import uuid
from pathlib import Path

from regbook.core import fs
from regbook.core.errors import InputError
from regbook.core.workspace import CONFIG_NAME, CONFIG_TEMPLATE, Settings, Workspace
from regbook.workbook.template import write_template

# What git must never take from a workspace: private keys (kept in ~/.ssh or a CI
# secret, but a key made with `keys new --out` may land here), the lock files of Excel,
# LibreOffice and regbook's writer, and what an interrupted write leaves behind. The
# backups are ignored too: in git, history is the backup.
GITIGNORE = """\
# Written by `regbook init`. Commit regbook.toml, registry.xlsx, allowed_signers and
# models/ and archive/ as your team decides (see docs/collaboration.md).

# Private keys never belong in git: keep them in ~/.ssh, or in a CI secret.
*_key
*.key
*.pem
id_ed25519*
id_ecdsa*
id_rsa*
regbook_*
!*.pub

# Lock files: Excel, LibreOffice, and regbook's own writer lock.
~$*
.~lock.*#
.*.lock

# Left by an interrupted write, and the workbook's rotating backups.
.*.tmp
.partial-*
*.bak.xlsx
"""


def init_workspace(target: Path, *, force: bool = False) -> Workspace:
    """Create a workspace: settings, an empty keyring, storage folders, the workbook and
    a .gitignore. A folder that already holds anything is refused unless ``force``;
    even then no file is overwritten, and an existing .gitignore gains only the lines
    it lacks."""

    if (target / CONFIG_NAME).exists():
        raise InputError(f"{target}: already a regbook workspace; nothing was changed")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    if not force and target.is_dir() and any(target.iterdir()):
        raise InputError(
            f"{target}: the folder is not empty; choose a new folder, "
            "or give --force to make a workspace among its files; nothing was changed"
        )
    settings = Settings()
    for name in (settings.workbook, settings.keyring):
        if (target / name).exists():
            raise InputError(f"{target / name}: already exists; nothing was changed")
    # What is there already must be what it seems: a link could make the storage or the
    # .gitignore (read, then written back) another place's.
    for name in (settings.models, settings.archive, ".gitignore"):
        there = target / name
        plain = there.is_file() if name == ".gitignore" else there.is_dir()
        if there.is_symlink() or (there.exists() and not plain):
            kind = "file" if name == ".gitignore" else "folder"
            raise InputError(f"{there}: exists and is not a plain {kind}; nothing was changed")
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
    _write_gitignore(target / ".gitignore")
    write_template(target / settings.workbook)
    # The registry's identity: random, so that no two registries share one.
    config = CONFIG_TEMPLATE.replace("{registry_id}", str(uuid.uuid4()))
    (target / CONFIG_NAME).write_text(config, encoding="utf-8")
    return Workspace.load(target)


def _write_gitignore(path: Path) -> None:
    """Write GITIGNORE, or add to an existing .gitignore the lines it lacks."""
    if not path.exists():
        fs.atomic_write(path, GITIGNORE.encode("utf-8"))
        return
    old = path.read_text(encoding="utf-8", errors="replace")
    have = {line.strip() for line in old.splitlines()}
    missing = [
        line
        for line in GITIGNORE.splitlines()
        if line and not line.startswith("#")
        if line not in have
    ]
    if missing:
        sep = "" if old.endswith("\n") or not old else "\n"
        added = "\n# Added by `regbook init`: private keys, lock files.\n" + "\n".join(missing)
        fs.atomic_write(path, (old + sep + added + "\n").encode("utf-8"))
