"""``conscent-monitor export``: deliveries out as JSONL, CSV, HAR or curl."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import click

from monitor import store
from monitor.cli.common import DB_HELP
from monitor.filters import FilterError, compile_filter

if TYPE_CHECKING:
    from monitor.exporting import Format


@click.command("export")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=DB_HELP)
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
