"""Hostile input: property tests of the parser, then every kind of bad delivery over real HTTP.

The HTTP part runs the real listener in a process of its own (``Service``, as ``watch --headless``
builds it, with a 3 s body read timeout so the slow-sender case stays short), sends it random bytes,
a 100 MB body, gzip bombs, JSON nested 100,000 deep, huge numbers, NaN, duplicate keys, BOMs,
invalid UTF-8, huge and repeated headers, a sender that hangs up mid-body and slow senders, and
checks each answer, each ``rejected`` row, that the process is still up and that its memory did not
grow by more than a generous bound (RSS read from ``/proc``).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import math
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import COLUMNS, EventRecord, InvalidBody, extract, parse_body
from tests.helpers import REPO, http_post, read_rows, wait_until

MAX_BODY = 1024 * 1024
READ_TIMEOUT = 3.0
MiB = 1024 * 1024

# --- property tests: any JSON yields a record or a clear rejection ----------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.sampled_from(["", "0", "1e999", "NaN", "-1", "1709186668123", "2024-02-29T10:00:00", "2024-13-99"]),
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
#: Conscent's wrapper with any value in any known place, so the typed readers meet wrong types.
_KNOWN_KEYS = [
    "entity",
    "user_id",
    "created_at",
    "contains",
    "payload",
    "client_info",
    "createdAt",
    "userId",
    "_id",
    "clientId",
    "contentId",
    "amount",
    "currency",
    "status",
    "transactionId",
]
_USER_KEYS = ["userId", "phoneNumber", "username", "name", "email", "city", "country", "location"]
conscent_like = st.fixed_dictionaries(
    {"event": st.one_of(st.just("payment_gateway.view"), json_values)},
    optional={
        **{key: json_values for key in _KNOWN_KEYS if key != "payload"},
        "payload": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "user": st.one_of(
                        json_values, st.fixed_dictionaries({}, optional=dict.fromkeys(_USER_KEYS, json_values))
                    ),
                    "action": st.one_of(
                        json_values,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "pageUrl": st.one_of(
                                    st.text(), json_values, st.builds(lambda q: "https://x/?" + q, st.text())
                                ),
                                "contentId": json_values,
                                "clickAction": json_values,
                            },
                        ),
                    ),
                    "transaction": json_values,
                    "purchase": json_values,
                },
            ),
        ),
    },
)


def _check_record(record: EventRecord) -> None:
    row = record.columns()
    assert set(row) == set(COLUMNS)
    for name, value in row.items():
        assert value is None or isinstance(value, str | float), (name, value)
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)
        if isinstance(value, str):
            value.encode("utf-8")  # storable and printable


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_any_json_value_is_a_record_or_invalid_body(value: Any) -> None:
    text = json.dumps(value, allow_nan=True)  # NaN / Infinity / huge ints: what a careless sender emits
    try:
        record = parse_body(text.encode("utf-8", "surrogatepass"))
    except InvalidBody as exc:
        assert str(exc)
        assert not isinstance(value, dict) or "not JSON" in str(exc) or "UTF-8" in str(exc)
        return
    assert isinstance(value, dict)
    _check_record(record)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.one_of(conscent_like, st.dictionaries(st.text(max_size=10), json_values, max_size=8)))
def test_extract_never_raises_on_any_object(obj: dict[str, Any]) -> None:
    _check_record(extract(obj))
    try:
        record = parse_body(json.dumps(obj, allow_nan=False).encode("utf-8", "surrogatepass"))
    except (InvalidBody, ValueError):  # ValueError: json.dumps refuses NaN (allow_nan=False) itself
        return
    _check_record(record)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300)
    | st.builds(
        lambda a, b: a + b,
        st.sampled_from([b"\xef\xbb\xbf", b'{"event":', b'{"a":[', b"\xff\xfe{", b'{"a":1e400}', b"{}"]),
        st.binary(max_size=50),
    )
)
def test_any_bytes_are_a_record_or_invalid_body(data: bytes) -> None:
    try:
        record = parse_body(data)
    except InvalidBody as exc:
        assert str(exc)
        return
    _check_record(record)


# --- building hostile bodies ------------------------------------------------------------------------------


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine (not exposed by Python's zlib): the CRC of A+B from those of A and B."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def _crc_of_repeats(crc: int, length: int, times: int) -> int:
    """CRC-32 of ``times`` copies of a block whose CRC is ``crc`` and size ``length`` (by doubling)."""
    result, result_len = 0, 0
    while times:
        if times & 1:
            result = crc32_combine(result, crc, length) if result_len else crc
            result_len += length
        times >>= 1
        if times:
            crc = crc32_combine(crc, crc, length)
            length *= 2
    return result


def gzip_bomb(mib: int, *, wrapper: str = "gzip") -> bytes:
    """A valid gzip (or zlib) stream of ``mib`` MiB of zeros, built without compressing them all.

    After a full flush the compressor starts afresh, so one compressed MiB of zeros is the same
    bytes every time: compress it once and repeat it; the trailer's CRC is combined arithmetically.
    """
    zeros = bytes(MiB)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    assert again == block
    tail = comp.flush(zlib.Z_FINISH)
    if wrapper == "gzip":
        crc = _crc_of_repeats(zlib.crc32(zeros), MiB, mib)
        head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        return head + block * mib + tail + struct.pack("<II", crc, (mib * MiB) & 0xFFFFFFFF)
    adler = (((mib * MiB) % 65521) << 16) | 1  # Adler-32 of n zeros: a = 1, b = n mod 65521
    return b"\x78\xda" + block * mib + tail + struct.pack(">I", adler)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_the_bomb_builder_makes_valid_streams(n: int) -> None:
    assert gzip.decompress(gzip_bomb(n)) == bytes(n * MiB)
    assert zlib.decompress(gzip_bomb(n, wrapper="zlib")) == bytes(n * MiB)


# --- the server process -----------------------------------------------------------------------------------

_SERVER = """
import asyncio, signal, sys
from pathlib import Path
from monitor.service import Options, Service, tune_gc

