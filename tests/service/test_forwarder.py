"""``--forward-to``: a real Service forwards to a real aiohttp target; replays from the TUI.

Every test starts the monitor with :meth:`Service.start` on the test's loop and
points it at an aiohttp server on 127.0.0.1. Conditions are polled with
deadlines; nothing relies on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy
from yarl import URL

from monitor import forwarder as forwarder_module
from monitor.service import Options, Service
from monitor.signing import (
    REDACTED,
    SIGNATURE_HEADER,
    VALID,
    basic_auth_header,
    check_basic_auth,
    check_signature,
    sign,
)
from tests.helpers import SAMPLE_EVENTS, read_rows

SECRET = "whsec_forward"
CREDS = ("client-key", "client-secret")
VIEW = (SAMPLE_EVENTS / "payment_gateway.view.json").read_bytes()
CLOSE = (SAMPLE_EVENTS / "payment_gateway.close.json").read_bytes()
COMPACT = b'{"entity":"event","event":"payment_gateway.view","user_id":"u1","created_at":1709186668}'


# --- the target: the developer's own application ------------------------------------------------


@dataclass
class Received:
    path: str
    body: bytes
    headers: CIMultiDictProxy[str]


@dataclass
class Target:
    """An aiohttp app that records what arrives and answers as told."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    #: Answer n gets statuses[n]; the last one repeats (empty: 200).
    statuses: list[int] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b'{"app":"ok"}'
    #: Compress the answer when the request accepts it (as many frameworks do).
    compress: bool = False
    #: Seconds to hang before answering (released early at teardown).
    hang: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path_qs, await request.read(), request.headers))
        if self.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.hang)
        index = len(self.received) - 1
        status = self.statuses[min(index, len(self.statuses) - 1)] if self.statuses else 200
        response = web.Response(status=status, body=self.response_body, headers=self.response_headers)
        if self.compress:
            response.enable_compression()
        return response

    @property
    def host(self) -> str:
        url = URL(self.url)
        return f"{url.host}:{url.port}"


@pytest.fixture
async def target(aiohttp_server: Any) -> AsyncIterator[Target]:
    app_target = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", app_target.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    app_target.url = str(server.make_url("/app/hook"))
    yield app_target
    app_target.release.set()  # hanging handlers end now, so the server stops at once


StartService = Callable[..., Awaitable[Service]]


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forwarder_module, "BACKOFF", (0.05, 0.1))


# --- helpers ---------------------------------------------------------------------------------------


async def deliver(
    service: Service,
    body: Any = VIEW,
    headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
    path: str = "webhook",
    bare: bool = False,
) -> tuple[int, dict[str, Any], float]:
    """POST to the monitor; (status, JSON answer, seconds until the answer).

    ``bare``: aiohttp adds no headers of its own (only Host and Content-Length go out).
    """
    skip = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type") if bare else ()
    async with aiohttp.ClientSession(skip_auto_headers=skip) as session:
        started = time.perf_counter()
        async with session.post(service.url + path, data=body, headers=headers) as resp:
            answer = await resp.json(content_type=None)
            return resp.status, answer, time.perf_counter() - started


async def status_page(service: Service) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(service.url) as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def forwards(service: Service) -> list[dict[str, Any]]:
    return read_rows(service.options.db_path, "SELECT * FROM forwards ORDER BY id")


