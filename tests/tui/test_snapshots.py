"""Snapshot tests of every screen (pytest-textual-snapshot).

Deterministic by construction: the database is written directly with fixed
receive times, the app runs offline (no listener) with its clock stopped at
``NOW`` (``MonitorApp(clock=...)``), and local time is UTC. Each test waits for
its screen's content before the picture is taken. Regenerate with ``pytest
tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs before
committing them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select

from monitor import store
from monitor.tui.app import MonitorApp
from monitor.tui.screens.checks import ChecksScreen, ThresholdsScreen
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.export import ExportScreen
from monitor.tui.screens.help import HelpScreen
from monitor.tui.screens.insights import InsightsScreen
from monitor.tui.screens.reader import JourneyTable, ReaderScreen
from monitor.tui.screens.readers import ReadersScreen
from monitor.tui.screens.sessions import SessionsScreen
from monitor.tui.widgets.event_table import EventTable
from tests.helpers import (
    CLOSE,
    MALFORMED,
    SIZE,
    TRANSACTION,
    VIEW,
    event_row,
    gateway_body,
    rejected_row,
    screen_text,
    static_text,
    wait_for,
)

#: The spec view was created at 1709186668 (2024-02-29 06:04:28 UTC).
T0 = 1709186668.0
NOW = T0 + 600.0
SMALL = (80, 24)


def build_database(path: Path) -> None:
    """A small, realistic session: the spec pair, other readers, a duplicate, a bad signature, a rejection."""
    priya = {
        "user_id": "65e1a0c4d03692125f1f3601",
        "name": "Priya Iyer",
        "phone": "9820012345",
        "content_id": "budget-2024-explained",
        "session": "gw-priya",
    }
    aarav = {
        "user_id": "65e1a0c4d03692125f1f3602",
        "name": "Aarav Sharma",
        "phone": "9811122233",
        "content_id": "ipl-auction-analysis",
        "session": "gw-aarav",
    }
    priya_view = gateway_body(created_at=T0 + 30, **priya)
    deliveries: list[tuple[float, bytes, str]] = [
        (T0 + 0.4, VIEW, "unchecked"),
        (T0 + 30.2, priya_view, "valid"),
        (T0 + 31.9, priya_view, "valid"),  # Conscent retried: a duplicate
        (T0 + 95.6, gateway_body(created_at=T0 + 95, **aarav), "invalid"),
        (T0 + 150.3, CLOSE, "unchecked"),
        (
            T0 + 212.8,
            gateway_body(
                event="payment_gateway.close", created_at=T0 + 212, click_action="LOGIN_FLOW_CROSSBTN", **priya
            ),
            "valid",
        ),
        (T0 + 260.1, TRANSACTION, "valid"),
    ]
    db = store.open_store(path)
    try:
        session = store.start_session(db, listen="http://127.0.0.1:8787/", mode="tui")
        events = []
        for received_at, body, signature in deliveries:
            row = event_row(body, session_id=session, received_at=received_at)
            row["signature"] = signature
            events.append(row)
        rejected = [
            rejected_row(
                MALFORMED,
                session_id=session,
                received_at=T0 + 301.5,
                status=400,
                reason="body is not valid UTF-8 (byte 46)",
            )
        ]
        store.write_batch(db.conn, events, rejected)
        db.execute("UPDATE sessions SET started_at = ?, ended_at = ? WHERE id = ?", [T0 - 60, T0 + 330, session])
    finally:
        db.close()


@pytest.fixture
def snapshot_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, utc: None) -> MonitorApp:
    monkeypatch.chdir(tmp_path)  # the header shows the database path: keep it short and fixed
    # A text box's cursor blinks every 0.5 s: under load the picture caught it either way. Keep it shown.
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    build_database(Path("monitor.db"))
    return MonitorApp(Path("monitor.db"), session_id=None, clock=lambda: NOW)


Steps = Callable[[Pilot[Any]], Awaitable[None]]


async def main_screen_ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    table = app.screen.query_one(EventTable)
    await wait_for(pilot, lambda: table.total == 6, what="the gateway rows")
    await wait_for(pilot, lambda: "views 4" in static_text(app, "#counters"), what="the counters")


async def on_the_spec_close(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    table = pilot.app.screen.query_one(EventTable)
    # Newest first: the spec close is the second gateway row.
    await pilot.press("down")
    await wait_for(
        pilot,
        lambda: (
            table.current is not None
            and table.current.event == "payment_gateway.close"
            and table.current.click_action == "PAYMENT_GATEWAY_CROSS_BTN"
        ),
        what="the spec close selected",
    )


async def all_events(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    await pilot.press("a")
    table = pilot.app.screen.query_one(EventTable)
    await wait_for(pilot, lambda: table.total == 8, what="every delivery (7 events, 1 rejection)")


async def spec_reader(pilot: Pilot[Any]) -> None:
    await on_the_spec_close(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReaderScreen), what="the drill-down")
    journey = pilot.app.screen.query_one("#journey", JourneyTable)
    await wait_for(pilot, lambda: journey.row_count == 3, what="the journey (view, close, transaction)")


async def details(pilot: Pilot[Any]) -> None:
    await on_the_spec_close(pilot)
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), what="the details")
    await wait_for(pilot, lambda: "payment_gateway.close" in screen_text(pilot.app), what="the delivery")


async def readers(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    await pilot.press("u")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReadersScreen), what="the readers")
    table = pilot.app.screen.query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == 3, what="three readers")


async def sessions(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionsScreen), what="the sessions")
    table = pilot.app.screen.query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == 2, what="all sessions and the one session")


async def help_screen(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help")
    await wait_for(pilot, lambda: "Every table" in screen_text(pilot.app), what="the help's text")


async def export_dialog(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ExportScreen), what="the export dialog")
    path = pilot.app.screen.query_one("#export-path", Input)
    await wait_for(pilot, lambda: path.value.endswith(".jsonl"), what="the default file name")


async def masked(pilot: Pilot[Any]) -> None:
    await main_screen_ready(pilot)
    await pilot.press("m")
    await wait_for(pilot, lambda: "Priya Iyer" not in screen_text(pilot.app), what="the names masked")


async def light_theme(pilot: Pilot[Any]) -> None:
    pilot.app.theme = "textual-light"
    await main_screen_ready(pilot)


async def scrolled_right(pilot: Pilot[Any]) -> None:
    """Two columns sideways: the titles move with the values (at 80 columns; at 160 all fit)."""
    await main_screen_ready(pilot)
    await pilot.press("right", "right")
    await pilot.pause()


async def oldest_row(pilot: Pilot[Any]) -> None:
    """End: the cursor on the oldest row, and the status line says it is not following."""
    await main_screen_ready(pilot)
    await pilot.press("end")
    await wait_for(pilot, lambda: "not following" in static_text(pilot.app, "#statusline"), what="not following")


async def filter_error(pilot: Pilot[Any]) -> None:
    """A filter the language refuses: the whole message, kept while the text stays."""
    await main_screen_ready(pilot)
    await pilot.press("slash", *"foo:ba")
    await wait_for(pilot, lambda: "unknown field" in static_text(pilot.app, "#statusline"), what="the error")


async def on_a_rejection(pilot: Pilot[Any]) -> None:
    """All events, the cursor on the rejected delivery: no Replay offered."""
    await all_events(pilot)
    table = pilot.app.screen.query_one(EventTable)
    for _ in range(table.total):
        if table.current is not None and table.current.source == "rejected":
            break
        await pilot.press("down")
    await wait_for(pilot, lambda: table.current is not None and table.current.source == "rejected", what="it")


async def rejected_details(pilot: Pilot[Any]) -> None:
    await on_a_rejection(pilot)
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), what="the rejection's details")
    await wait_for(pilot, lambda: "Rejected delivery" in screen_text(pilot.app), what="its title")


async def created_times(pilot: Pilot[Any]) -> None:
    """The drill-down ordered and timed by Conscent's created_at (t)."""
    await spec_reader(pilot)
    await pilot.press("t")
    await pilot.pause()


