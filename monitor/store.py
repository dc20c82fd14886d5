"""The SQLite database: schema, upgrades, sessions and the group-commit write.

A plain sqlite-utils database that other tools (sqlite-utils, Datasette) can
open. Times are epoch seconds (REAL). The schema is documented in README.md;
``SCHEMA_VERSION`` is stored in ``PRAGMA user_version``.

Only the writer thread writes events; every other reader opens its own
connection (WAL lets readers and the writer work side by side).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor.events import COLUMNS as EVENT_COLUMNS

SCHEMA_VERSION = 1
DEFAULT_DB = "conscent-monitor.db"
REJECTED_BODY_LIMIT = 64 * 1024
BUSY_TIMEOUT_MS = 2000
PAGE_SIZE = 16384
SEARCH_TABLE = "events_fts"

_TEXT, _REAL, _INT, _BLOB = str, float, int, bytes

SESSION_COLUMNS: dict[str, type] = {
    "id": _INT,
    "started_at": _REAL,
    "ended_at": _REAL,
    "listen": _TEXT,
    "mode": _TEXT,
    "pid": _INT,
    "version": _TEXT,
    "source": _TEXT,
}

#: What ``events`` and ``rejected`` both record about the request.
_REQUEST_COLUMNS: dict[str, type] = {
    "id": _INT,
    "session_id": _INT,
    "received_at": _REAL,
    "method": _TEXT,
    "path": _TEXT,
    "remote_addr": _TEXT,
    "headers": _TEXT,
}

#: Delivery columns, before the parsed columns of :class:`EventRecord`.
DELIVERY_COLUMNS: dict[str, type] = _REQUEST_COLUMNS | {
    "content_type": _TEXT,
    "body": _BLOB,
    "body_size": _INT,
    "body_sha256": _TEXT,
    "duplicate_of": _INT,
    "signature": _TEXT,
    "basic_auth": _TEXT,
}

_PARSED_TYPES: dict[str, type] = {
    "created_at": _REAL,
    "latitude": _REAL,
    "longitude": _REAL,
    "amount": _REAL,
}

EVENTS_COLUMNS: dict[str, type] = DELIVERY_COLUMNS | {name: _PARSED_TYPES.get(name, _TEXT) for name in EVENT_COLUMNS}

REJECTED_COLUMNS: dict[str, type] = _REQUEST_COLUMNS | {
    "status": _INT,
    "reason": _TEXT,
    "body": _BLOB,
    "body_size": _INT,
}

#: One row per attempt to pass a delivery on to the developer's application:
#: automatic forwards (``--forward-to``) and replays from the TUI.
FORWARD_COLUMNS: dict[str, type] = {
    "id": _INT,
    "event_id": _INT,
    "session_id": _INT,
    "kind": _TEXT,  # "forward" or "replay"
    "attempt": _INT,
    "target": _TEXT,
    "requested_at": _REAL,
    "status": _INT,  # the target's HTTP status; NULL when no answer
    "latency_ms": _REAL,
    "error": _TEXT,
    "request_body": _BLOB,  # only when it differs from the delivery's body (an edited replay)
    "request_headers": _TEXT,
    "response_headers": _TEXT,
    "response_body": _BLOB,  # first 64 KiB
    "response_size": _INT,
}

TABLES: dict[str, dict[str, type]] = {
    "sessions": SESSION_COLUMNS,
    "events": EVENTS_COLUMNS,
    "rejected": REJECTED_COLUMNS,
    "forwards": FORWARD_COLUMNS,
}

#: The queries the UI runs: newest first per session, by event, reader,
#: content, pairing key and exact bytes (duplicates).
INDEXES: dict[str, list[tuple[str, ...]]] = {
    "events": [
        ("received_at",),
        ("session_id", "received_at"),
        ("event", "received_at"),
        ("session_id", "event", "received_at"),
        ("user_id", "received_at"),
        ("content_id",),
        ("gateway_session_id",),
        ("body_sha256",),
    ],
    "rejected": [("received_at",), ("session_id", "received_at")],
    "forwards": [("event_id", "id")],
}


class StoreError(Exception):
    """The database cannot be opened or is not a monitor database."""


class StoreUnavailable(Exception):
    """The database cannot be written right now (read-only, full, locked)."""


def connect(
    path: str | Path, *, readonly: bool = False, busy_timeout: float = BUSY_TIMEOUT_MS / 1000
) -> sqlite_utils.Database:
    """Open a connection configured the way every part of the monitor expects.

    ``busy_timeout`` is how long (seconds) a write waits for another
    connection's lock before failing with "database is locked".
    """
    if readonly:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=busy_timeout)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout)
    try:
        conn.isolation_level = None  # we issue BEGIN/COMMIT ourselves
        db = sqlite_utils.Database(conn, execute_plugins=False)
        if not readonly:
            # Only takes effect on a new, empty database: a delivery row is
            # about 2.5 KB, and 16 KiB pages pack them a third tighter than 4 KiB.
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return db


def open_store(path: str | Path) -> sqlite_utils.Database:
    """Open (creating or upgrading) the database at ``path`` for writing.

    Raises :class:`StoreError` when the file is not a SQLite database, belongs
    to another program, comes from a newer version, or cannot be written.
    """
    try:
        db = connect(path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the database ({exc})") from None
    try:
        migrate(db)
    except sqlite3.Error as exc:
        db.close()
        raise StoreError(f"{path}: cannot use the database ({exc})") from None
    except BaseException:
        db.close()
        raise
    return db


def open_for_review(path: str | Path) -> None:
    """Check that ``path`` is a monitor database a reader can open; upgrade it if possible.

    Raises :class:`StoreError` with a message for a person: missing file, not
    SQLite, corrupt, or some other program's database.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    try:
        db = connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open ({exc})") from None
    try:
        names = set(db.table_names())
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute("SELECT id FROM events ORDER BY id DESC LIMIT 1").fetchall() if "events" in names else None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a readable SQLite database ({exc})") from None
    finally:
        db.close()
    if not {"events", "sessions"} <= names:
        shown = ", ".join(sorted(names)) or "none"
        raise StoreError(f"{path}: not a conscent-monitor database (tables: {shown})")
    if version < SCHEMA_VERSION and os.access(path, os.W_OK):
        open_store(path).close()  # an older schema: add what this version reads


