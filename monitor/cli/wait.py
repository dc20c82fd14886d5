"""``conscent-monitor wait``: block until deliveries matching a filter are recorded (for scripts and CI).

Exit status: 0 when they arrived (printed on stdout), 1 on timeout (what did
arrive is said on stderr), 2 for a bad filter, ``--since`` or database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from monitor import store
from monitor.cli.common import DB_HELP, filter_epilog
from monitor.wording import count


class WaitFailure(click.ClickException):
    """One line and exit status 2: the wait could not start."""

    exit_code = 2


@click.command(
    "wait",
    short_help="Wait until deliveries matching a filter are recorded (scripts, CI).",
    epilog=filter_epilog(),
)
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=DB_HELP)
@click.option(
    "--filter",
    "filter_text",
    default="",
    help="Deliveries to wait for, as typed after / in the TUI (the language is below); default any.",
)
@click.option(
    "--count", "wanted", type=click.IntRange(1), default=1, show_default=True, metavar="N", help="How many to wait for."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0),
    default=30.0,
    metavar="SECONDS",
    show_default=True,
    help="Seconds to wait; then exit 1 saying what arrived instead.",
)
@click.option(
    "--since",
    default="session",
    show_default=True,
    metavar="TIME|session|now",
    help="Count deliveries from the start of the newest session, only new ones (now), or since a TIME: "
    "2026-11-30T09:15, epoch seconds, -5m.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "line"]),
    default="json",
    show_default=True,
    help="json: one object a line (id, received_at, event, user_id, signature, body); line: as `watch --headless`.",
)
def wait_cmd(
    db_path: Path | None, filter_text: str, wanted: int, timeout: float, since: str, fmt: Literal["json", "line"]
) -> None:
    """Wait until --count deliveries matching --filter are in the database, print them, exit 0.

    A monitor (`conscent-monitor watch`, e.g. `--headless` in the background)
    records them; `wait` reads the same file. On timeout, exit 1 with what
    arrived instead (near misses: all of the filter but one term, and the
    rejected deliveries); a bad filter or database exits 2.
    """
    import sqlite3

    from monitor.waiting import Waiter, WaitError, json_line, line

    path = db_path or Path(store.DEFAULT_DB)
    try:
        waiter = Waiter(path, filter_text, since=since)
    except WaitError as exc:
        raise WaitFailure(str(exc)) from None
    try:
        with waiter:
            outcome = waiter.wait(wanted, timeout)
            for row in outcome.matched:
                click.echo(json_line(row) if fmt == "json" else line(row))
            if not outcome.satisfied:
                click.echo(waiter.report(outcome, timeout), err=True)
                raise SystemExit(1)
    except sqlite3.DatabaseError as exc:
        raise WaitFailure(f"{path}: {exc}") from None
    click.echo(f"{count(wanted, 'delivery')} arrived in {outcome.elapsed:.2f} s", err=True)
