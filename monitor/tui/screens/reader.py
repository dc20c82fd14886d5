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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.events import Resize
from textual.widgets import DataTable, Static

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.journey import JourneyStep
from monitor.masking import mask_if
from monitor.textsafe import cell
from monitor.tui.format import event_label, format_datetime, format_duration, format_time, reader_name, today
from monitor.tui.messages import OpenDelivery, ReaderData
from monitor.tui.screens.palette import MaskedTableScreen
from monitor.tui.widgets.footer import KeyFooter
from monitor.tui.widgets.keyed_table import KeyedTable
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


class JourneyTable(KeyedTable):
    """The journey: Enter and ``d`` both open the step's delivery (the reader is already open)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Details", show=True),
        Binding("d", "details", "Details", show=False),
    ]


def _cut(text: str | Text, width: int, style: Any = "") -> Text:
    """``text`` in at most ``width`` cells, ending in ``…`` when cut."""
    out = text if isinstance(text, Text) else Text(text, style=style)
    out.truncate(max(width, 1), overflow="ellipsis")
    return out


class ReaderScreen(MaskedTableScreen):
    TABLE = "#journey"
    BINDINGS: ClassVar[list[BindingType]] = [
        # One key, two bindings: the footer names the time the key switches to (check_action).
        Binding("t", "times('created')", "Created times"),
        Binding("t", "times('received')", "Received times"),
    ]
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (SIDE_BY_SIDE, "-wide"),
        (BOTH_TIMES, "-roomy"),
    ]

    def __init__(self, data: ReaderData, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.data = data
        #: "Now", to show today's receipts as a time of day (the app's clock: tests freeze it).
        self.clock = clock
        #: The journey's time base: "received" (the main table's) or "created" (Conscent's).
        self.times = "received"
        self._columns: tuple[str, ...] = ()
        self._layout: tuple[int, ...] = ()

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
        self.times = times
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
        s = self.data.summary
        summary = Text()
        summary.append(f"{count(s.views, 'view')}, {count(s.closes, 'close')}: ", style="bold")
        summary.append(f"{number(s.closed)} closed", style=self.tone("close"))
        summary.append(" · ", style=self.tone("muted"))
        summary.append(f"{number(s.open)} open", style=self.tone("warning"))
        summary.append(" · ", style=self.tone("muted"))
        summary.append(f"{number(s.converted)} converted", style=self.tone("good"))
        if s.median_time_to_close is not None:
            summary.append(f" · median time to close {format_duration(s.median_time_to_close)}")
        if s.duplicates:  # the counts above count deliveries; these repeats are neither paired nor counted here
            summary.append(
                f" · {count(s.duplicates, 'repeated delivery', 'repeated deliveries')}", style=self.tone("muted")
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

    def _ordered(self) -> list[JourneyStep]:
        steps = self.data.steps  # in created order (build_journey's)
        if self.times == "created":
            return list(steps)
        return sorted(steps, key=lambda step: (float(step.row.get("received_at") or 0), step.id))

    def _journey(self) -> None:
        table = self.query_one("#journey", JourneyTable)
        first_fill, roomy = not self._columns, self.width >= BOTH_TIMES
        cursor = table.key_of()
        columns = self._journey_columns()
        if columns != self._columns:
            table.clear(columns=True)
            for name in columns:
                table.add_column(name if roomy else NARROW_TITLES.get(name, name), key=name)
            self._columns = columns
        else:
            table.clear()
        day = today(self.clock())
        for step in self._ordered():
            cells = self._step_cells(step, roomy, day)
            table.add_row(*(cells[title] for title in columns), key=str(step.id))
        # Opens on the newest step (the last row); afterwards the cursor stays on its step.
        table.move_to_key(None if first_fill else cursor, fallback=table.row_count - 1)

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

    @on(DataTable.RowSelected, "#journey")
    def _open(self, message: DataTable.RowSelected) -> None:
        self._open_step(message.row_key.value)

    @on(KeyedTable.DetailsRequested, "#journey")
    def _details(self, message: KeyedTable.DetailsRequested) -> None:
        self._open_step(message.row_key.value)

    def _open_step(self, key: str | None) -> None:
        if key is not None:
            self.post_message(OpenDelivery("event", int(key)))
