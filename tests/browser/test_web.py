"""The monitor in a real browser (issue 14): ``serve`` on free ports, Debian's Chromium, real HTTP deliveries.

Each test starts ``conscent-monitor serve`` (or ``open --web``), opens the web
UI in headless Chromium, posts deliveries to the listener over HTTP and reads
what the page draws from xterm.js's buffer (``tests/browser/page.py``). The
first test saves a screenshot of the spec pair (web-spec-pair.png) in
$CONSCENT_MONITOR_SCREENSHOT_DIR, else in its temporary folder; the README's
docs/web.png comes from ``docs/web_screenshot.py`` (the demo's stream).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.page import (
    Served,
    cells,
    open_page,
    press,
    resize_cells,
    screen_text,
    screenshot,
    type_text,
    wait_for_screen,
    wait_for_text,
)
from tests.helpers import PHONE, gateway_body, http_post, run_cli

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Download, Page

Serve = Callable[..., Served]

VIEW_ROW = "▶ view"
CLOSE_ROW = "■ close"


def both_rows(screen: str) -> bool:
    return VIEW_ROW in screen and CLOSE_ROW in screen


def post_spec(served: Served, spec: dict[str, bytes]) -> None:
    for event in ("payment_gateway.view", "payment_gateway.close"):
        status, answer = http_post(served.listener_url, spec[event])
        assert status == 200 and answer["ok"], answer


def open_table(browser: Browser, url: str, **kwargs: object) -> Page:
    """A page on the web UI, once its table is drawn (the column titles)."""
    page = open_page(browser, url, **kwargs)  # type: ignore[arg-type]
    wait_for_text(page, "Received", timeout=30)
    return page


def drill_down_and_back(page: Page) -> None:
    press(page, "ArrowDown")  # the cursor from the close (newest) to the view
    wait_for_text(page, "row 2 of 2")
    press(page, "Enter")
    screen = wait_for_screen(page, lambda s: "150s" in s and "PAYMENT_GATEWAY_CROSS_BTN" in s, "the drill-down")
    assert "1 view, 1 close" in screen, screen
    press(page, "Escape")
    wait_for_screen(page, lambda s: "1 view, 1 close" not in s and both_rows(s), "the main screen again")


@pytest.mark.parametrize("size", [(1280, 800), (80, 24)], ids=["1280x800", "80x24"])
def test_the_spec_pair_live_in_two_pages(
    browser: Browser, serve: Serve, spec: dict[str, bytes], tmp_path: Path, size: tuple[int, int]
) -> None:
    served = serve()
    small = size == (80, 24)
    page = open_page(browser, served.web_url, size=(800, 500) if small else size)
    if small:
        wait_for_text(page, "GATEWAY", timeout=30)
        resize_cells(page, *size)
    screen = wait_for_screen(page, lambda s: "curl" in s and "GATEWAY" in s, "the empty table's hint", timeout=30)
    assert served.listener_url.rstrip("/") in screen, screen  # the page names this serve's listener

    post_spec(served, spec)
    # The status line follows the rows by a frame or so: both, as the page shows them once settled.
    screen = wait_for_screen(page, lambda s: both_rows(s) and "row 1 of 2" in s, "both rows and their count")
    if not small:
        assert PHONE in screen, screen
        assert cells(page)[0] >= 120, cells(page)  # 1280 px wide: the wide layout
    drill_down_and_back(page)
    if not small:
        screenshot(page, "web-spec-pair.png", tmp_path)

    # A page opened later sees the whole session, and the first page still follows it.
    second = open_page(browser, served.web_url, size=(800, 500) if small else size)
    if small:
        wait_for_text(second, "GATEWAY", timeout=30)
        resize_cells(second, *size)
    wait_for_screen(second, both_rows, "both rows in a second page", timeout=30)
    assert cells(second) == cells(page)
    assert len(served.note_tabs()) >= 2  # a tab process per page
    second.context.close()
    page.context.close()
    assert served.terminate() == 0


def test_a_filter_typed_in_the_browser_and_help(browser: Browser, serve: Serve, spec: dict[str, bytes]) -> None:
    served = serve()
    post_spec(served, spec)
    page = open_table(browser, served.web_url)
    wait_for_screen(page, both_rows, "both rows")
    press(page, "/")
    wait_for_text(page, "Apply filter")  # the box has the keyboard: type only now
    type_text(page, "event:payment_gateway.close")
    wait_for_text(page, "event:payment_gateway.close")
    press(page, "Enter")
    screen = wait_for_screen(page, lambda s: VIEW_ROW not in s and CLOSE_ROW in s, "only the close")
    assert "row 1 of 1" in screen, screen

    press(page, "?")
    screen = wait_for_text(page, "Esc")
    assert "Filter" in screen and "Quit" in screen, screen
    press(page, "Escape")
    wait_for_screen(page, lambda s: "Received" in s and CLOSE_ROW in s, "the table again")
    page.context.close()
    assert served.terminate() == 0


def export_download(page: Page, folder: Path) -> Path:
    """``x``, then Enter on the dialog's Download: the file the browser saved."""
    # textual-serve opens the download's URL in a new window: listen on every page of the context.
    downloads: list[Download] = []

    def keep(download: Download) -> None:
        downloads.append(download)

    page.on("download", keep)
    page.context.on("page", lambda popup: popup.on("download", keep))
    press(page, "x")
    wait_for_text(page, "Download", timeout=10)
    press(page, "Enter")
    deadline = time.monotonic() + 20
    while not downloads:
        assert time.monotonic() < deadline, "no download; the page shows:\n" + screen_text(page)
        page.wait_for_timeout(50)
    saved = folder / downloads[0].suggested_filename
    downloads[0].save_as(saved)
    return saved


