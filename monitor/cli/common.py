"""What the command modules share: the database option's help and a progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from monitor import store

DB_HELP = f"SQLite file; default ./{store.DEFAULT_DB}."


def progress(label: str, console: Console) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console, transient=True
    )
