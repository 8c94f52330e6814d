"""sigbatch, verify's batch signature path: the lean SSHSIG reader must read exactly what
``keys.Signature.parse`` reads, libsodium must agree with cryptography (the reference),
and every bad signature must still be caught when the checks run in worker processes,
with the same finding code and cell as the one-thread check."""

from __future__ import annotations

import subprocess
from concurrent.futures import Future
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Env, finding, problems, signing_material
from regbook.core.errors import InputError
from regbook.crypto import keys, sigbatch
from regbook.ledger import events as ledger
from regbook.ledger import signatures
from regbook.ledger.events import new_event
from regbook.ledger.signatures import check_signatures, check_signatures_in_background
from test_verify import event_row, forge_register, load_key, run_verify, set_cell


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory):
    return signing_material(tmp_path_factory.mktemp("batch"))


def full_parse(armored: str):
    try:
        sig = keys.Signature.parse(armored)
    except InputError:
        return None
    return sig.public_key.blob, sig.namespace, sig.hash_algorithm, sig.signature


def reads_alike(armored: str) -> None:
    assert sigbatch.parse(armored) == full_parse(armored)


def with_blob(armored: str, change) -> str:
    """The armored signature with its binary blob changed by ``change``."""
    sig = keys.Signature.parse(armored)
    import base64

    blob = change(sig.blob())
    return f"{keys.SIG_BEGIN}\n{base64.b64encode(blob).decode()}\n{keys.SIG_END}\n"


# --- the lean reader ---------------------------------------------------------------------


def test_reader_agrees_on_good_and_malformed_signatures(material):
    _folder, alice, _ci, _stranger, _ring = material
    good = keys.sign(b"event", alice, "regbook-sme")
    reads_alike(good)
    assert sigbatch.parse(good) is not None
    for text in (
        good.replace("\n", "\r\n"),  # CRLF: both strip
        "  " + good + "  ",
        good.replace(keys.SIG_END, keys.SIG_END.lower()),
        good.replace("\n", " ", 2),  # blanks inside the base64
        good[:-40] + good[-30:],  # truncated
        "not a signature",
        keys.SIG_BEGIN + "\n" + keys.SIG_END,
        good.replace("A", "é", 1),  # not ASCII
    ):
        reads_alike(text)
    # Fields: a non-empty reserved field is ignored by both; bad lengths refused by both.
    empty, one = (
        b"\x00\x00\x00\x00\x00\x00\x00\x06sha512",
        b"\x00\x00\x00\x01x\x00\x00\x00\x06sha512",
    )
    reserved = with_blob(good, lambda b: b.replace(empty, one))
    assert sigbatch.parse(reserved) is not None
    reads_alike(reserved)
    reads_alike(with_blob(good, lambda b: b + b"\x00"))  # trailing bytes
    reads_alike(with_blob(good, lambda b: b[:-1]))
    reads_alike(with_blob(good, lambda b: b.replace(b"sha512", b"sha384")))
    reads_alike(with_blob(good, lambda b: b.replace(b"\x00\x00\x00\x01", b"\x00\x00\x00\x02", 1)))
    reads_alike(keys.sign(b"event", alice, "\xe9t\xe9"))  # a UTF-8 namespace


@settings(max_examples=200, deadline=None)
@given(
    at=st.integers(0, 500),
    insert=st.sampled_from(["\n", "\r", " ", "\t", "\n\n", "=", "A", "-", "é", "\r\n", ""]),
    cut=st.integers(0, 3),
)
def test_the_quick_layout_reading_never_disagrees(material, at, insert, cut):
    # The few-C-calls reading of the usual layout either steps aside (None) or finds
    # exactly the blob the line-by-line reading finds, whatever the text looks like.
    _folder, alice, _ci, _stranger, _ring = material
    good = keys.sign(b"layout", alice, "regbook-sme")
    assert sigbatch._blob_as_written(good) == sigbatch._blob_by_lines(good) is not None
    i = at % (len(good) + 1)
    text = good[:i] + insert + good[i + cut :]
    quick = sigbatch._blob_as_written(text)
    assert quick is None or quick == sigbatch._blob_by_lines(text)
    reads_alike(text)


