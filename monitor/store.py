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
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor import facets
from monitor.events import COLUMNS as EVENT_COLUMNS

#: 2: the indexes of the checks and the Insights screen (issue 15); 3: the facets index of the filters (issue 16)
SCHEMA_VERSION = 3
DEFAULT_DB = "conscent-monitor.db"
REJECTED_BODY_LIMIT = 64 * 1024
BUSY_TIMEOUT_MS = 2000
PAGE_SIZE = 16384
SEARCH_TABLE = "events_fts"
#: Body bytes per search-indexing transaction (at least one row). Counting rows
#: alone, 500 bodies of 1 MiB took the monitor to 1 GB RSS for good. Indexing
#: runs at ~50-100 ms per MiB and a delivery waits behind a chunk: 8 MiB chunks
#: took ~400 ms, 1 MiB ones <= ~100 ms; 500 typical 1 KB bodies fit in one.
INDEX_BYTES = 1024 * 1024

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

#: The Insights screen's figures (``queries.insights``) and the checks' payment
#: lookups walk this covering index: one index range per event type, no table row.
INSIGHTS_INDEX: tuple[str, ...] = (
    "event", "content_id", "paywall_id", "click_action", "session_id", "user_id", "created_at", "received_at",
    "gateway_session_id", "duplicate_of",
)  # fmt: skip

#: The queries the UI runs: newest first per session, by event, reader,
#: content, pairing key and exact bytes (duplicates). More below (SPECIAL_INDEXES).
INDEXES: dict[str, list[tuple[str, ...]]] = {
    "events": [
        ("received_at",),
        ("session_id", "received_at"),
        ("event", "received_at"),
        ("session_id", "event", "received_at"),
        ("user_id", "received_at"),
        # A reader's drill-down (issue 16): counts per event, views, closes and repeats, purchases and the
        # created-time order of 10,000 events from the index alone.
        (
            "user_id",
            "event",
            "duplicate_of",
            "created_at",
            "received_at",
            "content_id",
            "client_content_id",
            "session_id",
        ),
        ("content_id",),
        ("gateway_session_id",),
        ("body_sha256",),
    ],
    "rejected": [("received_at",), ("session_id", "received_at"), ("status", "received_at")],
    "forwards": [("event_id", "id"), ("status", "event_id")],
}


# The Insights screen and the integration checks (monitor/checks.py) walk four more indexes,
# named, or that ``INDEXES`` cannot express (an expression, two partial indexes). A partial
# index only grows with the rows its WHERE admits, and SQLite uses it for a
# query only when one of the query's AND terms is, word for word, its WHERE or
# one arm of it: the checks build their WHERE from the same strings.

