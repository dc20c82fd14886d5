"""The TUI never ends because of what the database answers (issue 10: 7, 12, 2).

- A filter past the language's limits, or one whose query SQLite refuses, is
  one line on the status line; the table keeps the previous view and the
  listener keeps recording.
- A damaged file (a data page overwritten in the middle, so that reading some
  events fails with "database disk image is malformed"): every screen says so
  in one line. The live monitor carries on; offline review (``open``) ends
  with return code 1 and the message.
- A listener whose writer refuses deliveries (its database was deleted or
  replaced): the header says so in full, in the theme's error colour, for as
  long as it lasts.

Live tests with a real listener use the ``live`` fixture; the others give the
app a stand-in service (what the app reads of one: session, URL, writer
health), so a damaged file or an unhealthy writer can be staged exactly.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from textual.color import Color
from textual.notifications import Notify
from textual.widgets import Input, Static

from monitor import queries, store, synth
from monitor.service import Service
from monitor.tui.app import MonitorApp
from monitor.tui.screens import main as main_screen
from monitor.tui.widgets.event_table import EventTable
from tests.helpers import SIZE, VIEW, Live, damage_events_page, gateway_body, screen_text, static_text, wait_for

#: Generous: the machine may be loaded.
TIMEOUT = 20.0
END = 1_764_000_000.0


# -- a damaged database ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Damaged:
    path: Path
    bad_ids: list[int]  # events whose page was overwritten


def _damage(path: Path) -> list[int]:
    """Overwrite the start of a data page of ``events`` (not page 1); the ids of the rows it held.

    The page holds rows about a quarter of the way into the table (dbstat's
    ``path`` orders leaves by rowid): the newest rows, which the main screen
    shows first, still read, and the readers screen, which reads every row, fails.
    """
    conn = sqlite3.connect(path)
    try:
        ids = [n for (n,) in conn.execute("SELECT id FROM events ORDER BY id")]
    finally:
        conn.close()
    damage_events_page(path, at=0.25, length=100)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    bad = []
    try:
        for event_id in ids:
            try:
                conn.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchall()
            except sqlite3.DatabaseError as exc:
                assert "malformed" in str(exc)
                bad.append(event_id)
    finally:
        conn.close()
    return bad


@pytest.fixture(scope="module")
def damaged_template(tmp_path_factory: pytest.TempPathFactory) -> Damaged:
    path = tmp_path_factory.mktemp("damaged") / "template.db"
    synth.build_database(path, 400, readers=40, sessions=1, end=END)
    bad = _damage(path)
    assert bad and min(bad) > 1 and max(bad) < 150, bad  # the oldest and the newest rows still read
    return Damaged(path, bad)


@pytest.fixture
def damaged(damaged_template: Damaged, tmp_path: Path) -> Damaged:
    path = tmp_path / "damaged.db"
    shutil.copyfile(damaged_template.path, path)
    return Damaged(path, damaged_template.bad_ids)


# -- a stand-in for the listener ------------------------------------------------------------------


@dataclass
class FakeStats:
    last_error: str | None = None


@dataclass
class FakeWriter:
    stats: FakeStats = field(default_factory=FakeStats)

    @property
    def healthy(self) -> bool:
        return self.stats.last_error is None


@dataclass
class FakeOptions:
    forward_to: str | None = None


@dataclass
class FakeService:
    """What the app reads of a :class:`Service`; ``session_id`` None shows every session."""

    session_id: int | None = None
    url: str = "http://127.0.0.1:8787/"
    writer: FakeWriter = field(default_factory=FakeWriter)
    options: FakeOptions = field(default_factory=FakeOptions)
    forwarder: None = None
    tunnel_state: None = None  # no --tunnel
    stopped: bool = False

    def stop_thread(self) -> None:
        self.stopped = True


def live_app(db_path: Path, service: FakeService) -> MonitorApp:
    return MonitorApp(db_path, service=cast(Service, service))


# -- reading the screen ---------------------------------------------------------------------------


def status(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#statusline")


def table_of(app: MonitorApp) -> EventTable:
    return app.main_screen.query_one(EventTable)


def errors(messages: list[Any]) -> list[str]:
    return [
        str(m.notification.message) for m in messages if isinstance(m, Notify) and m.notification.severity == "error"
    ]


async def submit_filter(pilot: Any, app: MonitorApp, text: str) -> Input:
    """Open the filter box, put ``text`` in it (typing 1,100 words key by key takes minutes), press Enter."""
    box = app.main_screen.query_one("#filter", Input)
    await pilot.press("slash")
    await wait_for(pilot, lambda: box.display and box.has_focus, what="the filter box")
    box.value = text
    await pilot.press("enter")
    await pilot.pause()
    return box


async def scroll_to(pilot: Any, table: EventTable, index: int) -> None:
    table.cursor_row = index
    await pilot.pause()
    await pilot.pause()


def interrupted(*args: Any, **kwargs: Any) -> Any:
    raise sqlite3.OperationalError("interrupted")


# -- 7: filters ------------------------------------------------------------------------------------


async def test_a_thousand_word_filter_is_refused_and_the_listener_keeps_recording(live: Live) -> None:
    """Issue 10.7: 1,100 words and Enter ended the app ("Expression tree is too large") and the listener."""
    await live.post(VIEW)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 1, TIMEOUT, "the first row")
        box = await submit_filter(pilot, app, " ".join(f"w{n}" for n in range(1100)))
        await wait_for(pilot, lambda: "too long" in status(app), TIMEOUT, "the refusal")
        assert "at most 1,000" in status(app) and box.has_class("-bad-filter")
        assert box.cursor_position == 1000  # where the filter passes the limit
        assert app.is_running and app.main_screen.filter_text == "" and table.total == 1

        box.value = " OR ".join(f"w{n}" for n in range(40))  # short enough, too many terms
        await pilot.press("enter")
        await wait_for(pilot, lambda: "too many terms (40; at most 32)" in status(app), TIMEOUT, "the term limit")

        await live.post(gateway_body(user_id="reader-2"))  # the listener still answers 200...
        await wait_for(pilot, lambda: table.total == 2, TIMEOUT, "the new row")  # ...and the table still counts
        assert app.is_running


async def test_a_query_sqlite_refuses_keeps_the_previous_view(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any OperationalError of the view's query: the status line says it, the table and the filter stay."""
    await live.post(VIEW)
    await live.post(gateway_body(event="payment_gateway.close", user_id="reader-2"))
    count_rows = queries.count_rows

    def refusing(db: Any, view: queries.View) -> int:
        if "?" in view.where:  # any filter
            raise sqlite3.OperationalError("Expression tree is too large (maximum depth 1000)")
        return count_rows(db, view)

    monkeypatch.setattr(queries, "count_rows", refusing)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 2, TIMEOUT, "the rows")
        box = await submit_filter(pilot, app, "event:close")
        await wait_for(pilot, lambda: "Expression tree is too large" in status(app), TIMEOUT, "the error")
        assert status(app).lstrip().startswith("✗")
        assert app.main_screen.query_one("#statusline", Static).has_class("-error")
        assert app.main_screen.filter_text == "" and table.total == 2 and box.display  # nothing changed
        assert app.is_running

        await pilot.press("escape")  # back to the unfiltered view, which reads
        await wait_for(pilot, lambda: "GATEWAY" in status(app) and "✗" not in status(app), TIMEOUT, "the view")

        await pilot.press("a")  # toggling the mode with a refusing database keeps the mode shown
        await wait_for(pilot, lambda: "ALL EVENTS" in status(app), TIMEOUT)
        monkeypatch.setattr(queries, "count_rows", interrupted)
        await pilot.press("a")
        await wait_for(pilot, lambda: "interrupted" in status(app), TIMEOUT)
        assert app.main_screen.mode == "all" and app.is_running


