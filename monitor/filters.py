"""The filter language of the event list, compiled to a parameterised SQL WHERE.

Pure functions, no I/O and no Textual. User text never becomes SQL: every value
is passed as a ``?`` parameter, so ``Compiled.where`` only ever holds column
names, operators and placeholders.

Grammar (terms are separated by whitespace and all must match)::

    filter  := group*                      groups are ANDed
    group   := term ("OR" term)*           a bare, upper-case OR binds tighter
    term    := ["-"] (phrase | field ":" value | "lag" cmp duration)
    phrase  := word | '"' text '"'         case-insensitive substring
    value   := word | '"' text '"'         \\" and \\\\ escape inside quotes
    cmp     := ">" | "<" | ">=" | "<="
    duration:= 500ms | 90s | 10m | 2h | 3d | 1w | 1h30m   (lag also takes bare seconds)

``-term`` negates a term (a NULL column counts as "not matching", so
``-city:delhi`` keeps rows without a city; ``-lag>5s`` means ``lag<=5s`` and
still needs a ``created_at``). ``word:value`` with an identifier ``word`` must
name a field (:data:`FIELDS`, case-insensitive) or it is an error, except URLs
(``https://...``); quote other free text containing ``:``. ``a=b`` and ``a>b``
with an unknown ``a`` are free text. Quoted values are literal (no ``*``).

Times are epoch seconds; dates and clock times without an offset are local.
``since:`` is inclusive (``received_at >= t``), ``until:`` exclusive.

A filter holds at most 32 terms (each side of an OR counts), 32 distinct
words of free text and 1,000 characters (:data:`MAX_TERMS`, :data:`MAX_WORDS`,
:data:`MAX_LENGTH`); past them, the error points at the first one too many.
Free-text terms ANDed are one look-up in the search index, however many.

Examples::

    event:view city:"new delhi"          gateway views from New Delhi
    user:665f0c... -sig:valid            one reader, signature not valid
    event:view OR event:close since:2h   either gateway event, last two hours
    lag>5s OR status:5xx                 slow events; server-error rejections

The same filter can run over both tables: a field the table does not have
matches nothing there (``0``), or everything when negated (``1``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Any, Literal

from monitor import facets
from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.signing import INVALID, MISSING, UNCHECKED, VALID

Table = Literal["events", "rejected"]
_Sql = tuple[str, tuple[Any, ...]]
_FALSE: _Sql = ("0", ())
_MAX_INT = 2**63 - 1

#: What one filter may hold: terms (each side of an OR counts), distinct words
#: of free text (each a look-up in the search index) and characters. They bound
#: what a filter costs: 1,100 words were SQLite's "Expression tree is too large",
#: 600 OR'd free-text terms took 32 s on 3,000 rows (issue 10).
MAX_TERMS = 32
MAX_WORDS = 32
MAX_LENGTH = 1000

#: Columns searched by free text, per table.
EVENTS_TEXT_COLUMNS = (
    "event", "user_id", "name", "username", "phone_number", "email", "content_id", "click_action", "paywall_id",
    "gateway_session_id", "anon_id", "city", "country", "client_country", "device_type", "device_model",
    "user_agent", "path", "transaction_id",
)  # fmt: skip
REJECTED_TEXT_COLUMNS = ("reason", "path", "method", "CAST(body AS TEXT)")


class FilterError(ValueError):
    """A filter that cannot be compiled; ``position`` is a 0-based offset into the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Facets:
    """The filter's terms that the facets index answers (:mod:`monitor.facets`), for queries that run them directly.

    ``match`` is an SQL expression whose value is the FTS5 query of those
    terms. ``broad`` (an SQL expression, constant) is true when one of them
    matched too many distinct values to be looked up (:data:`facets.MAX_VALUES`):
    the index then over-selects and a guard (on an event's columns) is the
    exact test. ``rest`` is the filter's other terms. The whole filter,
    :attr:`Compiled.where`, is ``rest AND ((id IN match-rows AND guard) OR
    (id past the index AND the scan of the event's columns))``.
    """

    where: str  # the Compiled.where these pieces make up (a view whose where differs cannot use them)
    match: _Sql
    broad: _Sql
    rest: _Sql
    #: When ``rest`` is free text alone: its query in the bodies' search index (rows up to
    #: ``indexed_upto`` are found there; ``rest`` judges the others).
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Compiled:
    """``where`` is safe to AND with other conditions; ``"1"`` for an empty filter."""

    where: str
    params: tuple[Any, ...]
    facets: Facets | None = None


