"""The facets index: which events hold which value of each filtered column, for filters at a million rows.

Every distinct value of a filtered column gets an id in ``field_values``
(``field``, ``value``, ``id``); each event is a document of words in the
contentless FTS5 table ``facets_fts``: ``f<id>`` for each of its values,
``s<session id>`` for its session, ``dup`` when it repeats earlier bytes, and
``a`` (every event). A filter term such as ``city:delhi`` then costs a look-up
of the few distinct cities containing "delhi" (the dictionary is small: tens of
thousands of values where the events are a million), and one FTS5 query
ANDs, ORs and NOTs the terms and counts the rows without reading the table
(``monitor.filters`` writes the query; ``monitor.queries`` runs it).

Like the bodies' search index, the facets are built off the delivery path
(``facets_upto`` in ``search_state`` says how far): rows past it are judged by
the filter's substring scan, so a filter's answer never depends on the index
being up to date, only its speed.

Values are the columns' text (``CAST(c AS TEXT)``, what ``LIKE`` compares), so
``value LIKE p`` in the dictionary holds exactly when ``c LIKE p`` holds on a
row. Empty strings and NULLs get no word: no filter value matches them.
"""

from __future__ import annotations

import re
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable

FACETS_TABLE = "facets_fts"
VALUES_TABLE = "field_values"

#: Columns whose values are words of the facets index.
COLUMNS: tuple[str, ...] = (
    "event", "kind", "user_id", "name", "username", "phone_number", "email", "content_id", "client_content_id",
    "click_action", "paywall_id", "anon_id", "city", "country", "client_country", "country_code", "device_type",
    "device_model", "signature", "basic_auth", "path", "method", "notes",
)  # fmt: skip
#: Columns only in the dictionary: each has a B-tree index of its own on ``events`` (one value per
#: delivery pair: as words they would double the index for a field always searched by its whole id).
DICTIONARY_ONLY: tuple[str, ...] = ("gateway_session_id",)
#: Columns of many distinct values searched by part of a word (a name, a phone, an e-mail): each
#: ASCII word of their values is also a word of the index, marked by the column (``xn`` + ``kavya``),
#: so that ``user:kavya`` is one prefix query, not an OR of the thousand e-mails holding "kavya".
WORDED: dict[str, str] = {"name": "xn", "username": "xu", "email": "xe", "phone_number": "xp"}
#: Every event's word, and the word of a repeat.
ALL = "a"
DUPLICATE = "dup"
#: A word no event holds (an empty list of values).
NOTHING = "f0"
#: A term matching more distinct values than this is not looked up value by value: FTS5's OR of
#: many words grows faster than the rows (1,000 words: 0.9 s at 1M events, 64: 27 ms). Such a
#: term (``user:a``) is answered by the scan of the rows the other terms leave.
MAX_VALUES = 64

#: Values kept in memory per writing connection, to spare a dictionary look-up per row: the few
#: connections that wrote last (a writer, an import), by ``id()`` (a connection takes no weak reference).
_CACHE_LIMIT = 200_000
_CACHES: OrderedDict[int, tuple[sqlite3.Connection, dict[str, dict[str | None, str]]]] = OrderedDict()
_CONNECTIONS_CACHED = 4

_INDEXED = COLUMNS + DICTIONARY_ONLY
_SELECT = "SELECT id, session_id, duplicate_of IS NOT NULL, {} FROM events WHERE id > ? ORDER BY id LIMIT ?".format(
    ", ".join(f"CAST({column} AS TEXT)" for column in _INDEXED)
)


#: A word of an ASCII value, as FTS5's unicode61 tokenizer splits it (letters and digits).
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def session_word(session_id: int) -> str:
    return f"s{int(session_id)}"


