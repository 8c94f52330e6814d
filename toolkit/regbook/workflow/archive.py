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
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from regbook.core import fs
from regbook.core.errors import InputError, Listed, RegbookError, VerificationFailed, cut
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace, refuse_own_files
from regbook.ledger.events import LedgerEvent, canonical, signer_role
from regbook.ledger.state import VersionState
from regbook.storage.hashing import ContentHash, _progress_bar, hash_path, hash_tree

# The step boundaries of an archive, in order: a crash at any of them leaves a state
# that rerunning the command finishes (the crash tests stop the process at each).
STEPS = ("after-bag", "after-validate", "after-rename", "after-event")

TAGMANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = TAGMANIFEST + ".sig"
EVENTS_FILE = "ledger-events.jsonl"
KEYRING_FILE = "allowed_signers"
CARD_FILE = "model-card.md"  # bags made before cards existed lack it, and stay valid

# bagit logs every problem it finds as a warning; regbook reports them as findings.
logging.getLogger("bagit").addHandler(logging.NullHandler())
logging.getLogger("bagit").propagate = False


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


def bag_path(ws: Workspace, ref: ModelRef) -> Path:
    return ws.archive_dir / ref.name / str(ref.version)


# --- archive -------------------------------------------------------------------------


def archive(ws: Workspace, ref: ModelRef, key: Any, role: str | None = None) -> Archived:
    """Move ``ref``'s artefact into its bag and record the move; finish an interrupted one."""
    from regbook.workflow.governance import _version, transition_problem, usable_approval
    from regbook.workflow.lifecycle import Transaction, acting_identity, write_changes

    with Transaction(ws) as tx:
        state = _version(tx, ref)
        original_text = state.register.payload["artefact"]["storage"]
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
        approval, reasons = usable_approval(ws, ws.keyring(), tx.registry, state, "Archived")
        unmet.extend(reasons)
        if unmet or identity is None or approval is None:
            raise ArchiveRefused(ref, unmet)
        patch = tx.patch()  # first: a workbook that cannot be written gets no bag
        payload, notes = bag_version(ws, state, identity, approval)
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
    ws: Workspace, state: VersionState, identity: Any, approval: LedgerEvent
) -> tuple[dict[str, Any], list[str]]:
    """Put ``state``'s bag in place (build it, or reuse one an interrupted run left) and
    return the archive event's payload; the caller signs and saves it, then calls
    ``dispose_original``."""
    from regbook.crypto.keys import namespace_for

    dest = bag_path(ws, ModelRef(state.model, state.version))
    original_text = state.register.payload["artefact"]["storage"]
    original = ws.resolve_storage(original_text, f"{state.model}@{state.version}")
    notes: list[str] = []
    if dest.exists():
        info = _reuse_bag(ws, state, dest, identity)
        notes.append(f"{ws.display_path(dest)} was already built and valid: reused")
    else:
        from regbook.reports.card import archive_card

        _check_original(original, original_text, state)
        card = archive_card(ws, state)  # before any file is made: a Cards problem stops here
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
    original_text = state.register.payload["artefact"]["storage"]
    original = ws.resolve_storage(original_text, f"{state.model}@{state.version}")
    return _dispose(ws, original, original_text)