@settings(max_examples=80, deadline=None)
@given(message=st.binary(max_size=120), flip=st.integers(0, 400), byte=st.integers(0, 255))
def test_reader_agrees_on_any_changed_byte(material, message, flip, byte):
    _folder, alice, _ci, _stranger, _ring = material
    good = keys.sign(message, alice, "regbook-sme")
    reads_alike(good)

    def change(blob: bytes) -> bytes:
        i = flip % len(blob)
        return blob[:i] + bytes([byte]) + blob[i + 1 :]

    changed = with_blob(good, change)
    reads_alike(changed)
    parsed = sigbatch.parse(changed)
    if parsed is not None:  # where it still reads, the check must match the full one
        ok = sigbatch.check_one(changed, message) is not None
        assert ok == keys.Signature.parse(changed).verifies(message)


def test_reader_agrees_on_signatures_made_by_ssh_keygen(material):
    folder, _alice, _ci, _stranger, _ring = material
    message = folder / "msg"
    message.write_bytes(b"signed by stock ssh-keygen")
    for algorithm in ("sha512", "sha256"):
        subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(folder / "alice"), "-n",
             "regbook-sme", "-O", f"hashalg={algorithm}", str(message)],
            check=True, capture_output=True,
        )  # fmt: skip
        sig = Path(str(message) + ".sig")
        reads_alike(sig.read_text())
        assert sigbatch.check_one(sig.read_text(), message.read_bytes()) is not None
        sig.unlink()


# --- libsodium against the reference -----------------------------------------------------


@pytest.mark.parametrize("sodium", [True, False])
def test_ed25519_backends_agree_with_cryptography(material, monkeypatch, sodium):
    _folder, alice, _ci, stranger, _ring = material
    if not sodium:
        monkeypatch.setattr(sigbatch, "_sodium_open", None)
    else:
        assert sigbatch._sodium_open is not None, "PyNaCl is a dependency"
    for i in range(40):
        message = bytes([i]) * (i + 1)
        blob, ns, alg, raw = sigbatch.parse(keys.sign(message, alice, "regbook-sme"))
        data = keys.signed_data(ns, alg, message)
        cases = [
            (blob, raw, data),
            (blob, raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :], data),  # a flipped byte
            (blob, raw, data + b"!"),
            (stranger.public.blob, raw, data),  # another key
        ]
        for key_blob, sig, signed in cases:
            reference = keys.PublicKey(key_blob)
            try:
                keys.ed25519_verifier(reference.blob).verify(sig, signed)
                expected = True
            except Exception:  # noqa: BLE001 - InvalidSignature
                expected = False
            assert sigbatch.ed25519_ok(key_blob, sig, signed) is expected


# --- the batch, in worker processes ------------------------------------------------------


def signed_events(material) -> list:
    """Good events, then one of each kind of bad signature."""
    _folder, alice, _ci, stranger, _ring = material
    events = []
    previous = None
    for i in range(150):
        previous = new_event(previous, "register", "m", i + 1, {"n": i}, alice,
                             "alice@example.com", "sme", at="2025-06-01T00:00:00Z")  # fmt: skip
        events.append(previous)

    def replace(index: int, **changes) -> None:
        fields = {**events[index].__dict__, **changes}
        fields.pop("payload", None)
        fields.pop("_computed_hash", None)
        fields.pop("when", None)
        events[index] = ledger.LedgerEvent(**fields)

    sig = keys.Signature.parse(events[10].signature)
    flipped = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
    replace(10, signature=keys.Signature(sig.public_key, sig.namespace, "sha512", flipped).armor())
    data = events[20].signed_bytes()
    replace(20, signature=keys.sign(data, stranger, "regbook-sme"))  # a wrong key
    replace(30, signature=keys.sign(events[30].signed_bytes(), alice, "regbook-ci"))  # namespace
    replace(40, signature=keys.sign(events[40].signed_bytes(), alice, "git"))
    replace(50, signature="garbage")
    replace(60, signer="bob@example.com")  # a principal the key is not listed for
    replace(60, signature=keys.sign(events[60].signed_bytes(), alice, "regbook-sme"))
    return events


