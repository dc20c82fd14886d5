"""What the tests share: spec payloads, rows to write directly, waiting, a real monitor process, the TUI's screen.

Fixtures live in ``conftest.py``; everything a test imports lives here, so no
test module imports another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer
from rich.segment import Segment
from textual.app import App
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets import Static

from monitor import store
from monitor.events import InvalidBody, parse_body
from monitor.listener import make_runner
from monitor.service import Service
from monitor.tui.app import MonitorApp

# -- the spec and the samples -----------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO.parent / "shared" / "spec" / "conscent-payment-gateway-webhook.txt"
SAMPLE_EVENTS = REPO / "sample_events"

#: The two payloads of the spec page, as a fallback when the spec file is not beside the repository.
_FALLBACK_SPEC_BODIES = {
    "payment_gateway.view": SAMPLE_EVENTS / "payment_gateway.view.json",
    "payment_gateway.close": SAMPLE_EVENTS / "payment_gateway.close.json",
}


def spec_bodies() -> dict[str, bytes]:
    """The JSON objects printed on the spec page, byte for byte, by event name."""
    if SPEC.is_file():
        text = SPEC.read_text(encoding="utf-8")
        decoder = json.JSONDecoder()
        found: dict[str, bytes] = {}
        position = text.find("\n{")
        while position != -1:
            start = position + 1
            obj, end = decoder.raw_decode(text, start)
            found[obj["event"]] = text[start:end].encode("utf-8")
            position = text.find("\n{", end)
        if len(found) == 2:
            return found
    bodies = {name: path.read_bytes() for name, path in _FALLBACK_SPEC_BODIES.items() if path.is_file()}
    if len(bodies) != 2:
        pytest.skip("neither the spec file nor sample_events/ holds the two spec payloads")
    return bodies


# -- rows and the database ----------------------------------------------------------


def read_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows from a connection of our own (what another process would see)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


#: What a delivery from Conscent's servers carries; the TUI's details screen shows these.
EVENT_HEADERS = {"Host": "127.0.0.1:8787", "Content-Type": "application/json", "User-Agent": "axios/0.21.1"}
REJECTED_HEADERS = {"Host": "127.0.0.1:8787", "Content-Type": "application/json"}


def _request(
    session_id: int, received_at: float, path: str, headers: dict[str, str] | str, method: str
) -> dict[str, Any]:
    """The columns both tables share: where and when the request came from."""
    return {
        "session_id": session_id,
        "received_at": received_at,
        "method": method,
        "path": path,
        "remote_addr": "127.0.0.1",
        "headers": headers if isinstance(headers, str) else json.dumps(headers),
    }


def event_row(
    body: bytes,
    *,
    session_id: int = 1,
    received_at: float = 1709186668.5,
    path: str = "/",
    headers: dict[str, str] | str = EVENT_HEADERS,
    signature: str = "unchecked",
    parsed: bool = True,
    **columns: Any,
) -> dict[str, Any]:
    """An ``events`` row as the listener builds it, for writing a database (or a writer) directly.

    The parsed columns (``event``, ``user_id``, ...) come from the body, unless
    ``parsed=False`` or the body is not a JSON object (rows for the writer and
    the store, which never parse); ``columns`` set or override any column.
    """
    row = _request(session_id, received_at, path, headers, "POST") | {
        "content_type": "application/json",
        "body": body,
        "body_size": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "signature": signature,
        "basic_auth": "unchecked",
    }
    if parsed:
        with contextlib.suppress(InvalidBody):
            row.update(parse_body(body).columns())
    row.update(columns)
    return row


def rejected_row(
    body: bytes = b"",
    *,
    session_id: int = 1,
    received_at: float = 1709186668.5,
    status: int = 400,
    reason: str = "body is not JSON",
    method: str = "POST",
    path: str = "/",
    headers: dict[str, str] | str = REJECTED_HEADERS,
    **columns: Any,
) -> dict[str, Any]:
    """A ``rejected`` row as the listener builds it; ``columns`` set or override any column."""
    row = _request(session_id, received_at, path, headers, method) | {
        "status": status,
        "reason": reason,
        "body": body,
        "body_size": len(body),
    }
    row.update(columns)
    return row


async def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        await asyncio.sleep(0.02)


class ListenerTestServer(BaseTestServer):
    """A test server whose runner is the production one (``make_runner``).

    aiohttp's test servers build their own runners, without keyword arguments
    such as ``auto_decompress=False``, which the listener relies on to limit
    and decompress bodies itself.
    """

    def __init__(self, server: web.Server, **kwargs: Any) -> None:
        self._server = server
        super().__init__(**kwargs)

    async def _make_runner(self, **kwargs: Any) -> web.ServerRunner:
        return make_runner(self._server)


class ReadOnlySwitch:
    """A writer ``connect`` factory: the database opens read-only (SQLite ``mode=ro``) while ``on``.

    ``chmod`` does not stop root, so this is how the tests make the database unwritable.
    """

    def __init__(self, db_path: Path, *, on: bool) -> None:
        self.db_path = db_path
        self.on = on

    def __call__(self) -> sqlite3.Connection:
        if self.on:
            conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            conn.isolation_level = None
            return conn
        return store.connect(self.db_path).conn


# -- a real monitor process ---------------------------------------------------------

URL_RE = re.compile(r"listening on (http://\S+/)")


class Monitor:
    """A headless monitor process, its stdout read line by line on a thread."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CONSCENT_WEBHOOK_SECRET"}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout: float = 15.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from the monitor in time") from None
        if line is None:
            raise AssertionError(f"monitor exited: {self.stderr()}")
        return line

    def url(self) -> str:
        first = self.line()
        match = URL_RE.search(first)
        assert match, first
        return match.group(1)

    def rest(self, timeout: float = 15.0) -> list[str]:
        """Every remaining line, once the process has closed its stdout."""
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                return out
            out.append(line)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def samples() -> list[tuple[str, bytes]]:
    files = sorted(SAMPLE_EVENTS.glob("*.json")) if SAMPLE_EVENTS.is_dir() else []
    if files:
        return [(path.name, path.read_bytes()) for path in files]
    return sorted(spec_bodies().items())


