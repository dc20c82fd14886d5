"""The aiohttp webhook listener: validate, hand to the writer, answer.

POST on any path is a delivery. It is answered 200 ``{"ok": true, "id": N}``
only after the writer has committed it. Anything refused gets a JSON error
``{"ok": false, "error": ...}`` and a row in ``rejected``. GET ``/`` is a
short JSON status. The listener never touches SQLite or the UI itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from monitor import signing
from monitor.events import InvalidBody, parse_body
from monitor.forwarder import Forwarder
from monitor.forwarder import summary as forwarding_summary
from monitor.store import REJECTED_BODY_LIMIT, StoreUnavailable
from monitor.textsafe import utf8_safe
from monitor.writer import UnstorableRow, Writer

DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_READ_TIMEOUT = 30.0
_ENCODINGS = {"identity", "gzip", "x-gzip", "deflate"}
_READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class ListenerConfig:
    session_id: int
    secret: str | None = None
    basic_auth: tuple[str, str] | None = None
    #: Refuse (401) deliveries whose configured checks do not pass.
    require_auth: bool = False
    max_body: int = DEFAULT_MAX_BODY
    read_timeout: float = DEFAULT_READ_TIMEOUT
    db_path: str = ""
    started_at: float = field(default_factory=time.time)


class Rejection(Exception):
    def __init__(self, status: int, reason: str, *, received: bytes | None = None, size: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        #: What was read of the body before giving up, and how many bytes that was.
        self.received = received
        self.size = size


def make_server(config: ListenerConfig, writer: Writer, forwarder: Forwarder | None = None) -> web.Server:
    """aiohttp's low-level server: every method and path comes to one handler.

    No router or application in between (every path is a delivery anyway):
    that is a few microseconds of each request. We decompress ourselves, so
    the size limit applies after decompression and the exact bytes received
    are known.
    """

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        return await _handle(request, config, writer, forwarder)

    return web.Server(handle, auto_decompress=False, access_log=None)


def make_runner(server: web.Server) -> web.ServerRunner:
    return web.ServerRunner(server, handle_signals=False)


async def _handle(
    request: web.BaseRequest, config: ListenerConfig, writer: Writer, forwarder: Forwarder | None
) -> web.StreamResponse:
    received_at = time.time()
    if request.method in ("GET", "HEAD") and request.path == "/":
        return _status(config, writer, forwarder)
    wire = b""
    try:
        if request.method != "POST":
            raise Rejection(405, f"method {request.method} not allowed: webhooks are POSTed")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
        if encoding not in _ENCODINGS:
            raise Rejection(415, f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)")
        wire = await _read_body(request, config)
        # An empty body is empty whatever its encoding says (and is refused below).
        body = wire if encoding == "identity" or not wire else _decompress(wire, encoding, config.max_body)
        sig_header = request.headers.get(signing.SIGNATURE_HEADER)
        signature = signing.check_signature(sig_header, config.secret, body, wire)
        basic = signing.check_basic_auth(request.headers.get("Authorization"), config.basic_auth)
        if config.require_auth:
            _enforce(signature, basic)
        try:
            record = parse_body(body)
        except InvalidBody as exc:
            raise Rejection(400, str(exc)) from None
    except Rejection as rej:
        return await _reject(request, writer, config, received_at, wire, rej)
    row: dict[str, Any] = {
        **_request_columns(request, config, received_at),
        "content_type": _header(request, "Content-Type"),
        "body": body,
        "body_size": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "signature": signature,
        "basic_auth": basic,
    }
    row.update(record.columns())
    try:
        new_id = await writer.submit("events", row)
    except StoreUnavailable as exc:
        return await _reject(request, writer, config, received_at, wire, Rejection(503, str(exc)))
    except UnstorableRow as exc:
        return await _reject(request, writer, config, received_at, wire, Rejection(500, f"cannot store: {exc}"))
    if forwarder is not None:
        # Queued, not awaited: the target's answer never delays ours.
        forwarder.enqueue(new_id, config.session_id, body, request.headers.items())
    return _json(200, {"ok": True, "id": new_id})


def _header(request: web.BaseRequest, name: str) -> str | None:
    value = request.headers.get(name)
    return None if value is None else utf8_safe(value)


def _enforce(signature: str, basic: str) -> None:
    if signature in (signing.MISSING, signing.INVALID):
        raise Rejection(401, f"X-Conscent-Signature is {signature}")
    if basic in (signing.MISSING, signing.INVALID):
        raise Rejection(401, f"basic auth is {basic}")


async def _read_body(request: web.BaseRequest, config: ListenerConfig) -> bytes:
    limit = config.max_body
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Rejection(413, f"body of {declared} bytes is over the {limit}-byte limit")
    await _continue(request)
    content = request.content
    if content.is_eof():
        # The whole body came with the headers (the usual small webhook):
        # nothing to wait for, so no timer to arm.
        body = content.read_nowait(limit + 1)  # never more than one byte past the limit
        if len(body) > limit:
            raise Rejection(
                413, f"body is over the {limit}-byte limit", received=body[:REJECTED_BODY_LIMIT], size=len(body)
            )
        return body
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(config.read_timeout):
            # Never ask for more than one byte past the limit: what is held in
            # memory stays bounded whatever the sender does.
            while chunk := await request.content.read(min(_READ_CHUNK, limit + 1 - size)):
                size += len(chunk)
                chunks.append(chunk)
                if size > limit:
                    raise Rejection(413, f"body is over the {limit}-byte limit", received=_head(chunks), size=size)
    except TimeoutError:
        raise Rejection(
            408, f"body not received within {config.read_timeout:g} s", received=_head(chunks), size=size
        ) from None
    except (ConnectionResetError, web.RequestPayloadError, HttpProcessingError) as exc:
        # The sender hung up mid-body, or its chunked framing was broken: nobody may
        # read the answer, but the attempt is recorded like any other refusal.
        raise Rejection(
            400, f"body incomplete after {size} bytes: {_payload_error(exc)}", received=_head(chunks), size=size
        ) from None
    return b"".join(chunks)


async def _continue(request: web.BaseRequest) -> None:
    """Answer ``Expect: 100-continue`` (curl sends it for large bodies and waits a second without it).

    Only once the body is known to be wanted: a body declared too large got its 413 already.
    """
    expect = request.headers.get("Expect")
    if expect is None or request.version < HttpVersion11:
        return
    if expect.strip().lower() != "100-continue":
        raise Rejection(417, f"unsupported Expect {expect!r} (only 100-continue)")
    if request.content.is_eof():
        return  # the sender did not wait: the body is here already
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the answer proper has not started


def _payload_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError):
        return "the connection was closed"
    cause = exc.__cause__ if isinstance(exc, web.RequestPayloadError) and exc.__cause__ else exc
    message = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    return " ".join(str(message).split())[:200]


def _head(chunks: list[bytes]) -> bytes:
    return b"".join(chunks)[:REJECTED_BODY_LIMIT]


def _decompress(data: bytes, encoding: str, limit: int) -> bytes:
    wbits = zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    for bits in (wbits, -zlib.MAX_WBITS):  # deflate is sometimes sent raw
        inflater = zlib.decompressobj(bits)
        try:
            out = inflater.decompress(data, limit + 1)
        except zlib.error:
            if encoding == "deflate" and bits > 0:
                continue
            raise Rejection(400, f"body is not valid {encoding} data") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise Rejection(413, f"decompressed body is over the {limit}-byte limit")
        if not inflater.eof:
            raise Rejection(400, f"{encoding} body is truncated")
        return out
    raise Rejection(400, f"body is not valid {encoding} data")


async def _reject(
    request: web.BaseRequest,
    writer: Writer,
    config: ListenerConfig,
    received_at: float,
    wire: bytes,
    rej: Rejection,
) -> web.Response:
    if rej.received is not None:
        body, size = rej.received, rej.size
    elif wire:
        body, size = wire[:REJECTED_BODY_LIMIT], len(wire)
    else:
        body, size = b"", request.content_length  # not read (405, 415, 413 by Content-Length)
    row = {
        **_request_columns(request, config, received_at),
        "status": rej.status,
        "reason": rej.reason,
        "body": body,
        "body_size": size,
    }
    response = _json(rej.status, {"ok": False, "error": rej.reason})
    if rej.status == 405:
        response.headers["Allow"] = "POST" if request.path != "/" else "GET, HEAD, POST"
    if not request.content.at_eof():
        # The rest of the body was not read; do not reuse this connection.
        response.force_close()
    if rej.status == 503:
        # The database cannot be written right now: do not wait for a commit
        # that will fail too; the writer keeps the record and retries.
        writer.submit_nowait("rejected", row)
        return response
    with contextlib.suppress(StoreUnavailable, UnstorableRow):
        await writer.submit("rejected", row)  # answered once recorded
    return response


def _status(config: ListenerConfig, writer: Writer, forwarder: Forwarder | None) -> web.Response:
    stats = writer.stats
    return _json(
        200,
        {
            "forward": forwarding_summary(forwarder.stats) if forwarder else None,
            "ok": writer.healthy,
            "service": "conscent-monitor",
            "session": config.session_id,
            "database": config.db_path,
            "uptime_s": round(time.time() - config.started_at, 1),
            "events": stats.committed_events,
            "rejected": stats.committed_rejected,
            "by_event": dict(stats.by_event),
            "error": stats.last_error,
        },
    )


def _request_columns(request: web.BaseRequest, config: ListenerConfig, received_at: float) -> dict[str, Any]:
    """What ``events`` and ``rejected`` both record about the request."""
    return {
        "session_id": config.session_id,
        "received_at": received_at,
        "method": request.method,
        "path": request.path_qs,
        "remote_addr": request.remote,
        "headers": _headers_json(request),
    }


def _headers_json(request: web.BaseRequest) -> str:
    return orjson.dumps(signing.redact_headers(request.headers.items())).decode()


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")
