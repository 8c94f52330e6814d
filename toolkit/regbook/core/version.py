"""The version of regbook, in one place (``regbook.__version__`` re-exports it)."""

__version__ = "0.2.0"
