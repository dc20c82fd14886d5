"""``conscent-monitor import`` and ``generate``: data into a database, as a new session.

Both end the same way whatever stops them (the end of the input, Ctrl-C,
SIGTERM, a database that fails part way): the session row is ended, the WAL
is folded into the ``.db`` so the file alone holds everything, and anything
but success exits non-zero with one line, never a traceback. Every name
quoted in a message is made inert (:func:`monitor.textsafe.inert`).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path
from types import FrameType, TracebackType

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from monitor import store
from monitor.cli.common import DB_HELP, progress
from monitor.listener import DEFAULT_MAX_BODY
from monitor.textsafe import clean, inert

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Run:
    """One import or generate, from the signals it answers to the checkpoint that ends it.

    SIGTERM stops it the way Ctrl-C does: a KeyboardInterrupt where the work
    is, which the import turns into "keep the whole batches, end the session".
    Only the first signal raises; later ones wait for the clean-up (ending the
    session, the checkpoint), which a second Ctrl-C would otherwise break.
    """

    def __init__(self, what: str, db_path: Path | None) -> None:
        self.what = what
        self.db_path = db_path
        self.signum: int | None = None
        self.opened = False
        self._previous: dict[int, signal._HANDLER] = {}

    @property
    def code(self) -> int:
        """The shell's status for a run stopped by a signal: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)

    def open(self) -> None:
        """Check the database before any work: a foreign or unreadable file is refused, and left alone."""
        assert self.db_path is not None
        store.open_store(self.db_path).close()
        self.opened = True

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            if self._previous:
                raise KeyboardInterrupt

    def __enter__(self) -> _Run:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._stop) for sig in _STOP_SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None) -> None:
        stopping = self._previous
        self._previous = {}  # a signal from here on is noted, not raised
        try:
            if self.opened:
                _checkpoint(self.db_path)
        finally:
            for sig, handler in stopping.items():
                signal.signal(sig, handler)
        if isinstance(exc, KeyboardInterrupt):
            click.echo(f"{self.what} interrupted", err=True)
            raise SystemExit(self.code)
        if isinstance(exc, store.StoreError | OSError):  # OSError: a path gone since click checked it
            raise click.ClickException(clean(str(exc)))
        if isinstance(exc, sqlite3.Error):  # a page found corrupt after the import, while indexing or stamping
            raise click.ClickException(f"{inert(self.db_path)}: {clean(str(exc))}")


def _checkpoint(db_path: Path | None) -> None:
    """Fold the WAL into the ``.db`` and truncate it, so copying the file alone copies the session.

    SQLite does this itself when the last connection closes, but not while a
    reader (``open`` on the same file, a copy in progress) has it open. A
    reader in the middle of a read stops it after two seconds: said, not fatal.
    """
    if db_path is None or not db_path.exists():
        return
    try:
        db = store.connect(db_path, busy_timeout=2.0)
    except sqlite3.Error:
        return
    try:
        folded = store.checkpoint(db.conn)
    finally:
        db.close()
    if not folded:
        click.echo(
            f"{inert(db_path)}-wal kept: another program is reading the database; "
            "copy the -wal with it until that program closes",
            err=True,
        )


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=DB_HELP)
@click.option(
    "--max-body",
    default=DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(1),
    help="Largest body imported, in bytes, as the listener's --max-body: longer ones are reported and skipped.",
)
def import_cmd(paths: tuple[Path, ...], db_path: Path | None, max_body: int) -> None:
    """Import JSONL, JSON files, folders of .json, or HAR as a new session.

    Bad lines are reported with their line numbers and skipped; an interrupted
    import (Ctrl-C, SIGTERM) keeps only whole batches.
    """
    from monitor.importing import import_paths

    db_path = db_path or Path(store.DEFAULT_DB)
    console = Console(stderr=True)
    with _Run("import", db_path) as run:
        run.open()
        with progress("importing", console) as bar:
            task = bar.add_task("import", total=None)
            report = import_paths(
                db_path,
                list(paths),
                max_body=max_body,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        for error in report.errors:
            click.echo(f"skipped {clean(error)}", err=True)
        click.echo(report.describe())
        if report.interrupted:
            raise SystemExit(run.code)
        if not _build_search_index(db_path, console):
            click.echo("search index left unfinished (free text still works, more slowly)", err=True)
            raise SystemExit(run.code)


def _build_search_index(db_path: Path, console: Console) -> bool:
    """Build the search index of the bodies (the live writer builds it when idle; import and generate, here).

    False when interrupted: what was indexed is kept, the writer or the next import finishes it.
    """
    import time

    started = time.monotonic()
    db = store.connect(db_path)
    indexed = 0
    try:
        with Progress(
            TextColumn("indexing bodies for search"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("index", total=None)
            while done := store.index_pending(db.conn, 5000):
                indexed += done
                bar.update(task, completed=indexed)
    except KeyboardInterrupt:
        return False
    finally:
        db.close()
    if indexed:
        click.echo(f"indexed {indexed:,} bodies for search in {time.monotonic() - started:.1f} s")
    return True


@click.command("generate")
@click.option("--count", default=10_000, show_default=True, type=click.IntRange(1))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help="Add them to this database.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False, path_type=Path), help="Or write a JSONL file.")
@click.option("--readers", default=20_000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
def generate_cmd(count: int, db_path: Path | None, jsonl_path: Path | None, readers: int, seed: int) -> None:
    """Make a large realistic dataset (synthetic readers and journeys) for trying things at scale."""
    from monitor import synth

    if (db_path is None) == (jsonl_path is None):
        raise click.UsageError("give exactly one of --db or --jsonl")
    if jsonl_path is not None:
        with _Run("generate", None):
            try:
                synth.write_jsonl(jsonl_path, count, seed=seed, readers=readers)
            except OSError as exc:
                raise click.ClickException(f"{inert(jsonl_path)}: cannot write ({exc.strerror or exc})") from None
        click.echo(f"wrote {count} deliveries to {inert(jsonl_path)}")
        return
    assert db_path is not None
    console = Console(stderr=True)
    with _Run("generate", db_path) as run:
        run.open()
        with progress("generating", console) as bar:
            task = bar.add_task("generate", total=None)
            reports = synth.build_database(
                db_path,
                count,
                seed=seed,
                readers=readers,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        for report in reports:
            click.echo(report.describe())
        if reports and reports[-1].interrupted:
            raise SystemExit(run.code)
        # As after an import: without the index, free text scans every body (seconds at 100k rows).
        if not _build_search_index(db_path, console):
            click.echo("search index left unfinished (free text still works, more slowly)", err=True)
            raise SystemExit(run.code)
