from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlite_utils

from monitor import queries as q
from monitor.events import parse_body
from monitor.store import open_store, write_batch
from tests.helpers import event_row, rejected_row, spec_bodies

VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"
HEADERS = {"Content-Type": "application/json"}


def payload(event_name: str, user: str | None, created_at: float | None, **user_fields: Any) -> bytes:
    obj: dict[str, Any] = {"entity": "event", "event": event_name, "user_id": user, "payload": {"user": user_fields}}
    if created_at is not None:
        obj["created_at"] = created_at
    return orjson.dumps(obj)


def add_sessions(db: sqlite_utils.Database, *ids: int) -> None:
    for session_id in ids:
        db.execute(
            "INSERT INTO sessions (id, started_at, mode) VALUES (?, ?, 'live')", [session_id, 1000.0 * session_id]
        )


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    """Two sessions: session 1 has the spec pair plus noise, session 2 a few more."""
    db = open_store(tmp_path / "t.db")
    add_sessions(db, 1, 2)
    view, close = spec_bodies()[VIEW], spec_bodies()[CLOSE]
    events = [
        event_row(view, session_id=1, received_at=100.0, headers=HEADERS),  # id 1
        event_row(
            payload("paywall.click", "u2", 90, name="Bob", country="FR"),
            session_id=1,
            received_at=110.0,
            headers=HEADERS,
        ),  # id 2
        event_row(close, session_id=1, received_at=250.0, headers=HEADERS),  # id 3
        # id 4: the same bytes again, a duplicate of 1
        event_row(view, session_id=1, received_at=260.0, headers=HEADERS),
        event_row(payload(VIEW, "u2", 300, name=""), session_id=2, received_at=300.0, headers=HEADERS),  # id 5
        event_row(payload("purchase.pass", "u2", 301), session_id=2, received_at=310.0, headers=HEADERS),  # id 6
    ]
    write_batch(
        db.conn,
        events,
        [
            rejected_row(b"{", session_id=1, received_at=105.0, headers=HEADERS),
            rejected_row(b"{", session_id=2, received_at=305.0, status=401, reason="bad signature", headers=HEADERS),
        ],
    )
    return db


def ids(rows: list[q.Row]) -> list[tuple[str, int]]:
    return [(row.source, row.id) for row in rows]


def test_counts(db: sqlite_utils.Database) -> None:
    assert q.count_rows(db, q.View("gateway", None)) == 4
    assert q.count_rows(db, q.View("gateway", 1)) == 3
    assert q.count_rows(db, q.View("all", None)) == 8
    assert q.count_rows(db, q.View("all", 1)) == 5
    assert q.count_rows(db, q.View("all", 1, rejected_where="0")) == 4
    assert q.count_rows(db, q.View("gateway", None, where="user_id = ?", params=("u2",))) == 1


def test_gateway_page_newest_first(db: sqlite_utils.Database) -> None:
    rows = q.fetch_rows(db, q.View("gateway", None), 0, 10)
    assert ids(rows) == [("event", 5), ("event", 4), ("event", 3), ("event", 1)]
    newest_spec = rows[1]
    assert newest_spec.duplicate_of == 1 and newest_spec.event == VIEW
    assert newest_spec.country == "IN" and newest_spec.username == "9892898898"
    assert newest_spec.content_id == "Client-Story-Id-2" and newest_spec.paywall_id == "65cb7057e57605058015b407"
    assert rows[2].click_action == "PAYMENT_GATEWAY_CROSS_BTN"
    assert ids(q.fetch_rows(db, q.View("gateway", None), 1, 2)) == [("event", 4), ("event", 3)]


def test_all_mode_merges_rejected_rows(db: sqlite_utils.Database) -> None:
    rows = q.fetch_rows(db, q.View("all", None), 0, 100)
    assert ids(rows) == [
        ("event", 6),
        ("rejected", 2),
        ("event", 5),
        ("event", 4),
        ("event", 3),
        ("event", 2),
        ("rejected", 1),
        ("event", 1),
    ]
    assert rows[1].status == 401 and rows[1].reason == "bad signature" and rows[1].event is None
    session_two = q.fetch_rows(db, q.View("all", 2, rejected_where="status = ?", rejected_params=(401,)), 0, 100)
    assert ids(session_two) == [("event", 6), ("rejected", 2), ("event", 5)]


def test_rows_never_carry_body() -> None:
    assert "body" not in q.Row.__dataclass_fields__ and "headers" not in q.Row.__dataclass_fields__