# --- SQL building blocks ----------------------------------------------------


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _escape_glob(text: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def _like(column: str, pattern: str) -> _Sql:
    return f"{column} LIKE ? ESCAPE '\\'", (pattern,)


#: Longest chain of one operator written flat (longer ones nest, see _join).
_FLAT = 24


def _join(op: str, parts: list[_Sql]) -> _Sql:
    """``parts`` joined by ``op`` (``AND``, ``OR``), parenthesised when more than one.

    Long lists nest in halves: SQLite parses ``a OR b OR c`` one tree level
    per operator and refuses trees deeper than 1,000 ("Expression tree is too
    large"), which 32 free-text terms of 20 columns each would come close to.
    """
    if len(parts) == 1:
        return parts[0]
    if len(parts) > _FLAT:
        middle = len(parts) // 2
        parts = [_join(op, parts[:middle]), _join(op, parts[middle:])]
    return "(" + f" {op} ".join(sql for sql, _ in parts) + ")", tuple(p for _, params in parts for p in params)


def _or(pieces: Iterable[_Sql]) -> _Sql:
    return _join("OR", list(pieces))


def _likes(columns: Iterable[str], value: str) -> list[_Sql]:
    pattern = f"%{_escape_like(value)}%"
    return [_like(column, pattern) for column in columns]


def _contains(columns: Iterable[str], value: str) -> _Sql:
    """Case-insensitive (ASCII) substring match in any of ``columns``."""
    return _or(_likes(columns, value))


def _not(piece: _Sql) -> _Sql:
    sql, params = piece
    if sql in ("0", "1"):
        return ("1" if sql == "0" else "0"), ()
    return f"(NOT coalesce({sql}, 0))", params  # NULL (unknown) counts as "did not match"


@dataclass(frozen=True, slots=True)
class _Facet:
    """A term on ``events`` that the facets index answers.

    ``tests`` are ``(column, operator, value)``, ORed: a row matches when one
    of its columns passes. In the dictionary the same test picks the values
    whose words the rows hold; ``word`` is a fixed word instead (``dup``), and
    ``inverted`` turns the term into "not that" (``dup:no``).
    """

    tests: tuple[tuple[str, str, Any], ...] = ()
    word: str | None = None
    scan_sql: _Sql = ("0", ())
    inverted: bool = False
    #: The searched text when it is one ASCII word: the worded columns' values holding it at the start
    #: of a word are found by a prefix query (:data:`facets.WORDED`), only the others value by value.
    prefix: str | None = None

    def scan(self, negated: bool = False) -> _Sql:
        """The term on an event's own columns (the whole truth, index or not)."""
        if self.word is None:
            piece = _or(_test(column, op, value) for column, op, value in self.tests)
        else:
            piece = self.scan_sql
        return _not(piece) if negated != self.inverted else piece

    def values(self) -> _Sql:
        """Which dictionary values the term takes value by value (a condition on ``field_values``)."""
        pieces = []
        for column, op, value in self.tests:
            sql = f"(field = '{column}' AND value {op} ?{_ESCAPE if op == 'LIKE' else ''}"
            params: tuple[Any, ...] = (value,)
            if self.prefix is not None and op == "LIKE" and column in facets.WORDED:
                # Not those the prefix query finds: an ASCII value holding the word at the start of a word.
                sql += " AND (value GLOB ? OR NOT (lower(value) GLOB ? OR lower(value) GLOB ?))"
                params += (_NON_ASCII, f"{self.prefix}*", f"*[^a-z0-9]{self.prefix}*")
            pieces.append((sql + ")", params))
        return _or(pieces)

    def prefixes(self) -> str | None:
        """The FTS5 prefix queries of the worded columns (``xnkavya* OR xekavya*``), if the text is one word."""
        if self.prefix is None:
            return None
        marks = [facets.WORDED[column] for column, op, _ in self.tests if op == "LIKE" and column in facets.WORDED]
        return " OR ".join(f"{mark}{self.prefix}*" for mark in dict.fromkeys(marks)) or None


_ESCAPE = " ESCAPE '\\'"


def _test(column: str, op: str, value: Any) -> _Sql:
    return f"{column} {op} ?{_ESCAPE if op == 'LIKE' else ''}", (value,)


def _facet(*tests: tuple[str, str, Any]) -> _Facet:
    return _Facet(tests=tests)


def _facet_like(columns: Iterable[str], value: str, *more: tuple[str, str, Any]) -> _Facet:
    """Case-insensitive (ASCII) substring of any of ``columns``, through the facets index."""
    pattern = f"%{_escape_like(value)}%"
    tests = (*more, *((column, "LIKE", pattern) for column in columns))
    return _Facet(tests=tests, prefix=value.lower() if _ONE_WORD.fullmatch(value) else None)


#: Text the prefix queries take: one ASCII word (letters and digits), as the index splits values.
_ONE_WORD = re.compile(r"[A-Za-z0-9]+", re.ASCII)
#: A value holding a character outside ASCII (GLOB; ASCII's upper end is DEL): it has no words in the index.
_NON_ASCII = b"*[^\x01-\x7f]*".decode("unicode_escape")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _facet_query(term: _Facet, negated: bool) -> tuple[_Sql, _Sql | None]:
    """The term's FTS5 query (an SQL expression) and whether it is broad (None: never)."""
    negated = negated != term.inverted
    if term.word is not None:
        return (_quote(f"{facets.ALL} NOT {term.word}" if negated else term.word), ()), None
    where, params = term.values()
    words = f"coalesce(group_concat('f' || id, ' OR '), '{facets.NOTHING}')"
    prefixes = term.prefixes()
    if prefixes is not None:
        words = f"? || ' OR ' || {words}"
        params = (prefixes, *params)
    listed = f"'{facets.ALL} NOT (' || {words} || ')'" if negated else words
    query = (
        f"(SELECT CASE WHEN count(*) > {facets.MAX_VALUES} THEN '{facets.ALL}' ELSE {listed} END"
        f" FROM {facets.VALUES_TABLE} WHERE {where})"
    )
    broad = f"(SELECT count(*) > {facets.MAX_VALUES} FROM {facets.VALUES_TABLE} WHERE {where})"
    return (query, params), (broad, params[1:] if prefixes is not None else params)


def _concat(parts: list[_Sql], between: str) -> _Sql:
    """SQL joining the strings of ``parts``, each in parentheses, with ``between`` (" AND ", " OR ")."""
    if len(parts) == 1:
        return parts[0]
    joined = f" || ') {between.strip()} (' || ".join(sql for sql, _ in parts)
    return f"('(' || {joined} || ')')", tuple(p for _, params in parts for p in params)


_UPTO = "(SELECT facets_upto FROM search_state)"


def _facets(groups: list[list[tuple[bool, _Facet]]], rest: _Sql) -> tuple[Facets, tuple[Any, ...]]:
    """The facet groups (each ORed, ANDed together) as one look-up in the facets index."""
    queries, scans, guards, broads = [], [], [], []
    for group in groups:
        terms = [_facet_query(term, negated) for negated, term in group]
        queries.append(_concat([query for query, _ in terms], " OR "))
        scan = _or(term.scan(negated) for negated, term in group)
        scans.append(scan)
        broad = [flag for _, flag in terms if flag is not None]
        if broad:
            flag = _or(broad)
            broads.append(flag)
            # On the same row through its id, as the scan below: the outer query then needs only ids,
            # which every index holds, and reads a row only when the term was broad.
            on_row = f"EXISTS (SELECT 1 FROM events AS guarded WHERE guarded.id = events.id AND {scan[0]})"
            guards.append((f"(NOT {flag[0]} OR {on_row})", flag[1] + scan[1]))
    match = _concat(queries, " AND ")
    scan_all = _join("AND", scans)
    broad_any = _or(broads) if broads else ("0", ())
    guard = _join("AND", guards) if guards else ("1", ())
    rows = f"+id IN (SELECT rowid FROM {facets.FACETS_TABLE} WHERE {facets.FACETS_TABLE} MATCH {match[0]})"
    indexed = (rows, match[1]) if not guards else _join("AND", [(rows, match[1]), guard])
    unindexed = (
        f"(id > {_UPTO} AND EXISTS (SELECT 1 FROM events AS unindexed"
        f" WHERE unindexed.id = events.id AND {scan_all[0]}))",
        scan_all[1],
    )
    whole = _or([indexed, unindexed])
    if rest[0] != "1":
        whole = _join("AND", [rest, whole])
    return Facets(whole[0], match, broad_any, rest), whole[1]


#: Words of one term: a row must hold them all, each as the start of a word.
_Words = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Text:
    """Free text on ``events``: a row matches when it holds the words of one of ``alternatives``.

    ``scan`` is the substring scan for the rows the index has not reached yet.
    Kept apart from other SQL until the end, so that ANDed terms share one
    look-up in the index (:func:`_all_of`).
    """

    alternatives: tuple[_Words, ...]
    scan: _Sql

    @staticmethod
    def query(words: _Words) -> str:
        """The search index's query for rows holding every word (each a word's start)."""
        return " AND ".join(f'"{word}"*' for word in words)  # words hold no quotes: safe FTS5 syntax

    def sql(self) -> _Sql:
        # One look-up per alternative, ORed and tried row by row: SQLite runs
        # a look-up only once some row gets past the ones before it, so a
        # common word first costs one look-up, not thirty-two. ``+id`` keeps
        # the planner from running them all up front to union their rows
        # ("MULTI-INDEX OR"): 32 words in every body took 3.2 s that way on
        # 100,000 rows, 0.25 s row by row. One look-up alone is best up front
        # (a rare word: its few rows, not a walk of the table). The scan sits
        # in a subquery on the same row, so the outer query needs only ``id``:
        # the view's covering indexes answer it, and a row's columns and body
        # are read only when it is past the indexed part.
        rowid = "+id" if len(self.alternatives) > 1 else "id"
        lookup = f"{rowid} IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"
        matches = [(lookup, (self.query(words),)) for words in self.alternatives]
        scan_sql, scan_params = self.scan
        unindexed = (
            f"({rowid} > (SELECT indexed_upto FROM search_state)"
            f" AND EXISTS (SELECT 1 FROM events AS unindexed WHERE unindexed.id = events.id AND {scan_sql}))"
        )
        return _or([*matches, (unindexed, scan_params)])  # words hold no quotes: safe FTS5 syntax


def _text(term: str) -> _Text | _Sql:
    """One free-text term on ``events``: its words in the index, and the scan."""
    scan = _contains((*EVENTS_TEXT_COLUMNS, "CAST(body AS TEXT)"), term)
    words = tuple(dict.fromkeys(_WORD.findall(term)))
    if not words:
        return scan  # nothing the index knows: every row is scanned
    return _Text((words,), scan)


def _any_of(texts: list[_Text]) -> _Text:
    """Terms ORed: their alternatives (each looked up once), and one scan of them all."""
    alternatives = tuple(dict.fromkeys(words for t in texts for words in t.alternatives))
    return _Text(alternatives, _or(dict.fromkeys(t.scan for t in texts)))


def _all_of(texts: list[_Text]) -> _Text:
    """Single terms ANDed: one look-up of all their words, and their scans ANDed.

    Exact because rows past ``indexed_upto`` are never in the index: each row
    is judged by the index alone or by the scan alone. And cheaper than a
    look-up per term: the index intersects the words itself (32 common words
    on 100,000 rows: 4.3 s in one look-up each, 2.9 s in one for all).
    """
    words = tuple(dict.fromkeys(word for t in texts for word in t.alternatives[0]))
    return _Text((words,), _join("AND", list(dict.fromkeys(t.scan for t in texts))))


def free_text_sql(term: str, table: Table) -> _Sql:
    """SQL for one free-text term.

    Events: the bodies' full-text index (every word of the term, each as a
    word prefix) for indexed rows, and a substring scan of the parsed columns
    and the body for the few rows the index has not reached yet.
    """
    if table == "rejected":
        return _contains(REJECTED_TEXT_COLUMNS, term)
    piece = _text(term)
    return piece.sql() if isinstance(piece, _Text) else piece


#: What FTS5's unicode61 tokenizer calls a word: letters and digits.
_WORD = re.compile(r"[^\W_]+")


# --- tokens -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Term:
    pos: int  # start of the term (its "-" when negated)
    negated: bool
    field: str | None  # None for free text
    op: str  # ":" or a comparison; "" for free text
    op_pos: int
    value: str
    value_pos: int
    quoted: bool  # some of the value was inside quotes
    is_or: bool = False


_FIELD_HEAD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(:|<=|>=|!=|==|<|>|=)", re.ASCII)


@dataclass(frozen=True, slots=True)
class _Raw:
    """One whitespace-separated piece of the filter, before it is read as a term."""

    start: int
    negated: bool
    parts: list[tuple[str, bool, int]]  # (text, quoted, position)
    unterminated: int | None = None  # where a quote opens that never closes

    @property
    def is_or(self) -> bool:
        return not self.negated and len(self.parts) == 1 and self.parts[0][:2] == ("OR", False)


def _split(text: str) -> Iterator[_Raw]:
    """The pieces of ``text``; an unterminated quote ends the last one (an error only once it is read)."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        i += negated
        parts: list[tuple[str, bool, int]] = []
        while i < n and not text[i].isspace():
            if text[i] == '"':
                j, buf = i + 1, []
                while j < n and text[j] != '"':
                    step = 2 if text[j] == "\\" and j + 1 < n and text[j + 1] in '"\\' else 1
                    buf.append(text[j + step - 1])
                    j += step
                if j >= n:
                    yield _Raw(start, negated, parts, unterminated=i)
                    return
                parts.append(("".join(buf), True, i))
                i = j + 1
            else:
                j = i
                while j < n and not text[j].isspace() and text[j] != '"':
                    j += 1
                parts.append((text[i:j], False, i))
                i = j
        yield _Raw(start, negated, parts)


def _make_term(raw: _Raw) -> _Term:
    if raw.unterminated is not None:
        raise FilterError("unterminated quote", raw.unterminated)
    start, negated, parts = raw.start, raw.negated, raw.parts
    if raw.is_or:
        return _Term(start, False, None, "", start, "OR", start, False, is_or=True)
    first, first_quoted, first_pos = parts[0]
    whole = "".join(part for part, _, _ in parts)
    head = None if first_quoted else _FIELD_HEAD.match(first)
    if head is not None:
        name, op = head[1].lower(), head[2]
        rest = first[head.end() :]
        if name in _FIELDS:
            value = rest + "".join(part for part, _, _ in parts[1:])
            quoted = any(q for _, q, _ in parts[1:])
            return _Term(start, negated, name, op, first_pos + head.end(1), value, first_pos + head.end(), quoted)
        if op == ":" and not rest.startswith("/"):  # https://... and a=b stay free text
            known = ", ".join(_FIELDS)
            raise FilterError(f"unknown field {head[1]!r} (known: {known})", first_pos)
    return _Term(start, negated, None, "", first_pos, whole, first_pos, any(q for _, q, _ in parts))


# --- field values -----------------------------------------------------------

_HEX_ID = re.compile(r"[0-9a-fA-F]{24}", re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d|w))+", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)", re.ASCII)
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_ID_RANGE = re.compile(r"([0-9]*)\.\.([0-9]*)|([0-9]+)", re.ASCII)
_STATUS = re.compile(r"([0-9]{1,3})|([1-5])xx", re.ASCII | re.IGNORECASE)
_NEGATED_OP = {">": "<=", "<": ">=", ">=": "<", "<=": ">"}
_YES, _NO = ("yes", "y", "true", "1"), ("no", "n", "false", "0")
_SIGNATURES = (VALID, INVALID, MISSING, UNCHECKED)


def _seconds(text: str, *, bare_number: bool = False) -> float | None:
    """Seconds in ``90s``, ``1h30m``, ``500ms`` (or ``5`` when ``bare_number``); None if not a duration."""
    if bare_number and _NUMBER.fullmatch(text):
        total = float(text)
    elif _DURATION.fullmatch(text):
        total = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    else:
        return None
    return total if math.isfinite(total) else None


def _instant(t: _Term, now: float) -> float:
    """Epoch seconds for a ``since:``/``until:`` value."""
    value = t.value.strip()
    ago = _seconds(value.lower())
    if ago is not None:
        return now - ago
    try:
        if value.lower() in ("today", "yesterday"):
            day = datetime.fromtimestamp(now).date() - timedelta(days=value.lower() == "yesterday")
            return datetime.combine(day, clock_time()).timestamp()
        if clock := _CLOCK.fullmatch(value):
            at = clock_time(int(clock[1]), int(clock[2]), int(clock[3] or 0))
            return datetime.combine(datetime.fromtimestamp(now).date(), at).timestamp()
        if _DATE.match(value):
            return datetime.fromisoformat(value).timestamp()  # naive = local time
    except (ValueError, OverflowError, OSError):
        raise FilterError(f"bad date or time {_shown(value)}", t.value_pos) from None
    raise FilterError(f"bad time {_shown(value)}: use 10m, 2h, 3d, 2026-11-20, 2026-11-20T14:30 or 14:30", t.value_pos)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 30 else value[:27] + "...")


def _int(text: str, t: _Term) -> int:
    number = int(text)
    if number > _MAX_INT:
        raise FilterError(f"{t.field} {_shown(text)} is out of range", t.value_pos)
    return number


def _choice(t: _Term, choices: tuple[str, ...]) -> str:
    value = t.value.lower()
    if value not in choices:
        raise FilterError(f"{t.field}: must be one of {', '.join(choices)}", t.value_pos)
    return value


# --- fields -----------------------------------------------------------------


_Built = _Sql | _Facet


def _event(t: _Term, now: float) -> _Built:
    value = t.value
    alias = {"view": GATEWAY_VIEW, "close": GATEWAY_CLOSE}.get(value.lower())
    if value.lower() == "legacy":
        return _facet(("kind", "=", "legacy"))
    if alias is not None:
        return _facet(("event", "=", alias))
    if value.endswith("*") and not t.quoted:  # GLOB on the BINARY index is a range scan
        return _facet(("event", "GLOB", _escape_glob(value[:-1]) + "*"))
    if "." in value:
        return _facet(("event", "=", value))
    glob = _escape_glob(value)
    return _facet(("event", "=", value), ("event", "GLOB", glob + ".*"), ("event", "GLOB", "*." + glob))


def _user(t: _Term, now: float) -> _Built:
    if _HEX_ID.fullmatch(t.value):
        return _facet(("user_id", "=", t.value))
    return _facet_like(("name", "username", "phone_number", "email"), t.value, ("user_id", "=", t.value))


def _content(t: _Term, now: float) -> _Built:
    """Equality for an id-shaped value, else a substring of the content id or the client's content id."""
    if _HEX_ID.fullmatch(t.value) or _UUID.fullmatch(t.value):
        return _facet(("content_id", "=", t.value))
    return _facet_like(("content_id", "client_content_id"), t.value)


def _session(t: _Term, now: float) -> _Built:
    """A gateway session id: equality on its index for an id, else the dictionary's ids containing the value."""
    if _HEX_ID.fullmatch(t.value) or _UUID.fullmatch(t.value):
        return "id IN (SELECT id FROM events AS s WHERE s.gateway_session_id = ?)", (t.value,)  # its few rows, first
    pattern = f"%{_escape_like(t.value)}%"
    known = (
        "+id IN (SELECT id FROM events AS s WHERE s.gateway_session_id IN (SELECT value FROM"
        f" {facets.VALUES_TABLE} WHERE field = 'gateway_session_id' AND value LIKE ?{_ESCAPE}))"
    )
    # Values the dictionary has not seen yet, on the rows past it.
    unindexed = (
        f"(id > {_UPTO} AND EXISTS (SELECT 1 FROM events AS unindexed WHERE unindexed.id = events.id"
        f" AND unindexed.gateway_session_id LIKE ?{_ESCAPE}))"
    )
    return f"({known} OR {unindexed})", (pattern, pattern)


def _country(t: _Term, now: float) -> _Built:
    exact = _escape_like(t.value)  # LIKE without wildcards: case-insensitive equality
    if len(t.value) <= 2:
        return _facet(*((column, "LIKE", exact) for column in ("country_code", "country", "client_country")))
    pattern = f"%{exact}%"
    return _facet(("country_code", "LIKE", exact), ("country", "LIKE", pattern), ("client_country", "LIKE", pattern))


def _substring(*columns: str) -> Callable[[_Term, float], _Built]:
    return lambda t, now: _facet_like(columns, t.value)


def _one_of(column: str, choices: tuple[str, ...]) -> Callable[[_Term, float], _Built]:
    return lambda t, now: _facet((column, "=", _choice(t, choices)))


def _received(op: str) -> Callable[[_Term, float], _Sql]:
    return lambda t, now: (f"received_at {op} ?", (_instant(t, now),))


def _dup(t: _Term, now: float) -> _Built:
    repeat = _choice(t, _YES + _NO) in _YES
    return _Facet(word=facets.DUPLICATE, scan_sql=("duplicate_of IS NOT NULL", ()), inverted=not repeat)


def _forward(t: _Term, now: float) -> _Sql:
    failed = _choice(t, ("failed", "ok")) == "failed"
    # Ranges of the forwards' status index (NOT BETWEEN would read them all).
    answer = "f.status IS NULL OR f.status < 200 OR f.status > 299" if failed else "f.status BETWEEN 200 AND 299"
    # The (few) forwarded events, then their rows: not a probe of the forwards per event.
    return f"id IN (SELECT f.event_id FROM forwards AS f WHERE {answer})", ()


def _method(t: _Term, now: float) -> _Built:
    return _facet(("method", "LIKE", _escape_like(t.value)))  # no wildcards: case-insensitive equality


def _id(t: _Term, now: float) -> _Sql:
    match = _ID_RANGE.fullmatch(t.value)
    if match is None or match[0] == "..":
        raise FilterError("id: use N, N..M, N.. or ..M", t.value_pos)
    if match[3]:
        return "id = ?", (_int(match[3], t),)
    used = [(sql, _int(text, t)) for sql, text in (("id >= ?", match[1]), ("id <= ?", match[2])) if text]
    return "(" + " AND ".join(sql for sql, _ in used) + ")", tuple(value for _, value in used)


def _status(t: _Term, now: float) -> _Sql:
    match = _STATUS.fullmatch(t.value)
    if match is None:
        raise FilterError("status: use a code like 404 or a class like 4xx", t.value_pos)
    if match[1]:
        return "status = ?", (int(match[1]),)
    low = int(match[2]) * 100
    return "(status >= ? AND status <= ?)", (low, low + 99)


def _lag(t: _Term, now: float) -> _Sql:
    sign, text = (-1.0, t.value[1:]) if t.value.startswith("-") else (1.0, t.value)
    seconds = _seconds(text.lower(), bare_number=True)
    if seconds is None:
        raise FilterError(f"bad duration {_shown(t.value)}: use 500ms, 5s, 2m or 1h", t.value_pos)
    op = _NEGATED_OP[t.op] if t.negated else t.op  # negating keeps rows without created_at out
    return f"(created_at IS NOT NULL AND received_at - created_at {op} ?)", (sign * seconds,)


@dataclass(frozen=True, slots=True)
class _Field:
    help: str
    build: Callable[[_Term, float], _Built]
    tables: tuple[Table, ...] = ("events",)
    comparison: bool = False  # written lag>5s rather than field:value


_BOTH: tuple[Table, ...] = ("events", "rejected")
_FIELDS: dict[str, _Field] = {
    "event": _Field("event name; view, close, legacy; purchase* (prefix); purchase = purchase.* or *.purchase", _event),
    "user": _Field("reader: user id (exact), or name / username / phone / email containing", _user),
    "content": _Field(
        "content id or client content id containing (exact for a 24-hex id)",
        _content,
    ),
    "country": _Field("country code (exact), or user / client country containing", _country),
    "device": _Field("device type or model containing", _substring("device_type", "device_model")),
    "sig": _Field("signature check: valid, invalid, missing or unchecked", _one_of("signature", _SIGNATURES)),
    "auth": _Field("basic auth check: valid, invalid, missing or unchecked", _one_of("basic_auth", _SIGNATURES)),
    "action": _Field("click action containing", _substring("click_action")),
    "paywall": _Field("paywall id containing", _substring("paywall_id")),
    "session": _Field("gateway session id containing (exact for a uuid / 24-hex id)", _session),
    "anon": _Field("anonymous id containing", _substring("anon_id")),
    "phone": _Field("phone number containing", _substring("phone_number")),
    "name": _Field("reader name containing", _substring("name")),
    "city": _Field("city containing", _substring("city")),
    "path": _Field("request path containing", _substring("path"), _BOTH),
    "method": _Field("HTTP method, e.g. method:get", _method, _BOTH),
    "note": _Field("parse notes containing: note:expected (any), note:clickAction (one field)", _substring("notes")),
    "forward": _Field("forwards to your application: forward:failed (non-2xx or no answer), forward:ok", _forward),
    "dup": _Field("dup:yes = a repeat of earlier bytes, dup:no = first delivery", _dup),
    "kind": _Field("event (Conscent's wrapper) or legacy (flat body)", _one_of("kind", ("event", "legacy"))),
    "id": _Field("row id: N, N..M, N.. or ..M", _id, _BOTH),
    "status": _Field("rejections: HTTP status 404 or class 4xx / 5xx", _status, ("rejected",)),
    "reason": _Field("rejections: reason containing", _substring("reason"), ("rejected",)),
    "since": _Field(
        "received at/after: 10m, 2h, 3d, today, 2026-11-20, 2026-11-20T14:30, 14:30", _received(">="), _BOTH
    ),
    "until": _Field("received before (same forms as since)", _received("<"), _BOTH),
    "lag": _Field("lag>5s, lag<2s, lag>=1m, lag<=500ms: received_at - created_at", _lag, comparison=True),
}

#: Field name -> one-line help, for the help screen.
FIELDS: dict[str, str] = {name: spec.help for name, spec in _FIELDS.items()}


# --- compiling --------------------------------------------------------------


def _compile_term(t: _Term, table: Table, now: float) -> _Sql | _Text | _Facet:
    """A term's SQL; free text and facets on ``events`` stay as they are (not negated yet), to be merged."""
    if t.field is None:
        if not t.value:
            raise FilterError("empty phrase", t.pos)
        piece = _text(t.value) if table == "events" else free_text_sql(t.value, table)
        if isinstance(piece, _Text):
            return piece
    else:
        spec = _FIELDS[t.field]
        if spec.comparison and t.op not in _NEGATED_OP:
            raise FilterError(f"{t.field} compares with >, <, >= or <=, e.g. {t.field}>5s", t.op_pos)
        if not spec.comparison and t.op != ":":
            raise FilterError(f"bad comparison {t.op!r}: write {t.field}:value", t.op_pos)
        if not t.value:
            raise FilterError(f"empty value for {t.field}{t.op}", t.value_pos)
        built = spec.build(t, now)  # always: a bad value is an error for every table
        if table not in spec.tables:
            piece = _FALSE
        elif isinstance(built, _Facet):
            if table == "events":
                return built
            return built.scan(t.negated)
        elif spec.comparison:
            return built  # lag negates itself
        else:
            piece = built
    return _not(piece) if t.negated else piece


def _terms(text: str) -> Iterator[_Term]:
    """The terms of ``text``, once the limits are checked; each is read (and may fail) in turn."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter too long ({len(text):,} characters; at most {MAX_LENGTH:,})", MAX_LENGTH)
    for position, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise FilterError("invalid character", position)
    pieces = list(_split(text))
    terms = [piece for piece in pieces if not piece.is_or]
    if len(terms) > MAX_TERMS:
        raise FilterError(f"too many terms ({len(terms)}; at most {MAX_TERMS})", terms[MAX_TERMS].start)
    words = _searched_words(terms)
    if len(words) > MAX_WORDS:
        raise FilterError(f"too many words to search ({len(words)}; at most {MAX_WORDS})", words[MAX_WORDS][1])
    return map(_make_term, pieces)


def _searched_words(pieces: list[_Raw]) -> list[tuple[str, int]]:
    """Each distinct word of the free-text terms, with the position of the first term holding it."""
    found: dict[str, int] = {}
    for piece in pieces:
        try:
            term = _make_term(piece)
        except FilterError:
            continue  # reported when the terms are read in turn
        if term.field is None:
            for word in _WORD.findall(term.value):
                found.setdefault(word, term.pos)
    return list(found.items())


#: A compiled term: its SQL, or free text / a facet with whether it is negated.
_Piece = tuple[bool, _Sql | _Text | _Facet]


def compile_filter(text: str, *, table: Table = "events", now: float | None = None) -> Compiled:
    """Compile filter ``text`` for ``table``; raises :class:`FilterError`."""
    when = time.time() if now is None else now
    groups: list[list[_Piece]] = []  # terms joined by OR; the groups are ANDed
    pending_or: _Term | None = None
    for term in _terms(text):
        if term.is_or:
            if not groups or pending_or is not None:
                raise FilterError("OR needs a term on each side", term.pos)
            pending_or = term
            continue
        piece = (term.negated, _compile_term(term, table, when))
        if pending_or is not None:
            groups[-1].append(piece)
            pending_or = None
        else:
            groups.append([piece])
    if pending_or is not None:
        raise FilterError("OR needs a term on each side", pending_or.pos)
    return _combine(groups)


def _combine(groups: list[list[_Piece]]) -> Compiled:
    """AND the groups; single free-text terms share one look-up in the search index, facets one in theirs."""
    anded: list[_Sql] = []
    wanted: list[_Text] = []  # groups of one free-text term
    faceted: list[list[tuple[bool, _Facet]]] = []  # groups of facets only
    for group in groups:
        only_facets = [(negated, piece) for negated, piece in group if isinstance(piece, _Facet)]
        if len(only_facets) == len(group):
            faceted.append(only_facets)
            continue
        texts = [piece for negated, piece in group if isinstance(piece, _Text) and not negated]
        plain = [_alone(negated, piece) for negated, piece in group if not isinstance(piece, _Text) or negated]
        if any(sql == "1" for sql, _ in plain):
            continue
        alive = [piece for piece in plain if piece[0] != "0"]
        if not alive and not texts:
            return Compiled("0", ())
        if len(texts) == 1 and not alive:
            wanted.append(texts[0])
        else:
            anded.append(_or([*alive, *([_any_of(texts).sql()] if texts else [])]))
    text = None
    if wanted:
        searched = _all_of(wanted)
        if not anded and len(searched.alternatives) == 1:
            text = searched.query(searched.alternatives[0])
        anded.append(searched.sql())
    if faceted:
        rest = _join("AND", anded) if anded else ("1", ())
        found, params = _facets(faceted, rest)
        return Compiled(found.where, params, replace(found, text=text))
    if not anded:
        return Compiled("1", ())
    where, params = _join("AND", anded)
    if text is not None:  # free text alone: the facets index still counts the session's and mode's rows
        alone = Facets(where, (f"'{facets.ALL}'", ()), ("0", ()), (where, params), text)
        return Compiled(where, params, alone)
    return Compiled(where, params)


def _alone(negated: bool, piece: _Sql | _Text | _Facet) -> _Sql:
    """A term ORed with terms of another kind: SQL of its own."""
    if isinstance(piece, _Facet):
        found, params = _facets([[(negated, piece)]], ("1", ()))
        return found.where, params
    if isinstance(piece, _Text):
        return _not(piece.sql())  # only negated free text comes here
    return piece


def help_text() -> str:
    """A short description of the language, for the help screen and README."""
    width = max(map(len, FIELDS)) + 1
    fields = "\n".join(f"  {name + ':':<{width}} {text}" for name, text in FIELDS.items() if name != "lag")
    return (
        "Filter: words separated by spaces; a row must match all of them.\n"
        '  word / "two words"   text anywhere (case-insensitive)\n'
        "  -term                NOT term\n"
        "  a OR b               either (OR binds tighter than the spaces)\n"
        '  field:value          field:"value with spaces"\n'
        "  lag>5s lag<=500ms    received_at - created_at (>, <, >=, <=)\n"
        "Fields:\n"
        f"{fields}\n"
        "Fields a table lacks match nothing there (-field: matches everything).\n"
        f"A filter holds at most {MAX_TERMS} terms (each side of an OR counts), {MAX_WORDS} distinct words"
        f" of free text and {MAX_LENGTH:,} characters."
    )
