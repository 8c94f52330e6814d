"""Lineage: composite IDs, the provenance walk, and audits of inference logs.

A service that serves a model writes the version's composite ID into every
prediction it logs; ``trace`` walks from such an ID back through the sealed
registration, the artefact, the code commit, the training data (DVC metadata read
from the data repository with ``git``), the pipeline run, the evaluation and the
approvals; ``audit_log`` checks a whole inference log against the ledger::

    import regbook
    cid = regbook.composite_id("registry", "credit-risk@7")   # once, at start-up

    trace = trace_version(ws, "credit-risk@7+3f9a1c2b7d4e.d1e2f3a4.c0ffee12")
    print(render_trace(trace)); trace.ok

    audit = audit_log(ws, Path("predictions.jsonl"))
    print(render_audit(audit)); audit.ok

Git is called as the ``git`` program (list arguments, no shell); DVC is not needed:
``.dvc`` files and ``dvc.lock`` are read with ``git ls-tree`` and ``git show`` and
parsed as YAML. A repository that is not available makes its link "not checkable",
never a failure.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re
import shutil
import subprocess
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TextIO, final
from urllib.parse import quote, unquote, urlparse

import orjson

from regbook.core.errors import InputError, VerificationFailed, plural
from regbook.core.findings import CODES, Finding
from regbook.core.ids import CompositeId, ModelRef
from regbook.core.schema import DVC_MD5_RE, FULL_COMMIT_RE
from regbook.core.workspace import Workspace, path_is
from regbook.ledger.events import CHAIN_CODES, LedgerEvent
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import Registry, VersionState
from regbook.registry.snapshot import LEDGER_ONLY, Snapshot, open_registry
from regbook.registry.witness import WITNESS_CODES
from regbook.storage.hashing import ContentHash, hash_path

__all__ = [
    "BROKEN",
    "NOT_CHECKABLE",
    "SIGNED",
    "VERIFIED",
    "Commit",
    "DvcOutput",
    "GitRepo",
    "Link",
    "LogAudit",
    "Trace",
    "audit_log",
    "composite_id",
    "make_demo_repos",
    "parse_dvc_file",
    "render_audit",
    "render_trace",
    "trace_version",
]

VERIFIED, NOT_CHECKABLE, BROKEN = "verified", "not checkable", "broken"
# Signed with the registration, and nothing more was checked (no pipeline link is
# configured, or one is but regbook does not call the pipeline service).
SIGNED = "signed"

GIT_TIMEOUT = 120  # seconds for one git command
MAX_DVC_FILES = 500  # .dvc files and dvc.lock read at one commit
MAX_DVC_FILE_BYTES = 1 << 20
LINES_KEPT = 1000  # line numbers kept per problem in a log audit
LINES_BUDGET = 200_000  # line numbers kept over all problems
PROBLEMS_KEPT = 10_000  # distinct problems listed (more are counted, not listed)
UNLISTED_KEPT = 100_000  # distinct unlisted problems told apart (past it: "at least")
MAX_LINE = 1 << 20  # a log line longer than this is unreadable (bounded memory)
SIGNATURE_CODES = ("RB104", "RB105", "RB106", "RB107", "RB111")

# A workspace, or the folder that holds one (a path or its text).
WorkspaceLike = Workspace | str | os.PathLike[str]


# --- the ledger, read for lineage ---------------------------------------------------------


def _workspace(workspace: WorkspaceLike) -> Workspace:

    if isinstance(workspace, Workspace):
        return workspace
    return Workspace.load(Path(workspace))


def composite_id(workspace: WorkspaceLike, ref: str) -> str:
    """The composite ID a service writes into its prediction log, e.g.
    ``composite_id("registry", "credit-risk@7")``; ``ref`` may also be just the model
    name, meaning its version in Production now.

    The ledger's chain and signatures are checked first: a service never logs an ID
    the registry cannot vouch for (VerificationFailed). Call it once at start-up."""
    snapshot = open_registry(_workspace(workspace), sheets=LEDGER_ONLY)
    registry, findings = snapshot.registry, snapshot.ledger_findings
    parsed = ModelRef.parse(ref, version_required=False)
    if parsed.version is None:
        live = registry.production(parsed.name)
        if len(live) != 1:
            raise InputError(
                f"{parsed.name}: {plural(len(live), 'version') if live else 'no version'} in "
                "Production; "
                "name the version (MODEL@VERSION)"
            )
        state = live[0]
    else:
        state = registry.get(parsed.name, parsed.version)
        if state is None:
            raise InputError(registry.unknown(parsed, parsed.name, parsed.version))
    problems = [
        f
        for f in findings
        if f.is_problem
        and (f.code in CHAIN_CODES or (f.model, f.version) == (state.model, state.version))
    ]
    if problems:
        raise VerificationFailed(
            f"{state.model}@{state.version}: the ledger does not vouch for it "
            f"({plural(len(problems), 'problem')}; run `regbook verify`)",
            problems,
        )
    return state.composite_id


# --- git and DVC ------------------------------------------------------------------------


class RepoUnavailable(Exception):
    """A repository that cannot be read here: its link is not checkable."""


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    email: str
    date: str
    subject: str

    def to_json(self) -> dict[str, str]:
        return {
            "commit": self.sha,
            "author": self.author,
            "email": self.email,
            "date": self.date,
            "subject": self.subject,
        }


_SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
)


@dataclass(frozen=True)
class GitRepo:
    """A local git repository, read with the ``git`` program."""

    path: Path
    source: str = ""  # where the path came from, for messages

    @classmethod
    def open(cls, path: Path, source: str = "") -> GitRepo:
        if shutil.which("git") is None:
            raise RepoUnavailable("the git program is not installed here")
        if not path.is_dir():
            raise RepoUnavailable(f"{path} ({source}) is not a folder here")
        repo = cls(path.resolve(), source)
        done = repo._run("rev-parse", "--git-dir")
        if done.returncode != 0:
            raise RepoUnavailable(f"{path} ({source}) is not a git repository: {_err(done)}")
        return repo

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        # Git must not find a repository above the one named (a plain folder inside a
        # checkout would otherwise answer for the checkout).
        env["GIT_CEILING_DIRECTORIES"] = str(self.path.parent)
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GIT_OPTIONAL_LOCKS"] = "0"
        env["LC_ALL"] = "C"
        try:
            return subprocess.run(
                ["git", "-C", str(self.path), *args],
                capture_output=True,
                timeout=GIT_TIMEOUT,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RepoUnavailable(f"git failed in {self.path}: {err}") from None

    def has_commit(self, sha: str) -> bool:
        return self._run("cat-file", "-e", f"{sha}^{{commit}}").returncode == 0

    def commit(self, sha: str) -> Commit | None:
        """The commit's author, date and subject, or None if the repository lacks it."""
        if not self.has_commit(sha):
            return None
        done = self._run(
            "show", "-s", "--no-show-signature", "--format=%H%x00%an%x00%ae%x00%aI%x00%s", sha
        )
        if done.returncode != 0:
            return None
        parts = done.stdout.decode("utf-8", "replace").rstrip("\n").split("\x00")
        if len(parts) != 5:
            return None
        return Commit(*parts)

    def dvc_files(self, sha: str) -> list[tuple[str, int]]:
        """``.dvc`` files and ``dvc.lock`` files at a commit: (path, size)."""
        done = self._run("ls-tree", "-r", "-l", "-z", "--full-tree", sha)
        if done.returncode != 0:
            raise RepoUnavailable(f"git ls-tree failed: {_err(done)}")
        found = []
        for entry in done.stdout.split(b"\x00"):
            if not entry:
                continue
            meta, _tab, raw_path = entry.partition(b"\t")
            fields = meta.split()
            if len(fields) != 4 or fields[1] != b"blob":
                continue
            path = raw_path.decode("utf-8", "replace")
            name = posixpath.basename(path)
            if name == "dvc.lock" or (name.endswith(".dvc") and name != ".dvc"):
                size = int(fields[3]) if fields[3].isdigit() else 0
                found.append((path, size))
        return sorted(found)

    def show(self, sha: str, path: str) -> bytes:
        done = self._run("show", f"{sha}:{path}")
        if done.returncode != 0:
            raise RepoUnavailable(f"git show {sha[:12]}:{path} failed: {_err(done)}")
        return done.stdout

    def commits_mentioning(self, text: str) -> list[str]:
        """Commits, oldest first, that add or remove ``text`` in a DVC file."""
        done = self._run(
            "log", "--all", "--reverse", "--format=%H", f"-S{text}", "--", "*.dvc", "*dvc.lock"
        )
        if done.returncode != 0:
            return []
        return done.stdout.decode("ascii", "replace").split()


