"""The main table's layout: its own header line, column widths fitted to the screen, cut values.

Pure functions first (:func:`ellipsize`, :func:`fit_widths`: no Textual),
then the table alone in a small App at 80x24 and 160x48, then the real
monitor fed over HTTP.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.text import Text
from textual.app import App, ComposeResult

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.queries import Row
from monitor.tui.widgets.columns import (
    ALL_COLUMNS,
    COLUMN,
    GATEWAY_COLUMNS,
    Column,
    Look,
    ellipsize,
    fit,
    fit_widths,
    line_cells,
    natural_widths,
)
from monitor.tui.widgets.event_table import PAGE_SIZE, EventTable, table_bindings
from tests.helpers import Live, gateway_body, screen_text, strip_text, wait_for

STYLES = Path(__file__).resolve().parents[2] / "styles" / "app.tcss"
NOW = time.time()
LOOK = Look(today=time.strftime("%Y-%m-%d", time.localtime(NOW)), masked=False)
SIZES = [(80, 24), (160, 48)]

LONG_CONTENT = "budget-2024-explained-for-salaried-taxpayers-in-india"  # 53 cells: past Content's max


def delivery(i: int, **fields: Any) -> Row:
    """A gateway row shaped like the demo's: an e-mail as the reader, a long content id, a device."""
    row = Row(
        "event", i, NOW - i, NOW - i - 5.5,
        event=GATEWAY_CLOSE if i % 2 else GATEWAY_VIEW, user_id=f"u{i}", username=f"noah.muller{i % 90:02d}@gmail.com",
        phone_number="9892898898", content_id=f"monsoon-forecast-kerala-{i}", click_action="PAYMENT_GATEWAY_CROSS_BTN"
        if i % 2 else None, paywall_id="65e01bd8d03692125f1f353d8015b407", device_type="desktop",
        device_model="Macintosh", country="IN", signature="valid",
    )  # fmt: skip
    return replace(row, **fields)


REJECTED = Row("rejected", 500, NOW, status=400, reason="body is not JSON: unexpected character at line 1 column 44")


# -- ellipsis ----------------------------------------------------------------------------


def test_ellipsize_cuts_to_the_cell_width_and_ends_with_an_ellipsis() -> None:
    assert ellipsize("noah.muller64@gmail.com", 23) == "noah.muller64@gmail.com"
    assert ellipsize("noah.muller64@gmail.com", 18) == "noah.muller64@gma…"
    assert ellipsize("abc", 0) == ""
    assert ellipsize("abc", 1) == "…"
    assert ellipsize("a", 1) == "a"
    assert ellipsize("", 0) == ""
    assert fit("ab", 4) == "ab  " and fit("abcdef", 4) == "abc…"


def test_ellipsize_keeps_wide_characters_and_emoji_whole() -> None:
    assert ellipsize("日本語テキスト", 5) == "日本…"
    assert ellipsize("日本語テキスト", 4) == "日…"  # "日本" and the ellipsis would take 5
    assert fit("日本語テキスト", 4) == "日… "
    family = "👨\u200d👩\u200d👧"  # one grapheme, two cells
    assert ellipsize(family, 2) == family
    assert ellipsize(f"x{family}y", 3) == "x…"  # never half a ZWJ sequence
    assert ellipsize(f"{family}{family}", 3) == f"{family}…"
    assert ellipsize("👍🏽👍🏽", 3) == "👍🏽…"  # the skin tone stays with its hand
    assert ellipsize("🇮🇳 India", 2) == "…"
    for text in ("日本語テキスト", f"a{family}b👍🏽c🇮🇳d", "❤️❤️❤️", "e\u0301e\u0301e\u0301"):
        for width in range(1, cell_len(text) + 2):
            short = ellipsize(text, width)
            assert cell_len(short) <= width
            assert short == text or short.endswith("…")
            assert cell_len(fit(text, width)) == width


# -- width distribution --------------------------------------------------------------------


def cols(*limits: tuple[int, int]) -> tuple[Column, ...]:
    return tuple(Column(f"c{i}", f"c{i}", COLUMN["time"].render, low, high) for i, (low, high) in enumerate(limits))


def test_every_column_whole_when_the_screen_has_room() -> None:
    columns = cols((8, 14), (7, 8), (10, 24), (10, 24))
    assert fit_widths(columns, [8, 7, 23, 17], 156) == (8, 7, 23, 17)
    # Past max_width, but the screen has room: whole all the same.
    assert fit_widths(columns, [8, 7, 23, 53], 156) == (8, 7, 23, 53)
    # Under min_width: the minimum (a header over blank values still reads).
    assert fit_widths(columns, [8, 7, 0, 3], 156) == (8, 7, 10, 10)


