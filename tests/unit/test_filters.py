"""The filter language: compile every form and run the SQL against a real store."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import facets, store
from monitor.filters import FIELDS, Compiled, FilterError, Table, compile_filter, free_text_sql, help_text
from tests.helpers import event_row, rejected_row

NOW = datetime(2026, 11, 20, 15, 0).timestamp()  # local time, like the date forms
HOUR, DAY = 3600.0, 86400.0
ASHA = "665f0c0c0c0c0c0c0c0c0c0a"
RAVI = "665f0c0c0c0c0c0c0c0c0c0b"
CONTENT = "5f5f5f5f5f5f5f5f5f5f5f01"
GATEWAY_SESSION = "0f8fad5b-d9cb-469f-a165-70867728950e"
ALL_EVENTS = {1, 2, 3, 4, 5, 6}
ALL_REJECTED = {1, 2, 3, 4}
TABLES: tuple[Table, ...] = ("events", "rejected")


def wrapped(
    event: str,
    *,
    user: dict[str, Any],
    client: dict[str, Any],
    action: dict[str, Any],
    created_at: float | None,
    query: str = "",
    **payload: Any,
) -> bytes:
    """A body in Conscent's wrapper format; ``payload`` adds parts such as ``purchase``."""
    action = {**action, "pageUrl": f"https://pay.conscent.in/paywall?{query}"}
    body: dict[str, Any] = {"entity": "paywall", "event": event, "client_info": client}
    body["payload"] = {"user": user, "action": action, **payload}
    if created_at is not None:
        body["created_at"] = created_at
    return json.dumps(body).encode()


ASHA_USER = {
    "userId": ASHA,
    "name": "Asha K",
    "username": "asha_k",
    "phoneNumber": "+919800000001",
    "email": "asha@example.com",
    "city": "New Delhi",
    "country": "India",
}
UA = "Mozilla/5.0 (Linux; Android 14)"

#: Event lags (received_at - created_at): 1: 2s, 2: 10s, 3: none, 4: 0.3s, 5: 12s, 6: 1s.
VIEW = wrapped(
    "payment_gateway.view",
    user=ASHA_USER,
    client={"userAgent": UA, "country": "India", "countryCode": "IN", "deviceType": "mobile", "deviceModel": "Pixel 7"},
    action={"contentId": CONTENT, "clickAction": "subscribe_click"},
    query=f"clientId=c1&anonId=anon-1&paywallId=pw-9&sessionId={GATEWAY_SESSION}&clientContentId=story-01",
    created_at=NOW - 32,
)
EVENTS = [
    event_row(VIEW, received_at=NOW - 30, signature="valid", path="/webhook"),
    event_row(
        wrapped(
            "payment_gateway.close",
            user={
                "userId": RAVI,
                "name": "Ravi Kumar",
                "phoneNumber": "+919800000002",
                "city": "Mumbai",
                "country": "India",
            },
            client={"userAgent": UA, "countryCode": "IN", "deviceType": "desktop", "deviceModel": "MacBook Pro"},
            action={"contentId": "story-77", "clickAction": "close_button"},
            query="clientId=c1&anonId=anon-2&paywallId=pw-2&sessionId=sess-abc-123",
            created_at=NOW - 2 * HOUR - 10,
        ),
        received_at=NOW - 2 * HOUR,
        signature="invalid",
        path="/hooks/conscent",
    ),
    event_row(
        wrapped(
            "purchase.completed",
            user={**ASHA_USER, "city": "Pune", "country": "United States"},
            client={"countryCode": "US", "deviceType": "tablet", "deviceModel": "iPad"},
            action={},
            created_at=None,
            purchase={"transactionId": "txn_42", "amount": 99},
        ),
        received_at=NOW - 3 * DAY,
        signature="missing",
        path="/webhook",
    ),
    event_row(
        json.dumps(
            {
                "userId": "legacy-user-7",
                "name": "Meera",
                "contentId": "legacy-content",
                "createdAt": round((NOW - 600.3) * 1000),
            }
        ).encode(),
        received_at=NOW - 600,
        signature="unchecked",
        path="/webhook",
    ),
    event_row(VIEW, received_at=NOW - 20, signature="valid", path="/webhook"),  # the same bytes again: duplicate_of = 1
    event_row(
        wrapped(
            "paywall.closed",
            user={"userId": "user_with_100%", "name": "100%_real", "country": "Indonesia"},
            client={"countryCode": "ID", "deviceType": "mobile", "deviceModel": "Galaxy"},
            action={"clickAction": "close_x"},
            created_at=NOW - 5,
        ),
        received_at=NOW - 4,
        signature="valid",
        path="/webhook",
    ),
]
REJECTED = [
    rejected_row(
        status=400,
        reason="body is not JSON: Expecting value",
        body=b"not json at all",
        received_at=NOW - 300,
        path="/webhook",
    ),
    rejected_row(
        status=401,
        reason="signature invalid",
        body=b'{"event":"payment_gateway.view","note":"asha"}',
        received_at=NOW - 3700,
        path="/webhook",
    ),
    rejected_row(status=503, reason="store unavailable", body=b"{}", received_at=NOW - 4 * DAY, path="/webhook"),
    rejected_row(
        status=405, reason="method not allowed", body=b"", received_at=NOW - 10, method="GET", path="/favicon.ico"
    ),
]


