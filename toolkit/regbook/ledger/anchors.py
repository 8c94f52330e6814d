"""What the ledger itself anchors: the registry's identity, the signed policy in force at
each event, the keyring's history and the chain's clock.

Whoever can edit the workspace can edit ``regbook.toml`` and ``allowed_signers``; neither
file is trusted on its word. The policy in force is the one the latest ``policy`` event
signed by a governance lead carries (the built-in defaults before any); a key revoked by
a ``keyring`` event signs nothing after it, whatever time an event claims; and the
keyring file must be the one the latest ``keyring`` event names::

    anchors = Anchors.replay(events, keyring)
    anchors.policy_at(event.seq)           # the policy that judges this event
    anchors.findings + anchors.file_findings(settings, keyring, now)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.policy import GOVERNANCE_ONLY, Policy
from regbook.core.workspace import CONFIG_NAME, Settings
from regbook.crypto.keys import Keyring, check_signature, namespace_for
from regbook.ledger.events import LedgerEvent
from regbook.ledger.signatures import signer_role

# The Model cell of events about the whole registry (policy, keyring): no model name
# can be written so.
REGISTRY_MODEL = "(registry)"
# How far ahead of the verifier's clock an event may be dated (clocks drift).
CLOCK_SLACK = timedelta(minutes=5)
KEYRING_CHANGES = ("add", "revoke")
DEFAULT_POLICY = Policy()  # the built-in defaults, in force until a policy is signed


@dataclass
class Anchors:
    """One walk along the chain: the registry ID events carry, the policy changes, the
    keyring's history, and what was wrong with them."""

    registry_id: str | None = None  # the ID the events carry (None: none carries one)
    policies: list[tuple[int, Policy, LedgerEvent]] = field(default_factory=list)
    revoked: dict[str, LedgerEvent] = field(default_factory=dict)  # fingerprint -> event
    keyring_event: LedgerEvent | None = None  # the latest keyring event
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def replay(cls, events: list[LedgerEvent], keyring: Keyring) -> Anchors:
        anchors = cls()
        for event in events:
            anchors.step(event, keyring)
        return anchors

    def step(self, event: LedgerEvent, keyring: Keyring) -> None:
        """Walk on by one event."""
        carried = event.payload.get("registry")
        if self.registry_id is None and carried is not None:
            self.registry_id = str(carried)
        elif carried != self.registry_id:
            self._add(
                "RB112", event, "payload",
                f"carries registry ID {carried or '(none)'}, the events before it "
                f"{self.registry_id}: an event of another registry",
            )  # fmt: skip
        revoked = self.revoked.get(event.fingerprint)
        if revoked is not None:
            self._add(
                "RB115", event, "signature",
                f"is signed by key {event.fingerprint}, which event {revoked.seq} revoked "
                f"({revoked.at}); a revoked key signs nothing after its revocation, "
                "whatever time an event claims",
            )  # fmt: skip
        if event.kind == "policy":
            self._policy(event, keyring, revoked is None)
        elif event.kind == "keyring":
            self._keyring(event, keyring, revoked is None)

    def _add(self, code: str, event: LedgerEvent, column: str, text: str) -> None:
        self.findings.append(Finding.make(
            code, event.where(column), f"event {event.seq} ({event.kind}) {text}",
            event.model if event.model != REGISTRY_MODEL else None, event.version,
        ))  # fmt: skip

    def _policy(self, event: LedgerEvent, keyring: Keyring, unrevoked: bool) -> None:
        try:
            policy = Policy.from_json(event.payload.get("policy"))
        except InputError as err:
            self._add("RB118", event, "payload", f"holds no policy that can be read: {err}")
            return
        if event.payload.get("policy_sha256") != policy.sha256:
            self._add("RB118", event, "payload", "names a policy sha256 its policy does not have")
            return
        # Only a governance lead's good signature puts a policy in force; the signature
        # checks report any other as RB104-RB107.
        if unrevoked and _signed_by_governance(event, keyring):
            self.policies.append((event.seq, policy, event))

    def _keyring(self, event: LedgerEvent, keyring: Keyring, unrevoked: bool) -> None:
        p = event.payload
        change, fingerprint, sha = p.get("change"), p.get("key"), p.get("keyring_sha256")
        if (
            change not in KEYRING_CHANGES
            or not isinstance(fingerprint, str)
            or not (isinstance(sha, str) and len(sha) == 64)
        ):
            self._add("RB118", event, "payload", "is not a keyring change regbook can read")
            return
        # What the ledger claims counts wherever it can only add findings: the keyring
        # file must be the one the latest keyring event in a lead's namespace names, and
        # a revocation stands however its signature fares (the signature checks report
        # a bad one). Only a lead's good signature takes a revocation back.
        if signer_role(event) == GOVERNANCE_ONLY[0]:
            self.keyring_event = event
        if change == "revoke":
            self.revoked.setdefault(fingerprint, event)
        elif unrevoked and _signed_by_governance(event, keyring):
            self.revoked.pop(fingerprint, None)

    def policy_at(self, seq: int) -> Policy:
        """The policy in force for the event at ``seq``: the latest signed before it."""
        policies = self.policies
        if not policies or seq <= policies[0][0]:
            return DEFAULT_POLICY
        if seq > policies[-1][0]:
            return policies[-1][1]
        i = bisect.bisect_left([s for s, _p, _e in policies], seq)
        return policies[i - 1][1]

    @property
    def policy(self) -> Policy:
        """The policy in force now."""
        return self.policies[-1][1] if self.policies else DEFAULT_POLICY

    @property
    def policy_event(self) -> LedgerEvent | None:
        return self.policies[-1][2] if self.policies else None

    def file_findings(
        self, settings: Settings, keyring: Keyring, events: list[LedgerEvent], now: datetime
    ) -> list[Finding]:
        """What the workspace's files and the verifier's clock say against the chain: the
        registry ID of regbook.toml, its policy, the keyring file, and future dates."""
        out: list[Finding] = []
        if not settings.registry_id:
            if self.registry_id:
                out.append(Finding.make(
                    "RB112", f"{CONFIG_NAME} [registry] id",
                    f"names no registry ID, but the ledger's events carry {self.registry_id}",
                ))  # fmt: skip
            else:
                out.append(Finding.make(
                    "RB113", f"{CONFIG_NAME} [registry]",
                    "this registry has no ID (it was made before registries had one); "
                    "`regbook policy sign` gives it one",
                ))  # fmt: skip
        elif self.registry_id is not None and settings.registry_id != self.registry_id:
            out.append(Finding.make(
                "RB112", f"{CONFIG_NAME} [registry] id",
                f"names registry {settings.registry_id}, but the ledger's events carry "
                f"{self.registry_id}: the workbook belongs to another registry",
            ))  # fmt: skip
        differences = self.policy.differences(settings.policy)
        if differences:
            source = self.policy_event
            out.append(Finding.make(
                "RB117", CONFIG_NAME,
                "its policy differs from the one in force ("
                + (f"signed in event {source.seq}" if source else "the built-in defaults")
                + f"): {'; '.join(differences)}. Sign it with `regbook policy sign --key "
                "GOV_KEY`, or undo the edit",
            ))  # fmt: skip
        named = self.keyring_event
        if named is not None and named.payload["keyring_sha256"] != keyring.sha256:
            out.append(Finding.make(
                "RB116", settings.keyring,
                f"the keyring's sha256 is {keyring.sha256}, but the latest keyring event "
                f"(event {named.seq}) names {named.payload['keyring_sha256']}: it was edited "
                "outside `regbook keys`",
            ))  # fmt: skip
        # Event times are yyyy-mm-ddThh:mm:ssZ (parse_at refuses any other spelling), so
        # their text orders as the times do: no event's time need be parsed here.
        limit = (now + CLOCK_SLACK).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for event in events:
            if event.at > limit:
                out.append(Finding.make(
                    "RB114", event.where("at"),
                    f"event {event.seq} ({event.kind}) is dated {event.at}, more than 5 "
                    f"minutes ahead of this clock ({now:%Y-%m-%dT%H:%M:%SZ})",
                    event.model if event.model != REGISTRY_MODEL else None, event.version,
                ))  # fmt: skip
        return out


def _signed_by_governance(event: LedgerEvent, keyring: Keyring) -> bool:
    check = check_signature(
        event.signed_bytes(), event.signature, keyring, event.signer,
        namespace_for(GOVERNANCE_ONLY[0]), event.when,
    )  # fmt: skip
    return check.ok