def migrate(db: sqlite_utils.Database) -> None:
    """Create missing tables, columns and indexes; record the schema version.

    Every upgrade so far only adds, so the generic step below is the whole
    migration: an older database gains the new columns (NULL for old rows).
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"database schema {version} is newer than this program ({SCHEMA_VERSION})")
    names = set(db.table_names()) - {"sqlite_sequence"}
    if version == 0 and names and not _looks_like_ours(db, names):
        raise StoreError(f"not a conscent-monitor database (tables: {', '.join(sorted(names))})")
    with db.atomic():
        for name, columns in TABLES.items():
            table = db.table(name)
            if not table.exists():
                table.create(columns, pk="id")
                continue
            have = set(table.columns_dict)
            for column, kind in columns.items():
                if column not in have:
                    table.add_column(column, kind)
        for name, indexes in INDEXES.items():
            for cols in indexes:
                db.table(name).create_index(cols, if_not_exists=True)
        _create_search(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_search(db: sqlite_utils.Database) -> None:
    # Contentless and detail=none: the index only answers "which rows hold
    # these words", which is all the filter asks, at a fraction of the size.
    db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(body, content='', detail=none)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS search_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL)"
    )
    db.execute("INSERT OR IGNORE INTO search_state (id, indexed_upto) VALUES (1, 0)")


def index_pending(conn: sqlite3.Connection, limit: int = 2000) -> int:
    """Add up to ``limit`` not-yet-indexed bodies to the search index.

    Search indexing is kept off the delivery path: the writer catches up when
    it is idle, an import at its end. Rows above ``search_state.indexed_upto``
    are still found by the filter, with a slower substring scan.
    Returns how many rows were indexed (0 when up to date).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        upto = conn.execute("SELECT indexed_upto FROM search_state WHERE id = 1").fetchone()[0]
        rows = conn.execute("SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?", (upto, limit)).fetchall()
        if rows:
            conn.executemany(
                f"INSERT INTO {SEARCH_TABLE} (rowid, body) VALUES (?, ?)",
                [(row_id, _search_text(body)) for row_id, body in rows],
            )
            conn.execute("UPDATE search_state SET indexed_upto = ? WHERE id = 1", (rows[-1][0],))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(rows)


def _search_text(body: bytes | str | None) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body or ""


def _looks_like_ours(db: sqlite_utils.Database, names: set[str]) -> bool:
    """An unversioned database with tables is ours when it has our ``events`` table.

    Every version so far has stored the received time and the raw body; a
    table that merely shares a name (``sessions`` is common) is not enough.
    """
    if "events" not in names:
        return False
    return {"received_at", "body"} <= set(db.table("events").columns_dict)


