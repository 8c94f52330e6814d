"""Artefact bytes: content hashes of files and folders, as coreutils would compute them."""
