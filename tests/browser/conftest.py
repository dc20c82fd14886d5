"""Fixtures of the browser tests: one Chromium per module, ``serve`` processes stopped after each test.

Playwright's sync API runs its own event loop in the test's thread, which
stops ``asyncio.run`` (pytest-asyncio's tests) from running beside it: the
browser lives for one module only, so a worker that goes on to an async test
has stopped it first (pytest tears a module's fixtures down before the next
module's test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.page import Served, launch, missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(autouse=True)
def _browser_present() -> None:
    if reason := missing():
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if reason := missing():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """``serve(*options)``: ``conscent-monitor serve`` on free ports and its own database (``tmp_path/s.db``).

    ``serve(..., command=["open", db, "--web"], listener=False)`` runs another command that serves the
    web UI. Whatever a test has not stopped is killed afterwards.
    """
    started: list[Served] = []

    def start(*options: str, command: list[str] | None = None, listener: bool = True) -> Served:
        args = command or ["serve", "--port", "0", "--db", str(tmp_path / "s.db")]
        served = Served(*args, "--web-port", "0", *options, cwd=tmp_path, listener=listener)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
