"""The workspace: a folder with ``regbook.toml``, the workbook, the keyring and storage.

Commands find it by walking up from the current directory to the nearest
``regbook.toml``, unless ``--workspace DIR`` or ``REGBOOK_WORKSPACE`` names it::

    ws = Workspace.find()          # or Workspace.find(explicit=Path("registry"))
    ws.workbook_path, ws.settings.retention_years
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from regbook.core.errors import InputError, cut
from regbook.core.policy import (
    DEFAULT_GATES,
    DEFAULT_SCAN_ROLES,
    DEFAULT_TRANSITIONS,
    Policy,
    check_transition,
    role_list,
)

CONFIG_NAME = "regbook.toml"
ENV_WORKSPACE = "REGBOOK_WORKSPACE"

CONFIG_TEMPLATE = """\
# regbook workspace settings. Every setting is shown with its default value.
# The workbook, keyring and storage paths are relative to this file's folder.
# The policy ([roles], [transitions], [gates]) is in force only once a governance lead
# signs it into the ledger: `regbook policy sign --key GOV_KEY` after any change.

[registry]
# This registry's identity, drawn by `regbook init`; every signed event carries it.
id = "{registry_id}"

[paths]
# The registry workbook (the Ledger sheet inside it is the source of truth).
workbook = "registry.xlsx"
# The keyring, in OpenSSH allowed_signers format: who may sign, in which roles.
keyring = "allowed_signers"
# Where registered artefacts are copied: models/NAME/VERSION/.
models = "models"
# Where archived versions are kept as BagIt bags: archive/NAME/VERSION/.
archive = "archive"

[workbook]
# How many previous copies of the workbook to keep (registry.1.bak.xlsx is the newest;
# older ones shift to registry.2.bak.xlsx, ... when this is more than 1).
backups = 1

[retention]
# Archived versions are kept at least this many years (EU AI Act Article 18: ten).
years = 10

[roles]
# Which roles may register and seal new versions.
register = ["sme", "ci"]
# Which roles may sign validation gate results.
gate = ["ci"]
# Which roles may sign security scans (regbook scan).
scan = ["ci"]

[transitions]
# Which roles may approve each stage transition. "*->Archived" covers every stage
# without its own line. Promotion to Production is always signed by a ci key. A
# rollback ("Archived->Production") needs the roles of "Staging->Production" unless
# it has a line of its own.
"None->Staging" = ["sme", "governance-lead"]
"Staging->Production" = ["governance-lead"]
"Production->Archived" = ["governance-lead"]
"*->Archived" = ["sme", "governance-lead"]

[gates]
# Validation gates over the Metrics sheet: "METRIC OP NUMBER", OP one of >= > <= < ==.
# A gated metric that is missing fails its gate.
performance = "auc_roc >= 0.75"
fairness = "demographic_parity_ratio >= 0.80"
security = "security_high_findings == 0"

