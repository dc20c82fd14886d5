"""The group-commit writer: the only thread that writes deliveries.

Request handlers hand rows to :meth:`Writer.submit` and await the returned
future; the writer drains everything that is waiting, commits it in one
transaction, and only then resolves the futures. So a 200 is sent only for a
committed row, and the cost of a commit is shared by every request that
arrived while the previous one ran.

When a commit fails (database read-only, full, locked), accepted deliveries
fail with :class:`~monitor.store.StoreUnavailable` (the listener answers 503
and Conscent retries); rejection records are kept and retried every
``retry_interval`` seconds (and with every new delivery), so they are not lost
while the database recovers. A row that cannot be stored for a reason of its
own fails alone with :class:`UnstorableRow`; the thread never dies of it.

Before and after each commit the writer checks that the path still names the
database (and WAL) it opened: SQLite writes through open file descriptors, so
a deleted, moved or replaced file would otherwise keep taking commits nobody
can find. On the first change it stops for good: every delivery from then on
(and the batch in hand) fails with ``StoreUnavailable`` (503), what was
acknowledged is saved (:func:`monitor.store.salvage`), and ``on_alarm`` and
``stats.last_error`` say where it is. It never opens a fresh file at the path
on its own: restarting the monitor does, knowingly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor import store
from monitor.store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 2000
#: Bodies added to the search index per idle step (a few tens of milliseconds;
#: also at most ``store.INDEX_BYTES`` of them).
SEARCH_CHUNK = 500
#: Seconds without a delivery before the writer spends time on the search index.
#: Under load the index waits (the filter scans the rows it has not reached).
SEARCH_QUIET = 0.25
#: Rejection records kept while the database cannot be written.
MAX_REJECTED_BACKLOG = 10_000
#: Seconds between retries of the rejection backlog while nothing arrives.
RETRY_INTERVAL = 1.0
#: Seconds between checks that the database is still at its path while nothing arrives
#: (every commit checks as well), so a replaced file is reported, and its WAL emptied, soon.
FILE_CHECK_INTERVAL = 1.0
#: A batch committed within this many seconds of the last check (the previous batch's,
#: under load) is only checked after its commit: one ``stat`` per file per batch.
FILE_RECHECK_AFTER = 0.005

Connect = Callable[[], sqlite3.Connection]
_SQLITE_READONLY = 8  # primary result code; "locked" or "full" are not retried (they would wait twice)


class UnstorableRow(Exception):
    """This row, not the database, is the problem (a bug: it is logged)."""


@dataclass(slots=True)
class _Item:
    table: str  # "events", "rejected" or "forwards"
    row: dict[str, Any]
    future: asyncio.Future[int] | None
    loop: asyncio.AbstractEventLoop | None


@dataclass(slots=True)
class CommitNotice:
    """Told to ``on_commit`` after each successful commit (writer thread)."""

    event_ids: list[int]
    rejected_ids: list[int]
    events: list[dict[str, Any]]  # the committed rows, without body
    rejected: list[dict[str, Any]]
    forward_ids: list[int] = field(default_factory=list)
    forwards: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WriterStats:
    committed_events: int = 0
    committed_rejected: int = 0
    commits: int = 0
    failures: int = 0
    last_error: str | None = None
    by_event: Counter[str] = field(default_factory=Counter)


class Writer:
    def __init__(
        self,
        path: str | Path,
        *,
        on_commit: Callable[[CommitNotice], None] | None = None,
        on_alarm: Callable[[str], None] | None = None,
        connect: Connect | None = None,
        busy_timeout: float = store.BUSY_TIMEOUT_MS / 1000,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self._path = Path(path)
        self._connect = connect or (lambda: store.connect(self._path, busy_timeout=busy_timeout).conn)
        self._on_commit = on_commit
        self._on_alarm = on_alarm
        #: The file this writer writes: pinned now (the monitor has just opened it).
        self.file = store.DatabaseFile(self._path)
        self._lost: str | None = None  # set once, for good, when the path stops naming that file
        self._salvage_due: str | None = None  # which file changed, until the rows are saved
        self._file_checked_at = -FILE_CHECK_INTERVAL  # time.monotonic() of the last check
        self._retry_interval = retry_interval
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._backlog: list[_Item] = []
        self._search_behind = True  # catch up with whatever the database holds
        self._last_delivery = 0.0  # time.monotonic() of the last commit with deliveries
        self._thread = threading.Thread(target=self._run, name="monitor-writer", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._closing = False
        self.stats = WriterStats()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Write everything already submitted, then end the thread."""
        self._closing = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def check_after_stop(self, conn: sqlite3.Connection) -> str | None:
        """Once stopped: is the database still at its path? If not, save the rows through ``conn``.

        For the last writes of a run (the session row, the final checkpoint),
        made on another connection after this thread has ended (while it
        runs, it checks for itself). Returns :attr:`lost`.
        """
        if self._lost is None and not self._thread.is_alive() and (change := self.file.check()) is not None:
            self._lost = self.stats.last_error = store.salvage(conn, self.file, change)
            self.stats.failures += 1
            log.error("%s", self._lost)
            self._alarm(self._lost)
        return self._lost

    def submit(self, table: str, row: dict[str, Any]) -> asyncio.Future[int]:
        """Queue a row; the future resolves to its id once committed.

        Must be called from a running event loop (the listener's). After
        :meth:`stop` the future fails at once with ``StoreUnavailable``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if self._closing:
            future.set_exception(StoreUnavailable("the monitor is shutting down"))
            return future
        self._queue.put(_Item(table, row, future, loop))
        return future

    def submit_nowait(self, table: str, row: dict[str, Any]) -> None:
        """Queue a row that nobody waits for (e.g. from a thread)."""
        self._queue.put(_Item(table, row, None, None))

    @property
    def healthy(self) -> bool:
        return self._lost is None and self.stats.last_error is None

    @property
    def lost(self) -> str | None:
        """Why the writer refuses everything for good (its database left the path), or None."""
        return self._lost

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:  # pragma: no cover - a bug; never leave waiters hanging
            log.exception("writer thread failed")
            raise
        finally:
            self._closing = True
            self._close()
            self._drain()

    def _serve(self) -> None:
        running = True
        while running:
            idle_check_due = time.monotonic() - self._file_checked_at >= FILE_CHECK_INTERVAL
            if self._lost is None and idle_check_due and not self._file_ok():
                self._salvage()  # noticed while idle: at least once a second
            batch: list[_Item] = []
            try:
                if self._search_behind:
                    # Quiet time goes to the search index, a chunk at a time,
                    # so a delivery never waits long behind it; while
                    # deliveries keep coming, they get the whole core.
                    quiet_for = time.monotonic() - self._last_delivery
                    try:
                        if quiet_for >= SEARCH_QUIET:
                            first = self._queue.get_nowait()
                        else:
                            first = self._queue.get(timeout=SEARCH_QUIET - quiet_for)
                    except queue.Empty:
                        if time.monotonic() - self._last_delivery >= SEARCH_QUIET:
                            self._index_search()
                        continue
                else:
                    # With a backlog to retry, wake up on our own now and then; and to look at the file.
                    wait = FILE_CHECK_INTERVAL if self._lost is None else None
                    first = self._queue.get(timeout=self._retry_interval if self._backlog else wait)
            except queue.Empty:
                first = _RETRY
            if first is None:
                running = False
            elif first is not _RETRY:
                batch.append(first)
            # Everything that queued up while we were committing goes into
            # this one transaction.
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    running = False
                    continue
                batch.append(item)
            if batch or self._backlog:
                self._commit(batch)

    def _index_search(self) -> None:
        if self._lost is not None:
            self._search_behind = False
            return
        try:
            indexed = store.index_pending(self._open(), SEARCH_CHUNK)
        except Exception as exc:
            # The index is a convenience: the filter falls back to scanning.
            log.warning("search indexing paused: %s", exc)
            indexed = 0
            if isinstance(exc, sqlite3.Error):
                # As after a failed commit: a file made writable again is only seen by a new connection.
                self._close()
        # Batches are bounded by bytes as well as rows: only an empty one means done.
        self._search_behind = indexed > 0

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
            self.file.pin_wal()
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
            self.file.forget_wal()

    def _drain(self) -> None:
        """Fail whatever was queued too late to be written."""
        late: list[_Item] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                late.append(item)
        error = StoreUnavailable("the monitor is shutting down")
        _settle_all([(item, None, error) for item in late])

    def _commit(self, batch: list[_Item]) -> None:
        pending = self._backlog + batch
        self._backlog = []
        # Nothing goes into a file nobody can find at the path: checked before the
        # commit too, unless the last check (after the previous commit) is this fresh.
        fresh = time.monotonic() - self._file_checked_at < FILE_RECHECK_AFTER
        if self._lost is not None or (not fresh and not self._file_ok()):
            self._refuse(pending)
            return
        try:
            done = self._write(pending)
        except _Unavailable as exc:
            self._fail(pending, exc.cause)
            return
        except Exception:
            # Not the database: some row it cannot take. Write them one by one
            # so only the culprit fails.
            log.exception("a batch of %d rows could not be written; retrying row by row", len(pending))
            self._commit_one_by_one(pending)
            return
        self._acknowledge(pending, done)

    def _commit_one_by_one(self, pending: list[_Item]) -> None:
        for index, item in enumerate(pending):
            try:
                done = self._write([item])
            except _Unavailable as exc:
                self._fail(pending[index:], exc.cause)
                return
            except Exception as exc:
                log.exception("dropping a %s row that cannot be stored", item.table)
                _settle_all([(item, None, UnstorableRow(f"{type(exc).__name__}: {exc}"))])
            else:
                if not self._acknowledge([item], done):
                    self._refuse(pending[index + 1 :])
                    return

    def _write(self, pending: list[_Item]) -> store.Committed:
        """One transaction for ``pending``; raises when nothing was written.

        :class:`_Unavailable` means the database cannot be written (locked,
        full, read-only, gone); anything else is a problem with some row.
        """
        events = [item.row for item in pending if item.table == "events"]
        rejected = [item.row for item in pending if item.table == "rejected"]
        forwards = [item.row for item in pending if item.table == "forwards"]
        # A connection kept from earlier (the search index's, opened while the
        # file could not be written) does not see that it can be now: after
        # "readonly", one more try on a fresh connection before the batch is refused.
        for attempt in ("kept", "fresh") if self._conn is not None else ("fresh",):
            try:
                conn = self._open()
            except Exception as exc:
                raise _Unavailable(exc) from exc
            try:
                return store.write_batch(conn, events, rejected, forwards)
            except sqlite3.Error as exc:
                # OperationalError: locked, full, read-only, I/O; a bare
                # DatabaseError: "file is not a database" and the like. Binding
                # and constraint errors (Programming/Integrity/...) are the rows'.
                unavailable = isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError)
                if not unavailable and type(exc) is not sqlite3.DatabaseError:
                    raise
                if attempt == "fresh" or getattr(exc, "sqlite_errorcode", 0) & 0xFF != _SQLITE_READONLY:
                    raise _Unavailable(exc) from exc
                self._close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _acknowledge(self, pending: list[_Item], done: store.Committed) -> bool:
        """Resolve a committed batch, unless the file left the path meanwhile (then 503: not findable)."""
        if not self._file_ok():
            self._refuse(pending)
            return False
        self._committed(pending, done)
        return True

    def _file_ok(self) -> bool:
        """Whether the path still names the file (and WAL) written to: two ``stat`` calls, a few µs."""
        if self._lost is not None:
            return False
        self._file_checked_at = time.monotonic()
        change = self.file.check()
        if change is None:
            return True
        # Refuse at once; the rows are saved (_salvage) once the batch in hand is answered.
        self._lost = f"database file {self.file.path} {store.FILE_LOST} — saving what was acknowledged"
        self._salvage_due = change
        self.stats.failures += 1
        self.stats.last_error = self._lost
        self._search_behind = False
        return False

    def _refuse(self, pending: list[_Item]) -> None:
        """Fail ``pending`` for good (the database left its path), then save what was acknowledged."""
        error = StoreUnavailable(self._lost or "the database file left its path")
        _settle_all([(item, None, error) for item in pending])
        dropped = sum(1 for item in pending if item.table != "events")
        if dropped:  # debug: every refused delivery brings one
            log.debug("%d rejection or forward records not stored: the database left its path", dropped)
        self._salvage()

    def _salvage(self) -> None:
        change, self._salvage_due = self._salvage_due, None
        if change is None:
            return
        message = store.salvage(self._conn, self.file, change)
        self._close()  # marked by salvage: closing it leaves the files at the path alone
        self._lost = self.stats.last_error = message
        log.error("%s", message)
        self._alarm(message)

    def _alarm(self, message: str) -> None:
        if self._on_alarm is not None:
            try:
                self._on_alarm(message)
            except Exception:
                log.exception("on_alarm callback failed")

    def _committed(self, pending: list[_Item], done: store.Committed) -> None:
        """Bookkeeping after a commit: stats, futures, ``on_commit``."""
        events = [item for item in pending if item.table == "events"]
        rejected = [item for item in pending if item.table == "rejected"]
        self.stats.commits += 1
        self.stats.last_error = None
        self.stats.committed_events += len(events)
        self.stats.committed_rejected += len(rejected)
        if events:
            self._search_behind = True
            self._last_delivery = time.monotonic()
        for item in events:
            self.stats.by_event[str(item.row.get("event") or "(none)")] += 1
        forwards = [item for item in pending if item.table == "forwards"]
        _resolve(events, done.event_ids)
        _resolve(rejected, done.rejected_ids)
        _resolve(forwards, done.forward_ids)
        if self._on_commit is not None:
            try:
                notice = CommitNotice(
                    done.event_ids,
                    done.rejected_ids,
                    [_light(i.row, new_id) for i, new_id in zip(events, done.event_ids, strict=True)],
                    [_light(i.row, new_id) for i, new_id in zip(rejected, done.rejected_ids, strict=True)],
                    done.forward_ids,
                    [_light(i.row, new_id) for i, new_id in zip(forwards, done.forward_ids, strict=True)],
                )
                self._on_commit(notice)
            except Exception:
                log.exception("on_commit callback failed")

    def _fail(self, pending: list[_Item], exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        log.warning("commit failed: %s", exc)
        # A fresh connection next time: a file that was made writable again
        # is only seen by a new connection.
        self._close()
        error = StoreUnavailable(f"database cannot be written: {exc}")
        _settle_all([(item, None, error) for item in pending])
        # Rejections and forward results are our own records, not deliveries
        # a sender will retry; keep them (bounded) for the next commit that succeeds.
        self._backlog = [item for item in pending if item.table != "events"][-MAX_REJECTED_BACKLOG:]
        for item in self._backlog:
            item.future = None


class _Unavailable(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


#: Wakes the writer to retry its backlog (never queued).
_RETRY = _Item("", {}, None, None)


#: What commit listeners read (the TUI's counters and table, headless output):
#: copying these few instead of a whole row saves the writer a few µs a row.
_LIGHT_KEYS = (
    "session_id", "received_at", "event", "kind", "user_id", "name", "username", "signature",
    "status", "reason", "event_id", "attempt", "requested_at", "latency_ms", "error", "target",
)  # fmt: skip


def _light(row: dict[str, Any], new_id: int) -> dict[str, Any]:
    light = {key: row[key] for key in _LIGHT_KEYS if key in row}
    light["id"] = new_id
    return light


def _resolve(items: list[_Item], ids: list[int]) -> None:
    _settle_all([(item, new_id, None) for item, new_id in zip(items, ids, strict=True)])


_Outcome = tuple[_Item, int | None, BaseException | None]


def _settle_all(outcomes: list[_Outcome]) -> None:
    """Resolve futures with one wake-up per event loop, not one per row."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | None, BaseException | None]]] = {}
    for item, value, error in outcomes:
        if item.future is not None and item.loop is not None:
            by_loop.setdefault(item.loop, []).append((item.future, value, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[int], int | None, BaseException | None]]) -> None:
    for future, value, error in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        elif value is not None:
            future.set_result(value)
