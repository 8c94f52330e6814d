"""Reading and writing the registry workbook safely.

Readers use python-calamine (fast, read-only); only writers pay for openpyxl. Both go
through ``check_package`` first, which refuses non-xlsx files, zip bombs and XML with a
DTD (entity expansion). Writers hold a lock, refuse a workbook open in Excel or
LibreOffice (exit 3), and save atomically with rotating backups::

    book = read_workbook(path)                 # WorkbookData, headers checked
    with WorkbookWriter(path, backups=3) as writer:
        wb = writer.load()                     # openpyxl.Workbook
        ...                                    # change it
        writer.save(wb)
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

from regbook.core import fs
from regbook.core.errors import InputError, RegbookError, WorkbookLocked
from regbook.core.schema import LEDGER, METRICS, MODELS, READ_SHEETS, Sheet, column_letter
from regbook.core.workspace import backup_path
from regbook.workbook.digests import (
    Checkpoint,
    PackageDigests,
    package_digest,
    parts_digest,
    sheet_parts,
    vouched_prefix,
    vouched_rows,
    without_vouched_rows,
)
from regbook.workbook.package import WORKBOOK_PART, WORKBOOK_RELS, sheet_targets
from regbook.workbook.template import refresh_header_comments

if TYPE_CHECKING:  # pragma: no cover
    import openpyxl
    from filelock import BaseFileLock
    from python_calamine import CalamineWorkbook

    from regbook.workbook.patch import PackagePatch  # patch imports this module

LOCK_TIMEOUT = 5.0  # seconds a writer waits for another regbook's lock
MAX_UNPACKED = 1 << 30  # a registry of thousands of versions is a few MB unpacked
_DTD_RE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# What may stand before a DOCTYPE: a byte-order mark, blanks, <?...?> and comments.
_PROLOG_SKIP = re.compile(rb"\xef\xbb\xbf|\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
MAX_PROLOG = 1 << 20
# An XML declaration naming an encoding (it can only be one of the skipped <?...?>).
_DECLARED_ENCODING = re.compile(rb"<\?xml\s[^>]*?\bencoding\s*=\s*([\"'])([^\"']*)\1")
# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_FOREIGN_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 (byte-order mark)"),
    (b"\xff\xfe\x00\x00", "UTF-32 (byte-order mark)"),
    (b"\xfe\xff", "UTF-16 (byte-order mark)"),
    (b"\xff\xfe", "UTF-16 (byte-order mark)"),
)
# What follows the name of a formula element (<f>, <f t=...>, <f/>, a namespaced <x:f>).
_AFTER_F = frozenset(b" \t\n\r\f\v>/")
_CELL_WITH_FORMULA = re.compile(
    rb'<(?:\w+:)?c\b[^>]*?\br="([A-Z]{1,3})([0-9]+)"[^>]*?(?<!/)>(?:(?!</(?:\w+:)?c>).)*?'
    rb"<(?:\w+:)?f[\s>/]",
    re.DOTALL,
)

# Sheets where merged cells would break the one-row-per-record reading.
NO_MERGES = (MODELS, METRICS, LEDGER)
# Sheets whose formula cells matter: the ledger's (RB108) and the sealed cells of Models
# and Metrics (RB307, and writers refuse them). The other sheets are not scanned: what
# regbook derives (History, Approvals, Keys) is compared by value and rewritten by
# restore, and the Cards, Guide and notes are the SME's own.
FORMULA_SHEETS = (LEDGER, MODELS, METRICS)
FORMULA_NAMES = frozenset(s.name for s in FORMULA_SHEETS)


def office_lock_files(path: Path) -> list[Path]:
    """Lock files Excel (``~$NAME``) and LibreOffice (``.~lock.NAME#``) leave beside an
    open workbook."""
    candidates = [path.with_name("~$" + path.name), path.with_name(f".~lock.{path.name}#")]
    # Excel shortens long names: ~$ replaces the first two characters.
    if len(path.name) > 2:
        candidates.append(path.with_name("~$" + path.name[2:]))
    return [p for p in candidates if p.exists()]


def missing_workbook(path: Path) -> InputError:
    """The error for a workbook that is not there, naming its backup when one is."""
    backup = backup_path(path, 1)
    found = (
        f"; its backup {backup.name} is beside it: copy it to {path.name} to go on from the "
        "last write before"
        if backup.exists()
        else ""
    )
    return InputError(f"{path}: workbook not found{found}")


def refuse_if_open(path: Path) -> None:
    locks = office_lock_files(path)
    if locks:
        raise WorkbookLocked(
            f"{path.name} is open in Excel or LibreOffice (lock file {locks[0].name}); "
            "close it and run the command again: nothing was written. If nobody has it "
            f"open (the suite crashed, or it was opened on another machine), the lock file "
            f"is stale: deleting {locks[0].name} is then safe"
        )


def check_package(path: Path) -> None:
    """Refuse anything that is not a plain xlsx package before any parser sees it."""
    if not path.exists():
        raise missing_workbook(path)
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an Excel workbook (.xlsx): not a zip package")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
                raise InputError(f"{path}: not an Excel workbook (.xlsx): no xl/workbook.xml")
            total = 0
            for info in zf.infolist():
                total += info.file_size
                if total > MAX_UNPACKED:
                    raise InputError(f"{path}: refused: unpacks to more than 1 GiB")
            for info in zf.infolist():
                if not info.filename.endswith((".xml", ".rels", ".vml")):
                    continue
                if reason := _prolog_refusal(zf, info):
                    raise InputError(f"{path}: refused: {reason}")
    except zipfile.BadZipFile as err:
        raise InputError(f"{path}: not an Excel workbook (.xlsx): {err}") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err}") from None


def _prolog_refusal(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """Why a part must not reach an XML parser, or None. Only its prolog is read (a 60 MB
    sheet costs one 64 KiB chunk): the encoding is settled by the first bytes and the
    XML declaration, and a DTD can only stand before the root element. Comments can push
    a DTD past any fixed-size head, so the prolog is read to its end (and one longer
    than MAX_PROLOG, which no real workbook has, is refused too)."""
    data = b""
    pos = 0
    with zf.open(info) as member:
        while True:
            chunk = member.read(1 << 16)
            if not data and (encoding := _foreign_encoding(chunk)):
                return _not_utf8(info, encoding)
            data += chunk
            while (skip := _PROLOG_SKIP.match(data, pos)) and skip.end() > pos:
                if declared := _DECLARED_ENCODING.match(skip.group()):
                    encoding = declared.group(2).decode("ascii", "replace")
                    if encoding.lower() not in ("utf-8", "utf8"):
                        return _not_utf8(info, repr(encoding))
                pos = skip.end()
            rest = data[pos:]
            if _DTD_RE.match(rest) or len(data) > MAX_PROLOG:
                return (
                    f"{info.filename} declares a DTD or entities (an entity-expansion "
                    "payload); a real workbook never does"
                )
            unfinished = rest[:2] in (b"<", b"<?", b"<!") or b"\xef\xbb\xbf".startswith(rest)
            if not unfinished or not chunk:
                # The root element, or not XML (which the readers refuse): no DTD follows.
                return None


def _foreign_encoding(head: bytes) -> str | None:
    """The encoding the first bytes of a part announce if it is not UTF-8: a UTF-16 or
    UTF-32 byte-order mark, or the NUL bytes of either without one (UTF-8 XML holds no
    NUL at all)."""
    for bom, name in _FOREIGN_BOMS:
        if head.startswith(bom):
            return name
    if b"\x00" in head[:4]:
        return "UTF-16 or UTF-32 (no byte-order mark)"
    return None


def _not_utf8(info: zipfile.ZipInfo, encoding: str) -> str:
    # regbook's own byte scans (formulas, spelt numbers, sheet entries) read UTF-8; a
    # parser decoding another encoding would see other text than they checked.
    return (
        f"{info.filename} is encoded in {encoding}, not UTF-8 (the parsers would read "
        "other text than regbook checks); a real workbook never is"
    )


# What a cell holds once read: python-calamine's values, and None for an empty cell.
CellValue = int | float | str | bool | date | datetime | time | timedelta | None


@dataclass
class Table:
    """One sheet's data rows, as values in schema column order."""

    sheet: Sheet
    rows: list[list[CellValue]]
    row_numbers: list[int]  # the Excel row number of each entry of rows
    formulas: set[tuple[int, int]] = field(default_factory=set)  # (row number, col index)
    width: int = 0  # columns present, including any extra ones to the right
    # Ledger only: number cells whose XML text is not a plain whole number ("5.0" for 5),
    # by (row number, col index); calamine reads both as the same float.
    spelt: dict[tuple[int, int], str] = field(default_factory=dict)
    # With a witness's digests: rows up to this Excel row number are the bytes its
    # verifier read (regbook.workbook.digests); 0 when none are.
    vouched_to: int = 0
    vouched_end: int = 0  # where those rows end in the sheet's XML, in bytes
    # Rows after the header left unread because a witness vouches for them (they come
    # before ``rows``); only where the caller asked for the tail of a sheet.
    omitted: int = 0

    def ref(self, i: int, key: str) -> str:
        return self.sheet.ref(key, self.row_numbers[i])

    def value(self, i: int, key: str) -> CellValue:
        return self.rows[i][self.sheet.index(key)]

    def has_formula(self, i: int, key: str) -> bool:
        return (self.row_numbers[i], self.sheet.index(key)) in self.formulas

    def __len__(self) -> int:
        return len(self.rows)

    def indexed(self) -> Iterator[tuple[int, list[CellValue]]]:
        return enumerate(self.rows)


@dataclass
class WorkbookData:
    path: Path
    tables: dict[str, Table]
    # The file read: (device, inode, size, modification time), the same before and after.
    identity: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __getitem__(self, name: str) -> Table:
        return self.tables[name]


def read_workbook(
    path: Path,
    sheets: tuple[Sheet, ...] = READ_SHEETS,
    first: Sheet | None = None,
    on_first: Callable[[Table], object] | None = None,
    witnessed: PackageDigests | None = None,
    tail_only: tuple[Sheet, ...] = (),
) -> WorkbookData:
    """Read the workbook with python-calamine; every structural problem is an InputError
    naming the sheet and cell. An optional sheet the workbook lacks (Cards, in a workbook
    made before it existed) is left out of the result instead.

    With ``first`` and ``on_first``, that sheet is read first and ``on_first(table)``
    runs on this thread while a second one reads the other sheets (verify parses the
    ledger and starts its signature checks meanwhile).

    With ``witnessed`` (a witness's digests of the package as its verifier read it),
    each table's ``vouched_to`` says up to which row it still holds those bytes; of the
    sheets in ``tail_only``, only the header and the rows after the vouched ones are read
    (``Table.omitted`` counts the rest). The file must be the same one from start to end
    (InputError if it was replaced)."""
    before = file_identity(path)
    check_package(path)
    tables = _read(path, sheets, first, on_first, _Vouching(path, witnessed, tail_only))
    if file_identity(path) != before:
        raise InputError(f"{path}: the workbook changed while it was read; run the command again")
    return WorkbookData(path, tables, before)


def file_identity(path: Path) -> tuple[int, int, int, int]:
    """What tells one file from its replacement: device, inode, size, modification time."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise missing_workbook(path) from None
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}") from None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read(
    path: Path,
    sheets: tuple[Sheet, ...],
    first: Sheet | None,
    on_first: Callable[[Table], object] | None,
    vouch: _Vouching,
) -> dict[str, Table]:
    from concurrent.futures import ThreadPoolExecutor

    book = _open(path)
    if first is None or first not in sheets or on_first is None:
        return _read_in_two(path, book, sheets, vouch)
    rest = [s for s in sheets if s is not first]
    # Work both threads take from once this one is free: each other sheet, and the
    # formula scan of those that need one (one zip inflation; zlib releases the GIL).
    todo: list[Sheet | str] = [x for s in rest for x in ((s, s.name) if vouch.scans(s) else (s,))]
    lock = threading.Lock()
    formulas: dict[str, _Scanned] = {}

    def take_all(book: CalamineWorkbook) -> dict[str, Table]:
        out: dict[str, Table] = {}
        while True:
            with lock:
                if not todo:
                    return out
                item = todo.pop(0)
            if isinstance(item, str):
                formulas.update(_scan_parts(path, [item], vouch))
            else:
                out.update(_read_tables(path, book, (item,), vouch))

    with ThreadPoolExecutor(max_workers=1) as pool:
        # The other thread scans the first sheet, then reads the others while this one
        # still reads the first (calamine and zlib release the GIL).
        scanning = pool.submit(_scan_parts, path, [first.name] if vouch.scans(first) else [], vouch)
        others = pool.submit(lambda: take_all(_open(path)))
        table = _read_tables(path, book, (first,))[first.name]
        _scanned(table, scanning.result().get(first.name))
        try:
            on_first(table)
        except BaseException:
            with lock:
                todo.clear()
            others.exception()  # wait for the reading thread, whatever became of it
            raise
        tables = take_all(book)
        tables.update(others.result())
    tables[first.name] = table
    for name, scanned in formulas.items():
        if name in tables:
            _scanned(tables[name], scanned)
    return {s.name: tables[s.name] for s in sheets if s.name in tables}


def _read_in_two(
    path: Path, book: CalamineWorkbook, sheets: tuple[Sheet, ...], vouch: _Vouching
) -> dict[str, Table]:
    """Every sheet, read on two threads: calamine releases the GIL while it parses, so
    the larger sheets are read on a second thread (with a workbook object of its own;
    one cannot be shared), and the formula scan (zip inflation, which releases the GIL
    too) runs beside them."""
    from concurrent.futures import ThreadPoolExecutor

    half = tuple(s for s in sheets if s.name in ("Models", "History"))
    rest = tuple(s for s in sheets if s not in half)
    with ThreadPoolExecutor(max_workers=2) as pool:
        scanning = pool.submit(_scan_parts, path, [s.name for s in sheets if vouch.scans(s)], vouch)
        other = pool.submit(_read_tables_anew, path, half, vouch) if half else None
        tables = _read_tables(path, book, rest, vouch)
        if other is not None:
            tables.update(other.result())
        tables = {s.name: tables[s.name] for s in sheets if s.name in tables}
        formulas = scanning.result()
    for name, scanned in formulas.items():
        if name in tables:
            _scanned(tables[name], scanned)
    return tables


def _open(path: Path) -> CalamineWorkbook:
    """A calamine workbook object (each thread needs its own)."""
    import python_calamine

    try:
        return python_calamine.CalamineWorkbook.from_path(str(path))
    except Exception as err:  # noqa: BLE001 - calamine raises several unrelated types
        raise InputError(f"{path}: not a readable Excel workbook: {_first_line(err)}") from None


def _read_tables_anew(path: Path, sheets: tuple[Sheet, ...], vouch: _Vouching) -> dict[str, Table]:
    return _read_tables(path, _open(path), sheets, vouch)


# The parts a workbook of one sheet needs besides the sheet: calamine reads the sheet
# list, the relationships and the styles (dates), and the shared strings if any.
_TAIL_PARTS = ("[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
               "xl/_rels/workbook.xml.rels", "xl/styles.xml", "xl/sharedStrings.xml")  # fmt: skip


def _read_tail(path: Path, sheet: Sheet, vouch: _Vouching) -> Table | None:
    """The rows after those a witness vouches for (its header among them), read by
    calamine from a package holding that sheet's XML without the vouched rows (the same
    bytes, less a stretch of whole rows the witness's verifier read). None if nothing
    is vouched."""
    import io

    import python_calamine

    with zipfile.ZipFile(path) as zf:
        part = sheet_parts(zf).get(sheet.name)
        if part is None:
            return None
        xml = zf.read(part)
        to, end, rows = vouched_rows(xml, vouch.sheets[sheet.name])
        # Without the header as well: it is among the bytes the witness vouches for.
        cut = without_vouched_rows(xml, end, rows, header=False) if to else None
        if cut is None:
            return None
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as mini:
            for name in _TAIL_PARTS:
                if name in zf.namelist():
                    mini.writestr(name, zf.read(name))
            mini.writestr(part, cut[0])
    buffer.seek(0)
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(buffer)
    except Exception:  # noqa: BLE001 - calamine raises several unrelated types
        return None  # read the whole sheet as usual, which reports what is wrong
    table = _tail_table(path, book, sheet)
    table.vouched_to, table.vouched_end, table.omitted = to, end, cut[1]
    return table


def _read_tables(
    path: Path, book: CalamineWorkbook, sheets: tuple[Sheet, ...], vouch: _Vouching | None = None
) -> dict[str, Table]:
    names = set(book.sheet_names)
    tables: dict[str, Table] = {}
    for sheet in sheets:
        if vouch is not None and sheet.name in vouch.tail_only and sheet.name in names:
            tail = _read_tail(path, sheet, vouch)
            if tail is not None:
                tables[sheet.name] = tail
                continue
        if sheet.name not in names:
            if sheet.optional:
                continue
            raise InputError(f"{path.name}: sheet {sheet.name!r} is missing")
        values, _start = _sheet_values(path, book, sheet, skip_empty=False)
        tables[sheet.name] = _table(sheet, values, set())
    return tables


def _sheet_values(
    path: Path, book: CalamineWorkbook, sheet: Sheet, skip_empty: bool
) -> tuple[Sequence[Sequence[CellValue]], tuple[int, int] | None]:
    """A sheet's cell values as calamine reads them (from A1, or with ``skip_empty``
    from the first cell that holds anything), and where they start; an InputError for
    a sheet calamine cannot read or one of the ledger's sheets with merged cells."""
    try:
        data = book.get_sheet_by_name(sheet.name)
        values = data.to_python(skip_empty_area=skip_empty)
        start = data.start
        merged = data.merged_cell_ranges or []
    except Exception as err:  # noqa: BLE001
        raise InputError(
            f"{path.name}: sheet {sheet.name!r} cannot be read: {_first_line(err)}"
        ) from None
    if sheet in NO_MERGES and merged:
        (r0, c0), (r1, c1) = merged[0]
        where = f"{column_letter(c0 + 1)}{r0 + 1}:{column_letter(c1 + 1)}{r1 + 1}"
        raise InputError(
            f"{sheet.name}!{where}: merged cells are not allowed in the "
            f"{sheet.name} sheet; unmerge them"
        )
    return values, start


