"""The main screen: header counters and the live table of deliveries.

Reads through the :class:`~monitor.reading.ReadAccess` and the
:class:`~monitor.tui.feed.Feed` it is given; the app sets what it shows
(``session_id``, ``masked``, :meth:`MainScreen.set_origin`,
:meth:`MainScreen.set_stats`) and hands it new rows
(:meth:`MainScreen.rows_committed`). It asks the app for everything else by
posting messages (:mod:`monitor.tui.messages`) or binding ``app.*``
actions. Must not import the app, nor hold SQL text.
"""

from __future__ import annotations

import contextlib
import shlex
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widgets import Input, Static

from monitor import queries, tunnel_status
from monitor.filters import FilterError, compile_filter
from monitor.queries import Row
from monitor.reading import ReadAccess
from monitor.textsafe import cell
from monitor.tui.failures import one_line
from monitor.tui.feed import Feed, Seen
from monitor.tui.messages import ExportView, OpenDelivery, OpenReader, ReadFailed, ReplayRow
from monitor.tui.screens.palette import ThemedScreen
from monitor.tui.widgets.columns import ALL_COLUMNS, GATEWAY_COLUMNS
from monitor.tui.widgets.event_table import PAGE_SIZE, EventTable
from monitor.tui.widgets.footer import KeyFooter
from monitor.tui.widgets.stats_bar import StatsBar
from monitor.wording import count, number
from monitor.writer import CommitNotice

if TYPE_CHECKING:  # the dataclasses only: the tunnel's and the forwarder's machinery (aiohttp) draw nothing
    from monitor.forwarder import ForwardStats
    from monitor.tunnel import TunnelState

Mode = Literal["gateway", "all"]

#: Seconds a new filter's first load may take before it is stopped and the user
#: asked (Enter again runs it): the UI's thread waits for it. The largest
#: filters of ordinary words take well under a second on 100,000 rows; many
#: words found in every body (JSON keys) ANDed take 2-4 s there
#: (bench/filter_cost.py). A single full-text look-up can overrun it.
FILTER_BUDGET = 1.0


@dataclass(frozen=True)
class Origin:
    """What the header says about where the rows come from: the app knows it, the screen shows it."""

    url: str | None
    db_path: str
    session: str
    #: Why the listener refuses deliveries (the writer's words), or None while it records them.
    problem: str | None = None
    forward: ForwardStats | None = None
    #: The view includes the session the listener records into (new deliveries show up in it).
    recording: bool = False
    #: The tunnel (``--tunnel``, ``--public-url``) as last read from the service; None without one.
    tunnel: TunnelState | None = None

    @property
    def public_url(self) -> str | None:
        """The public URL (inert) once known, only while a listener runs."""
        return tunnel_status.public_url(self.tunnel) if self.url is not None else None

    @property
    def webhook_url(self) -> str | None:
        """The URL to give Conscent: the public one when there is one, else the local one."""
        return self.public_url or self.url


#: A delivery the listener records as it is: the smallest Conscent-shaped body.
TRY_BODY = '{"event":"payment_gateway.view","user_id":"curl-test"}'


def try_curl(url: str, width: int = 0) -> str:
    """A curl command that sends :data:`TRY_BODY` to ``url``; over several lines (``\\``) when ``width`` is short."""
    parts = ["curl -sS -H 'Content-Type: application/json'", f"--data-binary {shlex.quote(TRY_BODY)}", shlex.quote(url)]
    one_line = " ".join(parts)
    if width <= 0 or len(one_line) <= width:
        return one_line
    return " \\\n  ".join(parts)