def _err(done: subprocess.CompletedProcess[bytes]) -> str:
    text = done.stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"exit code {done.returncode}"


@dataclass(frozen=True)
class DvcOutput:
    """One output recorded in a ``.dvc`` file or ``dvc.lock``."""

    path: str  # repository-relative, POSIX
    md5: str | None  # 32 hex, without DVC's ".dir" suffix
    is_dir: bool
    size: int | None
    nfiles: int | None
    hash: str  # "md5" (DVC 3) or "md5-dos2unix" (written by DVC 2 and older)
    source: str  # the file it was read from, with the stage for dvc.lock

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "md5": self.md5,
            "dir": self.is_dir,
            "size": self.size,
            "nfiles": self.nfiles,
            "hash": self.hash,
            "source": self.source,
        }


def parse_dvc_file(path: str, text: bytes | str) -> list[DvcOutput]:
    """The outputs a ``.dvc`` file or a ``dvc.lock`` (schema 2.0, or the older form with
    stages at the top) records. Raises InputError when it is not such a file."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "bad YAML"
        raise InputError(f"{path}: not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a DVC file (expected a mapping)")
    folder = posixpath.dirname(path)
    if posixpath.basename(path) == "dvc.lock":
        stages = data.get("stages") if "schema" in data else data
        if not isinstance(stages, dict):
            raise InputError(f"{path}: no stages")
        out: list[DvcOutput] = []
        for name, stage in stages.items():
            if isinstance(stage, dict):
                out += _outs(stage.get("outs"), folder, f"{path}:{name}", path)
        return out
    wdir = data.get("wdir", ".")
    base = posixpath.normpath(posixpath.join(folder, wdir if isinstance(wdir, str) else "."))
    if "outs" not in data:
        raise InputError(f"{path}: no outs")
    return _outs(data.get("outs"), base, path, path)


def _outs(entries: object, base: str, source: str, where: str) -> list[DvcOutput]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InputError(f"{where}: outs is not a list")
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise InputError(f"{where}: an output without a path")
        md5 = entry.get("md5")
        md5 = md5 if isinstance(md5, str) else None
        is_dir = bool(md5 and md5.endswith(".dir"))
        if md5 is not None:
            md5 = md5.removesuffix(".dir").lower()
        size, nfiles = entry.get("size"), entry.get("nfiles")
        algo = entry.get("hash")
        path = posixpath.normpath(posixpath.join(base, entry["path"])) if base else entry["path"]
        out.append(
            DvcOutput(
                path=path.removeprefix("./"),
                md5=md5,
                is_dir=is_dir,
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                nfiles=nfiles if isinstance(nfiles, int) and not isinstance(nfiles, bool) else None,
                hash=algo if isinstance(algo, str) else "md5-dos2unix",
                source=source,
            )
        )
    return out


def dvc_outputs(repo: GitRepo, sha: str) -> tuple[list[DvcOutput], list[str]]:
    """Every output the DVC files at a commit record, and the files that could not be
    read (with why)."""
    outputs: list[DvcOutput] = []
    unreadable: list[str] = []
    files = repo.dvc_files(sha)
    if len(files) > MAX_DVC_FILES:
        unreadable.append(f"{len(files) - MAX_DVC_FILES} more DVC files not read")
        files = files[:MAX_DVC_FILES]
    for path, size in files:
        if size > MAX_DVC_FILE_BYTES:
            unreadable.append(f"{path}: {size} bytes, too big for a DVC file")
            continue
        try:
            outputs += parse_dvc_file(path, repo.show(sha, path))
        except (InputError, RepoUnavailable) as err:
            unreadable.append(str(err))
    return outputs, unreadable


# --- where the repositories are ----------------------------------------------------------


_URL_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_SCP_LIKE = re.compile(r"[^/\\:]{2,}:")  # user@host:path, host:path (not C:\)


def local_path(text: str, root: Path) -> Path | None:
    """The local folder a repository column or setting names, or None for a URL."""
    text = (text or "").strip()
    if not text:
        return None
    if _URL_SCHEME.match(text):
        parsed = urlparse(text)
        if parsed.scheme.lower() != "file" or parsed.netloc not in ("", "localhost"):
            return None
        return Path(unquote(parsed.path))
    if _SCP_LIKE.match(text):
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path


def links_table(ws: Workspace) -> dict[str, Any]:
    try:
        data = tomllib.loads(ws.config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    links = data.get("links", {})
    return links if isinstance(links, dict) else {}


def choose_repo(
    ws: Workspace, kind: str, explicit: Path | None, recorded: str
) -> tuple[Path | None, str]:
    """The local repository for ``kind`` ("code" or "data"), and where it came from:
    ``--KIND-repo``, else the sealed column when it is a local folder, else regbook.toml
    (``[links.repositories]`` maps a recorded URL to a local path; ``[links] KIND_repo``
    is the default). (None, why) when there is none."""
    if explicit is not None:
        return explicit, f"--{kind}-repo"
    column = f"{kind.capitalize()} repository column"
    from_column = local_path(recorded, ws.root)
    if from_column is not None and path_is(from_column, Path.is_dir):
        return from_column, column
    links = links_table(ws)
    mapping = links.get("repositories", {})
    if recorded and isinstance(mapping, dict) and isinstance(mapping.get(recorded), str):
        mapped = local_path(mapping[recorded], ws.root)
        if mapped is not None:
            return mapped, "regbook.toml [links.repositories]"
    default = links.get(f"{kind}_repo")
    if isinstance(default, str) and default.strip():
        mapped = local_path(default, ws.root)
        if mapped is not None:
            return mapped, f"regbook.toml [links] {kind}_repo"
    shown = f" ({recorded} is not a local folder here)" if recorded else ""
    return None, (
        f"no {kind} repository available{shown}: give --{kind}-repo PATH, or set "
        f"[links] {kind}_repo in regbook.toml"
    )


# --- the trace ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One link of the chain: what it is, whether it holds, and the facts behind it."""

    name: str
    status: str  # VERIFIED, NOT_CHECKABLE or BROKEN
    summary: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "link": self.name,
            "status": self.status,
            "summary": self.summary,
            "reason": self.reason or None,
            "details": self.details,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class Trace:
    target: str
    model: str
    version: int
    composite_id: str
    links: list[Link] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(link.status == BROKEN for link in self.links)

    @property
    def findings(self) -> list[Finding]:
        return [f for link in self.links for f in link.findings]

    def count(self, status: str) -> int:
        return sum(1 for link in self.links if link.status == status)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "version": self.version,
            "composite_id": self.composite_id,
            "ok": self.ok,
            "links": [link.to_json() for link in self.links],
        }


