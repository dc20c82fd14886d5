"""The read queries the UI runs, returning plain dataclasses and dicts.

No Textual here. Every function takes a :class:`sqlite_utils.Database`
(normally a read-only connection from :func:`monitor.store.connect`) and
stays cheap at a million rows by walking the indexes in ``store.INDEXES``:

- table pages walk a covering index for ``(source, id)`` only, merging the
  arms of a ``UNION ALL`` in index order (no sort of the whole table), then
  read the full columns of just the page's rows;
- a page past the middle is read from the other end, so "jump to the end"
  costs no more than "jump to the middle".
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson
import sqlite_utils

from monitor import facets, store
from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.filters import Facets, compile_filter

Source = Literal["event", "rejected"]

#: Below this offset a forward walk is cheap; no need to count first.
_FORWARD_WALK = 5000
#: The header's events-per-minute sparkline covers this many minutes.
MINUTES = 30


def _country(alias: str = "") -> str:
    """Conscent's user country, else the client's country name or code."""
    names = ("country", "client_country", "country_code")
    return "coalesce({})".format(", ".join(f"nullif({alias}{name}, '')" for name in names))


_COUNTRY = _country()


@dataclass(frozen=True)
class View:
    """What the table shows: the rows of one session (or all) under a filter.

    ``where``/``params`` is an extra SQL condition on ``events``;
    ``rejected_where``/``rejected_params`` the same on ``rejected`` (used in
    ``"all"`` mode only).
    """

    mode: Literal["gateway", "all"]
    session_id: int | None
    where: str = "1"
    params: tuple[Any, ...] = ()
    rejected_where: str = "1"
    rejected_params: tuple[Any, ...] = ()
    #: The filter's facet terms (``Compiled.facets``): counts and small results straight from the facets index.
    facets: Facets | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One table line: an accepted event or a rejected delivery."""

    source: Source
    id: int
    received_at: float
    created_at: float | None = None
    event: str | None = None
    user_id: str | None = None
    name: str | None = None
    username: str | None = None
    phone_number: str | None = None
    content_id: str | None = None
    click_action: str | None = None
    paywall_id: str | None = None
    device_type: str | None = None
    device_model: str | None = None
    country: str | None = None
    signature: str | None = None
    duplicate_of: int | None = None
    status: int | None = None  # HTTP status we answered a rejected delivery with
    reason: str | None = None
    forward: str | None = None  # the latest forward or replay: its HTTP status, or "err"


_ROW_FIELDS = tuple(Row.__dataclass_fields__)
#: The latest forward/replay of an event, through the forwards(event_id, id) index.
_LATEST_FORWARD = (
    "(SELECT coalesce(CAST(f.status AS TEXT), 'err') FROM forwards AS f"
    " WHERE f.event_id = events.id ORDER BY f.id DESC LIMIT 1)"
)
_EVENT_ONLY = {
    "source": "'event'",
    "country": _COUNTRY,
    "status": "NULL",
    "reason": "NULL",
    "forward": _LATEST_FORWARD,
}
_EVENT_ROW_SQL = "SELECT {} FROM events WHERE id IN ({{}})".format(
    ", ".join(_EVENT_ONLY.get(name, name) for name in _ROW_FIELDS)
)
_REJECTED_ROW_SQL = "SELECT {} FROM rejected WHERE id IN ({{}})".format(
    ", ".join(
        "'rejected'" if name == "source" else name if name in ("id", "received_at", "status", "reason") else "NULL"
        for name in _ROW_FIELDS
    )
)


def _arms(view: View) -> list[tuple[str, list[Any]]]:
    """One ``SELECT source, id, received_at`` per index range the view covers."""
    session, args = _session_where(view.session_id), _session_args(view.session_id)
    event = "event = ?"
    if view.where != "1":
        # A filter's own index (an id range, a lag, a session id) is narrower than the session's or an
        # event type's, most often: said so, the planner takes it (it has no statistics to tell).
        session, event = session.replace("session_id = ?", "likelihood(session_id = ?, 0.9)"), "likely(event = ?)"
    select = "SELECT '{}' AS source, id, received_at FROM {} WHERE " + session
    if view.mode == "gateway":
        arm = select.format("event", "events") + f"{event} AND ({view.where})"
        return [(arm, [*args, name, *view.params]) for name in (GATEWAY_VIEW, GATEWAY_CLOSE)]
    return [
        (select.format("event", "events") + f"({view.where})", [*args, *view.params]),
        (select.format("rejected", "rejected") + f"({view.rejected_where})", [*args, *view.rejected_params]),
    ]


def _count_arms(view: View) -> list[tuple[str, list[Any]]]:
    """The view's arms for a count: the gateway events in one (a filter's look-ups are made once, not per event)."""
    arms = _arms(view)
    if view.mode != "gateway" or view.where == "1":
        return arms  # unfiltered: each event's range of the index, counted without a row
    (sql, params), _ = arms
    event = "likely(event = ?)"
    at = params.index(GATEWAY_VIEW)
    return [
        (
            sql.replace(event, "likely(event IN (?, ?))", 1),
            [*params[:at], GATEWAY_VIEW, GATEWAY_CLOSE, *params[at + 1 :]],
        )
    ]


def _narrowed(db: sqlite_utils.Database, view: View) -> View:
    """The view, its facet terms driving the query when they hold few rows and other terms (a time range) do not.

    The facets' rows are otherwise a list each row of the other terms' index is
    tried against (``+id IN``): right for many rows, a walk of the whole range
    for a reader's few (``user:<id> since:2d``).
    """
    found = view.facets
    if found is None or found.where != view.where or found.rest[0] == "1" or found.text is not None:
        return view
    broad_sql, broad_params = found.broad
    if broad_sql != "0" and db.execute(f"SELECT {broad_sql}", broad_params).fetchone()[0]:
        return view
    words, params = _facet_words(db, view, found)
    fts = f"SELECT rowid FROM {facets.FACETS_TABLE} WHERE {facets.FACETS_TABLE} MATCH {words} LIMIT {_SORT_ROWS + 1}"
    if db.execute(f"SELECT count(*) FROM ({fts})", params).fetchone()[0] > _SORT_ROWS:
        return view
    # The last look-up is the facets' own (a facet ORed with other terms sits in ``rest``, before it).
    lookup = f"+id IN (SELECT rowid FROM {facets.FACETS_TABLE}"
    head, found_at, tail = view.where.rpartition(lookup)
    return replace(view, where=head + found_at[1:] + tail, facets=None)


def count_rows(db: sqlite_utils.Database, view: View) -> int:
    found = _facet_plan(db, view)
    if found is None:
        view = _narrowed(db, view)
        return sum(
            db.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0] for sql, params in _count_arms(view)
        )
    # The indexes count their rows without reading the table; the general query, the few they have not reached.
    upto = _indexed_upto(db, found)
    rows, params = _indexed_rows(db, view, found, upto)
    total = int(db.execute(f"SELECT count(*) FROM ({rows})", params).fetchone()[0])
    return total + sum(
        int(db.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()[0])
        for sql, args in _count_arms(_past(view, upto))
    )


def _indexed_upto(db: sqlite_utils.Database, found: Facets) -> int:
    """The last id both indexes the view reads hold (the facets', and the bodies' for free text)."""
    column = "min(facets_upto, indexed_upto)" if found.text is not None else "facets_upto"
    return int(db.execute(f"SELECT {column} FROM search_state").fetchone()[0])


def _indexed_rows(db: sqlite_utils.Database, view: View, found: Facets, upto: int) -> tuple[str, list[Any]]:
    """``SELECT rowid`` of the view's rows up to ``upto``, from the indexes alone (no table row read)."""
    words, params = _facet_words(db, view, found)
    if found.text is not None and words == f"'{facets.ALL}'":  # free text on every event: its index alone
        sql = f"SELECT rowid FROM {store.SEARCH_TABLE} WHERE {store.SEARCH_TABLE} MATCH ? AND rowid <= ?"
        return sql, [found.text, upto]
    sql = f"SELECT rowid FROM {facets.FACETS_TABLE} WHERE {facets.FACETS_TABLE} MATCH {words} AND rowid <= ?"
    params = [*params, upto]
    if found.text is not None:
        # The bodies' rows as a list tried per row (+rowid): a constraint handed to FTS5 would run its
        # query once per listed row.
        sql += f" AND +rowid IN (SELECT rowid FROM {store.SEARCH_TABLE} WHERE {store.SEARCH_TABLE} MATCH ?)"
        params.append(found.text)
    return sql, params


