"""Archiving: a retired version moved into a BagIt bag, retrieved and fixity-checked.

``archive`` needs a signed approval to Archived and moves the artefact into
``archive/NAME/VERSION/``, a BagIt bag (RFC 8493, sha256 manifests) that ``sha256sum``
and any BagIt validator can check without regbook (archive/README.md, docs/archive.md)::

    done = archive(ws, ModelRef.parse("credit-risk@3"), lead_key)
    done.storage, done.retain_until          # 'archive/credit-risk/3', '2036-11-26'
    retrieve(ws, ModelRef.parse("credit-risk@3"), Path("restored"))
    fixity(ws).ok

The order is DESIGN section 7's: verify the artefact hash, build the bag in a hidden
folder beside its destination, validate it, fsync, rename it into place, append the
ledger event, and only then remove the original (only when it lies in the workspace's
own ``models/``; anything elsewhere is copied and left in place). Running the command
again after a crash at any step finishes the move.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from regbook.check.bags import (
    CARD_FILE,
    EVENTS_FILE,
    KEYRING_FILE,
    SIGNATURE,
    TAGMANIFEST,
    bag_findings,
    bag_path,
    bag_storage,
    bagged_states,
    full_check,
    inside_models,
    read_bag_info,
    write_tagmanifest,
)
from regbook.check.verify import artefact_findings, verify
from regbook.core import fs
from regbook.core.errors import InputError, Listed, RegbookError, VerificationFailed
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace, refuse_own_files
from regbook.crypto.keys import SigningKey, check_signature, load_keyring, namespace_for, sign
from regbook.ledger.events import LedgerEvent, canonical
from regbook.ledger.rules import transition_problem, usable_approval
from regbook.ledger.state import VersionState
from regbook.registry.snapshot import LEDGER_ONLY, Snapshot, open_registry
from regbook.registry.transaction import Identity, Transaction, acting_identity, write_changes
from regbook.render.card import build_card, render_card_markdown
from regbook.storage.hashing import ContentHash, hash_path, hash_tree, open_regular, progress_bar

# The step boundaries of an archive, in order: a crash at any of them leaves a state
# that rerunning the command finishes (the crash tests stop the process at each).
STEPS = ("after-bag", "after-validate", "after-rename", "after-event")


# bagit logs every problem it finds as a warning; regbook reports them as findings.
logging.getLogger("bagit").addHandler(logging.NullHandler())
logging.getLogger("bagit").propagate = False

PathText = str | os.PathLike[str]


class Progress(Protocol):
    """What a copy reports its bytes to: a ``ProgressBar``, or the stand-in for none."""

    def advance(self, n: int) -> None: ...


def step_done(step: str) -> None:
    """Called as each of ``STEPS`` is passed; does nothing (a hook for crash tests)."""


class ArchiveRefused(RegbookError, Listed):
    """Archiving refused: every unmet precondition is listed (exit 1)."""

    exit_code = 1
    bullet = "  - "

    def __init__(self, ref: ModelRef, unmet: list[str]):
        self.unmet = unmet
        head = f"archiving {ref} refused; nothing was written. Unmet:"
        super().__init__(self.listed(head, unmet))


@dataclass(frozen=True)
class Archived:
    ref: ModelRef
    composite_id: str
    storage: str
    retain_until: str
    seq: int
    removed: str | None = None  # the original, removed from models/
    kept: str | None = None  # the original, outside models/: copied, left in place
    notes: tuple[str, ...] = ()  # what a rerun found and finished

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "composite_id": self.composite_id,
            "storage": self.storage,
            "retain_until": self.retain_until,
            "ledger_seq": self.seq,
            "original_removed": self.removed,
            "original_kept": self.kept,
            "notes": list(self.notes),
        }


def retain_until(day: date, years: int) -> date:
    """``day`` plus ``years``; 29 February runs to 1 March, never short of the period."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


# --- archive -------------------------------------------------------------------------