def test_reverse_paging_matches_forward(tmp_path: Path) -> None:
    db = open_store(tmp_path / "t.db")
    add_sessions(db, 1)
    events = [
        event_row(payload(VIEW if n % 3 else "paywall.click", f"u{n % 4}", n), session_id=1, received_at=float(n // 2))
        for n in range(60)
    ]
    write_batch(db.conn, events, [rejected_row(b"{", session_id=1, received_at=n + 0.5) for n in range(0, 30, 4)])
    for mode in ("gateway", "all"):
        view = q.View(mode, 1)
        total = q.count_rows(db, view)
        everything = ids(q.fetch_rows(db, view, 0, total + 10))
        assert len(everything) == total
        keys = [(row.received_at, row.id) for row in q.fetch_rows(db, view, 0, total)]
        assert keys == sorted(keys, reverse=True)
        for offset in range(total + 2):
            for limit in (1, 7):
                page = ids(q.fetch_rows(db, view, offset, limit, total=total))
                assert page == everything[offset : offset + limit], (mode, offset, limit)


def test_deep_page_counts_when_total_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = open_store(tmp_path / "t.db")
    add_sessions(db, 1)
    write_batch(db.conn, [event_row(payload(VIEW, "u", n), session_id=1, received_at=float(n)) for n in range(30)], [])
    monkeypatch.setattr(q, "_FORWARD_WALK", 3)
    assert [row.id for row in q.fetch_rows(db, q.View("gateway", 1), 25, 10)] == [5, 4, 3, 2, 1]


def test_get_delivery(db: sqlite_utils.Database) -> None:
    row = q.get_delivery(db, "event", 3)
    assert row is not None
    assert row["headers"] == {"Content-Type": "application/json"}
    assert row["body"] == spec_bodies()[CLOSE] and row["source"] == "event"
    assert row["event"] == CLOSE and row["user_agent"] == "axios/0.21.1"
    bad = q.get_delivery(db, "rejected", 2)
    assert bad is not None and bad["status"] == 401 and bad["body"] == b"{"
    assert q.get_delivery(db, "event", 999) is None


def test_reader_profile_takes_latest_value_of_each_field(db: sqlite_utils.Database) -> None:
    spec_user = "65e01bd8d03692125f1f353d"
    profile = q.reader_profile(db, spec_user)
    assert profile["username"] == "9892898898" and profile["phone_number"] == "9892898898"
    assert profile["name"] is None  # "" in every payload
    assert profile["latitude"] == 28.5223 and profile["postcode"] == "110001"
    assert profile["device_model"] == "Macintosh"  # the close (later) has none; the view's stays
    assert profile["user_agent"].startswith("Mozilla/5.0 (Macintosh")  # the duplicate view (id 4) is the latest
    assert (profile["first_seen"], profile["last_seen"]) == (100.0, 260.0)
    bob = q.reader_profile(db, "u2")
    assert bob["name"] == "Bob" and bob["country"] == "FR"  # the later "" does not hide it
    assert q.reader_profile(db, "nobody")["last_seen"] is None


def test_event_counts_and_reader_events(db: sqlite_utils.Database) -> None:
    spec_user = "65e01bd8d03692125f1f353d"
    assert q.event_counts_for_reader(db, spec_user) == [(VIEW, 2), (CLOSE, 1)]
    events = q.reader_events(db, "u2")
    assert [e["id"] for e in events] == [2, 5, 6]  # by created_at: 90, 300, 301
    assert "body" not in events[0] and events[0]["event"] == "paywall.click"
    assert [e["id"] for e in q.reader_events(db, "u2", session_id=2)] == [5, 6]


def test_reader_events_fall_back_to_received_at(tmp_path: Path) -> None:
    db = open_store(tmp_path / "t.db")
    add_sessions(db, 1)
    write_batch(
        db.conn,
        [
            event_row(payload(VIEW, "u", 50), session_id=1, received_at=60.0),
            event_row(payload(CLOSE, "u", None), session_id=1, received_at=55.0),
        ],
        [],
    )
    assert [e["id"] for e in q.reader_events(db, "u")] == [1, 2]


def test_readers(db: sqlite_utils.Database) -> None:
    rows = q.readers(db, None)
    assert [r["user_id"] for r in rows] == ["u2", "65e01bd8d03692125f1f353d"]
    bob, spec_user = rows
    assert (bob["name"], bob["country"], bob["events"], bob["views"], bob["closes"]) == ("Bob", "FR", 3, 1, 0)
    assert (spec_user["username"], spec_user["views"], spec_user["closes"], spec_user["last_seen"]) == (
        "9892898898",
        2,
        1,
        260.0,
    )
    assert [r["user_id"] for r in q.readers(db, 1)] == ["65e01bd8d03692125f1f353d", "u2"]
    assert q.readers(db, 1, limit=1)[0]["last_seen"] == 260.0
    assert [r["user_id"] for r in q.readers(db, None, where="event = ?", params=("purchase.pass",))] == ["u2"]


def test_header_stats(db: sqlite_utils.Database) -> None:
    stats = q.header_stats(db, None, now=305.0)
    assert (stats.views, stats.closes, stats.other, stats.rejected, stats.readers) == (3, 1, 2, 2, 2)
    assert stats.events == 6 and stats.close_rate == pytest.approx(1 / 3)
    assert len(stats.per_minute) == q.MINUTES and sum(stats.per_minute) == 6
    assert stats.per_minute[-1] == 2  # received at 300 and 310: the current minute, 300-359
    one = q.header_stats(db, 1, now=305.0)
    assert (one.views, one.closes, one.other, one.rejected, one.readers) == (2, 1, 1, 1, 2)
    later = q.header_stats(db, None, now=300.0 + 60 * 40)
    assert sum(later.per_minute) == 0
    assert q.Stats().close_rate is None


def test_accumulator_matches_header_stats(tmp_path: Path) -> None:
    db = open_store(tmp_path / "t.db")
    add_sessions(db, 1)
    acc = q.StatsAccumulator()
    batches = [
        (
            [event_row(payload(VIEW, f"u{n % 3}", n), session_id=1, received_at=1000.0 + 45 * n) for n in range(10)],
            [rejected_row(b"{", session_id=1, received_at=1001.0)],
        ),
        (
            [
                event_row(payload(CLOSE, "u9", 2), session_id=1, received_at=1500.0),
                event_row(payload("x.y", None, 3), session_id=1, received_at=1501.0),
            ],
            [],
        ),
    ]
    for events, rejects in batches:
        write_batch(db.conn, events, rejects)
        for row in events:
            acc.add(row["event"], row["user_id"], row["received_at"], rejected=False)
        for row in rejects:
            acc.add(None, None, row["received_at"], rejected=True)
    for now in (1600.0, 2500.0, 9000.0):
        assert acc.snapshot(now) == q.header_stats(db, 1, now)
    loaded = q.StatsAccumulator.load(db, 1, now=1600.0)
    assert loaded.snapshot(1600.0) == q.header_stats(db, 1, 1600.0)
    loaded.add(VIEW, "new", 1520.0, rejected=False)  # minute 25 (1500-1559) now holds three
    snap = loaded.snapshot(1601.0)
    assert (snap.views, snap.readers, snap.per_minute[-2:]) == (11, 5, [3, 0])


def test_sessions(db: sqlite_utils.Database) -> None:
    rows = q.sessions(db)
    assert [r["id"] for r in rows] == [2, 1]
    two, one = rows
    assert (one["events"], one["rejected"], one["views"], one["closes"], one["mode"]) == (4, 1, 2, 1, "live")
    assert (two["events"], two["rejected"], two["views"], two["closes"]) == (2, 1, 1, 0)


def test_page_plans_do_not_sort_the_table(tmp_path: Path) -> None:
    db = open_store(tmp_path / "big.db")
    add_sessions(db, 1, 2)
    view_body, close_body = spec_bodies()[VIEW], spec_bodies()[CLOSE]
    templates = [parse_body(b).columns() for b in (view_body, close_body)]
    templates.append(templates[0] | {"event": "paywall.click"})
    for start in range(0, 20_000, 5_000):
        chunk = []
        for n in range(start, start + 5_000):
            body = b'{"n": %d}' % n
            chunk.append(
                templates[n % 3]
                | {
                    "user_id": f"u{n % 500}",
                    "session_id": 1 + n % 2,
                    "received_at": 1000.0 + n,
                    "headers": orjson.dumps(HEADERS).decode(),
                    "body": body,
                    "body_sha256": hashlib.sha256(body).hexdigest(),
                }
            )
        write_batch(
            db.conn,
            chunk,
            [rejected_row(b"{", session_id=1 + n % 2, received_at=1000.5 + n) for n in range(start, start + 5_000, 50)],
        )
    db.execute("ANALYZE")
    for view in (q.View("gateway", None), q.View("gateway", 2), q.View("all", None), q.View("all", 1)):
        for descending in (True, False):
            sql, params = q.page_sql(view, descending=descending)
            plan = " / ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, [*params, 200, 0]))
            assert "TEMP B-TREE" not in plan, (view, plan)
            assert "MERGE (UNION ALL)" in plan
    expected = [1000.0 + n for n in range(20_000) if n % 2 == 1 and n % 3 != 2]  # session 2, view or close
    total = q.count_rows(db, q.View("gateway", 2))
    assert total == len(expected)
    deep = q.fetch_rows(db, q.View("gateway", 2), total - 3, 10, total=total)
    assert [row.received_at for row in deep] == expected[2::-1]
