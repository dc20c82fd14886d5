"""The main screen tells the truth, at 80x24 and 160x48 (issue 12, items 3, 4, 6, 8, 9, 11).

A filter error stays, whole, until the text changes; the status line says
where the cursor is and whether it follows; numbers and plurals come from
``monitor.wording``; ``r`` is offered only where it can replay; an empty
table says how to get a first row; keys typed right after ``/`` belong to
the filter box, however fast they come (Pilot bursts and a real terminal).
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.widgets import Input

from monitor import store
from monitor.tui.app import MonitorApp
from monitor.tui.messages import OpenDelivery, OpenReader
from monitor.tui.screens.main import try_curl
from monitor.tui.widgets.event_table import EventTable
from tests.helpers import (
    CLOSE,
    MALFORMED,
    VIEW,
    Live,
    Tmux,
    event_row,
    gateway_body,
    program,
    rejected_row,
    screen_text,
    static_text,
    wait_for,
)

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def table_of(app: MonitorApp) -> EventTable:
    return app.main_screen.query_one(EventTable)


def status(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#statusline")


def hint(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#empty-hint")


def offline_db(path: Path, count: int, *, rejected: int = 0) -> Path:
    """A recorded session of ``count`` gateway views (and ``rejected`` refused bodies), for offline review."""
    db = store.open_store(path)
    session = store.start_session(db, listen="http://127.0.0.1:8787/", mode="test")
    rows = [
        event_row(gateway_body(user_id=f"reader-{i}"), session_id=session, received_at=1709186668.0 + i)
        for i in range(count)
    ]
    store.write_batch(db.conn, rows, [rejected_row(MALFORMED, session_id=session) for _ in range(rejected)])
    store.end_session(db, session)
    db.close()
    return path


# -- item 3: a filter error stays, whole -------------------------------------------------------


@SIZES
async def test_a_filter_error_stays_whole_until_the_text_changes(live: Live, size: tuple[int, int]) -> None:
    await live.post(VIEW)
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 1)
        await pilot.press("slash", *"foo:ba")
        await wait_for(pilot, lambda: "unknown field 'foo'" in status(app), what="the error")
        message = status(app)
        assert message.startswith("✗ unknown field 'foo' (known: ") and message.endswith("(at column 1)")
        # Refreshes of the status line (a delivery, the timers) leave it alone.
        for body in (CLOSE, gateway_body(user_id="another")):
            await live.post(body)
        await wait_for(pilot, lambda: table.total == 3, what="two more rows")
        await pilot.pause(0.6)  # more than one status refresh (the health check and the ticks)
        assert status(app) == message
        # Shown whole: every word of it is on the screen, however narrow.
        shown = " ".join(screen_text(app).split())
        assert " ".join(message.split()) in shown
        # The text changes: the error goes (or says the new text's).
        await pilot.press("backspace", "backspace", "backspace", "backspace", "backspace", "backspace")
        await wait_for(pilot, lambda: "✗" not in status(app), what="the error gone")
        assert "GATEWAY" in status(app)
        await pilot.press(*"foo:")
        await wait_for(pilot, lambda: "✗" in status(app))
        await pilot.press("escape")
        await wait_for(pilot, lambda: "✗" not in status(app) and "row 1 of 3" in status(app), what="Esc clears")


# -- items 4 and 6: where the cursor is, whether it follows; worded numbers ---------------------


@SIZES
async def test_end_in_offline_review_says_where_the_cursor_is(tmp_path: Path, size: tuple[int, int]) -> None:
    app = MonitorApp(offline_db(tmp_path / "review.db", 1234))
    async with app.run_test(size=size) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 1234)
        await wait_for(pilot, lambda: "row 1 of 1,234" in status(app) and "following newest" in status(app))
        await pilot.press("end")
        await wait_for(pilot, lambda: "row 1,234 of 1,234" in status(app), what="the last row")
        assert "following newest" not in status(app) and "not following" in status(app)
        await pilot.press("home")
        await wait_for(pilot, lambda: "row 1 of 1,234" in status(app) and "following newest" in status(app))
        # The header counts with the same separators.
        await wait_for(pilot, lambda: "views 1,234" in static_text(app.main_screen, "#counters"))


@SIZES
async def test_moving_down_in_a_quiet_live_monitor_stops_following(live: Live, size: tuple[int, int]) -> None:
    for i in range(8):
        await live.post(gateway_body(user_id=f"quiet-{i}"))
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 8)
        await wait_for(pilot, lambda: "row 1 of 8" in status(app) and "following newest" in status(app))
        await pilot.press(*["down"] * 5)
        await wait_for(pilot, lambda: "row 6 of 8" in status(app), what="row 6")
        assert "following newest" not in status(app) and "not following" in status(app)
        await live.post(gateway_body(user_id="new-one"))
        await wait_for(pilot, lambda: "↑ 1 new row" in status(app), what="one waiting row, singular")
        assert "row 7 of 9" in status(app)
        await pilot.press("home")
        await wait_for(pilot, lambda: "row 1 of 9" in status(app) and "following newest" in status(app))


async def test_one_row_is_worded_as_one(live: Live) -> None:
    await live.post(VIEW)
    async with live.run() as pilot:
        app = live.app
        await wait_for(pilot, lambda: "row 1 of 1" in status(app))
        assert "rows" not in status(app)
        await pilot.press("slash", *"event:close", "enter")
        await wait_for(pilot, lambda: "0 rows" in status(app), what="no row for the filter")


# -- item 8: r only where it can replay ---------------------------------------------------------


@SIZES
async def test_replay_is_offered_only_on_an_accepted_row_of_the_live_monitor(live: Live, size: tuple[int, int]) -> None:
    await live.post(VIEW)
    await live.post(MALFORMED, expect=400)
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        screen = app.main_screen
        table = table_of(app)
        await pilot.press("a")  # every event and rejection: the rejection is the newest
        await wait_for(pilot, lambda: table.total == 2 and table.current is not None)
        assert table.current is not None and table.current.source == "rejected"

        def replay_action() -> str:
            return screen.active_bindings["r"].binding.action

        await wait_for(pilot, lambda: replay_action() == "replay_unavailable", what="r hidden on a rejection")
        assert "r Replay" not in screen_text(app).splitlines()[-1]
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any("cannot be replayed" in n.message for n in app._notifications),
            what="why r does nothing here",
        )
        await pilot.press("down")
        await wait_for(pilot, lambda: replay_action() == "replay", what="r offered on an accepted row")
        if size[0] >= 160:
            await wait_for(pilot, lambda: "r Replay" in screen_text(app).splitlines()[-1], what="r in the footer")


async def test_replay_is_not_offered_in_offline_review(tmp_path: Path) -> None:
    app = MonitorApp(offline_db(tmp_path / "review.db", 2))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: table_of(app).total == 2)
        await pilot.pause()
        assert app.main_screen.active_bindings["r"].binding.action == "replay_unavailable"
        assert "Replay" not in screen_text(app).splitlines()[-1]


# -- item 9: an empty table says how to fill it ------------------------------------------------


@SIZES
async def test_an_empty_live_table_shows_the_url_and_a_curl_that_works(live: Live, size: tuple[int, int]) -> None:
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        await wait_for(pilot, lambda: live.url in hint(app), what="the hint with the URL")
        text = hint(app)
        assert "Waiting for the first delivery" in text and "curl -sS" in text
        assert app.main_screen.query_one("#empty-hint").display
        shown = screen_text(app)
        assert "curl -sS -H 'Content-Type: application/json'" in shown and live.url in shown
        # The command on the screen is a real one: the shell joins its lines, the listener records it.
        command = text[text.index("curl -sS") :].split("\n\n")[0]
        assert command == try_curl(live.url, width=app.main_screen.size.width - 6)
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        done = await asyncio.to_thread(
            subprocess.run, ["sh", "-c", command], capture_output=True, text=True, timeout=20
        )
        assert done.returncode == 0 and '"ok":true' in done.stdout, done
        await wait_for(pilot, lambda: table_of(app).total == 1, what="the curl's row")
        await wait_for(pilot, lambda: not app.main_screen.query_one("#empty-hint").display, what="the hint gone")
        assert table_of(app).current is not None and table_of(app).current.user_id == "curl-test"


async def test_an_empty_view_says_why(tmp_path: Path, live: Live) -> None:
    app = MonitorApp(offline_db(tmp_path / "empty.db", 0))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "No deliveries in this database" in hint(app))
        assert "conscent-monitor watch --db" in hint(app) and "curl" not in hint(app)
    async with live.run() as pilot:
        app = live.app
        await live.post(b'{"event": "transaction.complete", "user_id": "t-1"}')
        await wait_for(pilot, lambda: "No views or closes yet (1 other event, 0 rejections)" in hint(app))
        await pilot.press("a")
        await wait_for(pilot, lambda: table_of(app).total == 1 and not app.main_screen.query_one("#empty-hint").display)
        await pilot.press("slash", *"user:nobody", "enter")
        await wait_for(pilot, lambda: "No delivery matches the filter user:nobody" in hint(app))


# -- item 11: keys typed after "/" belong to the box --------------------------------------------

BURST = "dup:no"


def burst(app: MonitorApp, keys: list[str]) -> None:
    """Hand ``keys`` to the app the way its terminal driver does, all at once (Pilot's ``press`` waits between keys)."""
    driver = app._driver
    assert driver is not None
    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        try:
            character: str | None = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
        except KeyError:
            character = key if len(key) == 1 else None
        event = events.Key(key, character)
        event.set_sender(app)
        driver.send_message(event)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_a_burst_after_slash_goes_to_the_filter_box(live: Live, size: tuple[int, int]) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    opened: list[Any] = []

    def hook(message: Any) -> None:
        if isinstance(message, (OpenDelivery, OpenReader)):
            opened.append(message)

    async with live.app.run_test(size=size, message_hook=hook) as pilot:
        app = live.app
        screen = app.main_screen
        box = screen.query_one("#filter", Input)
        await wait_for(pilot, lambda: table_of(app).total == 2)
        for attempt in range(50):
            # As a terminal delivers a paste or a fast typist: every key queued before the first is handled.
            burst(app, ["/", *BURST])
            await wait_for(pilot, lambda: box.value == BURST, what=f"the text in the box (attempt {attempt})")
            assert app.screen is screen and not opened, (attempt, opened)
            assert screen.focused is box and box.cursor_position == len(BURST)
            burst(app, ["escape"])
            await wait_for(pilot, lambda: not box.display and screen.focused is table_of(app), what="closed")
            box.value = ""


# -- the same in a real terminal ------------------------------------------------------------------


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_slash_and_a_burst_in_tmux(tmp_path: Path, tmux: Tmux, size: tuple[int, int]) -> None:
    db_path = offline_db(tmp_path / "burst.db", 3)
    tmux.start(shlex.join([*program(), "open", str(db_path)]), size)
    tmux.wait_for(lambda s: "row 1 of 3" in s, "the main screen")
    for attempt in range(5):
        tmux.keys("/" + BURST)  # one send-keys: the terminal gets the seven bytes at once
        screen = tmux.wait_for(lambda s: "dup:no" in s and "esc" in s.splitlines()[-1], f"the box (attempt {attempt})")
        assert "Details" not in screen.splitlines()[0] and "Headers" not in screen, screen
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "filter dup:no" in s, "the filter applied")
        assert "row 1 of 3" in screen
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "filter dup:no" not in s and "row 1 of 3" in s, "the filter cleared")
    tmux.keys("q")
    assert "EXITED=0" in tmux.wait_for(lambda s: "EXITED=" in s, "the program to exit")
