"""Archive and fixity throughput beside raw hashlib on the same data, in the same run.

Two workspaces, one artefact each: (a) one 2 GiB file, (b) a folder of 2,000 files of
4-64 KiB. For each: the raw hashlib loop over the artefact, then ``archive`` (hash check,
bag build with its manifests, full validation, rename, ledger event, removal of the
original), then a full ``fixity`` (every payload and tag hash). Target: full fixity
>= 0.8 of raw hashlib. Data is read once before timing, so all runs use the page cache.

    python bench/run.py archive
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from factory import Version, register_all, workspace  # noqa: E402

GIB = 1 << 30
CHUNK = 1 << 20


def _write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, 16 * CHUNK)
            handle.write(os.urandom(n))
            left -= n


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _raw(paths: list[Path]) -> float:
    """Seconds for the plain read/update loop over every file: the yardstick."""
    started = time.perf_counter()
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return time.perf_counter() - started


def _measure(label: str, root: Path, make_artefact) -> list[dict]:  # noqa: ANN001
    from regbook.core.ids import ModelRef
    from regbook.workflow.archive import archive, fixity
    from regbook.workflow.governance import approve

    made = workspace(root / "ws", {"sme": "alice@example.com"})
    ws, key = made.ws, made.key("sme")
    stored = ws.models_dir / "bench" / "1" / "artefact"
    make_artefact(stored)
    paths = _files(stored)
    size = sum(p.stat().st_size for p in paths)
    _raw(paths)  # warm the page cache
    raw = min(_raw(paths) for _ in range(2))
    register_all(
        made, [Version("bench", (), storage="models/bench/1/artefact", pipeline_run="bench")]
    )
    ref = ModelRef("bench", 1)
    approve(ws, ref, "Archived", key)
    started = time.perf_counter()
    archive(ws, ref, key)
    archived = time.perf_counter() - started
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        report = fixity(ws)
        best = min(best, time.perf_counter() - started)
        assert report.ok, report.findings
    gb = size / 1e9
    ratio = raw / best
    return [
        {"name": f"({label}) raw hashlib over the artefact", "value": gb / raw, "unit": "GB/s"},
        {"name": f"({label}) archive (hash, bag, validate, move)", "value": gb / archived,
         "unit": "GB/s"},
        {"name": f"({label}) fixity, every hash", "value": gb / best, "unit": "GB/s"},
        {"name": f"({label}) fixity / raw hashlib", "value": ratio, "unit": "x",
         "target": ">= 0.8", "ok": ratio >= 0.8},
    ]  # fmt: skip


def run(workdir: Path) -> list[dict]:
    def big(path: Path) -> None:
        _write_random(path, 2 * GIB)

    def tree(path: Path) -> None:
        rng = random.Random(7)
        for i in range(2000):
            target = path / f"part-{i // 100:02d}" / f"shard-{i:04d}.bin"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rng.randbytes(rng.randint(4 << 10, 64 << 10)))

    rows = _measure("a: one 2 GiB file", workdir / "big", big)
    rows += _measure("b: 2,000 small files", workdir / "tree", tree)
    return rows
