"""The export dialog in a browser tab (a download) and with personal data masked, at 80x24 and 160x48.

In a browser the dialog asks for a file name only (a folder is refused, in the dialog), offers
"Download" on its button and in its footer, and says where the file goes; masked, it says so. The
loader writes a download into the folder the app gives and hands back its path; masked, the file
holds no phone number. Every test waits on a condition, never on a fixed sleep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import Button, Checkbox, Input, Static
from textual.widgets._footer import FooterKey

from monitor import store
from monitor.masking import mask
from monitor.tui import loaders
from monitor.tui import messages as msg
from monitor.tui.app import MonitorApp
from monitor.tui.screens.export import ExportScreen
from tests.helpers import event_row, gateway_body, screen_text, static_text, wait_for

SIZES = [(80, 24), (160, 48)]
TIMEOUT = 20.0
PHONE, NAME = "9812345678", "Asha Verma"
#: app.py passes the download folder to the loader and hands the file to the browser (the lead wires it).


def make_db(db_path: Path) -> None:
    """One session, one view from a reader with a phone number and a name."""
    body = gateway_body(user_id="reader-w", name=NAME, phone=PHONE)
    db = store.open_store(db_path)
    try:
        session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
        store.write_batch(db.conn, [event_row(body, session_id=session_id)], [])
        store.end_session(db, session_id)
    finally:
        db.close()


def footer_keys(app: MonitorApp) -> list[str]:
    return [key.description for key in app.screen.query(FooterKey)]


async def show(pilot: Any, app: MonitorApp, *, download: bool = True, masked: bool = True) -> ExportScreen:
    """The dialog as the app opens it (by default: a browser tab with masking forced on), its footer drawn."""
    await wait_for(pilot, lambda: app.screen is app.main_screen, TIMEOUT, "the main screen")
    dialog = ExportScreen("All sessions, every delivery", "", None, app.clock, download=download, masked=masked)
    await app.push_screen(dialog)
    await wait_for(pilot, lambda: app.screen is dialog and len(footer_keys(app)) >= 2, TIMEOUT, "the dialog")
    return dialog


@pytest.fixture
def review(tmp_path: Path) -> Path:
    """A database with the reader's view, and an empty ``downloads`` folder beside it."""
    make_db(tmp_path / "review.db")
    (tmp_path / "downloads").mkdir()
    return tmp_path / "review.db"


@pytest.mark.parametrize("size", SIZES)
async def test_the_download_dialog_asks_for_a_name_and_says_it_masks(review: Path, size: tuple[int, int]) -> None:
    chosen: list[msg.ExportChosen] = []

    def record(message: Message) -> None:
        if isinstance(message, msg.ExportChosen):
            chosen.append(message)

    app = MonitorApp(review, session_id=None)
    async with app.run_test(size=size, message_hook=record) as pilot:
        dialog = await show(pilot, app)
        path = dialog.query_one("#export-path", Input)
        assert path.has_focus and path.value.startswith("conscent-export-") and "/" not in path.value
        assert str(dialog.query_one("#export-go", Button).label) == "Download"
        await wait_for(pilot, lambda: footer_keys(app)[:2] == ["Download", "Cancel"], TIMEOUT, "the dialog's footer")
        text = screen_text(app)
        assert "your browser downloads it" in text
        assert "Personal data will be masked" in text
        assert "bodies masked, not exact bytes" in str(dialog.query_one("#export-meta", Checkbox).label)
        assert all(len(line) <= size[0] for line in text.splitlines())

        # A folder is refused, in the dialog, which stays open with the name to fix.
        for refused in ("out/x.csv", "..\\x.csv"):
            path.value = refused
            await pilot.pause()  # the edit hides the last error first
            await pilot.press("enter")
            await wait_for(pilot, lambda: dialog.query_one("#export-status", Static).display, TIMEOUT, "the refusal")
            assert static_text(dialog, "#export-status") == (
                "A file name only, without a folder: your browser chooses where it goes"
            )
            assert isinstance(app.screen, ExportScreen) and not chosen and not dialog.busy
        text = screen_text(app)
        assert "without a folder" in text and "Download" in text and "Cancel" in text  # the buttons still fit

        path.value = "masked.jsonl"
        await pilot.press("enter")
        await wait_for(pilot, lambda: chosen, TIMEOUT, "the export request")
        request = chosen[0].request
        assert request == msg.ExportRequest("jsonl", "masked.jsonl", False, download=True, mask=True)
        assert chosen[0].filter_text == "" and chosen[0].session_id is None