def fill(database: sqlite_utils.Database) -> sqlite_utils.Database:
    store.start_session(database, listen=None, mode="test")
    committed = store.write_batch(database.conn, events=EVENTS, rejected=REJECTED)
    assert committed.event_ids == [1, 2, 3, 4, 5, 6]
    return database


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite_utils.Database]:
    database = fill(store.open_store(Path(tmp_path_factory.mktemp("filters")) / "t.db"))
    yield database
    database.conn.close()


def run(db: sqlite_utils.Database, compiled: Compiled, table: Table) -> set[int]:
    assert compiled.where.count("?") == len(compiled.params)
    cursor = db.conn.execute(f"SELECT id FROM {table} WHERE {compiled.where}", compiled.params)
    return {row[0] for row in cursor}


def ids(db: sqlite_utils.Database, text: str, table: Table = "events") -> set[int]:
    return run(db, compile_filter(text, table=table, now=NOW), table)


def test_fixture_rows(db: sqlite_utils.Database) -> None:
    rows = {r["id"]: r for r in db.query("SELECT id, kind, duplicate_of, created_at, transaction_id FROM events")}
    assert rows[5]["duplicate_of"] == 1
    assert rows[4]["kind"] == "legacy"
    assert rows[3]["created_at"] is None
    assert rows[3]["transaction_id"] == "txn_42"


def test_empty_filter_matches_everything(db: sqlite_utils.Database) -> None:
    assert compile_filter("   ") == Compiled("1", ())
    assert ids(db, "") == ALL_EVENTS
    assert ids(db, "", "rejected") == ALL_REJECTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("asha", {1, 3, 5}),
        ("ASHA", {1, 3, 5}),
        ("-asha", {2, 4, 6}),
        ('"new delhi"', {1, 5}),
        ("new delhi", {1, 5}),
        ('-"new delhi"', {2, 3, 4, 6}),
        ("%", {6}),
        ("_real", {6}),
        ('"100%_real"', {6}),
        ("0%_", {6}),
        ("txn_42", {3}),
        ("android", {1, 2, 5}),
        ("/hooks", {2}),
        ("https://pay.conscent.in", {1, 2, 3, 5, 6}),  # in the bodies' pageUrl
        ("a=b", set()),
        ("x>y", set()),
    ],
)
def test_free_text(db: sqlite_utils.Database, text: str, expected: set[int]) -> None:
    assert ids(db, text) == expected


