"""``--forward-to`` under pressure: a hung target, a byte budget, credentials in the target URL.

Issue 10, items 5a and 13. The memory test runs the real ``watch --headless``
process against a target that accepts and does not answer (a breakpoint in
the developer's own handler), reads its peak RSS from /proc, then lets the
target answer and checks every delivery arrives, byte for byte. The other
tests drive a :class:`~monitor.forwarder.Forwarder` on the test's loop
against an aiohttp target on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import logging
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from monitor import forwarder as forwarder_module
from monitor.forwarder import Forwarder, summary
from monitor.service import Service
from monitor.signing import REDACTED, basic_auth_header, redact_headers
from monitor.writer import Writer
from tests.helpers import SAMPLE_EVENTS, event_row, read_rows, wait_until

VIEW = (SAMPLE_EVENTS / "payment_gateway.view.json").read_bytes()
MiB = 1024 * 1024


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a process, in MB (``VmHWM`` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` (from a synchronous test) until truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# --- a target that accepts and does not answer until released ---------------------------------------


class HungTarget:
    """An HTTP server (threads) that reads each request, then waits for :attr:`release` before its 200."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received: list[tuple[str | None, int, str]] = []  # (X-Seq, body length, sha256)
        self._lock = threading.Lock()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the forwarder's session expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with target._lock:
                    target.received.append((self.headers.get("X-Seq"), len(body), hashlib.sha256(body).hexdigest()))
                del body  # only its digest is kept: the test process's memory is not under test
                target.release.wait(120)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hung_target() -> Iterator[HungTarget]:
    target = HungTarget()
    yield target
    target.close()