def _past(view: View, upto: int) -> View:
    """The view's rows past ``upto``: the general query, on the id range."""
    return replace(view, where=f"id > ? AND ({view.where})", params=(upto, *view.params), facets=None)


def _past_indexes(view: View, upto: int) -> tuple[str, list[Any]]:
    """The view's events past ``upto``, by the general query on the id range (few rows)."""
    arms = _arms(_past(view, upto))[: 2 if view.mode == "gateway" else 1]
    sql = " UNION ALL ".join(f"SELECT * FROM ({arm})" for arm, _ in arms)
    return sql, [p for _, args in arms for p in args]


#: A filtered view of at most this many rows is read by looking its rows up and sorting them: a walk of
#: the time order would pass every row of the session to find them (a narrow filter on a million).
_SORT_ROWS = 2000


def _facet_plan(db: sqlite_utils.Database, view: View) -> Facets | None:
    """The view's facet terms when the facets index alone can answer them, else None (the general query)."""
    found = view.facets
    if found is None or found.where != view.where or (found.rest[0] != "1" and found.text is None):
        return None  # another condition was added to the filter, or terms the indexes do not hold
    broad_sql, broad_params = found.broad
    if broad_sql != "0" and db.execute(f"SELECT {broad_sql}", broad_params).fetchone()[0]:
        return None  # a term matched too many values to look them up: the rows are scanned
    return found


def _facet_words(db: sqlite_utils.Database, view: View, found: Facets) -> tuple[str, list[Any]]:
    """The facets index's query for the view: its session, the gateway events in that mode, the filter.

    The session's word only when the file holds other sessions: the word of a
    session of a million events is a million entries to read, and says nothing then.
    """
    parts: list[str] = []
    params: list[Any] = []
    others = (
        "SELECT EXISTS (SELECT 1 FROM events WHERE session_id < :s) OR EXISTS (SELECT 1 FROM events"
        " WHERE session_id > :s) OR EXISTS (SELECT 1 FROM events WHERE session_id IS NULL)"
    )  # three seeks in the session index
    if view.session_id is not None and db.execute(others, {"s": view.session_id}).fetchone()[0]:
        parts.append(f"'{facets.session_word(view.session_id)}'")
    if view.mode == "gateway":
        parts.append(
            f"(SELECT coalesce(group_concat('f' || id, ' OR '), '{facets.NOTHING}') FROM {facets.VALUES_TABLE}"
            " WHERE field = 'event' AND value IN (?, ?))"
        )
        params += [GATEWAY_VIEW, GATEWAY_CLOSE]
    if found.match[0] != f"'{facets.ALL}'" or not parts:  # every event's word says nothing beside others
        parts.append(found.match[0])
        params += found.match[1]
    if len(parts) == 1:
        return parts[0], params
    return "('(' || " + " || ') AND (' || ".join(parts) + " || ')')", params


#: The first pages of a filtered view of many rows come from the index's newest rows (by id), when
#: the ids of the file follow the times (as a monitor writes them): no list of all the matches to build.
_RECENT_ROWS = 2000


def _recent_page(db: sqlite_utils.Database, view: View, found: Facets, offset: int, limit: int) -> list[Row] | None:
    """Rows ``offset .. offset+limit`` of a view of many rows, from the highest ids the index holds for it.

    The highest ``offset + limit`` ids that match are the newest rows when no
    older id of the session was received later than the oldest of them (one
    look in the time index says so); None otherwise (an import of older
    captures), and the caller walks the time order.
    """
    wanted = offset + limit
    upto = _indexed_upto(db, found)
    newest, params = _indexed_rows(db, view, found, upto)
    past, args = _past_indexes(view, upto)
    ids = {row[0] for row in db.execute(f"{newest} ORDER BY rowid DESC LIMIT ?", [*params, wanted])}
    ids.update(row[1] for row in db.execute(f"SELECT * FROM ({past}) ORDER BY id DESC LIMIT ?", [*args, wanted]))
    chosen = sorted(ids, reverse=True)[:wanted]
    if len(chosen) == wanted:
        marks = ", ".join("?" * len(chosen))
        oldest = db.execute(f"SELECT min(received_at) FROM events WHERE id IN ({marks})", chosen).fetchone()[0]
        later = (
            f"SELECT EXISTS (SELECT 1 FROM events WHERE {_session_where(view.session_id)}received_at > ? AND id < ?)"
        )
        if db.execute(later, [*_session_args(view.session_id), oldest, chosen[-1]]).fetchone()[0]:
            return None
    marks = ", ".join("?" * len(chosen))
    return _page_of(
        db,
        view,
        [(f"SELECT 'event' AS source, id, received_at FROM events WHERE id IN ({marks})", chosen)],
        offset,
        limit,
    )


def _page_of(
    db: sqlite_utils.Database, view: View, arms: list[tuple[str, list[Any]]], offset: int, limit: int
) -> list[Row]:
    """A page of the events ``arms`` select (and, in "all" mode, the rejections), newest first."""
    if view.mode == "all":
        arms = [*arms, _arms(view)[1]]
    order = " ORDER BY received_at DESC, id DESC, source DESC LIMIT ? OFFSET ?"
    sql = " UNION ALL ".join(arm for arm, _ in arms) + order
    keys = [(s, i) for s, i, _ in db.execute(sql, [*(p for _, a in arms for p in a), limit, offset]).fetchall()]
    return _load_rows(db, keys)


def _sorted_page(db: sqlite_utils.Database, view: View, found: Facets, offset: int, limit: int) -> list[Row]:
    """A page of a view of few rows: its rows looked up through the facets index, then sorted."""
    upto = _indexed_upto(db, found)
    rows, params = _indexed_rows(db, view, found, upto)
    indexed = f"SELECT 'event' AS source, id, received_at FROM events WHERE id IN ({rows})"
    return _page_of(db, view, [(indexed, params), _past_indexes(view, upto)], offset, limit)


def shows(view: View, row: dict[str, Any], source: Source) -> bool | None:
    """Whether the view shows a row known only from a commit notice: :func:`_arms` in Python.

    None when only a query can tell (the view has a filter). Keep the two in
    step: a row counted here and not by the SQL would appear and then vanish.
    """
    if view.where != "1" or view.rejected_where != "1":
        return None
    if view.session_id is not None and row.get("session_id") != view.session_id:
        return False
    if source == "rejected":
        return view.mode == "all"
    return view.mode == "all" or row.get("event") in (GATEWAY_VIEW, GATEWAY_CLOSE)


def count_new_rows(db: sqlite_utils.Database, view: View, event_ids: list[int], rejected_ids: list[int]) -> int:
    """How many of the rows with these new ids the view shows (ids arrive in ranges: one query per table)."""
    added = 0
    if event_ids:
        added += count_rows(
            db,
            replace(
                view,
                where=f"id BETWEEN ? AND ? AND ({view.where})",
                params=(min(event_ids), max(event_ids), *view.params),
                rejected_where="0",
                rejected_params=(),
            ),
        )
    if rejected_ids and view.mode == "all":
        added += count_rows(
            db,
            replace(
                view,
                where="0",
                params=(),
                rejected_where=f"id BETWEEN ? AND ? AND ({view.rejected_where})",
                rejected_params=(min(rejected_ids), max(rejected_ids), *view.rejected_params),
            ),
        )
    return added


@contextlib.contextmanager
def read_snapshot(db: sqlite_utils.Database) -> Iterator[tuple[int, int]]:
    """One read transaction: the queries inside see the same commits.

    Yields the highest event and rejected ids committed so far. The writer
    answers a delivery before it sends the notice, so a notice can arrive
    for rows that a query already counted: ids up to these are such rows.
    """
    db.execute("BEGIN")
    try:
        events, rejected = db.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM events), (SELECT coalesce(max(id), 0) FROM rejected)"
        ).fetchone()
        yield int(events), int(rejected)
    finally:
        if db.conn.in_transaction:  # SQLite may have ended it (a failed or interrupted read)
            db.execute("COMMIT")


