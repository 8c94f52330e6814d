"""The witnessed path CI runs every time (the trust-anchors issue): ``regbook verify
--no-artefacts --witness FILE`` on the 10,000-version registry with its full history
(40,000 events), with a witness at seq 39,900 and the keyring unchanged, side by side
with the cold ``verify --no-artefacts`` of the same registry.

Targets: the witnessed verify <= 3 s, and <= 0.6 times the cold one (the median over
rounds of the two timed back to back). The cold figure is recorded too: the new checks
may add at most 10% to it (compare it with docs/performance.md's figure before them,
``python bench/compare.py REV witness``).

The witness is the one CI wrote when the ledger ended at seq 39,900: ``regbook witness``
run on the workbook as it stood then (the generated one without the rows the last 100
events added: regbook's writers append in place, so the rest is the same bytes). It
names that head, the digests of the signatures and of the workbook's parts up to it, the
keyring's and the policy's sha256, signed by the registry's ci key.

Writers too: ``register`` and ``promote`` into a clone of the same registry with a
witness CI left in the workspace (``regbook.witness``), into one without, and MLflow's
own one-shot ``create_model_version`` process into a 10,000-version SQLite store,
alternately. Target: with a witness, at most 0.5 times MLflow's one-shot create. And
the writers' floor beside it: what any writer into this workbook pays before it parses
a cell (start-up, the package inflated, hashed and its changed sheets deflated again).

    python bench/run.py witness
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mlflow import one_shot_command  # noqa: E402
from generate import (  # noqa: E402
    KEY_RELPATH,
    OUT,
    Generated,
    cached,
    clean_env,
    clone,
    regbook_command,
)
from measure import Command, alternate, paired_ratio, row, run_child  # noqa: E402

WITNESSED = 39_900
ROUNDS = 5
WRITER_ROUNDS = 3
TARGET_VS_MLFLOW = 0.5
TARGET_S = 3.0
TARGET_RATIO = 0.6


def as_it_was(made: Generated, target: Path, seq: int) -> Path:
    """The workspace as it stood when its ledger ended at ``seq``: a clone whose sheets
    lose the rows that the later events added. regbook's writers append rows in place,
    so this is, byte for byte, the workbook they then appended the rest to."""
    from regbook.core.schema import LEDGER, MODELS
    from regbook.ledger.events import read_events
    from regbook.ledger.state import Registry
    from regbook.registry.views import approvals_values, history_values
    from regbook.workbook.read import read_workbook

    root = clone(made, target).root
    workbook = root / "registry.xlsx"
    events, bad = read_events(read_workbook(workbook, sheets=(LEDGER,))[LEDGER.name])
    assert not bad and len(events) > seq, "the generated ledger is shorter than expected"
    then = Registry.replay(events[:seq])[0]
    # Every event after ``seq`` belongs to a version registered after it.
    assert all((e.model, e.version) not in then.versions for e in events[seq:])
    rows = {
        LEDGER.name: seq,
        MODELS.name: len(then.versions),
        "Metrics": sum(len(v.metrics) for v in then.versions.values()),
        "Approvals": len(approvals_values(then)),
        "History": len(history_values(then)),
    }
    _keep_rows(workbook, {name: count + 1 for name, count in rows.items()})  # + the header
    return root


def _keep_rows(workbook: Path, keep: dict[str, int]) -> None:
    import zipfile

    from regbook.workbook.digests import sheet_parts

    edited = workbook.with_suffix(".cut.xlsx")
    with zipfile.ZipFile(workbook) as zin, zipfile.ZipFile(edited, "w") as zout:
        parts = {part: name for name, part in sheet_parts(zin).items() if name in keep}
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename in parts:
                last = keep[parts[info.filename]]
                cut = data.index(f'<row r="{last + 1}"'.encode())
                data = data[:cut] + data[data.index(b"</sheetData>") :]
                data = re.sub(rb'(<dimension ref="A1:[A-Z]+)[0-9]+', rb"\g<1>%d" % last, data)
            zout.writestr(info, data)
    edited.replace(workbook)


def _writers(made: Generated, workdir: Path, env: dict[str, str]) -> list[dict]:
    """``register`` and ``promote`` into the 10,000-version registry, with a witness CI
    left in the workspace (``regbook.witness``) and without, side by side."""
    artefact = workdir / "artefact.bin"
    artefact.write_bytes(os.urandom(1024))
    roots = {}
    for name in ("with", "without"):
        root = clone(made, workdir / f"writers-{name}").root
        sme, ci = (str(root / KEY_RELPATH.parent / k) for k in ("sme", "ci"))
        # The versions CI will promote, registered and approved before its last run.
        for i in range(WRITER_ROUNDS + 1):
            run_child(_register_argv(root, artefact, f"setup-{i}", sme), env=env).check("register")
        first = made.versions // len(made.models) + 1
        for i in range(WRITER_ROUNDS + 1):
            run_child([*regbook_command(), "--workspace", str(root), "approve",
                       f"{made.models[0]}@{first + i}", "--to", "Staging", "--key", sme],
                      env=env).check("approve")  # fmt: skip
        if name == "with":
            run_child([*regbook_command(), "--workspace", str(root), "witness", "--key", ci,
                       "-o", str(root / "regbook.witness")], env=env).check("witness")  # fmt: skip
        roots[name] = (root, sme, first)

    def register(name: str) -> Callable[[int], list[str]]:
        root, sme, _first = roots[name]
        return lambda i: _register_argv(root, artefact, f"bench-{i}", sme)

    def promote(name: str) -> Callable[[int], list[str]]:
        root, sme, first = roots[name]
        ref = made.models[0]
        return lambda i: [*regbook_command(), "--workspace", str(root), "promote",
                          f"{ref}@{first + i}", "--to", "Staging", "--key", sme]  # fmt: skip

    # MLflow's own one-shot create_model_version into a 10,000-version SQLite store.
    mlflow_argv, mlflow_env = one_shot_command(OUT / "mlflow-10k")
    rows = []
    for what, argv in (("register", register), ("promote", promote)):
        warm, cold, mlflow = alternate(
            WRITER_ROUNDS,
            [Command(f"{what} with a witness in the workspace", argv("with"), env),
             Command(f"{what} without one", argv("without"), env),
             Command("mlflow create_model_version", lambda _i: mlflow_argv, mlflow_env)],
        )  # fmt: skip
        best_warm, best_cold = min(s.seconds for s in warm), min(s.seconds for s in cold)
        versus = paired_ratio(warm, mlflow)
        rows += [
            row(f"{what} into 10,000 versions, witness in the workspace: best of "
                f"{WRITER_ROUNDS}", best_warm, "s"),
            row(f"{what} into 10,000 versions, no witness: best of {WRITER_ROUNDS}",
                best_cold, "s"),
            row(f"MLflow one-shot create_model_version, 10,000 in store: best of "
                f"{WRITER_ROUNDS}", min(s.seconds for s in mlflow), "s"),
            row(f"{what} with a witness / MLflow one-shot, median of paired rounds", versus,
                "x", f"<= {TARGET_VS_MLFLOW:g}", versus <= TARGET_VS_MLFLOW),
            row(f"{what}: with / without a witness, median of paired rounds",
                paired_ratio(warm, cold), "x", "<= 1", paired_ratio(warm, cold) <= 1),
        ]  # fmt: skip
    return rows


def _floor(made: Generated, workdir: Path, env: dict[str, str]) -> tuple[float, float]:
    """What any writer into this workbook pays before it parses a cell or replays an
    event: the start-up (a process importing what ``register`` imports), and the
    package read and written back (every part inflated, the worksheets hashed as the
    witness's digests are, the parts a registration changes deflated at the level
    regbook writes them, the file written and synced). Best of three each."""
    import hashlib
    import zipfile

    from regbook.workbook.digests import sheet_parts

    imports = ("import regbook.cli.app, regbook.workflow.lifecycle, python_calamine, "
               "regbook.registry.transaction, regbook.crypto.keys")  # fmt: skip
    startup = min(
        run_child([sys.executable, "-c", imports], env=env).check("start-up").seconds
        for _ in range(3)
    )
    changed = ("Ledger", "Models", "Metrics", "History")
    out = workdir / "floor.xlsx"
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        with zipfile.ZipFile(made.root / "registry.xlsx") as zin:
            names = {part for name, part in sheet_parts(zin).items() if name in changed}
            parts = {info.filename: zin.read(info) for info in zin.infolist()}
        for name, data in parts.items():
            if name.startswith("xl/worksheets/"):
                hashlib.sha256(data).digest()
        with open(out, "wb") as handle, zipfile.ZipFile(handle, "w") as zout:
            for name, data in parts.items():
                level = 1 if len(data) > 1 << 20 else 6
                method = zipfile.ZIP_DEFLATED if name in names else zipfile.ZIP_STORED
                zout.writestr(name, data, compress_type=method, compresslevel=level)
            handle.flush()
            os.fsync(handle.fileno())
        best = min(best, time.perf_counter() - started)
    out.unlink()
    return startup, best


def _register_argv(root: Path, artefact: Path, run: str, key: str) -> list[str]:
    return [
        *regbook_command(), "--workspace", str(root), "register", "model-00",
        "--artefact", str(artefact), "--data-version", "3f6c1e0d5a7b9c2e4f6a8b0c1d2e3f4a",
        "--code-commit", "c0ffee1234567890abcdef1234567890abcdef12", "--pipeline-run", run,
        "--metric", "auc_roc=0.83", "--metric", "demographic_parity_ratio=0.91",
        "--metric", "security_high_findings=0", "--key", key,
    ]  # fmt: skip


def run(workdir: Path) -> list[dict]:
    made = cached(10_000, history=True)
    witness = workdir / "witness"
    env = clean_env()
    # CI's own command, on the workbook as it was at event 39,900.
    then = as_it_was(made, workdir / "then", WITNESSED)
    key = str(then / KEY_RELPATH.parent / "ci")
    run_child([*regbook_command(), "--workspace", str(then), "witness", "--key", key, "-o",
               str(witness)], env=env).check("taking the witness at 39,900")  # fmt: skip
    cold = [*regbook_command(), "--workspace", str(made.root), "verify", "--no-artefacts"]
    warm = [*cold, "--witness", str(witness)]
    # Both must be clean: the witness is the ledger's own head at 39,900.
    run_child(warm, env=env).check("the witnessed verify")
    cold_samples, warm_samples = alternate(
        ROUNDS,
        [Command("verify --no-artefacts (cold)", lambda _i: cold, env),
         Command("verify --no-artefacts --witness", lambda _i: warm, env)],
    )  # fmt: skip
    best_cold = min(s.seconds for s in cold_samples)
    best_warm = min(s.seconds for s in warm_samples)
    ratio = paired_ratio(warm_samples, cold_samples)
    label = "10,000 versions, 40,000 events"
    rows = [
        row(f"cold verify --no-artefacts, {label}: best of {ROUNDS}", best_cold, "s"),
        row(f"cold verify, {label}: median", statistics.median(s.seconds for s in cold_samples),
            "s"),
        row(f"witnessed verify (witness at {WITNESSED:,}): best of {ROUNDS}", best_warm, "s",
            f"<= {TARGET_S:g}", best_warm <= TARGET_S),
        row("witnessed verify: median",
            statistics.median(s.seconds for s in warm_samples), "s"),
        row("witnessed / cold, median of paired rounds", ratio, "x", f"<= {TARGET_RATIO:g}",
            ratio <= TARGET_RATIO),
    ]  # fmt: skip
    writers = _writers(made, workdir, env)
    mlflow = min(r["value"] for r in writers if r["name"].startswith("MLflow one-shot"))
    startup, package = _floor(made, workdir, env)
    return [
        *rows,
        *writers,
        row("writers' floor: start-up (importing what register imports), best of 3",
            startup, "s"),
        row("writers' floor: the package read, hashed and its changed parts rewritten, "
            "best of 3", package, "s"),
        row("writers' floor / MLflow one-shot (best / best)", (startup + package) / mlflow,
            "x"),
    ]  # fmt: skip
