"""Exports: the in-toto Statement v1 / SLSA Provenance v1, checked field by field
against the specs' rules; DSSE signing, checked with an independent verifier; and the
signatures export, whose script is run for real with stock ssh-keygen."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from regbook.core.errors import InputError
from regbook.core.ids import ModelRef
from regbook.crypto.keys import load_private_key
from regbook.registry.snapshot import LEDGER_ONLY, open_registry
from regbook.reports.export import (
    BUILD_TYPE,
    PAYLOAD_TYPE,
    SCRIPT_NAME,
    dsse_envelope,
    export_signatures,
    pae,
    provenance_statement,
    resource_uri,
    statement_bytes,
    verify_envelope,
)
from test_lineage import (
    DATA_URL,
    Lineage,
    md5,
    pytestmark,  # noqa: F401  (git is needed here too)
    tamper_registration,
)

SSH_KEYGEN = shutil.which("ssh-keygen")
HEX = re.compile(r"[0-9a-f]+")

# Field names the specs define, per object; anything else must be an extension field
# (`<vendor>_<name>`: "Non-extension field names never contain an underscore").
STATEMENT_FIELDS = {"_type", "subject", "predicateType", "predicate"}
DESCRIPTOR_FIELDS = {"name", "uri", "digest", "content", "downloadLocation", "mediaType",
                     "annotations"}  # fmt: skip
PREDICATE_FIELDS = {"buildDefinition", "runDetails"}
BUILD_DEFINITION_FIELDS = {"buildType", "externalParameters", "internalParameters",
                           "resolvedDependencies"}  # fmt: skip
RUN_DETAILS_FIELDS = {"builder", "metadata", "byproducts"}
BUILDER_FIELDS = {"id", "version", "builderDependencies"}
METADATA_FIELDS = {"invocationId", "startedOn", "finishedOn"}
DIGEST_LENGTHS = {"sha256": (64,), "md5": (32,), "gitCommit": (40, 64), "dirHash1": (64,)}


def check_fields(obj: dict, known: set[str], where: str) -> None:
    for name in obj:
        assert name in known or "_" in name, (
            f"{where}: {name!r} is neither a spec field nor an extension field"
        )


def check_uri(text: str, where: str) -> None:
    """TypeURI / ResourceURI: an RFC 3986 URI, scheme and authority in lower case."""
    match = re.fullmatch(r"([a-zA-Z][a-zA-Z0-9+.-]*):(//([^/?#]*))?[^\s]*", text)
    assert match, f"{where}: {text!r} is not a URI"
    assert match[1] == match[1].lower(), f"{where}: scheme not lower case"
    if match[3]:
        host = match[3].rpartition("@")[2]
        assert host == host.lower(), f"{where}: authority not lower case"


def check_digest(digest: dict, where: str) -> None:
    assert isinstance(digest, dict) and digest, f"{where}: a DigestSet has at least one entry"
    for algorithm, value in digest.items():
        assert algorithm in DIGEST_LENGTHS, f"{where}: unexpected algorithm {algorithm}"
        assert HEX.fullmatch(value), f"{where}: {algorithm} must be lower-case hex"
        assert len(value) in DIGEST_LENGTHS[algorithm], f"{where}: {algorithm} length"


def check_descriptor(rd: dict, where: str) -> None:
    check_fields(rd, DESCRIPTOR_FIELDS, where)
    assert {"uri", "digest", "content"} & set(rd), f"{where}: needs uri, digest or content"
    if "uri" in rd:
        check_uri(rd["uri"], f"{where}.uri")
    if "digest" in rd:
        check_digest(rd["digest"], f"{where}.digest")
    if "content" in rd:
        base64.b64decode(rd["content"], validate=True)
    if "annotations" in rd:
        assert isinstance(rd["annotations"], dict)


def check_statement(st: dict) -> None:
    """The in-toto Statement v1 and SLSA Provenance v1 rules, field by field."""
    check_fields(st, STATEMENT_FIELDS, "statement")
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert isinstance(st["subject"], list) and st["subject"]
    names = [s.get("name") for s in st["subject"]]
    assert len(names) == len(set(names)), "subject names are unique"
    for i, subject in enumerate(st["subject"]):
        assert "digest" in subject, "each subject MUST have digest set"
        check_descriptor(subject, f"subject[{i}]")
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    check_uri(st["predicateType"], "predicateType")
    pred = st["predicate"]
    check_fields(pred, PREDICATE_FIELDS, "predicate")
    bd, rd = pred["buildDefinition"], pred["runDetails"]  # required for SLSA Build L1
    check_fields(bd, BUILD_DEFINITION_FIELDS, "buildDefinition")
    check_uri(bd["buildType"], "buildType")
    assert isinstance(bd["externalParameters"], dict)  # required
    assert isinstance(bd.get("internalParameters", {}), dict)
    for i, dep in enumerate(bd.get("resolvedDependencies", [])):
        check_descriptor(dep, f"resolvedDependencies[{i}]")
    check_fields(rd, RUN_DETAILS_FIELDS, "runDetails")
    check_fields(rd["builder"], BUILDER_FIELDS, "builder")
    check_uri(rd["builder"]["id"], "builder.id")  # required
    meta = rd.get("metadata", {})
    check_fields(meta, METADATA_FIELDS, "metadata")
    assert isinstance(meta.get("invocationId", ""), str)
    for stamp in ("startedOn", "finishedOn"):
        if stamp in meta:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", meta[stamp])
    for i, product in enumerate(rd.get("byproducts", [])):
        check_descriptor(product, f"byproducts[{i}]")


# --- the provenance statement ------------------------------------------------------------


def test_statement_for_a_file_artefact_field_by_field(built: Lineage):
    ws = built.ws
    st = provenance_statement(
        open_registry(ws, sheets=LEDGER_ONLY), ModelRef.parse("credit-risk@1"), data_repo=built.data
    )
    check_statement(st)

    state = open_registry(ws, sheets=LEDGER_ONLY).registry.get("credit-risk", 1)
    (subject,) = st["subject"]
    assert subject["name"] == "model.pkl"
    assert subject["digest"] == {"sha256": state.content_hash.split(":")[1]}
    stored = next((ws.models_dir / "credit-risk" / "1").iterdir())
    assert subject["digest"]["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert subject["annotations"]["regbook_compositeId"] == built.ids[1]
    bd = st["predicate"]["buildDefinition"]
    assert bd["buildType"] == BUILD_TYPE
    code, data = bd["resolvedDependencies"]
    assert code["name"] == "code" and code["digest"] == {"gitCommit": built.code_commit}
    assert code["uri"] == "git+file://" + built.code.resolve().as_posix()
    assert data["name"] == "data" and data["digest"] == {"gitCommit": built.data_commit}
    assert data["uri"] == "git+" + DATA_URL
    outs = {o["path"]: o for o in data["annotations"]["dvc_outs"]}
    assert outs["data/applications.csv"]["md5"] == md5("applications")
    assert outs["data/bureau"] == {"path": "data/bureau", "md5": md5("bureau"), "hash": "md5",
                                   "source": "data/bureau.dvc", "dir": True,
                                   "size": 912004551, "nfiles": 24}  # fmt: skip
    assert outs["data/holdout.csv"]["hash"] == "md5-dos2unix"
    assert bd["externalParameters"]["hyperparameters"] == {"max_depth": "6"}
    rd = st["predicate"]["runDetails"]
    assert rd["metadata"]["invocationId"] == "train-0042"
    assert rd["builder"]["id"] == "urn:regbook:registrant:alice@example.com"
    (evaluation,) = rd["byproducts"]
    content = base64.b64decode(evaluation["content"])
    assert evaluation["digest"] == {"sha256": hashlib.sha256(content).hexdigest()}
    assert evaluation["mediaType"] == "application/json"
    body = json.loads(content)
    assert body["gate"]["result"] == "PASS"
    assert {m["metric"]: m["value"] for m in body["metrics"]}["auc_roc"] == 0.83
    assert content == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def test_folder_artefact_digest_is_in_totos_dirhash1(built: Lineage):
    st = provenance_statement(
        open_registry(built.ws, sheets=LEDGER_ONLY), ModelRef.parse("credit-risk@2")
    )
    check_statement(st)
    (subject,) = st["subject"]
    folder = built.ws.models_dir / "credit-risk" / "2" / subject["name"]
    # The in-toto DigestSet spec's own recipe for dirHash1.
    done = subprocess.run(
        "find . -type f | cut -c3- | LC_ALL=C sort | xargs -r sha256sum | sha256sum "
        "| cut -f1 -d' '",
        shell=True, cwd=folder, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert subject["digest"] == {"dirHash1": done.stdout.strip()}
    assert subject["annotations"]["regbook_contentHash"] == f"sha256-tree:{done.stdout.strip()}"


def test_a_dvc_md5_data_version_and_its_registry_commit(built: Lineage):
    st = provenance_statement(
        open_registry(built.ws, sheets=LEDGER_ONLY),
        ModelRef.parse("credit-risk@2"),
        data_repo=built.data,
    )
    check_statement(st)
    deps = {d["name"]: d for d in st["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["training-data"]["digest"] == {"md5": md5("applications")}
    assert "uri" not in deps["training-data"]  # the md5 is of the data, not a repository
    registry = deps["data-registry"]
    assert registry["digest"] == {"gitCommit": built.data_commit}
    assert registry["uri"] == "git+" + DATA_URL
    assert md5("applications") in {o["md5"] for o in registry["annotations"]["dvc_outs"]}
    assert deps["code"]["uri"] == "git+https://git.example.com/risk/credit-risk.git"


def test_without_the_data_repository_there_are_no_annotations(built: Lineage):
    st = provenance_statement(
        open_registry(built.ws, sheets=LEDGER_ONLY), ModelRef.parse("credit-risk@1")
    )
    data = st["predicate"]["buildDefinition"]["resolvedDependencies"][1]
    assert data["digest"] == {"gitCommit": built.data_commit} and "annotations" not in data


def test_builder_and_invocation_link_from_regbook_toml(fresh: Lineage):
    config = fresh.ws_root / "regbook.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'pipeline = ""', 'pipeline = "HTTPS://CI.Example/runs/{id}"'
        ),
        encoding="utf-8",
    )
    st = provenance_statement(
        open_registry(fresh.ws, sheets=LEDGER_ONLY), ModelRef.parse("credit-risk@1")
    )
    check_statement(st)
    rd = st["predicate"]["runDetails"]
    assert rd["builder"]["id"] == "https://ci.example/"
    assert rd["metadata"]["regbook_invocationUrl"] == "HTTPS://CI.Example/runs/train-0042"


@pytest.mark.parametrize(
    ("recorded", "uri"),
    [
        ("https://Git.Example.COM/Risk/Repo.git", "git+https://git.example.com/Risk/Repo.git"),
        ("git@GitHub.com:org/repo.git", "git+ssh://git@github.com/org/repo.git"),
        ("git+ssh://git@host/x", "git+ssh://git@host/x"),
        ("", None),
    ],
)
def test_resource_uris(recorded: str, uri: str | None, tmp_path: Path):
    assert resource_uri(recorded, tmp_path) == uri


def test_cli_export_provenance(built: Lineage, tmp_path: Path):
    out = tmp_path / "prov.json"
    result = built.run("export", "provenance", "credit-risk@1", "-o", str(out),
                       "--data-repo", str(built.data))  # fmt: skip
    assert result.exit_code == 0, result.output
    check_statement(json.loads(out.read_text(encoding="utf-8")))
    stdout = built.run("export", "provenance", "credit-risk@1")
    assert stdout.exit_code == 0
    check_statement(json.loads(stdout.output))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("credit-risk@9",), "no such sealed version"),
        (("credit-risk",), "is not MODEL@VERSION"),
        (("credit-risk@1", "--sign"), "no signing key"),
        (("credit-risk@1", "--key", "x"), "--key goes with --sign"),
    ],
)
def test_cli_export_provenance_bad_input(built: Lineage, args: tuple, message: str):
    result = built.run("export", "provenance", *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_regbook_key_in_the_environment_does_not_sign_unasked(built: Lineage):
    result = built.run(
        "export", "provenance", "credit-risk@1", env={"REGBOOK_KEY": str(built.keys["ci"])}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["_type"] == "https://in-toto.io/Statement/v1"


def test_export_refuses_a_tampered_ledger(fresh: Lineage):
    tamper_registration(fresh.ws_root)  # credit-risk@1's registration
    result = fresh.run("export", "provenance", "credit-risk@1")
    assert result.exit_code == 1 and "does not vouch" in result.output


# --- DSSE -------------------------------------------------------------------------------


def test_pae_is_the_dsse_encoding():
    body = b'{"_type":"https://in-toto.io/Statement/v1"}'
    assert pae(PAYLOAD_TYPE, body) == b"DSSEv1 28 application/vnd.in-toto+json 43 " + body
    assert pae("tybé", b"") == b"DSSEv1 5 tyb\xc3\xa9 0 "  # lengths count bytes


def test_signed_envelope_verifies_and_binds_type_and_payload(built: Lineage, tmp_path: Path):
    key = load_private_key(built.keys["ci"])
    out = tmp_path / "prov.dsse.json"
    result = built.run("export", "provenance", "credit-risk@1", "--sign",
                       "--key", str(built.keys["ci"]), "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    envelope = json.loads(out.read_text(encoding="utf-8"))
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    (sig,) = envelope["signatures"]
    assert sig["keyid"] == key.public.fingerprint and sig["keyid"].startswith("SHA256:")
    payload = base64.b64decode(envelope["payload"], validate=True)
    statement = json.loads(payload)
    check_statement(statement)
    assert payload == statement_bytes(statement)  # RFC 8785 bytes
    # An independent check of the Ed25519 signature over PAE(type, payload).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(key.public.raw).verify(
        base64.b64decode(sig["sig"]), pae(PAYLOAD_TYPE, payload)
    )
    assert verify_envelope(envelope, key.public) == payload
    for changed in (
        {**envelope, "payloadType": "application/vnd.example.other+json"},
        {**envelope, "payload": base64.b64encode(payload.replace(b"0042", b"0043")).decode()},
    ):
        with pytest.raises(InputError, match="no signature"):
            verify_envelope(changed, key.public)
    other = load_private_key(built.keys["sme"])
    with pytest.raises(InputError):
        verify_envelope(envelope, other.public)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_dsse_signature_checks_with_openssl(built: Lineage, tmp_path: Path):
    from cryptography.hazmat.primitives import serialization

    key = load_private_key(built.keys["ci"])
    envelope = dsse_envelope(b'{"hello":"world"}', key)
    (tmp_path / "pae.bin").write_bytes(pae(PAYLOAD_TYPE, b'{"hello":"world"}'))
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(envelope["signatures"][0]["sig"]))
    (tmp_path / "pub.pem").write_bytes(
        key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    done = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin",
         "-in", "pae.bin", "-sigfile", "sig.bin"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout


# --- the signatures export, checked with stock ssh-keygen --------------------------------

# CI must have ssh-keygen (the auditor's tool); a developer without it skips these.
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None and not os.environ.get("CI"), reason="ssh-keygen is not installed"
)


def run_script(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(folder / SCRIPT_NAME), *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@needs_ssh_keygen
def test_exported_signatures_check_with_ssh_keygen(built: Lineage, tmp_path: Path):
    dest = tmp_path / "signatures"
    result = built.run("export", "signatures", str(dest))
    assert result.exit_code == 0, result.output
    # 3 keyring events (the workspace's keys), 3 registrations, 5 workflow events.
    assert "wrote 11 events" in result.output
    files = sorted(p.name for p in (dest / "events").iterdir())
    assert files[:2] == ["000001.json", "000001.json.sig"] and len(files) == 22
    assert (dest / "allowed_signers").read_bytes() == built.ws.keyring_path.read_bytes()
    tsv = (dest / "events.tsv").read_text(encoding="utf-8").splitlines()
    first = tsv[1].split("\t")
    assert [first[i] for i in (0, 1, 3, 4)] == ["1", "keyring", "gina@example.com",
                                                "regbook-governance-lead"]  # fmt: skip
    assert tsv[4].split("\t")[:5] == ["4", "register", "credit-risk@1", "alice@example.com",
                                      "regbook-sme"]  # fmt: skip
    done = run_script(dest)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("11 event(s) verified, 0 failed")
    # Each event by hand, exactly as the script's header says: the lead's approval for
    # Production (event 10).
    assert tsv[10].split("\t")[:4] == ["10", "approve", "credit-risk@1", "gina@example.com"]
    one = subprocess.run(
        [SSH_KEYGEN, "-Y", "verify", "-f", str(dest / "allowed_signers"), "-I",
         "gina@example.com", "-n", "regbook-governance-lead", "-s",
         str(dest / "events" / "000010.json.sig")],
        input=(dest / "events" / "000010.json").read_bytes(), capture_output=True,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr


@needs_ssh_keygen
def test_the_script_catches_tampering(built: Lineage, tmp_path: Path):
    dest = tmp_path / "signatures"
    export_signatures(open_registry(built.ws, sheets=LEDGER_ONLY, signatures=False), dest)
    # credit-risk@2's registration (event 5, after the 3 keyring events).
    event = dest / "events" / "000005.json"
    assert b"train-0043" in event.read_bytes()
    event.write_bytes(event.read_bytes().replace(b"train-0043", b"train-0666"))
    done = run_script(dest)
    assert done.returncode == 1
    assert "BAD  event 000005: signature by alice@example.com in regbook-sme" in done.stdout
    assert "BAD  event 000005: its bytes hash to" in done.stdout
    assert done.stdout.strip().endswith("10 event(s) verified, 1 failed")


@needs_ssh_keygen
def test_the_script_checks_keys_at_each_events_time(built: Lineage, tmp_path: Path):
    """Keys that expired since (valid-before in the past) still verify the events they
    signed in time; a key not yet valid when it signed does not."""
    dest = tmp_path / "signatures"
    export_signatures(open_registry(built.ws, sheets=LEDGER_ONLY, signatures=False), dest)
    text = (dest / "allowed_signers").read_text(encoding="utf-8")
    rotated = tmp_path / "rotated_signers"
    rotated.write_text(
        text.replace('namespaces="', 'valid-before="20260201Z",namespaces="'), encoding="utf-8"
    )
    done = run_script(dest, str(rotated))
    assert done.returncode == 0, done.stdout + done.stderr
    late = tmp_path / "late_signers"
    late.write_text(
        text.replace('namespaces="regbook-sme"',
                     'valid-after="20260110093000Z",namespaces="regbook-sme"'),
        encoding="utf-8",
    )  # fmt: skip
    done = run_script(dest, str(late))
    assert done.returncode == 1
    # Only credit-risk@1's registration (event 4, 09:00) precedes the sme key's window.
    assert done.stdout.count("BAD  event") == 1 and "event 000004" in done.stdout


def test_export_signatures_refuses_a_non_empty_folder(built: Lineage, tmp_path: Path):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "x").write_text("x", encoding="utf-8")
    result = built.run("export", "signatures", str(dest))
    assert result.exit_code == 2 and "not an empty folder" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert built.run("export", "signatures", str(empty), "--json").exit_code == 0
    assert (
        json.loads(built.run("export", "signatures", str(tmp_path / "n"), "--json").output)[
            "events"
        ]
        == 11
    )
    assert not list(tmp_path.glob(".*partial*"))
