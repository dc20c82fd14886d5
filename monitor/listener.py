"""The aiohttp webhook listener: validate, hand to the writer, answer.

POST on any path is a delivery. It is answered 200 ``{"ok": true, "id": N}``
only after the writer has committed it. Anything refused gets a JSON error
``{"ok": false, "error": ...}`` and a row in ``rejected``. GET ``/`` is a
short JSON status (without file paths once the monitor is public). GET
``…/.well-known/conscent-monitor/probe/<token>`` with this process's token
answers the token (the tunnel's self-probe, :mod:`monitor.probe`) and is not
recorded; with another token it is an ordinary 404, recorded in ``rejected``.
The listener never touches SQLite or the UI itself.

Hostile senders are bounded: open connections, idle and head time
(:mod:`monitor.connections`), bytes of bodies held in memory across all
requests (:class:`BodyBudget`), and how long stopping waits for senders.
Requests aiohttp cannot parse are answered 400 by aiohttp and recorded here
(ten a second at most, the rest counted), without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from monitor import signing
from monitor.connections import DEFAULT_HEAD_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, GuardedServer, Limits
from monitor.events import InvalidBody, parse_body
from monitor.forwarder import Forwarder
from monitor.forwarder import summary as forwarding_summary
from monitor.probe import PROBE_PREFIX
from monitor.store import REJECTED_BODY_LIMIT, StoreUnavailable
from monitor.textsafe import utf8_safe
from monitor.writer import UnstorableRow, Writer

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_MAX_BODY = MiB
DEFAULT_READ_TIMEOUT = 30.0
#: 400 senders stalled 64 KiB short of the end of 1 MiB bodies took the monitor to 450 MiB of
#: RSS without a budget; 152 MiB with this one (tests/reliability/test_listener_limits.py).
DEFAULT_MAX_IN_FLIGHT = 64 * MiB
#: Stopping waits this long for requests still running, then cuts off senders stuck mid-body.
DEFAULT_SHUTDOWN_TIMEOUT = 3.0
RETRY_AFTER = "5"
_ENCODINGS = {"identity", "gzip", "x-gzip", "deflate"}
_READ_CHUNK = 64 * 1024
#: Every request may hold this much of its body whatever the budget: a small
#: delivery is never refused as busy, and the connection cap bounds the total.
FREE_PER_REQUEST = _READ_CHUNK


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
    #: Bytes of request bodies held in memory at once, across all requests; past it, 503.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    #: Open connections at most; ``None``: derived from ``ulimit -n`` (:func:`monitor.connections.connection_cap`).
    max_connections: int | None = None
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    #: The self-probe's token (known only to this process); None: no probe is answered.
    probe_token: str | None = None
    #: Public (a tunnel or a public URL): ``GET /`` then names no file.
    public: bool = False
    #: The local URL, once listening (shown by ``GET /``).
    listen_url: str = ""
    #: The tunnel's state for ``GET /`` (public URL, phase, reachability), if there is one.
    tunnel_status: Callable[[], dict[str, Any] | None] | None = None


class Rejection(Exception):
    def __init__(self, status: int, reason: str, *, received: bytes | None = None, size: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        #: What was read of the body before giving up, and how many bytes that was.
        self.received = received
        self.size = size


class BodyBudget:
    """Bytes of request bodies held in memory at once, across every request.

    Counted from the moment they are read (or reserved: a declared
    Content-Length is taken whole before the body is read) until the request
    is answered. A request may always hold :data:`FREE_PER_REQUEST`.
    """

    __slots__ = ("held", "limit", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0

    def take(self, size: int, already: int = 0) -> bool:
        """Count ``size`` more bytes for a request holding ``already``; False (nothing counted) if over."""
        held = self.held + size
        if held > self.limit and already + size > FREE_PER_REQUEST:
            self.refused += 1
            return False
        self.held = held
        return True

    def release(self, size: int) -> None:
        self.held -= size

    def busy(self, *, received: bytes | None = None, size: int | None = None) -> Rejection:
        return Rejection(
            503,
            f"busy: {self.held / MiB:.1f} MiB of request bodies are held already, the limit is "
            f"{self.limit / MiB:g} MiB; retry later",
            received=received,
            size=size,
        )


@dataclass(slots=True)
class _State:
    """What every request of one server shares."""

    config: ListenerConfig
    writer: Writer
    forwarder: Forwarder | None
    budget: BodyBudget
    server: GuardedServer | None = None

    def record_malformed(self, request: web.BaseRequest, status: int, reason: str) -> None:
        """``GuardedServer``'s hook: a request aiohttp could not parse (it answered ``status``)."""
        row = {
            **_request_columns(request, self.config, time.time()),
            "method": None,  # not known: the request line or a header did not parse
            "path": None,
            "status": status,
            "reason": f"malformed request: {reason}",
            "body": b"",
            "body_size": None,
        }
        self.writer.submit_nowait("rejected", row)


