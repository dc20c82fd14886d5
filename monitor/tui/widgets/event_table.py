"""A virtual table of deliveries, read from SQLite a page at a time.

The widget never holds all rows: its virtual height is the row count of the
current query, and ``render_line`` asks a small LRU of pages for the rows on
screen. So it behaves the same with ten rows or a million.

Newest first. Follow mode: while the cursor is on the newest row, new rows
come in above it and stay in view; once the user moves away, the view stays
on the same rows and ``waiting`` counts the new ones above.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import set_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.theme import Theme

from monitor.queries import Row
from monitor.tui.failures import is_damaged
from monitor.tui.format import today
from monitor.tui.widgets.columns import GATEWAY_COLUMNS, Column, Look

# The main screen imports a view's columns and its header from here (they live in columns.py).
__all__ = ["PAGE_SIZE", "EventTable"]

PAGE_SIZE = 100
MAX_PAGES = 40
#: Rendered lines kept: new rows push the others down a line, which then need no rendering again.
MAX_LINES = 256


Fetch = Callable[[int, int], list[Row]]


class EventTable(ScrollView, can_focus=True):
    """Deliveries, newest first, fetched on demand."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "Newest", show=False),
        Binding("end,G", "last", "Oldest", show=False),
        Binding("enter", "select", "Reader", show=True),
        Binding("d", "details", "Details", show=True),
    ]

    COMPONENT_CLASSES = {
        "event-table--cursor",
        "event-table--view",
        "event-table--close",
        "event-table--other",
        "event-table--rejected",
        "event-table--duplicate",
        "event-table--bad",
        "event-table--dim",
    }

    cursor_row: reactive[int] = reactive(0)
    masked: reactive[bool] = reactive(False)

    @dataclass
    class RowSelected(Message):
        """Enter (or double click) on a row: open the reader."""

        row: Row

    @dataclass
    class DetailsRequested(Message):
        row: Row

    @dataclass
    class WaitingChanged(Message):
        """How many new rows wait above the viewport (0 when following)."""

        waiting: int

    @dataclass
    class FetchFailed(Message):
        """A page of rows could not be read: its lines stay blank (said once until a page reads again)."""

        error: sqlite3.Error

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        #: "Now" for the time column (today's rows show the time only): the app's clock.
        self._clock = clock
        self.columns: tuple[Column, ...] = GATEWAY_COLUMNS
        self.total = 0
        self.waiting = 0
        self._fetch: Fetch = lambda offset, limit: []
        self._pages: LRUCache[int, list[Row | None]] = LRUCache(MAX_PAGES)  # None: a row that cannot be read
        self._today = ""
        self._line_width = 0
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(MAX_LINES)
        self._failing = False

    # -- attributes down -------------------------------------------------

    def show(self, fetch: Fetch, total: int, columns: tuple[Column, ...], first: list[Row] | None = None) -> None:
        """Show a new query from the top (a new filter, mode or session); ``first``: its first page, if read."""
        self._fetch = fetch
        self.columns = columns
        self._line_width = sum(col.width + 1 for col in columns)
        self._set_total(total)
        if first is not None:
            self._pages[0] = list(first)
        self.cursor_row = 0
        self.scroll_to(0, 0, animate=False)
        self._set_waiting(0)
        self.refresh()

    def add_new(self, count: int) -> None:
        """``count`` rows matching the query were committed (newest first)."""
        if count <= 0:
            return
        following = self.cursor_row == 0 and self.scroll_offset.y == 0
        self._set_total(self.total + count)
        if not following:
            # Keep the same rows under the cursor and in the viewport.
            self.cursor_row += count
            self.scroll_to(y=self.scroll_offset.y + count, animate=False, immediate=True)
            self._set_waiting(self.waiting + count)
        self.refresh()

    def refresh_rows(self, event_ids: set[int] | None = None) -> None:
        """Rows changed (e.g. a forward's answer came): fetch them again.

        With ``event_ids``, only cached pages holding one of those events are
        dropped, and nothing is redrawn unless one of them is on screen: with
        ``--forward-to`` every commit brings forward results.
        """
        if event_ids is None:
            self._pages.clear()
            self.refresh()
            return
        # Reading a page here marks it recently used; the pages on screen are
        # read again by the next render anyway, so eviction order barely moves.
        stale = [
            number
            for number in list(self._pages.keys())
            if any(row is not None and row.source == "event" and row.id in event_ids for row in self._pages[number])
        ]
        for number in stale:
            self._pages.discard(number)
        top = self.scroll_offset.y
        visible = range(top // PAGE_SIZE, (top + self.size.height) // PAGE_SIZE + 1)
        if any(number in visible for number in stale):
            self.refresh()

    @property
    def following(self) -> bool:
        return self.cursor_row == 0

    @property
    def current(self) -> Row | None:
        return self.row_at(self.cursor_row)

    def row_at(self, index: int) -> Row | None:
        if not 0 <= index < self.total:
            return None
        page_no, offset = divmod(index, PAGE_SIZE)
        page = self._pages.get(page_no)
        if page is None:
            page = self._read_page(page_no)
            self._pages[page_no] = page
        return page[offset] if offset < len(page) else None

    def _read_page(self, page_no: int) -> list[Row | None]:
        """One page of rows, with None for rows that cannot be read: rendering must never raise.

        Said once (:class:`FetchFailed`) until a page reads whole again; what
        was read is kept until the pages are read again (a new row, a new view).
        """
        try:
            page: list[Row | None] = list(self._fetch(page_no * PAGE_SIZE, PAGE_SIZE))
        except sqlite3.Error as exc:
            if not self._failing:
                self._failing = True
                self.post_message(self.FetchFailed(exc))
            # A damaged page of the file holds a few rows: read around them, in halves.
            return self._read_around(page_no * PAGE_SIZE, PAGE_SIZE) if is_damaged(exc) else []
        self._failing = False
        return page

    def _read_around(self, offset: int, count: int) -> list[Row | None]:
        try:
            return list(self._fetch(offset, count))
        except sqlite3.Error:
            if count == 1:
                return [None]
            half = count // 2
            return self._read_around(offset, half) + self._read_around(offset + half, count - half)

    def _set_total(self, total: int) -> None:
        self.total = total
        self._pages.clear()
        size = Size(self._line_width, total)
        if size.width == self.virtual_size.width and self.is_mounted:
            # Only the height changed and the gutter is reserved (scrollbar-gutter:
            # stable), so nothing else on screen moves: update the scrollbar and
            # repaint instead of laying out the whole screen, which a live view
            # would otherwise do on every redraw. (_scroll_update is Textual's own
            # step for this; pyproject pins Textual 8 for it.)
            self.set_reactive(EventTable.virtual_size, size)
            self._scroll_update(size)
            self.refresh()
        else:
            self.virtual_size = size
        if self.cursor_row >= total:
            self.cursor_row = max(total - 1, 0)

    def _set_waiting(self, waiting: int) -> None:
        if waiting != self.waiting:
            self.waiting = waiting
            self.post_message(self.WaitingChanged(waiting))

    # -- rendering ---------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        if new == 0:
            self._set_waiting(0)
        top = self.scroll_offset.y
        height = max(self.scrollable_content_region.height, 1)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        else:
            # Nothing scrolled: only the two lines that gain or lose the cursor change.
            self.refresh_line(old)
            self.refresh_line(new)
            return
        self.refresh()

    def watch_masked(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        row = self.row_at(index)
        base = self.rich_style
        if row is None:
            return Strip.blank(width, base)
        self._today = today(self._clock())
        selected = index == self.cursor_row
        # Everything the line's look depends on (Row is frozen: equal rows render alike).
        key = (row, selected, self.masked, self._today, id(self.columns), scroll_x, width, base)
        strip = self._lines.get(key)
        if strip is None:
            segments = self._segments(row, selected=selected)
            strip = Strip(segments, self._line_width).crop_extend(scroll_x, scroll_x + width, base)
            self._lines[key] = strip
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # component styles changed

    def on_mount(self) -> None:
        # A theme that changes only the tones (not this widget's own rules) calls
        # no notify_style_update here, and the line keys hold the base style only.
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        self._lines.clear()
        self.refresh()

    def _segments(self, row: Row, *, selected: bool) -> list[Segment]:
        base = self.rich_style
        look = Look(self._today, self.masked)
        gap = Segment(" ", base)
        segments: list[Segment] = []
        for col in self.columns:
            text, name = col.render(row, look)
            style = base + self.get_component_rich_style(f"event-table--{name}") if name else base
            segments.append(Segment(set_cell_size(text, col.width), style))
            segments.append(gap)
        if selected:
            cursor = self.get_component_rich_style("event-table--cursor")
            segments = [Segment(seg.text, seg.style + cursor if seg.style else cursor) for seg in segments]
        return segments

    # -- actions -----------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        height = max(self.scrollable_content_region.height - 1, 1)
        self._move(self.cursor_row + direction * height)

    def action_first(self) -> None:
        self._move(0)

    def action_last(self) -> None:
        self._move(self.total - 1)

    def _move(self, index: int) -> None:
        if self.total:
            self.cursor_row = min(max(index, 0), self.total - 1)

    def action_select(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.RowSelected(row))

    def action_details(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.DetailsRequested(row))

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < self.total:
            self.cursor_row = index
            if event.chain >= 2:
                self.action_select()