def test_the_first_columns_come_whole_and_the_rest_behind_the_scroll() -> None:
    columns = cols((8, 14), (7, 8), (10, 24), (10, 24), (8, 26), (5, 9), (3, 3))
    naturals = [8, 7, 23, 26, 25, 7, 3]
    widths = fit_widths(columns, naturals, 76)
    # Time, event, reader whole; content capped at 24; the action takes the rest of the
    # screen (76 - 8 - 7 - 23 - 24 - 4 gaps = 10) and ends with "…"; the rest off screen, whole.
    assert widths == (8, 7, 23, 24, 10, 7, 3)
    assert sum(widths[:5]) + 4 == 76
    # A screen where the next column cannot have its minimum: the room goes to a column it cuts.
    widths = fit_widths(columns, naturals, 8 + 7 + 23 + 24 + 4 + 5)
    # Content whole (2 more, then the 4 no column needs), the action off screen.
    assert widths == (8, 7, 23, 30, 25, 7, 3)
    # ... and what no column needs pads the last one on screen: the next starts past the edge.
    widths = fit_widths(columns, [8, 7, 23, 20, 25, 7, 3], 8 + 7 + 23 + 20 + 3 + 7)
    assert widths == (8, 7, 23, 27, 25, 7, 3)
    assert sum(widths[:4]) + 3 == 8 + 7 + 23 + 20 + 3 + 7


def test_received_is_as_wide_as_its_text() -> None:
    today = natural_widths(GATEWAY_COLUMNS, [delivery(1)], LOOK)
    older = natural_widths(GATEWAY_COLUMNS, [delivery(1, received_at=NOW - 3 * 86400)], LOOK)
    assert today[0] == 8 and older[0] == 14
    assert fit_widths(GATEWAY_COLUMNS, today, 156)[0] == 8
    assert fit_widths(GATEWAY_COLUMNS, older, 76)[0] == 14


def test_a_rejected_reason_spans_the_blank_cells_after_it() -> None:
    widths = fit_widths(ALL_COLUMNS, natural_widths(ALL_COLUMNS, [delivery(1), REJECTED], LOOK), 76)
    columns = tuple(col.sized(width) for col, width in zip(ALL_COLUMNS, widths, strict=True))
    cells = line_cells(columns, REJECTED, LOOK)
    assert [text for text, _, _ in cells][1:] == ["✗ 400 rejected", REJECTED.reason]
    assert cells[-1][2] == sum(col.width + 1 for col in columns[2:]) - 1  # the rest of the line
    # On a screen narrower than the line, it stops at the edge (to end with "…" there).
    start = sum(col.width + 1 for col in columns[:2])
    assert line_cells(columns, REJECTED, LOOK, start + 30)[-1][2] == 30
    assert line_cells(columns, REJECTED, LOOK, start + 5)[-1][2] == columns[2].width  # never under its own
    # The reason did not widen the reader column: it needs no room of its own.
    assert columns[2].width == cell_len("noah.muller01@gmail.com")


def test_the_bindings_other_tables_can_share() -> None:
    keys = {binding.key: binding.action for binding in table_bindings("Open")}  # type: ignore[union-attr]
    assert keys["home,g"] == "first" and keys["end,G"] == "last"
    assert keys["pageup"] == "page(-1)" and keys["pagedown"] == "page(1)"
    assert keys["enter"] == "select" and keys["d"] == "details"


# -- the table alone -----------------------------------------------------------------------


