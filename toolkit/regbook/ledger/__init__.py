"""The ledger's meaning: events and their hash chain (``events``), signatures
(``signatures``), replay into version state (``state``), gates and workflow rules.
"""
