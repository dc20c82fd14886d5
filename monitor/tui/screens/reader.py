"""A reader's drill-down: profile, counts, and the paired journey.

Shows the :class:`~monitor.tui.messages.ReaderData` the app read for it;
Enter on a step asks the app for that delivery. Must not import the app.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.masking import mask_if
from monitor.textsafe import cell
from monitor.tui.format import event_label, format_datetime, format_duration, reader_name
from monitor.tui.messages import OpenDelivery, ReaderData
from monitor.tui.screens.palette import MaskedTableScreen

PROFILE_FIELDS = (
    ("name", "Name"),
    ("username", "Username"),
    ("phone_number", "Phone"),
    ("email", "Email"),
    ("city", "City"),
    ("country", "Country"),
    ("location", "Location"),
    ("device", "Device"),
    ("user_agent", "User agent"),
)

#: The tone (monitor/tui/screens/palette.py) of each pairing outcome.
OUTCOME_TONES = {"closed": ("close",), "open": ("open",), "converted": ("good", "strong")}

__all__ = ["ReaderData", "ReaderScreen"]


class ReaderScreen(MaskedTableScreen):
    TABLE = "#journey"
    COLUMNS = ("Time", "Event", "Click action", "Content", "Pairing", "Time to close", "Outcome")

    def __init__(self, data: ReaderData) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        yield Static(id="reader-title", classes="title")
        with Horizontal(id="reader-top"):
            yield Static(id="reader-profile", classes="panel")
            yield Static(id="reader-counts", classes="panel")
        yield Static(id="reader-summary")
        yield DataTable(id="journey", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def fill(self) -> None:
        masked = self.masked
        data = self.data
        profile = data.profile
        title = Text("Reader ", style="bold")
        who = reader_name(profile.get("name"), profile.get("username"), data.user_id, masked=masked)
        title.append(who, style=self.tone("name"))
        title.append(f"   {cell(data.user_id)}", style=self.tone("muted"))
        self.query_one("#reader-title", Static).update(title)
        self.query_one("#reader-profile", Static).update(self._profile(masked))
        self.query_one("#reader-counts", Static).update(self._counts())
        s = data.summary
        summary = Text()
        summary.append(f"{s.views} views, {s.closes} closes: ", style="bold")
        summary.append(f"{s.closed} closed  ", style=self.tone("close"))
        summary.append(f"{s.open} open  ", style=self.tone("warning"))
        summary.append(f"{s.converted} converted", style=self.tone("good"))
        if s.median_time_to_close is not None:
            summary.append(f"   median time to close {format_duration(s.median_time_to_close)}")
        self.query_one("#reader-summary", Static).update(summary)
        self._journey()

    def _profile(self, masked: bool) -> Table:
        p = self.data.profile
        values: dict[str, Any] = dict(p)
        location = [str(p[k]) for k in ("latitude", "longitude") if p.get(k) is not None]
        values["location"] = ", ".join(location + ([str(p["postcode"])] if p.get("postcode") else []))
        values["device"] = " ".join(str(p[k]) for k in ("device_type", "device_model") if p.get(k))
        table = Table(title="Profile (latest known)", title_justify="left", show_header=False, box=None, padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        for key, label in PROFILE_FIELDS:
            value = values.get(key)
            if key == "location" and masked and value:
                value = "••••"
            table.add_row(Text(label), Text(cell(mask_if(key, value, masked), 300)))
        for key, label in (("first_seen", "First seen"), ("last_seen", "Last seen")):
            if p.get(key):
                table.add_row(Text(label), Text(format_datetime(p[key])))
        return table

    def _counts(self) -> Table:
        table = Table(title="Events", title_justify="left", show_header=False, box=None, padding=(0, 1))
        table.add_column(overflow="fold")
        table.add_column(justify="right")
        for event, count in self.data.counts:
            table.add_row(Text(cell(event or "(legacy)")), Text(str(count)))
        return table

    def _journey(self) -> None:
        table = self.query_one("#journey", DataTable)
        table.clear()
        for step in self.data.steps:
            row = step.row
            when = row.get("created_at") or row.get("received_at")
            stamp = format_datetime(when)
            event = row.get("event")
            style = self.tone("view" if event == GATEWAY_VIEW else "close" if event == GATEWAY_CLOSE else "")
            pairing = ""
            if step.pair_id is not None:
                arrow = "→ close" if step.is_view else "← view"
                pairing = f"{arrow} #{step.pair_id} by {step.paired_by}"
            elif step.duplicate:
                pairing = f"duplicate of #{row.get('duplicate_of')}"
            ttc = format_duration(step.time_to_close) if step.time_to_close is not None else ""
            outcome = step.outcome or ""
            table.add_row(
                Text(stamp),
                Text(event_label(event), style=style),
                Text(cell(row.get("click_action") or step.close_action or "")),
                Text(cell(row.get("content_id"))),
                Text(pairing, style=self.tone("muted")),
                Text(ttc),
                Text(outcome, style=self.tone(*OUTCOME_TONES.get(outcome, ()))),
                key=str(step.id),
            )

    @on(DataTable.RowSelected, "#journey")
    def _open(self, message: DataTable.RowSelected) -> None:
        if message.row_key.value is not None:
            self.post_message(OpenDelivery("event", int(message.row_key.value)))
