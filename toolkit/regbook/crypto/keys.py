"""Ed25519 keys, the allowed_signers keyring, and SSH signatures (OpenSSH SSHSIG).

Every ledger event is signed as an OpenSSH "SSHSIG" signature in the namespace of the
role it acts in (``regbook-sme``, ``regbook-governance-lead``, ``regbook-ci``), so an
auditor can re-check it with stock ``ssh-keygen -Y verify``. The keyring is an OpenSSH
``allowed_signers`` file; a key's roles are the regbook namespaces its line lists::

    from datetime import UTC, datetime
    from pathlib import Path
    from regbook.crypto import keys

    key = keys.generate_key(Path("me/id_ed25519"), comment="ana@bank.example")
    line = keys.format_signer_line("ana@bank.example", key.public, ["sme"])
    keys.append_signer(Path("allowed_signers"), line)

    armored = keys.sign(b"event bytes", key, keys.namespace_for("sme"))
    ring = keys.Keyring.load(Path("allowed_signers"))
    check = keys.check_signature(
        b"event bytes", armored, ring, "ana@bank.example", None, datetime.now(UTC)
    )
    assert check.ok and check.role == "sme"

The formats follow OpenSSH's PROTOCOL.sshsig and the ALLOWED SIGNERS section of
ssh-keygen(1); where OpenSSH is looser than regbook wants (certificate authorities,
negated patterns, lines without ``namespaces=``), regbook refuses or grants nothing,
and says why. Only Ed25519 keys are supported.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from regbook.core import fs
from regbook.core.errors import InputError, KeyProblem
from regbook.core.schema import ROLES
from regbook.core.workspace import Workspace

__all__ = [
    "NAMESPACE_PREFIX",
    "PASSPHRASE_ENV",
    "PROBLEMS",
    "ROLES",
    "SIG_BEGIN",
    "SIG_END",
    "Keyring",
    "PublicKey",
    "SigCheck",
    "Signature",
    "SignerEntry",
    "SigningKey",
    "append_signer",
    "armored_as_written",
    "check_signature",
    "format_signer_line",
    "generate_key",
    "load_private_key",
    "namespace_for",
    "role_for_namespace",
    "sign",
]

NAMESPACE_PREFIX = "regbook-"
PASSPHRASE_ENV = "REGBOOK_KEY_PASSPHRASE"

SIG_BEGIN = "-----BEGIN SSH SIGNATURE-----"
SIG_END = "-----END SSH SIGNATURE-----"

ED25519 = "ssh-ed25519"
_SSHSIG_MAGIC = b"SSHSIG"
_SSHSIG_VERSION = 1
HASH_ALGORITHMS = ("sha512", "sha256")
_ARMOR_WIDTH = 70  # ssh-keygen -Y sign wraps its base64 at 70 characters
_OPENSSH_KEY_MAGIC = b"openssh-key-v1\x00"
_OPENSSH_KEY_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_KEY_END = "-----END OPENSSH PRIVATE KEY-----"

# Key type names OpenSSH knows; on an allowed_signers line, a token that is not one of
# them is the options field.
_OTHER_KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ssh-ed25519@openssh.com",
        "ssh-xmss@openssh.com",
        "rsa-sha2-256",
        "rsa-sha2-512",
    }
)


def _is_key_type(token: str) -> bool:
    return token == ED25519 or token in _OTHER_KEY_TYPES or token.endswith("-cert-v01@openssh.com")


# --- roles and namespaces -------------------------------------------------------------


def namespace_for(role: str) -> str:
    """The SSHSIG namespace a role signs in: ``namespace_for("sme") == "regbook-sme"``."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; regbook roles are {', '.join(ROLES)}")
    return NAMESPACE_PREFIX + role


def role_for_namespace(ns: str) -> str | None:
    """The regbook role a namespace stands for, or None if it is not a regbook namespace."""
    if ns.startswith(NAMESPACE_PREFIX):
        role = ns[len(NAMESPACE_PREFIX) :]
        if role in ROLES:
            return role
    return None


_REGBOOK_NAMESPACES = tuple(NAMESPACE_PREFIX + role for role in ROLES)


# --- SSH wire format ------------------------------------------------------------------


