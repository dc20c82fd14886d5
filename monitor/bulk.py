"""Indexes of ``events`` maintained in bulk during a large import or generate.

No Textual here. Keeping a dozen secondary indexes up to date row by row is
most of an import's SQLite time (each row lands on a random page of every
index); building them after the rows, from sorted data, costs a fraction.
:func:`suspend` drops the secondary indexes the store defines
(``store.INDEXES["events"]`` and ``store.SPECIAL_INDEXES``, read from there,
never copied) except the one on ``body_sha256``, which
:func:`monitor.store.write_batch` probes to find earlier copies of the same
bytes; :func:`restore` puts them back through :func:`monitor.store.migrate`,
which creates every missing index of the schema. A file left without them
(the process killed between the two) is repaired the same way the next time
any command opens it for writing.

A bulk build pays when the rows coming are many compared with those already
there (:func:`worth_it`): rebuilding reads the whole table again.
"""

from __future__ import annotations

import sqlite3
import time

import sqlite_utils

from monitor import store

#: Fewer rows than this are cheaper to index as they come.
MIN_ROWS = 20_000
#: Page cache while the indexes are built (KiB).
SORT_CACHE_KIB = 16 * 1024
#: The index :func:`monitor.store.write_batch` needs while rows arrive (duplicates by ``body_sha256``).
KEPT = ("body_sha256",)


def worth_it(conn: sqlite3.Connection, expected_rows: int) -> bool:
    """Whether ``expected_rows`` new events are enough, against the table's size, to build indexes after them."""
    if expected_rows < MIN_ROWS:
        return False
    return expected_rows >= existing_rows(conn)


def existing_rows(conn: sqlite3.Connection) -> int:
    """About how many events the table holds (the largest id: no count over a million rows)."""
    row = conn.execute("SELECT max(id) FROM events").fetchone()
    return int(row[0] or 0)


def secondary_indexes() -> list[str]:
    """The names of the indexes of ``events`` the store defines, except those kept while rows arrive."""
    names = [
        "idx_events_" + "_".join(columns)  # sqlite-utils' name for an index it creates (store.migrate)
        for columns in store.INDEXES["events"]
        if tuple(columns) != KEPT
    ]
    return names + list(store.SPECIAL_INDEXES)


def suspend(db: sqlite_utils.Database) -> list[str]:
    """Drop the secondary indexes of ``events`` (one transaction); the names dropped."""
    present = {
        row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
    }
    dropped = [name for name in secondary_indexes() if name in present]
    with db.atomic():
        for name in dropped:
            db.execute(f'DROP INDEX IF EXISTS "{name}"')
    return dropped


def restore(db: sqlite_utils.Database) -> float:
    """Build every index the schema defines that is missing; the seconds it took."""
    started = time.perf_counter()
    # The sorter holds up to the cache's size besides the cache itself: 16 MiB, not the import's 64,
    # took a 200k import's peak from 150 to 125 MB at no cost in time (3.3-3.5 s against 3.9-4.2).
    # (PRAGMA threads = 2 was no faster and took the sorter's memory up by ~30 MB.)
    db.execute(f"PRAGMA cache_size = -{SORT_CACHE_KIB}")
    store.migrate(db)
    return time.perf_counter() - started
