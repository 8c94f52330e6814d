"""The writes that change what is trusted: the policy, the keyring, and the witness.

    sign_policy(ws, gov_key)                        # regbook.toml's policy, in force
    new_key(ws, "ci2@example.com", ["ci"], out=Path("keys/ci2"), gov_key=gov_key)
    revoke_key(ws, "ci@example.com", gov_key=gov_key)
    take_witness(ws, ci_key, Path("witness"))       # after a clean verify

Every policy and keyring change is a ledger event signed by a governance lead. The very
first governance-lead key of a registry signs its own ``keyring`` event; until a
registry has a governance-lead key, ``new_key`` adds keys without an event, as a team
starting out needs.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regbook.check.verify import Report, verify
from regbook.core import fs
from regbook.core.errors import InputError, KeyProblem, VerificationFailed, cut
from regbook.core.policy import GOVERNANCE_ONLY, Policy
from regbook.core.workspace import Settings, Workspace, refuse_own_files
from regbook.crypto.keys import (
    Keyring,
    PublicKey,
    SignerEntry,
    SigningKey,
    floor_utc,
    format_signer_line,
    generate_key,
    load_keyring,
)
from regbook.ledger.anchors import REGISTRY_MODEL
from regbook.ledger.events import LedgerEvent
from regbook.ledger.gates import Gate
from regbook.registry.resume import state_bytes, state_path
from regbook.registry.snapshot import Snapshot, open_registry
from regbook.registry.transaction import Identity, Transaction, acting_identity, write_changes
from regbook.registry.witness import VOUCHED_SHEETS, WITNESS_ROLE, Witness, witness_text
from regbook.workbook.digests import PackageDigests, package_digests
from regbook.workbook.read import file_identity

GOVERNANCE = GOVERNANCE_ONLY[0]


# --- the policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySigned:
    policy: Policy
    changes: list[str]
    seq: int | None  # None: the policy was already in force, nothing was written
    registry_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.as_json(),
            "policy_sha256": self.policy.sha256,
            "changes": self.changes,
            "ledger_seq": self.seq,
            "registry_id": self.registry_id,
        }


def sign_policy(ws: Workspace, key: SigningKey) -> PolicySigned:
    """Sign regbook.toml's policy into the ledger as a ``policy`` event, by a governance
    lead. A registry made before registries had an ID gets one here: it is written into
    regbook.toml and carried by this event and every later one."""
    policy = ws.settings.policy
    for name, rule in policy.gates.items():
        Gate.parse(name, rule)  # a policy that no gate run could use is refused
    registry_id = ws.settings.registry_id
    with Transaction(ws, any_policy=True) as tx:
        identity = acting_identity(ws, key, GOVERNANCE_ONLY, "signing the policy")
        in_force = tx.snapshot.anchors.policy
        changes = in_force.differences(policy)
        if not changes and registry_id:
            return PolicySigned(policy, [], None, registry_id)
        payload: dict[str, Any] = {
            "policy": policy.as_json(),
            "policy_sha256": policy.sha256,
            "changes": changes,
        }
        old_config = None
        if not registry_id:  # the signed migration of a registry made before IDs
            registry_id = str(uuid.uuid4())
            payload["registry"] = registry_id
            old_config = _add_registry_id(ws, registry_id)
        try:
            event = tx.sign(identity, "policy", REGISTRY_MODEL, None, payload)
            patch = tx.patch()
            write_changes(tx, patch, [], {})
            tx.save(patch)
        except BaseException:
            if old_config is not None:
                fs.atomic_write(ws.config_path, old_config)
            raise
    return PolicySigned(policy, changes, event.seq, registry_id)


def _add_registry_id(ws: Workspace, registry_id: str) -> bytes:
    """Write ``[registry] id`` into regbook.toml, ahead of its first table; the old bytes."""
    old = ws.config_path.read_bytes()
    text = old.decode("utf-8")
    section = (
        "[registry]\n# This registry's identity; every signed event carries it.\n"
        f'id = "{registry_id}"\n\n'
    )
    first = re.search(r"^\s*\[", text, flags=re.M)
    at = first.start() if first else len(text)
    new = text[:at] + section + text[at:]
    Settings.parse(new, str(ws.config_path))  # never write a file that does not parse
    fs.atomic_write(ws.config_path, new.encode("utf-8"))
    return old


@dataclass(frozen=True)
class PolicyStatus:
    in_force: Policy
    source: LedgerEvent | None  # the policy event, None for the built-in defaults
    file: Policy
    differences: list[str]
    registry_id: str

    def to_json(self) -> dict[str, Any]:
        source = self.source
        return {
            "registry_id": self.registry_id or None,
            "policy": self.in_force.as_json(),
            "policy_sha256": self.in_force.sha256,
            "signed": (
                {"seq": source.seq, "at": source.at, "signer": source.signer}
                if source is not None
                else None
            ),
            "file_differs": self.differences,
        }


def policy_status(snapshot: Snapshot) -> PolicyStatus:
    """The policy in force, where it comes from, and how regbook.toml differs from it."""
    anchors = snapshot.anchors
    file = snapshot.workspace.settings.policy
    return PolicyStatus(
        anchors.policy,
        anchors.policy_event,
        file,
        anchors.policy.differences(file),
        snapshot.registry_id,
    )


# --- the keyring -----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyringChanged:
    lines: list[str]  # the keyring lines written
    seqs: list[int]  # the keyring events appended (none while a registry has no lead)
    key_path: Path | None = None  # the private key made, for keys new
    key: SigningKey | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "ledger_seqs": self.seqs,
            "private_key": str(self.key_path) if self.key_path else None,
        }


_PRINCIPAL = re.compile(r"[^\s,\"'*?!#\x00-\x1f\x7f]{1,256}")


def check_principal(principal: str) -> None:
    if not _PRINCIPAL.fullmatch(principal or ""):
        raise InputError(
            f"principal {cut(principal or '')!r}: use one name of at most 256 characters "
            "without spaces, commas, quotes, wildcards or control characters, e.g. "
            "alice@example.com"
        )


def new_key(
    ws: Workspace,
    principal: str,
    roles: Iterable[str],
    *,
    out: Path | None = None,
    gov_key: SigningKey | None = None,
) -> KeyringChanged:
    """Make an ed25519 key for ``principal`` and add it to the keyring with ``roles``, as
    a ``keyring`` event signed by ``gov_key`` (or by the new key itself, when it is the
    registry's first governance-lead key)."""
    check_principal(principal)
    roles = tuple(dict.fromkeys(roles))
    if out is not None and out.name in ("", ".", ".."):
        raise InputError(
            f"out {str(out)!r}: give the path of the private key file to write", option="out"
        )
    if out is None:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", principal)
        out = Path.home() / ".ssh" / f"regbook_{safe}"
    made: list[SigningKey] = []

    def make() -> tuple[PublicKey, SigningKey]:
        made.append(generate_key(out, comment=principal))
        return made[0].public, made[0]

    try:
        changed = _change_keyring(ws, gov_key, "add", principal, roles, make, key_path=out)
        return replace(changed, key=made[0])
    except BaseException:
        # A key the keyring never named signs nothing: take back the two files this
        # command made, so that running it again is not refused.
        if made:
            for path in (out, out.with_name(out.name + ".pub")):
                path.unlink(missing_ok=True)
        raise


def add_key(
    ws: Workspace,
    principal: str,
    roles: Iterable[str],
    public_key: PublicKey,
    *,
    gov_key: SigningKey | None = None,
) -> KeyringChanged:
    """Add a key someone already has (its public half) to the keyring with ``roles``."""
    check_principal(principal)
    return _change_keyring(
        ws, gov_key, "add", principal, tuple(dict.fromkeys(roles)), lambda: (public_key, None)
    )


def revoke_key(
    ws: Workspace, who: str, *, at: datetime | None = None, gov_key: SigningKey | None = None
) -> KeyringChanged:
    """Revoke every key of principal ``who`` (or the key whose fingerprint is ``who``):
    its keyring lines get ``valid-before=AT`` (default now), and from the ``keyring``
    event on the ledger refuses anything it signs, whatever time that claims."""
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        raise InputError("at: give a time with its zone, e.g. 2026-12-04T10:00:00Z", option="at")
    return _change_keyring(ws, gov_key, "revoke", who, (), None, revoke_at=when)


def _change_keyring(
    ws: Workspace,
    gov_key: SigningKey | None,
    change: str,
    principal: str,
    roles: tuple[str, ...],
    make: Callable[[], tuple[PublicKey, SigningKey | None]] | None,
    *,
    key_path: Path | None = None,
    revoke_at: datetime | None = None,
) -> KeyringChanged:
    with Transaction(ws, any_policy=True) as tx:
        if any(f.code == "RB116" for f in tx.snapshot.ledger_findings):
            raise InputError(
                f"{ws.settings.keyring} differs from the keyring the ledger names (it was "
                "edited outside `regbook keys`); nothing was changed. Undo the edit, or see "
                "`regbook verify`"
            )
        before = load_keyring(ws)
        has_lead = any(GOVERNANCE in e.roles for e in before.entries)
        signer = acting_identity(ws, gov_key, GOVERNANCE_ONLY, "changing the keyring") if (
            gov_key is not None
        ) else None  # fmt: skip
        if signer is None and has_lead:
            raise KeyProblem(
                "changing the keyring needs a governance lead's key, given as --key GOV_KEY: "
                "every change is a signed keyring event"
            )
        if make is not None:
            public, private = make()
            if before.entries_for_key(public):
                raise InputError(f"key {public.fingerprint} is already in {before.source}")
            line = format_signer_line(principal, public, roles)
            new_raw = _appended(before.raw, line)
            changes = [(line, public, principal, None)]
            if signer is None and GOVERNANCE in roles and private is not None:
                # The registry's first governance lead signs its own keyring event.
                signer = Identity(principal, GOVERNANCE, private)
        else:
            assert revoke_at is not None
            new_raw, changes = _revoked(before, principal, revoke_at)
        new = Keyring.parse(new_raw, source=before.source)  # never write one that won't parse
        if signer is not None and not any(
            GOVERNANCE in e.roles and e.valid_at(datetime.now(UTC))
            for e in new.entries_for_key(signer.key.public)
        ):
            raise KeyProblem(
                f"{signer.principal}'s key would sign this keyring event after the time it "
                "revokes it from, which no verifier accepts; another governance lead signs it"
            )
        old_raw = before.raw
        fs.atomic_write(ws.keyring_path, new_raw)
        try:
            seqs = []
            if signer is not None:
                for _line, public, named, until in changes:
                    payload: dict[str, Any] = {
                        "change": change,
                        "principal": named,
                        "key": public.fingerprint,
                        "keyring_sha256": new.sha256,
                    }
                    if change == "add":
                        payload["roles"] = list(roles)
                        payload["public_key"] = public.openssh()
                    else:
                        payload["valid_before"] = until
                    seqs.append(tx.sign(signer, "keyring", REGISTRY_MODEL, None, payload).seq)
            patch = tx.patch()
            write_changes(tx, patch, [], {})
            tx.save(patch)
        except BaseException:
            fs.atomic_write(ws.keyring_path, old_raw)
            raise
    return KeyringChanged([c[0] for c in changes], seqs, key_path)


def _appended(raw: bytes, line: str) -> bytes:
    sep = b"\n" if raw and not raw.endswith(b"\n") else b""
    return raw + sep + line.encode("utf-8") + b"\n"


def _revoked(
    keyring: Keyring, who: str, at: datetime
) -> tuple[bytes, list[tuple[str, PublicKey, str, str | None]]]:
    """The keyring with every line of ``who`` (principal or key fingerprint) ending at
    ``at``; the lines changed."""
    matched = [e for e in keyring.entries if who in e.principals or e.key.fingerprint == who]
    if not matched:
        raise InputError(
            f"{who}: no such principal or key fingerprint in {keyring.source} "
            "(`regbook keys list` shows them)"
        )
    lines = keyring.raw.decode("utf-8").split("\n")
    changed: list[tuple[str, PublicKey, str, str | None]] = []
    for entry in matched:
        until = floor_utc(at, "at")
        if entry.valid_before is not None:
            until = min(entry.valid_before, until)
        revoked: SignerEntry = replace(entry, valid_before=until)
        text = str(revoked)
        lines[entry.line_no - 1] = text
        named = ",".join(entry.principals)
        changed.append((text, entry.key, named, until.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return "\n".join(lines).encode("utf-8"), changed


# --- the witness -----------------------------------------------------------------------


@dataclass(frozen=True)
class Witnessed:
    path: Path
    registry_id: str
    seq: int
    hash: str
    report: Report

    def to_json(self) -> dict[str, Any]:
        return {
            "witness": str(self.path),
            "registry_id": self.registry_id or None,
            "seq": self.seq,
            "hash": self.hash,
        }


def verified_parts(snapshot: Snapshot) -> PackageDigests:
    """The digests of the workbook the snapshot read and verified: refused if the file
    was replaced since (a witness vouches for the bytes that were verified, no other)."""
    path = snapshot.workspace.workbook_path
    parts = package_digests(path, [s.name for s in VOUCHED_SHEETS])
    if file_identity(path) != snapshot.data.identity:
        raise InputError(
            f"{path.name} changed after it was verified; no witness was written: run again"
        )
    return parts


def take_witness(
    ws: Workspace,
    key: SigningKey,
    out: Path,
    *,
    keyring_sha256: str | None = None,
    previous: Witness | None = None,
    snapshot: Snapshot | None = None,
) -> Witnessed:
    """Verify the registry (ledger, signatures, policy, keyring, views; not artefacts)
    and, when nothing is wrong, write a witness of its head signed by the ci ``key``.
    A ``snapshot`` already opened and verified clean (verify --for-deploy) is used as it
    is; ``previous`` (the last witness) spares the signatures it vouches for."""
    refuse_own_files(out, "witness", option="out")
    identity = acting_identity(ws, key, (WITNESS_ROLE,), "taking a witness")
    if snapshot is None:
        snapshot = open_registry(ws, keyring_sha256=keyring_sha256, witness=previous)
    report = verify(snapshot, artefacts=False)
    if not report.ok:
        raise VerificationFailed(
            f"the registry does not verify ({len(report.problems)} problem"
            f"{'s' if len(report.problems) != 1 else ''}); no witness was written",
            report.problems,
        )
    head = snapshot.head
    # The state stored beside the witness, for writers (regbook.registry.resume).
    parts = verified_parts(snapshot)
    state = state_bytes(snapshot, parts)
    text = witness_text(
        snapshot.registry_id, snapshot.events, snapshot.keyring.sha256,
        snapshot.anchors.policy.sha256, identity.principal, fs.utc_now(), key, parts,
        hashlib.sha256(state).hexdigest(),
    )  # fmt: skip
    try:
        fs.atomic_write(state_path(out), state)
        fs.atomic_write(out, text)
    except OSError as err:
        raise InputError(
            f"out {out}: cannot write the witness: {err.strerror}", option="out"
        ) from None
    return Witnessed(
        out, snapshot.registry_id, head.seq if head else 0, snapshot.ledger_head, report
    )