def _tail_table(path: Path, book: CalamineWorkbook, sheet: Sheet) -> Table:
    """A sheet held without its header and the rows a witness vouches for (its header
    among them, as the witness's verifier read it): only the rows after them, read from
    the first cell that holds anything (calamine says which)."""
    values, start = _sheet_values(path, book, sheet, skip_empty=True)
    if not values or start is None:
        return Table(sheet, [], [], set(), len(sheet.columns))
    first_row, first_col = start
    if first_col:  # the columns before the first that holds anything, given back
        blank: list[CellValue] = [""] * first_col
        values = [blank + list(row) for row in values]
    rows, numbers = _data_rows(sheet, values, first_row + 1)
    return Table(sheet, rows, numbers, set(), len(sheet.columns))


def _table(
    sheet: Sheet, values: Sequence[Sequence[CellValue]], formulas: set[tuple[int, int]]
) -> Table:
    header = [v.strip() if isinstance(v, str) else v for v in (values[0] if values else [])]
    for i, expected in enumerate(sheet.headers):
        found = header[i] if i < len(header) else None
        if found != expected:
            where = f"{sheet.name}!{column_letter(i + 1)}1"
            if expected in header:
                raise InputError(
                    f"{where}: column {expected!r} has moved (found "
                    f"{found!r} here); restore the column order"
                )
            if found in (None, ""):
                raise InputError(f"{where}: column {expected!r} is missing")
            raise InputError(
                f"{where}: column {expected!r} is missing or renamed (found {found!r})"
            )
    rows, numbers = _data_rows(sheet, values[1:], 2)
    return Table(sheet, rows, numbers, formulas, len(header))


