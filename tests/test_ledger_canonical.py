"""The Ledger's own cells are canonical: each holds exactly what regbook wrote. An edit
that reads as the same event (blanks around text, a Seq spelt 5.0, a re-wrapped
signature, a payload in another JSON spelling) leaves hash and signature good, and is
still a finding naming the cell (RB121). A keyring line with a wildcard principal
grants no signer. A workbook re-saved by LibreOffice stays clean."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import Env, edit_part, edit_workbook, finding, problems, signing_material
from regbook.crypto import keys
from regbook.ledger.events import event_bytes, parse_payload
from test_libreoffice import SOFFICE, resave

# registered_fast's Ledger: rows 2-4 the keyring events, 5 and 6 credit-risk@1 and @2.
LAST = 6


def verify(env: Env) -> tuple[int, dict[str, Any]]:
    result = env.run("verify", "--json")
    return result.exit_code, json.loads(result.stdout)


def ledger_cell(env: Env, ref: str) -> Any:
    import openpyxl

    return openpyxl.load_workbook(env.workbook)["Ledger"][ref].value


def set_ledger_cell(env: Env, ref: str, value: Any) -> None:
    def change(wb: Any) -> None:
        wb["Ledger"][ref].value = value

    edit_workbook(env.workbook, change)


def only_rb121(report: dict[str, Any], where: str) -> str:
    """The message of the one RB121 at ``where``, and no other ledger finding."""
    message = str(finding(report, "RB121", where)["message"])
    assert {p for p in problems(report) if p[0].startswith("RB1")} == {("RB121", where)}
    return message


@pytest.mark.parametrize(
    ("ref", "edit"),
    [
        ("B5", lambda t: f" {t}"),  # At
        ("D5", lambda t: f"{t} "),  # Model
        ("F5", lambda t: f"{t}\n"),  # Payload
        ("H5", lambda t: f"\t{t}"),  # Hash
        ("I6", lambda t: f" {t} "),  # Signer
        ("K6", lambda t: f"  {t}"),  # Signature
    ],
)
def test_blanks_around_ledger_text_are_a_finding(registered_fast: Env, ref: str, edit: Any):
    set_ledger_cell(registered_fast, ref, edit(ledger_cell(registered_fast, ref)))
    code, report = verify(registered_fast)
    assert code == 1
    only_rb121(report, f"Ledger!{ref}")


def test_seq_typed_as_text_is_a_finding(registered_fast: Env):
    set_ledger_cell(registered_fast, "A5", "4")
    code, report = verify(registered_fast)
    assert code == 1
    assert "holds the text '4'" in only_rb121(report, "Ledger!A5")


def rewrite_ledger_xml(env: Env, change: Any) -> None:
    """Edit the Ledger sheet's XML inside the xlsx package, as an attacker with a zip
    tool would (Excel never writes these spellings)."""
    edit_part(env.workbook, "Ledger", change)


@pytest.mark.parametrize(
    ("cell", "before", "after"),
    [("A5", "4", "4.0"), ("A6", "5", "5.00"), ("E5", "1", "1.0"), ("E6", "2", "2E0"),
     ("A5", "4", "04")],
)  # fmt: skip
def testwhole_number_spelt_otherwise_in_the_xml_is_a_finding(
    registered_fast: Env, cell: str, before: str, after: str
):
    def change(data: bytes) -> bytes:
        pattern = rf'(<c r="{cell}"[^>]*><v>){before}(</v>)'.encode()
        return re.sub(pattern, rb"\g<1>" + after.encode() + rb"\g<2>", data)

    rewrite_ledger_xml(registered_fast, change)
    code, report = verify(registered_fast)
    assert code == 1
    assert f"spelt '{after}'" in only_rb121(report, f"Ledger!{cell}")


@pytest.mark.parametrize("layout", ["width 64", "blank line", "one line", "no final break"])
def test_signature_laid_out_otherwise_is_a_finding(registered_fast: Env, layout: str):
    armored = ledger_cell(registered_fast, "K6")
    lines = armored.strip().split("\n")
    b64 = "".join(lines[1:-1])
    if layout == "width 64":
        body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
        text = f"{lines[0]}\n{body}\n{lines[-1]}\n"
    elif layout == "blank line":
        text = armored.replace("\n", "\n\n", 1)
    elif layout == "one line":
        text = f"{lines[0]}\n{b64}\n{lines[-1]}\n"
    else:
        text = armored.rstrip("\n")
    assert keys.Signature.parse(text) == keys.Signature.parse(armored)  # the same signature
    set_ledger_cell(registered_fast, "K6", text)
    code, report = verify(registered_fast)
    assert code == 1
    assert "not laid out as regbook" in only_rb121(report, "Ledger!K6")


def test_signature_with_unused_base64_bits_set_is_not_as_written():
    base = "AAAA" * 17 + "AQ=="  # the last quantum has 4 unused bits, here zero
    text = f"{keys.SIG_BEGIN}\n{base[:70]}\n{base[70:]}\n{keys.SIG_END}\n"
    assert keys.armored_as_written(text)
    assert not keys.armored_as_written(text.replace("AQ\n==", "AR\n=="))  # decodes the same


def resign_last(env: Env, payload_text: str) -> None:
    """Rewrite the last event's payload, hash and signature as its signer's key would:
    a hostile signer writing a payload regbook never writes."""
    import openpyxl

    wb = openpyxl.load_workbook(env.workbook)
    sheet = wb["Ledger"]
    seq, at, kind, model, version, _payload, prev, _hash, signer, fingerprint, _sig = (
        c.value for c in sheet[LAST]
    )
    data = event_bytes(seq, at, kind, model, version, payload_text, prev, signer, fingerprint)
    key = keys.load_private_key(env.keys["sme"])
    sheet[f"F{LAST}"].value = payload_text
    sheet[f"H{LAST}"].value = hashlib.sha256(data).hexdigest()
    sheet[f"K{LAST}"].value = keys.sign(data, key, keys.namespace_for("sme"))
    wb.save(env.workbook)


@pytest.mark.parametrize(
    "spelling",
    [
        lambda t: t.replace(',"code_commit"', ', "code_commit"', 1),  # a blank
        lambda t: t.replace('{"artefact"', '{"registry":"x","artefact"', 1),  # repeated key
        lambda t: t.replace('"value":0.83', '"value":8.3e-1', 1),  # another number spelling
        lambda t: t.replace('"files":1', '"files":1.0', 1),  # a whole number as a float
        lambda t: t.replace('"code_repo":""', '"code_repo":"\\u0041"', 1),  # an escape
    ],
)
def test_payload_not_in_its_canonical_form_is_a_finding(registered_fast: Env, spelling: Any):
    text = ledger_cell(registered_fast, f"F{LAST}")
    edited = spelling(text)
    assert edited != text and isinstance(json.loads(edited), dict)
    resign_last(registered_fast, edited)
    code, report = verify(registered_fast)
    assert code == 1
    assert "not its own RFC 8785 form" in str(
        finding(report, "RB121", f"Ledger!F{LAST}")["message"]
    )
    assert not {p for p in problems(report) if p[0] in ("RB101", "RB102", "RB104", "RB105")}


CANONICAL = [
    "{}",
    '{"a":[1,-2,0.5,1e+21,1e-7,0.00012],"b":{"c":null,"d":true},"é":"☕\\n\\u001f"}',
    '{"a":0.00001,"b":1e-7,"c":1.5e+300}',
    '{"big":9007199254740991,"x":"\\"\\\\"}',
    '{"\U0001f600":1,"\ufb01":2}',  # UTF-16 order: the astral key first
]
NOT_CANONICAL = [
    '{"b":1,"a":2}',
    '{"a":1,"a":1}',
    '{"a":5.0}',
    '{"a":-0}',
    '{"a":1E+21}',
    '{"a":1e-05}',  # Python's spelling; RFC 8785 writes 0.00001
    '{"a":9007199254740993}',
    '{"a":NaN}',
    '{"a":"\\u00e9"}',
    '{"a":"\\/"}',
    '{"a":"\\u001F"}',
    '{ "a":1}',
    '{"\ufb01":2,"\U0001f600":1}',  # code-point order, not UTF-16's
]


@pytest.mark.parametrize("text", CANONICAL)
def test_parse_payload_accepts_rfc8785_text(text: str):
    assert parse_payload(text)[1] is True


@pytest.mark.parametrize("text", NOT_CANONICAL)
def test_parse_payload_refuses_other_spellings(text: str):
    assert parse_payload(text)[1] is False


# --- wildcard principals ----------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return signing_material(tmp_path_factory.mktemp("wild"))


@pytest.mark.parametrize("who", ["*", "ana@*", "an?@bank.example", '"ana@bank.example,*@ci"'])
def test_a_wildcard_principal_line_grants_no_signer(tmp_path: Path, who: str):
    key = keys.generate_key(tmp_path / "k", comment="ana")
    ring = keys.Keyring.parse(f'{who} namespaces="regbook-sme" {key.public}\n')
    armored = keys.sign(b"event", key, "regbook-sme")
    full = keys.check_signature(b"event", armored, ring, "ana@bank.example", None, NOW)
    assert not full.ok and full.problem == "principal-mismatch"
    assert "wildcard principal" in full.detail
    assert keys.quick_check(b"event", armored, ring, "ana@bank.example", NOW) is None
    assert ring.roles_for("ana@bank.example", key.public) == set()


def test_verify_refuses_events_signed_under_a_wildcard_principal(registered_fast: Env):
    ring = registered_fast.root / "allowed_signers"
    text = ring.read_text()
    assert "\nalice@example.com " in text
    ring.write_text(text.replace("\nalice@example.com ", '\n"alice@example.com,*" ', 1))
    code, report = verify(registered_fast)
    assert code == 1
    for row in (5, 6):  # alice's registrations
        assert "wildcard principal" in str(finding(report, "RB105", f"Ledger!K{row}")["message"])


# --- clean round trips ------------------------------------------------------------------


def test_untouched_registry_has_no_rb121(registered_fast: Env):
    code, report = verify(registered_fast)
    assert code == 0, report
    assert not [f for f in report["findings"] if f["code"] == "RB121"]


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice is not installed")
def test_registry_resaved_by_libreoffice_stays_clean(registered_fast: Env, tmp_path: Path):
    saved = resave(registered_fast.workbook, tmp_path / "lo", "xlsx")
    with zipfile.ZipFile(saved) as zf:
        ledger = zf.read("xl/worksheets/sheet7.xml")
    assert b"inlineStr" not in ledger  # LibreOffice rewrote every cell (shared strings)
    shutil.copyfile(saved, registered_fast.workbook)
    code, report = verify(registered_fast)
    assert code == 0, report["findings"]


def testwhole_number_spelt_otherwise_behind_attributes_is_a_finding(registered_fast: Env):
    def change(data: bytes) -> bytes:
        return re.sub(rb'(<c r="A5"[^>]*>)<v>4</v>', rb'\1<v xml:space="preserve">4.0</v>', data)

    rewrite_ledger_xml(registered_fast, change)
    code, report = verify(registered_fast)
    assert code == 1
    assert "spelt '4.0'" in only_rb121(report, "Ledger!A5")
