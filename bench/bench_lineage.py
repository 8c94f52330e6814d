"""Inference-log audit speed and memory (the lineage issue's benchmark).

A workspace with credit-risk@1 in Production (stage changes on fixed past dates) and
credit-risk@2 never promoted; a 1,000,000-line log in each format, mostly clean records
with a few in every problem class (a mismatching ID, an unknown ID, an inference while
the version was in Staging). ``regbook trace --log`` runs as a child process, timed
from spawn to exit (start-up and the ledger read included); peak RSS is the child's own
``ru_maxrss``, read through a small trampoline so the benchmark's memory is not carried
into the child. Targets: >= 200k lines/s and <= 200 MB peak RSS.

    python bench/run.py lineage
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from regbook.registry.snapshot import LEDGER_ONLY, open_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from factory import STAFF, TO_PRODUCTION, Version, build  # noqa: E402

LINES = 1_000_000
REPEATS = 2
_TRAMPOLINE = """\
import json, os, subprocess, sys, time
argv = json.loads(sys.argv[1])
started = time.perf_counter()
proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "rc": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def _row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> dict:
    return {"name": name, "value": value, "unit": unit, "target": target, "ok": ok}


def _workspace(workdir: Path) -> tuple[Path, str, str]:
    """credit-risk@1 and @2 registered on 01-10 and 01-11; @1 approved for Staging on
    01-12, promoted 01-13, gated 01-14, approved for Production 01-15, promoted 01-16."""
    made = build(
        workdir,
        [Version(artefact=os.urandom(1 << 16), name="model.bin", pipeline_run=run,
                 metrics=("auc_roc=0.83", "demographic_parity_ratio=0.9",
                          "security_high_findings=0"))
         for run in ("train-1", "train-2")],
        TO_PRODUCTION,
        keys={role: f"{role}@example.com" for role in STAFF},
        times=[f"2026-01-{day:02d}T09:00:00Z" for day in range(10, 20)],
    )  # fmt: skip
    return made.root, made.ids[0], made.ids[1]


def _write_logs(workdir: Path, live: str, other: str) -> tuple[Path, Path]:
    head, _, tail = live.partition("+")
    mismatch = f"{head}+{'0' * 12}.{tail.split('.', 1)[1]}"
    unknown = "credit-risk@9+000000000000.11111111.22222222"
    rng = random.Random(20260601)
    jsonl, csv_path = workdir / "predictions.jsonl", workdir / "predictions.csv"
    with jsonl.open("w", encoding="utf-8") as j, csv_path.open("w", encoding="utf-8") as c:
        c.write("timestamp,request_id,composite_id,score,latency_ms\n")
        for i in range(LINES):
            roll = rng.random()
            cid, day = live, 2 + i % 27
            when = f"2026-02-{day:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z"
            if roll < 0.002:
                cid = mismatch
            elif roll < 0.003:
                cid = unknown
            elif roll < 0.005:
                when = "2026-01-13T12:00:00Z"  # credit-risk@1 was in Staging then
            elif roll < 0.007:
                cid = other  # never promoted: served while in None
            score, latency = round(rng.random(), 4), rng.randint(3, 80)
            record = {"timestamp": when, "request_id": f"req-{i:08d}", "composite_id": cid,
                      "score": score, "latency_ms": latency}  # fmt: skip
            j.write(json.dumps(record) + "\n")
            c.write(f"{when},req-{i:08d},{cid},{score},{latency}\n")
    return jsonl, csv_path


def _warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(1 << 24):
            pass


def _measure(argv: list[str]) -> tuple[float, float, int]:
    done = subprocess.run(
        [sys.executable, "-c", _TRAMPOLINE, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    return result["seconds"], result["maxrss_kib"] / 1024, result["rc"]


def _audit(root: Path, log: Path, label: str) -> list[dict]:
    _warm(log)
    argv = [sys.executable, "-m", "regbook", "--workspace", str(root), "trace", "--log",
            str(log), "--json"]  # fmt: skip
    best, peak = float("inf"), 0.0
    for _ in range(REPEATS):
        seconds, rss, rc = _measure(argv)
        if rc != 1:  # the log holds problems on purpose: exit 1 is the expected answer
            raise RuntimeError(f"regbook trace --log {log.name} exited {rc}, expected 1")
        best, peak = min(best, seconds), max(peak, rss)
    rate = LINES / best
    size = log.stat().st_size
    return [
        _row(f"trace --log, 1M lines {label}: wall", best, "s"),
        _row(
            f"trace --log, 1M lines {label}: lines/s", rate, "lines/s", ">= 200000", rate >= 200_000
        ),  # fmt: skip
        _row(f"trace --log, 1M lines {label}: MB/s", size / best / 1e6, "MB/s"),
        _row(f"trace --log, 1M lines {label}: peak RSS", peak, "MB", "<= 200", peak <= 200),
    ]


def _check_answer(root: Path, log: Path) -> None:
    """The audit must also be right: every line accounted for."""
    from regbook.core.workspace import Workspace
    from regbook.lineage.trace import audit_log

    audit = audit_log(open_registry(Workspace.load(root), sheets=LEDGER_ONLY), log)
    kinds = {p.kind for p in audit.problems}
    assert audit.lines == LINES and audit.records == LINES, (audit.lines, audit.records)
    assert kinds == {"id-mismatch", "unknown-id", "not-production"}, kinds


def run(workdir: Path) -> list[dict]:
    root, live, other = _workspace(workdir)
    jsonl, csv_path = _write_logs(workdir, live, other)
    _check_answer(root, jsonl)
    rows = _audit(root, jsonl, "JSON lines")
    rows += _audit(root, csv_path, "CSV")
    return rows