def test_export_downloads_a_file(browser: Browser, serve: Serve, spec: dict[str, bytes], tmp_path: Path) -> None:
    served = serve()
    post_spec(served, spec)
    page = open_table(browser, served.web_url)
    wait_for_screen(page, both_rows, "both rows")
    saved = export_download(page, tmp_path)
    assert saved.suffix == ".jsonl", saved
    lines = saved.read_bytes().splitlines()
    assert len(lines) == 2, lines
    assert b"payment_gateway.view" in b"".join(lines) and b"payment_gateway.close" in b"".join(lines)
    page.context.close()
    assert served.terminate() == 0


def test_a_password_guards_the_page(browser: Browser, serve: Serve) -> None:
    served = serve("--web-password", "s3cret-pw")
    page = open_page(browser, served.web_url)
    page.wait_for_selector("#password")  # a login form, not the terminal
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".error")
    assert page.query_selector("#terminal") is None and screen_text(page) == ""

    page.fill("#password", "s3cret-pw")
    page.click("button[type=submit]")
    wait_for_text(page, "Received", timeout=30)
    second = open_page(browser, served.web_url)  # another browser (a context of its own) is asked too
    second.wait_for_selector("#password")
    second.context.close()
    page.context.close()
    assert served.terminate() == 0


def test_web_mask_hides_personal_data(browser: Browser, serve: Serve, tmp_path: Path) -> None:
    served = serve("--web-mask")
    name, phone = "Priya Sharma", "9811122233"
    body = gateway_body(user_id="reader-mask", name=name, phone=phone)
    status, _ = http_post(served.listener_url, body)
    assert status == 200
    page = open_table(browser, served.web_url)
    screen = wait_for_text(page, VIEW_ROW)
    assert name not in screen and phone not in screen, screen
    press(page, "m")  # forced on: the key does not unmask
    press(page, "Enter")
    screen = wait_for_text(page, "1 view")
    assert name not in screen and phone not in screen, screen
    press(page, "Escape")  # alone: Esc then another key at once would read as Alt+key
    wait_for_screen(page, lambda s: "GATEWAY" in s and "1 view," not in s, "the table again")
    exported = export_download(page, tmp_path).read_bytes()  # the download is masked too
    assert b"payment_gateway.view" in exported
    assert name.encode() not in exported and phone.encode() not in exported, exported
    page.context.close()
    assert served.terminate() == 0


def test_open_web_shows_a_saved_session_read_only(
    browser: Browser, serve: Serve, spec: dict[str, bytes], tmp_path: Path
) -> None:
    db = tmp_path / "saved.db"
    folder = tmp_path / "bodies"
    folder.mkdir()
    for event, body in spec.items():
        (folder / f"{event}.json").write_bytes(body)
    imported = run_cli("import", str(folder), "--db", str(db))
    assert imported.returncode == 0, imported.stderr
    served = serve(command=["open", str(db), "--web"], listener=False)
    page = open_table(browser, served.web_url)
    screen = wait_for_screen(page, both_rows, "the saved rows")
    assert "Offline review" in screen, screen
    drill_down_and_back(page)
    page.context.close()
    assert served.terminate() == 0


_CELL_BG_JS = """([x, y]) => {
  const line = window.__term.buffer.active.getLine(window.__term.buffer.active.viewportY + y);
  const cell = line.getCell(x);
  return [cell.isBgRGB(), cell.getBgColor()];
}"""


def click_cell(page: Page, column: int, row: int) -> None:
    """A mouse click in the middle of a cell, as a user clicks the page."""
    box = page.locator(".xterm-screen").bounding_box()
    assert box is not None
    cols, rows = cells(page)
    page.mouse.click(box["x"] + (column + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows)


def test_the_mouse_and_the_themes_work_in_the_browser(browser: Browser, serve: Serve, spec: dict[str, bytes]) -> None:
    """A click moves the cursor to the row clicked; the palette's theme picker changes the page's colours."""
    served = serve()
    post_spec(served, spec)
    page = open_table(browser, served.web_url)
    screen = wait_for_screen(page, both_rows, "both rows")
    view_line = next(y for y, line in enumerate(screen.splitlines()) if VIEW_ROW in line)
    wait_for_text(page, "row 1 of 2")
    click_cell(page, 2, view_line)
    wait_for_text(page, "row 2 of 2")  # the view (the older row) is under the cursor now

    before = page.evaluate(_CELL_BG_JS, [1, view_line + 3])
    press(page, "Control+p")
    wait_for_text(page, "Search for commands")
    type_text(page, "theme")
    wait_for_text(page, "Change the current theme")
    press(page, "Enter")
    type_text(page, "textual-light")
    press(page, "Enter")
    wait_for_screen(page, lambda s: "Search for" not in s and both_rows(s), "the main screen in the new theme")
    deadline = time.monotonic() + 10
    while page.evaluate(_CELL_BG_JS, [1, view_line + 3]) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert page.evaluate(_CELL_BG_JS, [1, view_line + 3]) != before, "the background did not change"
    assert served.terminate() == 0
