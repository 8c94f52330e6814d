"""A registry opened once: the views derived from the ledger (``views``), their
differences from the sheets (``diff``), the snapshot every reader works from
(``snapshot``) and the write engine every writer uses (``transaction``).
"""