def _data_rows(
    sheet: Sheet, values: Sequence[Sequence[CellValue]], first: int
) -> tuple[list[list[CellValue]], list[int]]:
    """The rows that are not empty, in schema column order, and their numbers, the first
    of ``values`` being row ``first``."""
    ncols = len(sheet.columns)
    rows: list[list[CellValue]] = []
    numbers: list[int] = []
    # calamine gives every row up to the last, the empty ones too: one comparison each.
    empty = [""] * len(values[0]) if values else []
    for r, row in enumerate(values, start=first):
        if row == empty:
            continue
        cells = list(row[:ncols])
        if len(cells) < ncols:
            cells.extend([""] * (ncols - len(cells)))
        blanks = cells.count("")
        if blanks + cells.count(None) == ncols:
            continue  # an empty row
        rows.append([None if c == "" else c for c in cells] if blanks else cells)
        numbers.append(r)
    return rows, numbers


# A sheet's formula cells, (the Ledger's) numbers spelt otherwise than plain digits, and
# the row up to which it holds a witness's bytes.
_Scanned = tuple[set[tuple[int, int]], dict[tuple[int, int], str], tuple[int, int]]


class _Vouching:
    """Which rows of each sheet a witness's digests vouch for: none unless every part
    but the worksheets is as witnessed (styles and shared strings decide what a row's
    bytes hold and show)."""

    def __init__(
        self, path: Path, witnessed: PackageDigests | None, tail_only: tuple[Sheet, ...] = ()
    ):
        self.sheets: Mapping[str, tuple[Checkpoint, ...]] = {}
        self.tail_only: frozenset[str] = frozenset()
        if witnessed is not None:
            with zipfile.ZipFile(path) as zf:
                if package_digest(zf) == witnessed.package:
                    self.sheets = witnessed.sheets
                    names = {s.name for s in tail_only} - {s.name for s in FORMULA_SHEETS}
                    self.tail_only = frozenset(names & set(self.sheets))

    def scans(self, sheet: Sheet) -> bool:
        """Whether the sheet's XML is read beside calamine's reading of it (the tail-only
        sheets are scanned as they are read)."""
        in_tail = sheet.name in self.tail_only
        return sheet in FORMULA_SHEETS or (sheet.name in self.sheets and not in_tail)

    def vouched(self, name: str, data: bytes) -> tuple[int, int]:
        """The vouched row and where it ends in ``data`` (0, 0 for none)."""
        checkpoints = self.sheets.get(name)
        return vouched_prefix(data, checkpoints) if checkpoints else (0, 0)


