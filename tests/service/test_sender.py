"""The sender against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.resources import sample_events_dir
from monitor.sender import (
    Delivery,
    Result,
    apply_overrides,
    load_bodies,
    prepare,
    send_all,
    summarize,
)
from monitor.signing import SIGNATURE_HEADER, VALID, check_basic_auth, check_signature

SECRET = "whsec_test"

ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class Receiver:
    """What the fake endpoint saw, and how it answers."""

    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.bodies.append(await request.read())
            self.headers.append(dict(request.headers))
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.json_response({"ok": True}, status=self.status)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def endpoint(aiohttp_server: Any) -> tuple[str, Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/webhook", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    return str(server.make_url("/webhook")), receiver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample(name: str = "payment_gateway.view.json") -> bytes:
    return (sample_events_dir() / name).read_bytes()


async def test_exact_bytes_and_headers_arrive(endpoint: tuple[str, Receiver]) -> None:
    url, receiver = endpoint
    body = sample()
    headers = prepare(body, secret=SECRET, basic_auth=("key", "s3cret"), extra_headers={"X-Trace": "42"})
    [result] = await send_all(url, [Delivery(body, headers, "view")])
    assert result.status == 200 and result.ok and result.error is None
    assert result.label == "view" and orjson.loads(result.response) == {"ok": True}
    assert receiver.bodies == [body]
    seen = receiver.headers[0]
    assert seen["Content-Type"] == "application/json"
    assert seen["User-Agent"].startswith("axios/")
    assert seen["X-Trace"] == "42"
    assert check_signature(seen[SIGNATURE_HEADER], SECRET, receiver.bodies[0]) == VALID
    assert check_basic_auth(seen["Authorization"], ("key", "s3cret")) == VALID


def test_prepare_adds_credentials_only_when_asked() -> None:
    headers = prepare(b"{}")
    assert SIGNATURE_HEADER not in headers and "Authorization" not in headers
    assert headers["Content-Type"] == "application/json"


async def test_results_keep_input_order_and_respect_concurrency(endpoint: tuple[str, Receiver]) -> None:
    url, receiver = endpoint
    receiver.delay = 0.05
    seen: list[Result] = []
    deliveries = [Delivery(f'{{"n": {n}}}'.encode(), prepare(b""), str(n)) for n in range(9)]
    results = await send_all(url, deliveries, concurrency=3, on_result=seen.append)
    assert [r.label for r in results] == [str(n) for n in range(9)]
    assert len(seen) == 9
    assert 1 < receiver.most_in_flight <= 3


async def test_rate_limit_spaces_requests(endpoint: tuple[str, Receiver]) -> None:
    url, _ = endpoint
    started = time.monotonic()
    await send_all(url, [Delivery(b"{}") for _ in range(5)], concurrency=5, rate=20)
    # Five starts at 20/s need four gaps of 50 ms.
    assert time.monotonic() - started >= 0.19


async def test_error_statuses_are_results(endpoint: tuple[str, Receiver]) -> None:
    url, receiver = endpoint
    receiver.status = 500
    [result] = await send_all(url, [Delivery(b"{}")])
    assert result.status == 500 and not result.ok and result.error is None


async def test_refused_connection_is_an_error_result() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"
    results = await send_all(url, [Delivery(b"{}", label="a"), Delivery(b"{}", label="b")])
    assert [r.label for r in results] == ["a", "b"]
    assert all(r.status is None and r.error for r in results)
    assert summarize(results).by_status == {"error": 2}


async def test_timeout_is_an_error_result(endpoint: tuple[str, Receiver]) -> None:
    url, receiver = endpoint
    receiver.delay = 1.0
    [result] = await send_all(url, [Delivery(b"{}")], timeout=0.1)
    assert result.status is None
    assert result.error is not None and "timed out" in result.error


def test_summary_counts_and_percentiles() -> None:
    results = [Result(str(n), 200, n / 100) for n in range(1, 101)]
    results += [Result("bad", 500, 0.5), Result("gone", None, 9.0, "refused")]
    summary = summarize(results)
    assert summary.total == 102
    assert summary.by_status == {"200": 100, "500": 1, "error": 1}
    assert summary.ok == 100
    assert summary.p50 == pytest.approx(0.5)
    assert summary.p90 == pytest.approx(0.9)
    assert summary.p99 == pytest.approx(0.99)
    assert summary.max == pytest.approx(1.0)  # errors do not count as latency
    assert summary.failures == {"refused": 1}
    assert summary.describe().startswith("102 deliveries in ")
    assert "100 delivered, 1 answered 500, 1 failed: refused; latency p50 500.0ms" in summary.describe()


def test_summary_of_nothing() -> None:
    summary = summarize([])
    assert summary.total == 0 and summary.p50 is None and summary.max is None


def test_load_bodies_reads_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_bytes(b'{"b": 1}')
    (tmp_path / "a.json").write_bytes(b'{"a": 1}\n')
    (tmp_path / "notes.txt").write_bytes(b"ignored")
    single = tmp_path / "single.txt"
    single.write_bytes(b"not json")
    assert load_bodies([tmp_path, single]) == [
        ("a.json", b'{"a": 1}\n'),
        ("b.json", b'{"b": 1}'),
        ("single.txt", b"not json"),
    ]


def test_load_bodies_defaults_to_the_samples() -> None:
    bodies = dict(load_bodies([]))
    assert bodies["payment_gateway.view.json"] == sample()


def test_overrides_untouched_without_changes() -> None:
    body = sample()
    assert apply_overrides(body, [], now=False) is body


def test_overrides_set_dotted_paths() -> None:
    body = sample()
    changed = apply_overrides(
        body,
        ["payload.user.name=Asha Rao", "payload.action.numCta=3", "client_info.new.deep=true", "contains.0=ACTION"],
        now=False,
    )
    obj = orjson.loads(changed)
    assert obj["payload"]["user"]["name"] == "Asha Rao"
    assert obj["payload"]["action"]["numCta"] == 3
    assert obj["client_info"]["new"] == {"deep": True}
    assert obj["contains"][0] == "ACTION"
    assert obj["created_at"] == 1709186668
    assert changed.startswith(b'{\n  "entity"')  # indented input stays indented


def test_overrides_now_rewrites_created_at() -> None:
    before = int(time.time())
    obj = orjson.loads(apply_overrides(b'{"event":"x","created_at":1}', [], now=True))
    assert before <= obj["created_at"] <= int(time.time())


@pytest.mark.parametrize("sets", [["no-equals-sign"], ["=1"], ["event.inner=1"]])
def test_bad_overrides_raise_value_error(sets: list[str]) -> None:
    with pytest.raises(ValueError):
        apply_overrides(b'{"event": "x"}', sets, now=False)


def test_overrides_need_a_json_object() -> None:
    with pytest.raises(ValueError):
        apply_overrides(b"[1, 2]", ["a=1"], now=False)
    with pytest.raises(ValueError):
        apply_overrides(b"not json", [], now=True)


async def test_overridden_body_is_signed_as_sent(endpoint: tuple[str, Receiver]) -> None:
    url, receiver = endpoint
    body = apply_overrides(sample(), ["payload.user.name=Asha"], now=True)
    await send_all(url, [Delivery(body, prepare(body, secret=SECRET))])
    assert receiver.bodies == [body]
    assert check_signature(receiver.headers[0][SIGNATURE_HEADER], SECRET, body) == VALID
