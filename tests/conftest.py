"""Shared fixtures: tiny workspaces, keys and artefacts built in tmp_path.

Every workspace is built by the fixture factory (factory.py, shared with the benchmarks);
the ones many tests start from are built once per session (``_..._master``) and copied
per test with :func:`copy_master`."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from factory import CODE_COMMIT, DATA_VERSION, Built, Version, build
from factory import CODE_COMMIT_2 as CODE_COMMIT_2  # for the tests that import it from here
from mlflow_server import mlflow_uri  # noqa: F401 - the session's MLflow server
from regbook.cli import cli
from regbook.core import fs
from regbook.core.workspace import Workspace


def run(
    root: Path,
    *args: str,
    key: Path | None = None,
    env: dict | None = None,
    runner: CliRunner | None = None,
) -> Result:
    """``regbook --workspace ROOT ARGS [--key KEY]`` in this process, with ``env`` set;
    an exception regbook does not turn into a message fails the test."""
    argv = ["--workspace", str(root), *args]
    if key is not None:
        argv += ["--key", str(key)]
    return (runner or CliRunner()).invoke(cli, argv, env=env or {}, catch_exceptions=False)


@dataclass
class Env:
    """A workspace with three keys: an SME, a governance lead and CI."""

    root: Path
    keys: dict[str, Path]
    runner: CliRunner

    @classmethod
    def of(cls, made: Built, runner: CliRunner) -> Env:
        return cls(made.root, made.keys, runner)

    @property
    def ws(self) -> Workspace:
        return Workspace.load(self.root)

    @property
    def workbook(self) -> Path:
        return self.root / "registry.xlsx"

    def run(self, *args: str, key: str | None = None, env: dict | None = None) -> Result:
        signer = None if key is None else self.keys[key]
        return run(self.root, *args, key=signer, env=env, runner=self.runner)

    def register(
        self,
        model: str = "credit-risk",
        artefact: Path | None = None,
        *extra: str,
        key: str = "sme",
    ) -> Result:
        if artefact is None:
            artefact = self.root.parent / f"{model}-{len(list(self.root.parent.iterdir()))}.bin"
            artefact.write_bytes(hashlib.sha256(str(artefact).encode()).digest() * 64)
        return self.run(
            "register", model, "--artefact", str(artefact), "--data-version", DATA_VERSION,
            "--code-commit", CODE_COMMIT, "--pipeline-run", "run-1042",
            "--metric", "auc_roc=0.83", "--metric", "demographic_parity_ratio=0.91",
            *extra, key=key,
        )  # fmt: skip


def unset_regbook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or workspace from the shell running the tests."""
    monkeypatch.delenv("REGBOOK_KEY", raising=False)
    monkeypatch.delenv("REGBOOK_WORKSPACE", raising=False)


