"""Exports for auditors and supply-chain tools: provenance and signatures.

``provenance_statement`` describes how a sealed version was made as an in-toto
Statement v1 with an SLSA Provenance v1 predicate; ``dsse_envelope`` signs it as a DSSE
envelope with an Ed25519 key. ``export_signatures`` writes every ledger event's signed
bytes and SSH signature with a POSIX shell script that re-checks them all with stock
``ssh-keygen -Y verify``::

    statement = provenance_statement(ws, ModelRef.parse("credit-risk@7"))
    envelope = dsse_envelope(statement_bytes(statement), load_private_key(path))
    verify_envelope(envelope, public_key)          # the payload bytes, or InputError

    export_signatures(ws, Path("evidence/signatures"))   # then: sh verify-signatures.sh
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from regbook.core import fs
from regbook.core.errors import InputError, VerificationFailed
from regbook.core.ids import ModelRef
from regbook.core.schema import DVC_MD5_RE
from regbook.core.workspace import Workspace, refuse_own_files
from regbook.crypto import sigbatch
from regbook.crypto.keys import PublicKey, Signature, SigningKey
from regbook.ledger.events import CHAIN_CODES, canonical
from regbook.ledger.state import VersionState
from regbook.lineage.trace import (
    SIGNATURE_CODES,
    DvcOutput,
    GitRepo,
    RepoUnavailable,
    choose_repo,
    dvc_outputs,
    links_table,
    local_path,
    pipeline_url,
)
from regbook.registry.snapshot import Snapshot
from regbook.reports.listing import about_the_whole_ledger

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# The buildType: how regbook maps a sealed registration onto the predicate (see
# docs/lineage.md). A URN, because it names a format rather than a web page.
BUILD_TYPE = "urn:regbook:buildtype:model-training:v1"
SCRIPT_NAME = "verify-signatures.sh"


# --- in-toto / SLSA ---------------------------------------------------------------------


def canonical_bytes(obj: object) -> bytes:
    """RFC 8785 (JCS) bytes: the same statement always serialises the same way."""

    return canonical(obj).encode("utf-8")


def statement_bytes(statement: dict[str, object]) -> bytes:
    return canonical_bytes(statement)


def resource_uri(recorded: str, root: Path) -> str | None:
    """A repository as a ResourceURI (``git+https://...``), scheme and host lower-cased
    as the in-toto field rules require; None when nothing is recorded."""

    text = (recorded or "").strip()
    if not text:
        return None
    scp = re.fullmatch(r"([^@/\\:]+@)?([^/\\:]{2,}):(.+)", text)
    if scp and not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return f"git+ssh://{scp[1] or ''}{scp[2].lower()}/{scp[3].lstrip('/')}"
    local = local_path(text, root)
    if local is not None:
        return "git+file://" + quote(local.resolve().as_posix(), safe="/:")
    parsed = urlparse(text)
    netloc = parsed.netloc
    user, at, host = netloc.rpartition("@")
    netloc = f"{user}{at}{host.lower()}"
    scheme = parsed.scheme.lower()
    rebuilt = parsed._replace(scheme=scheme, netloc=netloc).geturl()
    return rebuilt if scheme.startswith("git+") else f"git+{rebuilt}"


def _builder_id(ws: Workspace, principal: str) -> str:

    links = links_table(ws)
    if isinstance(links.get("builder"), str) and links["builder"].strip():
        return links["builder"].strip()
    template = ws.settings.pipeline_link
    if template:
        parsed = urlparse(template)
        if parsed.scheme and parsed.netloc:
            return f"{parsed.scheme.lower()}://{parsed.netloc.lower()}/"
    return "urn:regbook:registrant:" + quote(principal, safe="@.")


def evaluation_bytes(state: VersionState) -> bytes:
    """The evaluation byproduct: the sealed metrics and the latest gate result, as RFC
    8785 JSON (its SHA-256 is the byproduct's digest)."""
    gate = state.gate_event
    return canonical_bytes(
        {
            "model": state.model,
            "version": state.version,
            "contentHash": state.content_hash,
            "metrics": state.metrics,
            "gate": None
            if gate is None
            else {
                "result": gate.payload.get("result"),
                "gates": gate.payload.get("gates", []),
                "at": gate.at,
                "signer": gate.signer,
                "ledgerSeq": gate.seq,
                "ledgerHash": gate.hash,
            },
        }
    )


def provenance_statement(
    snapshot: Snapshot,
    ref: ModelRef,
    *,
    data_repo: Path | None = None,
) -> dict[str, Any]:
    """The in-toto Statement v1 (SLSA Provenance v1 predicate) for a sealed version.

    subject: the artefact and its digest (``sha256`` for a file, ``dirHash1`` for a
    folder: regbook's tree hash is that very manifest hash); resolvedDependencies: the
    code repository at its ``gitCommit`` and the data repository at its ``gitCommit``,
    with the DVC outputs at that commit as annotations when the data repository is
    available; runDetails.metadata.invocationId: the pipeline run; the evaluation as a
    byproduct with its SHA-256 and content. The ledger must vouch for the version."""
    import hashlib

    if ref.version is None:
        raise InputError(f"{ref}: name the version (MODEL@VERSION)")
    ws, registry, findings = snapshot.workspace, snapshot.registry, snapshot.ledger_findings
    state = registry.get(ref.name, ref.version)
    if state is None:
        raise InputError(registry.unknown(ref, ref.name, ref.version))
    cells = (state.register.where("signature"), state.register.where("fingerprint"))
    problems = [
        f
        for f in findings
        if f.code in CHAIN_CODES
        or (f.code in SIGNATURE_CODES and f.where in cells)
        or (f.code == "RB203" and (f.model, f.version) == (state.model, state.version))
        or about_the_whole_ledger(f)
    ]
    if problems:
        raise VerificationFailed(
            f"{ref}: the ledger does not vouch for this version; no provenance written",
            problems,
        )
    p = state.payload
    algorithm, _, digest = state.content_hash.partition(":")
    storage = str(p["artefact"].get("storage", ""))
    name = os.path.basename(storage.rstrip("/\\")) or f"{state.model}-{state.version}"
    subject = {
        "name": name,
        "digest": {"sha256" if algorithm == "sha256" else "dirHash1": digest},
        "annotations": {
            "regbook_compositeId": state.composite_id,
            "regbook_contentHash": state.content_hash,
            "regbook_model": state.model,
            "regbook_version": state.version,
        },
    }

    code_recorded, data_recorded = str(p.get("code_repo") or ""), str(p.get("data_repo") or "")
    deps = _dependencies(ws, p, code_recorded, data_recorded, data_repo)
    evaluation = evaluation_bytes(state)
    run = str(p.get("pipeline_run") or "")
    metadata: dict[str, Any] = {"invocationId": run}
    url = pipeline_url(ws.settings.pipeline_link, run)
    if url:
        metadata["regbook_invocationUrl"] = url
    external: dict[str, Any] = {
        "model": state.model,
        "codeRepository": code_recorded,
        "dataRepository": data_recorded,
        "hyperparameters": p.get("params", {}),
        "trainedOn": p.get("trained_on", ""),
    }
    event = state.register
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {
                    "registration": {
                        "ledgerSeq": event.seq,
                        "ledgerHash": event.hash,
                        "registeredBy": event.signer,
                        "registeredAt": event.at,
                        "keyFingerprint": event.fingerprint,
                    }
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": _builder_id(ws, event.signer)},
                "metadata": metadata,
                "byproducts": [
                    {
                        "name": "evaluation",
                        "digest": {"sha256": hashlib.sha256(evaluation).hexdigest()},
                        "content": base64.b64encode(evaluation).decode("ascii"),
                        "mediaType": "application/json",
                    }
                ],
            },
        },
    }