[links]
# URL templates for trace and reports; {id} is replaced by the pipeline execution ID.
pipeline = ""
# For `regbook trace`, when the Code/Data repository cells are URLs: local clones.
# code_repo = "../credit-risk-code"
# data_repo = "../credit-data"
# The builder ID written into exported provenance (default: the origin of the pipeline
# link above, else urn:regbook:registrant:PRINCIPAL, the key that registered the version).
# builder = "https://ci.example.com/regbook"
# Or map each recorded repository URL to its local clone (keep this table last):
# [links.repositories]
# "https://git.example.com/risk/credit-risk.git" = "../credit-risk-code"
"""


@dataclass(frozen=True)
class Settings:
    workbook: str = "registry.xlsx"
    keyring: str = "allowed_signers"
    models: str = "models"
    archive: str = "archive"
    backups: int = 1
    retention_years: int = 10
    register_roles: tuple[str, ...] = ("sme", "ci")
    gate_roles: tuple[str, ...] = ("ci",)
    scan_roles: tuple[str, ...] = DEFAULT_SCAN_ROLES
    transitions: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_TRANSITIONS)
    )
    gates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GATES))
    pipeline_link: str = ""
    registry_id: str = ""

    @property
    def policy(self) -> Policy:
        """The policy this file states (in force only once signed into the ledger)."""
        return Policy(
            self.register_roles,
            self.gate_roles,
            self.transitions,
            self.gates,
            scan_roles=self.scan_roles,
        )

    @classmethod
    def parse(cls, text: str, source: str = CONFIG_NAME) -> Settings:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"{source}: not valid TOML: {err}") from None
        known = {
            "registry",
            "paths",
            "workbook",
            "retention",
            "roles",
            "transitions",
            "gates",
            "links",
        }
        for name in data:
            if name not in known:
                raise InputError(f"{source}: unknown section [{name}]")
        paths = _table(data, "paths", source, ("workbook", "keyring", "models", "archive"))
        out: dict[str, Any] = {}
        registry = _table(data, "registry", source, ("id",))
        if "id" in registry:
            if not isinstance(registry["id"], str) or not REGISTRY_ID.fullmatch(registry["id"]):
                raise InputError(
                    f"{source}: [registry] id: expected the ID `regbook init` drew, "
                    "like 0b6f3c2e-5d1a-4c8e-9f2a-7e4b1d6c9a30"
                )
            out["registry_id"] = registry["id"]
        for key in ("workbook", "keyring", "models", "archive"):
            if key in paths:
                out[key] = _relative_path(paths[key], f"{source}: [paths] {key}")
        book = _table(data, "workbook", source, ("backups",))
        if "backups" in book:
            out["backups"] = _int(book["backups"], f"{source}: [workbook] backups", 0, 100)
        retention = _table(data, "retention", source, ("years",))
        if "years" in retention:
            out["retention_years"] = _int(
                retention["years"], f"{source}: [retention] years", 1, 100
            )
        roles = _table(data, "roles", source, ("register", "gate", "scan"))
        if "register" in roles:
            out["register_roles"] = role_list(roles["register"], f"{source}: [roles] register")
        if "gate" in roles:
            out["gate_roles"] = role_list(roles["gate"], f"{source}: [roles] gate")
        if "scan" in roles:
            out["scan_roles"] = role_list(roles["scan"], f"{source}: [roles] scan")
        transitions = _table(data, "transitions", source)
        if transitions:
            merged = dict(DEFAULT_TRANSITIONS)
            for name, value in transitions.items():
                check_transition(name, f"{source}: [transitions]")
                merged[name] = role_list(value, f"{source}: [transitions] {name}")
            out["transitions"] = merged
        gates = _table(data, "gates", source)
        if "gates" in data:  # an empty [gates] is no gates (gate refuses), not the defaults
            for name, value in gates.items():
                if not isinstance(value, str):
                    raise InputError(
                        f'{source}: [gates] {name}: expected a string like "auc_roc >= 0.75"'
                    )
            out["gates"] = dict(gates)
        links = _table(data, "links", source, LINK_KEYS)
        if "pipeline" in links:
            if not isinstance(links["pipeline"], str):
                raise InputError(f"{source}: [links] pipeline: expected a string")
            out["pipeline_link"] = links["pipeline"]
        return cls(**out)

    def transition_roles(self, from_stage: str, to_stage: str) -> tuple[str, ...]:
        return self.policy.transition_roles(from_stage, to_stage)


# [links]: the pipeline URL template (here), local clones of the repositories (trace)
# and the builder ID of exported provenance (export).
# A registry ID: what `regbook init` draws (a random UUID), in lower case.
REGISTRY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

LINK_KEYS = ("pipeline", "code_repo", "data_repo", "builder", "repositories")


def _table(
    data: dict[str, Any], name: str, source: str, keys: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A section of regbook.toml; with ``keys``, a setting not among them is refused (a
    misspelt setting would otherwise leave its default in force without a word)."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise InputError(f"{source}: [{name}] must be a table")
    if keys is not None:
        for key in value:
            if key not in keys:
                raise InputError(
                    f"{source}: [{name}] {key}: unknown setting (known: {', '.join(keys)})"
                )
    return value


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{where}: expected a whole number from {low} to {high}")
    return value


def _relative_path(value: object, where: str) -> str:
    """A [paths] setting: a path relative to the workspace that stays inside it. An
    absolute path, a drive, or a ``..`` could point the settings at a share, and
    ``archive`` empties what lies in the models folder (issue 14)."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InputError(f"{where}: expected a path")
    shown = cut(value)
    windows = PureWindowsPath(value)  # a drive or a leading (back)slash, on any system
    if Path(value).is_absolute() or windows.drive or windows.root:
        raise InputError(f"{where}: {shown!r} is outside the workspace (an absolute path)")
    parts = [p for p in PurePosixPath(value.replace("\\", "/")).parts if p != "."]
    if ".." in parts:
        raise InputError(f"{where}: {shown!r} is outside the workspace (it climbs out with '..')")
    if not parts:
        raise InputError(f"{where}: {shown!r} is the workspace folder itself; name one inside it")
    return value


