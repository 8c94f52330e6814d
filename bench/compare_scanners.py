"""Run the candidate scanner libraries over the security scan's test corpus, one table:
what each says of each file (docs/security-scan.md, "The scanners compared").

The candidates are not regbook's dependencies: install them into a separate
environment (``pip install picklescan modelscan fickling modelaudit joblib``, with
regbook's own requirements) and run this script with it. A candidate that is not
installed is left out of the table.

    python bench/compare_scanners.py
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import scan_corpus  # noqa: E402


def _picklescan(path: Path) -> str:
    from picklescan.scanner import scan_file_path

    r = scan_file_path(str(path))
    named = ", ".join(f"{g.module}.{g.name} {g.safety.value}" for g in r.globals)
    return f"{'error; ' if r.scan_err else ''}{named or 'no globals'}"


def _modelscan(path: Path) -> str:
    from modelscan.modelscan import ModelScan

    r = ModelScan().scan(str(path))
    issues = ", ".join(f"{i['severity']} {i['module']}.{i['operator']}" for i in r["issues"])
    errors = "error; " if r["errors"] else ""
    skipped = "skipped; " if r["summary"]["skipped"]["total_skipped"] else ""
    return f"{errors}{skipped}{issues or 'no issues'}"


def _fickling(path: Path) -> str:
    from fickling.analysis import check_safety
    from fickling.fickle import Pickled

    try:
        return check_safety(Pickled.load(path.read_bytes())).severity.name
    except Exception as err:  # noqa: BLE001 - the comparison records what each raises
        return f"error ({type(err).__name__})"


def _modelaudit(path: Path) -> str:
    import json

    program = shutil.which("modelaudit")
    if program is None:
        raise ImportError("modelaudit")
    done = subprocess.run(
        [program, "scan", "--format", "json", str(path)], capture_output=True, text=True
    )
    report = json.loads(done.stdout)
    severe = [i["severity"] for i in report.get("issues", []) if i["severity"] not in ("info",)]
    return ", ".join(sorted(set(severe))) or "no issues"


CANDIDATES: dict[str, Callable[[Path], str]] = {
    "picklescan": _picklescan,
    "modelscan": _modelscan,
    "fickling": _fickling,
    "modelaudit": _modelaudit,
}


def main() -> int:
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="regbook-scanners-") as tmp:
        verdicts = scan_corpus.build(Path(tmp))
        for name, run in CANDIDATES.items():
            try:
                run(Path(tmp) / "clean.pkl")
            except ImportError:
                print(f"{name}: not installed, left out")
                continue
            print(f"\n{name}")
            for file, expected in verdicts.items():
                print(f"  {file:<24} regbook: {expected:<13} {run(Path(tmp) / file)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
