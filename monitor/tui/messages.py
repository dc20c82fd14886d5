"""Messages that cross from the core's threads into the UI."""

from __future__ import annotations

from textual.message import Message


class RowsCommitted(Message):
    """The writer committed rows: their notices wait in the app's inbox (posted from the writer thread)."""
