"""Pilot tests of the details, the export dialog and the replay target dialog, at 80x24 and 160x48.

Details show ``created_at`` whole (never ``1.79601e+09``) and counts in one number format; a
rejected delivery neither offers nor silently ignores replay, edit & replay and copy as curl. The
export dialog offers the metadata option for JSONL only, keeps itself open with the error when the
file cannot be written, and has its own footer; so has the replay target dialog. Every test waits on
a condition, never on a fixed sleep.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlite_utils import Database
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import Checkbox, Input, Select, Static
from textual.widgets._footer import FooterKey

from monitor import store
from monitor.tui import loaders
from monitor.tui import messages as msg
from monitor.tui.app import MonitorApp
from monitor.tui.screens.detail import REJECTED_WHY_NOT, DetailScreen, created_at_text, hexdump
from monitor.tui.screens.export import ExportScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.replay import TargetScreen, target_problem
from monitor.tui.widgets.event_table import EventTable
from tests.helpers import MALFORMED, event_row, gateway_body, rejected_row, screen_text, wait_for

SIZES = [(80, 24), (160, 48)]
TIMEOUT = 20.0
#: 2026-11-30, with milliseconds.
CREATED = 1796012345.123


def make_db(db_path: Path, *, created_at: Any = CREATED) -> None:
    """One session: a view whose body says ``created_at``, then a rejection (newest first on screen)."""
    body = json.loads(gateway_body(user_id="reader-d"))
    body["created_at"] = created_at
    raw = json.dumps(body).encode()
    db = store.open_store(db_path)
    try:
        session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
        event = event_row(raw, session_id=session_id, received_at=1796012400.0)
        rejected = rejected_row(MALFORMED, session_id=session_id, received_at=1796012401.0, reason="body is not JSON")
        store.write_batch(db.conn, [event], [rejected])
        store.end_session(db, session_id)
    finally:
        db.close()


def squeezed(text: str) -> str:
    """``text`` without whitespace: a value folded over two lines of a narrow panel still matches."""
    return "".join(text.split())


def notes(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.notification.message, m.notification.severity) for m in messages if isinstance(m, Notify)]


def footer_keys(app: MonitorApp) -> list[str]:
    """What the current screen's footer offers, by description."""
    return [key.description for key in app.screen.query(FooterKey)]


def offered(app: MonitorApp) -> set[str]:
    """The actions the current screen offers (shown bindings that its check_action allows), at any width."""
    return {active.binding.action for active in app.screen.active_bindings.values() if active.binding.show}


async def open_details(pilot: Any, app: MonitorApp, source: str) -> DetailScreen:
    table = app.main_screen.query_one(EventTable)
    await wait_for(pilot, lambda: table.total == 2, TIMEOUT, "both rows")
    index = next(i for i in range(table.total) if (found := table.row_at(i)) is not None and found.source == source)
    await pilot.press("home", *["down"] * index, "d")
    await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, f"the {source} details")
    await pilot.pause()
    assert isinstance(app.screen, DetailScreen)
    return app.screen


def detail_text(app: MonitorApp, *parts: str) -> str:
    """The details' panels (all by default) as the screen draws them, whole (not only what fits the terminal)."""
    console = Console(file=io.StringIO(), width=app.screen.size.width - 4, color_system=None, legacy_windows=False)
    for part in parts or ("title", "fields", "body"):
        console.print(app.screen.query_one(f"#detail-{part}", Static).content)
    return console.file.getvalue()  # type: ignore[attr-defined]


# -- created_at and numbers in the details --------------------------------------------------------


def test_created_at_text(utc: None) -> None:
    assert created_at_text(1796012345.0) == "1796012345  (2026-11-30 04:19:05)"
    assert created_at_text(1796012345.123) == "1796012345.123  (2026-11-30 04:19:05)"
    assert created_at_text(1796012345.5) == "1796012345.500  (2026-11-30 04:19:05)"
    sent_ms = created_at_text(1796012345.123, 1796012345123)
    assert sent_ms == "1796012345.123  (2026-11-30 04:19:05)  sent in milliseconds: 1796012345123"
    assert created_at_text(1796012345.0, "1796012345000000").endswith("sent in microseconds: 1796012345000000")
    assert "sent in" not in created_at_text(1796012345.0, 1796012345)  # seconds, as stored
    assert "sent in" not in created_at_text(1796012345.0, "2026-11-30T04:19:05Z")
    assert "sent in" not in created_at_text(1796012345.0, True)


