"""The SQLite store: schema, upgrades, refusal of foreign files, the batch write."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from monitor import store
from monitor.events import COLUMNS
from monitor.store import SCHEMA_VERSION, StoreError, open_store, write_batch
from tests.helpers import event_row, read_rows, rejected_row


def columns(path: Path, table: str) -> set[str]:
    return {row["name"] for row in read_rows(path, f"PRAGMA table_info({table})")}


def test_open_store_creates_schema_with_wal(db_path: Path) -> None:
    db = open_store(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()
    assert {"sessions", "events", "rejected"} <= set(
        r["name"] for r in read_rows(db_path, "SELECT name FROM sqlite_master")
    )
    assert {
        "id",
        "session_id",
        "received_at",
        "method",
        "path",
        "remote_addr",
        "headers",
        "body",
        "body_sha256",
        "duplicate_of",
        "signature",
        "event",
        "user_id",
        "created_at",
    } <= columns(db_path, "events")
    assert set(COLUMNS) <= columns(db_path, "events")
    assert {
        "id",
        "session_id",
        "received_at",
        "method",
        "path",
        "remote_addr",
        "headers",
        "status",
        "reason",
        "body",
        "body_size",
    } <= columns(db_path, "rejected")
    assert {"id", "started_at", "ended_at", "listen", "mode"} <= columns(db_path, "sessions")
    types = {r["name"]: r["type"] for r in read_rows(db_path, "PRAGMA table_info(events)")}
    assert types["body"] == "BLOB" and types["received_at"] == "REAL" and types["id"] == "INTEGER"


def test_indexes_for_the_ui(db_path: Path) -> None:
    open_store(db_path).close()
    indexed = {
        tuple(r["name"] for r in read_rows(db_path, f"PRAGMA index_info('{index['name']}')"))
        for index in read_rows(db_path, "PRAGMA index_list(events)")
    }
    for wanted in [
        ("received_at",),
        ("event", "received_at"),
        ("user_id", "received_at"),
        ("content_id",),
        ("body_sha256",),
    ]:
        assert wanted in indexed


def test_migrate_is_idempotent(db_path: Path) -> None:
    db = open_store(db_path)
    store.migrate(db)
    store.migrate(db)
    db.close()
    db = open_store(db_path)
    db.close()
    assert read_rows(db_path, "PRAGMA user_version")[0]["user_version"] == SCHEMA_VERSION


def test_older_database_is_upgraded_and_keeps_its_rows(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.executescript(
        """
        CREATE TABLE sessions (id INTEGER PRIMARY KEY, started_at REAL, ended_at REAL);
        CREATE TABLE events (id INTEGER PRIMARY KEY, session_id INTEGER, received_at REAL, body BLOB,
                             event TEXT, user_id TEXT);
        CREATE TABLE rejected (id INTEGER PRIMARY KEY, received_at REAL, status INTEGER, reason TEXT);
        INSERT INTO sessions VALUES (1, 1700000000.0, 1700000100.0);
        INSERT INTO events VALUES (1, 1, 1700000001.0, X'7B7D', 'payment_gateway.view', 'u1');
        INSERT INTO events VALUES (2, 1, 1700000002.0, X'7B7D', 'payment_gateway.close', 'u1');
        INSERT INTO rejected VALUES (1, 1700000003.0, 400, 'empty body');
        """
    )
    conn.close()
    assert read_rows(db_path, "PRAGMA user_version")[0]["user_version"] == 0

    db = open_store(db_path)
    db.close()

    assert read_rows(db_path, "PRAGMA user_version")[0]["user_version"] == SCHEMA_VERSION
    assert set(store.EVENTS_COLUMNS) <= columns(db_path, "events")
    assert set(store.REJECTED_COLUMNS) <= columns(db_path, "rejected")
    assert set(store.SESSION_COLUMNS) <= columns(db_path, "sessions")
    events = read_rows(db_path, "SELECT id, event, body, body_sha256, gateway_session_id FROM events ORDER BY id")
    assert [(e["id"], e["event"], e["body"], e["body_sha256"]) for e in events] == [
        (1, "payment_gateway.view", b"{}", None),
        (2, "payment_gateway.close", b"{}", None),
    ]
    assert read_rows(db_path, "SELECT id, status, reason, body_size FROM rejected") == [
        {"id": 1, "status": 400, "reason": "empty body", "body_size": None}
    ]
    # And it works as a store afterwards: new ids continue after the old ones.
    conn = store.connect(db_path).conn
    done = write_batch(conn, [event_row(b'{"a":1}')], [])
    conn.close()
    assert done.event_ids == [3]


def test_foreign_sqlite_database_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers VALUES (1, 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a conscent-monitor database"):
        open_store(db_path)
    assert {r["name"] for r in read_rows(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")} == {
        "customers"
    }


def test_foreign_database_with_a_sessions_table_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE sessions (token TEXT PRIMARY KEY, user TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a conscent-monitor database"):
        open_store(db_path)
    assert columns(db_path, "sessions") == {"token", "user"}


def test_non_sqlite_file_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"this is a text file, not a database\n" * 100)
    with pytest.raises(StoreError, match=str(db_path.name)):
        open_store(db_path)


def test_newer_schema_is_refused(db_path: Path) -> None:
    open_store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(db_path)


def test_empty_existing_file_becomes_a_store(db_path: Path) -> None:
    db_path.write_bytes(b"")
    open_store(db_path).close()
    assert "events" in {r["name"] for r in read_rows(db_path, "SELECT name FROM sqlite_master")}


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        open_store(tmp_path)


def test_sessions(store_db: Any, db_path: Path) -> None:
    sid = store.start_session(store_db, listen=None, mode="headless")
    store.set_session_listen(store_db, sid, "http://127.0.0.1:1234/")
    row = read_rows(db_path, "SELECT * FROM sessions WHERE id = ?", (sid,))[0]
    assert row["listen"] == "http://127.0.0.1:1234/" and row["mode"] == "headless" and row["ended_at"] is None
    store.end_session(store_db, sid)
    row = read_rows(db_path, "SELECT * FROM sessions WHERE id = ?", (sid,))[0]
    assert row["ended_at"] >= row["started_at"]


def test_write_batch_assigns_ids_and_marks_duplicates(store_db: Any, db_path: Path) -> None:
    conn = store_db.conn
    a, b = b'{"event":"a"}', b'{"event":"b"}'
    first = write_batch(conn, [event_row(a), event_row(b)], [rejected_row()])
    assert first.event_ids == [1, 2] and first.rejected_ids == [1]
    # Within one batch: the second and third copies of c point at the first c.
    c = b'{"event":"c"}'
    second = write_batch(
        conn, [event_row(c), event_row(a), event_row(c), event_row(c)], [rejected_row(), rejected_row()]
    )
    assert second.event_ids == [3, 4, 5, 6] and second.rejected_ids == [2, 3]
    rows = {r["id"]: r for r in read_rows(db_path, "SELECT id, body, duplicate_of FROM events")}
    assert {i: r["duplicate_of"] for i, r in rows.items()} == {1: None, 2: None, 3: None, 4: 1, 5: 3, 6: 3}
    assert rows[4]["body"] == a
    # Across batches, later still: a points at 1, b at 2.
    third = write_batch(conn, [event_row(b), event_row(a)], [])
    dups = read_rows(db_path, "SELECT id, duplicate_of FROM events WHERE id IN (?, ?)", tuple(third.event_ids))
    assert {r["id"]: r["duplicate_of"] for r in dups} == {7: 2, 8: 1}


def test_write_batch_stores_every_column(store_db: Any, db_path: Path) -> None:
    row = event_row(b"{}", gateway_session_id="65e01bdad03692125f1f3540", latitude=28.5, notes="x: y")
    write_batch(store_db.conn, [row], [])
    stored = read_rows(db_path, "SELECT * FROM events")[0]
    for key, value in row.items():
        assert stored[key] == value, key


def test_write_batch_is_all_or_nothing(store_db: Any, db_path: Path) -> None:
    conn = store_db.conn
    write_batch(conn, [event_row(b"{}")], [])
    bad = event_row(b'{"x":1}') | {"headers": {"not": "bindable"}}  # sqlite3 cannot bind a dict
    with pytest.raises(sqlite3.Error):
        write_batch(conn, [event_row(b'{"ok":1}'), bad], [rejected_row()])
    assert not conn.in_transaction
    assert [r["id"] for r in read_rows(db_path, "SELECT id FROM events")] == [1]
    assert read_rows(db_path, "SELECT id FROM rejected") == []
    # The connection is still usable.
    assert write_batch(conn, [event_row(b'{"ok":1}')], []).event_ids == [2]


def test_write_batch_rolls_back_on_any_exception(store_db: Any, db_path: Path) -> None:
    bad = event_row(b"{}", path="\ud800")  # cannot be encoded for SQLite
    with pytest.raises(UnicodeEncodeError):
        write_batch(store_db.conn, [event_row(b"{}"), bad], [])
    assert not store_db.conn.in_transaction
    assert read_rows(db_path, "SELECT id FROM events") == []


def test_empty_batch(store_db: Any) -> None:
    done = write_batch(store_db.conn, [], [])
    assert done.event_ids == [] and done.rejected_ids == []


def test_readonly_connection_cannot_write(store_db: Any, db_path: Path) -> None:
    ro = store.connect(db_path, readonly=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            write_batch(ro.conn, [event_row(b"{}")], [])
    finally:
        ro.close()
