"""The control channel: a browser tab's client against a real Service behind a real WebServer (port 0)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from monitor import control, queries, store
from monitor.control import ControlClient, ControlError, ServiceControl, Status
from monitor.forwarder import ForwardStats, Outcome
from monitor.service import Service
from monitor.tunnel import TunnelState
from monitor.webui import WebOptions, WebServer
from tests.helpers import free_port, wait_until

StartService = Callable[..., Awaitable[Service]]


@dataclass
class Capture:
    """A developer's app: records what arrives."""

    url: str = ""
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(text="captured")


@pytest.fixture
async def capture(aiohttp_server: Any) -> Capture:
    app_capture = Capture()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", app_capture.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    app_capture.url = str(server.make_url("/hook"))
    return app_capture


@pytest.fixture
async def channel(services: StartService) -> AsyncIterator[tuple[Service, WebServer, ControlClient]]:
    """A live Service, its web server with the control routes, and a tab's client of them."""
    service = await services()
    web_server = WebServer(WebOptions(port=0), [sys.executable, "-c", "pass"], control=ServiceControl(service))
    await web_server.start()
    address = web_server.control_address
    assert address is not None
    client = ControlClient.from_env({ControlClient.ENV: address})
    assert client is not None
    try:
        yield service, web_server, client
    finally:
        await web_server.stop()


async def test_status_round_trip(channel: tuple[Service, WebServer, ControlClient]) -> None:
    service, _, client = channel
    status = await asyncio.to_thread(client.status)
    assert status == Status(
        url=service.url, session_id=service.session_id, forward_to=None, problem=None, tunnel=None, forward=None
    )


async def test_replay_reaches_the_target_and_is_recorded(
    channel: tuple[Service, WebServer, ControlClient], capture: Capture, spec: dict[str, bytes]
) -> None:
    service, _, client = channel
    body = spec["payment_gateway.view"]
    async with aiohttp.ClientSession() as http, http.post(service.url, data=body) as response:
        assert response.status == 200
        event_id = (await response.json())["id"]
    stored = {"Content-Type": "application/json", "X-Trace": "seen"}

    outcome = await asyncio.to_thread(client.replay, event_id, body, stored, target=capture.url, edited=False)

    assert (outcome.status, outcome.error, outcome.response_body) == (200, None, b"captured")
    [(path, received, headers)] = capture.received
    assert (path, received, headers["X-Trace"]) == ("/hook", body, "seen")
    db = store.connect(service.options.db_path, readonly=True)
    try:
        await wait_until(lambda: queries.forwards_of(db, event_id), what="the replay's forwards row")
        [row] = queries.forwards_of(db, event_id)
    finally:
        db.close()
    assert (row["kind"], row["status"], row["target"], row["event_id"]) == ("replay", 200, capture.url, event_id)


async def test_a_replay_the_forwarder_cannot_send_is_an_outcome(
    channel: tuple[Service, WebServer, ControlClient], spec: dict[str, bytes]
) -> None:
    service, _, client = channel
    body = spec["payment_gateway.close"]
    async with aiohttp.ClientSession() as http, http.post(service.url, data=body) as response:
        event_id = (await response.json())["id"]
    dead = f"http://127.0.0.1:{free_port()}/hook"
    outcome = await asyncio.to_thread(client.replay, event_id, body, {}, target=dead, edited=False)
    assert outcome.status is None and outcome.error and "connect" in outcome.error


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
async def test_the_control_routes_need_the_token(
    channel: tuple[Service, WebServer, ControlClient], token: str | None
) -> None:
    _, _, client = channel
    headers = {} if token is None else {control.TOKEN_HEADER: token}
    async with aiohttp.ClientSession() as http:
        async with http.get(client.url + control.STATUS_PATH, headers=headers) as response:
            assert response.status == 403
        async with http.post(client.url + control.REPLAY_PATH, data=b"{}", headers=headers) as response:
            assert response.status == 403
    wrong = ControlClient(client.url, "wrong-token")
    with pytest.raises(ControlError, match=r"refused this tab's token \(403\)"):
        await asyncio.to_thread(wrong.status)