def _dependencies(
    ws: Workspace, p: dict[str, Any], code_recorded: str, data_recorded: str, data_repo: Path | None
) -> list[dict[str, Any]]:
    """resolvedDependencies: the code at its commit; the data registry at its commit
    with the DVC outputs there (or, for a DVC md5, the data by md5 and the commit of the
    data registry that recorded it)."""

    def dependency(name: str, recorded: str, digest: dict[str, str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name}
        uri = resource_uri(recorded, ws.root)
        if uri:
            entry["uri"] = uri
        entry["digest"] = digest
        return entry

    deps = [dependency("code", code_recorded, {"gitCommit": p["code_commit"]})]
    data_version = p["data_version"]
    path, source = choose_repo(ws, "data", data_repo, data_recorded)
    repo = None
    if path is not None:
        try:
            repo = GitRepo.open(path, source)
        except RepoUnavailable:
            repo = None
    if DVC_MD5_RE.fullmatch(data_version):
        deps.append(dependency("training-data", "", {"md5": data_version}))
        for sha in repo.commits_mentioning(data_version) if repo is not None else []:
            assert repo is not None  # for mypy: the loop runs only with a repository
            outputs, _unreadable = dvc_outputs(repo, sha)
            if any(o.md5 == data_version for o in outputs):
                registry_dep = dependency("data-registry", data_recorded, {"gitCommit": sha})
                registry_dep["annotations"] = {"dvc_outs": [_out(o) for o in outputs]}
                deps.append(registry_dep)
                break
        return deps
    data_dep = dependency("data", data_recorded, {"gitCommit": data_version})
    if repo is not None and repo.has_commit(data_version):
        outputs, _unreadable = dvc_outputs(repo, data_version)
        data_dep["annotations"] = {"dvc_outs": [_out(o) for o in outputs]}
    deps.append(data_dep)
    return deps


def _out(o: DvcOutput) -> dict[str, str | bool | int | None]:
    entry: dict[str, str | bool | int | None] = {
        "path": o.path,
        "md5": o.md5,
        "hash": o.hash,
        "source": o.source,
    }
    if o.is_dir:
        entry["dir"] = True
    if o.size is not None:
        entry["size"] = o.size
    if o.nfiles is not None:
        entry["nfiles"] = o.nfiles
    return entry


# --- DSSE -----------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: ``"DSSEv1" SP LEN(type) SP type SP LEN(body)
    SP body``, lengths as ASCII decimal byte counts."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_envelope(
    payload: bytes, key: SigningKey, payload_type: str = PAYLOAD_TYPE
) -> dict[str, Any]:
    """Sign ``payload`` as a DSSE envelope with an Ed25519 key (``keys.SigningKey``);
    the keyid is the key's SHA256 fingerprint as ``ssh-keygen -l`` prints it."""
    signature = key.private.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {"keyid": key.public.fingerprint, "sig": base64.b64encode(signature).decode("ascii")}
        ],
    }


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"DSSE envelope: {what} is not a string")
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"DSSE envelope: {what} is not base64") from None


