"""The group-commit writer: batching, ids, faults (locked, full, read-only) and recovery."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor import store
from monitor.store import StoreUnavailable
from monitor.writer import CommitNotice, UnstorableRow, Writer
from tests.helpers import ReadOnlySwitch, event_row, read_rows, rejected_row, wait_until

pytestmark = pytest.mark.usefixtures("store_db")


def count(path: Path, table: str) -> int:
    return int(read_rows(path, f"SELECT count(*) AS n FROM {table}")[0]["n"])


async def test_concurrent_rows_group_commit(make_writer: Callable[..., Writer], db_path: Path) -> None:
    writer = make_writer()
    rows = 1000
    futures = [writer.submit("events", event_row(f'{{"n":{i}}}'.encode())) for i in range(rows)]
    futures += [writer.submit("rejected", rejected_row()) for _ in range(50)]
    ids = await asyncio.wait_for(asyncio.gather(*futures), 30)
    event_ids, rejected_ids = ids[:rows], ids[rows:]
    assert len(set(event_ids)) == rows and len(set(rejected_ids)) == 50
    assert writer.stats.commits < rows  # many rows per transaction
    assert writer.stats.committed_events == rows and writer.stats.committed_rejected == 50
    stored = read_rows(db_path, "SELECT id, body FROM events")
    assert {r["id"]: r["body"] for r in stored} == {i: f'{{"n":{n}}}'.encode() for n, i in enumerate(event_ids)}
    assert count(db_path, "rejected") == 50


async def test_every_resolved_id_is_committed_when_resolved(make_writer: Callable[..., Writer], db_path: Path) -> None:
    writer = make_writer()
    for i in range(20):
        new_id = await writer.submit("events", event_row(f'{{"i":{i}}}'.encode()))
        # A separate connection sees the row as soon as the future resolves.
        assert read_rows(db_path, "SELECT id FROM events WHERE id = ?", (new_id,)) == [{"id": new_id}]


async def test_on_commit_notice(make_writer: Callable[..., Writer]) -> None:
    notices: list[CommitNotice] = []
    writer = make_writer(on_commit=notices.append)
    new_id = await writer.submit("events", event_row(b"{}", event="payment_gateway.view"))
    rej_id = await writer.submit("rejected", rejected_row(status=413))
    # Futures are settled first (the answer is not delayed by the UI), then on_commit is told.
    await wait_until(lambda: len(notices) == 2, what="two notices")
    assert notices[0].event_ids == [new_id]
    light = notices[0].events[0]
    assert light["id"] == new_id and light["event"] == "payment_gateway.view"
    assert "body" not in light and "headers" not in light
    assert notices[-1].rejected[0]["status"] == 413 and notices[-1].rejected_ids == [rej_id]
    assert writer.stats.by_event["payment_gateway.view"] == 1


async def test_on_commit_failure_does_not_stop_the_writer(make_writer: Callable[..., Writer]) -> None:
    def explode(_notice: CommitNotice) -> None:
        raise RuntimeError("ui went away")

    writer = make_writer(on_commit=explode)
    assert await writer.submit("events", event_row(b"1")) == 1
    assert await writer.submit("events", event_row(b"2")) == 2


async def test_stop_writes_what_was_submitted_then_refuses(db_path: Path) -> None:
    writer = Writer(db_path)
    writer.start()
    futures = [writer.submit("events", event_row(f"{i}".encode())) for i in range(200)]
    await asyncio.to_thread(writer.stop)
    assert len(set(await asyncio.gather(*futures))) == 200
    assert count(db_path, "events") == 200
    with pytest.raises(StoreUnavailable):
        await writer.submit("events", event_row(b"late"))


async def test_an_unstorable_row_fails_alone(make_writer: Callable[..., Writer], db_path: Path) -> None:
    writer = make_writer()
    good = [writer.submit("events", event_row(f"{i}".encode())) for i in range(50)]
    bad = writer.submit("events", event_row(b"bad", path="/\ud800"))  # cannot be encoded for SQLite
    good += [writer.submit("events", event_row(f"x{i}".encode())) for i in range(50)]
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], UnstorableRow)
    assert all(isinstance(r, int) for r in results[:-1])
    assert count(db_path, "events") == 100
    assert await writer.submit("events", event_row(b"after")) == 101  # the thread lives on
    assert writer.healthy


async def test_idle_writer_builds_the_search_index(make_writer: Callable[..., Writer], db_path: Path) -> None:
    writer = make_writer()
    bodies = [f'{{"word":"w{i}"}}'.encode() for i in range(1200)]
    ids = await asyncio.gather(*(writer.submit("events", event_row(body)) for body in bodies))
    upto = lambda: read_rows(db_path, "SELECT indexed_upto AS n FROM search_state")[0]["n"]  # noqa: E731
    await wait_until(lambda: upto() == max(ids), what="the search index to catch up")
    hits = read_rows(db_path, "SELECT rowid AS id FROM events_fts WHERE events_fts MATCH ?", ('"w1199"',))
    assert [h["id"] for h in hits] == [ids[1199]]


# --- faults and recovery ----------------------------------------------------------------------


async def _outage_then_recovery(writer: Writer, db_path: Path, fix: Callable[[], None]) -> None:
    """While broken: deliveries fail with StoreUnavailable, rejections are kept; once fixed: all good."""
    pad = b"p" * 64 * 1024  # more than the free space left in any page (for the "full" case)
    with pytest.raises(StoreUnavailable, match="cannot be written"):
        await asyncio.wait_for(writer.submit("events", event_row(b'{"during":"outage","pad":"%s"}' % pad)), 20)
    assert not writer.healthy and writer.stats.failures >= 1
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(writer.submit("rejected", rejected_row(pad, status=400)), 20)
    writer.submit_nowait("rejected", rejected_row(pad, status=413))
    fix()
    # The backlog is retried on its own: no new delivery is needed.
    await wait_until(lambda: count(db_path, "rejected") == 2, what="backlog written after recovery")
    assert sorted(r["status"] for r in read_rows(db_path, "SELECT status FROM rejected")) == [400, 413]
    new_id = await asyncio.wait_for(writer.submit("events", event_row(b'{"after":"recovery"}')), 20)
    assert read_rows(db_path, "SELECT body FROM events WHERE id = ?", (new_id,)) == [{"body": b'{"after":"recovery"}'}]
    assert count(db_path, "events") == 1  # the refused delivery was not written
    assert writer.healthy


async def test_locked_database(make_writer: Callable[..., Writer], db_path: Path) -> None:
    writer = make_writer(busy_timeout=0.05, retry_interval=0.05)
    await writer.submit("events", event_row(b"warm-up"))  # connection open before the lock
    read_rows(db_path, "SELECT 1")
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await asyncio.wait_for(writer.submit("events", event_row(b'{"during":"lock"}')), 20)
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    new_id = await asyncio.wait_for(writer.submit("events", event_row(b"after")), 20)
    assert new_id == 2
    assert [r["body"] for r in read_rows(db_path, "SELECT body FROM events ORDER BY id")] == [b"warm-up", b"after"]


async def test_locked_database_keeps_rejections(make_writer: Callable[..., Writer], db_path: Path) -> None:
    writer = make_writer(busy_timeout=0.05, retry_interval=0.05)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    released = False

    def release() -> None:
        nonlocal released
        conn.execute("ROLLBACK")
        conn.close()
        released = True

    try:
        await _outage_then_recovery(writer, db_path, release)
    finally:
        if not released:
            release()


async def test_full_database(make_writer: Callable[..., Writer], db_path: Path) -> None:
    limit: dict[str, int | None] = {"pages": None}

    def connect() -> sqlite3.Connection:
        conn = store.connect(db_path).conn
        if limit["pages"] is None:  # as full as it is now
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    writer = make_writer(connect=connect, retry_interval=0.05)
    big = b'{"pad":"' + b"x" * 200_000 + b'"}'
    with pytest.raises(StoreUnavailable, match="full"):
        await asyncio.wait_for(writer.submit("events", event_row(big)), 20)

    def grow() -> None:
        limit["pages"] = 0

    await _outage_then_recovery(writer, db_path, grow)
    assert await writer.submit("events", event_row(big)) == 2


async def test_read_only_database(make_writer: Callable[..., Writer], db_path: Path) -> None:
    connect = ReadOnlySwitch(db_path, on=True)

    writer = make_writer(connect=connect, retry_interval=0.05)
    await _outage_then_recovery(writer, db_path, lambda: setattr(connect, "on", False))


async def test_unopenable_database(make_writer: Callable[..., Writer], db_path: Path) -> None:
    state = {"broken": True}

    def connect() -> sqlite3.Connection:
        if state["broken"]:
            raise OSError("disk went away")
        return store.connect(db_path).conn

    writer = make_writer(connect=connect, retry_interval=0.05)
    await _outage_then_recovery(writer, db_path, lambda: state.update(broken=False))


async def test_backlog_is_bounded(make_writer: Callable[..., Writer], db_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("monitor.writer.MAX_REJECTED_BACKLOG", 5)
    state = {"broken": True}

    def connect() -> sqlite3.Connection:
        if state["broken"]:
            raise sqlite3.OperationalError("unable to open database file")
        return store.connect(db_path).conn

    writer = make_writer(connect=connect, retry_interval=0.05)
    for _ in range(12):
        writer.submit_nowait("rejected", rejected_row())
    with pytest.raises(StoreUnavailable):
        await writer.submit("events", event_row(b"x"))
    state["broken"] = False
    await writer.submit("events", event_row(b"y"))
    assert count(db_path, "rejected") <= 5
