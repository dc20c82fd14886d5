"""The reader's drill-down at 80x24 and 160x48: layout, wording, time bases, and the table keys.

Issue 12, items 1, 6, 7 and 10: the counts panel never breaks an event name
across lines, the journey's Pairing, Time to close and Outcome columns are on
screen at 80 columns, counts read ``1 view, 1 close``, the times say which
clock they are, and Home/End/PgUp/PgDn, ``d`` and Enter mean what they mean
on the main table. Offline review of a database written directly; every
wait is on a condition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor import store
from monitor.tui.app import MonitorApp
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.reader import JourneyTable, ReaderScreen
from tests.helpers import CLOSE, SPEC_READER, TRANSACTION, VIEW, event_row, gateway_body, screen_text, wait_for

SMALL, LARGE = (80, 24), (160, 48)
#: When the rows were received: the spec payloads were created in 2024, two years before.
RECEIVED = 1764490000.0
#: The long journey's length (the issue's reader had 1,365 steps).
STEPS = 1365


def write(db_path: Path, bodies: list[bytes]) -> None:
    db = store.open_store(db_path)
    try:
        session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
        rows = [event_row(body, session_id=session_id, received_at=RECEIVED + i) for i, body in enumerate(bodies)]
        store.write_batch(db.conn, rows, [])
        store.end_session(db, session_id)
    finally:
        db.close()


def long_journey(user: str = "reader-long") -> list[bytes]:
    """``STEPS`` gateway events of one reader: views and their closes, a minute apart."""
    bodies = []
    for i in range(STEPS):
        event = "payment_gateway.view" if i % 2 == 0 else "payment_gateway.close"
        action = None if i % 2 == 0 else "PAYMENT_GATEWAY_CROSS_BTN"
        session = f"gw-{i // 2}"
        bodies.append(
            gateway_body(
                event=event, user_id=user, created_at=1709186668 + 60 * i, session=session, click_action=action
            )
        )
    return bodies


async def open_reader(pilot: Any, app: MonitorApp) -> ReaderScreen:
    """Enter on the main table's newest row: that reader's drill-down, journey filled."""
    await wait_for(pilot, lambda: app.main_screen.table.total > 0, what="the main table")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="the drill-down")
    screen = app.screen
    assert isinstance(screen, ReaderScreen)
    journey = screen.query_one("#journey", JourneyTable)
    await wait_for(pilot, lambda: journey.row_count == screen.data.journey.total > 0, what="the journey")
    await pilot.pause()
    return screen


def lines(app: MonitorApp) -> list[str]:
    return screen_text(app).splitlines()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
async def test_the_drill_down_fits_the_terminal(db_path: Path, size: tuple[int, int]) -> None:
    write(db_path, [VIEW, CLOSE, TRANSACTION])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        screen = await open_reader(pilot, app)
        assert screen.data.user_id == SPEC_READER
        text = lines(app)
        # Counts: every "event n" whole on one line (never "payment_gateway.clos" / "e").
        counts = [line for line in text if "■ close 1" in line or "transaction.complete" in line]
        assert counts, "\n".join(text)
        assert not any(line.rstrip().endswith(("payment_gateway.clos", "transaction.comp")) for line in text)
        # The journey's telling columns are on screen, whole.
        header = next(line for line in text if "Received" in line and "Event" in line)
        for title in ("Pairing", "Time to close" if size == LARGE else "To close", "Outcome", "Click action"):
            assert title in header, header
        view_line = next(line for line in text if "▶ view" in line and "→ " in line)
        assert ("→ close #2 by sessionId" in view_line) == (size == LARGE)  # narrower: "→ #2"
        assert "150s" in view_line and "closed" in view_line
        # Wording: plurals right.
        assert "1 view, 1 close:" in screen_text(app)
        # Time bases labelled: the profile's are received times; the created time has its own column at 160.
        assert "First received" in screen_text(app) and "Last received" in screen_text(app)
        assert ("Created" in header) == (size == LARGE)
        # The footer says what Enter opens.
        assert "⏎ Details" in text[-1]


async def test_t_switches_the_journey_to_conscents_created_time(db_path: Path, utc: None) -> None:
    write(db_path, [VIEW, CLOSE, TRANSACTION])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_reader(pilot, app)
        journey = screen.query_one("#journey", JourneyTable)
        assert str(journey.get_row_at(0)[0]) == "11-30 08:06:40"  # received, in 2025 (not today: with the date)
        assert "t Created times" in lines(app)[-1]
        await pilot.press("t")
        await wait_for(pilot, lambda: "Created" in screen_text(app) and "t Received times" in lines(app)[-1])
        assert all(str(journey.get_row_at(i)[0]).startswith("2024-02-29") for i in range(journey.row_count))
        await pilot.press("t")
        await wait_for(pilot, lambda: "t Created times" in lines(app)[-1])


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
async def test_a_views_click_action_is_marked_as_its_closes(db_path: Path, size: tuple[int, int]) -> None:
    write(db_path, [VIEW, CLOSE])
    app = MonitorApp(db_path, session_id=None, clock=lambda: RECEIVED + 60)  # received today
    async with app.run_test(size=size) as pilot:
        screen = await open_reader(pilot, app)
        journey = screen.query_one("#journey", JourneyTable)
        column = list(journey.titles).index("Click action")
        event = list(journey.titles).index("Event")
        cells = {str(journey.get_row_at(i)[event]): journey.get_row_at(i)[column] for i in range(journey.row_count)}
        assert str(cells["▶ view"]) == "→ PAYMENT_GATEWAY_CROSS_BTN"
        assert str(cells["■ close"]) == "PAYMENT_GATEWAY_CROSS_BTN"
        assert cells["▶ view"].style == screen.tone("muted")
        # On screen, whole, at 80 columns too: today's receipts take a time of day, the pairing its arrow.
        text = lines(app)
        assert "PAYMENT_GATEWAY_CROSS_BTN" in next(line for line in text if "■ close" in line and "#1" in line)
        assert "→ PAYMENT_GATEWAY_CROSS_BTN" in next(line for line in text if "▶ view" in line and "#2" in line)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
async def test_the_journeys_keys_are_the_main_tables(db_path: Path, size: tuple[int, int]) -> None:
    write(db_path, long_journey())
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        screen = await open_reader(pilot, app)
        journey = screen.query_one("#journey", JourneyTable)
        last = STEPS - 1
        assert journey.row_count == STEPS
        # Opens on the newest step (the journey is oldest first).
        assert journey.cursor_row == last
        await pilot.press("home")
        await wait_for(pilot, lambda: journey.cursor_row == 0, what="Home: the first step")
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: journey.cursor_row > 5, what="PgDn: a page")
        page = journey.cursor_row
        await pilot.press("pageup")
        await wait_for(pilot, lambda: journey.cursor_row == 0, what="PgUp: back a page")
        await pilot.press("end")
        await wait_for(pilot, lambda: journey.cursor_row == last, what="End: the last step")
        assert journey.scroll_y == journey.max_scroll_y  # and it is on screen
        await pilot.press("g")
        await wait_for(pilot, lambda: journey.cursor_row == 0)
        await pilot.press("G")
        await wait_for(pilot, lambda: journey.cursor_row == last)
        assert page < last

        # d and Enter both show the delivery under the cursor.
        wanted = int(journey.key_of() or 0)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="d: the details")
        assert app.screen.delivery["id"] == wanted
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="Enter: the details")
        assert app.screen.delivery["id"] == int(journey.key_of(0) or 0)


async def test_the_layout_follows_a_resize(db_path: Path) -> None:
    write(db_path, [VIEW, CLOSE, TRANSACTION])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_reader(pilot, app)
        journey = screen.query_one("#journey", JourneyTable)
        await pilot.press("home")
        key = journey.key_of()
        assert "Created" not in list(journey.titles)
        await pilot.resize_terminal(*LARGE)
        await wait_for(pilot, lambda: "Created" in list(journey.titles), what="both times")
        assert journey.key_of() == key  # the cursor stayed on its step


async def test_a_repeated_delivery_is_said_in_the_summary(db_path: Path) -> None:
    write(db_path, [VIEW, CLOSE, CLOSE])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SMALL) as pilot:
        await open_reader(pilot, app)
        text = screen_text(app)
        # The counts count deliveries (two closes); the summary pairs one, and says why the other is left out.
        assert "■ close 2" in text and "1 view, 1 close:" in text and "1 repeated delivery" in text
        assert "dup of #2" in text
