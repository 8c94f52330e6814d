"""keys.quick_check, verify's fast path, must agree with check_signature exactly: it
may only ever say "good" where check_signature says ok."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import signing_material
from regbook.crypto import keys

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory):
    return signing_material(tmp_path_factory.mktemp("quick"))


def agree(
    message: bytes, armored: str, ring: keys.Keyring, principal: str, when: datetime = NOW
) -> bool:
    quick = keys.quick_check(message, armored, ring, principal, when)
    full = keys.check_signature(message, armored, ring, principal, None, when)
    assert (quick is not None) == full.ok, (quick, full)
    if quick is not None:
        assert quick == (full.fingerprint, full.namespace)
    return full.ok


def test_good_and_every_kind_of_bad(material):
    _folder, alice, ci, stranger, ring = material
    msg = b"event bytes"
    good = keys.sign(msg, alice, "regbook-sme")
    assert agree(msg, good, ring, "alice@example.com")
    assert not agree(msg + b"!", good, ring, "alice@example.com")  # tampered
    assert not agree(msg, good, ring, "bob@example.com")  # principal
    assert not agree(msg, keys.sign(msg, alice, "regbook-ci"), ring, "alice@example.com")
    assert not agree(msg, keys.sign(msg, alice, "git"), ring, "alice@example.com")
    assert not agree(msg, keys.sign(msg, stranger, "regbook-sme"), ring, "alice@example.com")
    revoked = keys.sign(msg, ci, "regbook-ci")
    assert not agree(msg, revoked, ring, "ci@example.com")  # after valid-before
    assert agree(msg, revoked, ring, "ci@example.com", NOW - timedelta(days=200))
    assert not agree(msg, good.replace("A", "B", 1), ring, "alice@example.com")
    assert not agree(msg, "not a signature", ring, "alice@example.com")


def test_signatures_made_by_ssh_keygen(material):
    folder, _alice, _ci, _stranger, ring = material
    message = folder / "msg"
    message.write_bytes(b"signed by stock ssh-keygen")
    for algorithm in ("sha512", "sha256"):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-Y",
                "sign",
                "-f",
                str(folder / "alice"),
                "-n",
                "regbook-sme",
                "-O",
                f"hashalg={algorithm}",
                str(message),
            ],
            check=True,
            capture_output=True,
        )
        sig = Path(str(message) + ".sig")
        assert agree(message.read_bytes(), sig.read_text(), ring, "alice@example.com")
        sig.unlink()


@settings(max_examples=60, deadline=None)
@given(message=st.binary(max_size=200), flip=st.integers(min_value=0, max_value=400))
def test_any_single_change_is_never_accepted_by_the_fast_path(material, message, flip):
    _folder, alice, _ci, _stranger, ring = material
    armored = keys.sign(message, alice, "regbook-sme")
    assert agree(message, armored, ring, "alice@example.com")
    body = armored.splitlines()
    inner = "".join(body[1:-1])
    i = flip % len(inner)
    swapped = inner[:i] + ("A" if inner[i] != "A" else "B") + inner[i + 1 :]
    changed = "\n".join([body[0], swapped, body[-1]])
    agree(message, changed, ring, "alice@example.com")