class _Malformed(ValueError):
    """Raised inside this module when bytes do not follow the SSH wire format."""


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    """Reads the SSH wire types (RFC 4251 section 5) from a byte string."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint32(self, what: str) -> int:
        if self.pos + 4 > len(self.data):
            raise _Malformed(f"truncated before {what}")
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return value

    def string(self, what: str) -> bytes:
        size = self.uint32(what)
        end = self.pos + size
        if end > len(self.data):
            raise _Malformed(f"truncated inside {what}")
        value = self.data[self.pos : end]
        self.pos = end
        return value

    def text(self, what: str) -> str:
        try:
            return self.string(what).decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed(f"{what} is not UTF-8 text") from None

    def fixed(self, size: int, what: str) -> bytes:
        if self.pos + size > len(self.data):
            raise _Malformed(f"truncated before {what}")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def done(self, what: str) -> None:
        if self.pos != len(self.data):
            raise _Malformed(f"{len(self.data) - self.pos} unexpected bytes after {what}")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _Malformed(f"{what} is not valid base64") from None


# --- public keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key as OpenSSH writes it; equal keys have equal blobs.

    ``blob`` is the SSH wire form (``string "ssh-ed25519" || string key32``), the bytes
    fingerprints are taken over. The comment is informational and not compared.
    """

    blob: bytes
    comment: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"PublicKey({self.fingerprint}, comment={self.comment!r})"

    def __post_init__(self) -> None:
        try:
            reader = _Reader(self.blob)
            key_type = reader.text("the key type")
            if key_type != ED25519:
                raise KeyProblem(f"only {ED25519} keys are supported, this key is {key_type!r}")
            if len(reader.string("the key")) != 32:
                raise _Malformed("an Ed25519 key is 32 bytes")
            reader.done("the key")
        except _Malformed as err:
            raise KeyProblem(f"not an SSH public key blob: {err}") from None
        if "\n" in self.comment or "\r" in self.comment:
            raise KeyProblem("a key comment cannot contain a line break")

    @classmethod
    def from_raw(cls, raw: bytes, comment: str = "") -> PublicKey:
        """The key whose 32 raw Ed25519 bytes are ``raw``."""
        return cls(_string(ED25519.encode()) + _string(raw), comment)

    @classmethod
    def from_cryptography(cls, key: Ed25519PublicKey, comment: str = "") -> PublicKey:
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls.from_raw(raw, comment)

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """Read ``ssh-ed25519 AAAA... [comment]`` (one line of a ``.pub`` file)."""
        parts = text.strip().split(maxsplit=2)
        if len(parts) < 2:
            raise KeyProblem("not an OpenSSH public key: expected 'ssh-ed25519 AAAA... [comment]'")
        key_type, b64 = parts[0], parts[1]
        if key_type != ED25519:
            if _is_key_type(key_type):
                raise KeyProblem(
                    f"only {ED25519} keys are supported, this key is {key_type} "
                    "(make one with `ssh-keygen -t ed25519` or `regbook keys new`)"
                )
            raise KeyProblem(
                f"not an OpenSSH public key: expected '{ED25519} AAAA...', got {key_type!r}"
            )
        try:
            blob = _b64decode(b64, "the key")
            declared = _Reader(blob).text("the key type")
        except _Malformed as err:
            raise KeyProblem(f"not an OpenSSH public key: {err}") from None
        if declared != key_type:
            raise KeyProblem(f"the key says it is {declared!r} but the line says {key_type!r}")
        return cls(blob, parts[2].strip() if len(parts) > 2 else "")

    @property
    def key_type(self) -> str:
        return ED25519

    @property
    def raw(self) -> bytes:
        """The 32 raw Ed25519 public key bytes."""
        return self.blob[-32:]

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def openssh(self) -> str:
        """The ``.pub`` line: ``ssh-ed25519 AAAA... [comment]``."""
        text = f"{ED25519} {base64.b64encode(self.blob).decode('ascii')}"
        return f"{text} {self.comment}" if self.comment else text

    def __str__(self) -> str:
        return self.openssh()


@functools.lru_cache(maxsize=4096)
def ed25519_verifier(blob: bytes) -> Ed25519PublicKey:
    # lru_cache is thread-safe, and an Ed25519PublicKey is immutable, so verifying
    # threads may share these.
    return Ed25519PublicKey.from_public_bytes(blob[-32:])


@functools.lru_cache(maxsize=4096)
def fingerprint_of(blob: bytes) -> str:
    """``PublicKey(blob).fingerprint``, computed once per key."""
    return PublicKey(blob).fingerprint