@pytest.mark.parametrize("size", SIZES)
async def test_the_terminal_dialog_is_unchanged(review: Path, size: tuple[int, int]) -> None:
    """Without download or mask: Export, no browser or mask lines."""
    app = MonitorApp(review, session_id=None)
    async with app.run_test(size=size) as pilot:
        dialog = await show(pilot, app, download=False, masked=False)
        assert footer_keys(app)[:2] == ["Export", "Cancel"]
        text = screen_text(app)
        assert "browser" not in text and "masked" not in text
        assert str(dialog.query_one("#export-go", Button).label) == "Export"


def run_loader(db_path: Path, request: msg.ExportRequest, download_dir: Path | None) -> msg.Exported:
    db = store.connect(db_path, readonly=True)
    try:
        found = loaders.export(
            db, request, db_path=db_path, filter_text="", session_id=None, base_url="http://127.0.0.1:8787",
            download_dir=download_dir,
        )  # fmt: skip
    finally:
        db.close()
    assert isinstance(found, msg.Exported)
    return found


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "har", "curl"])
def test_a_download_is_written_masked_into_the_folder_given(review: Path, fmt: str) -> None:
    folder = review.parent / "downloads"
    name = f"masked.{fmt}"
    done = run_loader(review, msg.ExportRequest(fmt, name, False, download=True, mask=True), folder)  # type: ignore[arg-type]
    assert done.ok and done.download == folder / name
    assert done.text.splitlines()[0] == f"Exported 1 delivery: downloading {name}"
    written = (folder / name).read_text("utf-8")
    assert PHONE not in written and NAME not in written
    assert mask(PHONE) in written or (fmt == "curl" and "9" + "\\xe2\\x80\\xa2" * 8 + "8" in written)  # $'...'
    assert sorted(path.name for path in folder.iterdir()) == [name]  # no temporary file left beside it
    if fmt != "csv":
        assert "personal data is masked" in done.text


def test_a_download_name_with_a_folder_is_refused_by_the_loader_too(review: Path) -> None:
    folder = review.parent / "downloads"
    refused = run_loader(review, msg.ExportRequest("csv", "../escape.csv", False, download=True), folder)
    assert not refused.ok and refused.download is None
    assert refused.text == "Export failed: A file name only, without a folder: your browser chooses where it goes"
    assert not (review.parent / "escape.csv").exists() and list(folder.iterdir()) == []


def test_an_unmasked_download_and_a_terminal_export(review: Path) -> None:
    folder = review.parent / "downloads"
    plain = run_loader(review, msg.ExportRequest("jsonl", "plain.jsonl", False, download=True), folder)
    assert plain.ok and plain.text == "Exported 1 delivery: downloading plain.jsonl"
    assert PHONE in (folder / "plain.jsonl").read_text("utf-8")
    target = review.parent / "here.jsonl"
    terminal = run_loader(review, msg.ExportRequest("jsonl", str(target), False, mask=True), None)
    assert terminal.ok and terminal.download is None and terminal.text.startswith(f"Exported 1 delivery to {target}")
    assert PHONE not in target.read_text("utf-8") and json.loads(target.read_text("utf-8"))["user_id"] == "reader-w"


@pytest.mark.parametrize("size", SIZES)
async def test_the_app_hands_a_masked_download_to_the_browser(review: Path, size: tuple[int, int]) -> None:
    """End to end through the app: the file goes to ``deliver_binary`` (a browser download), masked."""
    delivered: list[tuple[Path, dict[str, Any]]] = []
    notes: list[str] = []

    def record(message: Message) -> None:
        if isinstance(message, Notify):
            notes.append(message.notification.message)

    app = MonitorApp(review, session_id=None)

    def deliver_binary(path: Path, **options: Any) -> str:
        delivered.append((Path(path), options))
        return "key"

    app.deliver_binary = deliver_binary  # type: ignore[assignment,method-assign]
    async with app.run_test(size=size, message_hook=record) as pilot:
        dialog = await show(pilot, app)
        dialog.query_one("#export-path", Input).value = "masked.jsonl"
        await pilot.press("enter")
        await wait_for(pilot, lambda: delivered, TIMEOUT, "the download")
        path, options = delivered[0]
        assert path.name == "masked.jsonl" and options["save_filename"] == "masked.jsonl"
        assert options["mime_type"] == "application/x-ndjson"
        written = path.read_text("utf-8")
        assert PHONE not in written and mask(PHONE) in written
        await wait_for(pilot, lambda: not isinstance(app.screen, ExportScreen), TIMEOUT, "the dialog to close")
        await wait_for(pilot, lambda: any("downloading masked.jsonl" in note for note in notes), TIMEOUT, "the note")