class TableApp(App[None]):
    CSS_PATH = str(STYLES)

    def __init__(self, rows: list[Row]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield EventTable()

    def fetch(self, offset: int, limit: int) -> list[Row]:
        return self.rows[offset : offset + limit]


def line(table: EventTable, y: int) -> str:
    return strip_text(table.render_line(y))


def starts(table: EventTable) -> list[int]:
    found, x = [], 0
    for col in table.columns:
        found.append(x)
        x += col.width + 1
    return found


def cut_cells(table: EventTable, rows: int) -> list[tuple[str, str]]:
    """(column key, value) of every cell on screen shown cut."""
    look = Look(LOOK.today, table.masked)
    found = []
    for index in range(table.scroll_offset.y, min(table.scroll_offset.y + rows, table.total)):
        row = table.row_at(index)
        assert row is not None
        for col, (text, _, width) in zip(table.columns, line_cells(table.columns, row, look), strict=False):
            if cell_len(text) > width:
                found.append((col.key, text))
    return found


@pytest.mark.parametrize("size", SIZES)
async def test_the_header_scrolls_sideways_with_the_rows(size: tuple[int, int]) -> None:
    app = TableApp([delivery(i) for i in range(1, 300)])
    async with app.run_test(size=size) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        first = app.rows[0]
        for presses in range(len(GATEWAY_COLUMNS)):
            x = table.scroll_offset.x
            column = starts(table).index(x)  # a column's start, whatever the presses
            assert presses == 0 or x > 0 or table.max_scroll_x == 0
            col = table.columns[column]
            header, cells = line(table, 0), line(table, 1)
            assert header.startswith(fit(col.title, col.width)), (presses, header)
            assert cells.startswith(fit(col.render(first, LOOK)[0], col.width)), (presses, cells)
            # Every title on screen stands over its column.
            for other, start in zip(table.columns, starts(table), strict=True):
                if x <= start and start + other.width <= x + len(header):
                    assert header[start - x : start - x + other.width] == fit(other.title, other.width)
            await pilot.press("right")
        if size[0] == 80:
            assert table.scroll_offset.x == table.max_scroll_x > 0  # the last columns came into view
        await pilot.press("left")
        assert table.scroll_offset.x in starts(table)
        # The screen shows the same header line.
        assert line(table, 0).rstrip() in screen_text(app)


MEDIUM_CONTENT = "budget-2024-explained-for-salary"  # 32 cells: past Content's max (24)


@pytest.mark.parametrize("size", SIZES)
async def test_columns_fit_their_content_and_the_screen(size: tuple[int, int]) -> None:
    rows = [delivery(i, device_model=None) for i in range(1, 300)]
    rows[2] = replace(rows[2], content_id=MEDIUM_CONTENT)
    app = TableApp(rows)
    async with app.run_test(size=size) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        width = table.scrollable_content_region.width
        by_key = {col.key: col for col in table.columns}
        assert by_key["time"].width == 8  # today's HH:MM:SS, not 14
        assert by_key["reader"].width == cell_len("noah.muller01@gmail.com")  # whole, not noah.muller64@gmai
        cut = cut_cells(table, table.rows_on_screen)
        if size[0] == 160:
            # Everything fits whole, the long content id too: the screen has the room.
            assert cut == [] and table.virtual_size.width <= width
            assert by_key["content"].width == len(MEDIUM_CONTENT)
            assert MEDIUM_CONTENT in line(table, 3)
        else:
            # The first columns fill the screen; the values it cuts end with "…".
            assert table.virtual_size.width > width
            assert sum(col.width + 1 for col in table.columns[:5]) - 1 == width
            assert {key for key, _ in cut} == {"content", "action"}
            content = starts(table)[3]
            assert line(table, 3)[content : content + 24] == MEDIUM_CONTENT[:23] + "…"
            assert line(table, 2).rstrip().endswith("…")  # the action, cut at the screen's edge


@pytest.mark.parametrize("size", SIZES)
async def test_a_value_too_long_for_any_screen_is_cut_and_the_screen_used(size: tuple[int, int]) -> None:
    rows = [delivery(i) for i in range(1, 300)]
    rows[0] = replace(rows[0], content_id=LONG_CONTENT)
    app = TableApp(rows)
    async with app.run_test(size=size) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        width = table.scrollable_content_region.width
        # Cut values only when every cell of the screen is in use.
        assert cut_cells(table, table.rows_on_screen)
        assert table.virtual_size.width >= width
        last = max(i for i, start in enumerate(starts(table)) if start < width)
        assert starts(table)[last] + table.columns[last].width == width  # the last column ends at the edge
        content = starts(table)[3]
        shown = line(table, 1)[content : content + table.columns[3].width]
        assert shown.endswith("…") and LONG_CONTENT.startswith(shown[:-1])


@pytest.mark.parametrize("size", SIZES)
async def test_keys_and_clicks_count_the_header_line(size: tuple[int, int]) -> None:
    app = TableApp([delivery(i) for i in range(1, 300)])
    async with app.run_test(size=size) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        table.focus()
        await pilot.pause()
        on_screen = table.rows_on_screen
        assert on_screen == table.scrollable_content_region.height - 1
        await pilot.press("pagedown")
        assert table.cursor_row == on_screen - 1
        await pilot.press("end")
        assert table.cursor_row == 298
        await pilot.pause()
        assert line(table, on_screen).startswith(fit(table.columns[0].render(app.rows[298], LOOK)[0], 8))
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_offset.y == 0
        await pilot.click(EventTable, offset=(3, 3))  # padding 1: the content's line 2, row 2
        assert table.cursor_row == 2
        await pilot.click(EventTable, offset=(3, 0))  # the header: no row
        assert table.cursor_row == 2


async def test_the_mouse_over_a_cut_value_shows_it_whole() -> None:
    rows = [delivery(i) for i in range(1, 50)]
    rows[0] = replace(rows[0], content_id=LONG_CONTENT)
    app = TableApp(rows)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        content = starts(table)[3]
        await pilot.hover(EventTable, offset=(1 + content + 2, 1))  # the first row's content cell
        assert isinstance(table.tooltip, Text) and table.tooltip.plain == LONG_CONTENT
        await pilot.hover(EventTable, offset=(1 + 2, 1))  # its time: whole, no tooltip
        assert table.tooltip is None


@pytest.mark.parametrize("size", SIZES)
async def test_all_events_give_a_rejected_reason_the_line(size: tuple[int, int]) -> None:
    rows = [REJECTED, *(delivery(i, event="transaction.complete") for i in range(1, 40))]
    app = TableApp(rows)
    async with app.run_test(size=size) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), ALL_COLUMNS)
        await pilot.pause()
        assert {col.key: col for col in table.columns}["event"].width == len("transaction.complete")
        shown = line(table, 1)
        assert "✗ 400 rejected       body is not JSON: unexpected character" in shown
        if size[0] == 160:
            assert REJECTED.reason in shown
        else:  # cut at the screen's edge, with its "…"; the mouse shows it whole
            assert shown.endswith("…") and len(shown) == table.scrollable_content_region.width
            await pilot.hover(EventTable, offset=(1 + starts(table)[2] + 5, 1))
            assert isinstance(table.tooltip, Text) and table.tooltip.plain == REJECTED.reason