# --- allowed_signers ------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _pattern_list(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for an OpenSSH pattern-list: ``*`` any run, ``?`` any one character."""
    alternatives = []
    for pattern in patterns:
        alternatives.append(
            "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        )
    return re.compile("(?:" + "|".join(alternatives) + ")", re.DOTALL)


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def floor_utc(when: datetime, what: str = "the time") -> datetime:
    """``when`` in UTC truncated to the second, as OpenSSH compares times."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InputError(f"{what} must be a timezone-aware datetime, got {when!r}")
    return when.astimezone(UTC).replace(microsecond=0)


def _format_time(when: datetime) -> str:
    return floor_utc(when).strftime("%Y%m%d%H%M%SZ")


_TIME_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


def _parse_time(text: str) -> datetime:
    """An OpenSSH timestamp: YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z].

    With Z it is UTC; without, OpenSSH reads it in the system's local time zone, and so
    does regbook, so both tools agree on the same file on the same machine.
    """
    utc = text[-1:] in ("Z", "z")
    digits = text[:-1] if utc else text
    fmt = _TIME_FORMATS.get(len(digits))
    if fmt is None or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{text!r} is not YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]")
    try:
        naive = datetime.strptime(digits, fmt)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None
    if utc:
        return naive.replace(tzinfo=UTC)
    try:
        return naive.astimezone(UTC)  # a naive datetime is taken as local time here
    except OverflowError:  # 9999-12-31 west of UTC, 0001-01-01 east of it
        raise ValueError(f"{text!r} is out of range once read as local time") from None


@dataclass(frozen=True)
class SignerEntry:
    """One line of allowed_signers: who (principal patterns) may sign with which key,
    in which namespaces (roles), and when.

    A line without ``namespaces=`` has no regbook role. ssh-keygen would accept such a
    key in any namespace, but a role must be granted explicitly: a key added for, say,
    git commit signing must not become a Production approver by accident.
    """

    principals: tuple[str, ...]
    key: PublicKey
    namespaces: tuple[str, ...] | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None
    line_no: int = 0

    @property
    def roles(self) -> tuple[str, ...]:
        """The regbook roles this line grants, in the order written."""
        found: list[str] = []
        for ns in self.namespaces or ():
            role = role_for_namespace(ns)
            if role is not None and role not in found:
                found.append(role)
        return tuple(found)

    def matches_principal(self, principal: str) -> bool:
        """Whether ``principal`` matches one of the patterns (case-sensitive, as OpenSSH)."""
        return _pattern_list(self.principals).fullmatch(principal) is not None

    @functools.cached_property
    def has_wildcard(self) -> bool:
        """Whether a principal of the line is a pattern (``*``, ``?``)."""
        return any(_has_wildcard(p) for p in self.principals)

    def signs_as(self, principal: str) -> bool:
        """Whether the line lets its key sign regbook events as ``principal``: it must
        name that principal exactly, and a line with a wildcard principal grants no
        signer at all (``*@bank.example`` would let one key sign as anyone there, and
        writers never sign as such a line)."""
        return principal in self.principals and not self.has_wildcard

    def allows_namespace(self, namespace: str) -> bool:
        """Whether the line lets its key sign in ``namespace``; never without namespaces=."""
        if not self.namespaces:
            return False
        return _pattern_list(self.namespaces).fullmatch(namespace) is not None

    def valid_at(self, when: datetime) -> bool:
        """Whether ``when`` is inside the window; both ends inclusive, as in OpenSSH."""
        return self.window_problem(when) is None

    def window_problem(self, when: datetime) -> str | None:
        at = floor_utc(when, "the check time")
        if self.valid_after is not None and at < self.valid_after:
            return "not-yet-valid"
        if self.valid_before is not None and at > self.valid_before:
            return "expired"
        return None

    def __str__(self) -> str:
        return _format_line(
            self.principals, self.key, self.namespaces, self.valid_after, self.valid_before
        )


def _quote(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def _format_line(
    principals: Sequence[str],
    key: PublicKey,
    namespaces: Sequence[str] | None,
    valid_after: datetime | None,
    valid_before: datetime | None,
) -> str:
    who = ",".join(principals)
    if any(c.isspace() for c in who) or who.startswith("#"):
        who = '"' + who + '"'
    options = []
    if namespaces is not None:
        options.append("namespaces=" + _quote(",".join(namespaces)))
    # OpenSSH 9.2 requires every option value in double quotes, timestamps included.
    if valid_after is not None:
        options.append("valid-after=" + _quote(_format_time(valid_after)))
    if valid_before is not None:
        options.append("valid-before=" + _quote(_format_time(valid_before)))
    return " ".join([who, *([",".join(options)] if options else []), key.openssh()])


def _split_options(text: str) -> list[tuple[str, str | None]]:
    """``name="value",flag`` into ``[("name", "value"), ("flag", None)]``.

    Values must be double-quoted (ssh-keygen refuses them bare); ``\\"`` stands for a
    quote inside one.
    """
    options: list[tuple[str, str | None]] = []
    pos, end = 0, len(text)
    while True:
        start = pos
        while pos < end and text[pos] not in "=,":
            pos += 1
        name = text[start:pos].lower()
        if not name:
            raise ValueError("empty option")
        value: str | None = None
        if pos < end and text[pos] == "=":
            pos += 1
            if pos >= end or text[pos] != '"':
                raise ValueError(
                    f"the value of {name}= must be in double quotes, as ssh-keygen requires "
                    f'(e.g. {name}="...")'
                )
            pos += 1
            chars = []
            while pos < end and text[pos] != '"':
                if text[pos] == "\\" and pos + 1 < end and text[pos + 1] == '"':
                    pos += 1
                chars.append(text[pos])
                pos += 1
            if pos >= end:
                raise ValueError(f"the value of {name}= has no closing quote")
            pos += 1
            value = "".join(chars)
        options.append((name, value))
        if pos >= end:
            return options
        if text[pos] != ",":
            raise ValueError(f"unexpected {text[pos]!r} after option {name}")
        pos += 1


def _options_token_end(text: str) -> int:
    """Where the options field ends: the first blank outside double quotes."""
    quoted = False
    pos = 0
    while pos < len(text):
        c = text[pos]
        if c == "\\" and quoted and text[pos + 1 : pos + 2] == '"':
            pos += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in " \t" and not quoted:
            return pos
        pos += 1
    if quoted:
        raise ValueError("options have an unclosed double quote")
    return pos


def _parse_patterns(text: str, what: str) -> tuple[str, ...]:
    patterns = tuple(text.split(","))
    if any(not p for p in patterns):
        raise ValueError(f"empty {what} in {text!r}")
    for pattern in patterns:
        if pattern.startswith("!"):
            raise ValueError(f"negated {what} {pattern!r} is not supported by regbook")
    return patterns


def _first_field(text: str) -> str:
    """Up to the first space or tab: OpenSSH splits these lines there, and only there
    (a vertical tab or a no-break space is part of a field)."""
    return re.split(r"[ \t]", text, maxsplit=1)[0]


def _parse_signer_line(line: str, line_no: int) -> SignerEntry:
    """One non-blank, non-comment line; raises ValueError saying what is wrong."""
    if "\x00" in line:
        raise ValueError("contains a NUL byte")
    if line.startswith('"'):
        close = line.find('"', 1)
        if close < 0:
            raise ValueError("the quoted principals have no closing quote")
        who, rest = line[1:close], line[close + 1 :]
        if rest and rest[0] not in " \t":
            raise ValueError("expected a space after the quoted principals")
    else:
        cut = len(_first_field(line))
        who, rest = line[:cut], line[cut:]
    principals = _parse_patterns(who, "principal")
    rest = rest.lstrip(" \t")
    if not rest:
        raise ValueError("no key after the principals")

    options: list[tuple[str, str | None]] = []
    first = _first_field(rest)
    if not _is_key_type(first):
        cut = _options_token_end(rest)
        options = _split_options(rest[:cut])
        rest = rest[cut:].lstrip(" \t")
        if not rest:
            raise ValueError("no key after the options")

    namespaces: tuple[str, ...] | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None
    seen: set[str] = set()
    for name, value in options:
        if name in seen:
            raise ValueError(f"option {name} is given twice")
        seen.add(name)
        if name == "cert-authority":
            raise ValueError(
                "cert-authority is not supported by regbook: list each signer's own key"
            )
        if name not in ("namespaces", "valid-after", "valid-before"):
            raise ValueError(
                f"unknown option {name!r} (allowed: namespaces=, valid-after=, valid-before=)"
            )
        if value is None:
            raise ValueError(f'option {name} needs a value: {name}="..."')
        if name == "namespaces":
            namespaces = _parse_patterns(value, "namespace")
            for pattern in namespaces:
                if _has_wildcard(pattern) and any(
                    _pattern_list((pattern,)).fullmatch(ns) for ns in _REGBOOK_NAMESPACES
                ):
                    raise ValueError(
                        f"namespace pattern {pattern!r} would grant regbook roles implicitly; "
                        'name each role, e.g. namespaces="regbook-sme,regbook-ci"'
                    )
        elif name == "valid-after":
            valid_after = _parse_time(value)
        else:
            valid_before = _parse_time(value)
    if valid_after and valid_before and valid_before <= valid_after:
        raise ValueError("valid-before is not after valid-after")

    try:
        key = PublicKey.parse(rest)
    except KeyProblem as err:
        raise ValueError(str(err)) from None
    return SignerEntry(principals, key, namespaces, valid_after, valid_before, line_no)


@dataclass(frozen=True)
class Keyring:
    """The parsed allowed_signers file: the trust anchor of a workspace."""

    entries: tuple[SignerEntry, ...]
    source: str = "allowed_signers"
    raw: bytes = b""
    by_blob: dict[bytes, tuple[SignerEntry, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[bytes, list[SignerEntry]] = {}
        for entry in self.entries:
            index.setdefault(entry.key.blob, []).append(entry)
        object.__setattr__(self, "by_blob", {b: tuple(es) for b, es in index.items()})

    @classmethod
    def parse(cls, text: str | bytes, source: str = "allowed_signers") -> Keyring:
        """Read allowed_signers text; InputError ``"SOURCE:LINE: what is wrong"``."""
        if isinstance(text, bytes):
            raw = text
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{source}: not UTF-8 text (byte {err.start})") from None
        else:
            raw = text.encode("utf-8")
        if text.startswith("\ufeff"):
            raise InputError(
                f"{source}:1: starts with a byte-order mark, which ssh-keygen would read as "
                "part of the first principal; save the file as UTF-8 without BOM"
            )
        entries = []
        for line_no, line in enumerate(text.split("\n"), start=1):
            line = line.strip(" \t\r")
            if not line or line.startswith("#"):
                continue
            try:
                entries.append(_parse_signer_line(line, line_no))
            except ValueError as err:
                raise InputError(f"{source}:{line_no}: {err}") from None
        return cls(tuple(entries), source, raw)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read an allowed_signers file; named in messages as the path given."""
        file = Path(path)
        try:
            if file.exists() and not file.is_file() and not file.is_dir():
                # A pipe or a device: reading it could wait forever, or never end.
                raise InputError(f"{path}: the keyring must be a regular file")
            raw = file.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{path}: no such keyring file (allowed_signers)") from None
        except OSError as err:
            raise InputError(f"{path}: cannot read the keyring: {err.strerror}") from None
        return cls.parse(raw, source=str(path))

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file's bytes, which CI pins (``--keyring-sha256``)."""
        return hashlib.sha256(self.raw).hexdigest()

    def entries_for_key(self, key: PublicKey) -> list[SignerEntry]:
        return list(self.by_blob.get(key.blob, ()))

    def principals_for_key(self, key: PublicKey) -> list[str]:
        """Every principal pattern written for ``key``, first occurrence first."""
        found: list[str] = []
        for entry in self.by_blob.get(key.blob, ()):
            found.extend(p for p in entry.principals if p not in found)
        return found

    def roles_for(self, principal: str, key: PublicKey, when: datetime | None = None) -> set[str]:
        """The roles ``principal`` holds with ``key`` (at ``when``, if given)."""
        roles: set[str] = set()
        for entry in self.by_blob.get(key.blob, ()):
            if entry.signs_as(principal) and (when is None or entry.valid_at(when)):
                roles.update(entry.roles)
        return roles


