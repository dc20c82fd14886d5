"""The Textual app: live monitor (with a listener) or offline review."""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from rich.text import Text
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from monitor import queries, store
from monitor.journey import build_journey, pair_summary
from monitor.resources import styles_dir
from monitor.service import Service
from monitor.textsafe import cell
from monitor.tui.failures import damaged_message, is_damaged, one_line
from monitor.tui.messages import RowsCommitted
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.export import ExportRequest, ExportScreen
from monitor.tui.screens.help import HelpScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.reader import ReaderData, ReaderScreen
from monitor.tui.screens.readers import ReadersScreen
from monitor.tui.screens.replay import EditScreen, TargetScreen
from monitor.tui.screens.sessions import SessionsScreen
from monitor.writer import CommitNotice

#: Redraws after commits are batched: at most this many per second...
REDRAWS_PER_SECOND = 10
#: ...and this many during a flood (more rows per redraw than this): the rows
#: scroll past faster than anyone reads them, and the CPU is the listener's.
#: Keys are answered at once either way.
FLOOD_REDRAWS_PER_SECOND = 4
FLOOD_ROWS = 200
#: Offline review looks for rows another process committed this often (seconds).
POLL_INTERVAL = 0.5
#: The live monitor looks at its writer's health this often (seconds): two attribute reads.
HEALTH_INTERVAL = 1.0
#: The same failure is said again only after this long (seconds): a damaged page
#: fails every redraw, and one toast is enough.
REPEAT_FAILURE_AFTER = 10.0


@dataclass
class ReplayDone(Message):
    """A replay finished (posted from the listener's thread)."""

    event_id: int
    target: str
    status: int | None
    latency_ms: float
    error: str | None


