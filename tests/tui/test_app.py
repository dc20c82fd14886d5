"""Pilot tests of the monitor app, fed by real HTTP deliveries to its own listener.

Every test waits on a condition (``wait_for``), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Input

from monitor import store
from monitor.queries import Row
from monitor.tui.app import MonitorApp
from monitor.tui.messages import RowsCommitted
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.help import HelpScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.reader import JourneyTable, ReaderScreen
from monitor.tui.screens.readers import ReadersScreen
from monitor.tui.widgets.event_table import EventTable
from monitor.writer import CommitNotice, Writer
from tests.helpers import (
    CLOSE,
    MALFORMED,
    PHONE,
    SIZE,
    SPEC_READER,
    TRANSACTION,
    VIEW,
    Live,
    event_row,
    gateway_body,
    screen_strips,
    screen_text,
    static_text,
    strip_text,
    unsafe_segments,
    wait_for,
)


def table_of(app: MonitorApp) -> EventTable:
    return app.main_screen.query_one(EventTable)


def status(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#statusline")


def row(table: EventTable, index: int) -> Row:
    found = table.row_at(index)
    assert found is not None, f"no row {index} of {table.total}"
    return found


def current(table: EventTable) -> Row:
    return row(table, table.cursor_row)


def journey_rows(app: MonitorApp) -> list[list[str]]:
    table = app.screen.query_one("#journey", JourneyTable)
    return [[str(value) for value in table.get_row_at(i)] for i in range(table.row_count)]


async def scrolled_text(pilot: Any, scroller_selector: str) -> str:
    """Every line of a scrolling container, page by page, as the user would see them."""
    app = pilot.app
    scroller = app.screen.query_one(scroller_selector)
    pages = []
    y = 0
    while True:
        scroller.scroll_to(y=y, animate=False, immediate=True)
        await pilot.pause()
        pages.append(screen_text(app))
        if y >= scroller.max_scroll_y:
            break
        y = min(y + max(scroller.size.height - 2, 1), scroller.max_scroll_y)
    return "\n".join(pages)


# -- live rows ------------------------------------------------------------------


async def test_a_row_appears_after_a_real_http_post(live: Live) -> None:
    messages: list[Any] = []
    async with live.run(message_hook=messages.append) as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: live.url in static_text(app, "#origin"), what="the URL in the header")
        assert table.total == 0
        assert "views 0" in static_text(app, "#counters")

        await live.post(VIEW)
        await wait_for(pilot, lambda: table.total == 1, what="the posted row")
        first = row(table, 0)
        assert first.event == "payment_gateway.view" and first.user_id == SPEC_READER
        await wait_for(pilot, lambda: "views 1" in static_text(app, "#counters"), what="the view counter")
        counters = static_text(app, "#counters")
        assert "closes 0" in counters and "readers 1" in counters
        assert "▶ view" in screen_text(app) and PHONE in screen_text(app)

        await live.post(CLOSE)
        await wait_for(pilot, lambda: table.total == 2, what="the close")
        await wait_for(pilot, lambda: "closes 1" in static_text(app, "#counters"), what="the close counter")
        assert "close rate 100%" in static_text(app, "#counters")
        assert "readers 1" in static_text(app, "#counters")
        assert row(table, 0).event == "payment_gateway.close"
        assert "PAYMENT_GATEWAY_CROSS_BTN" in screen_text(app)

    # Each commit woke the app (they came more than a redraw apart).
    assert len([m for m in messages if isinstance(m, RowsCommitted)]) == 2


async def test_follow_mode_keeps_the_view_when_the_user_moved_away(live: Live) -> None:
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        # More rows than the viewport holds, so the table scrolls.
        await asyncio.gather(
            *(
                live.post(gateway_body(user_id=f"reader-{i}", phone=f"90000{i:05d}", created_at=1709186668 + i))
                for i in range(60)
            )
        )
        await wait_for(pilot, lambda: table.total == 60, what="60 rows")

        # Following: a new row comes in at the top, under the cursor.
        await live.post(gateway_body(user_id="new-1"))
        await wait_for(pilot, lambda: table.total == 61, what="the 61st row")
        assert table.cursor_row == 0 and table.waiting == 0
        assert row(table, 0).user_id == "new-1"
        assert "following newest" in status(app)

        # One row down: the same row stays under the cursor.
        await pilot.press("down")
        await wait_for(pilot, lambda: table.cursor_row == 1)
        under_cursor = current(table).id
        await live.post(gateway_body(user_id="new-2"))
        await wait_for(pilot, lambda: table.total == 62, what="the 62nd row")
        assert table.cursor_row == 2 and current(table).id == under_cursor
        await wait_for(pilot, lambda: table.waiting == 1 and "↑ 1 new" in status(app), what="1 waiting")

        # Far down (scrolled): neither the cursor nor the viewport moves.
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == 61 and table.scroll_offset.y > 0, what="scrolled to the end")
        under_cursor = current(table).id
        top = table.scroll_offset.y
        top_id = row(table, top).id
        first_line = strip_text(table.render_line(0))
        for i in range(2):
            await live.post(gateway_body(user_id=f"late-{i}"))
        await wait_for(pilot, lambda: table.total == 64, what="two more rows")
        await pilot.pause()
        assert current(table).id == under_cursor
        assert table.scroll_offset.y == top + 2
        assert row(table, table.scroll_offset.y).id == top_id
        assert strip_text(table.render_line(0)) == first_line
        assert table.waiting == 3
        await wait_for(pilot, lambda: "↑ 3 new" in status(app), what="the waiting count in the status line")

        # Home: back to the newest, following again.
        await pilot.press("home")
        await wait_for(pilot, lambda: table.waiting == 0 and table.cursor_row == 0, what="following again")
        assert table.scroll_offset.y == 0
        assert row(table, 0).user_id == "late-1"
        assert "new" not in status(app).replace("following newest", "")
        await live.post(gateway_body(user_id="new-3"))
        await wait_for(pilot, lambda: table.total == 65)
        assert table.cursor_row == 0 and row(table, 0).user_id == "new-3"


async def test_filter(live: Live) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        box = app.main_screen.query_one("#filter", Input)
        await wait_for(pilot, lambda: table.total == 2)

        await pilot.press("slash")
        await wait_for(pilot, lambda: box.display and box.has_focus, what="the filter box")
        await pilot.press(*"event:close", "enter")
        await wait_for(pilot, lambda: table.total == 1 and not box.display, what="the filtered view")
        assert row(table, 0).event == "payment_gateway.close"
        assert "filter event:close" in status(app)
        assert "▶ view" not in screen_text(app)

        # A bad filter says what is wrong and changes nothing, even on Enter.
        await pilot.press("slash")
        await wait_for(pilot, lambda: box.has_focus)
        for bad, message, at in (("foo:bar", "unknown field 'foo'", 0), ('x "open', "unterminated quote", 2)):
            await pilot.press("ctrl+a", "ctrl+k", *bad)  # home, delete to the end, type
            # Each predicate is awaited within its iteration: the loop variables cannot change under it.
            await wait_for(pilot, lambda: box.value == bad)  # noqa: B023
            await wait_for(pilot, lambda: message in status(app), what=f"the error {message!r}")  # noqa: B023
            assert status(app).lstrip().startswith("✗") and box.has_class("-bad-filter")
            await pilot.press("enter")
            await pilot.pause()
            assert box.display and box.has_class("-bad-filter")
            assert box.cursor_position == at  # the cursor goes to the mistake
            assert app.main_screen.filter_text == "event:close" and table.total == 1

        # Escape clears the filter (and the error).
        await pilot.press("escape")
        await wait_for(pilot, lambda: not box.display and table.total == 2, what="the cleared filter")
        assert app.main_screen.filter_text == ""
        assert "✗" not in status(app) and "filter" not in status(app)

        # Free text runs (as SQL) over the text columns too.
        await pilot.press("slash", *"cross", "enter")
        await wait_for(pilot, lambda: app.main_screen.filter_text == "cross" and table.total == 1)
        assert row(table, 0).click_action == "PAYMENT_GATEWAY_CROSS_BTN"
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.total == 2)


async def test_escape_on_an_invalid_filter_clears_the_error(live: Live) -> None:
    async with live.run() as pilot:
        app = live.app
        box = app.main_screen.query_one("#filter", Input)
        await pilot.press("slash", *"foo:bar")
        await wait_for(pilot, lambda: "✗" in status(app), what="the error")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not box.display)
        assert "✗" not in status(app) and "GATEWAY" in status(app)
        assert not box.has_class("-bad-filter")


async def test_toggle_between_gateway_and_all_events(live: Live) -> None:
    await live.post(VIEW)
    await live.post(TRANSACTION)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 1, what="the gateway view")
        assert "GATEWAY" in status(app)

        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 2, what="every event")
        assert "ALL EVENTS" in status(app)
        assert {row(table, i).event for i in range(2)} == {"payment_gateway.view", "transaction.complete"}
        # A malformed delivery arrives while showing all: a rejected row.
        await live.post(MALFORMED, expect=400)
        await wait_for(pilot, lambda: table.total == 3, what="the rejected row")
        rejected = row(table, 0)
        assert rejected.source == "rejected" and rejected.status == 400
        assert "✗ 400 rejected" in screen_text(app)
        assert "transaction.complete" in screen_text(app)
        await wait_for(pilot, lambda: "rejected 1" in static_text(app, "#counters"))
        assert "other 1" in static_text(app, "#counters")

        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 1, what="gateway again")
        assert "GATEWAY" in status(app) and "rejected" not in screen_text(app).split("\n", 3)[3]
        # In gateway mode neither other events nor rejections are counted as new rows.
        await live.post(TRANSACTION.replace(b'"transaction.complete"', b'"transaction.failed"'))
        await live.post(MALFORMED, expect=400)
        await live.post(CLOSE)
        await wait_for(pilot, lambda: table.total == 2, what="the close")
        await wait_for(pilot, lambda: "rejected 2" in static_text(app, "#counters"))
        assert table.total == 2


async def test_a_late_notice_for_rows_already_counted_changes_nothing(live: Live) -> None:
    """The writer answers a delivery before it tells the app: a reload in between has counted the row."""
    answer = await live.post(VIEW)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 1 and "views 1" in static_text(app, "#counters"))
        light = {"id": answer["id"], "event": "payment_gateway.view", "user_id": SPEC_READER, "received_at": 1.0}
        app.notify_commit(CommitNotice([answer["id"]], [], [light], []))
        await live.post(CLOSE)  # a new row after it, so we know the notice was handled
        await wait_for(pilot, lambda: table.total >= 2, what="the close")
        await wait_for(pilot, lambda: "closes 1" in static_text(app, "#counters"))
        assert table.total == 2 and table.waiting == 0
        assert "views 1" in static_text(app, "#counters")


# -- drill-down -------------------------------------------------------------------


def assert_spec_journey(app: MonitorApp) -> None:
    assert isinstance(app.screen, ReaderScreen) and app.screen.data.user_id == SPEC_READER
    rows = journey_rows(app)
    view = next(r for r in rows if "view" in r[1])
    close = next(r for r in rows if "close" in r[1])
    assert "150s" in view and "closed" in view
    # The view shows its close's action, marked as the close's.
    assert "→ PAYMENT_GATEWAY_CROSS_BTN" in view and "PAYMENT_GATEWAY_CROSS_BTN" in close
    text = screen_text(app)
    assert "150s" in text and "PAYMENT_GATEWAY_CROSS_BTN" in text and "closed" in text
    assert "1 view, 1 close" in text


async def test_drill_down_pairs_the_spec_view_and_close(live: Live) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 2)

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="the drill-down")
        await pilot.pause()
        assert_spec_journey(app)

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="the main screen")

        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen), what="the readers list")
        await pilot.pause()
        readers = app.screen.query_one(DataTable)
        assert readers.row_count == 1 and SPEC_READER in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="the drill-down from the list")
        await pilot.pause()
        assert_spec_journey(app)

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_double_click_opens_the_drill_down(live: Live) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 2)
        # Line 0 is the table's column header; row 1 is on line 2.
        await pilot.click(EventTable, offset=(30, 2))
        await wait_for(pilot, lambda: table.cursor_row == 1, what="the clicked row under the cursor")
        await pilot.click(EventTable, offset=(30, 2), times=2)
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="the drill-down")


# -- masking and untrusted text -------------------------------------------------------


async def test_masking_hides_phone_numbers_on_every_screen(live: Live) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 2)
        assert PHONE in screen_text(app)

        await pilot.press("m")
        await wait_for(pilot, lambda: PHONE not in screen_text(app), what="the phone masked")
        assert "PII masked" in status(app)
        assert not any(PHONE in strip_text(table.render_line(y)) for y in range(table.size.height))

        await pilot.press("m")
        await wait_for(pilot, lambda: PHONE in screen_text(app), what="the phone shown again")
        assert "PII masked" not in status(app)

        # Masked in the drill-down, and the key works there too.
        await pilot.press("m", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.pause()
        assert PHONE not in screen_text(app) and "new delhi" not in screen_text(app)
        assert "150s" in screen_text(app)
        await pilot.press("m")
        await wait_for(pilot, lambda: PHONE in screen_text(app), what="the phone in the drill-down")
        assert "new delhi" in screen_text(app)
        await pilot.press("m", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))

        # The readers list and the detail view (the body too) are masked.
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen))
        await pilot.pause()
        assert PHONE not in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        everything = await scrolled_text(pilot, "#detail")
        assert "phone_number" in everything and '"phoneNumber"' in everything
        assert PHONE not in everything and "new delhi" not in everything


async def test_untrusted_text_is_shown_literally_and_inert(live: Live) -> None:
    names = {
        "osc": "\u001b]0;pwn\u0007bell",
        "bold": "[bold red]hi",
        "click": "[@click=app.quit]x[/]",
    }
    for i, (user, name) in enumerate(names.items()):
        await live.post(gateway_body(user_id=user, name=name, phone=f"91000000{i:02d}"))
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 3)
        text = screen_text(app)
        # The reader column is 18 cells wide: the 21-character name is cut, not interpreted.
        assert "[@click=app.quit]x" in text
        assert "[bold red]hi" in text
        assert "␛]0;pwn␇bell" in text
        table_strips = [table.render_line(y) for y in range(table.size.height)]
        assert unsafe_segments(table_strips) == []
        assert unsafe_segments(screen_strips(app)) == []

        # Clicking on the "link" selects the row and does nothing else.
        await pilot.click(EventTable, offset=(27, 0))
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, MainScreen)

        for index, literal in ((0, "[@click=app.quit]x[/]"), (1, "[bold red]hi"), (2, "␛]0;pwn␇bell")):
            await pilot.press("home", *["down"] * index, "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what=f"the reader {literal!r}")
            await pilot.pause()
            assert literal in screen_text(app)
            assert unsafe_segments(screen_strips(app)) == []
            await pilot.click("#reader-title", offset=(10, 0))
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))

        # The readers list and the detail view show the full names, inert.
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen))
        await pilot.pause()
        text = screen_text(app)
        assert all(literal in text for literal in ("[@click=app.quit]x[/]", "[bold red]hi", "␛]0;pwn␇bell"))
        assert unsafe_segments(screen_strips(app)) == []
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("home", "down", "down", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        assert "␛]0;pwn␇bell" in await scrolled_text(pilot, "#detail")
        assert unsafe_segments(screen_strips(app)) == []
        assert app.is_running


# -- detail, help, quit ------------------------------------------------------------------


async def test_detail_view_shows_headers_body_and_the_bytes_of_a_rejection(live: Live) -> None:
    await live.post(VIEW)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 1)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail view")
        await pilot.pause()
        text = await scrolled_text(pilot, "#detail")
        assert "Delivery #1" in text and "payment_gateway.view" in text
        assert "Headers" in text and "Content-Type" in text and "application/json" in text
        assert f"Body ({len(VIEW):,} bytes)" in text
        assert '  "event": "payment_gateway.view",' in text  # pretty-printed
        assert '      "contentId": "Client-Story-Id-2"' in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))

        await pilot.press("a")
        await live.post(MALFORMED, expect=400)
        await wait_for(pilot, lambda: table.total == 2 and row(table, 0).source == "rejected")
        await pilot.press("home", "enter")  # Enter on a rejection opens its details
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the rejection's details")
        await pilot.pause()
        text = await scrolled_text(pilot, "#detail")
        assert "Rejected delivery #1" in text and "HTTP 400" in text and "not valid UTF-8" in text
        assert '00000000  7b 22 65 76 65 6e 74 22 3a 20 22 70 61 79 6d 65  {"event": "payme' in text
        assert "ff fe" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_help_opens_and_closes(live: Live) -> None:
    async with live.run() as pilot:
        app = live.app
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        await pilot.pause()
        text = screen_text(app)
        assert "mask phones" in text and "checks: what is wrong" in text
        await pilot.press("end")  # the filter language follows the keys
        await wait_for(pilot, lambda: "Filter language" in screen_text(app), what="the filter language")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.is_running


async def test_q_quits_and_closes_the_session(live: Live) -> None:
    await live.post(VIEW)
    async with live.run() as pilot:
        app = live.app
        await wait_for(pilot, lambda: table_of(app).total == 1)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    live.service.stop_thread()
    conn = sqlite3.connect(live.db_path)
    try:
        ((ended_at, events),) = conn.execute(
            "SELECT ended_at, (SELECT count(*) FROM events WHERE session_id = s.id) FROM sessions s WHERE id = ?",
            [live.service.session_id],
        ).fetchall()
    finally:
        conn.close()
    assert ended_at is not None and events == 1


# -- offline review ---------------------------------------------------------------------


async def test_offline_review_shows_every_session(tmp_path: Path) -> None:
    db_path = tmp_path / "offline.db"
    db = store.open_store(db_path)
    sessions = [store.start_session(db, listen=None, mode="test") for _ in range(2)]
    db.close()
    writer = Writer(db_path)
    writer.start()
    try:
        bodies = [VIEW, CLOSE, TRANSACTION]
        ids = await asyncio.gather(
            *(
                writer.submit("events", event_row(body, session_id=sessions[i % 2], received_at=1709186700.0 + i))
                for i, body in enumerate(bodies)
            )
        )
    finally:
        await asyncio.to_thread(writer.stop)
    assert sorted(ids) == [1, 2, 3]

    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SIZE) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 2, what="both gateway rows")
        assert [row(table, i).event for i in range(2)] == ["payment_gateway.close", "payment_gateway.view"]
        await wait_for(pilot, lambda: "views 1" in static_text(app, "#counters"), what="the counters")
        assert "Offline review" in static_text(app, "#origin") and "all sessions" in static_text(app, "#origin")
        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 3, what="every event")
        await pilot.press("end", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen))
        await pilot.pause()
        assert_spec_journey(app)  # the pair spans two sessions: offline review shows all of them
        await pilot.press("escape", "q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_the_palette_names_the_help_once(live: Live) -> None:
    """Textual's own "Keys" panel is replaced by the help screen: one entry, not two."""
    async with live.run() as pilot:
        app = live.app
        titles = [command.title for command in app.get_system_commands(app.screen)]
        await pilot.pause()
    assert titles.count("Keys and filter help") == 1
    assert "Keys" not in titles


async def test_the_palette_copies_the_webhook_url(live: Live) -> None:
    """The live monitor's palette has the `c` key's command: the URL to paste into Conscent."""
    async with live.run() as pilot:
        app = live.app
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
        commands["Copy webhook URL"].callback()
        await pilot.pause()
    assert copied == [live.url]
