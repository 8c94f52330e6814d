"""The security scan against raw SHA-256 of the same bytes, side by side in one run.

Two artefacts, each read once before timing so every measurement runs from the page
cache:

(a) a 1 GiB pickle of NumPy arrays (of bytes objects where NumPy is absent): the
    obvious hashlib read loop vs ``scan_artefact`` (which hashes and scans from one
    open descriptor); target scan <= 2x the hash. Then where the scan's time goes:
    picklescan alone over the file, and regbook's own pass (hash + format detection);
(b) a 2,000-file artefact (pickles, safetensors and .npy files of 4-64 KiB): the
    hashlib loop over every file vs ``scan_artefact`` on the folder.

    python bench/run.py scan
"""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import sys
from pathlib import Path

from regbook.storage.scanning import scan_artefact

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hashing import once, pair, raw_hash, warm  # noqa: E402
from measure import row  # noqa: E402

GIB = 1 << 30
REPEATS = 2


def _big_pickle(path: Path) -> None:
    """Sixteen 64 MiB arrays in a dict, pickled with protocol 4 as a trainer would."""
    try:
        import numpy

        rng = numpy.random.default_rng(7)
        parts: dict[str, object] = {
            f"layer{i}": rng.random(16 << 20, dtype="float32") for i in range(16)
        }
    except ImportError:
        parts = {f"layer{i}": os.urandom(64 << 20) for i in range(16)}
    with path.open("wb") as handle:
        pickle.dump(parts, handle, protocol=4)


def _picklescan_only(path: Path) -> None:
    from picklescan.scanner import scan_pickle_bytes

    with path.open("rb") as handle:
        scan_pickle_bytes(handle, path.name)


def _one_large_pickle(workdir: Path) -> list[dict]:
    path = workdir / "large" / "model.pkl"
    path.parent.mkdir(parents=True)
    _big_pickle(path)
    warm([path])
    report = scan_artefact(path)
    assert report.content_hash.hex == raw_hash(path) and report.verdict != "inconclusive"
    raw, ours = pair(lambda: raw_hash(path), lambda: scan_artefact(path), REPEATS)
    scanner = min(once(lambda: _picklescan_only(path)) for _ in range(REPEATS))
    size = path.stat().st_size
    path.unlink()
    ratio = ours / raw
    return [
        row("(a) 1 GiB pickle: hashlib read loop", size / raw / 1e9, "GB/s"),
        row("(a) 1 GiB pickle: scan_artefact (hash + scan)", size / ours / 1e9, "GB/s"),
        row("(a) scan / hash time", ratio, "x", "<= 2", ratio <= 2),
        row("(a) of which picklescan alone", scanner, "s"),
        row("(a) of which hashing (hashlib loop)", raw, "s"),
    ]


def _safetensors(n: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}})
    text = header.encode() + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(text)) + text + os.urandom(4 * n)


def _npy(n: int) -> bytes:
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + str(n) + ",), }"
    text = (head + " " * (-(10 + len(head) + 1) % 64) + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + os.urandom(4 * n)


def _many_files(workdir: Path) -> list[dict]:
    root = workdir / "many"
    rng = random.Random(20261204)
    paths = []
    for i in range(2000):
        size = rng.randint(1024, 16 * 1024)  # values: 4-64 KiB of data
        kind = i % 4
        if kind in (0, 1):
            data = pickle.dumps({"step": i, "weights": os.urandom(4 * size)}, protocol=4)
            name = f"{i:04}.pkl"
        elif kind == 2:
            data, name = _safetensors(size), f"{i:04}.safetensors"
        else:
            data, name = _npy(size), f"{i:04}.npy"
        path = root / f"part-{i // 100:02}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    warm(paths)
    report = scan_artefact(root)
    assert report.verdict == "clean", report.inconclusive[:3]
    raw, ours = pair(lambda: [raw_hash(p) for p in paths], lambda: scan_artefact(root), REPEATS)
    size = sum(p.stat().st_size for p in paths)
    ratio = ours / raw
    return [
        row("(b) 2,000 files: hashlib read loop", len(paths) / raw, "files/s"),
        row("(b) 2,000 files: scan_artefact (hash + scan)", len(paths) / ours, "files/s"),
        row("(b) 2,000 files: hashlib read loop", size / raw / 1e9, "GB/s"),
        row("(b) 2,000 files: scan_artefact", size / ours / 1e9, "GB/s"),
        row("(b) scan / hash time (includes the walk)", ratio, "x", "<= 2", ratio <= 2),
    ]


def run(workdir: Path) -> list[dict]:
    return _one_large_pickle(workdir) + _many_files(workdir)