@pytest.mark.parametrize(
    "text",
    ["asha", "ASHA", "-asha", "new delhi", '"new delhi"', "txn_42", "android", "pay.conscent", "paywall", "nomatch"],
)
def test_free_text_search_index_agrees_with_the_scan(tmp_path: Path, text: str) -> None:
    """Indexed rows are found through FTS5, rows beyond the index by the scan: same answer."""
    scanned = fill(store.open_store(tmp_path / "scan.db"))
    indexed = fill(store.open_store(tmp_path / "fts.db"))
    while store.index_pending(indexed.conn, 2):
        pass
    assert indexed.execute("SELECT indexed_upto FROM search_state").fetchone()[0] == 6
    assert ids(indexed, text) == ids(scanned, text)
    plan = " ".join(
        str(r)
        for r in indexed.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE " + compile_filter(text).where, compile_filter(text).params
        )
    )
    if text != "nomatch" and text.strip('-"').isalnum():
        assert "events_fts" in plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("event:view", {1, 5}),
        ("event:VIEW", {1, 5}),
        ("EVENT:view", {1, 5}),
        ("event:close", {2}),
        ("event:legacy", {4}),
        ("event:payment_gateway.view", {1, 5}),
        ("event:purchase", {3}),
        ("event:completed", {3}),
        ("event:closed", {6}),
        ("event:payment", set()),
        ("event:purchase*", {3}),
        ("event:pay*", {1, 2, 5, 6}),
        ("event:payment_gateway.*", {1, 2, 5}),
        ('event:"pay*"', set()),
        (f"user:{ASHA}", {1, 3, 5}),
        ("user:asha", {1, 3, 5}),
        ('user:"Asha K"', {1, 3, 5}),
        ("user:asha@example", {1, 3, 5}),
        ("user:9800000002", {2}),
        ("user:legacy-user-7", {4}),
        (f"content:{CONTENT}", {1, 5}),
        ("content:story-77", {2}),
        ("content:story-01", {1, 5}),
        ("content:legacy", {4}),
        ("country:IN", {1, 2, 5}),
        ("country:in", {1, 2, 5}),
        ("country:india", {1, 2, 5}),
        ("country:ind", {1, 2, 5, 6}),
        ("country:us", {3}),
        ("country:united", {3}),
        ("device:mobile", {1, 5, 6}),
        ("device:pixel", {1, 5}),
        ("sig:valid", {1, 5, 6}),
        ("sig:INVALID", {2}),
        ("sig:missing", {3}),
        ("sig:unchecked", {4}),
        ("-sig:valid", {2, 3, 4}),
        ("auth:unchecked", ALL_EVENTS),
        ("auth:invalid", set()),
        ("-auth:missing", ALL_EVENTS),
        ("forward:failed", set()),
        ("-forward:ok", ALL_EVENTS),
        ("note:expected", set()),
        ("action:close", {2, 6}),
        ("paywall:pw-9", {1, 5}),
        (f"session:{GATEWAY_SESSION}", {1, 5}),
        ("session:abc", {2}),
        ("anon:anon-2", {2}),
        ("phone:98000", {1, 2, 3, 5}),
        ("name:meera", {4}),
        ("city:delhi", {1, 5}),
        ("path:hooks", {2}),
        ("method:post", ALL_EVENTS),
        ("dup:yes", {5}),
        ("dup:no", {1, 2, 3, 4, 6}),
        ("-dup:yes", {1, 2, 3, 4, 6}),
        ("kind:legacy", {4}),
        ("kind:event", {1, 2, 3, 5, 6}),
        ("id:3", {3}),
        ("id:2..4", {2, 3, 4}),
        ("id:5..", {5, 6}),
        ("id:..2", {1, 2}),
        ("-id:2..5", {1, 6}),
        ("status:404", set()),
        ("status:4xx", set()),
        ("-status:4xx", ALL_EVENTS),
        ("reason:json", set()),
        ("-reason:json", ALL_EVENTS),
    ],
)
def test_fields_on_events(db: sqlite_utils.Database, text: str, expected: set[int]) -> None:
    assert ids(db, text) == expected


def test_negation_keeps_rows_with_null_columns(db: sqlite_utils.Database) -> None:
    # Rows 4 and 6 have no city; "not in Delhi" must still include them.
    assert ids(db, "-city:delhi") == {2, 3, 4, 6}
    assert ids(db, "-user:asha") == {2, 4, 6}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status:400", {1}),
        ("status:4xx", {1, 2, 4}),
        ("status:4XX", {1, 2, 4}),
        ("status:5xx", {3}),
        ("-status:4xx", {3}),
        ("reason:signature", {2}),
        ("json", {1}),
        ("asha", {2}),
        ("get", {4}),
        ("method:get", {4}),
        ("path:favicon", {4}),
        ("id:2..3", {2, 3}),
        ("since:1h", {1, 4}),
        ("until:1h", {2, 3}),
        ("event:view", set()),
        ("-event:view", ALL_REJECTED),
        ("user:asha", set()),
        ("-user:asha", ALL_REJECTED),
        ("dup:yes", set()),
        ("lag>1s", set()),
        ("-lag>1s", ALL_REJECTED),
        ("event:view OR status:5xx", {3}),
        ("-user:x OR status:404", ALL_REJECTED),
        ("-user:x status:5xx", {3}),
    ],
)
def test_fields_on_rejected(db: sqlite_utils.Database, text: str, expected: set[int]) -> None:
    assert ids(db, text, "rejected") == expected


