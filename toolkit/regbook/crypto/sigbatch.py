"""Checking the Ed25519 part of many SSH signatures at once, on worker processes.

``verify`` checks every ledger event's signature: tens of thousands of them. The
Ed25519 arithmetic is most of the cost, and on threads the Python work around each
check holds the GIL, so two threads gave 1.4x. Here the armored text is read and the
signature checked against the key it carries, for whole chunks of events, in worker
processes; the caller decides (keyring, principal, time window, role) from what comes
back, and sends anything that did not pass through ``keys.check_signature``, which says
exactly what is wrong::

    pool = start_pool(2)                        # before any thread is started
    chunks = submit(pool, items, 2)              # items: [(armored, message), ...]
    results = gather(chunks, lambda start, end: items[start:end])
    # results: (key blob, namespace) or None, one per item
    shutdown(pool)

A result is not None only where ``keys.Signature.parse`` reads the same key, namespace
and hash algorithm and the signature is good over the message: the fast path may say
less than the full check, never more. libsodium (PyNaCl) does the arithmetic when it is
installed, about twice as fast here as OpenSSL; cryptography otherwise. libsodium
accepts a subset of what OpenSSL accepts (it also refuses small-order points and
non-canonical encodings), and whatever it refuses is decided again by
``keys.check_signature`` on cryptography, the reference.
"""

from __future__ import annotations

import binascii
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from cryptography.exceptions import InvalidSignature

from regbook.crypto.keys import HASH_ALGORITHMS, SIG_BEGIN, SIG_END, ed25519_verifier, signed_data

_sodium_open: Callable[[bytes, bytes], bytes] | None
_SodiumError: type[Exception]
try:  # libsodium: the faster Ed25519 verification, when PyNaCl is there
    from nacl.bindings import crypto_sign_open as _sodium_open
    from nacl.exceptions import CryptoError as _SodiumError
except ImportError:  # pragma: no cover - PyNaCl is a dependency; this keeps it optional
    _sodium_open = None
    _SodiumError = Exception

_KEY_PREFIX = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
_SIG_PREFIX = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x40"
_KEY_BLOB_LEN = len(_KEY_PREFIX) + 32
_SIG_BLOB_LEN = len(_SIG_PREFIX) + 64
_HEAD = b"SSHSIG\x00\x00\x00\x01" + _KEY_BLOB_LEN.to_bytes(4, "big") + _KEY_PREFIX
_ALGORITHMS = frozenset(a.encode("ascii") for a in HASH_ALGORITHMS)

# Start worker processes only for ledgers this large: below it process start-up and
# moving the data cost more than the second core gives back.
PROCESS_MIN_EVENTS = 3000
CHUNKS_PER_WORKER = 4
STREAM_CHUNK = 2000  # events per chunk sent while the ledger is still being read

# What is checked: an armored signature (any cell value; only text can pass) and the
# message it signs. What comes back: (key blob, namespace), or None.
Item = tuple[object, bytes]
Result = tuple[bytes, str] | None
Chunk = tuple[int, int, "Future[list[Result]] | list[Result]"]  # items[start:end], results


def parse(armored: object) -> tuple[bytes, str, str, bytes] | None:
    """``(key blob, namespace, hash algorithm, raw signature)`` of an armored Ed25519
    SSH signature, exactly when ``keys.Signature.parse`` reads the same; else None."""
    blob = _blob_as_written(armored)
    if blob is None:
        blob = _blob_by_lines(armored)
    if blob is None or not blob.startswith(_HEAD):
        return None
    pos = len(_HEAD) + 32
    fields = []
    for _ in range(3):  # namespace, reserved (ignored, as OpenSSH does), hash algorithm
        size = int.from_bytes(blob[pos : pos + 4], "big")
        end = pos + 4 + size
        if pos + 4 > len(blob) or end > len(blob):
            return None
        fields.append(blob[pos + 4 : end])
        pos = end
    namespace, _reserved, algorithm = fields
    if not namespace or algorithm not in _ALGORITHMS:
        return None
    size = int.from_bytes(blob[pos : pos + 4], "big")
    sig = blob[pos + 4 :]
    if size != _SIG_BLOB_LEN or len(sig) != _SIG_BLOB_LEN or not sig.startswith(_SIG_PREFIX):
        return None
    try:
        ns = namespace.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return blob[14 : 14 + _KEY_BLOB_LEN], ns, algorithm.decode("ascii"), sig[len(_SIG_PREFIX) :]


_BEGIN_LINE = SIG_BEGIN + "\n"
_END_LINE = "\n" + SIG_END


