"""regbook: a compliance-grade model registry kept in an Excel workbook.

The workbook's Ledger sheet is an append-only, hash-chained, SSH-signed list of
events; every other sheet is a view regbook derives from it and can check.

    >>> import regbook
    >>> regbook.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
