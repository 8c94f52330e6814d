"""Evidence packs: one zip an auditor can take away and re-check without regbook.

``write_pack(ws, ref, output)`` writes ``output`` (a .zip) holding, under one folder
named after the version::

    README.txt            what each file is and how to check it with stock tools
    evidence.html         the evidence report (self-contained, printable)
    evidence.pdf          the same report as PDF
    model-card.md         the model card
    provenance.json       the in-toto / SLSA provenance statement (``export provenance``)
    signatures/           every ledger event's signed bytes and SSH signature, with a
                          script that re-checks them with ssh-keygen (``export signatures``)
    registry.xlsx         a copy of the workbook the pack was made from
    allowed_signers       a copy of the keyring
    MANIFEST.sha256       sha256 of every file above, for ``sha256sum -c``

The workbook and keyring are read once; if either changes while the pack is being
made, nothing is written and the command says so (run it again). A version with
problems still gets its pack: the reports list the problems at the top, and a
provenance statement the ledger cannot vouch for is left out and the reason written
in README.txt.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from regbook.check.verify import verify
from regbook.core.errors import InputError, VerificationFailed, plural
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.registry.snapshot import CARD_SHEETS, Snapshot, open_registry
from regbook.registry.witness import Witness
from regbook.render.card import build_card, render_card_markdown
from regbook.render.pdf import prepare as prepare_pdf
from regbook.render.pdf import render_pdf
from regbook.render.text import format_of
from regbook.reports.evidence import evidence_data, render_html
from regbook.reports.export import (
    export_provenance,
    signature_files,
    write_atomic,
)

MANIFEST = "MANIFEST.sha256"
STORED_BELOW = 4096  # bytes: smaller files go into the zip as they are


@dataclass
class Pack:
    """What went into a pack: the zip, its folder, its files and their digests."""

    path: Path
    folder: str
    composite_id: str
    problems: int
    generated_at: str
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 hex
    missing: dict[str, str] = field(default_factory=dict)  # name -> why it is not there

    def to_json(self) -> dict[str, Any]:
        return {
            "pack": str(self.path),
            "folder": self.folder,
            "composite_id": self.composite_id,
            "problems": self.problems,
            "generated_at": self.generated_at,
            "files": self.files,
            "missing": self.missing,
        }


def manifest_text(files: dict[str, bytes]) -> str:
    """``sha256sum`` output for ``files`` (relative POSIX names), sorted by name."""
    return "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    )


def pack_folder(ref: ModelRef) -> str:
    """The one top-level folder inside the zip: ``NAME-VERSION-evidence``."""
    return f"{ref.name}-{ref.version}-evidence"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from None


def _provenance(snapshot: Snapshot, ref: ModelRef) -> tuple[bytes | None, str]:
    try:
        return export_provenance(snapshot, ref), ""
    except VerificationFailed as err:
        return None, str(err)


def _readme(folder: str, composite_id: str, problems: int, missing: dict[str, str]) -> str:
    lines = [
        f"Evidence pack for {composite_id}",
        "",
        f"Check every file in this pack:  cd {folder} && sha256sum -c {MANIFEST}",
        "Re-check every ledger signature with OpenSSH:  sh signatures/verify-signatures.sh",
        "  (give your own pinned copy of allowed_signers as its argument to check against it)",
        "",
        "evidence.html    the evidence report; open it in a browser or print it",
        "evidence.pdf     the same report as PDF",
        "model-card.md    the model card",
        "provenance.json  in-toto Statement v1 with an SLSA Provenance v1 predicate",
        "signatures/      each ledger event's signed bytes (events/N.json) and signature",
        "registry.xlsx    the registry workbook the pack was made from",
        "allowed_signers  the keyring (public keys, principals, roles)",
        f"{MANIFEST}  sha256 of every other file",
        "",
    ]
    if problems:
        lines.append(
            f"PROBLEMS: verify found {plural(problems, 'problem')}; the reports list them first."
        )
    for name, why in missing.items():
        lines.append(f"NOT INCLUDED: {name}: {why}")
    return "\n".join(lines).rstrip("\n") + "\n"


def build_pack(
    ws: Workspace, ref: ModelRef, *, witness: Witness | None = None
) -> tuple[dict[str, bytes], Pack]:
    """Every file of the pack (name inside the folder -> bytes) and its summary. The
    registry is opened and verified once; every file is made from that one snapshot."""
    if ref.version is None:
        raise InputError(f"{ref}: name a version (MODEL@VERSION)")
    workbook, keyring = _read(ws.workbook_path), _read(ws.keyring_path)
    # The PDF's fonts load while the registry is read and checked.
    snapshot = open_registry(ws, sheets=CARD_SHEETS, meanwhile=prepare_pdf, witness=witness)
    report = verify(snapshot, scope=ref)  # serves the evidence report and the card
    data = evidence_data(snapshot, ref, report=report)
    card = build_card(snapshot, snapshot.version(ref), report.findings)
    files: dict[str, bytes] = {
        "evidence.html": render_html(data).encode("utf-8"),
        "evidence.pdf": render_pdf(data),
        "model-card.md": render_card_markdown(card).encode("utf-8"),
    }
    missing: dict[str, str] = {}
    provenance, why = _provenance(snapshot, ref)
    if provenance is None:
        missing["provenance.json"] = why
    else:
        files["provenance.json"] = provenance
    signatures = signature_files(snapshot, keyring)
    files.update({f"signatures/{name}": raw for name, raw in signatures.items()})
    # The copies in the pack must be the bytes that were verified.
    if _read(ws.workbook_path) != workbook or _read(ws.keyring_path) != keyring:
        raise InputError(
            f"{ws.workbook_path.name} or the keyring changed while the pack was made; run again"
        )
    files["registry.xlsx"] = workbook
    files["allowed_signers"] = keyring
    identity = data["identity"]
    problems = data["problems"]["count"]
    folder = pack_folder(ref)
    files["README.txt"] = _readme(folder, identity["composite_id"], problems, missing).encode()
    files[MANIFEST] = manifest_text(files).encode("utf-8")
    digests = {name: hashlib.sha256(raw).hexdigest() for name, raw in files.items()}
    when = data["footer"]["generated_at"]
    summary = Pack(Path(), folder, identity["composite_id"], problems, when, digests, missing)
    return files, summary


def zip_bytes(folder: str, files: dict[str, bytes], when: str) -> bytes:
    """A zip of ``files`` under ``folder/``, every entry stamped ``when`` (the report's
    generation time, ``YYYY-MM-DDTHH:MM:SSZ``), so the same inputs give the same bytes."""
    import io

    stamp = (int(when[0:4]), int(when[5:7]), int(when[8:10]),
             int(when[11:13]), int(when[14:16]), int(when[17:19]))  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(str(PurePosixPath(folder, name)), date_time=stamp)
            # An .xlsx is a zip already, and a small file (a ledger event, its signature)
            # saves a few hundred bytes: a compressor per file costs more than it gains.
            stored = name.endswith(".xlsx") or len(files[name]) < STORED_BELOW
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def write_pack(
    ws: Workspace, ref: ModelRef, output: Path, *, witness: Witness | None = None
) -> Pack:
    """Build the pack for ``ref`` and write it atomically to ``output`` (a .zip); with
    ``witness`` the ledger must hold the head it names."""

    format_of(output, {".zip": "zip"}, "an evidence pack is a .zip file")
    files, summary = build_pack(ws, ref, witness=witness)
    write_atomic(output, zip_bytes(summary.folder, files, summary.generated_at))
    summary.path = output
    return summary
