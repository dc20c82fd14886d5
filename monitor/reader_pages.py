"""A reader's drill-down read a page at a time: the journey's pages, pairing and figures.

The drill-down of a reader with 10,000 events must not read them all (nor
pair them all) before it shows its first screen. Here:

- the journey's order is a list of ids, walked from the ``(user_id,
  received_at)`` index (received order, no table row) or sorted on
  ``coalesce(created_at, received_at)`` (created order, read when ``t``
  asks for it);
- a page reads its rows by id, and pairs them with the rows of their
  components only (:mod:`monitor.journey`): with a sessionId on every view
  and close, the page's sessionIds looked up in the pairing index (a
  covering index: no table row); else every view and close of the reader;
- the figures (counts per event, views, closes, repeats) are SQL
  aggregates; the outcome figures (closed, open, converted, median time to
  close) pair the reader's views and closes from the pairing columns only,
  off the first screen's path for a long journey (:func:`summary`).

No Textual here; nothing holds a connection: each read takes the
:class:`sqlite_utils.Database` of the thread that runs it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlite_utils

from monitor import store
from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.journey import Conversions, JourneyStep, PairSummary, page_steps, pair_rows, summarize

Order = Literal["received", "created"]

#: The journey's orders: received (the main table's) and created (Conscent's ``created_at``, else receipt).
ORDER_BY: dict[Order, str] = {
    "received": "received_at, id",
    "created": "coalesce(created_at, received_at), id",
}
#: What pairing and outcomes read of a view or a close (the pairing index holds every one of them).
PAIRING_COLUMNS = (
    "id, event, created_at, received_at, duplicate_of, gateway_session_id, paywall_id, content_id,"
    " client_content_id, click_action"
)
#: What an outcome reads of a purchase.
CONVERSION_COLUMNS = "id, event, created_at, received_at, duplicate_of, content_id, client_content_id"
#: Every column a journey row shows or opens, that is all but the body.
ROW_COLUMNS = ", ".join(name for name in store.EVENTS_COLUMNS if name != "body")
#: SQLite's default bound on a statement's variables is 32766; stay well under it.
_CHUNK = 500
#: Up to this many views and closes, the outcome figures are read with the first screen.
SUMMARY_AT_ONCE = 2000


def _scope(session_id: int | None) -> tuple[str, list[Any]]:
    return ("", []) if session_id is None else (" AND session_id = ?", [session_id])


def journey_ids(db: sqlite_utils.Database, user_id: str, session_id: int | None, order: Order) -> list[int]:
    """The ids of the reader's events (of the session, if any) in the journey's ``order``."""
    scope, args = _scope(session_id)
    sql = f"SELECT id FROM events WHERE user_id = ?{scope} ORDER BY {ORDER_BY[order]}"
    return [int(row[0]) for row in db.execute(sql, [user_id, *args]).fetchall()]


def rows_by_id(db: sqlite_utils.Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The rows with these ids (all columns but the body), in the order of ``ids`` (a row gone is left out)."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        sql = f"SELECT {ROW_COLUMNS} FROM events WHERE id IN ({', '.join('?' * len(chunk))})"
        found.update((int(row["id"]), row) for row in _dicts(db, sql, chunk))
    return [found[i] for i in ids if i in found]


def pairs_by_session(db: sqlite_utils.Database, user_id: str, session_id: int | None) -> bool:
    """Whether every non-repeated view and close of the reader has a sessionId (two seeks in the pairing index)."""
    scope, args = _scope(session_id)
    lacking = " UNION ALL ".join(
        f"SELECT 1 FROM events WHERE gateway_session_id {test} AND user_id = ? AND {store.GATEWAY_ROWS}"
        f" AND duplicate_of IS NULL{scope}"
        for test in ("IS NULL", "= ''")
    )
    return bool(db.execute(f"SELECT EXISTS ({lacking})", [user_id, *args, user_id, *args]).fetchone()[0] == 0)


def _pairing_index(db: sqlite_utils.Database) -> str:
    """`` INDEXED BY`` the pairing index when the file has it: an index on the reader and event would
    otherwise win, and read every view and close of the reader from the table."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", [store.PAIRING_INDEX])
    return f" INDEXED BY {store.PAIRING_INDEX}" if found.fetchone() else ""


