"""The aiohttp listener, through aiohttp's test client: every status, every auth case."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.signing import REDACTED, basic_auth_header, sign
from monitor.writer import Writer
from tests.helpers import ReadOnlySwitch, read_rows

VIEW = b'{"entity":"event","event":"payment_gateway.view","user_id":"u1","created_at":1709186668}'
SECRET = "whsec_test"
CREDS = ("client-key", "client-secret")

Listen = Callable[..., Any]


async def post(client: Any, body: Any = VIEW, path: str = "/webhook", **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with client.post(path, data=body, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response with a Content-Length, without waiting for the connection to close."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


def event(db_path: Path, new_id: int) -> dict[str, Any]:
    rows = read_rows(db_path, "SELECT * FROM events WHERE id = ?", (new_id,))
    assert rows, f"event {new_id} is not in the database"
    return rows[0]


def rejected(db_path: Path) -> list[dict[str, Any]]:
    return read_rows(db_path, "SELECT * FROM rejected ORDER BY id")


def only_rejected(db_path: Path) -> dict[str, Any]:
    rows = rejected(db_path)
    assert len(rows) == 1, rows
    return rows[0]


def event_count(db_path: Path) -> int:
    return int(read_rows(db_path, "SELECT count(*) AS n FROM events")[0]["n"])


# --- accepted deliveries ----------------------------------------------------------------------


async def test_accepted_after_commit(listen: Listen, db_path: Path, spec: dict[str, bytes], session_id: int) -> None:
    client = await listen()
    body = spec["payment_gateway.view"]
    status, answer = await post(client, body, path="/hooks/conscent?x=1", headers={"Content-Type": "application/json"})
    assert status == 200 and answer == {"ok": True, "id": 1}
    row = event(db_path, 1)  # from a separate connection, right after the answer
    assert row["body"] == body
    assert row["body_size"] == len(body)
    assert row["session_id"] == session_id
    assert row["method"] == "POST" and row["path"] == "/hooks/conscent?x=1"
    assert row["remote_addr"] == "127.0.0.1"
    assert row["content_type"] == "application/json"
    assert row["signature"] == "unchecked" and row["duplicate_of"] is None
    assert row["event"] == "payment_gateway.view" and row["user_id"] == "65e01bd8d03692125f1f353d"
    assert row["gateway_session_id"] == "65e01bdad03692125f1f3540"
    assert row["created_at"] == 1709186668.0
    assert orjson.loads(row["headers"])["Content-Type"] == "application/json"
    assert rejected(db_path) == []


async def test_duplicate_delivery(listen: Listen, db_path: Path) -> None:
    client = await listen()
    first = (await post(client))[1]["id"]
    second = (await post(client))[1]["id"]
    assert second != first
    assert event(db_path, second)["duplicate_of"] == first


async def test_any_path_is_a_webhook(listen: Listen, db_path: Path) -> None:
    client = await listen()
    for path in ["/", "/a/b/c", "/webhook?token=1"]:
        status, answer = await post(client, path=path)
        assert status == 200
        assert event(db_path, answer["id"])["path"] == path


async def test_legacy_flat_delivery(listen: Listen, db_path: Path) -> None:
    client = await listen()
    status, answer = await post(client, b'{"userId":"u7","clientId":"c1","amount":5}')
    assert status == 200
    row = event(db_path, answer["id"])
    assert (row["kind"], row["event"], row["user_id"], row["client_id"], row["amount"]) == (
        "legacy",
        None,
        "u7",
        "c1",
        5.0,
    )


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
        ("GZIP", gzip.compress),
        ("identity", lambda data: data),
    ],
)
async def test_compressed_bodies_are_stored_decompressed(
    listen: Listen, db_path: Path, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    client = await listen(secret=SECRET)
    status, answer = await post(
        client, compress(VIEW), headers={"Content-Encoding": encoding, "X-Conscent-Signature": sign(VIEW, SECRET)}
    )
    assert status == 200, answer
    row = event(db_path, answer["id"])
    assert row["body"] == VIEW and row["event"] == "payment_gateway.view"
    assert row["signature"] == "valid"  # signed over the JSON, as Conscent does


async def test_signature_over_the_compressed_bytes_also_counts(listen: Listen, db_path: Path) -> None:
    client = await listen(secret=SECRET)
    wire = gzip.compress(VIEW)
    status, answer = await post(
        client, wire, headers={"Content-Encoding": "gzip", "X-Conscent-Signature": sign(wire, SECRET)}
    )
    assert status == 200 and event(db_path, answer["id"])["signature"] == "valid"


# --- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "empty body"),
        (b"  \n ", "empty body"),
        (b"not json", "not JSON"),
        (b'{"event": "x"', "not JSON"),
        (b'{"event": "\xff"}', "not valid UTF-8"),
        (b"[1, 2, 3]", "array, not an object"),
        (b'"just a string"', "string, not an object"),
        (b"12", "number, not an object"),
        (b'{"a": NaN}', "not JSON"),
    ],
)
async def test_bad_bodies_are_400(listen: Listen, db_path: Path, body: bytes, error: str, session_id: int) -> None:
    client = await listen()
    status, answer = await post(client, body)
    assert status == 400
    assert answer["ok"] is False and error in answer["error"]
    row = only_rejected(db_path)
    assert (row["status"], row["reason"], row["body"], row["body_size"]) == (400, answer["error"], body, len(body))
    assert (row["method"], row["path"], row["session_id"]) == ("POST", "/webhook", session_id)
    assert row["remote_addr"] == "127.0.0.1" and orjson.loads(row["headers"])
    assert event_count(db_path) == 0


async def test_413_by_content_length(listen: Listen, db_path: Path) -> None:
    client = await listen(max_body=1000)
    body = b'{"pad":"' + b"x" * 5000 + b'"}'
    status, answer = await post(client, body)
    assert status == 413 and answer["ok"] is False and "1000-byte limit" in answer["error"]
    row = only_rejected(db_path)
    assert row["status"] == 413 and row["body_size"] == len(body) and row["body"] == b""  # not read at all
    # The limit is inclusive: exactly max_body bytes are fine.
    exact = b'{"p":"' + b"y" * (1000 - 8) + b'"}'
    assert len(exact) == 1000
    assert (await post(client, exact))[0] == 200


async def test_413_chunked_without_content_length(listen: Listen, db_path: Path) -> None:
    client = await listen(max_body=10_000)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"pad":"'
        for _ in range(100):
            sent += 1000
            yield b"x" * 1000

    status, answer = await post(client, chunks())
    assert status == 413 and "limit" in answer["error"]
    row = only_rejected(db_path)
    assert row["status"] == 413
    assert row["body_size"] == 10_001  # stopped reading one byte past the limit
    assert row["body"] == (b'{"pad":"' + b"x" * 100_000)[: len(row["body"])]


async def test_chunked_body_under_the_limit_is_accepted(listen: Listen, db_path: Path) -> None:
    client = await listen()

    async def chunks() -> AsyncIterator[bytes]:
        for part in (VIEW[:10], VIEW[10:40], VIEW[40:]):
            yield part

    status, answer = await post(client, chunks())
    assert status == 200 and event(db_path, answer["id"])["body"] == VIEW


async def test_413_gzip_bomb(listen: Listen, db_path: Path) -> None:
    client = await listen()  # default limit: 1 MiB
    bomb = gzip.compress(b'{"a":"' + b"0" * (50 * 1024 * 1024) + b'"}', compresslevel=9)
    assert len(bomb) < 100_000
    status, answer = await post(client, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "decompressed" in answer["error"]
    row = only_rejected(db_path)
    assert row["status"] == 413 and row["body_size"] == len(bomb) and row["body"] == bomb[: 64 * 1024]


@pytest.mark.parametrize(
    ("encoding", "body", "error"),
    [
        ("gzip", b"definitely not gzip", "not valid gzip"),
        ("gzip", gzip.compress(VIEW, mtime=0)[:-12], "truncated"),
        ("deflate", b"not deflate either", "not valid deflate"),
        ("gzip", b"", "empty body"),
    ],
)
async def test_bad_compressed_bodies_are_400(
    listen: Listen, db_path: Path, encoding: str, body: bytes, error: str
) -> None:
    client = await listen()
    status, answer = await post(client, body, headers={"Content-Encoding": encoding})
    assert status == 400 and error in answer["error"], answer
    assert only_rejected(db_path)["status"] == 400


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_unsupported_encoding_is_415(listen: Listen, db_path: Path, encoding: str) -> None:
    client = await listen()
    status, answer = await post(client, VIEW, headers={"Content-Encoding": encoding})
    assert status == 415 and "Content-Encoding" in answer["error"]
    row = only_rejected(db_path)
    assert row["status"] == 415 and row["body_size"] == len(VIEW)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/x"), ("PUT", "/"), ("DELETE", "/webhook"), ("PATCH", "/a"), ("HEAD", "/x"), ("OPTIONS", "/")],
)
async def test_other_methods_are_405(listen: Listen, db_path: Path, method: str, path: str) -> None:
    client = await listen()
    async with client.request(method, path, data=None if method in ("GET", "HEAD") else VIEW) as resp:
        assert resp.status == 405
        assert "POST" in resp.headers["Allow"]
        if method != "HEAD":
            answer = await resp.json()
            assert answer["ok"] is False and method in answer["error"]
    row = only_rejected(db_path)
    assert (row["status"], row["method"], row["path"]) == (405, method, path)
    assert event_count(db_path) == 0


async def test_status(listen: Listen, session_id: int, db_path: Path) -> None:
    client = await listen()
    await post(client)
    await post(client, b"nope")
    async with client.get("/") as resp:
        assert resp.status == 200
        status = await resp.json()
    assert status["ok"] is True and status["service"] == "conscent-monitor"
    assert status["session"] == session_id and status["database"] == str(db_path)
    assert status["events"] == 1 and status["rejected"] == 1
    assert status["by_event"] == {"payment_gateway.view": 1}
    async with client.head("/") as resp:
        assert resp.status == 200
    assert len(rejected(db_path)) == 1  # GET / is not a delivery


async def test_408_when_the_body_stalls(listen: Listen, db_path: Path) -> None:
    client = await listen(read_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + VIEW[:10])
    await writer.drain()
    response = await asyncio.wait_for(read_response(reader), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 408")
    assert b'"ok":false' in response
    row = only_rejected(db_path)
    assert row["status"] == 408 and row["body"] == VIEW[:10] and row["body_size"] == 10


async def test_expect_100_continue_is_answered_before_the_body(listen: Listen, db_path: Path) -> None:
    """curl sends ``Expect: 100-continue`` for large bodies and waits a second for it."""
    client = await listen()
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(VIEW))
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)  # well under curl's 1 s wait
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(VIEW)
    await writer.drain()
    response = await asyncio.wait_for(read_response(reader), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert event(db_path, 1)["body"] == VIEW


async def test_expect_with_a_body_over_the_limit_gets_413_not_an_invitation(listen: Listen, db_path: Path) -> None:
    client = await listen(max_body=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
    await writer.drain()
    response = await asyncio.wait_for(read_response(reader), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 413"), response
    assert only_rejected(db_path)["status"] == 413


async def test_unknown_expectation_is_417_and_recorded(listen: Listen, db_path: Path) -> None:
    client = await listen()
    async with client.post("/", data=VIEW, headers={"Expect": "something-else"}) as resp:
        assert resp.status == 417
        assert "unsupported Expect" in (await resp.json())["error"]
    assert only_rejected(db_path)["status"] == 417


async def test_headers_that_are_not_utf8_are_stored_not_500(listen: Listen, db_path: Path) -> None:
    client = await listen()
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /odd HTTP/1.1\r\nHost: x\r\nX-Odd: caf\xe9\r\nContent-Type: text/\xff\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(VIEW), VIEW)
    )
    await writer.drain()
    response = await asyncio.wait_for(read_response(reader), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 200"), response
    row = event(db_path, 1)
    assert orjson.loads(row["headers"])["X-Odd"] == "caf\ufffd"
    assert row["content_type"] == "text/\ufffd"


# --- signature and basic auth -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (sign(VIEW, SECRET), "valid"),
        (sign(VIEW, SECRET).upper(), "valid"),
        (sign(VIEW, "wrong"), "invalid"),
        ("zzz", "invalid"),
        (None, "missing"),
    ],
)
async def test_signature_recorded_by_default(listen: Listen, db_path: Path, header: str | None, expected: str) -> None:
    client = await listen(secret=SECRET)
    headers = {} if header is None else {"X-Conscent-Signature": header}
    status, answer = await post(client, headers=headers)
    assert status == 200
    assert event(db_path, answer["id"])["signature"] == expected
    assert rejected(db_path) == []


@pytest.mark.parametrize(
    ("header", "expected"), [(sign(VIEW, SECRET), None), (sign(VIEW, "wrong"), "invalid"), (None, "missing")]
)
async def test_signature_required(listen: Listen, db_path: Path, header: str | None, expected: str | None) -> None:
    client = await listen(secret=SECRET, require_auth=True)
    headers = {} if header is None else {"X-Conscent-Signature": header}
    status, answer = await post(client, headers=headers)
    if expected is None:
        assert status == 200 and event(db_path, answer["id"])["signature"] == "valid"
        return
    assert status == 401 and answer == {"ok": False, "error": f"X-Conscent-Signature is {expected}"}
    row = only_rejected(db_path)
    assert row["status"] == 401 and row["body"] == VIEW
    assert event_count(db_path) == 0


async def test_bad_body_with_bad_signature_is_401_when_required(listen: Listen, db_path: Path) -> None:
    client = await listen(secret=SECRET, require_auth=True)
    assert (await post(client, b"junk"))[0] == 401


BASIC_CASES = [
    (basic_auth_header(*CREDS), "valid"),
    (basic_auth_header("client-key", "nope"), "invalid"),
    ("Basic %%%notbase64", "invalid"),
    ("Bearer abc", "invalid"),
    (None, "missing"),
]


@pytest.mark.parametrize(("header", "expected"), BASIC_CASES)
async def test_basic_auth_recorded_by_default(listen: Listen, db_path: Path, header: str | None, expected: str) -> None:
    client = await listen(basic_auth=CREDS)
    headers = {} if header is None else {"Authorization": header}
    status, answer = await post(client, headers=headers)
    assert status == 200
    row = event(db_path, answer["id"])
    assert row["basic_auth"] == expected and row["signature"] == "unchecked"
    stored = orjson.loads(row["headers"])
    if header is not None:
        assert REDACTED in stored["Authorization"]
        assert header.split(" ", 1)[-1] not in row["headers"]


@pytest.mark.parametrize(("header", "expected"), BASIC_CASES)
async def test_basic_auth_required(listen: Listen, db_path: Path, header: str | None, expected: str) -> None:
    client = await listen(basic_auth=CREDS, require_auth=True)
    headers = {} if header is None else {"Authorization": header}
    status, answer = await post(client, headers=headers)
    if expected == "valid":
        assert status == 200
        assert orjson.loads(event(db_path, answer["id"])["headers"])["Authorization"] == f"Basic {REDACTED}"
        return
    assert status == 401 and answer["error"] == f"basic auth is {expected}"
    row = only_rejected(db_path)
    assert row["status"] == 401
    if header is not None:
        assert REDACTED in orjson.loads(row["headers"])["Authorization"]
        assert header.split(" ", 1)[-1] not in row["headers"]


async def test_secret_and_basic_auth_both_required(listen: Listen, db_path: Path) -> None:
    client = await listen(secret=SECRET, basic_auth=CREDS, require_auth=True)
    good_sig = {"X-Conscent-Signature": sign(VIEW, SECRET)}
    good_basic = {"Authorization": basic_auth_header(*CREDS)}
    assert (await post(client, headers=good_sig))[0] == 401
    assert (await post(client, headers=good_basic))[0] == 401
    assert (await post(client, headers=good_sig | good_basic))[0] == 200


# --- the database cannot be written -----------------------------------------------------------


async def test_503_while_the_database_cannot_be_written_then_recovers(
    listen: Listen, db_path: Path, make_writer: Callable[..., Writer]
) -> None:
    connect = ReadOnlySwitch(db_path, on=True)

    writer = make_writer(connect=connect, retry_interval=0.05)
    client = await listen(writer=writer)
    status, answer = await post(client)
    assert status == 503 and answer["ok"] is False and "cannot be written" in answer["error"]
    async with client.get("/") as resp:
        health = await resp.json()
    assert health["ok"] is False and "readonly" in health["error"]
    assert event_count(db_path) == 0

    connect.on = False
    status, answer = await post(client)
    assert status == 200, answer
    assert event(db_path, answer["id"])["body"] == VIEW
    # The 503 itself was recorded once the database could be written again.
    deadline = asyncio.get_running_loop().time() + 10
    while not rejected(db_path):
        assert asyncio.get_running_loop().time() < deadline, "503 rejection never written"
        await asyncio.sleep(0.02)
    row = only_rejected(db_path)
    assert row["status"] == 503 and row["body"] == VIEW


async def test_503_when_the_writer_has_stopped(listen: Listen, make_writer: Callable[..., Writer]) -> None:
    writer = make_writer()
    client = await listen(writer=writer)
    await asyncio.to_thread(writer.stop)
    status, answer = await post(client)
    assert status == 503 and "shutting down" in answer["error"]


# --- concurrency ------------------------------------------------------------------------------


async def test_200_concurrent_posts(listen: Listen, db_path: Path) -> None:
    client = await listen()
    bodies = [b'{"event":"paywall.click","user_id":"u%d","n":%d}' % (i % 7, i) for i in range(200)]
    results = await asyncio.gather(*(post(client, body) for body in bodies))
    assert all(status == 200 for status, _ in results)
    ids = [answer["id"] for _, answer in results]
    assert len(set(ids)) == 200
    stored = {r["id"]: r["body"] for r in read_rows(db_path, "SELECT id, body FROM events")}
    assert stored == dict(zip(ids, bodies, strict=True))