def _scanned(table: Table, scanned: _Scanned | None) -> None:
    if scanned is not None:
        table.formulas, table.spelt, (table.vouched_to, table.vouched_end) = scanned


def _scan_parts(path: Path, sheet_names: list[str], vouch: _Vouching) -> dict[str, _Scanned]:
    """Cells that hold a formula, per sheet: calamine only gives their cached values;
    in the Ledger, number cells not spelt as plain whole numbers (``Table.spelt``); and
    the row up to which a witness vouches for the sheet."""
    out: dict[str, _Scanned] = {}
    with zipfile.ZipFile(path) as zf:
        parts = sheet_parts(zf)
        for name in sheet_names:
            part = parts.get(name)
            if part is None:
                continue
            data = zf.read(part)
            out[name] = (*_scan_xml(name, data), vouch.vouched(name, data))
    return out


def _scan_xml(name: str, data: bytes) -> tuple[set[tuple[int, int]], dict[tuple[int, int], str]]:
    """A sheet's formula cells and (the Ledger's) numbers spelt otherwise than plain
    digits: only the sheets whose formulas matter are scanned."""
    if name not in FORMULA_NAMES:
        return set(), {}
    spelt = _spelt_numbers(data) if name == LEDGER.name else {}
    cells = set()
    if _may_hold_formulas(data):  # else a literal-prefixed search decided it
        for match in _CELL_WITH_FORMULA.finditer(data):
            cells.add((int(match.group(2)), _col_index(match.group(1).decode())))
    return cells, spelt