async def main():
    service = Service(Options(db_path=Path(sys.argv[1]), port=0, read_timeout=float(sys.argv[2]),
                              max_body=int(sys.argv[3])))
    url = await service.start()
    tune_gc()  # as the headless and live entry points do
    print("listening on", url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()

asyncio.run(main())
"""


class Server:
    def __init__(self, db: Path, stderr: Path) -> None:
        self.db = db
        self.stderr_path = stderr
        self.rss_before = 0
        self._stderr = stderr.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(db), str(READ_TIMEOUT), str(MAX_BODY)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, (line, stderr.read_text())
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the server, in KiB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr.close()
        return code


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for every case (each posts to its own path); warmed up, its baseline memory taken."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc to measure the server's memory")
    folder = tmp_path_factory.mktemp("hostile")
    running = Server(folder / "hostile.db", folder / "server.stderr")
    try:
        # Warm up (imports, first connections, first commits), then take the baseline.
        for n in range(200):
            http_post(running.url + "case/warmup", b'{"event":"paywall.click","n":%d}' % n)
        running.rss_before, _ = running.memory_kib()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


def rejected_rows(db: Path, path: str) -> list[dict[str, Any]]:
    return read_rows(db, "SELECT * FROM rejected WHERE path = ? ORDER BY id", (path,))


def event_rows(db: Path, path: str) -> list[dict[str, Any]]:
    return read_rows(db, "SELECT * FROM events WHERE path = ? ORDER BY id", (path,))


async def post(
    http: aiohttp.ClientSession, server: Server, name: str, data: Any, headers: Any = None
) -> tuple[int, dict[str, Any] | bytes]:
    """POST to the case's own path: the answer, JSON decoded when it is JSON."""
    async with http.post(server.url + "case/" + name, data=data, headers=headers) as resp:
        raw = await resp.read()
        answer: dict[str, Any] | bytes = orjson.loads(raw) if resp.content_type == "application/json" else raw
        return resp.status, answer


async def expect(
    http: aiohttp.ClientSession,
    server: Server,
    name: str,
    data: Any,
    status: int,
    error: str,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``status`` with a JSON error containing ``error``, and one rejected row with that status."""
    got, answer = await post(http, server, name, data, headers)
    assert got == status, (name, got, answer)
    assert isinstance(answer, dict) and answer["ok"] is False and error in answer["error"], (name, answer)
    found = rejected_rows(server.db, "/case/" + name)
    assert [r["status"] for r in found] == [status], (name, found)
    return found[0]


async def accepted(http: aiohttp.ClientSession, server: Server, name: str, data: bytes) -> dict[str, Any]:
    got, answer = await post(http, server, name, data, {"Content-Type": "application/json"})
    assert got == 200 and isinstance(answer, dict), (name, got, answer)
    (row,) = event_rows(server.db, "/case/" + name)
    assert row["id"] == answer["id"] and row["body"] == data
    return row


async def _chunks(prefix: bytes, total: int, size: int = MiB) -> AsyncIterator[bytes]:
    """``total`` bytes streamed in ``size`` pieces; one piece is reused, so the client holds ~1 MiB."""
    yield prefix
    piece = b"x" * size
    sent = len(prefix)
    while sent < total:
        yield piece
        sent += size


# --- the cases, each its own test against the one server ----------------------------------------------------

_rng = random.Random(1729)
RANDOM_BODIES = [bytes(_rng.getrandbits(8) for _ in range(_rng.randint(1, 2000))) for _ in range(30)]


@pytest.mark.parametrize("n", range(len(RANDOM_BODIES)), ids=lambda n: f"random-{n}")
async def test_random_bytes_are_refused_and_recorded(server: Server, http: aiohttp.ClientSession, n: int) -> None:
    data = RANDOM_BODIES[n]
    status, answer = await post(http, server, f"random-{n}", data)
    assert status == 400, (data[:40], answer)
    assert [r["status"] for r in rejected_rows(server.db, f"/case/random-{n}")] == [400]


async def test_100mb_chunked_body_is_refused_past_the_limit(server: Server, http: aiohttp.ClientSession) -> None:
    # Streamed by the client (1 MiB held at a time).
    row = await expect(http, server, "100mb-chunked", _chunks(b'{"pad":"', 100 * MiB), 413, "over the")
    assert row["body_size"] == MAX_BODY + 1 and len(row["body"]) == 64 * 1024  # read one byte past, kept 64 KiB


async def test_100mb_content_length_is_refused_unread(server: Server, http: aiohttp.ClientSession) -> None:
    row = await expect(
        http,
        server,
        "100mb-length",
        _chunks(b'{"pad":"', 100 * MiB),
        413,
        "over the",
        headers={"Content-Length": str(100 * MiB + 8)},
    )
    assert row["body_size"] == 100 * MiB + 8 and row["body"] == b""  # not read at all


@functools.cache
def big_bomb() -> bytes:
    """10 GiB of zeros in 10 MB: refused by its size, never inflated."""
    bomb = gzip_bomb(10 * 1024)
    assert len(bomb) > MAX_BODY
    return bomb


async def _streamed_big_bomb() -> AsyncIterator[bytes]:
    bomb = big_bomb()
    for offset in range(0, len(bomb), 256 * 1024):
        yield bomb[offset : offset + 256 * 1024]


GZIP = {"Content-Encoding": "gzip"}


def refused(
    name: str, data: bytes | Callable[[], Any], status: int, error: str, headers: dict[str, str] | None = None
) -> Any:
    """A case answered ``status`` with ``error``; ``data`` is a function when the body is big to build."""
    return pytest.param(name, data, status, error, headers, id=name)


NUMBERS = {
    "1e400": b"1e400",
    "-1e400": b"-1e400",
    "10pow5000": b"1" + b"0" * 5000,
    "nan": b"NaN",
    "infinity": b"Infinity",
    "-infinity": b"-Infinity",
}
BAD_UTF8 = {"ff": b"\xff", "overlong": b"\xc0\xaf", "surrogate": b"\xed\xa0\x80", "truncated": b"\xe2\x82"}
REFUSED = [
    # Gzip bombs: 10 GiB of zeros in 10 MB (refused by its size, never inflated), the same streamed
    # without a length, and 512 MiB in 0.5 MB (inflated up to the limit, then refused).
    refused("gzip-bomb-10g", big_bomb, 413, "over the", GZIP),
    refused("gzip-bomb-10g-chunked", _streamed_big_bomb, 413, "over the", GZIP),
    refused(
        "deflate-bomb-512m",
        lambda: gzip_bomb(512, wrapper="zlib"),
        413,
        "decompressed body is over",
        {"Content-Encoding": "deflate"},
    ),
    # gzip inside gzip: only one layer is undone; what is left is not JSON.
    refused("gzip-in-gzip", lambda: gzip.compress(gzip.compress(b"{" + b" " * (5 * MiB) + b"}")), 400, "UTF-8", GZIP),
    # JSON nested 100,000 deep: arrays and objects.
    refused("deep-arrays", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "not JSON"),
    refused("deep-objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 400, "not JSON"),
    # Huge numbers, NaN and infinities: the parser takes IEEE doubles and refuses what is not one.
    *(refused(f"number-{name}", b'{"event":"x","amount":' + n + b"}", 400, "not JSON") for name, n in NUMBERS.items()),
    # BOMs: a UTF-16 body is not UTF-8; a BOM alone leaves an empty body.
    refused("bom-utf16", '{"event":"x"}'.encode("utf-16"), 400, "UTF-8"),
    refused("bom-only", b"\xef\xbb\xbf", 400, "empty body"),
    # Invalid UTF-8: a lone byte, an overlong encoding, an encoded surrogate, a truncated sequence.
    *(refused(f"utf8-{name}", b'{"event":"' + raw + b'"}', 400, "UTF-8") for name, raw in BAD_UTF8.items()),
    # A JSON escape of a lone surrogate is valid UTF-8 but no text: refused too.
    refused("json-lone-surrogate", b'{"event":"\\ud800"}', 400, "not JSON"),
]


@pytest.mark.parametrize(("name", "data", "status", "error", "headers"), REFUSED)
async def test_hostile_body_is_refused_and_recorded(
    server: Server,
    http: aiohttp.ClientSession,
    name: str,
    data: bytes | Callable[[], Any],
    status: int,
    error: str,
    headers: dict[str, str] | None,
) -> None:
    await expect(http, server, name, data() if callable(data) else data, status, error, headers=headers)


async def test_512m_gzip_bomb_is_refused_once_inflated_past_the_limit(
    server: Server, http: aiohttp.ClientSession
) -> None:
    small_bomb = gzip_bomb(512)
    assert len(small_bomb) < MAX_BODY
    row = await expect(http, server, "gzip-bomb-512m", small_bomb, 413, "decompressed body is over", headers=GZIP)
    assert row["body_size"] == len(small_bomb)


async def test_big_finite_numbers_are_accepted(server: Server, http: aiohttp.ClientSession) -> None:
    # A big but finite integer is fine (a double, or text where an id is expected).
    row = await accepted(http, server, "number-2pow64", b'{"userId":18446744073709551616,"amount":1e308}')
    assert row["amount"] == 1e308 and row["user_id"] == "1.8446744073709552e+19"  # the body keeps the digits


async def test_duplicate_keys_keep_the_bytes_and_parse_the_last(server: Server, http: aiohttp.ClientSession) -> None:
    # Accepted, the bytes kept exactly, the last value parsed (as most parsers do).
    row = await accepted(
        http, server, "duplicate-keys", b'{"event":"a","event":"payment_gateway.view","user_id":"1","user_id":"2"}'
    )
    assert (row["event"], row["user_id"]) == ("payment_gateway.view", "2")


async def test_utf8_bom_is_tolerated_and_kept(server: Server, http: aiohttp.ClientSession) -> None:
    row = await accepted(http, server, "bom-utf8", b'\xef\xbb\xbf{"event":"payment_gateway.view","user_id":"bom"}')
    assert row["body"].startswith(b"\xef\xbb\xbf") and row["user_id"] == "bom"


async def test_120_repeated_headers_are_stored_joined(server: Server, http: aiohttp.ClientSession) -> None:
    many = [("X-Rep", str(n)) for n in range(120)]
    status, answer = await post(http, server, "headers-120", b'{"event":"x"}', many)
    assert status == 200, answer
    (row,) = event_rows(server.db, "/case/headers-120")
    assert orjson.loads(row["headers"])["X-Rep"] == ", ".join(str(n) for n in range(120))


OVERSIZED_HEADERS = {
    "header-20k": [("X-Big", "a" * 20_000)],
    "headers-200": [("X-Rep", str(n)) for n in range(200)],
    "header-name-10k": [("X-" + "n" * 10_000, "v")],
}


@pytest.mark.parametrize(("name", "headers"), [pytest.param(*case, id=case[0]) for case in OVERSIZED_HEADERS.items()])
async def test_headers_over_aiohttp_limits_never_reach_the_listener(
    server: Server, http: aiohttp.ClientSession, name: str, headers: list[tuple[str, str]]
) -> None:
    # Over aiohttp's limits (a line over 8190 bytes, more than 128 headers) aiohttp answers 400 itself.
    status, answer = await post(http, server, name, b'{"event":"x"}', headers)
    assert status == 400, (name, status, answer)
    assert isinstance(answer, bytes)  # aiohttp's plain-text answer, not ours
    assert rejected_rows(server.db, f"/case/{name}") == []  # observed limit: never reaches the listener


async def test_a_sender_that_hangs_up_mid_body_is_recorded(server: Server) -> None:
    # After 5 of 100 bytes: nobody reads the answer, but the attempt is recorded.
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'POST /case/hang-up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":')
    await writer.drain()
    writer.close()
    await wait_until(lambda: rejected_rows(server.db, "/case/hang-up"), what="the hang-up's rejected row")
    (row,) = rejected_rows(server.db, "/case/hang-up")
    assert (row["status"], row["body"], row["body_size"]) == (400, b'{"a":', 5)
    assert "connection was closed" in row["reason"]


async def test_slow_senders_get_408_after_normal_deliveries_are_answered(
    server: Server, http: aiohttp.ClientSession
) -> None:
    # 20 connections trickling a byte every 0.2 s. Normal deliveries posted meanwhile are all
    # answered while every slow one is still sending; then each slow one gets 408.
    slow_done: list[float] = []

    async def slow_sender(n: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"POST /case/slow-%d HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" % n)
            await writer.drain()
            response = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
            while not response.done():
                try:
                    writer.write(b" ")
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.wait([response], timeout=0.2)  # the trickle's pace, not a wait for a condition
            head = await asyncio.wait_for(response, 15)
            slow_done.append(time.monotonic())
            return head
        finally:
            writer.close()

    slow = [asyncio.ensure_future(slow_sender(n)) for n in range(20)]
    await wait_until(lambda: _active_slow(server), what="the slow senders to connect", timeout=10)
    latencies: list[float] = []

    async def normal(n: int) -> None:
        t0 = time.monotonic()
        status, _ = await post(http, server, "during-slow", b'{"event":"paywall.click","slow":%d}' % n)
        assert status == 200
        latencies.append(time.monotonic() - t0)

    for batch in range(5):
        await asyncio.gather(*(normal(batch * 10 + n) for n in range(10)))
    normal_done = time.monotonic()
    assert not slow_done, "a slow sender was answered before the normal deliveries were"
    heads = await asyncio.gather(*slow)
    assert all(head.startswith(b"HTTP/1.1 408") for head in heads), heads
    assert all(t > normal_done for t in slow_done)
    for n in range(20):
        rows = rejected_rows(server.db, f"/case/slow-{n}")
        assert [r["status"] for r in rows] == [408] and rows[0]["body_size"] > 0, rows
    assert len(event_rows(server.db, "/case/during-slow")) == 50
    print(f"\nnormal delivery p100 while 20 slow senders: {max(latencies):.2f} s")


def _active_slow(server: Server) -> bool:
    # The slow senders are connected once the server has that many established sockets on its port.
    port_hex = f":{server.port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(port_hex) and parts[3] == "01":
                    count += 1
    return count >= 20


async def test_after_every_case_the_server_is_up_bounded_and_clean(server: Server, http: aiohttp.ClientSession) -> None:
    """Last in the module: still up, still answering, its memory bounded, a clean stop and file."""
    async with http.get(server.url) as resp:
        assert resp.status == 200
        state = await resp.json()
    assert state["ok"] is True and state["service"] == "conscent-monitor"
    rss_after, hwm_after = server.memory_kib()
    status, _ = await post(http, server, "after-everything", b'{"event":"payment_gateway.view","user_id":"last"}')
    assert status == 200
    assert server.proc.poll() is None
    growth_mib = (rss_after - server.rss_before) / 1024
    peak_mib = (hwm_after - server.rss_before) / 1024
    assert growth_mib < 50, f"RSS grew by {growth_mib:.1f} MiB"
    assert peak_mib < 80, f"peak RSS {peak_mib:.1f} MiB above the baseline"
    assert server.stop() == 0
    conn = sqlite3.connect(server.db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rejected_total = conn.execute("SELECT count(*) FROM rejected").fetchone()[0]
    finally:
        conn.close()
    stderr = server.stderr_path.read_text(errors="replace")
    # Our handler never fails: the only tracebacks are aiohttp's own for the requests it refused itself.
    assert "listener.py" not in stderr, stderr[-3000:]
    print(
        f"\nhostile: {rejected_total} rejected rows; RSS {server.rss_before / 1024:.1f} -> "
        f"{rss_after / 1024:.1f} MiB (growth {growth_mib:+.1f} MiB, peak +{peak_mib:.1f} MiB)"
    )
