"""Pass accepted deliveries on to the developer's own application.

The listener hands each committed delivery to :meth:`Forwarder.enqueue` and
answers Conscent at once: forwarding never delays or endangers the recording.
Workers post the exact body bytes with the original headers (signature
included) to the target, retry with back-off on connection errors, timeouts
and 5xx answers, and record every attempt (status, latency, the target's
response) as a ``forwards`` row through the writer.

Replays (from the TUI) go through the same code path, once, with
``kind="replay"``; an edited body is re-signed when a secret is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from monitor import signing
from monitor.store import REJECTED_BODY_LIMIT
from monitor.writer import Writer

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 5
QUEUE_LIMIT = 10_000
#: Seconds to wait before attempt n+1 (the last value repeats).
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)
RESPONSE_LIMIT = REJECTED_BODY_LIMIT

#: Not passed on: they describe the hop to us, not the delivery, or aiohttp
#: recomputes them (the body is sent decompressed).
HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
        "content-encoding",
        "keep-alive",
        "expect",
        "accept-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    }
)


@dataclass(slots=True)
class Job:
    event_id: int
    session_id: int | None
    body: bytes
    headers: list[tuple[str, str]]
    target: str
    kind: str = "forward"
    edited: bool = False
    attempt: int = 0


@dataclass
class ForwardStats:
    """What the header shows: is the target answering?"""

    target: str
    sent: int = 0
    failed: int = 0
    pending: int = 0
    last_status: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    last_latency_ms: float | None = None
    dropped: int = 0
    recent: list[float] = field(default_factory=list)

    @property
    def down(self) -> bool:
        return self.consecutive_failures > 0


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None
    latency_ms: float
    error: str | None
    response_headers: dict[str, str]
    response_body: bytes
    response_size: int

    @property
    def retry(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


def forward_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in HOP_HEADERS]


class Forwarder:
    """A queue and a few workers on the listener's event loop."""

    def __init__(
        self,
        target: str,
        writer: Writer,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        concurrency: int = 4,
        backoff: tuple[float, ...] | None = None,
        secret: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.target = target
        self.stats = ForwardStats(signing.redact_url(target))  # shown by GET / and the TUI header
        self._writer = writer
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._concurrency = concurrency
        # Read at construction, not at import: tests (and callers) may shorten BACKOFF.
        self._backoff = (BACKOFF if backoff is None else backoff) or (0.0,)
        self._secret = secret
        self._basic_auth = basic_auth
        self._queue: asyncio.Queue[Job] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        # No connection pooling across hosts matters here; keep-alive does. aiohttp adds none of
        # its own headers: the target sees the delivery's (a delivery without Content-Type must
        # not gain application/octet-stream), and with no Accept-Encoding its answer stays plain.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._retries]:
            task.cancel()
        for task in [*self._tasks, *self._retries]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks, self._retries = [], set()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def enqueue(self, event_id: int, session_id: int | None, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
        """Queue a committed delivery; never blocks, never raises."""
        if self._queue is None:
            return
        job = Job(event_id, session_id, body, forward_headers(headers), self.target)
        if self._queue.qsize() >= QUEUE_LIMIT:
            self.stats.dropped += 1
            self._record(job, Outcome(None, 0.0, "not forwarded: the forward queue is full", {}, b"", 0))
            return
        self.stats.pending += 1
        self._queue.put_nowait(job)

    async def replay(
        self,
        event_id: int,
        session_id: int | None,
        body: bytes,
        stored_headers: Mapping[str, str],
        *,
        target: str | None = None,
        edited: bool = False,
    ) -> Outcome:
        """Send a stored delivery once more (possibly edited) and record it."""
        headers = self.replay_headers(body, stored_headers, edited=edited)
        job = Job(event_id, session_id, body, headers, target or self.target, kind="replay", edited=edited, attempt=1)
        outcome = await self._send(job)
        self._record(job, outcome)
        return outcome

    def replay_headers(self, body: bytes, stored: Mapping[str, str], *, edited: bool) -> list[tuple[str, str]]:
        """The stored headers, minus what was redacted, re-signed / re-authorised as configured."""
        headers = [
            (name, value)
            for name, value in forward_headers(stored.items())
            if signing.REDACTED not in value and not (edited and name.lower() == signing.SIGNATURE_HEADER.lower())
        ]
        names = {name.lower() for name, _ in headers}
        if self._secret and (edited or signing.SIGNATURE_HEADER.lower() not in names):
            headers = [(n, v) for n, v in headers if n.lower() != signing.SIGNATURE_HEADER.lower()]
            headers.append((signing.SIGNATURE_HEADER, signing.sign(body, self._secret)))
        if self._basic_auth and "authorization" not in {name.lower() for name, _ in headers}:
            headers.append(("Authorization", signing.basic_auth_header(*self._basic_auth)))
        return headers

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            job.attempt += 1
            outcome = await self._send(job)
            self._record(job, outcome)
            if outcome.retry and job.attempt < self._attempts:
                delay = self._backoff[min(job.attempt - 1, len(self._backoff) - 1)]
                task = asyncio.create_task(self._requeue(job, delay))
                self._retries.add(task)
                task.add_done_callback(self._retries.discard)
            else:
                self.stats.pending -= 1

    async def _requeue(self, job: Job, delay: float) -> None:
        await asyncio.sleep(delay)
        assert self._queue is not None
        self._queue.put_nowait(job)

    async def _send(self, job: Job) -> Outcome:
        assert self._session is not None
        started = time.perf_counter()
        try:
            # A redirect is the application's answer: recorded, not followed (a 302 would turn the POST into a GET).
            async with self._session.post(
                job.target, data=job.body, headers=job.headers, allow_redirects=False
            ) as resp:
                size = 0
                chunks: list[bytes] = []
                async for chunk in resp.content.iter_chunked(16384):
                    size += len(chunk)
                    if sum(map(len, chunks)) < RESPONSE_LIMIT:
                        chunks.append(chunk)
                body = b"".join(chunks)[:RESPONSE_LIMIT]
                latency = (time.perf_counter() - started) * 1000
                headers = signing.redact_headers(resp.headers.items())
                outcome = Outcome(resp.status, latency, None, headers, body, size)
        except TimeoutError:
            outcome = Outcome(
                None, (time.perf_counter() - started) * 1000, f"timed out after {self._timeout:g} s", {}, b"", 0
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            outcome = Outcome(None, (time.perf_counter() - started) * 1000, _describe(exc), {}, b"", 0)
        self._account(outcome)
        return outcome

    def _account(self, outcome: Outcome) -> None:
        stats = self.stats
        stats.sent += 1
        stats.last_status = outcome.status
        stats.last_error = outcome.error
        stats.last_latency_ms = outcome.latency_ms
        if outcome.retry:
            stats.failed += 1
            stats.consecutive_failures += 1
        else:
            stats.consecutive_failures = 0

    def _record(self, job: Job, outcome: Outcome) -> None:
        self._writer.submit_nowait(
            "forwards",
            {
                "event_id": job.event_id,
                "session_id": job.session_id,
                "kind": job.kind,
                "attempt": job.attempt,
                "target": signing.redact_url(job.target),
                "requested_at": time.time(),
                "status": outcome.status,
                "latency_ms": round(outcome.latency_ms, 2),
                "error": outcome.error,
                "request_body": job.body if job.edited else None,
                "request_headers": orjson.dumps(signing.redact_headers(job.headers)).decode(),
                "response_headers": orjson.dumps(outcome.response_headers).decode(),
                "response_body": outcome.response_body,
                "response_size": outcome.response_size,
            },
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def summary(stats: ForwardStats) -> dict[str, Any]:
    """For the status endpoint."""
    return {
        "target": stats.target,
        "down": stats.down,
        "sent": stats.sent,
        "failed": stats.failed,
        "pending": stats.pending,
        "last_status": stats.last_status,
        "last_error": stats.last_error,
    }