def test_hexdump_width() -> None:
    data = bytes(range(0x41, 0x51))  # A..P
    assert hexdump(data).splitlines() == ["00000000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP"]
    assert hexdump(data, width=8).splitlines() == [
        "00000000  41 42 43 44 45 46 47 48  ABCDEFGH",
        "00000008  49 4a 4b 4c 4d 4e 4f 50  IJKLMNOP",
    ]
    assert hexdump(b"x" * 20, limit=16).splitlines()[-1] == "… 4 more bytes"
    assert hexdump(b"x" * 17, limit=16).splitlines()[-1] == "… 1 more byte"


@pytest.mark.parametrize("size", SIZES)
async def test_details_show_created_at_whole_and_counts_in_one_format(
    tmp_path: Path, size: tuple[int, int], utc: None
) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        await pilot.press("a")  # all events: the rejection too
        screen = await open_details(pilot, app, "event")
        text = detail_text(app)
        assert "1796012345.123  (2026-11-30 04:19:05)" in text
        assert "e+09" not in text and "sent in" not in text
        size_in_bytes = len(screen.delivery["body"])
        assert f"{size_in_bytes:,} bytes" in text and size_in_bytes >= 1000  # body_size: 1,187 bytes, not 1187
        assert f"Body ({size_in_bytes:,} bytes)" in text
        # Nothing of the details runs off the right edge (the key column stays 20 wide).
        assert all(len(line) <= size[0] for line in screen_text(app).splitlines())


@pytest.mark.parametrize("size", SIZES)
async def test_details_mark_a_created_at_sent_in_milliseconds(tmp_path: Path, size: tuple[int, int], utc: None) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path, created_at=1796012345123)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        table = app.main_screen.query_one(EventTable)
        await wait_for(pilot, lambda: table.total == 1, TIMEOUT, "the view")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, "the details")
        await pilot.pause()
        expected = "1796012345.123  (2026-11-30 04:19:05)  sent in milliseconds: 1796012345123"
        assert squeezed(expected) in squeezed(detail_text(app))


# -- a rejected delivery: no replay, no edit, no curl; and why not --------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_rejected_details_hide_replay_edit_and_curl_and_say_why(tmp_path: Path, size: tuple[int, int]) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    app = MonitorApp(db_path, session_id=None)
    messages: list[Message] = []
    async with app.run_test(size=size, message_hook=messages.append) as pilot:
        await pilot.press("a")
        await open_details(pilot, app, "rejected")
        assert {"replay", "edit", "copy_curl"}.isdisjoint(offered(app))
        assert "copy_body" in offered(app)
        shown = footer_keys(app)
        assert not {"Replay", "Edit & replay", "Copy as curl"} & set(shown)
        assert "Back" in shown
        # Hidden, and pressed anyway: a warning says why, and nothing is asked of the app.
        for key in ("r", "e", "y"):
            await pilot.press(key)
        await wait_for(pilot, lambda: sum(m == REJECTED_WHY_NOT for m, _ in notes(messages)) == 3, TIMEOUT)
        assert {s for m, s in notes(messages) if m == REJECTED_WHY_NOT} == {"warning"}
        assert not any(isinstance(m, msg.ReplayDelivery | msg.CopyCurl) for m in messages)
        assert isinstance(app.screen, DetailScreen)
        # 16 bytes a hexdump line when there is room, 8 at 80 columns: no line wraps.
        body = detail_text(app, "body")
        per_line = 16 if size[0] >= 84 else 8
        assert "00000000  7b 22 65 76" in body
        assert f"{per_line:08x}  " in body and f"{per_line // 2:08x}  " not in body

        # An accepted delivery offers all three.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), TIMEOUT)
        await open_details(pilot, app, "event")
        assert {"replay", "edit", "copy_curl"} <= offered(app)
        if size[0] >= 160:
            assert {"Replay", "Copy as curl"} <= set(footer_keys(app))


# -- the export dialog ----------------------------------------------------------------------------


async def open_export(pilot: Any, app: MonitorApp) -> ExportScreen:
    table = app.main_screen.query_one(EventTable)
    await wait_for(pilot, lambda: table.total >= 1, TIMEOUT, "the rows")
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), TIMEOUT, "the export dialog")
    await pilot.pause()
    assert isinstance(app.screen, ExportScreen)
    return app.screen


