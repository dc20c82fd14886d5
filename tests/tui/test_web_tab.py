"""A browser tab's app: its own process reading the database, following a serve process through the control channel.

The serve side is real (a listener thread, the web server's control routes on
port 0); the tab is a :class:`MonitorApp` with a :class:`RemoteLink`, as
``web-tab --live`` builds it (the browser itself is in tests/browser).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.control import ControlClient, ServiceControl
from monitor.service import Options, Service
from monitor.tui.app import MonitorApp
from monitor.tui.link import GONE, RemoteLink
from monitor.webui import WebOptions, WebServer
from tests.helpers import free_port, read_rows, screen_text, wait_for

SIZES = [(80, 24), (160, 48)]


@dataclass
class Serve:
    """What ``serve`` runs: the listener (on a thread here) and the web server's control channel."""

    service: Service
    web: WebServer
    client: ControlClient
    db_path: Path

    async def post(self, body: bytes) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.service.url, data=body, headers={"Content-Type": "application/json"}) as answer,
        ):
            assert answer.status == 200, await answer.text()

    async def tab(self, **kwargs: Any) -> MonitorApp:
        link = RemoteLink(self.client)
        await asyncio.to_thread(link.refresh)  # as run_tab does before the first screen
        return MonitorApp(self.db_path, link=link, **kwargs)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    return_to = await _capture_server()
    db_path = tmp_path / "served.db"
    options = Options(db_path=db_path, port=0, mode="web", forward_to=return_to.url)
    service = Service(options)
    service.start_in_thread()
    web_server = WebServer(WebOptions(port=0), ["true"], control=ServiceControl(service))
    try:
        await web_server.start()
        client = ControlClient.from_env({ControlClient.ENV: web_server.control_address or ""})
        assert client is not None
        yield Serve(service, web_server, client, db_path)
    finally:
        await web_server.stop()
        service.stop_thread()
        await return_to.runner.cleanup()


@dataclass
class Capture:
    url: str
    runner: web.AppRunner
    bodies: list[bytes]


async def _capture_server() -> Capture:
    """The developer's application: answers 200 and keeps each body."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Capture(f"http://127.0.0.1:{port}/hook", runner, bodies)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
async def test_a_tab_shows_the_live_session_and_the_rows_the_serve_process_records(
    serve: Serve, spec: dict[str, bytes], size: tuple[int, int]
) -> None:
    await serve.post(spec["payment_gateway.view"])  # before the tab opened: a later tab sees the whole session
    app = await serve.tab()
    async with app.run_test(size=size) as pilot:
        assert app.live_session_id == serve.service.session_id
        await wait_for(pilot, lambda: "view" in screen_text(app), what="the row recorded before the tab")
        header = screen_text(app).splitlines()[0]
        assert serve.service.url.split("//")[1].rstrip("/") in header
        await serve.post(spec["payment_gateway.close"])
        await wait_for(pilot, lambda: "close" in screen_text(app), what="the row recorded while the tab is open")
        assert "(live)" in screen_text(app) or size[0] < 100  # 80 columns shorten the origin line


async def test_a_tab_says_when_its_serve_process_is_gone(serve: Serve) -> None:
    app = await serve.tab()
    async with app.run_test(size=(160, 48)) as pilot:
        await serve.web.stop()  # the control channel goes away (the listener thread is not asked)
        await wait_for(pilot, lambda: app.listener_problem is not None, timeout=15, what="the problem")
        assert app.listener_problem is not None
        assert app.listener_problem.startswith(GONE)
        await wait_for(pilot, lambda: "Not recording" in screen_text(app), what="the notification")


async def test_replay_from_a_tab_is_sent_and_recorded_by_the_serve_process(
    serve: Serve, spec: dict[str, bytes]
) -> None:
    await serve.post(spec["payment_gateway.view"])
    app = await serve.tab()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: "view" in screen_text(app), what="the row")
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any("Replay of #1: HTTP 200" in str(n.message) for n in app._notifications),
            timeout=20,
            what="the replay's outcome",
        )
    forwards = read_rows(serve.db_path, "select * from forwards where kind = 'replay'")
    assert [row["event_id"] for row in forwards] == [1]
    assert forwards[0]["status"] == 200


async def test_web_mask_keeps_personal_data_masked(serve: Serve, spec: dict[str, bytes]) -> None:
    await serve.post(spec["payment_gateway.view"])
    app = await serve.tab(mask_forced=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: "view" in screen_text(app), what="the row")
        assert app.masked
        assert "9892898898" not in screen_text(app)
        await pilot.press("m")
        await pilot.pause()
        assert app.masked
        assert "9892898898" not in screen_text(app)
        assert any("--web-mask" in str(n.message) for n in app._notifications)


def test_a_tab_without_its_control_channel_is_refused(tmp_path: Path) -> None:
    from monitor.tui.launch import run_tab

    with pytest.raises(RuntimeError, match="CONSCENT_MONITOR_CONTROL"):
        run_tab(tmp_path / "x.db", live=True, session_id=None, mask=False)


def test_a_link_to_no_serve_process_names_the_problem() -> None:
    """A tab whose serve process never answered: the problem names it, no URL is guessed."""
    link = RemoteLink(ControlClient(f"http://127.0.0.1:{free_port()}", "token"))
    link.refresh()
    assert link.url is None
    problem = link.problem()
    assert problem is not None
    assert problem.startswith(GONE)


async def test_under_web_mask_nothing_copied_from_the_details_carries_personal_data(
    serve: Serve, spec: dict[str, bytes]
) -> None:
    from monitor.tui.screens.detail import DetailScreen

    await serve.post(spec["payment_gateway.view"])
    app = await serve.tab(mask_forced=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: "view" in screen_text(app), what="the row")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what="the details")
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard and "9892898898" not in app.clipboard and "payment_gateway.view" in app.clipboard
        await pilot.press("y")
        await pilot.pause()
        assert "9892898898" not in app.clipboard and "curl" in app.clipboard
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)  # no editor holding the raw body
        assert any("not while personal data is masked (--web-mask)" in str(n.message) for n in app._notifications)