def start_session(db: sqlite_utils.Database, *, listen: str | None, mode: str, source: str | None = None) -> int:
    from monitor import __version__

    with db.atomic():
        cursor = db.execute(
            "INSERT INTO sessions (started_at, listen, mode, pid, version, source) VALUES (?, ?, ?, ?, ?, ?)",
            [time.time(), listen, mode, os.getpid(), __version__, source],
        )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def set_session_listen(db: sqlite_utils.Database, session_id: int, listen: str) -> None:
    with db.atomic():
        db.execute("UPDATE sessions SET listen = ? WHERE id = ?", [listen, session_id])


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database file and truncate it: the ``.db`` alone is then the whole session.

    Called on every clean exit. Returns False when a reader still holds an
    old snapshot (the WAL then stays, and SQLite folds it in when the last
    connection closes); never raises for a database that cannot be written.
    """
    try:
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error:
        return False
    return not busy


def end_session(db: sqlite_utils.Database, session_id: int) -> None:
    with db.atomic():
        db.execute("UPDATE sessions SET ended_at = ? WHERE id = ?", [time.time(), session_id])


@dataclass(slots=True)
class Committed:
    """What one group commit wrote: the new ids, in order."""

    event_ids: list[int]
    rejected_ids: list[int]
    forward_ids: list[int] = field(default_factory=list)


_EVENT_NAMES = [c for c in EVENTS_COLUMNS if c != "duplicate_of"]
_EVENT_ID_AT = 1 + _EVENT_NAMES.index("id")  # in the values of _INSERT_EVENT, after duplicate_of
_INSERT_EVENT = "INSERT INTO events ({}) VALUES ({})".format(
    ", ".join(["duplicate_of", *_EVENT_NAMES]), ", ".join("?" * (len(_EVENT_NAMES) + 1))
)
_INSERT_REJECTED = "INSERT INTO rejected ({}) VALUES ({})".format(
    ", ".join(REJECTED_COLUMNS), ", ".join("?" * len(REJECTED_COLUMNS))
)
_INSERT_FORWARD = "INSERT INTO forwards ({}) VALUES ({})".format(
    ", ".join(FORWARD_COLUMNS), ", ".join("?" * len(FORWARD_COLUMNS))
)


def write_batch(
    conn: sqlite3.Connection,
    events: Sequence[dict[str, Any]],
    rejected: Sequence[dict[str, Any]],
    forwards: Sequence[dict[str, Any]] = (),
) -> Committed:
    """Insert deliveries, rejections and forwards in one transaction; all or nothing.

    Ids are assigned here (the write lock is held), so a delivery can point at
    the first delivery of the same bytes even when both are in this batch.
    ``sqlite3.Error`` propagates after a rollback.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        event_ids = _assign_ids(conn, "events", len(events))
        firsts = _first_by_sha(conn, {row["body_sha256"] for row in events})
        event_rows = []
        for new_id, row in zip(event_ids, events, strict=True):
            first = firsts.setdefault(row["body_sha256"], new_id)
            values = [first if first != new_id else None, *map(row.get, _EVENT_NAMES)]
            values[_EVENT_ID_AT] = new_id
            event_rows.append(values)
        rejected_ids = _assign_ids(conn, "rejected", len(rejected))
        rejected_rows = [
            [new_id if name == "id" else row.get(name) for name in REJECTED_COLUMNS]
            for new_id, row in zip(rejected_ids, rejected, strict=True)
        ]
        forward_ids = _assign_ids(conn, "forwards", len(forwards))
        forward_rows = [
            [new_id if name == "id" else row.get(name) for name in FORWARD_COLUMNS]
            for new_id, row in zip(forward_ids, forwards, strict=True)
        ]
        if event_rows:
            conn.executemany(_INSERT_EVENT, event_rows)
        if rejected_rows:
            conn.executemany(_INSERT_REJECTED, rejected_rows)
        if forward_rows:
            conn.executemany(_INSERT_FORWARD, forward_rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # keep the original error
                conn.execute("ROLLBACK")
        raise
    return Committed(event_ids, rejected_ids, forward_ids)


def _assign_ids(conn: sqlite3.Connection, table: str, count: int) -> list[int]:
    if not count:
        return []
    top = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    return list(range(top + 1, top + 1 + count))


def _first_by_sha(conn: sqlite3.Connection, shas: Iterable[str]) -> dict[str, int]:
    # One indexed probe per distinct body: "ORDER BY id LIMIT 1" stops at the
    # first entry, where min() with GROUP BY would walk every earlier copy
    # (a load test that repeats one body makes that quadratic).
    found: dict[str, int] = {}
    for sha in shas:
        row = conn.execute(_FIRST_BY_SHA, (sha,)).fetchone()
        if row is not None:
            found[sha] = row[0]
    return found


_FIRST_BY_SHA = "SELECT id FROM events WHERE body_sha256 = ? ORDER BY id LIMIT 1"
