"""Snapshot tests of the main screen and the drill-down (pytest-textual-snapshot).

Deterministic by construction: the database is written directly with fixed
receive times, the app runs offline (no listener), local time is UTC and the
clock the screens read is frozen. Regenerate with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and look at the SVGs before committing them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from time import struct_time
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from monitor import store
from monitor.tui.app import MonitorApp
from monitor.tui.screens.reader import ReaderScreen
from monitor.tui.widgets.event_table import EventTable
from tests.helpers import (
    CLOSE,
    MALFORMED,
    SIZE,
    TRANSACTION,
    VIEW,
    gateway_body,
    static_text,
    stored_event_row,
    stored_rejected_row,
    wait_for,
)

#: The spec view was created at 1709186668 (2024-02-29 06:04:28 UTC).
T0 = 1709186668.0
NOW = T0 + 600.0


class FrozenTime:
    """The ``time`` module as the screens use it, with the clock stopped at ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        return self.now

    def localtime(self, secs: float | None = None) -> struct_time:
        return time.localtime(self.now if secs is None else secs)

    def strftime(self, fmt: str, t: struct_time | None = None) -> str:
        return time.strftime(fmt, self.localtime() if t is None else t)


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
            row = stored_event_row(body, session_id=session, received_at=received_at)
            row["signature"] = signature
            events.append(row)
        rejected = [
            stored_rejected_row(
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
    build_database(Path("monitor.db"))
    frozen = FrozenTime(NOW)
    for module in ("monitor.tui.app", "monitor.tui.screens.main", "monitor.tui.widgets.event_table"):
        monkeypatch.setattr(f"{module}.time", frozen)
    return MonitorApp(Path("monitor.db"), session_id=None)


async def main_screen_ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    table = app.screen.query_one(EventTable)
    await wait_for(pilot, lambda: table.total == 6, what="the gateway rows")
    await wait_for(pilot, lambda: "views 4" in static_text(app, "#counters"), what="the counters")


def test_main_screen(snap_compare: Any, snapshot_app: MonitorApp) -> None:
    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=main_screen_ready)


def test_drill_down(snap_compare: Any, snapshot_app: MonitorApp) -> None:
    async def open_spec_reader(pilot: Pilot[Any]) -> None:
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
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReaderScreen), what="the drill-down")
        journey = pilot.app.screen.query_one("#journey", DataTable)
        await wait_for(pilot, lambda: journey.row_count == 3, what="the journey (view, close, transaction)")

    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=open_spec_reader)


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
