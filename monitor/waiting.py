"""Wait until deliveries matching a filter are in the database: ``conscent-monitor wait`` and the pytest plugin.

A running monitor (``watch``, in another process or thread) writes the
deliveries; a :class:`Waiter` reads the same file through WAL on a read-only
connection. While waiting it asks SQLite only ``PRAGMA data_version`` (no
table is read) every ``interval``; when another connection has committed, it
runs one query over the new ids alone (:func:`monitor.queries.waited_new`),
so a wait costs the same on a million rows as on ten.

When the wait times out, :func:`miss_report` says what arrived instead: the
deliveries that match all of the filter but one of its terms (same event,
other reader; same reader, other event), and the rejected ones.

Core module: no click, no Textual, no Rich; SQL lives in :mod:`monitor.queries`.
"""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor import queries, store
from monitor.filters import Compiled, FilterError, compile_filter
from monitor.textsafe import inert
from monitor.wording import count, number

#: How often a wait asks SQLite whether anything was committed: a delivery is
#: seen within this (plus one query) of its commit.
POLL_INTERVAL = 0.05
#: Near misses shown per kind in a timed-out wait's report.
EXAMPLES = 3


class WaitError(Exception):
    """A wait that cannot start: a bad filter, a bad ``--since``, a database that cannot be read."""


@dataclass(frozen=True, slots=True)
class Window:
    """Which deliveries count: received at or after ``since`` (None: any time), ids above the ``after_*`` ones."""

    since: float | None
    label: str  # "since session 4 started (09:20:01)", for the report
    after_event_id: int = 0
    after_rejected_id: int = 0


@dataclass(slots=True)
class Outcome:
    """What a wait found: the matching rows (oldest first, at most ``wanted``) and how long it took."""

    wanted: int
    matched: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0
    changed: bool = False  # whether anything was committed while waiting

    @property
    def satisfied(self) -> bool:
        return len(self.matched) >= self.wanted


# -- --since ----------------------------------------------------------------------


def parse_instant(text: str, now: float) -> float:
    """Epoch seconds for a ``--since`` TIME: epoch seconds, ``-5m`` (or ``5m``) ago, or what ``since:`` takes.

    ``since:`` in the filter language reads durations, ``today``, clock times
    and ISO dates and date-times (``2026-11-30T09:15``, with or without an
    offset); this adds epoch seconds and the leading minus of a relative time.
    """
    value = text.strip()
    with contextlib.suppress(ValueError):
        number_value = float(value)
        if math.isfinite(number_value) and number_value >= 0:
            return number_value
    if value.startswith("-"):
        value = value[1:]
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        compiled = compile_filter(f"since:{quoted}", now=now)
    except FilterError as exc:
        detail = exc.message.split(": ", 1)[1] if ": " in exc.message else "not a date or time"
        raise WaitError(f"bad --since {_quoted(text)}: {detail}; or epoch seconds, session, now") from None
    return float(compiled.params[0])


def resolve_window(db: Any, since: str, now: float) -> Window:
    """The window for ``--since``: ``session`` (the newest session's start), ``now``, or a TIME."""
    if since == "now":
        events, rejected = queries.newest_ids(db)
        return Window(None, "since the wait started", events, rejected)
    if since == "session":
        session = queries.newest_session(db)
        if session is None:
            return Window(0.0, "in the whole database (it has no session)")
        started = float(session["started_at"])
        return Window(started, f"since session {session['id']} started ({_clock(started)})")
    instant = parse_instant(since, now)
    return Window(instant, f"since {_clock(instant)}")


# -- the wait ---------------------------------------------------------------------


def compile_or_fail(filter_text: str) -> Compiled:
    try:
        return compile_filter(filter_text, table="events")
    except FilterError as exc:
        raise WaitError(f"bad filter at column {exc.position + 1}: {exc.message}") from None


