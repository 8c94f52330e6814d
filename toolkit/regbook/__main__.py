"""`python -m regbook` runs the command-line interface."""

from regbook.cli import main

# Guarded: worker processes started with spawn (macOS, Windows) import this module
# again, and must not run the command line themselves.
if __name__ == "__main__":
    main()
