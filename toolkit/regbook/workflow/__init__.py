"""The commands that change a registry: set-up, register and seal, approve, gate
and promote, archive and retrieve, keys, restore.
"""
