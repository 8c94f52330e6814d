"""``report pack`` beside ``verify --no-artefacts`` on the same registry: the reports
issue asks that an evidence pack cost at most 2.5 times a verify.

On a generated registry of 1,000 versions with full history (4,000 events, as
``bench/generate.py 1000 DIR --history`` builds it), after one untimed run of each,
5 rounds of ``regbook report pack model-00@1 -o FILE.zip`` and ``regbook verify
--no-artefacts``, alternating (pack then verify, verify then pack, ...), each run once
the machine is quiet (at most 30 s):

(a) ``report pack``: wall, best and median of 5; peak RSS (worst of the runs);
(b) ``verify --no-artefacts``: the same;
(c) pack / verify: best against best, target <= 2.5; the median of the 5 rounds' own
    ratios (the two runs of a round shared the machine's load of the moment); and the
    least CPU time (user + system) of each, which other work on the machine moves less.

The pack verifies its version in full (artefacts hashed) and writes the evidence
report as HTML and PDF, the model card, the provenance statement and every ledger
event's signature; verify --no-artefacts is the registry's own check.

    python bench/run.py pack
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import cached, clean_env, regbook_command  # noqa: E402
from measure import Command, alternate, best_and_median, paired_ratio, row  # noqa: E402

VERSIONS = 1_000
REPEATS = 5
RATIO_TARGET = 2.5


def run(workdir: Path) -> list[dict]:
    made = cached(VERSIONS, history=True)
    target = f"{made.models[0]}@1"
    base = [*regbook_command(), "--workspace", str(made.root)]
    env = clean_env()
    output = workdir / f"{made.models[0]}-1-evidence.zip"
    pack = Command("regbook report pack", lambda _i: [*base, "report", "pack", target,
                   "-o", str(output)], env, workdir)  # fmt: skip
    verify = Command("regbook verify --no-artefacts",
                     lambda _i: [*base, "verify", "--no-artefacts"], env, workdir)  # fmt: skip
    packs, verifies = alternate(REPEATS, [pack, verify])
    pack_best, pack_median = best_and_median(packs)
    verify_best, verify_median = best_and_median(verifies)
    ratio = pack_best / verify_best
    where = f"{VERSIONS:,} versions with history"
    rows = [
        row(f"(a) report pack, {where}: best of {REPEATS}", pack_best, "s"),
        row(f"(a) report pack, {where}: median", pack_median, "s"),
        row(f"(a) report pack, {where}: peak RSS",
            max(s.peak_rss_mb or 0.0 for s in packs), "MB"),
        row(f"(b) verify --no-artefacts, same registry: best of {REPEATS}", verify_best, "s"),
        row("(b) verify --no-artefacts, same registry: median", verify_median, "s"),
        row("(b) verify --no-artefacts, same registry: peak RSS",
            max(s.peak_rss_mb or 0.0 for s in verifies), "MB"),
        row("(c) pack / verify: best / best", ratio, "x", f"<= {RATIO_TARGET:g}",
            ratio <= RATIO_TARGET),
        row(f"(c) pack / verify: median of the {REPEATS} rounds' ratios",
            paired_ratio(packs, verifies), "x"),
    ]  # fmt: skip
    if all(s.cpu_seconds is not None for s in (*packs, *verifies)):  # not on Windows
        least = [min(s.cpu_seconds or 0.0 for s in got) for got in (packs, verifies)]
        rows.append(row("(c) pack / verify: CPU time, least / least", least[0] / least[1], "x"))
    return rows
