"""Every ledger event's SSH signature checked against the keyring, and the role it
acted in.

The Ed25519 work runs in batches (``regbook.crypto.sigbatch``), on worker processes for
large ledgers; the keyring's rules (principal, namespace, validity window) and the
role each kind of event needs (``allowed_roles_for``) are applied to each result::

    wait = check_signatures_in_background(events, keyring, allowed_roles_for(anchors.policy_at))
    findings = wait()
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from functools import lru_cache
from pathlib import Path

from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.policy import GOVERNANCE_ONLY, Policy
from regbook.crypto import (
    keys,  # here, not at import: it loads cryptography
    sigbatch,
)
from regbook.crypto.keys import Keyring, Signature, SignerEntry, role_for_namespace
from regbook.ledger.events import LedgerEvent

# The roles that may sign an event of its kind (``allowed_roles_for``).
AllowedRoles = Callable[[LedgerEvent], tuple[str, ...]]


def check_signatures(
    events: list[LedgerEvent], keyring: Keyring, allowed_roles: AllowedRoles, threads: int = 2
) -> list[Finding]:
    """Check every event's signature against the keyring, on ``threads`` threads
    (Ed25519 verification releases the GIL). ``allowed_roles(event)`` gives the roles
    that may sign an event of that kind."""
    return check_signatures_in_background(events, keyring, allowed_roles, threads)()


def check_signatures_in_background(
    events: list[LedgerEvent],
    keyring: Keyring,
    allowed_roles: AllowedRoles,
    threads: int = 2,
    pool: Executor | None = None,
) -> Callable[[], list[Finding]]:
    """Start ``check_signatures``; returns a function that waits for its findings."""
    checks = SignatureChecks(keyring, allowed_roles, threads, pool)
    for event in events:
        checks.add(event)
    return checks.started()


class SignatureChecks:
    """Signature checks started event by event: the Ed25519 work runs on ``pool``
    (worker processes, see sigbatch.py) as events are added, else on ``threads``
    threads once ``started``; the keyring and role rules are applied while waiting.
    ``allowed_roles`` may be set after the events are added, before waiting."""

    def __init__(
        self,
        keyring: Keyring,
        allowed_roles: AllowedRoles | None,
        threads: int = 2,
        pool: Executor | None = None,
    ) -> None:

        self.keyring = keyring
        self.allowed_roles = allowed_roles
        self.events: list[LedgerEvent] = []
        self.feed = sigbatch.Feed(pool, threads)

    def _items(self, start: int, end: int) -> list[sigbatch.Item]:
        return [(e.signature, e.signed_bytes()) for e in self.events[start:end]]

    def add(self, event: LedgerEvent) -> None:
        self.events.append(event)
        data = event.signed_bytes()
        event.hash_bytes(data)  # check_chain's hash, from the same bytes
        self.feed.add(event.signature, data)

    def started(self) -> Callable[[], list[Finding]]:
        """Every event added; returns a function that waits for the findings."""

        chunks = self.feed.finish()
        events = self.events

        def wait() -> list[Finding]:
            results = sigbatch.gather(chunks, self._items)
            assert self.allowed_roles is not None, "set allowed_roles before waiting"
            rules = _SignatureRules(self.keyring, self.allowed_roles)
            return [f for e, got in zip(events, results, strict=True) for f in rules(e, got)]

        return wait


_SIGNATURE_CODES = {
    "malformed": "RB104", "bad-signature": "RB104", "unknown-key": "RB105",
    "principal-mismatch": "RB105", "wrong-namespace": "RB106",
    "namespace-not-allowed": "RB106", "not-yet-valid": "RB107", "expired": "RB107",
}  # fmt: skip


class _SignatureRules:
    """The findings of one event from its fast-path result: the keyring's say on a good
    signature (principal, namespace, time window), then the role the event needs.
    Anything the fast path did not pass goes through ``keys.check_signature``."""

    def __init__(self, keyring: Keyring, allowed_roles: AllowedRoles) -> None:

        self.keys = keys
        self.keyring = keyring
        self.allowed_roles = allowed_roles
        self.entries: dict[tuple[bytes, str, str], tuple[tuple[SignerEntry, ...], bool]] = {}

    def _allowed(self, event: LedgerEvent, key_blob: bytes, namespace: str) -> bool:
        found = self.entries.get((key_blob, event.signer, namespace))
        if found is None:
            entries = tuple(
                e
                for e in self.keyring.by_blob.get(key_blob, ())
                if e.signs_as(event.signer) and e.allows_namespace(namespace)
            )
            if self.keys.role_for_namespace(namespace) is None:
                entries = ()
            always = any(e.valid_after is None and e.valid_before is None for e in entries)
            found = (entries, always)
            self.entries[(key_blob, event.signer, namespace)] = found
        entries, always = found
        if always:
            return True
        at = self.keys.floor_utc(event.when, "the check time")
        return any(e.window_problem(at) is None for e in entries)

    def __call__(self, event: LedgerEvent, got: tuple[bytes, str] | None) -> list[Finding]:
        keys = self.keys
        if got is not None and self._allowed(event, *got):
            fingerprint, namespace = keys.fingerprint_of(got[0]), got[1]
        else:
            result = keys.check_signature(
                event.signed_bytes(), event.signature, self.keyring, event.signer, None,
                event.when,
            )  # fmt: skip
            if not result.ok:
                return [Finding.make(
                    _SIGNATURE_CODES[result.problem], event.where("signature"),
                    f"{_label(event)}: {result.detail}", event.model, event.version)]  # fmt: skip
            fingerprint, namespace = result.fingerprint, result.namespace or ""
        out: list[Finding] = []
        if fingerprint != event.fingerprint:
            out.append(Finding.make(
                "RB111", event.where("fingerprint"),
                f"{_label(event)}: the row names key {event.fingerprint} but the signature was "
                f"made by {fingerprint}", event.model, event.version))  # fmt: skip
        role = keys.role_for_namespace(namespace)
        _KNOWN_ROLES[event.signature] = role
        roles = self.allowed_roles(event)
        if role not in roles:
            out.append(Finding.make(
                "RB106", event.where("signature"),
                f"{_label(event)} was signed by {event.signer} acting as {role}; a "
                f"{event.kind} event needs {' or '.join(roles) or 'a role none is configured for'}",
                event.model, event.version))  # fmt: skip
        return out


def _label(event: LedgerEvent) -> str:
    return f"event {event.seq} ({event.kind} {event.model}@{event.version})"


# Roles already read from verified signatures, so views need not parse them again.
_KNOWN_ROLES: dict[str, str | None] = {}


def signer_role(event: LedgerEvent) -> str | None:
    """The role an event's signer acted in, read from its signature's namespace."""
    known = _KNOWN_ROLES.get(event.signature)
    return known if known is not None else _role_of_signature(event.signature)


@lru_cache(maxsize=65536)
def _role_of_signature(armored: str) -> str | None:

    parsed = sigbatch.parse(armored)  # the common case, without the full parser
    if parsed is not None:
        return role_for_namespace(parsed[1])
    try:
        return role_for_namespace(Signature.parse(armored).namespace)
    except InputError:
        return None


def allowed_roles_for(policy_at: Callable[[int], Policy]) -> AllowedRoles:
    """The roles that may sign each kind of event, under the policy in force at the
    event's seq (``policy_at``). Policy and keyring changes need a governance lead."""

    def roles(event: LedgerEvent) -> tuple[str, ...]:
        if event.kind in ("policy", "keyring"):
            return GOVERNANCE_ONLY
        settings = policy_at(event.seq)
        if event.kind in ("register", "metrics"):  # metrics: sealed after registration
            return settings.register_roles
        if event.kind == "gate":
            return settings.gate_roles
        if event.kind == "scan":
            return settings.scan_roles
        if event.kind in ("approve", "archive", "promote"):
            p = event.payload
            if event.kind == "promote" and p.get("to") == "Production":
                return ("ci",)
            roles = settings.transition_roles(str(p.get("from")), str(p.get("to")))
            if event.kind == "archive" and p.get("superseded_by"):
                # promote --archive-previous: CI archives the version it replaces
                # (workflow_findings checks that the promotion follows).
                return (*roles, "ci")
            return roles
        return ()

    return roles


# Workbooks this large hold enough events (about 750 bytes each on disk) to check their
# signatures on worker processes; see sigbatch.PROCESS_MIN_EVENTS.
_POOL_MIN_BYTES = 750 * sigbatch.PROCESS_MIN_EVENTS


def signature_pool(workbook: Path, threads: int) -> Executor | None:
    """Worker processes for the signature checks, started before the workbook is read:
    no thread runs yet (fork is safe) and the process is still small (forking is cheap).
    None for small workbooks and ``threads <= 1``."""
    if threads <= 1:
        return None
    try:
        size = workbook.stat().st_size
    except OSError:
        return None  # read_workbook says what is wrong
    return sigbatch.start_pool(threads) if size >= _POOL_MIN_BYTES else None
