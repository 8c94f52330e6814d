"""Start-up time of the command line (DESIGN section 10: heavy libraries load lazily).

Each command runs as a child process, best of 5, after one untimed run that writes the
bytecode caches:

(a) ``regbook --help``: target <= 0.3 s;
(b) ``regbook verify --help``: reported;
(c) ``python -c "import regbook.cli"``: reported, with ``python -c pass`` beside it as
    the interpreter's own floor.

    python bench/run.py startup
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import clean_env, regbook_command  # noqa: E402
from measure import best_of, row, run_child  # noqa: E402

REPEATS = 5
HELP_TARGET = 0.3


def _time(argv: list[str], what: str, cwd: Path) -> float:
    env = clean_env()
    run_child(argv, cwd=cwd, env=env).check(what)  # warm the bytecode caches
    best, _ = best_of(REPEATS, lambda _i: argv, what, cwd=cwd, env=env)
    return best.seconds


def run(workdir: Path) -> list[dict]:
    regbook = regbook_command()
    python = [sys.executable]
    help_s = _time([*regbook, "--help"], "regbook --help", workdir)
    verify_help_s = _time([*regbook, "verify", "--help"], "regbook verify --help", workdir)
    import_s = _time([*python, "-c", "import regbook.cli"], "import regbook.cli", workdir)
    floor_s = _time([*python, "-c", "pass"], "python -c pass", workdir)
    return [
        row(f"(a) regbook --help, best of {REPEATS}", help_s, "s", f"<= {HELP_TARGET:g}",
            help_s <= HELP_TARGET),
        row(f"(b) regbook verify --help, best of {REPEATS}", verify_help_s, "s"),
        row(f'(c) python -c "import regbook.cli", best of {REPEATS}', import_s, "s"),
        row(f'(c) python -c "pass" (interpreter floor), best of {REPEATS}', floor_s, "s"),
    ]  # fmt: skip