async def readers_filtered(pilot: Pilot[Any]) -> None:
    await readers(pilot)
    await pilot.press("slash", *"priya", "enter")
    table = pilot.app.screen.query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == 1, what="one reader")


async def export_csv(pilot: Pilot[Any]) -> None:
    """CSV: no metadata checkbox, the file name follows the format."""
    await export_dialog(pilot)
    path = pilot.app.screen.query_one("#export-path", Input)
    pilot.app.screen.query_one("#export-format", Select).value = "csv"
    await wait_for(pilot, lambda: path.value.endswith(".csv"), what="the CSV file name")


async def export_failed(pilot: Pilot[Any]) -> None:
    """A file that cannot be written: the dialog stays, with the error and the path to edit."""
    await export_dialog(pilot)
    path = pilot.app.screen.query_one("#export-path", Input)
    path.value = "/nonexistent/dir/x.jsonl"
    await pilot.press("enter")
    await wait_for(pilot, lambda: "Export failed" in screen_text(pilot.app), what="the error in the dialog")


async def export_download(pilot: Pilot[Any]) -> None:
    """A browser tab's dialog under --web-mask: a file name only, Download, the mask said (is_web is False here)."""
    await main_screen_ready(pilot)
    app = pilot.app
    await app.push_screen(ExportScreen("Gateway events, all sessions", "", None, app.clock, download=True, masked=True))
    await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), what="the download dialog")