async def forward_rows(service: Service, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait until ``forwards`` holds at least ``count`` committed rows."""
    rows: list[dict[str, Any]] = await eventually(
        lambda: (rows := forwards(service)) and len(rows) >= count and rows, f"{count} forwards rows", timeout
    )
    return rows


def events(service: Service) -> list[dict[str, Any]]:
    return read_rows(service.options.db_path, "SELECT * FROM events ORDER BY id")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def forwarder(service: Service) -> forwarder_module.Forwarder:
    assert service.forwarder is not None
    return service.forwarder


# --- exact bytes and headers ---------------------------------------------------------------------


async def test_exact_body_and_original_headers_arrive(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url, secret=SECRET)
    signature = sign(VIEW, SECRET)
    sent = [
        ("Content-Type", "application/json"),
        (SIGNATURE_HEADER, signature),
        ("User-Agent", "axios/0.21.1"),
        ("X-Custom", "custom value"),
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("Proxy-Authorization", "Basic c2VjcmV0OnByb3h5"),
    ]
    status, answer, _ = await deliver(service, VIEW, sent, path="webhook?src=conscent")
    assert status == 200 and answer["ok"] is True
    await eventually(lambda: target.received, "the forwarded delivery")

    got = target.received[0]
    assert got.body == VIEW  # byte for byte, indentation and all
    assert got.path == "/app/hook"  # the target's URL, not the path Conscent used
    assert got.headers[SIGNATURE_HEADER] == signature
    assert check_signature(got.headers.get(SIGNATURE_HEADER), SECRET, got.body) == VALID
    assert got.headers.getall("Content-Type") == ["application/json"]
    assert got.headers["X-Custom"] == "custom value"
    assert got.headers.getall("X-Multi") == ["one", "two"]
    assert got.headers.getall("User-Agent") == ["axios/0.21.1"]  # not aiohttp's own
    # Hop-by-hop headers describe the hop to the monitor: recomputed, not copied.
    assert got.headers.getall("Host") == [target.host]
    assert got.headers.getall("Content-Length") == [str(len(VIEW))]
    assert "Proxy-Authorization" not in got.headers
    assert "Content-Encoding" not in got.headers and "Transfer-Encoding" not in got.headers

    [row] = await forward_rows(service, 1)
    assert row["event_id"] == answer["id"] and row["status"] == 200


async def test_no_headers_are_added(target: Target, services: StartService) -> None:
    """The target sees the delivery's headers, not aiohttp's defaults (no Content-Type of its own)."""
    service = await services(forward_to=target.url)
    status, _, _ = await deliver(service, COMPACT, {"X-Only": "this"}, bare=True)
    assert status == 200
    await eventually(lambda: target.received, "the forwarded delivery")
    got = target.received[0]
    assert sorted(got.headers) == ["Content-Length", "Host", "X-Only"]
    assert got.body == COMPACT


async def test_target_response_is_stored_uncompressed(target: Target, services: StartService) -> None:
    """The delivery's Accept-Encoding is not passed on and none is added: the stored answer is readable."""
    target.compress = True
    target.response_body = b'{"app":"' + b"a" * 5000 + b'"}'
    service = await services(forward_to=target.url)
    await deliver(service, COMPACT, {"Accept-Encoding": "gzip, deflate, br"})
    [row] = await forward_rows(service, 1)
    assert "Accept-Encoding" not in target.received[0].headers
    assert row["response_body"] == target.response_body
    assert "Content-Encoding" not in orjson.loads(row["response_headers"])


async def test_gzip_delivery_is_forwarded_decompressed(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url, secret=SECRET)
    wire = gzip.compress(VIEW)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", SIGNATURE_HEADER: sign(VIEW, SECRET)}
    status, _, _ = await deliver(service, wire, headers)
    assert status == 200
    await eventually(lambda: target.received, "the forwarded delivery")
    got = target.received[0]
    assert got.body == VIEW
    assert "Content-Encoding" not in got.headers
    assert got.headers.getall("Content-Length") == [str(len(VIEW))]  # not the compressed size
    assert check_signature(got.headers.get(SIGNATURE_HEADER), SECRET, got.body) == VALID


async def test_chunked_delivery_is_forwarded_with_its_length(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(CLOSE), 100):
            yield CLOSE[start : start + 100]

    status, _, _ = await deliver(service, chunks(), {"Content-Type": "application/json"})
    assert status == 200
    await eventually(lambda: target.received, "the forwarded delivery")
    got = target.received[0]
    assert got.body == CLOSE
    assert "Transfer-Encoding" not in got.headers
    assert got.headers.getall("Content-Length") == [str(len(CLOSE))]


async def test_rejected_deliveries_are_not_forwarded(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url, secret=SECRET, require_auth=True)
    assert (await deliver(service, b"not json", {SIGNATURE_HEADER: sign(b"not json", SECRET)}))[0] == 400
    assert (await deliver(service, VIEW, {SIGNATURE_HEADER: "00" * 32}))[0] == 401
    status, answer, _ = await deliver(service, CLOSE, {SIGNATURE_HEADER: sign(CLOSE, SECRET)})
    assert status == 200
    rows = await forward_rows(service, 1)
    assert [row["event_id"] for row in rows] == [answer["id"]]
    assert [got.body for got in target.received] == [CLOSE]


# --- the target's answer is stored -----------------------------------------------------------------


async def test_target_response_is_stored(target: Target, services: StartService) -> None:
    target.statuses = [201]
    target.response_headers = {"X-App": "yes", "Content-Type": "text/plain"}
    target.response_body = bytes(range(256)) * 400  # 100 KiB, not UTF-8
    service = await services(forward_to=target.url)
    status, answer, _ = await deliver(service, COMPACT, {"Content-Type": "application/json"})
    assert status == 200

    [row] = await forward_rows(service, 1)
    assert row["event_id"] == answer["id"] and events(service)[0]["id"] == answer["id"]
    assert row["session_id"] == service.session_id
    assert (row["kind"], row["attempt"], row["target"]) == ("forward", 1, target.url)
    assert row["status"] == 201 and row["error"] is None
    assert row["latency_ms"] > 0 and row["requested_at"] > 0
    assert row["response_body"] == target.response_body[: 64 * 1024]
    assert row["response_size"] == len(target.response_body)
    response_headers = orjson.loads(row["response_headers"])
    assert response_headers["X-App"] == "yes" and response_headers["Content-Type"] == "text/plain"
    assert row["request_body"] is None  # the delivery's own body: not stored twice
    assert orjson.loads(row["request_headers"])["Content-Type"] == "application/json"

    stats = forwarder(service).stats
    assert stats.last_status == 201 and not stats.down and stats.pending == 0
    page = await status_page(service)
    assert page["forward"]["target"] == target.url and page["forward"]["down"] is False


async def test_authorization_is_forwarded_but_stored_redacted(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url, basic_auth=CREDS)
    authorization = basic_auth_header(*CREDS)
    headers = {"Content-Type": "application/json", "Authorization": authorization, "Cookie": "sid=abc"}
    status, _, _ = await deliver(service, COMPACT, headers)
    assert status == 200
    await eventually(lambda: target.received, "the forwarded delivery")
    got = target.received[0]
    assert got.headers["Authorization"] == authorization  # the original, not the redacted copy
    assert check_basic_auth(got.headers["Authorization"], CREDS) == VALID
    assert got.headers["Cookie"] == "sid=abc"

    [row] = await forward_rows(service, 1)
    stored = orjson.loads(row["request_headers"])
    assert stored["Authorization"] == f"Basic {REDACTED}"
    assert stored["Cookie"] == REDACTED
    assert "client-secret" not in row["request_headers"] and authorization not in row["request_headers"]
    assert orjson.loads(events(service)[0]["headers"])["Authorization"] == f"Basic {REDACTED}"


# --- retries ------------------------------------------------------------------------------------------


async def test_server_errors_are_retried_with_backoff(
    target: Target, services: StartService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forwarder_module, "BACKOFF", (0.15, 0.3))
    target.statuses = [500]
    service = await services(forward_to=target.url, forward_attempts=3)
    status, answer, _ = await deliver(service, COMPACT)
    assert status == 200

    rows = await forward_rows(service, 3)
    assert [row["attempt"] for row in rows] == [1, 2, 3]
    assert {row["status"] for row in rows} == {500}
    assert {row["event_id"] for row in rows} == {answer["id"]}
    assert {row["kind"] for row in rows} == {"forward"}
    # Each attempt waits its back-off first (requested_at is taken after the answer, so gaps only grow).
    gaps = [later["requested_at"] - earlier["requested_at"] for earlier, later in itertools.pairwise(rows)]
    assert gaps[0] >= 0.15 - 0.01 and gaps[1] >= 0.3 - 0.01, gaps
    # Given up after the last attempt: nothing pending, nothing more sent.
    stats = forwarder(service).stats
    assert stats.pending == 0
    assert len(target.received) == 3 and {got.body for got in target.received} == {COMPACT}
    assert stats.down and stats.last_status == 500
    page = await status_page(service)
    assert page["forward"]["down"] is True and page["forward"]["last_status"] == 500


async def test_retries_stop_at_the_first_success(target: Target, services: StartService) -> None:
    target.statuses = [503, 429, 200]
    service = await services(forward_to=target.url, forward_attempts=5)
    await deliver(service, COMPACT)
    rows = await forward_rows(service, 3)
    await eventually(lambda: forwarder(service).stats.pending == 0, "the forward to finish")
    assert [(row["attempt"], row["status"]) for row in forwards(service)] == [(1, 503), (2, 429), (3, 200)]
    assert len(rows) == 3 and len(target.received) == 3
    assert not forwarder(service).stats.down
    assert (await status_page(service))["forward"]["down"] is False


@pytest.mark.parametrize("code", [400, 404, 422])
async def test_client_errors_are_not_retried(target: Target, services: StartService, code: int) -> None:
    target.statuses = [code]
    service = await services(forward_to=target.url, forward_attempts=5)
    await deliver(service, COMPACT)
    [row] = await forward_rows(service, 1)
    assert row["status"] == code and row["attempt"] == 1
    stats = forwarder(service).stats
    assert stats.pending == 0  # decided: no retry is scheduled
    assert len(target.received) == 1 and len(forwards(service)) == 1
    assert not stats.down  # the application answered


async def test_redirect_is_recorded_not_followed(target: Target, services: StartService) -> None:
    """A 302 is the application's answer; following it would turn the POST into a bodiless GET."""
    target.statuses = [302, 200]
    target.response_headers = {"Location": "/elsewhere"}
    service = await services(forward_to=target.url)
    await deliver(service, COMPACT)
    [row] = await forward_rows(service, 1)
    assert row["status"] == 302 and orjson.loads(row["response_headers"])["Location"] == "/elsewhere"
    assert forwarder(service).stats.pending == 0
    assert [got.path for got in target.received] == ["/app/hook"]


# --- a target that is down or hangs -----------------------------------------------------------------


async def test_refused_connections_lose_nothing(services: StartService) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    service = await services(forward_to=dead, forward_attempts=2)
    bodies = [COMPACT.replace(b'"u1"', f'"u{n}"'.encode()) for n in range(6)]
    answers = await asyncio.gather(*(deliver(service, body) for body in bodies))
    assert [status for status, _, _ in answers] == [200] * 6
    assert sorted(row["body"] for row in events(service)) == sorted(bodies)

    rows = await forward_rows(service, 12)
    await eventually(lambda: forwarder(service).stats.pending == 0, "the forwarder to give up")
    assert len(forwards(service)) == 12  # 6 deliveries x 2 attempts
    assert {row["event_id"] for row in rows} == {answer["id"] for _, answer, _ in answers}
    assert all(row["status"] is None and row["error"].startswith("cannot connect") for row in rows), rows
    page = await status_page(service)
    assert page["forward"]["down"] is True and page["forward"]["target"] == dead
    assert page["forward"]["last_error"].startswith("cannot connect")
    assert page["events"] == 6


async def test_hanging_target_neither_loses_nor_slows_recording(target: Target, services: StartService) -> None:
    target.hang = 5.0
    service = await services(forward_to=target.url, forward_timeout=0.3, forward_attempts=2)
    bodies = [COMPACT.replace(b'"u1"', f'"u{n}"'.encode()) for n in range(6)]
    ids = []
    for body in bodies:
        status, answer, seconds = await deliver(service, body)
        # A correctness bound, not a benchmark: the answer does not wait for the 5 s target.
        assert status == 200 and seconds < 1.0, seconds
        ids.append(answer["id"])
        assert read_rows(service.options.db_path, "SELECT body FROM events WHERE id = ?", (answer["id"],)) == [
            {"body": body}
        ]  # committed before the answer
    # A burst while every worker is stuck on the target.
    started = time.perf_counter()
    burst = await asyncio.gather(*(deliver(service, body + b" ") for body in bodies))
    assert all(status == 200 for status, _, _ in burst) and time.perf_counter() - started < 2.0
    assert len(events(service)) == 12

    rows = await forward_rows(service, 24, timeout=30)
    assert all(row["status"] is None and row["error"] == "timed out after 0.3 s" for row in rows), rows
    assert {row["event_id"] for row in rows} == {row["id"] for row in events(service)}
    assert all(250 <= row["latency_ms"] < 5000 for row in rows)
    page = await status_page(service)
    assert page["forward"]["down"] is True and "timed out" in page["forward"]["last_error"]


# --- replay -----------------------------------------------------------------------------------------


async def _recorded(service: Service, target: Target, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """Deliver ``body``, wait for its forward, return its events row."""
    status, answer, _ = await deliver(service, body, headers)
    assert status == 200
    await forward_rows(service, 1)
    [row] = read_rows(service.options.db_path, "SELECT * FROM events WHERE id = ?", (answer["id"],))
    return row


def _edited(body: bytes) -> bytes:
    obj = orjson.loads(body)
    obj["payload"]["user"]["userId"] = "edited-user"
    return orjson.dumps(obj)


async def test_edited_replay_is_resigned_and_recorded(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url, secret=SECRET)
    original = sign(VIEW, SECRET)
    row = await _recorded(service, target, VIEW, {"Content-Type": "application/json", SIGNATURE_HEADER: original})
    stored = orjson.loads(row["headers"])
    edited = _edited(VIEW)

    outcome = await forwarder(service).replay(row["id"], service.session_id, edited, stored, edited=True)
    assert outcome.status == 200 and outcome.error is None
    got = target.received[-1]
    assert got.body == edited
    assert got.headers.getall(SIGNATURE_HEADER) == [sign(edited, SECRET)] != [original]
    assert check_signature(got.headers[SIGNATURE_HEADER], SECRET, got.body) == VALID
    assert got.headers["Content-Type"] == "application/json"

    rows = await forward_rows(service, 2)
    replay = rows[-1]
    assert (replay["kind"], replay["attempt"], replay["event_id"]) == ("replay", 1, row["id"])
    assert replay["request_body"] == edited and replay["status"] == 200
    assert orjson.loads(replay["request_headers"])[SIGNATURE_HEADER] == sign(edited, SECRET)
    assert replay["response_body"] == target.response_body


async def test_unedited_replay_keeps_the_original_signature(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url, secret=SECRET)
    original = sign(VIEW, SECRET)
    row = await _recorded(service, target, VIEW, {"Content-Type": "application/json", SIGNATURE_HEADER: original})

    outcome = await forwarder(service).replay(row["id"], service.session_id, row["body"], orjson.loads(row["headers"]))
    assert outcome.status == 200
    got = target.received[-1]
    assert got.body == VIEW
    assert got.headers.getall(SIGNATURE_HEADER) == [original]
    replay = (await forward_rows(service, 2))[-1]
    assert replay["kind"] == "replay" and replay["request_body"] is None and replay["event_id"] == row["id"]


async def test_replay_to_another_url_and_without_a_secret(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url)
    stale = "ab" * 32
    row = await _recorded(service, target, VIEW, {"Content-Type": "application/json", SIGNATURE_HEADER: stale})
    stored = orjson.loads(row["headers"])
    elsewhere = target.url + "?replay=1"

    await forwarder(service).replay(row["id"], service.session_id, row["body"], stored, target=elsewhere)
    assert target.received[-1].path == "/app/hook?replay=1"
    assert target.received[-1].headers[SIGNATURE_HEADER] == stale  # unedited: sent as received

    edited = _edited(VIEW)
    await forwarder(service).replay(row["id"], service.session_id, edited, stored, edited=True)
    assert target.received[-1].body == edited
    assert SIGNATURE_HEADER not in target.received[-1].headers  # no secret: a stale signature is not sent
    rows = await forward_rows(service, 3)
    assert [r["target"] for r in rows] == [target.url, elsewhere, target.url]


async def test_replay_restores_redacted_credentials_from_the_configuration(
    target: Target, services: StartService
) -> None:
    service = await services(forward_to=target.url, basic_auth=CREDS)
    authorization = basic_auth_header(*CREDS)
    row = await _recorded(service, target, COMPACT, {"Authorization": authorization})
    stored = orjson.loads(row["headers"])
    assert stored["Authorization"] == f"Basic {REDACTED}"

    await forwarder(service).replay(row["id"], service.session_id, row["body"], stored)
    got = target.received[-1]
    assert got.headers.getall("Authorization") == [authorization]
    assert all(REDACTED not in value for value in got.headers.values())


async def test_replay_to_a_dead_target_is_recorded(target: Target, services: StartService) -> None:
    service = await services(forward_to=target.url)
    row = await _recorded(service, target, COMPACT, {})
    dead = f"http://127.0.0.1:{closed_port()}/"
    outcome = await forwarder(service).replay(row["id"], service.session_id, row["body"], {}, target=dead)
    assert outcome.status is None and outcome.error and outcome.error.startswith("cannot connect")
    replay = (await forward_rows(service, 2))[-1]
    assert (replay["kind"], replay["status"], replay["target"]) == ("replay", None, dead)
    assert replay["error"] == outcome.error


async def test_replay_from_another_thread_via_run_on_loop(target: Target, tmp_path: Path) -> None:
    """The TUI's path: the listener runs on its own loop; the UI hands it the replay."""
    service = Service(Options(db_path=tmp_path / "threaded.db", port=0, forward_to=target.url, secret=SECRET))
    await asyncio.to_thread(service.start_in_thread)
    try:
        row = await _recorded(service, target, VIEW, {SIGNATURE_HEADER: sign(VIEW, SECRET)})
        edited = _edited(VIEW)
        fwd = forwarder(service)
        future = service.run_on_loop(fwd.replay(row["id"], service.session_id, edited, {}, edited=True))
        outcome = await asyncio.wrap_future(future)
        assert outcome.status == 200
        assert target.received[-1].body == edited
        assert check_signature(target.received[-1].headers.get(SIGNATURE_HEADER), SECRET, edited) == VALID
        assert (await forward_rows(service, 2))[-1]["kind"] == "replay"
    finally:
        await asyncio.to_thread(service.stop_thread)
