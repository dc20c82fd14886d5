"""The Textual app: live monitor (with a listener) or offline review."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import sqlite_utils
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from monitor import queries, store
from monitor.journey import build_journey, pair_summary
from monitor.messages import RowsCommitted
from monitor.resources import styles_dir
from monitor.screens.detail import DetailScreen
from monitor.screens.help import HelpScreen
from monitor.screens.main import MainScreen
from monitor.screens.reader import ReaderData, ReaderScreen
from monitor.screens.readers import ReadersScreen
from monitor.service import Options, Service
from monitor.writer import CommitNotice

#: Redraws after commits are batched: at most this many per second.
REDRAWS_PER_SECOND = 10


class MonitorApp(App[None]):
    CSS_PATH = str(styles_dir() / "app.tcss")
    TITLE = "conscent-monitor"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("m", "toggle_mask", "Mask PII"),
    ]

    masked: reactive[bool] = reactive(False)

    def __init__(self, db_path: Path, *, service: Service | None = None, session_id: int | None = None) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.service = service
        self.live_session_id = service.session_id if service else None
        self.session_id = self.live_session_id if service else session_id
        self.url = service.url if service else None
        self.db: sqlite_utils.Database = store.connect(self.db_path, readonly=True)
        self._pending: list[CommitNotice] = []
        self._flush_scheduled = False
        self._stats: queries.StatsAccumulator | None = None
        self._stats_seen: tuple[int, int] = (0, 0)
        self.main_screen = MainScreen()

    @property
    def listener_healthy(self) -> bool:
        return self.service is None or self.service.writer.healthy

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
            self.db.execute("COMMIT")

    async def on_mount(self) -> None:
        await self.push_screen(self.main_screen)
        if self.service is not None:
            with self.snapshot() as self._stats_seen:
                self._stats = queries.StatsAccumulator.load(self.db, self.session_id, time.time())
            self.set_interval(5, self._tick)
            self._tick()
        else:
            self.main_screen.load_stats()

    def on_unmount(self) -> None:
        if self.service is not None:
            self.service.stop_thread()
        self.db.close()

    # -- rows from the writer ---------------------------------------------------

    def notify_commit(self, notice: CommitNotice) -> None:
        """Called by the writer thread after each commit."""
        if self.is_running:
            self.post_message(RowsCommitted(notice))

    @on(RowsCommitted)
    def _rows_committed(self, message: RowsCommitted) -> None:
        self._pending.append(message.notice)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.set_timer(1 / REDRAWS_PER_SECOND, self._apply_commits)

    def _apply_commits(self) -> None:
        notices, self._pending = self._pending, []
        self._flush_scheduled = False
        if not notices:
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
            self._tick()

    def _tick(self) -> None:
        if self._stats is not None:
            self.main_screen.set_stats(self._stats.snapshot(time.time()))
            self.main_screen.refresh_origin()

    # -- navigation ---------------------------------------------------------------

    def open_reader(self, user_id: str) -> None:
        self._load_reader(user_id, self.session_id)

    @work(thread=True, exclusive=True, group="drill")
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

    @work(thread=True, exclusive=True, group="drill")
    def _load_delivery(self, source: str, delivery_id: int) -> None:
        with self.read_connection() as db:
            delivery = queries.get_delivery(db, "rejected" if source == "rejected" else "event", delivery_id)
        if delivery is not None:
            self.call_from_thread(self.push_screen, DetailScreen(source, delivery))

    def open_readers(self) -> None:
        self._load_readers(self.session_id)

    @work(thread=True, exclusive=True, group="drill")
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
        yield SystemCommand("Toggle gateway / all events", "Views and closes only, or every delivery",
                            main.action_toggle_mode)
        yield SystemCommand("Readers", "Every reader, leading to the drill-down", self.open_readers)
        yield SystemCommand("Mask personal data", "Hide phones, names and places for screen sharing",
                            self.action_toggle_mask)
        yield SystemCommand("Key bindings and filter help", "The help screen", self.action_help)


def run_live(options: Options, *, demo: bool = False) -> None:
    """Start the listener, then the TUI; the session closes when the TUI exits."""
    app: MonitorApp | None = None

    def on_commit(notice: CommitNotice) -> None:
        if app is not None:
            app.notify_commit(notice)

    service = Service(options, on_commit=on_commit)
    url = service.start_in_thread()
    stop_demo = _start_demo(url, options.secret) if demo else None
    try:
        app = MonitorApp(options.db_path, service=service)
        app.run()
    finally:
        if stop_demo is not None:
            stop_demo()
        service.stop_thread()


def _start_demo(url: str, secret: str | None) -> Callable[[], None]:
    """Run the demo sender on a loop of its own; returns a function that stops it."""
    from monitor.demo import run_demo

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        await run_demo(url, secret=secret, stop=stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="monitor-demo", daemon=True)
    thread.start()

    def stopper() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)

    return stopper


def run_offline(db_path: Path, session_id: int | None) -> None:
    MonitorApp(db_path, session_id=session_id).run()