def archive(ws: Workspace, ref: ModelRef, key: SigningKey, *, role: str | None = None) -> Archived:
    """Move ``ref``'s artefact into its bag and record the move; finish an interrupted one."""

    with Transaction(ws, checked=True) as tx:
        state = tx.version(ref)
        original_text = state.artefact_storage
        original = ws.resolve_storage(original_text, str(ref))
        if state.stage == "Archived":
            event = state.stage_event
            if event is None or event.kind != "archive":
                raise InputError(
                    f"{ref} is Archived by a transition without a bag (ledger event "
                    f"{event.seq if event else '?'}); Archived is final"
                )
            return _finish(ws, state, event, original, original_text)
        problem = transition_problem(state.stage, "Archived")
        if problem:
            raise InputError(f"cannot archive {ref}: {problem}")
        roles = ws.settings.transition_roles(state.stage, "Archived")
        unmet: list[str] = []
        identity = None
        try:
            identity = acting_identity(ws, key, roles, f"archiving {state.stage} -> Archived", role)
        except InputError as err:
            unmet.append(str(err))
        approval, reasons = usable_approval(ws, load_keyring(ws), tx.registry, state, "Archived")
        unmet.extend(reasons)
        if unmet or identity is None or approval is None:
            raise ArchiveRefused(ref, unmet)
        patch = tx.patch()  # first: a workbook that cannot be written gets no bag
        payload, notes = bag_version(tx, state, identity, approval)
        event = tx.sign(identity, "archive", ref.name, ref.version, payload)
        write_changes(tx, patch, [(ref.name, ref.version or 0)], draft_rows={})
        tx.save(patch)
        step_done("after-event")
        removed, kept = dispose_original(ws, state)
    return Archived(
        ref,
        state.composite_id,
        payload["storage"],
        payload["retain_until"],
        event.seq,
        removed,
        kept,
        tuple(notes),
    )


def bag_version(
    tx: Transaction, state: VersionState, identity: Identity, approval: LedgerEvent
) -> tuple[dict[str, Any], list[str]]:
    """Put ``state``'s bag in place (build it, or reuse one an interrupted run left) and
    return the archive event's payload; the caller signs and saves it, then calls
    ``dispose_original``. ``tx`` is a checked transaction: its findings go into the
    bag's model card."""
    ws = tx.ws
    dest = bag_path(ws, ModelRef(state.model, state.version))
    original_text = state.artefact_storage
    original = ws.resolve_storage(original_text, f"{state.model}@{state.version}")
    notes: list[str] = []
    if dest.exists():
        info = _reuse_bag(ws, state, dest, identity)
        notes.append(f"{ws.display_path(dest)} was already built and valid: reused")
    else:
        _check_original(original, original_text, state)
        card = bag_card(tx.snapshot, state)  # before any file is made
        info = _build_bag(ws, state, original, dest, identity, namespace_for(identity.role), card)
    manifest_sha = hashlib.sha256((dest / TAGMANIFEST).read_bytes()).hexdigest()
    payload = {
        "approval": {"hash": approval.hash, "seq": approval.seq},
        "bag_tagmanifest_sha256": manifest_sha,
        "content_hash": state.content_hash,
        "from": state.stage,
        "retain_until": info["Retain-Until"],
        "storage": ws.display_path(dest),
        "to": "Archived",
    }
    return payload, notes


def dispose_original(ws: Workspace, state: VersionState) -> tuple[str | None, str | None]:
    """After the archive event is saved: (removed, kept) original of ``state``."""
    original_text = state.artefact_storage
    original = ws.resolve_storage(original_text, f"{state.model}@{state.version}")
    return _dispose(ws, original, original_text)


def _check_original(original: Path, original_text: str, state: VersionState) -> None:

    found = artefact_findings(original, original_text, state)
    if found:
        raise VerificationFailed(
            f"the artefact of {state.model}@{state.version} is not as sealed; nothing was written",
            found,
        )


