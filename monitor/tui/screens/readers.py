"""Every reader of the session, most recently seen first: live, filterable; Enter drills down.

Shows the :class:`~monitor.queries.ReaderPage` the app read for it, and asks
the app for it again (:class:`~monitor.tui.messages.ReadersWanted`): twice a
second "if the database changed" (the app compares SQLite's
``data_version``, so rows committed by this monitor's writer or by another
process both count), when the filter changes, and for more rows when the
cursor reaches the last one. The cursor stays on the same reader across
reloads. Must not import the app, nor read the database.

The filter box (``/``) takes the main table's filter language: a reader is
listed when one of their events matches (a plain word is looked up in every
event's text: name, username, phone, email, user id, country...;
``user:``, ``country:``... as on the main table). Esc clears it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.widgets import DataTable, Input, Static

from monitor.filters import FilterError, compile_filter
from monitor.masking import mask_if
from monitor.queries import ReaderPage
from monitor.textsafe import cell
from monitor.tui.format import format_short, reader_name
from monitor.tui.messages import OpenDelivery, OpenReader, ReadersWanted
from monitor.tui.screens.palette import MaskedTableScreen
from monitor.tui.widgets.footer import KeyFooter
from monitor.tui.widgets.keyed_table import KeyedTable
from monitor.wording import count, number

#: Readers read at a time; End on the last one reads this many more.
PAGE = 500
#: How often the list asks whether the database changed (seconds); the app reads again only if it did.
POLL_INTERVAL = 0.5
#: From this width the list shows the email too.
ROOMY = 160


class ReadersTable(KeyedTable):
    """Enter opens the reader's drill-down; ``d`` the reader's latest delivery."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Reader", show=True),
        Binding("d", "details", "Details", show=True),
    ]