def data_version(db: sqlite_utils.Database) -> int:
    """Changes when another connection commits (offline review polls it)."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def event_counts_by_session(db: sqlite_utils.Database) -> dict[int, dict[str, int]]:
    """Per session, how many events of each type (most first; untyped ones as "(legacy)")."""
    counts: dict[int, dict[str, int]] = {}
    for session_id, event, n in db.execute(
        "SELECT session_id, coalesce(event, '(legacy)'), count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 3 DESC"
    ):
        counts.setdefault(session_id, {})[event] = n
    return counts


def page_sql(view: View, *, descending: bool = True, few: bool = False) -> tuple[str, list[Any]]:
    """The ``(source, id)`` walk for one page; takes LIMIT and OFFSET last.

    ``few``: the view has few rows (its count is known): found by the filter's own indexes and sorted,
    not by a walk in time order that would pass every row of the session to find them.
    """
    arms = _arms(view)
    direction = "DESC" if descending else "ASC"
    if few:  # a time the order cannot take from an index
        arms = [
            (sql.replace(" id, received_at FROM ", " id, +received_at AS received_at FROM ", 1), a) for sql, a in arms
        ]
    sql = " UNION ALL ".join(sql for sql, _ in arms)
    sql += f" ORDER BY received_at {direction}, id {direction}, source {direction} LIMIT ? OFFSET ?"
    return sql, [param for _, params in arms for param in params]


def fetch_rows(
    db: sqlite_utils.Database, view: View, offset: int, limit: int, *, total: int | None = None
) -> list[Row]:
    """Rows ``offset .. offset+limit`` of the view, newest first.

    Pass ``total`` (the view's :func:`count_rows`) when known: deep pages are
    read from the oldest end, which needs it.
    """
    offset, limit = max(0, offset), max(0, limit)
    found = None if total is None else _facet_plan(db, view)
    if found is not None and total is not None and total <= _SORT_ROWS:
        return _sorted_page(db, view, found, offset, limit)
    if found is not None and offset + limit <= _RECENT_ROWS:
        recent = _recent_page(db, view, found, offset, limit)
        if recent is not None:
            return recent
    if found is None and total is not None and total <= _SORT_ROWS:
        view = _narrowed(db, view)
    if total is None and offset > _FORWARD_WALK:
        total = count_rows(db, view)
    descending = total is None or 2 * offset + limit <= total
    if not descending:
        assert total is not None
        start = max(0, total - offset - limit)
        limit, offset = max(0, total - offset - start), start
    sql, walk = page_sql(
        view, descending=descending, few=view.where != "1" and total is not None and total <= _SORT_ROWS
    )
    keys: list[tuple[Source, int]] = [(s, i) for s, i, _ in db.execute(sql, [*walk, limit, offset]).fetchall()]
    if not descending:
        keys.reverse()
    return _load_rows(db, keys)


def _load_rows(db: sqlite_utils.Database, keys: Sequence[tuple[Source, int]]) -> list[Row]:
    found: dict[tuple[str, int], Row] = {}
    for source, template in (("event", _EVENT_ROW_SQL), ("rejected", _REJECTED_ROW_SQL)):
        ids = [i for s, i in keys if s == source]
        if ids:
            cursor = db.execute(template.format(", ".join("?" * len(ids))), ids)
            found.update(((row[0], row[1]), Row(*row)) for row in cursor.fetchall())
    return [found[key] for key in keys if key in found]


def get_delivery(db: sqlite_utils.Database, source: Source, id: int) -> dict[str, Any] | None:
    """Every column of one delivery, with ``headers`` decoded from JSON."""
    table = "events" if source == "event" else "rejected"
    rows = _dicts(db, f"SELECT * FROM {table} WHERE id = ?", [id])
    if not rows:
        return None
    row = rows[0]
    row["source"] = source
    if isinstance(row.get("headers"), str | bytes):
        with contextlib.suppress(orjson.JSONDecodeError):  # else shown as stored
            row["headers"] = orjson.loads(row["headers"])
    row["forwards"] = forwards_of(db, id) if source == "event" else []
    return row


def delivery_body(db: sqlite_utils.Database, event_id: int) -> tuple[bytes, dict[str, Any]] | None:
    """The body and headers of accepted delivery ``event_id`` (None when no such row).

    The headers are as stored, credentials redacted; a primary-key lookup,
    cheap at any table size (the forwarder reads queued bodies back with it).
    """
    found = db.execute("SELECT body, headers FROM events WHERE id = ?", [event_id]).fetchone()
    if found is None:
        return None
    body, headers = found
    decoded: dict[str, Any] = {}
    if isinstance(headers, str | bytes):
        with contextlib.suppress(orjson.JSONDecodeError):
            loaded = orjson.loads(headers)
            decoded = loaded if isinstance(loaded, dict) else {}
    return bytes(body or b""), decoded


def forwards_of(db: sqlite_utils.Database, event_id: int) -> list[dict[str, Any]]:
    """Every forward and replay of one delivery, oldest first, headers decoded."""
    rows = _dicts(db, "SELECT * FROM forwards WHERE event_id = ? ORDER BY id", [event_id])
    for row in rows:
        for key in ("request_headers", "response_headers"):
            if isinstance(row.get(key), str):
                with contextlib.suppress(orjson.JSONDecodeError):
                    row[key] = orjson.loads(row[key])
    return rows


_PROFILE_FIELDS = (
    "name", "username", "phone_number", "email", "city", "country", "latitude", "longitude",
    "postcode", "device_type", "device_model", "user_agent",
)  # fmt: skip


def reader_profile(db: sqlite_utils.Database, user_id: str) -> dict[str, Any]:
    """The latest non-empty value of each field (each on its own), and when seen.

    ``country`` is the reader's country, else the client's country or code.
    """
    parts = []
    for name in _PROFILE_FIELDS:
        value = _COUNTRY if name == "country" else f"nullif({name}, '')"
        parts.append(
            f"(SELECT {value} FROM events WHERE user_id = :u AND {value} IS NOT NULL"
            f" ORDER BY received_at DESC, id DESC LIMIT 1) AS {name}"
        )
    parts.append("(SELECT min(received_at) FROM events WHERE user_id = :u) AS first_seen")
    parts.append("(SELECT max(received_at) FROM events WHERE user_id = :u) AS last_seen")
    return _dicts(db, "SELECT " + ", ".join(parts), {"u": user_id})[0]


def event_counts_for_reader(db: sqlite_utils.Database, user_id: str) -> list[tuple[str, int]]:
    """How many of each event the reader sent, most frequent first."""
    sql = (
        "SELECT coalesce(event, '(' || kind || ')'), count(*) AS n FROM events WHERE user_id = ?"
        " GROUP BY 1 ORDER BY n DESC, 1"
    )
    return [(str(event), int(n)) for event, n in db.execute(sql, [user_id]).fetchall()]


def reader_events(db: sqlite_utils.Database, user_id: str, session_id: int | None = None) -> list[dict[str, Any]]:
    """All of a reader's events, oldest first by ``created_at`` (else receipt), without body."""
    columns = ", ".join(c for c in db.table("events").columns_dict if c != "body")
    sql = (
        f"SELECT {columns} FROM events WHERE {_session_where(session_id)}user_id = ?"
        " ORDER BY coalesce(created_at, received_at), id"
    )
    return _dicts(db, sql, [*_session_args(session_id), user_id])


def readers(
    db: sqlite_utils.Database,
    session_id: int | None,
    where: str = "1",
    params: Sequence[Any] = (),
    limit: int = 500,
) -> list[dict[str, Any]]:
    """One row per reader, most recently seen first.

    Counts honour the session and ``where``; name, username, phone and country
    are the latest known anywhere.
    """
    latest = ", ".join(
        f"(SELECT {value} FROM events e WHERE e.user_id = g.user_id AND {value} IS NOT NULL"
        f" ORDER BY e.received_at DESC, e.id DESC LIMIT 1) AS {name}"
        for name, value in (
            ("name", "nullif(e.name, '')"),
            ("username", "nullif(e.username, '')"),
            ("phone_number", "nullif(e.phone_number, '')"),
            ("country", _country("e.")),
        )
    )
    # Grouping by (session_id, user_id) first lets an index on those columns
    # answer the counts without reading the table.
    sql = (
        f"SELECT g.user_id, {latest}, g.events, g.views, g.closes, g.last_seen FROM ("
        "SELECT user_id, sum(n) AS events, sum(v) AS views, sum(c) AS closes, max(last) AS last_seen FROM ("
        " SELECT user_id, count(*) AS n, sum(event = ?) AS v, sum(event = ?) AS c, max(received_at) AS last"
        f" FROM events WHERE {_session_where(session_id)}user_id IS NOT NULL AND ({where})"
        " GROUP BY session_id, user_id)"
        " GROUP BY user_id ORDER BY last_seen DESC LIMIT ?) g ORDER BY g.last_seen DESC"
    )
    args: list[Any] = [GATEWAY_VIEW, GATEWAY_CLOSE, *_session_args(session_id), *params, limit]
    return _dicts(db, sql, args)


@dataclass(frozen=True)
class ReaderPage:
    """The readers list: the most recently seen readers that match, and how many match in all."""

    rows: list[dict[str, Any]]
    total: int


#: The readers list's columns, each the latest non-empty value known for the reader (any session).
_READER_LATEST = (
    ("name", "nullif(e.name, '')"),
    ("username", "nullif(e.username, '')"),
    ("phone_number", "nullif(e.phone_number, '')"),
    ("email", "nullif(e.email, '')"),
    ("country", _country("e.")),
)


def readers_page(
    db: sqlite_utils.Database,
    session_id: int | None,
    where: str = "1",
    params: Sequence[Any] = (),
    limit: int = 500,
) -> ReaderPage:
    """The ``limit`` readers of the session (None: all) seen most recently, with an event matching ``where``.

    ``where``/``params`` is a compiled filter on ``events`` (the main table's
    language): a reader is listed when one of their events matches; their
    counts are of all their events in the session. Two steps, so that the cost
    is the index walk, not the table: which readers (one pass over the
    ``(user_id, received_at)`` index, or the session's rows, or the filter's),
    then counts and latest values for just those readers, through that index.
    300,000 events, 36,000 readers: 0.25 s for all sessions unfiltered, 0.5 s for a session of 150,000.
    """
    session = "" if session_id is None else "session_id = ? AND "
    args = [*_session_args(session_id), *params]
    matching = f"FROM events WHERE {session}user_id IS NOT NULL AND ({where})"
    # One pass: the window counts the groups before LIMIT keeps the first ones.
    found = db.execute(
        f"SELECT user_id, max(received_at) AS last, count(*) OVER () {matching}"
        " GROUP BY user_id ORDER BY last DESC, user_id LIMIT ?",
        [*args, limit],
    ).fetchall()
    ids = [user_id for user_id, _, _ in found]
    total = int(found[0][2]) if found else 0
    if not ids:
        return ReaderPage([], total)
    latest = ", ".join(
        f"(SELECT {value} FROM events e WHERE e.user_id = g.user_id AND {value} IS NOT NULL"
        f" ORDER BY e.received_at DESC, e.id DESC LIMIT 1) AS {name}"
        for name, value in _READER_LATEST
    )
    # "+session_id": walk the user_id index for these readers, not the whole session's rows.
    in_session = "" if session_id is None else " AND +session_id = ?"
    marks = ", ".join("?" * len(ids))
    sql = (
        f"SELECT g.user_id, {latest}, g.events, g.views, g.closes, g.last_seen, g.last_id FROM ("
        " SELECT user_id, count(*) AS events, sum(event = ?) AS views, sum(event = ?) AS closes,"
        " max(received_at) AS last_seen, max(id) AS last_id"
        f" FROM events WHERE user_id IN ({marks}){in_session} GROUP BY user_id) g"
    )
    rows = {
        row["user_id"]: row for row in _dicts(db, sql, [GATEWAY_VIEW, GATEWAY_CLOSE, *ids, *_session_args(session_id)])
    }
    return ReaderPage([rows[user_id] for user_id in ids if user_id in rows], total)


@dataclass(frozen=True)
class Stats:
    """The header counters of one session (or all)."""

    views: int = 0
    closes: int = 0
    other: int = 0  # accepted events that are neither a view nor a close
    rejected: int = 0
    readers: int = 0  # distinct user ids
    per_minute: list[int] = field(default_factory=lambda: [0] * MINUTES)  # accepted events, oldest first

    @property
    def events(self) -> int:
        return self.views + self.closes + self.other

    @property
    def close_rate(self) -> float | None:
        return self.closes / self.views if self.views else None


def _minute(t: float) -> int:
    """Buckets are wall-clock minutes; the last is the current, partial one."""
    return math.floor(t / 60)


def header_stats(db: sqlite_utils.Database, session_id: int | None, now: float) -> Stats:
    """The counters, from index-only counts; the buckets read the last 30 minutes only."""
    session, args = _session_where(session_id), _session_args(session_id)
    views, closes = (
        db.execute(f"SELECT count(*) FROM events WHERE {session}event = ?", [*args, name]).fetchone()[0]
        for name in (GATEWAY_VIEW, GATEWAY_CLOSE)
    )
    total = db.execute(f"SELECT count(*) FROM events WHERE {session}1", args).fetchone()[0]
    rejected = db.execute(f"SELECT count(*) FROM rejected WHERE {session}1", args).fetchone()[0]
    readers = db.execute(f"SELECT count(DISTINCT user_id) FROM events WHERE {session}1", args).fetchone()[0]
    return Stats(views, closes, total - views - closes, rejected, readers, _per_minute(db, session_id, now))


def _per_minute(db: sqlite_utils.Database, session_id: int | None, now: float) -> list[int]:
    first = _minute(now) - MINUTES + 1
    sql = (
        "SELECT CAST(received_at / 60 AS INTEGER) AS minute, count(*) FROM events"
        f" WHERE {_session_where(session_id)}received_at >= ? AND received_at < ? GROUP BY minute"
    )
    buckets = [0] * MINUTES
    for minute, count in db.execute(sql, [*_session_args(session_id), first * 60, (first + MINUTES) * 60]):
        buckets[minute - first] = count
    return buckets


class StatsAccumulator:
    """Header counters kept current from committed rows, without queries.

    Start empty for a new session, or from the database with :meth:`load`.
    """

    def __init__(self) -> None:
        self.views = self.closes = self.other = self.rejected = 0
        self.user_ids: set[str] = set()
        self._minutes: Counter[int] = Counter()

    @classmethod
    def load(cls, db: sqlite_utils.Database, session_id: int | None, now: float) -> StatsAccumulator:
        """Start from what the database holds (reads every distinct reader once)."""
        stats = header_stats(db, session_id, now)
        acc = cls()
        acc.views, acc.closes, acc.other, acc.rejected = stats.views, stats.closes, stats.other, stats.rejected
        sql = f"SELECT DISTINCT user_id FROM events WHERE {_session_where(session_id)}user_id IS NOT NULL"
        acc.user_ids.update(user_id for (user_id,) in db.execute(sql, _session_args(session_id)))
        first = _minute(now) - MINUTES + 1
        acc._minutes.update({first + i: n for i, n in enumerate(stats.per_minute) if n})
        return acc

    def add(self, event: str | None, user_id: str | None, received_at: float, rejected: bool) -> None:
        if rejected:
            self.rejected += 1
            return
        if event == GATEWAY_VIEW:
            self.views += 1
        elif event == GATEWAY_CLOSE:
            self.closes += 1
        else:
            self.other += 1
        if user_id is not None:
            self.user_ids.add(user_id)
        self._minutes[_minute(received_at)] += 1

    def snapshot(self, now: float) -> Stats:
        first = _minute(now) - MINUTES + 1
        for old in [minute for minute in self._minutes if minute < first]:
            del self._minutes[old]
        per_minute = [self._minutes.get(first + i, 0) for i in range(MINUTES)]
        return Stats(self.views, self.closes, self.other, self.rejected, len(self.user_ids), per_minute)


def sessions(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every session, newest first, with its counts."""
    count = "(SELECT count(*) FROM {} WHERE session_id = s.id{})"
    sql = (
        "SELECT s.*,"
        f" {count.format('events', '')} AS events,"
        f" {count.format('rejected', '')} AS rejected,"
        f" {count.format('events', ' AND event = :view')} AS views,"
        f" {count.format('events', ' AND event = :close')} AS closes"
        " FROM sessions s ORDER BY s.id DESC"
    )
    return _dicts(db, sql, {"view": GATEWAY_VIEW, "close": GATEWAY_CLOSE})


def _session_where(session_id: int | None) -> str:
    return "" if session_id is None else "session_id = ? AND "


def _session_args(session_id: int | None) -> list[Any]:
    return [] if session_id is None else [session_id]


def _dicts(db: sqlite_utils.Database, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# -- export ---------------------------------------------------------------------

#: Ids fetched per query when an export selects rows by id.
_ID_CHUNK = 500


def select_sql(
    columns: Sequence[str], *, session_id: int | None = None, filter_text: str = ""
) -> tuple[str, list[Any]]:
    """``SELECT columns FROM events WHERE ...`` for a session (None: all) and a filter.

    Raises :class:`monitor.filters.FilterError` for a bad filter.
    """
    compiled = compile_filter(filter_text, table="events")
    where, params = [f"({compiled.where})"], list(compiled.params)
    if session_id is not None:
        where.append("session_id = ?")
        params.append(session_id)
    return f"SELECT {', '.join(columns)} FROM events WHERE {' AND '.join(where)}", params


def export_rows(
    db: sqlite_utils.Database,
    columns: Sequence[str],
    *,
    session_id: int | None = None,
    filter_text: str = "",
    ids: Sequence[int] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Selected rows as tuples of ``columns``, in id order, streamed.

    Everything: one scan in rowid order. Otherwise the matching ids come first
    (through the indexes; sorting integers is cheap, sorting whole rows with
    their bodies is not), then the rows, a few hundred at a time, by id.
    """
    sql, params = select_sql(columns, session_id=session_id, filter_text=filter_text)
    if ids is None and session_id is None and compile_filter(filter_text).where == "1":
        yield from _stream(db.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY id"))
        return
    if ids is None:
        id_sql, id_params = select_sql(("id",), session_id=session_id, filter_text=filter_text)
        sql, params = f"SELECT {', '.join(columns)} FROM events WHERE 1", []  # the ids already match
        chunks = _id_chunks(db.execute(id_sql + " ORDER BY id", id_params))
    else:
        wanted = sorted(set(ids))
        chunks = iter([wanted[start : start + _ID_CHUNK] for start in range(0, len(wanted), _ID_CHUNK)])
    for chunk in chunks:
        marks = ", ".join("?" * len(chunk))
        yield from db.execute(f"{sql} AND id IN ({marks}) ORDER BY id", [*params, *chunk]).fetchall()


def _id_chunks(cursor: Any) -> Iterator[list[int]]:
    while rows := cursor.fetchmany(_ID_CHUNK):
        yield [row[0] for row in rows]


def _stream(cursor: Any) -> Iterator[tuple[Any, ...]]:
    while rows := cursor.fetchmany(1000):
        yield from rows


# -- waiting (``conscent-monitor wait``, the pytest plugin) -------------------------

#: What ``wait`` reports of a delivery, and what its one-line form needs.
WAITED_COLUMNS = (
    "id", "received_at", "created_at", "session_id", "event", "kind", "user_id", "name", "username", "signature",
    "body",
)  # fmt: skip
_WAITED = ", ".join(WAITED_COLUMNS)
_WAITED_FRESH = ", ".join(f"fresh.{name}" for name in WAITED_COLUMNS)
_REJECTED_SEEN = "id, received_at, status, reason"


def newest_session(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The latest session (``id``, ``started_at``, ``ended_at``), or None in a database without one."""
    rows = _dicts(db, "SELECT id, started_at, ended_at FROM sessions ORDER BY id DESC LIMIT 1", [])
    return rows[0] if rows else None


def waited_in_window(
    db: sqlite_utils.Database, where: str, params: Sequence[Any], *, since: float, upto_id: int, limit: int
) -> list[dict[str, Any]]:
    """The first ``limit`` events received at or after ``since`` (ids up to ``upto_id``) matching ``where``.

    Oldest first. Run once, when a wait starts: an index bounds the walk to the window (the
    ``received_at`` one, or one the filter uses). ``+id`` and the order by
    receipt keep SQLite from walking the rowids from the first (the last hour
    of 50,000 rows: 59 ms that way, growing with the table; 0.2 ms this way).
    """
    sql = (
        f"SELECT {_WAITED} FROM events WHERE received_at >= ? AND +id <= ? AND ({where})"
        " ORDER BY received_at, id LIMIT ?"
    )
    return _dicts(db, sql, [since, upto_id, *params, limit])


def waited_new(
    db: sqlite_utils.Database,
    where: str,
    params: Sequence[Any],
    *,
    after_id: int,
    upto_id: int,
    since: float | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Events with ``after_id < id <= upto_id`` (received at or after ``since``) that match ``where``.

    Run after every commit while waiting, so it must cost the new rows only,
    whatever the table's size: the outer walk is the rowid range (``+`` keeps
    the ``received_at`` index out of it), and the filter is tested on each new
    row by its rowid in the subquery, so no index the filter could use (all
    ``event = ?`` rows, say) ever drives the query.
    """
    window = "" if since is None else " AND +fresh.received_at >= ?"
    sql = (
        f"SELECT {_WAITED_FRESH} FROM events AS fresh WHERE fresh.id > ? AND fresh.id <= ?{window}"
        f" AND EXISTS (SELECT 1 FROM events WHERE events.id = fresh.id AND ({where})) ORDER BY fresh.id LIMIT ?"
    )
    bounds = [after_id, upto_id] + ([] if since is None else [since])
    return _dicts(db, sql, [*bounds, *params, limit])


def _window_where(since: float | None, after_id: int) -> tuple[str, list[Any]]:
    parts: list[str] = ["id > ?"]
    args: list[Any] = [after_id]
    if since is not None:
        parts.append("received_at >= ?")
        args.append(since)
    return " AND ".join(parts), args


def events_in_window(
    db: sqlite_utils.Database,
    where: str,
    params: Sequence[Any],
    *,
    since: float | None,
    after_id: int = 0,
    examples: int = 3,
) -> tuple[int, list[dict[str, Any]]]:
    """How many events of the window match ``where``, and the latest few (a timed-out wait's near misses)."""
    window, args = _window_where(since, after_id)
    total = db.execute(f"SELECT count(*) FROM events WHERE {window} AND ({where})", [*args, *params]).fetchone()[0]
    sql = f"SELECT {_WAITED} FROM events WHERE {window} AND ({where}) ORDER BY id DESC LIMIT ?"
    return int(total), _dicts(db, sql, [*args, *params, examples])


def rejected_in_window(
    db: sqlite_utils.Database, *, since: float | None, after_id: int = 0, examples: int = 3
) -> tuple[int, list[dict[str, Any]]]:
    """How many deliveries the window rejected, and the latest few."""
    window, args = _window_where(since, after_id)
    total = db.execute(f"SELECT count(*) FROM rejected WHERE {window}", args).fetchone()[0]
    sql = f"SELECT {_REJECTED_SEEN} FROM rejected WHERE {window} ORDER BY id DESC LIMIT ?"
    return int(total), _dicts(db, sql, [*args, examples])


def newest_ids(db: sqlite_utils.Database) -> tuple[int, int]:
    """The highest event and rejected ids committed so far (0 for an empty table)."""
    with read_snapshot(db) as ids:
        return ids


# -- insights (issue 15) --------------------------------------------------------------
#
# The Insights screen's figures, each from one function over the current view
# (session, mode and filter), all gathered by :func:`insights`. What counts:
#
# - a paywall view is a ``paywall.*`` event other than ``paywall.exit``
#   (Conscent sends no ``paywall.view``: ``paywall.click`` is the paywall shown
#   and acted on; ``paywall.exit`` follows a paywall already counted and carries
#   no content id);
# - a transaction is ``transaction.complete``, a purchase ``purchase.*``; neither
#   carries a content id or paywall id, so each counts for the reader's latest
#   gateway view before it (none: "(none)");
# - repeated deliveries (``duplicate_of`` set) count in the deliveries over
#   time and the lag, never in the funnel, the close actions or the pairing.
#
# Cost at a million events. Counts walk the ``INSIGHTS_INDEX`` (in the schema:
# ``store.SPECIAL_INDEXES``; without it every figure reads table rows, ~3 µs each), one
# index range per event, grouped in index order. What needs each reader's
# events in time order (a payment's content, the view a close pairs with) is
# read for a slice of the readers when the view holds more than
# ``JOURNEY_SAMPLE`` such events, and says so (``share``). The lag reads one
# delivery in ``step``.

#: The covering index the figures walk (the schema's ``idx_events_insights``).
INSIGHTS_INDEX = store.INSIGHTS_INDEX
#: The funnel's stages, in order.
STAGES = ("paywall", "views", "closes", "transactions", "purchases")
TRANSACTION_COMPLETE = "transaction.complete"
PAYWALL_EXIT = "paywall.exit"
#: The funnel lists this many content ids and paywalls (most gateway views first); the rest are counted.
FUNNEL_ROWS = 12
#: Time buckets of the charts over time, at most (each a "nice" width: 1 s ... 7 d).
BUCKETS = 60
#: Event types the deliveries chart draws on their own; the rest are "other".
TIMELINE_SERIES = 6
#: Read the lag of at most about this many deliveries (every n-th row by id beyond).
LAG_SAMPLE = 10_000
#: Pair views and closes, and find payments' views, in time order for at most about this many events.
JOURNEY_SAMPLE = 10_000
#: Bars of the time-to-close histogram, the last one open-ended.
CLOSE_BINS = 12
_NICE_WIDTHS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
)  # fmt: skip
#: Each stage's rows: an index range of ``event`` (the arms of the funnel's count).
_STAGE_WHERE = {
    "paywall": "event >= 'paywall.' AND event < 'paywall/' AND event <> 'paywall.exit'",
    "views": f"event = '{GATEWAY_VIEW}'",
    "closes": f"event = '{GATEWAY_CLOSE}'",
    "transactions": f"event = '{TRANSACTION_COMPLETE}'",
    "purchases": "event >= 'purchase.' AND event < 'purchase/'",
}


@dataclass(frozen=True)
class FunnelRow:
    """One content id's (or paywall's, or everything's) funnel; ``key`` None: not known."""

    key: str | None
    paywall: int = 0
    views: int = 0
    closes: int = 0
    transactions: int = 0
    purchases: int = 0

    def stage(self, name: str) -> int:
        return int(getattr(self, name))

    @staticmethod
    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def view_rate(self) -> float | None:
        """Gateway views per paywall view."""
        return self.rate(self.views, self.paywall)

    @property
    def close_rate(self) -> float | None:
        """Closes per gateway view."""
        return self.rate(self.closes, self.views)

    @property
    def purchase_rate(self) -> float | None:
        """Purchases per gateway view."""
        return self.rate(self.purchases, self.views)


@dataclass(frozen=True)
class Funnel:
    total: FunnelRow
    by_content: list[FunnelRow]  # at most FUNNEL_ROWS, most gateway views first
    by_paywall: list[FunnelRow]
    contents: int  # how many content ids in all (None included)
    paywalls: int
    #: Share of the payments whose view was looked up (1.0: all); below 1 the per-content
    #: transactions and purchases are that slice's split scaled to the exact totals.
    share: float = 1.0


@dataclass(frozen=True)
class CloseAction:
    action: str | None  # the close's clickAction; None: it had none
    count: int
    share: float  # of all closes


@dataclass(frozen=True)
class TimeToClose:
    """Seconds from each gateway view to its close, as :mod:`monitor.journey` pairs them."""

    pairs: int
    unpaired: int  # closes with no open view before them
    median: float | None
    p90: float | None
    edges: list[float]  # bar i counts edges[i] <= seconds < edges[i+1]; the last bar has no upper bound
    counts: list[int]
    share: float = 1.0  # of the views and closes read (a slice of the readers when below 1)


@dataclass(frozen=True)
class TimeAxis:
    """Buckets ``start + i*width`` for i in ``range(buckets)`` (epoch seconds)."""

    start: float
    width: float
    buckets: int

    def index(self, t: float) -> int:
        return min(self.buckets - 1, max(0, math.floor((t - self.start) / self.width)))

    @property
    def end(self) -> float:
        return self.start + self.width * self.buckets


@dataclass(frozen=True)
class Timeline:
    """Deliveries per bucket by event type (most first, then "other", then "rejected" in all mode)."""

    axis: TimeAxis
    series: list[tuple[str, list[int]]]

    @property
    def totals(self) -> list[int]:
        return [sum(column) for column in zip(*(counts for _, counts in self.series), strict=True)]


@dataclass(frozen=True)
class Lag:
    """Delivery lag (``received_at - created_at``) per bucket of the same axis."""

    axis: TimeAxis
    p50: list[float | None]
    p95: list[float | None]
    counts: list[int]  # lags read per bucket
    step: int  # one delivery in ``step`` was read (1: all)
    overall_p50: float | None
    overall_p95: float | None
    maximum: float | None


@dataclass(frozen=True)
class Insights:
    mode: Literal["gateway", "all"]
    rows: int  # deliveries in view (accepted, plus rejected in all mode)
    funnel: Funnel
    close_actions: list[CloseAction]
    time_to_close: TimeToClose
    timeline: Timeline | None  # None: nothing in view
    lag: Lag | None
    now: float

    @property
    def empty(self) -> bool:
        return self.rows == 0


def _insight_where(view: View, extra: str = "1", extra_args: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """``FROM events WHERE``: the view's session, mode and filter, and ``extra``."""
    session, args = _session_where(view.session_id), _session_args(view.session_id)
    mode = "event IN (?, ?) AND " if view.mode == "gateway" else ""
    modes = [GATEWAY_VIEW, GATEWAY_CLOSE] if view.mode == "gateway" else []
    where = "" if view.where == "1" else f" AND ({view.where})"
    return f"FROM events WHERE {session}{mode}({extra}){where}", [*args, *modes, *extra_args, *view.params]


def _stages(view: View) -> list[str]:
    """The funnel's stages the view shows (gateway mode: views and closes)."""
    return ["views", "closes"] if view.mode == "gateway" else list(STAGES)


def _stage_counts(db: sqlite_utils.Database, view: View, stage: str) -> list[tuple[Any, ...]]:
    """(content id, paywall id, clickAction, count) of one stage: one walk of an index range, in its order."""
    where, args = _insight_where(view, f"{_STAGE_WHERE[stage]} AND duplicate_of IS NULL")
    sql = f"SELECT content_id, paywall_id, click_action, count(*) {where} GROUP BY event, 1, 2, 3"
    return db.execute(sql, args).fetchall()


def _reader_slice(db: sqlite_utils.Database, rows: int, target: int) -> tuple[str, list[Any], float]:
    """A condition keeping readers whose id sorts below a bound: about ``target`` of ``rows`` events.

    ``("1", [], 1.0)`` when ``rows`` is within ``target``. The bound is read
    from the ``(user_id, received_at)`` index (one walk of ``target``-ish
    entries), so the slice is the same readers from one refresh to the next;
    the share returned is the one aimed at (callers measure the real one).
    """
    if rows <= target:
        return "1", [], 1.0
    share = target / rows
    # Every event, near enough (a few have no reader): the real share is measured afterwards. (max() alone
    # is one index probe; with min() in the same SELECT, SQLite reads the whole table.)
    everyone = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    found = db.execute(
        "SELECT user_id FROM events WHERE user_id IS NOT NULL ORDER BY user_id LIMIT 1 OFFSET ?",
        [int(everyone * share)],
    ).fetchone()
    if found is None:
        return "1", [], 1.0
    return "+user_id < ?", [found[0]], share  # "+": walk the insights index, not the readers'


def insights_funnel(db: sqlite_utils.Database, view: View, limit: int = FUNNEL_ROWS) -> Funnel:
    """Paywall views → gateway views → closes / transactions / purchases, per content id and per paywall.

    Paywall views, gateway views and closes are counted exactly, by the
    content and paywall they carry. Transactions and purchases carry neither:
    each takes its reader's latest gateway view before it (a running count of
    views numbers the reader's stretches; a payment takes the view opening
    its stretch). For many payments that lookup reads a slice of the readers
    and splits the exact totals as the slice does (``Funnel.share``).
    """
    content: dict[str | None, Counter[str]] = {}
    paywall: dict[str | None, Counter[str]] = {}
    total: Counter[str] = Counter()
    stages = _stages(view)
    for stage in stages:
        if stage in ("transactions", "purchases"):
            where, args = _insight_where(view, f"{_STAGE_WHERE[stage]} AND duplicate_of IS NULL")
            total[stage] = db.execute(f"SELECT count(*) {where}", args).fetchone()[0]
            continue
        for content_id, paywall_id, _action, n in _stage_counts(db, view, stage):
            content.setdefault(content_id, Counter())[stage] += n
            paywall.setdefault(paywall_id, Counter())[stage] += n
            total[stage] += n
    share = 1.0
    if view.mode == "all" and (total["transactions"] or total["purchases"]):
        share = _attribute_payments(db, view, total, content, paywall)

    def rows(groups: dict[str | None, Counter[str]]) -> list[FunnelRow]:
        made = [FunnelRow(key, **{name: counts[name] for name in STAGES}) for key, counts in groups.items()]
        made.sort(key=lambda row: (-row.views, -row.paywall, -row.purchases, row.key is None, row.key or ""))
        return made[:limit]

    totals = FunnelRow(None, **{name: total[name] for name in STAGES})
    return Funnel(totals, rows(content), rows(paywall), len(content), len(paywall), share)


def _attribute_payments(
    db: sqlite_utils.Database,
    view: View,
    total: Counter[str],
    content: dict[str | None, Counter[str]],
    paywall: dict[str | None, Counter[str]],
) -> float:
    """Add each payment to its view's content and paywall (scaled from a slice of readers when many); the share."""
    payments = total["transactions"] + total["purchases"]
    readers, reader_args, share = _reader_slice(db, payments + total["views"], JOURNEY_SAMPLE)
    arms = [
        _insight_where(view, f"{_STAGE_WHERE[stage]} AND duplicate_of IS NULL AND {readers}", reader_args)
        for stage in ("views", "transactions", "purchases")
    ]
    union = " UNION ALL ".join(
        f"SELECT id, event, user_id, content_id, paywall_id, coalesce(created_at, received_at) AS t {where}"
        for where, _ in arms
    )
    sql = (
        f"WITH r AS ({union}), s AS ("
        " SELECT *, sum(event = ?) OVER (PARTITION BY user_id ORDER BY t, id ROWS UNBOUNDED PRECEDING) AS n FROM r"
        "), a AS ("
        " SELECT event, n, user_id, content_id, paywall_id,"
        " first_value(content_id) OVER w AS view_content, first_value(paywall_id) OVER w AS view_paywall"
        " FROM s WINDOW w AS (PARTITION BY user_id, n ORDER BY t, id)"
        ")"
        " SELECT event = ?, CASE WHEN content_id IS NULL AND paywall_id IS NULL AND n > 0 AND user_id IS NOT NULL"
        " THEN 1 ELSE 0 END AS inherit, content_id, paywall_id, view_content, view_paywall, count(*)"
        " FROM a WHERE event <> ? GROUP BY 1, 2, 3, 4, 5, 6"
    )
    args = [param for _, params in arms for param in params]
    found = db.execute(sql, [*args, GATEWAY_VIEW, TRANSACTION_COMPLETE, GATEWAY_VIEW]).fetchall()
    sampled = Counter[str]()
    for is_tx, _, _, _, _, _, n in found:
        sampled["transactions" if is_tx else "purchases"] += n
    for is_tx, inherit, content_id, paywall_id, view_content, view_paywall, n in found:
        stage = "transactions" if is_tx else "purchases"
        scaled = round(n * total[stage] / sampled[stage]) if share < 1.0 else n
        content.setdefault(view_content if inherit else content_id, Counter())[stage] += scaled
        paywall.setdefault(view_paywall if inherit else paywall_id, Counter())[stage] += scaled
    return min(1.0, sum(sampled.values()) / payments) if share < 1.0 else 1.0


def insights_close_actions(db: sqlite_utils.Database, view: View) -> list[CloseAction]:
    """How readers close the gateway: each clickAction, most used first, with its share of the closes."""
    counts: Counter[str | None] = Counter()
    for _content, _paywall, action, n in _stage_counts(db, view, "closes"):
        counts[action or None] += n
    total = sum(counts.values())
    found = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))
    return [CloseAction(action, n, n / total) for action, n in found]


def insights_time_to_close(db: sqlite_utils.Database, view: View, bins: int = CLOSE_BINS) -> TimeToClose:
    """Pair views and closes as the reader drill-down does (:mod:`monitor.journey`), reader by reader.

    The views and closes in view are read for a slice of the readers when
    there are many (``TimeToClose.share``), grouped by reader and paired by
    the journey's rules (:func:`_journey_times`); times are ``created_at``
    (else receipt).
    """
    where, args = _insight_where(view, "event IN (?, ?) AND duplicate_of IS NULL", [GATEWAY_VIEW, GATEWAY_CLOSE])
    rows = db.execute(f"SELECT count(*) {where}", args).fetchone()[0]
    readers, reader_args, share = _reader_slice(db, rows, JOURNEY_SAMPLE)
    where, args = _insight_where(
        view, f"event IN (?, ?) AND duplicate_of IS NULL AND {readers}", [GATEWAY_VIEW, GATEWAY_CLOSE, *reader_args]
    )
    # The insights index covers every column but client_content_id: read that by id, only where content_id is empty.
    columns = _JOURNEY_COLUMNS
    by_reader: dict[str, list[dict[str, Any]]] = {}
    no_content: dict[int, dict[str, Any]] = {}
    read = 0
    for found in db.execute(f"SELECT user_id, {', '.join(columns)} {where}", args):
        read += 1
        if found[0] is None:
            continue
        row = dict(zip(columns, found[1:], strict=True))
        by_reader.setdefault(found[0], []).append(row)
        if not row["content_id"]:
            no_content[row["id"]] = row
    ids = list(no_content)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row_id, client_content in db.execute(
            f"SELECT id, client_content_id FROM events WHERE id IN ({marks})", chunk
        ):
            no_content[row_id]["client_content_id"] = client_content
    times: list[float] = []
    unpaired = 0
    for events in by_reader.values():
        unpaired += _journey_times(events, times)
    times.sort()
    if share < 1.0:
        share = min(1.0, read / rows)
    if not times:
        return TimeToClose(0, unpaired, None, None, [], [], share)
    edges = _close_edges(times, bins)
    counts = [0] * (len(edges) - 1)
    for seconds in times:
        counts[_bin(edges, seconds)] += 1
    return TimeToClose(len(times), unpaired, _quantile(times, 0.5), _quantile(times, 0.9), edges, counts, share)


#: What the pairing reads of a view or a close (:func:`monitor.journey.build_journey` reads these).
_JOURNEY_COLUMNS = (
    "id", "event", "created_at", "received_at", "gateway_session_id", "content_id", "paywall_id", "click_action",
)  # fmt: skip


def _journey_times(events: list[dict[str, Any]], times: list[float]) -> int:
    """One reader's views and closes (no repeated deliveries) paired as ``journey.build_journey`` pairs them.

    Appends each pair's time to close to ``times``; returns the closes left
    unpaired. The rules are journey's own (:func:`monitor.journey.match_key`:
    a close takes the earliest open view with its strongest key); only the
    views' outcomes, which need the reader's other events, are left out.
    """
    from monitor.journey import event_time, match_key

    order = {"sessionId": 0, "paywallId+content": 1, "next close": 2}
    events.sort(key=lambda row: (event_time(row), row["id"]))
    open_views: list[dict[str, Any]] = []
    by_session: dict[str, list[dict[str, Any]]] = {}  # the open views with each sessionId, earliest first
    unpaired = 0
    for close in events:
        if close["event"] == GATEWAY_VIEW:
            open_views.append(close)
            if close["gateway_session_id"]:
                by_session.setdefault(close["gateway_session_id"], []).append(close)
            continue
        best, best_rank = -1, len(order)
        session = close["gateway_session_id"]
        same = by_session.get(session) if session else None
        if same:  # the earliest open view with this sessionId: match_key's strongest key (the shortcut of a scan)
            first = same[0]
            best, best_rank = next(i for i, v in enumerate(open_views) if v is first), 0
        for index, candidate in enumerate(open_views if best < 0 else ()):
            how = match_key(candidate, close)
            if how is not None and order[how] < best_rank:
                best, best_rank = index, order[how]
                if best_rank == 0:
                    break
        if best < 0:
            unpaired += 1
            continue
        view = open_views.pop(best)
        if view["gateway_session_id"]:
            by_session[view["gateway_session_id"]].remove(view)
        both_created = view["created_at"] is not None and close["created_at"] is not None
        column = "created_at" if both_created else "received_at"
        times.append(float(close[column]) - float(view[column]))
    return unpaired


def _close_edges(times: list[float], bins: int) -> list[float]:
    """Bars of one "nice" width from 0 covering up to the 95th percentile; the last bar takes the rest."""
    top = _quantile(times, 0.95) or 1.0
    width = next((float(w) for w in _NICE_WIDTHS if w * (bins - 1) >= top), float(_NICE_WIDTHS[-1]))
    return [width * i for i in range(bins)] + [math.inf]


def _bin(edges: list[float], seconds: float) -> int:
    width = edges[1] - edges[0]
    return min(len(edges) - 2, max(0, math.floor(seconds / width)))


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolated between neighbours (``statistics.median`` at 0.5)."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _received_bounds(db: sqlite_utils.Database, view: View) -> tuple[float | None, float | None]:
    """The first and last receipt in view: two walks from either end of a ``received_at`` index."""
    where, args = _insight_where(view)
    bounds: list[float | None] = []
    for direction in ("ASC", "DESC"):
        found = db.execute(f"SELECT received_at {where} ORDER BY received_at {direction} LIMIT 1", args).fetchone()
        bounds.append(found[0] if found else None)
    if view.mode == "all":
        session, s_args = _session_where(view.session_id), _session_args(view.session_id)
        for index, direction in enumerate(("ASC", "DESC")):
            found = db.execute(
                f"SELECT received_at FROM rejected WHERE {session}({view.rejected_where})"
                f" ORDER BY received_at {direction} LIMIT 1",
                [*s_args, *view.rejected_params],
            ).fetchone()
            if found is not None:
                known = bounds[index]
                pick = min if direction == "ASC" else max
                bounds[index] = found[0] if known is None else pick(known, found[0])
    return bounds[0], bounds[1]


def insights_axis(
    db: sqlite_utils.Database, view: View, buckets: int = BUCKETS, *, now: float, live: bool = False
) -> TimeAxis | None:
    """A time axis that fits the view's deliveries: seconds for a short live run, days for a long import.

    From the first delivery in view to the last, or to ``now`` when ``live``
    (the view shows the session being recorded: its quiet stretch shows).
    None when nothing is in view.
    """
    first, last = _received_bounds(db, view)
    if first is None or last is None:
        return None
    if live:
        last = max(last, now)
    span = max(last - first, 1.0)
    width = next((float(w) for w in _NICE_WIDTHS if span / w < buckets), float(_NICE_WIDTHS[-1]))
    start = math.floor(first / width) * width
    return TimeAxis(start, width, max(1, math.floor((last - start) / width) + 1))


def insights_timeline(
    db: sqlite_utils.Database,
    view: View,
    buckets: int = BUCKETS,
    *,
    now: float,
    live: bool = False,
    axis: TimeAxis | None = None,
) -> Timeline | None:
    """Deliveries per time bucket and event type.

    Without a filter: a count per event type and bucket, each a range of the
    ``(session_id, event, received_at)`` or ``(event, received_at)`` index
    (a million rows: 0.15 s; one grouped pass computing each row's bucket
    took 1 s). With one: a single grouped pass over what the filter selects.
    """
    axis = axis or insights_axis(db, view, buckets, now=now, live=live)
    if axis is None:
        return None
    per_event = _bucket_counts(db, view, axis) if view.where == "1" else _grouped_bucket_counts(db, view, axis)
    ranked = sorted(per_event.items(), key=lambda item: (-sum(item[1]), item[0]))
    series = ranked[:TIMELINE_SERIES]
    if len(ranked) > TIMELINE_SERIES:
        other = [sum(column) for column in zip(*(counts for _, counts in ranked[TIMELINE_SERIES:]), strict=True)]
        series.append(("other", other))
    if view.mode == "all":
        session, s_args = _session_where(view.session_id), _session_args(view.session_id)
        rejected = [0] * axis.buckets
        found = db.execute(
            f"SELECT CAST((received_at - ?) / ? AS INTEGER), count(*) FROM rejected"
            f" WHERE {session}({view.rejected_where}) GROUP BY 1",
            [axis.start, axis.width, *s_args, *view.rejected_params],
        ).fetchall()
        for b, n in found:
            rejected[min(max(b, 0), axis.buckets - 1)] += n
        if any(rejected):
            series.append(("rejected", rejected))
    return Timeline(axis, series)


def _event_names(db: sqlite_utils.Database, view: View) -> list[str | None]:
    """The event names in view, one index seek each (None: legacy deliveries without one)."""
    if view.mode == "gateway":
        return [GATEWAY_VIEW, GATEWAY_CLOSE]
    session, args = _session_where(view.session_id), _session_args(view.session_id)
    names: list[str | None] = []
    if db.execute(f"SELECT 1 FROM events WHERE {session}event IS NULL LIMIT 1", args).fetchone():
        names.append(None)
    name = db.execute(f"SELECT min(event) FROM events WHERE {session}event IS NOT NULL", args).fetchone()[0]
    while name is not None:
        names.append(name)
        name = db.execute(f"SELECT min(event) FROM events WHERE {session}event > ?", [*args, name]).fetchone()[0]
    return names


def _bucket_counts(db: sqlite_utils.Database, view: View, axis: TimeAxis) -> dict[str, list[int]]:
    session, args = _session_where(view.session_id), _session_args(view.session_id)
    per_event: dict[str, list[int]] = {}
    for name in _event_names(db, view):
        test = "event IS NULL" if name is None else "event = ?"
        named = [] if name is None else [name]
        sql = f"SELECT count(*) FROM events WHERE {session}{test} AND received_at >= ? AND received_at < ?"
        counts = []
        for i in range(axis.buckets):
            low = -math.inf if i == 0 else axis.start + i * axis.width
            high = math.inf if i == axis.buckets - 1 else axis.start + (i + 1) * axis.width
            counts.append(db.execute(sql, [*args, *named, low, high]).fetchone()[0])
        if any(counts):
            per_event[name or "(legacy)"] = counts
    return per_event


def _grouped_bucket_counts(db: sqlite_utils.Database, view: View, axis: TimeAxis) -> dict[str, list[int]]:
    where, args = _insight_where(view)
    sql = f"SELECT coalesce(event, '(legacy)'), CAST((received_at - ?) / ? AS INTEGER), count(*) {where} GROUP BY 1, 2"
    per_event: dict[str, list[int]] = {}
    for event, b, n in db.execute(sql, [axis.start, axis.width, *args]).fetchall():
        per_event.setdefault(event, [0] * axis.buckets)[min(max(b, 0), axis.buckets - 1)] += n
    return per_event


def insights_lag(
    db: sqlite_utils.Database,
    view: View,
    buckets: int = BUCKETS,
    *,
    now: float,
    live: bool = False,
    axis: TimeAxis | None = None,
    sample: int = LAG_SAMPLE,
) -> Lag | None:
    """p50 and p95 of ``received_at - created_at`` per bucket, and over the whole view.

    Beyond ``sample`` deliveries, one in ``step`` (the ids divisible by it)
    is read, each by its id: the percentiles stay within a few per cent and
    the cost flat (10,000 row reads).
    """
    axis = axis or insights_axis(db, view, buckets, now=now, live=live)
    if axis is None:
        return None
    where, args = _insight_where(view)
    rows = db.execute(f"SELECT count(*) {where}", args).fetchone()[0]
    step = max(1, math.ceil(rows / sample)) if sample else 1
    bucket = "CAST((received_at - ?) / ? AS INTEGER) AS b, received_at - created_at AS lag"
    if step == 1:
        where, args = _insight_where(view, "created_at IS NOT NULL")
        sql, params = f"SELECT {bucket} {where} ORDER BY lag", [axis.start, axis.width, *args]
    else:
        top = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        where, args = _insight_where(view, "created_at IS NOT NULL AND id = ids.x")
        sql = (
            "WITH RECURSIVE ids(x) AS (SELECT ? UNION ALL SELECT x + ? FROM ids WHERE x + ? <= ?)"
            f" SELECT {bucket} FROM ids, events WHERE {where.removeprefix('FROM events WHERE ')} ORDER BY lag"
        )
        params = [step, step, step, top, axis.start, axis.width, *args]
    per_bucket: list[list[float]] = [[] for _ in range(axis.buckets)]
    everything: list[float] = []
    for b, lag in db.execute(sql, params):
        per_bucket[min(max(b, 0), axis.buckets - 1)].append(lag)
        everything.append(lag)
    return Lag(
        axis,
        [_quantile(values, 0.5) for values in per_bucket],
        [_quantile(values, 0.95) for values in per_bucket],
        [len(values) for values in per_bucket],
        step,
        _quantile(everything, 0.5),
        _quantile(everything, 0.95),
        everything[-1] if everything else None,
    )


@contextlib.contextmanager
def _filtered(db: sqlite_utils.Database, view: View) -> Iterator[View]:
    """The view with its filter's matches read once, into a temporary table of ids.

    A filter on columns outside the insights index (a word, a country) costs
    a read of every row it tests; a dozen figures would pay it a dozen times
    (a million events, ``content:budget``: 15 s, then 1.5 s this way).
    """
    if view.where == "1":
        yield view
        return
    session, args = _session_where(view.session_id), _session_args(view.session_id)
    db.execute("CREATE TEMP TABLE IF NOT EXISTS insight_ids (id INTEGER PRIMARY KEY)")
    db.execute("DELETE FROM temp.insight_ids")
    db.execute(
        f"INSERT INTO temp.insight_ids SELECT id FROM events WHERE {session}({view.where})", [*args, *view.params]
    )
    try:
        yield replace(
            view, where="+id IN (SELECT id FROM temp.insight_ids)", params=()
        )  # "+": walk the indexes, test each id
    finally:
        db.execute("DELETE FROM temp.insight_ids")


def insights(
    db: sqlite_utils.Database, view: View, now: float, *, live: bool = False, buckets: int = BUCKETS
) -> Insights:
    """Every figure of the Insights screen, in one read transaction.

    ``live``: the view shows the session being recorded (its time axis runs to ``now``).
    """
    with read_snapshot(db), _filtered(db, view) as view:
        axis = insights_axis(db, view, buckets, now=now, live=live)
        return Insights(
            mode=view.mode,
            rows=count_rows(db, view),
            funnel=insights_funnel(db, view),
            close_actions=insights_close_actions(db, view),
            time_to_close=insights_time_to_close(db, view),
            timeline=insights_timeline(db, view, buckets, now=now, axis=axis),
            lag=insights_lag(db, view, buckets, now=now, axis=axis),
            now=now,
        )
