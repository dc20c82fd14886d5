"""Messages that cross from the core's threads into the UI."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from monitor.writer import CommitNotice


@dataclass
class RowsCommitted(Message):
    """The writer committed rows (posted from the writer thread)."""

    notice: CommitNotice