async def test_a_slow_filter_is_stopped_and_runs_on_a_second_enter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI's thread waits for a filter's first load: past the budget it is stopped, the user asked."""
    db_path = tmp_path / "m.db"
    synth.build_database(db_path, 200, readers=20, sessions=1, end=END)
    monkeypatch.setattr(main_screen, "FILTER_BUDGET", 0.000_001)  # every filter is "slow"
    app = live_app(db_path, FakeService())
    async with app.run_test(size=SIZE) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total > 0, TIMEOUT, "the rows")
        before = table.total
        box = await submit_filter(pilot, app, "mumbai")
        await wait_for(pilot, lambda: "slow filter stopped" in status(app), TIMEOUT, "the budget")
        assert "Enter runs it anyway" in status(app) and table.total == before and box.display
        await pilot.press("enter")  # the same text again: no budget
        await wait_for(pilot, lambda: app.main_screen.filter_text == "mumbai", TIMEOUT, "the filter")
        assert 0 < table.total < before and not box.display and "✗" not in status(app)


@pytest.mark.parametrize(
    ("key", "target", "what"),
    [
        ("u", "readers_page", "the readers"),
        ("s", "sessions", "the sessions"),
        ("enter", "reader_profile", "the reader's events"),
        ("d", "get_delivery", "the delivery"),
    ],
)
async def test_a_loader_that_fails_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, target: str, what: str
) -> None:
    """Before: the worker's exception ended the app (Textual's default for a failed worker)."""
    db_path = tmp_path / "m.db"
    synth.build_database(db_path, 20, readers=3, sessions=1, end=END)

    monkeypatch.setattr(queries, target, interrupted)
    service = FakeService()
    app = live_app(db_path, service)
    messages: list[Any] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: table_of(app).total > 0, TIMEOUT, "the rows")
        await pilot.press(key)
        await wait_for(pilot, lambda: errors(messages), TIMEOUT, "the error")
        assert errors(messages) == [f"Could not read {what}: interrupted"]
        assert app.is_running and app.screen is app.main_screen


async def test_counters_that_cannot_be_read_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live session's counters are read on the UI's thread at start: before, a failure there ended the app."""
    db_path = tmp_path / "m.db"
    synth.build_database(db_path, 20, readers=3, sessions=1, end=END)
    monkeypatch.setattr(queries.StatsAccumulator, "load", interrupted)
    monkeypatch.setattr(queries, "header_stats", interrupted)  # the worker that tries again
    app = live_app(db_path, FakeService(session_id=1))
    messages: list[Any] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: errors(messages), TIMEOUT, "the error")
        assert errors(messages) == ["Could not read the header counters: interrupted"]
        await wait_for(pilot, lambda: table_of(app).total > 0, TIMEOUT, "the rows")
        assert app.is_running


