"""``queries.readers_page``: the readers list's rows, most recently seen first, filtered, limited, counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlite_utils

from monitor import queries as q
from monitor.filters import compile_filter
from monitor.store import open_store, write_batch
from tests.helpers import event_row

VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"


def body(event: str, user: str, **user_fields: Any) -> bytes:
    return orjson.dumps({"entity": "event", "event": event, "user_id": user, "payload": {"user": user_fields}})


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    """Session 1: ann (view, close), bob (view); session 2: ann (view, a new email), cy (click)."""
    db = open_store(tmp_path / "r.db")
    for session_id in (1, 2):
        db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (?, ?, 'live')", [session_id, 0.0])
    rows = [
        (1, 100.0, body(VIEW, "ann", name="Ann Lee", email="ann@old.example", country="IN")),
        (1, 110.0, body(VIEW, "bob", name="Bob", phoneNumber="9000000002")),
        (1, 120.0, body(CLOSE, "ann", name="Ann Lee")),
        (2, 200.0, body(VIEW, "ann", email="ann@new.example")),
        (2, 210.0, body("paywall.click", "cy", name="Cy")),
    ]
    write_batch(db.conn, [event_row(b, session_id=s, received_at=t) for s, t, b in rows], [])
    return db


def users(page: q.ReaderPage) -> list[str]:
    return [row["user_id"] for row in page.rows]


def test_most_recently_seen_first_with_counts_and_latest_values(db: sqlite_utils.Database) -> None:
    page = q.readers_page(db, None)
    assert users(page) == ["cy", "ann", "bob"] and page.total == 3
    ann = page.rows[1]
    assert (ann["events"], ann["views"], ann["closes"], ann["last_seen"], ann["last_id"]) == (3, 2, 1, 200.0, 4)
    # The latest non-empty value of each, from any session.
    assert (ann["name"], ann["email"], ann["country"]) == ("Ann Lee", "ann@new.example", "IN")


def test_a_session_counts_its_own_events(db: sqlite_utils.Database) -> None:
    page = q.readers_page(db, 1)
    assert users(page) == ["ann", "bob"] and page.total == 2
    assert (page.rows[0]["events"], page.rows[0]["views"], page.rows[0]["last_id"]) == (2, 1, 3)
    assert users(q.readers_page(db, 2)) == ["cy", "ann"]


def test_the_limit_keeps_the_newest_and_the_total_counts_them_all(db: sqlite_utils.Database) -> None:
    page = q.readers_page(db, None, limit=2)
    assert users(page) == ["cy", "ann"] and page.total == 3
    empty = q.readers_page(db, 1, "user_id = ?", ("nobody",))
    assert empty.rows == [] and empty.total == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ann", ["ann"]),  # a word: the name, email, user id...
        ("BOB", ["bob"]),  # any case
        ("9000000002", ["bob"]),  # a phone
        ("user:cy", ["cy"]),  # the filter language's fields
        ("event:close", ["ann"]),
        ("country:IN", ["ann"]),
        ("-event:view", ["cy", "ann"]),
    ],
)
def test_the_filter_picks_readers_and_counts_stay_whole(
    db: sqlite_utils.Database, text: str, expected: list[str]
) -> None:
    compiled = compile_filter(text)
    page = q.readers_page(db, None, compiled.where, compiled.params)
    assert users(page) == expected and page.total == len(expected)
    for row in page.rows:
        if row["user_id"] == "ann":
            assert row["events"] == 3  # every event of the reader, not only those the filter matched
