"""Pass accepted deliveries on to the developer's own application.

The listener hands each committed delivery to :meth:`Forwarder.enqueue` and
answers Conscent at once: forwarding never delays or endangers the recording.
Workers post the exact body bytes with the original headers (signature
included) to the target, retry with back-off on connection errors, timeouts
and 5xx answers, and record every attempt (status, latency, the target's
response) as a ``forwards`` row through the writer.

Replays (from the TUI) go through the same code path, once, with
``kind="replay"``; an edited body is re-signed when a secret is set.

Memory is bounded while the target is down or hung: queued jobs keep their
bodies only up to ``BODY_BUDGET`` bytes in total (retries waiting included);
past it a job keeps the event id and headers, and its body is read back from
the database when its turn comes. Credentials in the target URL win over a
delivery's own ``Authorization`` header (said once in the log and the status).
A job given up on (queue full, monitor stopped, request impossible to build)
is recorded as a failed forward with the reason: nothing goes silently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import sqlite_utils
from yarl import URL

from monitor import queries, signing, store
from monitor.store import REJECTED_BODY_LIMIT
from monitor.writer import Writer

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 5
#: Unfinished jobs (queued, waiting to retry, in flight) past which a new delivery is not forwarded
#: (recorded as such). Past the body budget a job is its ids and headers: ~650 bytes with a typical
#: delivery's eight forwarded headers, so 6.5 MB for a full queue.
QUEUE_LIMIT = 10_000
#: Body bytes the forwarder keeps in memory. Without a bound, 600 deliveries of 1 MB queued behind
#: a hung target took the monitor from 47 MB to 666 MB RSS; the database holds every body already.
BODY_BUDGET = 32 * 1024 * 1024
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


@dataclass(slots=True, eq=False)  # compared and hashed by identity: the forwarder keeps a set of them
class Job:
    event_id: int
    session_id: int | None
    body: bytes | None  # None: only in the database, read back when the job's turn comes
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
    queued: int = 0  # waiting for a worker or for a retry's back-off
    bytes_held: int = 0  # bodies in memory: queued, waiting to retry, being sent
    read_back: int = 0  # queued jobs whose body will be read back from the database
    note: str | None = None  # said once: how the target URL's credentials are used
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
    #: The request cannot be made (e.g. an invalid URL): recorded once, never retried.
    permanent: bool = False

    @property
    def retry(self) -> bool:
        return not self.permanent and (self.status is None or self.status >= 500 or self.status == 429)


def _failure(error: str, *, permanent: bool = True, latency_ms: float = 0.0) -> Outcome:
    return Outcome(None, latency_ms, error, {}, b"", 0, permanent)


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
        body_budget: int | None = None,
        db_path: str | Path | None = None,
    ) -> None:
        self.target = target
        self.stats = ForwardStats(signing.redact_url(target))  # shown by GET / and the TUI header
        self._writer = writer
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._concurrency = concurrency
        # Read at construction, not at import: tests (and callers) may shorten BACKOFF and BODY_BUDGET.
        self._backoff = (BACKOFF if backoff is None else backoff) or (0.0,)
        self._budget = BODY_BUDGET if body_budget is None else max(0, body_budget)
        # Without a database to read bodies back from, they all stay in memory.
        self._db_path = Path(db_path) if db_path is not None else _database_of(writer)
        self._secret = secret
        self._basic_auth = basic_auth
        self._queue: asyncio.Queue[Job] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._jobs: set[Job] = set()  # every unfinished forward: queued, waiting to retry, being sent
        self._sending: set[Job] = set()
        # Bodies are read back on one thread of our own, which alone uses the connection. Not
        # asyncio.to_thread: bodies read on the default pool's threads landed in as many malloc
        # arenas, and forwarding 600 x 1 MB took the monitor's peak RSS to 1.1 GB (112 MB so).
        self._reader_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader: sqlite_utils.Database | None = None

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
        self._reader_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="forward-reader")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def stop(self) -> None:
        """Stop the workers; every delivery not yet forwarded is recorded as given up."""
        tasks = [*self._tasks, *self._retries]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks, self._retries = [], set()
        self._give_up("not forwarded: the monitor stopped first")
        self._queue = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._reader_thread is not None:
            # After any read still running there (its worker was cancelled, not the read).
            await asyncio.get_running_loop().run_in_executor(self._reader_thread, self._close_reader)
            self._reader_thread.shutdown(wait=False)
            self._reader_thread = None

    def enqueue(self, event_id: int, session_id: int | None, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
        """Queue a committed delivery; never blocks, never raises.

        The body is kept in memory while the budget allows, else read back
        from the database when the job's turn comes.
        """
        if self._queue is None:
            return
        job = Job(event_id, session_id, None, forward_headers(headers), self.target)
        # Every unfinished job counts, retries waiting and sends in flight too.
        if self.stats.pending >= QUEUE_LIMIT:
            self.stats.dropped += 1
            self._record(job, _failure("not forwarded: the forward queue is full"))
            return
        self.stats.pending += 1
        self._jobs.add(job)
        self._hold(job, body)
        self.stats.queued += 1
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
        """The stored headers, minus what was redacted, re-signed / re-authorised as configured.

        Credentials in the target URL still win over the Authorization added here (see :meth:`_address`).
        """
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

    # -- the queue: order, attempts and the body budget ------------------------------------------

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            job = await queue.get()
            self.stats.queued -= 1
            self._sending.add(job)
            job.attempt += 1
            outcome = await self._attempt(job)
            self._sending.discard(job)
            self._record(job, outcome)
            if outcome.retry and job.attempt < self._attempts:
                self._retry_later(job)
            else:
                self._finish(job)

    async def _attempt(self, job: Job) -> Outcome:
        """One try: the body read back first if it was not kept, then the request."""
        if job.body is None:
            self.stats.read_back -= 1
            body = await self._read_back(job)
            if isinstance(body, Outcome):
                return body
            job.body = body
            self.stats.bytes_held += len(body)  # while being sent: at most one body per worker
        return await self._send(job)

    def _retry_later(self, job: Job) -> None:
        """Back off, then queue again at the end; the body is kept only within the budget."""
        body = job.body
        self._let_go(job)
        if body is None:
            self.stats.read_back += 1
        else:
            self._hold(job, body)
        self.stats.queued += 1
        delay = self._backoff[min(job.attempt - 1, len(self._backoff) - 1)]
        task = asyncio.create_task(self._requeue(job, delay))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _requeue(self, job: Job, delay: float) -> None:
        await asyncio.sleep(delay)
        assert self._queue is not None
        self._queue.put_nowait(job)

    def _finish(self, job: Job) -> None:
        self._let_go(job)
        self._jobs.discard(job)
        self.stats.pending -= 1

    def _hold(self, job: Job, body: bytes) -> None:
        """Keep ``body`` in memory if the budget allows; else the job reads it back when its turn comes."""
        if self._db_path is None or self.stats.bytes_held + len(body) <= self._budget:
            job.body = body
            self.stats.bytes_held += len(body)
        else:
            self.stats.read_back += 1

    def _let_go(self, job: Job) -> None:
        if job.body is not None:
            self.stats.bytes_held -= len(job.body)
            job.body = None

    def _give_up(self, reason: str) -> None:
        """Record every unfinished job as failed, with ``reason``, in delivery order."""
        for job in sorted(self._jobs, key=lambda job: job.event_id):
            if job not in self._sending:
                job.attempt += 1  # the attempt that will not be made
            job.body = None
            self.stats.failed += 1
            self._record(job, _failure(reason))
        self._jobs.clear()
        self._sending.clear()
        stats = self.stats
        stats.pending = stats.queued = stats.bytes_held = stats.read_back = 0

    async def _read_back(self, job: Job) -> bytes | Outcome:
        started = time.perf_counter()
        try:
            assert self._reader_thread is not None
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(self._reader_thread, self._read_body, job.event_id)
        except sqlite3.Error as exc:  # retried like a connection error
            outcome = _failure(f"cannot read the delivery back: {exc}", permanent=False, latency_ms=_since(started))
        else:
            if body is not None:
                return body
            outcome = _failure(f"not forwarded: delivery #{job.event_id} is no longer in the database")
        self.stats.failed += 1
        self.stats.last_error = outcome.error
        return outcome

    def _read_body(self, event_id: int) -> bytes | None:
        """On the reader thread: one primary-key read on a read-only connection of our own."""
        assert self._db_path is not None
        try:
            if self._reader is None:
                self._reader = store.connect(self._db_path, readonly=True)
            found = queries.delivery_body(self._reader, event_id)
        except sqlite3.Error:
            self._close_reader()  # reopened by the next read
            raise
        return None if found is None else found[0]

    def _close_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None

    # -- one request -------------------------------------------------------------------------------

    async def _send(self, job: Job) -> Outcome:
        assert self._session is not None
        started = time.perf_counter()
        try:
            url = self._address(job)
            # A redirect is the application's answer: recorded, not followed (a 302 would turn the POST into a GET).
            async with self._session.post(url, data=job.body, headers=job.headers, allow_redirects=False) as resp:
                outcome = await _answer(resp, started)
        except TimeoutError:
            outcome = _failure(f"timed out after {self._timeout:g} s", permanent=False, latency_ms=_since(started))
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError, TypeError) as exc:
            # Raised while the request is built, before a byte is sent: every retry would fail the same way.
            outcome = _failure(f"not sent, not retried: {_describe(exc)}", latency_ms=_since(started))
        except (aiohttp.ClientError, OSError) as exc:
            outcome = _failure(_describe(exc), permanent=False, latency_ms=_since(started))
        self._account(outcome)
        return outcome

    def _address(self, job: Job) -> URL:
        """The URL to post to; credentials in it replace the delivery's own Authorization header.

        The developer typed them for their own endpoint, so they win; aiohttp
        refuses both at once (a ValueError for every delivery carrying one).
        The header is set here, not by aiohttp, so the one recorded is the one sent.
        """
        url = URL(job.target)
        auth = aiohttp.BasicAuth.from_url(url)
        if auth is None:
            return url
        ours = auth.encode()
        if any(name.lower() == "authorization" and value != ours for name, value in job.headers):
            self._note("credentials in the target URL replace each delivery's own Authorization header")
        job.headers = [(name, value) for name, value in job.headers if name.lower() != "authorization"]
        job.headers.append(("Authorization", ours))
        return url.with_user(None)

    def _note(self, text: str) -> None:
        """Say ``text`` once: in the log and in the status (GET /)."""
        if self.stats.note is None:
            self.stats.note = text
            log.warning("forwarding to %s: %s", self.stats.target, text)

    def _account(self, outcome: Outcome) -> None:
        stats = self.stats
        stats.last_error = outcome.error
        if outcome.permanent:  # nothing reached the target: its health is unknown
            stats.failed += 1
            return
        stats.sent += 1
        stats.last_status = outcome.status
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


async def _answer(resp: aiohttp.ClientResponse, started: float) -> Outcome:
    """The target's status, headers (redacted) and the first ``RESPONSE_LIMIT`` bytes of its body."""
    size = 0
    chunks: list[bytes] = []
    async for chunk in resp.content.iter_chunked(16384):
        size += len(chunk)
        if sum(map(len, chunks)) < RESPONSE_LIMIT:
            chunks.append(chunk)
    body = b"".join(chunks)[:RESPONSE_LIMIT]
    return Outcome(resp.status, _since(started), None, signing.redact_headers(resp.headers.items()), body, size)


def _since(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()``)."""
    return (time.perf_counter() - started) * 1000


def _database_of(writer: Writer) -> Path | None:
    """The writer's database file, for reading bodies back.

    Writer has no public ``path`` yet; its ``_path`` is read here and only here.
    """
    path = getattr(writer, "path", None) or getattr(writer, "_path", None)
    return Path(path) if isinstance(path, str | Path) else None


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
        "queued": stats.queued,
        "bytes_held": stats.bytes_held,
        "read_back": stats.read_back,
        "dropped": stats.dropped,
        "last_status": stats.last_status,
        "last_error": stats.last_error,
        "note": stats.note,
    }
