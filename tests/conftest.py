"""Shared fixtures for the core tests: spec payloads, stores, writers, listeners."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient

from monitor import store
from monitor.events import parse_body
from monitor.listener import ListenerConfig, make_runner, make_server
from monitor.writer import Writer

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


@pytest.fixture(scope="session")
def spec() -> dict[str, bytes]:
    return spec_bodies()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "monitor.db"


@pytest.fixture
def store_db(db_path: Path) -> Iterator[Any]:
    db = store.open_store(db_path)
    yield db
    db.close()


@pytest.fixture
def session_id(store_db: Any) -> int:
    return store.start_session(store_db, listen=None, mode="test")


def read_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows from a connection of our own (what another process would see)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


#: The request columns both row builders start from.
_REQUEST: dict[str, Any] = {
    "session_id": 1,
    "received_at": 1709186668.5,
    "method": "POST",
    "path": "/",
    "remote_addr": "127.0.0.1",
    "headers": "{}",
}


def event_row(body: bytes, *, parsed: bool = True, **columns: Any) -> dict[str, Any]:
    """An ``events`` row as the listener builds it, for writing a database directly.

    The parsed columns come from the body unless ``parsed=False``; ``columns`` override anything.
    """
    row: dict[str, Any] = _REQUEST | {
        "content_type": "application/json",
        "body": body,
        "body_size": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "signature": "unchecked",
        "basic_auth": "unchecked",
    }
    if parsed:
        row.update(parse_body(body).columns())
    row.update(columns)
    return row


def rejected_row(body: bytes = b"", **columns: Any) -> dict[str, Any]:
    """A ``rejected`` row as the listener builds it; ``columns`` override anything."""
    row: dict[str, Any] = _REQUEST | {
        "status": 400,
        "reason": "body is not JSON",
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


@pytest.fixture
def make_writer(db_path: Path) -> Iterator[Callable[..., Writer]]:
    """Build and start writers on the test database; all are stopped afterwards."""
    writers: list[Writer] = []

    def build(**kwargs: Any) -> Writer:
        writer = Writer(kwargs.pop("path", db_path), **kwargs)
        writer.start()
        writers.append(writer)
        return writer

    yield build
    for writer in writers:
        writer.stop(timeout=10)


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


@pytest.fixture
async def listen(
    aiohttp_client: Any, store_db: Any, session_id: int, db_path: Path, make_writer: Callable[..., Writer]
) -> AsyncIterator[Callable[..., Any]]:
    """``await listen(**config)`` -> an aiohttp test client on the real listener app.

    The server is built the way :func:`monitor.listener.make_runner` builds it
    (``auto_decompress=False``): the listener decompresses bodies itself.
    """

    async def start(*, writer: Writer | None = None, **config: Any) -> TestClient[web.BaseRequest, None]:
        cfg = ListenerConfig(session_id=session_id, db_path=str(db_path), **config)
        server = ListenerTestServer(make_server(cfg, writer or make_writer()), host="127.0.0.1", port=0)
        client: TestClient[web.BaseRequest, None] = await aiohttp_client(server)
        return client

    yield start


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
