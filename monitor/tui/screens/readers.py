"""Every reader of the session, most recent first; Enter drills down."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from monitor.masking import mask_if
from monitor.textsafe import cell

if TYPE_CHECKING:
    from monitor.tui.app import MonitorApp


class ReadersScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    app: MonitorApp

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Readers ({len(self.rows)})", style="bold"), classes="title")
        yield DataTable(id="readers", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for title in ("Reader", "User id", "Phone", "Country", "Events", "Views", "Closes", "Last seen"):
            table.add_column(title)
        self.watch(self.app, "masked", self._show, init=True)
        table.focus()

    def _show(self, masked: bool) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for r in self.rows:
            who = r.get("name") or r.get("username") or ""
            column = "name" if r.get("name") else "username"
            last = r.get("last_seen")
            table.add_row(
                Text(cell(mask_if(column, who, masked))),
                Text(cell(r.get("user_id"))),
                Text(cell(mask_if("phone_number", r.get("phone_number"), masked))),
                Text(cell(r.get("country"))),
                Text(str(r.get("events") or 0)),
                Text(str(r.get("views") or 0), style="green"),
                Text(str(r.get("closes") or 0), style="magenta"),
                Text(time.strftime("%m-%d %H:%M:%S", time.localtime(last)) if last else ""),
                key=r.get("user_id"),
            )

    @on(DataTable.RowSelected)
    def _open(self, message: DataTable.RowSelected) -> None:
        if message.row_key.value:
            self.app.open_reader(message.row_key.value)
