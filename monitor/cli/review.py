"""``conscent-monitor open``: review a saved database in the TUI, read-only."""

from __future__ import annotations

from pathlib import Path

import click

from monitor import store


@click.command("open")
@click.argument("db_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--session", "session_id", type=int, help="Show one session (default: all of them).")
def open_cmd(db_path: Path | None, session_id: int | None) -> None:
    """Review a saved database: the live screens, read-only, no listener.

    Opening a database that a running monitor is writing shows its new rows
    as they are committed.
    """
    path = db_path or Path(store.DEFAULT_DB)
    try:
        store.open_for_review(path)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    from monitor.tui.launch import run_offline

    run_offline(path, session_id)