@pytest.mark.parametrize("size", SIZES)
async def test_export_dialog_metadata_for_jsonl_only_and_its_own_footer(tmp_path: Path, size: tuple[int, int]) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        dialog = await open_export(pilot, app)
        select = dialog.query_one("#export-format", Select)
        meta = dialog.query_one("#export-meta", Checkbox)
        path = dialog.query_one("#export-path", Input)
        assert path.has_focus  # Enter at once exports to the default name
        assert meta.display
        # Its own keys, not the main screen's.
        await wait_for(pilot, lambda: footer_keys(app)[:2] == ["Export", "Cancel"], TIMEOUT, "the dialog's footer")
        assert "Filter" not in footer_keys(app) and "Gateway/all" not in footer_keys(app)
        text = screen_text(app)
        assert "Export" in text and "Cancel" in text and "JSONL with metadata" in text

        for fmt, ext in (("csv", "csv"), ("har", "har"), ("curl", "sh"), ("jsonl", "jsonl")):
            select.value = fmt
            await wait_for(pilot, lambda ext=ext: path.value.endswith(f".{ext}"), TIMEOUT, f"the .{ext} name")
            assert meta.display == (fmt == "jsonl")
        # A typed name follows the format too.
        path.value = str(tmp_path / "mine.jsonl")
        select.value = "csv"
        await wait_for(pilot, lambda: path.value == str(tmp_path / "mine.csv"), TIMEOUT, "the typed name's extension")

        # On the format list, Enter opens the list (and the footer does not offer Export there).
        select.focus()
        await pilot.pause()
        assert "Export" not in footer_keys(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: select.expanded, TIMEOUT, "the format list")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not select.expanded, TIMEOUT, "the list closed")
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), TIMEOUT, "cancelled")
        assert not (tmp_path / "mine.csv").exists()


@pytest.mark.parametrize("size", SIZES)
async def test_a_failed_export_keeps_the_dialog_with_the_error_and_the_path(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    app = MonitorApp(db_path, session_id=None)
    messages: list[Message] = []
    async with app.run_test(size=size, message_hook=messages.append) as pilot:
        dialog = await open_export(pilot, app)
        path = dialog.query_one("#export-path", Input)
        status = dialog.query_one("#export-status", Static)
        meta = dialog.query_one("#export-meta", Checkbox)
        meta.value = True
        missing = tmp_path / "nonexistent" / "dir" / "x.jsonl"
        path.value = str(missing)
        await pilot.press("enter")
        await wait_for(pilot, lambda: status.has_class("-error"), TIMEOUT, "the error in the dialog")
        assert isinstance(app.screen, ExportScreen)
        error = str(status.content)
        assert error == f"Export failed: no folder {missing.parent} to write x.jsonl in"
        assert ".part" not in error and "\n" not in error
        assert "Export failed: no folder" in screen_text(app) and "x.jsonl in" in screen_text(app)  # all of it
        assert path.value == str(missing) and path.has_focus
        assert (path.selection.start, path.selection.end) == (0, len(path.value))  # typing replaces it
        assert meta.value  # nothing else was lost either
        assert not any(s == "error" for _, s in notes(messages))  # said in the dialog, not in a toast
        text = screen_text(app)
        assert "Export failed" in text and "Cancel" in text  # the buttons still fit below the error

        # Editing the path clears the error; a folder that exists: written, the dialog closes.
        path.value = str(tmp_path / "x.jsonl")
        await wait_for(pilot, lambda: not status.display, TIMEOUT, "the error cleared")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), TIMEOUT, "the dialog closed")
        await wait_for(pilot, lambda: any("Exported 1 delivery to" in m for m, _ in notes(messages)), TIMEOUT)
        assert (tmp_path / "x.jsonl").read_bytes().count(b"\n") == 1
        line = json.loads((tmp_path / "x.jsonl").read_bytes())
        assert "body_text" in line or "body_base64" in line  # with metadata, as ticked


def test_export_messages_count_deliveries_and_name_the_missing_folder(tmp_path: Path) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    db = Database(db_path)
    try:

        def run(path: Path) -> msg.Exported:
            request = msg.ExportRequest("csv", str(path), False)
            found = loaders.export(db, request, db_path=db_path, filter_text="", session_id=None, base_url="http://x")
            assert isinstance(found, msg.Exported)
            return found

        done = run(tmp_path / "one.csv")
        assert done.ok and done.text == f"Exported 1 delivery to {tmp_path / 'one.csv'}"
        failed = run(tmp_path / "no" / "one.csv")
        assert not failed.ok and failed.text == f"Export failed: no folder {tmp_path / 'no'} to write one.csv in"
        (tmp_path / "taken").mkdir()
        failed = run(tmp_path / "taken")  # a folder where the file should go
        assert not failed.ok and failed.text.startswith(f"Export failed: cannot write {tmp_path / 'taken'} (")
    finally:
        db.close()