def copy_master(master: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of a workspace built once per session (its keys and artefacts
    beside it) into ``target``, for a test that may change it; returns ``target``."""
    unset_regbook_env(monkeypatch)
    shutil.copytree(master, target, symlinks=True, dirs_exist_ok=True)
    return target


def copied_env(
    master: Path, tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> Env:
    """An Env on a private copy of a master built with the usual layout (``Built.at``)."""
    return Env.of(Built.at(copy_master(master, tmp_path, monkeypatch)), runner)


# credit-risk@1 and credit-risk@2: artefact files, AUC-ROC and DPR, registered by the SME.
REGISTERED = (Version(), Version())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def env(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Env:
    """An initialised workspace in tmp_path/ws with keys for sme, governance-lead, ci."""
    unset_regbook_env(monkeypatch)
    return Env.of(build(tmp_path), runner)


def edit_workbook(path: Path, change: Callable) -> None:
    """Edit the workbook the way a person in Excel would: open, change cells, save."""
    import openpyxl

    wb = openpyxl.load_workbook(path)
    change(wb)
    wb.save(path)


def edit_part(path: Path, part: str, change: Callable[[bytes], bytes]) -> None:
    """Edit one part of the xlsx package in place, as an attacker with a zip tool would:
    ``part`` is a part's name or a sheet's (its worksheet part); every other part keeps
    its bytes."""
    import zipfile

    from regbook.workbook.digests import sheet_parts

    edited = path.with_suffix(".edited.xlsx")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(edited, "w") as zout:
        name = sheet_parts(zin).get(part, part)
        assert name in zin.namelist(), f"no part {part}"
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == name:
                new = change(data)
                assert new != data, f"the change left {name} as it was"
                data = new
            zout.writestr(info, data)
    edited.replace(path)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder with a hash of its bytes: to assert nothing changed."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


# --- helpers for the verify / restore / bad-input suites --------------------------------


def add_draft(wb, row: int | None = None, **values) -> int:
    """Type a draft row into Models as an SME would: values by column key (schema.MODELS).

    Appends below the last row unless ``row`` is given; returns the row number."""
    from regbook.core.schema import MODELS

    sheet = wb[MODELS.name]
    if row is None:
        row = sheet.max_row + 1
    for key, value in values.items():
        sheet.cell(row=row, column=MODELS.index(key) + 1, value=value)
    return row


def draft_values(env: Env) -> dict:
    """The cells of a draft row that seals cleanly, its artefact put inside the workspace
    (incoming/model.bin, recorded where it is)."""
    artefact = env.root / "incoming" / "model.bin"
    artefact.parent.mkdir(exist_ok=True)
    artefact.write_bytes(b"a draft model\n" * 100)
    return {
        "model": "fraud-score",
        "storage": "incoming/model.bin",
        "data_version": DATA_VERSION,
        "code_commit": CODE_COMMIT,
        "pipeline_run": "run-77",
    }


@pytest.fixture(scope="session")
def _registered_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("registered-master"), REGISTERED).base


@pytest.fixture
def registered_fast(
    _registered_master: Path, tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> Env:
    """env with credit-risk@1 and credit-risk@2 registered (artefact files), copied from
    a workspace built once per session: the tamper suites need a fresh one per test,
    quickly."""
    return copied_env(_registered_master, tmp_path, runner, monkeypatch)


@pytest.fixture
def registered(registered_fast: Env) -> Env:
    """The same as ``registered_fast``: every suite starts from the session's copy."""
    return registered_fast


def problems(report: dict) -> set[tuple[str, str]]:
    """(code, where) of every error and warning in a ``verify --json`` report."""
    return {(f["code"], f["where"]) for f in report["findings"] if f["severity"] != "info"}


def finding(report: dict, code: str, where: str) -> dict:
    """The one finding with this code and cell; fails listing every finding if absent."""
    found = [f for f in report["findings"] if f["code"] == code and f["where"] == where]
    listing = "\n".join(f"{f['code']} {f['where']}: {f['message']}" for f in report["findings"])
    assert len(found) == 1, f"expected one {code} at {where}; findings:\n{listing}"
    return found[0]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="Rewrite the golden files under tests/assets/goldens/ instead of comparing.",
    )


# --- the lineage workspace (built by test_lineage's helpers, shared with test_export) ----


@pytest.fixture(scope="session")
def _lineage_master(tmp_path_factory: pytest.TempPathFactory):
    from test_lineage import build_lineage

    return build_lineage(tmp_path_factory.mktemp("lineage-master"))


@pytest.fixture
def built(_lineage_master, monkeypatch: pytest.MonkeyPatch):
    """The session's lineage workspace, read-only: tests that change it use ``fresh``."""
    unset_regbook_env(monkeypatch)
    return _lineage_master


@pytest.fixture
def fresh(_lineage_master, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the lineage workspace and repositories."""
    from test_lineage import copy_lineage

    return copy_lineage(_lineage_master, copy_master(_lineage_master.base, tmp_path, monkeypatch))


# --- the Production workspace of the evidence reports (built by test_reports) ----------


@pytest.fixture(scope="session")
def _production_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_reports import build_production

    return build_production(tmp_path_factory.mktemp("reports-master")).base


@pytest.fixture
def prod(_production_master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the Production workspace (credit-risk@1 with two approvals,
    fixed dates and keys); the report's clock pinned to ``test_reports.REPORT_TIME``."""
    from test_reports import REPORT_TIME

    monkeypatch.setattr(fs, "utc_now", lambda: REPORT_TIME)
    return copy_master(_production_master, tmp_path, monkeypatch) / "ws"


def signing_material(folder: Path):
    """Keys for signature tests: alice (sme, no window), ci (valid before 2026), and a
    stranger outside the keyring; returns ``(folder, alice, ci, stranger, keyring)``."""
    from datetime import UTC, datetime

    from regbook.crypto import keys

    alice = keys.generate_key(folder / "alice", "alice")
    ci = keys.generate_key(folder / "ci", "ci")
    stranger = keys.generate_key(folder / "stranger", "x")
    lines = [
        keys.format_signer_line("alice@example.com", alice.public, ["sme"]),
        keys.format_signer_line(
            "ci@example.com", ci.public, ["ci"], valid_before=datetime(2026, 1, 1, tzinfo=UTC)
        ),
    ]
    return folder, alice, ci, stranger, keys.Keyring.parse("\n".join(lines) + "\n")
