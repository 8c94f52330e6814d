"""Report text from report data: the Jinja2 templates shipped in ``regbook/templates/``,
Markdown escaping, and the output format a file name asks for::

    text = render_text("evidence", "html", data)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from regbook.core.errors import InputError

if TYPE_CHECKING:
    import jinja2

TEXT_FORMATS = {".md": "markdown", ".html": "html"}


FORMATS = {**TEXT_FORMATS, ".pdf": "pdf"}


@functools.cache
def _template(name: str, autoescape: bool) -> jinja2.Template:
    """The compiled template, compiled once per process: a caller rendering a card per
    version (the MLflow mirror's descriptions) would otherwise compile it each time."""
    import jinja2

    def load(template: str) -> str:
        return (resources.files("regbook") / "templates" / template).read_text(encoding="utf-8")

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = _md_cell
    env.filters["code"] = lambda v: "`" + _md_cell(v).replace("`", "'") + "`"
    env.filters["yesno"] = lambda v: "yes" if v else "no"
    env.filters["prose"] = _md_prose
    return env.get_template(name)


def _md_cell(value: object) -> str:
    """A value safe inside a Markdown table cell: pipes escaped, one line."""
    if value is None or value == "":
        return "-"
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split())


# A line that would open a heading, a quote, a rule or a fenced code block.
_MD_BLOCK = re.compile(r"\s*(#|>|=+\s*$|-{2,}\s*$|\*{3,}\s*$|`{3,}|~{3,})")


def _md_prose(value: object) -> str:
    """Free text as Markdown paragraphs, its lines kept and nothing in it able to change
    the document around it: HTML is shown as text (``<`` and ``&`` escaped, so no tag,
    comment or entity takes effect), and a line that would open a heading, a quote, a
    rule or a code fence (which, left open, would swallow every section after it) starts
    with a backslash instead."""
    lines = []
    for line in str(value).split("\n"):
        line = line.replace("&", "&amp;").replace("<", "&lt;")
        if _MD_BLOCK.match(line):
            indent = len(line) - len(line.lstrip())
            line = line[:indent] + "\\" + line[indent:]
        lines.append(line)
    return "\n".join(lines)


def render_text(stem: str, kind: str, data: Mapping[str, object], **extra: object) -> str:
    """``STEM.md.j2`` or, for ``kind`` "html", ``STEM.html.j2`` (autoescaped) rendered
    over ``data``: every report's text formats go through here."""
    html = kind == "html"
    template = _template(f"{stem}.{'html' if html else 'md'}.j2", autoescape=html)
    return template.render(**extra, **data)


def format_of(path: Path, formats: dict[str, str], refusal: str) -> str:
    """The format the suffix of ``path`` names in ``formats``; otherwise an InputError
    naming the path, with ``refusal`` (e.g. "model cards are .md or .html files")."""
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise InputError(f"{path}: {refusal}")
    return formats[suffix]
