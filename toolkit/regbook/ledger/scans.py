"""Security scans as the ledger records them, and what the security gate reads from them.

``regbook scan`` appends a signed ``scan`` event (docs/formats.md). Once a version has
one for its own content hash, signed in a role the policy in force lets sign scans,
the gate's ``security_high_findings`` is that scan's critical plus high count, not a
typed metric; an inconclusive scan leaves the metric unknown, so the gate fails::

    found = security_scan(state, anchors.policy_at)
    if found:
        event, scan = found
        scan.high_findings, scan.inconclusive
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regbook.core.policy import Policy
from regbook.ledger.events import LedgerEvent
from regbook.ledger.signatures import signer_role
from regbook.ledger.state import VersionState

SECURITY_METRIC = "security_high_findings"
SEVERITIES = ("critical", "high", "medium", "low")
VERDICTS = ("clean", "findings", "inconclusive")


@dataclass(frozen=True)
class RecordedScan:
    """A scan event's payload read back. ``malformed`` says why it cannot be read as
    ``scan`` writes it (the payload is signed, not trusted to be well-formed); such a
    scan vouches for nothing and counts as inconclusive."""

    content_hash: str
    scanner: str
    counts: dict[str, int]
    inconclusive: tuple[str, ...]
    files: tuple[dict[str, Any], ...]
    malformed: str = ""

    @property
    def high_findings(self) -> int:
        return self.counts.get("critical", 0) + self.counts.get("high", 0)

    @property
    def conclusive(self) -> bool:
        return not self.inconclusive and not self.malformed

    @property
    def value(self) -> float | None:
        """What the security gate reads: critical + high, or None (unknown) when the
        scan could not vouch for every file."""
        return float(self.high_findings) if self.conclusive else None

    def why_inconclusive(self) -> str:
        if self.malformed:
            return f"the scan event is malformed: {self.malformed}"
        return (
            "inconclusive for "
            + ", ".join(self.inconclusive[:5])
            + (f" and {len(self.inconclusive) - 5} more" if len(self.inconclusive) > 5 else "")
        )


def recorded_scan(payload: dict[str, Any]) -> RecordedScan:
    content_hash = payload.get("content_hash")
    content_hash = content_hash if isinstance(content_hash, str) else ""
    scanner = payload.get("scanner")
    name = (
        f"{scanner.get('name')} {scanner.get('version')}"
        if isinstance(scanner, dict)
        else "unknown scanner"
    )
    files_raw = payload.get("files")
    files = (
        tuple(f for f in files_raw if isinstance(f, dict)) if isinstance(files_raw, list) else ()
    )

    def bad(why: str) -> RecordedScan:
        return RecordedScan(content_hash, name, dict.fromkeys(SEVERITIES, 0), (), files, why)

    counts = payload.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(SEVERITIES):
        return bad("counts must name critical, high, medium and low")
    if not all(type(v) is int and v >= 0 for v in counts.values()):
        return bad("counts must be whole numbers")
    if not isinstance(files_raw, list) or len(files) != len(files_raw) or not files:
        return bad("files must be a list of objects")
    listed = dict.fromkeys(SEVERITIES, 0)
    problems = []
    for n, f in enumerate(files, start=1):
        found = f.get("findings")
        if not isinstance(f.get("path"), str) or not isinstance(found, list):
            return bad(f"file {n} lacks its path or findings")
        for item in found:
            severity = item.get("severity") if isinstance(item, dict) else None
            if severity not in SEVERITIES:
                return bad(f"file {n} has a finding without a known severity")
            listed[str(severity)] += 1
        if f.get("problem"):
            problems.append(f["path"])
    if listed != counts:
        return bad("counts do not add up to the findings listed")
    inconclusive = payload.get("inconclusive")
    if not isinstance(inconclusive, list) or inconclusive != problems:
        return bad("inconclusive does not list the files the scan could not vouch for")
    verdict = "inconclusive" if problems else ("findings" if any(counts.values()) else "clean")
    if payload.get("verdict") != verdict:
        return bad(f"the verdict {payload.get('verdict')!r} does not follow (it is {verdict})")
    return RecordedScan(content_hash, name, dict(counts), tuple(problems), files)


def security_scan(
    state: VersionState,
    policy_at: Callable[[int], Policy],
    before: int | None = None,
) -> tuple[LedgerEvent, RecordedScan] | None:
    """The latest scan of this version's own content hash (before ledger position
    ``before``, if given) signed in a role that may sign scans there. A scan of
    another content hash counts for nothing."""
    for event in reversed(state.scans):
        if before is not None and event.seq >= before:
            continue
        if event.payload.get("content_hash") != state.content_hash:
            continue
        if signer_role(event) not in policy_at(event.seq).scan_roles:
            continue
        return event, recorded_scan(event.payload)
    return None
