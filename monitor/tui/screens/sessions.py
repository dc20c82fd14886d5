"""Every recorded run; pick one, or all of them, to review."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from monitor.textsafe import cell

if TYPE_CHECKING:
    from monitor.tui.app import MonitorApp

ALL = "all"


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


class SessionsScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    app: MonitorApp

    def __init__(self, rows: list[dict[str, Any]], counts: dict[int, dict[str, int]]) -> None:
        super().__init__()
        self.rows = rows
        self.counts = counts

    def compose(self) -> ComposeResult:
        yield Static(
            Text(f"Sessions ({len(self.rows)}) — Enter reviews one, or all of them", style="bold"), classes="title"
        )
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
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
        table.add_row(Text("all", style="bold"), *(Text("") for _ in range(9)), key=ALL)
        for row in self.rows:
            session_id = row["id"]
            live = session_id == self.app.live_session_id
            ended = _when(row.get("ended_at")) or ("running" if live else "(not closed)")
            per_type = ", ".join(f"{name} {n}" for name, n in self.counts.get(session_id, {}).items())
            table.add_row(
                Text(f"#{session_id}" + (" (live)" if live else ""), style="bold green" if live else ""),
                Text(cell(row.get("mode"))),
                Text(_when(row.get("started_at"))),
                Text(ended),
                Text(cell(row.get("listen") or row.get("source"), 60)),
                Text(str(row.get("events") or 0)),
                Text(str(row.get("views") or 0), style="green"),
                Text(str(row.get("closes") or 0), style="magenta"),
                Text(str(row.get("rejected") or 0), style="red" if row.get("rejected") else ""),
                Text(cell(per_type, 200), style="dim"),
                key=str(session_id),
            )
        current = self.app.session_id
        table.move_cursor(
            row=0 if current is None else 1 + next((i for i, r in enumerate(self.rows) if r["id"] == current), -1)
        )
        table.focus()

    @on(DataTable.RowSelected)
    def _pick(self, message: DataTable.RowSelected) -> None:
        key = message.row_key.value
        self.app.pop_screen()
        self.app.switch_session(None if key == ALL else int(key or 0))
