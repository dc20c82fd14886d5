"""What the command modules share: the database option's help, URL and tunnel checks, progress, database failures."""

from __future__ import annotations

import re
import shlex
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor import store
from monitor.signing import parse_credentials
from monitor.textsafe import inert

if TYPE_CHECKING:  # Rich's progress and the sender (aiohttp's client) only for the commands that use them
    from rich.console import Console
    from rich.progress import Progress

DB_HELP = f"SQLite file; default ./{store.DEFAULT_DB}."
#: Columns of an epilog line kept as written: click indents it by 2, and help is 78 wide at most.
HELP_WIDTH = 76


def filter_epilog() -> str:
    """The filter language for a command's ``--help``, kept as written (click's ``\\b`` stops rewrapping)."""
    import textwrap

    from monitor.filters import help_text

    lines: list[str] = []
    for line in help_text().splitlines():
        if not line.strip():
            continue
        hang = re.match(r"\s+\S+\s+", line) if line.startswith(" ") else None
        indent = " " * (len(hang.group(0)) if hang else 0)
        lines += textwrap.wrap(line, HELP_WIDTH, subsequent_indent=indent, break_on_hyphens=False) or [line]
    return "\b\n" + "\n".join(lines)


def http_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback for a URL option: an http(s) URL with a host, else a usage error (exit 2)."""
    if value is None:
        return None
    from monitor.sender import url_problem  # aiohttp's client: only for a URL given (start-up time)

    problem = url_problem(value)
    if problem:
        shown = inert(value)
        quoted = shown if shown.startswith("'") else f"'{shown}'"
        raise click.BadParameter(f"{quoted} is not a URL to post to: {problem}.")
    return value


def credentials_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    """Click callback for ``--basic-auth KEY:SECRET`` (watch and send)."""
    if value is None:
        return None
    try:
        return parse_credentials(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def tunnel_spec(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback for ``--tunnel``: ``cloudflared``, ``ngrok`` or ``ssh:HOST``, else a usage error (exit 2)."""
    if value is None:
        return None
    from monitor.tunnel import TunnelSpecError, program_of  # only with --tunnel: start-up time

    try:
        program_of(value)
    except TunnelSpecError as exc:
        raise click.UsageError(str(exc)) from None
    return value


#: A progress column of items done and to do, numbers worded like every summary (``45,000/100,000``).
COUNT_DONE = "{task.completed:,.0f}/{task.total:,.0f}"


def progress(label: str, console: Console) -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

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