async def export_masked(pilot: Pilot[Any]) -> None:
    """m, then x: the terminal's dialog says the export will be masked."""
    await masked(pilot)
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ExportScreen), what="the export dialog")
    await wait_for(pilot, lambda: "will be masked" in screen_text(pilot.app), what="the mask line")


async def checks_screen(pilot: Pilot[Any]) -> None:
    """!: every check on the snapshot session (a bad signature, a duplicate, a refusal, open views)."""
    await main_screen_ready(pilot)
    await pilot.press("exclamation_mark")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChecksScreen), what="the checks")
    await pilot.pause()


async def checks_thresholds(pilot: Pilot[Any]) -> None:
    """t on the Checks screen, a word typed where a number belongs: said in the dialog."""
    await checks_screen(pilot)
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ThresholdsScreen), what="the thresholds dialog")
    field = pilot.app.screen.query(Input).first()
    field.value = "abc"
    await wait_for(pilot, lambda: "Type a number" in screen_text(pilot.app), what="the inline error")


async def insights_screen(pilot: Pilot[Any]) -> None:
    """i: the gateway view's charts."""
    await main_screen_ready(pilot)
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, InsightsScreen), what="the insights")
    await pilot.pause()


async def insights_all_events(pilot: Pilot[Any]) -> None:
    """a, then i: every delivery's funnel, close actions, time to close, deliveries and lag."""
    await all_events(pilot)
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, InsightsScreen), what="the insights")
    await pilot.pause()


STATES: list[tuple[Steps, str]] = [
    (main_screen_ready, "main-gateway"),
    (all_events, "main-all-events"),
    (scrolled_right, "main-scrolled-right"),
    (oldest_row, "main-oldest-row"),
    (filter_error, "main-filter-error"),
    (on_a_rejection, "main-on-a-rejection"),
    (spec_reader, "drill-down"),
    (created_times, "drill-down-created"),
    (details, "details"),
    (rejected_details, "details-rejected"),
    (readers, "readers"),
    (readers_filtered, "readers-filtered"),
    (sessions, "sessions"),
    (help_screen, "help"),
    (export_dialog, "export-dialog"),
    (export_csv, "export-csv"),
    (export_failed, "export-failed"),
    (export_download, "export-download"),
    (export_masked, "export-masked"),
    (masked, "masked"),
    (checks_screen, "checks"),
    (checks_thresholds, "checks-thresholds"),
    (insights_screen, "insights"),
    (insights_all_events, "insights-all-events"),
    (light_theme, "light-theme"),
]
SIZES = [(SIZE, "160x48"), (SMALL, "80x24")]


@pytest.mark.parametrize(
    ("steps", "size"),
    [pytest.param(steps, size, id=f"{name}-{size_name}") for steps, name in STATES for size, size_name in SIZES],
)
def test_screen(snap_compare: Any, snapshot_app: MonitorApp, steps: Steps, size: tuple[int, int]) -> None:
    """Every screen state at a laptop split (80x24) and a full terminal (160x48)."""
    assert snap_compare(snapshot_app, terminal_size=size, run_before=steps)


def test_snapshot_database_is_what_the_listener_would_store(tmp_path: Path) -> None:
    """The hand-written rows parse like real deliveries (a guard for the fixture itself)."""
    build_database(tmp_path / "check.db")
    db = store.connect(tmp_path / "check.db", readonly=True)
    try:
        rows = db.execute("SELECT event, duplicate_of, body FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    assert [r[0] for r in rows].count("payment_gateway.view") == 4
    assert [r[1] for r in rows] == [None, None, 2, None, None, None, None]
    assert json.loads(rows[0][2]) == json.loads(VIEW) and rows[0][2] == VIEW