def create(conn: sqlite3.Connection) -> None:
    """The dictionary, the index and its progress (``search_state.facets_upto``); idempotent."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {VALUES_TABLE} (id INTEGER PRIMARY KEY, field TEXT NOT NULL, value TEXT NOT NULL)"
    )
    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS idx_{VALUES_TABLE}_field_value ON {VALUES_TABLE} (field, value)")
    # Contentless, no positions, no sizes: the index only answers "which events hold these words".
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FACETS_TABLE} USING fts5(words, content='', detail=none, columnsize=0)"
    )
    have = {row[1] for row in conn.execute("PRAGMA table_info(search_state)")}
    if "facets_upto" not in have:
        conn.execute("ALTER TABLE search_state ADD COLUMN facets_upto INTEGER NOT NULL DEFAULT 0")


def pending(conn: sqlite3.Connection) -> int:
    """How many events the facets index has not reached yet."""
    upto = conn.execute("SELECT facets_upto FROM search_state WHERE id = 1").fetchone()[0]
    top = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    return max(0, int(top) - int(upto))


def index_pending(conn: sqlite3.Connection, limit: int) -> int:
    """Add up to ``limit`` events past ``facets_upto`` to the index, inside the caller's transaction.

    Returns how many were added (0 when up to date). Column by column: each
    distinct value's words are made once (and remembered), then joined per row.
    """
    upto = conn.execute("SELECT facets_upto FROM search_state WHERE id = 1").fetchone()[0]
    rows = conn.execute(_SELECT, (upto, limit)).fetchall()
    if not rows:
        return 0
    columns = list(zip(*rows, strict=True))
    event_ids, sessions, repeats = columns[:3]
    cache = _cache(conn)
    parts: list[list[str]] = [
        [f"{ALL} {session_word(session)}" if session is not None else ALL for session in sessions],
        [DUPLICATE if repeat else "" for repeat in repeats],
    ]
    for column, values in zip(COLUMNS, columns[3:], strict=False):  # the dictionary-only columns come last
        words = _words(conn, cache.setdefault(column, {}), column, values)
        parts.append(list(map(words.__getitem__, values)))
    for column, values in zip(DICTIONARY_ONLY, columns[3 + len(COLUMNS) :], strict=True):
        conn.executemany(
            f"INSERT OR IGNORE INTO {VALUES_TABLE} (field, value) VALUES (?, ?)",
            ((column, value) for value in set(values) if value),
        )
    documents = [" ".join(filter(None, words)) for words in zip(*parts, strict=True)]
    conn.executemany(f"INSERT INTO {FACETS_TABLE} (rowid, words) VALUES (?, ?)", zip(event_ids, documents, strict=True))
    conn.execute("UPDATE search_state SET facets_upto = ? WHERE id = 1", (event_ids[-1],))
    return len(rows)


def _cache(conn: sqlite3.Connection) -> dict[str, dict[str | None, str]]:
    """The words of the values ``conn`` indexed lately, per column (bounded)."""
    entry = _CACHES.get(id(conn))
    if entry is None or entry[0] is not conn or sum(map(len, entry[1].values())) > _CACHE_LIMIT:
        entry = (conn, {})
        _CACHES[id(conn)] = entry
        while len(_CACHES) > _CONNECTIONS_CACHED:
            _CACHES.popitem(last=False)
    _CACHES.move_to_end(id(conn))
    return entry[1]


def _words(
    conn: sqlite3.Connection, known: dict[str | None, str], column: str, values: Iterable[str | None]
) -> dict[str | None, str]:
    """The index's words for each of ``values`` of ``column`` (its id's word, and a worded column's words)."""
    known.setdefault(None, "")
    known.setdefault("", "")
    new = set(values).difference(known)
    if not new:
        return known
    found = dict.fromkeys(new, 0)
    listed = list(new)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT value, id FROM {VALUES_TABLE} WHERE field = ? AND value IN ({marks})"
        found.update(conn.execute(sql, (column, *chunk)).fetchall())
    add = f"INSERT INTO {VALUES_TABLE} (field, value) VALUES (?, ?)"
    mark = WORDED.get(column)
    for value, value_id in found.items():
        assert value is not None
        if not value_id:
            value_id = int(conn.execute(add, (column, value)).lastrowid or 0)
        words = f"f{value_id}"
        if mark is not None and value.isascii():
            words += "".join(f" {mark}{word}" for word in dict.fromkeys(_ASCII_WORD.findall(value.lower())))
        known[value] = words
    return known


def forget(conn: sqlite3.Connection) -> None:
    """Drop the values remembered for ``conn`` (after a rollback took some of them away)."""
    _CACHES.pop(id(conn), None)
