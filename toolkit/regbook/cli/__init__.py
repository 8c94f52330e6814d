"""The ``regbook`` command line: one thin client of the library.

``app`` holds the root command, the error-to-exit-code mapping and the table of
commands; each other module holds a few commands (setup, registering, governance,
checking, archiving, reporting) and imports the library it needs.
"""

from regbook.cli.app import cli, main

__all__ = ["cli", "main"]