# -- 12: a damaged file ----------------------------------------------------------------------------


async def test_open_ends_with_return_code_1_on_the_readers_screen(damaged: Damaged) -> None:
    """Issue 10.12: ``open``, key ``u``: a traceback and exit status 0 before."""
    app = MonitorApp(damaged.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: table_of(app).total == 168, TIMEOUT, "the gateway rows")
        await pilot.pause()
        assert app.return_code is None and "database" not in screen_text(app)  # the newest rows read fine
        await pilot.press("u")
        await wait_for(pilot, lambda: app.return_code is not None, TIMEOUT, "the end")
    assert app.return_code == 1
    assert isinstance(app.fatal_error, sqlite3.DatabaseError) and "malformed" in str(app.fatal_error)


async def test_open_ends_with_return_code_1_when_scrolling_into_the_damage(damaged: Damaged) -> None:
    app = MonitorApp(damaged.path)
    async with app.run_test(size=SIZE) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 168, TIMEOUT, "the gateway rows")
        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 400, TIMEOUT, "every row")
        await pilot.pause()
        assert app.return_code is None
        await scroll_to(pilot, table, 400 - max(damaged.bad_ids))
        await wait_for(pilot, lambda: app.return_code is not None, TIMEOUT, "the end")
    assert app.return_code == 1 and "malformed" in str(app.fatal_error)


