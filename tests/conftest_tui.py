"""Fixtures for the TUI tests (loaded with ``pytest_plugins = ["tests.conftest_tui"]``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from monitor.service import Options, Service
from monitor.tui.app import MonitorApp
from monitor.writer import CommitNotice
from tests.tui_helpers import Live


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
