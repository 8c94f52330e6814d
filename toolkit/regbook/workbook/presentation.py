"""How the workbook presents its cells: what a reader sees besides the values.

A cell's value is what calamine reads; what Excel or LibreOffice shows is that value
through the cell's format: its number format, font, fill and alignment, and through
the sheet's hidden rows and columns, conditional formats, drawings and settings. This
module reads that presentation, fast, and says nothing about what it should be (that
is the registry's business, ``regbook.registry.display``)::

    shown = read_presentation(path, ["Models", "Ledger"])
    shown.sheets["Models"].cells        # {(column index, format index), ...} below row 1
    shown.looks[15].number_format       # 'yyyy-mm-dd', as effective, whatever its id
    shown.rows_with("Models", 3, 15)    # the rows whose cell in column D has format 15

Cell formats are resolved once from styles.xml (and the theme) into *effective* looks:
a number format as its code whatever id it has, a font with its theme colour and
theme typeface resolved, the colour behind the text. So a workbook re-saved by
LibreOffice, which renumbers every format, compares equal to the one regbook wrote.

Sheets are scanned without parsing every cell: one C-speed regular expression collects
the distinct (column, format) pairs of a sheet. A sheet whose cells are written in
another form than the one Excel, LibreOffice and regbook write (attributes in another
order, a namespace prefix) is parsed in full instead: slower, never wrong.
"""

from __future__ import annotations

import colorsys
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from regbook.core.errors import InputError
from regbook.workbook.package import ATTR_RE, REL_ENTRY_RE, SHEET_ENTRY_RE, unescape_xml

if TYPE_CHECKING:  # pragma: no cover
    from xml.etree.ElementTree import Element

T = TypeVar("T")

# Rows lower than this (points) and columns narrower than this (characters) show
# nothing a reader can read: they count as hidden. Text is 15 pt high, a digit 1 wide.
MIN_ROW_HEIGHT = 5.0
MIN_COLUMN_WIDTH = 1.0

Rgb = tuple[float, float, float]
BLACK: Rgb = (0.0, 0.0, 0.0)
WHITE: Rgb = (1.0, 1.0, 1.0)

# Number formats every spreadsheet program knows by id alone (ECMA-376, 18.8.30); the
# locale-dependent ones (5-8, 23-36, 41-44 and others) are left out and read as unknown.
BUILTIN_FORMATS = {
    0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 9: "0%", 10: "0.00%",
    11: "0.00E+00", 12: "# ?/?", 13: "# ??/??", 14: "mm-dd-yy", 15: "d-mmm-yy",
    16: "d-mmm", 17: "mmm-yy", 18: "h:mm AM/PM", 19: "h:mm:ss AM/PM", 20: "h:mm",
    21: "h:mm:ss", 22: "m/d/yy h:mm", 37: "#,##0 ;(#,##0)", 38: "#,##0 ;[Red](#,##0)",
    39: "#,##0.00;(#,##0.00)", 40: "#,##0.00;[Red](#,##0.00)", 45: "mm:ss",
    46: "[h]:mm:ss", 47: "mmss.0", 48: "##0.0E+0", 49: "@",
}  # fmt: skip

# The legacy palette behind indexed colours (64: the system's text colour, 65: its
# window colour), unless styles.xml gives its own.
_PALETTE = (
    "000000 FFFFFF FF0000 00FF00 0000FF FFFF00 FF00FF 00FFFF "
    "000000 FFFFFF FF0000 00FF00 0000FF FFFF00 FF00FF 00FFFF "
    "800000 008000 000080 808000 800080 008080 C0C0C0 808080 "
    "9999FF 993366 FFFFCC CCFFFF 660066 FF8080 0066CC CCCCFF "
    "000080 FF00FF FFFF00 00FFFF 800080 800000 008080 0000FF "
    "00CCFF CCFFFF CCFFCC FFFF99 99CCFF FF99CC CC99FF FFCC99 "
    "3366FF 33CCCC 99CC00 FFCC00 FF9900 FF6600 666699 969696 "
    "003366 339966 003300 333300 993300 993366 333399 333333"
).split()
# Theme colour indexes as cells use them: light 1 and dark 1 come first, swapped.
_THEME_ORDER = ("lt1", "dk1", "lt2", "dk2", "accent1", "accent2", "accent3", "accent4",
                "accent5", "accent6", "hlink", "folHlink")  # fmt: skip