def format_signer_line(
    principal: str,
    key: PublicKey,
    roles: Sequence[str],
    valid_after: datetime | None = None,
    valid_before: datetime | None = None,
) -> str:
    """One allowed_signers line (no newline) granting ``roles`` to ``principal``'s key.

    Times are written in UTC with a Z, quoted as ssh-keygen requires.
    """
    if not principal or any(c in principal for c in ',"!*?\r\n'):
        raise InputError(
            f"principal {principal!r} must be one identity (no commas, quotes, wildcards "
            "or '!'); write patterns into allowed_signers by hand if you mean them"
        )
    if not roles:
        raise InputError("a keyring line needs at least one role: " + ", ".join(ROLES))
    namespaces = list(dict.fromkeys(namespace_for(role) for role in roles))
    after = floor_utc(valid_after, "valid-after") if valid_after is not None else None
    before = floor_utc(valid_before, "valid-before") if valid_before is not None else None
    if after is not None and before is not None and before <= after:
        raise InputError("valid-before must be after valid-after")
    return _format_line((principal,), key, namespaces, valid_after, valid_before)


def append_signer(path: Path, line: str) -> None:
    """Append one line to allowed_signers, atomically; the result must still parse.

    Creates the file if it is missing. Whoever calls this holds the workspace lock:
    two concurrent appends would otherwise lose one.
    """
    path = Path(path)
    line = line.rstrip("\r\n")
    if "\n" in line or "\r" in line:
        raise InputError("append_signer takes one line, without line breaks")
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    except OSError as err:
        raise InputError(f"{path}: cannot read the keyring: {err.strerror}") from None
    sep = b"\n" if old and not old.endswith(b"\n") else b""
    new = old + sep + line.encode("utf-8") + b"\n"
    Keyring.parse(new, source=str(path))  # never write a keyring that does not parse
    path.parent.mkdir(parents=True, exist_ok=True)
    fs.atomic_write(path, new)


