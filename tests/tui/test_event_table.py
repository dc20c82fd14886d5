"""EventTable on its own: the column list, the page and line caches, the rendered look.

A small App holds only the table (and the app's stylesheet), fed from a list
of rows: no database, no MonitorApp.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.segment import Segment
from rich.style import Style
from textual.app import App, ComposeResult
from textual.cache import LRUCache

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.queries import Row
from monitor.tui.format import format_time
from monitor.tui.widgets import columns as columns_module
from monitor.tui.widgets.columns import ALL_COLUMNS, COLUMN, GATEWAY_COLUMNS, Look, header_text
from monitor.tui.widgets.event_table import MAX_LINES, MAX_PAGES, PAGE_SIZE, EventTable

STYLES = Path(__file__).resolve().parents[2] / "styles" / "app.tcss"
NOW = time.time()
LOOK = Look(today=time.strftime("%Y-%m-%d", time.localtime(NOW)), masked=False)


def event(i: int, **fields: Any) -> Row:
    row = Row(
        "event", i, NOW - i, NOW - i - 2.5,
        event=GATEWAY_VIEW, name=f"Reader {i}", phone_number="9527346212", content_id=f"story-{i}", signature="valid",
    )  # fmt: skip
    return replace(row, **fields)


REJECTED = Row("rejected", 99, NOW, status=401, reason="bad \x1b[31msignature")


class TableApp(App[None]):
    CSS_PATH = str(STYLES)

    def __init__(self, rows: list[Row]) -> None:
        super().__init__()
        self.rows = rows
        self.fetches: list[int] = []

    def compose(self) -> ComposeResult:
        yield EventTable()

    def fetch(self, offset: int, limit: int) -> list[Row]:
        self.fetches.append(offset)
        return self.rows[offset : offset + limit]


# -- the column list -----------------------------------------------------------


def test_each_column_is_declared_once_and_both_views_pick_from_it() -> None:
    assert [col.key for col in GATEWAY_COLUMNS] == list(COLUMN)
    for col in ALL_COLUMNS:
        assert col.render is COLUMN[col.key].render  # same rendering, maybe other limits
    assert "paywall" not in {col.key for col in ALL_COLUMNS}
    sized = [col.sized(col.min_width) for col in GATEWAY_COLUMNS]
    assert header_text(sized).split() == [
        "Received", "Event", "Reader", "Content", "Action", "Sig", "Dup", "Fwd", "Lag",
        "Device", "Ctry", "Phone", "Paywall",
    ]  # fmt: skip
    assert len(header_text(sized)) == sum(col.width + 1 for col in sized) - 1
    assert not hasattr(EventTable, "_cell")


def test_cells_of_an_accepted_event() -> None:
    row = event(1, duplicate_of=3, signature="invalid", forward="502", device_type="mobile", device_model="iPhone")
    cells = {col.key: col.render(row, LOOK) for col in GATEWAY_COLUMNS}
    assert cells["time"] == (format_time(row.received_at, LOOK.today), None)
    assert cells["event"] == ("▶ view", "view")
    assert cells["reader"] == ("Reader 1", None)
    assert cells["sig"] == ("invalid", "bad")
    assert cells["dup"] == ("dup", "duplicate")
    assert cells["lag"] == ("2.5s", "dim")
    assert cells["fwd"] == ("502", "bad")
    assert cells["device"] == ("mobile iPhone", None)
    assert COLUMN["event"].render(event(2, event=GATEWAY_CLOSE), LOOK) == ("■ close", "close")
    assert COLUMN["event"].render(event(2, event="order.paid"), LOOK) == ("order.paid", "other")
    assert COLUMN["fwd"].render(event(2, forward="200"), LOOK) == ("200", None)


def test_masked_cells_and_a_rejected_delivery() -> None:
    masked = LOOK._replace(masked=True)
    row = event(1)
    assert COLUMN["reader"].render(row, masked)[0] != "Reader 1"
    assert "9527346212" not in COLUMN["phone"].render(row, masked)[0]
    cells = {col.key: col.render(REJECTED, LOOK) for col in ALL_COLUMNS}
    assert cells["event"] == ("✗ 401 rejected", "rejected")
    text, style = cells["reader"]
    assert style == "rejected" and "\x1b" not in text and text.startswith("bad ")
    assert all(cells[key] == ("", None) for key in cells if key not in ("time", "event", "reader"))


def test_columns_module_imports_no_textual() -> None:
    source = Path(columns_module.__file__).read_text()
    assert "import textual" not in source and "from textual" not in source


# -- the caches ------------------------------------------------------------------


async def test_pages_are_an_lru_of_max_pages_read_once() -> None:
    app = TableApp([event(i) for i in range(PAGE_SIZE * (MAX_PAGES + 5))])
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        assert isinstance(table._pages, LRUCache) and table._pages.maxsize == MAX_PAGES
        for page in range(MAX_PAGES + 5):
            assert table.row_at(page * PAGE_SIZE) == app.rows[page * PAGE_SIZE]
        assert len(table._pages) == MAX_PAGES
        app.fetches.clear()
        table.row_at((MAX_PAGES + 4) * PAGE_SIZE + 1)  # the newest page: still there
        assert app.fetches == []
        table.row_at(0)  # the oldest: evicted, read again
        assert app.fetches == [0]


async def test_refresh_rows_drops_only_pages_holding_those_events() -> None:
    app = TableApp([event(i) for i in range(PAGE_SIZE * 3)])
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(EventTable)
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        for page in range(3):
            table.row_at(page * PAGE_SIZE)
        table.refresh_rows({PAGE_SIZE + 5})
        assert sorted(table._pages.keys()) == [0, 2]
        table.refresh_rows()
        assert len(table._pages) == 0


async def test_lines_of_rows_that_only_moved_are_not_rendered_again(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [event(i) for i in range(60)]
    app = TableApp(rows[10:])
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(EventTable)
        assert isinstance(table._lines, LRUCache) and table._lines.maxsize == MAX_LINES
        table.show(app.fetch, len(app.rows), GATEWAY_COLUMNS)
        await pilot.pause()
        rendered: list[Row] = []
        segments = table._segments

        def counting(row: Row, look: Look, base: Style, screen: int, *, selected: bool) -> list[Segment]:
            rendered.append(row)
            return segments(row, look, base, screen, selected=selected)

        monkeypatch.setattr(table, "_segments", counting)
        height = table.scrollable_content_region.height
        for y in range(1, height):  # the header, then the rows
            table.render_line(y)
        assert rendered == []  # drawn already by the first frame
        app.rows = rows[9:]  # one new delivery on top, followed: the others move down a line
        table.add_new(1)
        for y in range(1, height):
            table.render_line(y)
        assert rendered == [rows[9], rows[10]]  # the new row (with the cursor) and the one it left