def read_tails(
    path: Path, parts: Mapping[str, bytes], sheets: tuple[Sheet, ...], witnessed: PackageDigests
) -> dict[str, Table] | None:
    """The sheets of a package held in memory (a writer's ``PackagePatch``), each without
    the rows a witness's digests vouch for: the header and the rows after them, read by
    calamine from one small package, with their formulas scanned (``Table.omitted``
    counts the rows left out). None unless every part but the worksheets is as
    witnessed, or when the package is not one calamine reads: the caller then reads
    the workbook as usual, which reports what is wrong."""
    import io

    import python_calamine

    if parts_digest(parts) != witnessed.package or WORKBOOK_PART not in parts:
        return None
    targets = sheet_targets(parts[WORKBOOK_PART], parts.get(WORKBOOK_RELS, b""))
    buffer = io.BytesIO()
    read: dict[str, tuple[int, int, int, bytes]] = {}  # name -> (to, end, omitted, xml)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as mini:
        for name in _TAIL_PARTS:
            if name in parts:
                mini.writestr(name, parts[name])
        for sheet in sheets:
            part = targets.get(sheet.name)
            if part is None or part not in parts:
                if sheet.optional:
                    continue
                return None
            xml = parts[part]
            checkpoints = witnessed.sheets.get(sheet.name)
            spans = witnessed.spans.get(sheet.name, ())
            to, end, rows = vouched_rows(xml, checkpoints, spans) if checkpoints else (0, 0, 0)
            # Without the header as well: it is among the bytes the witness vouches for.
            cut = without_vouched_rows(xml, end, rows, header=False) if to else None
            read[sheet.name] = (to, end, cut[1], cut[0]) if cut else (0, 0, 0, xml)
            mini.writestr(part, read[sheet.name][3])
    buffer.seek(0)
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(buffer)
    except Exception:  # noqa: BLE001 - calamine raises several unrelated types
        return None
    whole = tuple(s for s in sheets if s.name in read and not read[s.name][0])
    tables = _read_tables(path, book, whole)
    for sheet in sheets:
        if sheet.name in read and read[sheet.name][0]:
            tables[sheet.name] = _tail_table(path, book, sheet)
    for name, (to, end, omitted, xml) in read.items():
        table = tables[name]
        table.vouched_to, table.vouched_end, table.omitted = to, end, omitted
        table.formulas, table.spelt = _scan_xml(name, xml)
    return tables


