"""When a screen that follows the database reads again: the database changed, no read running, paced.

The readers list and the Insights screen poll; each poll asks :meth:`Reread.due`.
A read is due when SQLite's ``data_version`` moved since the last read started
(this monitor's writer or another process committed), no read is running, and
``pace`` times the last read's duration has passed (a slow read on a large
database is not repeated back to back). Plain Python: no Textual, no SQL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Protocol


class Running(Protocol):
    @property
    def is_running(self) -> bool: ...


class Reread:
    """The state of one followed read: the version it saw, the read in flight, the earliest next one."""

    def __init__(self, pace: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.pace = pace
        self.clock = clock
        self.version: int | None = None
        self.worker: Running | None = None
        self.next = 0.0

    def started(self, data_version: Callable[[], int], worker: Callable[[], Running]) -> None:
        """A read starts: the version is taken first, so a commit during the read is read next time."""
        try:
            self.version = data_version()
        except sqlite3.Error:
            self.version = None  # unknown: the next poll reads again (and says what is wrong)
        self.worker = worker()

    def finished(self, seconds: float) -> None:
        self.next = self.clock() + self.pace * seconds

    @property
    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def due(self, data_version: Callable[[], int]) -> bool:
        """Whether a poll should read again (never while a read runs, nor before its pace allows)."""
        if self.busy or self.clock() < self.next:
            return False
        try:
            return data_version() != self.version
        except sqlite3.Error:
            return False  # the read itself will say what is wrong
