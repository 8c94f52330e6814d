"""Verification of a snapshot: every finding, artefacts re-hashed (``verify``), and
archive bags checked (``bags``).
"""
