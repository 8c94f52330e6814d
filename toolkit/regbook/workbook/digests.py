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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    # How many bytes each checkpoint's digest covers: not part of a witness, a hint that
    # spares a reader the walk over every row to find them (a wrong one only fails to
    # match).
    spans: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

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
        sheets, spans = {}, {}
        for name in sheet_names:
            part = parts.get(name)
            if part is not None:
                found = list(_checkpoints(zf.read(part)))
                sheets[name] = tuple((rows, digest) for rows, digest, _span in found)
                spans[name] = tuple(span for _rows, _digest, span in found)
        return PackageDigests(package_digest(zf), sheets, spans)


def package_digest(zf: zipfile.ZipFile) -> str:
    """SHA-256 over the names and SHA-256s of every part but worksheets and docProps."""
    return _digest_of(zf.namelist(), zf.read)


def parts_digest(parts: Mapping[str, bytes]) -> str:
    """``package_digest`` of a package held in memory, part name -> bytes."""
    return _digest_of(parts, parts.__getitem__)


def _digest_of(names: Iterable[str], read: Callable[[str], bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        if name.startswith(_UNCOVERED_PREFIX) or _WORKSHEET.fullmatch(name):
            continue
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(read(name)).digest())
    return digest.hexdigest()


def checkpoints(xml: bytes) -> tuple[Checkpoint, ...]:
    """The checkpoints of one worksheet's XML: every ``CHECKPOINT_EVERY`` rows and the
    last row. A sheet whose rows are not ``</row>``-terminated has none."""
    return tuple((rows, digest) for rows, digest, _span in _checkpoints(xml))


def _checkpoints(xml: bytes) -> Iterable[tuple[int, str, int]]:
    """Each checkpoint, and how many bytes its digest covers."""
    ends = _row_ends(xml)
    at = [n for n in range(CHECKPOINT_EVERY, len(ends), CHECKPOINT_EVERY)]
    return _prefix_digests(xml, ends, [*at, len(ends)] if ends else [])


def _prefix_digests(xml: bytes, ends: list[int], at: list[int]) -> Iterable[tuple[int, str, int]]:
    """(rows, digest of the part up to the end of that many rows, the bytes it covers)
    for each count of rows in ``at`` (rising) that the part has, from the top."""
    view = memoryview(xml)
    digest = hashlib.sha256()
    start, left_out = _dimension_span(xml)
    digest.update(view[:start])
    start += left_out
    for n in at:
        if n > len(ends):
            return
        digest.update(view[start : ends[n - 1]])
        start = ends[n - 1]
        yield n, digest.hexdigest(), start - left_out


def _dimension_span(xml: bytes) -> tuple[int, int]:
    """Where the ``<dimension>`` element starts and how long it is ((0, 0): none)."""
    dimension = _DIMENSION.search(xml, 0, max(0, xml.find(b"<sheetData")))
    return (dimension.start(), dimension.end() - dimension.start()) if dimension else (0, 0)


def _row_ends(xml: bytes) -> list[int]:
    ends = []
    at = xml.find(_ROW_END)
    while at != -1:
        ends.append(at + len(_ROW_END))
        at = xml.find(_ROW_END, at + len(_ROW_END))
    return ends


def vouched_prefix(
    xml: bytes, witnessed: tuple[Checkpoint, ...], spans: tuple[int, ...] = ()
) -> tuple[int, int]:
    """The Excel row number up to which ``xml`` holds the witnessed bytes, and the byte
    offset where those rows end: the rows the witness's verifier read, with nothing
    after them naming one of them. (0, 0) when no checkpoint matches or anything after
    it could reach back. ``spans`` (``PackageDigests.spans``) spare the walk over every
    row to find where each checkpoint ends."""
    to, end, _count = vouched_rows(xml, witnessed, spans)
    return to, end


def vouched_rows(
    xml: bytes, witnessed: tuple[Checkpoint, ...], spans: tuple[int, ...] = ()
) -> tuple[int, int, int]:
    """``vouched_prefix``, and how many rows (from the top) those bytes hold."""
    end = count = 0
    if spans and len(spans) == len(witnessed):
        end, count = _matched_by_spans(xml, witnessed, spans)
    else:
        ends = _row_ends(xml)
        found = _prefix_digests(xml, ends, [rows for rows, _digest in witnessed])
        for (_rows, digest, _span), (rows, expected) in zip(found, witnessed, strict=False):
            if digest != expected:
                break
            end, count = ends[rows - 1], rows
    if not end:
        return 0, 0, 0
    last_row = xml.rfind(b"<row", 0, end)
    number = _ROW_NUMBER.match(xml, last_row) if last_row != -1 else None
    if number is None:
        return 0, 0, 0
    to = int(number.group(1))
    tail = xml[end:]
    if _PREFIXED.search(tail):
        return 0, 0, 0
    for tag in _ROW_OR_CELL.finditer(tail):
        ref = _R_ATTR.search(tag.group(2))
        if ref is None or int(ref.group(1)) <= to:
            return 0, 0, 0
    return to, end, count


def _matched_by_spans(
    xml: bytes, witnessed: tuple[Checkpoint, ...], spans: tuple[int, ...]
) -> tuple[int, int]:
    """Where the last checkpoint whose digest the part's bytes match ends (0: none), and
    its rows, each checkpoint's end taken from its span: the digest decides, a span only
    says where."""
    view = memoryview(xml)
    digest = hashlib.sha256()
    start, left_out = _dimension_span(xml)
    digest.update(view[:start])
    start += left_out
    matched = count = 0
    for (rows, expected), span in zip(witnessed, spans, strict=True):
        end = span + left_out
        if end < start or end > len(xml) or xml[end - len(_ROW_END) : end] != _ROW_END:
            break
        digest.update(view[start:end])
        start = end
        if digest.hexdigest() != expected:
            break
        matched, count = end, rows
    return matched, count


def without_vouched_rows(
    xml: bytes, end: int, rows: int = 0, header: bool = True
) -> tuple[bytes, int] | None:
    """The sheet's XML with the vouched rows after the header (row 1) left out, which
    end at byte ``end``, and how many rows were left out (``rows`` - 1 when the caller
    knows the bytes up to ``end`` hold ``rows`` rows, ``vouched_rows``); without
    ``header``, the header row is left out too (it is not counted). None unless the
    first row is row 1 and ends before ``end``."""
    first = xml.find(b"<row")
    number = _ROW_NUMBER.match(xml, first) if first != -1 else None
    closed = xml.find(_ROW_END, first) if number is not None else -1
    head = closed + len(_ROW_END)
    if number is None or number.group(1) != b"1" or closed == -1 or head > end:
        return None
    left_out = rows - 1 if rows else xml.count(_ROW_END, head, end)
    return xml[: head if header else first] + xml[end:], left_out


def sheet_parts(zf: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name and the package part that holds it (parts the package has)."""
    names = set(zf.namelist())
    rels = zf.read(WORKBOOK_RELS) if WORKBOOK_RELS in names else b""
    targets = sheet_targets(zf.read(WORKBOOK_PART), rels)
    return {name: part for name, part in targets.items() if part in names}