def parse_target(text: str) -> tuple[ModelRef, CompositeId | None]:
    """MODEL@VERSION or a composite ID; anything else is bad input."""
    text = text.strip()
    if "+" in text:
        cid = CompositeId.parse(text)
        return cid.ref, cid
    return ModelRef.parse(text), None


def trace_version(
    snapshot: Snapshot,
    target: str,
    *,
    code_repo: Path | None = None,
    data_repo: Path | None = None,
    pipeline_link: str | None = None,
) -> Trace:
    """Walk the chain from ``target`` (MODEL@VERSION or a composite ID) to the code, the
    data, the pipeline run, the evaluation and the approvals; every link is verified,
    not checkable (with the reason) or broken."""
    ref, cid = parse_target(target)
    ws, registry, ledger_findings = snapshot.workspace, snapshot.registry, snapshot.ledger_findings
    state = registry.get(ref.name, ref.version or 0)
    if state is None:
        if cid is None:
            raise InputError(registry.unknown(ref, ref.name, ref.version))
        finding = Finding.make(
            "RB702",
            str(cid),
            f"composite ID {cid} names {ref}, which was never sealed in this registry",
            ref.name,
            ref.version,
        )
        link = Link(
            "composite ID", BROKEN, str(cid), f"{ref} was never sealed", findings=(finding,)
        )
        return Trace(target.strip(), ref.name, ref.version or 0, str(cid), [link])
    payload = state.payload
    try:
        sealed_id = str(CompositeId.parse(state.composite_id))
        _needed = (state.content_hash, payload["code_commit"], payload["data_version"])
    except (KeyError, TypeError, InputError):
        bad = [f for f in ledger_findings if f.code == "RB203" and f.model == state.model
               and f.version == state.version]  # fmt: skip
        why = bad[0].message if bad else "the registration payload is malformed"
        link = Link("composite ID", BROKEN, str(cid or ref), why, findings=tuple(bad))
        return Trace(target.strip(), state.model, state.version, str(cid or ref), [link])
    trace = Trace(target.strip(), state.model, state.version, sealed_id)
    trace.links.append(_composite_link(state, cid, ledger_findings))
    trace.links.append(_sealed_link(state, ledger_findings))
    trace.links.append(_artefact_link(ws, state))
    path, source = choose_repo(ws, "code", code_repo, str(payload.get("code_repo") or ""))
    trace.links.append(_code_link(state, path, source))
    path, source = choose_repo(ws, "data", data_repo, str(payload.get("data_repo") or ""))
    trace.links.append(_data_link(state, path, source))
    template = ws.settings.pipeline_link if pipeline_link is None else pipeline_link
    trace.links.append(_pipeline_link(state, template))

    workflow = [
        f for f in snapshot.rule_findings if (f.model, f.version) == (state.model, state.version)
    ]
    trace.links.append(_evaluation_link(state, workflow))
    cells = {c for e in state.events if e is not state.register for c in _cells(e)}
    signatures = [f for f in ledger_findings if f.code in SIGNATURE_CODES and f.where in cells]
    trace.links.append(_approvals_link(state, workflow + signatures))
    return trace


def _composite_link(state: VersionState, cid: CompositeId | None, findings: list[Finding]) -> Link:
    own = [f for f in findings if f.code == "RB203" and f.version == state.version
           and f.model == state.model]  # fmt: skip
    if own:
        return Link("composite ID", BROKEN, state.composite_id, own[0].message, findings=tuple(own))
    sealed = CompositeId.parse(state.composite_id)
    if cid is None:
        return Link(
            "composite ID",
            VERIFIED,
            state.composite_id,
            details={"composite_id": state.composite_id, "given": False},
        )
    differ = _id_differences(cid, sealed)
    if differ:
        text = f"{cid} disagrees with the sealed {sealed.ref}: " + "; ".join(differ)
        finding = Finding.make("RB701", str(cid), text, state.model, state.version)
        return Link(
            "composite ID",
            BROKEN,
            str(cid),
            "; ".join(differ),
            details={"composite_id": str(cid), "sealed": str(sealed)},
            findings=(finding,),
        )
    return Link(
        "composite ID",
        VERIFIED,
        f"{cid} matches the sealed row",
        details={"composite_id": str(cid), "given": True},
    )


def _id_differences(cid: CompositeId, sealed: CompositeId) -> list[str]:
    out = []
    for label, given, have in (
        ("artefact prefix", cid.artefact, sealed.artefact),
        ("data version prefix", cid.data, sealed.data),
        ("code commit prefix", cid.code, sealed.code),
    ):
        if given != have:
            out.append(f"{label} {given}, sealed {have}")
    return out


def _sealed_link(state: VersionState, findings: list[Finding]) -> Link:

    event = state.register
    # A broken chain, or a ledger that is not the one CI witnessed, vouches for nothing.
    chain = [f for f in findings if f.code in CHAIN_CODES or f.code in WITNESS_CODES]
    own = [f for f in findings if f.code in SIGNATURE_CODES and f.where in _cells(event)]
    details = {
        "seq": event.seq,
        "hash": event.hash,
        "at": event.at,
        "signer": event.signer,
        "role": signer_role(event),
        "fingerprint": event.fingerprint,
    }
    summary = (
        f"ledger event {event.seq}, registered by {event.signer} "
        f"({details['role'] or 'no role'}) at {event.at}"
    )
    if chain:
        return Link(
            "sealed version",
            BROKEN,
            summary,
            f"the ledger's chain is broken ({plural(len(chain), 'problem')}, first: {chain[0]})",
            details,
            tuple(chain),
        )
    if own:
        return Link("sealed version", BROKEN, summary, own[0].message, details, tuple(own))
    return Link("sealed version", VERIFIED, summary + "; signature good", details=details)


