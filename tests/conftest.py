"""Fixtures shared by every folder of tests; what tests import lives in ``tests/helpers.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor import store
from monitor.listener import ListenerConfig, make_server
from monitor.service import Options, Service
from monitor.tui.app import MonitorApp
from monitor.writer import CommitNotice, Writer
from tests.helpers import ListenerTestServer, Live, Monitor, Tmux, spec_bodies


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


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[Any]:
    started: list[Monitor] = []

    def start(*args: str) -> Monitor:
        monitor = Monitor(*args, cwd=tmp_path)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """``await services(**options)``: a started Service (the real listener) on a fresh database; all stopped after."""
    started: list[Service] = []

    async def start(**options: Any) -> Service:
        service = Service(Options(db_path=tmp_path / f"monitor{len(started)}.db", port=0, **options))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    app: MonitorApp | None = None

    def on_commit(notice: CommitNotice) -> None:
        if app is not None:  # assigned below, as in run_live
            app.notify_commit(notice)

    db_path = tmp_path / "m.db"
    service = Service(Options(db_path=db_path, port=0, mode="tui"), on_commit=on_commit)
    service.start_in_thread()
    try:
        app = MonitorApp(db_path, service=service)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            yield Live(app, service, db_path, http)
    finally:
        service.stop_thread()


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Render local times in UTC, whatever the machine's zone."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A tmux server on a socket of its own (killed afterwards), for tests that use the real program."""
    import os
    import uuid

    name = f"conscent-monitor-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    term = Tmux(socket=name, session=name)
    try:
        yield term
    finally:
        term("kill-server", check=False)