def _finish(
    ws: Workspace, state: VersionState, event: LedgerEvent, original: Path, original_text: str
) -> Archived:
    """The ledger has the archive event: remove the original if it is still there, once
    the bag is checked again."""
    ref = ModelRef(state.model, state.version)
    notes: list[str] = []
    removed = kept = None
    if (original.exists() or original.is_symlink()) and inside_models(ws, original):
        found = bag_findings(ws, state, level="full")
        if any(f.is_problem for f in found):
            raise VerificationFailed(
                f"{ref} is archived but its bag does not verify; the original at "
                f"{original_text} is kept",
                found,
            )
        notes.append("the ledger already records the move: finishing it")
        removed, kept = _dispose(ws, original, original_text)
    else:
        notes.append(f"{ref} is already archived in {state.storage}; nothing to do")
    p = event.payload
    return Archived(
        ref,
        state.composite_id,
        str(p.get("storage")),
        str(p.get("retain_until")),
        event.seq,
        removed,
        kept,
        tuple(notes),
    )


def _bag_info(ws: Workspace, state: VersionState, principal: str, role: str) -> dict[str, str]:
    at = fs.utc_now()
    day = datetime.strptime(at[:10], "%Y-%m-%d").date()
    p = state.payload
    registry_id = state.register.payload.get("registry") or ws.settings.registry_id
    return {
        "External-Identifier": state.composite_id,
        **({"Registry-ID": str(registry_id)} if registry_id else {}),
        "Bagging-Date": day.isoformat(),
        "Content-Hash": state.content_hash,
        "Training-Data-Version": p.get("data_version", ""),
        "Code-Commit": p.get("code_commit", ""),
        "Pipeline-Execution-ID": p.get("pipeline_run", ""),
        "Archived-At": at,
        "Archived-By": f"{principal} ({role})",
        "Retain-Until": retain_until(day, ws.settings.retention_years).isoformat(),
    }


def _events_jsonl(state: VersionState) -> bytes:
    lines = []
    for e in state.events:
        lines.append(
            canonical(
                {
                    "seq": e.seq,
                    "at": e.at,
                    "kind": e.kind,
                    "model": e.model,
                    "version": e.version,
                    "payload": e.payload,
                    "prev": e.prev,
                    "hash": e.hash,
                    "signer": e.signer,
                    "fingerprint": e.fingerprint,
                    "signature": e.signature,
                }
            )
            + "\n"
        )
    return "".join(lines).encode("utf-8")