def http_post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m monitor ARGS`` to completion, output captured as text."""
    command = [sys.executable, "-m", "monitor", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, **kwargs)


# -- the TUI --------------------------------------------------------------------------

SAMPLES = SAMPLE_EVENTS
SIZE = (160, 48)

#: The spec pair: one reader, paired by the pageUrl sessionId, created 150 s apart.
VIEW = (SAMPLES / "payment_gateway.view.json").read_bytes()
CLOSE = (SAMPLES / "payment_gateway.close.json").read_bytes()
TRANSACTION = (SAMPLES / "transaction.complete.json").read_bytes()
SPEC_READER = "65e01bd8d03692125f1f353d"
PHONE = "9892898898"
#: Not JSON, and not UTF-8 either: rejected with 400, shown as a hexdump.
MALFORMED = b'{"event": "payment_gateway.view", "user_id": \xff\xfe broken'

_VIEW_OBJ = json.loads(VIEW)


def gateway_body(
    *,
    event: str = "payment_gateway.view",
    user_id: str = "reader-1",
    name: str = "",
    phone: str = "9000000001",
    content_id: str = "story-1",
    created_at: float = 1709186668,
    session: str = "gw-session-1",
    click_action: str | None = None,
) -> bytes:
    """A gateway view or close shaped like the spec payload, with the fields a test cares about."""
    obj = json.loads(VIEW)
    obj["event"] = event
    obj["user_id"] = user_id
    obj["created_at"] = created_at
    user = obj["payload"]["user"]
    user.update(userId=user_id, name=name, phoneNumber=phone, username=phone)
    action = obj["payload"]["action"]
    action["contentId"] = content_id
    action["pageUrl"] = action["pageUrl"].replace("sessionId=65e01bdad03692125f1f3540", f"sessionId={session}")
    if click_action is not None:
        action["clickAction"] = click_action
    # json.dumps escapes control characters (\u001b), as a JSON sender would.
    return json.dumps(obj).encode()


@dataclass
class Live:
    """A monitor wired like ``run_live``: a real listener thread feeding the app."""

    app: MonitorApp
    service: Service
    db_path: Path
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.service.url

    def run(self, **kwargs: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.app.run_test(size=SIZE, **kwargs)

    async def post(self, body: bytes, *, expect: int = 200) -> dict[str, Any]:
        """POST one delivery over real HTTP; answered once the row is committed."""
        async with self.http.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == expect, answer
            return answer


# -- waiting and reading ------------------------------------------------------


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``predicate()`` is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await pilot.pause(0.05)


def strip_text(strip: Strip) -> str:
    return "".join(segment.text for segment in strip)


def screen_strips(app: App[Any]) -> list[Strip]:
    """What the terminal would show for the current screen, line by line."""
    return app.screen._compositor.render_strips()


def screen_text(app: App[Any]) -> str:
    return "\n".join(strip_text(strip) for strip in screen_strips(app))


def unsafe_segments(strips: list[Strip]) -> list[Segment]:
    """Segments that carry a raw control character or a control code."""
    found = []
    for strip in strips:
        for segment in strip:
            if segment.control or any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in segment.text):
                found.append(segment)
    return found


def static_text(node: App[Any] | DOMNode, selector: str) -> str:
    """The plain text of a ``Static`` on the app's current screen (or under ``node``)."""
    root = node.screen if isinstance(node, App) else node
    return str(root.query_one(selector, Static).content)