# Inside a <v> (or <x:v>): what no plain whole number has (a point, an exponent, a sign,
# a blank, a leading zero); or a <v> with attributes, which calamine reads too. One
# literal-prefixed search, at C speed over megabytes (a hit in text only costs time).
_ODD_VALUE_HINT = re.compile(rb"v(?:>(?:0[0-9]|[0-9]*[^0-9<])|\s[^<>]*>)")
_PLAIN_WHOLE = re.compile(r"0|-?[1-9][0-9]*")


def _spelt_numbers(data: bytes) -> dict[tuple[int, int], str]:
    """Number cells whose XML text is not a plain whole number, by (row, col index).
    Excel, LibreOffice and regbook write 5 as ``<v>5</v>``; ``5.0`` reads the same.
    Most sheets are decided by one C-speed search; a hint of anything else has the part
    parsed, cell by cell."""
    if not _ODD_VALUE_HINT.search(data):
        return {}
    import xml.etree.ElementTree as ET  # the rare case: parse the part (no DTD: checked)

    out: dict[tuple[int, int], str] = {}
    row_no = 0
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return {}  # not XML: calamine refuses the sheet
    for row in root.iter():
        if row.tag.rsplit("}", 1)[-1] != "row":
            continue
        number = row.get("r") or ""
        row_no = int(number) if number.isdigit() else row_no + 1
        col = -1
        for cell in row:
            if cell.tag.rsplit("}", 1)[-1] != "c":
                continue
            ref = cell.get("r")
            if ref:
                match = re.fullmatch(r"([A-Z]{1,3})([0-9]+)", ref)
                col = _col_index(match.group(1)) if match else col + 1
            else:
                col += 1
            if cell.get("t", "n") != "n":
                continue
            for value in cell:
                if value.tag.rsplit("}", 1)[-1] == "v":
                    text = value.text or ""
                    if not _PLAIN_WHOLE.fullmatch(text):
                        out[row_no, col] = text
    return out