def make_server(config: ListenerConfig, writer: Writer, forwarder: Forwarder | None = None) -> web.Server:
    """aiohttp's low-level server: every method and path comes to one handler.

    No router or application in between (every path is a delivery anyway):
    that is a few microseconds of each request. We decompress ourselves, so
    the size limit applies after decompression and the exact bytes received
    are known. Call it on the loop that will serve.
    """
    state = _State(config, writer, forwarder, BodyBudget(config.max_in_flight))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        return await _handle(request, state)

    limits = Limits(config.max_connections, config.keepalive_timeout, config.head_timeout)
    state.server = GuardedServer(
        handle,
        limits=limits,
        on_malformed=state.record_malformed,
        shutdown_timeout=config.shutdown_timeout,
        auto_decompress=False,
        access_log=None,
    )
    return state.server


def make_runner(server: web.Server) -> web.ServerRunner:
    """The runner; stopping it waits ``shutdown_timeout`` for running requests, then cancels them.

    Requests whose body is complete are waiting for a commit of a few
    milliseconds and are answered; only senders stuck mid-body are cut off.
    """
    timeout = server.shutdown_timeout if isinstance(server, GuardedServer) else DEFAULT_SHUTDOWN_TIMEOUT
    return web.ServerRunner(server, handle_signals=False, shutdown_timeout=timeout)


async def _handle(request: web.BaseRequest, state: _State) -> web.StreamResponse:
    received_at = time.time()
    if request.method in ("GET", "HEAD") and request.path == "/":
        return _status(state)
    config, writer = state.config, state.writer
    wire = body = b""
    try:
        try:
            if request.method == "GET" and PROBE_PREFIX in request.path:
                return _probe(request, config)
            if request.method != "POST":
                raise Rejection(405, f"method {request.method} not allowed: webhooks are POSTed")
            encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
            if encoding not in _ENCODINGS:
                raise Rejection(415, f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)")
            wire = await _read_body(request, config, state.budget)
            body = _decode(wire, encoding, config.max_body, state.budget)
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
        if state.forwarder is not None:
            # Queued, not awaited: the target's answer never delays ours.
            state.forwarder.enqueue(new_id, config.session_id, body, request.headers.items())
        return _json(200, {"ok": True, "id": new_id})
    finally:
        # Answered (or cancelled): what was read is no longer held for this request.
        state.budget.release(len(wire) + (0 if body is wire else len(body)))


def _decode(wire: bytes, encoding: str, limit: int, budget: BodyBudget) -> bytes:
    """The body, decompressed if need be; decompressed bytes are counted in ``budget``."""
    if encoding == "identity" or not wire:
        return wire  # an empty body is empty whatever its encoding says (and is refused later)
    body = _decompress(wire, encoding, limit)
    if not budget.take(len(body), len(wire)):
        raise budget.busy()
    return body


def _header(request: web.BaseRequest, name: str) -> str | None:
    value = request.headers.get(name)
    return None if value is None else utf8_safe(value)


def _enforce(signature: str, basic: str) -> None:
    if signature in (signing.MISSING, signing.INVALID):
        raise Rejection(401, f"X-Conscent-Signature is {signature}")
    if basic in (signing.MISSING, signing.INVALID):
        raise Rejection(401, f"basic auth is {basic}")


async def _read_body(request: web.BaseRequest, config: ListenerConfig, budget: BodyBudget) -> bytes:
    """The body as received, counted in ``budget`` once returned (the caller releases it)."""
    limit = config.max_body
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Rejection(413, f"body of {declared} bytes is over the {limit}-byte limit")
    wants_continue = _expects_continue(request)
    content = request.content
    if content.is_eof():
        # The whole body came with the headers (the usual small webhook):
        # nothing to wait for, so no timer to arm.
        body = content.read_nowait(limit + 1)  # never more than one byte past the limit
        if len(body) > limit:
            raise Rejection(
                413, f"body is over the {limit}-byte limit", received=body[:REJECTED_BODY_LIMIT], size=len(body)
            )
        budget.held += len(body)  # in memory already: counted, never refused
        return body
    # A declared length is reserved whole, before the sender is asked to go on:
    # once admitted, a body is never cut off for the budget.
    reserved = declared or 0
    if reserved and not budget.take(reserved):
        raise budget.busy()
    try:
        if wants_continue:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started
        return await _read_stream(request, config, budget, reserved)
    except BaseException:
        budget.release(reserved)
        raise