def _cells(event: LedgerEvent) -> tuple[str, str]:
    return event.where("signature"), event.where("fingerprint")


def _artefact_link(ws: Workspace, state: VersionState) -> Link:

    label = f"{state.model}@{state.version}"
    sealed = ContentHash.parse(state.content_hash)
    details: dict[str, Any] = {"content_hash": str(sealed), "storage": state.storage}

    def broken(code: str, where: str, text: str) -> Link:
        finding = Finding.make(code, where, text, state.model, state.version)
        return Link("artefact", BROKEN, f"{sealed} at {state.storage}", text, details, (finding,))

    try:
        path = ws.resolve_storage(state.storage, label)
    except InputError as err:
        return broken("RB403", state.storage, str(err))
    if not path.exists() and not path.is_symlink():
        return broken("RB401", state.storage, f"the artefact of {label} is missing")
    target, where = path, state.storage
    if path.is_dir() and (path / "bagit.txt").is_file():
        target = _bag_payload(path, state, sealed.algorithm)
        where = f"{state.storage} (in its bag)"
        details["bag"] = True
    try:
        now = hash_path(target, progress=False)
    except InputError as err:
        return broken("RB403", state.storage, f"{label}: {err}")
    if now != sealed:
        return broken(
            "RB402",
            state.storage,
            f"the artefact of {label} changed since sealing: sealed {sealed}, now {now}",
        )
    return Link("artefact", VERIFIED, f"{sealed} at {where}", details=details)


def _bag_payload(bag: Path, state: VersionState, algorithm: str) -> Path:
    """The artefact inside a BagIt bag: ``data/NAME`` (its stored name), else the one
    file of ``data/`` for a file hash, else ``data/`` itself."""
    data = bag / "data"
    original = posixpath.basename(str(state.payload["artefact"].get("storage", "")).rstrip("/"))
    if original and path_is(data / original, Path.exists):
        return data / original
    if algorithm == "sha256" and data.is_dir():
        files = [p for p in data.iterdir() if p.is_file()]
        if len(files) == 1:
            return files[0]
    return data


def _repo_or_reason(path: Path | None, source: str) -> tuple[GitRepo | None, str]:
    if path is None:
        return None, source
    try:
        return GitRepo.open(path, source), ""
    except RepoUnavailable as err:
        return None, str(err)


def _code_link(state: VersionState, path: Path | None, source: str) -> Link:
    commit = state.payload["code_commit"]
    details: dict[str, Any] = {
        "commit": commit,
        "repository": state.payload.get("code_repo") or None,
    }
    if not isinstance(commit, str) or not FULL_COMMIT_RE.fullmatch(commit):
        text = f"the sealed code commit {commit!r} is not a full git commit ID"
        finding = Finding.make("RB703", "code commit", text, state.model, state.version)
        return Link("code commit", BROKEN, str(commit), text, details, (finding,))
    repo, reason = _repo_or_reason(path, source)
    if repo is None:
        finding = Finding.make(
            "RB707", "code commit", f"{commit[:12]}...: {reason}", state.model, state.version
        )
        return Link("code commit", NOT_CHECKABLE, commit, reason, details, (finding,))
    details["local"] = str(repo.path)
    found = repo.commit(commit)
    if found is None:
        text = f"commit {commit} is not in the code repository {repo.path} ({repo.source})"
        finding = Finding.make("RB703", str(repo.path), text, state.model, state.version)
        return Link("code commit", BROKEN, commit, text, details, (finding,))
    details.update(found.to_json())
    return Link(
        "code commit",
        VERIFIED,
        f"{commit[:12]} by {found.author} <{found.email}> {found.date}: {found.subject}",
        details=details,
    )


def _data_link(state: VersionState, path: Path | None, source: str) -> Link:
    version = state.payload["data_version"]
    is_md5 = isinstance(version, str) and bool(DVC_MD5_RE.fullmatch(version))
    details: dict[str, Any] = {
        "data_version": version,
        "kind": "dvc-md5" if is_md5 else "git-commit",
        "repository": state.payload.get("data_repo") or None,
    }
    if not is_md5 and not (isinstance(version, str) and FULL_COMMIT_RE.fullmatch(version)):
        text = f"the sealed data version {version!r} is neither a git commit nor a DVC md5"
        finding = Finding.make("RB704", "training data", text, state.model, state.version)
        return Link("training data", BROKEN, str(version), text, details, (finding,))
    repo, reason = _repo_or_reason(path, source)
    if repo is None:
        finding = Finding.make(
            "RB707", "training data", f"{version[:12]}...: {reason}", state.model, state.version
        )
        return Link("training data", NOT_CHECKABLE, version, reason, details, (finding,))
    details["local"] = str(repo.path)

    def broken(text: str) -> Link:
        finding = Finding.make("RB704", str(repo.path), text, state.model, state.version)
        return Link("training data", BROKEN, version, text, details, (finding,))

    try:
        if is_md5:
            return _data_by_md5(repo, version, details, broken)
        found = repo.commit(version)
        if found is None:
            return broken(f"commit {version} is not in the data repository {repo.path}")
        outputs, unreadable = dvc_outputs(repo, version)
    except RepoUnavailable as err:
        return Link("training data", NOT_CHECKABLE, version, str(err), details)
    details.update(
        commit=found.to_json(),
        outputs=[o.to_json() for o in outputs],
        unreadable=unreadable,
    )
    return Link("training data", VERIFIED, _data_summary(version, found, outputs), details=details)


def _data_by_md5(
    repo: GitRepo, md5: str, details: dict[str, Any], broken: Callable[[str], Link]
) -> Link:
    """A DVC md5 as the data version: the oldest commit whose DVC files record it."""
    for sha in repo.commits_mentioning(md5):
        outputs, unreadable = dvc_outputs(repo, sha)
        match = [o for o in outputs if o.md5 == md5]
        if match:
            found = repo.commit(sha)
            details.update(
                commit=found.to_json() if found else {"commit": sha},
                outputs=[o.to_json() for o in outputs],
                matched=[o.to_json() for o in match],
                unreadable=unreadable,
            )
            where = ", ".join(f"{o.path} ({o.source})" for o in match)
            return Link(
                "training data",
                VERIFIED,
                f"DVC md5 {md5} is {where}, added in {repo.path.name} commit {sha[:12]}",
                details=details,
            )
    return broken(
        f"no .dvc file or dvc.lock in the history of the data repository {repo.path} "
        f"records md5 {md5}"
    )


def _data_summary(version: str, commit: Commit, outputs: list[DvcOutput]) -> str:
    head = f"{version[:12]} ({commit.date[:10]}: {commit.subject})"
    if not outputs:
        return head + "; no DVC outputs at that commit"
    return f"{head}; {len(outputs)} DVC output{'s' if len(outputs) != 1 else ''}"


def pipeline_url(template: str, run: str) -> str | None:
    if not template or not run:
        return None
    return template.replace("{id}", quote(run, safe=""))


