"""Time the same commands on two builds of regbook side by side: this checkout (its
working tree, uncommitted changes included) and another git revision, checked out into
a temporary git worktree that is removed at the end.

    python bench/compare.py REV                        # every case, 3 rounds
    python bench/compare.py REV verify-10k pack -n 5   # some cases, 5 rounds
    python bench/compare.py REV --new REV2             # two revisions
    python bench/compare.py --list                     # the cases

Each build runs from its own ``toolkit/`` folder (``PYTHONPATH`` set to it; nothing is
installed), through its console-script entry point (``regbook.cli:main``, read from the
build's setup.cfg or pyproject.toml) with this interpreter and the dependencies
installed for it, from cached bytecode (each build's package is compiled first). The
registries come from bench/generate.py run with this checkout's library, cached under
bench/.out/, and are shared by both builds: the workbook format must be the same
across the builds compared (each build's first, untimed run must exit 0). Commands that
write (``register``) work on a copy per build.

In each case every command of both builds runs once untimed, then ``--repeats`` rounds
in which each runs once, in alternating order (old, new, then new, old, ...), each run
once the machine is quiet (at most ``--quiet-wait`` seconds). A case's rows: each
build's best, median and peak RSS, and new / old as the ratio of the bests and as the
median of the rounds' own ratios. Printed as bench/run.py prints, and written to
bench/.out/compare.json.

Time: every case at the default 3 rounds is 48 timed runs and 14 untimed ones, about 4
minutes of commands on a quiet 2-core machine, plus the wait before each timed run (up
to 30 s each on a busy machine: ``--quiet-wait 0`` does not wait); building the
registries the first time takes about 5 minutes more. ``-n 1 --quiet-wait 0`` gives a
quick look.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from generate import cached, clean_env, clone  # noqa: E402
from measure import (  # noqa: E402
    Command,
    Sample,
    alternate,
    best_and_median,
    format_row,
    paired_ratio,
    row,
    run_child,
)

PACK_RATIO_TARGET = 2.5  # report pack / verify --no-artefacts (the reports issue)


@dataclass(frozen=True)
class Build:
    label: str  # "old" or "new"
    name: str  # what it is, for people: a commit and its subject, or "working tree"
    commit: str
    toolkit: Path
    entry: tuple[str, str]  # module, function

    def argv(self, *args: str) -> list[str]:
        module, function = self.entry
        code = (f"import sys; from {module} import {function} as main; "
                "sys.argv[0] = 'regbook'; sys.exit(main())")  # fmt: skip
        return [sys.executable, "-c", code, *args]

    def env(self) -> dict[str, str]:
        env = clean_env()
        env["PYTHONPATH"] = str(self.toolkit)
        return env


@dataclass(frozen=True)
class Measured:
    """One command line, run on both builds: ``args(build, i)`` gives its i-th arguments."""

    label: str
    args: Callable[[Build, int], list[str]]


@dataclass(frozen=True)
class Case:
    description: str
    prepare: Callable[[list[Build], Path], list[Measured]]
    # Two Measured labels and a name: each build's ratio of the first to the second.
    ratio: tuple[str, str, str] | None = None


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _entry_point(checkout: Path) -> tuple[str, str]:
    """The ``regbook`` console script's module and function in a checkout."""
    spec = ""
    try:
        with (checkout / "pyproject.toml").open("rb") as handle:
            spec = tomllib.load(handle).get("project", {}).get("scripts", {}).get("regbook", "")
    except (OSError, tomllib.TOMLDecodeError):
        pass
    if not spec:
        parser = configparser.ConfigParser()
        parser.read(checkout / "setup.cfg", encoding="utf-8")
        lines = parser.get("options.entry_points", "console_scripts", fallback="")
        for line in lines.splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "regbook":
                spec = value.strip()
    module, _, function = (spec or "regbook.cli:main").partition(":")
    return module.strip(), function.strip() or "main"


def _build(label: str, checkout: Path, commit: str, name: str) -> Build:
    toolkit = checkout / "toolkit"
    if not (toolkit / "regbook" / "__init__.py").is_file():
        raise SystemExit(f"{name}: no toolkit/regbook package")
    # As pip compiles an installed package: no timed run pays for compiling it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(toolkit / "regbook")],
                   env=clean_env(), check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return Build(label, name, commit, toolkit, _entry_point(checkout))