# A cell written as Excel, LibreOffice and regbook write it: r first, then s.
_CELL = re.compile(rb'<c r="([A-Z]{1,3})[0-9]+" s="([0-9]+)"')
_SLICE = 1 << 20
_NOT_A_NOTE = re.compile(rb'ObjectType="(?!Note")')
_SHOWN_NOTE = re.compile(rb"<(?:\w+:)?Visible\b|visibility:\s*visible", re.IGNORECASE)
_CELL_ROW = re.compile(rb'<c r="[A-Z]{1,3}([0-9]+)"')
# The sheet's own namespace bound to a prefix (cells could then be <x:c>).
_MAIN_PREFIXED = re.compile(
    rb'xmlns:[\w.-]+="(?:http://schemas\.openxmlformats\.org/spreadsheetml/2006/main|'
    rb'http://purl\.oclc\.org/ooxml/spreadsheetml/main)"'
)
# A row that says anything about hiding or its height (the usual form: unprefixed).
_ODD_ROW = re.compile(rb"<row\b([^>]*?\b(?:hidden|ht)=[^>]*)>")
_ROW_TAG = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_COL_TAG = re.compile(rb"<(?:\w+:)?col\b([^>]*)>")
_SHEET_DATA = re.compile(rb"<(?:\w+:)?sheetData\b[^>]*?(/?)>")
_SHEET_DATA_END = re.compile(rb"</(?:\w+:)?sheetData>")
_ROW_END = re.compile(rb"</(?:\w+:)?row>")
_CF_TAG = re.compile(rb"<(?:\w+:)?conditionalFormatting\b([^>]*)>")
_XM_SQREF = re.compile(rb"<(?:\w+:)?sqref>([^<]*)</(?:\w+:)?sqref>")
_ANCHOR = re.compile(rb"<(?:\w+:)?(?:twoCellAnchor|oneCellAnchor|absoluteAnchor)\b")
_LOCALE = re.compile(r"\[\$-[0-9a-f]+\]")
_REF = re.compile(r"([A-Z]{1,3})([0-9]+)")


@dataclass(frozen=True)
class Look:
    """What one cell format does to a cell, as a reader sees it."""

    number_format: str  # the code, lower case, escapes and quotes and locale tags removed
    format_code: str  # the code as written
    font_name: str
    font_size: float
    font_color: Rgb | None  # None: automatic (the system's text colour)
    background: Rgb  # the colour behind the text
    pattern: str  # the fill's pattern, "none" without one
    horizontal: str
    indent: int


@dataclass
class SheetLook:
    """One sheet's presentation: its state, the formats its cells use below the header
    row, its hidden rows and columns, and what else is drawn over its cells."""

    name: str
    part: str
    state: str = "visible"  # visible, hidden or veryHidden
    cells: set[tuple[int, int]] = field(default_factory=set)  # (column index, format)
    hidden_rows: dict[int, str] = field(default_factory=dict)  # row -> why
    hidden_columns: dict[int, str] = field(default_factory=dict)  # column index -> why
    conditional: list[str] = field(default_factory=list)  # the ranges of conditional formats
    objects: list[str] = field(default_factory=list)  # drawings, pictures, controls
    protected: bool = False
    zeros_hidden: bool = False
    scanned: bool = False
    fast: bool = True  # cells written in the usual form (the regex scan applies)