def big_delivery(seq: int, size: int = MiB) -> bytes:
    """A valid view event padded to ``size`` bytes, different for every ``seq``."""
    obj = orjson.loads(VIEW)
    obj["seq"] = seq
    obj["padding"] = ""
    filler = size - len(orjson.dumps(obj))
    obj["padding"] = (f"{seq:08d}" * (filler // 8 + 1))[:filler]
    return orjson.dumps(obj)


def status_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        result: dict[str, Any] = orjson.loads(resp.read())
        return result


def post(url: str, body: bytes, seq: int) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", "X-Seq": str(seq)}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = orjson.loads(resp.read())
        assert resp.status == 200 and answer["ok"] is True, answer
        return int(answer["id"])


# --- 5a: the forward queue is bounded in bytes --------------------------------------------------------

DELIVERIES = 600
RSS_LIMIT_MB = 300


@pytest.mark.slow
def test_hung_target_keeps_memory_bounded_then_gets_everything(
    monitors: Any,
    hung_target: HungTarget,
    tmp_path: Path,
) -> None:
    """600 deliveries of ~1 MB queued behind a hung target: RSS stays under 300 MB; all arrive once it answers."""
    db = tmp_path / "hung.db"
    monitor = monitors(
        "watch", "--headless", "--port", "0", "--db", str(db), "--max-body", "1100000",
        "--forward-to", hung_target.url, "--forward-timeout", "120",
    )  # fmt: skip
    url = monitor.url()
    pid = monitor.proc.pid
    digests: dict[str, str] = {}
    started = vm_hwm_mb(pid)
    for seq in range(DELIVERIES):
        body = big_delivery(seq)
        digests[str(seq)] = hashlib.sha256(body).hexdigest()
        post(url + "webhook", body, seq)
    queued = wait_for(
        lambda: (page := status_json(url)["forward"])["queued"] >= DELIVERIES - 4 and page,
        "every delivery queued behind the hung target",
    )
    peak_hung = vm_hwm_mb(pid)
    assert peak_hung < RSS_LIMIT_MB, f"VmHWM {peak_hung:.0f} MB (started at {started:.0f} MB)"
    assert queued["pending"] == DELIVERIES and queued["down"] is False
    assert queued["bytes_held"] <= 32 * MiB + 4 * 1_100_000, queued

    hung_target.release.set()
    wait_for(lambda: status_json(url)["forward"]["pending"] == 0, "every forward to finish", timeout=120)
    sql = "SELECT event_id, attempt, status, error FROM forwards ORDER BY id"
    # The last rows reach the database through the writer a moment after the jobs finish.
    rows = wait_for(lambda: len(found := read_rows(db, sql)) >= DELIVERIES and found, "every forward recorded")
    assert len(rows) == DELIVERIES and {(r["attempt"], r["status"], r["error"]) for r in rows} == {(1, 200, None)}
    assert len({r["event_id"] for r in rows}) == DELIVERIES
    got = {seq: (size, digest) for seq, size, digest in hung_target.received}
    assert len(hung_target.received) == DELIVERIES
    assert got == {seq: (MiB, digest) for seq, digest in digests.items()}  # every body, byte for byte
    peak = vm_hwm_mb(pid)
    assert peak < RSS_LIMIT_MB, f"VmHWM {peak:.0f} MB after forwarding (started at {started:.0f} MB)"
    print(f"\nVmHWM: start {started:.0f} MB, hung {peak_hung:.0f} MB, after forwarding {peak:.0f} MB")


# --- the developer's application, on the test's loop ---------------------------------------------------


@dataclass
class Got:
    seq: str | None
    body: bytes
    headers: CIMultiDictProxy[str]


@dataclass
class App:
    """Records each request and hangs while :attr:`gate` is closed.

    The first ``fail_first`` tries of each delivery (by ``X-Seq``) are answered 503, later ones 200.
    """

    url: str = ""
    received: list[Got] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail_first: int = 0
    _tries: Counter[str | None] = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.Response:
        got = Got(request.headers.get("X-Seq"), await request.read(), request.headers)
        self.received.append(got)
        await self.gate.wait()
        self._tries[got.seq] += 1
        return web.Response(status=503 if self._tries[got.seq] <= self.fail_first else 200, text="ok")

    def seqs(self) -> list[str | None]:
        return [got.seq for got in self.received]


@pytest.fixture
async def app(aiohttp_server: Any) -> AsyncIterator[App]:
    target = App()
    target.gate.set()
    server_app = web.Application()
    server_app.router.add_route("*", "/{tail:.*}", target.handle)
    server = await aiohttp_server(server_app, host="127.0.0.1", port=0)
    target.url = str(server.make_url("/hook"))
    yield target
    target.gate.set()  # hanging handlers end, so the server stops at once


StartForwarder = Callable[..., Awaitable[Forwarder]]


@pytest.fixture
async def forwarders(
    make_writer: Callable[..., Writer], store_db: Any, session_id: int
) -> AsyncIterator[tuple[Writer, StartForwarder]]:
    """A writer on the test database and ``await start(target, **options)`` for started Forwarders."""
    writer = make_writer()
    started: list[Forwarder] = []

    async def start(target: str, **options: Any) -> Forwarder:
        options.setdefault("backoff", (0.05,))
        fwd = Forwarder(target, writer, **options)
        await fwd.start()
        started.append(fwd)
        return fwd

    yield writer, start
    for fwd in started:
        await fwd.stop()


SMALL = 10_000


async def deliver(writer: Writer, fwd: Forwarder, seq: int, *extra: tuple[str, str], size: int = SMALL) -> int:
    """Store a delivery the way the listener does (headers redacted), then hand it to the forwarder."""
    body = big_delivery(seq, size)
    sent = [("Content-Type", "application/json"), ("X-Seq", str(seq)), *extra]
    row = event_row(body, headers=orjson.dumps(redact_headers(sent)).decode())
    event_id = await writer.submit("events", row)
    fwd.enqueue(event_id, 1, body, sent)
    return event_id


async def forward_rows(db: Path, count: int) -> list[dict[str, Any]]:
    sql = "SELECT event_id, kind, attempt, status, error, target, request_headers FROM forwards ORDER BY id"
    await wait_until(lambda: len(read_rows(db, sql)) >= count, what=f"{count} forwards rows")
    return read_rows(db, sql)


# --- 5a: the budget, in order, with retries ---------------------------------------------------------


async def test_bodies_past_the_budget_are_read_back_in_order(
    app: App, forwarders: tuple[Writer, StartForwarder], db_path: Path
) -> None:
    """Three bodies fit the budget; the other seven wait as ids and are read back, in order, with their own headers."""
    writer, start = forwarders
    app.gate.clear()
    fwd = await start(app.url, concurrency=1, body_budget=3 * SMALL)
    ids = [await deliver(writer, fwd, seq, ("Authorization", f"Bearer token-{seq}")) for seq in range(10)]
    await wait_until(lambda: len(app.received) == 1, what="the first forward to hang")
    page = summary(fwd.stats)
    assert (page["pending"], page["queued"], page["read_back"]) == (10, 9, 7), page
    assert page["bytes_held"] == 3 * SMALL  # the one being sent and the next two

    app.gate.set()
    rows = await forward_rows(db_path, 10)
    assert app.seqs() == [str(seq) for seq in range(10)]  # the order they were accepted in
    assert [got.body for got in app.received] == [big_delivery(seq, SMALL) for seq in range(10)]
    # The delivery's own headers, not the redacted copy the database keeps.
    assert [got.headers["Authorization"] for got in app.received] == [f"Bearer token-{seq}" for seq in range(10)]
    assert [(r["event_id"], r["attempt"], r["status"]) for r in rows] == [(i, 1, 200) for i in ids]
    page = summary(fwd.stats)
    assert (page["pending"], page["queued"], page["read_back"], page["bytes_held"]) == (0, 0, 0, 0), page


async def test_retries_count_against_the_budget(
    app: App, forwarders: tuple[Writer, StartForwarder], db_path: Path
) -> None:
    """Every first try gets 503: the retries wait within the same budget, and each is read back when needed."""
    writer, start = forwarders
    app.fail_first = 1
    fwd = await start(app.url, concurrency=2, body_budget=2 * SMALL)
    held: list[int] = []
    ids = [await deliver(writer, fwd, seq) for seq in range(8)]
    deadline = time.monotonic() + 20  # a hang guard, not a timing
    while fwd.stats.pending and time.monotonic() < deadline:
        held.append(fwd.stats.bytes_held)
        await asyncio.sleep(0.001)
    assert fwd.stats.pending == 0
    rows = await forward_rows(db_path, 16)
    assert max(held) <= 2 * SMALL + 2 * SMALL  # the budget, plus one body per worker being sent
    assert sorted((r["event_id"], r["attempt"], r["status"]) for r in rows) == sorted(
        [(i, 1, 503) for i in ids] + [(i, 2, 200) for i in ids]
    )
    assert Counter(got.body for got in app.received) == {big_delivery(seq, SMALL): 2 for seq in range(8)}
    assert fwd.stats.bytes_held == 0 and fwd.stats.read_back == 0


async def test_retries_waiting_count_against_the_queue_limit(
    app: App, forwarders: tuple[Writer, StartForwarder], db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three deliveries waiting to retry fill a queue of three: the fourth is recorded as not forwarded."""
    monkeypatch.setattr(forwarder_module, "QUEUE_LIMIT", 3)
    writer, start = forwarders
    app.fail_first = 99
    fwd = await start(app.url, concurrency=1, backoff=(30.0,))
    ids = [await deliver(writer, fwd, seq) for seq in range(3)]
    await forward_rows(db_path, 3)
    assert fwd.stats.queued == 3 and len(app.received) == 3  # all three waiting for their back-off
    fourth = await deliver(writer, fwd, 3)
    rows = await forward_rows(db_path, 4)
    assert (rows[-1]["event_id"], rows[-1]["status"]) == (fourth, None)
    assert rows[-1]["error"] == "not forwarded: the forward queue is full"
    assert fwd.stats.dropped == 1 and summary(fwd.stats)["dropped"] == 1 and len(app.received) == 3

    await fwd.stop()  # the three retries are given up: said, not silent
    rows = await forward_rows(db_path, 7)
    assert [(r["event_id"], r["attempt"], r["error"]) for r in rows[4:]] == [
        (i, 2, "not forwarded: the monitor stopped first") for i in ids
    ]


async def test_stop_records_every_unfinished_forward(
    app: App, forwarders: tuple[Writer, StartForwarder], db_path: Path
) -> None:
    """One forward hangs, two wait (one of them only as an id): stopping records all three, once each."""
    writer, start = forwarders
    app.gate.clear()
    fwd = await start(app.url, concurrency=1, body_budget=2 * SMALL)
    ids = [await deliver(writer, fwd, seq) for seq in range(3)]
    await wait_until(lambda: len(app.received) == 1, what="the first forward to hang")
    await fwd.stop()
    rows = await forward_rows(db_path, 3)
    assert [(r["event_id"], r["attempt"], r["status"], r["error"]) for r in rows] == [
        (i, 1, None, "not forwarded: the monitor stopped first") for i in ids
    ]
    assert summary(fwd.stats)["pending"] == 0


async def test_delivery_gone_from_the_database_is_recorded_not_retried(
    app: App, forwarders: tuple[Writer, StartForwarder], db_path: Path
) -> None:
    writer, start = forwarders
    fwd = await start(app.url, body_budget=0)  # every body is read back
    fwd.enqueue(4242, 1, b'{"event":"never stored"}', [("X-Seq", "gone")])
    [row] = await forward_rows(db_path, 1)
    assert (row["event_id"], row["attempt"], row["status"]) == (4242, 1, None)
    assert row["error"] == "not forwarded: delivery #4242 is no longer in the database"
    await wait_until(lambda: fwd.stats.pending == 0, what="the job to be finished")
    event_id = await deliver(writer, fwd, 1)  # and a stored one is read back and sent
    rows = await forward_rows(db_path, 2)
    assert (rows[-1]["event_id"], rows[-1]["status"]) == (event_id, 200) and app.seqs() == ["1"]


# --- 13: credentials in the target URL, and requests that cannot be made ------------------------------

URL_CREDS = ("app-user", "app:pass")  # a colon in the password: percent-encoded in the URL


def with_credentials(url: str, login: str = URL_CREDS[0], password: str = "app%3Apass") -> str:
    return url.replace("http://", f"http://{login}:{password}@", 1)


async def post_to(service: Service, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, session.post(service.url, data=body, headers=headers) as resp:
        answer = await resp.json()
        assert resp.status == 200, answer
        return int(answer["id"])


async def test_url_credentials_replace_the_deliverys_authorization(
    app: App, services: Callable[..., Awaitable[Service]], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: aiohttp's ValueError for every delivery carrying Authorization, retried five times for nothing."""
    caplog.set_level(logging.WARNING, logger="monitor.forwarder")
    service = await services(forward_to=with_credentials(app.url))
    for seq in range(2):
        await post_to(service, big_delivery(seq, 2000), {"Authorization": f"Bearer conscent-{seq}", "X-Seq": str(seq)})
    rows = await forward_rows(service.options.db_path, 2)
    await wait_until(lambda: service.forwarder is not None and service.forwarder.stats.pending == 0)
    ours = basic_auth_header(*URL_CREDS)
    assert [got.headers.getall("Authorization") for got in app.received] == [[ours], [ours]]
    assert [(r["attempt"], r["status"], r["error"]) for r in rows] == [(1, 200, None)] * 2
    assert {r["target"] for r in rows} == {with_credentials(app.url, password=REDACTED)}
    assert all(orjson.loads(r["request_headers"])["Authorization"] == f"Basic {REDACTED}" for r in rows)
    assert "app:pass" not in str(rows) and ours not in str(rows)
    # Said once, in the log and in the status.
    said = [r for r in caplog.records if "replace each delivery's own Authorization" in r.getMessage()]
    assert len(said) == 1 and "app:pass" not in said[0].getMessage()
    async with aiohttp.ClientSession() as session, session.get(service.url) as resp:
        page = (await resp.json())["forward"]
    assert page["note"] == "credentials in the target URL replace each delivery's own Authorization header"


async def test_replay_follows_the_same_credentials_rule(app: App, services: Callable[..., Awaitable[Service]]) -> None:
    """Replays (the TUI's key): the target URL's credentials win over the stored or configured ones."""
    listener_creds = ("conscent-key", "conscent-secret")
    service = await services(forward_to=with_credentials(app.url), basic_auth=listener_creds)
    event_id = await post_to(service, big_delivery(0, 2000), {"Authorization": basic_auth_header(*listener_creds)})
    await forward_rows(service.options.db_path, 1)
    [row] = read_rows(service.options.db_path, "SELECT body, headers FROM events WHERE id = ?", (event_id,))
    stored = orjson.loads(row["headers"])
    fwd = service.forwarder  # the service's own, as the TUI's replay key uses it
    assert fwd is not None

    outcome = await fwd.replay(event_id, service.session_id, row["body"], stored)
    other = with_credentials(app.url + "?replay=1", "someone", "else")
    edited = await fwd.replay(event_id, service.session_id, b'{"edited":true}', stored, target=other, edited=True)
    plain = await fwd.replay(event_id, service.session_id, row["body"], stored, target=app.url)
    assert (outcome.status, edited.status, plain.status) == (200, 200, 200)
    assert [got.headers.getall("Authorization") for got in app.received[1:]] == [
        [basic_auth_header(*URL_CREDS)],
        [basic_auth_header("someone", "else")],
        [basic_auth_header(*listener_creds)],  # no credentials in that URL: the configured ones, as before
    ]


async def test_request_that_cannot_be_made_is_recorded_once(
    forwarders: tuple[Writer, StartForwarder], db_path: Path
) -> None:
    """A URL aiohttp refuses (port out of range): one failure, not five attempts; the target is not called down."""
    writer, start = forwarders
    fwd = await start("http://127.0.0.1:99999/hook", attempts=5)
    event_id = await deliver(writer, fwd, 0)
    [row] = await forward_rows(db_path, 1)
    await wait_until(lambda: fwd.stats.pending == 0, what="the job to be finished")
    assert (row["event_id"], row["attempt"], row["status"]) == (event_id, 1, None)
    assert row["error"].startswith("not sent, not retried: "), row["error"]
    assert fwd.stats.failed == 1 and not fwd.stats.down
    outcome = await fwd.replay(event_id, 1, b"{}", {}, target="htp://typo.example/hook")
    assert outcome.permanent and not outcome.retry and outcome.error is not None
    rows = await forward_rows(db_path, 2)
    assert len(rows) == 2 and rows[-1]["kind"] == "replay" and rows[-1]["error"] == outcome.error
