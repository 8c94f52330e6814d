"""What the display-forgery check costs (issue 14, item 1): ``regbook verify
--no-artefacts`` on the 10,000-version registry, this checkout side by side with the
build before the check, run alternately (old, new, then new, old, ...).

Target: the new build's wall time at most 1.15 times the old one's (the median over
rounds of the two timed back to back). The check alone (reading every format of the
six sheets regbook writes and holding them against the template) is timed in-process
too, so its share can be read beside the whole.

The build before is the parent of the commit that added
``toolkit/regbook/workbook/presentation.py`` (or ``REGBOOK_BENCH_BASELINE``, any git
revision), checked out into a temporary git worktree and run from its ``toolkit/``.

    python bench/run.py display
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import ROOT, Build, _build, _describe, _git  # noqa: E402
from generate import cached, clone  # noqa: E402
from measure import Command, alternate, paired_ratio, row  # noqa: E402

ROUNDS = 5
TARGET_RATIO = 1.15
PRESENTATION = "toolkit/regbook/workbook/presentation.py"


def baseline() -> str:
    """The commit to compare with: the one before the presentation check."""
    chosen = os.environ.get("REGBOOK_BENCH_BASELINE")
    if chosen:
        return _git("rev-parse", "--verify", f"{chosen}^{{commit}}")
    added = _git("log", "--diff-filter=A", "--format=%H", "--", PRESENTATION).split()
    if not added:
        raise SystemExit(f"no commit adds {PRESENTATION}: set REGBOOK_BENCH_BASELINE")
    return _git("rev-parse", "--verify", f"{added[-1]}^")


# Settings regbook.toml has gained since the build before the check, which that build
# refuses as unknown: the scan's signer role (the defaults, as the generator writes them).
_NEWER_SETTINGS = re.compile(r"^scan\s*=.*\n", re.MULTILINE)


def for_older_build(root: Path) -> Path:
    """The workspace ``root`` (a copy), its regbook.toml without the settings the build
    before the check does not know. The workbook is the same file's bytes."""
    config = root / "regbook.toml"
    config.write_text(_NEWER_SETTINGS.sub("", config.read_text(encoding="utf-8")), "utf-8")
    return root


def check_alone(root: Path, repeats: int = 3) -> tuple[float, float]:
    """Best wall and CPU seconds of the check alone, in this process."""
    from regbook.core.workspace import Workspace
    from regbook.ledger.events import read_events
    from regbook.ledger.state import Registry
    from regbook.registry.display import (
        DISPLAY_SHEET_NAMES,
        accepted_formats,
        display_findings,
    )
    from regbook.workbook.presentation import read_presentation
    from regbook.workbook.read import read_workbook

    path = Workspace.load(root).workbook_path
    data = read_workbook(path)
    events, _bad = read_events(data["Ledger"])
    registry, _found = Registry.replay(events)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        found = display_findings(
            read_presentation(path, DISPLAY_SHEET_NAMES, accepted=accepted_formats), data, registry
        )
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert not [f for f in found if f.is_problem], found[:3]
    return min(walls), min(cpus)


def run(workdir: Path) -> list[dict]:
    made = cached(10_000)
    old_commit = baseline()
    tree = workdir / "build-old"
    _git("worktree", "add", "--detach", "--quiet", str(tree), old_commit)
    try:
        builds: list[Build] = [
            _build("old", tree, old_commit, _describe(old_commit)),
            _build("new", ROOT, _git("rev-parse", "HEAD"), "this checkout"),
        ]
        roots = {"old": for_older_build(clone(made, workdir / "old-ws").root), "new": made.root}
        old, new = alternate(
            ROUNDS,
            [Command(f"{b.label} build: verify --no-artefacts",
                     lambda _i, b=b: b.argv("--workspace", str(roots[b.label]), "verify",
                                            "--no-artefacts"), b.env()) for b in builds],
            quiet_wait=10.0,
        )  # fmt: skip
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)  # fmt: skip
    ratio = paired_ratio(new, old)
    wall, cpu = check_alone(made.root)
    label = "verify --no-artefacts, 10,000 versions"
    return [
        row(f"{label}, before the check ({old_commit[:10]}): best of {ROUNDS}",
            min(s.seconds for s in old), "s"),
        row(f"{label}, before the check: median", statistics.median(s.seconds for s in old), "s"),
        row(f"{label}, with the check: best of {ROUNDS}", min(s.seconds for s in new), "s"),
        row(f"{label}, with the check: median", statistics.median(s.seconds for s in new), "s"),
        row("with / before, median of paired rounds", ratio, "x", f"<= {TARGET_RATIO:g}",
            ratio <= TARGET_RATIO),
        row("with / before, best / best", min(s.seconds for s in new)
            / min(s.seconds for s in old), "x"),
        row("the check alone, in-process: wall, best of 3", wall, "s"),
        row("the check alone, in-process: CPU, best of 3", cpu, "s"),
    ]  # fmt: skip
