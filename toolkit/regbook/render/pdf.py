"""The evidence report as a PDF, made in-process with fpdf2 from ``evidence_data``.

Same content and order as the Markdown and HTML reports: the problems banner at the top
of page one, then identity, artefact integrity, provenance chain, metrics and gates,
stage history with every approval, archive and retention, verify findings, and the
closing facts (generation time, regbook version, ledger head, keyring sha256). Tables
are fpdf2 tables; every page carries "Page N of M" in its footer; the page is A4.

Text is set in FiraGO (hashes and IDs in Cascadia Mono), taken from the ``pymupdf-fonts``
package (SIL Open Font License), so principals, notes and model names in Latin, Greek,
Cyrillic, Hebrew, Arabic, Thai, Devanagari or Georgian print as written. A character
no embedded font can draw (CJK, emoji) is printed as ``[U+XXXX]``: visible, and the
exact code point can be read back. Nothing is dropped. fpdf2 is imported here, lazily,
so the CLI starts without it.
"""

from __future__ import annotations

import logging
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fpdf import FPDF

# (family, style, pymupdf-fonts name): body text, bold, and the monospace face for hashes.
_FONTS = (("body", "", "figo"), ("body", "B", "figbo"), ("mono", "", "cascadia"))
_MARGIN = 15  # mm, all round
_RED, _GREEN, _GREY = (176, 0, 32), (27, 94, 32), (238, 238, 238)
_RED_FILL, _GREEN_FILL = (253, 231, 234), (232, 245, 233)
_AMBER, _AMBER_FILL = (138, 90, 0), (255, 248, 225)
Color = tuple[int, int, int]  # red, green, blue


def render_pdf(data: dict[str, Any]) -> bytes:
    """The PDF bytes of the evidence report described by ``data``."""
    with _quiet_font_tools(), tempfile.TemporaryDirectory(prefix="regbook-fonts-") as tmp:
        pdf = _new_document(data, Path(tmp))
        _title(pdf, data)
        _banner(pdf, data["problems"])
        _unverified_sheets(pdf, data.get("unverified_sheets") or [])
        _identity(pdf, data["identity"])
        _artefact(pdf, data["artefact"])
        _provenance(pdf, data["provenance"])
        _evaluation(pdf, data["evaluation"])
        _history(pdf, data["history"])
        _archive(pdf, data["archive"])
        _findings(pdf, data["findings"])
        _closing(pdf, data["footer"])
        return bytes(pdf.output())


def prepare() -> None:
    """Load fpdf2, fontTools and the fonts now (about a second), so that a later
    ``render_pdf`` does not wait for them: a caller with other work to do first (the
    evidence pack reads and checks the registry) runs this on a thread meanwhile."""
    with _quiet_font_tools():
        _document_class()
        _drawable()
        for _family, _style, name in _FONTS:
            _font_bytes(name)


# --- text -------------------------------------------------------------------------------


