"""The xlsx package's map: which part holds which sheet.

targets = sheet_targets(workbook_xml, rels_xml)    # {"Models": "xl/worksheets/sheet1.xml"}
"""

from __future__ import annotations

import re

SHEET_ENTRY_RE = re.compile(rb"<(?:\w+:)?sheet\b[^>]*>")
ATTR_RE = re.compile(rb'([\w:]+)="([^"]*)"')
REL_ENTRY_RE = re.compile(rb"<(?:\w+:)?Relationship\b[^>]*>")
WORKBOOK_PART = "xl/workbook.xml"
WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"


def sheet_targets(workbook: bytes, rels: bytes) -> dict[str, str]:
    """Each sheet's name (as shown) and the part its relationship points at, from the
    bytes of xl/workbook.xml and xl/_rels/workbook.xml.rels."""
    targets: dict[str, str] = {}
    for entry in REL_ENTRY_RE.findall(rels):
        attrs = dict(ATTR_RE.findall(entry))
        rid, target = attrs.get(b"Id"), attrs.get(b"Target")
        if rid and target:
            t = target.decode()
            targets[rid.decode()] = t.lstrip("/") if t.startswith("/") else "xl/" + t
    out = {}
    for entry in SHEET_ENTRY_RE.findall(workbook):
        attrs = dict(ATTR_RE.findall(entry))
        name = attrs.get(b"name")
        rid = next((v for k, v in attrs.items() if k.endswith(b":id")), None)
        if name and rid and rid.decode() in targets:
            out[unescape_xml(name.decode())] = targets[rid.decode()]
    return out


def unescape_xml(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )
