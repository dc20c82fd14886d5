"""The facets index (monitor/facets.py): every filter field answers the same with it, without it, and half built.

And it answers through indexes: ``EXPLAIN QUERY PLAN`` of every statement the
main table runs for each field finds no scan of the events table.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from monitor import facets, queries, store
from monitor.filters import FIELDS, compile_filter
from tests.helpers import event_row, rejected_row

NOW = 1_790_000_000.0
NAMES = ["Kavya Sharma", "KAVYA", "Okavya Rao", "kavya_x", "José Kavya", "K\u212avya", "Ravi", "Asha K", "", None]
CITIES = ["New Delhi", "delhi", "Mumbai (Andheri East)", "100%_real", "back\\slash", "", None]
DEVICES = ["mobile", "Mobile", "desktop", "tablet", None]
EVENTS = ["payment_gateway.view", "payment_gateway.close", "paywall.click", "purchase.pass", "transaction.failed"]


def _rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for n in range(count):
        if rows and rng.random() < 0.1:  # a repeat: the same bytes (and so the same columns), later
            rows.append({**rows[-1], "received_at": rows[-1]["received_at"] + 1, "body": rows[-1]["body"]})
            continue
        name = rng.choice(NAMES)
        columns: dict[str, Any] = {
            "event": rng.choice(EVENTS),
            "user_id": f"{n % 97:024x}" if rng.random() < 0.9 else None,
            "name": name,
            "username": None if name is None else f"{name.split()[0].lower() if name else 'x'}{n % 13}",
            # Many e-mails holding "a": more than facets.MAX_VALUES, so "user:a" is broad.
            "email": f"{rng.choice(['kavya', 'ravi', 'a', 'zed'])}.{n}@example.com" if rng.random() < 0.9 else None,
            "phone_number": f"+9198{n % 50:05d}{rng.randrange(1000):03d}",
            "city": rng.choice(CITIES),
            "country": rng.choice(["India", "india", None]),
            "client_country": rng.choice(["India", "Nepal", None]),
            "country_code": rng.choice(["IN", "in", "NP", None]),
            "device_type": rng.choice(DEVICES),
            "device_model": rng.choice(["Pixel 7", "iPhone", "SM-Mobile", None]),
            "content_id": rng.choice(["monsoon-budget-2026", "budget", "5f5f5f5f5f5f5f5f5f5f5f01", None]),
            "client_content_id": rng.choice(["story-01", "budget-story", None]),
            "click_action": rng.choice(["PAYMENT_GATEWAY_CROSS_BTN", "PASS", "subscribe_click", None]),
            "paywall_id": rng.choice(["pw-9", "pw-10", None]),
            "gateway_session_id": rng.choice([f"0f8fad5b-d9cb-469f-a165-{n % 40:012d}", None]),
            "anon_id": rng.choice([f"anon-{n % 30}", None]),
        }
        # The body holds what the columns were parsed from, as a delivery's does (free text searches it).
        body = json.dumps({"n": n, **columns}).encode()
        rows.append(
            event_row(
                body,
                parsed=False,
                session_id=1 + (n % 3 == 0),
                received_at=NOW - 5000 + n * 7 + rng.random(),
                created_at=None if rng.random() < 0.1 else NOW - 5000 + n * 7 - rng.choice([0.5, 3, 20, 90]),
                signature=rng.choice(["valid", "invalid", "missing", "unchecked"]),
                basic_auth=rng.choice(["valid", "unchecked"]),
                path=rng.choice(["/webhook", "/hooks/conscent", "/"]),
                method=rng.choice(["POST", "post", "PUT"]),
                kind="legacy" if rng.random() < 0.1 else "event",
                notes=rng.choice([None, None, "expected payload.action.clickAction", "created_at in milliseconds"]),
                **columns,
            )
        )
    return rows


FILTERS = [
    "event:view", "event:close", "-event:view", "event:purchase", "event:pay*", "event:legacy", "kind:legacy",
    "user:kavya", "user:KAVYA", "user:avya", "user:Kavya", "user:a", f"user:{0:024x}", "user:José", "-user:kavya",
    "name:kav", "name:K\u212a", "name:sharma", 'name:"Kavya Sharma"', "name:ravi", "-name:ravi", "phone:98000",
    "phone:+91980", "phone:1", "content:budget", "content:5f5f5f5f5f5f5f5f5f5f5f01", "-content:budget",
    "country:in", "country:india", "country:np", "device:mobile", "-device:mobile", "sig:valid", "sig:invalid",
    "auth:valid", "action:cross", "action:PASS", "paywall:pw-1", "session:0f8fad5b", "session:000000000007",
    "session:0f8fad5b-d9cb-469f-a165-000000000007", "anon:anon-1", "city:delhi", "city:100%", "city:_real",
    "city:back\\slash", "-city:delhi", "path:hooks", "method:post", "note:clickAction", "note:expected",
    "forward:failed", "forward:ok", "dup:yes", "dup:no", "-dup:no", "id:10..40", "since:30m", "until:30m",
    "lag>5s", "-lag>5s", "status:4xx", "reason:sig",
    # two together, ORs, and mixed kinds (free text on words found at a word's start: the search index
    # finds words by their start, the scan anywhere, a difference of free text older than these indexes)
    "content:budget -device:mobile", "city:delhi event:view", "user:kavya since:1h", "action:cross device:mobile",
    "lag>5s city:delhi", "event:view OR event:close", "city:delhi OR device:tablet", "city:delhi OR lag>60s",
    "user:a city:delhi", "-user:a", "user:a OR name:ravi", "sharma city:delhi", "dup:yes sig:valid",
    "-city:delhi -device:mobile", "id:1..100 name:kav", "forward:failed city:delhi", "sharma", "new delhi",
    "sharma OR ravi", "-sharma", "delhi event:view", "sharma since:1h", "example sig:valid -device:mobile",
]  # fmt: skip


def _fill(path: Path, rows: list[dict[str, Any]]) -> sqlite_utils.Database:
    db = store.open_store(path)
    store.write_batch(db.conn, rows, [rejected_row(b"x", reason="bad signature", status=401)])
    forwards = [
        {"event_id": event_id, "session_id": 1, "kind": "forward", "attempt": 1, "target": "http://127.0.0.1:1/",
         "requested_at": NOW, "status": status}
        for event_id, status in ((3, 200), (4, 500), (5, None), (40, 204))
    ]  # fmt: skip
    store.write_batch(db.conn, [], [], forwards)
    return db


def _index(db: sqlite_utils.Database, *, bodies: int, facets_to: int) -> None:
    """Both indexes up to ``bodies`` (the search index of the bodies too), the facets on to ``facets_to``."""
    conn = db.conn
    store.index_pending(conn, bodies, max_bytes=1 << 30)
    conn.execute("BEGIN IMMEDIATE")
    facets.index_pending(conn, facets_to - min(bodies, facets_to))
    conn.execute("COMMIT")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, sqlite_utils.Database]]:
    """The same rows: never indexed, indexed to the middle, indexed whole."""
    folder = Path(tmp_path_factory.mktemp("facets"))
    rows = _rows(400)
    dbs = {name: _fill(folder / f"{name}.db", rows) for name in ("none", "half", "whole")}
    _index(dbs["half"], bodies=150, facets_to=230)
    _index(dbs["whole"], bodies=10_000, facets_to=10_000)
    assert dbs["half"].execute("SELECT facets_upto, indexed_upto FROM search_state").fetchone() == (230, 150)
    assert facets.pending(dbs["whole"].conn) == 0
    yield dbs
    for db in dbs.values():
        db.conn.close()


def _ids(db: sqlite_utils.Database, text: str) -> set[int]:
    compiled = compile_filter(text, now=NOW)
    assert compiled.where.count("?") == len(compiled.params)
    return {row[0] for row in db.execute(f"SELECT id FROM events WHERE {compiled.where}", compiled.params)}


def test_the_rows_hold_what_the_filters_need(three: dict[str, sqlite_utils.Database]) -> None:
    db = three["none"]
    emails = db.execute("SELECT count(DISTINCT email) FROM events WHERE email LIKE '%a%'").fetchone()[0]
    assert emails > facets.MAX_VALUES  # user:a is broad
    assert db.execute("SELECT count(*) FROM events WHERE duplicate_of IS NOT NULL").fetchone()[0] > 5


@pytest.mark.parametrize("text", FILTERS)
def test_the_index_answers_as_the_scan(three: dict[str, sqlite_utils.Database], text: str) -> None:
    expected = _ids(three["none"], text)
    assert _ids(three["half"], text) == expected
    assert _ids(three["whole"], text) == expected


def _view(text: str, mode: str, session_id: int | None, *, with_facets: bool = True) -> queries.View:
    events, rejected = compile_filter(text, now=NOW), compile_filter(text, table="rejected", now=NOW)
    return queries.View(
        mode=mode,  # type: ignore[arg-type]
        session_id=session_id,
        where=events.where,
        params=events.params,
        rejected_where=rejected.where,
        rejected_params=rejected.params,
        facets=events.facets if with_facets else None,
    )


@pytest.mark.parametrize("text", FILTERS)
def test_counts_and_pages_from_the_index_are_the_general_queries(
    three: dict[str, sqlite_utils.Database], text: str
) -> None:
    for name in ("half", "whole"):
        db = three[name]
        for mode in ("gateway", "all"):
            for session_id in (None, 1):
                fast, general = _view(text, mode, session_id), _view(text, mode, session_id, with_facets=False)
                total = queries.count_rows(db, general)
                assert queries.count_rows(db, fast) == total, (name, mode, session_id)
                for offset in (0, 7):
                    expected = queries.fetch_rows(db, general, offset, 20, total=total)
                    assert queries.fetch_rows(db, fast, offset, 20, total=total) == expected


def test_a_condition_added_to_the_filter_is_not_skipped(three: dict[str, sqlite_utils.Database]) -> None:
    """count_new_rows ANDs an id range to the view's where: the facets' shortcut must not drop it."""
    db = three["whole"]
    view = _view("city:delhi", "all", None)
    whole = queries.count_rows(db, view)
    assert 0 < queries.count_new_rows(db, view, [1, 50], []) < whole


def test_a_rollback_forgets_the_values_it_took_away(tmp_path: Path) -> None:
    db = _fill(tmp_path / "r.db", _rows(20))
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    facets.index_pending(conn, 100)
    conn.execute("ROLLBACK")
    facets.forget(conn)
    assert store.index_pending(conn) > 0
    assert _ids(db, "city:delhi") == _ids(_fill(tmp_path / "s.db", _rows(20)), "city:delhi")


def test_a_read_only_file_of_an_older_schema_filters_by_scanning(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = _fill(path, _rows(50))
    expected = _ids(db, "city:delhi -device:mobile")
    for statement in ("DROP TABLE facets_fts", "DROP TABLE field_values", "PRAGMA user_version = 2"):
        db.execute(statement)
    db.conn.close()
    reader = store.connect(path, readonly=True)
    try:
        assert _ids(reader, "city:delhi -device:mobile") == expected
    finally:
        reader.conn.close()


# -- the plans ------------------------------------------------------------------------------------

#: A value for each field of the language (all of them: a field added later must be given one).
SAMPLES = {
    "event": "event:view", "user": "user:kavya", "content": "content:budget", "country": "country:india",
    "device": "device:mobile", "sig": "sig:valid", "auth": "auth:valid", "action": "action:cross",
    "paywall": "paywall:pw-9", "session": "session:0f8fad5b", "anon": "anon:anon-1", "phone": "phone:+9198000",
    "name": "name:kav", "city": "city:delhi", "path": "path:hooks", "method": "method:post",
    "note": "note:expected", "forward": "forward:failed", "dup": "dup:yes", "kind": "kind:legacy", "id": "id:10..40",
    "status": "status:4xx", "reason": "reason:sig", "since": "since:30m", "until": "until:30m", "lag": "lag>5s",
}  # fmt: skip
#: A table read whole: the events (or their rows past the index), the dictionary, the forwards.
_FULL_SCAN = re.compile(r"^SCAN (events|unindexed|field_values|forwards|f)\b(?!.*\bUSING\b)")


def _statements(db: sqlite_utils.Database, view: queries.View) -> list[str]:
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        total = queries.count_rows(db, view)
        queries.fetch_rows(db, view, 0, 50, total=total)
        queries.fetch_rows(db, view, 0, 50, total=max(total, 10_000))  # the walk in time order, too
    finally:
        db.conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def test_every_field_has_a_sample() -> None:
    assert set(SAMPLES) == set(FIELDS)


@pytest.mark.parametrize("mode", ["gateway", "all"])
@pytest.mark.parametrize("field", sorted(SAMPLES))
def test_every_field_is_answered_through_an_index(
    three: dict[str, sqlite_utils.Database], field: str, mode: str
) -> None:
    """No statement of the main table reads the events (or the dictionary) whole: any field, alone or with another."""
    db = three["whole"]
    for text in (SAMPLES[field], f"{SAMPLES[field]} city:delhi", f"-{SAMPLES[field]}"):
        for session_id in (None, 1):
            for sql in _statements(db, _view(text, mode, session_id)):
                plan = [row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
                scans = [step for step in plan if _FULL_SCAN.match(step)]
                assert not scans, (text, sql[:300], plan)


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize(
    "text",
    ["city:delhi", "-device:mobile", "user:kavya", "dup:no", "event:view OR kind:legacy", "example", "n city:delhi"],
)
def test_first_pages_of_many_rows_from_the_newest_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, shuffled: bool
) -> None:
    """Pages read from the index's highest ids equal the walk in time order, also when ids do not follow the times."""
    rows = _rows(300, seed=11)
    if shuffled:  # an import of older captures after newer ones: ids out of time order
        times = [row["received_at"] for row in rows]
        random.Random(3).shuffle(times)
        rows = [{**row, "received_at": at} for row, at in zip(rows, times, strict=True)]
    db = _fill(tmp_path / "p.db", rows)
    _index(db, bodies=200, facets_to=250)  # the last rows past the indexes: found by the scan
    monkeypatch.setattr(queries, "_SORT_ROWS", 0)
    for mode in ("gateway", "all"):
        for session_id in (None, 1):
            fast, general = _view(text, mode, session_id), _view(text, mode, session_id, with_facets=False)
            total = queries.count_rows(db, general)
            for offset, limit in ((0, 30), (5, 10), (0, total + 5)):
                expected = queries.fetch_rows(db, general, offset, limit, total=total)
                assert queries.fetch_rows(db, fast, offset, limit, total=total) == expected, (mode, session_id, offset)
