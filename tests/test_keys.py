"""Tests for regbook.crypto.keys: keys, allowed_signers, SSHSIG signatures.

Formats are checked against the real ``ssh-keygen`` (OpenSSH): what regbook signs,
ssh-keygen verifies, and the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regbook.core.errors import InputError, KeyProblem
from regbook.crypto import keys

SSH_KEYGEN = shutil.which("ssh-keygen")
# CI must have ssh-keygen (the auditor's tool); a developer without it skips these.
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None and not os.environ.get("CI"), reason="ssh-keygen is not installed"
)
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes / TZ")

WHEN = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MESSAGE = b'{"kind":"register","model":"credit-risk","version":7}\n'


def ssh_keygen(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):
    assert SSH_KEYGEN is not None, "ssh-keygen is required here"
    return subprocess.run(
        [SSH_KEYGEN, *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def make_ssh_key(path: Path, passphrase: str = "", comment: str = "", kind: str = "ed25519"):
    extra = ["-b", "1024"] if kind == "rsa" else []
    done = ssh_keygen("-q", "-t", kind, *extra, "-N", passphrase, "-C", comment, "-f", str(path))
    assert done.returncode == 0, done.stderr
    return path


def ssh_verify(
    tmp: Path, ring: Path, principal: str, namespace: str, armored: str, message: bytes, *opts
):
    sig = tmp / "message.sig"
    sig.write_text(armored)
    return ssh_keygen(
        "-Y", "verify", "-f", str(ring), "-I", principal, "-n", namespace, "-s", str(sig),
        *opts, stdin=message,
    )  # fmt: skip


def memory_key(comment: str = "") -> keys.SigningKey:
    private = Ed25519PrivateKey.generate()
    return keys.SigningKey(
        private, keys.PublicKey.from_cryptography(private.public_key(), comment), None
    )


@pytest.fixture
def alice(tmp_path: Path) -> keys.SigningKey:
    return keys.generate_key(tmp_path / "alice" / "id_ed25519", comment="alice@bank.example")


@pytest.fixture
def ring_path(tmp_path: Path, alice: keys.SigningKey) -> Path:
    path = tmp_path / "allowed_signers"
    keys.append_signer(
        path,
        keys.format_signer_line(
            "alice@bank.example",
            alice.public,
            ["sme", "governance-lead"],
            valid_after=datetime(2026, 1, 1, tzinfo=UTC),
            valid_before=datetime(2027, 1, 1, tzinfo=UTC),
        ),
    )
    return path


# --- roles --------------------------------------------------------------------------


def test_namespaces_and_roles_round_trip() -> None:
    for role in keys.ROLES:
        assert keys.role_for_namespace(keys.namespace_for(role)) == role
    assert keys.namespace_for("ci") == "regbook-ci"
    assert keys.role_for_namespace("git") is None
    assert keys.role_for_namespace("regbook-admin") is None
    with pytest.raises(InputError, match="unknown role 'admin'"):
        keys.namespace_for("admin")


# --- interoperability with ssh-keygen -----------------------------------------------


@needs_ssh_keygen
def test_regbook_signature_verifies_with_ssh_keygen(
    tmp_path: Path, alice: keys.SigningKey, ring_path: Path
) -> None:
    armored = keys.sign(MESSAGE, alice, "regbook-governance-lead")
    done = ssh_verify(
        tmp_path, ring_path, "alice@bank.example", "regbook-governance-lead", armored, MESSAGE,
        "-Overify-time=20260601120000Z",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"Good" in done.stdout
    assert alice.public.fingerprint.encode() in done.stdout


@needs_ssh_keygen
def test_regbook_signs_byte_for_byte_like_ssh_keygen(tmp_path: Path) -> None:
    """Ed25519 is deterministic, so the same key, bytes and namespace give the same file."""
    key_path = make_ssh_key(tmp_path / "id_ed25519", comment="bob@bank.example")
    message = tmp_path / "event.bin"
    message.write_bytes(MESSAGE * 5)
    done = ssh_keygen("-Y", "sign", "-f", str(key_path), "-n", "regbook-sme", str(message))
    assert done.returncode == 0, done.stderr
    theirs = (tmp_path / "event.bin.sig").read_text()
    ours = keys.sign(MESSAGE * 5, keys.load_private_key(key_path), "regbook-sme")
    assert ours == theirs
    assert all(len(line) <= 70 for line in ours.splitlines())


@needs_ssh_keygen
@pytest.mark.parametrize("hashalg", ["sha512", "sha256"])
def test_ssh_keygen_signature_accepted_by_regbook(tmp_path: Path, hashalg: str) -> None:
    key_path = make_ssh_key(tmp_path / "ci_key", comment="ci@bank.example")
    message = tmp_path / "event.bin"
    message.write_bytes(MESSAGE)
    done = ssh_keygen(
        "-Y", "sign", "-f", str(key_path), "-n", "regbook-ci", f"-Ohashalg={hashalg}",
        str(message),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    armored = (tmp_path / "event.bin.sig").read_text()
    public = keys.PublicKey.parse((tmp_path / "ci_key.pub").read_text())
    ring = keys.Keyring.parse(keys.format_signer_line("ci@bank.example", public, ["ci"]))
    check = keys.check_signature(MESSAGE, armored, ring, "ci@bank.example", None, WHEN)
    assert check.ok, check.detail
    assert (check.problem, check.namespace, check.role) == (None, "regbook-ci", "ci")
    assert check.fingerprint == public.fingerprint
    assert keys.Signature.parse(armored).hash_algorithm == hashalg


@needs_ssh_keygen
def test_fingerprint_matches_ssh_keygen_l(tmp_path: Path, alice: keys.SigningKey) -> None:
    key_path = make_ssh_key(tmp_path / "id_ed25519")
    public = keys.PublicKey.parse((tmp_path / "id_ed25519.pub").read_text())
    for path, key in ((key_path, public), (alice.path, alice.public)):
        assert path is not None
        done = ssh_keygen("-l", "-f", f"{path}.pub")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().split()[1] == key.fingerprint


# --- private keys -------------------------------------------------------------------


@needs_ssh_keygen
def test_loads_unencrypted_ssh_keygen_key(tmp_path: Path) -> None:
    key_path = make_ssh_key(tmp_path / "id_ed25519", comment="carol@bank.example")
    loaded = keys.load_private_key(key_path)
    pub_line = (tmp_path / "id_ed25519.pub").read_text().strip()
    assert loaded.public == keys.PublicKey.parse(pub_line)
    assert loaded.public.openssh() == pub_line  # comment kept too
    assert loaded.path == key_path
    assert loaded.public.key_type == "ssh-ed25519"


@needs_ssh_keygen
def test_loads_encrypted_key_by_env_callback_and_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path = make_ssh_key(tmp_path / "id_ed25519", passphrase="secret")
    expected = keys.PublicKey.parse((tmp_path / "id_ed25519.pub").read_text())

    monkeypatch.setenv("REGBOOK_KEY_PASSPHRASE", "secret")
    assert keys.load_private_key(key_path).public == expected
    asked: list[bool] = []
    assert keys.load_private_key(key_path, lambda: asked.append(True) or "wrong").public == (
        expected
    )
    assert not asked, "the environment wins over the prompt"

    monkeypatch.delenv("REGBOOK_KEY_PASSPHRASE")
    assert keys.load_private_key(key_path, lambda: "secret").public == expected
    assert keys.load_private_key(key_path, "secret").public == expected

    monkeypatch.setenv("REGBOOK_KEY_PASSPHRASE", "")  # an unset CI secret: not a passphrase
    assert keys.load_private_key(key_path, lambda: "secret").public == expected


@needs_ssh_keygen
def test_encrypted_key_without_or_with_wrong_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path = make_ssh_key(tmp_path / "id_ed25519", passphrase="secret")
    monkeypatch.delenv("REGBOOK_KEY_PASSPHRASE", raising=False)
    with pytest.raises(KeyProblem, match="is encrypted: set REGBOOK_KEY_PASSPHRASE or run in"):
        keys.load_private_key(key_path)
    with pytest.raises(KeyProblem, match="is encrypted"):
        keys.load_private_key(key_path, lambda: None)
    with pytest.raises(KeyProblem, match=r"id_ed25519: wrong passphrase") as err:
        keys.load_private_key(key_path, lambda: "guess")
    assert str(key_path) in str(err.value)
    monkeypatch.setenv("REGBOOK_KEY_PASSPHRASE", "guess")
    with pytest.raises(KeyProblem, match="wrong passphrase .REGBOOK_KEY_PASSPHRASE"):
        keys.load_private_key(key_path)


@needs_ssh_keygen
def test_refuses_keys_it_cannot_use(tmp_path: Path) -> None:
    rsa = make_ssh_key(tmp_path / "id_rsa", kind="rsa")
    ed = make_ssh_key(tmp_path / "id_ed25519")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01 not a key")
    pem = tmp_path / "pem"
    pem.write_text(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    )
    truncated = tmp_path / "truncated"
    truncated.write_text(
        "\n".join(ed.read_text().splitlines()[:3] + ["-----END OPENSSH PRIVATE KEY-----"])
    )
    cases = {
        rsa: "the key is ssh-rsa; regbook signs only with ssh-ed25519",
        tmp_path / "id_ed25519.pub": "this is a public key; give the private key file",
        garbage: "not an OpenSSH private key",
        pem: "not in OpenSSH private key format",
        truncated: "not a readable OpenSSH private key",
        tmp_path / "missing": "no such key file",
        tmp_path: "cannot read the key",
    }  # fmt: skip
    for path, why in cases.items():
        with pytest.raises(KeyProblem) as err:
            keys.load_private_key(path)
        assert str(err.value).startswith(str(path)), err.value
        assert why in str(err.value)
        assert isinstance(err.value, InputError)


@needs_ssh_keygen
@posix_only
def test_generated_key_is_0600_and_loads_in_ssh_keygen(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "id_ed25519"
    made = keys.generate_key(path, comment="dan@bank.example")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pub_line = (tmp_path / "new" / "folder" / "id_ed25519.pub").read_text()
    assert pub_line == made.public.openssh() + "\n"
    assert pub_line.endswith(" dan@bank.example\n")
    done = ssh_keygen("-y", "-f", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split()[:2] == pub_line.split()[:2]
    again = keys.load_private_key(path)
    assert again.public == made.public
    assert again.public.comment == "dan@bank.example"  # from the .pub beside it


def test_generate_key_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    keys.generate_key(path)
    before = path.read_bytes()
    with pytest.raises(KeyProblem, match="already exists"):
        keys.generate_key(path)
    assert path.read_bytes() == before
    lonely_pub = tmp_path / "other.pub"
    lonely_pub.write_text("x")
    with pytest.raises(KeyProblem, match=r"other\.pub already exists"):
        keys.generate_key(tmp_path / "other")
    assert not (tmp_path / "other").exists()


# --- public keys --------------------------------------------------------------------


def test_public_key_parse_and_format(alice: keys.SigningKey) -> None:
    line = alice.public.openssh()
    assert line.startswith("ssh-ed25519 AAAA") and line.endswith(" alice@bank.example")
    parsed = keys.PublicKey.parse("  " + line + "\n")
    assert parsed == alice.public and parsed.comment == "alice@bank.example"
    assert keys.PublicKey.parse(line.rsplit(" ", 1)[0]).comment == ""
    assert str(parsed) == line
    assert parsed.fingerprint.startswith("SHA256:") and "=" not in parsed.fingerprint
    assert len(parsed.raw) == 32


RSA_BLOB_B64 = base64.b64encode(b"\0\0\0\x07ssh-rsa\0\0\0\x03\x01\0\x01").decode()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not an OpenSSH public key"),
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "only ssh-ed25519 keys are supported"),
        ("ecdsa-sha2-nistp256 AAAA", "only ssh-ed25519 keys are supported"),
        ("ssh-ed25519 !!!!", "not valid base64"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "truncated"),
        ("restrict ssh-ed25519 AAAA", "expected 'ssh-ed25519 AAAA...'"),
        ("ssh-ed25519 " + RSA_BLOB_B64, "the key says it is 'ssh-rsa'"),
    ],
)
def test_public_key_parse_refuses(text: str, why: str) -> None:
    with pytest.raises(InputError, match=why):
        keys.PublicKey.parse(text)


# --- allowed_signers parsing --------------------------------------------------------


def test_keyring_parse_options_comments_principals(alice: keys.SigningKey) -> None:
    bob = memory_key("bob")
    ci = memory_key()
    text = (
        "# the regbook keyring\n"
        "\n"
        f"   # indented comment\n"
        f'alice@bank.example,ana@bank.example NAMESPACES="regbook-sme,regbook-ci" '
        f"{alice.public}\r\n"
        f'"bob smith@bank.example" valid-after="20260101Z",Valid-Before="202701011230Z",'
        f'namespaces="regbook-governance-lead" {bob.public}\n'
        f'*@ci.bank.example,runner-?? namespaces="a\\"b,regbook-ci,git*" {ci.public} CI key\n'
        f"legacy@bank.example {bob.public}\n"
    )  # fmt: skip
    ring = keys.Keyring.parse(text)
    assert ring.source == "allowed_signers" and ring.raw == text.encode()
    first, second, third, fourth = ring.entries
    assert first.principals == ("alice@bank.example", "ana@bank.example")
    assert first.namespaces == ("regbook-sme", "regbook-ci")
    assert first.roles == ("sme", "ci") and first.line_no == 4
    assert first.key == alice.public and first.key.comment == "alice@bank.example"
    assert first.valid_after is None and first.valid_before is None

    assert second.principals == ("bob smith@bank.example",)
    assert second.valid_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert second.valid_before == datetime(2027, 1, 1, 12, 30, tzinfo=UTC)
    assert second.roles == ("governance-lead",)
    assert second.matches_principal("bob smith@bank.example")

    assert third.namespaces == ('a"b', "regbook-ci", "git*")
    assert third.roles == ("ci",) and third.key.comment == "CI key"
    assert third.matches_principal("deploy@ci.bank.example")
    assert third.matches_principal("@ci.bank.example")  # * matches nothing too
    assert third.matches_principal("runner-07")
    assert not third.matches_principal("runner-7")
    assert not third.matches_principal("deploy@CI.bank.example")  # case-sensitive
    assert not third.matches_principal("deploy@ci.bank.example.evil")
    assert third.allows_namespace("gitlab") and not third.allows_namespace("regbook-sme")

    assert fourth.namespaces is None and fourth.roles == ()
    assert not fourth.allows_namespace("regbook-sme")

    assert ring.entries_for_key(bob.public) == [second, fourth]
    assert ring.principals_for_key(bob.public) == ["bob smith@bank.example", "legacy@bank.example"]
    assert ring.roles_for("bob smith@bank.example", bob.public) == {"governance-lead"}
    assert ring.roles_for("bob smith@bank.example", bob.public, WHEN) == {"governance-lead"}
    assert ring.roles_for("bob smith@bank.example", bob.public, WHEN.replace(year=2025)) == set()
    assert ring.roles_for("legacy@bank.example", bob.public) == set()
    assert ring.roles_for("ana@bank.example", alice.public) == {"sme", "ci"}
    assert ring.roles_for("ana@bank.example", bob.public) == set()
    assert ring.entries_for_key(memory_key().public) == []


def test_entry_str_is_a_line_that_parses_back(alice: keys.SigningKey) -> None:
    text = (
        f'"x y@b,*@c" namespaces="regbook-sme",valid-after="20260101Z",valid-before="20270101Z" '
        f"{alice.public}"
    )
    entry = keys.Keyring.parse(text).entries[0]
    again = keys.Keyring.parse(str(entry)).entries[0]
    assert again == entry


@needs_ssh_keygen
def test_ssh_keygen_reads_the_same_lines(tmp_path: Path, alice: keys.SigningKey) -> None:
    """Quoted principals, escaped quotes, wildcards, CRLF: both tools read them alike,
    and where ssh-keygen lets the line sign, regbook refuses: a line with a wildcard
    principal grants no regbook signer, not even for the exact principal it names."""
    ring_path = tmp_path / "allowed_signers"
    ring_path.write_bytes(
        b"# comment\r\n\r\n"
        + f'"Ana Lima,*@ci.bank.example,run-??" NAMESPACES="x\\"y,regbook-ci" {alice.public}\r\n'
        .encode()
    )  # fmt: skip
    ring = keys.Keyring.load(ring_path)
    assert ring.entries[0].namespaces == ('x"y', "regbook-ci")
    armored = keys.sign(MESSAGE, alice, "regbook-ci")
    for principal, ok in [
        ("Ana Lima", True),
        ("deploy@ci.bank.example", True),
        ("run-01", True),
        ("run-1", False),
        ("ana lima", False),
    ]:
        ours = keys.check_signature(MESSAGE, armored, ring, principal, "regbook-ci", WHEN)
        theirs = ssh_verify(tmp_path, ring_path, principal, "regbook-ci", armored, MESSAGE)
        assert (theirs.returncode == 0) is ok, (principal, theirs.stderr)
        assert not ours.ok and ours.problem == "principal-mismatch", principal
        assert ("wildcard principal" in ours.detail) is ok, (principal, ours.detail)


BAD_LINES = [
    ("alice@b cert-authority {key}", "cert-authority is not supported"),
    ("alice@b restrict {key}", "unknown option 'restrict'"),
    ("alice@b namespaces=regbook-sme {key}", "must be in double quotes"),
    ('alice@b namespaces="regbook-sme {key}', "unclosed double quote"),
    ('alice@b namespaces="regbook-sme",namespaces="regbook-ci" {key}', "given twice"),
    ('alice@b namespaces="regbook-*" {key}', "would grant regbook roles implicitly"),
    ('alice@b namespaces="!regbook-ci" {key}', "negated namespace"),
    ('alice@b namespaces="" {key}', "empty namespace"),
    ("!mallory@b {key}", "negated principal"),
    (",alice@b {key}", "empty principal"),
    ('"alice@b {key}', "no closing quote"),
    ('"alice@b"x {key}', "expected a space after the quoted principals"),
    ("alice@b", "no key after the principals"),
    ('alice@b namespaces="regbook-sme"', "no key after the options"),
    ('alice@b valid-after="2026-01-01" {key}', "is not YYYYMMDD"),
    ('alice@b valid-after="20261301Z" {key}', "not a valid date"),
    ('alice@b valid-after="20270101Z",valid-before="20260101Z" {key}', "not after valid-after"),
    ("alice@b ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "only ssh-ed25519 keys are supported"),
    ("alice@b ssh-ed25519 AAAA!", "not valid base64"),
    ("alice@b cert-authority,namespaces {key}", "cert-authority is not supported"),
]


@pytest.mark.parametrize(("line", "why"), BAD_LINES)
def test_keyring_bad_line_names_source_and_line(
    alice: keys.SigningKey, line: str, why: str
) -> None:
    text = f"# keyring\n\n{line.format(key=alice.public)}\nok@b {alice.public}\n"
    with pytest.raises(InputError, match=r"^allowed_signers:3: ") as err:
        keys.Keyring.parse(text)
    assert why in str(err.value)
    with pytest.raises(InputError, match=r"^team/keys:3: "):
        keys.Keyring.parse(text.encode(), source="team/keys")


def test_keyring_refuses_bom_and_non_utf8() -> None:
    with pytest.raises(InputError, match="allowed_signers:1: starts with a byte-order mark"):
        keys.Keyring.parse("\ufeff# comment\n")
    with pytest.raises(InputError, match="allowed_signers: not UTF-8"):
        keys.Keyring.parse(b"\xff\xfe")


def test_keyring_load_and_sha256(ring_path: Path, tmp_path: Path) -> None:
    ring = keys.Keyring.load(ring_path)
    assert ring.source == str(ring_path)
    assert ring.sha256 == hashlib.sha256(ring_path.read_bytes()).hexdigest()
    assert len(ring.entries) == 1
    with pytest.raises(InputError, match="no such keyring file"):
        keys.Keyring.load(tmp_path / "nope")
    bad = tmp_path / "bad_signers"
    bad.write_text("alice@b cert-authority ssh-ed25519 AAAA\n")
    with pytest.raises(InputError, match=r"bad_signers:1: cert-authority"):
        keys.Keyring.load(bad)


@posix_only
@needs_ssh_keygen
def test_timestamps_without_z_are_local_time_like_openssh(
    tmp_path: Path, alice: keys.SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        ring_path = tmp_path / "allowed_signers"
        ring_path.write_text(
            f'alice@b namespaces="regbook-sme",valid-after="20260101" {alice.public}\n'
        )
        entry = keys.Keyring.load(ring_path).entries[0]
        assert entry.valid_after == datetime(2025, 12, 31, 15, 0, tzinfo=UTC)
        armored = keys.sign(MESSAGE, alice, "regbook-sme")
        ring = keys.Keyring.load(ring_path)
        for at, ok in (("20251231145959Z", False), ("20251231150000Z", True)):
            when = datetime.strptime(at, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
            ours = keys.check_signature(MESSAGE, armored, ring, "alice@b", "regbook-sme", when)
            theirs = ssh_verify(
                tmp_path, ring_path, "alice@b", "regbook-sme", armored, MESSAGE,
                f"-Overify-time={at}",
            )  # fmt: skip
            assert ours.ok is ok and (theirs.returncode == 0) is ok, (at, theirs.stderr)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# --- writing the keyring ------------------------------------------------------------


def test_format_signer_line(alice: keys.SigningKey) -> None:
    line = keys.format_signer_line(
        "alice@bank.example",
        alice.public,
        ["sme", "ci", "sme"],
        valid_after=datetime(2026, 1, 1, 1, 2, 3, 999, tzinfo=timezone_plus(2)),
    )
    assert line == (
        'alice@bank.example namespaces="regbook-sme,regbook-ci",valid-after="20251231230203Z" '
        f"{alice.public.openssh()}"
    )
    spaced = keys.format_signer_line("Ana Lima", alice.public, ["ci"])
    assert spaced.startswith('"Ana Lima" namespaces="regbook-ci" ')
    assert keys.Keyring.parse(spaced).entries[0].principals == ("Ana Lima",)


def timezone_plus(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


@pytest.mark.parametrize(
    ("principal", "roles", "after", "before", "why"),
    [
        ("a@b,c@d", ["sme"], None, None, "must be one identity"),
        ("*@b", ["sme"], None, None, "must be one identity"),
        ("", ["sme"], None, None, "must be one identity"),
        ("a@b", [], None, None, "needs at least one role"),
        ("a@b", ["admin"], None, None, "unknown role 'admin'"),
        ("a@b", ["sme"], datetime(2026, 1, 1), None, "timezone-aware"),
        ("a@b", ["sme"], WHEN, WHEN, "valid-before must be after valid-after"),
    ],
)
def test_format_signer_line_refuses(
    alice: keys.SigningKey, principal, roles, after, before, why
) -> None:
    with pytest.raises(InputError, match=why):
        keys.format_signer_line(principal, alice.public, roles, after, before)


def test_append_signer(tmp_path: Path, alice: keys.SigningKey) -> None:
    path = tmp_path / "ws" / "allowed_signers"
    keys.append_signer(path, keys.format_signer_line("a@b", alice.public, ["sme"]))
    path.write_bytes(path.read_bytes() + b"# no newline at the end")
    bob = memory_key("bob")
    keys.append_signer(path, keys.format_signer_line("bob@b", bob.public, ["ci"]) + "\n")
    text = path.read_text()
    assert text.endswith(
        "# no newline at the end\n" + f'bob@b namespaces="regbook-ci" {bob.public}\n'
    )
    ring = keys.Keyring.load(path)
    assert [e.principals for e in ring.entries] == [("a@b",), ("bob@b",)]
    before = path.read_bytes()
    with pytest.raises(InputError, match=r"allowed_signers:4: cert-authority"):
        keys.append_signer(path, f"eve@b cert-authority {bob.public}")
    with pytest.raises(InputError, match="one line"):
        keys.append_signer(path, "a\nb")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["allowed_signers"]


# --- signatures and checks ----------------------------------------------------------


def test_signature_parse_round_trip(alice: keys.SigningKey) -> None:
    armored = keys.sign(MESSAGE, alice, "regbook-sme")
    assert armored.startswith(keys.SIG_BEGIN + "\n") and armored.endswith(keys.SIG_END + "\n")
    sig = keys.Signature.parse(armored)
    assert sig.public_key == alice.public and sig.namespace == "regbook-sme"
    assert sig.hash_algorithm == "sha512" and len(sig.signature) == 64
    assert str(sig) == armored
    assert keys.Signature.parse(armored.replace("\n", "\r\n") + "\n\n") == sig
    assert sig.verifies(MESSAGE) and not sig.verifies(MESSAGE + b" ")


def _reblob(armored: str, mutate) -> str:
    sig = keys.Signature.parse(armored)
    b64 = base64.b64encode(mutate(sig.blob())).decode()
    return f"{keys.SIG_BEGIN}\n{b64}\n{keys.SIG_END}\n"


def test_signature_parse_refuses_malformed(alice: keys.SigningKey) -> None:
    armored = keys.sign(MESSAGE, alice, "regbook-sme")
    bad = {
        "": "expected text between",
        "hello": "expected text between",
        armored.replace("SSH SIGNATURE", "PGP SIGNATURE"): "expected text between",
        armored.replace("U1NIU0lH", "U1NIU0lI", 1): "does not start with SSHSIG",
        armored.replace("U1NIU0lH", "U1NIU0lH!", 1): "not valid base64",
        _reblob(armored, lambda b: b[:-5]): "truncated",
        _reblob(armored, lambda b: b + b"\x00"): "unexpected bytes",
        _reblob(armored, lambda b: b.replace(b"sha512", b"sha384")): "not sha512 or sha256",
        _reblob(armored, lambda b: b[:6] + b"\x00\x00\x00\x02" + b[10:]): "version 2",
    }
    for text, why in bad.items():
        with pytest.raises(InputError, match=why):
            keys.Signature.parse(text)
        check = keys.check_signature(
            MESSAGE, text, keys.Keyring.parse(""), "a@b", "regbook-sme", WHEN
        )
        assert (check.ok, check.problem) == (False, "malformed")
        assert why in check.detail


@pytest.fixture
def world(tmp_path: Path, alice: keys.SigningKey):
    """A keyring with one line per situation, and the path it is written to."""
    bob, carol, dave = memory_key(), memory_key(), memory_key()
    lines = [
        keys.format_signer_line("alice@bank.example", alice.public, ["sme"]),
        keys.format_signer_line(
            "bob@bank.example",
            bob.public,
            ["governance-lead"],
            valid_after=datetime(2026, 1, 1, tzinfo=UTC),
            valid_before=datetime(2026, 12, 31, tzinfo=UTC),
        ),
        f"carol@bank.example {carol.public}",  # no namespaces=: no regbook role
    ]
    path = tmp_path / "allowed_signers"
    path.write_text("\n".join(lines) + "\n")
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave}, path


# (signer, principal claimed, namespace signed, namespace required, message, when, problem)
REJECTIONS = [
    ("alice", "alice@bank.example", "regbook-sme", "regbook-sme", b"tampered", WHEN,
     "bad-signature"),
    ("dave", "dave@bank.example", "regbook-sme", "regbook-sme", b"tampered", WHEN, "bad-signature"),
    ("alice", "alice@bank.example", "regbook-sme", "regbook-ci", MESSAGE, WHEN, "wrong-namespace"),
    ("alice", "alice@bank.example", "git", None, MESSAGE, WHEN, "wrong-namespace"),
    ("bob", "bob@bank.example", "regbook-governance-lead", None, MESSAGE,
     datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "not-yet-valid"),
    ("bob", "bob@bank.example", "regbook-governance-lead", None, MESSAGE,
     datetime(2026, 12, 31, 0, 0, 1, tzinfo=UTC), "expired"),
    ("dave", "dave@bank.example", "regbook-sme", "regbook-sme", MESSAGE, WHEN, "unknown-key"),
    ("alice", "bob@bank.example", "regbook-sme", "regbook-sme", MESSAGE, WHEN,
     "principal-mismatch"),
    ("alice", "alice@bank.example", "regbook-ci", "regbook-ci", MESSAGE, WHEN,
     "namespace-not-allowed"),
    ("carol", "carol@bank.example", "regbook-sme", "regbook-sme", MESSAGE, WHEN,
     "namespace-not-allowed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("signer", "principal", "signed_ns", "wanted_ns", "message", "when", "problem"), REJECTIONS
)
def test_check_signature_rejections(
    world, signer, principal, signed_ns, wanted_ns, message, when, problem
) -> None:
    people, path = world
    ring = keys.Keyring.load(path)
    armored = keys.sign(MESSAGE, people[signer], signed_ns)
    check = keys.check_signature(message, armored, ring, principal, wanted_ns, when)
    assert (check.ok, check.problem) == (False, problem), check.detail
    assert check.fingerprint == people[signer].public.fingerprint
    assert check.namespace == signed_ns
    assert check.detail.endswith(".") and "\n" not in check.detail
    assert check.role is None
    if problem == "namespace-not-allowed" and signer == "carol":
        assert "has no namespaces= option" in check.detail


def test_check_signature_accepts_inside_window_inclusive(world) -> None:
    people, path = world
    ring = keys.Keyring.load(path)
    armored = keys.sign(MESSAGE, people["bob"], "regbook-governance-lead")
    for when in (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 31, 0, 0, 0, 999999, tzinfo=UTC),
        datetime(2026, 7, 1, 2, 0, tzinfo=timezone_plus(2)),
    ):
        check = keys.check_signature(MESSAGE, armored, ring, "bob@bank.example", None, when)
        assert check.ok, check.detail
        assert check.role == "governance-lead" and check.entry is ring.entries[1]
    with pytest.raises(InputError, match="timezone-aware"):
        keys.check_signature(MESSAGE, armored, ring, "bob@bank.example", None, datetime.now())


@needs_ssh_keygen
@pytest.mark.parametrize(
    ("signer", "principal", "signed_ns", "wanted_ns", "message", "when", "problem"),
    [r for r in REJECTIONS if r[3] is not None],
)
def test_ssh_keygen_agrees_on_rejections(
    tmp_path, world, signer, principal, signed_ns, wanted_ns, message, when, problem
) -> None:
    """Stock ssh-keygen rejects the same signatures, save one deliberate difference."""
    people, path = world
    armored = keys.sign(MESSAGE, people[signer], signed_ns)
    at = when.strftime("-Overify-time=%Y%m%d%H%M%SZ")
    done = ssh_verify(tmp_path, path, principal, wanted_ns, armored, message, at)
    if signer == "carol":
        # OpenSSH lets a key without namespaces= sign in any namespace; regbook requires
        # the role to be granted explicitly.
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0, (problem, done.stdout)


@needs_ssh_keygen
@pytest.mark.parametrize(
    ("when", "ok"),
    [
        (datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), False),
        (datetime(2026, 1, 1, tzinfo=UTC), True),
        (datetime(2026, 12, 31, tzinfo=UTC), True),
        (datetime(2026, 12, 31, 0, 0, 1, tzinfo=UTC), False),
    ],
)
def test_validity_bounds_agree_with_ssh_keygen(tmp_path, world, when, ok) -> None:
    people, path = world
    armored = keys.sign(MESSAGE, people["bob"], "regbook-governance-lead")
    ours = keys.check_signature(
        MESSAGE, armored, keys.Keyring.load(path), "bob@bank.example", None, when
    )
    theirs = ssh_verify(
        tmp_path, path, "bob@bank.example", "regbook-governance-lead", armored, MESSAGE,
        when.strftime("-Overify-time=%Y%m%d%H%M%SZ"),
    )  # fmt: skip
    assert ours.ok is ok
    assert (theirs.returncode == 0) is ok, theirs.stderr


def test_checks_from_two_threads(world) -> None:
    people, path = world
    ring = keys.Keyring.load(path)
    jobs = []
    for i in range(200):
        message = MESSAGE + str(i).encode()
        signer = "alice" if i % 2 else "dave"
        jobs.append((message, keys.sign(message, people[signer], "regbook-sme"), signer))

    def check(job):
        message, armored, signer = job
        return keys.check_signature(message, armored, ring, f"{signer}@bank.example", None, WHEN)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(check, jobs))
    assert [r.ok for r in results] == [i % 2 == 1 for i in range(200)]
    assert {r.problem for r in results} == {None, "unknown-key"}


# --- properties ---------------------------------------------------------------------

PROPERTY_KEY = memory_key("prop@bank.example")
NAMESPACE_TEXT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._@", min_size=1, max_size=40
).filter(lambda ns: keys.role_for_namespace(ns) is None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.binary(max_size=2048), role=st.sampled_from(keys.ROLES), other=NAMESPACE_TEXT)
def test_sign_then_check_is_ok(message: bytes, role: str, other: str) -> None:
    namespace = keys.namespace_for(role)
    ring = keys.Keyring.parse(
        f'prop@bank.example namespaces="{other},{namespace}" {PROPERTY_KEY.public}'
    )
    armored = keys.sign(message, PROPERTY_KEY, namespace)
    check = keys.check_signature(message, armored, ring, "prop@bank.example", None, WHEN)
    assert check.ok and check.role == role, check.detail
    armored = keys.sign(message, PROPERTY_KEY, other)
    check = keys.check_signature(message, armored, ring, "prop@bank.example", other, WHEN)
    assert check.ok and check.role is None, check.detail
    assert str(keys.Signature.parse(armored)) == armored
    tampered = message + b"\x00"
    bad = keys.check_signature(tampered, armored, ring, "prop@bank.example", other, WHEN)
    assert bad.problem == "bad-signature"
