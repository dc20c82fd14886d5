"""``conscent-monitor import`` and ``generate``: data into a database, as a new session."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from monitor import store
from monitor.cli.common import DB_HELP, progress


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=DB_HELP)
def import_cmd(paths: tuple[Path, ...], db_path: Path | None) -> None:
    """Import JSONL, JSON files, folders of .json, or HAR as a new session.

    Bad lines are reported with their line numbers and skipped; an interrupted
    import keeps only whole batches.
    """
    from monitor.importing import import_paths

    console = Console(stderr=True)
    with progress("importing", console) as bar:
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
    with progress("generating", console) as bar:
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
