"""Pilot tests of review and replay in the TUI: sessions, following another writer, export,
forwarding, replay, edit & replay, a target that is down, copy as curl.

Live tests run a real :class:`Service` (listener thread, writer) and post over HTTP; forward and
replay targets are real aiohttp servers on 127.0.0.1. Every test waits on a condition, never on a
fixed sleep.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from rich.console import Console
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import DataTable, Input, Select, Static, TextArea

from monitor import signing, store
from monitor.exporting import ansi_c_quote
from monitor.queries import Row
from monitor.service import Options, Service
from monitor.tui.app import MonitorApp
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.export import ExportScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.replay import EditScreen, TargetScreen
from monitor.tui.screens.sessions import SessionsScreen
from monitor.tui.widgets.event_table import EventTable
from monitor.writer import CommitNotice
from tests.helpers import (
    SIZE,
    TRANSACTION,
    Live,
    event_row,
    gateway_body,
    read_rows,
    rejected_row,
    screen_text,
    static_text,
    wait_for,
)

#: Generous: the machine may be loaded.
TIMEOUT = 20.0


# -- helpers ------------------------------------------------------------------------------


def table_of(app: MonitorApp) -> EventTable:
    return app.main_screen.query_one(EventTable)


def row(table: EventTable, index: int) -> Row:
    found = table.row_at(index)
    assert found is not None, f"no row {index} of {table.total}"
    return found


def rows(table: EventTable) -> list[Row]:
    return [row(table, i) for i in range(table.total)]


def origin(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#origin")


def counters(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#counters")


def status(app: MonitorApp) -> str:
    return static_text(app.main_screen, "#statusline")


def notes(messages: list[Message]) -> list[tuple[str, str]]:
    """Every notification the app showed so far: (message, severity)."""
    return [(m.notification.message, m.notification.severity) for m in messages if isinstance(m, Notify)]


def noted(messages: list[Message], text: str) -> bool:
    return any(text in message for message, _ in notes(messages))


def stored_kinds(path: Path, event_id: int) -> list[str]:
    """The kinds of the ``forwards`` rows of one delivery, oldest first."""
    return [r["kind"] for r in read_rows(path, "SELECT kind FROM forwards WHERE event_id = ? ORDER BY id", (event_id,))]


def session_rows(app: MonitorApp) -> list[list[str]]:
    table = app.screen.query_one("#sessions", DataTable)
    return [[str(value) for value in table.get_row_at(i)] for i in range(table.row_count)]


def rendered(renderable: Any, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def forwards_panel(app: MonitorApp) -> str:
    panel = app.screen.query_one("#detail-forwards", Static)
    return rendered(panel.content) if panel.display else ""


def detail_kinds(app: MonitorApp) -> list[str]:
    """The forwards and replays the detail screen lists, oldest first."""
    screen = app.screen
    assert isinstance(screen, DetailScreen)
    return [f["kind"] for f in screen.delivery.get("forwards") or []]


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def fill(db_path: Path, plan: list[dict[str, list[bytes]]], *, start: float = 1709186700.0) -> list[int]:
    """A database with one ended session per entry of ``plan`` (its ``events`` and ``rejected`` bodies)."""
    db = store.open_store(db_path)
    ids = []
    try:
        t = start
        for entry in plan:
            session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
            events = []
            for body in entry.get("events", []):
                t += 1
                events.append(event_row(body, session_id=session_id, received_at=t))
            rejected = []
            for body in entry.get("rejected", []):
                t += 1
                rejected.append(
                    rejected_row(
                        body, session_id=session_id, received_at=t, status=400, reason="body is not valid JSON"
                    )
                )
            store.write_batch(db.conn, events, rejected)
            store.end_session(db, session_id)
            ids.append(session_id)
    finally:
        db.close()
    return ids


def view(user: str, **kwargs: Any) -> bytes:
    return gateway_body(user_id=user, phone=f"9{zlib.crc32(user.encode()) % 10**9:09d}", **kwargs)


def close(user: str, **kwargs: Any) -> bytes:
    return gateway_body(event="payment_gateway.close", user_id=user, click_action="PAYMENT_GATEWAY_CROSS_BTN", **kwargs)


#: Three recorded runs: 2 gateway rows; 3 views and a transaction; a view and a rejection.
PLAN = [
    {"events": [view("reader-a"), close("reader-a")]},
    {"events": [view("reader-b1"), view("reader-b2"), TRANSACTION, view("reader-b3")]},
    {"events": [view("reader-c")], "rejected": [b"{not json"]},
]


# -- fixtures ------------------------------------------------------------------------------


@dataclass
class Target:
    """The developer's application: a real aiohttp server that records what it receives."""

    url: str
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """``http://host:port``: where a copied curl command sends."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    found = Target("")

    async def handle(request: web.Request) -> web.Response:
        found.received.append((await request.read(), dict(request.headers)))
        return web.json_response({"ok": True, "seen": len(found.received)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/conscent"
    try:
        yield found
    finally:
        await runner.cleanup()


StartLive = Callable[..., Awaitable[Live]]


@pytest.fixture
async def start_live(tmp_path: Path) -> AsyncIterator[StartLive]:
    """Start a monitor like ``run_live`` does, with the given :class:`Options` fields."""
    services: list[Service] = []
    clients: list[aiohttp.ClientSession] = []

    async def start(db_path: Path | None = None, **options: Any) -> Live:
        app: list[MonitorApp] = []

        def on_commit(notice: CommitNotice) -> None:
            if app:
                app[0].notify_commit(notice)

        path = db_path or tmp_path / "m.db"
        service = Service(Options(db_path=path, port=0, mode="tui", **options), on_commit=on_commit)
        await asyncio.to_thread(service.start_in_thread)
        services.append(service)
        app.append(MonitorApp(path, service=service))
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        clients.append(http)
        return Live(app[0], service, path, http)

    try:
        yield start
    finally:
        for http in clients:
            await http.close()
        for service in services:
            await asyncio.to_thread(service.stop_thread)


async def post_signed(live: Live, body: bytes, secret: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", signing.SIGNATURE_HEADER: signing.sign(body, secret)}
    async with live.http.post(live.url, data=body, headers=headers) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 200, answer
        return answer


# -- sessions ------------------------------------------------------------------------------


async def test_sessions_screen_reviews_one_session_or_all(tmp_path: Path) -> None:
    db_path = tmp_path / "review.db"
    s1, s2, s3 = fill(db_path, PLAN)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SIZE) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 6, TIMEOUT, "every session's gateway rows")
        assert "all sessions" in origin(app)

        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), TIMEOUT, "the sessions screen")
        await pilot.pause()
        listed = session_rows(app)
        assert [r[0] for r in listed] == ["all", f"#{s3}", f"#{s2}", f"#{s1}"]
        by_id = {r[0]: r for r in listed}
        # Session, Mode, Started, Ended, Address, Events, Views, Closes, Rejected, Per event type
        assert by_id[f"#{s1}"][5:9] == ["2", "1", "1", "0"]
        assert by_id[f"#{s2}"][5:9] == ["4", "3", "0", "0"]
        assert by_id[f"#{s3}"][5:9] == ["1", "1", "0", "1"]
        assert "payment_gateway.view 3" in by_id[f"#{s2}"][9] and "transaction.complete 1" in by_id[f"#{s2}"][9]
        assert all(r[3] for r in listed[1:]), "every session was ended"
        assert "http://127.0.0.1:8787/" in by_id[f"#{s1}"][4]
        sessions = app.screen.query_one("#sessions", DataTable)
        assert sessions.cursor_row == 0  # "all" is what the main screen shows

        # Session 2: down twice (past #3), Enter.
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: sessions.cursor_row == 2)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, MainScreen) and table.total == 3, TIMEOUT, "session 2's gateway rows"
        )
        assert app.session_id == s2
        assert {r.user_id for r in rows(table)} == {"reader-b1", "reader-b2", "reader-b3"}
        assert f"session #{s2}" in origin(app) and "(live)" not in origin(app)
        await wait_for(
            pilot, lambda: "views 3" in counters(app) and "other 1" in counters(app), TIMEOUT, "session 2's counters"
        )
        assert "closes 0" in counters(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 4, TIMEOUT, "session 2's events, transaction included")
        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 3)

        # Back to all of them: the cursor starts on the session shown.
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), TIMEOUT)
        await pilot.pause()
        sessions = app.screen.query_one("#sessions", DataTable)
        assert sessions.cursor_row == 2
        await pilot.press("up", "up")
        await wait_for(pilot, lambda: sessions.cursor_row == 0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and table.total == 6, TIMEOUT, "all rows")
        assert app.session_id is None and "all sessions" in origin(app)
        await wait_for(pilot, lambda: "views 5" in counters(app) and "rejected 1" in counters(app), TIMEOUT)

        # Escape leaves the sessions screen without switching.
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), TIMEOUT)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.session_id is None and table.total == 6


async def test_live_monitor_shows_its_session_and_switches_to_older_ones(tmp_path: Path, start_live: StartLive) -> None:
    db_path = tmp_path / "m.db"
    s1, s2, _ = fill(db_path, PLAN)
    live = await start_live(db_path)
    live_id = live.service.session_id
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: live.url in origin(app), TIMEOUT, "the URL in the header")
        assert f"session #{live_id} (live)" in origin(app)
        assert table.total == 0  # the live session is the default, not the older rows
        await live.post(view("live-1"))
        await wait_for(pilot, lambda: table.total == 1 and "views 1" in counters(app), TIMEOUT, "the live row")

        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), TIMEOUT, "the sessions screen")
        await pilot.pause()
        listed = session_rows(app)
        assert listed[1][0] == f"#{live_id} (live)" and listed[1][3] == "running" and listed[1][5] == "1"
        sessions = app.screen.query_one("#sessions", DataTable)
        assert sessions.cursor_row == 1  # on the live session

        # An older session: its rows and its counters; live deliveries no longer land in the table.
        await pilot.press("down", "down")  # past the live one and #3
        await wait_for(pilot, lambda: sessions.cursor_row == 3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.session_id == s2, TIMEOUT)
        await wait_for(pilot, lambda: table.total == 3 and "views 3" in counters(app), TIMEOUT, "session 2")
        assert f"session #{s2}" in origin(app) and "(live)" not in origin(app)
        answer = await live.post(close("live-1"))
        await wait_for(pilot, lambda: app.feed.view_seen.events >= answer["id"], TIMEOUT, "the close's notice")
        await pilot.pause()
        assert table.total == 3 and "closes 0" in counters(app) and "views 3" in counters(app)

        # Session 1 via the command the palette also uses.
        app.switch_session(s1)
        await wait_for(pilot, lambda: table.total == 2 and "closes 1" in counters(app), TIMEOUT, "session 1")

        # Back to the live session: its rows, the close included, and counters that follow.
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), TIMEOUT)
        await pilot.pause()
        sessions = app.screen.query_one("#sessions", DataTable)
        assert sessions.cursor_row == 4
        await pilot.press("up", "up", "up")
        await wait_for(pilot, lambda: sessions.cursor_row == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.session_id == live_id, TIMEOUT)
        await wait_for(pilot, lambda: table.total == 2, TIMEOUT, "the live session's two rows")
        assert f"session #{live_id} (live)" in origin(app)
        await wait_for(pilot, lambda: "views 1" in counters(app) and "closes 1" in counters(app), TIMEOUT)
        await live.post(view("live-2"))
        await wait_for(pilot, lambda: table.total == 3 and "views 2" in counters(app), TIMEOUT, "a new live row")
        assert row(table, 0).user_id == "live-2" and table.cursor_row == 0
        assert "readers 2" in counters(app)


# -- offline review follows another writer -------------------------------------------------


async def test_offline_review_follows_another_writer(tmp_path: Path) -> None:
    db_path = tmp_path / "shared.db"
    (s1,) = fill(db_path, PLAN[:1], start=time.time() - 60)
    app = MonitorApp(db_path, session_id=None)
    other = store.connect(db_path)  # another process's writer, as far as SQLite can tell
    try:
        async with app.run_test(size=SIZE) as pilot:
            table = table_of(app)
            await wait_for(pilot, lambda: table.total == 2, TIMEOUT, "the first rows")
            assert "Offline review" in origin(app)

            # Another writer commits: the row appears on top without a key press, under the cursor.
            store.write_batch(other.conn, [event_row(view("late-1"), session_id=s1, received_at=time.time())], [])
            await wait_for(pilot, lambda: table.total == 3, TIMEOUT, "the other writer's row")
            assert table.cursor_row == 0 and row(table, 0).user_id == "late-1"
            assert "following newest" in status(app)
            await wait_for(pilot, lambda: "views 2" in counters(app), TIMEOUT, "the counters")

            # A new session by the other writer (a second monitor run) is shown too: all sessions.
            s2 = store.start_session(other, listen="http://127.0.0.1:9999/", mode="headless")
            store.write_batch(
                other.conn,
                [
                    event_row(close("late-1"), session_id=s2, received_at=time.time()),
                    event_row(TRANSACTION, session_id=s2, received_at=time.time()),
                ],
                [],
            )
            await wait_for(pilot, lambda: table.total == 4, TIMEOUT, "the new session's close")
            assert row(table, 0).event == "payment_gateway.close" and table.cursor_row == 0
            await wait_for(pilot, lambda: "closes 2" in counters(app) and "other 1" in counters(app), TIMEOUT)

            # Moved away from the newest: the view stays, the new rows are counted as waiting.
            await pilot.press("down")
            await wait_for(pilot, lambda: table.cursor_row == 1)
            under_cursor = row(table, 1).id
            store.write_batch(other.conn, [event_row(view("late-2"), session_id=s2, received_at=time.time())], [])
            await wait_for(pilot, lambda: table.total == 5 and table.waiting == 1, TIMEOUT, "one waiting")
            assert row(table, table.cursor_row).id == under_cursor
            await wait_for(pilot, lambda: "↑ 1 new" in status(app), TIMEOUT)
            await pilot.press("home")
            await wait_for(pilot, lambda: table.cursor_row == 0 and table.waiting == 0)
            assert row(table, 0).user_id == "late-2"

            # Only a forward recorded by the other process: the Fwd column follows too.
            newest = row(table, 0).id
            store.write_batch(
                other.conn,
                [],
                [],
                [
                    {
                        "event_id": newest,
                        "session_id": s2,
                        "kind": "forward",
                        "attempt": 1,
                        "target": "http://127.0.0.1:3000/",
                        "requested_at": time.time(),
                        "status": 201,
                        "latency_ms": 3.0,
                        "response_body": b"ok",
                        "response_size": 2,
                    }
                ],
            )
            await wait_for(pilot, lambda: row(table, 0).forward == "201", TIMEOUT, "the forward's status")
            assert table.total == 5
    finally:
        other.close()


# -- export ---------------------------------------------------------------------------------


async def export_via_dialog(
    pilot: Any, app: MonitorApp, path: Path, fmt: str, *, keys: bool, written: bool = True
) -> None:
    """``x``, choose the format, type the path, submit; the dialog closes once the file is ``written``."""
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), TIMEOUT, "the export dialog")
    await pilot.pause()
    dialog = app.screen
    select = dialog.query_one("#export-format", Select)
    box = dialog.query_one("#export-path", Input)
    assert box.value.startswith("conscent-export-") and box.value.endswith(".jsonl")
    if fmt != "jsonl":
        if keys:  # as a person would: the path has the focus; back to the format, open it, move down, Enter
            await wait_for(pilot, lambda: box.has_focus, TIMEOUT, "the path focused")
            await pilot.press("shift+tab")
            await wait_for(pilot, lambda: select.has_focus, TIMEOUT, "the format selector focused")
            await pilot.press("enter")
            await wait_for(pilot, lambda: select.expanded, TIMEOUT, "the format list")
            await pilot.press("down", "enter")
        else:
            select.value = fmt
        await wait_for(pilot, lambda: select.value == fmt, TIMEOUT, f"format {fmt}")
        # The default file name follows the format.
        await wait_for(pilot, lambda: box.value.endswith(f".{fmt}"), TIMEOUT, "the default file name")
    box.value = str(path)
    box.focus()
    await pilot.pause()
    await pilot.press("enter")
    if written:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), TIMEOUT, "the dialog closed")


async def test_export_dialog_writes_the_current_view(tmp_path: Path) -> None:
    db_path = tmp_path / "review.db"
    _, s2, _ = fill(db_path, PLAN)
    app = MonitorApp(db_path, session_id=None)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 6, TIMEOUT)

        # Gateway mode and a filter: the views only (no close, no transaction, no rejection).
        await pilot.press("slash", *"-event:close", "enter")
        await wait_for(pilot, lambda: app.main_screen.filter_text == "-event:close" and table.total == 5, TIMEOUT)
        shown = {r.id for r in rows(table)}
        out = tmp_path / "views.csv"
        await export_via_dialog(pilot, app, out, "csv", keys=True)
        await wait_for(pilot, lambda: noted(messages, "Exported 5 deliveries"), TIMEOUT, "the export notification")
        assert noted(messages, str(out))
        with out.open(newline="", encoding="utf-8") as f:
            exported = list(csv.DictReader(f))
        assert {int(r["id"]) for r in exported} == shown
        assert {r["event"] for r in exported} == {"payment_gateway.view"}
        assert {r["user_id"] for r in exported} == {"reader-a", "reader-b1", "reader-b2", "reader-b3", "reader-c"}
        assert "body" not in exported[0] and "headers" not in exported[0]

        # No filter, one session: exactly its gateway bodies, one per line, byte for byte.
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.total == 6, TIMEOUT, "the filter cleared")
        app.switch_session(s2)
        await wait_for(pilot, lambda: table.total == 3, TIMEOUT, "session 2")
        out = tmp_path / "session2.jsonl"
        await export_via_dialog(pilot, app, out, "jsonl", keys=False)
        await wait_for(pilot, lambda: noted(messages, "Exported 3 deliveries"), TIMEOUT, "the jsonl notification")
        assert out.read_bytes().splitlines() == [view("reader-b1"), view("reader-b2"), view("reader-b3")]

        # "All events" mode exports the transaction too (rejections are not deliveries to export).
        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == 4, TIMEOUT)
        out = tmp_path / "session2-all.csv"
        await export_via_dialog(pilot, app, out, "csv", keys=False)
        await wait_for(pilot, lambda: noted(messages, "Exported 4 deliveries"), TIMEOUT)
        with out.open(newline="", encoding="utf-8") as f:
            assert sorted(r["event"] for r in csv.DictReader(f)) == [
                "payment_gateway.view",
                "payment_gateway.view",
                "payment_gateway.view",
                "transaction.complete",
            ]

        # A path that cannot be written: an error in the dialog, which stays open (tests/tui/test_details_export.py).
        await export_via_dialog(pilot, app, tmp_path / "missing-dir" / "x.csv", "csv", keys=False, written=False)
        await wait_for(
            pilot, lambda: "Export failed" in static_text(app, "#export-status"), TIMEOUT, "the error in the dialog"
        )
        assert isinstance(app.screen, ExportScreen) and app.is_running


# -- forwarding and replay ---------------------------------------------------------------------


async def test_forward_column_header_and_replay_to_the_forward_target(start_live: StartLive, target: Target) -> None:
    live = await start_live(forward_to=target.url)
    messages: list[Message] = []
    async with live.run(message_hook=messages.append) as pilot:
        app = live.app
        table = table_of(app)
        await wait_for(pilot, lambda: target.url in origin(app), TIMEOUT, "the target in the header")
        body = view("fwd-1")
        answer = await live.post(body)
        await wait_for(pilot, lambda: len(target.received) == 1, TIMEOUT, "the forward")
        assert target.received[0][0] == body
        assert target.received[0][1]["Content-Type"] == "application/json"
        await wait_for(pilot, lambda: table.total == 1 and row(table, 0).forward == "200", TIMEOUT, "Fwd 200")
        await wait_for(pilot, lambda: "✓ 200" in origin(app), TIMEOUT, "the target answering in the header")
        assert "✗" not in origin(app)

        await pilot.press("r")
        await wait_for(pilot, lambda: len(target.received) == 2, TIMEOUT, "the replay")
        assert target.received[1][0] == body
        assert target.received[1][1]["Content-Type"] == "application/json"
        assert target.received[1][1].get("User-Agent") == target.received[0][1].get("User-Agent")
        await wait_for(
            pilot, lambda: noted(messages, f"Replay of #{answer['id']}: HTTP 200"), TIMEOUT, "the replay notification"
        )
        assert isinstance(app.screen, MainScreen)
        await wait_for(
            pilot,
            lambda: stored_kinds(live.db_path, answer["id"]) == ["forward", "replay"],
            TIMEOUT,
            "the replay recorded",
        )
        replay = read_rows(live.db_path, "SELECT * FROM forwards WHERE kind = 'replay'")[0]
        assert replay["status"] == 200 and replay["target"] == target.url and replay["request_body"] is None
        assert json.loads(replay["response_body"]) == {"ok": True, "seen": 2}

        # In the details: both listed; r there replays again.
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, "the details")
        await pilot.pause()
        assert detail_kinds(app) == ["forward", "replay"]
        panel = forwards_panel(app)
        assert len(re.findall(r"\bforward\b", panel)) == 1 and len(re.findall(r"\breplay\b", panel)) == 1
        assert "(edited)" not in panel
        await pilot.press("r")
        await wait_for(pilot, lambda: len(target.received) == 3, TIMEOUT, "a replay from the details")
        await wait_for(
            pilot, lambda: detail_kinds(app) == ["forward", "replay", "replay"], TIMEOUT, "the second replay listed"
        )
        assert len(re.findall(r"\breplay\b", forwards_panel(app))) == 2


async def test_replay_without_forward_target_asks_once(start_live: StartLive, target: Target) -> None:
    live = await start_live()
    messages: list[Message] = []
    async with live.run(message_hook=messages.append) as pilot:
        app = live.app
        table = table_of(app)
        body = view("replay-1")
        answer = await live.post(body)
        await wait_for(pilot, lambda: table.total == 1, TIMEOUT)
        assert row(table, 0).forward is None
        assert "→" not in origin(app)

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen), TIMEOUT, "the target dialog")
        box = app.screen.query_one("#target-url", Input)
        await wait_for(pilot, lambda: box.has_focus, TIMEOUT)
        assert box.value == "http://127.0.0.1:3000/"
        await pilot.press("ctrl+a", "ctrl+k", *target.url)
        await wait_for(pilot, lambda: box.value == target.url, TIMEOUT, "the typed URL")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(target.received) == 1, TIMEOUT, "the replay")
        assert target.received[0][0] == body
        assert isinstance(app.screen, MainScreen)
        await wait_for(pilot, lambda: noted(messages, f"Replay of #{answer['id']}: HTTP 200"), TIMEOUT)
        await wait_for(pilot, lambda: row(table, 0).forward == "200", TIMEOUT, "the replay's status in Fwd")

        # The URL is remembered: no question the second time.
        await pilot.press("r")
        await wait_for(pilot, lambda: len(target.received) == 2, TIMEOUT, "the second replay")
        assert not isinstance(app.screen, TargetScreen)
        await wait_for(
            pilot, lambda: len(read_rows(live.db_path, "SELECT id FROM forwards WHERE kind = 'replay'")) == 2, TIMEOUT
        )

        # Not a URL: the dialog says so and stays; Esc cancels and sends nothing.
        app.replay_target = None
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen), TIMEOUT)
        box = app.screen.query_one("#target-url", Input)
        assert box.value == "http://127.0.0.1:3000/"
        await pilot.press("ctrl+a", "ctrl+k", *"nowhere", "enter")
        await wait_for(pilot, lambda: "must be an http" in static_text(app, "#target-status"), TIMEOUT, "the warning")
        assert isinstance(app.screen, TargetScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), TIMEOUT)
        await pilot.pause()
        assert len(target.received) == 2


async def test_replay_in_offline_review_warns_and_sends_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "review.db"
    fill(db_path, PLAN[:1])
    app = MonitorApp(db_path, session_id=None)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        table = table_of(app)
        await wait_for(pilot, lambda: table.total == 2, TIMEOUT)
        await pilot.press("r")
        await wait_for(pilot, lambda: noted(messages, "Replays are recorded by the live monitor"), TIMEOUT)
        assert {severity for message, severity in notes(messages) if "Replays" in message} == {"warning"}
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        # Also from the details, and e (edit) too.
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT)
        await pilot.press("r")
        await wait_for(pilot, lambda: sum("Replays are recorded" in m for m, _ in notes(messages)) == 2, TIMEOUT)
        assert isinstance(app.screen, DetailScreen)
        # Edit & replay says so before any editing.
        await pilot.press("e")
        await wait_for(pilot, lambda: sum("Replays are recorded" in m for m, _ in notes(messages)) == 3, TIMEOUT)
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
    assert read_rows(db_path, "SELECT count(*) AS n FROM forwards")[0]["n"] == 0


async def test_edit_and_replay_sends_the_edited_bytes_re_signed(start_live: StartLive, target: Target) -> None:
    secret = "s3cret"
    live = await start_live(forward_to=target.url, secret=secret)
    messages: list[Message] = []
    async with live.run(message_hook=messages.append) as pilot:
        app = live.app
        table = table_of(app)
        body = view("edit-1")
        answer = await post_signed(live, body, secret)
        await wait_for(pilot, lambda: table.total == 1 and row(table, 0).forward == "200", TIMEOUT, "Fwd 200")
        assert target.received[0][0] == body
        assert target.received[0][1][signing.SIGNATURE_HEADER] == signing.sign(body, secret)

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, "the details")
        await pilot.pause()
        assert detail_kinds(app) == ["forward"] and re.search(r"\bforward\b", forwards_panel(app))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), TIMEOUT, "the editor")
        editor = app.screen.query_one(TextArea)
        await wait_for(pilot, lambda: editor.has_focus, TIMEOUT)
        assert editor.text == body.decode()
        edited_obj = json.loads(body)
        edited_obj["payload"]["user"]["userId"] = "edited-user"
        edited = json.dumps(edited_obj, indent=1).encode()
        editor.text = edited.decode()
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(target.received) == 2, TIMEOUT, "the edited replay")
        got, headers = target.received[1]
        assert got == edited
        assert headers[signing.SIGNATURE_HEADER] == signing.sign(edited, secret)
        assert signing.check_signature(headers[signing.SIGNATURE_HEADER], secret, got) == "valid"
        assert headers["Content-Type"] == "application/json"

        # Back on the details, which list the edited replay.
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, "the details again")
        await wait_for(pilot, lambda: "replay (edited)" in forwards_panel(app), TIMEOUT, "the edited replay listed")
        await wait_for(pilot, lambda: noted(messages, f"Replay of #{answer['id']}: HTTP 200"), TIMEOUT)
        (stored,) = read_rows(live.db_path, "SELECT * FROM forwards WHERE kind = 'replay'")
        assert stored["request_body"] == edited and stored["event_id"] == answer["id"]
        # The delivery itself is unchanged.
        (event,) = read_rows(live.db_path, "SELECT body FROM events")
        assert event["body"] == body

        # Esc in the editor sends nothing.
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen), TIMEOUT)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT)
        await pilot.pause()
        assert len(target.received) == 2

        # A forwards reload that finishes after the details were closed changes nothing, and breaks nothing.
        details = app.screen
        assert isinstance(details, DetailScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), TIMEOUT)
        await pilot.pause()
        worker = app._load_forwards(int(details.delivery["id"]))
        await wait_for(pilot, lambda: worker.is_finished, TIMEOUT, "the late reload")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, MainScreen)


async def test_a_target_that_is_down_is_shown_and_loses_nothing(start_live: StartLive) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"
    live = await start_live(forward_to=down, forward_attempts=2, forward_timeout=2.0)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        started = time.monotonic()
        answers = [await live.post(view(f"down-{i}")) for i in range(3)]
        assert time.monotonic() - started < 5, "the answers waited for the target"
        await wait_for(pilot, lambda: table.total == 3, TIMEOUT, "every delivery recorded")
        await wait_for(pilot, lambda: all(r.forward == "err" for r in rows(table)), TIMEOUT, "err in Fwd")
        await wait_for(pilot, lambda: "✗ down" in origin(app), TIMEOUT, "the target down in the header")
        assert down in origin(app) and "cannot connect" in origin(app)
        assert "err" in screen_text(app)
        recorded = read_rows(live.db_path, "SELECT id FROM events ORDER BY id")
        assert [r["id"] for r in recorded] == sorted(a["id"] for a in answers)
        failed = read_rows(live.db_path, "SELECT status, error FROM forwards")
        assert failed and all(f["status"] is None and "cannot connect" in f["error"] for f in failed)


async def test_copy_body_and_curl_from_the_details(start_live: StartLive, target: Target) -> None:
    live = await start_live(forward_to=target.url)
    async with live.run() as pilot:
        app = live.app
        table = table_of(app)
        body = view("curl-1", name="O'Brien \u00e9")  # a quote and non-ASCII text to survive the shell
        await live.post(body)
        await wait_for(pilot, lambda: table.total == 1 and len(target.received) == 1, TIMEOUT)

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, "the details")
        await pilot.press("c")
        await wait_for(pilot, lambda: app.clipboard == body.decode(), TIMEOUT, "the body in the clipboard")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.clipboard.startswith("curl "), TIMEOUT, "the curl command")
        command = app.clipboard
        assert ansi_c_quote(body) in command
        assert "--data-binary" in command and "-X POST" in command
        assert f"{target.origin}/" in command  # the forward target's origin
        assert "Content-Type: application/json" in command

        # Run it: the target receives the same bytes once more.
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert len(target.received) == 2 and target.received[1][0] == body
        assert target.received[1][1]["Content-Type"] == "application/json"
        assert json.loads(out) == {"ok": True, "seen": 2}