# --- private keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A loaded Ed25519 private key and its public half."""

    private: Ed25519PrivateKey = field(repr=False)
    public: PublicKey
    path: Path | None = None


@dataclass(frozen=True)
class _KeyContainer:
    cipher: str
    key_type: str
    public_blob: bytes
    comment: str


def _read_container(text: str) -> _KeyContainer:
    """The outer, unencrypted layer of an OpenSSH private key (PROTOCOL.key)."""
    body = text.strip()
    if not body.startswith(_OPENSSH_KEY_BEGIN) or not body.endswith(_OPENSSH_KEY_END):
        raise _Malformed(f"no {_OPENSSH_KEY_END} line")
    b64 = "".join(body[len(_OPENSSH_KEY_BEGIN) : -len(_OPENSSH_KEY_END)].split())
    reader = _Reader(_b64decode(b64, "the key"))
    if reader.fixed(len(_OPENSSH_KEY_MAGIC), "the magic") != _OPENSSH_KEY_MAGIC:
        raise _Malformed("not an openssh-key-v1 key")
    cipher = reader.text("the cipher name")
    reader.string("the kdf name")
    reader.string("the kdf options")
    count = reader.uint32("the key count")
    if count != 1:
        raise _Malformed(f"holds {count} keys, regbook expects one")
    public_blob = reader.string("the public key")
    key_type = _Reader(public_blob).text("the key type")
    private = reader.string("the private part")
    comment = ""
    if cipher == "none" and key_type == ED25519:
        inner = _Reader(private)
        inner.uint32("the check number")
        inner.uint32("the check number")
        inner.string("the key type")
        inner.string("the public key")
        inner.string("the private key")
        comment = inner.text("the comment")
    return _KeyContainer(cipher, key_type, public_blob, comment)


def _pub_comment(path: Path, blob: bytes) -> str:
    """The comment of ``PATH.pub`` if it holds the same key; ssh-keygen keeps it there."""
    try:
        pub = PublicKey.parse(path.with_name(path.name + ".pub").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, KeyProblem):
        return ""
    return pub.comment if pub.blob == blob else ""


