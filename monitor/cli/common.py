"""What the command modules share: the database option's help, a progress bar, database failures."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from monitor import store

DB_HELP = f"SQLite file; default ./{store.DEFAULT_DB}."


def progress(label: str, console: Console) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console, transient=True
    )


def database_failure(path: Path | str | None, exc: sqlite3.DatabaseError) -> click.ClickException:
    """One line for a database that failed under a command: the file, what SQLite said, what to do.

    Exit status 1 and no traceback, like every other refusal (``Error: x.db: ...``).
    """
    where = f"{path}: " if path else ""
    hint = ""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB":
        hint = f" (the file is damaged; `sqlite3 {shlex.quote(str(path or 'FILE'))} .recover` saves what is readable)"
    return click.ClickException(f"{where}{exc}{hint}")
