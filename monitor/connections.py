"""Connection guards for the listener: how many connections, for how long, and what is logged.

aiohttp's low-level server, left alone, keeps an idle connection for about an
hour, gives a request head all the time it wants, accepts connections until the
process runs out of file descriptors (then asyncio logs an ``accept()``
traceback in a tight loop: 41 MB of stderr in 25 s) and logs a traceback for
every malformed request. :class:`GuardedServer` is that server with:

* a cap on open connections, below the file-descriptor limit; at the cap a new
  connection takes the place of the longest-open idle one, or is answered 503;
* a head timeout (the sweep in :meth:`GuardedServer._sweep`) beside aiohttp's
  keep-alive timeout;
* malformed requests handed to a hook (the listener records them), ten a
  second at most, instead of logged with a traceback;
* one log line per :class:`Throttle` interval instead of a line per event.

Nothing here imports Textual, Rich or click, or touches SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

DEFAULT_KEEPALIVE_TIMEOUT = 75.0
DEFAULT_HEAD_TIMEOUT = 10.0
#: Descriptors kept for everything but the listener's open connections: 64 for
#: stdio, SQLite (3 per connection: the file, its WAL and shm), the TUI and the
#: forwarder (a headless monitor uses 14 at rest), and 128 for the sockets
#: accepted in one burst before they are refused or make room (asyncio accepts up
#: to aiohttp's backlog, 128, at a time).
FD_RESERVE = 64 + 128
#: Open connections are never allowed past this, whatever the descriptor limit.
MAX_CONNECTIONS = 4096
#: Malformed requests handed to the hook per second at most; the rest are counted.
MALFORMED_PER_SECOND = 10
#: When no connection was idle, do not look again for this long (seconds): at
#: the cap, a flood of new connections would otherwise rescan every open one.
_RESCAN_AFTER = 0.1
_ACCEPT_ERROR = "socket.accept() out of system resource"

_BUSY = (
    b'{"ok":false,"error":"too many open connections; retry later"}',
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n\r\n",
)
BUSY_RESPONSE = _BUSY[1] % len(_BUSY[0]) + _BUSY[0]

#: ``hook(request, status, reason)``: a request aiohttp could not parse, answered ``status``.
MalformedHook = Callable[[web.BaseRequest, int, str], None]


def fd_limit() -> int:
    """The process's soft limit on open file descriptors (``ulimit -n``); 0 when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 0 if soft == resource.RLIM_INFINITY or soft < 0 else soft


def connection_cap(soft_limit: int) -> int:
    """How many connections the listener keeps open for a process allowed ``soft_limit`` descriptors.

    ``ulimit -n`` 1024 (Linux's default) -> 832; 256 (macOS's) -> 64.
    """
    if soft_limit <= 0:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft_limit - FD_RESERVE))


@dataclass(slots=True, frozen=True)
class Limits:
    #: Open connections at most; ``None``: :func:`connection_cap` of :func:`fd_limit`.
    max_connections: int | None = None
    #: Seconds an idle connection is kept between requests.
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    #: Seconds a request head may take, from the connection's opening or the head's first byte.
    head_timeout: float = DEFAULT_HEAD_TIMEOUT