def test_missing_fields_fold_to_constants() -> None:
    assert compile_filter("event:view", table="rejected") == Compiled("0", ())
    assert compile_filter("-event:view", table="rejected") == Compiled("1", ())
    assert compile_filter("status:4xx") == Compiled("0", ())
    assert compile_filter("asha event:view", table="rejected") == Compiled("0", ())
    assert set(compile_filter("event:view OR status:5xx", table="events").params) == {"payment_gateway.view"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("event:view OR event:close", {1, 2, 5}),
        ("event:view OR event:close sig:valid", {1, 5}),
        ("sig:valid event:view OR event:close", {1, 5}),
        ("ravi OR meera OR 100%", {2, 4, 6}),
        ("-event:view OR dup:yes", {2, 3, 4, 5, 6}),
        ("ravi or meera", set()),
        ("story or", {1, 2, 5}),  # free text, also found in the bodies
        ('"OR"', {1, 2, 5}),
    ],
)
def test_or(db: sqlite_utils.Database, text: str, expected: set[int]) -> None:
    assert ids(db, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("since:1m", {1, 5, 6}),
        ("since:90s", {1, 5, 6}),
        ("since:15m", {1, 4, 5, 6}),
        ("since:1h30m", {1, 4, 5, 6}),
        ("since:3h", {1, 2, 4, 5, 6}),
        ("since:4d", ALL_EVENTS),
        ("since:1w", ALL_EVENTS),
        ("until:1h", {2, 3}),
        ("since:3h until:1m", {2, 4}),
        ("-since:1h", {2, 3}),
        ("since:2026-11-20", {1, 2, 4, 5, 6}),
        ("until:2026-11-20", {3}),
        ("since:2026-11-17 until:2026-11-18", {3}),
        ("since:2026-11-20T12:30", {1, 2, 4, 5, 6}),
        ("since:2026-11-20T13:30", {1, 4, 5, 6}),
        ('since:"2026-11-20 13:30"', {1, 4, 5, 6}),
        ("since:14:30", {1, 4, 5, 6}),
        ("since:14:59:35", {5, 6}),
        ("since:today", {1, 2, 4, 5, 6}),
        ("since:yesterday until:today", set()),
    ],
)
def test_time(db: sqlite_utils.Database, text: str, expected: set[int]) -> None:
    assert ids(db, text) == expected


def test_time_params() -> None:
    assert compile_filter("since:10m", now=NOW).params == (NOW - 600,)
    assert compile_filter("since:500ms", now=NOW).params == (NOW - 0.5,)
    assert compile_filter("until:2026-11-20", now=NOW) == Compiled("received_at < ?", (NOW - 15 * HOUR,))
    assert compile_filter("since:14:30", now=NOW).params == (NOW - 30 * 60,)
    aware = compile_filter("since:2026-11-20T15:00Z", now=NOW).params
    assert aware == (datetime(2026, 11, 20, 15, tzinfo=UTC).timestamp(),)
    before = time.time()
    (default,) = compile_filter("since:1m").params
    assert before - 60 <= default <= time.time() - 60


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lag>5s", {2, 5}),
        ("lag>5", {2, 5}),
        ("lag>11.5", {5}),
        ("lag<2s", {4, 6}),
        ("lag>=2s", {1, 2, 5}),
        ("lag<=500ms", {4}),
        ("lag>1m", set()),
        ("lag>0", {1, 2, 4, 5, 6}),
        ("lag<-1s", set()),
        ("-lag>5s", {1, 4, 6}),
        ("-lag<=500ms", {1, 2, 5, 6}),
        ("lag>1s lag<11s", {1, 2}),
        ("lag>11s OR lag<1s", {4, 5}),
    ],
)
def test_lag(db: sqlite_utils.Database, text: str, expected: set[int]) -> None:
    assert ids(db, text) == expected


def test_quotes_and_escapes() -> None:
    assert set(compile_filter('name:"say \\"hi\\" \\\\ back"').params) == {'%say "hi" \\\\ back%'}
    assert set(compile_filter('city:new" "delhi').params) == {"%new delhi%"}
    assert compile_filter('"a:b"', table="rejected").params == ("%a:b%",) * 4


