"""Run every benchmark in bench/ and print one table.

Each ``bench/bench_*.py`` module exposes ``run(workdir: Path) -> list[dict]``; a row is
``{"name": str, "value": float, "unit": str, "target": str, "ok": bool | None}``.
Results also go to ``bench/.out/results.json`` so docs/performance.md can cite them.

    python bench/run.py            # everything
    python bench/run.py hashing    # only bench_hashing.py

To time the same commands on this checkout and another build side by side, see
bench/compare.py (``python bench/compare.py REV``).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import format_row  # noqa: E402


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def compile_package() -> None:
    """Write the package's bytecode now, as pip does when it installs regbook, so that
    no timed run pays for compiling it (see generate.clean_env)."""
    import compileall

    import regbook

    compileall.compile_dir(Path(regbook.__file__).parent, quiet=1, force=False)


def main(argv: list[str]) -> int:
    wanted = set(argv)
    modules = sorted(HERE.glob("bench_*.py"))
    rows: list[dict] = []
    print(f"machine: {machine()}")
    compile_package()
    for path in modules:
        short = path.stem.removeprefix("bench_")
        if wanted and short not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"regbook-bench-{short}-") as tmp:
            for row in module.run(Path(tmp)):
                row = {"bench": short, **row}
                rows.append(row)
                print(format_row(row), flush=True)
        print(f"[{short}: {time.perf_counter() - started:.1f} s]")
    out = HERE / ".out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"machine": machine(), "rows": rows}, indent=2), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