class MainScreen(ThemedScreen):
    BINDINGS = [
        # A priority binding runs as the app reads the key, before it hands the
        # next keys on: a burst typed after "/" reaches the box, not the table.
        Binding("slash", "filter", "Filter", priority=True),
        Binding("a", "toggle_mode", "Gateway/all"),
        Binding("u", "app.open_readers", "Readers"),
        Binding("s", "app.open_sessions", "Sessions"),
        Binding("exclamation_mark", "app.open_checks", "Checks"),
        Binding("i", "app.open_insights", "Insights"),
        Binding("x", "export", "Export"),
        # Hidden where it cannot work (check_action); the second "r" then says why.
        Binding("r", "replay", "Replay"),
        Binding("r", "replay_unavailable", "Replay", show=False),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("y", "copy_try", "Copy curl"),
        Binding("c", "copy_url", "Copy URL"),
        # While typing a filter: Enter applies it (the box's own Enter, named in the footer).
        Binding("enter", "apply_filter", "Apply filter", priority=True),
    ]

    #: Personal data hidden (the app's ``m``).
    masked: reactive[bool] = reactive(False, init=False)

    def __init__(self, reads: ReadAccess, feed: Feed, clock: Callable[[], float]) -> None:
        super().__init__()
        self.reads = reads
        self.feed = feed
        self.clock = clock
        #: The session shown (None: all); the app sets it before :meth:`reload`.
        self.session_id: int | None = None
        self.mode: Mode = "gateway"
        self.filter_text = ""
        self.view = queries.View(mode="gateway", session_id=None)
        #: A read that failed, shown on the status line until a view loads again.
        self._error: str | None = None
        #: A filter stopped for its time: Enter on the same text runs it without a limit.
        self._slow_filter: str | None = None
        #: What is wrong with the text in the filter box: shown until the text changes (or Esc).
        self._filter_problem: str | None = None
        self._origin: Origin | None = None
        self._stats: queries.Stats | None = None
        #: Whether ``r`` can replay the row under the cursor, as the footer last showed it.
        self._replayable: bool | None = None

    def compose(self) -> ComposeResult:
        yield StatsBar(id="stats")
        yield Static(id="listener-alarm")
        yield EventTable(id="table", clock=self.clock)
        yield Static(id="empty-hint")
        yield Static(id="statusline")
        yield Input(
            placeholder='filter: event:view user:… content:… country:… device:… sig:… -term "phrase"',
            id="filter",
            select_on_focus=False,  # keys typed right after "/" add to the text; Esc clears it
        )
        yield KeyFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#filter", Input).display = False
        self.query_one("#listener-alarm", Static).display = False
        if self._origin is not None:
            self.set_origin(self._origin)
        self.table.masked = self.masked  # set before the screen was mounted (--web-mask)
        self.reload()
        self.table.focus()
        # Where the cursor is (status line) and whether "r" can replay its row (footer).
        self.watch(self.table, "cursor_row", self.update_statusline, init=False)
        self.watch(self.table, "scroll_y", self.update_statusline, init=False)

    def _check_replayable(self) -> None:
        """The row under the cursor changed (a move, a new view, a new row on top): is ``r`` still right?"""
        replayable = self._can_replay()
        if replayable != self._replayable:  # not on every move: the footer is composed again
            self._replayable = replayable
            self.refresh_bindings()

    @property
    def live(self) -> bool:
        """A listener records into this database (the header shows its URL)."""
        return self._origin is not None and self._origin.url is not None

    def _can_replay(self) -> bool:
        if not self.live or not self.is_mounted:
            return False
        row = self.table.current
        return row is not None and row.source != "rejected"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys the footer offers only where they work (False hides a key)."""
        if action == "replay":
            return self._can_replay()
        if action == "replay_unavailable":
            return not self._can_replay()
        if action == "filter":  # in the box, "/" is text (a path, a URL)
            return not self._typing_filter()
        if action == "copy_try":
            recording = self._origin is not None and self._origin.recording
            return self.live and recording and self.has_class("-empty") and not self.filter_text
        if action == "copy_url":
            return self.live
        if action == "apply_filter":
            return self._typing_filter()
        if action == "clear_filter":
            return self._typing_filter() or bool(self.filter_text) or self._error is not None
        return True

    def _typing_filter(self) -> bool:
        try:
            return self.focused is self.query_one("#filter", Input)
        except NoMatches:  # not composed yet
            return False

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    def watch_masked(self, masked: bool) -> None:
        if not self.children:
            return
        self.table.masked = masked
        self.update_statusline()

    def redraw(self) -> None:
        if self._origin is not None:
            self.set_origin(self._origin)
        self.update_statusline()

    def export_filter(self) -> str:
        """The current filter, plus "views and closes only" in gateway mode."""
        gateway = "event:view OR event:close" if self.mode == "gateway" else ""  # OR binds tighter than spaces
        return " ".join(part for part in (gateway, self.filter_text) if part)

    # -- the query -----------------------------------------------------------

    def reload(self, *, patient: bool = False) -> bool:
        """Re-run the current view from the top (mode, filter or session changed).

        When the database cannot answer, the status line says why and the
        table keeps showing the previous view; returns whether it loaded. A
        filtered view gets :data:`FILTER_BUDGET` seconds unless ``patient``.
        """
        reads = self.reads
        budget = None if patient or not self.filter_text else FILTER_BUDGET
        first: list[Row] | None = None
        try:
            view = self._view()
            with reads.snapshot() as seen, reads.time_limit(budget):
                total = queries.count_rows(reads.db, view)
                if budget is not None:  # the first page's query costs as much again: inside the budget too
                    first = queries.fetch_rows(reads.db, view, 0, PAGE_SIZE, total=total)
        except (sqlite3.Error, FilterError) as exc:
            slow = budget is not None and isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted"
            self._slow_filter = self.filter_text if slow else None
            self.show_error(exc, slow=budget if slow else None)
            return False
        self.view, self._error, self._slow_filter = view, None, None
        self.feed.view_seen = Seen(*seen)
        columns = GATEWAY_COLUMNS if self.mode == "gateway" else ALL_COLUMNS
        table = self.table
        table.show(
            lambda offset, limit: queries.fetch_rows(reads.db, view, offset, limit, total=table.total),
            total,
            columns,
            first,
        )
        self.update_statusline()
        return True

    def _view(self) -> queries.View:
        now = self.clock()
        compiled = compile_filter(self.filter_text, table="events", now=now)
        rejected = compile_filter(self.filter_text, table="rejected", now=now)
        return queries.View(
            mode=self.mode,
            session_id=self.session_id,
            where=compiled.where,
            params=compiled.params,
            rejected_where=rejected.where,
            rejected_params=rejected.params,
            facets=compiled.facets,
        )

    def show_error(self, exc: BaseException, *, slow: float | None = None) -> None:
        """A read failed: on the status line until a view loads (the app ends offline review of a damaged file).

        ``slow``: the filter was stopped after that many seconds.
        """
        self.post_message(ReadFailed(exc, "the view", quiet=True))
        if slow is not None:  # the point first: a narrow terminal shows one line of it
            self._error = (
                f"slow filter stopped after {slow:g} s: Enter runs it anyway (rarer words or a field are faster)"
            )
        elif isinstance(exc, FilterError):
            self._error = f"{exc.message} (at column {exc.position + 1})"
        else:
            self._error = f"cannot read the database: {one_line(exc)}"
        self.update_statusline()

    def rows_committed(self, notices: list[CommitNotice]) -> None:
        """New rows were committed: count those this view shows, let the table place them."""
        try:
            added = self.feed.count_for_view(
                self.view,
                notices,
                lambda events, rejected: queries.count_new_rows(self.reads.db, self.view, events, rejected),
            )
        except sqlite3.Error as exc:  # counted with the next commit, or the next view
            self.show_error(exc)
            return
        self.table.add_new(added)
        self.update_statusline()

    def refresh_rows(self, event_ids: set[int] | None = None) -> None:
        """Rows changed in place (forwards recorded): draw them again."""
        self.table.refresh_rows(event_ids)

    def set_origin(self, origin: Origin) -> None:
        previous, self._origin = self._origin, origin
        if not self.children:  # not composed yet: on_mount shows it
            return
        if self.has_class("-empty") and (previous is None or self._hint_urls(previous) != self._hint_urls(origin)):
            self._show_empty_hint()  # the public URL came (or went): the hint names it
        self.query_one(StatsBar).set_origin(
            url=origin.url,
            db_path=origin.db_path,
            session=origin.session,
            healthy=origin.problem is None,
            forward=self._forward_text(origin.forward),
            public=origin.public_url,
            tunnel=tunnel_status.status(origin.tunnel) if origin.tunnel is not None and origin.url else None,
        )
        alarm = self.query_one("#listener-alarm", Static)
        if origin.problem is not None:
            alarm.update(Text(f"✗ Not recording: {cell(origin.problem, 2000)}"))
        alarm.display = origin.problem is not None

    def _forward_text(self, stats: ForwardStats | None) -> Text | None:
        """The header's word on the forward target."""
        if stats is None or not stats.target:
            return None
        text = Text("→ ", style=self.tone("muted"))
        text.append(cell(stats.target, 60))
        if stats.down and stats.last_status is not None:
            text.append(f"  ✗ answering {stats.last_status}", style=self.tone("bad"))
        elif stats.down:
            text.append(f"  ✗ down: {cell(stats.last_error, 60)}", style=self.tone("bad"))
        elif stats.sent:
            text.append(f"  ✓ {stats.last_status}", style=self.tone("good"))
        if stats.pending:
            text.append(f"  {number(stats.pending)} pending", style=self.tone("warning"))
        return text

    def set_stats(self, stats: queries.Stats) -> None:
        self._stats = stats
        with contextlib.suppress(NoMatches):  # the app closed meanwhile: the header is gone
            self.query_one(StatsBar).set_stats(stats)
            if self.has_class("-empty"):  # "nothing yet" may have become "nothing of this kind"
                self._show_empty_hint()

    def update_statusline(self) -> None:
        """Mode, where the cursor is, whether it follows new rows, mask, filter; or what is wrong, whole."""
        line = self.query_one("#statusline", Static)
        problem = self._filter_problem if self._filter_problem is not None else self._error
        self._show_empty_hint()
        self._check_replayable()
        if problem is not None:
            self._show_problem(f"✗ {problem}")
            return
        text = self._status_text()
        if line.has_class("-error"):
            line.remove_class("-error")
            line.update(text)  # one line again: lay out
        else:
            line.update(text, layout=False)  # one line, whatever it says

    def _status_text(self) -> Text:
        table = self.table
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(" GATEWAY " if self.mode == "gateway" else " ALL EVENTS ", style="bold reverse")
        if table.total:
            text.append(f"  row {number(table.cursor_row + 1)} of {number(table.total)}", style="bold")
        else:
            text.append(f"  {count(0, 'row')}", style="bold")
        if table.waiting:
            text.append(f"   ↑ {count(table.waiting, 'new row')}: Home follows", style=self.tone("open"))
        elif table.total and table.following:
            text.append("   following newest", style=self.tone("muted"))
        elif table.total:
            text.append("   not following: Home goes to the newest", style=self.tone("muted"))
        if self.masked:
            text.append("   PII masked", style=self.tone("pii"))
        if self.filter_text:  # last: the box shows it whole
            text.append("   filter ", style=self.tone("muted"))
            text.append(cell(self.filter_text, 1000))
        return text

    def _show_problem(self, message: str) -> None:
        """The whole message, wrapped over as many lines as it needs, until what caused it changes."""
        line = self.query_one("#statusline", Static)
        line.add_class("-error")
        line.update(Text(message))

    def _show_empty_hint(self) -> None:
        """An empty table says why, and in a live session how to send a first delivery."""
        empty = self.table.total == 0 and self._error is None
        hint = self.query_one("#empty-hint", Static)
        if empty:
            hint.update(self._empty_text())
        if empty != self.has_class("-empty"):
            self.set_class(empty, "-empty")
            self.refresh_bindings()

    def _empty_text(self) -> Text:
        text = Text()
        muted, strong = self.tone("muted"), self.tone("strong")
        if self.filter_text:
            text.append("No delivery matches the filter ", style=strong)
            text.append(cell(self.filter_text, 1000))
            text.append(".\nEsc clears it; / edits it.", style=muted)
            return text
        stats = self._stats
        hidden = (stats.other + stats.rejected) if stats is not None and self.mode == "gateway" else 0
        if hidden:  # deliveries came, none of them a view or a close
            text.append("No views or closes yet", style=strong)
            text.append(f" ({count(stats.other if stats else 0, 'other event')}, ", style=muted)
            text.append(f"{count(stats.rejected if stats else 0, 'rejection')}): a shows them.\n\n", style=muted)
        origin = self._origin
        if origin is not None and origin.url is not None and origin.recording:
            if not hidden:
                text.append("Waiting for the first delivery.\n", style=strong)
            public = origin.public_url
            if public is not None:
                paste = f"Paste into {tunnel_status.WEBHOOK_SETTINGS}"
                if len(paste) + len(public) + len(":  (c copies it)") <= self.size.width - 6:
                    text.append(f"{paste}: ")
                    text.append(public, style=self.tone("name"))
                    text.append(" (c copies it)", style=muted)
                else:  # the URL whole, on a line of its own
                    text.append(paste)
                    text.append(" (c copies it)", style=muted)
                    text.append(":\n")
                    text.append(public, style=self.tone("name"))
                text.append("\nor try it from another terminal:\n\n")
            else:
                text.append("Point Conscent's webhook at ")
                text.append(origin.url, style=self.tone("name"))
                text.append(", or try it from another terminal:\n\n")
            text.append(try_curl(self._try_url(origin), width=self.size.width - 6))
            text.append("\n\ny copies this command.", style=muted)
            return text
        if not hidden:
            where = "this database" if self.session_id is None else f"session #{self.session_id}"
            text.append(f"No deliveries in {where}.\n", style=strong)
        if self.session_id is not None:
            text.append("s reviews another session, or all of them. ", style=muted)
        if origin is not None and origin.url is None:
            text.append("To record into this file: ", style=muted)
            text.append(f"conscent-monitor watch --db {shlex.quote(origin.db_path)}", style=self.tone("name"))
        return text

    # -- events from the table -------------------------------------------------

    @on(EventTable.WaitingChanged)
    def _waiting(self) -> None:
        self.update_statusline()

    @on(EventTable.FetchFailed)
    def _fetch_failed(self, message: EventTable.FetchFailed) -> None:
        self.show_error(message.error)

    @on(EventTable.RowSelected)
    def _row_selected(self, message: EventTable.RowSelected) -> None:
        row = message.row
        if row.source == "rejected" or not row.user_id:
            self.post_message(OpenDelivery(row.source, row.id))
        else:
            self.post_message(OpenReader(row.user_id))

    @on(EventTable.DetailsRequested)
    def _details(self, message: EventTable.DetailsRequested) -> None:
        self.post_message(OpenDelivery(message.row.source, message.row.id))

    # -- filter --------------------------------------------------------------

    def action_filter(self) -> None:
        """Open the filter box and give it the keys at once.

        ``Widget.focus`` would wait for the app's next turn, and keys already
        read (a fast typist, a paste) would go to the table: ``d`` would open
        the details. The binding is a priority one and focus moves here, now.
        """
        box = self.query_one("#filter", Input)
        if box.value != self.filter_text:
            box.value = self.filter_text
        box.cursor_position = len(box.value)
        box.display = True
        self.set_focus(box, scroll_visible=False)
        self.refresh_bindings()

    async def action_apply_filter(self) -> None:
        await self.query_one("#filter", Input).action_submit()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        self._filter_problem = None
        if box.display:
            box.display = False
            box.remove_class("-bad-filter")
            self.set_focus(self.table, scroll_visible=False)
        if self.filter_text or self._error is not None:
            self.filter_text = ""
            self.reload()
        else:
            self.update_statusline()  # replaces an error shown while typing
        self.refresh_bindings()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, message: Input.Changed) -> None:
        try:
            compile_filter(message.value, now=self.clock())
        except FilterError as exc:
            message.input.add_class("-bad-filter")
            self._filter_problem = f"{exc.message} (at column {exc.position + 1})"
        else:
            message.input.remove_class("-bad-filter")
            self._filter_problem = None
            self._error = None  # about the text before this edit
        self.update_statusline()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, message: Input.Submitted) -> None:
        try:
            compile_filter(message.value, now=self.clock())
        except FilterError as exc:
            # The status line already says what is wrong; show where, change nothing.
            message.input.cursor_position = exc.position
            return
        previous, self.filter_text = self.filter_text, message.value.strip()
        if not self.reload(patient=self.filter_text == self._slow_filter):
            # The status line says why; the table still shows the previous filter's rows.
            self.filter_text = previous
            message.input.add_class("-bad-filter")
            return
        message.input.display = False
        self.set_focus(self.table, scroll_visible=False)
        self.refresh_bindings()

    def show_filter(self, filter_text: str, mode: Mode) -> bool:
        """Show the rows ``filter_text`` selects in ``mode`` (the Checks screen's Enter).

        When they cannot be read the status line says why and the previous view stays; returns whether it loaded.
        """
        previous = (self.filter_text, self.mode)
        self.filter_text, self.mode = filter_text, mode
        if not self.reload(patient=True):
            self.filter_text, self.mode = previous
            return False
        box = self.query_one("#filter", Input)
        box.value = filter_text
        box.display = False
        self.set_focus(self.table, scroll_visible=False)
        self.refresh_bindings()
        return True

    def action_toggle_mode(self) -> None:
        previous = self.mode
        self.mode = "all" if previous == "gateway" else "gateway"
        if not self.reload():
            self.mode = previous  # the table still shows it

    def action_export(self) -> None:
        """Ask the app to export what the table shows."""
        what = "views and closes" if self.mode == "gateway" else "all deliveries"
        where = "all sessions" if self.session_id is None else f"session #{self.session_id}"
        description = f"{what} of {where}" + (f", filter: {self.filter_text}" if self.filter_text else "")
        self.post_message(ExportView(cell(description, 200), self.export_filter(), self.session_id))

    def action_replay(self) -> None:
        row = self.table.current
        if row is not None:  # check_action let this run: an accepted delivery, live
            self.post_message(ReplayRow(row.id))

    def action_replay_unavailable(self) -> None:
        """``r`` where the footer does not offer it: say why."""
        row = self.table.current
        if row is None:
            self.notify("No delivery to replay: the table is empty", severity="warning")
        elif row.source == "rejected":
            self.notify(
                "A rejected delivery cannot be replayed: the listener refused it (d shows why)", severity="warning"
            )
        else:  # offline review: the app's replayer says how to replay from this file
            self.post_message(ReplayRow(row.id))

    @classmethod
    def _hint_urls(cls, origin: Origin) -> tuple[str | None, str]:
        """The URLs the empty table's hint names: the public one, and the one its curl command posts to."""
        return origin.public_url, cls._try_url(origin)

    @staticmethod
    def _try_url(origin: Origin) -> str:
        """Where the empty table's curl command posts: through the tunnel once it is reachable, else locally."""
        public = origin.public_url
        if public is not None and origin.tunnel is not None and origin.tunnel.reachable:
            return public
        return origin.url or ""

    def action_copy_try(self) -> None:
        """``y`` on the empty live table: the curl command it shows, to the clipboard."""
        if self._origin is not None and self._origin.url is not None:
            self.app.copy_to_clipboard(try_curl(self._try_url(self._origin)))
            self.notify("curl command copied to the clipboard")

    def action_copy_url(self) -> None:
        """``c``: the URL to give Conscent (the public one, else the local one), to the clipboard."""
        origin = self._origin
        url = origin.webhook_url if origin is not None else None
        if origin is None or url is None:
            return
        self.app.copy_to_clipboard(url)
        if origin.public_url is not None:
            message = f"Copied {url}: paste it into {tunnel_status.WEBHOOK_SETTINGS}"
        elif origin.tunnel is not None:
            message = f"Copied the local URL {url}: the public one is not known yet"
        else:
            message = f"Copied {url}: this computer only (--tunnel gives a public URL Conscent can reach)"
        self.notify(message, title="Webhook URL", markup=False)