class Waiter:
    """Waits on the database at ``db_path`` for deliveries matching ``filter_text``.

    Raises :class:`WaitError` when the filter, ``since`` or the database is bad.
    """

    def __init__(self, db_path: Path | str, filter_text: str = "", *, since: str = "session") -> None:
        self.db_path = Path(db_path)
        self.filter_text = filter_text
        self.compiled = compile_or_fail(filter_text)
        try:
            store.open_for_review(self.db_path)
            self.db = store.connect(self.db_path, readonly=True)
        except (store.StoreError, sqlite3.Error) as exc:
            raise WaitError(str(exc)) from None
        try:
            self.window = resolve_window(self.db, since, time.time())
            self._version = queries.data_version(self.db)
            self._seen_id, _ = queries.newest_ids(self.db)
        except sqlite3.Error as exc:
            self.db.close()
            raise WaitError(f"{self.db_path}: {exc}") from None
        except WaitError:
            self.db.close()
            raise
        self._first = True
        self.matched: list[dict[str, Any]] = []

    def check(self, wanted: int) -> bool:
        """Read what was committed since the last check (nothing when nothing was); True once ``wanted`` match."""
        if self._first:
            self._first = False
            if self.window.since is not None:
                self.matched = queries.waited_in_window(
                    self.db, self.compiled.where, self.compiled.params,
                    since=self.window.since, upto_id=self._seen_id, limit=wanted,
                )  # fmt: skip
            return len(self.matched) >= wanted
        version = queries.data_version(self.db)
        if version == self._version or len(self.matched) >= wanted:
            return len(self.matched) >= wanted
        self._version = version
        upto, _ = queries.newest_ids(self.db)
        after = max(self._seen_id, self.window.after_event_id)
        if upto > after:
            self.matched += queries.waited_new(
                self.db, self.compiled.where, self.compiled.params,
                after_id=after, upto_id=upto, since=self.window.since, limit=wanted - len(self.matched),
            )  # fmt: skip
            self._seen_id = upto
        return len(self.matched) >= wanted

    def wait(
        self,
        wanted: int = 1,
        timeout: float = 30.0,
        *,
        interval: float = POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Outcome:
        """Block until ``wanted`` deliveries match or ``timeout`` seconds pass."""
        started = time.monotonic()
        first_version = self._version
        deadline = started + max(0.0, timeout)
        while not self.check(wanted):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sleep(min(interval, left))
        return Outcome(wanted, self.matched[:wanted], time.monotonic() - started, self._version != first_version)

    def report(self, outcome: Outcome, timeout: float) -> str:
        """What a timed-out wait saw (see :func:`miss_report`)."""
        return miss_report(self.db, self.filter_text, self.window, outcome, timeout)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- what a wait prints ---------------------------------------------------------------


def delivery(row: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery as ``wait --format json`` and the pytest plugin give it: the columns and the parsed body."""
    raw = row.get("body") or b""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = bytes(raw).decode("utf-8", "replace")
    return {
        "id": row["id"],
        "received_at": row["received_at"],
        "event": row.get("event"),
        "user_id": row.get("user_id"),
        "signature": row.get("signature"),
        "body": body,
    }


#: Characters a terminal could act on or that hide text; JSON escapes them as \\uXXXX.
#: (orjson escapes C0 itself; these are DEL, C1, bidi controls and invisible format characters.)
_JSON_UNSAFE = re.compile("[\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def json_line(row: Mapping[str, Any]) -> str:
    """One JSON object for one delivery, safe to print: nothing in it can drive a terminal."""
    text = orjson.dumps(delivery(row)).decode("utf-8")
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def line(row: Mapping[str, Any], rejected: bool = False) -> str:
    """The headless monitor's line for one delivery (made inert there)."""
    from monitor.headless import notice_text
    from monitor.writer import CommitNotice

    rows = [dict(row)]
    if rejected:
        return notice_text(CommitNotice([], [int(row["id"])], [], rows))
    return notice_text(CommitNotice([int(row["id"])], [], rows, []))


def filter_terms(text: str) -> list[str]:
    """The ANDed parts of a filter as written: its terms, ``a OR b`` kept as one, quotes kept whole."""
    words: list[str] = []
    current, quoted, escaped = "", False, False
    for char in text:
        if quoted:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char.isspace():
            if current:
                words.append(current)
            current = ""
        else:
            current += char
            quoted = char == '"'
    if current:
        words.append(current)
    groups: list[str] = []
    joining = False
    for word in words:
        if word == "OR" and groups:
            joining = True
        elif joining:
            groups[-1] += f" OR {word}"
            joining = False
        else:
            groups.append(word)
    return groups


def miss_report(db: Any, filter_text: str, window: Window, outcome: Outcome, timeout: float) -> str:
    """What a timed-out wait saw: how many matched, and the near misses, with a few examples each.

    A near miss matches all of the filter's terms but one; each term left out
    gives one group (``user:X`` left out: the same event from other readers).
    Rejected deliveries of the window come last: a wrong signature is the
    usual reason the expected one never arrived.
    """
    shown = _quoted(filter_text) if filter_text else "(no filter)"
    lines = [
        f"timed out after {number(round(timeout, 1))} s: {number(len(outcome.matched))} of "
        f"{count(outcome.wanted, 'delivery')} matching {shown} {window.label}"
    ]
    compiled = compile_or_fail(filter_text)
    total, _ = queries.events_in_window(db, "1", (), since=window.since, after_id=window.after_event_id, examples=0)
    rejected, rejected_rows = queries.rejected_in_window(
        db, since=window.since, after_id=window.after_rejected_id, examples=EXAMPLES
    )
    lines.append(f"seen in that window: {count(total, 'delivery')} accepted, {number(rejected)} rejected")
    matched_ids = {row["id"] for row in outcome.matched}
    terms = filter_terms(filter_text)
    for index, term in enumerate(terms):
        rest = " ".join(terms[:index] + terms[index + 1 :])
        try:
            partial = compile_filter(rest, table="events")
        except FilterError:
            continue
        if partial.where == compiled.where and partial.params == compiled.params:
            continue
        near, rows = queries.events_in_window(
            db, partial.where, partial.params, since=window.since, after_id=window.after_event_id,
            examples=EXAMPLES + len(matched_ids),
        )  # fmt: skip
        near -= len(matched_ids)
        if near > 0:
            verb = "matches" if near == 1 else "match"
            what = (
                f"{count(near, 'delivery')} {verb} all but {_quoted(term)}"
                if rest
                else count(near, "other delivery", "other deliveries")
            )
            lines.append(f"  {what}:")
            lines += [f"    {line(row)}" for row in rows if row["id"] not in matched_ids][:EXAMPLES]
    if rejected:
        lines.append(f"  {count(rejected, 'delivery')} rejected:")
        lines += [f"    {line(row, rejected=True)}" for row in rejected_rows]
    lines += _idle_hint(db, outcome)
    return "\n".join(lines)


def _idle_hint(db: Any, outcome: Outcome) -> Sequence[str]:
    """Why nothing may have arrived: no monitor is writing to this database."""
    if outcome.changed:
        return []
    session = queries.newest_session(db)
    if session is not None and session.get("ended_at") is not None:
        return [
            f"nothing was written while waiting, and session {session['id']} ended at "
            f"{_clock(float(session['ended_at']))}: is `conscent-monitor watch` running on this database?"
        ]
    return ["nothing was written to the database while waiting"]


def _quoted(text: str) -> str:
    shown = inert(text)
    return shown if shown.startswith("'") else f"'{shown}'"


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))