def load_private_key(
    path: Path, passphrase: Callable[[], str | None] | str | None = None
) -> SigningKey:
    """Load an OpenSSH Ed25519 private key, as ``ssh-keygen -t ed25519`` writes it.

    For an encrypted key the passphrase is, in this order: ``passphrase`` when it is a
    string; ``$REGBOOK_KEY_PASSPHRASE`` when set and not empty (CI); what
    ``passphrase()`` returns (the CLI passes a terminal prompt). Every failure is a
    KeyProblem naming the file and what is wrong.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"{path}: no such key file") from None
    except OSError as err:
        raise KeyProblem(f"{path}: cannot read the key: {err.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyProblem(f"{path}: not an OpenSSH private key (binary data)") from None
    head = text.lstrip().split(maxsplit=1)[0] if text.strip() else ""
    if _is_key_type(head):
        raise KeyProblem(
            f"{path}: this is a public key; give the private key file (the one without .pub)"
        )
    if _OPENSSH_KEY_BEGIN not in text:
        if "-----BEGIN" in text:
            raise KeyProblem(
                f"{path}: not in OpenSSH private key format; "
                f"convert it with `ssh-keygen -p -f {path.name}`"
            )
        raise KeyProblem(f"{path}: not an OpenSSH private key (no {_OPENSSH_KEY_BEGIN} line)")
    try:
        container = _read_container(text)
    except _Malformed as err:
        raise KeyProblem(f"{path}: not a readable OpenSSH private key ({err})") from None
    key_type = container.key_type
    if key_type != ED25519:
        hint = (
            "hardware security keys are not supported"
            if key_type.startswith("sk-")
            else "make one with `regbook keys new` or `ssh-keygen -t ed25519`"
        )
        raise KeyProblem(
            f"{path}: the key is {key_type}; regbook signs only with {ED25519} ({hint})"
        )

    password: bytes | None = None
    source = ""
    if container.cipher != "none":
        secret: str | None = None
        if isinstance(passphrase, str):
            secret, source = passphrase, "the passphrase given"
        elif os.environ.get(PASSPHRASE_ENV):
            secret, source = os.environ[PASSPHRASE_ENV], PASSPHRASE_ENV
        elif passphrase is not None:
            secret, source = passphrase(), "the passphrase typed"
        if secret is None:
            raise KeyProblem(f"{path} is encrypted: set {PASSPHRASE_ENV} or run in a terminal")
        password = secret.encode("utf-8")
    try:
        private = serialization.load_ssh_private_key(data, password)
    except UnsupportedAlgorithm as err:
        if "bcrypt" in str(err):
            raise KeyProblem(
                f"{path}: reading an encrypted key needs the bcrypt package "
                "(pip install 'cryptography[ssh]')"
            ) from None
        raise KeyProblem(f"{path}: cannot decrypt this key: {err}") from None
    except ValueError:
        if password is not None:
            raise KeyProblem(f"{path}: wrong passphrase ({source})") from None
        raise KeyProblem(f"{path}: not a readable OpenSSH private key") from None
    except TypeError as err:  # encrypted-ness disagreed with the container
        raise KeyProblem(f"{path}: {err}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyProblem(f"{path}: not an {ED25519} key")
    public = PublicKey.from_cryptography(private.public_key())
    if public.blob != container.public_blob:
        raise KeyProblem(f"{path}: the private key does not match its public half")
    comment = container.comment or _pub_comment(path, public.blob)
    return SigningKey(private, PublicKey(public.blob, comment), path)


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, mode)  # the mode applies from the first byte on
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.chmod(path, mode)  # in case the umask took more than we asked; Windows: best effort
    except OSError:  # pragma: no cover
        pass


def generate_key(path: Path, comment: str = "") -> SigningKey:
    """Write a new unencrypted Ed25519 key to PATH (mode 0600) and PATH.pub.

    Refuses to overwrite either file. Encrypt it afterwards with ``ssh-keygen -p -f PATH``
    if it stays on a laptop.
    """
    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    for existing in (path, pub_path):
        if existing.exists():
            raise KeyProblem(f"{existing} already exists; regbook never overwrites a key")
    private = Ed25519PrivateKey.generate()
    public = PublicKey.from_cryptography(private.public_key(), comment)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _create_exclusive(path, pem, 0o600)
    except FileExistsError:
        raise KeyProblem(f"{path} already exists; regbook never overwrites a key") from None
    except OSError as err:
        raise KeyProblem(f"{path}: cannot write the key: {err.strerror}") from None
    try:
        # Only the private half is private: the public one follows the umask.
        _create_exclusive(pub_path, (public.openssh() + "\n").encode("utf-8"), fs.new_file_mode())
    except OSError as err:
        path.unlink(missing_ok=True)
        reason = "already exists" if isinstance(err, FileExistsError) else err.strerror
        raise KeyProblem(f"{pub_path}: cannot write the public key: {reason}") from None
    return SigningKey(private, public, path)


# --- signatures -----------------------------------------------------------------------


def signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    """What Ed25519 actually signs (PROTOCOL.sshsig): the preamble and H(message)."""
    digest = hashlib.new(hash_algorithm, message).digest()
    return b"".join(
        (
            _SSHSIG_MAGIC,
            _string(namespace.encode("utf-8")),
            _string(b""),  # reserved
            _string(hash_algorithm.encode("ascii")),
            _string(digest),
        )
    )


@dataclass(frozen=True)
class Signature:
    """A parsed SSH signature (``-----BEGIN SSH SIGNATURE-----``); ``str()`` armors it."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes

    @classmethod
    def parse(cls, armored: str | bytes) -> Signature:
        """Read the armored text ssh-keygen -Y sign writes; InputError if malformed."""
        try:
            return cls._parse(armored)
        except _Malformed as err:
            raise InputError(f"not a valid SSH signature: {err}") from None

    @classmethod
    def _parse(cls, armored: str | bytes) -> Signature:
        if isinstance(armored, bytes):
            try:
                armored = armored.decode("ascii")
            except UnicodeDecodeError:
                raise _Malformed("it is not ASCII text") from None
        lines = [line.strip() for line in armored.strip().split("\n")]
        if len(lines) < 3 or lines[0] != SIG_BEGIN or lines[-1] != SIG_END:
            raise _Malformed(f"expected text between {SIG_BEGIN} and {SIG_END}")
        reader = _Reader(_b64decode("".join(lines[1:-1]), "the signature"))
        if reader.fixed(len(_SSHSIG_MAGIC), "the magic") != _SSHSIG_MAGIC:
            raise _Malformed("it does not start with SSHSIG")
        version = reader.uint32("the version")
        if version != _SSHSIG_VERSION:
            raise _Malformed(f"version {version} is not supported")
        blob = reader.string("the public key")
        try:
            public_key = PublicKey(blob)
        except KeyProblem as err:
            raise _Malformed(str(err)) from None
        namespace = reader.text("the namespace")
        if not namespace:
            raise _Malformed("the namespace is empty")
        reader.string("the reserved field")  # ignored, as OpenSSH does
        hash_algorithm = reader.text("the hash algorithm")
        if hash_algorithm not in HASH_ALGORITHMS:
            raise _Malformed(f"hash algorithm {hash_algorithm!r} is not sha512 or sha256")
        inner = _Reader(reader.string("the signature"))
        reader.done("the signature")
        sig_type = inner.text("the signature type")
        if sig_type != ED25519:
            raise _Malformed(f"signature type {sig_type!r} is not {ED25519}")
        raw = inner.string("the Ed25519 signature")
        inner.done("the Ed25519 signature")
        if len(raw) != 64:
            raise _Malformed("an Ed25519 signature is 64 bytes")
        return cls(public_key, namespace, hash_algorithm, raw)

    def blob(self) -> bytes:
        """The binary SSHSIG blob."""
        return b"".join(
            (
                _SSHSIG_MAGIC,
                struct.pack(">I", _SSHSIG_VERSION),
                _string(self.public_key.blob),
                _string(self.namespace.encode("utf-8")),
                _string(b""),
                _string(self.hash_algorithm.encode("ascii")),
                _string(_string(ED25519.encode()) + _string(self.signature)),
            )
        )

    def armor(self) -> str:
        """The armored text, byte for byte in ssh-keygen's layout (70-column base64)."""
        b64 = base64.b64encode(self.blob()).decode("ascii")
        body = "\n".join(b64[i : i + _ARMOR_WIDTH] for i in range(0, len(b64), _ARMOR_WIDTH))
        return f"{SIG_BEGIN}\n{body}\n{SIG_END}\n"

    def __str__(self) -> str:
        return self.armor()

    def verifies(self, message: bytes) -> bool:
        """Whether the signature is good over ``message`` (no keyring involved)."""
        data = signed_data(self.namespace, self.hash_algorithm, message)
        try:
            ed25519_verifier(self.public_key.blob).verify(self.signature, data)
        except InvalidSignature:
            return False
        return True


