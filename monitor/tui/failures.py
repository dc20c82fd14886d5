"""How the screens word a read that failed, and which failures end offline review.

A read fails for a reason of the moment (the database is locked, a query was
interrupted, a filter's query was refused) or because the file is damaged (a
corrupt page, not a database at all). Either is one line on screen, and the
live monitor carries on: its listener keeps recording whatever the screens
can read. Offline review of a damaged file ends instead, with return code 1
and :func:`damaged_message`, because every screen would show holes.
"""

from __future__ import annotations

import shlex
import sqlite3
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App

from monitor.textsafe import cell


def is_damaged(exc: BaseException) -> bool:
    """SQLite says the file is corrupt or not a database (what ``open`` cannot review)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.DatabaseError) and (name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """What went wrong, inert and on one line."""
    return cell(str(exc) or type(exc).__name__, limit)


def damaged_message(db_path: Path, exc: BaseException) -> Text:
    """The line offline review ends with; worded like the command line's database errors."""
    path = cell(str(db_path), 500)
    return Text(
        f"Error: {path}: {one_line(exc)} (the file is damaged; "
        f"`sqlite3 {shlex.quote(path)} .recover` saves what is readable)"
    )


#: The same failure is said again only after this long (seconds): a damaged page
#: fails every redraw, and one notification is enough.
REPEAT_FAILURE_AFTER = 10.0


class FailureReporter:
    """Says each failed read in one line (a repeat within :data:`REPEAT_FAILURE_AFTER` s is dropped).

    In offline review a damaged file ends the app instead (return code 1 and
    :func:`damaged_message`); the live monitor never ends for a read.
    """

    def __init__(self, app: App[Any], db_path: Path, *, live: bool) -> None:
        self._app = app
        self._db_path = db_path
        self._live = live
        self._last: tuple[str, float] = ("", 0.0)
        #: What ended offline review (a damaged file); None otherwise.
        self.fatal_error: BaseException | None = None

    def end_if_damaged(self, exc: BaseException) -> bool:
        """In offline review, a damaged file ends the app; True if it does."""
        if self._live or not is_damaged(exc):
            return False
        if self.fatal_error is None:
            self.fatal_error = exc
            self._app.exit(return_code=1, message=damaged_message(self._db_path, exc))
        return True

    def read_failed(self, exc: BaseException, what: str) -> None:
        """A read or a loader failed: one line, and the app (and the listener) carry on."""
        if self.end_if_damaged(exc):
            return
        line = f"Could not read {what}: {one_line(exc)}"
        now = time.monotonic()
        last, at = self._last
        if line == last and now - at < REPEAT_FAILURE_AFTER:
            return
        self._last = (line, now)
        self._app.notify(line, severity="error", timeout=10, markup=False)