def _pipeline_link(state: VersionState, template: str) -> Link:
    run = str(state.payload.get("pipeline_run") or "")
    url = pipeline_url(template, run)
    details = {"pipeline_run": run, "url": url}
    if not run:
        return Link("pipeline run", BROKEN, "(none)", "the registration names no pipeline run",
                    details)  # fmt: skip
    # Nothing checks the run against the pipeline service: "signed", never "verified".
    note = (
        f"link {url} (not followed)"
        if url
        else ("no link configured ([links] pipeline in regbook.toml)")
    )
    return Link("pipeline run", SIGNED, f"{run}: signed with the registration; {note}",
                details=details)  # fmt: skip


def _evaluation_link(state: VersionState, workflow: list[Finding]) -> Link:
    metrics = state.metrics
    shown = ", ".join(
        f"{m['metric']}{'[' + m['slice'] + ']' if m.get('slice') else ''}={m['value']}"
        for m in metrics
    )
    gate = state.gate_event
    details: dict[str, Any] = {"metrics": metrics, "gate": None}
    if gate is not None:
        details["gate"] = {
            "result": gate.payload.get("result"),
            "seq": gate.seq,
            "at": gate.at,
            "gates": gate.payload.get("gates"),
        }
    problems = tuple(f for f in workflow if f.code in ("RB505", "RB507"))
    summary = f"{shown or 'no metrics'}; gate " + (
        f"{gate.payload.get('result')} (event {gate.seq}, {gate.at})" if gate else "not run"
    )
    if problems:
        return Link("evaluation", BROKEN, summary, problems[0].message, details, problems)
    if gate is None:
        return Link("evaluation", NOT_CHECKABLE, summary, "no gate result is recorded yet", details)
    return Link("evaluation", VERIFIED, summary, details=details)


def _approvals_link(state: VersionState, workflow: list[Finding]) -> Link:

    approvals = [
        {
            "seq": e.seq,
            "at": e.at,
            "from": e.payload.get("from"),
            "to": e.payload.get("to"),
            "signer": e.signer,
            "role": signer_role(e),
            "note": e.payload.get("note", ""),
        }
        for e in state.approvals
    ]
    history: list[dict[str, Any]] = [
        {"seq": state.register.seq, "at": state.register.at, "from": None, "to": "None",
         "signer": state.register.signer}
    ]  # fmt: skip
    for e in state.events:
        if e.kind in ("promote", "archive"):
            history.append({"seq": e.seq, "at": e.at, "from": e.payload.get("from"),
                            "to": e.payload.get("to"), "signer": e.signer})  # fmt: skip
    details = {"stage": state.stage, "approvals": approvals, "history": history}
    path = " -> ".join(f"{h['to']} ({h['at'][:10]})" for h in history)
    summary = f"now {state.stage}; {path}; {plural(len(approvals), 'approval')}"
    problems = tuple(f for f in workflow if f.code not in ("RB505", "RB507"))
    if problems:
        return Link("approvals and stages", BROKEN, summary, problems[0].message, details, problems)
    return Link("approvals and stages", VERIFIED, summary, details=details)


def _output_line(o: dict[str, Any]) -> str:
    size = f", {o['size']:,} bytes" if o.get("size") is not None else ""
    files = f", {o['nfiles']} files" if o.get("nfiles") is not None else ""
    legacy = ", DVC 2 md5" if o.get("hash") == "md5-dos2unix" else ""
    return f"{o['path']}: md5 {o['md5']}{size}{files}{legacy} ({o['source']})"


_MARK = {VERIFIED: "verified", SIGNED: "signed only", NOT_CHECKABLE: "not checkable",
         BROKEN: "BROKEN"}  # fmt: skip


def render_trace(trace: Trace) -> str:
    """The chain as text: one line per link, with what was found, and the reason when
    it is not verified; the details of the data outputs and approvals below their link."""
    lines = [f"{trace.composite_id}"]
    for link in trace.links:
        lines.append(f"  [{_MARK[link.status]:<13}] {link.name:<21} {link.summary}")
        if link.status not in (VERIFIED, SIGNED) and link.reason:
            code = f"{link.findings[0].code} " if link.findings else ""
            lines.append(f"  {'':<15} {'':<21} {code}{link.reason}")
        if link.name == "training data" and link.status == VERIFIED:
            for o in link.details.get("outputs", []):
                lines.append(f"  {'':<37} {_output_line(o)}")
            for problem in link.details.get("unreadable", []):
                lines.append(f"  {'':<37} not read: {problem}")
        if link.name == "approvals and stages":
            for a in link.details.get("approvals", []):
                note = f" ({a['note']})" if a.get("note") else ""
                lines.append(
                    f"  {'':<37} approved {a['from']} -> {a['to']} by {a['signer']} "
                    f"({a['role']}) {a['at']}{note}"
                )
    lines.append(
        f"trace: {trace.count(VERIFIED)} verified, {trace.count(SIGNED)} signed only, "
        f"{trace.count(NOT_CHECKABLE)} not checkable, {trace.count(BROKEN)} broken"
    )
    return "\n".join(lines)


# --- the inference-log audit ---------------------------------------------------------------


@final  # the audit tells a _Track from a _Problem by its exact type
@dataclass
class _Track:
    """A sealed version as the audit sees it: its stage over time, and its counts."""

    model: str
    version: int
    composite_id: str
    times: list[str]  # yyyy-mm-ddThh:mm:ss of each stage change, in order
    stages: list[str]
    stage_now: str
    records: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)
    # The fast path's tally of Production records after the last stage change.
    live: int = 0

    def __post_init__(self) -> None:
        self.last_change = self.times[-1].encode()
        self.serves = self.stages[-1] == "Production"

    @property
    def label(self) -> str:
        return f"{self.model}@{self.version}"

    def stage_at(self, when: str) -> str:
        i = bisect_right(self.times, when) - 1
        return self.stages[i] if i >= 0 else "unregistered"


@dataclass
class LogProblem:
    code: str
    kind: str  # unknown-id, id-mismatch, not-production, unreadable, missing-id
    subject: str  # the ID, or the version and stage
    message: str
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "count": self.count,
            "lines": self.lines,
            "lines_shown": len(self.lines),
        }


@dataclass
class LogAudit:
    path: str
    format: str
    id_field: str
    lines: int = 0
    records: int = 0
    time_field: str = "timestamp"
    without_timestamp: int = 0
    timestamp_not_iso: int = 0
    versions: list[_Track] = field(default_factory=list)
    problems: list[LogProblem] = field(default_factory=list)
    problems_not_listed: int = 0  # distinct problems past PROBLEMS_KEPT (still counted)
    records_not_listed: int = 0
    ledger_findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and not self.problems_not_listed
            and not any(f.is_problem for f in self.ledger_findings)
        )

    @property
    def findings(self) -> list[Finding]:
        out = list(self.ledger_findings)
        for p in self.problems:
            where = f"{self.path}:{p.lines[0]}" if p.lines else self.path
            out.append(Finding.make(p.code, where, p.message))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "id_field": self.id_field,
            "time_field": self.time_field,
            "ok": self.ok,
            "lines": self.lines,
            "records": self.records,
            "without_timestamp": self.without_timestamp,
            "timestamp_not_iso8601": self.timestamp_not_iso,
            "versions": [
                {
                    "model": t.model,
                    "version": t.version,
                    "composite_id": t.composite_id,
                    "stage_now": t.stage_now,
                    "records": t.records,
                    "records_by_stage": dict(sorted(t.by_stage.items())),
                }
                for t in self.versions
                if t.records
            ],
            "problems": [p.to_json() for p in self.problems],
            "problems_not_listed": self.problems_not_listed,
            "records_not_listed": self.records_not_listed,
            "ledger_findings": [f.to_json() for f in self.ledger_findings],
        }