_ARMOR_HEAD = SIG_BEGIN + "\n"
_ARMOR_TAIL = "\n" + SIG_END + "\n"


def armored_as_written(text: object) -> bool:
    """Whether ``text`` is laid out exactly as ``Signature.armor`` (and ``ssh-keygen -Y
    sign``) writes it: the BEGIN line, base64 in lines of 70 (the last one shorter), the
    END line and a line break. Re-wrapped lines, blank lines or blanks around it read as
    the same signature but are not what regbook wrote. With the signature check, which
    decodes the base64 strictly, this leaves one spelling of the blob: the unused bits
    of the last base64 character, which decoders ignore, must be zero too."""
    if type(text) is not str or not text.startswith(_ARMOR_HEAD) or not text.endswith(_ARMOR_TAIL):
        return False
    body = text[len(_ARMOR_HEAD) : -len(_ARMOR_TAIL)]
    lines, last = divmod(len(body), _ARMOR_WIDTH + 1)
    if not 0 < last <= _ARMOR_WIDTH or body.count("\n") != lines:
        return False
    if body[_ARMOR_WIDTH :: _ARMOR_WIDTH + 1] != "\n" * lines:
        return False
    tail = body[-5:].replace("\n", "")  # the padding may start a line of its own
    if tail.endswith("=="):
        return tail[-3] in "AQgw"  # 4 bits unused
    if tail.endswith("="):
        return tail[-2] in "AEIMQUYcgkosw048"  # 2 bits unused
    return True


def sign(message: bytes, key: SigningKey, namespace: str) -> str:
    """Sign ``message`` in ``namespace``; the same text ``ssh-keygen -Y sign`` writes."""
    if not namespace:
        raise InputError("a signature needs a namespace, e.g. " + namespace_for("sme"))
    raw = key.private.sign(signed_data(namespace, "sha512", message))
    return Signature(key.public, namespace, "sha512", raw).armor()


@dataclass(frozen=True)
class SigCheck:
    """The outcome of check_signature: ok, or the one problem found and a sentence."""

    ok: bool
    problem: str | None
    detail: str
    fingerprint: str | None = None
    namespace: str | None = None
    entry: SignerEntry | None = None

    @property
    def role(self) -> str | None:
        """The regbook role the signature acts in, when it is good."""
        return role_for_namespace(self.namespace) if self.ok and self.namespace else None


PROBLEMS = (
    "malformed",
    "bad-signature",
    "unknown-key",
    "principal-mismatch",
    "wrong-namespace",
    "namespace-not-allowed",
    "not-yet-valid",
    "expired",
)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


_ED25519_KEY_BLOB_LEN = 4 + len(b"ssh-ed25519") + 4 + 32


