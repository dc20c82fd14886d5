"""What is wrong with this integration: checks over the stored deliveries.

Plain functions over SQL, no Textual. Each check answers one question about
a session (or every session) with one :class:`Finding`: how many rows show
the problem, when it was first and last seen (``received_at``), one line of
why it matters, and the filter that selects those rows in the main table.
:func:`run_checks` runs them all; ``conscent-monitor check`` and the Checks
screen show the result.

Every check walks an index or a small table (``rejected``, ``forwards``),
never the bodies, so all of them together stay well under a second at a
million events (``bench/checks.py``).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import sqlite_utils

from monitor import store
from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.filters import MAX_TERMS
from monitor.signing import INVALID, MISSING
from monitor.wording import count, number

Level = Literal["error", "warning", "info"]
Area = Literal["signatures", "pairing", "fields", "delivery", "forwarding"]

LEVELS: tuple[Level, ...] = ("error", "warning", "info")
AREAS: tuple[Area, ...] = ("signatures", "pairing", "fields", "delivery", "forwarding")

#: Event names Conscent documents (docs.conscent.ai, "New Webhooks"); others are "unknown".
DOCUMENTED_EVENTS: frozenset[str] = frozenset(
    {
        GATEWAY_VIEW,
        GATEWAY_CLOSE,
        "paywall.click",
        "paywall.exit",
        "meter_banner.close",
        "meter_banner.click",
        "sub_landing_page.click",
        "subscription_review.view",
        "transaction.complete",
        "transaction.failed",
        "purchase.pass",
        "purchase.subscription",
        "refunded.pay_per_use",
        "refunded.subscription",
        "cancelled.subscription",
    }
)

#: The reasons the listener gives when it refuses a delivery for its credentials (``--require-auth``).
SIGNATURE_REFUSED = "X-Conscent-Signature is {}"
BASIC_AUTH_REFUSED = "basic auth is {}"

#: How many rows (or names) a filter may list one by one: the filter language's term limit.
_LISTED = MAX_TERMS
#: How many groups a ``detail`` line names before "…".
_DETAIL_TOP = 4


#: The indexes the checks walk (monitor/store.py's schema: see SPECIAL_INDEXES there). The checks give
#: the same answers without them (a database of an older version opened read-only), only slower.
CHECK_INDEXES: tuple[str, ...] = tuple(
    store.SPECIAL_INDEXES[name]
    for name in (store.INSIGHTS_INDEX_NAME, store.LAG_INDEX, store.PAIRING_INDEX, store.PROBLEM_INDEX)
)


@dataclass(frozen=True)
class Thresholds:
    """The limits the checks apply; every one can be set (``check`` options, the Checks screen)."""

    open_view_minutes: float = 30.0  # a view with no close/conversion after this is "open"
    lag_seconds: float = 60.0  # delivery lag (received_at - created_at) over this is late
    future_seconds: float = 300.0  # created_at this far after received_at is "in the future"


#: Each threshold: what it means and its unit, for ``check --help`` and the Checks screen.
THRESHOLD_HELP: dict[str, str] = {
    "open_view_minutes": "a gateway view with no close or purchase this many minutes after it arrived is open",
    "lag_seconds": "a delivery received this many seconds after its created_at is late",
    "future_seconds": "a created_at this many seconds after the delivery arrived is in the future",
}


@dataclass(frozen=True)
class Finding:
    """The answer of one check: ``count`` rows show the problem (0: the check passed)."""

    key: str  # stable id, e.g. "signatures.invalid"
    area: Area
    level: Level  # "error" fails `conscent-monitor check`
    title: str
    count: int
    why: str  # one line: why it matters / what to do
    first_seen: float | None  # received_at, epoch seconds
    last_seen: float | None
    filter: str | None  # selects the rows in the main table (None: not expressible)
    mode: Literal["gateway", "all"] = "all"  # the main table's mode for that filter
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class _Spec:
    key: str
    area: Area
    level: Level
    title: str
    why: str


@dataclass(frozen=True)
class _Scope:
    """The session the checks look at (None: every session) and the clock."""

    session_id: int | None
    thresholds: Thresholds
    now: float
    #: What checks of one run share (the pairing pass), by name.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def where(self, alias: str = "", *, plus: bool = False) -> str:
        """``session_id = ? AND `` (with ``alias.``), or nothing for every session.

        ``plus`` writes ``+session_id``: the session is then tested on the rows
        another index found, instead of walking the session's own index.
        """
        if self.session_id is None:
            return ""
        return f"{'+' if plus else ''}{alias}session_id = ? AND "

    @property
    def args(self) -> list[Any]:
        return [] if self.session_id is None else [self.session_id]


@dataclass(frozen=True)
class _Seen:
    """A count and the first and last ``received_at`` of what was counted."""

    count: int = 0
    first: float | None = None
    last: float | None = None

    def __add__(self, other: _Seen) -> _Seen:
        firsts = [t for t in (self.first, other.first) if t is not None]
        lasts = [t for t in (self.last, other.last) if t is not None]
        return _Seen(self.count + other.count, min(firsts, default=None), max(lasts, default=None))


_Check = Callable[[sqlite_utils.Database, _Scope], Finding]
#: Every check, by key, in the order they are defined (run_checks sorts them).
CHECKS: dict[str, _Check] = {}


def _check(spec: _Spec) -> Callable[[Callable[[sqlite_utils.Database, _Scope, _Spec], Finding]], _Check]:
    def register(build: Callable[[sqlite_utils.Database, _Scope, _Spec], Finding]) -> _Check:
        def run(db: sqlite_utils.Database, scope: _Scope) -> Finding:
            return build(db, scope, spec)

        run.__name__ = run.__qualname__ = build.__name__
        run.__doc__ = build.__doc__
        CHECKS[spec.key] = run
        return run

    return register


def _finding(
    spec: _Spec,
    seen: _Seen,
    filter: str | None,
    *,
    mode: Literal["gateway", "all"] = "all",
    detail: str = "",
) -> Finding:
    return Finding(
        key=spec.key,
        area=spec.area,
        level=spec.level,
        title=spec.title,
        count=seen.count,
        why=spec.why,
        first_seen=seen.first,
        last_seen=seen.last,
        filter=filter,
        mode=mode,
        detail=detail if seen.count else "",
    )


def _seen(db: sqlite_utils.Database, sql: str, args: Sequence[Any]) -> _Seen:
    """``sql`` selects ``count(*), min(received_at), max(received_at)``."""
    n, first, last = db.execute(sql, list(args)).fetchone()
    return _Seen(int(n or 0), first, last)


def _top(counts: Iterable[tuple[str, int]], limit: int = _DETAIL_TOP) -> str:
    """Each group and its count (a multiplication sign between), the largest first."""
    ordered = sorted(counts, key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{name} ×{number(n)}" for name, n in ordered[:limit])
    return shown + (", …" if len(ordered) > limit else "")


def _quoted(value: str) -> str:
    """A filter value in double quotes (``\\`` and ``"`` escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ids_filter(ids: Sequence[int]) -> str | None:
    """``id:1 OR id:5 OR ...`` for a few rows; None when too many to list."""
    if not ids or len(ids) > _LISTED:
        return None
    return " OR ".join(f"id:{i}" for i in sorted(ids))


# -- signatures ---------------------------------------------------------------------------


def _credentials(db: sqlite_utils.Database, scope: _Scope, column: str, values: Sequence[str]) -> _Seen:
    """Accepted deliveries whose ``column`` (signature, basic_auth) is one of ``values``."""
    marks = ", ".join("?" * len(values))
    sql = (
        f"SELECT count(*), min(received_at), max(received_at) FROM events{_indexed_by(db, PROBLEM_INDEX)}"
        f" WHERE {store.PROBLEM_ARMS[column]} AND {scope.where()}{column} IN ({marks})"
    )
    return _seen(db, sql, [*scope.args, *values])


def _refused(db: sqlite_utils.Database, scope: _Scope, reasons: Sequence[str]) -> _Seen:
    """Rejected deliveries with one of these exact reasons."""
    marks = ", ".join("?" * len(reasons))
    sql = f"SELECT count(*), min(received_at), max(received_at) FROM rejected WHERE {scope.where()}reason IN ({marks})"
    return _seen(db, sql, [*scope.args, *reasons])


def _credential_finding(
    db: sqlite_utils.Database,
    scope: _Scope,
    spec: _Spec,
    column: str,
    values: Sequence[str],
    reasons: Sequence[str],
    field_name: str,
) -> Finding:
    """Accepted deliveries with one of ``values`` in ``column``, and refusals with one of ``reasons``.

    The filter: ``field_name:value`` for each value, or the refusals' reason (the first, or what all share).
    """
    accepted = _credentials(db, scope, column, values)
    refused = _refused(db, scope, reasons)
    words = reasons[0].split()
    while len(words) > 1 and not all(reason.startswith(" ".join(words)) for reason in reasons):
        words.pop()
    terms = [f"{field_name}:{value}" for value in values] + [f"reason:{_quoted(' '.join(words))}"]
    return _finding(spec, accepted + refused, " OR ".join(terms), detail=_accepted_refused(accepted, refused))


def _accepted_refused(accepted: _Seen, refused: _Seen) -> str:
    parts = []
    if accepted.count:
        parts.append(f"{count(accepted.count, 'delivery')} accepted")
    if refused.count:
        parts.append(f"{number(refused.count)} refused (401)")
    return ", ".join(parts)


@_check(
    _Spec(
        "signatures.invalid",
        "signatures",
        "error",
        "Invalid signatures",
        "X-Conscent-Signature does not match the body: is --secret the webhook secret set in Conscent?",
    )
)
def invalid_signatures(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries whose signature does not match (accepted, or refused with --require-auth)."""
    return _credential_finding(db, scope, spec, "signature", [INVALID], [SIGNATURE_REFUSED.format(INVALID)], "sig")


@_check(
    _Spec(
        "signatures.missing",
        "signatures",
        "warning",
        "Missing signatures",
        "A secret is set but Conscent sent no X-Conscent-Signature: set the webhook secret in Conscent.",
    )
)
def missing_signatures(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries without a signature while a secret was set (the listener says "missing" only then)."""
    return _credential_finding(db, scope, spec, "signature", [MISSING], [SIGNATURE_REFUSED.format(MISSING)], "sig")


@_check(
    _Spec(
        "signatures.basic_auth",
        "signatures",
        "error",
        "Basic auth failing",
        "Old webhooks log in with the API key and secret: check --basic-auth against the client's API keys.",
    )
)
def basic_auth_failing(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries whose Basic auth was missing or wrong while --basic-auth was set."""
    reasons = [BASIC_AUTH_REFUSED.format(INVALID), BASIC_AUTH_REFUSED.format(MISSING)]
    return _credential_finding(db, scope, spec, "basic_auth", [INVALID, MISSING], reasons, "auth")


# -- pairing ------------------------------------------------------------------------------
#
# The rules of monitor/journey.py: per reader, views and closes in event-time
# order (created_at, else received_at, then id), repeated deliveries left
# out. A row's pairing key is its gateway sessionId, else its paywall and
# content, else its content alone; a close takes the earliest still-open view
# with the same key before it. (journey.py also lets a close without a
# sessionId take a view with one when their content agrees; here keys must be
# equal, which only differs for senders that drop the sessionId from one of
# the pair.) A view is converted when the reader's transaction.complete or
# purchase.* arrives after it (whatever its content).
#
# Nearly every gateway session is one view then one close of one reader. One
# grouped pass over the gateway rows (index order: no sort) finds the others,
# and only their rows (and rows without a sessionId) are read and paired here.

#: Gateway rows, written as the partial index that covers them is (SQLite matches the text).
_GATEWAY_ROWS = store.GATEWAY_ROWS
_CONTENT = store.GATEWAY_CONTENT
_PAIR_COLUMNS = (
    f"id, user_id, event = '{GATEWAY_VIEW}', coalesce(created_at, received_at), received_at,"
    f" nullif(gateway_session_id, ''), nullif(paywall_id, ''), {_CONTENT}"
)
_CHUNK = 500
#: The partial index on gateway rows that the pairing pass walks; used when present (see CHECK_INDEXES).
PAIRING_INDEX = store.PAIRING_INDEX
#: The index on the lag expression (see CHECK_INDEXES).
LAG_INDEX = store.LAG_INDEX
#: The partial index on rows with a problem; a query uses it when it has one of store.PROBLEM_ARMS as a term.
PROBLEM_INDEX = store.PROBLEM_INDEX


class _Gateway(NamedTuple):
    id: int
    user_id: str
    is_view: bool
    t: float
    received_at: float
    session: str | None
    paywall: str | None
    content: str | None

    @property
    def key(self) -> tuple[str, ...]:
        if self.session:
            return ("s", self.session)
        if self.paywall and self.content:
            return ("p", self.paywall, self.content)
        return ("c", self.content or "")


#: Per gateway sessionId and reader, in event order: "v"/"c" per row; the id and receipt time of one-row groups.
_PATTERN = f"group_concat(CASE WHEN event = '{GATEWAY_VIEW}' THEN 'v' ELSE 'c' END, '')"
_PATTERNS = (
    f"SELECT gateway_session_id, user_id, {_PATTERN}, min(id), min(received_at) FROM {{rows}}"
    f" GROUP BY gateway_session_id, user_id HAVING {_PATTERN} NOT IN ('vc', 'vcvc', 'vcvcvc')"  # _SIMPLE
)
_SESSION_ROWS = (
    "WHERE {gateway} AND gateway_session_id > '' AND +duplicate_of IS NULL AND +user_id IS NOT NULL AND {session}1"
)
#: One group's rows in the pairing index's order (the order its pattern was concatenated in).
_GROUP_ROWS = (
    f"SELECT id, event = '{GATEWAY_VIEW}', received_at FROM {{rows}} AND gateway_session_id = ? AND user_id = ?"
    " ORDER BY created_at, received_at, id"
)


def _session_rows(db: sqlite_utils.Database, scope: _Scope) -> tuple[dict[tuple[str, str], _Gateway], list[_Gateway]]:
    """The gateway rows with a sessionId that are not simply paired: every reader's group but "vc", "vcvc", "vcvcvc".

    With :data:`PAIRING_INDEX`, one pass over the gateway rows in its order
    (sessionId, reader, created_at, received_at), which is the order each
    group's rows are concatenated in; the groups of a view then its close —
    nearly all of them — never leave SQLite, and a one-row group (unpaired
    whatever happens) comes with its id and time. Returns those rows apart from
    the rows of the other groups (to pair), read again group by group: few.
    The one-row groups come by (sessionId, reader), built as they are read.
    Without the index, every gateway row with a sessionId is read and paired
    here (the same answer, slower: nothing else orders a group's rows).
    """
    where = _SESSION_ROWS.format(gateway=_GATEWAY_ROWS, session=scope.where(plus=True))
    if not _has_index(db, PAIRING_INDEX):
        every = db.execute(f"SELECT {_PAIR_COLUMNS} FROM events {where}", scope.args)
        return {}, [_Gateway(*row) for row in every]
    rows = f"events INDEXED BY {PAIRING_INDEX} {where}"
    alone: dict[tuple[str, str], _Gateway] = {}
    groups: list[tuple[str, str]] = []
    new = tuple.__new__  # a _Gateway without the call of its __new__: ~100k of them at a million events
    for session, user, pattern, row_id, received in db.execute(_PATTERNS.format(rows=rows), scope.args):
        # ids are integers, times reals, sessionIds and readers text (the columns' types): as read.
        if len(pattern) == 1:
            alone[session, user] = new(_Gateway, (row_id, user, pattern == "v", 0.0, received, session, None, None))
        else:
            groups.append((session, user))
    found: list[_Gateway] = []
    for session, user in groups:
        group = db.execute(_GROUP_ROWS.format(rows=rows), [*scope.args, session, user])
        # The rank keeps the index's order when the rows are paired.
        for rank, (row_id, is_view, received) in enumerate(group):
            found.append(
                _Gateway(int(row_id), str(user), bool(is_view), float(rank), float(received), session, None, None)
            )
    return alone, found


_SIMPLE = ("vc", "vcvc", "vcvcvc")


@dataclass
class _PairingState:
    """What the pairing pass found in the rows up to ``upto`` (one database file and scope), kept between runs.

    Rows are only ever added, so a re-run (the Checks screen re-runs on every
    commit) reads the rows after ``upto`` and re-reads just the groups they
    join; the thresholds and the clock apply afterwards, on every run.
    """

    upto: int
    upto_mark: tuple[Any, ...] | None  # that row's received_at and body hash: another file starts over
    file_id: tuple[int, int]  # the file's (device, inode): so does a file replaced by another
    alone: dict[tuple[str, str], _Gateway]  # one-row groups, by (sessionId, reader)
    groups: dict[tuple[str, str], list[_Gateway]]  # the other groups that are not simply paired
    sessionless: list[_Gateway]
    conversions: dict[str, float]  # each reader's latest conversion (received_at)

    @functools.cached_property
    def unpaired(self) -> tuple[list[_Gateway], list[_Gateway], dict[str, set[str]]]:
        """:func:`_unpaired_rows` of these rows (the same for every threshold and clock: computed once)."""
        rows = [row for group in self.groups.values() for row in group] + self.sessionless
        return _unpaired_rows(rows, self.alone.values())


#: Pairing states by (database file, session); a few at most.
_PAIRING_STATES: dict[tuple[str, int | None], _PairingState] = {}
_PAIRING_STATES_KEPT = 2  # ~45 MB each at a million events (97k one-row groups)
_PAIRING_LOCK = threading.Lock()


def _database_file(db: sqlite_utils.Database) -> str:
    """The main database's file ("" for an in-memory or temporary one)."""
    for _, name, path in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path or "")
    return ""


def _group(db: sqlite_utils.Database, scope: _Scope, session: str, user: str) -> list[_Gateway]:
    """One (sessionId, reader) group's rows in the pairing index's order, ranked."""
    where = _SESSION_ROWS.format(gateway=_GATEWAY_ROWS, session=scope.where(plus=True))
    rows = f"events INDEXED BY {PAIRING_INDEX} {where}"
    found = db.execute(_GROUP_ROWS.format(rows=rows), [*scope.args, session, user])
    return [
        _Gateway(int(row_id), user, bool(is_view), float(rank), float(received), session, None, None)
        for rank, (row_id, is_view, received) in enumerate(found)
    ]


def _all_conversions(db: sqlite_utils.Database, scope: _Scope, after: int, upto: int) -> dict[str, float]:
    """Each reader's latest conversion among the rows ``after < id <= upto``."""
    names = _conversion_events(db)
    marks = ", ".join("?" * len(names))
    if after == 0:  # every row: one walk of the payments in the Insights index
        source = f"events{_indexed_by(db, store.INSIGHTS_INDEX_NAME)} WHERE event IN ({marks}) AND id <= ?"
        args = [*names, upto]
    else:  # the new rows only, by id
        source = f"events WHERE id > ? AND id <= ? AND +event IN ({marks})"
        args = [after, upto, *names]
    sql = (
        f"SELECT user_id, max(received_at) FROM {source} AND +duplicate_of IS NULL AND {scope.where(plus=True)}"
        "user_id IS NOT NULL GROUP BY user_id"
    )
    return {str(user): float(t) for user, t in db.execute(sql, [*args, *scope.args])}


def _pairing_state(db: sqlite_utils.Database, scope: _Scope) -> _PairingState | None:
    """The pairing pass's rows for this scope, brought up to date; None without the pairing index."""
    if not _has_index(db, PAIRING_INDEX):
        return None
    key = (_database_file(db), scope.session_id)
    try:
        info = Path(key[0]).stat() if key[0] else None
    except OSError:
        info = None
    file_id = (info.st_dev, info.st_ino) if info else (0, 0)
    upto, *mark = db.execute(
        "SELECT id, received_at, body_sha256 FROM events WHERE id = (SELECT max(id) FROM events)"
    ).fetchone() or (0, None, None)
    upto_mark = tuple(mark)
    with _PAIRING_LOCK:
        state = _PAIRING_STATES.get(key) if key[0] else None
    if state is not None:
        known = db.execute("SELECT received_at, body_sha256 FROM events WHERE id = ?", [state.upto]).fetchone()
        if state.file_id != file_id or state.upto > upto or known is None or tuple(known) != state.upto_mark:
            state = None
    if state is None:
        alone, grouped = _session_rows(db, scope)
        groups: dict[tuple[str, str], list[_Gateway]] = {}
        for row in grouped:
            groups.setdefault((str(row.session), row.user_id), []).append(row)
        state = _PairingState(
            int(upto),
            upto_mark,
            file_id,
            alone,
            groups,
            _sessionless_rows(db, scope, upto=int(upto)),
            _all_conversions(db, scope, 0, int(upto)),
        )
    elif state.upto < upto:
        state = _advance(db, scope, state, int(upto), upto_mark)
    if key[0]:
        with _PAIRING_LOCK:
            _PAIRING_STATES.pop(key, None)
            _PAIRING_STATES[key] = state
            while len(_PAIRING_STATES) > _PAIRING_STATES_KEPT:
                _PAIRING_STATES.pop(next(iter(_PAIRING_STATES)))
    return state


def _advance(
    db: sqlite_utils.Database, scope: _Scope, state: _PairingState, upto: int, upto_mark: tuple[Any, ...] | None
) -> _PairingState:
    """``state`` with the rows ``state.upto < id <= upto`` taken in (a new state: a running check keeps its own)."""
    alone, groups = dict(state.alone), dict(state.groups)
    joined = db.execute(
        f"SELECT DISTINCT gateway_session_id, user_id FROM events WHERE id > ? AND id <= ? AND +{_GATEWAY_ROWS}"
        f" AND +gateway_session_id > '' AND +duplicate_of IS NULL AND +user_id IS NOT NULL"
        f" AND {scope.where(plus=True)}1",
        [state.upto, upto, *scope.args],
    ).fetchall()
    for session, user in joined:
        key = (str(session), str(user))
        rows = _group(db, scope, key[0], key[1])
        alone.pop(key, None)
        groups.pop(key, None)
        pattern = "".join("v" if row.is_view else "c" for row in rows)
        if len(rows) == 1:
            alone[key] = rows[0]._replace(t=0.0)
        elif rows and pattern not in _SIMPLE:
            groups[key] = rows
    conversions = dict(state.conversions)
    for user, t in _all_conversions(db, scope, state.upto, upto).items():
        conversions[user] = max(t, conversions.get(user, -math.inf))
    sessionless = state.sessionless + _sessionless_rows(db, scope, after=state.upto, upto=upto)
    return _PairingState(upto, upto_mark, state.file_id, alone, groups, sessionless, conversions)


def _has_index(db: sqlite_utils.Database, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", [name]).fetchone() is not None


def _indexed_by(db: sqlite_utils.Database, name: str) -> str:
    """`` INDEXED BY name`` when the database has that index (SQLite's planner would not pick it), else nothing."""
    return f" INDEXED BY {name}" if _has_index(db, name) else ""


def _sessionless_rows(
    db: sqlite_utils.Database, scope: _Scope, *, after: int = 0, upto: int | None = None
) -> list[_Gateway]:
    """Gateway rows without a sessionId (keyed by paywall and content, or content); ``after < id <= upto``."""
    sessionless = "(gateway_session_id IS NULL OR gateway_session_id = '')"
    if after:  # the new rows only, by id
        source = f"events WHERE id > ? AND id <= ? AND +{_GATEWAY_ROWS}"
        args: list[Any] = [after, upto]
    else:
        source = f"events{_indexed_by(db, PAIRING_INDEX)} WHERE {_GATEWAY_ROWS}"
        args = []
        if upto is not None:
            source += " AND id <= ?"
            args.append(upto)
    select = f"SELECT {_PAIR_COLUMNS} FROM {source} AND +duplicate_of IS NULL AND +user_id IS NOT NULL"
    if after:
        sql = f"{select} AND {scope.where(plus=True)}{sessionless}"
        return [_Gateway(*row) for row in db.execute(sql, [*args, *scope.args])]
    # Two ranges of the pairing index (an OR of the two would walk all of it).
    found: list[_Gateway] = []
    for no_session in ("gateway_session_id IS NULL", "gateway_session_id = ''"):
        sql = f"{select} AND {scope.where(plus=True)}{no_session}"
        found += [_Gateway(*row) for row in db.execute(sql, [*args, *scope.args])]
    return found


def _pair(rows: Iterable[_Gateway]) -> tuple[list[_Gateway], list[_Gateway]]:
    """Views left open and closes that found no view, pairing as described above."""
    partitions: dict[tuple[str, tuple[str, ...]], list[_Gateway]] = {}
    for row in rows:
        partitions.setdefault((row.user_id, row.key), []).append(row)
    unpaired_views: list[_Gateway] = []
    unpaired_closes: list[_Gateway] = []
    for partition in partitions.values():
        partition.sort(key=lambda row: (row.t, row.id))
        waiting: list[_Gateway] = []
        for row in partition:
            if row.is_view:
                waiting.append(row)
            elif waiting:
                waiting.pop(0)
            else:
                unpaired_closes.append(row)
        unpaired_views += waiting
    return unpaired_views, unpaired_closes


def _conversion_events(db: sqlite_utils.Database) -> list[str]:
    """transaction.complete and every purchase.* name present, one index probe per name."""
    names = ["transaction.complete"]
    last = "purchase."
    while True:
        found = db.execute(
            "SELECT min(event) FROM events WHERE event > ? AND event GLOB 'purchase.*'", [last]
        ).fetchone()[0]
        if found is None:
            return names
        names.append(str(found))
        last = found


def _last_conversions(db: sqlite_utils.Database, scope: _Scope, users: Sequence[str]) -> dict[str, float]:
    """Each reader's latest conversion (received_at), for these readers (without the pairing index)."""
    names = _conversion_events(db)
    latest: dict[str, float] = {}
    name_marks = ", ".join("?" * len(names))
    for start in range(0, len(users), _CHUNK):
        chunk = users[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = (
            f"SELECT user_id, max(received_at) FROM events WHERE user_id IN ({marks}) AND event IN ({name_marks})"
            f" AND +duplicate_of IS NULL AND {scope.where(plus=True)}1 GROUP BY user_id"
        )
        latest.update((str(u), float(t)) for u, t in db.execute(sql, [*chunk, *names, *scope.args]))
    return latest


def _unpaired_rows(
    rows: list[_Gateway], alone: Iterable[_Gateway]
) -> tuple[list[_Gateway], list[_Gateway], dict[str, set[str]]]:
    """The views and the closes left unpaired, and each gateway sessionId's viewers (whatever the thresholds)."""
    views, closes = _pair(rows)
    for row in alone:
        (views if row.is_view else closes).append(row)
    # Only the sessionIds of unpaired closes matter (a close of another reader's view).
    wanted = {close.session for close in closes if close.session}
    viewers: dict[str, set[str]] = {}
    for row in (*rows, *alone):
        if row.is_view and row.session in wanted:
            viewers.setdefault(str(row.session), set()).add(row.user_id)
    return views, closes, viewers


def _unpaired(db: sqlite_utils.Database, scope: _Scope) -> dict[str, list[tuple[int, float]]]:
    """Open views (past the threshold, not converted), closes with no view, closes with another reader's view.

    Each as ``(id, received_at)``; the three pairing checks of one run share this one pass.
    """
    cached: dict[str, list[tuple[int, float]]] | None = scope.memo.get("unpaired")
    if cached is not None:
        return cached
    state = _pairing_state(db, scope)
    if state is None:
        alone, grouped = _session_rows(db, scope)
        views, closes, viewers = _unpaired_rows(grouped + _sessionless_rows(db, scope), alone.values())
    else:
        views, closes, viewers = state.unpaired
    cutoff = scope.now - scope.thresholds.open_view_minutes * 60
    aged = [view for view in views if view.received_at <= cutoff]
    if state is None:
        converted = _last_conversions(db, scope, sorted({view.user_id for view in aged}))
    else:
        converted = state.conversions
    latest, never = converted.get, -math.inf
    still_open = [view for view in aged if latest(view.user_id, never) <= view.received_at]
    foreign = [close for close in closes if close.session and viewers.get(close.session, set()) - {close.user_id}]
    foreign_ids = {close.id for close in foreign}
    orphans = [close for close in closes if close.id not in foreign_ids]
    found = {
        "open": sorted((view.id, view.received_at) for view in still_open),
        "orphan": sorted((close.id, close.received_at) for close in orphans),
        "foreign": sorted((close.id, close.received_at) for close in foreign),
    }
    scope.memo["unpaired"] = found
    return found


def _rows_finding(
    db: sqlite_utils.Database, spec: _Spec, rows: list[tuple[int, float]], *, detail: str = ""
) -> Finding:
    """A finding over these rows; first and last seen read back exactly (the pairing pass had them as text)."""
    seen = _Seen()
    if rows:
        first = min(rows, key=lambda row: row[1])[0]
        last = max(rows, key=lambda row: row[1])[0]
        sql = "SELECT (SELECT received_at FROM events WHERE id = ?), (SELECT received_at FROM events WHERE id = ?)"
        seen = _Seen(len(rows), *db.execute(sql, [first, last]).fetchone())
    return _finding(spec, seen, _ids_filter([i for i, _ in rows]), mode="gateway", detail=detail)


@_check(
    _Spec(
        "pairing.open_views",
        "pairing",
        "warning",
        "Views with no close",
        "A gateway view with no close and no purchase after the threshold: a close was lost, or never sent.",
    )
)
def open_views(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Views still open ``open_view_minutes`` after they were received, with no conversion after them."""
    minutes = scope.thresholds.open_view_minutes
    return _rows_finding(db, spec, _unpaired(db, scope)["open"], detail=f"open over {number(minutes)} min")


@_check(
    _Spec(
        "pairing.orphan_closes",
        "pairing",
        "warning",
        "Closes with no view",
        "A gateway close that no earlier view of the same reader pairs with: the view was lost or refused.",
    )
)
def orphan_closes(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Closes with no open view of their reader and key before them (and none of another reader either)."""
    return _rows_finding(db, spec, _unpaired(db, scope)["orphan"])


@_check(
    _Spec(
        "pairing.foreign_closes",
        "pairing",
        "warning",
        "Closes of another reader's view",
        "The close's sessionId belongs to another reader's view: user ids change inside one gateway session.",
    )
)
def foreign_closes(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Unpaired closes whose gateway sessionId is on a view of a different reader."""
    return _rows_finding(db, spec, _unpaired(db, scope)["foreign"])


# -- fields -------------------------------------------------------------------------------


@_check(
    _Spec(
        "fields.wrong_type",
        "fields",
        "warning",
        "Fields of the wrong type",
        "Documented fields arrived with another JSON type and were left empty: the sender's payload differs.",
    )
)
def wrong_types(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """The parse's notes (``where: expected X, got Y``), grouped by field and event."""
    sql = (
        "SELECT notes, coalesce(event, '(' || kind || ')'), count(*), min(received_at), max(received_at)"
        f" FROM events{_indexed_by(db, PROBLEM_INDEX)} WHERE {store.PROBLEM_ARMS['notes']}"
        f" AND {scope.where()}1 GROUP BY 1, 2"
    )
    groups: Counter[tuple[str, str]] = Counter()
    seen = _Seen()
    for notes, event, n, first, last in db.execute(sql, scope.args):
        seen = seen + _Seen(int(n), first, last)
        for note in {part.partition(":")[0] for part in str(notes).split("; ") if part}:
            groups[(note, str(event))] += int(n)
    detail = _top((f"{field} ({event})", n) for (field, event), n in groups.items())
    return _finding(spec, seen, "note:expected", detail=detail)


#: The lag (``received_at - created_at``) as its index is written: SQLite matches the expression.
_LAG = store.LAG


@_check(
    _Spec(
        "fields.missing",
        "fields",
        "warning",
        "Documented fields missing",
        "Conscent documents these fields for the event; without them the reader or the pairing is unknown.",
    )
)
def missing_fields(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Wrapped events without ``user_id`` or ``created_at``, gateway events without the pageUrl's sessionId,
    ``contentId`` or (closes) ``clickAction``; empty counts as missing. By field and event."""
    session = scope.where(plus=True)
    queries = [
        ("user_id", f"(user_id IS NULL OR user_id = '') AND kind = 'event' AND {session}1"),
        ("created_at", f"{_LAG} IS NULL AND kind = 'event' AND {session}1"),
    ]
    rows: dict[int, tuple[float, str]] = {}
    groups: Counter[tuple[str, str]] = Counter()
    for field_name, where in queries:
        for row_id, received_at, event in db.execute(
            f"SELECT id, received_at, coalesce(event, '(no event)') FROM events WHERE {where}", scope.args
        ):
            rows[int(row_id)] = (float(received_at), str(event))
            groups[(field_name, str(event))] += 1
    gateway = (
        f"SELECT id, received_at, event, nullif(gateway_session_id, '') IS NULL, {_CONTENT} IS NULL,"
        f" event = '{GATEWAY_CLOSE}' AND nullif(click_action, '') IS NULL"
        f" FROM events{_indexed_by(db, PROBLEM_INDEX)} WHERE {store.PROBLEM_ARMS['gateway_lacking']}"
        f" AND {scope.where()}1"
    )
    names = ("payload.action.pageUrl sessionId", "payload.action.contentId", "payload.action.clickAction")
    for row_id, received_at, event, *lacks in db.execute(gateway, scope.args):
        rows[int(row_id)] = (float(received_at), str(event))
        for name, lacking in zip(names, lacks, strict=True):
            if lacking:
                groups[(name, str(event))] += 1
    times = [t for t, _ in rows.values()]
    seen = _Seen(len(rows), min(times, default=None), max(times, default=None))
    detail = _top((f"{field_name} ({event})", n) for (field_name, event), n in groups.items())
    return _finding(spec, seen, None, detail=detail)


@_check(
    _Spec(
        "fields.unknown_events",
        "fields",
        "info",
        "Unknown event names",
        "Event names Conscent does not document: kept and shown, but check the spelling and the Conscent docs.",
    )
)
def unknown_events(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Wrapped events whose name is not in :data:`DOCUMENTED_EVENTS` (or have none).

    The names come one index probe each (a handful), then each unknown name's rows are counted.
    """
    unknown: list[tuple[str | None, int, float, float]] = []
    last = ""
    while True:
        found = db.execute(f"SELECT min(event) FROM events WHERE {scope.where()}event > ?", [*scope.args, last])
        name = found.fetchone()[0]
        if name is None:
            break
        last = name
        if name in DOCUMENTED_EVENTS:
            continue
        n, first, final = db.execute(
            f"SELECT count(*), min(received_at), max(received_at) FROM events WHERE {scope.where()}event = ?",
            [*scope.args, name],
        ).fetchone()
        unknown.append((str(name), int(n), first, final))
    n, first, final = db.execute(
        "SELECT count(*), min(received_at), max(received_at) FROM events"
        f" WHERE event IS NULL AND kind = 'event' AND {scope.where(plus=True)}1",
        scope.args,
    ).fetchone()
    if n:
        unknown.append((None, int(n), first, final))
    seen = sum((_Seen(n, first, last) for _, n, first, last in unknown), _Seen())
    names = [event for event, *_ in unknown if event]
    listed = None
    if names and len(names) == len(unknown) and len(names) <= _LISTED:
        listed = " OR ".join(f"event:{_quoted(name)}" for name in sorted(names))
    detail = _top((event or "(no event)", n) for event, n, _, _ in unknown)
    return _finding(spec, seen, listed, detail=detail)


@_check(
    _Spec(
        "fields.created_at_millis",
        "fields",
        "warning",
        "created_at in milliseconds",
        "Conscent sends epoch seconds; a value in milliseconds was read as seconds / 1000 — fix the sender.",
    )
)
def created_at_millis(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries whose ``created_at`` (or legacy ``createdAt``) was a number of milliseconds.

    The parse turns milliseconds into seconds, leaving a fraction of a second
    that a whole number of seconds never has; only those rows' bodies are read.
    """
    sql = (
        f"SELECT count(*), min(received_at), max(received_at) FROM events{_indexed_by(db, PROBLEM_INDEX)}"
        f" WHERE {store.PROBLEM_ARMS['fraction']} AND {scope.where()}{_LAG} IS NOT NULL"
        " AND json_valid(body) AND abs(coalesce(json_extract(body, '$.created_at'),"
        " json_extract(body, '$.createdAt'))) > ?"
    )
    return _finding(spec, _seen(db, sql, [*scope.args, _MILLIS]), None)


#: A ``created_at`` above this was not in seconds (as monitor.events decides).
_MILLIS = 10_000_000_000


@_check(
    _Spec(
        "fields.created_at_future",
        "fields",
        "warning",
        "created_at in the future",
        "created_at is later than the delivery arrived: the sender's clock or its time unit is wrong.",
    )
)
def created_in_future(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries created over ``future_seconds`` after they were received."""
    limit = scope.thresholds.future_seconds
    sql = (
        "SELECT count(*), min(received_at), max(received_at) FROM events"
        f" WHERE {_LAG} < ? AND {scope.where(plus=True)}1"
    )
    return _finding(
        spec, _seen(db, sql, [-limit, *scope.args]), f"lag<-{_seconds(limit)}", detail=f"over {_seconds(limit)} ahead"
    )


def _seconds(value: float) -> str:
    """A threshold in the filter language's units: ``300s``, ``1.5s``."""
    return f"{value:g}s"


# -- delivery -----------------------------------------------------------------------------


@_check(
    _Spec(
        "delivery.late",
        "delivery",
        "warning",
        "Late deliveries",
        "Deliveries that arrived long after Conscent created them: retries, queues, or a slow endpoint.",
    )
)
def late_deliveries(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Lag (``received_at - created_at``) over ``lag_seconds``; the detail gives p50, p95 and max of all lags.

    Percentiles by nearest rank, each read at its place in the lag index (p95 and max from the top end).
    """
    limit = scope.thresholds.lag_seconds
    session, args = scope.where(plus=True), scope.args
    if scope.session_id is not None and _only_session(db, scope.session_id):
        session, args = "", []  # the same rows: no session to test on each index entry
    late = f"SELECT count(*), min(received_at), max(received_at) FROM events WHERE {_LAG} > ? AND {session}1"
    seen = _seen(db, late, [limit, *args])
    detail = ""
    if seen.count:
        known = f"FROM events WHERE {_LAG} IS NOT NULL AND {session}1"
        if session:
            total = int(db.execute(f"SELECT count(*) {known}", args).fetchone()[0])
        else:  # every row but the few without a lag: SQLite counts a whole table by its pages, not entry by entry
            sql = f"SELECT (SELECT count(*) FROM events) - (SELECT count(*) FROM events WHERE {_LAG} IS NULL)"
            total = int(db.execute(sql).fetchone()[0])
        figures = []
        for label, fraction in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
            rank = max(1, math.ceil(fraction * total))
            ascending = rank <= total // 2
            offset = rank - 1 if ascending else total - rank
            order = "ASC" if ascending else "DESC"
            (lag,) = db.execute(
                f"SELECT {_LAG} {known} ORDER BY {_LAG} {order} LIMIT 1 OFFSET ?", [*args, offset]
            ).fetchone()
            figures.append(f"{label} {_duration(float(lag))}")
        detail = " · ".join(figures)
    return _finding(spec, seen, f"lag>{_seconds(limit)}", detail=detail)


def _only_session(db: sqlite_utils.Database, session_id: int) -> bool:
    """Whether every row of the file belongs to ``session_id`` (three probes of the session index)."""
    sql = (
        "SELECT EXISTS(SELECT 1 FROM events WHERE session_id < ?) OR EXISTS(SELECT 1 FROM events WHERE session_id > ?)"
        " OR EXISTS(SELECT 1 FROM events WHERE session_id IS NULL)"
    )
    return not db.execute(sql, [session_id, session_id]).fetchone()[0]


def _duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3.5 min``, ``2.1 h``, ``4.0 d``."""
    sign, size = ("-" if seconds < 0 else ""), abs(seconds)
    if size < 10:
        return f"{sign}{size:.1f} s"
    if size < 120:
        return f"{sign}{size:.0f} s"
    if size < 7200:
        return f"{sign}{size / 60:.1f} min"
    if size < 172800:
        return f"{sign}{size / 3600:.1f} h"
    return f"{sign}{size / 86400:.1f} d"


@_check(
    _Spec(
        "delivery.retried",
        "delivery",
        "warning",
        "Retried deliveries",
        "The same bytes arrived again: Conscent retries when it saw a failure or a timeout from you.",
    )
)
def retried_deliveries(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries that repeat the bytes of an earlier one (``duplicate_of`` set)."""
    sql = (
        "SELECT count(*), min(received_at), max(received_at), count(DISTINCT duplicate_of)"
        f" FROM events{_indexed_by(db, PROBLEM_INDEX)} WHERE {store.PROBLEM_ARMS['duplicate']} AND {scope.where()}1"
    )
    n, first, last, bodies = db.execute(sql, scope.args).fetchone()
    seen = _Seen(int(n or 0), first, last)
    return _finding(spec, seen, "dup:yes", detail=f"repeats of {count(int(bodies or 0), 'body', 'bodies')}")


@_check(
    _Spec(
        "delivery.refused",
        "delivery",
        "error",
        "Refused deliveries",
        "The monitor answered these with an error, so Conscent saw a failure: fix the cause, then expect retries.",
    )
)
def refused_deliveries(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Rejected deliveries, grouped by the status we answered and the reason."""
    sql = (
        "SELECT status, reason, count(*), min(received_at), max(received_at) FROM rejected"
        f" WHERE {scope.where()}1 GROUP BY status, reason"
    )
    groups: Counter[str] = Counter()
    seen = _Seen()
    classes: set[int] = set()
    for status, reason, n, first, last in db.execute(sql, scope.args):
        seen = seen + _Seen(int(n), first, last)
        groups[f"{status} {reason}"] += int(n)
        if isinstance(status, int):
            classes.add(status // 100)
    listed = " OR ".join(f"status:{c}xx" for c in sorted(classes)) if classes else "status:4xx OR status:5xx"
    return _finding(spec, seen, listed, detail=_top(groups.items()))


# -- forwarding ---------------------------------------------------------------------------


@_check(
    _Spec(
        "forwarding.failed",
        "forwarding",
        "error",
        "Forwards your application failed",
        "Your application answered a forwarded delivery with non-2xx, or not at all: see the response body.",
    )
)
def failed_forwards(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Forward and replay attempts that got no answer or a status outside 2xx, by status."""
    sql = (
        "SELECT CASE WHEN status IS NOT NULL THEN CAST(status AS TEXT)"
        " WHEN error LIKE 'timed out%' THEN 'timeout' ELSE 'no answer' END AS outcome,"
        " count(*), min(requested_at), max(requested_at) FROM forwards"
        f" WHERE {scope.where()}(status IS NULL OR status < 200 OR status > 299) GROUP BY outcome"
    )
    groups: Counter[str] = Counter()
    seen = _Seen()
    for outcome, n, first, last in db.execute(sql, scope.args):
        seen = seen + _Seen(int(n), first, last)
        groups[str(outcome)] += int(n)
    return _finding(spec, seen, "forward:failed", detail=_top(groups.items()))


# -- run them all -------------------------------------------------------------------------


def run_checks(
    db: sqlite_utils.Database,
    session_id: int | None,
    thresholds: Thresholds = Thresholds(),
    *,
    now: float,
) -> list[Finding]:
    """Every check on ``session_id`` (None: every session), passing ones included.

    In a stable order: errors first, then warnings, then information; by
    area within a level; then in the order the checks are defined.
    """
    scope = _Scope(session_id, thresholds, now)
    found = [check(db, scope) for check in CHECKS.values()]
    position = {key: index for index, key in enumerate(CHECKS)}
    found.sort(key=lambda f: (LEVELS.index(f.level), AREAS.index(f.area), position[f.key]))
    return found


def run_check(
    db: sqlite_utils.Database,
    key: str,
    session_id: int | None,
    thresholds: Thresholds = Thresholds(),
    *,
    now: float,
) -> Finding:
    """One check by key (``bench/checks.py`` times them one by one)."""
    return CHECKS[key](db, _Scope(session_id, thresholds, now))


def session_exists(db: sqlite_utils.Database, session_id: int) -> bool:
    """Whether the database holds session ``session_id``."""
    return db.execute("SELECT 1 FROM sessions WHERE id = ?", [session_id]).fetchone() is not None


__all__ = [
    "AREAS",
    "CHECKS",
    "CHECK_INDEXES",
    "DOCUMENTED_EVENTS",
    "LEVELS",
    "THRESHOLD_HELP",
    "Area",
    "Finding",
    "Level",
    "Thresholds",
    "run_check",
    "run_checks",
    "session_exists",
]