def gateway_of_sessions(
    db: sqlite_utils.Database, user_id: str, session_id: int | None, gateway_sessions: Collection[str]
) -> list[dict[str, Any]]:
    """The reader's views and closes of these sessionIds (the pairing index: no table row)."""
    scope, args = _scope(session_id)
    wanted = sorted(gateway_sessions)
    rows: list[dict[str, Any]] = []
    indexed = _pairing_index(db)  # once, not per chunk
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        sql = (
            f"SELECT {PAIRING_COLUMNS} FROM events{indexed}"
            f" WHERE gateway_session_id IN ({', '.join('?' * len(chunk))})"
            f" AND user_id = ? AND {store.GATEWAY_ROWS}{scope}"
        )
        rows += _dicts(db, sql, [*chunk, user_id, *args])
    return rows


def gateway_rows(db: sqlite_utils.Database, user_id: str, session_id: int | None) -> list[dict[str, Any]]:
    """Every view and close of the reader, their pairing columns only."""
    scope, args = _scope(session_id)
    sql = f"SELECT {PAIRING_COLUMNS} FROM events WHERE user_id = ? AND {store.GATEWAY_ROWS}{scope}"
    return _dicts(db, sql, [user_id, *args])


def conversion_rows(db: sqlite_utils.Database, user_id: str, session_id: int | None) -> list[dict[str, Any]]:
    """The reader's purchases (``transaction.complete``, ``purchase.*``), not repeated: what outcomes read."""
    scope, args = _scope(session_id)
    sql = (
        f"SELECT {CONVERSION_COLUMNS} FROM events WHERE user_id = ? AND duplicate_of IS NULL{scope}"
        " AND (event = 'transaction.complete' OR (event >= 'purchase.' AND event < 'purchase/'))"
    )
    return _dicts(db, sql, [user_id, *args])


#: Per event (the kind for a row without one) and whether repeated: the counts and the figures in one aggregate.
_TALLY = (
    "SELECT event, CASE WHEN event IS NULL THEN kind END, duplicate_of IS NULL, count(*) FROM events"
    " WHERE user_id = ?{scope} GROUP BY 1, 2, 3"
)


def _tally(db: sqlite_utils.Database, user_id: str, session_id: int | None) -> list[tuple[Any, Any, int, int]]:
    scope, args = _scope(session_id)
    return [tuple(row) for row in db.execute(_TALLY.format(scope=scope), [user_id, *args]).fetchall()]


