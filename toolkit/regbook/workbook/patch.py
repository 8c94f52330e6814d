"""Appending to a workbook without rewriting it: the writers' fast path.

Loading and saving a whole workbook with openpyxl costs about two seconds for a
thousand versions and grows with every row, while a registration changes a handful
of rows. ``PackagePatch`` edits the xlsx package directly: it appends or replaces
whole ``<row>`` elements in the sheet parts, adds the few cell formats it needs to
``styles.xml``, and leaves every other part, style, comment, validation and setting
exactly as it was::

    patch = PackagePatch(path)
    patch.append_rows("Ledger", [[1, "2026-11-26T10:00:00Z", ...]], style="view")
    patch.put_row("Models", 7, values, styles)
    patch.save(target)            # a new package; the caller renames it into place

Text is written as inline strings, escaped for XML; a text that starts with ``=`` is
text, never a formula. Rows are identified by the ``r`` attribute, which every
spreadsheet program writes.
"""

from __future__ import annotations

import math
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from regbook.core.errors import InputError
from regbook.core.schema import DATE, DATETIME, EXCEL_EPOCH, SHADE_SEALED, Column, column_letter
from regbook.workbook import deflate
from regbook.workbook.package import WORKBOOK_PART, WORKBOOK_RELS, sheet_targets

_ROW_START = re.compile(rb'<(?:\w+:)?row\b[^>]*?\br="(\d+)"')
_ROW_END = re.compile(rb"</(?:\w+:)?row>")
_SHEET_DATA_END = re.compile(rb"</(?:\w+:)?sheetData>")
_SHEET_DATA_EMPTY = re.compile(rb"<((?:\w+:)?)sheetData\s*/>")
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\b[^>]*?\bref="([^"]*)"')
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

BUILTIN_FORMATS = {"General": 0, "0": 1, "@": 49}


