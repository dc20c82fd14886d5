"""The synthetic dataset: the requested size, realistic journeys, spread over days."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import orjson

from monitor import importing, pipeline, synth
from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW, parse_body

END = 1_760_000_000.0


def test_events_are_reproducible_ordered_and_spread_over_days() -> None:
    events = list(synth.events(3000, seed=4, readers=300, days=3, end=END))
    assert len(events) == 3000
    assert [e.body for e in events] == [e.body for e in synth.events(3000, seed=4, readers=300, days=3, end=END)]
    times = [e.received_at for e in events]
    assert times == sorted(times)
    assert END - 3 * 86400 <= times[0] < END - 2.5 * 86400 and END - 0.5 * 86400 < times[-1] <= END + 300
    records = [parse_body(e.body) for e in events]
    for event, record in zip(events, records, strict=True):
        assert record.created_at is not None and 0 < event.received_at - record.created_at < 300
        assert orjson.loads(event.body) == event.obj
    kinds = Counter(r.event for r in records)
    assert kinds[GATEWAY_VIEW] > 200 and kinds[GATEWAY_CLOSE] > 100 and len(kinds) >= 10
    assert 100 < len({r.user_id for r in records}) <= 300
    retried = Counter(e.body for e in events)
    assert 1 <= sum(n - 1 for n in retried.values()) < 30  # a few deliveries arrive twice


def test_build_database_pairs_views_and_closes(tmp_path: Path) -> None:
    db_path = tmp_path / "synth.db"
    seen: list[int] = []
    built = synth.build_database(
        db_path, 4000, seed=2, readers=500, sessions=2, progress=lambda done, total: seen.append(done)
    )
    assert [r.imported for r in built.reports] == [2000, 2000] and seen[-1] == 4000
    assert built.imported == 4000 and 100 < built.readers <= 500
    conn = sqlite3.connect(db_path)
    try:
        sessions = conn.execute("SELECT id, mode, started_at, ended_at, listen FROM sessions ORDER BY id").fetchall()
        assert [s[1] for s in sessions] == ["synth", "synth"]
        assert sessions[0][2] < sessions[0][3] <= sessions[1][2] + 2 < sessions[1][3]
        assert sessions[1][3] - sessions[0][2] > 5 * 86400  # the default span is a week
        per_session = conn.execute("SELECT session_id, count(*) FROM events GROUP BY 1").fetchall()
        assert per_session == [(1, 2000), (2, 2000)]
        pairs = conn.execute(
            "SELECT count(DISTINCT v.gateway_session_id) FROM events v JOIN events c"
            " ON c.gateway_session_id = v.gateway_session_id AND c.user_id = v.user_id"
            " WHERE v.event = ? AND c.event = ? AND c.created_at > v.created_at",
            (GATEWAY_VIEW, GATEWAY_CLOSE),
        ).fetchone()[0]
        assert pairs > 100
        assert conn.execute("SELECT count(*) FROM events WHERE duplicate_of IS NOT NULL").fetchone()[0] >= 1
        headers = orjson.loads(conn.execute("SELECT headers FROM events LIMIT 1").fetchone()[0])
        assert headers["User-Agent"] == "axios/0.21.1"
    finally:
        conn.close()


def test_write_jsonl_plain_and_meta(tmp_path: Path) -> None:
    plain, meta = tmp_path / "plain.jsonl", tmp_path / "meta.jsonl"
    synth.write_jsonl(plain, 1500, seed=9, readers=100, end=END)
    synth.write_jsonl(meta, 1500, seed=9, readers=100, end=END, meta=True)
    lines = plain.read_bytes().split(b"\n")
    assert len(lines) == 1501 and lines[-1] == b""
    records = [orjson.loads(line) for line in meta.read_bytes().splitlines()]
    assert [r["body_text"].encode() for r in records] == lines[:-1]
    report = importing.import_paths(tmp_path / "m.db", [meta])
    assert report.imported == 1500
    conn = sqlite3.connect(tmp_path / "m.db")
    try:
        first, last = conn.execute("SELECT min(received_at), max(received_at) FROM events").fetchone()
    finally:
        conn.close()
    assert last - first > 6 * 86400


def test_interrupted_build_stops_after_whole_batches(tmp_path: Path) -> None:
    def progress(done: int, total: int) -> None:
        raise KeyboardInterrupt

    built = synth.build_database(tmp_path / "i.db", 12_000, readers=50, sessions=2, end=END, progress=progress)
    assert len(built.reports) == 1 and built.interrupted and built.imported == pipeline.BATCH_ROWS
    conn = sqlite3.connect(tmp_path / "i.db")
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == pipeline.BATCH_ROWS
        assert conn.execute("SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL").fetchone()[0] == 1
    finally:
        conn.close()