# -- the command line and damaged files ----------------------------------------------


def run_command(*args: str) -> Any:
    """The click command line, in-process (a ``click.testing.Result``)."""
    from click.testing import CliRunner

    from monitor.cli import cli

    return CliRunner().invoke(cli, list(args))


def one_error(result: Any, code: int = 1) -> str:
    """The single ``Error:`` line of a refusal, after checking the exit code and that no traceback leaked."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def damage_events_page(path: Path, *, at: float = 0.5, length: int = 64) -> int:
    """Overwrite the start of one ``events`` leaf page with 0xFF; returns its page number.

    ``at`` says how far into the table (by rowid) the page lies. The schema page
    stays intact, so the file opens and ``open``'s first checks pass, while every
    read of that page fails with "database disk image is malformed". Skips where
    SQLite has no ``dbstat`` table to find the page with.
    """
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if not conn.execute("SELECT 1 FROM pragma_module_list WHERE name = 'dbstat'").fetchone():
            pytest.skip("this SQLite has no dbstat table to find a data page with")
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        sql = "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY path"
        leaves = [n for (n,) in conn.execute(sql)]
    finally:
        conn.close()
    page = leaves[int(len(leaves) * at)]
    assert page > 1 and len(leaves) > 3
    with path.open("r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\xff" * length)  # no valid b-tree page type: every read of this page is "malformed"
    return int(page)


# -- a real terminal (tmux) ------------------------------------------------------------


def program() -> list[str]:
    """The installed console script, else the module."""
    beside = Path(sys.executable).with_name("conscent-monitor")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("conscent-monitor")
    return [found] if found else [sys.executable, "-m", "monitor"]


class Tmux:
    """A tmux server of its own (``-L socket``), so a user's tmux is never touched; the ``tmux`` fixture kills it."""

    def __init__(self, socket: str, session: str) -> None:
        self.socket = socket
        self.session = session

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -f /dev/null: no user configuration; -u: the pane is UTF-8 whatever the locale says.
        # COLUMNS and LINES would override the pane's size: pass an environment without them.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        return subprocess.run(
            ["tmux", "-u", "-f", "/dev/null", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
            env=env,
        )

    def start(self, command: str, size: tuple[int, int]) -> None:
        """Run a shell ``command`` in a detached session of ``size``; ``EXITED=<status>`` follows its end."""
        script = f'{command}; echo "EXITED=$?"; sleep 600'
        width, height = size
        self(
            "new-session", "-d", "-x", str(width), "-y", str(height), "-s", self.session,
            "-e", "LANG=C.UTF-8", "-e", "TERM=xterm-256color", "sh", "-c", script,
        )  # fmt: skip

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session, check=False).stdout

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", self.session, *keys)

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{screen}")
            time.sleep(0.1)


def free_port() -> int:
    """A port nothing listens on (bound, then closed): for "the other side is gone" tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def journey_row(id_: int, event: str, t: float | None, received: float | None = None, **extra: Any) -> dict[str, Any]:
    """A reader's event as the journey reads it (``created_at`` ``t``, received a second later unless given)."""
    row: dict[str, Any] = {
        "id": id_,
        "event": event,
        "created_at": t,
        "received_at": received if received is not None else (t or 0) + 1,
        "content_id": None,
        "client_content_id": None,
        "paywall_id": None,
        "gateway_session_id": None,
        "click_action": None,
        "duplicate_of": None,
    }
    return row | extra
