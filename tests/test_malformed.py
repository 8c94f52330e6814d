"""What a person, or a broken tool, can leave in a workbook that regbook never writes:
payloads of the wrong shape, numbers and dates past what Python holds, paths longer than
the file system allows, duplicated draft metrics. Every command still ends in findings
(exit 1) or one line naming the cause (exit 2): never a traceback, never an "unexpected
error". Built from the Production workspace of the evidence reports (``prod``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import regbook.cli.registering
from conftest import (
    CODE_COMMIT,
    DATA_VERSION,
    Env,
    add_draft,
    draft_values,
    edit_workbook,
    finding,
    run,
    snapshot,
)
from regbook.cli import cli
from regbook.core.schema import LEDGER, MODELS


def clean_end(result: Result) -> None:
    """Findings, or one line on stderr: nothing regbook did not mean to say."""
    assert "Traceback" not in result.output
    assert "unexpected error" not in result.stderr, result.stderr
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def ledger_row(wb: Any, kind: str) -> int:
    """The first Ledger row of an event of this kind."""
    sheet = wb[LEDGER.name]
    column = LEDGER.index("kind") + 1
    return next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, column).value == kind)


def edit_payload(root: Path, kind: str, change: Callable[[dict], Any]) -> str:
    """Change the payload of the first ``kind`` event, as typed into its cell; the cell."""
    where = []

    def edit(wb: Any) -> None:
        row = ledger_row(wb, kind)
        cell = wb[LEDGER.name].cell(row, LEDGER.index("payload") + 1)
        payload = json.loads(cell.value)
        change(payload)
        cell.value = json.dumps(payload)
        where.append(LEDGER.ref("payload", row))

    edit_workbook(root / "registry.xlsx", edit)
    return where[0]


def every_reader(root: Path) -> None:
    out = root.parent / "out"
    for args in (
        ("verify", "--no-artefacts"),
        ("list",),
        ("restore",),
        ("trace", "credit-risk@1"),
        ("report", "evidence", "credit-risk@1", "-o", str(out) + ".md"),
        ("report", "card", "credit-risk@1", "-o", str(out) + ".html"),
        ("report", "registry", "-o", str(out) + "-registry.md"),
        ("export", "provenance", "credit-risk@1", "-o", str(out) + ".json"),
    ):
        clean_end(run(root, *args))


REGISTRATION_EDITS: dict[str, Callable[[dict], Any]] = {
    "no-artefact": lambda p: p.pop("artefact"),
    "artefact-hash-null": lambda p: p["artefact"].update(hash=None),
    "artefact-hash-not-a-hash": lambda p: p["artefact"].update(hash="sha256:abc"),
    "storage-null": lambda p: p["artefact"].update(storage=None),
    "composite-id-null": lambda p: p.update(composite_id=None),
    "no-code-commit": lambda p: p.pop("code_commit"),
    "metrics-text": lambda p: p.update(metrics="x"),
    "metric-without-name": lambda p: p["metrics"][0].pop("metric"),
    "metric-named-by-a-list": lambda p: p["metrics"][0].update(metric=[]),
    "metric-value-text": lambda p: p["metrics"][0].update(value="high"),
    "metric-value-huge": lambda p: p["metrics"][0].update(value=10**400),
    "slice-number": lambda p: p["metrics"][0].update(slice=1),
    "trained-on-list": lambda p: p.update(trained_on=[]),
    "params-list": lambda p: p.update(params=["max_depth"]),
}


@pytest.mark.parametrize("edit", REGISTRATION_EDITS.values(), ids=REGISTRATION_EDITS)
def test_a_registration_of_the_wrong_shape_is_a_finding(prod: Path, edit: Callable):
    cell = edit_payload(prod, "register", edit)
    result = run(prod, "verify", "--no-artefacts", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert "cannot be read" in finding(report, "RB203", cell)["message"]
    # The version is left out of the views: its row now claims a seal no event has.
    assert any(f["code"] == "RB303" for f in report["findings"])
    every_reader(prod)


GATE_EDITS: dict[str, Callable[[dict], Any]] = {
    "gates-number": lambda p: p.update(gates=1),
    "gate-metric-list": lambda p: p["gates"][0].update(metric=[]),
    "gate-op-list": lambda p: p["gates"][0].update(op=[">="]),
    "gate-threshold-text": lambda p: p["gates"][0].update(threshold="high"),
    "gate-result-maybe": lambda p: p["gates"][0].update(result="MAYBE"),
}


@pytest.mark.parametrize("edit", GATE_EDITS.values(), ids=GATE_EDITS)
def test_a_gate_result_of_the_wrong_shape_is_a_finding(prod: Path, edit: Callable):
    cell = edit_payload(prod, "gate", edit)
    result = run(prod, "verify", "--no-artefacts", "--json")
    assert result.exit_code == 1, result.output
    assert "malformed" in finding(json.loads(result.output), "RB505", cell)["message"]
    every_reader(prod)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("seq", 10**30, "Seq 1000000000000000019884624838656 is out of range"),
        ("version", 10**20, "Version 100000000000000000000 is out of range"),
        ("payload", "[" * 20_000 + "]" * 20_000, "nested too deeply"),
    ],
    ids=["seq", "version", "deep-payload"],
)
def test_a_ledger_row_beyond_what_can_be_hashed_is_unreadable(
    prod: Path, column: str, value: Any, message: str
):
    def edit(wb: Any) -> None:
        row = ledger_row(wb, "approve")
        wb[LEDGER.name].cell(row, LEDGER.index(column) + 1).value = value

    edit_workbook(prod / "registry.xlsx", edit)
    result = run(prod, "verify", "--no-artefacts", "--json")
    assert result.exit_code == 1, result.output
    unreadable = [f for f in json.loads(result.output)["findings"] if f["code"] == "RB108"]
    assert len(unreadable) == 1 and message in unreadable[0]["message"]
    every_reader(prod)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("B2", "1" * 5000),  # a whole number with more digits than Python converts
        ("U2", "9999-12-31 23:59:59.9"),  # rounds past the last second Python holds
        ("U2", "0001-01-01T00:00:00+01:00"),  # before year 1 once in UTC
        ("U2", 2958465.999999999),  # an Excel serial one rounding past 9999-12-31
    ],
    ids=["digits", "last-second", "first-second", "serial"],
)
def test_values_past_what_python_holds_are_differences(prod: Path, cell: str, value: Any):
    edit_workbook(prod / "registry.xlsx", lambda wb: wb[MODELS.name].__setitem__(cell, value))
    result = run(prod, "verify", "--no-artefacts", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert finding(report, "RB301", f"Models!{cell}")
    every_reader(prod)


# --- drafts ---------------------------------------------------------------------------


def draft(prod: Path, **changes: Any) -> dict[str, Any]:
    values = {
        "model": "fraud-score", "data_version": DATA_VERSION, "code_commit": CODE_COMMIT,
        "pipeline_run": "run-7", "storage": "incoming/fraud.bin", "trained_on": "2026-01-09",
    }  # fmt: skip
    (prod / "incoming").mkdir(exist_ok=True)
    (prod / "incoming" / "fraud.bin").write_bytes(b"fraud model\n")
    return {**values, **changes}


def seal(prod: Path) -> Result:
    return run(prod, "seal", "--key", str(prod.parent / "keys" / "sme"))


def test_a_draft_path_longer_than_the_file_system_allows(prod: Path):
    values = draft(prod, storage="incoming/" + "x" * 300)
    edit_workbook(prod / "registry.xlsx", lambda wb: add_draft(wb, **values))
    before = snapshot(prod)
    result = seal(prod)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[1].strip().startswith("Models!E3: storage location")
    assert "cannot be used" in result.stderr
    assert snapshot(prod) == before


def test_a_repository_path_longer_than_the_file_system_allows(prod: Path):
    values = draft(prod, code_repo="y" * 300)
    edit_workbook(prod / "registry.xlsx", lambda wb: add_draft(wb, **values))
    assert seal(prod).exit_code == 0
    for args in (
        ("trace", "fraud-score@1"),
        ("report", "evidence", "fraud-score@1", "-o", str(prod.parent / "e.md")),
    ):
        clean_end(run(prod, *args))


@pytest.mark.parametrize(
    ("metric", "first", "second"),
    [("custom_score", 0.5, 0.6), ("security_high_findings", 0, 1), ("auc_roc", 0.8, 0.9)],
)
def test_a_draft_metric_given_twice_names_both_cells(
    prod: Path, metric: str, first: float, second: float
):
    values = draft(prod)

    def change(wb: Any) -> None:
        add_draft(wb, **values)
        metrics = wb["Metrics"]
        for value in (first, second):
            metrics.append(["fraud-score", None, metric, value, "performance", None])

    edit_workbook(prod / "registry.xlsx", change)
    rows = [r for r in range(2, 20) if _metrics_row_is(prod, r, metric)]
    before = snapshot(prod)
    result = seal(prod)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[1:] == [
        f"  Metrics!D{rows[1]}: {metric} is {second} here but {first} in "
        f"Metrics!D{rows[0]}; keep one"
    ]
    assert snapshot(prod) == before


def _metrics_row_is(prod: Path, row: int, metric: str) -> bool:
    import openpyxl

    sheet = openpyxl.load_workbook(prod / "registry.xlsx", read_only=True)["Metrics"]
    return sheet.cell(row, 3).value == metric and sheet.cell(row, 1).value == "fraud-score"


def test_a_draft_metric_given_in_models_and_metrics_names_both_cells(prod: Path):
    values = draft(prod, auc_roc=0.8)

    def change(wb: Any) -> None:
        add_draft(wb, **values)
        wb["Metrics"].append(["fraud-score", None, "auc_roc", 0.9, "performance", None])

    edit_workbook(prod / "registry.xlsx", change)
    result = seal(prod)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()[1:]
    assert line.strip().startswith("Metrics!D") and line.endswith("0.8 in Models!N3; keep one")


# --- messages -------------------------------------------------------------------------


def test_a_line_break_in_a_value_stays_inside_its_message(prod: Path):
    values = draft(prod, model="fraud\nscore")
    edit_workbook(prod / "registry.xlsx", lambda wb: add_draft(wb, **values))
    result = seal(prod)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "fraud\\nscore" in lines[1]


def test_an_unexpected_error_is_one_line_and_verbose_shows_where(
    prod: Path, monkeypatch: pytest.MonkeyPatch
):
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise TypeError("a bug\nover two lines")

    monkeypatch.setattr(regbook.cli.registering, "list_versions", broken)
    result = run(prod, "list")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        "regbook: unexpected error (TypeError: a bug\\nover two lines); please report it, "
        "with --verbose"
    ]
    verbose = CliRunner().invoke(cli, ["--verbose", "--workspace", str(prod), "list"])
    assert verbose.exit_code == 2 and "Traceback" in verbose.stderr


def test_the_file_system_refusing_is_one_line(prod: Path, monkeypatch: pytest.MonkeyPatch):
    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", "/somewhere/registry.xlsx")

    monkeypatch.setattr(regbook.cli.registering, "list_versions", refused)
    result = run(prod, "list")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["regbook: /somewhere/registry.xlsx: Permission denied"]


# --- arguments, keyring, logs and outputs ---------------------------------------------


def one_line_refusal(result: Result, *parts: str) -> None:
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("regbook: ") and "unexpected error" not in line
    for part in parts:
        assert part in line, line


def test_a_version_with_thousands_of_digits_is_refused(prod: Path):
    digits = "9" * 5000
    one_line_refusal(run(prod, "trace", f"credit-risk@{digits}"), "is too large")
    one_line_refusal(run(prod, "trace", f"credit-risk@{digits}+{'0' * 12}.{'0' * 8}.{'0' * 8}"),
                     "is too large")  # fmt: skip


@pytest.mark.parametrize("line", ["\v", "\u00a0", "bob@example.com \f"], ids=["vt", "nbsp", "ff"])
def test_keyring_fields_are_split_where_openssh_splits_them(prod: Path, line: str):
    with (prod / "allowed_signers").open("a", encoding="utf-8") as keyring:
        keyring.write(line + "\n")
    one_line_refusal(run(prod, "verify", "--no-artefacts"), "allowed_signers:")


def test_a_keyring_time_out_of_range_in_local_time(prod: Path, monkeypatch: pytest.MonkeyPatch):
    import time

    keyring = prod / "allowed_signers"
    text = keyring.read_text(encoding="utf-8")
    keyring.write_text(
        text.replace('="regbook-sme"', '="regbook-sme",valid-before="99991231235959"'),
        encoding="utf-8",
    )
    monkeypatch.setenv("TZ", "WEST5")  # five hours west of UTC, no time-zone data needed
    time.tzset()
    try:
        one_line_refusal(run(prod, "keys", "list"), "out of range")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_keyring_that_is_a_pipe_is_refused_not_waited_for(prod: Path):
    import os

    keyring = prod / "allowed_signers"
    keyring.unlink()
    os.mkfifo(keyring)
    one_line_refusal(run(prod, "verify", "--no-artefacts"), "must be a regular file")


def test_a_log_line_is_only_counted_when_it_is_json(prod: Path):
    from regbook.core.workspace import Workspace
    from regbook.registry.snapshot import open_registry

    cid = open_registry(Workspace.load(prod)).registry.get("credit-risk", 1).composite_id
    good = json.dumps({"composite_id": cid, "timestamp": "2026-06-01T00:00:00Z"})
    log = prod.parent / "inferences.jsonl"
    log.write_text("\n".join([
        good,
        good[:-1] + ", }",  # a trailing comma: not JSON
        good + " x",  # something after the object
        good.replace(", ", " "),  # no comma between the fields
        "[" * 5000 + "]" * 5000,  # nested deeper than the parser goes
        json.dumps({"composite_id": cid, "timestamp": "0001-01-01T00:00:00+01:00"}),
        json.dumps({"composite_id": cid, "timestamp": "9999-12-31T23:59:59-01:00"}),
    ]) + "\n", encoding="utf-8")  # fmt: skip
    result = run(prod, "trace", "--log", str(log), "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.output)
    unreadable = {p["subject"]: p["lines"] for p in report["problems"] if p["kind"] == "unreadable"}
    assert unreadable == {"that are not JSON": [2, 3, 4, 5]}
    (version,) = report["versions"]
    assert version["records"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("export", "provenance", "credit-risk@1", "-o", "{ws}/registry.xlsx"),
            "own registry.xlsx",
        ),
        (("export", "provenance", "credit-risk@1", "-o", "{ws}/regbook.toml"), "own regbook.toml"),
        (("report", "card", "credit-risk@1", "-o", "{ws}/allowed_signers.md"), None),
        (("report", "card", "credit-risk@1", "-o", "{ws}/models/card.md"), "models/ folder"),
        (("export", "signatures", "{ws}/archive/sigs"), "archive/ folder"),
        (("report", "card", "credit-risk@1", "-o", "{ws}/card.md/"), None),
    ],
    ids=["workbook", "settings", "beside-keyring", "models", "archive", "a-folder"],
)
def test_outputs_never_overwrite_the_workspace(prod: Path, args: tuple, message: str | None):
    (prod / "card.md").mkdir()
    argv = [a.format(ws=prod) for a in args]
    before = snapshot(prod)
    result = run(prod, *argv)
    if message is None:  # an ordinary file beside them is fine; a folder is not a file
        clean_end(result)
        return
    one_line_refusal(result, message)
    assert snapshot(prod) == before


def test_a_folder_given_as_the_output_file_is_refused(prod: Path):
    (prod.parent / "out.md").mkdir()
    one_line_refusal(
        run(prod, "report", "card", "credit-risk@1", "-o", str(prod.parent / "out.md")),
        "not a regular file",
    )


def test_usage_errors_are_one_line(prod: Path):
    one_line_refusal(run(prod, "list", "--stage", "bogus"), "--stage", "list --help")
    one_line_refusal(run(prod, "bogus"), "No such command")
    one_line_refusal(CliRunner().invoke(cli, ["--bogus"]), "No such option")


def test_a_long_text_is_cut_in_the_pdf_only(prod: Path):
    import io

    from pypdf import PdfReader

    note = "n" * 32_000
    lead = str(prod.parent / "keys" / "governance-lead")
    result = run(
        prod, "approve", "credit-risk@1", "--to", "Archived", "--key", lead, "--note", note
    )
    assert result.exit_code == 0, result.output
    pdf, md = prod.parent / "e.pdf", prod.parent / "e.md"
    clean_end(run(prod, "report", "evidence", "credit-risk@1", "-o", str(pdf)))
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "more characters in the HTML report" in " ".join(text.split())
    clean_end(run(prod, "report", "evidence", "credit-risk@1", "-o", str(md)))
    assert note in md.read_text(encoding="utf-8")


# --- writers refuse before they write ---------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--pipeline-run", "r" * 40_000), "an Excel cell holds at most"),
        (("--pipeline-run", "run\x01one"), "pipeline_run holds the control character U+0001"),
        (("--code-repo", "\x1b[31m"), "code_repo holds the control character U+001B"),
        (("--trained-on", "1900-01-15"), "before 1900-03-01"),
    ],
    ids=["payload-too-long", "control-character", "escape-sequence", "before-excel-dates"],
)
def test_register_refuses_before_copying_the_artefact(
    registered_fast: Env, extra: tuple[str, ...], message: str
):
    env = registered_fast
    artefact = env.root.parent / "new-model.bin"
    artefact.write_bytes(b"another model\n")
    before = snapshot(env.root)
    result = env.run(
        "register", "fraud-score", "--artefact", str(artefact), "--data-version", DATA_VERSION,
        "--code-commit", CODE_COMMIT, "--pipeline-run", "run-1", *extra, key="sme",
    )  # fmt: skip
    one_line_refusal(result, message)
    assert snapshot(env.root) == before
    assert not (env.root / "models" / "fraud-score").exists()


def test_approve_refuses_a_note_a_cell_cannot_keep(registered_fast: Env):
    env = registered_fast
    before = snapshot(env.root)
    result = env.run("approve", "credit-risk@1", "--to", "Staging", "--note", "a\x01b", key="sme")
    one_line_refusal(result, "note holds the control character U+0001")
    assert snapshot(env.root) == before


def test_register_refuses_an_artefact_folder_holding_the_workspace(registered_fast: Env):
    env = registered_fast
    before = snapshot(env.root)
    result = env.run(
        "register", "fraud-score", "--artefact", str(env.root.parent), "--data-version",
        DATA_VERSION, "--code-commit", CODE_COMMIT, "--pipeline-run", "run-1", key="sme",
    )  # fmt: skip
    one_line_refusal(result, "holds the workspace itself")
    assert snapshot(env.root) == before


@pytest.mark.parametrize("out", ["", "."], ids=["empty", "dot"])
def test_keys_new_needs_a_file_to_write(registered_fast: Env, out: str):
    env = registered_fast
    before = snapshot(env.root)
    result = env.run("keys", "new", "zoe@example.com", "--role", "sme", "--out", out)
    one_line_refusal(result, "give the path of the private key file")
    assert snapshot(env.root) == before


def test_a_draft_dated_before_excel_dates_is_a_problem(registered_fast: Env):
    env = registered_fast
    values = {**draft_values(env), "trained_on": "1900-01-15"}
    edit_workbook(env.workbook, lambda wb: add_draft(wb, **values))
    before = snapshot(env.root)
    result = env.run("seal", key="sme")
    assert result.exit_code == 2 and "before 1900-03-01" in result.stderr
    assert snapshot(env.root) == before


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (".", "holds the workspace itself"),
        ("registry.xlsx", "own registry.xlsx"),
        ("allowed_signers", "own allowed_signers"),
    ],  # fmt: skip
    ids=["workspace", "workbook", "keyring"],
)
def test_register_refuses_the_workspace_as_storage(
    registered_fast: Env, storage: str, message: str
):
    env = registered_fast
    before = snapshot(env.root)
    result = env.run(
        "register", "fraud-score", "--storage", storage, "--data-version", DATA_VERSION,
        "--code-commit", CODE_COMMIT, "--pipeline-run", "run-1", key="sme",
    )  # fmt: skip
    one_line_refusal(result, message)
    assert snapshot(env.root) == before


def test_a_huge_value_is_cut_in_its_message(registered_fast: Env):
    env = registered_fast
    values = {**draft_values(env), "params": "x" * 30_000}
    edit_workbook(env.workbook, lambda wb: add_draft(wb, **values))
    result = env.run("seal", key="sme")
    assert result.exit_code == 2
    problem = result.stderr.splitlines()[1]
    assert problem.strip().startswith("Models!M4: ") and len(problem) <= 1002
    assert problem.endswith("...")


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("[paths]", 'workbok = "other.xlsx"', "[paths] workbok: unknown setting"),
        ("[retention]", "yeras = 12", "[retention] yeras: unknown setting"),
        ("[links]", 'pipline = "https://ci.example.com/{id}"', "[links] pipline: unknown setting"),
    ],
    ids=["paths", "retention", "links"],
)
def test_a_misspelt_setting_is_refused(prod: Path, section: str, line: str, message: str):
    config = prod / "regbook.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(section, f"{section}\n{line}", 1),
        encoding="utf-8",
    )
    one_line_refusal(run(prod, "list"), message)


def test_an_empty_gates_table_is_no_gates_not_the_defaults(prod: Path):
    from regbook.core.workspace import Settings

    assert Settings.parse("[gates]\n").gates == {}
    assert Settings.parse("").gates  # no table at all: the defaults of DESIGN section 6
    config = prod / "regbook.toml"
    text = config.read_text(encoding="utf-8")
    # The tables themselves, not their names in the header comment.
    start = text.index("\n[gates]\n") + 1
    end = text.index("\n[links]\n") + 1
    config.write_text(text[:start] + "[gates]\n\n" + text[end:], encoding="utf-8")
    # A governance lead signs the policy without gates, so it is the one in force.
    signed = run(prod, "policy", "sign", "--key", str(prod.parent / "keys" / "governance-lead"))
    assert signed.exit_code == 0, signed.output
    result = run(prod, "gate", "credit-risk@1", "--key", str(prod.parent / "keys" / "ci"))
    one_line_refusal(result, "[gates] is empty")


def test_keys_new_takes_back_its_key_when_the_keyring_cannot_be_written(
    registered_fast: Env, monkeypatch: pytest.MonkeyPatch
):
    from regbook.core import fs

    real_write = fs.atomic_write

    def refused(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "allowed_signers":  # the keyring, and only it
            raise PermissionError(1, "Operation not permitted", "allowed_signers")
        return real_write(path, *args, **kwargs)

    env = registered_fast
    monkeypatch.setattr(fs, "atomic_write", refused)
    out = env.root.parent / "zoe"
    before = snapshot(env.root)
    result = env.run("keys", "new", "zoe@example.com", "--role", "sme", "--out", str(out),
                     key="governance-lead")  # fmt: skip
    one_line_refusal(result, "Operation not permitted")
    assert not out.exists() and not out.with_name("zoe.pub").exists()
    assert snapshot(env.root) == before  # no keyring line, no keyring event
    monkeypatch.undo()
    result = env.run("keys", "new", "zoe@example.com", "--role", "sme", "--out", str(out),
                     key="governance-lead")  # fmt: skip
    assert result.exit_code == 0, result.output


# --- [paths]: inside the workspace, or refused (issue 14 item 6) -------------------------


def _set_path(prod: Path, key: str, value: str) -> None:
    """Edit regbook.toml by hand, as anyone who can write the workspace can."""
    config = prod / "regbook.toml"
    text = config.read_text(encoding="utf-8")
    start = text.index(f"\n{key} = ", text.index("[paths]"))
    end = text.index("\n", start + 1)
    config.write_text(f"{text[:start]}\n{key} = {json.dumps(value)}{text[end:]}", "utf-8")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("models", "/", "[paths] models: '/' is outside the workspace"),
        ("archive", "/tmp/bags", "[paths] archive: '/tmp/bags' is outside the workspace"),
        ("models", "../share", "[paths] models: '../share' is outside the workspace"),
        ("models", "models/../../share", "is outside the workspace (it climbs out with '..')"),
        ("workbook", "..\\registry.xlsx", "[paths] workbook: '..\\\\registry.xlsx' is outside"),
        ("keyring", "C:/keys/allowed_signers", "[paths] keyring: 'C:/keys/allowed_signers' is"),
        ("models", "\\\\server\\share", "[paths] models: '\\\\\\\\server\\\\share' is outside"),
        ("models", ".", "[paths] models: '.' is the workspace folder itself"),
        ("archive", "./", "[paths] archive: './' is the workspace folder itself"),
        ("archive", "models", "[paths] archive: 'models' is inside the models folder"),
        ("models", "archive/models", "[paths] models: 'archive/models' is inside the archive"),
        ("workbook", "models/registry.xlsx", "[paths] workbook: 'models/registry.xlsx' is inside"),
    ],
)
def test_a_path_setting_outside_the_workspace_is_refused(
    prod: Path, key: str, value: str, message: str
):
    _set_path(prod, key, value)
    one_line_refusal(run(prod, "list"), message)
    one_line_refusal(run(prod, "verify"), message)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_path_setting_through_a_symlink_out_of_the_workspace_is_refused(
    prod: Path, tmp_path: Path
):
    share = tmp_path / "share"
    share.mkdir()
    try:
        (prod / "store").symlink_to(share, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not permitted here")
    _set_path(prod, "models", "store")
    one_line_refusal(run(prod, "list"), "[paths] models: 'store' is outside the workspace",
                     "through a symlink")  # fmt: skip
    _set_path(prod, "models", "store/sub")  # does not exist yet: resolves through the link
    one_line_refusal(run(prod, "list"), "[paths] models: 'store/sub' is outside the workspace")
    (prod / "store").unlink()
    (prod / "store").symlink_to(prod / "models", target_is_directory=True)
    _set_path(prod, "models", "store")  # a link that stays inside is the workspace's own
    assert run(prod, "list").exit_code == 0


def test_paths_inside_the_workspace_are_accepted():
    from regbook.core.workspace import Settings

    text = '[paths]\nmodels = "store/models"\narchive = "./store/archive"\nworkbook = "book.xlsx"\n'
    settings = Settings.parse(text)
    assert (settings.models, settings.archive) == ("store/models", "./store/archive")