async def test_the_live_monitor_says_it_and_carries_on(damaged: Damaged) -> None:
    service = FakeService()
    app = live_app(damaged.path, service)
    messages: list[Any] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 168, TIMEOUT, "the gateway rows")

        await pilot.press("u")  # the readers read every event
        await wait_for(pilot, lambda: errors(messages), TIMEOUT, "the readers' error")
        assert errors(messages) == ["Could not read the readers: database disk image is malformed"]

        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 400, TIMEOUT, "every row")
        newest_bad = max(damaged.bad_ids)
        await scroll_to(pilot, table, 400 - newest_bad)
        await wait_for(pilot, lambda: "malformed" in status(app), TIMEOUT, "the status line")
        # Only the damaged rows are blank; the rest of their page is read around them.
        around = [table.row_at(400 - n) for n in range(min(damaged.bad_ids) - 3, newest_bad + 4)]
        assert [row.id for row in around if row is not None] == [
            n for n in range(min(damaged.bad_ids) - 3, newest_bad + 4) if n not in damaged.bad_ids
        ]

        await pilot.press("d")  # details of a damaged row: nothing to open
        await pilot.press("escape")  # reload: the first page reads again
        await wait_for(pilot, lambda: "✗" not in status(app), TIMEOUT, "the error cleared")

        box = await submit_filter(pilot, app, "delhi")  # free text scans every body: the damaged page too
        await wait_for(pilot, lambda: "malformed" in status(app), TIMEOUT, "the filter's error")
        assert table.total == 400 and app.main_screen.filter_text == "" and box.display
        assert app.is_running and app.return_code is None and not service.stopped


# -- 2: the writer refuses deliveries -------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_the_header_shows_a_refusing_writer_in_full(tmp_path: Path, size: tuple[int, int]) -> None:
    db_path = tmp_path / "m.db"
    store.open_store(db_path).close()
    service = FakeService()
    app = live_app(db_path, service)
    lost = f"database file {tmp_path / 'gone' / 'monitor-recordings.db'} {store.FILE_LOST}"
    messages: list[Any] = []
    async with app.run_test(size=size, message_hook=messages.append) as pilot:
        alarm = app.main_screen.query_one("#listener-alarm", Static)
        await pilot.pause()
        assert not alarm.display  # healthy: nothing

        service.writer.stats.last_error = lost
        await wait_for(pilot, lambda: alarm.display and alarm.region.height > 0, TIMEOUT, "the alarm")
        await pilot.pause()
        shown = _text_of(app, alarm)
        assert "".join(lost.split()) in "".join(shown.split()), shown  # all of it, wrapped (a path folds anywhere)
        if size[0] == 80:
            assert alarm.region.height > 1
        assert alarm.styles.background == Color.parse(app.theme_variables["error"])
        assert "NOT RECORDING" in static_text(app.main_screen, "#origin")
        assert table_of(app).region.height > 0  # the table is still there below it
        assert [m for m in errors(messages) if lost in m]  # said once on whatever screen is open

        service.writer.stats.last_error = None  # recording again
        await wait_for(pilot, lambda: not alarm.display, TIMEOUT, "the alarm gone")


def _text_of(app: MonitorApp, widget: Static) -> str:
    """What the terminal shows of ``widget``, its lines joined with spaces."""
    region = widget.region
    lines = screen_text(app).split("\n")[region.y : region.y + region.height]
    return " ".join(line[region.x : region.x + region.width].strip() for line in lines)