async def test_masked_values_are_measured_again() -> None:
    app = TableApp([delivery(i, username=None, name="Priya Iyer") for i in range(1, 40)])
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        table.masked = True
        await pilot.pause()
        masked = COLUMN["reader"].render(app.rows[0], LOOK._replace(masked=True))[0]
        assert {col.key: col for col in table.columns}["reader"].width == max(len("Reader"), cell_len(masked))


# -- the real monitor ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_main_screen_header_is_the_table_s_own_line(live: Live, size: tuple[int, int]) -> None:
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        table = app.main_screen.query_one(EventTable)
        for i in range(3):
            await live.post(
                gateway_body(
                    user_id=f"reader-{i}", phone=f"90000{i:05d}", content_id=f"{LONG_CONTENT}-{i}", created_at=NOW - 5
                )
            )
        await wait_for(pilot, lambda: table.total == 3, what="3 rows")
        assert not app.main_screen.query("#columns")
        await pilot.pause()
        text = screen_text(app)
        header = line(table, 0)
        assert header.startswith("Received Event") and header.rstrip() in text
        for _ in range(3):
            await pilot.press("right")
        await pilot.pause()
        x = table.scroll_offset.x
        col = table.columns[starts(table).index(x)]
        assert line(table, 0).startswith(fit(col.title, col.width))
        assert line(table, 0).rstrip() in screen_text(app)


async def test_w_widens_every_column_to_its_whole_values_and_back() -> None:
    rows = [delivery(i) for i in range(1, 50)]
    rows[0] = replace(rows[0], content_id=LONG_CONTENT)
    app = TableApp(rows)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        table.focus()
        await pilot.pause()
        narrow = table.columns
        assert cut_cells(table, table.rows_on_screen)
        await pilot.press("w")
        assert table.whole_values and cut_cells(table, table.rows_on_screen) == []
        assert {col.key: col for col in table.columns}["content"].width == len(LONG_CONTENT)
        await pilot.press("right", "right", "right")
        assert line(table, 1).startswith(LONG_CONTENT)
        await pilot.press("w")
        assert table.columns == narrow


@pytest.mark.parametrize("size", SIZES)
async def test_fitting_the_columns_reads_no_page_twice(size: tuple[int, int]) -> None:
    """A new view's first page (read inside a filter's time budget) is drawn as read: a column
    layout keeps the pages; only a new row count drops them."""
    rows = [delivery(i) for i in range(1, 300)]
    app = TableApp(rows)
    offsets: list[int] = []

    def fetch(offset: int, limit: int) -> list[Row]:
        offsets.append(offset)
        return app.fetch(offset, limit)

    async with app.run_test(size=size) as pilot:
        table = app.query_one(EventTable)
        table.show(fetch, len(rows), GATEWAY_COLUMNS, first=app.fetch(0, PAGE_SIZE))
        await pilot.pause()
        assert table.columns != GATEWAY_COLUMNS  # laid out for the content and the screen
        assert offsets == []  # the first page was handed in, and kept
        await pilot.press("w")  # another layout, the same rows
        await pilot.pause()
        assert offsets == []
