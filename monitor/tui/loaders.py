"""What the app's thread workers read for the screens: each takes a connection and returns a message.

The app runs these off the UI's thread (``MonitorApp._read``) and posts
what they return. Must not touch the app or any widget: they only read
(through :mod:`monitor.queries`) and build messages.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlite_utils import Database
from textual.message import Message

from monitor import checks, exporting, queries, reader_pages
from monitor.filters import FilterError, compile_filter
from monitor.textsafe import cell, inert
from monitor.tui import messages as msg
from monitor.wording import count

#: The drill-down reads this many of the newest steps with its first screen (a tall terminal's worth, and more).
FIRST_STEPS = 100


def reader(db: Database, user_id: str, session_id: int | None) -> Message:
    """A reader's drill-down: profile, counts per event, and the journey's newest steps (paired).

    Never the whole journey: its ids in received order (an index walk), the
    rows of its last page, the rows those pair with; the outcome figures
    too when the journey has few views and closes (else the screen reads
    them after its first draw).
    """
    counts, counted = reader_pages.counts_and_figures(db, user_id, session_id)
    journey = reader_pages.Journey.open(db, user_id, session_id, counted)
    offset = max(0, journey.total - FIRST_STEPS)
    first = journey.steps(db, "received", offset, journey.total - offset)
    summary = journey.summary(db) if counted.views + counted.closes <= reader_pages.SUMMARY_AT_ONCE else None
    profile = queries.reader_profile(db, user_id)
    return msg.ReaderLoaded(msg.ReaderData(user_id, profile, counts, journey, offset, first, summary))


def readers(
    db: Database, session_id: int | None, filter_text: str, limit: int, *, now: float, refresh: bool
) -> Message:
    """The readers list: the ``limit`` readers seen most recently that the filter matches, and how many match."""
    started = time.perf_counter()
    try:
        compiled = compile_filter(filter_text, now=now)
    except FilterError as exc:
        error = f"{exc.message} (at column {exc.position + 1})"
        return msg.ReadersLoaded(queries.ReaderPage([], 0), filter_text, limit, error=error, refresh=refresh)
    page = queries.readers_page(db, session_id, compiled.where, compiled.params, limit)
    seconds = time.perf_counter() - started
    return msg.ReadersLoaded(page, filter_text, limit, refresh=refresh, seconds=seconds)


def run_checks(
    db: Database,
    session_id: int | None,
    thresholds: checks.Thresholds,
    scope: str,
    *,
    now: float,
    switchable: bool,
    refresh: bool,
) -> Message:
    """Every check on the session (None: every session), and how many deliveries they read."""
    with queries.read_snapshot(db):  # the findings and the count from the same commits, as `check` reads them
        findings = checks.run_checks(db, session_id, thresholds, now=now)
        checked = queries.count_rows(db, queries.View(mode="all", session_id=session_id))
    return msg.ChecksLoaded(findings, thresholds, scope, checked, switchable, refresh=refresh)


def delivery(db: Database, source: str, delivery_id: int, purpose: str = "show") -> Message | None:
    """One delivery (accepted or rejected), to show or to replay; None when it is gone."""
    found = queries.get_delivery(db, "rejected" if source == "rejected" else "event", delivery_id)
    return None if found is None else msg.DeliveryLoaded(source, found, purpose)


def export(
    db: Database,
    request: msg.ExportRequest,
    *,
    db_path: Path,
    filter_text: str,
    session_id: int | None,
    base_url: str,
    download_dir: Path | None = None,
) -> Message:
    """Write the view to the file the user chose (complete or not at all: :func:`exporting.export_to_path`).

    ``request.download`` (a browser tab): ``request.path`` is a file name,
    written into ``download_dir`` (a temporary folder the app keeps) and
    returned as :attr:`~monitor.tui.messages.Exported.download` for the app to
    hand to the browser. ``request.mask``: personal data is hidden in the file.
    """
    if request.download:
        if download_dir is None:
            raise ValueError("a download needs the folder to write it in (download_dir)")
        problem = exporting.download_name_problem(request.path)
        if problem is not None:
            return msg.Exported(f"Export failed: {problem}", ok=False)
        target = download_dir / request.path.strip()
    else:
        target = Path(request.path).expanduser()
    try:
        report = exporting.export_to_path(
            db, target, request.fmt, db_path=db_path, session_id=session_id,
            filter_text=filter_text, meta=request.meta, base_url=base_url, mask=request.mask,
        )  # fmt: skip
    except OSError as exc:
        return msg.Exported(f"Export failed: {_cannot_write(target, exc)}", ok=False)
    except (FilterError, ValueError, sqlite3.DatabaseError) as exc:  # ExportTargetError is a ValueError
        return msg.Exported(f"Export failed: {cell(str(exc), 300)}", ok=False)
    exported = count(report.exported, "delivery")
    if request.download:
        text = f"Exported {exported}: downloading {cell(target.name, 200)}"
        return msg.Exported("\n".join([text, *report.warnings()]), ok=True, download=target)
    lines = [f"Exported {exported} to {cell(str(target), 200)}", *report.warnings()]
    return msg.Exported("\n".join(lines), ok=True)


def _cannot_write(target: Path, exc: OSError) -> str:
    """Why ``target`` could not be written, in the user's terms (not the temporary file's name)."""
    folder = target.parent
    if not folder.is_dir():
        return f"no folder {inert(str(folder), 120)} to write {inert(target.name, 80)} in"
    return f"cannot write {inert(str(target), 160)} ({cell(exc.strerror or exc, 120)})"


def insights(db: Database, view: queries.View, description: str, *, now: float, live: bool, refresh: bool) -> Message:
    """The Insights screen's figures for the main table's view (its session, mode and filter)."""
    started = time.perf_counter()
    data = queries.insights(db, view, now, live=live)
    return msg.InsightsLoaded(data, description, refresh=refresh, seconds=time.perf_counter() - started)
