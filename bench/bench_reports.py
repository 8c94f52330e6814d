"""What the reports cost, spawn to exit (start-up, the verify each one runs, rendering).

On the demo's workspace (``regbook demo``: two models, one version archived, one
Production history) and on a generated registry of 1,000 versions, best of 3:

(a) ``report evidence`` as HTML and as PDF (fonts loaded and subset in-process);
(b) ``report card`` (Markdown);
(c) ``report registry`` (HTML; the whole registry verified first);
(d) ``report pack`` (both evidence formats, card, provenance, signature export, copies).

No issue sets a target for these; they are reported so a slow report is noticed.

    python bench/run.py reports
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import cached, clean_env, regbook_command  # noqa: E402
from measure import best_of, row, run_child  # noqa: E402

REPEATS = 3


def _cases(root: Path, target: str, out: Path) -> list[tuple[str, list[str]]]:
    return [
        ("(a) report evidence, HTML", ["evidence", target, "-o", str(out / "e.html")]),
        ("(a) report evidence, PDF", ["evidence", target, "-o", str(out / "e.pdf")]),
        ("(b) report card, Markdown", ["card", target, "-o", str(out / "c.md")]),
        ("(c) report registry, HTML", ["registry", "--no-artefacts", "-o", str(out / "r.html")]),
        ("(d) report pack", ["pack", target, "-o", str(out / "p.zip")]),
    ]


def _measure(label: str, root: Path, target: str, out: Path) -> list[dict]:
    env = clean_env()
    rows = []
    for name, args in _cases(root, target, out):
        argv = [*regbook_command(), "--workspace", str(root), "report", *args]
        run_child(argv, env=env).check(name)  # warm caches, and it must exit 0
        best, samples = best_of(REPEATS, lambda _i, a=argv: a, name, env=env)
        median = sorted(s.seconds for s in samples)[len(samples) // 2]
        rows.append(row(f"{name}, {label}: best of {REPEATS}", best.seconds, "s"))
        rows.append(row(f"{name}, {label}: median", median, "s"))
        rows.append(row(f"{name}, {label}: peak RSS", best.peak_rss_mb or 0.0, "MB"))
    return rows


def run(workdir: Path) -> list[dict]:
    demo = workdir / "demo"
    run_child([*regbook_command(), "demo", str(demo)], env=clean_env()).check("regbook demo")
    out = workdir / "out"
    out.mkdir()
    rows = _measure("demo workspace", demo / "registry", "credit-risk@1", out)
    made = cached(1_000)
    rows += _measure("1,000 versions", made.root, f"{made.models[0]}@1", out)
    return rows
