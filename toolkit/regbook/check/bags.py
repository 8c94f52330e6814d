"""Checking archive bags (BagIt, RFC 8493): the structure, the signed tag manifest,
and the payload against the sealed content hash.

``bag_findings(ws, state, level)`` is what ``verify`` and ``fixity`` report; the bag is
built by ``regbook.workflow.archive``, which names its files with the constants here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from regbook.core.errors import InputError, cut
from regbook.core.findings import Finding
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.crypto.keys import check_signature, load_keyring, namespace_for
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import Registry, VersionState
from regbook.storage.hashing import ContentHash, manifest_bytes, tree_manifest

TAGMANIFEST = "tagmanifest-sha256.txt"


SIGNATURE = TAGMANIFEST + ".sig"


EVENTS_FILE = "ledger-events.jsonl"


KEYRING_FILE = "allowed_signers"


CARD_FILE = "model-card.md"  # bags made before cards existed lack it, and stay valid


def bag_path(ws: Workspace, ref: ModelRef) -> Path:
    return ws.archive_dir / ref.name / str(ref.version)


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


# bagit-python's Bag reads a manifest's algorithm from its absolute path: in a bag whose
# path holds "tagmanifest-" anywhere (a model named tagmanifest-x, or a workspace under
# such a folder) it takes manifest-sha256.txt for a tag manifest of the algorithm
# "manifest-sha256", and saving or validating then fails. So regbook opens no bag with
# bagit.Bag: it writes the tag manifest itself (write_tagmanifest) and checks bags with
# the code below, which reads names relative to the bag only. bagit's make_bag, which
# works inside the bag's folder, builds the rest; bagit's validator stays usable by hand.


def write_tagmanifest(path: Path) -> None:
    """``tagmanifest-sha256.txt`` of the bag at ``path``, as bagit writes one: the sha256
    of every file outside ``data/`` but the tag manifests themselves (and the signature,
    which is made over it afterwards)."""
    lines = []
    for name in sorted(_tag_files(path)):
        digest = hashlib.sha256((path / name).read_bytes()).hexdigest()
        lines.append(f"{digest} {name}\n")
    (path / TAGMANIFEST).write_bytes("".join(lines).encode("utf-8"))  # LF on every system


def _tag_files(path: Path) -> list[str]:
    out = []
    for folder, dirs, files in os.walk(path):
        rel = Path(folder).relative_to(path)
        if rel == Path("."):
            dirs[:] = [d for d in dirs if d != "data"]
        for name in files:
            if rel == Path(".") and (_is_tagmanifest(name) or name == SIGNATURE):
                continue
            out.append((rel / name).as_posix())
    return out


def _is_tagmanifest(name: str) -> bool:
    return name.startswith("tagmanifest-") and name.endswith(".txt")


def validate_bag(path: Path, fast: bool = False) -> list[str]:
    """Every problem a BagIt validator finds in the bag at ``path``, and every symbolic
    link in it, one sentence each (empty: valid). ``fast``: the tag files, the
    structure and Payload-Oxum, without hashing the payload."""
    problems = list(dict.fromkeys(_link_problems(path, payload=True) + _tag_problems(path)))
    problems += [p for p in _structure_problems(path) if p not in problems]
    if fast or problems:
        return problems
    return _manifest_problems(path)[0]


def full_check(path: Path, state: VersionState) -> list[str]:
    """A bag validated in full, and its payload the sealed artefact: ``validate_bag``'s
    checks with one hashing pass over the payload, then its digests against the sealed
    content hash."""
    problems = validate_bag(path, fast=True)
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
        if _unsafe(name):
            problems.append(f"{TAGMANIFEST} names {cut(name)!r}, which is outside the bag")
            continue
        target = path / name
        if target.is_symlink():  # never read through a link: its target is not the bag's
            problems.append(_link_message(name))
            continue
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


def _unsafe(name: str) -> bool:
    """A manifest name that would lead out of the bag: absolute, a drive, or ``..``."""
    posix = name.replace("\\", "/")
    return posix.startswith("/") or ":" in posix.split("/")[0] or ".." in posix.split("/")


def _link_message(name: str) -> str:
    return f"{cut(name)} is a symbolic link; a bag holds only its own files and folders"


def _link_problems(path: Path, *, payload: bool) -> list[str]:
    """Every symbolic link in the bag (only the tag files and the data/ folder itself
    unless ``payload``): a tag file replaced by a link to an identical copy elsewhere
    would hash right today and change with that copy tomorrow."""
    problems = []
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            problems.append(f"{cut(str(folder))}: cannot be listed: {err.strerror}")
            continue
        for entry in entries:
            rel = Path(entry.path).relative_to(path).as_posix()
            if entry.is_symlink() or getattr(entry, "is_junction", lambda: False)():
                problems.append(_link_message(rel))
            elif entry.is_dir(follow_symlinks=False) and (payload or rel != "data"):
                stack.append(Path(entry.path))
    return problems


def bag_findings(ws: Workspace, state: VersionState, level: str = "full") -> list[Finding]:
    """Findings about an archived version's bag. ``level``: "tags" (the bag is there, its
    tag manifest is the one the ledger recorded and signed, its tag files match it, no
    tag file or folder is a symbolic link), "fast" (also no link in the payload, the
    structure and Payload-Oxum, as a BagIt validator's fast mode) or "full" (also every
    payload checksum and the sealed content hash)."""

    event = state.bag_event
    label = f"{state.model}@{state.version}"
    # After a rollback the version lives outside its bag again, and the bag stays.
    where = bag_storage(state)

    def finding(code: str, text: str, at: str = where) -> Finding:
        return Finding.make(code, at, f"{label}: {text}", state.model, state.version)

    try:
        path = ws.resolve_storage(where, label)
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
            # A version archived again after a rollback reuses its bag: the signature
            # is the one made by the archive that built it.
            built = next(
                e
                for e in state.events
                if e.kind == "archive" and e.payload.get("bag_tagmanifest_sha256") == recorded
            )
            check = check_signature(
                manifest,
                sig,
                load_keyring(ws),
                built.signer,
                namespace_for(signer_role(built) or ""),
                built.when,
            )
            if not check.ok:
                out.append(finding("RB804", f"{SIGNATURE}: {check.detail}", f"{where}/{SIGNATURE}"))
    if level == "tags":
        problems = list(dict.fromkeys(_link_problems(path, payload=False) + _tag_problems(path)))
    else:
        problems = validate_bag(path, fast=True)
    payload: list[tuple[str, str]] | None = None
    if level == "full" and not problems:
        # The rest of a BagIt validator's checks, with each payload file hashed once
        # (large files in parallel); the same digests then say whether the payload is
        # the sealed artefact, without reading it a second time.
        problems, payload = _manifest_problems(path)
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


def bag_storage(state: VersionState) -> str:
    """Where the version's bag is, as the latest archive event names it."""
    event = state.bag_event
    return str(event.payload.get("storage")) if event is not None else state.storage


