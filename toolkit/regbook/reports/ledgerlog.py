"""``regbook log``: the ledger as text, one event per block, for people and for git.

    snapshot = open_registry(ws, sheets=LEDGER_ONLY)
    print(render_log(snapshot.events))
    events, findings = read_ledger_file(Path("registry.xlsx"))   # git's textconv

Each block starts with a line that names the event (seq, kind, MODEL@VERSION, time),
then the signer, then the payload one field a line, nested fields by dotted name, and
the event's hash. A diff of two logs is the events added, or the events changed.
Text from the workbook is shown escaped where it holds control or formatting
characters, so a crafted payload cannot rewrite the terminal it is printed on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regbook.core.findings import Finding
from regbook.core.schema import LEDGER
from regbook.ledger.events import LedgerEvent, read_events
from regbook.workbook.read import read_workbook


def read_ledger_file(path: Path) -> tuple[list[LedgerEvent], list[Finding]]:
    """The events of the workbook file ``path``, read as stored: no keyring, no
    signature or chain check (``git diff`` hands over old copies of the workbook)."""
    data = read_workbook(path, (LEDGER,))
    return read_events(data.tables[LEDGER.name])


def shown(text: str) -> str:
    """``text`` as it is, unless it holds a character a terminal would act on or hide
    (escapes, bidirectional overrides): then as a JSON string literal."""
    if text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=True)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return shown(value) if value else '""'  # no line ends in a blank
    return shown(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": ")))


def _fields(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict) and value:
        lines = []
        for key in sorted(value):
            lines += _fields(f"{prefix}.{key}" if prefix else shown(str(key)), value[key])
        return lines
    if isinstance(value, list) and value and prefix:
        return [line for i, item in enumerate(value) for line in _fields(f"{prefix}[{i}]", item)]
    return [f"{prefix}: {_value(value)}"]


def render_event(event: LedgerEvent) -> str:
    subject = shown(event.model) if event.model else "(registry)"
    if event.version is not None:
        subject += f"@{event.version}"
    lines = [
        f"event {event.seq}  {shown(event.kind)}  {subject}  {shown(event.at)}",
        f"  signed by {shown(event.signer)} ({shown(event.fingerprint)})",
    ]
    try:
        payload = event.payload
    except ValueError:
        lines.append(f"  payload (not JSON): {shown(event.payload_text)}")
    else:
        lines += [f"  {line}" for line in _fields("", payload)]
    lines.append(f"  hash {shown(event.hash)}")
    return "\n".join(lines)


def render_log(events: list[LedgerEvent]) -> str:
    """Every event as a block, blocks separated by an empty line."""
    return "\n\n".join(render_event(e) for e in events) + ("\n" if events else "")