#: A delivery's lag, as the lag index and the ``lag:`` filter write it.
LAG = "received_at - created_at"
#: Gateway views and closes (the pairing index's WHERE).
GATEWAY_ROWS = "event IN ('payment_gateway.view', 'payment_gateway.close')"
#: A gateway row's content id, as the checks compare it.
GATEWAY_CONTENT = "coalesce(nullif(content_id, ''), nullif(client_content_id, ''))"
#: The arms of the problem index's WHERE: rows some check reports, few in a healthy integration.
PROBLEM_ARMS: dict[str, str] = {
    "signature": "signature IN ('invalid', 'missing')",
    "basic_auth": "basic_auth IN ('invalid', 'missing')",
    "duplicate": "duplicate_of IS NOT NULL",
    "notes": "notes IS NOT NULL",
    # The parse turns a created_at in milliseconds into seconds with a fraction.
    "fraction": "created_at <> CAST(created_at AS INTEGER)",
    # One term, not "gateway AND lacking": SQLite splits a query's WHERE on AND before matching.
    "gateway_lacking": (
        f"CASE WHEN {GATEWAY_ROWS} THEN nullif(gateway_session_id, '') IS NULL OR {GATEWAY_CONTENT} IS NULL"
        " OR (event = 'payment_gateway.close' AND nullif(click_action, '') IS NULL) ELSE 0 END"
    ),
}
INSIGHTS_INDEX_NAME = "idx_events_insights"
LAG_INDEX = "idx_events_lag"
PAIRING_INDEX = "idx_events_gateway_pairs"
PROBLEM_INDEX = "idx_events_problems"
#: Indexes named here (``INDEXED BY``) or that ``INDEXES`` cannot express: ``migrate`` creates the missing ones.
#: - the Insights screen's covering index (above);
#: - the lag (late and future deliveries, p50/p95/max by position, ``lag:`` also on gateway rows);
#: - gateway rows in pairing order (sessionId, reader, time): the pairing pass,
#:   no sort; only grows with gateway rows;
#: - rows with a problem (bad credentials, repeats, notes, a created_at with a
#:   fraction, gateway rows lacking a field): only grows with those rows.
SPECIAL_INDEXES: dict[str, str] = {
    INSIGHTS_INDEX_NAME: (f"CREATE INDEX IF NOT EXISTS {INSIGHTS_INDEX_NAME} ON events ({', '.join(INSIGHTS_INDEX)})"),
    LAG_INDEX: f"CREATE INDEX IF NOT EXISTS {LAG_INDEX} ON events ({LAG}, session_id, event, received_at, created_at)",
    PAIRING_INDEX: (
        f"CREATE INDEX IF NOT EXISTS {PAIRING_INDEX} ON events (gateway_session_id, user_id, created_at, received_at,"
        " event, session_id, duplicate_of, paywall_id, content_id, client_content_id, click_action)"
        f" WHERE {GATEWAY_ROWS}"
    ),
    PROBLEM_INDEX: (
        f"CREATE INDEX IF NOT EXISTS {PROBLEM_INDEX} ON events (session_id, received_at, signature, basic_auth,"
        " duplicate_of, notes, created_at) WHERE " + " OR ".join(f"({arm})" for arm in PROBLEM_ARMS.values())
    ),
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
        else:
            _stand_in_for_facets(conn)
    except BaseException:
        conn.close()
        raise
    return db


def _stand_in_for_facets(conn: sqlite3.Connection) -> None:
    """On a read-only file older than schema 3: an empty facets index, so that filters scan every row.

    Temporary objects (this connection only) shadow the names the filters
    read; the file is not touched. A file of schema 3 needs none.
    """
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= 3:
            return
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return  # not a database we can read: the caller says so
    if "events" not in tables:
        return
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {facets.VALUES_TABLE} (id INTEGER PRIMARY KEY, field TEXT, value TEXT)"
    )
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{facets.FACETS_TABLE} USING fts5(words, content='', detail=none)"
    )
    upto = "indexed_upto" if "search_state" in tables else "0"
    source = "main.search_state" if "search_state" in tables else "(SELECT 0 AS indexed_upto)"
    conn.execute(
        f"CREATE TEMP VIEW IF NOT EXISTS search_state AS SELECT 1 AS id, {upto} AS indexed_upto, 0 AS facets_upto"
        f" FROM {source}"
    )


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
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a readable SQLite database ({exc})") from None
    finally:
        db.close()
    if not {"events", "sessions"} <= names:
        shown = ", ".join(sorted(names)) or "none"
        raise StoreError(f"{path}: not a conscent-monitor database (tables: {shown})")
    # An older schema, or indexes missing (an import killed while it rebuilt them): add what this version reads.
    if (version < SCHEMA_VERSION or not index_names() <= indexes) and os.access(path, os.W_OK):
        open_store(path).close()


def index_names() -> set[str]:
    """The names of every index the schema defines (sqlite-utils names the ``INDEXES``)."""
    made = {f"idx_{table}_{'_'.join(columns)}" for table, indexes in INDEXES.items() for columns in indexes}
    return made | set(SPECIAL_INDEXES)


#: Past this many events, opening a database of an older schema says it is being upgraded (it takes seconds).
UPGRADE_NOTICE_ROWS = 100_000


def upgrade_notice(path: str | Path) -> str | None:
    """What to say before opening ``path`` upgrades it for a while (new indexes on a large older file), else None.

    On this project's 2-core machine, per million events: about 8 s for the four indexes of schema 2 and
    :data:`FACETS_SECONDS` for the facets index of schema 3.
    """
    path = Path(path)
    if not path.is_file() or not os.access(path, os.W_OK):
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if not 0 < version < SCHEMA_VERSION:
                return None
            rows = conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0
    except sqlite3.Error:
        return None
    if rows < UPGRADE_NOTICE_ROWS:
        return None
    seconds = max(1, round(rows / 1_000_000 * ((8 if version < 2 else 0) + FACETS_SECONDS)))
    return (
        f"upgrading {path} for this version: indexes for the filters, the checks and Insights, "
        f"about {seconds} s for {rows:,} events (once)"
    )


