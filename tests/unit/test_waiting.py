"""monitor/waiting.py: the window, the cheap poll, the near-miss report, inert output."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor import queries, store
from monitor.filters import compile_filter
from monitor.store import write_batch
from monitor.waiting import (
    Outcome,
    Waiter,
    WaitError,
    delivery,
    filter_terms,
    json_line,
    line,
    miss_report,
    parse_instant,
)
from tests.helpers import CLOSE, SPEC_READER, VIEW, event_row, rejected_row

OTHER_READER = "65e01bd8d03692125f1f0000"


def _close_of(user_id: str) -> bytes:
    body = orjson.loads(CLOSE)
    body["user_id"] = body["payload"]["user"]["userId"] = user_id
    return orjson.dumps(body)


def _write(db: Any, session_id: int, *bodies: bytes, rejected: int = 0) -> None:
    now = time.time()
    events = [event_row(body, session_id=session_id, received_at=now) for body in bodies]
    write_batch(db.conn, events, [rejected_row(b"x", session_id=session_id, received_at=now)] * rejected)


def test_filter_terms_keep_quotes_and_or_groups_whole() -> None:
    assert filter_terms('event:close  city:"new delhi" -"a b" x OR y lag>5s') == [
        "event:close",
        'city:"new delhi"',
        '-"a b"',
        "x OR y",
        "lag>5s",
    ]
    assert filter_terms('name:"say \\"hi\\" now" z') == ['name:"say \\"hi\\" now"', "z"]
    assert filter_terms("") == []


def test_since_takes_epoch_seconds_relative_times_and_what_the_filter_language_takes() -> None:
    now = 1_800_000_000.0
    assert parse_instant("1700000000", now) == 1_700_000_000
    assert parse_instant("-5m", now) == now - 300
    assert parse_instant("90s", now) == now - 90
    assert parse_instant("2026-11-30T09:15", now) == datetime(2026, 11, 30, 9, 15).timestamp()
    assert (
        parse_instant("2026-11-30T09:15:00+00:00", now) == datetime.fromisoformat("2026-11-30T09:15+00:00").timestamp()
    )
    with pytest.raises(WaitError, match="bad --since 'soon\u241b'"):
        parse_instant("soon\x1b", now)


def test_a_delivery_before_the_wait_counts_from_the_session_start_but_not_with_now(
    db_path: Path, store_db: Any, session_id: int
) -> None:
    _write(store_db, session_id, VIEW)
    with Waiter(db_path, "event:view") as waiter:
        outcome = waiter.wait(1, timeout=0)
    assert outcome.satisfied
    assert [row["event"] for row in outcome.matched] == ["payment_gateway.view"]
    with Waiter(db_path, "event:view", since="now") as waiter:
        assert not waiter.wait(1, timeout=0).satisfied


def test_a_commit_from_another_connection_is_seen_on_the_next_poll(
    db_path: Path, store_db: Any, session_id: int
) -> None:
    polls: list[float] = []

    def sleep(seconds: float) -> None:  # the writer commits while the waiter sleeps
        polls.append(seconds)
        if len(polls) == 3:
            _write(store_db, session_id, VIEW, CLOSE)

    with Waiter(db_path, "event:close", since="now") as waiter:
        outcome = waiter.wait(1, timeout=60, sleep=sleep)
    assert outcome.satisfied and outcome.changed
    assert len(polls) == 3
    assert delivery(outcome.matched[0])["body"]["payload"]["action"]["clickAction"] == "PAYMENT_GATEWAY_CROSS_BTN"


def test_polls_without_a_commit_read_no_table(db_path: Path, store_db: Any, session_id: int) -> None:
    with Waiter(db_path, "event:close", since="now") as waiter:
        waiter.check(1)
        statements: list[str] = []
        waiter.db.conn.set_trace_callback(statements.append)
        for _ in range(5):
            assert not waiter.check(1)
        assert statements == ["PRAGMA data_version"] * 5


def test_the_poll_query_walks_the_new_ids_only(db_path: Path, store_db: Any, session_id: int) -> None:
    """The rowid range drives the query, never an index the filter could use (on 1M rows, a scan per commit)."""
    for text in ("event:close", "user:65e01bd8d03692125f1f353d", "event:view OR event:close", "delhi"):
        compiled = compile_filter(text)
        captured: list[str] = []
        store_db.conn.set_trace_callback(captured.append)
        queries.waited_new(store_db, compiled.where, compiled.params, after_id=10, upto_id=20, since=1.0, limit=5)
        store_db.conn.set_trace_callback(None)
        sql = captured[-1]
        plan = store_db.execute(
            "EXPLAIN QUERY PLAN " + sql.replace("?", "NULL")  # the plan's shape, not the values
        ).fetchall()
        outer = next(detail for _, parent, _, detail in plan if parent == 0)
        assert "fresh USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in outer, (text, plan)


def test_the_report_names_the_near_misses_and_the_rejections(db_path: Path, store_db: Any, session_id: int) -> None:
    _write(store_db, session_id, VIEW, _close_of(OTHER_READER), rejected=2)
    wanted = f"event:close user:{SPEC_READER}"
    with Waiter(db_path, wanted) as waiter:
        outcome = waiter.wait(1, timeout=0)
        report = waiter.report(outcome, 0)
    lines = report.splitlines()
    assert lines[0].startswith(f"timed out after 0 s: 0 of 1 delivery matching '{wanted}' since session ")
    assert lines[1] == "seen in that window: 2 deliveries accepted, 2 rejected"
    assert f"  1 delivery matches all but 'user:{SPEC_READER}':" in lines  # same event, other reader
    assert "  1 delivery matches all but 'event:close':" in lines  # same reader, other event
    assert "  2 deliveries rejected:" in lines
    assert sum("payment_gateway.close" in text for text in lines) == 1
    assert sum("rejected #" in text for text in lines) == 2
    assert lines[-1] == "nothing was written to the database while waiting"


def test_a_single_term_filter_shows_the_other_deliveries_and_a_stopped_monitor(
    db_path: Path, store_db: Any, session_id: int
) -> None:
    _write(store_db, session_id, VIEW)
    store.end_session(store_db, session_id)
    with Waiter(db_path, "event:close") as waiter:
        report = waiter.report(waiter.wait(1, timeout=0), 0)
    assert "  1 other delivery:" in report.splitlines()
    assert f"session {session_id} ended at" in report.splitlines()[-1]


def test_matched_rows_are_not_near_misses(db_path: Path, store_db: Any, session_id: int) -> None:
    _write(store_db, session_id, VIEW, CLOSE)
    with Waiter(db_path, "event:close") as waiter:
        outcome = waiter.wait(2, timeout=0)
        report = miss_report(waiter.db, "event:close", waiter.window, outcome, 0)
    assert report.splitlines()[0].startswith("timed out after 0 s: 1 of 2 deliveries matching 'event:close'")
    assert "  1 other delivery:" in report.splitlines()


def test_bad_filters_and_databases_are_wait_errors(tmp_path: Path, db_path: Path, store_db: Any) -> None:
    with pytest.raises(WaitError, match="bad filter at column 1: unknown field 'evnt'"):
        Waiter(db_path, "evnt:view")
    with pytest.raises(WaitError, match="no such file"):
        Waiter(tmp_path / "missing.db")
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(WaitError, match=r"junk\.db"):
        Waiter(tmp_path / "junk.db")


HOSTILE = orjson.dumps(
    {
        "event": "payment_gateway.view",
        "user_id": "u\x1b]0;pwned\x07",
        "payload": {"user": {"name": "evil\u202egnp\x9b"}},
    }
)


def test_output_is_inert_and_the_json_is_unchanged(store_db: Any, session_id: int) -> None:
    _write(store_db, session_id, HOSTILE)
    row = queries.waited_in_window(store_db, "1", (), since=0.0, upto_id=10, limit=1)[0]
    text = json_line(row)
    assert text.isascii() or not any(0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert orjson.loads(text) == orjson.loads(orjson.dumps(delivery(row)))
    assert orjson.loads(text)["body"]["payload"]["user"]["name"] == "evil\u202egnp\x9b"
    shown = line(row)
    assert "\x1b" not in shown and "\u202e" not in shown and "#1" in shown


def test_a_body_that_is_not_json_is_given_as_text() -> None:
    row = {"id": 1, "received_at": 1.0, "body": b"\xffnot json"}
    assert delivery(row)["body"] == "\ufffdnot json"


def test_outcome_is_satisfied_at_the_wanted_count() -> None:
    assert Outcome(2, [{"id": 1}, {"id": 2}]).satisfied
    assert not Outcome(2, [{"id": 1}]).satisfied