@dataclass
class Presentation:
    path: Path
    looks: list[tuple[Look, ...]]  # by format index: one look, or two where readers differ
    sheets: dict[str, SheetLook]  # every sheet of the workbook, in its order
    window_hidden: bool = False
    tabs_hidden: bool = False  # a reader sees only the sheet the workbook opens on

    def look(self, index: int) -> tuple[Look, ...] | None:
        return self.looks[index] if 0 <= index < len(self.looks) else None

    def rows_with(self, sheet: str, column: int, index: int) -> list[int]:
        """The rows (below the header) whose cell in ``column`` has format ``index``:
        a second pass over that one sheet, made only when a format is wrong."""
        look = self.sheets[sheet]
        with zipfile.ZipFile(self.path) as zf:
            data = zf.read(look.part)
        if look.fast:
            letters = _letters(column).encode()
            pattern = re.compile(rb'<c r="' + letters + rb'([0-9]+)" s="0*' +
                                 str(index).encode() + rb'"')  # fmt: skip
            return sorted(r for r in map(int, pattern.findall(data)) if r > 1)
        return sorted(r for r, c, s in _parse_cells(data) if r > 1 and c == column and s == index)


# Per column index, the format indices a caller accepts in it; None: any.
Accepted = Mapping[int, frozenset[int] | None]


