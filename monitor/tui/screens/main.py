"""The main screen: header counters and the live table of deliveries."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from typing import TYPE_CHECKING, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from monitor import queries
from monitor.events import GATEWAY_EVENTS
from monitor.filters import FilterError, compile_filter
from monitor.queries import Row
from monitor.textsafe import cell
from monitor.tui.failures import one_line
from monitor.tui.widgets.event_table import ALL_COLUMNS, GATEWAY_COLUMNS, PAGE_SIZE, EventTable, header_text
from monitor.tui.widgets.stats_bar import StatsBar
from monitor.writer import CommitNotice

if TYPE_CHECKING:
    from monitor.tui.app import MonitorApp

Mode = Literal["gateway", "all"]

#: Seconds a new filter's first load may take before it is stopped and the user
#: asked (Enter again runs it): the UI's thread waits for it. The largest
#: filters of ordinary words take well under a second on 100,000 rows; many
#: words found in every body (JSON keys) ANDed take 2-4 s there
#: (bench/filter_cost.py). A single full-text look-up can overrun it.
FILTER_BUDGET = 1.0


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("a", "toggle_mode", "Gateway/all"),
        Binding("u", "readers", "Readers"),
        Binding("s", "sessions", "Sessions"),
        Binding("x", "export", "Export"),
        Binding("r", "replay", "Replay"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    app: MonitorApp

    def __init__(self) -> None:
        super().__init__()
        self.mode: Mode = "gateway"
        self.filter_text = ""
        self.view = queries.View(mode="gateway", session_id=None)
        #: The highest event and rejected ids the table's total already includes.
        self._seen: tuple[int, int] = (0, 0)
        #: A read that failed, shown on the status line until a view loads again.
        self._error: str | None = None
        #: A filter stopped for its time: Enter on the same text runs it without a limit.
        self._slow_filter: str | None = None

    def compose(self) -> ComposeResult:
        yield StatsBar(id="stats")
        yield Static(id="listener-alarm")
        yield Static(id="columns")
        yield EventTable(id="table")
        yield Static(id="statusline")
        yield Input(
            placeholder='filter: event:view user:… content:… country:… device:… sig:… -term "phrase"', id="filter"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#listener-alarm", Static).display = False
        self.refresh_origin()
        self.reload()
        self.query_one(EventTable).focus()

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    @property
    def seen(self) -> tuple[int, int]:
        """The highest event and rejected ids the table already counts."""
        return self._seen

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
        app = self.app
        budget = None if patient or not self.filter_text else FILTER_BUDGET
        first: list[Row] | None = None
        try:
            view = self._view()
            with app.snapshot() as seen, app.time_limit(budget):
                total = queries.count_rows(app.db, view)
                if budget is not None:  # the first page's query costs as much again: inside the budget too
                    first = queries.fetch_rows(app.db, view, 0, PAGE_SIZE, total=total)
        except (sqlite3.Error, FilterError) as exc:
            slow = budget is not None and isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted"
            self._slow_filter = self.filter_text if slow else None
            self.show_error(exc, slow=budget if slow else None)
            return False
        self.view, self._seen, self._error, self._slow_filter = view, seen, None, None
        columns = GATEWAY_COLUMNS if self.mode == "gateway" else ALL_COLUMNS
        table = self.table
        table.show(
            lambda offset, limit: queries.fetch_rows(app.db, view, offset, limit, total=table.total),
            total,
            columns,
            first,
        )
        self.query_one("#columns", Static).update(Text(header_text(columns), style="bold"))
        self.update_statusline()
        return True

    def _view(self) -> queries.View:
        compiled = compile_filter(self.filter_text, table="events")
        rejected = compile_filter(self.filter_text, table="rejected")
        return queries.View(
            mode=self.mode,
            session_id=self.app.session_id,
            where=compiled.where,
            params=compiled.params,
            rejected_where=rejected.where,
            rejected_params=rejected.params,
        )

    def show_error(self, exc: BaseException, *, slow: float | None = None) -> None:
        """A read failed: on the status line until a view loads (offline review of a damaged file ends).

        ``slow``: the filter was stopped after that many seconds.
        """
        if self.app.end_if_damaged(exc):
            return
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
        seen_events, seen_rejected = self._seen
        event_ids = [i for n in notices for i in n.event_ids if i > seen_events]
        rejected_ids = [i for n in notices for i in n.rejected_ids if i > seen_rejected]
        seen = (max([seen_events, *event_ids]), max([seen_rejected, *rejected_ids]))
        added = self._count_from_notices(notices, seen_events, seen_rejected)
        if added is None:
            try:
                added = self._count_new(event_ids, rejected_ids)
            except sqlite3.Error as exc:  # counted with the next commit, or the next view
                self.show_error(exc)
                return
        self._seen = seen
        self.table.add_new(added)
        self.update_statusline()

    def _count_new(self, event_ids: list[int], rejected_ids: list[int]) -> int:
        """How many of the new rows the view shows, when only a query can tell."""
        view = self.view
        added = 0
        if event_ids:
            added += queries.count_rows(
                self.app.db,
                dataclasses.replace(
                    view,
                    where=f"id BETWEEN ? AND ? AND ({view.where})",
                    params=(min(event_ids), max(event_ids), *view.params),
                    rejected_where="0",
                    rejected_params=(),
                ),
            )
        if rejected_ids and view.mode == "all":
            added += queries.count_rows(
                self.app.db,
                dataclasses.replace(
                    view,
                    where="0",
                    params=(),
                    rejected_where=f"id BETWEEN ? AND ? AND ({view.rejected_where})",
                    rejected_params=(min(rejected_ids), max(rejected_ids), *view.rejected_params),
                ),
            )
        return added

    def _count_from_notices(self, notices: list[CommitNotice], seen_events: int, seen_rejected: int) -> int | None:
        """Without a filter the notices say which rows the view shows: no query on the UI thread.

        None when a query is needed (a filter, or notices without rows, as
        offline review makes them).
        """
        if self.filter_text or any(len(n.events) != len(n.event_ids) for n in notices):
            return None
        session = self.app.session_id
        count = 0
        for notice in notices:
            for row in notice.events:
                if (
                    row["id"] > seen_events
                    and (session is None or row.get("session_id") == session)
                    and (self.mode == "all" or row.get("event") in GATEWAY_EVENTS)
                ):
                    count += 1
            if self.mode == "all":
                if len(notice.rejected) != len(notice.rejected_ids):
                    return None
                count += sum(
                    1
                    for row in notice.rejected
                    if row["id"] > seen_rejected and (session is None or row.get("session_id") == session)
                )
        return count

    def refresh_origin(self) -> None:
        app = self.app
        session = "all sessions" if app.session_id is None else f"session #{app.session_id}"
        if app.live_session_id is not None and app.session_id == app.live_session_id:
            session += " (live)"
        problem = app.listener_problem
        self.query_one(StatsBar).set_origin(
            url=app.url,
            db_path=str(app.db_path),
            session=session,
            healthy=problem is None,
            forward=app.forward_status(),
        )
        alarm = self.query_one("#listener-alarm", Static)
        if problem is not None:
            alarm.update(Text(f"✗ Not recording: {cell(problem, 2000)}"))
        alarm.display = problem is not None

    def set_stats(self, stats: queries.Stats) -> None:
        self.query_one(StatsBar).set_stats(stats)

    def update_statusline(self) -> None:
        line = self.query_one("#statusline", Static)
        if self._error is not None:
            self._show_problem(f" ✗ {self._error}")
            return
        line.remove_class("-error")
        table = self.table
        text = Text()
        text.append(" GATEWAY " if self.mode == "gateway" else " ALL EVENTS ", style="bold reverse")
        text.append(f"  {table.total:,} rows", style="bold")
        if self.filter_text:
            text.append("   filter ", style="dim")
            text.append(self.filter_text)
        if table.waiting:
            text.append(f"   ↑ {table.waiting} new — press Home to follow", style="bold yellow")
        elif table.total:
            text.append("   following newest" if table.following else "", style="dim")
        if self.app.masked:
            text.append("   PII masked", style="bold magenta")
        line.update(text, layout=False)  # one line, whatever it says

    def _show_problem(self, message: str) -> None:
        line = self.query_one("#statusline", Static)
        line.add_class("-error")
        line.update(Text(message), layout=False)

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
            self.app.open_delivery(row.source, row.id)
        else:
            self.app.open_reader(row.user_id)

    @on(EventTable.DetailsRequested)
    def _details(self, message: EventTable.DetailsRequested) -> None:
        self.app.open_delivery(message.row.source, message.row.id)

    # -- filter --------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.display = False
            box.remove_class("-bad-filter")
            self.table.focus()
        if self.filter_text or self._error is not None:
            self.filter_text = ""
            self.reload()
        else:
            self.update_statusline()  # replaces an error shown while typing

    @on(Input.Changed, "#filter")
    def _filter_changed(self, message: Input.Changed) -> None:
        try:
            compile_filter(message.value)
        except FilterError as exc:
            message.input.add_class("-bad-filter")
            self._show_problem(f" ✗ {exc.message} (at column {exc.position + 1})")
        else:
            message.input.remove_class("-bad-filter")
            self._error = None  # about the text before this edit
            self.update_statusline()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, message: Input.Submitted) -> None:
        try:
            compile_filter(message.value)
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
        self.table.focus()

    def action_toggle_mode(self) -> None:
        previous = self.mode
        self.mode = "all" if previous == "gateway" else "gateway"
        if not self.reload():
            self.mode = previous  # the table still shows it

    def action_readers(self) -> None:
        self.app.open_readers()

    def action_sessions(self) -> None:
        self.app.open_sessions()

    def action_export(self) -> None:
        self.app.export_current()

    def action_replay(self) -> None:
        row = self.table.current
        if row is None or row.source == "rejected":
            self.notify("Select an accepted delivery to replay", severity="warning")
            return
        self.app.replay_row(row.id)

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False, name="the header counters")
    def load_stats(self) -> None:
        with self.app.read_connection() as db:
            stats = queries.header_stats(db, self.app.session_id, self.app.clock())
        self.app.call_from_thread(self._stats_loaded, stats)

    def _stats_loaded(self, stats: queries.Stats) -> None:
        with contextlib.suppress(NoMatches):  # the app closed meanwhile: the header is gone
            self.set_stats(stats)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        error = event.worker.error
        if event.state == WorkerState.ERROR and error is not None:
            self.app.read_failed(error, event.worker.name or "data")
