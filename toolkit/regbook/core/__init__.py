"""The ground floor: errors, findings, identifiers, the workbook schema, workspace
settings, and the one way files are written (``fs``). Imports nothing else of regbook.
"""