def read_presentation(
    path: Path,
    scan: Iterable[str],
    vouched: Mapping[str, int] | None = None,
    accepted: Callable[[str, Presentation], Accepted] | None = None,
) -> Presentation:
    """The workbook's cell formats and every sheet's state; the sheets named in ``scan``
    are read in full (cells, rows, columns, overlays), but for the rows a witness vouches
    for: ``vouched`` maps a sheet to where they end in its XML (the witness's verifier
    found their look clean, under the same styles). With ``accepted`` (given the sheet's
    name and the formats read), a sheet's ``cells`` hold only the (column, format) pairs
    it does not accept: a clean sheet yields none, and costs no match per cell."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            workbook = zf.read("xl/workbook.xml")
            rels = _rels(zf, "xl/_rels/workbook.xml.rels")
            styles = zf.read("xl/styles.xml") if "xl/styles.xml" in names else b""
            theme_part = next((n for n in sorted(names) if n.startswith("xl/theme/")), None)
            theme = zf.read(theme_part) if theme_part else b""
            shown = Presentation(path, _looks(styles, theme), {})
            shown.window_hidden = bool(
                re.search(rb'<(?:\w+:)?workbookView\b[^>]*\bvisibility="(?:hidden|veryHidden)"',
                          workbook))  # fmt: skip
            shown.tabs_hidden = bool(
                re.search(rb'<(?:\w+:)?workbookView\b[^>]*\bshowSheetTabs="(?:0|false)"',
                          workbook))  # fmt: skip
            for entry in SHEET_ENTRY_RE.findall(workbook):
                attrs = dict(ATTR_RE.findall(entry))
                name = unescape_xml(attrs.get(b"name", b"").decode("utf-8", "replace"))
                rid = next((v for k, v in attrs.items() if k.endswith(b":id")), b"").decode()
                part = rels.get(rid, "")
                state = attrs.get(b"state", b"visible").decode("ascii", "replace")
                shown.sheets[name] = SheetLook(name, part, state)
            for name in scan:
                sheet = shown.sheets.get(name)
                if sheet is not None and sheet.part in names:
                    allowed = accepted(name, shown) if accepted is not None else None
                    _scan_sheet(zf, sheet, names, (vouched or {}).get(name, 0), allowed)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise InputError(f"{path}: cannot read the workbook's formats: {err}") from None
    return shown


# --- styles --------------------------------------------------------------------------


def _looks(styles: bytes, theme: bytes) -> list[tuple[Look, ...]]:
    import xml.etree.ElementTree as ET  # the parts are checked for DTDs by check_package

    if not styles:
        return [(Look("general", "General", "calibri", 11.0, None, WHITE, "none", "general", 0),)]
    try:
        root = ET.fromstring(styles)
    except ET.ParseError as err:
        raise InputError(f"xl/styles.xml cannot be read: {err}") from None
    colors, minor, major = _theme(theme)
    palette = _palette(root)
    formats = dict(BUILTIN_FORMATS)
    for item in _children(root, "numFmts", "numFmt"):
        if (num := item.get("numFmtId", "")).isdigit():
            formats[int(num)] = item.get("formatCode", "")
    fonts = [_font(f, colors, palette, minor, major) for f in _children(root, "fonts", "font")]
    # A font without a typeface is drawn in the workbook's default one (the first font).
    fonts = [(name or (fonts[0][0] if fonts else ""), size, color) for name, size, color in fonts]
    fills = [_fill(f, colors, palette) for f in _children(root, "fills", "fill")]
    parents = _children(root, "cellStyleXfs", "xf")
    out = []
    for xf in _children(root, "cellXfs", "xf"):
        parent = _pick(parents, xf.get("xfId"))
        readings: list[list[Element]] = [[xf, xf, xf, xf]]
        if parent is not None:
            # A format whose apply flag is off takes that part from its cell style in
            # some readers and from itself in others: both readings must be sound.
            readings.append([
                parent if xf.get(flag, "1") in ("0", "false") else xf
                for flag in ("applyNumberFormat", "applyFont", "applyFill", "applyAlignment")
            ])  # fmt: skip
        looks = []
        for number, font, fill, align in readings:
            code = formats.get(_int(number.get("numFmtId")), "")
            name, size, color = _pick(fonts, font.get("fontId")) or ("", 0.0, BLACK)
            pattern, background = _pick(fills, fill.get("fillId")) or ("none", WHITE)
            alignment = next((c for c in align if _local(c.tag) == "alignment"), None)
            looks.append(Look(
                normalize_format(code), code, name, size, color, background, pattern,
                alignment.get("horizontal", "general") if alignment is not None else "general",
                _int(alignment.get("indent")) if alignment is not None else 0,
            ))  # fmt: skip
        out.append(tuple(dict.fromkeys(looks)))
    return out


def normalize_format(code: str) -> str:
    """A number format code as a reader's eye compares it: lower case, without escapes,
    quotes or locale tags (``yyyy\\-mm\\-dd`` and ``[$-409]YYYY-MM-DD`` are one format);
    a code that shows a constant text stays unlike every plain one."""
    text = _LOCALE.sub("", code.lower())
    return text.replace("\\", "").replace('"', "").strip() or "general"


def _font(
    font: Element, colors: dict[int, Rgb], palette: list[Rgb], minor: str, major: str
) -> tuple[str, float, Rgb | None]:
    name, size, color, scheme = "", 11.0, None, ""
    for child in font:
        tag = _local(child.tag)
        if tag == "name":
            name = child.get("val", "")
        elif tag == "sz":
            try:
                size = float(child.get("val", "11"))
            except ValueError:
                size = 0.0
        elif tag == "color":
            color = _color(child, colors, palette, None)
        elif tag == "scheme":
            scheme = child.get("val", "")
    # A font of the theme's scheme is drawn in the theme's typeface, whatever its name.
    name = {"minor": minor or name, "major": major or name}.get(scheme, name)
    return name.lower(), size, color


def _fill(fill: Element, colors: dict[int, Rgb], palette: list[Rgb]) -> tuple[str, Rgb]:
    pattern = next((c for c in fill if _local(c.tag) == "patternFill"), None)
    if pattern is None:
        # A gradient fill: its first stop stands for it.
        stop = next((c for c in fill.iter() if _local(c.tag) == "color"), None)
        return "gradient", (
            _color(stop, colors, palette, WHITE) if stop is not None else None
        ) or WHITE
    kind = pattern.get("patternType", "none")
    fg = next((c for c in pattern if _local(c.tag) == "fgColor"), None)
    bg = next((c for c in pattern if _local(c.tag) == "bgColor"), None)
    front = _color(fg, colors, palette, BLACK) if fg is not None else BLACK
    back = _color(bg, colors, palette, WHITE) if bg is not None else WHITE
    if kind == "none":
        return "none", WHITE
    if kind == "solid":
        return "solid", front or BLACK
    # A pattern mixes both colours: the darker one stands for it.
    front, back = front or BLACK, back or WHITE
    return kind, min(front, back, key=luminance)


def _color(
    element: Element, colors: dict[int, Rgb], palette: list[Rgb], auto: Rgb | None
) -> Rgb | None:
    get = element.get
    if get("auto") in ("1", "true"):
        return auto
    base: Rgb | None = None
    if (rgb := get("rgb")) and re.fullmatch(r"[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?", rgb):
        rgb = rgb[-6:]
        base = (int(rgb[0:2], 16) / 255, int(rgb[2:4], 16) / 255, int(rgb[4:6], 16) / 255)
    elif (theme := get("theme")) is not None and theme.isdigit():
        base = colors.get(int(theme), BLACK)
    elif (indexed := get("indexed")) is not None and indexed.isdigit():
        number = int(indexed)
        base = palette[number] if number < len(palette) else (WHITE if number == 65 else BLACK)
    if base is None:
        return auto
    try:
        tint = float(get("tint", "0"))
    except ValueError:
        tint = 0.0
    if tint:
        h, lum, s = colorsys.rgb_to_hls(*base)
        lum = lum * (1 + tint) if tint < 0 else lum * (1 - tint) + tint
        base = colorsys.hls_to_rgb(h, min(1.0, max(0.0, lum)), s)
    return base


def luminance(color: Rgb) -> float:
    """Relative luminance (WCAG 2): 0 for black, 1 for white."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: Rgb, b: Rgb) -> float:
    """WCAG 2 contrast ratio, from 1 (the same colour) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _theme(theme: bytes) -> tuple[dict[int, Rgb], str, str]:
    import xml.etree.ElementTree as ET

    colors: dict[int, Rgb] = {}
    minor = major = ""
    if not theme:
        return colors, minor, major
    try:
        root = ET.fromstring(theme)
    except ET.ParseError:
        return colors, minor, major
    for element in root.iter():
        tag = _local(element.tag)
        if tag in _THEME_ORDER:
            for child in element:
                value = child.get("lastClr") or child.get("val") or ""
                if re.fullmatch(r"[0-9A-Fa-f]{6}", value):
                    colors[_THEME_ORDER.index(tag)] = (
                        int(value[0:2], 16) / 255, int(value[2:4], 16) / 255,
                        int(value[4:6], 16) / 255,
                    )  # fmt: skip
        elif tag in ("minorFont", "majorFont"):
            latin = next((c for c in element if _local(c.tag) == "latin"), None)
            face = latin.get("typeface", "") if latin is not None else ""
            if tag == "minorFont":
                minor = face
            else:
                major = face
    return colors, minor, major


def _palette(root: Element) -> list[Rgb]:
    custom = [c.get("rgb", "")[-6:] for c in root.iter() if _local(c.tag) == "rgbColor"]
    codes = custom if len(custom) >= 8 else _PALETTE
    out = []
    for code in codes:
        code = code if re.fullmatch(r"[0-9A-Fa-f]{6}", code) else "000000"
        out.append((int(code[0:2], 16) / 255, int(code[2:4], 16) / 255, int(code[4:6], 16) / 255))
    return out


def _children(root: Element, container: str, tag: str) -> list[Element]:
    for element in root.iter():
        if _local(element.tag) == container:
            return [c for c in element if _local(c.tag) == tag]
    return []


def _pick(items: list[T], index: str | None) -> T | None:
    number = _int(index)
    return items[number] if 0 <= number < len(items) else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(text: str | bytes | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return -1


def _letters(column: int) -> str:
    out, n = "", column + 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def column_span(ref: str) -> tuple[int, int] | None:
    """The first and last column index of an A1 range (``D2:F9``, ``D:D``, ``D7``)."""
    ends = [re.match(r"\$?([A-Z]{1,3})", part.strip().upper()) for part in ref.split(":")]
    if not ends or any(e is None for e in ends) or len(ends) > 2:
        return None
    first, last = (_column_index(e.group(1)) for e in (ends[0], ends[-1]) if e is not None)
    return (first, last) if first <= last else (last, first)


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


# --- sheets --------------------------------------------------------------------------


def _rels(zf: zipfile.ZipFile, part: str) -> dict[str, str]:
    """Relationship id -> the part it points to, from one .rels part."""
    if part not in zf.namelist():
        return {}
    base = part.replace("_rels/", "").removesuffix(".rels").rsplit("/", 1)[0]
    out = {}
    for entry in REL_ENTRY_RE.findall(zf.read(part)):
        attrs = dict(ATTR_RE.findall(entry))
        rid, target = attrs.get(b"Id"), attrs.get(b"Target")
        if rid and target:
            t = target.decode("utf-8", "replace")
            out[rid.decode("utf-8", "replace")] = (
                t.lstrip("/") if t.startswith("/") else _join(base, t)
            )
    return out


def _join(base: str, target: str) -> str:
    parts = base.split("/") if base else []
    for piece in target.split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def _attrs(blob: bytes) -> dict[bytes, bytes]:
    return {k.rsplit(b":", 1)[-1]: v for k, v in ATTR_RE.findall(blob)}


def _true(value: bytes | None) -> bool:
    return value in (b"1", b"true")


def _float(value: bytes | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _scan_sheet(
    zf: zipfile.ZipFile,
    sheet: SheetLook,
    names: set[str],
    skip: int = 0,
    accepted: Accepted | None = None,
) -> None:
    data = zf.read(sheet.part)
    sheet.scanned = True
    opened = _SHEET_DATA.search(data)
    if opened is None:
        head, start, end = len(data), len(data), len(data)
    else:
        head = opened.start()
        start = opened.end()
        # From the end: a regex walking forward would try every "</" of the sheet.
        last = data.rfind(b"</sheetData>")
        closed = None if opened.group(1) or last >= start else _SHEET_DATA_END.search(data, start)
        end = (
            last if not opened.group(1) and last >= start else (closed.start() if closed else start)
        )
    outside = data[:head] + data[end:]
    found_fmt = re.search(rb"<(?:\w+:)?sheetFormatPr\b([^>]*)>", outside)
    fmt = _attrs(found_fmt.group(1)) if found_fmt else {}
    default_height = _float(fmt.get(b"defaultRowHeight"), 15.0)
    rows_hidden = _true(fmt.get(b"zeroHeight")) or (
        _true(fmt.get(b"customHeight")) and default_height < MIN_ROW_HEIGHT
    )
    _scan_columns(sheet, outside, _float(fmt.get(b"defaultColWidth"), 8.43))
    view = re.search(rb"<(?:\w+:)?sheetView\b([^>]*)>", outside)
    zeros = _attrs(view.group(1)).get(b"showZeros") if view else None
    sheet.zeros_hidden = zeros in (b"0", b"false")
    protection = re.search(rb"<(?:\w+:)?sheetProtection\b([^>]*)>", outside)
    sheet.protected = _true(_attrs(protection.group(1)).get(b"sheet")) if protection else False
    if b"onditionalFormatting" in outside:
        ranges = [
            _attrs(a).get(b"sqref", b"").decode("utf-8", "replace")
            for a in _CF_TAG.findall(outside)
        ]
        ranges += [r.decode("utf-8", "replace") for r in _XM_SQREF.findall(outside)]
        sheet.conditional = [r.strip() for r in ranges] or [""]
    _scan_objects(zf, sheet, outside, names)
    # The header row (row 1) is the template's; the scan starts below it.
    first = _ROW_TAG.search(data, start, end)
    below = start
    if first is not None and _attrs(first.group(1)).get(b"r", b"1") == b"1":
        closed_row = _ROW_END.search(data, first.end(), end)
        below = first.end() if first.group(1).endswith(b"/") or not closed_row else closed_row.end()
    # The rows a witness vouches for are left out, after the header row.
    header_end, below = below, max(below, min(skip, end))
    rows_from = below if skip else start
    # The usual form: no namespace prefix on the sheet's own elements, none declared
    # inside its rows, and every element starting "<c" in them a cell with r and s.
    # By slices of about a megabyte, cut before a row: the matches of one slice at a
    # time are held, not the 230,000 of a 10,000-version Models sheet.
    pairs: set[tuple[bytes, bytes]] = set()
    if accepted is None:
        matched, pos = 0, below
        while pos < end:
            cut = data.find(b"<row", pos + _SLICE, end)
            cut = end if cut == -1 else cut
            found = _CELL.findall(data, pos, cut)
            matched += len(found)
            pairs.update(found)
            pos = cut
        all_cells_usual = data.count(b"<c", below, end) == matched
    else:
        # One pass that matches only a cell not in the usual form (its first group
        # empty) or one whose format its column does not accept.
        found = _unaccepted_cells(accepted).findall(data, below, end)
        all_cells_usual = all(column for column, _index in found)
        pairs.update(found)
    usual = (
        # a cell of another row placed inside the header row would escape the scan
        all(r == b"1" for r in _CELL_ROW.findall(data, start, header_end))
        and not _MAIN_PREFIXED.search(data, 0, start)
        and data.find(b"xmlns", rows_from, end) == -1
        and all_cells_usual
    )
    if not (
        usual
        and not rows_hidden
        and _scan_rows(
            sheet, _ODD_ROW.finditer(data, rows_from, end), default_height, False, odd=True
        )
    ):
        sheet.hidden_rows.clear()
        _scan_rows(sheet, _ROW_TAG.finditer(data, start, end), default_height, rows_hidden)
    if usual:
        sheet.cells = {(_column_index(c.decode()), int(s)) for c, s in pairs}
    else:
        sheet.fast = False
        sheet.cells = {(c, s) for r, c, s in _parse_cells(data) if r > 1}


def _unaccepted_cells(accepted: Accepted) -> re.Pattern[bytes]:
    """A pattern for the cells (``<c`` elements) that are either not in the usual form
    ``<c r="D7" s="5"`` (both groups empty) or in it with a format their column does not
    accept (column letters, format index)."""
    fine = []
    for column, indices in sorted(accepted.items()):
        letters = _letters(column).encode()
        if indices is None:
            fine.append(letters + rb'[0-9]+" s="[0-9]+"')
        elif indices:
            spelt = b"|".join(str(i).encode() for i in sorted(indices))
            fine.append(letters + rb'[0-9]+" s="(?:' + spelt + rb')"')
    accept = rb"(?!" + b"|".join(fine) + rb")" if fine else b""
    return re.compile(
        rb'<c(?=[\s/>])(?: r="' + accept + rb'([A-Z]{1,3})[0-9]+" s="([0-9]+)"'
        rb'|(?! r="[A-Z]{1,3}[0-9]+" s="[0-9]+"))'
    )


def _scan_rows(
    sheet: SheetLook,
    rows: Iterable[re.Match[bytes]],
    default: float,
    hidden: bool,
    odd: bool = False,
) -> bool:
    """Hidden and too low rows. ``rows`` are every row element, or (``odd``: the usual
    form, rows shown by default) only those that say anything about hiding or height;
    False if one of those has no number (then every row must be counted)."""
    number = 0
    for match in rows:
        blob = match.group(1)
        if b"r=" not in blob and b"hidden" not in blob and b"ht=" not in blob:
            number += 1
            if hidden:
                sheet.hidden_rows[number] = "hidden (rows are hidden by default)"
            continue
        attrs = _attrs(blob)
        if attrs.get(b"r", b"").isdigit():
            number = _int(attrs.get(b"r"))
        elif odd:  # numbered by its place: every row must be counted
            return False
        else:
            number += 1
        if _true(attrs.get(b"hidden")):
            sheet.hidden_rows[number] = "hidden"
        elif b"ht" in attrs:
            height = _float(attrs.get(b"ht"), default)
            if height < MIN_ROW_HEIGHT:
                sheet.hidden_rows[number] = f"{height:g} pt high"
        elif hidden:
            sheet.hidden_rows[number] = "hidden (rows are hidden by default)"
    return True


def _scan_columns(sheet: SheetLook, outside: bytes, default: float) -> None:
    covered: set[int] = set()
    for blob in _COL_TAG.findall(outside):
        attrs = _attrs(blob)
        low, high = _int(attrs.get(b"min")), _int(attrs.get(b"max"))
        if low < 1 or high < low:
            continue
        span = range(low - 1, min(high, 16384))
        covered.update(span)
        why = ""
        if _true(attrs.get(b"hidden")):
            why = "hidden"
        elif b"width" in attrs and _float(attrs.get(b"width"), default) < MIN_COLUMN_WIDTH:
            why = f"{_float(attrs.get(b'width'), default):g} characters wide"
        if why:
            for column in span:
                if column < 256:
                    sheet.hidden_columns[column] = why
    if default < MIN_COLUMN_WIDTH:
        for column in range(256):
            if column not in covered:
                sheet.hidden_columns[column] = f"{default:g} characters wide (the default)"


def _scan_objects(zf: zipfile.ZipFile, sheet: SheetLook, outside: bytes, names: set[str]) -> None:
    """Drawings with shapes or pictures, a background picture, embedded objects and
    controls: anything drawn over (or behind) the cells."""
    folder, leaf = sheet.part.rsplit("/", 1) if "/" in sheet.part else ("", sheet.part)
    rels = _rels(zf, f"{folder}/_rels/{leaf}.rels")
    for match in re.finditer(rb"<(?:\w+:)?drawing\b([^>]*)>", outside):
        attrs = _attrs(match.group(1))
        target = rels.get(attrs.get(b"id", b"").decode("utf-8", "replace"), "")
        # LibreOffice writes an empty drawing for every sheet: only one that anchors
        # something counts.
        if target not in names or _ANCHOR.search(zf.read(target)):
            sheet.objects.append("a drawing (shapes, text boxes or pictures over the cells)")
    for match in re.finditer(rb"<(?:\w+:)?legacyDrawing\b([^>]*)>", outside):
        target = rels.get(_attrs(match.group(1)).get(b"id", b"").decode("utf-8", "replace"), "")
        # Comment boxes are drawn hidden until pointed at; one set visible sits over cells.
        vml = zf.read(target) if target in names else b""
        if _SHOWN_NOTE.search(vml):
            sheet.objects.append("a comment box set always visible (it sits over the cells)")
        if _NOT_A_NOTE.search(vml):
            sheet.objects.append("a legacy drawing with shapes other than comments")
    for tag, what in (
        (b"picture", "a background picture"),
        (b"oleObjects", "embedded objects"),
        (b"controls", "form controls"),
        (b"tableParts", "a table (its table style can recolour the cells)"),
    ):
        if re.search(rb"<(?:\w+:)?" + tag + rb"\b", outside):
            sheet.objects.append(what)


def _parse_cells(data: bytes) -> list[tuple[int, int, int]]:
    """(row, column index, format) of every cell, by a full parse: the slow path for
    sheets written in an unusual form."""
    import xml.etree.ElementTree as ET

    out = []
    row_no = 0
    try:
        parsed = list(ET.iterparse(io.BytesIO(data), events=("end",)))
    except ET.ParseError as err:
        raise InputError(f"a sheet of the workbook cannot be read: {err}") from None
    for _event, element in parsed:
        if _local(element.tag) != "row":
            continue
        number = element.get("r") or ""
        row_no = int(number) if number.isdigit() else row_no + 1
        col = -1
        for cell in element:
            if _local(cell.tag) != "c":
                continue
            match = _REF.fullmatch(cell.get("r") or "")
            col = _column_index(match.group(1)) if match else col + 1
            # A cell's own reference wins over its row's, as in the readers of values.
            out.append((int(match.group(2)) if match else row_no, col, _int(cell.get("s"))))
        element.clear()
    return out
