"""Read access to the monitor's database for the UI: one connection for its thread, one per worker.

The UI's thread keeps a read-only connection open (pages of the table are
read on it as they scroll into view); a worker thread asks for a connection
of its own and closes it when done. The SQL itself lives in
:mod:`monitor.queries`.

Must not import Textual, nor write: every connection here is read-only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from monitor import queries, store


class ReadAccess:
    """The database at ``db_path``, read-only: :attr:`db` for the UI thread, :meth:`connect` for workers."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db: sqlite_utils.Database = store.connect(self.db_path, readonly=True)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite_utils.Database]:
        """A connection of its own, for a worker thread."""
        db = store.connect(self.db_path, readonly=True)
        try:
            yield db
        finally:
            db.close()

    def snapshot(self) -> contextlib.AbstractContextManager[tuple[int, int]]:
        """One read transaction on :attr:`db`; yields the highest ids (see :func:`queries.read_snapshot`)."""
        return queries.read_snapshot(self.db)

    def data_version(self) -> int:
        return queries.data_version(self.db)

    @contextlib.contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Queries on :attr:`db` inside fail with "interrupted" once they have run ``seconds`` (None: no limit).

        Checked every few thousand SQLite instructions, so a single full-text
        look-up (one step) can overrun it by its own length.
        """
        if seconds is None:
            yield
            return
        deadline = time.monotonic() + seconds
        self.db.conn.set_progress_handler(lambda: time.monotonic() > deadline, 4000)
        try:
            yield
        finally:
            self.db.conn.set_progress_handler(None, 0)

    def close(self) -> None:
        self.db.close()