def _may_hold_formulas(data: bytes) -> bool:
    """Whether ``<f`` or ``:f`` followed by a blank, ``>`` or ``/`` occurs anywhere: a
    sheet without formulas is decided by two C-speed substring searches (a regex with
    an alternation walked megabytes at Python's regex speed, 1.4 s at 40,000 events)."""
    for needle in (b"<f", b":f"):
        at = data.find(needle)
        while at != -1:
            if at + 2 < len(data) and data[at + 2] in _AFTER_F:
                return True
            at = data.find(needle, at + 2)
    return False


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]


class WorkbookWriter:
    """The one way regbook writes a workbook: locked, refused while open in an office
    suite, atomic, with rotating backups."""

    def __init__(self, path: Path, backups: int = 3):
        self.path = path
        self.backups = backups
        self._lock: BaseFileLock | None = None

    def __enter__(self) -> WorkbookWriter:
        from filelock import FileLock, Timeout

        refuse_if_open(self.path)
        check_package(self.path)
        lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")))
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout:
            raise WorkbookLocked(
                f"{self.path.name} is locked by another regbook command; try again when "
                "it has finished: nothing was written"
            ) from None
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def load(self) -> openpyxl.Workbook:
        import openpyxl

        try:
            return openpyxl.load_workbook(self.path)
        except Exception as err:  # noqa: BLE001 - openpyxl raises many unrelated types
            raise InputError(
                f"{self.path}: cannot be opened for writing: {_first_line(err)}"
            ) from None

    def save(self, wb: openpyxl.Workbook | PackagePatch) -> None:
        """Write beside the target, fsync, keep backups, rename into place."""
        if hasattr(wb, "worksheets"):  # an openpyxl workbook, not a PackagePatch
            # openpyxl forgets comment sizes on load
            refresh_header_comments(cast("openpyxl.Workbook", wb))
        refuse_if_open(self.path)

        def last_look() -> None:  # the office suite may have opened it meanwhile
            refuse_if_open(self.path)
            self._rotate_backups()

        try:
            with fs.replacing(self.path, before_rename=last_look) as handle:
                wb.save(handle)
        except OSError as err:
            raise RegbookError(
                f"{self.path.name} could not be written ({err.strerror or err}); "
                "the previous workbook is unchanged"
            ) from None

    def _rotate_backups(self) -> None:
        if self.backups <= 0 or not self.path.exists():
            return
        for n in range(self.backups, 1, -1):
            older = backup_path(self.path, n - 1)
            if older.exists():
                os.replace(older, backup_path(self.path, n))
        newest = backup_path(self.path, 1)
        tmp = newest.with_name(newest.name + ".tmp")
        shutil.copy2(self.path, tmp)
        os.replace(tmp, newest)