class PackagePatch:
    """An xlsx package held in memory, with its sheet parts editable by row."""

    def __init__(self, path: Path):
        self.path = path
        with zipfile.ZipFile(path) as zf:
            self.infos = zf.infolist()
            # Each part as compressed, kept to be written back unchanged; inflated two at
            # a time (zlib lets go of the interpreter).
            self.compressed = _compressed_parts(path, self.infos)
            if self.compressed is None:
                self.parts = {info.filename: zf.read(info) for info in self.infos}
        # Where a part's stream may be spliced (regbook.workbook.deflate), checked.
        self.pieces: dict[str, list[deflate.Piece]] = {}
        self.cuts: dict[str, list[deflate.Cut]] = {}
        if self.compressed is not None:
            largest = sorted(self.infos, key=lambda info: -info.compress_size)
            with ThreadPoolExecutor(max_workers=2) as pool:
                inflated = dict(zip(largest, pool.map(self._inflate, largest), strict=True))
            self.parts = {info.filename: inflated[info] for info in self.infos}
        self.read = dict(self.parts)  # the parts as read, to find what a change kept
        self.changed: set[str] = set()
        self.sheet_parts = self._sheet_parts()
        self._xf_cache: dict[tuple[str, bool, bool], int] = {}
        styles = self.parts.get("xl/styles.xml", b"")
        for needed in (b"<cellXfs", b"<fills"):
            if needed not in styles:
                raise InputError(
                    f"{path}: cannot be opened for writing: xl/styles.xml has "
                    f"no {needed[1:].decode()}"
                )

    # -- sheets -------------------------------------------------------------------------

    def _sheet_parts(self) -> dict[str, str]:
        rels = self.parts.get(WORKBOOK_RELS, b"")
        return sheet_targets(self.parts[WORKBOOK_PART], rels)

    def _sheet(self, name: str) -> tuple[str, bytes]:
        part = self.sheet_parts.get(name)
        if part is None or part not in self.parts:
            raise InputError(f"{self.path.name}: sheet {name!r} is missing")
        return part, self.parts[part]

    def _set_sheet(self, part: str, data: bytes) -> None:
        self.parts[part] = data
        self.changed.add(part)

    def _row_spans(self, data: bytes) -> list[tuple[int, int, int]]:
        """(row number, start, end) of every <row> element, in document order."""
        return [
            (int(match.group(1)), match.start(), self._row_end(data, match))
            for match in _ROW_START.finditer(data)
        ]

    def _row_end(self, data: bytes, start: re.Match[bytes]) -> int:
        """Where the row element whose start tag ``start`` matched ends."""
        tag_end = data.index(b">", start.end())
        if data[tag_end - 1 : tag_end] == b"/":
            return tag_end + 1
        close = _ROW_END.search(data, tag_end)
        if close is None:
            raise InputError(f"{self.path.name}: a row element is not closed")
        return close.end()

    def put_rows(self, sheet: str, rows: dict[int, str]) -> None:
        """Write whole rows (row number -> the row's cell XML), replacing rows that exist
        and inserting the others in order."""
        if not rows:
            return
        part, data = self._sheet(sheet)
        data = self._open_sheet_data(data)
        last = self._last_row(data)
        if last is not None and min(rows) > last[0]:
            # Only new rows at the end: no need to walk every row of a large sheet.
            close = _SHEET_DATA_END.search(data, last[1])
            if close is None:
                raise InputError(f"{self.path.name}: sheet {sheet!r} has no sheetData")
            added = b"".join(_row_xml(n, rows[n]) for n in sorted(rows))
            # One copy of a sheet of many megabytes: the rows and the new size in place.
            view, at = memoryview(data), close.start()
            edit = _dimension_edit(data, max(rows))
            start, end, ref = edit if edit is not None else (0, 0, b"")
            joined = [view[:start], memoryview(ref), view[end:at], memoryview(added), view[at:]]
            self._set_sheet(part, b"".join(joined))
            return
        found = self._found_rows(data, sorted(rows))
        if found is not None:
            # Every row there already, found by its start: replaced without a walk.
            pieces: list[bytes | memoryview] = []
            cursor, view = 0, memoryview(data)
            for number, start, end in found:
                pieces += [view[cursor:start], memoryview(_row_xml(number, rows[number]))]
                cursor = end
            pieces.append(view[cursor:])
            self._set_sheet(part, b"".join(pieces))
            return
        spans = self._row_spans(data)
        pieces = []
        cursor = 0
        pending = sorted(rows)
        existing = {number: (start, end) for number, start, end in spans}
        for number, start, end in spans:
            while pending and pending[0] < number:
                pieces.append(data[cursor:start])
                pieces.append(_row_xml(pending[0], rows[pending.pop(0)]))
                cursor = start
            if pending and pending[0] == number:
                pieces.append(data[cursor:start])
                pieces.append(_row_xml(number, rows[pending.pop(0)]))
                cursor = end
        close = _SHEET_DATA_END.search(data, cursor)
        if close is None:
            raise InputError(f"{self.path.name}: sheet {sheet!r} has no sheetData")
        pieces.append(data[cursor : close.start()])
        for number in pending:
            pieces.append(_row_xml(number, rows[number]))
        pieces.append(data[close.start() :])
        out = b"".join(pieces)
        self._set_sheet(part, _update_dimension(out, max([*existing, *rows])))

    @staticmethod
    def _last_row(data: bytes) -> tuple[int, int] | None:
        """(number, position) of the last <row> element, found from the end."""
        limit = deflate.rows_end(data)
        pos = limit
        while True:
            pos = data.rfind(b"<row", 0, pos)
            if pos < 0:
                return None
            match = _ROW_START.match(data, pos)
            if match:
                return int(match.group(1)), match.end()
            # a namespaced or unusual row tag: let the full walk handle it
            return None

    def _spans_of(self, data: bytes, row: int) -> list[tuple[int, int, int]]:
        """The spans to look for row ``row`` in: its own, found by its plain ``<row
        r="N"`` start (as every spreadsheet program writes it), else every row's. A row
        past the last one is in none of them, without a walk through the sheet."""
        at = data.find(b'<row r="%d"' % row)
        match = _ROW_START.match(data, at) if at >= 0 else None
        if match is not None:
            return [(row, at, self._row_end(data, match))]
        last = self._last_row(data)
        if last is not None and row > last[0]:
            return []
        return self._row_spans(data)

    def _found_rows(self, data: bytes, numbers: list[int]) -> list[tuple[int, int, int]] | None:
        """The spans of rows ``numbers`` (rising), each found by its plain ``<row r="N"``
        start, in document order; None if one is not found so (the walk decides)."""
        found: list[tuple[int, int, int]] = []
        for number in numbers:
            at = data.find(b'<row r="%d"' % number)
            match = _ROW_START.match(data, at) if at >= 0 else None
            if match is None or (found and at < found[-1][2]):
                return None
            found.append((number, at, self._row_end(data, match)))
        return found

    def drop_rows_from(self, sheet: str, first: int) -> None:
        """Remove every row numbered ``first`` or more (a view rewritten whole)."""
        part, data = self._sheet(sheet)
        spans = [s for s in self._row_spans(data) if s[0] >= first]
        if not spans:
            return
        pieces, cursor = [], 0
        for _number, start, end in spans:
            pieces.append(data[cursor:start])
            cursor = end
        pieces.append(data[cursor:])
        self._set_sheet(part, b"".join(pieces))

    @staticmethod
    def _open_sheet_data(data: bytes) -> bytes:
        # The element's start is the first "sheetData" of a worksheet (the parts before
        # it are sheetPr, dimension, sheetViews, sheetFormatPr, cols): no regex walk over
        # the megabytes of rows after it.
        at = data.find(b"sheetData")
        empty = _SHEET_DATA_EMPTY.match(data, data.rfind(b"<", 0, at)) if at > 0 else None
        if empty:
            prefix = empty.group(1)
            data = (
                data[: empty.start()]
                + b"<"
                + prefix
                + b"sheetData></"
                + prefix
                + b"sheetData>"
                + data[empty.end() :]
            )
        return data

    # -- cells --------------------------------------------------------------------------

    def cells_xml(
        self,
        row: int,
        columns: tuple[Column, ...],
        values: Mapping[str, object],
        style: str,
        keep: dict[str, str] | None = None,
    ) -> str:
        """The XML of one row's cells. ``style``: sealed, open or view (template.py's
        three looks); ``keep`` gives cell XML to carry over unchanged (Notes)."""
        out = []
        for index, column in enumerate(columns, start=1):
            ref = f"{column_letter(index)}{row}"
            if keep and column.key in keep:
                out.append(keep[column.key])
                continue
            sealed = style == "sealed" and column.sealed
            locked = style in ("view",) or sealed
            xf = self.xf(column.number_format, sealed, locked)
            out.append(_cell_xml(ref, xf, column.kind, values.get(column.key)))
        return "".join(out)

    def row_cells(self, sheet: str, row: int) -> dict[int, str]:
        """The XML of each cell in an existing row, by 0-based column index."""
        _part, data = self._sheet(sheet)
        for number, start, end in self._spans_of(data, row):
            if number == row:
                body = data[start:end].decode("utf-8")
                cells = {}
                for match in re.finditer(
                    r'<(?:\w+:)?c\b[^>]*?\br="([A-Z]+)\d+"[^>]*?(?:/>|>.*?</(?:\w+:)?c>)',
                    body, re.DOTALL,
                ):  # fmt: skip
                    letters = match.group(1)
                    n = 0
                    for ch in letters:
                        n = n * 26 + ord(ch) - 64
                    cells[n - 1] = match.group(0)
                return cells
        return {}

    # -- styles -------------------------------------------------------------------------

    def xf(self, number_format: str, shaded: bool, locked: bool) -> int:
        """The index of a cell format with this number format, fill and lock, added to
        styles.xml when the workbook does not have it yet."""
        key = (number_format, shaded, locked)
        if key in self._xf_cache:
            return self._xf_cache[key]
        styles = self.parts["xl/styles.xml"].decode("utf-8")
        styles, fmt_id = _ensure_numfmt(styles, number_format)
        fill_id = 0
        if shaded:
            styles, fill_id = _ensure_fill(styles, SHADE_SEALED)
        fill = ' applyFill="1"' if shaded else ""
        tail = "/>" if locked else '><protection locked="0" hidden="0"/></xf>'
        xf = (
            f'<xf numFmtId="{fmt_id}" fontId="0" fillId="{fill_id}" borderId="0" '
            f'xfId="0" applyNumberFormat="1"{fill} applyProtection="1"{tail}'
        )
        styles, index = _ensure_entry(styles, "cellXfs", xf)
        self.parts["xl/styles.xml"] = styles.encode("utf-8")
        self.changed.add("xl/styles.xml")
        self._xf_cache[key] = index
        return index

    # -- output -------------------------------------------------------------------------

    def save(self, handle: BinaryIO) -> None:
        """Write the package: the parts that changed deflated anew (two at a time: zlib
        lets go of the interpreter), the others copied as they were compressed (all
        anew where zipfile had to read the package)."""
        raw = self._compressed_as_read()
        fresh = [i.filename for i in self.infos if i.filename not in raw]
        fresh.sort(key=lambda name: -len(self.parts[name]))  # the longest first
        with ThreadPoolExecutor(max_workers=2) as pool:
            deflated = dict(zip(fresh, pool.map(self._deflate, fresh), strict=True))
        entries = []
        offset = 0
        for info in self.infos:
            name = info.filename.encode("utf-8")
            flags = 0x800 if not name.isascii() else 0  # the name is UTF-8
            if info.filename in raw:
                data, crc, method = raw[info.filename], info.CRC, info.compress_type
                extra = deflate.cuts_field(self.cuts.get(info.filename, []))
            else:
                (data, crc, cuts), method = deflated[info.filename], zipfile.ZIP_DEFLATED
                extra = deflate.cuts_field(cuts)
            size = len(self.parts[info.filename])
            when = _dos_time(info.date_time)
            fields = (method, *when, crc, len(data), size, len(name), len(extra))
            handle.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, *fields))
            handle.write(name + extra)
            handle.write(data)
            central = struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 0x314, 20, flags, *fields, 0, 0, 0,
                info.external_attr, offset,
            )  # fmt: skip
            entries.append(central + name + extra)
            offset += 30 + len(name) + len(extra) + len(data)
        directory = b"".join(entries)
        handle.write(directory)
        count = len(entries)
        handle.write(
            struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), offset, 0)
        )

    def _deflate(self, name: str) -> tuple[bytes, int, list[deflate.Cut]]:
        """A part's raw deflate stream (level 1 for a part over a megabyte, else 6), its
        CRC-32 and where it may be spliced; the rows it kept as they were read are
        copied as they were compressed, where the stream read was laid out for that."""
        data = self.parts[name]
        level = 1 if len(data) > 1 << 20 else 6
        pieces = self.pieces.get(name)
        reuse = deflate.reusable(self.read[name], data, pieces) if pieces else None
        stream, cuts = deflate.deflate(data, level, reuse)
        return stream, zlib.crc32(data), cuts

    def _inflate(self, info: zipfile.ZipInfo) -> bytes:
        """A part's bytes from its compressed ones, checked as zipfile checks them: no
        more bytes than the entry says it holds (``check_package`` capped their sum),
        and its CRC-32."""
        data = self.compressed[info.filename] if self.compressed else b""
        if info.compress_type == zipfile.ZIP_DEFLATED:
            cuts = deflate.read_cuts(info.extra)
            split = deflate.inflate(data, cuts, info.file_size) if cuts else None
            if split is not None:
                data, self.pieces[info.filename] = split
                self.cuts[info.filename] = cuts
            else:
                inflater = zlib.decompressobj(-15)
                data = inflater.decompress(data, info.file_size + 1)
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise ValueError(f"{info.filename} is damaged (its size or CRC-32 differs)")
        return data

    def _compressed_as_read(self) -> dict[str, bytes]:
        """The compressed bytes of each part that did not change."""
        if self.compressed is None:
            return {}
        return {n: data for n, data in self.compressed.items() if n not in self.changed}