def _counts(tally: Iterable[tuple[Any, Any, int, int]]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for event, kind, _fresh, n in tally:
        label = str(event) if event is not None else f"({kind})" if kind is not None else "None"
        counts[label] = counts.get(label, 0) + int(n)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _figures(tally: Iterable[tuple[Any, Any, int, int]]) -> Figures:
    views = closes = duplicates = 0
    for event, _kind, fresh, n in tally:
        if not fresh:
            duplicates += n
        elif event == GATEWAY_VIEW:
            views += n
        elif event == GATEWAY_CLOSE:
            closes += n
    return Figures(views, closes, duplicates)


def event_counts(db: sqlite_utils.Database, user_id: str) -> list[tuple[str, int]]:
    """How many of each event the reader sent, most frequent first (as ``queries.event_counts_for_reader``).

    One aggregate over an index on the reader, the event, the kind and
    ``duplicate_of`` (when the file has one) without a table row.
    """
    return _counts(_tally(db, user_id, None))


def counts_and_figures(
    db: sqlite_utils.Database, user_id: str, session_id: int | None
) -> tuple[list[tuple[str, int]], Figures]:
    """The reader's counts per event (every session) and the journey's figures (of ``session_id``, if any).

    One aggregate when the journey is every session's (the reader's rows read once), else two.
    """
    tally = _tally(db, user_id, None)
    return _counts(tally), _figures(tally) if session_id is None else figures(db, user_id, session_id)


@dataclass(frozen=True)
class Figures:
    """The journey's counts the summary leads with (non-repeated views and closes; repeated deliveries)."""

    views: int
    closes: int
    duplicates: int


def figures(db: sqlite_utils.Database, user_id: str, session_id: int | None) -> Figures:
    """The journey's views, closes and repeats (of ``session_id``, if any): one aggregate."""
    return _figures(_tally(db, user_id, session_id))


def summary(
    db: sqlite_utils.Database,
    user_id: str,
    session_id: int | None,
    counted: Figures | None = None,
    *,
    by_session: bool | None = None,
) -> PairSummary:
    """The journey's :class:`~monitor.journey.PairSummary`, as ``pair_summary(build_journey(...))`` tells it.

    Reads the pairing columns of the reader's views and closes and of their
    purchases, never a whole row.
    """
    counted = counted or figures(db, user_id, session_id)
    if by_session is None:
        by_session = pairs_by_session(db, user_id, session_id)
    conversions = Conversions(conversion_rows(db, user_id, session_id))
    return summarize(gateway_rows(db, user_id, session_id), conversions, counted.duplicates, by_session=by_session)


@dataclass
class Journey:
    """One reader's journey (of one session, or all), read a page at a time.

    Holds the ids in each order read so far, the pairing components and the
    purchases read so far; never a connection (each call takes the calling
    thread's). Use it from one thread at a time.
    """

    user_id: str
    session_id: int | None
    counted: Figures
    by_session: bool
    _ids: dict[Order, list[int]] = field(default_factory=dict)
    _positions: dict[Order, dict[int, int]] = field(default_factory=dict)
    _groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _every_gateway: list[dict[str, Any]] | None = None
    _every_paired: dict[int, JourneyStep] | None = None
    _conversions: Conversions | None = None

    @classmethod
    def open(
        cls, db: sqlite_utils.Database, user_id: str, session_id: int | None, counted: Figures | None = None
    ) -> Journey:
        """The journey, its ids in received order read; ``counted``: its figures, if read already."""
        counted = counted or figures(db, user_id, session_id)
        journey = cls(user_id, session_id, counted, pairs_by_session(db, user_id, session_id))
        journey.ids(db, "received")
        return journey

    @property
    def total(self) -> int:
        return len(next(iter(self._ids.values()), []))

    def ids(self, db: sqlite_utils.Database, order: Order) -> list[int]:
        """Every id of the journey in ``order`` (read once per order: a snapshot, as the rows were when opened)."""
        ids = self._ids.get(order)
        if ids is None:
            ids = journey_ids(db, self.user_id, self.session_id, order)
            if self._ids:  # rows that arrived since the journey opened stay out of it
                known = set(next(iter(self._ids.values())))
                ids = [i for i in ids if i in known]
            self._ids[order] = ids
        return ids

    def position(self, db: sqlite_utils.Database, order: Order, step_id: int) -> int | None:
        """Where the step with ``step_id`` stands in ``order`` (None: not in the journey)."""
        positions = self._positions.get(order)
        if positions is None:
            positions = self._positions[order] = {i: n for n, i in enumerate(self.ids(db, order))}
        return positions.get(step_id)

    def steps(self, db: sqlite_utils.Database, order: Order, offset: int, limit: int) -> list[JourneyStep]:
        """Steps ``offset .. offset + limit`` of the journey in ``order``, paired as in the whole journey."""
        page = rows_by_id(db, self.ids(db, order)[max(offset, 0) : max(offset, 0) + max(limit, 0)])
        related = self._related(db, page)
        if self.by_session:
            return page_steps(page, related, self._purchases(db), by_session=True)
        if self._every_paired is None:  # one component: paired once, not again for each page
            self._every_paired = pair_rows(related, by_session=False)
        return page_steps(page, related, self._purchases(db), by_session=False, paired=self._every_paired)

    def _related(self, db: sqlite_utils.Database, page: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows that can pair with the page's views and closes (their components)."""
        if not self.by_session:
            if self._every_gateway is None:
                self._every_gateway = gateway_rows(db, self.user_id, self.session_id)
            return self._every_gateway
        wanted = {
            str(row["gateway_session_id"])
            for row in page
            if row.get("event") in (GATEWAY_VIEW, GATEWAY_CLOSE) and row.get("gateway_session_id")
        }
        missing = wanted - self._groups.keys()
        if missing:
            for session in missing:
                self._groups[session] = []
            for row in gateway_of_sessions(db, self.user_id, self.session_id, missing):
                self._groups[str(row["gateway_session_id"])].append(row)
        return [row for session in wanted for row in self._groups[session]]

    def _purchases(self, db: sqlite_utils.Database) -> Conversions:
        if self._conversions is None:
            self._conversions = Conversions(conversion_rows(db, self.user_id, self.session_id))
        return self._conversions

    def summary(self, db: sqlite_utils.Database) -> PairSummary:
        """The whole journey's summary (see :func:`summary`); reads on ``db``, touches none of the caches."""
        return summary(db, self.user_id, self.session_id, self.counted, by_session=self.by_session)


def _dicts(db: sqlite_utils.Database, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
