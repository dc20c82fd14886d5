"""``conscent-monitor open``: review a saved database in the TUI, read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import click

from monitor import store
from monitor.cli.common import database_failure
from monitor.cli.web import web_options


@click.command("open", short_help=f"Review a saved database (default ./{store.DEFAULT_DB}).")
@click.argument("db_path", metavar="[DB]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--session", "session_id", type=int, help="Show one session (default: all of them).")
@click.option("--web", is_flag=True, help="Show it in a browser instead, read-only (needs the [web] extra).")
@web_options
@click.option("--allow-unauthenticated", is_flag=True, help="Allow a non-loopback --web-host with no password.")
@click.pass_context
def open_cmd(ctx: click.Context, /, db_path: Path | None, session_id: int | None, web: bool, **web_kwargs: Any) -> None:
    """Review a saved database: the live screens, read-only, no listener.

    DB is the SQLite file to open; default ./conscent-monitor.db, the file
    `conscent-monitor` records to when run in the same folder. Opening a
    database that a running monitor is writing shows its new rows as they
    are committed.
    """
    path = db_path or Path(store.DEFAULT_DB)
    try:
        store.open_for_review(path)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if web:
        from monitor.cli.web import serve_saved

        serve_saved(path, session_id, web_kwargs)
        return
    if web_kwargs["web_password"] is not None or web_kwargs["web_mask"]:
        raise click.UsageError("--web-password and --web-mask are for the web UI: add --web")
    from monitor.tui.launch import run_offline

    # The app's return code is non-zero when the TUI stopped on an error, whose
    # message Textual prints as it closes.
    try:
        code = run_offline(path, session_id)
    except sqlite3.DatabaseError as exc:  # raised before or after the app's own handling
        raise database_failure(path, exc) from None
    if code:
        ctx.exit(code)
