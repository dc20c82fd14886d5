"""The drill-down's reads on a real store: pages of the journey, their pairing, the figures, the plans.

Every page (in both orders, cut at every size, across page boundaries)
tells what ``build_journey`` over the reader's whole journey tells, and the
summary what ``pair_summary`` tells; the page's pairing reads the pairing
index only (EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from monitor import queries, reader_pages, store
from monitor.journey import JourneyStep, build_journey, pair_summary
from tests.helpers import event_row, gateway_body

VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"
READER = "reader-1"
EVENTS = [VIEW, VIEW, VIEW, CLOSE, CLOSE, CLOSE, "transaction.complete", "purchase.pass", "paywall.click"]


def fields(step: JourneyStep) -> tuple[Any, ...]:
    return (step.id, step.pair_id, step.time_to_close, step.close_action, step.outcome, step.paired_by, step.duplicate)


def write(path: Path, specs: list[dict[str, Any]], other_reader: bool = True) -> None:
    """One row per spec (its columns set as given), for READER; then another reader's rows around them."""
    db = store.open_store(path)
    try:
        session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
        rows = [
            event_row(gateway_body(user_id=READER, session=f"gw-{n}"), session_id=session_id, received_at=1000.0 + n)
            for n in range(len(specs))
        ]
        if other_reader:  # same sessionIds, another reader: never in this journey
            rows += [
                event_row(gateway_body(user_id="reader-2", session=f"gw-{n}"), session_id=session_id, received_at=5.0)
                for n in range(len(specs))
            ]
        store.write_batch(db.conn, rows, [])
        ids = [row[0] for row in db.execute("SELECT id FROM events WHERE user_id = ? ORDER BY id", [READER])]
        for row_id, spec in zip(ids, specs, strict=True):
            names = ", ".join(f"{name} = ?" for name in spec)
            db.execute(f"UPDATE events SET {names} WHERE id = ?", [*spec.values(), row_id])
        db.conn.commit()
    finally:
        db.close()