def _describe(commit: str) -> str:
    text = _git("log", "-1", "--format=%h %s", commit)
    return text if len(text) <= 64 else text[:61] + "..."


# --- the cases --------------------------------------------------------------------------


def _startup(builds: list[Build], workdir: Path) -> list[Measured]:
    return [Measured("regbook --help", lambda b, _i: b.argv("--help"))]


def _verify(n: int, history: bool = False) -> Callable[[list[Build], Path], list[Measured]]:
    def prepare(builds: list[Build], workdir: Path) -> list[Measured]:
        root = str(cached(n, history=history).root)
        return [
            Measured(
                "verify --no-artefacts",
                lambda b, _i: b.argv("--workspace", root, "verify", "--no-artefacts"),
            )
        ]

    return prepare


def _register(n: int) -> Callable[[list[Build], Path], list[Measured]]:
    def prepare(builds: list[Build], workdir: Path) -> list[Measured]:
        made = cached(n)
        copies = {b.label: clone(made, workdir / f"register-{n}-{b.label}") for b in builds}
        artefact = workdir / "artefact.bin"
        artefact.write_bytes(os.urandom(1024))

        def args(build: Build, i: int) -> list[str]:
            copy = copies[build.label]
            return build.argv(
                "--workspace", str(copy.root), "register", copy.models[0],
                "--artefact", str(artefact),
                "--data-version", "3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a",
                "--code-commit", "c0ffee1234567890abcdef1234567890abcdef12",
                "--pipeline-run", f"bench-run-{i}",
                "--metric", "auc_roc=0.83", "--metric", "demographic_parity_ratio=0.91",
                "--param", "lr=0.1", "--key", str(copy.key),
            )  # fmt: skip

        return [Measured("register", args)]

    return prepare


def _pack(builds: list[Build], workdir: Path) -> list[Measured]:
    made = cached(1_000, history=True)
    root, target = str(made.root), f"{made.models[0]}@1"
    return [
        Measured(
            "report pack",
            lambda b, _i: b.argv(
                "--workspace", root, "report", "pack", target, "-o", str(workdir / f"{b.label}.zip")
            ),
        ),
        Measured(
            "verify --no-artefacts",
            lambda b, _i: b.argv("--workspace", root, "verify", "--no-artefacts"),
        ),
    ]


CASES: dict[str, Case] = {
    "startup": Case("regbook --help", _startup),
    "verify-1k": Case("verify --no-artefacts, 1,000 versions", _verify(1_000)),
    "verify-10k": Case("verify --no-artefacts, 10,000 versions", _verify(10_000)),
    "verify-10k-history": Case(
        "verify --no-artefacts, 10,000 versions with full history (40,000 events)",
        _verify(10_000, history=True),
    ),
    "register-1k": Case("register into 1,000 versions (a copy per build)", _register(1_000)),
    "register-10k": Case("register into 10,000 versions (a copy per build)", _register(10_000)),
    "pack": Case(
        "report pack MODEL@1 and verify --no-artefacts, 1,000 versions with full history "
        "(4,000 events)",
        _pack,
        ratio=("report pack", "verify --no-artefacts", "pack / verify"),
    ),
}


def _rows(
    case: Case, measured: list[Measured], samples: dict[tuple[str, str], list[Sample]], n: int
) -> list[dict]:
    rows = []
    for m in measured:
        old, new = samples[(m.label, "old")], samples[(m.label, "new")]
        for label, got in (("old", old), ("new", new)):
            best, median = best_and_median(got)
            rows.append(row(f"{m.label}, {label}: best of {n}", best, "s"))
            rows.append(row(f"{m.label}, {label}: median", median, "s"))
            rows.append(row(f"{m.label}, {label}: peak RSS",
                            max(s.peak_rss_mb or 0.0 for s in got), "MB"))  # fmt: skip
        rows.append(row(f"{m.label}, new / old: best / best",
                        best_and_median(new)[0] / best_and_median(old)[0], "x"))  # fmt: skip
        rows.append(row(f"{m.label}, new / old: median of the rounds", paired_ratio(new, old),
                        "x"))  # fmt: skip
    if case.ratio:
        top, bottom, what = case.ratio
        for label in ("old", "new"):
            a, b = samples[(top, label)], samples[(bottom, label)]
            ratio = best_and_median(a)[0] / best_and_median(b)[0]
            name = f"{label}: {what}"
            rows.append(row(f"{name}, best / best", ratio, "x",
                            f"<= {PACK_RATIO_TARGET:g}", ratio <= PACK_RATIO_TARGET))  # fmt: skip
            rows.append(row(f"{name}, median of the rounds", paired_ratio(a, b), "x"))
    return rows


