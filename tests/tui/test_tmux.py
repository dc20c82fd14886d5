"""The installed program in a real terminal (tmux), used the way a person would.

Start ``conscent-monitor`` in a detached tmux session (160x48, then 80x24), POST the two spec
payloads over HTTP, read the screen with ``capture-pane``, and check what a new user would
look at (issue 12): the header on its own lines, the footer's Quit and Help, the column
titles over their values after →, the drill-down (End, Escape), then ``q``; check what
reached the database. The tmux server runs on a socket of its own (the ``tmux`` fixture),
so a user's tmux is never touched.
"""

from __future__ import annotations

import shlex
import shutil
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import CLOSE, VIEW, Tmux, program

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

TIMEOUT = 30.0


def read_db(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for_url(db_path: Path, tmux: Tmux) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if db_path.exists():
            try:
                rows = read_db(db_path, "SELECT listen FROM sessions ORDER BY id DESC LIMIT 1")
            except sqlite3.OperationalError:  # created but not yet migrated
                rows = []
            if rows and rows[0][0]:
                return str(rows[0][0])
        time.sleep(0.1)
    raise AssertionError(f"the monitor never recorded its URL; the screen shows:\n{tmux.screen()}")


def post(url: str, body: bytes, tmux: Tmux) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"HTTP {exc.code}: {exc.read()!r}; the screen shows:\n{tmux.screen()}") from None
    except urllib.error.URLError as exc:
        raise AssertionError(f"{url}: {exc.reason}; the screen shows:\n{tmux.screen()}") from None


def footer_of(screen: str) -> str:
    """The bottom line: the footer (capture-pane leaves out blank lines at the end of a pane)."""
    return [line for line in screen.splitlines() if line.strip()][-1]


def column_start(line: str, title: str) -> int:
    index = line.find(title)
    assert index >= 0, f"no {title!r} in {line!r}"
    return index


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_the_installed_program_in_tmux(tmp_path: Path, tmux: Tmux, size: tuple[int, int]) -> None:
    db_path = tmp_path / "tmux.db"
    tmux.start(shlex.join([*program(), "--port", "0", "--db", str(db_path)]), size)
    url = wait_for_url(db_path, tmux)

    # Empty: the header on its own two lines, and a curl to try in the table.
    screen = tmux.wait_for(
        lambda s: url in s and "GATEWAY" in s and "Help" in footer_of(s), "the main screen with the webhook URL"
    )
    lines = screen.splitlines()
    assert url in lines[0] and "views 0" in lines[1], screen  # nothing wrapped onto the counters' line
    assert "curl" in screen, screen
    footer = footer_of(screen)
    assert "Quit" in footer and "Help" in footer, footer

    post(url, VIEW, tmux)
    post(url, CLOSE, tmux)
    screen = tmux.wait_for(lambda s: "▶ view" in s and "■ close" in s, "both rows")
    assert "9892898898" in screen or size[0] < 160  # the phone column is → away at 80
    assert "views 1" in screen and "closes 1" in screen
    assert "row 1 of 2" in screen and "following newest" in screen
    wide = size[0] >= 160
    if wide:
        assert "PAYMENT_GATEWAY_CROSS_BTN" in screen
        assert "…" not in screen.split("Received")[1].split("GATEWAY")[0]  # every value whole at 160

    if not wide:  # at 160 every column is on screen: nothing to scroll
        # → scrolls the column titles with the rows.
        tmux.keys("Right")
        screen = tmux.wait_for(lambda s: "Received" not in s, "the table one column sideways")
    lines = screen.splitlines()
    header = next(line for line in lines if "Event" in line)
    close = next(line for line in lines if "■ close" in line)
    assert column_start(header, "Event") == column_start(close, "■ close"), screen  # the title over its values
    if not wide:
        tmux.keys("Left")
        tmux.wait_for(lambda s: "Received" in s, "the table back at its first column")

    tmux.keys("Enter")
    screen = tmux.wait_for(
        lambda s: (
            "150s" in s and "PAYMENT_GATEWAY_CROSS_BTN" in s and "1 view, 1 close" in s and "Back" in footer_of(s)
        ),
        "the drill-down and its footer",
    )
    assert "closed" in screen
    footer = footer_of(screen)
    assert "Quit" in footer and "Help" in footer and "Details" in footer, footer  # Enter named
    if wide:
        assert "by sessionId" in screen

    # Escape alone, then wait: ESC followed quickly by another key reads as Alt+key.
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "1 view, 1 close" not in s and "GATEWAY" in s, "the main screen again")
    tmux.keys("End")
    tmux.wait_for(lambda s: "row 2 of 2" in s and "not following" in s, "the cursor on the oldest row")
    tmux.keys("q")
    screen = tmux.wait_for(lambda s: "EXITED=" in s, "the program to exit")
    assert "EXITED=0" in screen, screen

    rows = read_db(db_path, "SELECT event, body FROM events ORDER BY id")
    assert [event for event, _ in rows] == ["payment_gateway.view", "payment_gateway.close"]
    assert [body for _, body in rows] == [VIEW, CLOSE]  # byte for byte
    ((ended_at,),) = read_db(db_path, "SELECT ended_at FROM sessions ORDER BY id DESC LIMIT 1")
    assert ended_at is not None
