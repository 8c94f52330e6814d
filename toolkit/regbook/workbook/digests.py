"""Digests of a workbook package as a verifier saw it, and which rows are still those bytes.

A witness (``regbook.registry.witness``) may carry these digests: one over every part
that can change what a cell holds or shows apart from the worksheets (styles, shared
strings, the workbook's sheet list, relationships, theme, comments), and per sheet the
SHA-256 of the worksheet's XML from its first byte up to the end of its 2,048th,
4,096th, ... and last row. A later reader that finds the same bytes up to a checkpoint
reads exactly the rows the verifier read, so it need not compare them again::

    digests = package_digests(path, ("Ledger", "Models"))    # what CI records
    to, end = vouched_prefix(xml, digests.sheets["Ledger"])  # rows 1..to unchanged

Only the ``<dimension>`` element is left out of a sheet's digest: it is a size hint that
every append rewrites, and it changes nothing a cell holds or shows. A prefix of XML
bytes parses the same whatever follows it, so rows after the checkpoint cannot reach
back into it, with one exception this module closes: a cell or row after it that names
a row number inside it (``<c r="F5">``) would overwrite that cell when read. Any such
reference, or a row or cell without its ``r``, or a namespaced row or cell, and the
sheet is vouched for nothing.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from regbook.workbook.package import WORKBOOK_PART, WORKBOOK_RELS, sheet_targets

CHECKPOINT_EVERY = 2048
# Parts that cannot change a cell's value or look: the file's metadata (author, times).
_UNCOVERED_PREFIX = "docProps/"
_WORKSHEET = re.compile(r"xl/worksheets/[^/]+\.xml")
_DIMENSION = re.compile(rb'<dimension ref="[A-Z]{0,3}[0-9]{0,7}(?::[A-Z]{0,3}[0-9]{0,7})?"\s*/>')
_ROW_END = b"</row>"
_ROW_OR_CELL = re.compile(rb"<(row|c)(?=[\s/>])([^>]*)>")
_R_ATTR = re.compile(rb'\sr="[A-Z]{0,3}([0-9]{1,7})"')
_PREFIXED = re.compile(rb"<[A-Za-z_][\w.-]*:(?:row|c)[\s/>]")
_ROW_NUMBER = re.compile(rb'<row\s[^>]*?\br="([0-9]{1,7})"')

Checkpoint = tuple[int, str]  # (rows from the top, SHA-256 hex of the bytes up to them)


@dataclass(frozen=True)
class PackageDigests:
    """A package's digests: ``package`` over every part but the worksheets and
    docProps; ``sheets`` the checkpoints of each named sheet."""

    package: str
    sheets: Mapping[str, tuple[Checkpoint, ...]]

    def to_json(self) -> dict[str, object]:
        return {
            "package": self.package,
            "sheets": {name: [list(c) for c in cps] for name, cps in self.sheets.items()},
        }

    @classmethod
    def from_json(cls, data: object) -> PackageDigests:
        """ValueError unless ``data`` is what ``to_json`` writes."""
        if not isinstance(data, dict) or set(data) != {"package", "sheets"}:
            raise ValueError("parts must hold package and sheets")
        package, sheets = data["package"], data["sheets"]
        if not _is_hex64(package) or not isinstance(sheets, dict):
            raise ValueError("parts.package must be 64 hex digits and parts.sheets a table")
        out: dict[str, tuple[Checkpoint, ...]] = {}
        for name, checkpoints in sheets.items():
            if not isinstance(checkpoints, list):
                raise ValueError(f"parts.sheets.{name} must be a list")
            read: list[Checkpoint] = []
            for item in checkpoints:
                if (
                    not isinstance(item, list)
                    or len(item) != 2
                    or type(item[0]) is not int
                    or item[0] <= (read[-1][0] if read else 0)
                    or not _is_hex64(item[1])
                ):
                    raise ValueError(
                        f"parts.sheets.{name}: each checkpoint is [rows, sha256], rows rising"
                    )
                read.append((item[0], item[1]))
            out[name] = tuple(read)
        return cls(package, out)


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def package_digests(path: Path, sheet_names: Iterable[str]) -> PackageDigests:
    """The digests of the package at ``path``, with checkpoints for ``sheet_names``."""
    with zipfile.ZipFile(path) as zf:
        parts = sheet_parts(zf)
        sheets = {}
        for name in sheet_names:
            part = parts.get(name)
            if part is not None:
                sheets[name] = checkpoints(zf.read(part))
        return PackageDigests(package_digest(zf), sheets)


def package_digest(zf: zipfile.ZipFile) -> str:
    """SHA-256 over the names and SHA-256s of every part but worksheets and docProps."""
    digest = hashlib.sha256()
    for name in sorted(zf.namelist()):
        if name.startswith(_UNCOVERED_PREFIX) or _WORKSHEET.fullmatch(name):
            continue
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(zf.read(name)).digest())
    return digest.hexdigest()


def checkpoints(xml: bytes) -> tuple[Checkpoint, ...]:
    """The checkpoints of one worksheet's XML: every ``CHECKPOINT_EVERY`` rows and the
    last row. A sheet whose rows are not ``</row>``-terminated has none."""
    ends = _row_ends(xml)
    at = [n for n in range(CHECKPOINT_EVERY, len(ends), CHECKPOINT_EVERY)]
    return tuple(_prefix_digests(xml, ends, [*at, len(ends)] if ends else []))


def _prefix_digests(xml: bytes, ends: list[int], at: list[int]) -> Iterable[Checkpoint]:
    """(rows, digest of the part up to the end of that many rows) for each count of rows
    in ``at`` (rising) that the part has, from the top of the part."""
    view = memoryview(xml)
    digest = hashlib.sha256()
    start = 0
    dimension = _DIMENSION.search(xml, 0, max(0, xml.find(b"<sheetData")))
    if dimension is not None:
        digest.update(view[: dimension.start()])
        start = dimension.end()
    for n in at:
        if n > len(ends):
            return
        digest.update(view[start : ends[n - 1]])
        start = ends[n - 1]
        yield n, digest.hexdigest()


def _row_ends(xml: bytes) -> list[int]:
    ends = []
    at = xml.find(_ROW_END)
    while at != -1:
        ends.append(at + len(_ROW_END))
        at = xml.find(_ROW_END, at + len(_ROW_END))
    return ends


def vouched_prefix(xml: bytes, witnessed: tuple[Checkpoint, ...]) -> tuple[int, int]:
    """The Excel row number up to which ``xml`` holds the witnessed bytes, and the byte
    offset where those rows end: the rows the witness's verifier read, with nothing
    after them naming one of them. (0, 0) when no checkpoint matches or anything after
    it could reach back."""
    ends = _row_ends(xml)
    cut = 0
    found = _prefix_digests(xml, ends, [rows for rows, _digest in witnessed])
    for (rows, digest), (_rows, expected) in zip(found, witnessed, strict=False):
        if digest != expected:
            break
        cut = rows
    if not cut:
        return 0, 0
    end = ends[cut - 1]
    last_row = xml.rfind(b"<row", 0, end)
    number = _ROW_NUMBER.match(xml, last_row) if last_row != -1 else None
    if number is None:
        return 0, 0
    to = int(number.group(1))
    tail = xml[end:]
    if _PREFIXED.search(tail):
        return 0, 0
    for tag in _ROW_OR_CELL.finditer(tail):
        ref = _R_ATTR.search(tag.group(2))
        if ref is None or int(ref.group(1)) <= to:
            return 0, 0
    return to, end


def without_vouched_rows(xml: bytes, end: int) -> tuple[bytes, int] | None:
    """The sheet's XML with the vouched rows after the header (row 1) left out, which
    end at byte ``end``, and how many rows were left out; None unless the first row is
    row 1 and ends before ``end``."""
    ends = _row_ends(xml)
    first = xml.find(b"<row")
    number = _ROW_NUMBER.match(xml, first) if first != -1 else None
    if not ends or number is None or number.group(1) != b"1" or ends[0] > end:
        return None
    return xml[: ends[0]] + xml[end:], ends.index(end)


def sheet_parts(zf: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name and the package part that holds it (parts the package has)."""
    names = set(zf.namelist())
    rels = zf.read(WORKBOOK_RELS) if WORKBOOK_RELS in names else b""
    targets = sheet_targets(zf.read(WORKBOOK_PART), rels)
    return {name: part for name, part in targets.items() if part in names}
