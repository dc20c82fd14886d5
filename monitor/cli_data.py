"""Commands for saved sessions: ``open``, ``import``, ``export``, ``generate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from monitor import store
from monitor.filters import FilterError, compile_filter

if TYPE_CHECKING:
    from monitor.exporting import Format

_DB_HELP = f"SQLite file; default ./{store.DEFAULT_DB}."


def _progress(label: str, console: Console) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=console, transient=True
    )


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
    from monitor.launch import run_offline

    run_offline(path, session_id)


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=_DB_HELP)
def import_cmd(paths: tuple[Path, ...], db_path: Path | None) -> None:
    """Import JSONL, JSON files, folders of .json, or HAR as a new session.

    Bad lines are reported with their line numbers and skipped; an interrupted
    import keeps only whole batches.
    """
    from monitor.importing import import_paths

    console = Console(stderr=True)
    with _progress("importing", console) as bar:
        task = bar.add_task("import", total=None)
        try:
            report = import_paths(
                db_path or Path(store.DEFAULT_DB),
                list(paths),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
    for error in report.errors:
        click.echo(f"skipped {error}", err=True)
    click.echo(report.describe())
    if report.interrupted:
        raise SystemExit(130)
    _build_search_index(db_path or Path(store.DEFAULT_DB), console)


def _build_search_index(db_path: Path, console: Console) -> None:
    """Free text searches the bodies through an index the live writer builds when idle; an import builds it here."""
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
        click.echo("search index left unfinished (free text still works, more slowly)", err=True)
        raise SystemExit(130) from None
    finally:
        db.close()
    if indexed:
        click.echo(f"indexed {indexed:,} bodies for search in {time.monotonic() - started:.1f} s")


@click.command("export")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=_DB_HELP)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "har", "curl"]), default="jsonl", show_default=True)
@click.option("--session", "session_id", type=int, help="Only this session.")
@click.option("--filter", "filter_text", default="", help="Only deliveries matching this filter (see the help screen).")
@click.option("--id", "ids", type=int, multiple=True, help="Only this delivery id (repeatable).")
@click.option("--meta", is_flag=True, help="jsonl: one object per line with metadata and the exact body.")
@click.option("--base-url", default="http://127.0.0.1:8787", show_default=True, help="curl: where to send.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default stdout).")
def export_cmd(
    db_path: Path | None,
    fmt: Format,
    session_id: int | None,
    filter_text: str,
    ids: tuple[int, ...],
    meta: bool,
    base_url: str,
    output: Path | None,
) -> None:
    """Export deliveries as JSONL (exact bodies), CSV, HAR or curl commands."""
    from monitor.exporting import export

    path = db_path or Path(store.DEFAULT_DB)
    try:
        store.open_for_review(path)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        # Checked before --output is opened: a typo must not truncate an existing file.
        compile_filter(filter_text, table="events")
    except FilterError as exc:
        raise click.UsageError(f"bad filter at column {exc.position + 1}: {exc.message}") from None
    try:
        out = output.open("wb") if output else cast(BinaryIO, sys.stdout.buffer)
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write ({exc.strerror or exc})") from None
    db = store.connect(path, readonly=True)
    try:
        report = export(
            db,
            out,
            fmt,
            session_id=session_id,
            filter_text=filter_text,
            ids=list(ids) or None,
            meta=meta,
            base_url=base_url,
        )
    except FilterError as exc:
        raise click.UsageError(f"bad filter at column {exc.position + 1}: {exc.message}") from None
    finally:
        db.close()
        if output:
            out.close()
        else:
            out.flush()
    for warning in report.warnings():
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"exported {report.exported} deliveries", err=True)


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
        try:
            synth.write_jsonl(jsonl_path, count, seed=seed, readers=readers)
        except OSError as exc:
            raise click.ClickException(f"{jsonl_path}: cannot write ({exc.strerror or exc})") from None
        click.echo(f"wrote {count} deliveries to {jsonl_path}")
        return
    assert db_path is not None
    console = Console(stderr=True)
    with _progress("generating", console) as bar:
        task = bar.add_task("generate", total=None)
        try:
            reports = synth.build_database(
                db_path,
                count,
                seed=seed,
                readers=readers,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from None
    for report in reports:
        click.echo(report.describe())
