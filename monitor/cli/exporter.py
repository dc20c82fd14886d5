"""``conscent-monitor export``: deliveries out as JSONL, CSV, HAR or curl."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import click

from monitor import store
from monitor.cli.common import DB_HELP, database_failure, filter_epilog, http_url
from monitor.exporting import DEFAULT_BASE_URL, FORMATS, Format
from monitor.filters import FilterError, compile_filter
from monitor.wording import count

if TYPE_CHECKING:
    from monitor.exporting import ExportReport


@click.command("export", short_help="Write deliveries out as JSONL, CSV, HAR or curl commands.", epilog=filter_epilog())
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=DB_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: each body's exact bytes, one per line; csv: the parsed columns; har: HAR 1.2; "
    "curl: a bash script of curl commands that resend each delivery byte for byte.",
)
@click.option("--session", "session_id", type=int, help="Only this session (`open` and the TUI's s key list them).")
@click.option(
    "--filter",
    "filter_text",
    default="",
    help="Only deliveries matching this filter, as typed after / in the TUI (the language is below).",
)
@click.option("--id", "ids", type=int, multiple=True, help="Only this delivery id (repeatable).")
@click.option("--meta", is_flag=True, help="jsonl: one object per line with metadata and the exact body.")
@click.option(
    "--mask",
    is_flag=True,
    help="Hide personal data (phones, names, usernames, emails, places), as the TUI's m key does, in every "
    "format: JSON bodies are written masked (so not byte for byte, even with --meta), a body that is not JSON "
    "becomes a placeholder, credentials in headers are redacted.",
)
@click.option(
    "--base-url",
    default=DEFAULT_BASE_URL,
    show_default=True,
    callback=http_url,
    help="curl: the http:// or https:// URL the commands post to (each delivery's path is added).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write, complete or not at all (default stdout).",
)
def export_cmd(
    db_path: Path | None,
    fmt: Format,
    session_id: int | None,
    filter_text: str,
    ids: tuple[int, ...],
    meta: bool,
    mask: bool,
    base_url: str,
    output: Path | None,
) -> None:
    """Export deliveries as JSONL (exact bodies), CSV, HAR or curl commands."""
    path = db_path or Path(store.DEFAULT_DB)
    try:
        store.open_for_review(path)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        compile_filter(filter_text, table="events")
    except FilterError as exc:
        raise _bad_filter(exc) from None
    options: dict[str, Any] = {
        "session_id": session_id, "filter_text": filter_text, "ids": list(ids) or None, "meta": meta,
        "base_url": base_url, "mask": mask,
    }  # fmt: skip
    try:
        report = _write(path, output, fmt, options)
    except sqlite3.DatabaseError as exc:
        raise database_failure(path, exc) from None
    for warning in report.warnings():
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"exported {count(report.exported, 'delivery')}", err=True)


def _write(db_path: Path, output: Path | None, fmt: Format, options: dict[str, Any]) -> ExportReport:
    """Stream to stdout, or write ``output`` through a temporary file (see ``export_to_path``)."""
    from monitor.exporting import ExportTargetError, export, export_to_path

    db = store.connect(db_path, readonly=True)
    try:
        if output is None:
            return export(db, cast(BinaryIO, sys.stdout.buffer), fmt, **options)
        return export_to_path(db, output, fmt, db_path=db_path, **options)
    except FilterError as exc:
        raise _bad_filter(exc) from None
    except ExportTargetError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        if output is None:
            raise  # a closed pipe on stdout: click's own handling
        raise click.ClickException(f"{output}: cannot write ({exc.strerror or exc})") from None
    finally:
        db.close()


def _bad_filter(exc: FilterError) -> click.UsageError:
    return click.UsageError(f"bad filter at column {exc.position + 1}: {exc.message}")
