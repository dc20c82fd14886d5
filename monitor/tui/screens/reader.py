"""A reader's drill-down: profile, counts, and the paired journey.

Shows the :class:`~monitor.tui.messages.ReaderData` the app read for it;
Enter (or ``d``) on a step asks the app for that delivery. Must not import
the app.

Layout by width: under 120 columns the profile and the counts are stacked
(counts on one or two lines, each ``event n`` kept whole), from 120 side by
side; from 160 the journey shows both times. The journey is in time order,
oldest at the top, and opens with the cursor on its newest step.

Times: the journey shows when each delivery was *received* (as the main
table does) and is in that order; ``t`` switches it to Conscent's
``created_at`` (its order too). From 160 columns both columns are shown.

The journey is virtual (:class:`JourneyTable`): the app reads its newest
page with the screen's data, and the other steps are read a page at a time
as they come into view (:class:`monitor.reader_pages.Journey`, on the UI
thread's connection, as the main table's pages are). A long journey's
outcome figures are read by a thread worker once the first screen is drawn.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.containers import Container
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.journey import JourneyStep, PairSummary
from monitor.masking import mask_if
from monitor.reader_pages import Order
from monitor.reading import ReadAccess
from monitor.textsafe import cell
from monitor.tui.format import event_label, format_datetime, format_duration, format_time, reader_name, today
from monitor.tui.messages import OpenDelivery, ReaderData, ReadFailed
from monitor.tui.screens.palette import ThemedScreen
from monitor.tui.widgets.footer import KeyFooter
from monitor.wording import count, number

PROFILE_FIELDS = (
    ("name", "Name"),
    ("username", "Username"),
    ("phone_number", "Phone"),
    ("email", "Email"),
    ("city", "City"),
    ("country", "Country"),
    ("location", "Location"),
    ("device", "Device"),
)

#: The tone (monitor/tui/screens/palette.py) of each pairing outcome.
OUTCOME_TONES = {"closed": ("close",), "open": ("open",), "converted": ("good", "strong")}

#: Below this width the profile and the counts are stacked; from it, side by side.
SIDE_BY_SIDE = 120
#: From this width the journey shows the received and the created time.
BOTH_TIMES = 160
#: The counts panel's width when it stands beside the profile.
COUNTS_WIDTH = 36
#: A profile column (label and value) needs about this many cells.
PROFILE_COLUMN = 38
#: Column titles abbreviated below 160 columns (so that the click action fits at 80).
NARROW_TITLES = {"Time to close": "To close"}
#: How the Pairing column words the key a pair was made by (the narrow form leaves it out).
PAIRED_BY = {"sessionId": "sessionId", "paywallId+content": "paywall+content", "next close": "next close"}

__all__ = ["JourneyTable", "ReaderData", "ReaderScreen"]


#: Steps read at a time as the journey scrolls, and how many are kept.
PAGE = 100
KEPT_STEPS = 2000
#: Rendered lines kept.
KEPT_LINES = 512

Fetch = Callable[[int, int], list[JourneyStep]]
Cells = Callable[[JourneyStep], list[Text]]


class JourneyTable(ScrollView, can_focus=True):
    """The journey, virtual: only the steps on screen (and the rest of their page) are read.

    Looks and answers keys as the main table and the other lists do: Home
    (``g``) and End (``G``) the first and last step, PgUp/PgDn a page, Enter
    and ``d`` the step's delivery. The first line is the column titles; row
    ``i`` is the virtual line ``i + 1``. A column is as wide as its title
    and the widest value read so far.
    """

    DEFAULT_CSS = """
    JourneyTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .journey-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .journey-table--header { background-tint: $foreground 5%; }
        }
        &:dark > .journey-table--even-row { background: $surface-darken-1 40%; }
        & > .journey-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .journey-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .journey-table--odd-row { }
        & > .journey-table--even-row { background: $surface-lighten-1 50%; }
        & > .journey-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "journey-table--header",
        "journey-table--odd-row",
        "journey-table--even-row",
        "journey-table--cursor",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", show=True),
        Binding("d", "details", "Details", show=False),
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
    ]

    cursor_row: reactive[int] = reactive(0)

    @dataclass
    class Selected(Message):
        """Enter (or a double click) on a step: show its delivery."""

        step_id: int

    @dataclass
    class DetailsRequested(Message):
        """``d`` on a step: show its delivery."""

        step_id: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.titles: tuple[str, ...] = ()
        self.total = 0
        self._fetch: Fetch = lambda offset, limit: []
        self._cells_of: Cells = lambda step: []
        self._steps: LRUCache[int, JourneyStep] = LRUCache(KEPT_STEPS)
        self._cells: LRUCache[int, list[Text]] = LRUCache(KEPT_STEPS)
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(KEPT_LINES)
        self._widths: list[int] = []
        self._layout_no = 0
        #: Scrolled to the cursor once laid out: before that a line would show (and read) the journey's top.
        self._placed = self._placing = False

    # -- what it shows ------------------------------------------------------------

    def show(
        self,
        fetch: Fetch,
        total: int,
        titles: tuple[str, ...],
        cells: Cells,
        known: dict[int, JourneyStep],
        cursor: int,
    ) -> None:
        """Show ``total`` steps read by ``fetch(offset, limit)``, the cursor on step ``cursor``.

        ``known``: steps already read, by index. Only the steps in view are
        read (and measured for the columns' widths).
        """
        self._fetch, self._cells_of, self.total = fetch, cells, total
        self._steps.clear()
        self._cells.clear()
        for index, step in known.items():
            self._steps[index] = step
        self.titles = titles
        self._widths = [cell_len(title) for title in titles]
        self.virtual_size = Size(self.virtual_size.width, total + 1)
        self._placed = self.size.height > 1
        self.move_to(cursor)
        # Before the first layout the height is unknown: a tall terminal's worth around the cursor.
        height = self.rows_on_screen if self.size.height > 1 else 60
        top = self.scroll_offset.y if self.size.height > 1 else max(0, self.cursor_row - height + 1)
        self._measure(range(top, top + height))
        self._relayout()

    @property
    def row_count(self) -> int:
        return self.total

    @property
    def rows_on_screen(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def step_at(self, index: int) -> JourneyStep | None:
        """Step ``index``, read with its page when not read yet (None: no such step)."""
        if not 0 <= index < self.total:
            return None
        step = self._steps.get(index)
        if step is None:
            start = index - index % PAGE
            for offset, found in enumerate(self._fetch(start, PAGE)):
                self._steps[start + offset] = found
            step = self._steps.get(index)
        return step

    def get_row_at(self, index: int) -> list[Text]:
        """The cells of row ``index`` (as ``DataTable.get_row_at``)."""
        cells = self._cells.get(index)
        if cells is None:
            step = self.step_at(index)
            cells = [] if step is None else self._cells_of(step)
            self._cells[index] = cells
        return cells

    def key_of(self, row: int | None = None) -> str | None:
        """The key (the delivery's id) of ``row`` (default: the cursor's); None when there is no such row."""
        step = self.step_at(self.cursor_row if row is None else row)
        return None if step is None else str(step.id)

    def move_to(self, index: int) -> None:
        if self.total:
            self.cursor_row = max(0, min(index, self.total - 1))
            self._scroll_to_cursor()

    # -- layout ------------------------------------------------------------------

    def _measure(self, indexes: range) -> bool:
        """Widen the columns for these rows' cells; whether any grew."""
        grew = False
        for index in indexes:
            if not 0 <= index < self.total:
                continue
            for column, text in enumerate(self.get_row_at(index)[: len(self._widths)]):
                if text.cell_len > self._widths[column]:
                    self._widths[column], grew = text.cell_len, True
        return grew

    def _relayout(self) -> None:
        self._layout_no += 1
        self._lines.clear()
        width = sum(w + 2 for w in self._widths)
        self.virtual_size = Size(width, self.total + 1)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_to_cursor()  # laid out at last (or again): the cursor's step in view
        self._placed = True
        self.refresh()
        if self._measure(range(self.scroll_offset.y, self.scroll_offset.y + self.rows_on_screen)):
            self._relayout()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self._measure(range(int(new), int(new) + self.rows_on_screen)):
            self.call_later(self._relayout)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    # -- drawing -------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """Line ``y`` drawn as ``DataTable`` draws a row (its ``_render_line_in_row``/``_render_cell``).

        Each cell padded by one cell each side (``cell_padding`` 1) and as wide
        as its column; the row's style (header, even or odd row) under the
        cells' own, the cursor's colours over them; the rest of the width in
        the row's style (with the cursor's on the cursor's row).
        """
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        cursor: Style | None = None
        if y == 0:
            row_style = self.get_component_styles("journey-table--header").rich_style
            key: tuple[object, ...] = ("header", self._layout_no, scroll_x, width, row_style, base)
            cells = [Text(title) for title in self.titles]
        else:
            index = scroll_y + y - 1
            if not self._placed:  # the first lines drawn: scroll to the cursor first, then draw
                if not self._placing:
                    self._placing = True
                    self.call_later(self._place)
                return Strip.blank(width, base)
            if not 0 <= index < self.total:
                return Strip.blank(width, base)
            row_style = self.get_component_styles(
                "journey-table--even-row" if index % 2 == 0 else "journey-table--odd-row"
            ).rich_style
            if index == self.cursor_row:
                cursor = self.get_component_rich_style("journey-table--cursor")
            cells = self.get_row_at(index)
            key = (index, self._layout_no, scroll_x, width, row_style, base, cursor, id(cells))
        strip = self._lines.get(key)
        if strip is None:
            console = self.app.console
            pre = row_style if cursor is None else row_style + cursor
            # DataTable's cursor_foreground_priority and cursor_background_priority "css": over the cells' colours.
            post = Style.null() if cursor is None else Style.from_color(cursor.color, cursor.bgcolor)
            segments: list[Segment] = []
            row = -1 if y == 0 else scroll_y + y - 1
            for column, (text, column_width) in enumerate(zip(cells, self._widths, strict=False)):
                value = Text(end="", no_wrap=True)
                value.append_text(text)  # the cell's own style as a span: Text.render drops a bare Text's style
                value.truncate(column_width, overflow="ellipsis")
                pad = column_width - value.cell_len
                cell_segments = [Segment(" "), *value.render(console), Segment(" " * (pad + 1))]
                # The cell's row and column as meta, as DataTable's (also keeps each cell its own segments).
                meta = Style.from_meta({"row": row, "column": column})
                segments += Segment.apply_style(cell_segments, pre + meta, post)
            remaining = max(0, width - sum(w + 2 for w in self._widths))
            segments.append(
                Segment(" " * remaining, pre + Style.from_meta({"row": row, "column": 0, "out_of_bounds": True}))
            )
            strip = Strip(segments).crop_extend(scroll_x, scroll_x + width, base).simplify()
            self._lines[key] = strip
        return strip

    # -- keys and the mouse ------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._scroll_to_cursor()
        self.refresh()

    def _place(self) -> None:
        self._placing, self._placed = False, True
        self._scroll_to_cursor()
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        top, height, row = self.scroll_offset.y, self.rows_on_screen, self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor_row + direction * max(self.rows_on_screen - 1, 1))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(self.total - 1)

    def action_select(self) -> None:
        step = self.step_at(self.cursor_row)
        if step is not None:
            self.post_message(self.Selected(step.id))

    def action_details(self) -> None:
        step = self.step_at(self.cursor_row)
        if step is not None:
            self.post_message(self.DetailsRequested(step.id))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = self.scroll_offset.y + offset.y - 1
        if 0 <= index < self.total:
            self.cursor_row = index
            if event.chain >= 2:
                self.action_select()


def _cut(text: str | Text, width: int, style: Any = "") -> Text:
    """``text`` in at most ``width`` cells, ending in ``…`` when cut."""
    out = text if isinstance(text, Text) else Text(text, style=style)
    out.truncate(max(width, 1), overflow="ellipsis")
    return out


class ReaderScreen(ThemedScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        # One key, two bindings: the footer names the time the key switches to (check_action).
        Binding("t", "times('created')", "Created times"),
        Binding("t", "times('received')", "Received times"),
    ]
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (SIDE_BY_SIDE, "-wide"),
        (BOTH_TIMES, "-roomy"),
    ]

    def __init__(
        self, data: ReaderData, clock: Callable[[], float] = time.time, reads: ReadAccess | None = None
    ) -> None:
        super().__init__()
        self.data = data
        #: "Now", to show today's receipts as a time of day (the app's clock: tests freeze it).
        self.clock = clock
        #: Where the journey's further pages are read: the UI thread's connection (as the main table's pages).
        self.reads = reads
        #: The journey's time base: "received" (the main table's) or "created" (Conscent's).
        self.times: Order = "received"
        self.masked = False
        #: The whole journey's pairing summary; None until read (a long journey's, after the first screen).
        self.summary: PairSummary | None = data.summary
        self._columns: tuple[str, ...] = ()
        self._layout: tuple[int, ...] = ()

    def on_mount(self) -> None:
        # ThemedScreen's on_mount runs too (Textual calls each class's handler).
        self.watch(self.app, "masked", self._masking, init=True)
        self.query_one("#journey", JourneyTable).focus()
        if self.summary is None and self.reads is not None:  # once the first screen is drawn: not competing with it
            self.call_after_refresh(self._read_summary, self.reads)

    def _masking(self, masked: bool) -> None:
        self.masked = masked
        self.fill()

    def redraw(self) -> None:
        self.fill()

    @work(thread=True, exit_on_error=False, group="reader-summary")
    def _read_summary(self, reads: ReadAccess) -> None:
        """The outcome figures of a long journey, on a connection of their own off the UI thread."""
        journey = self.data.journey
        try:
            with reads.connect() as db:
                summary = journey.summary(db)
        except sqlite3.Error as exc:  # said, not a "pairing…" that never ends
            self.post_message(ReadFailed(exc, "the journey's outcome figures"))
            return
        self.app.call_from_thread(self._summary_read, summary)

    def _summary_read(self, summary: PairSummary) -> None:
        self.summary = summary
        if self.is_mounted:
            self.query_one("#reader-summary", Static).update(self._summary())

    def compose(self) -> ComposeResult:
        yield Static(id="reader-title", classes="title")
        with Container(id="reader-top"):
            yield Static(id="reader-profile", classes="panel")
            yield Static(id="reader-counts", classes="panel")
        yield Static(id="reader-summary")
        yield JourneyTable(id="journey")
        yield KeyFooter()

    @property
    def width(self) -> int:
        return self.size.width or self.app.size.width

    def on_resize(self, event: Resize) -> None:
        if self.is_mounted and self._layout and self._layout != self._layout_key():
            self.fill()

    def _layout_key(self) -> tuple[int, ...]:
        width = self.width
        return (width >= SIDE_BY_SIDE, width >= BOTH_TIMES, self._profile_columns(width))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "times":
            return parameters != (self.times,)
        return super().check_action(action, parameters)

    def action_times(self, times: str) -> None:
        self.times = "created" if times == "created" else "received"
        self.fill()
        self.refresh_bindings()

    def fill(self) -> None:
        masked = self.masked
        data = self.data
        profile = data.profile
        self._layout = self._layout_key()
        title = Text("Reader ", style="bold")
        who = reader_name(profile.get("name"), profile.get("username"), data.user_id, masked=masked)
        title.append(who, style=self.tone("name"))
        title.append(f"   {cell(data.user_id)}", style=self.tone("muted"))
        self.query_one("#reader-title", Static).update(title)
        self.query_one("#reader-profile", Static).update(self._profile(masked))
        self.query_one("#reader-counts", Static).update(self._counts())
        self.query_one("#reader-summary", Static).update(self._summary())
        self._journey()

    # -- the panels -----------------------------------------------------------------

    def _profile_columns(self, width: int) -> int:
        """How many label-and-value columns the profile gets at this screen width."""
        room = width - 2 - (COUNTS_WIDTH if width >= SIDE_BY_SIDE else 0)
        return max(1, min(3, room // PROFILE_COLUMN))

    def _profile_values(self, masked: bool) -> list[tuple[str, str]]:
        p = self.data.profile
        values: dict[str, Any] = dict(p)
        location = [str(p[k]) for k in ("latitude", "longitude") if p.get(k) is not None]
        values["location"] = ", ".join(location + ([str(p["postcode"])] if p.get("postcode") else []))
        values["device"] = " ".join(str(p[k]) for k in ("device_type", "device_model") if p.get(k))
        items = []
        for key, label in PROFILE_FIELDS:
            value = values.get(key)
            if key == "location" and masked and value:
                value = "••••"
            items.append((label, cell(mask_if(key, value, masked), 300)))
        # Received times, as the main table's: the journey's created times can be far older.
        items.append(("First received", format_datetime(p.get("first_seen"))))
        items.append(("Last received", format_datetime(p.get("last_seen"))))
        return items

    def _profile(self, masked: bool) -> RenderableType:
        columns = self._profile_columns(self.width)
        table = Table(
            title="Profile (latest known)",
            title_justify="left",
            show_header=False,
            box=None,
            padding=(0, 1),
            expand=True,
        )
        for _ in range(columns):
            table.add_column(style=self.tone("muted"), no_wrap=True)
            table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        items = self._profile_values(masked)
        for start in range(0, len(items), columns):
            cells: list[Text] = []
            for label, value in items[start : start + columns]:
                cells += [Text(label), Text(value)]
            table.add_row(*cells)
        agent = cell(self.data.profile.get("user_agent"), 300)
        line = Text(" User agent ", style=self.tone("muted"))
        line.append(agent)
        line.no_wrap, line.overflow = True, "ellipsis"
        return Group(table, line)

    def _counts(self) -> RenderableType:
        if self.width >= SIDE_BY_SIDE:
            table = Table(title="Events", title_justify="left", show_header=False, box=None, padding=(0, 1))
            table.add_column(no_wrap=True, overflow="ellipsis", max_width=COUNTS_WIDTH - 12)
            table.add_column(justify="right", no_wrap=True)
            for event, n in self.data.counts:
                table.add_row(Text(event_label(event)), Text(number(n)))
            return table
        return self._count_lines(self.width - 2)

    def _count_lines(self, width: int) -> Text:
        """``Events  ▶ view 3 · paywall.click 1 …``: whole items per line, a long name cut with ``…``."""
        out = Text("Events ", style="bold")
        used = len(out)
        for index, (event, n) in enumerate(self.data.counts):
            figure = f" {number(n)}"
            item = _cut(event_label(event), max(4, width - 4 - len(figure)))
            item.append(figure, style="bold")
            gap = " · " if index else " "
            if used + len(gap) + item.cell_len > width and index:
                out.append("\n")
                gap, used = "  ", 0
            out.append(gap, style=self.tone("muted"))
            out.append_text(item)
            used += len(gap) + item.cell_len
        return out

    def _summary(self) -> Text:
        s, counted = self.summary, self.data.journey.counted
        summary = Text()
        summary.append(f"{count(counted.views, 'view')}, {count(counted.closes, 'close')}: ", style="bold")
        if s is None:  # a long journey's outcomes: read after the first screen
            summary.append("pairing…", style=self.tone("muted"))
        else:
            summary.append(f"{number(s.closed)} closed", style=self.tone("close"))
            summary.append(" · ", style=self.tone("muted"))
            summary.append(f"{number(s.open)} open", style=self.tone("warning"))
            summary.append(" · ", style=self.tone("muted"))
            summary.append(f"{number(s.converted)} converted", style=self.tone("good"))
            if s.median_time_to_close is not None:
                summary.append(f" · median time to close {format_duration(s.median_time_to_close)}")
        if counted.duplicates:  # the counts above count deliveries; these repeats are neither paired nor counted here
            summary.append(
                f" · {count(counted.duplicates, 'repeated delivery', 'repeated deliveries')}", style=self.tone("muted")
            )
        if self.width >= SIDE_BY_SIDE:  # narrower, the column's title says it
            summary.append(f"   journey by {self.times} time", style=self.tone("muted"))
        return summary

    # -- the journey ------------------------------------------------------------------

    def _journey_columns(self) -> tuple[str, ...]:
        """Most telling first, so at 80 columns what scrolls off is the click action and the content.

        The journey's time base leads; from 160 columns the other time closes the row.
        """
        first, other = ("Received", "Created") if self.times == "received" else ("Created", "Received")
        more = (other,) if self.width >= BOTH_TIMES else ()
        return (first, "Event", "Pairing", "Time to close", "Outcome", "Click action", "Content", *more)

    def _fetch(self, order: Order) -> Callable[[int, int], list[JourneyStep]]:
        """Read steps of the journey in ``order`` on the UI thread's connection (none: only what was read)."""
        journey, reads = self.data.journey, self.reads
        if reads is None:
            return lambda offset, limit: []
        return lambda offset, limit: journey.steps(reads.db, order, offset, limit)

    def _position(self, step_id: int) -> int | None:
        """Where a step stands in the journey's current order."""
        journey, reads = self.data.journey, self.reads
        if reads is not None:
            return journey.position(reads.db, self.times, step_id)
        known = {step.id: index for index, step in enumerate(self.data.first, self.data.first_offset)}
        return known.get(step_id) if self.times == "received" else None

    def _journey(self) -> None:
        table = self.query_one("#journey", JourneyTable)
        first_fill, roomy = not self._columns, self.width >= BOTH_TIMES
        cursor = table.key_of() if not first_fill else None
        columns = self._journey_columns()
        self._columns = columns
        titles = tuple(name if roomy else NARROW_TITLES.get(name, name) for name in columns)
        day = today(self.clock())

        def cells(step: JourneyStep) -> list[Text]:
            found = self._step_cells(step, roomy, day)
            return [found[title] for title in columns]

        known = {}
        if self.times == "received":  # what the loader read, until the journey is read again
            known = dict(enumerate(self.data.first, self.data.first_offset))
        total = self.data.journey.total
        # Opens on the newest step (the last row); afterwards the cursor stays on its step.
        index = None if cursor is None else self._position(int(cursor))
        table.show(self._fetch(self.times), total, titles, cells, known, total - 1 if index is None else index)

    def _step_cells(self, step: JourneyStep, roomy: bool, day: str) -> dict[str, Text]:
        """The cells of a step by column; narrower than 160, today's receipts as the main table shows them."""
        row = step.row
        event = row.get("event")
        style = self.tone("view" if event == GATEWAY_VIEW else "close" if event == GATEWAY_CLOSE else "")
        muted = self.tone("muted")
        outcome = step.outcome or ""
        own_action, created, received = row.get("click_action"), row.get("created_at"), row.get("received_at")
        if own_action:
            action = _cut(cell(own_action), 28)
        elif step.close_action:  # a view's: the action of the close it paired with
            action = _cut("→ " + cell(step.close_action), 28, muted)
        else:
            action = Text("")
        return {
            "Received": Text(format_datetime(received) if roomy else format_time(received, day)),
            "Created": Text(format_datetime(created), style="") if created else Text("–", style=muted),
            "Event": _cut(event_label(event), 20 if roomy else 14, style),
            "Pairing": Text(self._pairing(step, roomy), style=muted),
            "Time to close": Text(format_duration(step.time_to_close) if step.time_to_close is not None else ""),
            "Outcome": Text(outcome, style=self.tone(*OUTCOME_TONES.get(outcome, ()))),
            "Click action": action,
            "Content": _cut(cell(row.get("content_id")), 32 if roomy else 24),
        }

    @staticmethod
    def _pairing(step: JourneyStep, roomy: bool) -> str:
        if step.pair_id is not None:
            if not roomy:  # the arrow says which way: a view points on to its close
                return f"{'→' if step.is_view else '←'} #{step.pair_id}"
            arrow = "→ close" if step.is_view else "← view"
            how = f" by {PAIRED_BY.get(step.paired_by, step.paired_by)}" if step.paired_by else ""
            return f"{arrow} #{step.pair_id}{how}"
        if step.duplicate:
            return f"dup of #{step.row.get('duplicate_of')}"
        return ""

    @on(JourneyTable.Selected)
    def _open(self, message: JourneyTable.Selected) -> None:
        self.post_message(OpenDelivery("event", message.step_id))

    @on(JourneyTable.DetailsRequested)
    def _details(self, message: JourneyTable.DetailsRequested) -> None:
        self.post_message(OpenDelivery("event", message.step_id))