def backup_path(book: Path, n: int) -> Path:
    """The ``n``-th newest backup of the workbook ``book``: registry.xlsx ->
    registry.1.bak.xlsx. The name keeps the workbook's extension, so a backup opens in
    Excel or LibreOffice as it is."""
    return book.with_name(f"{book.stem}.{n}.bak{book.suffix}")


def backups_of(book: Path) -> list[Path]:
    """The backups of ``book`` on disk, newest first."""
    pattern = re.compile(re.escape(book.stem) + r"\.([1-9][0-9]*)\.bak" + re.escape(book.suffix))
    found = []
    for p in book.parent.glob(f"{glob.escape(book.stem)}.*.bak{glob.escape(book.suffix)}"):
        match = pattern.fullmatch(p.name)
        if match:
            found.append((int(match.group(1)), p))
    return [p for _, p in sorted(found)]


def refuse_own_files(path: Path, label: str, *, option: str | None = None) -> None:
    """Refuse an output path that would overwrite a workspace's own files (its settings,
    workbook and backups, keyring) or write into its artefact storage or archive: a
    report or export written there would replace the registry or break a bag. Any
    workspace counts, the one in use or another, found from regbook.toml above ``path``.
    """
    target = Path(os.path.abspath(path))
    try:
        target = target.resolve()
    except (OSError, RuntimeError):
        pass  # a loop of links: the write itself will say what is wrong
    for folder in target.parents:
        if not path_is(folder / CONFIG_NAME, Path.is_file):
            continue
        try:
            ws = Workspace.load(folder)
        except InputError:
            own, stores = [folder / CONFIG_NAME], []
        else:
            book = ws.workbook_path
            own = [ws.config_path, book, ws.keyring_path, book.with_name(f".{book.name}.lock")]
            own += backups_of(book)
            stores = [ws.models_dir, ws.archive_dir]
        if any(target == _resolved(p) for p in own):
            raise InputError(
                f"{label} {path}: that is the workspace's own {target.name}; write elsewhere",
                option=option,
            )
        for store in stores:
            if target.is_relative_to(_resolved(store)):
                raise InputError(
                    f"{label} {path}: inside the workspace's {store.name}/ folder, "
                    "which only regbook writes; write elsewhere",
                    option=option,
                )
        return


def path_is(path: Path, test: Callable[[Path], bool]) -> bool:
    """``test(path)`` (``Path.is_file``, ``Path.is_dir``, ``Path.exists``), False where the
    file system refuses the question: a path from a cell can be longer than any name it
    allows."""
    try:
        return test(path)
    except OSError:
        return False


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