def test_user_text_never_reaches_sql() -> None:
    nasty = "'; DROP TABLE events; -- \"x' OR 1=1\""
    compiled = compile_filter(f"{nasty} user:{nasty}")
    assert "DROP" not in compiled.where
    # The only literals are the compiler's own: escapes, facet words and column names.
    allowed = {"'\\'", "'.", "'a'", "'f0'", "'f'", "' OR '", "'('", "')'", "') AND ('", "') OR ('", "'a NOT ('"}
    allowed |= {f"'{column}'" for column in facets.COLUMNS + facets.DICTIONARY_ONLY}
    literals = set(re.findall(r"'[^']*'", compiled.where.replace("'.", "")))
    assert literals <= allowed
    assert all(isinstance(p, str | int | float) for p in compiled.params)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"user:{ASHA}", "INDEX"),
        ("event:view since:1h", "INDEX"),
        ("event:pay*", "INDEX"),
        (f"session:{GATEWAY_SESSION}", "INDEX"),
        (f"content:{CONTENT}", "INDEX"),
        ("since:10m", "INDEX"),
        ("id:5..9", "PRIMARY KEY"),
    ],
)
def test_index_friendly(db: sqlite_utils.Database, text: str, expected: str) -> None:
    compiled = compile_filter(text, now=NOW)
    plan = db.conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM events WHERE {compiled.where}", compiled.params)
    assert expected in " ".join(str(row[-1]) for row in plan)


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("foo:bar", 0, "unknown field 'foo'"),
        ("asha foo:bar", 5, "unknown field"),
        ("-foo:bar", 1, "unknown field"),
        ("user_id:x", 0, "known: event, user"),
        ("event:", 6, "empty value"),
        ("city:delhi event:", 17, "empty value"),
        ('event:""', 6, "empty value"),
        ('"new delhi', 0, "unterminated quote"),
        ('asha city:"new delhi', 10, "unterminated quote"),
        ('""', 0, "empty phrase"),
        ('asha -""', 5, "empty phrase"),
        ("since:10x", 6, "bad time"),
        ("since:10", 6, "bad time"),
        ("until:soon", 6, "bad time"),
        ("since:2026-13-01", 6, "bad date"),
        ("since:2026-11-20Tnope", 6, "bad date"),
        ("since:25:00", 6, "bad date"),
        ("lag>abc", 4, "bad duration"),
        ("lag>5x", 4, "bad duration"),
        ("lag>=", 5, "empty value"),
        ("lag:5s", 3, "compares with"),
        ("lag=5s", 3, "compares with"),
        ("user>asha", 4, "bad comparison"),
        ("event=view", 5, "bad comparison"),
        ("id:abc", 3, "id: use"),
        ("id:..", 3, "id: use"),
        ("id:1-5", 3, "id: use"),
        ("id:99999999999999999999", 3, "out of range"),
        ("status:6xx", 7, "status: use"),
        ("status:abcd", 7, "status: use"),
        ("sig:maybe", 4, "must be one of valid"),
        ("auth:maybe", 5, "must be one of valid"),
        ("forward:maybe", 8, "must be one of failed, ok"),
        ("dup:perhaps", 4, "must be one of"),
        ("kind:other", 5, "must be one of event, legacy"),
        ("OR asha", 0, "OR needs"),
        ("asha OR", 5, "OR needs"),
        ("asha OR OR ravi", 8, "OR needs"),
        ("\ud800", 0, "invalid character"),
        ("foo:bar since:10x", 0, "unknown field"),
        ("since:10x foo:bar", 6, "bad time"),
    ],
)
def test_errors(text: str, position: int, message: str) -> None:
    for table in TABLES:
        with pytest.raises(FilterError) as caught:
            compile_filter(text, table=table, now=NOW)
        assert caught.value.position == position
        assert message in caught.value.message
        assert str(caught.value) == caught.value.message
        assert isinstance(caught.value, ValueError)


def test_free_text_hook() -> None:
    sql, params = free_text_sql("50%", "rejected")
    assert "CAST(body AS TEXT) LIKE ? ESCAPE '\\'" in sql
    assert params == ("%50\\%%",) * 4
    assert compile_filter("50%", table="rejected") == Compiled(sql, params)


def test_help() -> None:
    text = help_text()
    assert all(f"{name}:" in text or name in text for name in FIELDS)
    assert {"event", "user", "since", "until", "lag", "status", "reason", "id", "dup"} <= set(FIELDS)
    assert all(isinstance(line, str) and "\n" not in line for line in FIELDS.values())


_PIECES = st.sampled_from(
    [
        *(f"{name}:" for name in FIELDS),
        "-",
        '"',
        "\\",
        " ",
        "OR",
        "lag>",
        "lag<=",
        "view",
        "5s",
        "1h30m",
        "500ms",
        "2026-11-20",
        "T14:30",
        "14:30",
        "4xx",
        "..",
        "7",
        "*",
        "%",
        "_",
        "https://",
        ":",
        ">",
        "=",
        "yes",
        ASHA,
    ]
)
_TEXTS = st.one_of(st.text(max_size=40), st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=12).map("".join))


@settings(max_examples=400, deadline=None)
@given(text=_TEXTS, table=st.sampled_from(TABLES))
def test_any_text_compiles_to_runnable_sql_or_filter_error(db: sqlite_utils.Database, text: str, table: Table) -> None:
    try:
        compiled = compile_filter(text, table=table, now=NOW)
    except FilterError as exc:
        assert 0 <= exc.position <= len(text)
        return
    assert compiled.where.count("?") == len(compiled.params)
    try:
        run(db, compiled, table)
    except sqlite3.Error as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{text!r} -> {compiled} failed: {exc}")
