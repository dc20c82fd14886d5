"""The readers list and the sessions list: live, filterable, the main table's keys, at 80x24 and 160x48.

Issue 12, items 6, 10 and 12: the readers list picks up readers and counts
committed after it opened (by another process in offline review, by the
listener in a live monitor) with the cursor kept on its reader; ``/``
filters it with the main table's language and Esc clears; End reads more
than the first page; numbers are formatted; the footers say what Enter
opens. Every wait is on a condition.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from monitor import store
from monitor.tui.app import MonitorApp
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.reader import ReaderScreen
from monitor.tui.screens.readers import PAGE, ReadersScreen, ReadersTable
from monitor.tui.screens.sessions import SessionsScreen, SessionsTable
from tests.helpers import Live, event_row, gateway_body, screen_text, wait_for

SMALL, LARGE = (80, 24), (160, 48)
START = 1764490000.0


def add_views(db_path: Path, users: list[str], *, start: float = START, name: str = "") -> None:
    """One gateway view per reader, a second apart, in a session of their own (committed by this connection)."""
    db = store.open_store(db_path)
    try:
        session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
        rows = [
            event_row(
                gateway_body(user_id=user, name=name or f"Name {user}", phone=f"9{i:09d}"),
                session_id=session_id,
                received_at=start + i,
            )
            for i, user in enumerate(users)
        ]
        store.write_batch(db.conn, rows, [])
        store.end_session(db, session_id)
    finally:
        db.close()


def readers_table(app: MonitorApp) -> ReadersTable:
    return app.screen.query_one("#readers", ReadersTable)


def listed(app: MonitorApp) -> list[str]:
    table = readers_table(app)
    return [str(table.key_of(i)) for i in range(table.row_count)]


async def open_readers(pilot: Any, app: MonitorApp) -> ReadersTable:
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.main_screen.table.total > 0)
    await pilot.press("u")
    await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen), what="the readers list")
    await wait_for(pilot, lambda: readers_table(app).row_count > 0, what="its rows")
    return readers_table(app)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
async def test_the_list_picks_up_rows_another_process_commits(db_path: Path, size: tuple[int, int]) -> None:
    add_views(db_path, ["r1", "r2", "r3"])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        table = await open_readers(pilot, app)
        assert listed(app) == ["r3", "r2", "r1"]  # most recently seen first
        await pilot.press("down")
        await wait_for(pilot, lambda: table.key_of() == "r2")
        text = screen_text(app)
        assert "3 readers" in text and "⏎ Reader" in text.splitlines()[-1]
        for title in ("Reader", "Last seen", "Events", "Views", "Closes", "Phone"):
            assert title in text
        assert ("Email" in text) == (size == LARGE)

        # Another connection (as another process would) adds a reader and a view of r1.
        add_views(db_path, ["r4", "r1"], start=START + 100)
        await wait_for(pilot, lambda: listed(app)[:2] == ["r1", "r4"], what="the new rows in the list")
        assert table.key_of() == "r2", "the cursor stayed on its reader"
        assert "4 readers" in screen_text(app)
        row = table.get_row(table.key_of(0))
        assert [str(row[i]) for i in (2, 3)] == ["2", "2"]  # r1: 2 events, 2 views


async def test_a_live_monitor_adds_readers_while_the_list_is_open(live: Live) -> None:
    await live.post(gateway_body(user_id="first", name="First Reader"))
    async with live.run() as pilot:
        app = live.app
        await open_readers(pilot, app)
        assert listed(app) == ["first"]
        await live.post(gateway_body(user_id="second", name="Second Reader", phone="9000000002"))
        await wait_for(pilot, lambda: listed(app) == ["second", "first"], what="the live reader")
        assert "Second Reader" in screen_text(app)


async def test_the_filter_finds_readers_by_name_phone_or_id_and_esc_clears_it(db_path: Path) -> None:
    add_views(db_path, ["aa11", "bb22"], name="")
    add_views(db_path, ["cc33"], start=START + 50, name="Zoya Siddiqui")
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SMALL) as pilot:
        table = await open_readers(pilot, app)
        assert len(listed(app)) == 3
        # Typed as one burst right after "/": every key goes to the box.
        await pilot.press("slash", *"zoya", "enter")
        await wait_for(pilot, lambda: listed(app) == ["cc33"], what="the name's reader")
        assert "1 reader matching zoya" in screen_text(app)
        assert table.has_focus

        await pilot.press("slash", *["backspace"] * 4, *"user:bb22", "enter")
        await wait_for(pilot, lambda: listed(app) == ["bb22"], what="a user id")

        # A filter the language refuses: said whole, nothing changes until it is fixed.
        await pilot.press("slash", *["backspace"] * 9, *"foo:ba", "enter")
        await wait_for(pilot, lambda: "unknown field 'foo'" in screen_text(app), what="the error")
        assert listed(app) == ["bb22"]

        await pilot.press(*["backspace"] * 6, *"nobody", "enter")
        await wait_for(pilot, lambda: listed(app) == [], what="no reader")
        assert "No reader matches nobody · Esc clears the filter" in screen_text(app)

        await pilot.press("escape")
        await wait_for(pilot, lambda: len(listed(app)) == 3, what="every reader again")
        assert "unknown field" not in screen_text(app) and "matching" not in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="back to the main table")


async def test_keys_enter_d_and_end_for_more(db_path: Path) -> None:
    users = [f"u{i:04d}" for i in range(PAGE + 20)]
    add_views(db_path, users)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SMALL) as pilot:
        table = await open_readers(pilot, app)
        assert table.row_count == PAGE
        assert f"{PAGE + 20:,} readers" in screen_text(app) and "End: more" in screen_text(app)
        await pilot.press("end")
        await wait_for(pilot, lambda: table.row_count == PAGE + 20, what="the next page")
        assert table.key_of() == "u0020", "the cursor stayed on the reader End reached"
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == PAGE + 19, what="End: the last reader")
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor_row == 0)

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="d: the reader's latest delivery")
        assert app.screen.delivery["user_id"] == users[-1]  # type: ignore[attr-defined]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="Enter: the drill-down")
        assert app.screen.data.user_id == users[-1]  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
async def test_the_sessions_list_has_the_same_keys(db_path: Path, size: tuple[int, int]) -> None:
    for n in range(3):
        add_views(db_path, [f"s{n}-{i}" for i in range(1000 + n)], start=START + 10_000 * n)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.main_screen.table.total > 0)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions")
        table = app.screen.query_one("#sessions", SessionsTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        text = screen_text(app)
        assert "3 sessions" in text and "⏎ Review" in text.splitlines()[-1]
        assert "1,002" in text and "1,000" in text  # numbers formatted
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == 3, what="End: the last session")
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor_row == 0, what="Home: the first row")
        await pilot.press("d")  # a session is no delivery: nothing opens
        await pilot.pause()
        assert isinstance(app.screen, SessionsScreen)


@pytest.mark.parametrize("key", ["u", "s"], ids=["readers", "sessions"])
async def test_a_resize_redraws_the_lists_whole(db_path: Path, key: str) -> None:
    """From 160 to 80 columns: the columns change order (sessions) or drop (the readers' email), cells drawn whole."""
    add_views(db_path, ["wide-reader"])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=LARGE) as pilot:
        await wait_for(pilot, lambda: app.main_screen.table.total > 0)
        await pilot.press(key)
        await wait_for(pilot, lambda: not isinstance(app.screen, MainScreen), what="the list")
        await pilot.pause()
        assert "Email" in screen_text(app) or key == "s"
        await pilot.resize_terminal(*SMALL)
        if key == "u":
            await wait_for(pilot, lambda: "Email" not in screen_text(app), what="the email dropped")
            await wait_for(pilot, lambda: "Name wide-reader" in screen_text(app), what="the name whole")
        else:
            await wait_for(pilot, lambda: "Started              Events" in screen_text(app), what="counts first")
            started = re.compile(r"#1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +1 ")
            await wait_for(pilot, lambda: started.search(screen_text(app)), what="the cells whole")


async def test_readers_from_the_palette_over_a_drill_down_opened_from_the_list(db_path: Path) -> None:
    add_views(db_path, ["p1", "p2"])
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SMALL) as pilot:
        await open_readers(pilot, app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="the drill-down")
        app.action_open_readers()  # what the palette's "Readers" runs
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen), what="a readers list on top")
        await wait_for(pilot, lambda: listed(app) == ["p2", "p1"])