class MonitorApp(App[None]):
    CSS_PATH = str(styles_dir() / "app.tcss")
    TITLE = "conscent-monitor"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("m", "toggle_mask", "Mask PII"),
    ]

    masked: reactive[bool] = reactive(False)

    def __init__(
        self,
        db_path: Path,
        *,
        service: Service | None = None,
        session_id: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        #: "Now" for every screen: tests pass a frozen one.
        self.clock = clock
        self.db_path = Path(db_path)
        self.service = service
        self.live_session_id = service.session_id if service else None
        self.session_id = self.live_session_id if service else session_id
        self.url = service.url if service else None
        self.db: sqlite_utils.Database = store.connect(self.db_path, readonly=True)
        self._flush_scheduled = False
        self._last_flush_rows = 0
        self._stats: queries.StatsAccumulator | None = None
        self._stats_seen: tuple[int, int] = (0, 0)
        self._data_version: int | None = None
        self.replay_target: str | None = None
        # Commit notices from the writer thread wait here; one RowsCommitted
        # message wakes the app for all that arrive before it next redraws.
        self._inbox_lock = threading.Lock()
        self._inbox: list[CommitNotice] = []
        self._accepting = False
        self._wake_posted = False
        self.main_screen = MainScreen()
        #: What ended offline review (a damaged file), for the command line; None otherwise.
        self.fatal_error: BaseException | None = None
        self._last_failure: tuple[str, float] = ("", 0.0)
        self._problem_shown: str | None = None

    @property
    def listener_healthy(self) -> bool:
        return self.service is None or self.service.writer.healthy

    @property
    def listener_problem(self) -> str | None:
        """Why the listener refuses deliveries (the writer's own words), or None while it records them."""
        if self.listener_healthy:
            return None
        assert self.service is not None
        return self.service.writer.stats.last_error or "the database cannot be written: deliveries are refused (503)"

    @property
    def forward_target(self) -> str | None:
        return self.service.options.forward_to if self.service else None

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[sqlite_utils.Database]:
        """A connection of its own, for a worker thread."""
        db = store.connect(self.db_path, readonly=True)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[tuple[int, int]]:
        """One read transaction on ``self.db``: the queries inside see the same commits.

        Yields the highest event and rejected ids committed so far. The writer
        answers a delivery before it sends the notice, so a notice can arrive
        for rows that a query already counted: ids up to these are such rows.
        """
        self.db.execute("BEGIN")
        try:
            events, rejected = self.db.execute(
                "SELECT (SELECT coalesce(max(id), 0) FROM events), (SELECT coalesce(max(id), 0) FROM rejected)"
            ).fetchone()
            yield int(events), int(rejected)
        finally:
            if self.db.conn.in_transaction:  # SQLite may have ended it (a failed or interrupted read)
                self.db.execute("COMMIT")

    @contextlib.contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Queries on ``self.db`` inside fail with "interrupted" once they have run ``seconds`` (None: no limit).

        Checked every few thousand SQLite instructions, so a single full-text
        look-up (one step) can overrun it by its own length.
        """
        if seconds is None:
            yield
            return
        deadline = time.monotonic() + seconds
        self.db.conn.set_progress_handler(lambda: time.monotonic() > deadline, 4000)
        try:
            yield
        finally:
            self.db.conn.set_progress_handler(None, 0)

    async def on_mount(self) -> None:
        await self.push_screen(self.main_screen)
        self._start_stats()
        with self._inbox_lock:
            self._accepting = True
            wake = bool(self._inbox) and not self._wake_posted
            self._wake_posted = self._wake_posted or wake
        if wake:
            self.post_message(RowsCommitted())
        self.set_interval(5, self._timed_tick)
        if self.service is not None:
            self.set_interval(HEALTH_INTERVAL, self._check_health)
        else:
            # Another process (a running monitor, an import) may be writing.
            with contextlib.suppress(sqlite3.Error):  # the next poll says what is wrong
                self._data_version = self._read_data_version()
            self.set_interval(POLL_INTERVAL, self._poll_other_writers)

    def _start_stats(self) -> None:
        """Live session: counters kept from commit notices; otherwise read from the database (a worker)."""
        if self.service is not None and self.session_id == self.live_session_id:
            try:
                with self.snapshot() as self._stats_seen:
                    self._stats = queries.StatsAccumulator.load(self.db, self.session_id, self.clock())
            except sqlite3.Error as exc:  # the worker tries again with each commit
                self._stats = None
                self.read_failed(exc, "the header counters")
                return
            self._tick()
        else:
            self._stats = None
            self.main_screen.load_stats()

    def switch_session(self, session_id: int | None) -> None:
        """Review another session (or all of them: None); the same one when it cannot be read."""
        previous, self.session_id = self.session_id, session_id
        if not self.main_screen.reload():
            self.session_id = previous
            return
        self.main_screen.refresh_origin()
        self._start_stats()

    def _read_data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def _poll_other_writers(self) -> None:
        if not self.is_running:  # shutting down: the screens' widgets may be gone, the connection closed
            return
        try:
            self._read_other_writers()
        except sqlite3.Error as exc:
            self.read_failed(exc, "new rows")

    def _read_other_writers(self) -> None:
        version = self._read_data_version()
        if version == self._data_version:
            return
        self._data_version = version
        with self.snapshot() as (events, rejected):
            seen_events, seen_rejected = self.main_screen.seen
        notice = CommitNotice(
            list(range(seen_events + 1, events + 1)), list(range(seen_rejected + 1, rejected + 1)), [], []
        )
        if notice.event_ids or notice.rejected_ids:
            self.main_screen.rows_committed([notice])
        else:
            self.main_screen.table.refresh_rows()  # e.g. forwards recorded by the other process
        self.main_screen.load_stats()

    def on_unmount(self) -> None:
        if self.service is not None:
            self.service.stop_thread()
        self.db.close()

    # -- rows from the writer ---------------------------------------------------

    def notify_commit(self, notice: CommitNotice) -> None:
        """Called by the writer thread after each commit.

        The notice waits in the inbox; only the first since the last redraw
        wakes the app (at thousands of commits a second, one message each
        would keep the UI's loop busy just being woken). Notices that come
        before the screens are up wait until they are (the table skips rows
        its first count already included).
        """
        with self._inbox_lock:
            self._inbox.append(notice)
            if not self._accepting or self._wake_posted:
                return
            self._wake_posted = True
        self.post_message(RowsCommitted())

    @on(RowsCommitted)
    def _rows_committed(self, message: RowsCommitted) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            rate = FLOOD_REDRAWS_PER_SECOND if self._last_flush_rows > FLOOD_ROWS else REDRAWS_PER_SECOND
            self.set_timer(1 / rate, self._apply_commits)

    def _apply_commits(self) -> None:
        with self._inbox_lock:
            notices, self._inbox = self._inbox, []
            self._wake_posted = False
        self._flush_scheduled = False
        self._last_flush_rows = sum(len(n.event_ids) + len(n.rejected_ids) for n in notices)
        if not notices or not self.is_running:  # shutting down: the screens' widgets may be gone
            return
        if self._stats is not None:
            seen_events, seen_rejected = self._stats_seen
            for notice in notices:
                for row in notice.events:
                    if row["id"] > seen_events:
                        self._stats.add(row.get("event"), row.get("user_id"), row["received_at"], False)
                for row in notice.rejected:
                    if row["id"] > seen_rejected:
                        self._stats.add(None, None, row["received_at"], True)
        with self.batch_update():
            self.main_screen.rows_committed(notices)
            forwarded = {row["event_id"] for notice in notices for row in notice.forwards}
            if forwarded:
                self.main_screen.table.refresh_rows(forwarded)
                if isinstance(self.screen, DetailScreen) and self.screen.delivery.get("id") in forwarded:
                    self._reload_forwards(self.screen)
            if self._stats is None:
                self.main_screen.load_stats()
            self._tick()

    def _timed_tick(self) -> None:
        if self.is_running:  # not while shutting down
            self._tick()

    def _tick(self) -> None:
        if self._stats is not None:
            self.main_screen.set_stats(self._stats.snapshot(self.clock()))
        self.main_screen.refresh_origin()

    def _check_health(self) -> None:
        """Show at once that the listener stopped recording (and when it records again)."""
        problem = self.listener_problem
        if problem == self._problem_shown or not self.is_running:
            return
        self._problem_shown = problem
        self.main_screen.refresh_origin()
        if problem is not None:  # the header says it for as long as it lasts; this reaches every screen
            self.notify(cell(problem, 1000), title="Not recording", severity="error", timeout=30, markup=False)

    # -- failures -------------------------------------------------------------------

    def end_if_damaged(self, exc: BaseException) -> bool:
        """In offline review, a damaged file ends the app (return code 1, and why); True if it does."""
        if self.service is not None or not is_damaged(exc):
            return False
        if self.fatal_error is None:
            self.fatal_error = exc
            self.exit(return_code=1, message=damaged_message(self.db_path, exc))
        return True

    def read_failed(self, exc: BaseException, what: str) -> None:
        """A read or a loader failed: one line, and the app (and the listener) carry on."""
        if self.end_if_damaged(exc):
            return
        line = f"Could not read {what}: {one_line(exc)}"
        now = time.monotonic()
        last, at = self._last_failure
        if line == last and now - at < REPEAT_FAILURE_AFTER:
            return
        self._last_failure = (line, now)
        self.notify(line, severity="error", timeout=10, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A loader's failure is one line, never the end of the app (workers run with exit_on_error off)."""
        error = event.worker.error
        if event.state == WorkerState.ERROR and error is not None:
            self.read_failed(error, event.worker.name or "data")

    def forward_status(self) -> Text | None:
        """The header's word on the forward target."""
        forwarder = self.service.forwarder if self.service else None
        if forwarder is None or not self.forward_target:
            return None
        stats = forwarder.stats
        text = Text("→ ", style="dim")
        text.append(cell(self.forward_target, 60))
        if stats.down and stats.last_status is not None:
            text.append(f"  ✗ answering {stats.last_status}", style="bold red")
        elif stats.down:
            text.append(f"  ✗ down: {cell(stats.last_error, 60)}", style="bold red")
        elif stats.sent:
            text.append(f"  ✓ {stats.last_status}", style="green")
        if stats.pending:
            text.append(f"  {stats.pending} pending", style="yellow")
        return text

    # -- navigation ---------------------------------------------------------------

    def open_reader(self, user_id: str) -> None:
        self._load_reader(user_id, self.session_id)

    @work(thread=True, exclusive=True, group="drill", exit_on_error=False, name="the reader's events")
    def _load_reader(self, user_id: str, session_id: int | None) -> None:
        with self.read_connection() as db:
            steps = build_journey(queries.reader_events(db, user_id, session_id))
            data = ReaderData(
                user_id=user_id,
                profile=queries.reader_profile(db, user_id),
                counts=queries.event_counts_for_reader(db, user_id),
                steps=steps,
                summary=pair_summary(steps),
            )
        self.call_from_thread(self.push_screen, ReaderScreen(data))

    def open_delivery(self, source: str, delivery_id: int) -> None:
        self._load_delivery(source, delivery_id)

    @work(thread=True, exclusive=True, group="drill", exit_on_error=False, name="the delivery")
    def _load_delivery(self, source: str, delivery_id: int) -> None:
        with self.read_connection() as db:
            delivery = queries.get_delivery(db, "rejected" if source == "rejected" else "event", delivery_id)
        if delivery is not None:
            self.call_from_thread(self.push_screen, DetailScreen(source, delivery))

    @work(thread=True, group="drill", exit_on_error=False, name="the delivery's forwards")
    def _reload_forwards(self, screen: DetailScreen) -> None:
        with self.read_connection() as db:
            forwards = queries.forwards_of(db, int(screen.delivery["id"]))
        self.call_from_thread(screen.show_forwards, forwards)

    def open_sessions(self) -> None:
        self._load_sessions()

    @work(thread=True, exclusive=True, group="drill", exit_on_error=False, name="the sessions")
    def _load_sessions(self) -> None:
        with self.read_connection() as db:
            rows = queries.sessions(db)
            counts: dict[int, dict[str, int]] = {}
            for session_id, event, n in db.execute(
                "SELECT session_id, coalesce(event, '(legacy)'), count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 3 DESC"
            ):
                counts.setdefault(session_id, {})[event] = n
        self.call_from_thread(self.push_screen, SessionsScreen(rows, counts))

    # -- replay ------------------------------------------------------------------------

    def curl_base_url(self) -> str:
        """Where a copied curl command sends: the forward target's origin, else this monitor."""
        from urllib.parse import urlsplit

        for url in (self.forward_target, self.replay_target, self.url):
            if url:
                parts = urlsplit(url)
                return f"{parts.scheme}://{parts.netloc}"
        return "http://127.0.0.1:8787"

    def replay_row(self, delivery_id: int) -> None:
        """``r`` on the table: load the delivery, then replay it."""
        self._load_for_replay(delivery_id)

    @work(thread=True, group="replay", exit_on_error=False, name="the delivery to replay")
    def _load_for_replay(self, delivery_id: int) -> None:
        with self.read_connection() as db:
            delivery = queries.get_delivery(db, "event", delivery_id)
        if delivery is not None:
            self.call_from_thread(self.replay, delivery)

    def _can_replay(self) -> bool:
        if self.service is None:
            self.notify(
                "Replays are recorded by the live monitor: run `conscent-monitor watch --db` on this file",
                severity="warning",
                markup=False,
            )
            return False
        return True

    def replay(self, delivery: dict[str, Any], body: bytes | None = None) -> None:
        """Send a delivery again, to the forward target or a URL the user types."""
        if not self._can_replay():
            return
        target = self.forward_target or self.replay_target
        if target:
            self._send_replay(delivery, body, target)
            return

        def chosen(url: str | None) -> None:
            if url:
                self.replay_target = url
                self._send_replay(delivery, body, url)

        self.push_screen(TargetScreen(self.replay_target or "http://127.0.0.1:3000/"), chosen)

    def edit_and_replay(self, delivery: dict[str, Any]) -> None:
        if not self._can_replay():  # say so before the user spends time editing
            return

        def edited(body: bytes | None) -> None:
            if body is not None:
                self.replay(delivery, body)

        title = f"Edit delivery #{delivery['id']} — ctrl+s sends the edited body (re-signed when a secret is set)"
        self.push_screen(EditScreen(title, delivery.get("body") or b""), edited)

    def _send_replay(self, delivery: dict[str, Any], body: bytes | None, target: str) -> None:
        assert self.service is not None
        original: bytes = delivery.get("body") or b""
        payload = original if body is None else body
        headers = delivery.get("headers") if isinstance(delivery.get("headers"), dict) else {}
        future = self.service.replay(
            int(delivery["id"]), payload, headers or {}, target=target, edited=payload != original
        )
        event_id = int(delivery["id"])

        def done(f: concurrent.futures.Future[Any]) -> None:
            try:
                outcome = f.result()
            except Exception as exc:  # the listener stopped, a bad URL...
                self.post_message(ReplayDone(event_id, target, None, 0.0, str(exc)))
            else:
                self.post_message(ReplayDone(event_id, target, outcome.status, outcome.latency_ms, outcome.error))

        future.add_done_callback(done)
        self.notify(f"Replaying #{event_id} to {cell(target, 80)}…", markup=False)

    @on(ReplayDone)
    def _replay_done(self, message: ReplayDone) -> None:
        answer = f"HTTP {message.status}" if message.status is not None else cell(message.error, 120)
        ok = message.status is not None and message.status < 400
        self.notify(
            f"Replay of #{message.event_id}: {answer} in {message.latency_ms:.0f} ms",
            markup=False,
            severity="information" if ok else "error",
        )

    # -- export ------------------------------------------------------------------------

    def export_current(self) -> None:
        main = self.main_screen
        what = "views and closes" if main.mode == "gateway" else "all deliveries"
        where = "all sessions" if self.session_id is None else f"session #{self.session_id}"
        description = f"{what} of {where}" + (f", filter: {main.filter_text}" if main.filter_text else "")

        def chosen(request: ExportRequest | None) -> None:
            if request is not None:
                self._export(request, main.export_filter(), self.session_id)

        self.push_screen(ExportScreen(cell(description, 200)), chosen)

    @work(thread=True, group="export", exit_on_error=False, name="the rows to export")
    def _export(self, request: ExportRequest, filter_text: str, session_id: int | None) -> None:
        from monitor.exporting import export
        from monitor.filters import FilterError

        try:
            with self.read_connection() as db, Path(request.path).expanduser().open("wb") as out:
                report = export(
                    db,
                    out,
                    request.fmt,
                    session_id=session_id,
                    filter_text=filter_text,
                    meta=request.meta,
                    base_url=self.curl_base_url(),
                )
        except (OSError, FilterError, ValueError) as exc:
            self.call_from_thread(self.notify, f"Export failed: {exc}", severity="error", markup=False)
            return
        message = f"Exported {report.exported} deliveries to {request.path}"
        for warning in report.warnings():
            message += f"\n{warning}"
        self.call_from_thread(self.notify, message, markup=False, timeout=8)

    def open_readers(self) -> None:
        self._load_readers(self.session_id)

    @work(thread=True, exclusive=True, group="drill", exit_on_error=False, name="the readers")
    def _load_readers(self, session_id: int | None) -> None:
        with self.read_connection() as db:
            rows = queries.readers(db, session_id)
        self.call_from_thread(self.push_screen, ReadersScreen(rows))

    # -- actions --------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_mask(self) -> None:
        self.masked = not self.masked

    def watch_masked(self, masked: bool) -> None:
        if self.main_screen.is_attached:
            self.main_screen.table.masked = masked
            self.main_screen.update_statusline()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        main = self.main_screen
        yield SystemCommand("Filter deliveries", "Type a filter (event:, user:, content:, …)", main.action_filter)
        yield SystemCommand(
            "Toggle gateway / all events", "Views and closes only, or every delivery", main.action_toggle_mode
        )
        yield SystemCommand("Readers", "Every reader, leading to the drill-down", self.open_readers)
        yield SystemCommand(
            "Mask personal data", "Hide phones, names and places for screen sharing", self.action_toggle_mask
        )
        yield SystemCommand("Sessions", "Every recorded run: review one, or all", self.open_sessions)
        yield SystemCommand("Export", "Write what the table shows to JSONL, CSV, HAR or curl", self.export_current)
        yield SystemCommand("Key bindings and filter help", "The help screen", self.action_help)
