"""Run a command as a child process and measure it: wall time, peak RSS, CPU time.

Peak RSS and CPU time come from ``os.wait4``, which reports the resource use of that one
child. It is called in a small trampoline process, never in the benchmark process
itself: Linux carries the exec-ing process's high-water RSS into the child's
``ru_maxrss`` (``exec_mmap`` records the old address space's peak), so a child spawned by
a benchmark that had just built a 10,000-version workbook in memory would report that
workbook's memory as its own. ``getrusage(RUSAGE_CHILDREN)`` would be worse still: the
maximum over every child so far. The trampoline's own peak (~10 MB) is the floor.
Where ``wait4`` is missing (Windows), psutil samples the child's RSS instead.

    sample = run_child(["regbook", "--help"])
    sample.seconds, sample.peak_rss_mb, sample.cpu_seconds, sample.returncode

Two or more commands compared with each other run alternately (:func:`alternate`), so
that each round's runs share the machine's load of the moment.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Runs the command, times it from spawn to reaping, and prints the child's own rusage.
_TRAMPOLINE = """\
import json, os, subprocess, sys, time
argv, cwd, out, err = json.loads(sys.argv[1])
with open(out, "wb") as o, open(err, "wb") as e:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd or None, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
print(json.dumps({"seconds": seconds, "rc": proc.returncode, "maxrss_kib": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_rss_mb: float | None
    cpu_seconds: float | None
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Sample:
        if self.returncode != 0:
            raise RuntimeError(
                f"{what} exited {self.returncode}:\n{self.stdout[-2000:]}{self.stderr[-2000:]}"
            )
        return self


def run_child(
    argv: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> Sample:
    if not hasattr(os, "wait4"):  # pragma: no cover - Windows
        return _run_polled(argv, cwd, env)
    with tempfile.TemporaryDirectory(prefix="regbook-bench-child-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        spec = json.dumps([list(argv), str(cwd) if cwd else "", str(out), str(err)])
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, spec],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the measuring trampoline failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        return Sample(
            result["seconds"],
            result["maxrss_kib"] / 1024,  # KiB on Linux
            result["cpu"],
            result["rc"],
            out.read_text("utf-8", "replace"),
            err.read_text("utf-8", "replace"),
        )


def _run_polled(
    argv: Sequence[str], cwd: Path | None, env: dict[str, str] | None
) -> Sample:  # pragma: no cover - Windows
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=err)
        rss = _poll_rss(proc)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Sample(
            seconds, rss, None, proc.returncode, out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )  # fmt: skip


def _poll_rss(proc: subprocess.Popen) -> float | None:  # pragma: no cover - Windows
    try:
        import psutil
    except ImportError:
        proc.wait()
        return None
    peak = 0
    try:
        child = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, child.memory_info().rss)
            time.sleep(0.005)
    except psutil.Error:
        pass
    proc.wait()
    return peak / 2**20 or None


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(threshold: float = 0.10, window: float = 0.5, max_wait: float = 30.0) -> bool:
    """Wait until the machine is nearly idle (under ``threshold`` of all cores busy over
    ``window`` seconds), at most ``max_wait`` seconds: on a shared 2-core machine a test
    run next door halves what a two-thread command gets. False when it never got quiet
    (or this is not Linux); the run goes ahead anyway."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait:
        before = _cpu_ticks()
        time.sleep(window)
        after = _cpu_ticks()
        if before is None or after is None:
            return False
        busy, total = after[0] - before[0], after[1] - before[1]
        if total > 0 and busy / total < threshold:
            return True
    return False


def best_of(
    repeats: int, argv_for: Callable[[int], Sequence[str]], what: str, **kwargs
) -> tuple[Sample, list[Sample]]:
    """Run ``repeats`` times (``argv_for(i)`` gives the i-th command line), each once the
    machine is quiet; every run must exit 0. Returns the fastest sample and all of them."""
    samples = []
    for i in range(repeats):
        wait_for_quiet()
        samples.append(run_child(argv_for(i), **kwargs).check(what))
    return min(samples, key=lambda s: s.seconds), samples


@dataclass(frozen=True)
class Command:
    """One command of an :func:`alternate` comparison: ``argv_for(i)`` is its command
    line for its i-th run (i from 0, the untimed warm-up run first)."""

    what: str
    argv_for: Callable[[int], Sequence[str]]
    env: dict[str, str] | None = None
    cwd: Path | None = None


def alternate(
    repeats: int, commands: Sequence[Command], warm: bool = True, quiet_wait: float = 30.0
) -> list[list[Sample]]:
    """Run every command once per round, ``repeats`` rounds, in the given order on even
    rounds and in reverse on odd ones (A B, B A, A B, ...), so that no command always
    runs first after the wait for a quiet machine (at most ``quiet_wait`` seconds before
    each run). With ``warm``, each command first runs once untimed (page cache,
    bytecode). Every run must exit 0. Returns each command's samples in the order of
    ``commands``; the i-th samples of all commands come from the same round."""
    samples: list[list[Sample]] = [[] for _ in commands]
    index = 0
    if warm:
        for command in commands:
            run_child(command.argv_for(0), cwd=command.cwd, env=command.env).check(command.what)
        index = 1
    for round_ in range(repeats):
        order = list(range(len(commands)))
        if round_ % 2:
            order.reverse()
        for k in order:
            command = commands[k]
            if quiet_wait > 0:
                wait_for_quiet(max_wait=quiet_wait)
            sample = run_child(command.argv_for(index + round_), cwd=command.cwd, env=command.env)
            samples[k].append(sample.check(command.what))
    return samples


def best_and_median(samples: Sequence[Sample]) -> tuple[float, float]:
    seconds = [s.seconds for s in samples]
    return min(seconds), statistics.median(seconds)


def paired_ratio(top: Sequence[Sample], bottom: Sequence[Sample]) -> float:
    """The median, over rounds, of top's time over bottom's in the same round."""
    return statistics.median(a.seconds / b.seconds for a, b in zip(top, bottom, strict=True))


def row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> dict:
    return {"name": name, "value": value, "unit": unit, "target": target, "ok": ok}


def format_row(row: dict) -> str:
    """One line of the results table that bench/run.py and bench/compare.py print."""
    mark = {True: "ok", False: "MISSED", None: ""}[row.get("ok")]
    return (
        f"  {row['name']:<58} {row['value']:>10.3f} {row['unit']:<8}"
        f" {row.get('target', ''):<12} {mark}"
    )
