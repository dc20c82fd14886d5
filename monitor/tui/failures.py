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
from pathlib import Path

from rich.text import Text

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
