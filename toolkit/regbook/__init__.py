"""regbook: a compliance-grade model registry kept in an Excel workbook.

The workbook's Ledger sheet is an append-only, hash-chained, SSH-signed list of
events; every other sheet is a view regbook derives from it and can check.

    >>> import regbook
    >>> regbook.__version__
    '0.1.0'

Services that log inferences take the composite ID of the version they serve once, at
start-up, and write it into every prediction they log (docs/lineage.md)::

    cid = regbook.composite_id("path/to/workspace", "credit-risk@7")
"""

from __future__ import annotations

from regbook.core.version import __version__

__all__ = ["__version__", "composite_id"]


def __getattr__(name: str) -> object:
    # Lazily, so `import regbook` stays cheap (no workbook or git machinery loaded).
    if name == "composite_id":
        from regbook.lineage.trace import composite_id

        return composite_id
    raise AttributeError(f"module 'regbook' has no attribute {name!r}")
