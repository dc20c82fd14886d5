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
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from monitor import store, wording
from monitor.cli.common import COUNT_DONE, DB_HELP
from monitor.listener import DEFAULT_MAX_BODY
from monitor.pipeline import ProducerError
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
        if isinstance(exc, store.StoreError | OSError | ProducerError):  # OSError: a path gone since click checked it
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


@click.command("import", short_help="Import JSONL, JSON files, folders or HAR as a new session.")
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

    PATHS are JSONL files (one body per line, or `export --meta` lines),
    single .json files, folders of them, and HAR captures. Bad lines are
    reported with their line numbers and skipped; an interrupted import
    (Ctrl-C, SIGTERM) keeps only whole batches.
    """
    from monitor.importing import import_paths

    db_path = db_path or Path(store.DEFAULT_DB)
    console = Console(stderr=True)
    with _Run("import", db_path) as run:
        run.open()
        with _bytes_bar(console) as bar:
            task = bar.add_task("importing", total=None)
            report = import_paths(
                db_path,
                list(paths),
                max_body=max_body,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                stage=lambda _stage: bar.update(task, description=_INDEXING, total=None),
            )
        for error in report.errors:
            click.echo(f"skipped {clean(error)}", err=True)
        if report.interrupted:
            click.echo(report.describe())
            raise SystemExit(run.code)
        index = _build_search_index(db_path, console)
        click.echo(f"{report.describe()}; {index.describe()}")
        if not index.finished:
            raise SystemExit(run.code)


@dataclass
class _Indexing:
    finished: bool
    bodies: int
    seconds: float

    def describe(self) -> str:
        if not self.finished:
            return "search index left unfinished (free text still works, more slowly)"
        return f"search index built in {self.seconds:,.1f} s"


def _build_search_index(db_path: Path, console: Console) -> _Indexing:
    """Build the search index of the bodies (the live writer builds it when idle; import and generate, here).

    Unfinished when interrupted: what was indexed is kept, the writer or the next import finishes it.
    """
    started = time.monotonic()
    db = store.connect(db_path)
    indexed = 0
    try:
        with Progress(
            TextColumn("indexing bodies for search"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} rows"),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("index", total=None)
            while done := store.index_pending(db.conn, 5000):
                indexed += done
                bar.update(task, completed=indexed)
    except KeyboardInterrupt:
        return _Indexing(False, indexed, time.monotonic() - started)
    finally:
        db.close()
    return _Indexing(True, indexed, time.monotonic() - started)


@click.command("generate", short_help="Make a big synthetic dataset for trying things at scale.")
@click.option(
    "--count",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Deliveries to make (with --db: one new session of exactly this many).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Add them to this database as one new session (the file is created if missing).",
)
@click.option(
    "--jsonl",
    "jsonl_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Or write them to this JSONL file, one body per line (for `import`).",
)
@click.option(
    "--readers",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Readers to draw from; the first ones come back most often, so fewer may appear.",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    help="Make the same data as an earlier run (its summary prints the seed; default: a fresh one each run).",
)
@click.option(
    "--end",
    type=click.IntRange(0),
    metavar="EPOCH",
    help="When the last delivery arrives, in epoch seconds (default: now); the week before it is filled.",
)
def generate_cmd(
    count: int, db_path: Path | None, jsonl_path: Path | None, readers: int, seed: int | None, end: int | None
) -> None:
    """Make a large realistic dataset (synthetic readers and journeys) for trying things at scale.

    Deliveries are spread over the week before --end (default: now), busier by
    day, with paired views and closes, payments and a few retried deliveries.
    Each run makes new data unless --seed and --end repeat an earlier one: the
    summary says which to give.
    """
    import secrets

    from monitor import synth

    if (db_path is None) == (jsonl_path is None):
        raise click.UsageError("give exactly one of --db or --jsonl")
    seed = secrets.randbelow(1_000_000) if seed is None else seed
    end = int(time.time()) if end is None else end
    again = f"seed {seed}; the same data again with --seed {seed} --end {end}"
    if jsonl_path is not None:
        _generate_jsonl(jsonl_path, count, readers, seed, end)
        click.echo(again)
        return
    assert db_path is not None
    console = Console(stderr=True)
    with _Run("generate", db_path) as run:
        run.open()
        with _count_bar(count, console) as bar:
            task = bar.add_task("generating", total=count)
            built = synth.build_database(
                db_path,
                count,
                seed=seed,
                readers=readers,
                end=end,
                progress=lambda done, _total: bar.update(task, completed=done),
                stage=lambda _stage: bar.update(task, description=_INDEXING, total=None),
            )
        report = built.reports[0]
        made = (
            f"generated {wording.count(built.imported, 'delivery')} ({wording.count(built.readers, 'reader')}) "
            f"into {inert(db_path)}, session {report.session_id}, in {report.seconds:,.1f} s "
            f"({wording.number(round(report.rate))}/s"
        )
        if report.index_seconds:
            made += f", of which {report.index_seconds:,.1f} s building the indexes after the rows"
        made += ")"
        if built.interrupted:
            click.echo(f"{made} - interrupted: the last, unfinished batch was not written")
            raise SystemExit(run.code)
        # As after an import: without the index, free text scans every body (seconds at 100k rows).
        index = _build_search_index(db_path, console)
        click.echo(f"{made}; {index.describe()}")
        click.echo(again)
        if not index.finished:
            raise SystemExit(run.code)


def _generate_jsonl(path: Path, count: int, readers: int, seed: int, end: int) -> None:
    from monitor import synth

    started = time.perf_counter()
    with _Run("generate", None):
        try:
            synth.write_jsonl(path, count, seed=seed, readers=readers, end=end)
        except OSError as exc:
            raise click.ClickException(f"{inert(path)}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"wrote {wording.count(count, 'delivery')} to {inert(path)} in {time.perf_counter() - started:,.1f} s")


#: What the bar says while the indexes are built after the rows (monitor.bulk).
_INDEXING = "building the indexes"


def _bytes_bar(console: Console) -> Progress:
    """A bar of bytes read on stderr, saying what is being done (the task's description)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _count_bar(total: int, console: Console) -> Progress:
    """A bar of items done out of ``total`` on stderr; nothing at all when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(COUNT_DONE),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
