"""Evidence for people: evidence reports, model cards, the registry description,
evidence packs, provenance and signature exports, and listings.
"""