async def _read_stream(request: web.BaseRequest, config: ListenerConfig, budget: BodyBudget, reserved: int) -> bytes:
    """The rest of the body; without a reservation each chunk is taken from ``budget`` as it comes."""
    limit = config.max_body
    chunks: list[bytes] = []
    size = 0
    done = False
    try:
        async with asyncio.timeout(config.read_timeout):
            # Never ask for more than one byte past the limit: what is held in
            # memory stays bounded whatever the sender does.
            while chunk := await request.content.read(min(_READ_CHUNK, limit + 1 - size)):
                if not reserved and not budget.take(len(chunk), size):
                    raise budget.busy(received=_head(chunks), size=size + len(chunk))
                size += len(chunk)
                chunks.append(chunk)
                if size > limit:
                    raise Rejection(413, f"body is over the {limit}-byte limit", received=_head(chunks), size=size)
        done = True
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
    finally:
        if not done and not reserved:
            budget.release(size)
    return b"".join(chunks)


def _expects_continue(request: web.BaseRequest) -> bool:
    """Whether to answer ``Expect: 100-continue`` (curl sends it for large bodies and waits a second without it).

    Sent only once the body is known to be wanted: a body declared too large, or
    over the budget, got its answer already. Other expectations get 417.
    """
    expect = request.headers.get("Expect")
    if expect is None or request.version < HttpVersion11:
        return False
    if expect.strip().lower() != "100-continue":
        raise Rejection(417, f"unsupported Expect {expect!r} (only 100-continue)")
    return not request.content.is_eof()  # else the sender did not wait: the body is here already


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
        # Busy, or the database cannot be written right now: do not wait for a
        # commit (that may fail too); the writer keeps the record and retries.
        response.headers["Retry-After"] = RETRY_AFTER
        writer.submit_nowait("rejected", row)
        return response
    with contextlib.suppress(StoreUnavailable, UnstorableRow):
        await writer.submit("rejected", row)  # answered once recorded
    return response


def _probe(request: web.BaseRequest, config: ListenerConfig) -> web.Response:
    """The tunnel's self-probe: this process's token back, nothing stored; any other token is a 404."""
    token = request.path.rpartition(PROBE_PREFIX)[2]
    if config.probe_token and hmac.compare_digest(token.encode(), config.probe_token.encode()):
        return web.Response(status=200, text=config.probe_token, headers={"Cache-Control": "no-store"})
    raise Rejection(404, "not found: not a probe of this monitor")


def _status(state: _State) -> web.Response:
    config, writer, forwarder = state.config, state.writer, state.forwarder
    stats = writer.stats
    tunnel = config.tunnel_status() if config.tunnel_status is not None else None
    return _json(
        200,
        {
            "forward": forwarding_summary(forwarder.stats) if forwarder else None,
            "ok": writer.healthy,
            "service": "conscent-monitor",
            "session": config.session_id,
            "url": config.listen_url or None,
            "public_url": tunnel.get("public_url") if tunnel else None,
            "tunnel": tunnel,
            # Public: the database's path (a user name, a folder layout) is nobody else's business.
            "database": None if config.public else config.db_path,
            "uptime_s": round(time.time() - config.started_at, 1),
            "events": stats.committed_events,
            "rejected": stats.committed_rejected,
            "by_event": dict(stats.by_event),
            "error": _no_path(stats.last_error, config),
            "connections": state.server.stats() if state.server else None,
            "malformed": state.server.malformed if state.server else 0,
            "bodies_in_flight": state.budget.held,
            "busy_refusals": state.budget.refused,
        },
    )


def _no_path(text: str | None, config: ListenerConfig) -> str | None:
    """``text`` without the database's folder when the monitor is public (its file name stays)."""
    if not text or not config.public or not config.db_path:
        return text
    folder = config.db_path.rpartition("/")[0]
    return text.replace(folder + "/", "") if folder else text


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
