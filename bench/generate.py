"""Build a registry workspace of N sealed versions without running ``regbook register``
N times: the benchmarks' fixture.

The workspace is what N registrations would leave, built by the tests' fixture factory
(tests/factory.py) from the library's public pieces: ``init_workspace``, an SME key from
``add_new_key``, N small read-only artefacts under ``models/NAME/VERSION/``, N
``register`` events signed with ``ledger.events.new_event`` over the payloads
docs/formats.md spells out, and the Ledger, Models, Metrics and derived sheets written
with the same row builders restore uses (registry/views.py), saved once through
``WorkbookWriter``. Versions are spread round-robin over a few models.

    python bench/generate.py 1000 reg-1k      # then: regbook -w reg-1k verify

The SME key is written inside the workspace, at ``.bench/sme`` (a benchmark fixture,
not a pattern to copy). Benchmarks call :func:`cached`, which keeps one workspace per
N under ``bench/.out/`` and rebuilds it when this file, the factory or the library
changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / ".out"
TESTS = HERE.parent / "tests"
sys.path.insert(0, str(TESTS))  # for the fixture factory

PRINCIPAL = "alice@example.com"
KEY_RELPATH = Path(".bench") / "sme"
ARTEFACT_NAME = "model.bin"
DEFAULT_MODELS = 20
START = datetime(2025, 1, 1, tzinfo=UTC)
# Parts of the package that cannot change what a generated workbook looks like; a change
# anywhere else rebuilds the cached registries. By folder, not by module, so that moving
# modules between subpackages still rebuilds them.
_NOT_IN_CACHE_KEY = ("reports", "lineage", "check", "cli", "demo.py", "__main__.py")


@dataclass(frozen=True)
class Generated:
    root: Path  # the workspace
    key: Path  # the SME's private key
    principal: str
    versions: int
    models: tuple[str, ...]


def model_names(count: int) -> tuple[str, ...]:
    return tuple(f"model-{i:02}" for i in range(count))


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _versions(n: int, names: tuple[str, ...], rng: random.Random) -> Iterator[Any]:
    """The i-th of N versions: random artefact bytes, params and metrics from ``rng``."""
    from factory import Version
    from regbook.workflow.lifecycle import Metric

    for i in range(n):
        at = START + timedelta(minutes=i)
        artefact = rng.randbytes(rng.randint(256, 1024))
        yield Version(
            model=names[i % len(names)],
            artefact=artefact,
            name=ARTEFACT_NAME,
            data_version=_hex(f"data-{i}", 32),  # a DVC md5
            code_commit=_hex(f"code-{i}", 40),  # a git commit
            pipeline_run=f"run-{100000 + i}",
            data_repo="https://git.example.com/data/credit.git",
            code_repo="https://git.example.com/ml/credit-model.git",
            trained_on=(at.date() - timedelta(days=1)).isoformat(),
            params={"depth": str(rng.randint(3, 9)), "lr": f"{rng.choice((0.01, 0.05, 0.1))}"},
            metrics=(
                Metric.make("auc_roc", round(rng.uniform(0.70, 0.95), 4), None, "", "gen"),
                Metric.make(
                    "demographic_parity_ratio", round(rng.uniform(0.75, 1.0), 4), None, "", "gen"
                ),
                Metric.make("security_high_findings", rng.choice((0, 0, 0, 1)), None, "", "gen"),
            ),
        )


def generate(
    n: int, root: Path, models: int = DEFAULT_MODELS, seed: int = 20240611, history: bool = False
) -> Generated:
    """Create the workspace ``root`` (which must not exist yet) with ``n`` sealed versions.
    With ``history`` each version also gets a signed approval to Staging, the promotion
    and a gate result: four events per version, as the governance workflow writes them."""
    # The factory imports regbook: only now, so that importing this module (compare.py
    # does, before it puts its checkout's toolkit/ on the path) imports no library.
    from factory import register_bulk, workspace

    if n < 0:
        raise ValueError("n must be >= 0")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists and is not empty")
    keys = {"sme": PRINCIPAL, **({"ci": "ci@bench.example"} if history else {})}
    made = workspace(root, keys, key_dir=root / KEY_RELPATH.parent)
    names = model_names(max(1, min(models, n or 1)))
    register_bulk(made, _versions(n, names, random.Random(seed)), START, staged=history)
    return Generated(root, made.keys["sme"], PRINCIPAL, n, names)


# --- running regbook and the cache ------------------------------------------------------


def regbook_command() -> list[str]:
    """The ``regbook`` console script of the interpreter running this file."""
    script = Path(sys.executable).with_name("regbook")
    if script.exists():
        return [str(script)]
    found = shutil.which("regbook")
    if found:
        return [found]
    return [sys.executable, "-m", "regbook"]


def verify_clean(root: Path, artefacts: bool = True) -> subprocess.CompletedProcess:
    """Run ``regbook verify`` on ``root``; raise unless it exits 0."""
    argv = [*regbook_command(), "--workspace", str(root), "verify"]
    if not artefacts:
        argv.append("--no-artefacts")
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env())
    if done.returncode != 0:
        raise RuntimeError(
            f"regbook verify exited {done.returncode} on {root}:\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("REGBOOK_KEY", "REGBOOK_WORKSPACE", "REGBOOK_KEY_PASSPHRASE"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    # Children run from cached bytecode, as an installed regbook does (pip compiles it at
    # install; an editable install writes it on first import). A shell that sets
    # PYTHONDONTWRITEBYTECODE would have every timed run compile the package again
    # (about 0.1 s of each start-up, measured here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _cache_key(n: int, models: int, history: bool = False) -> str:
    """What the workspace is built from: this file, the factory, the library (but
    ``_NOT_IN_CACHE_KEY``) and the arguments."""
    import regbook

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update((TESTS / "factory.py").read_bytes())
    package = Path(regbook.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if name.split("/", 1)[0] not in _NOT_IN_CACHE_KEY:
            digest.update(name.encode() + b"\0" + path.read_bytes())
    digest.update(f"{n}/{models}/{history}/{regbook.__version__}".encode())
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if not path.exists():
        return

    def writable(func, target, _exc):  # read-only artefacts, where that matters
        os.chmod(target, stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        func(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=writable)
    else:
        shutil.rmtree(path, onerror=writable)


def cached(n: int, models: int = DEFAULT_MODELS, log=print, history: bool = False) -> Generated:
    """The workspace of ``n`` versions under bench/.out/, built (and verified) if missing
    or stale. Callers that write to it must work on a :func:`clone`."""
    name = f"registry-{n}" + ("-history" if history else "")
    root = OUT / name
    stamp = OUT / f"{name}.json"
    key = _cache_key(n, models, history)
    try:
        meta = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    if meta.get("key") == key and (root / "regbook.toml").exists():
        return Generated(root, root / KEY_RELPATH, PRINCIPAL, n, tuple(meta["models"]))
    _remove(root)
    stamp.unlink(missing_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    made = generate(n, root, models, history=history)
    built = time.perf_counter() - started
    verify_clean(root, artefacts=True)
    log(f"  (generated {n:,} versions in {built:.1f} s under bench/.out/{root.name}; verify ok)")
    stamp.write_text(
        json.dumps({"key": key, "versions": n, "models": list(made.models), "seconds": built}),
        encoding="utf-8",
    )
    return made


def clone(made: Generated, target: Path) -> Generated:
    """A private copy to write into: artefacts are hard-linked (they are read-only), the
    rest copied."""
    target = Path(target)

    def link_or_copy(src: str, dst: str) -> object:
        if Path(src).parts[-1] == ARTEFACT_NAME:
            try:
                os.link(src, dst)
                return dst
            except OSError:
                pass
        return shutil.copy2(src, dst)

    shutil.copytree(made.root, target, copy_function=link_or_copy, symlinks=True)
    return Generated(target, target / KEY_RELPATH, made.principal, made.versions, made.models)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/generate.py",
        description="Build a registry workspace with N sealed versions (a benchmark fixture).",
    )
    parser.add_argument("n", type=int, help="number of versions")
    parser.add_argument("directory", type=Path, help="workspace to create (must not exist)")
    parser.add_argument("--models", type=int, default=DEFAULT_MODELS, help="models to spread over")
    parser.add_argument("--no-verify", action="store_true", help="skip the final regbook verify")
    parser.add_argument(
        "--history",
        action="store_true",
        help="also approve, promote and gate every version (4 events each)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    made = generate(args.n, args.directory, args.models, history=args.history)
    print(f"generated {args.n:,} versions of {len(made.models)} models in {made.root} "
          f"({time.perf_counter() - started:.1f} s); SME key {made.key}")  # fmt: skip
    if not args.no_verify:
        print(verify_clean(made.root).stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