def _run_case(
    name: str, builds: list[Build], workdir: Path, repeats: int, quiet_wait: float
) -> list[dict]:
    case = CASES[name]
    folder = workdir / name
    folder.mkdir()
    measured = case.prepare(builds, folder)
    commands, keys = [], []
    for m in measured:
        for b in builds:
            what = f"{b.label} build: regbook {m.label}"
            commands.append(Command(what, lambda i, m=m, b=b: m.args(b, i), b.env(), folder))
            keys.append((m.label, b.label))
    got = alternate(repeats, commands, quiet_wait=quiet_wait)
    if name.startswith("register"):  # what each build wrote is still a clean registry
        for b in builds:
            copy = next(folder.glob(f"register-*-{b.label}"))
            argv = b.argv("--workspace", str(copy), "verify", "--no-artefacts")
            run_child(argv, env=b.env()).check(f"{b.label} build: verify after register")
    return _rows(case, measured, dict(zip(keys, got, strict=True)), repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/compare.py",
        description="Time the same regbook commands on this checkout and on another git "
        "revision, alternately, on the same generated registries.",
    )
    parser.add_argument("rev", nargs="?", help="the other build: a git revision (the old one)")
    parser.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: all)")
    parser.add_argument("-n", "--repeats", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--new",
        metavar="REV",
        help="compare against this revision instead of this checkout's working tree",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="wait at most this long for an idle machine before each run (default 30; 0: "
        "never wait)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, case in CASES.items():
            print(f"{name:<20} {case.description}")
        return 0
    if not args.rev:
        parser.error("give the git revision to compare with (or --list)")
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(CASES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    names = args.cases or list(CASES)

    # The registries are generated, and checked with a full verify, by this checkout's
    # library, whatever is installed in the interpreter.
    os.environ["PYTHONPATH"] = str(ROOT / "toolkit")
    sys.path.insert(0, str(ROOT / "toolkit"))
    from run import machine

    old_commit = _git("rev-parse", "--verify", f"{args.rev}^{{commit}}")
    new_commit = _git("rev-parse", "--verify", f"{args.new or 'HEAD'}^{{commit}}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="regbook-compare-") as tmp:
        tmp_path = Path(tmp)
        trees: list[Path] = []
        try:
            builds = []
            for label, commit, rev in (
                ("old", old_commit, args.rev),
                ("new", new_commit, args.new),
            ):
                if label == "new" and not args.new:
                    changed = _git("status", "--porcelain", "--", "toolkit")
                    dirty = " + uncommitted changes to toolkit/" if changed else ""
                    name = f"working tree at {_describe(commit)}{dirty}"
                    builds.append(_build(label, ROOT, commit, name))
                    continue
                tree = tmp_path / f"build-{label}"
                _git("worktree", "add", "--detach", "--quiet", str(tree), commit)
                trees.append(tree)
                builds.append(_build(label, tree, commit, f"{rev or commit}: {_describe(commit)}"))
            print(f"machine: {machine()}")
            for b in builds:
                print(f"{b.label}: {b.name}")
            for name in names:
                started = time.perf_counter()
                print(f"{name}: {CASES[name].description}, {args.repeats} round(s)", flush=True)
                for r in _run_case(name, builds, tmp_path, args.repeats, args.quiet_wait):
                    rows.append({"bench": name, **r})
                    print(format_row(r), flush=True)
                print(f"[{name}: {time.perf_counter() - started:.1f} s]", flush=True)
        finally:
            for tree in trees:
                done = subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                       str(tree)], capture_output=True, text=True)  # fmt: skip
                if done.returncode != 0:
                    print(f"could not remove the worktree {tree.name} ({done.stderr.strip()}); "
                          "`git worktree prune` forgets it", file=sys.stderr)  # fmt: skip
    out = HERE / ".out"
    out.mkdir(exist_ok=True)
    result = {
        "machine": machine(),
        "repeats": args.repeats,
        "builds": {b.label: {"commit": b.commit, "name": b.name} for b in builds},
        "rows": rows,
    }
    (out / "compare.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