EXPECTED = {(10, "RB104"), (20, "RB105"), (30, "RB106"), (40, "RB106"), (50, "RB104"),
            (60, "RB105")}  # fmt: skip


def found(findings) -> set[tuple[int, str]]:
    return {(int(f.message.split()[1]), f.code) for f in findings}


def by_role(_event) -> tuple[str, ...]:
    return ("sme",)


@pytest.mark.parametrize("method", ["default", "spawn"])
def test_every_bad_signature_is_caught_in_worker_processes(material, method):
    ring = material[4]
    events = signed_events(material)
    one_thread = check_signatures(events, ring, by_role, threads=1)
    assert found(one_thread) == {(seq + 1, code) for seq, code in EXPECTED}
    # spawn is what Windows and macOS get: workers that import regbook afresh.
    pool = sigbatch.start_pool(2, None if method == "default" else method)
    assert pool is not None
    try:
        wait = check_signatures_in_background(events, ring, by_role, 2, pool)
        in_workers = wait()
    finally:
        sigbatch.shutdown(pool)
    assert [(f.code, f.where, f.message) for f in in_workers] == [
        (f.code, f.where, f.message) for f in one_thread
    ]
    threaded = check_signatures(events, ring, by_role, threads=2)
    assert [(f.code, f.message) for f in threaded] == [(f.code, f.message) for f in one_thread]


def test_a_dead_worker_is_replaced_by_checking_here(material):
    events = signed_events(material)
    items = [(e.signature, e.signed_bytes()) for e in events]
    dead: Future = Future()
    dead.set_exception(RuntimeError("worker died"))
    rest = sigbatch.check_chunk(items[100:])
    results = sigbatch.gather([(0, 100, dead), (100, len(items), rest)], lambda s, e: items[s:e])
    assert results == sigbatch.check_chunk(items)
    assert sum(r is None for r in results) == 2  # the flipped byte and "garbage"


# --- verify end to end, with the checks forced onto worker processes ---------------------


@pytest.fixture
def through_workers(registered_fast: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    started = []
    real = sigbatch.start_pool

    def counted(workers: int, method: str | None = None):
        pool = real(workers, method)
        started.append(pool)
        return pool

    monkeypatch.setattr(signatures, "_POOL_MIN_BYTES", 0)
    monkeypatch.setattr(sigbatch, "start_pool", counted)
    yield registered_fast
    assert started and all(p is not None for p in started)


def test_verify_in_workers_clean(through_workers: Env):
    assert run_verify(through_workers)[0] == 0


def test_verify_in_workers_catches_an_edited_payload(through_workers: Env):
    from test_verify import cell_value

    row = event_row(through_workers)  # credit-risk@1's registration
    payload = cell_value(through_workers, f"Ledger!F{row}")
    assert '"value":0.83' in payload
    set_cell(through_workers, f"Ledger!F{row}",
             payload.replace('"value":0.83', '"value":0.93', 1))  # fmt: skip
    code, report = run_verify(through_workers)
    assert code == 1
    message = finding(report, "RB104", f"Ledger!K{row}")["message"]
    assert "does not match the signed bytes" in message


def test_verify_in_workers_catches_a_wrong_key(through_workers: Env, tmp_path: Path):
    mallory = keys.generate_key(tmp_path / "mallory", comment="mallory")
    row = forge_register(through_workers, mallory, "alice@example.com", "sme")
    code, report = run_verify(through_workers)
    assert code == 1
    ledger_problems = {p for p in problems(report) if p[0][:3] in ("RB1", "RB2")}
    assert ledger_problems == {("RB105", f"Ledger!K{row}")}


def test_verify_in_workers_catches_a_wrong_namespace(through_workers: Env):
    key = load_key(through_workers, "sme")
    row = forge_register(through_workers, key, "alice@example.com", "ci")
    code, report = run_verify(through_workers)
    assert code == 1
    message = finding(report, "RB106", f"Ledger!K{row}")["message"]
    assert "may not sign in 'regbook-ci'" in message


def test_verify_in_workers_bad_scope_is_an_input_error(through_workers: Env):
    result = through_workers.run("verify", "no-such-model@1")
    assert result.exit_code == 2
    assert "no such sealed version" in result.output and "Traceback" not in result.output