#: Seconds to build the facets index of a million events (an upgrade to schema 3).
FACETS_SECONDS = 40


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
        if 0 < version < 3:
            db.execute(f"DROP INDEX IF EXISTS {LAG_INDEX}")  # schema 3 holds the event too (lag:, gateway rows)
        for statement in SPECIAL_INDEXES.values():
            db.execute(statement)
        _create_search(db)
        facets.create(db.conn)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if version < 3 and names:
        build_facets(db.conn)  # an older file: its events are indexed once (announced by upgrade_notice)


def build_facets(conn: sqlite3.Connection, chunk: int = 20_000) -> int:
    """Bring the facets index up to date, a transaction per ``chunk`` events; how many were added."""
    done = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            added = facets.index_pending(conn, chunk)
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise
        if not added:
            return done
        done += added


def _create_search(db: sqlite_utils.Database) -> None:
    # Contentless and detail=none: the index only answers "which rows hold
    # these words", which is all the filter asks, at a fraction of the size.
    db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(body, content='', detail=none)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS search_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL)"
    )
    db.execute("INSERT OR IGNORE INTO search_state (id, indexed_upto) VALUES (1, 0)")


def index_pending(conn: sqlite3.Connection, limit: int = 2000, max_bytes: int = INDEX_BYTES) -> int:
    """Add up to ``limit`` not-yet-indexed bodies, about ``max_bytes`` of them, to the search index.

    And up to ``limit`` events to the facets index (:mod:`monitor.facets`).

    Search indexing is kept off the delivery path: the writer catches up when
    it is idle, an import at its end. Rows above ``search_state.indexed_upto``
    are still found by the filter, with a slower substring scan.
    Returns how many bodies were indexed, else how many events the facets index took (0 when both are
    up to date); at least one row
    whatever its size, so a body larger than ``max_bytes`` never stops the index.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        count = facets.index_pending(conn, limit)  # no bodies read: cheap, and filters need it most
        upto = conn.execute("SELECT indexed_upto FROM search_state WHERE id = 1").fetchone()[0]
        # length() of a BLOB reads the record header only, not the body's pages.
        sizes = conn.execute(
            "SELECT id, length(body) FROM events WHERE id > ? ORDER BY id LIMIT ?", (upto, limit)
        ).fetchall()
        last, bodies, total = upto, 0, 0
        for row_id, size in sizes:
            if bodies and total + (size or 0) > max_bytes:
                break
            last, bodies, total = row_id, bodies + 1, total + (size or 0)
        if bodies:
            # One body at a time from the cursor into the index: never a list of them.
            cursor = conn.execute("SELECT id, body FROM events WHERE id > ? AND id <= ? ORDER BY id", (upto, last))
            conn.executemany(
                f"INSERT INTO {SEARCH_TABLE} (rowid, body) VALUES (?, ?)",
                ((row_id, _search_text(body)) for row_id, body in cursor),
            )
            conn.execute("UPDATE search_state SET indexed_upto = ? WHERE id = 1", (last,))
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise
    return bodies or count


def _roll_back(conn: sqlite3.Connection) -> None:
    facets.forget(conn)  # its cache may hold values the rollback takes away
    if conn.in_transaction:
        conn.execute("ROLLBACK")


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

    Called on every clean exit, by a read-write connection (a read-only one
    cannot, and SQLite's own checkpoint on close only happens when the last
    connection to close is a read-write one: the TUI's readers close last).
    Returns False when a reader still holds an old snapshot after the busy
    timeout (the WAL then keeps the rest); never raises for a database that
    cannot be written.
    """
    try:
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error:
        return False
    return not busy


def tune_for_bulk(db: sqlite_utils.Database) -> None:
    """Settings for a long import on this connection: a larger cache, fewer and larger checkpoints."""
    db.execute("PRAGMA cache_size = -65536")  # 64 MiB: index upkeep on big tables
    db.execute("PRAGMA wal_autocheckpoint = 25000")  # fewer, larger checkpoints: less time writing


def count_duplicates(conn: sqlite3.Connection, first_id: int, last_id: int) -> int:
    """How many events between two ids repeat the bytes of an earlier one."""
    sql = "SELECT count(*) FROM events WHERE id BETWEEN ? AND ? AND duplicate_of IS NOT NULL"
    return int(conn.execute(sql, (first_id, last_id)).fetchone()[0])


def stamp_session(db: sqlite_utils.Database, session_id: int, listen: str) -> None:
    """Give a session the times of its first and last deliveries (a generated or imported one)."""
    with db.atomic():
        db.execute(
            "UPDATE sessions SET listen = :listen, "
            "started_at = coalesce((SELECT min(received_at) - 1 FROM events WHERE session_id = :id), started_at), "
            "ended_at = coalesce((SELECT max(received_at) + 1 FROM events WHERE session_id = :id), ended_at) "
            "WHERE id = :id",
            {"id": session_id, "listen": listen},
        )


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


