"""A virtual table of deliveries, read from SQLite a page at a time.

The widget never holds all rows: its virtual height is the row count of the
current query, and ``render_line`` asks a small LRU of pages for the rows on
screen. So it behaves the same with ten rows or a million.

Newest first. Follow mode: while the cursor is on the newest row, new rows
come in above it and stay in view; once the user moves away, the view stays
on the same rows and ``waiting`` counts the new ones above.

The first line is the column header, drawn by the table itself and cropped
with the same horizontal scroll as the rows, so the titles always stand over
their values (row ``i`` is the virtual line ``i + 1``). Column widths are
fitted to the terminal and to the values on screen (:mod:`.columns`): the
values of every row drawn are measured, never the whole table, and a column
widens when a longer value shows up and the screen has room for it. A cut
value ends with ``…``; the mouse over it shows it whole in a tooltip, ``w``
widens every column to its whole values (past the screen's edge: → to
see them), and ``d`` shows every field of the row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
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
from monitor.tui.widgets.columns import GATEWAY_COLUMNS, Column, Look, fit, fit_widths, line_cells, natural_widths

__all__ = ["PAGE_SIZE", "EventTable", "table_bindings"]

PAGE_SIZE = 100
MAX_PAGES = 40
#: Rendered lines kept: new rows push the others down a line, which then need no rendering again.
MAX_LINES = 256
#: The screen width whole values are laid out for: wider than any line.
WHOLE_WIDTH = 1_000_000


Fetch = Callable[[int, int], list[Row]]


def table_bindings(select: str, *, first: str = "First row", last: str = "Last row") -> list[BindingType]:
    """The keys every table of rows answers alike, bound to the actions :class:`EventTable` has.

    Home/End: first and last row (not a screen's worth); PgUp/PgDn: a page;
    Enter: open the row (``select``: what that opens, shown in the footer);
    ``d``: the row's details. A table offering the same actions (``cursor``,
    ``page``, ``first``, ``last``, ``select``, ``details``) takes these.
    """
    return [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", first, show=False),
        Binding("end,G", "last", last, show=False),
        Binding("enter", "select", select),
        Binding("d", "details", "Details"),
    ]


class EventTable(ScrollView, can_focus=True):
    """Deliveries, newest first, fetched on demand."""

    BINDINGS = [
        *table_bindings("Reader", first="Newest", last="Oldest"),
        Binding("w", "toggle_whole", "Whole values", show=False),
    ]

    COMPONENT_CLASSES = {
        "event-table--header",
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
    #: Every column as wide as its longest value on screen, past the screen's edge (``w``).
    whole_values: reactive[bool] = reactive(False)

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
        #: The view's columns as declared (priority order) and as laid out (with widths).
        self._declared: tuple[Column, ...] = GATEWAY_COLUMNS
        self.columns: tuple[Column, ...] = GATEWAY_COLUMNS
        #: The cells each column's title and the values drawn so far ask for (grows until the next view).
        self._naturals = [cell_len(col.title) for col in GATEWAY_COLUMNS]
        #: Bumped on every new layout: part of each cached line's key.
        self._layout_no = 0
        self._relayout_pending = False
        self._tip: tuple[object, ...] | None = None
        self.total = 0
        self.waiting = 0
        self._fetch: Fetch = lambda offset, limit: []
        self._pages: LRUCache[int, list[Row | None]] = LRUCache(MAX_PAGES)  # None: a row that cannot be read
        self._today = ""
        self._line_width = 0
        self._virtual_width = 0
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(MAX_LINES)
        self._failing = False

    # -- attributes down -------------------------------------------------

    def show(self, fetch: Fetch, total: int, columns: tuple[Column, ...], first: list[Row] | None = None) -> None:
        """Show a new query from the top (a new filter, mode or session); ``first``: its first page, if read."""
        self._fetch = fetch
        self._declared = columns
        self._set_total(total)
        if first is not None:
            self._pages[0] = list(first)
        self.cursor_row = 0
        self.scroll_to(0, 0, animate=False, immediate=True)
        self._set_waiting(0)
        self._fit_columns()
        self.refresh()

    def add_new(self, count: int) -> None:
        """``count`` rows matching the query were committed (newest first)."""
        if count <= 0:
            return
        following = self.following
        self._set_total(self.total + count)
        if not following:
            # Keep the same rows under the cursor and in the viewport.
            self.cursor_row += count
            self.scroll_to(y=self.scroll_offset.y + count, animate=False, immediate=True)
            self._set_waiting(self.waiting + count)
        else:
            # The new rows come into view: widen their columns before they are drawn, not a frame later.
            self._measure(range(min(count, self.rows_on_screen)))
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
        visible = range(top // PAGE_SIZE, (top + self.rows_on_screen) // PAGE_SIZE + 1)
        if any(number in visible for number in stale):
            self.refresh()

    @property
    def following(self) -> bool:
        """New rows come in above the cursor and stay in view: the cursor on the newest row, scrolled to the top."""
        return self.cursor_row == 0 and self.scroll_offset.y == 0

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
        """A new row count: the cached pages no longer hold the rows at their offsets."""
        self.total = total
        self._pages.clear()
        self._set_virtual_size()
        if self.cursor_row >= total:
            self.cursor_row = max(total - 1, 0)

    def _set_virtual_size(self) -> None:
        """The scroll area for the row count and the columns' width (the pages read stay valid)."""
        size = Size(self._virtual_width, self.total + 1)  # the header, then a line per row
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

    def _set_waiting(self, waiting: int) -> None:
        if waiting != self.waiting:
            self.waiting = waiting
            self.post_message(self.WaitingChanged(waiting))

    # -- column widths -------------------------------------------------------

    @property
    def rows_on_screen(self) -> int:
        """Rows in view: the height less the header line."""
        return max(self.scrollable_content_region.height - 1, 1)

    def _look(self) -> Look:
        self._today = today(self._clock())
        return Look(self._today, self.masked)

    def _fit_columns(self) -> None:
        """Measure the rows in view afresh (a new view, size or look) and lay the columns out."""
        top = self.scroll_offset.y
        # Before the first layout the height is unknown: a screenful of a tall terminal.
        count = self.rows_on_screen if self.size.height > 1 else 60
        rows = [row for row in map(self.row_at, range(top, min(top + count, self.total))) if row is not None]
        self._naturals = natural_widths(self._declared, rows, self._look())
        self._lay_out()

    def _lay_out(self) -> None:
        """Give the columns their widths for the current naturals and screen width; redraw if any changed."""
        self._relayout_pending = False
        screen = self.scrollable_content_region.width
        # Whole values: as if the screen were wide enough for all of them (the rest is a scroll away).
        widths = fit_widths(self._declared, self._naturals, WHOLE_WIDTH if self.whole_values else screen)
        columns = tuple(col.sized(width) for col, width in zip(self._declared, widths, strict=True))
        virtual_width = self._scroll_width(widths, screen)
        if columns == self.columns and virtual_width == self._virtual_width:
            return
        self.columns = columns
        self._layout_no += 1
        self._line_width = sum(widths) + len(widths) - 1
        self._virtual_width = virtual_width
        self._set_virtual_size()  # the same rows: the pages read (a filter's first one, too) are kept
        self.refresh()

    @staticmethod
    def _scroll_width(widths: tuple[int, ...], screen: int) -> int:
        """The line's width: the columns, then blank room so that the farthest scroll starts a column.

        So every → (and the end of the scroll) puts a column's start, and its
        title, at the left edge.
        """
        width = sum(widths) + len(widths) - 1
        if width <= screen:
            return width
        start = 0
        for column_width in widths:
            if width - start <= screen:
                return start + screen
            start += column_width + 1
        return width

    def _measure(self, indexes: range) -> None:
        """Widen the columns for these rows' values if they need it (and the screen has the room)."""
        rows = [row for row in map(self.row_at, indexes) if row is not None]
        naturals = natural_widths(self._declared, rows, self._look())
        if any(new > old for new, old in zip(naturals, self._naturals, strict=True)):
            self._naturals = [max(new, old) for new, old in zip(naturals, self._naturals, strict=True)]
            self._lay_out()

    def _grew(self, index: int, size: int) -> None:
        """A value drawn asks for more than its column's natural width so far: lay out again, once."""
        self._naturals[index] = size
        if not self._relayout_pending:
            self._relayout_pending = True
            self.call_later(self._lay_out)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_columns()

    def watch_masked(self) -> None:
        if self.is_mounted:
            self._fit_columns()  # masked values have widths of their own
        self.refresh()

    def watch_whole_values(self) -> None:
        if self.is_mounted:
            self._lay_out()

    def action_toggle_whole(self) -> None:
        self.whole_values = not self.whole_values

    # -- rendering ---------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        if new == 0:
            self._set_waiting(0)
        top = self.scroll_offset.y
        height = self.rows_on_screen
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        else:
            # Nothing scrolled: only the two lines that gain or lose the cursor change (row i is line i + 1).
            self.refresh_line(old + 1)
            self.refresh_line(new + 1)
            return
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._header(scroll_x, width)
        index = scroll_y + y - 1
        row = self.row_at(index)
        if row is None:
            return Strip.blank(width, base)
        look = self._look()
        selected = index == self.cursor_row
        # Everything the line's look depends on (Row is frozen: equal rows render alike).
        key = (row, selected, look, self._layout_no, scroll_x, width, base)
        strip = self._lines.get(key)
        if strip is None:
            segments = self._segments(row, look, base, width, selected=selected)
            strip = Strip(segments, self._line_width).crop_extend(scroll_x, scroll_x + width, base)
            self._lines[key] = strip
        return strip

    def _header(self, scroll_x: int, width: int) -> Strip:
        """The titles, cropped like the rows: over their values at any horizontal scroll."""
        style = self.rich_style + self.get_component_rich_style("event-table--header")
        key = ("header", self._layout_no, scroll_x, width, style)
        strip = self._lines.get(key)
        if strip is None:
            segments: list[Segment] = []
            for col in self.columns:
                if segments:
                    segments.append(Segment(" ", style))
                segments.append(Segment(fit(col.title, col.width), style))
            strip = Strip(segments, self._line_width).crop_extend(scroll_x, scroll_x + width, style)
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

    def _segments(self, row: Row, look: Look, base: Style, screen: int, *, selected: bool) -> list[Segment]:
        """The row's line, whole (``base``: the widget's style; ``screen``: its width, where a span stops)."""
        gap = Segment(" ", base)
        segments: list[Segment] = []
        cells = line_cells(self.columns, row, look, screen)
        spanned = len(cells) - 1 if len(cells) < len(self.columns) else None  # it needs no room of its own
        for index, (text, name, width) in enumerate(cells):
            size = cell_len(text)
            if size > self._naturals[index] and index != spanned:
                self._grew(index, size)
            style = base + self.get_component_rich_style(f"event-table--{name}") if name else base
            if segments:
                segments.append(gap)
            segments.append(Segment(fit(text, width), style))
        if selected:
            cursor = self.get_component_rich_style("event-table--cursor")
            segments = [Segment(seg.text, seg.style + cursor if seg.style else cursor) for seg in segments]
        return segments

    # -- actions -----------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self._move(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        height = max(self.rows_on_screen - 1, 1)  # a row of overlap
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

    def action_scroll_right(self) -> None:
        """→: the next column comes to the left edge (with its title above it)."""
        starts = self._column_starts()
        x = self.scroll_offset.x
        self.scroll_to(x=next((start for start in starts if start > x), x), animate=False)

    def action_scroll_left(self) -> None:
        starts = self._column_starts()
        x = self.scroll_offset.x
        self.scroll_to(x=max((start for start in starts if start < x), default=0), animate=False)

    def _column_starts(self) -> list[int]:
        starts, x = [], 0
        for col in self.columns:
            starts.append(x)
            x += col.width + 1
        return starts

    def _under_mouse(self, event: events.MouseEvent) -> tuple[int, int] | None:
        """(row index or -1 for the header, x in the line) under the mouse; None off the content."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        return self.scroll_offset.y + offset.y - 1 if offset.y else -1, self.scroll_offset.x + offset.x

    def on_click(self, event: events.Click) -> None:
        place = self._under_mouse(event)
        if place is None:
            return
        index = place[0]
        if 0 <= index < self.total:
            self.cursor_row = index
            if event.chain >= 2:
                self.action_select()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """The whole value of a cut cell under the mouse, as a tooltip."""
        place = self._under_mouse(event)
        text = self._cut_text_at(*place) if place is not None else None
        key = (place[0], text) if place is not None else None
        if key != self._tip:
            self._tip = key
            self.tooltip = Text(text) if text else None  # inert already: plain text, never markup

    def _cut_text_at(self, index: int, x: int) -> str | None:
        """The text of the cell at line ``index`` (-1: header), ``x`` cells in, if it is cut; else None."""
        cells: list[tuple[str, str | None, int]]
        if index == -1:
            cells = [(col.title, None, col.width) for col in self.columns]
        else:
            row = self.row_at(index)
            if row is None:
                return None
            cells = line_cells(self.columns, row, self._look(), self.scrollable_content_region.width)
        start = 0
        for text, _name, width in cells:
            if start <= x < start + width:
                return text if cell_len(text) > width else None
            start += width + 1
        return None
