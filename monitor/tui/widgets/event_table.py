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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import set_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.masking import mask_if
from monitor.queries import Row
from monitor.textsafe import cell
from monitor.tui.failures import is_damaged

PAGE_SIZE = 100
MAX_PAGES = 40
#: Rendered lines kept: new rows push the others down a line, which then need no rendering again.
MAX_LINES = 256


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int


GATEWAY_COLUMNS = (
    Column("time", "Received", 14),
    Column("event", "Event", 8),
    Column("reader", "Reader", 18),
    Column("phone", "Phone", 12),
    Column("content", "Content", 17),
    Column("action", "Click action", 26),
    Column("paywall", "Paywall", 8),
    Column("device", "Device", 14),
    Column("country", "Ctry", 4),
    Column("sig", "Sig", 9),
    Column("dup", "Dup", 3),
    Column("lag", "Lag", 6),
    Column("fwd", "Fwd", 3),
)

ALL_COLUMNS = (
    Column("time", "Received", 14),
    Column("event", "Event", 22),
    Column("reader", "Reader / reason", 23),
    Column("phone", "Phone", 12),
    Column("content", "Content", 18),
    Column("action", "Click action", 20),
    Column("device", "Device", 12),
    Column("country", "Ctry", 4),
    Column("sig", "Sig", 9),
    Column("dup", "Dup", 3),
    Column("lag", "Lag", 6),
    Column("fwd", "Fwd", 3),
)

Fetch = Callable[[int, int], list[Row]]


def header_text(columns: tuple[Column, ...]) -> str:
    return " ".join(set_cell_size(col.title, col.width) for col in columns)


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

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: tuple[Column, ...] = GATEWAY_COLUMNS
        self.total = 0
        self.waiting = 0
        self._fetch: Fetch = lambda offset, limit: []
        self._pages: OrderedDict[int, list[Row | None]] = OrderedDict()  # None: a row that cannot be read
        self._today = ""
        self._line_width = 0
        self._lines: OrderedDict[tuple[object, ...], Strip] = OrderedDict()
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
        stale = [
            number
            for number, page in self._pages.items()
            if any(row is not None and row.source == "event" and row.id in event_ids for row in page)
        ]
        for number in stale:
            del self._pages[number]
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
            if len(self._pages) > MAX_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page_no)
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
        self._today = time.strftime("%Y-%m-%d")
        selected = index == self.cursor_row
        # Everything the line's look depends on (Row is frozen: equal rows render alike).
        key = (row, selected, self.masked, self._today, id(self.columns), scroll_x, width, base)
        strip = self._lines.get(key)
        if strip is None:
            segments = self._segments(row, selected=selected)
            strip = Strip(segments, self._line_width).crop_extend(scroll_x, scroll_x + width, base)
            self._lines[key] = strip
            if len(self._lines) > MAX_LINES:
                self._lines.popitem(last=False)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()  # a new theme: component styles changed

    def _segments(self, row: Row, *, selected: bool) -> list[Segment]:
        base = self.rich_style
        kind = self._kind(row)
        kind_style = self.get_component_rich_style(f"event-table--{kind}")
        segments: list[Segment] = []
        for col in self.columns:
            text, emphasis = self._cell(row, col.key)
            style = base
            if col.key == "event" or (kind == "rejected" and col.key == "reader"):
                style = base + kind_style
            if emphasis:
                style = style + self.get_component_rich_style(f"event-table--{emphasis}")
            segments.append(Segment(set_cell_size(text, col.width), style))
            segments.append(Segment(" ", base))
        if selected:
            cursor = self.get_component_rich_style("event-table--cursor")
            segments = [Segment(seg.text, seg.style + cursor if seg.style else cursor) for seg in segments]
        return segments

    @staticmethod
    def _kind(row: Row) -> str:
        if row.source == "rejected":
            return "rejected"
        if row.event == GATEWAY_VIEW:
            return "view"
        if row.event == GATEWAY_CLOSE:
            return "close"
        return "other"

    def _cell(self, row: Row, key: str) -> tuple[str, str | None]:
        """The text of one cell (already inert) and an optional emphasis class."""
        masked = self.masked
        if key == "time":
            return format_time(row.received_at, self._today), None
        if row.source == "rejected":
            if key == "event":
                return f"✗ {row.status} rejected", None
            if key == "reader":
                return cell(row.reason), None
            return "", None
        if key == "event":
            return event_label(row.event), None
        if key == "reader":
            who = row.name or row.username or row.user_id or ""
            column = "name" if row.name else ("username" if row.username else "user_id")
            return cell(mask_if(column, who, masked)), None
        if key == "phone":
            return cell(mask_if("phone_number", row.phone_number, masked)), None
        if key == "content":
            return cell(row.content_id), None
        if key == "action":
            return cell(row.click_action), None
        if key == "paywall":
            return cell(row.paywall_id[-8:] if row.paywall_id else ""), None
        if key == "device":
            device = " ".join(part for part in (row.device_type, row.device_model) if part)
            return cell(device), None
        if key == "country":
            return cell(row.country), None
        if key == "sig":
            return cell(row.signature), ("bad" if row.signature in ("invalid", "missing") else None)
        if key == "dup":
            return ("dup" if row.duplicate_of else ""), ("duplicate" if row.duplicate_of else None)
        if key == "lag":
            return format_lag(row.received_at, row.created_at), "dim"
        if key == "fwd":
            ok = row.forward is not None and row.forward.startswith("2")
            return (row.forward or ""), (None if ok or row.forward is None else "bad")
        return "", None

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


def event_label(event: str | None) -> str:
    if event == GATEWAY_VIEW:
        return "▶ view"
    if event == GATEWAY_CLOSE:
        return "■ close"
    return cell(event) if event else "(legacy)"


def format_time(epoch: float | None, today: str) -> str:
    if epoch is None:
        return ""
    local = time.localtime(epoch)
    if time.strftime("%Y-%m-%d", local) == today:
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%m-%d %H:%M:%S", local)


def format_lag(received_at: float | None, created_at: float | None) -> str:
    if received_at is None or created_at is None:
        return ""
    return format_duration(received_at - created_at)


def format_duration(seconds: float) -> str:
    """Compact and readable: 0.4s, 150s, 12.5m, 3.0h, 2.0d, 2.7y."""
    sign = "-" if seconds < 0 else ""
    value = abs(seconds)
    if value < 10:
        return f"{sign}{value:.1f}s"
    if value < 600:
        return f"{sign}{value:.0f}s"
    for limit, unit, div in ((3600 * 3, "m", 60), (86400 * 3, "h", 3600), (86400 * 365, "d", 86400)):
        if value < limit:
            return f"{sign}{value / div:.1f}{unit}"
    return f"{sign}{value / (86400 * 365):.1f}y"
