"""The registry's policy: which roles may register, sign gates and approve each stage
transition, and the validation gates' thresholds.

Its defaults are built in. ``regbook.toml`` states a policy, but it is in force only once
a governance lead has signed it into the ledger (``regbook policy sign``): whoever can
edit the file must not be able to loosen the rules by editing it::

    policy = Policy.from_json(event.payload["policy"])
    policy.transition_roles("Staging", "Production")    # ("governance-lead",)
    policy.sha256                                       # what a witness names
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from regbook.core.errors import InputError
from regbook.core.schema import ROLES, STAGES

DEFAULT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "None->Staging": ("sme", "governance-lead"),
    "Staging->Production": ("governance-lead",),
    "Production->Archived": ("governance-lead",),
    "*->Archived": ("sme", "governance-lead"),
}
# A rollback: an Archived version that was once in Production reinstated there. It is
# not among the defaults, so that the built-in policy and every policy signed before
# rollbacks existed keep their sha256 (witnesses name it); without a line of its own it
# needs the roles of Staging->Production (transition_roles).
ROLLBACK = "Archived->Production"
DEFAULT_GATES = {
    "performance": "auc_roc >= 0.75",
    "fairness": "demographic_parity_ratio >= 0.80",
    "security": "security_high_findings == 0",
}
DEFAULT_SCAN_ROLES = ("ci",)
# Who may sign the events that change the policy and the keyring: not a setting.
GOVERNANCE_ONLY = ("governance-lead",)


@dataclass(frozen=True)
class Policy:
    register_roles: tuple[str, ...] = ("sme", "ci")
    gate_roles: tuple[str, ...] = ("ci",)
    transitions: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_TRANSITIONS)
    )
    gates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GATES))
    # Who may sign a security scan (``regbook scan``).
    scan_roles: tuple[str, ...] = DEFAULT_SCAN_ROLES

    def transition_roles(self, from_stage: str, to_stage: str) -> tuple[str, ...]:
        specific = self.transitions.get(f"{from_stage}->{to_stage}")
        if specific is not None:
            return specific
        wildcard = self.transitions.get(f"*->{to_stage}")
        if wildcard is None and f"{from_stage}->{to_stage}" == ROLLBACK:
            # A policy that names no roles for a rollback (every policy signed before
            # rollbacks existed) asks of it what it asks of a promotion to Production.
            return self.transition_roles("Staging", "Production")
        return wildcard or ()

    def as_json(self) -> dict[str, Any]:
        """The policy as a policy event carries it (and as its sha256 is taken). The scan
        roles are written only when they are not the default, so a policy signed before
        scans existed keeps its sha256 (and the witnesses that name it stay good)."""
        roles: dict[str, list[str]] = {
            "register": list(self.register_roles),
            "gate": list(self.gate_roles),
        }
        if self.scan_roles != DEFAULT_SCAN_ROLES:
            roles["scan"] = list(self.scan_roles)
        return {
            "roles": roles,
            "transitions": {k: list(v) for k, v in sorted(self.transitions.items())},
            "gates": dict(sorted(self.gates.items())),
        }

    @property
    def sha256(self) -> str:
        """SHA-256 of the policy's canonical JSON (sorted keys, no spaces, UTF-8)."""
        text = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, value: object) -> Policy:
        """The policy a policy event carries; InputError if it is not one."""
        if not isinstance(value, dict) or set(value) != {"roles", "transitions", "gates"}:
            raise InputError("not a policy: expected roles, transitions and gates")
        roles, transitions, gates = value["roles"], value["transitions"], value["gates"]
        if not isinstance(roles, dict) or not {"register", "gate"} <= set(roles) <= {
            "register",
            "gate",
            "scan",
        }:
            raise InputError("policy roles: expected register, gate and (optionally) scan")
        if not isinstance(transitions, dict) or not isinstance(gates, dict):
            raise InputError("policy transitions and gates must be objects")
        for name in transitions:
            check_transition(name, "policy transitions")
        for name, gate in gates.items():
            if not isinstance(gate, str):
                raise InputError(f"policy gate {name}: expected text like 'auc_roc >= 0.75'")
        return cls(
            register_roles=role_list(roles["register"], "policy roles register"),
            gate_roles=role_list(roles["gate"], "policy roles gate"),
            transitions={k: role_list(v, f"policy transition {k}") for k, v in transitions.items()},
            gates=dict(gates),
            scan_roles=role_list(roles["scan"], "policy roles scan")
            if "scan" in roles
            else DEFAULT_SCAN_ROLES,
        )

    def differences(self, other: Policy) -> list[str]:
        """What ``other`` says differently, one line per setting, as regbook.toml names it."""
        out: list[str] = []
        for name, mine, theirs in (
            ("[roles] register", self.register_roles, other.register_roles),
            ("[roles] gate", self.gate_roles, other.gate_roles),
            ("[roles] scan", self.scan_roles, other.scan_roles),
        ):
            if mine != theirs:
                out.append(f"{name}: {_show(theirs)} (in force: {_show(mine)})")
        for name in sorted(set(self.transitions) | set(other.transitions)):
            mine_t, theirs_t = self.transitions.get(name), other.transitions.get(name)
            if mine_t != theirs_t:
                out.append(f'[transitions] "{name}": {_show(theirs_t)} (in force: {_show(mine_t)})')
        for name in sorted(set(self.gates) | set(other.gates)):
            mine_g, theirs_g = self.gates.get(name), other.gates.get(name)
            if mine_g != theirs_g:
                out.append(f"[gates] {name}: {_show(theirs_g)} (in force: {_show(mine_g)})")
        return out


def _show(value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return json.dumps(value)


def role_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f'{where}: expected a list of roles like ["sme", "ci"]')
    for role in value:
        if role not in ROLES:
            raise InputError(f"{where}: unknown role {role!r} (roles: {', '.join(ROLES)})")
    return tuple(value)


def check_transition(name: str, where: str) -> None:
    parts = name.split("->")
    ok = len(parts) == 2 and (parts[0] in STAGES or parts[0] == "*") and parts[1] in STAGES
    if not ok:
        raise InputError(f'{where}: {name!r} is not a transition like "None->Staging"')