def _build_bag(
    ws: Workspace,
    state: VersionState,
    original: Path,
    dest: Path,
    identity: Identity,
    namespace: str,
    card: bytes | None,
) -> dict[str, str]:
    import bagit

    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".partial-{state.version}-*"):
        # Copies left by an interrupted run, never the artefact itself.
        shutil.rmtree(stale, onerror=_writable_and_retry)
    staging = fs.staging_folder(dest.parent, f".partial-{state.version}-")
    sources = [p for p in original.rglob("*") if p.is_file()] if original.is_dir() else [original]
    total = sum(p.stat().st_size for p in sources)
    bar = progress_bar(None, total, f"archiving {state.model}@{state.version}")
    try:
        if original.is_dir():
            shutil.copytree(
                original, staging, dirs_exist_ok=True, copy_function=_counting_copy(bar)
            )
            for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
                folder.chmod(folder.stat().st_mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        else:
            _counting_copy(bar)(original, staging / original.name)
    finally:
        bar.close()
    info = _bag_info(ws, state, identity.principal, identity.role)
    try:
        # make_bag works inside the folder with relative names; regbook never opens the
        # bag with bagit.Bag, which misreads a path holding "tagmanifest-" (check.bags).
        bagit.make_bag(str(staging), dict(info), checksums=["sha256"])
    except (bagit.BagError, OSError) as err:
        raise InputError(f"cannot build the bag for {state.model}@{state.version}: {err}") from None
    (staging / "bagit.txt").write_text(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    (staging / EVENTS_FILE).write_bytes(_events_jsonl(state))
    (staging / KEYRING_FILE).write_bytes(ws.keyring_path.read_bytes())
    if card is not None:  # None: a bag as made before model cards, which stays valid
        (staging / CARD_FILE).write_bytes(card)
    write_tagmanifest(staging)  # the tag manifest now covers every tag file
    manifest = (staging / TAGMANIFEST).read_bytes()
    (staging / SIGNATURE).write_text(sign(manifest, identity.key, namespace), encoding="utf-8")
    step_done("after-bag")
    problems = full_check(staging, state)
    if problems:
        raise VerificationFailed(
            f"the bag built for {state.model}@{state.version} does not validate; nothing was "
            "written: " + "; ".join(problems)
        )
    _fsync_tree(staging)
    step_done("after-validate")
    os.replace(staging, dest)
    fs.fsync_dir(dest.parent)
    step_done("after-rename")
    return info


def _counting_copy(bar: Progress) -> Callable[[PathText, PathText], PathText]:
    """A copy function for shutil that advances the progress bar (only the bytes, never
    the permissions: the bag's copy must stay writable until bagit has moved it)."""

    def copy(src: PathText, dst: PathText) -> PathText:
        # Opened as hashing opens it: a symlink swapped in since the hash was checked is
        # refused, not followed into the bag.
        with open_regular(os.fspath(src)) as fin, open(dst, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
                bar.advance(len(chunk))
        return dst

    return copy


def _reuse_bag(
    ws: Workspace, state: VersionState, dest: Path, identity: Identity
) -> dict[str, str]:
    """A bag already in place (a run interrupted after the rename): use it only if it is a
    valid bag of exactly this version, signed by the key archiving it now."""

    problems = full_check(dest, state)
    info = read_bag_info(dest)
    earlier = state.bag_event
    if earlier is not None and not problems:
        # Archived again after a rollback: the bag the ledger already records, unchanged
        # and signed by the archive that built it, is this version's bag.
        found = [f.message for f in bag_findings(ws, state, "tags") if f.is_problem]
        if not found:
            return info
        problems += found
    if not problems and info.get("External-Identifier") != state.composite_id:
        problems.append(
            f"bag-info.txt names {info.get('External-Identifier')!r}, not {state.composite_id}"
        )
    if not problems:
        try:
            sig = (dest / SIGNATURE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            sig = ""
        check = check_signature(
            (dest / TAGMANIFEST).read_bytes(),
            sig,
            load_keyring(ws),
            identity.principal,
            namespace_for(identity.role),
            datetime.now(UTC),
        )
        if not check.ok:
            problems.append(
                f"{SIGNATURE} is not {identity.principal}'s signature as {identity.role} "
                f"({check.detail}): rerun with the key that built the bag"
            )
    if problems:
        raise VerificationFailed(
            f"{ws.display_path(dest)} exists but is not a valid bag of "
            f"{state.model}@{state.version}; nothing was written",
            [
                Finding.make("RB802", ws.display_path(dest), p, state.model, state.version)
                for p in problems
            ],
        )
    return info


def _dispose(ws: Workspace, original: Path, original_text: str) -> tuple[str | None, str | None]:
    """Remove the original once the bag holds a verified copy, but only from the
    workspace's own storage; anything elsewhere stays where it is."""
    if not original.exists() and not original.is_symlink():
        return None, None
    if not inside_models(ws, original):
        return None, original_text
    if original.is_dir() and not original.is_symlink():
        shutil.rmtree(original, onerror=_writable_and_retry)
    else:
        _unlink(original)
    models = ws.models_dir.resolve()
    parent = original.parent
    while parent.resolve() != models and models in parent.resolve().parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return original_text, None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except PermissionError:  # a read-only file on Windows
        path.chmod(stat.S_IWRITE)
        path.unlink()


def _writable_and_retry(func: Callable[[str], object], path: str, _exc: object) -> None:
    os.chmod(path, stat.S_IWRITE | stat.S_IREAD | stat.S_IEXEC)
    func(path)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fs.fsync_dir(Path(folder))


# --- checking a bag ------------------------------------------------------------------


# --- retrieve ------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrieved:
    ref: ModelRef
    composite_id: str
    content_hash: str
    to: Path
    files: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.ref.name,
            "version": self.ref.version,
            "composite_id": self.composite_id,
            "content_hash": self.content_hash,
            "to": str(self.to),
            "files": self.files,
        }


def _archived_state(ws: Workspace, ref: ModelRef) -> tuple[Snapshot, VersionState]:

    checked = open_registry(ws, sheets=LEDGER_ONLY)
    state = checked.registry.get(ref.name, ref.version or 0)
    if state is None:
        raise InputError(checked.registry.unknown(ref, ref.name, ref.version))
    if state.stage_event is None or state.stage_event.kind != "archive":
        raise InputError(f"{ref} is in {state.stage}, not archived in a bag")
    return checked, state


def retrieve(ws: Workspace, ref: ModelRef, to: Path) -> Retrieved:
    """Validate the bag fully, copy its payload into ``to`` (which must not exist, or be
    empty) and check the copy's content hash; a bag that does not validate is refused
    with every failing file, and nothing is copied."""
    _checked, state = _archived_state(ws, ref)
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise InputError(
            f"to {to}: exists and is not an empty folder; nothing was copied", option="to"
        )
    refuse_own_files(to, "to", option="to")
    found = [f for f in bag_findings(ws, state, "full") if f.is_problem]
    if found:
        raise VerificationFailed(
            f"the bag of {ref} does not validate ({len(found)} problem"
            f"{'s' if len(found) != 1 else ''}); nothing was copied",
            found,
        )
    data = ws.resolve_storage(state.storage, str(ref)) / "data"
    to.parent.mkdir(parents=True, exist_ok=True)
    staging = fs.staging_folder(to.parent, f".partial-{to.name}-", like=to)
    try:
        shutil.copytree(data, staging, dirs_exist_ok=True, copy_function=shutil.copyfile)
        sealed = ContentHash.parse(state.content_hash)
        files = [p for p in staging.rglob("*") if p.is_file()]
        now = (
            hash_tree(staging, progress=False)
            if sealed.algorithm == "sha256-tree"
            else hash_path(files[0], progress=False)
        )
        if now != sealed:
            raise VerificationFailed(
                f"the copy of {ref} hashes to {now}, not the sealed {sealed}; nothing was copied"
            )
        if to.exists():
            to.rmdir()
        os.replace(staging, to)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Retrieved(ref, state.composite_id, state.content_hash, to, len(files))


# --- rollback: the artefact back out of its bag ----------------------------------------


def reinstate_from_bag(ws: Workspace, state: VersionState) -> str:
    """Copy an archived version's artefact out of its bag (which stays) back to where it
    lived before the archive if that is the workspace's own storage, else into
    ``models/NAME/VERSION/``; the copy is hashed against the sealed content hash before
    it is renamed into place, and made read-only. Returns the new storage location. A
    copy already there with the sealed hash (a run that failed to save) is reused;
    anything else there is refused: nothing is overwritten."""
    label = f"{state.model}@{state.version}"
    sealed = ContentHash.parse(state.content_hash)
    data = ws.resolve_storage(bag_storage(state), label) / "data"
    before = ws.resolve_storage(state.artefact_storage, label)
    files = [p for p in data.rglob("*") if p.is_file()]
    name = before.name if sealed.algorithm == "sha256-tree" or not files else files[0].name
    dest = (
        before
        if inside_models(ws, before)
        else ws.models_dir / state.model / str(state.version) / name
    )
    if dest.exists() or dest.is_symlink():
        if not dest.is_symlink() and hash_path(dest, progress=False) == sealed:
            return ws.display_path(dest)
        raise InputError(
            f"{ws.display_path(dest)}: exists and is not the sealed artefact of {label}; "
            "move it away to roll back (nothing was written)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = fs.staging_folder(dest.parent, ".partial-")
    staging = staging_dir / dest.name
    copy = _counting_copy(_NoBar())
    try:
        if sealed.algorithm == "sha256-tree":
            shutil.copytree(data, staging, copy_function=copy)
            now = hash_tree(staging, progress=False)
        else:
            if len(files) != 1:
                raise InputError(f"the bag of {label} holds {len(files)} files, not one")
            copy(files[0], staging)
            now = hash_path(staging, progress=False)
        if now != sealed:
            raise VerificationFailed(
                f"the copy out of the bag of {label} hashes to {now}, not the sealed "
                f"{sealed}; nothing was written"
            )
        for p in [staging] if staging.is_file() else [p for p in staging.rglob("*") if p.is_file()]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, onerror=_writable_and_retry) if staging.is_dir() else _unlink(
                staging
            )
        staging_dir.rmdir()
    fs.fsync_dir(dest.parent)
    return ws.display_path(dest)


class _NoBar:
    def advance(self, n: int) -> None:
        """No progress to show."""


# --- fixity --------------------------------------------------------------------------


@dataclass
class FixityReport:
    bags: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fast: bool = False

    @property
    def ok(self) -> bool:
        return not any(f.is_problem for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mode": "fast" if self.fast else "full",
            "checked": len(self.bags),
            "bags": self.bags,
            "findings": [f.to_json() for f in self.findings],
        }


def fixity(ws: Workspace, *, fast: bool = False) -> FixityReport:
    """Validate every archived version's bag; ``fast`` checks Payload-Oxum and the tag
    files only, without re-reading the payload."""

    checked = open_registry(ws, sheets=LEDGER_ONLY)
    report = FixityReport(fast=fast)
    for state in sorted(bagged_states(checked.registry), key=lambda s: (s.model, s.version)):
        found = bag_findings(ws, state, "fast" if fast else "full")
        storage = bag_storage(state)
        info = read_bag_info(ws.root / storage) if storage else {}
        report.bags.append({
            "model": state.model, "version": state.version,
            "composite_id": state.composite_id, "storage": storage,
            "retain_until": info.get("Retain-Until"), "ok": not found,
            "problems": [f.message for f in found],
        })  # fmt: skip
        report.findings += found
    soon = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    for bag in report.bags:
        bag["due_within_12_months"] = bool(bag["retain_until"]) and bag["retain_until"] <= soon
    known = {(ws.root / bag_storage(s)).resolve() for s in bagged_states(checked.registry)}
    for declaration in sorted(ws.archive_dir.glob("*/*/bagit.txt")):
        bag = declaration.parent
        if bag.name.startswith(".") or bag.parent.name.startswith("."):
            continue  # a partial bag of an interrupted archive: rerunning it finishes
        if bag.resolve() not in known:
            where = bag.relative_to(ws.root).as_posix()
            report.findings.append(Finding.make(
                "RB806", where, "a bag that no archive event in the ledger records (copied "
                "in by hand, or from another registry)"))  # fmt: skip
    return report


def bag_card(snapshot: Snapshot, state: VersionState) -> bytes:
    """The model card written into a version's archive bag, as Markdown, with what
    verify finds in the transaction's snapshot (the artefact was just re-hashed)."""
    ref = ModelRef(state.model, state.version)
    report = verify(snapshot, scope=ref, artefacts=False, threads=1)
    context = (
        f"Written by `regbook archive` into the archive bag of {ref}; the stage shown is "
        "the one the version had before it was archived."
    )
    return render_card_markdown(build_card(snapshot, state, report.findings, context)).encode(
        "utf-8"
    )