def escape(text: str, entities: dict[str, str] | None = None) -> str:
    """XML text escaping (xml.sax.saxutils would import urllib and http on start-up)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char, entity in (entities or {}).items():
        text = text.replace(char, entity)
    return text


def _row_xml(number: int, cells: str) -> bytes:
    return f'<row r="{number}">{cells}</row>'.encode()


def _update_dimension(data: bytes, last_row: int) -> bytes:
    edit = _dimension_edit(data, last_row)
    if edit is None:
        return data
    start, end, ref = edit
    return data[:start] + ref + data[end:]


def _dimension_edit(data: bytes, last_row: int) -> tuple[int, int, bytes] | None:
    """Where the ``<dimension>`` size hint's ref is, and what it becomes when the last
    row is ``last_row``; None when it covers that row already (or there is none). The
    hint stands before the rows (sheetData), so only that head of the part is searched."""
    head = data.find(b"sheetData")
    match = _DIMENSION.search(data, 0, head if head >= 0 else len(data))
    if not match:
        return None
    ref = match.group(1).decode()
    parts = ref.split(":")
    tail = parts[-1]
    letters = re.match(r"[A-Z]+", tail)
    digits = re.search(r"\d+$", tail)
    if not letters or not digits or int(digits.group(0)) >= last_row:
        return None
    new = f"{parts[0] if len(parts) > 1 else 'A1'}:{letters.group(0)}{last_row}".encode()
    return match.start(1), match.end(1), new


def _cell_xml(ref: str, xf: int, kind: str, value: object) -> str:
    if value is None or value == "":
        return f'<c r="{ref}" s="{xf}"/>'
    if isinstance(value, bool):
        return f'<c r="{ref}" s="{xf}" t="b"><v>{int(value)}</v></c>'
    if kind in (DATE, DATETIME) and isinstance(value, str):
        value = (
            date.fromisoformat(value)
            if kind == DATE
            else datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        )
    if isinstance(value, datetime):
        serial = (value - EXCEL_EPOCH).total_seconds() / 86400
        return f'<c r="{ref}" s="{xf}"><v>{serial!r}</v></c>'
    if isinstance(value, date):
        return f'<c r="{ref}" s="{xf}"><v>{(value - EXCEL_EPOCH.date()).days}</v></c>'
    if isinstance(value, int | float) and kind != "text":
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{ref}: {value} cannot be written to a cell")
        return f'<c r="{ref}" s="{xf}"><v>{value!r}</v></c>'
    text = _INVALID_XML.sub("\ufffd", str(value))
    return (
        f'<c r="{ref}" s="{xf}" t="inlineStr"><is><t xml:space="preserve">'
        f"{escape(text)}</t></is></c>"
    )


def _ensure_numfmt(styles: str, code: str) -> tuple[str, int]:
    if code in BUILTIN_FORMATS:
        return styles, BUILTIN_FORMATS[code]
    for match in re.finditer(r'<numFmt\b[^>]*?numFmtId="(\d+)"[^>]*?formatCode="([^"]*)"', styles):
        if match.group(2).replace("&quot;", '"') == code:
            return styles, int(match.group(1))
    ids = [int(x) for x in re.findall(r'<numFmt\b[^>]*?numFmtId="(\d+)"', styles)]
    new_id = max([163, *ids]) + 1
    entry = f'<numFmt numFmtId="{new_id}" formatCode="{escape(code, {chr(34): "&quot;"})}"/>'
    if re.search(r"<numFmts\b", styles):
        styles, _ = _ensure_entry(styles, "numFmts", entry)
    else:
        head = re.search(r"<styleSheet\b[^>]*>", styles)
        assert head is not None
        styles = (
            styles[: head.end()] + f'<numFmts count="1">{entry}</numFmts>' + styles[head.end() :]
        )
    return styles, new_id


def _ensure_fill(styles: str, rgb: str) -> tuple[str, int]:
    block = re.search(r"<fills\b[^>]*>(.*?)</fills>", styles, re.DOTALL)
    if block:
        fills = re.findall(r"<fill\b.*?</fill>|<fill\s*/>", block.group(1), re.DOTALL)
        for index, fill in enumerate(fills):
            if 'patternType="solid"' in fill and rgb.lower() in fill.lower():
                return styles, index
    entry = f'<fill><patternFill patternType="solid"><fgColor rgb="{rgb}"/></patternFill></fill>'
    return _ensure_entry(styles, "fills", entry)


def _ensure_entry(styles: str, container: str, entry: str) -> tuple[str, int]:
    """Append ``entry`` to a counted container (cellXfs, fills, numFmts) unless an
    identical entry is there; return its index."""
    match = re.search(rf"<{container}\b([^>]*)>(.*?)</{container}>", styles, re.DOTALL)
    if match is None:
        raise InputError(f"styles.xml has no {container}")
    tag = {"cellXfs": "xf", "fills": "fill", "numFmts": "numFmt"}[container]
    items = re.findall(rf"<{tag}\b(?:[^>]*?/>|.*?</{tag}>)", match.group(2), re.DOTALL)
    if entry in items:
        return styles, items.index(entry)
    count = len(items) + 1
    attrs = re.sub(r'\bcount="\d+"', f'count="{count}"', match.group(1))
    if "count=" not in attrs:
        attrs += f' count="{count}"'
    new = f"<{container}{attrs}>{match.group(2)}{entry}</{container}>"
    return styles[: match.start()] + new + styles[match.end() :], len(items)


def _dos_time(when: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    """A zip entry's time and date fields (DOS format: two-second steps, from 1980)."""
    year, month, day, hour, minute, second = when
    return hour << 11 | minute << 5 | second // 2, max(0, year - 1980) << 9 | month << 5 | day


def _compressed_parts(path: Path, infos: list[zipfile.ZipInfo]) -> dict[str, bytes] | None:
    """Each entry's compressed bytes, read from the file; None if one is not an entry
    regbook writes (encrypted, zip64, compressed otherwise than by deflate) or the file
    is not laid out as its directory says: zipfile then reads it."""
    if len(infos) >= 0xFFFF:
        return None
    out: dict[str, bytes] = {}
    with open(path, "rb") as source:
        for info in infos:
            if (
                info.flag_bits & 0x1
                or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                or max(info.compress_size, info.file_size, info.header_offset) >= 0xFFFFFFFF
            ):
                return None
            source.seek(info.header_offset)
            header = source.read(30)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                return None
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            source.seek(info.header_offset + 30 + name_length + extra_length)
            data = source.read(info.compress_size)
            if len(data) != info.compress_size:
                return None
            out[info.filename] = data
    return out