def _check_original(original: Path, original_text: str, state: VersionState) -> None:
    from regbook.check.verify import artefact_findings

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
    if (original.exists() or original.is_symlink()) and _inside_models(ws, original):
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
    return {
        "External-Identifier": state.composite_id,
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
    identity: Any,
    namespace: str,
    card: bytes | None,
) -> dict[str, str]:
    import bagit

    from regbook.crypto.keys import sign

    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".partial-{state.version}-*"):
        # Copies left by an interrupted run, never the artefact itself.
        shutil.rmtree(stale, onerror=_writable_and_retry)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{state.version}-", dir=dest.parent))
    sources = [p for p in original.rglob("*") if p.is_file()] if original.is_dir() else [original]
    total = sum(p.stat().st_size for p in sources)
    bar = _progress_bar(None, total, f"archiving {state.model}@{state.version}")
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
        bag = bagit.make_bag(str(staging), dict(info), checksums=["sha256"])
    except (bagit.BagError, OSError) as err:
        raise InputError(f"cannot build the bag for {state.model}@{state.version}: {err}") from None
    (staging / "bagit.txt").write_text(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    (staging / EVENTS_FILE).write_bytes(_events_jsonl(state))
    (staging / KEYRING_FILE).write_bytes(ws.keyring_path.read_bytes())
    if card is not None:  # None: a bag as made before model cards, which stays valid
        (staging / CARD_FILE).write_bytes(card)
    bag = bagit.Bag(str(staging))
    bag.save()  # the tag manifest now covers every tag file
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


def _counting_copy(bar: Any) -> Any:
    """A copy function for shutil that advances the progress bar (only the bytes, never
    the permissions: the bag's copy must stay writable until bagit has moved it)."""

    def copy(src: Any, dst: Any) -> Any:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
                bar.advance(len(chunk))
        return dst

    return copy


def _reuse_bag(ws: Workspace, state: VersionState, dest: Path, identity: Any) -> dict[str, str]:
    """A bag already in place (a run interrupted after the rename): use it only if it is a
    valid bag of exactly this version, signed by the key archiving it now."""
    from regbook.crypto.keys import check_signature, namespace_for

    problems = full_check(dest, state)
    info = read_bag_info(dest)
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
            ws.keyring(),
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


def _inside_models(ws: Workspace, path: Path) -> bool:
    models = ws.models_dir.resolve()
    try:
        rel = path.resolve().relative_to(models)
    except (ValueError, OSError):
        return False
    return rel != Path(".")


def _dispose(ws: Workspace, original: Path, original_text: str) -> tuple[str | None, str | None]:
    """Remove the original once the bag holds a verified copy, but only from the
    workspace's own storage; anything elsewhere stays where it is."""
    if not original.exists() and not original.is_symlink():
        return None, None
    if not _inside_models(ws, original):
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


def _writable_and_retry(func: Any, path: str, _exc: Any) -> None:
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


def read_bag_info(path: Path) -> dict[str, str]:
    """bag-info.txt as a dict (the first value of a repeated label)."""
    out: dict[str, str] = {}
    try:
        text = (path / "bag-info.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep and not line[:1].isspace():
            out.setdefault(label.strip(), value.strip())
    return out


def validate_bag(path: Path, fast: bool = False) -> list[str]:
    """Every problem bagit's validator finds, one sentence each (empty: valid)."""
    import bagit

    try:
        bag = bagit.Bag(str(path))
        bag.validate(fast=fast)
    except bagit.BagValidationError as err:
        return [str(d) for d in err.details] or [str(err.message)]
    except (bagit.BagError, OSError, UnicodeDecodeError, ValueError) as err:
        return [str(err)]
    return []


def full_check(path: Path, state: VersionState) -> list[str]:
    """A bag validated in full, and its payload the sealed artefact: bagit for the
    structure and Payload-Oxum, then one hashing pass over the payload."""
    problems = _tag_problems(path) + _structure_problems(path)
    if problems:
        return problems
    problems, entries = _manifest_problems(path)
    if problems or entries is None:
        return problems
    return _sealed_problems(entries, state)


def _tag_problems(path: Path) -> list[str]:
    """The tag files against the tag manifest: cheap, so verify always checks them."""
    problems = []
    try:
        lines = (path / TAGMANIFEST).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        return [f"{TAGMANIFEST}: cannot be read: {err}"]
    for line in lines:
        digest, _sep, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not name:
            continue
        target = path / name
        try:
            now = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None
        except OSError:  # a name longer than the file system allows, say
            now = None
        if now is None:
            problems.append(f"{cut(name)} exists in manifest but was not found on filesystem")
            continue
        if now != digest.lower():
            problems.append(f"{name} sha256 validation failed: expected={digest} found={now}")
    return problems


def bag_findings(ws: Workspace, state: VersionState, level: str = "full") -> list[Finding]:
    """Findings about an archived version's bag. ``level``: "tags" (the bag is there, its
    tag manifest is the one the ledger recorded and signed, its tag files match it),
    "fast" (also bagit's Payload-Oxum check) or "full" (also every payload checksum and
    the sealed content hash)."""
    from regbook.crypto.keys import check_signature, namespace_for

    event = state.stage_event
    label = f"{state.model}@{state.version}"
    where = state.storage

    def finding(code: str, text: str, at: str = where) -> Finding:
        return Finding.make(code, at, f"{label}: {text}", state.model, state.version)

    try:
        path = ws.resolve_storage(state.storage, label)
    except InputError as err:
        return [finding("RB801", str(err))]
    if not (path / "bagit.txt").is_file():
        return [finding("RB801", "the archived bag is missing (no bagit.txt)")]
    out: list[Finding] = []
    if event is not None:
        recorded = event.payload.get("bag_tagmanifest_sha256")
        try:
            manifest = (path / TAGMANIFEST).read_bytes()
        except OSError:
            manifest = None
        if manifest is None:
            out.append(finding("RB804", f"{TAGMANIFEST} is missing", f"{where}/{TAGMANIFEST}"))
        else:
            now = hashlib.sha256(manifest).hexdigest()
            if now != recorded:
                out.append(finding(
                    "RB804", f"{TAGMANIFEST} has sha256 {now[:16]}..., the ledger recorded "
                    f"{str(recorded)[:16]}... (event {event.seq})", f"{where}/{TAGMANIFEST}",
                ))  # fmt: skip
            try:
                sig = (path / SIGNATURE).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                sig = ""
            check = check_signature(
                manifest,
                sig,
                ws.keyring(),
                event.signer,
                namespace_for(signer_role(event) or ""),
                event.when,
            )
            if not check.ok:
                out.append(finding("RB804", f"{SIGNATURE}: {check.detail}", f"{where}/{SIGNATURE}"))
    problems = _tag_problems(path)
    if level == "fast":
        problems += [p for p in validate_bag(path, fast=True) if p not in problems]
    payload: list[tuple[str, str]] | None = None
    if level == "full":
        # The checks of a BagIt validator, with each payload file hashed once (large
        # files in parallel); the same digests then say whether the payload is the
        # sealed artefact, without reading it a second time.
        problems += [p for p in _structure_problems(path) if p not in problems]
        if not problems:
            manifest_problems, payload = _manifest_problems(path)
            problems += manifest_problems
    out += [finding("RB802", p) for p in problems]
    if level == "full" and not problems and payload is not None:
        out += [finding("RB803", p, f"{where}/data") for p in _sealed_problems(payload, state)]
    return out


def _structure_problems(path: Path) -> list[str]:
    """What a BagIt validator checks before hashing (RFC 8493): the bag declaration, a
    sha256 payload manifest, the payload folder, and Payload-Oxum (octets.files)."""
    problems = []
    try:
        declaration = (path / "bagit.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ["bagit.txt is missing or unreadable"]
    if "BagIt-Version:" not in declaration:
        problems.append("bagit.txt does not declare a BagIt-Version")
    if not (path / "manifest-sha256.txt").is_file():
        problems.append("manifest-sha256.txt is missing")
    data = path / "data"
    if not data.is_dir():
        return [*problems, "the payload folder data/ is missing"]
    oxum = read_bag_info(path).get("Payload-Oxum")
    if oxum:
        files = octets = 0
        stack = [str(data)]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        files += 1
                        octets += entry.stat(follow_symlinks=False).st_size
        if oxum.strip() != f"{octets}.{files}":
            problems.append(
                f"Payload-Oxum validation failed: expected {oxum.strip()}, found {octets}.{files}"
            )
    else:
        problems.append("bag-info.txt has no Payload-Oxum")
    return problems


def _manifest_problems(path: Path) -> tuple[list[str], list[tuple[str, str]] | None]:
    """Every payload file hashed once against manifest-sha256.txt, as a BagIt validator
    would; returns the problems and the payload's ``(hex, path under data/)`` entries."""
    from regbook.storage.hashing import tree_manifest

    try:
        lines = (path / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
        entries = tree_manifest(path / "data")
    except (OSError, UnicodeDecodeError, InputError) as err:
        return [f"the payload cannot be checked: {err}"], None
    listed: dict[str, str] = {}
    for line in lines:
        digest, _sep, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if name:
            listed[name] = digest.lower()
    found = {f"data/{rel}": digest for digest, rel in entries}
    problems = []
    for name in sorted(listed.keys() - found.keys()):
        problems.append(f"{name} exists in manifest but was not found on filesystem")
    for name in sorted(found.keys() - listed.keys()):
        problems.append(f"{name} exists on filesystem but is not in the manifest")
    for name in sorted(listed.keys() & found.keys()):
        if listed[name] != found[name]:
            problems.append(
                f"{name} sha256 validation failed: expected={listed[name]} found={found[name]}"
            )
    return problems, entries


def _sealed_problems(entries: list[tuple[str, str]], state: VersionState) -> list[str]:
    """Whether the (already hashed) payload is the artefact as sealed."""
    from regbook.storage.hashing import manifest_bytes

    sealed = ContentHash.parse(state.content_hash)
    if sealed.algorithm == "sha256-tree":
        now = ContentHash("sha256-tree", hashlib.sha256(manifest_bytes(entries)).hexdigest())
    else:
        if len(entries) != 1:
            return [f"data/ holds {len(entries)} files; a file artefact's bag holds one"]
        now = ContentHash("sha256", entries[0][0])
    if now != sealed:
        return [f"the payload hashes to {str(now)[:28]}..., not the sealed {str(sealed)[:28]}..."]
    return []


def archived_states(registry: Any) -> list[VersionState]:
    """The versions whose current stage was set by an archive event (they have a bag)."""
    return [
        s
        for s in registry.versions.values()
        if s.stage_event is not None and s.stage_event.kind == "archive"
    ]


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


def _archived_state(ws: Workspace, ref: ModelRef) -> tuple[Any, VersionState]:
    from regbook.check.verify import check_ledger

    checked = check_ledger(ws)
    state = checked.registry.get(ref.name, ref.version or 0)
    if state is None:
        raise InputError(f"{ref}: no such sealed version")
    if state.stage_event is None or state.stage_event.kind != "archive":
        raise InputError(f"{ref} is in {state.stage}, not archived in a bag")
    return checked, state


def retrieve(ws: Workspace, ref: ModelRef, to: Path) -> Retrieved:
    """Validate the bag fully, copy its payload into ``to`` (which must not exist, or be
    empty) and check the copy's content hash; a bag that does not validate is refused
    with every failing file, and nothing is copied."""
    _checked, state = _archived_state(ws, ref)
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise InputError(f"--to {to}: exists and is not an empty folder; nothing was copied")
    refuse_own_files(to, "--to")
    found = [f for f in bag_findings(ws, state, "full") if f.is_problem]
    if found:
        raise VerificationFailed(
            f"the bag of {ref} does not validate ({len(found)} problem"
            f"{'s' if len(found) != 1 else ''}); nothing was copied",
            found,
        )
    data = ws.resolve_storage(state.storage, str(ref)) / "data"
    to.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{to.name}-", dir=to.parent))
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


def fixity(ws: Workspace, fast: bool = False) -> FixityReport:
    """Validate every archived version's bag; ``fast`` checks Payload-Oxum and the tag
    files only, without re-reading the payload."""
    from regbook.check.verify import check_ledger

    checked = check_ledger(ws)
    report = FixityReport(fast=fast)
    for state in sorted(archived_states(checked.registry), key=lambda s: (s.model, s.version)):
        found = bag_findings(ws, state, "fast" if fast else "full")
        info = read_bag_info(ws.root / state.storage) if state.storage else {}
        report.bags.append({
            "model": state.model, "version": state.version,
            "composite_id": state.composite_id, "storage": state.storage,
            "retain_until": info.get("Retain-Until"), "ok": not found,
            "problems": [f.message for f in found],
        })  # fmt: skip
        report.findings += found
    soon = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    for bag in report.bags:
        bag["due_within_12_months"] = bool(bag["retain_until"]) and bag["retain_until"] <= soon
    known = {(ws.root / s.storage).resolve() for s in archived_states(checked.registry)}
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


def original_findings(ws: Workspace, state: VersionState) -> list[Finding]:
    """An archived version whose original is still in models/: a move interrupted after
    the ledger recorded it. Nothing is lost; rerunning ``archive`` finishes it."""
    text = state.register.payload.get("artefact", {}).get("storage", "")
    try:
        original = ws.resolve_storage(text, f"{state.model}@{state.version}")
    except InputError:
        return []
    if (original.exists() or original.is_symlink()) and _inside_models(ws, original):
        return [
            Finding.make(
                "RB805",
                text,
                f"{state.model}@{state.version} is archived in {state.storage} but its "
                f"original is still here: run `regbook archive {state.model}@{state.version}` "
                "to finish the move",
                state.model,
                state.version,
            )
        ]
    return []