def bagged_states(registry: Registry) -> list[VersionState]:
    """The versions that have a bag: archived now, or archived once and rolled back to
    Production (the bag stays)."""
    return [s for s in registry.versions.values() if s.bag_event is not None]


def inside_models(ws: Workspace, path: Path) -> bool:
    """Whether ``path`` is in the workspace's own artefact storage, the only place
    ``archive`` removes an original from (DESIGN section 9): both as written and as it
    resolves, so that neither a link in models/ to a share nor a link on a share into
    models/ counts; and only while models/ is a folder inside the workspace, whatever
    regbook.toml says (Workspace.load refuses such settings; this does not rely on it)."""
    root = ws.root.resolve()
    models = Path(os.path.abspath(ws.models_dir))
    try:
        real = models.resolve()
        if real == root or not real.is_relative_to(root):
            return False
        lexical = Path(os.path.abspath(path)).relative_to(models)
        resolved = path.resolve().relative_to(real)
    except (ValueError, OSError, RuntimeError):
        return False
    return lexical != Path(".") and resolved != Path(".")


def original_findings(ws: Workspace, state: VersionState) -> list[Finding]:
    """An archived version whose original is still in models/: a move interrupted after
    the ledger recorded it. Nothing is lost; rerunning ``archive`` finishes it."""
    text = state.artefact_storage
    try:
        original = ws.resolve_storage(text, f"{state.model}@{state.version}")
    except InputError:
        return []
    if (original.exists() or original.is_symlink()) and inside_models(ws, original):
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