def verify_envelope(envelope: dict[str, Any], public_key: PublicKey) -> bytes:
    """The payload of a DSSE envelope that ``public_key`` (``keys.PublicKey``) signed;
    InputError otherwise. The type is checked inside the signature, never beside it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise InputError("DSSE envelope: no payloadType")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise InputError("DSSE envelope: no signatures")
    verifier = Ed25519PublicKey.from_public_bytes(public_key.raw)
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        try:
            verifier.verify(_b64(entry.get("sig"), "sig"), message)
        except (InvalidSignature, InputError):
            continue
        return payload
    raise InputError(f"DSSE envelope: no signature by {public_key.fingerprint} verifies")


def export_provenance(
    snapshot: Snapshot,
    ref: ModelRef,
    *,
    key: SigningKey | None = None,
    data_repo: Path | None = None,
) -> bytes:
    """The bytes of the export: the statement as indented JSON, or with ``key`` a DSSE
    envelope (one JSON line) whose payload is the statement's RFC 8785 bytes."""
    statement = provenance_statement(snapshot, ref, data_repo=data_repo)
    if key is None:
        return (json.dumps(statement, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    envelope = dsse_envelope(statement_bytes(statement), key)
    return (json.dumps(envelope, separators=(",", ":")) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target, fsync, rename into place. Refused: a path that is not a
    regular file (a folder, a device), and a workspace's own files (``refuse_own_files``).
    """

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: folder {folder} does not exist")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file; give the path of a file to write")
    refuse_own_files(path, "output", option="output")
    try:
        fs.atomic_write(path, data)
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err.strerror or err}") from None


# --- signatures -------------------------------------------------------------------------


@dataclass(frozen=True)
class SignaturesExport:
    folder: Path
    events: int
    unreadable_rows: int
    script: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "events": self.events,
            "unreadable_rows": self.unreadable_rows,
            "script": self.script.name,
        }


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _verify_time(at: str) -> str:
    return re.sub(r"[^0-9]", "", at) + "Z"


def signatures_script(rows: list[tuple[str, str, str, str, str, str]]) -> str:
    """The POSIX shell script: one ``check`` line per event (file stem, signer,
    namespace, verify time, hash, previous hash)."""
    head = f"""#!/bin/sh
# Re-check every regbook ledger event's SSH signature with stock OpenSSH:
#   ssh-keygen -Y verify -f allowed_signers -I SIGNER -n NAMESPACE -s N.json.sig < N.json
# at the event's own time (-Overify-time), so rotated keys still check. Where sha256sum
# or shasum is found, each event's bytes are also checked against the ledger's Hash and
# the link to the event before it (Prev hash).
#
#   sh {SCRIPT_NAME} [ALLOWED_SIGNERS]
#
# ALLOWED_SIGNERS defaults to the copy beside this script; give your own pinned copy to
# check against it. Exit 0 when every check passes, 1 when any fails, 2 when it cannot run.
set -u
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 2
signers=${{1:-"$here/allowed_signers"}}
if ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "{SCRIPT_NAME}: ssh-keygen not found: install OpenSSH" >&2
  exit 2
fi
if [ ! -f "$signers" ]; then
  echo "{SCRIPT_NAME}: $signers: no such file" >&2
  exit 2
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha() {{ sha256sum < "$1" | cut -d' ' -f1; }}
elif command -v shasum >/dev/null 2>&1; then
  sha() {{ shasum -a 256 < "$1" | cut -d' ' -f1; }}
else
  sha() {{ echo -; }}
fi
good=0
bad=0
prev=0000000000000000000000000000000000000000000000000000000000000000
check() {{
  # $1 event file stem, $2 signer, $3 namespace, $4 time, $5 hash
  bytes="$here/events/$1.json"
  if out=$(ssh-keygen -Y verify -f "$signers" -I "$2" -n "$3" -Overify-time="$4" \\
      -s "$bytes.sig" < "$bytes" 2>&1); then
    ok=1
  else
    ok=0
    echo "BAD  event $1: signature by $2 in $3: $out"
  fi
  digest=$(sha "$bytes")
  if [ "$digest" != "-" ] && [ "$digest" != "$5" ]; then
    ok=0
    echo "BAD  event $1: its bytes hash to $digest, the ledger says $5"
  fi
  if ! grep -F -q "\\"prev\\":\\"$prev\\"" "$bytes"; then
    ok=0
    echo "BAD  event $1: does not link to the event before it ($prev)"
  fi
  prev=$5
  if [ "$ok" -eq 1 ]; then good=$((good + 1)); else bad=$((bad + 1)); fi
}}
"""
    body = "".join(
        f"check {stem} {_sh_quote(signer)} {_sh_quote(ns)} {when} {digest}\n"
        for stem, signer, ns, when, digest, _prev in rows
    )
    tail = """echo "$good event(s) verified, $bad failed"
[ "$bad" -eq 0 ]
"""
    return head + body + tail


def signature_files(snapshot: Snapshot, keyring: bytes) -> dict[str, bytes]:
    """The files of a signature export, by their path inside it: each event's signed
    bytes and ``.sig``, ``events.tsv``, the keyring as it is and the check script."""
    files: dict[str, bytes] = {}
    rows = []
    tsv = ["seq\tkind\tversion\tsigner\tnamespace\tat\thash\n"]
    for event in snapshot.events:
        stem = f"{event.seq:06d}"
        files[f"events/{stem}.json"] = event.signed_bytes()
        files[f"events/{stem}.json.sig"] = (event.signature.strip() + "\n").encode("utf-8")
        namespace = _namespace(event.signature)
        rows.append((stem, event.signer, namespace, _verify_time(event.at), event.hash,
                     event.prev))  # fmt: skip
        about = event.model if event.version is None else f"{event.model}@{event.version}"
        tsv.append(
            f"{event.seq}\t{event.kind}\t{about}\t{event.signer}\t"
            f"{namespace}\t{event.at}\t{event.hash}\n"
        )
    files["events.tsv"] = "".join(tsv).encode("utf-8")
    files["allowed_signers"] = keyring
    files[SCRIPT_NAME] = signatures_script(rows).encode("utf-8")
    return files


def _namespace(armored: str) -> str:
    """The namespace a signature was made in, as ``ssh-keygen -Y verify -n`` needs it."""
    parsed = sigbatch.parse(armored)  # the common case, without the full parser
    if parsed is not None:
        return parsed[1]
    try:
        return Signature.parse(armored).namespace
    except InputError:
        return "(unreadable signature)"


def read_keyring_bytes(ws: Workspace) -> bytes:
    """The keyring file's bytes, as an auditor gets them."""
    try:
        return ws.keyring_path.read_bytes()
    except OSError as err:
        raise InputError(f"{ws.keyring_path}: cannot read: {err.strerror or err}") from None


def export_signatures(snapshot: Snapshot, dest: Path) -> SignaturesExport:
    """Write ``dest/``: ``events/NNNNNN.json`` (each event's signed bytes), its
    ``.json.sig``, ``events.tsv`` (seq, kind, version, signer, namespace, at, hash),
    ``allowed_signers`` (the keyring as it is) and ``verify-signatures.sh``. ``dest``
    must be new or empty; it appears whole or not at all."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: exists and is not an empty folder; choose a new one")
    refuse_own_files(dest, "export signatures")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{dest}: folder {parent} does not exist")
    files = signature_files(snapshot, read_keyring_bytes(snapshot.workspace))
    tmp = fs.staging_folder(parent, f".{dest.name}.partial-", like=dest)
    try:
        (tmp / "events").mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        script = tmp / SCRIPT_NAME
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{dest}: cannot write: {err.strerror or err}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    unreadable = sum(1 for f in snapshot.ledger_findings if f.code == "RB108")
    return SignaturesExport(dest, len(snapshot.events), unreadable, dest / SCRIPT_NAME)