# -- the file under a running monitor ----------------------------------------------------------
#
# SQLite writes through the file descriptors it opened: when the database is
# deleted, renamed or replaced under a running monitor, commits still succeed,
# into a file nobody can find at the path again (or, through the ``-wal`` left
# at the path, into the database that took its place). So the writer asks,
# before and after each commit, whether the path still names the files it
# opened (device and inode, one stat each), and when it no longer does, stops
# for good and saves what it had acknowledged (:func:`salvage`).

FileId = tuple[int, int]  # (st_dev, st_ino)

#: The first words of the message a monitor gives once its database is gone (tests and screens match on it).
FILE_LOST = "was deleted or replaced while the monitor ran; deliveries are refused (503)"


def file_id(path: str | Path) -> FileId | None:
    """Device and inode of what ``path`` names now; None when it names nothing we can reach."""
    try:
        st = os.stat(path)  # noqa: PTH116 - runs twice per commit: no Path object per call
    except OSError:
        return None
    return st.st_dev, st.st_ino


class DatabaseFile:
    """The database file (and its WAL) a writer opened, and whether the path still names them.

    The database is pinned once, when the monitor opens it. The WAL only while
    the writer's connection is open: it is the one file SQLite deletes and
    recreates on its own (when the last connection closes), never while a
    connection is open, and truncating it (a checkpoint) keeps its inode.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path.cwd() / path  # as the user named it (symlinks too), for messages
        self.wal = Path(os.path.realpath(self.path) + "-wal")  # SQLite puts it beside the real file
        self._db_name, self._wal_name = str(self.path), str(self.wal)  # os.stat(str) saves ~1 µs a call
        self.db_id = file_id(self._db_name)
        self.wal_id: FileId | None = None

    def pin_wal(self) -> None:
        """Call once a connection is open (and on a database that did not exist yet, pins it too)."""
        if self.db_id is None:
            self.db_id = file_id(self._db_name)
        self.wal = Path(os.path.realpath(self.path) + "-wal")
        self._wal_name = str(self.wal)
        self.wal_id = file_id(self._wal_name)

    def forget_wal(self) -> None:
        """Call when the connection closes: SQLite may then delete the WAL, rightly."""
        self.wal_id = None

    def check(self) -> str | None:
        """None while the path names the files opened; else which one changed ("db" or "wal")."""
        if self.db_id is not None and file_id(self._db_name) != self.db_id:
            return "db"
        if self.wal_id is not None and file_id(self._wal_name) != self.wal_id:
            return "wal"
        return None


def salvage(conn: sqlite3.Connection | None, file: DatabaseFile, change: str) -> str:
    """Keep every acknowledged row findable after ``file`` stopped being at its path; the message for a person.

    Through ``conn`` (a read-write connection still on the original inode):
    the WAL is folded into the monitor's own database file and truncated, so
    the ``-wal`` left at the path holds nothing a newcomer there could mistake
    for its own pages. A WAL deleted from under the database ends there: the
    file at the path holds every row again. A database moved elsewhere on the
    same filesystem is then whole where it went (found through
    ``/proc/self/fd`` where there is one). A database deleted (or replaced,
    which deletes it) is copied out of the still-open file: back to the path
    when nothing took its place, beside it otherwise, never over another file.
    ``conn`` is then marked so that closing it leaves the files at the path alone.
    Never raises.
    """
    lead = f"database file {file.path} {FILE_LOST}"
    tail = "restart the monitor to record again"
    if conn is None:  # nothing was written through this writer
        return f"{lead} — {tail}"
    folded = False
    for _ in range(3):  # a reader inside a transaction holds a TRUNCATE back (each try waits busy_timeout)
        if folded := checkpoint(conn):
            break
    try:
        detail = _after(conn, file, change, folded)
    except (OSError, sqlite3.Error) as exc:
        detail = (
            f"the acknowledged deliveries could not be copied out of the still-open file ({exc}); "
            "they are lost when the monitor exits unless the file is found"
        )
    finally:
        keep_files_on_close(conn)
    return f"{lead} — {detail}; {tail}"


def _after(conn: sqlite3.Connection, file: DatabaseFile, change: str, folded: bool) -> str:
    """What happened to the file and where the acknowledged rows are now (copying them out if need be)."""
    if change == "wal":
        if folded:
            return (
                f"its write-ahead log {file.wal} was deleted or replaced; every acknowledged delivery "
                f"was folded back into {file.path}"
            )
        return (
            f"its write-ahead log {file.wal} was deleted or replaced and a reader kept it from being folded "
            f"back into {file.path}: deliveries acknowledged since the last checkpoint are only in the open file"
        )
    name, links, mode = _whereabouts(file.db_id)
    if name is not None and links > 0 and folded:
        return f"it was moved to {name}, which holds every acknowledged delivery"
    taken = file_id(file.path) is not None
    rescued = _rescue_copy(conn, file.path, mode)
    if taken:
        return (
            f"another file took its place (left untouched); every acknowledged delivery was copied "
            f"from the still-open file to {rescued}"
        )
    gone = "deleted" if links == 0 else "deleted or moved"
    back = "back " if rescued == file.path else ""
    return f"it was {gone}; every acknowledged delivery was copied from the still-open file {back}to {rescued}"


def _whereabouts(db_id: FileId | None) -> tuple[str | None, int, int]:
    """Where this process's open database file is now, its link count (0: deleted) and its mode.

    ``(None, -1, 0o600)`` when nobody can tell (no ``/proc``); a name is only
    given when the open file still has it (a hard link elsewhere has none to show).
    """
    try:
        links = list(Path("/proc/self/fd").iterdir())
    except OSError:
        return None, -1, 0o600
    for link in links:
        try:
            st = link.stat()
            if (st.st_dev, st.st_ino) != db_id:
                continue
            name = str(link.readlink())
        except OSError:
            continue
        return (None if name.endswith(" (deleted)") else name), st.st_nlink, stat.S_IMODE(st.st_mode)
    return None, -1, 0o600


def _rescue_copy(conn: sqlite3.Connection, path: Path, mode: int) -> Path:
    """Copy the database ``conn`` has open to ``path``, or beside it if something is there now; returns where.

    ``VACUUM INTO`` a new temporary file, then a hard link to the final name:
    a link never replaces a file that appeared meanwhile (``VACUUM INTO``
    itself would overwrite a small file that is not a database).
    """
    import tempfile

    stamp = time.strftime("%Y%m%d-%H%M%S")
    targets = [path, path.with_name(f"{path.stem}.rescued-{stamp}{path.suffix}")]
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rescue", dir=path.parent)
    except OSError:  # the folder itself is gone: keep the copy in the temporary folder
        fd, name = tempfile.mkstemp(prefix=f"{path.stem}.rescued-{stamp}-", suffix=path.suffix)
        targets = []
    os.fchmod(fd, mode)  # the original's permissions, not mkstemp's 0600
    os.close(fd)
    conn.execute("VACUUM INTO ?", (name,))
    for target in targets:
        try:
            os.link(name, target)
        except FileExistsError:
            continue
        Path(name).unlink()
        return target
    return Path(name)


def keep_files_on_close(conn: sqlite3.Connection) -> bool:
    """Closing ``conn`` will not checkpoint, and will not delete ``-wal`` and ``-shm`` by name.

    SQLite's last connection to close checkpoints and then deletes the WAL
    and shared-memory files *by path*: after the database was replaced, those
    names may belong to the newcomer. Returns False where it cannot be set.
    """
    op = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", 1006)
    setconfig = getattr(conn, "setconfig", None)
    try:
        if setconfig is not None:  # Python 3.12+
            setconfig(op, True)
            return True
        return _db_config_311(conn, op)
    except (sqlite3.Error, OSError, AttributeError, ValueError):
        return False


def _db_config_311(conn: sqlite3.Connection, op: int) -> bool:
    """``sqlite3_db_config(db, op, 1, &out)`` on CPython 3.11, which has no ``Connection.setconfig``.

    The ``sqlite3 *`` is the first field after the object header in 3.11's
    ``pysqlite_Connection``; only that layout is trusted.
    """
    import ctypes
    import sys

    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return False
    if not isinstance(conn, sqlite3.Connection):
        return False
    import _sqlite3

    lib = ctypes.CDLL(_sqlite3.__file__)  # resolves the SQLite library the module uses
    handle = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    if not handle:  # closed
        return False
    out = ctypes.c_int(-1)
    rc = lib.sqlite3_db_config(ctypes.c_void_p(handle), ctypes.c_int(op), ctypes.c_int(1), ctypes.byref(out))
    return rc == 0 and out.value == 1
