"""The xlsx file itself: reading it safely (``read``), appending to its package in
place (``patch``), and the template it starts from (``template``). Knows nothing of
the ledger's meaning.
"""
