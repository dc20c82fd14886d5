"""Every recorded run; pick one, or all of them, to review.

Shows the rows and counts the app read for it; Enter tells the app which
session to review (:class:`~monitor.tui.messages.SessionChosen`). Must not
import the app.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from monitor.textsafe import cell
from monitor.tui.format import format_datetime
from monitor.tui.messages import SessionChosen
from monitor.tui.screens.palette import ThemedScreen

ALL = "all"


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

    def compose(self) -> ComposeResult:
        yield Static(
            Text(f"Sessions ({len(self.rows)}) — Enter reviews one, or all of them", style="bold"), classes="title"
        )
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        for title in (
            "Session",
            "Mode",
            "Started",
            "Ended",
            "Address",
            "Events",
            "Views",
            "Closes",
            "Rejected",
            "Per event type",
        ):
            table.add_column(title)
        self._fill(table)
        current = self.current
        table.move_cursor(
            row=0 if current is None else 1 + next((i for i, r in enumerate(self.rows) if r["id"] == current), -1)
        )
        table.focus()

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        self._fill(table)
        table.move_cursor(row=cursor)

    def _fill(self, table: DataTable[Text]) -> None:
        table.add_row(Text("all", style="bold"), *(Text("") for _ in range(9)), key=ALL)
        for row in self.rows:
            session_id = row["id"]
            live = session_id == self.live_session_id
            ended = format_datetime(row.get("ended_at")) or ("running" if live else "(not closed)")
            per_type = ", ".join(f"{name} {n}" for name, n in self.counts.get(session_id, {}).items())
            table.add_row(
                Text(f"#{session_id}" + (" (live)" if live else ""), style=self.tone("good", "strong") if live else ""),
                Text(cell(row.get("mode"))),
                Text(format_datetime(row.get("started_at"))),
                Text(ended),
                Text(cell(row.get("listen") or row.get("source"), 60)),
                Text(str(row.get("events") or 0)),
                Text(str(row.get("views") or 0), style=self.tone("view")),
                Text(str(row.get("closes") or 0), style=self.tone("close")),
                Text(str(row.get("rejected") or 0), style=self.tone("bad") if row.get("rejected") else ""),
                Text(cell(per_type, 200), style=self.tone("muted")),
                key=str(session_id),
            )

    @on(DataTable.RowSelected)
    def _pick(self, message: DataTable.RowSelected) -> None:
        key = message.row_key.value
        # To the app, not this screen: the screen is gone before a message to it would bubble up.
        self.app.post_message(SessionChosen(None if key == ALL else int(key or 0)))
        self.app.pop_screen()