# A log ID that names no sealed version as it is written: (kind, subject, code, message).
_Problem = tuple[str, str, str, str]


class _Auditor:
    """Counts records per version and collects problems, in bounded memory."""

    def __init__(self, registry: Registry, time_field: str = "timestamp"):
        self.time_field = time_field
        self.exact: dict[str | bytes, _Track | _Problem] = {}  # a log ID -> what it is
        self.tracks: list[_Track] = []
        self.by_ref: dict[tuple[str, int], _Track] = {}
        for state in registry.versions.values():
            try:
                CompositeId.parse(state.composite_id)
            except (KeyError, TypeError, InputError):
                continue  # a malformed registration (RB203): no ID can match it
            times, stages = [state.register.at[:19]], ["None"]
            for e in state.events:
                if e.kind in ("promote", "archive"):
                    times.append(e.at[:19])
                    stages.append(str(e.payload.get("to")))
            track = _Track(state.model, state.version, state.composite_id, times, stages,
                           state.stage)  # fmt: skip
            self.tracks.append(track)
            self.by_ref[(state.model, state.version)] = track
            self.exact[state.composite_id] = track
            self.exact[state.composite_id.encode()] = track
        self.problems: dict[tuple[str, str], LogProblem] = {}
        self.kept = 0
        self.not_listed_keys: set[tuple[str, str]] = set()
        self.not_listed_records = 0
        self.without_timestamp = 0
        self.not_iso = 0
        self.records = 0
        self._dates: dict[str | bytes, bool] = {}  # the fast path's days are bytes

    # problems
    def problem(
        self, key: tuple[str, str], number: int, code: str, message: Callable[[], str]
    ) -> None:
        found = self.problems.get(key)
        if found is None:
            if len(self.problems) >= PROBLEMS_KEPT:
                if len(self.not_listed_keys) < UNLISTED_KEPT:
                    self.not_listed_keys.add(key)
                self.not_listed_records += 1
                return
            found = self.problems[key] = LogProblem(code, key[0], key[1], message())
        found.count += 1
        if len(found.lines) < LINES_KEPT and self.kept < LINES_BUDGET:
            found.lines.append(number)
            self.kept += 1

    def classify(self, raw: str | bytes) -> _Problem:
        """The problem with an ID not seen yet that names no sealed version as written."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            cid = CompositeId.parse(text)
        except InputError:
            shown = text if len(text) <= 120 else text[:117] + "..."
            return ("unknown-id", shown, "RB702",
                    f"{shown!r} is not a composite ID (NAME@VERSION+A.D.C)")  # fmt: skip
        track = self.by_ref.get((cid.name, cid.version))
        if track is None:
            return ("unknown-id", str(cid), "RB702",
                    f"{cid} names {cid.ref}, which was never sealed in this registry")  # fmt: skip
        differ = _id_differences(cid, CompositeId.parse(track.composite_id))
        return ("id-mismatch", str(cid), "RB701",
                f"{cid} disagrees with the sealed {track.composite_id}: "
                + "; ".join(differ))  # fmt: skip

    def untimed(self, number: int, why: str) -> None:
        """A record whose stage cannot be checked: the Production check cannot run."""
        field = self.time_field
        self.problem(("untimed", why), number, "RB708", lambda: (
            f"records {why} in {field!r}: whether they were served from Production "
            "cannot be checked (give --time-field if the time is under another name)"))  # fmt: skip

    def count(self, number: int, cid: str | bytes, ts: str | None) -> None:
        self.records += 1
        found = self.exact.get(cid)
        if found is None:
            found = self.classify(cid)
            if len(self.exact) < 100_000:
                self.exact[cid] = found
        if type(found) is not _Track:
            kind, subject, code, message = found
            self.problem((kind, subject), number, code, lambda: message)
            return
        found.records += 1
        if ts is None:
            self.without_timestamp += 1
            found.by_stage["(no timestamp)"] = found.by_stage.get("(no timestamp)", 0) + 1
            self.untimed(number, "without a timestamp")
            return
        when = self.utc_second(ts)
        if when is None:
            self.not_iso += 1
            found.by_stage["(timestamp not ISO 8601)"] = (
                found.by_stage.get("(timestamp not ISO 8601)", 0) + 1
            )
            self.untimed(number, "with a timestamp that is not ISO 8601")
            return
        stage = found.stage_at(when)
        found.by_stage[stage] = found.by_stage.get(stage, 0) + 1
        if stage != "Production":
            track = found
            self.problem(
                ("not-production", f"{track.label} {stage}"),
                number,
                "RB705",
                lambda: (
                    f"inferences served by {track.label} while it was "
                    + (
                        "not yet registered"
                        if stage == "unregistered"
                        else f"in {stage}, not Production"
                    )
                ),
            )

    def utc_second(self, ts: str | bytes) -> str | None:
        """``yyyy-mm-ddThh:mm:ss`` in UTC, or None when ``ts`` is not ISO 8601. A
        timestamp without an offset is taken as UTC."""
        if isinstance(ts, bytes):
            ts = ts.decode("ascii", "replace")
        if _CANONICAL_TS.fullmatch(ts):
            day = ts[:10]
            ok = self._dates.get(day)
            if ok is None:
                ok = _valid_date(day)
                if len(self._dates) < 100_000:
                    self._dates[day] = ok
            return ts[:19] if ok else None
        try:
            when = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        except OverflowError:  # next to year 1 or 9999, moved to UTC
            return None

    def fold_live(self) -> None:
        """Add the fast path's tallies to the counts."""
        for track in self.tracks:
            if track.live:
                track.records += track.live
                self.records += track.live
                track.by_stage["Production"] = track.by_stage.get("Production", 0) + track.live
                track.live = 0

    def unreadable(self, number: int, why: str) -> None:
        self.problem(("unreadable", why), number, "RB706", lambda: f"records {why}")

    def missing(self, number: int, id_field: str) -> None:
        self.problem(("missing-id", id_field), number, "RB706",
                     lambda: f"records without a text {id_field!r} field")  # fmt: skip


_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?Z")


