"""The Textual app: live monitor (with a listener) or offline review; the hub every message goes through.

Screens post requests (:mod:`monitor.tui.messages`) and the app's
``@on(...)`` handlers answer them: loaders run as thread workers that post
what they read, and the app pushes the screen. Commit notices wait in the
:class:`~monitor.tui.feed.Feed`. Must not build SQL (that is
:mod:`monitor.queries`) nor reach into a screen's widgets.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlite_utils import Database
from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from monitor import checks, exporting, queries
from monitor.reading import ReadAccess
from monitor.resources import styles_dir
from monitor.textsafe import cell
from monitor.tui import loaders
from monitor.tui import messages as msg
from monitor.tui.failures import FailureReporter
from monitor.tui.feed import Feed
from monitor.tui.link import Link, RemoteLink, ServiceLink
from monitor.tui.live import LiveRows
from monitor.tui.replaying import Replayer
from monitor.tui.rereading import Reread, Running
from monitor.tui.screens.checks import (
    ChecksFilterChosen,
    ChecksScopeWanted,
    ChecksScreen,
    ChecksThresholdsChanged,
    session_scope,
)
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.export import ExportScreen
from monitor.tui.screens.help import HelpScreen
from monitor.tui.screens.insights import InsightsScreen, InsightsWanted
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.reader import ReaderScreen
from monitor.tui.screens.readers import PAGE as READERS_PAGE
from monitor.tui.screens.readers import ReadersScreen
from monitor.tui.screens.sessions import SessionsScreen
from monitor.wording import number

if TYPE_CHECKING:  # the listener's machinery (aiohttp): imported by the live monitor's launch only
    from monitor.service import Service

S = TypeVar("S", bound=Screen[Any])


class MonitorApp(LiveRows, App[None]):
    """The live monitor of a listener's :class:`Service`, or offline review of a database file.

    Owns the state the screens share (session, mask, clock, replay target),
    the feed of commit notices, and the workers that read for the screens.
    """

    CSS_PATH = [str(styles_dir() / name) for name in ("app.tcss", "screens.tcss", "checks.tcss")]
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
        link: Link | None = None,
        session_id: int | None = None,
        clock: Callable[[], float] = time.time,
        mask_forced: bool = False,
    ) -> None:
        super().__init__()
        #: "Now" for every screen: tests pass a frozen one.
        self.clock = clock
        self.db_path = Path(db_path)
        self.service = service
        #: The listener: this process's service, a browser tab's serve process, or none (offline review).
        self.link: Link | None = link if link is not None else (ServiceLink(service) if service else None)
        self.live_session_id = self.link.session_id if self.link else None
        self.session_id = self.live_session_id if self.link else session_id
        self.url = self.link.url if self.link else None
        #: ``--web-mask``: personal data stays hidden, whatever ``m`` is pressed.
        self.mask_forced = mask_forced
        #: Files written for the browser to download (web tabs); removed when the app ends.
        self._downloads: tempfile.TemporaryDirectory[str] | None = None
        self.reads = ReadAccess(self.db_path)
        self.feed = Feed()
        self.replayer = Replayer(self, self.link)
        self.main_screen = MainScreen(self.reads, self.feed, clock)
        self.main_screen.session_id = self.session_id
        self.failures = FailureReporter(self, self.db_path, live=self.link is not None)
        #: The Checks screen's thresholds, and whether it checks every session rather than the one reviewed.
        self.check_thresholds = checks.Thresholds()
        self.checks_all_sessions = False
        # The readers list and the Insights screen read again when the database changed (this monitor's
        # writer or another process), never while a read runs; the Insights' reads (~0.7 s at 1M events)
        # leave twice their time between two.
        self._readers_reread = Reread()
        self._insights_reread = Reread(pace=2.0)
        #: Run once the first frame is on the screen: start-up work a person need not wait for.
        self.when_ready: Callable[[], None] | None = None

    @property
    def fatal_error(self) -> BaseException | None:
        """What ended offline review (a damaged file), for the command line; None otherwise."""
        return self.failures.fatal_error

    async def on_mount(self) -> None:
        if self.mask_forced:  # before the first row is drawn
            self.masked = True
        self._show_origin()
        await self.push_screen(self.main_screen)
        self.start_live_rows()

    def on_ready(self) -> None:
        if self.when_ready is not None:
            self.when_ready()

    def on_unmount(self) -> None:
        if self.service is not None:
            self.service.stop_thread()
        if isinstance(self.link, RemoteLink):
            self.link.close()
        self.reads.close()
        if self._downloads is not None:
            self._downloads.cleanup()

    def _download_dir(self) -> Path:
        if self._downloads is None:
            self._downloads = tempfile.TemporaryDirectory(prefix="conscent-monitor-downloads-")
        return Path(self._downloads.name)

    def _shown(self, kind: type[S]) -> S | None:
        """The topmost screen of ``kind`` on the stack (a refresh goes to it, even under a dialog)."""
        return next((screen for screen in reversed(self.screen_stack) if isinstance(screen, kind)), None)

    def switch_session(self, session_id: int | None) -> None:
        """Review another session (or all of them: None); the same one when it cannot be read."""
        previous, self.session_id = self.session_id, session_id
        self.main_screen.session_id = session_id
        if not self.main_screen.reload():
            self.session_id = self.main_screen.session_id = previous
            return
        self._show_origin()
        self._start_stats()

    @on(msg.SessionChosen)
    def _session_chosen(self, message: msg.SessionChosen) -> None:
        self.switch_session(message.session_id)

    @on(msg.RowsCommitted)
    def _rows_committed(self) -> None:
        delay = self.feed.redraw_delay()
        if delay is not None:
            self.set_timer(delay, self._apply_commits)

    # -- failures -------------------------------------------------------------------

    @on(msg.ReadFailed)
    def _read_failed(self, message: msg.ReadFailed) -> None:
        if message.quiet:  # the screen says it; only a damaged file in offline review ends the app
            self.failures.end_if_damaged(message.error)
        else:
            self.failures.read_failed(message.error, message.what)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A loader's failure is one line, never the end of the app (workers run with exit_on_error off)."""
        error = event.worker.error
        if event.state == WorkerState.ERROR and error is not None:
            self.failures.read_failed(error, event.worker.name or "data")

    # -- loaders: read off the UI thread, post what they read ------------------------------

    def _read(self, what: str, group: str, read: Callable[[Database], Message | None]) -> Worker[None]:
        """Run ``read`` on a connection of its own in a thread; post the message it returns.

        One loader per group at a time (a newer one cancels the older), and a
        failure is one line naming ``what`` (:meth:`on_worker_state_changed`).
        """

        def load() -> None:
            with self.reads.connect() as db:
                message = read(db)
            if message is not None:
                self.post_message(message)

        exclusive = group != "forwards"  # a late forwards reload must not cancel a drill-down
        return self.run_worker(load, name=what, group=group, thread=True, exclusive=exclusive, exit_on_error=False)

    def _load_forwards(self, event_id: int) -> Worker[None]:
        def read(db: Database) -> Message:
            return msg.ForwardsLoaded(event_id, queries.forwards_of(db, event_id))

        return self._read("the delivery's forwards", "forwards", read)

    @on(msg.OpenReader)
    def _open_reader(self, message: msg.OpenReader) -> None:
        user_id, session_id = message.user_id, self.session_id
        self._read("the reader's events", "drill", lambda db: loaders.reader(db, user_id, session_id))

    @on(msg.ReaderLoaded)
    def _reader_loaded(self, message: msg.ReaderLoaded) -> None:
        self.push_screen(ReaderScreen(message.data, self.clock, self.reads))

    @on(msg.OpenDelivery)
    def _open_delivery(self, message: msg.OpenDelivery) -> None:
        self._read("the delivery", "drill", lambda db: loaders.delivery(db, message.source, message.delivery_id))

    @on(msg.DeliveryLoaded)
    def _delivery_loaded(self, message: msg.DeliveryLoaded) -> None:
        if message.purpose == "replay":
            self.replayer.replay(message.delivery)
        else:
            self.push_screen(DetailScreen(message.source, message.delivery))

    @on(msg.ForwardsLoaded)
    def _forwards_loaded(self, message: msg.ForwardsLoaded) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen) and screen.delivery.get("id") == message.event_id:
                screen.show_forwards(message.forwards)

    @on(msg.SessionsLoaded)
    def _sessions_loaded(self, message: msg.SessionsLoaded) -> None:
        screen = SessionsScreen(
            message.rows, message.counts, live_session_id=self.live_session_id, current=self.session_id
        )
        self.push_screen(screen)

    @on(msg.ReadersLoaded)
    def _readers_loaded(self, message: msg.ReadersLoaded) -> None:
        self._readers_reread.finished(message.seconds)
        shown = self._shown(ReadersScreen)
        if message.refresh:
            if shown is not None:
                shown.show(message.page, message.filter_text, message.limit, message.error)
        elif not isinstance(self.screen, ReadersScreen):  # e.g. from the palette over a drill-down opened from one
            self.push_screen(ReadersScreen(message.page, filter_text=message.filter_text, limit=message.limit))

    @on(msg.ReadersWanted)
    def _readers_wanted(self, message: msg.ReadersWanted) -> None:
        if message.if_changed and not self._readers_reread.due(self.reads.data_version):
            return
        self._load_readers(message.filter_text, message.limit, refresh=True)

    def _load_readers(self, filter_text: str, limit: int, *, refresh: bool) -> None:
        session_id, now = self.session_id, self.clock()
        self._readers_reread.started(
            self.reads.data_version,
            lambda: self._read(
                "the readers",
                "readers" if refresh else "drill",
                lambda db: loaders.readers(db, session_id, filter_text, limit, now=now, refresh=refresh),
            ),
        )

    # -- checks ------------------------------------------------------------------------

    _checks_worker: Worker[None] | None = None
    #: Rows were committed while the checks ran: run them again when they are done.
    _checks_stale = False

    def _load_checks(self, *, refresh: bool) -> None:
        session_id = None if self.checks_all_sessions else self.session_id
        thresholds, now, switchable = self.check_thresholds, self.clock(), self.session_id is not None
        scope = session_scope(session_id, self.live_session_id)
        self._checks_stale = False
        self._checks_worker = self._read(
            "the checks",
            "checks" if refresh else "drill",
            lambda db: loaders.run_checks(
                db, session_id, thresholds, scope, now=now, switchable=switchable, refresh=refresh
            ),
        )

    def _refresh_checks(self) -> None:
        """Rows were committed: run the checks again if their screen is open (one run at a time)."""
        if not any(isinstance(screen, ChecksScreen) for screen in self.screen_stack):
            return
        if self._checks_worker is not None and self._checks_worker.is_running:
            self._checks_stale = True
            return
        self._load_checks(refresh=True)

    def action_open_checks(self) -> None:
        refresh = isinstance(self.screen, ChecksScreen)
        self._load_checks(refresh=refresh)
        if not refresh:
            self._say_if_slow(lambda: self._checks_worker, "Running the checks…")

    def _say_if_slow(self, worker: Callable[[], Running | None], text: str) -> None:
        """A read that takes a while on a large database says it is running (nothing shows until it ends)."""

        def still_running() -> None:
            running = worker()
            if running is not None and running.is_running:
                self.notify(text, timeout=3)

        self.set_timer(0.5, still_running)

    @on(msg.ChecksLoaded)
    def _checks_loaded(self, message: msg.ChecksLoaded) -> None:
        shown = self._shown(ChecksScreen)
        if shown is not None:
            shown.show(
                message.findings,
                message.thresholds,
                message.scope,
                checked=message.checked,
                switchable=message.switchable,
            )
        elif not message.refresh:
            self.push_screen(
                ChecksScreen(
                    message.findings,
                    message.thresholds,
                    message.scope,
                    self.clock,
                    checked=message.checked,
                    switchable=message.switchable,
                )
            )
        if self._checks_stale:  # rows came in during that run (its worker may not have ended yet)
            self._load_checks(refresh=True)

    @on(ChecksFilterChosen)
    def _checks_filter(self, message: ChecksFilterChosen) -> None:
        while len(self.screen_stack) > 2 and self.screen is not self.main_screen:  # opened over a drill-down
            self.pop_screen()
        if self.checks_all_sessions and self.session_id is not None:
            self.switch_session(None)  # the rows may be in any session
        self.main_screen.show_filter(message.filter_text, message.mode)

    @on(ChecksScopeWanted)
    def _checks_scope(self, message: ChecksScopeWanted) -> None:
        self.checks_all_sessions = message.all_sessions
        self._load_checks(refresh=True)

    @on(ChecksThresholdsChanged)
    def _checks_thresholds(self, message: ChecksThresholdsChanged) -> None:
        self.check_thresholds = message.thresholds
        self._load_checks(refresh=True)

    _insights_view: queries.View | None = None
    _insights_description = ""

    def action_open_insights(self) -> None:
        main = self.main_screen
        what = "views and closes" if main.mode == "gateway" else "every delivery"
        where = "all sessions" if main.session_id is None else f"session #{main.session_id}"
        self._insights_view = main.view
        self._insights_description = f"{what} of {where}" + (
            f" · filter: {main.filter_text}" if main.filter_text else ""
        )
        self._load_insights(refresh=False)
        self._say_if_slow(lambda: self._insights_reread.worker, "Reading the insights…")

    def _load_insights(self, *, refresh: bool) -> None:
        view, description, now = self._insights_view, self._insights_description, self.clock()
        if view is None:
            return
        live = self.live_session_id is not None and view.session_id in (None, self.live_session_id)
        self._insights_reread.started(
            self.reads.data_version,
            lambda: self._read(
                "the insights",
                "insights" if refresh else "drill",
                lambda db: loaders.insights(db, view, description, now=now, live=live, refresh=refresh),
            ),
        )

    @on(msg.InsightsLoaded)
    def _insights_loaded(self, message: msg.InsightsLoaded) -> None:
        self._insights_reread.finished(message.seconds)
        shown = self._shown(InsightsScreen)
        if message.refresh:
            if shown is not None:
                shown.refresh_data(message.data)
        elif not isinstance(self.screen, InsightsScreen):
            self.push_screen(InsightsScreen(message.data, message.description, self.clock))

    @on(InsightsWanted)
    def _insights_wanted(self, message: InsightsWanted) -> None:
        if message.if_changed and not self._insights_reread.due(self.reads.data_version):
            return
        self._load_insights(refresh=True)

    # -- replay and export ------------------------------------------------------------

    @property
    def replay_target(self) -> str | None:
        """The URL typed for replays when there is no forward target."""
        return self.replayer.target

    @replay_target.setter
    def replay_target(self, url: str | None) -> None:
        self.replayer.target = url

    @on(msg.CopyCurl)
    def _copy_curl(self, message: msg.CopyCurl) -> None:
        command = exporting.curl_command(message.delivery, self.replayer.curl_base_url(), mask=self.masked)
        self.copy_to_clipboard(command)
        self.notify("curl command copied to the clipboard" + (" (personal data masked)" if self.masked else ""))

    @on(msg.ReplayRow)
    def _replay_row(self, message: msg.ReplayRow) -> None:
        """``r`` on the table: load the delivery, then replay it."""
        self._read(
            "the delivery to replay", "replay", lambda db: loaders.delivery(db, "event", message.delivery_id, "replay")
        )

    @on(msg.ReplayDelivery)
    def _replay_delivery(self, message: msg.ReplayDelivery) -> None:
        if message.edit and self.masked:  # the editor holds the raw body
            why = "--web-mask" if self.mask_forced else "m unmasks"
            self.notify(f"Edit & replay shows the raw body: not while personal data is masked ({why})", markup=False)
            return
        if message.edit:
            self.replayer.edit_and_replay(message.delivery)
        else:
            self.replayer.replay(message.delivery)

    @on(msg.ReplayDone)
    def _replay_done(self, message: msg.ReplayDone) -> None:
        answer = f"HTTP {message.status}" if message.status is not None else cell(message.error, 120)
        ok = message.status is not None and message.status < 400
        took = f" in {number(round(message.latency_ms))} ms" if message.latency_ms > 0 else ""  # 0: never sent
        self.notify(
            f"Replay of #{message.event_id}: {answer}{took}",
            markup=False,
            severity="information" if ok else "error",
        )

    # -- export ------------------------------------------------------------------------

    @on(msg.ExportView)
    def _export_view(self, message: msg.ExportView) -> None:
        # A browser tab downloads the file; masked is True whenever mask_forced (--web-mask).
        screen = ExportScreen(
            message.description,
            message.filter_text,
            message.session_id,
            self.clock,
            download=self.is_web,
            masked=self.masked,
        )
        self.push_screen(screen)

    @on(msg.ExportChosen)
    def _export(self, message: msg.ExportChosen) -> None:
        """Write the file in a worker; the dialog stays open until :meth:`_exported` says how it went."""
        path, base_url = self.db_path, self.replayer.curl_base_url()
        request, filter_text, session_id = message.request, message.filter_text, message.session_id
        download_dir = self._download_dir() if request.download else None

        def read(db: Database) -> Message:
            return loaders.export(
                db, request, db_path=path, filter_text=filter_text, session_id=session_id, base_url=base_url,
                download_dir=download_dir,
            )  # fmt: skip

        self._read("the rows to export", "export", read)

    @on(msg.Exported)
    def _exported(self, message: msg.Exported) -> None:
        dialog = self.screen if isinstance(self.screen, ExportScreen) else None
        if dialog is not None and not message.ok:
            dialog.export_failed(message.text)  # kept open with the error, the path ready to edit
            return
        if message.download is not None:  # only a browser tab asks for one (outside, Textual saves to ~/Downloads)
            name = message.download.name
            self.deliver_binary(message.download, save_filename=name, mime_type=exporting.mime_type(name))
        if dialog is not None:
            dialog.dismiss(None)
        self.notify(message.text, severity="information" if message.ok else "error", markup=False, timeout=8)

    # -- actions --------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_mask(self) -> None:
        if self.mask_forced:
            self.notify("Personal data stays masked: this web UI was started with --web-mask", markup=False)
            return
        self.masked = not self.masked

    def watch_masked(self, masked: bool) -> None:
        self.main_screen.masked = masked

    def action_open_readers(self) -> None:
        self._load_readers("", READERS_PAGE, refresh=isinstance(self.screen, ReadersScreen))

    def action_open_sessions(self) -> None:
        self._read(
            "the sessions",
            "drill",
            lambda db: msg.SessionsLoaded(queries.sessions(db), queries.event_counts_by_session(db)),
        )

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        # Textual's own "Keys" panel would sit next to our help screen under two names: ours replaces it.
        yield from (command for command in super().get_system_commands(screen) if command.title != "Keys")
        main = self.main_screen
        yield SystemCommand("Filter deliveries", "Type a filter (event:, user:, content:, …)", main.action_filter)
        yield SystemCommand(
            "Toggle gateway / all events", "Views and closes only, or every delivery", main.action_toggle_mode
        )
        yield SystemCommand("Readers", "Every reader, leading to the drill-down", self.action_open_readers)
        yield SystemCommand(
            "Insights", "Funnel, close actions, time to close, deliveries and lag over time", self.action_open_insights
        )
        if self.link is not None:
            yield SystemCommand(
                "Copy webhook URL", "The URL to paste into Conscent's webhook settings (c)", main.action_copy_url
            )
        yield SystemCommand(
            "Mask personal data", "Hide phones, names and places for screen sharing", self.action_toggle_mask
        )
        yield SystemCommand("Sessions", "Every recorded run: review one, or all", self.action_open_sessions)
        yield SystemCommand(
            "Checks",
            "What is wrong with this integration: signatures, pairing, fields, delivery (!)",
            self.action_open_checks,
        )
        yield SystemCommand("Export", "Write what the table shows to JSONL, CSV, HAR or curl", main.action_export)
        yield SystemCommand("Keys and filter help", "Every key binding and the filter language (?)", self.action_help)
