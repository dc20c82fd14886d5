"""Every reader of the session, most recent first; Enter drills down.

Shows the rows the app read for it; Enter asks the app for the reader's
drill-down. Must not import the app.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Static

from monitor.masking import mask_if
from monitor.textsafe import cell
from monitor.tui.format import format_short, reader_name
from monitor.tui.messages import OpenReader
from monitor.tui.screens.palette import MaskedTableScreen


class ReadersScreen(MaskedTableScreen):
    TABLE = "#readers"
    COLUMNS = ("Reader", "User id", "Phone", "Country", "Events", "Views", "Closes", "Last seen")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Readers ({len(self.rows)})", style="bold"), classes="title")
        yield DataTable(id="readers", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def fill(self) -> None:
        masked = self.masked
        table = self.query_one(DataTable)
        table.clear()
        for r in self.rows:
            table.add_row(
                Text(reader_name(r.get("name"), r.get("username"), masked=masked)),  # the user id has a column
                Text(cell(r.get("user_id"))),
                Text(cell(mask_if("phone_number", r.get("phone_number"), masked))),
                Text(cell(r.get("country"))),
                Text(str(r.get("events") or 0)),
                Text(str(r.get("views") or 0), style=self.tone("view")),
                Text(str(r.get("closes") or 0), style=self.tone("close")),
                Text(format_short(r.get("last_seen"))),
                key=r.get("user_id"),
            )

    @on(DataTable.RowSelected)
    def _open(self, message: DataTable.RowSelected) -> None:
        if message.row_key.value:
            self.post_message(OpenReader(message.row_key.value))