@dataclass(frozen=True)
class Workspace:
    root: Path
    settings: Settings

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def workbook_path(self) -> Path:
        return self.root / self.settings.workbook

    @property
    def keyring_path(self) -> Path:
        return self.root / self.settings.keyring

    @property
    def models_dir(self) -> Path:
        return self.root / self.settings.models

    @property
    def archive_dir(self) -> Path:
        return self.root / self.settings.archive

    @classmethod
    def load(cls, root: Path) -> Workspace:
        config = root / CONFIG_NAME
        try:
            text = config.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{root}: not a regbook workspace (no {CONFIG_NAME})") from None
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{config}: cannot read: {err}") from None
        ws = cls(root.resolve(), Settings.parse(text, str(config)))
        ws._check_paths(str(config))
        return ws

    def _check_paths(self, source: str) -> None:
        """The [paths] settings as they resolve on disk: none may lead out of the
        workspace through a symlink, and the storage folders may not hold each other or
        the workspace's own files (archive would take a bag, or the workbook, for an
        artefact it owns)."""
        where = {}
        for key in ("workbook", "keyring", "models", "archive"):
            text = getattr(self.settings, key)
            target = _resolved(self.root / text)
            if not target.is_relative_to(self.root):
                raise InputError(
                    f"{source}: [paths] {key}: {cut(text)!r} is outside the workspace "
                    f"(through a symlink, to {cut(str(target))})"
                )
            if target == self.root:
                raise InputError(
                    f"{source}: [paths] {key}: {cut(text)!r} is the workspace folder "
                    "itself; name one inside it"
                )
            where[key] = target
        for key in ("archive", "models", "workbook", "keyring"):
            for store in ("models", "archive"):
                if key != store and where[key].is_relative_to(where[store]):
                    raise InputError(
                        f"{source}: [paths] {key}: {cut(getattr(self.settings, key))!r} is "
                        f"inside the {store} folder ({cut(getattr(self.settings, store))!r})"
                    )

    @classmethod
    def find(cls, explicit: Path | None = None, start: Path | None = None) -> Workspace:
        """The workspace named by ``explicit``, ``REGBOOK_WORKSPACE``, or found upwards."""
        if explicit is None and os.environ.get(ENV_WORKSPACE):
            explicit = Path(os.environ[ENV_WORKSPACE])
        if explicit is not None:
            return cls.load(explicit)
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_NAME).is_file():
                return cls.load(folder)
        raise InputError(
            f"no {CONFIG_NAME} in {here} or any folder above it: run `regbook init DIR`, "
            "or give --workspace DIR"
        )

    def resolve_storage(self, location: str, where: str) -> Path:
        """The path a Storage location names. Relative paths are inside the workspace:
        one that climbs out (``..``) or passes through a symlink is refused."""
        text = location.strip()
        if not text:
            raise InputError(f"{where}: storage location is empty")
        path = Path(text)
        if path.is_absolute():
            return self._not_itself(path, text, where)
        if ".." in Path(text.replace("\\", "/")).parts:
            raise InputError(
                f"{where}: storage location {text!r} climbs out of the workspace with '..'"
            )
        current = self.root
        for part in path.parts:
            current = current / part
            try:
                linked = current.is_symlink()
            except OSError as err:  # a name longer than the file system allows, say
                raise InputError(
                    f"{where}: storage location {cut(text)!r} cannot be used: {err.strerror}"
                ) from None
            if linked:
                raise InputError(
                    f"{where}: storage location {text!r} passes through a "
                    f"symlink ({current.relative_to(self.root).as_posix()})"
                )
        return self._not_itself(current, text, where)

    def _not_itself(self, path: Path, text: str, where: str) -> Path:
        """``path``, unless it is the workspace, a folder holding it, or one of its own
        files: an artefact stored there would change with every write of the registry."""
        target = _resolved(path)
        if self.root.is_relative_to(target):
            raise InputError(f"{where}: storage location {cut(text)!r} holds the workspace itself")
        own = (self.config_path, self.workbook_path, self.keyring_path)
        if any(target == _resolved(p) for p in own):
            raise InputError(
                f"{where}: storage location {cut(text)!r} is the workspace's own {target.name}"
            )
        return path

    def display_path(self, path: Path) -> str:
        """How a path is written into the workbook: workspace-relative POSIX if inside."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