# -- the replay target dialog and replay notifications ---------------------------------------------


def test_target_problem() -> None:
    assert target_problem("http://127.0.0.1:3000/hook") is None
    assert target_problem("https://example.test") is None
    assert target_problem("") is not None
    assert target_problem("nowhere") == "The target must be an http:// or https:// URL, not nowhere"
    assert target_problem("127.0.0.1:3000") is not None
    assert target_problem("http://") == "The URL names no host: http://"
    assert target_problem("ftp://\x1b]0;x") == "Not a URL: 'ftp://\u241b]0;x'"
    assert (
        target_problem("ftp://example.test/")
        == "The target must be an http:// or https:// URL, not ftp://example.test/"
    )


@pytest.mark.parametrize("size", SIZES)
async def test_target_dialog_keeps_a_bad_url_and_says_why_in_itself(tmp_path: Path, size: tuple[int, int]) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    app = MonitorApp(db_path, session_id=None)
    chosen: list[str | None] = []
    messages: list[Message] = []
    async with app.run_test(size=size, message_hook=messages.append) as pilot:
        await app.push_screen(TargetScreen("http://127.0.0.1:3000/"), chosen.append)
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen), TIMEOUT, "the target dialog")
        dialog = app.screen
        box = dialog.query_one("#target-url", Input)
        await wait_for(pilot, lambda: box.has_focus, TIMEOUT, "the URL box focused")
        await wait_for(pilot, lambda: footer_keys(app)[:2] == ["Replay", "Cancel"], TIMEOUT, "the dialog's footer")
        await pilot.press("ctrl+a", "ctrl+k", *"nowhere", "enter")
        status = dialog.query_one("#target-status", Static)
        await wait_for(pilot, lambda: status.has_class("-error"), TIMEOUT, "the error in the dialog")
        assert str(status.content) == "The target must be an http:// or https:// URL, not nowhere"
        assert isinstance(app.screen, TargetScreen) and box.value == "nowhere" and chosen == []
        assert (box.selection.start, box.selection.end) == (0, len("nowhere"))
        assert not notes(messages)
        assert "not nowhere" in screen_text(app)
        await pilot.press(*"http://127.0.0.1:9/", "enter")  # typing replaced the selected text
        await wait_for(pilot, lambda: chosen == ["http://127.0.0.1:9/"], TIMEOUT, "the URL chosen")
        assert isinstance(app.screen, MainScreen)


async def test_replay_notifications_word_numbers_once(tmp_path: Path) -> None:
    db_path = tmp_path / "review.db"
    make_db(db_path)
    app = MonitorApp(db_path, session_id=None)
    messages: list[Message] = []
    async with app.run_test(size=SIZES[0], message_hook=messages.append) as pilot:
        app.post_message(msg.ReplayDone(7, "http://x/", 200, 1234.4, None))
        app.post_message(msg.ReplayDone(8, "http://x/", None, 0.0, "Cannot connect to host x:80"))
        await wait_for(pilot, lambda: len(notes(messages)) == 2, TIMEOUT, "both notifications")
        assert notes(messages) == [
            ("Replay of #7: HTTP 200 in 1,234 ms", "information"),
            ("Replay of #8: Cannot connect to host x:80", "error"),  # never sent: no "in 0 ms"
        ]


# -- emoji sequences on screen ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_an_emoji_family_stays_whole_in_the_table_and_the_details(tmp_path: Path, size: tuple[int, int]) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    db_path = tmp_path / "review.db"
    db = store.open_store(db_path)
    try:
        session_id = store.start_session(db, listen=None, mode="headless")
        body = gateway_body(user_id="reader-e", name=f"Asha {family}")
        store.write_batch(db.conn, [event_row(body, session_id=session_id)], [])
    finally:
        db.close()
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=size) as pilot:
        table = app.main_screen.query_one(EventTable)
        await wait_for(pilot, lambda: table.total == 1, TIMEOUT, "the row")
        await wait_for(pilot, lambda: "Asha" in screen_text(app), TIMEOUT, "the reader's name")
        assert f"Asha {family}" in screen_text(app)
        assert "\ufffd" not in screen_text(app)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), TIMEOUT, "the details")
        await pilot.pause()
        assert f"Asha {family}" in detail_text(app, "fields")
