"""``conscent-monitor send`` through click's CliRunner, against a real aiohttp server in a thread.

The last test is issue 5's "done when": a headless monitor forwarding to the
application, fed by ``send --secret``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.signing import SIGNATURE_HEADER, VALID, basic_auth_header, check_basic_auth, check_signature
from tests.helpers import SAMPLE_EVENTS, Monitor, read_rows

SECRET = "whsec_send"
SUMMARY_RE = re.compile(
    r"^(?P<total>[\d,]+) deliver(y|ies) in (?P<elapsed>[\d.,]+) s \((?P<rate>[\d.,]+)/s\): (?P<outcome>[^;]*)"
    r"; latency p50 [\d.]+ms p90 [\d.]+ms p99 [\d.]+ms max [\d.]+ms$"
)


def sample_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(SAMPLE_EVENTS.glob("*.json"))}


@dataclass
class Arrival:
    body: bytes
    headers: dict[str, str]


@dataclass
class ThreadedTarget:
    """An aiohttp app on a loop of its own, in a daemon thread (the CLI runs ``asyncio.run``)."""

    status_for: Callable[[bytes], int] = lambda _body: 200
    delay: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.arrivals.append(Arrival(body, dict(request.headers)))
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.json_response({"app": "ok"}, status=self.status_for(body))
        finally:
            self.in_flight -= 1

    def start(self) -> None:
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self.handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/app/hook"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="test-target", daemon=True)
        self._thread.start()
        assert ready.wait(15), "the target server did not start"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    def bodies(self) -> list[bytes]:
        return [arrival.body for arrival in self.arrivals]


@pytest.fixture
def target() -> Iterator[ThreadedTarget]:
    server = ThreadedTarget()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSCENT_WEBHOOK_SECRET", raising=False)


def send(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["send", *args], env=env)


def summary_of(result: Result) -> re.Match[str]:
    last = result.stdout.strip().splitlines()[-1]
    match = SUMMARY_RE.match(last)
    assert match, result.output
    return match


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- the tests --------------------------------------------------------------------------------------


def test_default_input_is_every_sample_byte_for_byte(target: ThreadedTarget) -> None:
    result = send("--to", target.url)
    assert result.exit_code == 0, result.output
    no_traceback(result)
    files = sample_files()
    assert len(files) >= 2
    assert sorted(target.bodies()) == sorted(files.values())  # unmodified files are sent as they are
    for arrival in target.arrivals:
        assert arrival.headers["Content-Type"] == "application/json"
        assert arrival.headers["User-Agent"] == "axios/0.21.1"
        assert SIGNATURE_HEADER not in arrival.headers and "Authorization" not in arrival.headers
    match = summary_of(result)
    assert match["total"] == str(len(files)) and match["outcome"] == f"{len(files)} delivered"
    for name in files:  # the per-delivery table
        assert name in result.stdout


def test_secret_signs_every_body(target: ThreadedTarget) -> None:
    result = send("--to", target.url, "--secret", SECRET)
    assert result.exit_code == 0, result.output
    assert len(target.arrivals) == len(sample_files())
    for arrival in target.arrivals:
        assert check_signature(arrival.headers.get(SIGNATURE_HEADER), SECRET, arrival.body) == VALID


def test_secret_from_the_environment(target: ThreadedTarget) -> None:
    view = str(SAMPLE_EVENTS / "payment_gateway.view.json")
    result = send(view, "--to", target.url, env={"CONSCENT_WEBHOOK_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    [arrival] = target.arrivals
    assert check_signature(arrival.headers.get(SIGNATURE_HEADER), SECRET, arrival.body) == VALID


def test_basic_auth(target: ThreadedTarget) -> None:
    view = str(SAMPLE_EVENTS / "payment_gateway.view.json")
    result = send(view, "--to", target.url, "--basic-auth", "client-key:client-secret")
    assert result.exit_code == 0, result.output
    [arrival] = target.arrivals
    assert arrival.headers["Authorization"] == basic_auth_header("client-key", "client-secret")
    assert check_basic_auth(arrival.headers["Authorization"], ("client-key", "client-secret")) == VALID

    bad = send(view, "--to", target.url, "--basic-auth", "no-colon")
    assert bad.exit_code == 2 and "KEY:SECRET" in bad.output
    assert len(target.arrivals) == 1


def test_overrides_and_now_apply_and_are_signed(target: ThreadedTarget) -> None:
    view_path = SAMPLE_EVENTS / "payment_gateway.view.json"
    original = orjson.loads(view_path.read_bytes())
    before = time.time()
    result = send(
        str(view_path), "--to", target.url, "--secret", SECRET,
        "--set", "payload.user.userId=abc", "--set", "payload.extra.count=5", "--set", "user_id=\"65\"", "--now",
    )  # fmt: skip
    after = time.time()
    assert result.exit_code == 0, result.output
    [arrival] = target.arrivals
    received = orjson.loads(arrival.body)
    assert received["payload"]["user"]["userId"] == "abc"
    assert received["payload"]["extra"] == {"count": 5}  # JSON values are parsed, missing parents created
    assert received["user_id"] == "65"  # a quoted JSON string stays a string
    assert int(before) <= received["created_at"] <= after
    # Nothing else changed.
    received["payload"]["user"]["userId"] = original["payload"]["user"].get("userId")
    if "userId" not in original["payload"]["user"]:
        del received["payload"]["user"]["userId"]
    del received["payload"]["extra"]
    received["user_id"], received["created_at"] = original["user_id"], original["created_at"]
    assert received == original
    # The signature covers the bytes that were sent.
    assert check_signature(arrival.headers.get(SIGNATURE_HEADER), SECRET, arrival.body) == VALID


def test_bad_override_is_a_usage_error(target: ThreadedTarget) -> None:
    result = send("--to", target.url, "--set", "no-equals-sign")
    assert result.exit_code == 2
    assert "expected path=value" in result.output
    no_traceback(result)
    assert target.arrivals == []


def test_count_concurrency_and_rate(target: ThreadedTarget) -> None:
    target.delay = 0.02  # each answer takes longer than the 5 ms between starts: requests overlap
    files = sample_files()
    total = 3 * len(files)
    started = time.perf_counter()
    result = send("--to", target.url, "--count", str(total), "--concurrency", "4", "--rate", "200")
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert Counter(target.bodies()) == Counter({body: 3 for body in files.values()})
    assert 2 <= target.most_in_flight <= 4
    assert elapsed >= (total - 1) / 200 - 0.02  # starts are spaced 1/rate apart (the schedule catches up)
    match = summary_of(result)
    assert match["total"] == str(total) and match["outcome"] == f"{total} delivered"


def test_count_is_deliveries_going_round_the_files(target: ThreadedTarget) -> None:
    """Issue 12, item 15: ``--count 7`` sends 7 deliveries, not 7 passes over the samples."""
    files = sample_files()
    assert len(files) > 7
    result = send("--to", target.url, "--count", "7")
    assert result.exit_code == 0, result.output
    assert target.bodies() == list(files.values())[:7]
    assert summary_of(result)["total"] == "7"

    target.arrivals.clear()
    result = send("--to", target.url, "--count", str(len(files) + 2))
    assert result.exit_code == 0, result.output
    assert target.bodies() == [*files.values(), *list(files.values())[:2]]  # round again from the first file


def test_summary_says_elapsed_and_rate(target: ThreadedTarget) -> None:
    result = send("--to", target.url, "--count", "30")
    assert result.exit_code == 0, result.output
    match = summary_of(result)
    assert match["total"] == "30" and float(match["elapsed"].replace(",", "")) > 0
    assert float(match["rate"].replace(",", "")) > 0
    assert "warning" not in result.stderr  # no --rate, nothing to reach


def test_a_rate_the_concurrency_cannot_reach_is_warned_about(target: ThreadedTarget) -> None:
    """30 ms per answer, one in flight: at most ~33/s; 200/s asked gets one warning naming --concurrency."""
    target.delay = 0.03
    result = send("--to", target.url, "--count", "12", "--rate", "200")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    [warning] = warnings
    assert "of the 200/s asked" in warning and "--concurrency 1" in warning, warning
    assert re.search(r"--concurrency \d+ should reach it", warning), warning
    assert summary_of(result)["total"] == "12"


def test_a_rate_within_reach_is_not_warned_about(target: ThreadedTarget) -> None:
    result = send("--to", target.url, "--count", "6", "--rate", "20")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr, result.stderr


def test_non_2xx_answers_exit_1_with_counts(target: ThreadedTarget) -> None:
    target.status_for = lambda body: 500 if b"payment_gateway.close" in body else 200
    files = sample_files()
    failing = sum(b"payment_gateway.close" in body for body in files.values())
    assert failing >= 1
    result = send("--to", target.url)
    assert result.exit_code == 1
    no_traceback(result)
    match = summary_of(result)
    assert match["outcome"] == f"{len(files) - failing} delivered, {failing} answered 500"


def test_target_down_is_one_line_and_exit_1() -> None:
    """Issue 12, item 15: nothing listening gives one line, not a row per delivery; one request is tried."""
    url = f"http://127.0.0.1:{closed_port()}"
    result = send("--to", url, "--count", "15", "--timeout", "5")
    assert result.exit_code == 1
    no_traceback(result)
    assert result.stdout == ""
    assert result.stderr.strip() == f"Error: nothing answers at {url} (connection refused); is the monitor running?"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("127.0.0.1:8799", "it needs http:// or https:// in front (http://127.0.0.1:8799)"),
        ("not a url", "it contains spaces"),
        ("ftp://127.0.0.1/x", "only http:// and https:// URLs"),
        ("http://", "only http:// and https:// URLs"),
        ("http://127.0.0.1:99999/", "Port out of range"),
    ],
)
def test_a_url_that_is_not_one_is_a_usage_error(url: str, words: str) -> None:
    result = send("--to", url)
    assert result.exit_code == 2
    no_traceback(result)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith("Error: Invalid value for '--to': ") and words in errors[0], errors[0]


def test_send_to_a_forwarding_monitor(target: ThreadedTarget, tmp_path: Path) -> None:
    """Issue 5's scenario: the monitor forwards to the app; ``send --secret S`` feeds it."""
    db = tmp_path / "forwarding.db"
    monitor = Monitor(
        "watch", "--headless", "--port", "0", "--db", str(db), "--secret", SECRET, "--forward-to", target.url,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        url = monitor.url()
        result = send("--to", url, "--secret", SECRET)
        assert result.exit_code == 0, result.output
        files = sample_files()
        deadline = time.monotonic() + 20
        while len(rows := read_rows(db, "SELECT * FROM forwards")) < len(files):
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
    finally:
        monitor.stop()
    events = read_rows(db, "SELECT id, body, signature FROM events")
    assert sorted(row["body"] for row in events) == sorted(files.values())
    assert {row["signature"] for row in events} == {VALID}
    assert {row["status"] for row in rows} == {200} and {row["kind"] for row in rows} == {"forward"}
    assert {row["event_id"] for row in rows} == {row["id"] for row in events}
    assert {orjson.loads(row["response_body"])["app"] for row in rows} == {"ok"}
    assert sorted(target.bodies()) == sorted(files.values())
    for arrival in target.arrivals:
        assert check_signature(arrival.headers.get(SIGNATURE_HEADER), SECRET, arrival.body) == VALID
