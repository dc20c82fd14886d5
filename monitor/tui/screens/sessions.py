"""Every recorded run; pick one, or all of them, to review.

Shows the rows and counts the app read for it; Enter tells the app which
session to review (:class:`~monitor.tui.messages.SessionChosen`). Must not
import the app.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.widgets import DataTable, Static

from monitor.textsafe import cell
from monitor.tui.format import format_datetime
from monitor.tui.messages import SessionChosen
from monitor.tui.screens.palette import ThemedScreen
from monitor.tui.widgets.footer import KeyFooter
from monitor.tui.widgets.keyed_table import KeyedTable
from monitor.wording import count, number

ALL = "all"
#: The columns from 120 cells wide (narrower, the counts come first: :meth:`SessionsScreen._column_titles`).
COLUMNS = ("Session", "Mode", "Started", "Ended", "Address", "Events", "Views", "Closes", "Rejected", "Per event type")
WIDE = 120


class SessionsTable(KeyedTable):
    """Enter reviews the session under the cursor; a session is no delivery, so ``d`` leads nowhere."""

    DETAILS = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Review", show=True)]


class SessionsScreen(ThemedScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(
        self,
        rows: list[dict[str, Any]],
        counts: dict[int, dict[str, int]],
        *,
        live_session_id: int | None,
        current: int | None,
    ) -> None:
        super().__init__()
        self.rows = rows
        self.counts = counts
        self.live_session_id = live_session_id
        self.current = current
        self._titles: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(
            Text(f"{count(len(self.rows), 'session')} — Enter reviews one, or all of them", style="bold"),
            classes="title",
        )
        yield SessionsTable(id="sessions")
        yield KeyFooter(personal_data=False)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(SessionsTable)
        self._fill(table)
        current = self.current
        table.move_cursor(
            row=0 if current is None else 1 + next((i for i, r in enumerate(self.rows) if r["id"] == current), -1)
        )
        table.focus()

    def on_resize(self, event: Resize) -> None:
        if self.is_mounted and self._titles and self._titles != self._column_titles():
            self.redraw()

    def redraw(self) -> None:
        table = self.query_one(SessionsTable)
        key = table.key_of()
        self._fill(table)
        table.move_to_key(key)

    def _column_titles(self) -> tuple[str, ...]:
        """From 120 columns, a run's times then its counts; narrower, the counts right after its start."""
        if (self.size.width or self.app.size.width) >= WIDE:
            return COLUMNS
        return (
            "Session",
            "Started",
            "Events",
            "Views",
            "Closes",
            "Rejected",
            "Ended",
            "Mode",
            "Address",
            "Per event type",
        )

    def _fill(self, table: SessionsTable) -> None:
        titles = self._column_titles()
        table.clear(columns=titles != self._titles)
        if titles != self._titles:
            for title in titles:
                table.add_column(title, key=title)
            self._titles = titles
        table.add_row(Text("all", style="bold"), *(Text("") for _ in titles[1:]), key=ALL)
        for row in self.rows:
            cells = self._cells(row)
            table.add_row(*(cells[title] for title in titles), key=str(row["id"]))

    def _cells(self, row: dict[str, Any]) -> dict[str, Text]:
        session_id = row["id"]
        live = session_id == self.live_session_id
        ended = format_datetime(row.get("ended_at")) or ("running" if live else "(not closed)")
        per_type = ", ".join(f"{name} {number(n)}" for name, n in self.counts.get(session_id, {}).items())
        rejected = row.get("rejected") or 0
        return {
            "Session": Text(
                f"#{session_id}" + (" (live)" if live else ""), style=self.tone("good", "strong") if live else ""
            ),
            "Mode": Text(cell(row.get("mode"))),
            "Started": Text(format_datetime(row.get("started_at"))),
            "Ended": Text(ended),
            "Address": Text(cell(row.get("listen") or row.get("source"), 60)),
            "Events": Text(number(row.get("events") or 0), justify="right"),
            "Views": Text(number(row.get("views") or 0), style=self.tone("view"), justify="right"),
            "Closes": Text(number(row.get("closes") or 0), style=self.tone("close"), justify="right"),
            "Rejected": Text(number(rejected), style=self.tone("bad") if rejected else "", justify="right"),
            "Per event type": Text(cell(per_type, 200), style=self.tone("muted")),
        }

    @on(DataTable.RowSelected)
    def _pick(self, message: DataTable.RowSelected) -> None:
        key = message.row_key.value
        # To the app, not this screen: the screen is gone before a message to it would bubble up.
        self.app.post_message(SessionChosen(None if key == ALL else int(key or 0)))
        self.app.pop_screen()