async def test_a_malformed_replay_request_is_refused(channel: tuple[Service, WebServer, ControlClient]) -> None:
    _, web_server, client = channel
    address = web_server.control_address
    assert address is not None
    headers = {control.TOKEN_HEADER: address.split()[1]}
    async with aiohttp.ClientSession() as http:
        for body in (b"not json", b"[]", orjson.dumps({"event_id": "1", "body": "", "headers": {}})):
            async with http.post(client.url + control.REPLAY_PATH, data=body, headers=headers) as response:
                assert response.status == 400, body
                assert "not a replay request" in (await response.json())["error"]


async def test_the_control_routes_need_no_login(services: StartService) -> None:
    """Behind a password, the tabs (which have no cookie) still reach the control channel with their token."""
    service = await services()
    options = WebOptions(port=0, password="pw")
    web_server = WebServer(options, [sys.executable, "-c", "pass"], control=ServiceControl(service))
    await web_server.start()
    try:
        client = ControlClient.from_env({ControlClient.ENV: web_server.control_address or ""})
        assert client is not None
        assert (await asyncio.to_thread(client.status)).session_id == service.session_id
    finally:
        await web_server.stop()


async def test_a_stopped_serve_process_is_one_clear_sentence() -> None:
    client = ControlClient(f"http://127.0.0.1:{free_port()}/", "token")
    with pytest.raises(
        ControlError, match=r"^the serve process at http://127\.0\.0\.1:\d+ cannot be reached \("
    ) as err:
        await asyncio.to_thread(client.status)
    assert str(err.value).endswith("has it stopped?")


async def test_an_odd_answer_is_a_control_error(aiohttp_server: Any) -> None:
    """Whatever answers on the channel is checked: wrong types are a ControlError, not a crash later."""
    answers = [b"not json", orjson.dumps({"url": 5}), orjson.dumps([1, 2])]

    async def odd(request: web.Request) -> web.Response:
        return web.Response(body=answers.pop(0), content_type="application/json")

    app = web.Application()
    app.router.add_get(control.STATUS_PATH, odd)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    client = ControlClient(str(server.make_url("/")), "token")
    for _ in range(3):
        with pytest.raises(ControlError, match="an answer this tab cannot read"):
            await asyncio.to_thread(client.status)


def test_from_env_reads_url_and_token() -> None:
    assert ControlClient.from_env({}) is None
    assert ControlClient.from_env({ControlClient.ENV: "just-one-word"}) is None
    assert ControlClient.from_env({ControlClient.ENV: "file:///etc/passwd token"}) is None
    client = ControlClient.from_env({ControlClient.ENV: "http://127.0.0.1:9/ abc"})
    assert client is not None and client.url == "http://127.0.0.1:9"


def test_status_and_outcome_survive_the_wire() -> None:
    """Every field of the tunnel's and the forwarder's state comes back as it went (types checked)."""
    tunnel = TunnelState("cloudflared", "https://a.trycloudflare.com/", "up", "", True, 12.5, None, Path("/t.log"), 2)
    forward = ForwardStats("http://127.0.0.1:3000/", sent=3, last_status=502, recent=[1.5, 2.0], note="n")
    status = Status("http://127.0.0.1:8787/", 4, "http://127.0.0.1:3000/", "disk full", tunnel, forward)
    assert control.rebuild(Status, orjson.loads(control.encode(status))) == status
    outcome = Outcome(201, 3.25, None, {"X-A": "b"}, b"\x00\xffbody", 6)
    assert control.rebuild(Outcome, orjson.loads(control.encode(outcome))) == outcome


@pytest.mark.parametrize(
    "change",
    [{"phase": "exploded"}, {"restarts": True}, {"probe_ms": "fast"}, {"log_path": 3}],
    ids=["phase", "bool-for-int", "str-for-float", "int-for-path"],
)
def test_odd_fields_are_refused(change: dict[str, Any]) -> None:
    data = orjson.loads(control.encode(TunnelState("ngrok")))
    data.update(change)
    with pytest.raises(ValueError, match="TunnelState"):
        control.rebuild(TunnelState, data)