def _blob_by_lines(armored: object) -> bytes | None:
    """The blob of an armored signature read line by line, each line stripped, as
    ``keys.Signature.parse`` reads it; None where that finds no base64 blob."""
    if not isinstance(armored, str):
        return None
    lines = [line.strip() for line in armored.strip().split("\n")]
    if len(lines) < 3 or lines[0] != SIG_BEGIN or lines[-1] != SIG_END:
        return None
    try:
        return binascii.a2b_base64("".join(lines[1:-1]).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _blob_as_written(armored: object) -> bytes | None:
    """The blob of an armored signature laid out as ssh-keygen and regbook write it (the
    BEGIN line, lines of base64 only, the END line, at most a final line break), read
    with a few C calls; None for any other layout, which the line-by-line reading in
    ``parse`` decides. Where this returns a blob, that reading finds the same one."""
    if type(armored) is not str or not armored.startswith(_BEGIN_LINE):
        return None
    end = armored.rfind(_END_LINE)
    if end < len(SIG_BEGIN) or armored[end + len(_END_LINE) :] not in ("", "\n"):
        return None
    try:
        return binascii.a2b_base64(
            armored[len(_BEGIN_LINE) : end].replace("\n", ""), strict_mode=True
        )
    except ValueError:  # binascii.Error, or text that is not ASCII
        return None


def ed25519_ok(key_blob: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is a good Ed25519 signature of ``data`` by the key."""
    if _sodium_open is not None:
        try:
            _sodium_open(signature + data, key_blob[-32:])
            return True
        except _SodiumError:
            pass  # refused by libsodium: the reference decides
    try:
        ed25519_verifier(key_blob).verify(signature, data)
    except InvalidSignature:
        return False
    return True


def check_one(armored: object, message: bytes) -> tuple[bytes, str] | None:
    """``(key blob, namespace)`` when the signature parses and is good over ``message``
    by the key it carries; None otherwise (the keyring is the caller's question)."""
    parsed = parse(armored)
    if parsed is None:
        return None
    key_blob, namespace, algorithm, signature = parsed
    if not ed25519_ok(key_blob, signature, signed_data(namespace, algorithm, message)):
        return None
    return key_blob, namespace


def check_chunk(items: list[Item]) -> list[Result]:
    """``check_one`` over a chunk: what a worker runs. Equal results are one object, so
    pickle sends (and the caller keeps) each key and namespace once per chunk."""
    seen: dict[tuple[bytes, str], tuple[bytes, str]] = {}
    out: list[Result] = []
    for armored, message in items:
        result = check_one(armored, message)
        out.append(None if result is None else seen.setdefault(result, result))
    return out


def _ready() -> bool:
    return True


def start_pool(workers: int, method: str | None = None) -> Executor | None:
    """Worker processes, started now (with fork, call this before starting any thread);
    None where processes cannot be had, and the caller falls back to threads."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork is cheap and safe on Linux; macOS and Windows spawn (DESIGN section 11).
    method = method or ("fork" if sys.platform.startswith("linux") else "spawn")
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        pool.submit(_ready)  # with fork this starts every worker at once
    except (OSError, ImportError, NotImplementedError, ValueError):
        return None
    return pool


def submit(pool: Executor | None, items: list[Item], workers: int) -> list[Chunk]:
    """Start the checks in chunks; a chunk's results are a Future, or a list when they
    were computed here."""
    if pool is None and (workers <= 1 or len(items) <= 64):
        return [(0, len(items), check_chunk(items))]
    threads = None
    if pool is None:
        pool = threads = ThreadPoolExecutor(max_workers=workers)
    size = max(64, -(-len(items) // (workers * CHUNKS_PER_WORKER)))
    chunks: list[Chunk] = []
    for start in range(0, len(items), size):
        part = items[start : start + size]
        try:
            # libsodium and OpenSSL release the GIL, so threads overlap too.
            result: Future[list[Result]] | list[Result] = pool.submit(check_chunk, part)
        except RuntimeError:  # a broken pool: check here
            result = check_chunk(part)
        chunks.append((start, start + len(part), result))
    if threads is not None:
        threads.shutdown(wait=False)
    return chunks


class Feed:
    """Items handed to the worker processes chunk by chunk as they come, so the checks
    start while the caller is still reading the ledger, and no chunk is kept here once
    sent (``gather`` has the caller rebuild one if its worker dies). Without a
    pool the items wait for ``finish`` and go to threads (or are checked inline), as
    ``submit`` decides."""

    def __init__(self, pool: Executor | None, workers: int) -> None:
        self.pool = pool
        self.workers = workers
        self.items: list[Item] = []  # not sent yet
        self.chunks: list[Chunk] = []
        self.sent = 0

    def add(self, armored: object, message: bytes) -> None:
        self.items.append((armored, message))
        if self.pool is not None and len(self.items) >= STREAM_CHUNK:
            self._send(self.pool)

    def _send(self, pool: Executor) -> None:
        part, start = self.items, self.sent
        self.items, self.sent = [], start + len(part)
        try:
            result: Future[list[Result]] | list[Result] = pool.submit(check_chunk, part)
        except RuntimeError:  # a broken pool: check here
            result = check_chunk(part)
        self.chunks.append((start, self.sent, result))

    def finish(self) -> list[Chunk]:
        """Every chunk, the last one sent now."""
        if self.pool is None:
            return submit(None, self.items, self.workers)
        if self.items:
            self._send(self.pool)
        return self.chunks


def gather(chunks: list[Chunk], rebuild: Callable[[int, int], list[Item]]) -> list[Result]:
    """Every result, in order. A chunk whose worker died is checked again here, on the
    items ``rebuild(start, end)`` makes again."""
    out: list[Result] = []
    for start, end, result in chunks:
        if isinstance(result, list):
            out.extend(result)
            continue
        try:
            out.extend(result.result())
        except Exception:  # noqa: BLE001 - a dead worker: the same work, in this process
            out.extend(check_chunk(rebuild(start, end)))
    return out


def shutdown(pool: Executor | None) -> None:
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