class Throttle:
    """Lets ``burst`` events through per ``interval`` seconds and counts the rest.

    When an interval in which some were held back ends, ``report(count)`` is
    called once, from a timer (so the end of a flood is reported even if
    nothing follows), and the report takes one of the next interval's places:
    ``burst`` lines per interval at most, the report included.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, burst: int, interval: float, report: Callable[[int], None]
    ) -> None:
        self._loop = loop
        self._burst = burst
        self._interval = interval
        self._report = report
        self._window_end = 0.0
        self._passed = 0
        self._held = 0
        self._timer: asyncio.TimerHandle | None = None

    def allow(self) -> bool:
        now = self._loop.time()
        if now >= self._window_end and self._timer is None:
            self._window_end = now + self._interval
            self._passed = 0
        if self._passed < self._burst:
            self._passed += 1
            return True
        self._held += 1
        if self._timer is None:
            self._timer = self._loop.call_at(self._window_end, self._flush)
        return False

    def _flush(self) -> None:
        held, self._held, self._timer = self._held, 0, None
        if held:
            self._report(held)
            self._window_end = self._loop.time() + self._interval
            self._passed = 1

    def close(self) -> None:
        """Report what is held back now (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()


class _AcceptErrors(logging.Filter):
    """Drops asyncio's ``accept()`` tracebacks for one loop; a :class:`Throttle` counts them.

    CPython 3.11's accept loop logs the error once per connection in the
    backlog (128) and retries as many times a second: a storm of tracebacks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.count = 0
        self._throttle = Throttle(loop, 1, 10.0, self._report)

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith(_ACCEPT_ERROR)):
            return True
        try:
            if asyncio.get_running_loop() is not self._loop:
                return True
        except RuntimeError:
            return True
        self.count += 1
        if self._throttle.allow():
            error = record.exc_info[1] if record.exc_info else None
            log.warning("cannot accept connections: %s (retrying every second)", error or "out of resources")
        return False

    def _report(self, count: int) -> None:
        log.warning("accept() failed %d more times in 10 s: out of file descriptors", count)

    def close(self) -> None:
        self._throttle.close()


class GuardedServer(web.Server):
    """aiohttp's low-level server with a connection cap, a head timeout and quiet malformed requests."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: Limits,
        on_malformed: MalformedHook,
        shutdown_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self.request_factory = self._request
        self.limits = limits
        self.cap = limits.max_connections or connection_cap(fd_limit())
        self.on_malformed = on_malformed
        #: For the runner (:func:`monitor.listener.make_runner`): how long stopping waits for requests.
        self.shutdown_timeout = shutdown_timeout
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self.malformed = 0
        self._rescan_at = 0.0
        self._refusals = Throttle(self._loop, 1, 10.0, self._report_refused)
        self._malformed_log = Throttle(self._loop, MALFORMED_PER_SECOND, 1.0, self._report_malformed)
        self._accept_errors = _AcceptErrors(self._loop)
        logging.getLogger("asyncio").addFilter(self._accept_errors)
        self._sweep_every = min(1.0, max(0.05, limits.head_timeout / 4))
        self._sweeper: asyncio.TimerHandle | None = self._loop.call_later(self._sweep_every, self._sweep)

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)

    def stats(self) -> dict[str, int]:
        return {
            "open": self.open,
            "cap": self.cap,
            "refused": self.refused,
            "evicted": self.evicted,
            "head_timeouts": self.timed_out,
            "accept_errors": self._accept_errors.count,
        }

    def admit(self) -> bool:
        """May one more connection be open? At the cap, the longest-open idle one makes room."""
        if self.open < self.cap or self._evict_idle():
            self.open += 1
            return True
        self.refused += 1
        if self._refusals.allow():
            log.warning(
                "refusing connections (503): %d open, the cap is %d (ulimit -n %s); "
                "further refusals are counted in GET /",
                self.open,
                self.cap,
                fd_limit() or "unlimited",
            )
        return False

    def _evict_idle(self) -> bool:
        now = self._loop.time()
        if now < self._rescan_at:
            return False
        fallback: _Connection | None = None
        for conn in self._connections:
            assert isinstance(conn, _Connection)
            if not conn.idle():
                continue
            if not conn.served:  # never sent a whole request: the likeliest to be a scanner's
                fallback = conn
                break
            fallback = fallback or conn
        if fallback is None:
            self._rescan_at = now + _RESCAN_AFTER
            return False
        fallback.force_close()
        self.evicted += 1
        return True

    def malformed_request(self, request: web.BaseRequest, status: int, reason: str) -> None:
        """A request aiohttp could not parse and answered ``status``: counted, and passed on if not too many."""
        self.malformed += 1
        if self._malformed_log.allow():
            self.on_malformed(request, status, reason)

    def _report_malformed(self, count: int) -> None:
        log.warning("%d more malformed requests refused in 1 s (counted in GET /, not recorded)", count)

    def _report_refused(self, count: int) -> None:
        log.warning("refused %d more connections in 10 s: %d open, the cap is %d", count, self.open, self.cap)

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        protocol.head_since = 0.0  # the head is complete
        protocol.served = True
        return self._make_request(message, payload, protocol, writer, task)

    def _sweep(self) -> None:
        """Close connections whose request head is overdue."""
        overdue = self._loop.time() - self.limits.head_timeout
        for conn in list(self._connections):
            assert isinstance(conn, _Connection)
            if 0.0 < conn.head_since < overdue and conn.idle():
                conn.force_close()
                self.timed_out += 1
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)

    async def shutdown(self, timeout: float | None = None) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._refusals.close()
        self._malformed_log.close()
        self._accept_errors.close()
        logging.getLogger("asyncio").removeFilter(self._accept_errors)
        await super().shutdown(timeout)


class _Connection(RequestHandler):
    """One connection; refused at once (503) past the cap."""

    __slots__ = ("admitted", "guard", "head_since", "served")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = manager
        self.admitted = False
        #: loop.time() since when a request head is awaited; 0.0 while none is.
        self.head_since = 0.0
        self.served = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.guard.admit():
            assert isinstance(transport, asyncio.Transport)
            transport.write(BUSY_RESPONSE)
            transport.close()
            return
        self.admitted = True
        self.head_since = self._loop.time()
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.admitted:
            return
        self.admitted = False
        self.guard.open -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.head_since and self._waiter is not None:
            self.head_since = self._loop.time()  # the first byte of the next request
        super().data_received(data)

    def idle(self) -> bool:
        """Waiting for a request head (none, or part of one, has come): safe to close."""
        if self._force_close or self._request_in_progress or self._messages:
            return False
        waiter = self._waiter
        if waiter is not None:
            return not waiter.done()
        # Between two requests aiohttp has no waiter either: idle only if none has begun.
        return not self.served

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return super().handle_error(request, status, exc, message)
        # A request aiohttp could not parse: the hook records it; no traceback.
        self.guard.malformed_request(request, status, one_line(exc.message or message or type(exc).__name__))
        response = web.Response(status=status, text=message or "Bad Request")
        response.force_close()
        return response


def one_line(message: str) -> str:
    """aiohttp's parser message on one line, without the caret line under the bad bytes."""
    kept = [line.strip() for line in str(message).splitlines() if line.strip(" ^")]
    return " ".join(kept)[:300]
