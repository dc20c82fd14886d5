"""The installed program in a real terminal (tmux), used the way a person would.

Start ``conscent-monitor`` in a detached tmux session (160x48, then 80x24), POST the two spec
payloads over HTTP, read the screen with ``capture-pane``, press Enter for
the drill-down, Escape, then ``q``; check what reached the database. The tmux
server runs on a socket of its own, so a user's tmux is never touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import CLOSE, VIEW

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

TIMEOUT = 30.0


def program() -> list[str]:
    """The installed console script, else the module."""
    beside = Path(sys.executable).with_name("conscent-monitor")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("conscent-monitor")
    return [found] if found else [sys.executable, "-m", "monitor"]


class Tmux:
    def __init__(self, socket: str, session: str) -> None:
        self.socket = socket
        self.session = session

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -f /dev/null: no user configuration; -u: the pane is UTF-8 whatever the locale says.
        # The server's environment becomes the program's. COLUMNS and LINES would
        # override the pane's size; they can be in the C environment of this process
        # without being in os.environ (set by a library), so pass an explicit one.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(
            ["tmux", "-u", "-f", "/dev/null", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
            env=env,
        )

    def screen(self) -> str:
        result = self("capture-pane", "-p", "-t", self.session, check=False)
        return result.stdout

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    name = f"conscent-monitor-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    term = Tmux(socket=name, session=name)
    try:
        yield term
    finally:
        term("kill-server", check=False)


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


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_the_installed_program_in_tmux(tmp_path: Path, tmux: Tmux, size: tuple[int, int]) -> None:
    db_path = tmp_path / "tmux.db"
    command = [*program(), "--port", "0", "--db", str(db_path)]
    # The shell reports the exit status after the program has restored the terminal.
    script = shlex.join(command) + '; echo "EXITED=$?"; sleep 600'
    tmux(
        "new-session",
        "-d",
        "-x",
        str(size[0]),
        "-y",
        str(size[1]),
        "-s",
        tmux.session,
        "-e",
        "LANG=C.UTF-8",
        "-e",
        "TERM=xterm-256color",
        "sh",
        "-c",
        script,
    )

    url = wait_for_url(db_path, tmux)
    tmux.wait_for(lambda s: url in s and "GATEWAY" in s, "the main screen with the webhook URL")

    post(url, VIEW, tmux)
    post(url, CLOSE, tmux)
    screen = tmux.wait_for(lambda s: "▶ view" in s and "■ close" in s, "both rows")
    assert "9892898898" in screen
    wide = size[0] >= 160  # at 80 columns the click action and the pairing are cut off
    if wide:
        assert "PAYMENT_GATEWAY_CROSS_BTN" in screen
    assert "views 1" in screen and "closes 1" in screen

    tmux.keys("Enter")
    screen = tmux.wait_for(
        lambda s: "Profile" in s and "150s" in s and "PAYMENT_GATEWAY_CROSS_BTN" in s, "the drill-down"
    )
    assert "closed" in screen
    if wide:
        assert "by sessionId" in screen

    # Escape alone, then wait: ESC followed quickly by another key reads as Alt+key.
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "Profile" not in s and "GATEWAY" in s, "the main screen again")
    tmux.keys("q")
    screen = tmux.wait_for(lambda s: "EXITED=" in s, "the program to exit")
    assert "EXITED=0" in screen, screen

    rows = read_db(db_path, "SELECT event, body FROM events ORDER BY id")
    assert [event for event, _ in rows] == ["payment_gateway.view", "payment_gateway.close"]
    assert [body for _, body in rows] == [VIEW, CLOSE]  # byte for byte
    ((ended_at,),) = read_db(db_path, "SELECT ended_at FROM sessions ORDER BY id DESC LIMIT 1")
    assert ended_at is not None
