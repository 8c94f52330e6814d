"""The ledger: an append-only, hash-chained list of SSH-signed events.

Each event's canonical bytes are the RFC 8785 (JCS) encoding of::

    {"at", "fingerprint", "kind", "model", "payload", "prev", "seq", "signer", "version"}

``hash`` is the SHA-256 of those bytes and ``prev`` the hash of the event before (64
zeros for the first). The signature is an SSH signature (PROTOCOL.sshsig) over the same
bytes in the namespace of the role the signer acted in, so stock
``ssh-keygen -Y verify -n regbook-ROLE`` can re-check any event::

    event = new_event(previous, "register", "credit-risk", 7, payload, key, "alice")
    event.signed_bytes(), event.hash, event.signature
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

import rfc8785

from regbook.core import fs
from regbook.core.errors import InputError
from regbook.core.findings import Finding
from regbook.core.schema import CELL_TEXT_LIMIT, INT, LEDGER, TEXT, BadValue, normalize
from regbook.crypto.keys import SigningKey, armored_as_written, namespace_for, sign
from regbook.workbook.read import CellValue, Table

# The codes of a ledger whose rows or chain are broken (read_events, check_chain).
# A ledger of another registry (RB112) or with an event dated in the future (RB114) is no
# place to append either: the new event would carry the wrong ID or a wrong time.
# A cell not as regbook wrote it (RB121) is no place to append either: whoever edited it
# can edit more, and the workbook should come back from a backup first.
CHAIN_CODES = ("RB101", "RB102", "RB103", "RB108", "RB109", "RB112", "RB114", "RB121")
GENESIS = "0" * 64
EVENT_KINDS = (
    "register", "metrics", "approve", "scan", "gate", "promote", "archive", "policy",
    "keyring",
)  # fmt: skip


def canonical(obj: Any) -> str:
    """RFC 8785 canonical JSON text."""
    try:
        return rfc8785.dumps(obj).decode("utf-8")
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as err:
        raise InputError(f"cannot encode as canonical JSON: {err}") from None


_encode_string = json.encoder.encode_basestring


class _NotPlain(ValueError):
    """A number in a payload that the quick canonical check does not decide."""


def _plain_float(text: str) -> float:
    # Python writes these floats as RFC 8785 does (the same shortest digits, no
    # exponent): not whole (5.0 is "5" there), and between 1e-4 and 1e16.
    value = float(text)
    if "e" in text or "E" in text or value.is_integer() or repr(value) != text:
        raise _NotPlain(text)
    return value


def _plain_int(text: str) -> int:
    value = int(text)
    if not -_SAFE_INT < value < _SAFE_INT:
        raise _NotPlain(text)  # beyond what RFC 8785 (and so regbook) writes
    return value


def _no_constant(text: str) -> None:
    raise _NotPlain(text)  # NaN and Infinity are not JSON


_quick_loads = json.JSONDecoder(
    parse_float=_plain_float, parse_int=_plain_int, parse_constant=_no_constant
).decode
_quick_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False,
    check_circular=False,
).encode  # fmt: skip


def parse_payload(text: str, canonical: bool = True) -> tuple[Any, bool]:
    """The payload cell's JSON value, and whether the text is its own RFC 8785 form
    (so no duplicate keys, no other spelling of a number, no blanks). Most payloads are
    decided by Python's C encoder, which writes text, whole numbers and the floats
    regbook writes as RFC 8785 does; the rest by rfc8785 itself. ValueError (and
    RecursionError) where the text is not JSON. Without ``canonical`` the form is not
    looked at (and reads as True)."""
    try:
        value = _quick_loads(text)
        if not canonical:
            return value, True
        # RFC 8785 sorts keys by UTF-16 code units, Python by code points: they differ
        # only where characters beyond U+FFFF (two units in UTF-16) meet U+E000-U+FFFF.
        if _quick_dumps(value) == text and (
            text.isascii() or len(text.encode("utf-16-le")) == 2 * len(text)
        ):
            return value, True
    except (_NotPlain, ValueError):  # NaN or Infinity (allow_nan=False), and the like
        pass
    value = json.loads(text)
    if not canonical:
        return value, True
    try:
        return value, rfc8785.dumps(value).decode("utf-8") == text
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return value, False


def _jcs(value: str | int | None) -> bytes:
    # For the scalars of an event (text, whole numbers, null) RFC 8785 output equals
    # json.dumps with ensure_ascii=False; anything else goes through rfc8785 itself.
    if isinstance(value, str):
        # What json.dumps(value, ensure_ascii=False) returns, without building an encoder.
        return _encode_string(value).encode("utf-8")
    if value is None:
        return b"null"
    if type(value) is int and abs(value) < 2**53:
        return str(value).encode()
    return rfc8785.dumps(value)


@lru_cache(maxsize=4096, typed=True)
def _jcs_repeated(value: str) -> bytes:
    # Kinds, models, signers and fingerprints recur in every event.
    return _jcs(value)


def event_bytes(
    seq: int,
    at: str,
    kind: str,
    model: str,
    version: int | None,
    payload_text: str,
    prev: str,
    signer: str,
    fingerprint: str,
) -> bytes:
    """The canonical bytes of an event. ``payload_text`` is spliced in verbatim: it must
    already be canonical (writers make it so; a hand-edited payload changes the bytes)."""
    return b"".join(
        (
            b'{"at":', _jcs(at),
            b',"fingerprint":', _jcs_repeated(fingerprint),
            b',"kind":', _jcs_repeated(kind),
            b',"model":', _jcs_repeated(model),
            b',"payload":', payload_text.encode("utf-8"),
            b',"prev":', _jcs(prev),
            b',"seq":', _jcs(seq),
            b',"signer":', _jcs_repeated(signer),
            b',"version":', _jcs(version),
            b"}",
        )
    )  # fmt: skip


_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def parse_at(text: str) -> datetime:
    if not _AT.fullmatch(text):
        raise ValueError(f"time {text!r} is not yyyy-mm-ddThh:mm:ssZ")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


@dataclass(frozen=True)
class LedgerEvent:
    seq: int
    at: str
    kind: str
    model: str
    version: int | None
    payload_text: str
    prev: str
    hash: str
    signer: str
    fingerprint: str
    signature: str
    row: int | None = None  # the Ledger sheet row it was read from

    @classmethod
    def _read(
        cls, values: list[Any], row: int, payload: dict[str, Any], when: datetime | None
    ) -> LedgerEvent:
        """An event from a Ledger row's values in column order (seq ... signature), with
        its payload and time already parsed. Frozen dataclasses set each field through
        object.__setattr__; at 40,000 events filling __dict__ at once is measurably
        cheaper, and gives the same object."""
        event = object.__new__(cls)
        state = event.__dict__
        state.update(zip(_EVENT_FIELDS, values, strict=True))
        state["row"] = row
        state["payload"] = payload  # the cached properties, computed once here
        if when is not None:
            state["when"] = when
        return event

    @cached_property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.payload_text)

    @cached_property
    def when(self) -> datetime:
        return parse_at(self.at)

    def signed_bytes(self) -> bytes:
        # Not kept: 40,000 events' bytes are 40 MB, and each is needed once or twice.
        return event_bytes(
            self.seq,
            self.at,
            self.kind,
            self.model,
            self.version,
            self.payload_text,
            self.prev,
            self.signer,
            self.fingerprint,
        )

    def computed_hash(self) -> str:
        known = self.__dict__.get("_computed_hash")
        if known is None:
            known = self.hash_bytes(self.signed_bytes())
        return known

    def hash_bytes(self, data: bytes) -> str:
        """The SHA-256 of ``data`` (this event's signed bytes), kept for computed_hash."""
        known = hashlib.sha256(data).hexdigest()
        self.__dict__["_computed_hash"] = known  # a cache, like the cached properties
        return known

    def where(self, key: str = "seq") -> str:
        return LEDGER.ref(key, self.row) if self.row else f"Ledger seq {self.seq}"

    def to_row(self) -> list[str | int | None]:
        return [
            self.seq,
            self.at,
            self.kind,
            self.model,
            self.version,
            self.payload_text,
            self.prev,
            self.hash,
            self.signer,
            self.fingerprint,
            self.signature,
        ]


# LedgerEvent's fields in Ledger column order (the sheet says "payload" for payload_text).
_EVENT_FIELDS = tuple(f.name for f in fields(LedgerEvent) if f.name != "row")


# Characters an xlsx cell cannot hold (XML 1.0 has no way to write them).
_NOT_IN_A_CELL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def payload_cell(kind: str, payload: dict[str, Any]) -> str:
    """The payload's canonical text, once it is known to fit its Ledger cell and every
    text in it to fit the view cells that show it: InputError otherwise. Writers call
    it before they change anything (``register`` before copying the artefact)."""
    _refuse_control_characters(kind, payload, "")
    payload_text = canonical(payload)
    if len(payload_text) > CELL_TEXT_LIMIT:
        raise InputError(
            f"the {kind} event's payload is {len(payload_text)} characters; "
            f"an Excel cell holds at most {CELL_TEXT_LIMIT}"
        )
    return payload_text


def _refuse_control_characters(kind: str, value: object, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(kind, key, where)
            _refuse_control_characters(kind, item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for item in value:
            _refuse_control_characters(kind, item, where)
    elif isinstance(value, str) and (found := _NOT_IN_A_CELL.search(value)):
        raise InputError(
            f"the {kind} event's {where or 'payload'} holds the control character "
            f"U+{ord(found.group()):04X}, which a workbook cell cannot keep; remove it"
        )


def new_event(
    previous: LedgerEvent | None,
    kind: str,
    model: str,
    version: int | None,
    payload: dict[str, Any],
    key: SigningKey,
    principal: str,
    role: str,
    at: str | None = None,
) -> LedgerEvent:
    """Build and sign the event that follows ``previous``."""

    payload_text = payload_cell(kind, payload)
    at = at or fs.utc_now()
    if previous is not None and at < previous.at:
        at = previous.at  # the chain's clock never runs backwards
    seq = previous.seq + 1 if previous else 1
    prev = previous.hash if previous else GENESIS
    fingerprint = key.public.fingerprint
    data = event_bytes(seq, at, kind, model, version, payload_text, prev, principal, fingerprint)
    signature = sign(data, key, namespace_for(role))
    return LedgerEvent(
        seq,
        at,
        kind,
        model,
        version,
        payload_text,
        prev,
        hashlib.sha256(data).hexdigest(),
        principal,
        fingerprint,
        signature,
    )


_LEDGER_KEYS = tuple(c.key for c in LEDGER.columns)
_LEDGER_KINDS = tuple(c.kind for c in LEDGER.columns)


def read_events(
    table: Table,
    on_event: Callable[[LedgerEvent], object] | None = None,
    *,
    vouched: bool = False,
) -> tuple[list[LedgerEvent], list[Finding]]:
    """Parse the Ledger sheet's rows. A row that cannot be read is a finding (RB108), and
    rows holding formulas too: the ledger is plain values. A cell that reads as its
    event but is not what regbook wrote (blanks around text, a Seq spelt 5.0, a
    re-wrapped signature, a payload not in its RFC 8785 form) is RB121, and its event
    is kept: the chain stays checked past it. ``on_event`` is called with each event as
    soon as it is read (verify starts its signature check).

    With ``vouched``, the rows up to ``table.vouched_to`` are the bytes a witness's
    verifier read and found clean: they are read, not checked again, and their events
    take the hash their row holds as the one their content hashes to."""
    events: list[LedgerEvent] = []
    findings: list[Finding] = []
    formula_rows = {r for (r, _c) in table.formulas}
    spelt_rows = {r for (r, c) in table.spelt if c in (0, _COL_VERSION)}
    skip_to = table.vouched_to if vouched else 0
    for i, row in table.indexed():
        number = table.row_numbers[i]
        if number <= skip_to and (event := _vouched_event(row, number)) is not None:
            events.append(event)
            if on_event is not None:
                on_event(event)
            continue
        formula_cols = (
            [c for (r, c) in table.formulas if r == number] if number in formula_rows else []
        )
        if formula_cols:
            column = LEDGER.columns[min(formula_cols)]
            findings.append(
                Finding.make(
                    "RB108",
                    LEDGER.ref(column.key, number),
                    "a formula in the ledger; ledger cells hold values",
                )
            )
            continue
        try:
            values = _usual_row(row) or _row_values(row)
            for col in (0, _COL_VERSION):
                if values[col] is not None and not -_SAFE_INT < values[col] < _SAFE_INT:
                    raise BadValue(f"{LEDGER.columns[col].header} {values[col]} is out of range")
            payload, canonical_payload = parse_payload(values[_COL_PAYLOAD])
            if not isinstance(payload, dict):
                raise BadValue("payload is not a JSON object")
            when = parse_at(values[_COL_AT])
        except RecursionError:  # JSON nested thousands deep
            findings.append(Finding.make(
                "RB108", LEDGER.ref("seq", number),
                "ledger row cannot be read: the payload is nested too deeply"))  # fmt: skip
            continue
        except (BadValue, ValueError) as err:
            findings.append(
                Finding.make(
                    "RB108", LEDGER.ref("seq", number), f"ledger row cannot be read: {err}"
                )
            )
            continue
        # Texts as read (not stripped, not numbers) compare equal by identity: cheap.
        if (
            not canonical_payload
            or values[1:4] != row[1:4]
            or values[5:-1] != row[5:-1]
            or type(row[0]) is str
            or type(row[_COL_VERSION]) is str
            or number in spelt_rows
            or not armored_as_written(row[-1])  # kept stripped in the event
        ):
            problem = _not_as_written(row, values, number, canonical_payload, table.spelt)
            if problem is not None:
                findings.append(problem)
        event = LedgerEvent._read(values, number, payload, when)
        events.append(event)
        if on_event is not None:
            on_event(event)
    return events, findings


# Whole numbers canonical JSON (RFC 8785) can carry exactly: seq and version beyond
# them cannot be hashed as written.
_SAFE_INT = 2**53
_COL_AT = _LEDGER_KEYS.index("at")
_COL_PAYLOAD = _LEDGER_KEYS.index("payload")
_COL_VERSION = _LEDGER_KEYS.index("version")
_COL_HASH = _LEDGER_KEYS.index("hash")
assert _LEDGER_KINDS == (INT, TEXT, TEXT, TEXT, INT, *(TEXT,) * 6)  # _usual_row's layout


def _usual_row(row: list[CellValue]) -> list[Any] | None:
    """The row's values when every cell is what writers put there (whole numbers, and
    text that is not blank), read without a call per cell; None otherwise, and
    ``_row_values`` reads the row cell by cell. Both give the same values."""
    if len(row) != len(_LEDGER_KEYS):
        return None
    seq, version = row[0], row[_COL_VERSION]
    if type(seq) is not int:
        if type(seq) is not float or not seq.is_integer():
            return None
        seq = int(seq)  # Excel keeps every number as a float
    if version is not None and type(version) is not int:
        if type(version) is not float or not version.is_integer():
            return None
        version = int(version)
    # Text, as the loop checks; not narrowed cell by cell, which would cost a call each.
    texts: list[Any] = row[1:4] + row[5:]
    for text in texts:
        if type(text) is not str:
            return None
    at, kind, model, payload, prev, hash_, signer, fingerprint, signature = (
        t.strip() for t in texts
    )
    if not (at and kind and model and payload and prev and hash_ and signer and fingerprint
            and signature):  # fmt: skip
        return None
    return [seq, at, kind, model, version, payload, prev, hash_, signer, fingerprint, signature]


def _vouched_event(row: list[CellValue], number: int) -> LedgerEvent | None:
    """The event of a row a witness vouches for: its cells are what regbook wrote (the
    witness's verifier found no RB121 there), so they are taken as they stand, text
    without blanks around it. None for a row not in the form every clean row has (it is
    then read and checked)."""
    if len(row) != len(_LEDGER_KEYS):
        return None
    values: list[Any] = list(row)
    signature = values[-1]
    if type(signature) is not str:
        return None
    values[-1] = signature.strip()  # the armor ends in a line break; the event keeps none
    for col in (0, _COL_VERSION):
        value = values[col]
        if type(value) is float and value.is_integer():
            values[col] = int(value)
        elif type(value) is not int and not (col and value is None):
            return None
    try:
        payload = json.loads(values[_COL_PAYLOAD])
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    event = LedgerEvent._read(values, number, payload, None)
    event.__dict__["_computed_hash"] = values[_COL_HASH]  # as computed_hash keeps it
    return event


def _not_as_written(
    row: list[CellValue],
    values: list[Any],
    number: int,
    canonical_payload: bool,
    spelt: dict[tuple[int, int], str] | None = None,
) -> Finding | None:
    """RB121 for the first cell of a readable row that is not what regbook wrote."""
    problem: tuple[str, str] | None = None
    for col, key in enumerate(_LEDGER_KEYS):
        raw, header = row[col], LEDGER.header(key)
        if _LEDGER_KINDS[col] == INT:
            if isinstance(raw, str):
                problem = key, f"{header} holds the text {raw[:40]!r}; regbook writes a number"
            elif spelt and (number, col) in spelt:
                problem = (
                    key,
                    (
                        f"{header} is spelt {spelt[number, col][:40]!r} in the sheet's XML; "
                        f"regbook writes the whole number {values[col]}"
                    ),
                )
        elif not isinstance(raw, str):
            problem = key, f"{header} holds {raw!r}, not text; regbook writes text"
        elif key == "signature":
            if not armored_as_written(raw):
                problem = (
                    key,
                    (
                        "Signature is not laid out as regbook and ssh-keygen write it (base64 "
                        "in lines of 70 between the BEGIN and END lines, and nothing else)"
                    ),
                )
        elif raw != values[col]:
            problem = key, f"{header} has blanks around its text; regbook writes none"
        elif key == "payload" and not canonical_payload:
            problem = (
                key,
                (
                    "Payload is JSON but not its own RFC 8785 form (keys out of order or "
                    "repeated, blanks, or a number spelt otherwise); regbook writes that form"
                ),
            )
        if problem is not None:
            break
    if problem is None:
        return None
    key, sentence = problem
    return Finding.make(
        "RB121", LEDGER.ref(key, number), f"{sentence}: someone edited the ledger cell"
    )


def _row_values(row: list[CellValue]) -> list[Any]:
    """The row's values cell by cell; BadValue names the first that cannot be read."""
    values: list[str | int | float | None] = []
    for kind, raw in zip(_LEDGER_KINDS, row, strict=True):
        if kind == TEXT and type(raw) is str:
            values.append(raw.strip() or None)
        else:
            values.append(normalize(kind, raw))
    for key, value in zip(_LEDGER_KEYS, values, strict=True):
        if value is None and key != "version":
            raise BadValue(f"{LEDGER.header(key)} is empty")
    return values


def check_chain(events: Sequence[LedgerEvent], after: LedgerEvent | None = None) -> list[Finding]:
    """Sequence numbers, hashes, links and clock: catches edits, reordering, deletion
    and insertion anywhere but a truncated tail (pin the head for that). ``after``: the
    event the first of ``events`` follows (known good), else they start the ledger."""
    findings: list[Finding] = []
    prev_hash = after.hash if after else GENESIS
    prev_at = after.at if after else ""
    for expected_seq, event in enumerate(events, start=after.seq + 1 if after else 1):
        if event.seq != expected_seq:
            findings.append(Finding.make(
                "RB103", event.where("seq"),
                f"event seq {event.seq} stands where seq {expected_seq} belongs: ledger rows "
                "were reordered, deleted or inserted", event.model, event.version))  # fmt: skip
        computed = event.computed_hash()
        if computed != event.hash:
            findings.append(Finding.make(
                "RB102", event.where("hash"),
                f"event {event.seq} ({event.kind} {event.model}@{event.version}) was altered: "
                f"its content hashes to {computed[:16]}..., the row says {event.hash[:16]}...",
                event.model, event.version))  # fmt: skip
        if event.prev != prev_hash:
            findings.append(Finding.make(
                "RB101", event.where("prev"),
                f"event {event.seq} links to {event.prev[:16]}... but the event before it "
                f"hashes to {prev_hash[:16]}...", event.model, event.version))  # fmt: skip
        if prev_at and event.at < prev_at:
            findings.append(Finding.make(
                "RB109", event.where("at"),
                f"event {event.seq} is dated {event.at}, before the event ahead of it "
                f"({prev_at})", event.model, event.version))  # fmt: skip
        prev_hash = event.hash
        prev_at = event.at
    return findings


def head(events: list[LedgerEvent]) -> LedgerEvent | None:
    return events[-1] if events else None
