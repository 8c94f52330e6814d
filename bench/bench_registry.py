"""``regbook verify`` and ``regbook register`` end to end on large registries (DESIGN
section 10), each run as a child process of the installed ``regbook`` script.

Registries of 1,000 and 10,000 versions come from ``bench/generate.py`` (cached under
bench/.out/ per size) and must verify clean before anything is timed:

(a) ``regbook --workspace DIR verify --no-artefacts``: wall time, best of 3, target
    <= 0.5 s at 1,000 versions and <= 2 s at 10,000; peak RSS (worst of the runs)
    <= 300 MB. CPU time / wall time shows how much of the two cores it used.
(b) ``regbook --workspace DIR register model-00 --artefact 1KiB-file ...`` into a copy
    of each registry: best of 3 (each run registers one more version), target <= 1 s
    at 1,000 versions; 10,000 is reported. The copy must still verify clean after.

Each timed run waits (at most 30 s) for the machine to be idle first, since other
work on a shared 2-core machine skews two-thread commands most; the median is shown
beside the best.

    python bench/run.py registry
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import cached, clean_env, clone, regbook_command, verify_clean  # noqa: E402
from measure import best_of, row, run_child  # noqa: E402

SIZES = (1_000, 10_000)
VERIFY_TARGET = {1_000: 0.5, 10_000: 2.0}
REGISTER_TARGET = {1_000: 1.0}
HISTORY_TARGET = 3.0  # 10,000 versions, about four events each (the governance issue)
RSS_TARGET_MB = 300.0
REPEATS = 3


def _verify(n: int, history: bool = False) -> list[dict]:
    made = cached(n, history=history)
    argv = [*regbook_command(), "--workspace", str(made.root), "verify", "--no-artefacts"]
    env = clean_env()
    # Untimed first run: it must be clean, and it warms the page cache and bytecode.
    run_child(argv, env=env).check(f"verify of the generated {n:,}-version registry")
    best, samples = best_of(REPEATS, lambda _i: argv, "regbook verify --no-artefacts", env=env)
    rss = max(s.peak_rss_mb or 0.0 for s in samples)
    target = HISTORY_TARGET if history else VERIFY_TARGET[n]
    label = f"verify --no-artefacts, {n:,} versions" + (
        " with full history (4 events each)" if history else ""
    )
    return [
        row(f"(a) {label}: wall, best of {REPEATS}", best.seconds, "s", f"<= {target:g}",
            best.seconds <= target),
        row(f"(a) {label}: wall, median", statistics.median(s.seconds for s in samples), "s"),
        # The core issue's memory target is for 1,000 and 10,000 versions; the
        # governance issue sets none for the full history, so it is reported only.
        row(f"(a) {label}: peak RSS", rss, "MB")
        if history
        else row(f"(a) {label}: peak RSS", rss, "MB", f"<= {RSS_TARGET_MB:g}",
                 rss <= RSS_TARGET_MB),
        row(f"(a) {label}: CPU / wall (2 cores max)", (best.cpu_seconds or 0) / best.seconds,
            "x"),
    ]  # fmt: skip


def _register(n: int, workdir: Path) -> list[dict]:
    made = clone(cached(n), workdir / f"register-{n}")
    artefact = workdir / "artefact.bin"
    artefact.write_bytes(os.urandom(1024))
    env = clean_env()

    def argv(i: int) -> list[str]:
        return [
            *regbook_command(), "--workspace", str(made.root), "register", made.models[0],
            "--artefact", str(artefact),
            "--data-version", "3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a",
            "--code-commit", "c0ffee1234567890abcdef1234567890abcdef12",
            "--pipeline-run", f"bench-run-{i}",
            "--metric", "auc_roc=0.83", "--metric", "demographic_parity_ratio=0.91",
            "--param", "lr=0.1", "--key", str(made.key),
        ]  # fmt: skip

    best, samples = best_of(REPEATS, argv, "regbook register", env=env)
    verify_clean(made.root, artefacts=False)  # what register wrote is still a clean registry
    rss = max(s.peak_rss_mb or 0.0 for s in samples)
    target = REGISTER_TARGET.get(n)
    label = f"register into {n:,} versions"
    return [
        row(f"(b) {label}: wall, best of {REPEATS}", best.seconds, "s",
            f"<= {target:g}" if target else "", best.seconds <= target if target else None),
        row(f"(b) {label}: wall, median", statistics.median(s.seconds for s in samples), "s"),
        row(f"(b) {label}: peak RSS", rss, "MB"),
    ]  # fmt: skip


def run(workdir: Path) -> list[dict]:
    rows: list[dict] = []
    for n in SIZES:
        rows += _verify(n)
    rows += _verify(10_000, history=True)
    for n in SIZES:
        rows += _register(n, workdir)
    return rows
