"""Model cards for ``regbook report card``: the card of a version, verified and written.

The card's content and its rendering are pure functions of a snapshot
(``regbook.render.card``); this gathers what verify finds and writes the file::

    data = write_card(open_registry(ws, sheets=CARD_SHEETS), ref, Path("card.md"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regbook.check.verify import verify
from regbook.core.errors import InputError
from regbook.core.ids import ModelRef
from regbook.registry.snapshot import Snapshot
from regbook.render.card import NOT_DOCUMENTED, build_card
from regbook.render.text import TEXT_FORMATS, format_of, render_text
from regbook.reports.export import write_atomic


def card_data(snapshot: Snapshot, ref: ModelRef) -> dict[str, Any]:
    """The facts of the model card of ``ref``, as plain data (JSON-friendly); verify runs
    scoped to the version, its artefact re-hashed."""
    if ref.version is None:
        raise InputError(f"{ref}: name a version (MODEL@VERSION)")
    report = verify(snapshot, scope=ref, threads=1)
    return build_card(snapshot, snapshot.version(ref), report.findings)


def card_format(path: Path) -> str:
    """The format, "markdown" or "html", from the suffix of ``path``."""
    return format_of(path, TEXT_FORMATS, "model cards are .md or .html files")


def write_card(snapshot: Snapshot, ref: ModelRef, output: Path) -> dict[str, Any]:
    """Build the card of ``ref`` and write it atomically to ``output``; the data."""
    kind = card_format(output)
    data = card_data(snapshot, ref)
    text = render_text("card", kind, data, not_documented=NOT_DOCUMENTED)
    write_atomic(output, text.encode("utf-8"))
    return data
