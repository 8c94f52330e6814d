"""The witness: a small file, signed by a ci key, naming the ledger head CI last verified.

CI keeps the newest witness where only CI writes, and gives it to every verify. A ledger
that does not hold the witnessed event at the witnessed seq with the witnessed hash was
rolled back, truncated, forked or swapped for another registry's, whatever else it holds::

    text = witness_text(registry_id, head, keyring.sha256, policy.sha256, identity)
    witness = Witness.load(Path("witness"))
    findings = witness_findings(witness, events, keyring, anchors, registry_id)

The file is the witness's JSON (its signed bytes, up to the signature) followed by an
armored SSH signature in the ``regbook-ci`` namespace, so stock ``ssh-keygen -Y verify``
checks it (docs/formats.md shows how).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regbook.core.errors import InputError, cut
from regbook.core.findings import Finding
from regbook.core.schema import APPROVALS, HISTORY, LEDGER, METRICS, MODELS
from regbook.core.workspace import Workspace
from regbook.crypto.keys import SIG_BEGIN, Keyring, SigningKey, check_signature, namespace_for, sign
from regbook.ledger.anchors import Anchors
from regbook.ledger.events import GENESIS, LedgerEvent, parse_at
from regbook.workbook.digests import PackageDigests

FORMAT = "regbook-witness/3"
# Witnesses of the first format name the head only: still read, vouching for no rows;
# those of the second carry no stored state (regbook.registry.resume) for writers.
FORMATS = ("regbook-witness/1", "regbook-witness/2", FORMAT)
# The findings of a ledger held against a witness.
WITNESS_CODES = ("RB119", "RB120")
WITNESS_ROLE = "ci"
_FIELDS = (
    "format", "registry", "seq", "hash", "signatures_sha256", "keyring_sha256",
    "policy_sha256", "at", "signer",
)  # fmt: skip
# Where a writer looks for the witness CI last wrote into the workspace (docs/ci.md).
WORKSPACE_WITNESS = "regbook.witness"
# The sheets whose rows a witness vouches for: those verify compares row by row.
VOUCHED_SHEETS = (LEDGER, MODELS, METRICS, APPROVALS, HISTORY)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHECKPOINT_LINES = re.compile(r'\[\s+([0-9]+),\s+("[0-9a-f]{64}")\s+\]')


@dataclass(frozen=True)
class Witness:
    registry: str
    seq: int
    hash: str
    signatures_sha256: str
    keyring_sha256: str
    policy_sha256: str
    at: str
    signer: str
    signed: bytes  # the JSON text as signed: everything before the signature
    signature: str
    source: str
    parts: PackageDigests | None = None  # the workbook's digests as CI verified it
    # The SHA-256 of the registry's state as CI replayed it at the head, stored beside
    # the witness for writers (regbook.registry.resume); None in older formats.
    state: str | None = None

    @classmethod
    def load(cls, path: Path) -> Witness:
        """Read a witness file; InputError if it cannot be read or is not a witness."""
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            raise InputError(f"witness {path}: cannot read: {err.strerror}") from None
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: bytes, source: str) -> Witness:
        start = raw.find(SIG_BEGIN.encode())
        if start <= 0 or raw[start - 1 : start] != b"\n":
            raise InputError(f"witness {source}: no SSH signature after the JSON")
        signed, signature = raw[:start], raw[start:]
        try:
            data = json.loads(signed.decode("utf-8"))
            text = signature.decode("ascii")
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise InputError(f"witness {source}: not a witness: {cut(str(err), 80)}") from None
        if not isinstance(data, dict) or data.get("format") not in FORMATS:
            raise InputError(f"witness {source}: not a {FORMAT} file")
        fields = {
            "regbook-witness/1": _FIELDS,
            "regbook-witness/2": (*_FIELDS, "parts"),
            FORMAT: (*_FIELDS, "parts", "state"),
        }[data["format"]]
        if set(data) != set(fields):
            raise InputError(f"witness {source}: expected the fields {', '.join(fields)}")
        try:
            parts = PackageDigests.from_json(data["parts"]) if "parts" in data else None
        except ValueError as err:
            raise InputError(f"witness {source}: {err}") from None
        seq = data["seq"]
        texts = [data[k] for k in _FIELDS if k != "seq"]
        if type(seq) is not int or seq < 0 or not all(isinstance(t, str) for t in texts):
            raise InputError(f"witness {source}: seq must be a whole number and the rest text")
        hexes = ("hash", "signatures_sha256", "keyring_sha256", "policy_sha256", "state")
        for key in (k for k in hexes if k in data):
            if not isinstance(data[key], str) or not _HEX64.fullmatch(data[key]):
                raise InputError(f"witness {source}: {key} is not 64 lower-case hex digits")
        try:
            parse_at(data["at"])
        except ValueError as err:
            raise InputError(f"witness {source}: {err}") from None
        return cls(
            data["registry"], seq, data["hash"], data["signatures_sha256"],
            data["keyring_sha256"], data["policy_sha256"],
            data["at"], data["signer"], signed, text, source, parts, data.get("state"),
        )  # fmt: skip

    def signed_by_ci(self, keyring: Keyring, anchors: Anchors | None = None) -> str | None:
        """Why the witness is not a ci key's signature over its JSON, or None if it is.
        With ``anchors``, a key the ledger revoked at or before the witnessed seq fails
        too: revocation goes by chain position, whatever time a witness claims."""
        check = check_signature(
            self.signed, self.signature, keyring, self.signer, namespace_for(WITNESS_ROLE),
            parse_at(self.at),
        )  # fmt: skip
        if not check.ok:
            return check.detail
        revoked = anchors.revoked.get(check.fingerprint or "") if anchors else None
        if revoked is not None and revoked.seq <= self.seq:
            return (
                f"key {check.fingerprint} was revoked by ledger event {revoked.seq}, at or "
                f"before the witnessed event {self.seq}"
            )
        return None


def workspace_witness(ws: Workspace) -> Witness | None:
    """The witness CI left in the workspace, if there is one a writer can read. It only
    spares work: an unreadable, older or foreign one spares less or nothing (the
    snapshot vouches for rows only under a ci key's witness that the ledger holds), so
    it is never an error here."""
    path = ws.root / WORKSPACE_WITNESS
    if not path.is_file():
        return None
    try:
        return Witness.load(path)
    except InputError:
        return None


def signatures_sha256(events: Sequence[LedgerEvent], upto: int) -> str:
    """SHA-256 over the signature cells of events 1..``upto``, each followed by a newline.
    The chain covers every other cell of an event; this covers its signature, so that a
    verify trusting a witness need not check again what CI checked."""
    digest = hashlib.sha256()
    for event in events[:upto]:
        digest.update(event.signature.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def witness_text(
    registry_id: str,
    events: Sequence[LedgerEvent],
    keyring_sha256: str,
    policy_sha256: str,
    principal: str,
    at: str,
    key: SigningKey,
    parts: PackageDigests,
    state: str,
) -> bytes:
    """A signed witness of the head of ``events``, of the workbook's ``parts`` as
    verified and of the ``state`` stored beside it (its SHA-256): the JSON, then its SSH
    signature."""
    head = events[-1] if events else None
    data: dict[str, Any] = {
        "format": FORMAT,
        "registry": registry_id,
        "seq": head.seq if head else 0,
        "hash": head.hash if head else GENESIS,
        "signatures_sha256": signatures_sha256(events, len(events)),
        "keyring_sha256": keyring_sha256,
        "policy_sha256": policy_sha256,
        "at": at,
        "signer": principal,
        "parts": parts.to_json(),
        "state": state,
    }
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    # One checkpoint a line: [rows, "sha256"].
    text = _CHECKPOINT_LINES.sub(r"[\1, \2]", text)
    signed = text.encode("utf-8")
    return signed + sign(signed, key, namespace_for(WITNESS_ROLE)).encode("ascii")


def witness_findings(
    witness: Witness,
    events: list[LedgerEvent],
    keyring: Keyring,
    anchors: Anchors,
    registry_id: str,
) -> list[Finding]:
    """What the ledger says against the witness: RB120 unless a ci key signed it; RB119
    unless the ledger holds the witnessed event at its seq with its hash, in this
    registry, under the witnessed policy."""
    where = f"witness {witness.source}"
    problem = witness.signed_by_ci(keyring, anchors)
    if problem is not None:
        return [Finding.make("RB120", where, f"not a ci key's witness: {problem}")]
    out: list[Finding] = []

    def add(text: str) -> None:
        out.append(Finding.make("RB119", where, text))

    if witness.registry != registry_id:
        add(
            f"the witness is of registry {witness.registry or '(none)'}, this workbook is "
            f"of {registry_id or '(none)'}: the workbook was swapped for another registry's"
        )
    if witness.seq == 0:
        return out
    if witness.seq > len(events) or events[witness.seq - 1].seq != witness.seq:
        add(
            f"CI witnessed event {witness.seq} ({witness.hash[:16]}...) on {witness.at}; the "
            f"ledger ends at event {len(events)}: it was rolled back or truncated"
        )
        return out
    held = events[witness.seq - 1]
    if held.hash != witness.hash:
        add(
            f"CI witnessed event {witness.seq} with hash {witness.hash[:16]}... on "
            f"{witness.at}; the ledger holds {held.hash[:16]}... there: it was forked, "
            "rolled back and rewritten, or replaced"
        )
    elif anchors.policy_at(witness.seq + 1).sha256 != witness.policy_sha256:
        add(
            f"the policy in force at event {witness.seq} is not the one CI witnessed "
            f"({witness.policy_sha256[:16]}...)"
        )
    return out