def random_specs(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    sessions = rng.choice([("s1", "s2", "s3", "s4"), ("s1", "s2", None), ("s1", "", "s2")])
    specs = []
    for _ in range(count):
        specs.append(
            {
                "event": rng.choice(EVENTS),
                "created_at": rng.choice([None, float(rng.randint(0, 30))]),
                "received_at": float(rng.randint(0, 30)),
                "gateway_session_id": rng.choice(sessions),
                "content_id": rng.choice([None, "a", "b"]),
                "client_content_id": rng.choice([None, "a", "b"]),
                "paywall_id": rng.choice([None, "p", "q"]),
                "click_action": rng.choice([None, "X"]),
                "duplicate_of": rng.choice([None, None, None, None, 1]),
            }
        )
    return specs


def check(path: Path) -> None:
    db = store.connect(path, readonly=True)
    try:
        whole = build_journey(queries.reader_events(db, READER))
        expected = {step.id: fields(step) for step in whole}
        journey = reader_pages.Journey.open(db, READER, None)
        assert journey.total == len(whole)
        by_received = sorted(whole, key=lambda s: (float(s.row["received_at"]), s.id))
        for order, steps in (("created", whole), ("received", by_received)):
            ids = [step.id for step in steps]
            assert journey.ids(db, order) == ids
            for size in (1, 3, 7, len(ids) or 1):
                fresh = reader_pages.Journey.open(db, READER, None)  # no components read yet
                for start in range(0, len(ids), size):
                    page = fresh.steps(db, order, start, size)
                    assert [step.id for step in page] == ids[start : start + size]
                    assert [fields(step) for step in page] == [expected[i] for i in ids[start : start + size]]
            assert all(journey.position(db, order, i) == n for n, i in enumerate(ids))
        summary = pair_summary(whole)
        assert journey.summary(db) == summary
        assert reader_pages.event_counts(db, READER) == queries.event_counts_for_reader(db, READER)
        counts, counted = reader_pages.counts_and_figures(db, READER, None)
        assert counts == queries.event_counts_for_reader(db, READER)
        assert (counted.views, counted.closes, counted.duplicates) == (
            summary.views,
            summary.closes,
            summary.duplicates,
        )
    finally:
        db.close()


@pytest.mark.parametrize("seed", range(12))
def test_every_page_pairs_as_the_whole_journey(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "monitor.db"
    write(path, random_specs(seed, 14 + seed))
    check(path)


def test_hand_made_journey(tmp_path: Path) -> None:
    """Two views then two closes; a view with sessionId and a close without; closes first; no created_at."""
    specs: list[dict[str, Any]] = [
        {"event": VIEW, "created_at": 100.0, "gateway_session_id": "s"},
        {"event": VIEW, "created_at": 110.0, "gateway_session_id": "s"},
        {"event": CLOSE, "created_at": 120.0, "gateway_session_id": "s", "click_action": "A"},
        {"event": CLOSE, "created_at": 130.0, "gateway_session_id": "s", "click_action": "B"},
        {"event": CLOSE, "created_at": 90.0, "gateway_session_id": "t"},
        {"event": VIEW, "created_at": None, "gateway_session_id": "t", "received_at": 95.0},
        {"event": "transaction.complete", "created_at": 115.0, "content_id": None},
        {"event": VIEW, "created_at": 200.0, "gateway_session_id": "u", "content_id": "c", "paywall_id": "p"},
        {"event": CLOSE, "created_at": 210.0, "gateway_session_id": None, "content_id": "c", "paywall_id": "p"},
        {"event": "paywall.click", "created_at": 205.0},
        {"event": None, "kind": "legacy", "created_at": 206.0},
        {"event": None, "kind": "legacy", "created_at": 207.0, "duplicate_of": 1},
    ]
    path = tmp_path / "monitor.db"
    write(path, specs)
    check(path)


def test_a_session_scopes_the_journey(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    write(path, random_specs(3, 20))
    db = store.connect(path, readonly=True)
    try:
        session_id = db.execute("SELECT max(session_id) FROM events").fetchone()[0]
        whole = build_journey(queries.reader_events(db, READER, session_id))
        counts, counted = reader_pages.counts_and_figures(db, READER, session_id)
        assert counts == queries.event_counts_for_reader(db, READER)  # every session's
        summary = pair_summary(whole)
        assert (counted.views, counted.closes, counted.duplicates) == (
            summary.views,
            summary.closes,
            summary.duplicates,
        )
        journey = reader_pages.Journey.open(db, READER, session_id)
        steps = journey.steps(db, "created", 0, journey.total)
        assert [fields(s) for s in steps] == [fields(s) for s in whole]
        assert journey.summary(db) == pair_summary(whole)
        assert reader_pages.Journey.open(db, READER, session_id + 1).total == 0
    finally:
        db.close()


def plan(db: sqlite_utils.Database, sql: str, params: list[Any]) -> str:
    return " | ".join(str(row[3]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_the_pages_read_indexes_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The received order walks the reader index; a page's components and the sessionId test, the pairing index."""
    path = tmp_path / "monitor.db"
    write(path, random_specs(1, 10))
    db = store.connect(path, readonly=True)
    seen: list[tuple[str, list[Any]]] = []
    execute = db.execute

    def spy(sql: str, params: Any = None) -> Any:
        seen.append((sql, list(params or [])))
        return execute(sql, params) if params is not None else execute(sql)

    try:
        monkeypatch.setattr(db, "execute", spy)
        reader_pages.journey_ids(db, READER, None, "received")
        reader_pages.pairs_by_session(db, READER, None)
        reader_pages.gateway_of_sessions(db, READER, None, ["s1", "s2"])
        monkeypatch.undo()
        ids_sql, by_session_sql, groups_sql = seen[0], seen[1], seen[-1]
        assert plan(db, *ids_sql) == "SEARCH events USING COVERING INDEX idx_events_user_id_received_at (user_id=?)"
        for sql, params in (by_session_sql, groups_sql):
            found = plan(db, sql, params)
            assert f"COVERING INDEX {store.PAIRING_INDEX} (gateway_session_id=? AND user_id=?)" in found, found
            assert "SCAN events" not in found
    finally:
        db.close()
