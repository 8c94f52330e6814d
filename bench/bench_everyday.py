"""What a deploy script and git pay for the everyday commands, on the largest registry
the benchmarks build (10,000 versions with their history: about 40,000 signed events).

(a) ``regbook resolve MODEL@Staging``: it answers from the verified ledger, so it costs
    about what ``verify --no-artefacts`` of the ledger does; best of 3, reported.
(b) ``regbook log --textconv registry.xlsx``: what git runs for each side of a diff of
    the workbook (the ledger read and printed, nothing checked); best of 3, reported,
    with the size of the text it prints.

    python bench/run.py everyday
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import cached, clean_env, regbook_command  # noqa: E402
from measure import best_of, row, run_child  # noqa: E402

SIZE = 10_000
REPEATS = 3


def run(workdir: Path) -> list[dict]:
    made = cached(SIZE, history=True)
    env = clean_env()
    resolve = [*regbook_command(), "--workspace", str(made.root), "resolve",
               f"{made.models[0]}@Staging"]  # fmt: skip
    textconv = [*regbook_command(), "log", "--textconv", str(made.root / "registry.xlsx")]
    first = run_child(resolve, env=env)
    first.check("resolve on the generated registry")
    text = run_child(textconv, env=env).check("log --textconv on the generated registry")
    resolved, _ = best_of(REPEATS, lambda _i: resolve, "regbook resolve", env=env)
    converted, _ = best_of(REPEATS, lambda _i: textconv, "regbook log --textconv", env=env)
    label = f"{SIZE:,} versions with history"
    printed = len(text.stdout.encode("utf-8")) / 2**20
    return [
        row(f"(a) resolve MODEL@Staging, {label}: wall, best of {REPEATS}",
            resolved.seconds, "s"),
        row(f"(b) log --textconv, {label}: wall, best of {REPEATS}", converted.seconds, "s"),
        row(f"(b) log --textconv, {label}: text printed", printed, "MiB"),
    ]  # fmt: skip