@contextmanager
def _quiet_font_tools() -> Iterator[None]:
    """fontTools logs notes about font tables (OS/2 bits) while fonts load; they say
    nothing about the report, so they are kept off the user's terminal."""
    logger = logging.getLogger("fontTools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@cache
def _font_bytes(name: str) -> bytes:
    import pymupdf_fonts

    return pymupdf_fonts.fontbuffers[name]()


@cache
def _drawable() -> frozenset[int]:
    """Code points every face used can draw (body faces, or mono backed by body)."""
    import io

    from fontTools.ttLib import TTFont

    regular, bold = (TTFont(io.BytesIO(_font_bytes(n))).getBestCmap() for n in ("figo", "figbo"))
    return frozenset(regular.keys() & bold.keys())


def text(value: object) -> str:
    """A value as printable text: "-" for nothing; each character no embedded font can
    draw as ``[U+XXXX]``; control characters other than newline as a space."""
    if value is None or value == "":
        return "-"
    drawable = _drawable()
    out = []
    for char in str(value):
        if char == "\n" or ord(char) in drawable:
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(f"[U+{ord(char):04X}]")
    return "".join(out)


def _when(stamp: str) -> datetime:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


# --- document ---------------------------------------------------------------------------


@cache
def _document_class() -> Callable[[str], FPDF]:
    """The A4 document class, called with the report's generation time for its footer."""
    from fpdf import FPDF

    class EvidencePDF(FPDF):
        def __init__(self, generated: str) -> None:
            super().__init__(orientation="portrait", unit="mm", format="A4")
            self.generated = generated

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("body", size=8)
            self.set_text_color(80)
            width = (self.w - 2 * _MARGIN) / 2
            self.cell(width, 5, text(f"regbook evidence report, generated {self.generated}"))
            self.cell(width, 5, f"Page {self.page_no()} of {{nb}}", align="R")
            self.set_text_color(0)

    return EvidencePDF


def _new_document(data: dict[str, Any], tmp: Path) -> FPDF:
    footer = data["footer"]
    pdf = _document_class()(footer["generated_at"])
    for family, style, name in _FONTS:
        path = tmp / f"{name}.ttf"
        path.write_bytes(_font_bytes(name))
        pdf.add_font(family, style, path)
    pdf.set_fallback_fonts(["body"])  # the mono face lacks some scripts; body has them
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title(text(data["title"]))
    pdf.set_subject(text(f"composite ID {data['identity']['composite_id']}"))
    pdf.set_creator(f"regbook {footer['regbook_version']}")
    pdf.set_creation_date(_when(footer["generated_at"]))
    pdf.set_lang("en")
    pdf.add_page()
    return pdf


def _title(pdf: FPDF, data: dict[str, Any]) -> None:
    pdf.set_font("body", "B", 16)
    pdf.multi_cell(0, 8, text(data["title"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _heading(pdf: FPDF, title: str) -> None:
    if pdf.will_page_break(30):  # keep a heading with the start of its section
        pdf.add_page()
    pdf.ln(4)
    pdf.set_font("body", "B", 12.5)
    pdf.cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(150)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.set_draw_color(0)
    pdf.ln(2)
    pdf.set_font("body", size=9.5)


def _paragraph(pdf: FPDF, line: str, *, bold: bool = False) -> None:
    pdf.set_font("body", "B" if bold else "", 9.5)
    pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("body", size=9.5)
    pdf.ln(1)


def _box(pdf: FPDF, lines: list[str], border: Color, fill: Color) -> None:
    """A coloured, framed box: the first line bold, the others as a bulleted list."""
    pdf.set_draw_color(*border)
    pdf.set_fill_color(*fill)
    pdf.set_line_width(0.6)
    rest = "\n".join(f"\u2022 {line}" for line in lines[1:])
    pdf.set_font("body", "B", 10)
    pdf.multi_cell(0, 5.5, lines[0], border="LTR" if rest else 1, fill=True,
                   padding=(2, 3, 1 if rest else 2, 3), new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    if rest:
        pdf.set_font("body", size=9.5)
        pdf.multi_cell(0, 5, rest, border="LBR", fill=True, padding=(0, 3, 2, 6),
                       new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.set_line_width(0.2)
    pdf.set_draw_color(0)
    pdf.set_fill_color(255)


# --- tables -----------------------------------------------------------------------------


def _table(
    pdf: FPDF,
    headings: tuple[str, ...],
    rows: list[list[object]],
    widths: tuple[float, ...],
    size: float = 9,
) -> None:
    """A table with a heading row; a cell given as ``("mono", value)`` is set in the
    monospace face (hashes, IDs), and long unbroken values wrap by character."""
    from fpdf.enums import WrapMode
    from fpdf.fonts import FontFace

    heading = FontFace(family="body", emphasis="BOLD", fill_color=_GREY)
    mono = FontFace(family="mono", size_pt=size - 0.5)
    pdf.set_font("body", size=size)
    widths = _fit_words(pdf, headings, rows, widths, size)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=4.6, padding=1.2,
                   headings_style=heading, wrapmode=WrapMode.WORD,
                   v_align="TOP") as table:  # fmt: skip
        table.row(headings)
        for values in rows:
            row = table.row()
            for value in values:
                if isinstance(value, tuple):
                    row.cell(_cell(value[1]), style=mono)
                else:
                    row.cell(_cell(value))
    pdf.ln(1)


def _fit_words(
    pdf: FPDF,
    headings: tuple[str, ...],
    rows: list[list[object]],
    widths: tuple[float, ...],
    size: float,
) -> tuple[float, ...]:
    """Column widths (mm) from the relative ``widths``, each widened to its longest word
    so that no word is broken mid-word (``governance-lea|d``), the width taken from
    columns with room to spare. Monospace cells (hashes, IDs) are not words: they wrap
    by character. If every column's longest word cannot fit, the widths stay relative."""
    pad = 2 * 1.2 + 0.8  # the cell padding both sides, and the border
    need = [0.0] * len(widths)
    table: list[tuple[bool, list[object]]] = [(True, list(headings))]
    table += [(False, list(r)) for r in rows]
    for bold, values in table:
        pdf.set_font("body", style="B" if bold else "", size=size)
        for i, value in enumerate(values[: len(widths)]):
            if isinstance(value, tuple):
                continue
            for word in _cell(value).split():
                need[i] = max(need[i], pdf.get_string_width(word) + pad)
    pdf.set_font("body", size=size)
    total = pdf.epw
    if sum(need) > total:
        return widths
    out = [w / sum(widths) * total for w in widths]
    short = sum(max(0.0, n - w) for n, w in zip(need, out, strict=True))
    spare = sum(max(0.0, w - n) for n, w in zip(need, out, strict=True))
    if short <= 0 or spare <= 0:
        return tuple(out)
    return tuple(
        n if w < n else w - (w - n) / spare * short for n, w in zip(need, out, strict=True)
    )


# A table row must fit on one page: longer cells (a 30,000-character note) are cut
# here, saying how much; the HTML and Markdown reports keep every character.
CELL_CHARACTERS = 800


def _cell(value: object) -> str:
    shown = text(value)
    if len(shown) <= CELL_CHARACTERS:
        return shown
    left = len(shown) - CELL_CHARACTERS
    return f"{shown[:CELL_CHARACTERS]}... ({left:,} more characters in the HTML report)"


def _fields(pdf: FPDF, pairs: list[tuple[str, object]]) -> None:
    _table(pdf, ("Field", "Value"), [list(pair) for pair in pairs], (1, 3.2))


def _yesno(flag: object) -> str:
    return "yes" if flag else "no"


# --- sections ---------------------------------------------------------------------------


def _banner(pdf: FPDF, problems: dict[str, Any]) -> None:
    facts = [
        text(f"{problems['verification']} No provenance link is broken."),
        text(problems["gate"]),
        *([text(problems["stage"])] if problems["stage"] else []),
    ]
    if not problems["count"]:
        if problems["ready"]:
            _box(pdf, ["No problems found.", *facts], _GREEN, _GREEN_FILL)
        else:
            _box(
                pdf,
                ["Not cleared for Production, though no problem was found.", *facts],
                _AMBER,
                _AMBER_FILL,
            )
        return
    lines = [
        f"PROBLEMS FOUND: {problems['count']}. This version does not verify cleanly; "
        "do not rely on it before they are resolved.",
        text(problems["gate"]),
    ]
    lines += [text(f"{f['code']} {f['severity']} {f['where']}: {f['message']}")
              for f in problems["findings"]]  # fmt: skip
    lines += [text(f"provenance link \u201c{link['name']}\u201d is broken: "
                   f"{link['reason'] or link['summary']}")
              for link in problems["broken_links"]]  # fmt: skip
    _box(pdf, lines, _RED, _RED_FILL)


def _unverified_sheets(pdf: FPDF, names: list[str]) -> None:
    if names:
        _box(pdf, [text("Not part of the registry, not verified: the workbook also holds the "
                        f"sheet(s) {', '.join(names)}. Nothing in them is vouched for by the "
                        "ledger.")], _RED, _RED_FILL)  # fmt: skip


def _identity(pdf: FPDF, identity: dict[str, Any]) -> None:
    _heading(pdf, "Identity")
    _fields(pdf, [
        ("Composite ID", ("mono", identity["composite_id"])),
        ("Model", identity["model"]),
        ("Version", identity["version"]),
        ("Stage", identity["stage"]),
        ("Registration date", f"{identity['registered_at']} (by {identity['registered_by']})"),
        ("Deployment date", identity["deployed_on"] or "not deployed"),
    ])  # fmt: skip


def _artefact(pdf: FPDF, artefact: dict[str, Any]) -> None:
    _heading(pdf, "Artefact integrity")
    result = "PASS: matches the sealed content hash" if artefact["ok"] else "FAIL"
    _fields(pdf, [
        ("Content hash", ("mono", artefact["content_hash"])),
        ("Storage location", ("mono", artefact["storage"])),
        ("Checked at", artefact["checked_at"]),
        ("Result", result),
    ])  # fmt: skip
    for f in artefact["problems"]:
        _paragraph(pdf, text(f"{f['code']} {f['where']}: {f['message']}"))


def _provenance(pdf: FPDF, links: list[dict[str, Any]]) -> None:
    _heading(pdf, "Provenance chain")
    rows = [[link["name"], link["status"],
             link["summary"] + (f" ({link['reason']})" if link["reason"] else "")]
            for link in links]  # fmt: skip
    _table(pdf, ("Link", "Status", "Detail"), rows, (1.2, 1, 3.6))


def _evaluation(pdf: FPDF, evaluation: dict[str, Any]) -> None:
    _heading(pdf, "Metrics and validation gates")
    gate = evaluation["gate"]
    if gate:
        line = (f"Latest gate result: {gate['result']} (ledger event {gate['seq']}, "
                f"{gate['at']}, signed by {gate['signer']}).")  # fmt: skip
    else:
        line = "Latest gate result: not run (no gate result is recorded)."
    _paragraph(pdf, text(line))
    rows = [[m["metric"], m["slice"], m["kind"], m["value"], m["sealed"], m["gate"],
             m["threshold"], m["result"]] for m in evaluation["metrics"]]  # fmt: skip
    named = {m["metric"] for m in evaluation["metrics"]}
    rows += [[g["metric"], None, None, g["value"], None, g["gate"],
              f"{g['op']} {g['threshold']}", g["result"]]
             for g in evaluation["gates"] if g["metric"] not in named]  # fmt: skip
    _table(pdf, ("Metric", "Slice", "Kind", "Value", "Sealed", "Gate", "Threshold", "Result"),
           rows, (2.2, 0.9, 1, 0.8, 1.6, 1.2, 1.1, 0.9))  # fmt: skip
    _security_scan(pdf, evaluation.get("security_scan"))


def _security_scan(pdf: FPDF, scan: dict[str, Any] | None) -> None:
    if not scan:
        _paragraph(pdf, text("Security scan: none of this content hash is recorded; the "
                             "security gate reads the sealed security_high_findings."))  # fmt: skip
        return
    counts = scan["counts"]
    line = (
        f"Security scan (the security gate reads it): ledger event {scan['seq']}, "
        f"{scan['at']}, signed by {scan['signer']}, {scan['scanner']}. Verdict: "
        f"{scan['verdict']}; critical + high: {scan['high_findings']} ({counts['critical']} "
        f"critical, {counts['high']} high, {counts['medium']} medium, {counts['low']} low)."
    )
    if scan["inconclusive"]:
        line += " Inconclusive for: " + ", ".join(scan["inconclusive"]) + "."
    _paragraph(pdf, text(line))  # fmt: skip
    rows = [[f["path"], f["format"], _yesno(f["runs_code"]), f["verdict"],
             (f["findings"] or "-") + (f" ({f['problem']})" if f["problem"] else "")]
            for f in scan["files"]]  # fmt: skip
    _table(pdf, ("File", "Format", "Loading can run code", "Verdict", "Findings"), rows,
           (1.6, 1, 0.9, 0.8, 2.4))  # fmt: skip


def _history(pdf: FPDF, history: list[dict[str, Any]]) -> None:
    _heading(pdf, "Stage history and approvals")
    rows = []
    for h in history:
        for a in h["approvals"]:
            rows.append(_signed_row(_approval_label(h, a), a))
        if h["kind"] != "pending":
            label = f"{h['from']} \u2192 {h['to']}" if h["from"] else f"registered, {h['to']}"
            rows.append(_signed_row(label, h["by"]))
    headings = ("Transition", "Date", "Signed by", "Role", "Key fingerprint", "Verified")
    _table(pdf, headings, rows, (34, 32, 33, 25, 41, 15), size=8.5)


def _approval_label(h: dict[str, Any], a: dict[str, Any]) -> str:
    label = "approval" + (f" to {a['to']}" if a["to"] else "")
    if h["kind"] == "pending":
        label += " (not used by a transition)"
    return label + (f": {a['note']}" if a["note"] else "")


def _signed_row(label: str, sig: dict[str, Any]) -> list[object]:
    return [label, sig["at"], sig["principal"], sig["role"], ("mono", sig["fingerprint"]),
            _yesno(sig["verified"])]  # fmt: skip


def _archive(pdf: FPDF, archive: dict[str, Any]) -> None:
    _heading(pdf, "Archive and retention")
    if not archive["archived"]:
        _paragraph(pdf, "Not archived.")
        return
    _fields(pdf, [
        ("Bag", ("mono", archive["bag"])),
        ("Archived at", archive["archived_at"]),
        ("Retain-Until", archive["retain_until"]),
    ])  # fmt: skip


def _findings(pdf: FPDF, findings: list[dict[str, Any]]) -> None:
    _heading(pdf, "Verify findings")
    if not findings:
        _paragraph(pdf, "None.")
        return
    rows = [[f["code"], f["severity"], f["where"], f["message"]] for f in findings]
    _table(pdf, ("Code", "Severity", "Where", "Finding"), rows, (0.8, 0.9, 1.6, 4.2))


def _closing(pdf: FPDF, footer: dict[str, Any]) -> None:
    _heading(pdf, "Report")
    _fields(pdf, [
        ("Generated", footer["generated_at"]),
        ("regbook version", footer["regbook_version"]),
        ("Ledger head", ("mono", footer["ledger_head"] or "(empty ledger)")),
        ("Keyring sha256", ("mono", footer["keyring_sha256"])),
        ("Registry ID", ("mono", footer["registry_id"] or "(none: made before registry IDs)")),
    ])  # fmt: skip