class ReadersScreen(MaskedTableScreen):
    TABLE = "#readers"
    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: keys typed right after "/" belong to the box, not the table (issue 12, item 11).
        Binding("slash", "filter", "Filter", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, page: ReaderPage, *, filter_text: str = "", limit: int = PAGE) -> None:
        super().__init__()
        self.page = page
        #: The filter the rows answer, and how many rows were asked for.
        self.filter_text = filter_text
        self.limit = limit
        #: What is wrong with the filter typed or applied, shown whole until the text changes.
        self.problem: str | None = None
        self._columns: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(id="readers-title", classes="title")
        yield ReadersTable(id="readers")
        yield Input(
            placeholder="filter readers: a name, phone, email, user id… or user: country: …", id="readers-filter"
        )
        yield KeyFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#readers-filter", Input).display = False
        self.set_interval(POLL_INTERVAL, self._poll)

    def on_resize(self, event: Resize) -> None:
        if self.is_mounted and self._columns and self._columns != self._column_titles():
            self.fill()

    # -- attributes down: the app hands over what it read ------------------------------

    def show(self, page: ReaderPage, filter_text: str, limit: int, error: str | None = None) -> None:
        """Rows read again; ignored when they answer an older filter. The cursor stays on its reader."""
        if filter_text != self.filter_text or limit != self.limit:
            return
        if error is not None:
            self.problem = error
            self._title()
            return
        self.page = page
        self.fill()

    # -- drawing -----------------------------------------------------------------------

    def fill(self) -> None:
        table = self.query_one("#readers", ReadersTable)
        key = table.key_of()
        columns = self._column_titles()
        if columns != self._columns:
            table.clear(columns=True)
            for title in columns:
                table.add_column(title, key=title)
            self._columns = columns
        else:
            table.clear()
        for r in self.page.rows:
            cells = self._cells(r)
            table.add_row(*(cells[title] for title in columns), key=r["user_id"])
        table.move_to_key(key, fallback=0)
        self._title()

    def _column_titles(self) -> tuple[str, ...]:
        """Who and when first: at 80 columns what scrolls off is the country and the user id."""
        roomy = (self.size.width or self.app.size.width) >= ROOMY
        return (
            "Reader",
            "Last seen",
            "Events",
            "Views",
            "Closes",
            "Phone",
            *(("Email",) if roomy else ()),
            "Country",
            "User id",
        )

    def _cells(self, r: dict[str, Any]) -> dict[str, Text]:
        masked = self.masked
        name = Text(reader_name(r.get("name"), r.get("username"), masked=masked))  # the user id has a column
        name.truncate(28, overflow="ellipsis")
        email = Text(cell(mask_if("email", r.get("email"), masked)))
        email.truncate(32, overflow="ellipsis")
        return {
            "Reader": name,
            "Last seen": Text(format_short(r.get("last_seen"))),
            "Events": Text(number(r.get("events") or 0), justify="right"),
            "Views": Text(number(r.get("views") or 0), style=self.tone("view"), justify="right"),
            "Closes": Text(number(r.get("closes") or 0), style=self.tone("close"), justify="right"),
            "Phone": Text(cell(mask_if("phone_number", r.get("phone_number"), masked))),
            "Email": email,
            "Country": Text(cell(r.get("country"))),
            "User id": Text(cell(r.get("user_id"))),
        }

    def _title(self) -> None:
        page, muted = self.page, self.tone("muted")
        title = Text()
        if not page.rows:
            title.append("No reader", style="bold")
            if self.filter_text:
                title.append(" matches ", style="bold")
                title.append(cell(self.filter_text, 200), style=self.tone("strong"))
                title.append(" · Esc clears the filter", style=muted)
            else:
                title.append(" yet", style="bold")
                title.append(" · readers appear here as their deliveries arrive", style=muted)
        else:
            title.append(count(page.total, "reader"), style="bold")
            if self.filter_text:
                title.append(" matching ", style=muted)
                title.append(cell(self.filter_text, 200), style=self.tone("strong"))
            if page.total > len(page.rows):
                title.append(f" · the {number(len(page.rows))} seen most recently (End: more)", style=muted)
        if self.problem is not None:
            title.append("\n")
            title.append(f"✗ {self.problem}", style=self.tone("bad"))
        self.query_one("#readers-title", Static).update(title)

    # -- asking the app ------------------------------------------------------------------

    def _poll(self) -> None:
        if self.is_current:  # not while a drill-down opened from here covers it
            self.post_message(ReadersWanted(self.filter_text, self.limit, if_changed=True))

    def _ask(self, filter_text: str, limit: int) -> None:
        self.filter_text, self.limit = filter_text, limit
        self.post_message(ReadersWanted(filter_text, limit))

    @on(DataTable.RowHighlighted, "#readers")
    def _more(self, message: DataTable.RowHighlighted) -> None:
        table = message.data_table
        shown = len(self.page.rows)
        if table.cursor_row == table.row_count - 1 and self.page.total > shown and self.limit <= shown:
            self._ask(self.filter_text, self.limit + PAGE)

    # -- the filter box --------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#readers-filter", Input)
        if box.value != self.filter_text:
            box.value = self.filter_text
        box.cursor_position = len(box.value)
        box.display = True
        self.set_focus(box, scroll_visible=False)  # now, not after the app's next turn (see MainScreen)

    def action_back(self) -> None:
        """Esc: close the filter box and clear the filter; with neither, back to where the list was opened."""
        box = self.query_one("#readers-filter", Input)
        if not box.display and not self.filter_text:
            self.app.pop_screen()
            return
        box.display = False
        box.value = ""
        self.problem = None
        self.set_focus(self.query_one("#readers", ReadersTable), scroll_visible=False)
        if self.filter_text:
            self._ask("", PAGE)
        self._title()

    @on(Input.Changed, "#readers-filter")
    def _typed(self, message: Input.Changed) -> None:
        self.problem = self._check(message.value)
        self._title()

    @on(Input.Submitted, "#readers-filter")
    def _submitted(self, message: Input.Submitted) -> None:
        text = message.value.strip()
        self.problem = self._check(text)
        self._title()
        if self.problem is not None:
            return
        message.input.display = False
        self.set_focus(self.query_one("#readers", ReadersTable), scroll_visible=False)
        if text != self.filter_text:
            self._ask(text, PAGE)

    @staticmethod
    def _check(text: str) -> str | None:
        try:
            compile_filter(text)
        except FilterError as exc:
            return f"{exc.message} (at column {exc.position + 1})"
        return None

    # -- the table's keys --------------------------------------------------------------------

    @on(DataTable.RowSelected, "#readers")
    def _open(self, message: DataTable.RowSelected) -> None:
        if message.row_key.value:
            self.post_message(OpenReader(message.row_key.value))

    @on(KeyedTable.DetailsRequested, "#readers")
    def _details(self, message: KeyedTable.DetailsRequested) -> None:
        found = next((r for r in self.page.rows if r["user_id"] == message.row_key.value), None)
        if found is not None and found.get("last_id") is not None:
            self.post_message(OpenDelivery("event", int(found["last_id"])))


__all__ = ["PAGE", "ReadersScreen", "ReadersTable"]