def quick_check(
    message: bytes, armored: str, keyring: Keyring, principal: str, when: datetime
) -> tuple[str, str] | None:
    """``(fingerprint, namespace)`` when an Ed25519 SSH signature is good for ``principal``
    in a regbook namespace its keyring line allows at ``when``; None in every other case
    (then ``check_signature`` says what is wrong).

    The same rules as ``check_signature`` on its success path, with the fixed Ed25519
    layout read by slicing: ``verify`` checks tens of thousands of events, and Python
    work per event holds the GIL while the Ed25519 arithmetic does not.
    """
    try:
        body = armored.strip()
        if not (body.startswith(SIG_BEGIN) and body.endswith(SIG_END)):
            return None
        blob = base64.b64decode(
            "".join(body[len(SIG_BEGIN) : -len(SIG_END)].split()), validate=True
        )
        if blob[:6] != _SSHSIG_MAGIC or blob[6:10] != b"\x00\x00\x00\x01":
            return None
        pos = 10
        size = int.from_bytes(blob[pos : pos + 4], "big")
        if size != _ED25519_KEY_BLOB_LEN:
            return None
        key_blob = blob[pos + 4 : pos + 4 + size]
        pos += 4 + size
        fields = []
        for _ in range(3):  # namespace, reserved, hash algorithm
            size = int.from_bytes(blob[pos : pos + 4], "big")
            fields.append(blob[pos + 4 : pos + 4 + size])
            pos += 4 + size
        namespace, reserved, hash_algorithm = fields
        size = int.from_bytes(blob[pos : pos + 4], "big")
        sig_blob = blob[pos + 4 : pos + 4 + size]
        if pos + 4 + size != len(blob) or reserved or len(sig_blob) != 4 + 11 + 4 + 64:
            return None
        if sig_blob[:19] != b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x40":
            return None
        if key_blob[:15] != b"\x00\x00\x00\x0bssh-ed25519" or hash_algorithm not in (
            b"sha512",
            b"sha256",
        ):
            return None
        ns = namespace.decode("utf-8")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    if role_for_namespace(ns) is None:
        return None
    entries = keyring.by_blob.get(key_blob, ())
    at = floor_utc(when, "the check time")
    if not any(
        e.signs_as(principal) and e.allows_namespace(ns) and e.window_problem(at) is None
        for e in entries
    ):
        return None
    data = signed_data(ns, hash_algorithm.decode("ascii"), message)
    try:
        ed25519_verifier(key_blob).verify(sig_blob[19:], data)
    except InvalidSignature:
        return None
    return entries[0].key.fingerprint, ns


def check_signature(
    message: bytes,
    armored: str | bytes,
    keyring: Keyring,
    principal: str,
    namespace: str | None,
    when: datetime,
) -> SigCheck:
    """Check an armored SSH signature over ``message`` by ``principal``, at ``when``.

    Agrees with ``ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n NAMESPACE``
    (with ``-Overify-time``), except that a key line without ``namespaces=`` allows no
    namespace and a line with a wildcard principal allows no principal.
    ``namespace=None`` accepts the regbook namespace the signature carries if the
    keyring allows it for the key; ``SigCheck.role`` then names the role. A bad
    signature never raises; the first problem found, in the order of PROBLEMS, is
    reported. Thread-safe.
    """
    at = floor_utc(when, "the check time")
    try:
        sig = Signature._parse(armored)
    except _Malformed as err:
        return SigCheck(False, "malformed", f"not a valid SSH signature: {err}.")
    fp = sig.public_key.fingerprint
    ns = sig.namespace

    def fail(problem: str, detail: str, entry: SignerEntry | None = None) -> SigCheck:
        return SigCheck(False, problem, detail, fp, ns, entry)

    if not sig.verifies(message):
        return fail(
            "bad-signature",
            f"the signature by key {fp} does not match the signed bytes: "
            "they changed after signing, or it was made over other bytes.",
        )
    entries = keyring.by_blob.get(sig.public_key.blob, ())
    if not entries:
        return fail("unknown-key", f"key {fp} is not in {keyring.source}.")
    patterns = tuple(e for e in entries if e.has_wildcard and e.matches_principal(principal))
    entries = tuple(e for e in entries if e.signs_as(principal))
    if not entries and patterns:
        where = f"{keyring.source}:{patterns[0].line_no}"
        return fail(
            "principal-mismatch",
            f"key {fp} is listed for {principal} only on a line with a wildcard principal "
            f"({where}), and such a line grants no regbook signer.",
            patterns[0],
        )
    if not entries:
        listed = ", ".join(keyring.principals_for_key(sig.public_key))
        return fail(
            "principal-mismatch",
            f"key {fp} is in {keyring.source} for {listed}, not for {principal}.",
        )
    if namespace is not None and ns != namespace:
        return fail("wrong-namespace", f"the signature is in namespace {ns!r}, not {namespace!r}.")
    if namespace is None and role_for_namespace(ns) is None:
        return fail(
            "wrong-namespace",
            f"the signature is in namespace {ns!r}, which is not a regbook role "
            f"({', '.join(_REGBOOK_NAMESPACES)}).",
        )
    allowed = tuple(e for e in entries if e.allows_namespace(ns))
    if not allowed:
        first = entries[0]
        where = f"{keyring.source}:{first.line_no}"
        if first.namespaces is None:
            why = "has no namespaces= option, so it grants no regbook role"
        else:
            why = f"allows only {','.join(first.namespaces)}"
        return fail(
            "namespace-not-allowed",
            f"key {fp} may not sign in {ns!r} for {principal}: {where} {why}.",
            first,
        )
    for entry in allowed:
        if entry.window_problem(at) is None:
            return SigCheck(
                True, None, f"good {ns!r} signature for {principal} with key {fp}.", fp, ns, entry
            )
    first = allowed[0]
    where = f"{keyring.source}:{first.line_no}"
    if first.valid_after is not None and first.window_problem(at) == "not-yet-valid":
        return fail(
            "not-yet-valid",
            f"key {fp} is valid from {_iso(first.valid_after)} ({where}), not yet at {_iso(at)}.",
            first,
        )
    until = _iso(first.valid_before) if first.valid_before is not None else "?"
    return fail(
        "expired",
        f"key {fp} was valid until {until} ({where}), not any more at {_iso(at)}.",
        first,
    )


def load_keyring(ws: Workspace) -> Keyring:
    """The workspace's keyring, named in messages as configured (``allowed_signers``)."""
    return replace(Keyring.load(ws.keyring_path), source=ws.settings.keyring)
