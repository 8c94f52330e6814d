"""Pure renderers from report data to bytes (``pdf``)."""
