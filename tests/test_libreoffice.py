"""The workbook in a real office suite: LibreOffice opens the template and a sealed
registry, and a registry re-saved by LibreOffice (which rewrites every cell, style and
type) still verifies clean and still takes new registrations."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import Env
from regbook.core.schema import SHEETS
from regbook.workbook.read import read_workbook

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")

pytestmark = pytest.mark.skipif(
    SOFFICE is None and not os.environ.get("CI"),
    reason="LibreOffice is not installed (.ci/run installs it in CI)",
)

ROOT = Path(__file__).resolve().parents[1]


def resave(source: Path, folder: Path, target_format: str) -> Path:
    """Open in LibreOffice and save again, as an SME would."""
    assert SOFFICE, "LibreOffice is required in CI"
    folder.mkdir(parents=True, exist_ok=True)
    profile = folder / "profile"
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
         "--convert-to", target_format, "--outdir", str(folder), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    out = folder / (source.stem + "." + target_format.split(":")[0])
    assert out.exists(), f"LibreOffice wrote nothing for {source.name}"
    return out


def test_template_opens_in_libreoffice(tmp_path):
    saved = resave(ROOT / "templates" / "registry.xlsx", tmp_path / "lo", "xlsx")
    book = read_workbook(saved, sheets=SHEETS)
    assert [name for name in book.tables] == [s.name for s in SHEETS]


def test_registry_resaved_by_libreoffice_verifies_and_accepts_writes(registered: Env, tmp_path):
    saved = resave(registered.workbook, tmp_path / "lo", "xlsx")
    shutil.copyfile(saved, registered.workbook)
    result = registered.run("verify")
    assert result.exit_code == 0, result.output
    assert registered.register().exit_code == 0
    result = registered.run("verify")
    assert result.exit_code == 0, result.output


def test_libreoffice_reads_what_regbook_wrote(registered: Env, tmp_path):
    csv = resave(registered.workbook, tmp_path / "csv", "csv")
    first = csv.read_text(encoding="utf-8", errors="replace").splitlines()
    assert first[0].startswith("Model name,Version,Composite ID,Stage")
    assert first[1].startswith("credit-risk,1,credit-risk@1+")
