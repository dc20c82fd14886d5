"""Keeping the main screen current: commits, rows other processes commit, the header, the listener's health.

The tunnel's state (``--tunnel``, ``--public-url``) is read on the health
tick too, and shown in the header when it changed.

The writer's commit notices wait in the :class:`~monitor.tui.feed.Feed` and
are applied at the feed's pace; in offline review, rows committed by another
process (a running monitor, an import) are found by polling SQLite's
``data_version``. The header's origin line and live counters, and the alarm
when the listener stops recording, are kept here too. A mixin of
:class:`~monitor.tui.app.MonitorApp`: it reads the app's state and drives
its main screen, and must not read the database except through
``queries``/``ReadAccess``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlite_utils import Database
from textual.app import App
from textual.message import Message
from textual.worker import Worker

from monitor import queries, tunnel_status
from monitor.reading import ReadAccess
from monitor.textsafe import cell
from monitor.tui import messages as msg
from monitor.tui.failures import FailureReporter
from monitor.tui.feed import Feed, Seen
from monitor.tui.link import Link
from monitor.tui.replaying import Replayer
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.main import MainScreen, Origin
from monitor.writer import CommitNotice

#: Offline review looks for rows another process committed this often (seconds).
POLL_INTERVAL = 0.5
#: The live monitor looks at its writer's health this often (seconds): two attribute reads.
HEALTH_INTERVAL = 1.0
#: The counters' per-minute figures move on even when nothing arrives (seconds).
TICK_INTERVAL = 5.0


if TYPE_CHECKING:  # type-checked as the App it is mixed into
    from monitor.service import Service  # aiohttp's listener: not imported by offline review (start-up time)
    from monitor.tunnel import TunnelState

    _AppBase = App[None]
else:
    _AppBase = object


class LiveRows(_AppBase):
    """The part of the app that keeps the main screen current (see the module's docstring)."""

    # The app's state this mixin reads (set in MonitorApp.__init__).
    clock: Callable[[], float]
    db_path: Path
    service: Service | None
    link: Link | None
    session_id: int | None
    live_session_id: int | None
    url: str | None
    reads: ReadAccess
    feed: Feed
    main_screen: MainScreen
    replayer: Replayer
    failures: FailureReporter
    _data_version: int | None = None
    _problem_shown: str | None = None
    #: The tunnel's state as the header shows it (read on each health tick).
    _tunnel_shown: TunnelState | None = None
    #: Per public URL, whether the last notification said it was reachable.
    _tunnel_told: dict[str, bool]

    def _read(self, what: str, group: str, read: Callable[[Database], Message | None]) -> Worker[None]:
        raise NotImplementedError  # MonitorApp's

    def _load_forwards(self, event_id: int) -> Worker[None]:
        raise NotImplementedError  # MonitorApp's

    def _refresh_checks(self) -> None:
        raise NotImplementedError  # MonitorApp's

    def start_live_rows(self) -> None:
        """Once the main screen is up: counters, the feed's wake-ups, and the timers."""
        self._start_stats()
        if self.feed.accept():
            self.post_message(msg.RowsCommitted())
        self.set_interval(TICK_INTERVAL, self._timed_tick)
        if self.link is not None:
            self._tunnel_told = {}
            self._check_health()  # the tunnel as it is now, without waiting a second
            self.set_interval(HEALTH_INTERVAL, self._refresh_link)
        if self.link is None or not self.link.receives_commits:
            # Another process (a running monitor, an import, a browser tab's serve process) may be writing.
            with contextlib.suppress(sqlite3.Error):  # the next poll says what is wrong
                self._data_version = self.reads.data_version()
            self.set_interval(POLL_INTERVAL, self._poll_other_writers)

    @property
    def listener_problem(self) -> str | None:
        """Why the listener refuses deliveries (the writer's own words), or None while it records them."""
        return self.link.problem() if self.link is not None else None

    def _refresh_link(self) -> None:
        """Bring the link's state up to date off the UI thread (a browser tab asks its serve process), then show it."""
        link = self.link
        if link is None or not self.is_running:
            return
        if link.receives_commits:
            self._check_health()
            return

        def refresh() -> None:
            link.refresh()
            if self.is_running:
                self.call_from_thread(self._check_health)

        self.run_worker(refresh, name="the listener's state", group="link", thread=True, exit_on_error=False)

    def _start_stats(self) -> None:
        """Live session: counters kept from commit notices; otherwise read from the database (a worker)."""
        self.feed.stats = None
        if self.link is None or not self.link.receives_commits or self.session_id != self.live_session_id:
            self._load_stats()
            return
        try:
            with self.reads.snapshot() as seen:
                stats = queries.StatsAccumulator.load(self.reads.db, self.session_id, self.clock())
        except sqlite3.Error as exc:  # the worker tries again with each commit
            self.failures.read_failed(exc, "the header counters")
            return
        self.feed.stats, self.feed.stats_seen = stats, Seen(*seen)
        self._tick()

    def _show_origin(self) -> None:
        session = "all sessions" if self.session_id is None else f"session #{self.session_id}"
        if self.live_session_id is not None and self.session_id == self.live_session_id:
            session += " (live)"
        forward = self.link.forward_stats() if self.link is not None else None
        recording = self.live_session_id is not None and self.session_id in (None, self.live_session_id)
        tunnel = self._tunnel_shown
        origin = Origin(self.url, str(self.db_path), session, self.listener_problem, forward, recording, tunnel)
        self.main_screen.set_origin(origin)

    def notify_commit(self, notice: CommitNotice) -> None:
        """Called by the writer thread after each commit: the feed keeps it; the first since a redraw wakes the app."""
        if self.feed.push(notice):
            self.post_message(msg.RowsCommitted())

    def _apply_commits(self) -> None:
        notices = self.feed.take()
        if not notices or not self.is_running:  # shutting down: the screens' widgets may be gone
            return
        self.feed.count_stats(notices)
        with self.batch_update():
            self.main_screen.rows_committed(notices)
            forwarded = {row["event_id"] for notice in notices for row in notice.forwards}
            if forwarded:
                self.main_screen.refresh_rows(forwarded)
                if isinstance(self.screen, DetailScreen) and self.screen.delivery.get("id") in forwarded:
                    self._load_forwards(int(self.screen.delivery["id"]))
            if self.feed.stats is None:
                self._load_stats()
            self._tick()
            self._refresh_checks()

    def _poll_other_writers(self) -> None:
        if not self.is_running:  # shutting down: the screens' widgets may be gone, the connection closed
            return
        try:
            version = self.reads.data_version()
            if version == self._data_version:
                return
            self._data_version = version
            with self.reads.snapshot() as (events, rejected):
                seen = self.feed.view_seen
        except sqlite3.Error as exc:
            self.failures.read_failed(exc, "new rows")
            return
        notice = CommitNotice(
            list(range(seen.events + 1, events + 1)), list(range(seen.rejected + 1, rejected + 1)), [], []
        )
        if notice.event_ids or notice.rejected_ids:
            self.main_screen.rows_committed([notice])
        else:
            self.main_screen.refresh_rows()  # e.g. forwards recorded by the other process
        self._load_stats()
        self._refresh_checks()

    def _timed_tick(self) -> None:
        if self.is_running:  # not while shutting down
            self._tick()

    def _tick(self) -> None:
        if self.feed.stats is not None:
            self.main_screen.set_stats(self.feed.stats.snapshot(self.clock()))
        self._show_origin()

    def _check_health(self) -> None:
        """Show at once that the listener stopped recording (and when it records again), and the tunnel's news."""
        if not self.is_running:
            return
        problem = self.listener_problem
        tunnel = self.link.tunnel_state() if self.link is not None else None
        if problem == self._problem_shown and tunnel == self._tunnel_shown:
            return
        if tunnel != self._tunnel_shown:
            self._tunnel_news(self._tunnel_shown, tunnel)
            self._tunnel_shown = tunnel
        if problem != self._problem_shown:
            self._problem_shown = problem
            if problem is not None:  # the header says it for as long as it lasts; this reaches every screen
                self.notify(cell(problem, 1000), title="Not recording", severity="error", timeout=30, markup=False)
        self._show_origin()

    def _tunnel_news(self, before: TunnelState | None, after: TunnelState | None) -> None:
        """A notification, once, when the tunnel's program is missing, its URL is reachable, or it is not."""
        if after is None:
            return
        name = tunnel_status.program(after.provider)
        if after.phase == "missing" and (before is None or before.phase != "missing"):
            detail = cell(after.detail, 1000) or f"{name} is not installed"
            self.notify(detail, title="No tunnel", severity="error", timeout=30, markup=False)
            return
        url = tunnel_status.public_url(after)
        if url is None or after.reachable is None:
            return
        if not after.reachable and (after.probe_error or "").startswith("DNS"):
            return  # a new URL's first seconds: the header says it is retrying
        if self._tunnel_told.get(url) == after.reachable:
            return  # told once per URL and state (reachable again after a failure is news)
        self._tunnel_told[url] = after.reachable
        if after.reachable:
            ms = f" ({after.probe_ms:.0f} ms)" if after.probe_ms is not None else ""
            message = f"{url} is reachable{ms}. c copies it for {tunnel_status.WEBHOOK_SETTINGS}."
            self.notify(message, title="Public URL", timeout=15, markup=False)
        else:
            why = cell(after.probe_error, 300) if after.probe_error else "no answer"
            self.notify(f"{url} is not reachable: {why}", title="Public URL", severity="warning", markup=False)

    def _load_stats(self) -> None:
        session_id, now = self.session_id, self.clock()
        self._read(
            "the header counters", "stats", lambda db: msg.StatsLoaded(queries.header_stats(db, session_id, now))
        )

    def on_stats_loaded(self, message: msg.StatsLoaded) -> None:
        self.main_screen.set_stats(message.stats)