def _valid_date(day: str) -> bool:
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _detect_format(path: Path, head: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "jsonl" if first in (b"{", b"") else "csv"


def audit_log(
    snapshot: Snapshot,
    path: Path,
    *,
    id_field: str = "composite_id",
    time_field: str = "timestamp",
) -> LogAudit:
    """Audit an inference log (JSON lines, or CSV with a header) that carries a
    composite ID per record: counts per version; every unknown or mismatching ID with
    its line numbers; for records with an ISO 8601 time in ``time_field``, the stage the
    version was in then, flagging inferences not served from Production; records whose
    time is missing or unreadable are a problem too (RB708): that check cannot run.
    Streams: memory stays bounded whatever the log's size (the first LINES_KEPT line
    numbers per problem are kept, with the total count)."""
    if not id_field or not id_field.strip():
        raise InputError(
            "id_field: give the field name that holds the composite ID", option="id_field"
        )
    if not time_field or not time_field.strip():
        raise InputError(
            "time_field: give the field name that holds the time of the inference",
            option="time_field",
        )
    registry, findings = snapshot.registry, snapshot.ledger_findings
    auditor = _Auditor(registry, time_field)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise InputError(f"{path}: cannot read the log: {err.strerror or err}") from None
    with handle:
        fmt = _detect_format(path, handle.peek(64)[:64] if hasattr(handle, "peek") else b"")
        if fmt == "csv":
            lines = _audit_csv(handle, auditor, id_field, path)
        else:
            lines = _audit_jsonl(handle, auditor, id_field)
    audit = LogAudit(str(path), "CSV" if fmt == "csv" else "JSON lines", id_field, lines)
    audit.time_field = time_field
    audit.records = auditor.records
    audit.without_timestamp = auditor.without_timestamp
    audit.timestamp_not_iso = auditor.not_iso
    audit.versions = sorted(auditor.tracks, key=lambda t: (t.model, t.version))
    order = {"id-mismatch": 0, "unknown-id": 1, "not-production": 2, "untimed": 3,
             "missing-id": 4, "unreadable": 5}  # fmt: skip
    audit.problems = sorted(
        auditor.problems.values(), key=lambda p: (order.get(p.kind, 9), p.lines[:1], p.subject)
    )
    audit.problems_not_listed = len(auditor.not_listed_keys)
    audit.records_not_listed = auditor.not_listed_records
    # The stages a record is judged against come from the ledger: what verify finds
    # in it, its workflow rules included, is the audit's problem too.
    audit.ledger_findings = [f for f in findings + snapshot.rule_findings if f.is_problem]
    return audit


def _is_json(
    line: bytes,
    loads: Callable[[bytes], object] = orjson.loads,
    error: type[ValueError] = orjson.JSONDecodeError,
) -> bool:
    """Whether orjson reads the line (a sixth of json.loads's time). A line it refuses
    goes to json.loads, which decides as before: orjson also refuses NaN and integers
    past 64 bits, which json accepts."""
    try:
        loads(line)
    except error:
        return False
    return True


def _audit_jsonl(handle: BinaryIO, auditor: _Auditor, id_field: str) -> int:
    key = json.dumps(id_field).encode()
    key_re = re.compile(re.escape(key) + rb'[ \t]*:[ \t]*"([^"]*)"')
    time_field = auditor.time_field
    ts_key = json.dumps(time_field).encode()
    # Only the canonical UTC form; any other spelling takes the general path.
    ts_re = re.compile(
        re.escape(ts_key) + rb'[ \t]*:[ \t]*"(\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)'
        rb'(?:\.\d{1,9})?Z"'
    )
    count, loads, exact, dates = auditor.count, json.loads, auditor.exact, auditor._dates
    is_json = _is_json
    last_cid: bytes | None = None
    last_track: _Track | None = None
    number = 0
    continuing = False  # inside an over-long line
    for line in iter(partial(handle.readline, MAX_LINE), b""):
        if continuing or (len(line) == MAX_LINE and line[-1:] != b"\n"):
            if not continuing:
                number += 1
                auditor.unreadable(number, f"longer than {MAX_LINE} bytes")
            continuing = line[-1:] != b"\n"
            continue
        number += 1
        # Fast path, for the flat one-object-per-line records services write: with no
        # backslash every quote delimits a string, so a quoted key followed by a colon
        # is a key; with one "{" no nested object can hold it; the key appears once.
        if (
            line[:1] == b"{"
            and b"\\" not in line
            and line.count(b"{") == 1
            and line.count(key) == 1
            and (line[-2:] == b"}\n" or line.rstrip()[-1:] == b"}")
            and is_json(line)
        ):
            m = key_re.search(line)
            if m is not None:
                cid: bytes = m.group(1)
                n_ts = line.count(ts_key)
                if n_ts == 0:
                    count(number, cid, None)
                    continue
                if n_ts == 1:
                    t = ts_re.search(line)
                    if t is not None:
                        when = t.group(1)
                        if cid is not last_cid and cid != last_cid:
                            found = exact.get(cid)
                            if type(found) is _Track:
                                last_cid, last_track = cid, found
                            else:
                                count(number, cid, when.decode())
                                continue
                        assert last_track is not None  # set with last_cid, for mypy
                        day = when[:10]
                        valid = dates.get(day)
                        if valid is None:
                            valid = dates[day] = _valid_date(day.decode())
                        if valid and last_track.serves and when >= last_track.last_change:
                            last_track.live += 1
                            continue
                        count(number, cid, when.decode() if valid else "")
                        continue
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        try:
            record = loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            auditor.unreadable(number, "that are not JSON")
            continue
        if not isinstance(record, dict):
            auditor.unreadable(number, "that are not JSON objects")
            continue
        text_id = record.get(id_field)
        if not isinstance(text_id, str):
            auditor.missing(number, id_field)
            continue
        ts = record.get(time_field)
        if ts is not None and not isinstance(ts, str):
            ts = ""  # a number (epoch seconds) is not ISO 8601
        count(number, text_id, ts)
    auditor.fold_live()
    return number


def _audit_csv(handle: BinaryIO, auditor: _Auditor, id_field: str, path: Path) -> int:
    import io

    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(_bounded_text(text))
    try:
        header = next(reader)
    except StopIteration:
        return 0
    except csv.Error as err:
        raise InputError(f"{path}: not a CSV file with a header: {err}") from None
    header = [h.strip() for h in header]
    if id_field not in header:
        raise InputError(
            f"{path}: the header has no {id_field!r} column (it has "
            f"{', '.join(repr(h) for h in header[:8])}); give --id-field NAME"
        )
    index = header.index(id_field)
    time_field = auditor.time_field
    ts_index = header.index(time_field) if time_field in header else None
    count = auditor.count
    last = reader.line_num
    while True:
        start = last + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            last = reader.line_num
            auditor.unreadable(start, f"that are not CSV ({err})")
            continue
        last = reader.line_num
        if not row:
            continue
        if len(row) <= index or not row[index]:
            auditor.missing(start, id_field)
            continue
        ts = row[ts_index] if ts_index is not None and len(row) > ts_index else None
        count(start, row[index], ts or None)
    return last


def _bounded_text(text: TextIO) -> Iterator[str]:
    while True:
        line = text.readline(MAX_LINE)
        if not line:
            return
        yield line


def _records(n: int) -> str:
    return f"{n} record has" if n == 1 else f"{n} records have"


def render_audit(audit: LogAudit, shown: int = 10) -> str:
    """The audit as text: records per version (by stage), then every problem with its
    first ``shown`` line numbers and its count."""
    lines = [
        f"{audit.path}: {plural(audit.records, 'record')} on {plural(audit.lines, 'line')} "
        f"({audit.format}, composite ID in {audit.id_field!r}, time in {audit.time_field!r})"
    ]
    for t in audit.versions:
        if not t.records:
            continue
        stages = ", ".join(f"{k} {v}" for k, v in sorted(t.by_stage.items()))
        lines.append(f"  {t.composite_id:<52} {t.records:>10} records  ({stages})")
    for f in audit.ledger_findings:
        lines.append(str(f))
    for p in audit.problems:
        first = ", ".join(map(str, p.lines[:shown]))
        more = f" (first {shown} shown)" if p.count > shown and len(p.lines) > shown else ""
        lines.append(
            f"{p.code} {CODES[p.code][0]} {audit.path}: {p.message}: {p.count} record"
            f"{'s' if p.count != 1 else ''}, line{'s' if len(p.lines) != 1 else ''} {first}{more}"
        )
    if audit.problems_not_listed:
        at_least = "at least " if audit.problems_not_listed >= UNLISTED_KEPT else ""
        lines.append(
            f"... and {at_least}{audit.problems_not_listed} more distinct problems "
            f"({audit.records_not_listed} records) not listed"
        )
    total = len(audit.problems) + audit.problems_not_listed
    ledger = sum(1 for f in audit.ledger_findings if f.is_problem)
    if ledger:
        lines.append(
            f"audit: {plural(total, 'problem')} in the log, and {ledger} in the ledger: the "
            "stages "
            "above are not verified (`regbook verify` says why)"
        )
    else:
        lines.append(f"audit: {'ok' if audit.ok else plural(total, 'problem')}")
    return "\n".join(lines)


# --- demo repositories ---------------------------------------------------------------


def _git_env(when: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        GIT_AUTHOR_NAME="Dana Scientist",
        GIT_AUTHOR_EMAIL="dana@example.com",
        GIT_COMMITTER_NAME="Dana Scientist",
        GIT_COMMITTER_EMAIL="dana@example.com",
        GIT_AUTHOR_DATE=when,
        GIT_COMMITTER_DATE=when,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def _git_commit(repo: Path, message: str, when: str) -> str:
    env = _git_env(when)
    base = ["git", "-C", str(repo), "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"]
    try:
        subprocess.run([*base, "add", "-A"], env=env, check=True, capture_output=True)
        subprocess.run([*base, "commit", "-q", "-m", message], env=env, check=True,
                       capture_output=True)  # fmt: skip
        done = subprocess.run([*base, "rev-parse", "HEAD"], env=env, check=True,
                              capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        text = detail.decode(errors="replace").strip() or str(err)
        raise InputError(f"git failed in {repo}: {text}") from None
    return done.stdout.decode().strip()


def _git_init(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["git", "-c", "init.defaultBranch=main", "init", "-q", str(repo)],
            env=_git_env("2026-01-01T00:00:00Z"),
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        raise InputError(
            f"cannot create a git repository in {repo} (is git installed?): {err}"
        ) from None


def make_demo_repos(folder: Path) -> tuple[Path, Path, str, str]:
    """A real git code repository and a DVC-style data registry (``.dvc`` files in DVC 3
    form, an older one without ``hash``, and a ``dvc.lock``), for the demo and tests.
    Returns (code_repo, data_repo, code_commit, data_commit); dates are fixed, so the
    commits are the same on every run."""
    import hashlib

    code, data = folder / "credit-risk-code", folder / "credit-data"
    for repo in (code, data):
        if repo.exists():
            raise InputError(f"{repo}: already exists; make_demo_repos needs a fresh folder")
    _git_init(code)
    (code / "train.py").write_text(
        "import pandas as pd\n\n\ndef train(frame):\n    ...  # gradient boosting\n",
        encoding="utf-8",
    )
    (code / "params.yaml").write_text("learning_rate: 0.05\nmax_depth: 6\n", encoding="utf-8")
    _git_commit(code, "Start the credit-risk training pipeline", "2026-03-02T09:00:00Z")
    (code / "features.py").write_text(
        "def features(frame):\n    return frame.assign(ratio=frame.debt / frame.income)\n",
        encoding="utf-8",
    )
    code_commit = _git_commit(code, "Add the debt-to-income feature", "2026-03-09T14:30:00Z")

    _git_init(data)
    (data / ".dvc").mkdir()
    (data / ".dvc" / "config").write_text(
        "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://example-bucket/dvc\n",
        encoding="utf-8",
    )
    (data / ".dvcignore").write_text("# DVC ignores these paths\n", encoding="utf-8")
    (data / "data").mkdir()
    (data / "data" / ".gitignore").write_text(
        "/applications.csv\n/bureau\n/holdout.csv\n", encoding="utf-8"
    )

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    (data / "data" / "applications.csv.dvc").write_text(
        f"outs:\n- md5: {md5('applications')}\n  size: 48213377\n  hash: md5\n"
        "  path: applications.csv\n",
        encoding="utf-8",
    )
    (data / "data" / "bureau.dvc").write_text(
        f"outs:\n- md5: {md5('bureau')}.dir\n  size: 912004551\n  nfiles: 24\n  hash: md5\n"
        "  path: bureau\n",
        encoding="utf-8",
    )
    # Written by DVC 2: no `hash` field (its md5 is of the dos2unix'd bytes).
    (data / "data" / "holdout.csv.dvc").write_text(
        f"outs:\n- md5: {md5('holdout')}\n  size: 5120877\n  path: holdout.csv\n",
        encoding="utf-8",
    )
    (data / "dvc.yaml").write_text(
        "stages:\n  prepare:\n    cmd: python prepare.py data/applications.csv data/bureau\n"
        "    deps:\n    - data/applications.csv\n    - data/bureau\n    - prepare.py\n"
        "    outs:\n    - data/train.parquet\n",
        encoding="utf-8",
    )
    (data / "prepare.py").write_text("# joins applications with bureau data\n", encoding="utf-8")
    (data / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n"
        "    cmd: python prepare.py data/applications.csv data/bureau\n    deps:\n"
        f"    - path: data/applications.csv\n      hash: md5\n      md5: {md5('applications')}\n"
        "      size: 48213377\n"
        f"    - path: data/bureau\n      hash: md5\n      md5: {md5('bureau')}.dir\n"
        "      size: 912004551\n      nfiles: 24\n"
        f"    - path: prepare.py\n      hash: md5\n      md5: {md5('prepare')}\n      size: 38\n"
        f"    outs:\n    - path: data/train.parquet\n      hash: md5\n"
        f"      md5: {md5('train')}\n      size: 20718113\n",
        encoding="utf-8",
    )
    data_commit = _git_commit(data, "Snapshot 2026-03 applications and bureau data",
                              "2026-03-08T18:00:00Z")  # fmt: skip
    return code, data, code_commit, data_commit
