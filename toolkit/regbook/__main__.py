"""`python -m regbook` runs the command-line interface."""

from regbook.cli import main

main()
