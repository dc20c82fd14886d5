"""Crash safety: SIGKILL the real headless process at random moments under load, 20 times, one database.

Each round starts ``python -m monitor watch --headless --port 0 --db X`` on the same file, posts
from 16 concurrent connections for a random 0.2-1.0 s and kills it mid-burst. After every round:
each acknowledged delivery (200 + id) is in the database with its exact bytes, nothing that was
stored is foreign or corrupt, ``PRAGMA integrity_check`` is ``ok``, and the next start opens a new
session (the killed ones keep ``ended_at`` NULL) and carries on numbering after the last row.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import Monitor

ROUNDS = 20
CONNECTIONS = 16
SEED = int(os.environ.get("RELIABILITY_SEED", "20240229"))


def _body(round_no: int, n: int) -> bytes:
    return (
        b'{"entity":"event","event":"payment_gateway.view","user_id":"r%d-u%d","created_at":1709186668,'
        b'"payload":{"user":{"name":"Reader %d"},"action":{"contentId":"story-%d"}},"n":%d}'
        % (round_no, n % 37, n, n % 11, n)
    )


async def _burst(url: str, monitor: Monitor, round_no: int, kill_after: float) -> tuple[dict[int, bytes], set[bytes]]:
    """Post until the process is killed (``kill_after`` seconds in); return what was acknowledged and sent."""
    acked: dict[int, bytes] = {}
    sent: set[bytes] = set()
    statuses: list[int] = []
    killed = asyncio.Event()
    counter = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        while not killed.is_set():
            body = _body(round_no, next(counter))
            sent.add(body)
            try:
                async with session.post(url + "crash", data=body) as resp:
                    answer = await resp.json(content_type=None)
                    statuses.append(resp.status)
                    if resp.status == 200:
                        acked[answer["id"]] = body
            except (TimeoutError, aiohttp.ClientError, ValueError):
                if not killed.is_set():
                    # Only the kill may break a connection; wait for it (it is due any moment).
                    await asyncio.wait_for(killed.wait(), 15)
                return

    async def killer() -> None:
        await asyncio.sleep(kill_after)  # the random moment is the point here, not a wait for a condition
        monitor.proc.send_signal(signal.SIGKILL)
        killed.set()

    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15), connector=connector) as session:
        await asyncio.gather(killer(), *(worker(session) for _ in range(CONNECTIONS)))
    assert set(statuses) <= {200}, f"round {round_no}: non-200 answers before the kill: {set(statuses)}"
    return acked, sent


def _check(db: Path, acked: dict[int, bytes], sent_ever: set[bytes]) -> tuple[int, list[dict[str, Any]]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT id, body FROM events").fetchall())
        sessions = [dict(row) for row in conn.execute("SELECT * FROM sessions ORDER BY id")]
    finally:
        conn.close()
    missing = [new_id for new_id in acked if new_id not in stored]
    assert not missing, f"{len(missing)} acknowledged deliveries lost: {missing[:10]}"
    wrong = [new_id for new_id, body in acked.items() if stored[new_id] != body]
    assert not wrong, f"acknowledged deliveries stored with other bytes: {wrong[:10]}"
    # Rows committed but not acknowledged (in flight at the kill) are allowed; rows nobody sent are not.
    foreign = [new_id for new_id, body in stored.items() if body not in sent_ever]
    assert not foreign, f"rows that were never sent: {foreign[:10]}"
    return len(stored), sessions


@pytest.mark.slow
async def test_twenty_sigkills_under_load_lose_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "crash.db"
    acked_all: dict[int, bytes] = {}
    sent_all: set[bytes] = set()
    session_ids: list[int] = []
    figures: list[tuple[int, float, int, int]] = []
    started = time.monotonic()
    for round_no in range(ROUNDS):
        monitor = Monitor("watch", "--headless", "--port", "0", "--db", str(db), cwd=tmp_path)
        try:
            url = await asyncio.to_thread(monitor.url)
            kill_after = rng.uniform(0.2, 1.0)
            acked, sent = await _burst(url, monitor, round_no, kill_after)
            assert await asyncio.to_thread(monitor.proc.wait, 15) == -signal.SIGKILL
        finally:
            monitor.stop()
        overlap = set(acked) & set(acked_all)
        assert not overlap, f"round {round_no}: ids handed out twice: {sorted(overlap)[:10]}"
        acked_all.update(acked)
        sent_all |= sent
        stored, sessions = _check(db, acked_all, sent_all)
        # Every start opened a session of its own; every one of them was killed, so none is closed.
        assert len(sessions) == round_no + 1
        assert [s["ended_at"] for s in sessions] == [None] * (round_no + 1)
        assert all(s["mode"] == "headless" for s in sessions)
        session_ids.append(sessions[-1]["id"])
        if acked:
            conn = sqlite3.connect(db)
            try:
                placeholders = ",".join("?" * len(acked))
                owners = {
                    sid
                    for (sid,) in conn.execute(
                        f"SELECT DISTINCT session_id FROM events WHERE id IN ({placeholders})", list(acked)
                    )
                }
            finally:
                conn.close()
            assert owners == {session_ids[-1]}, owners
        figures.append((round_no, kill_after, len(acked), stored))
    assert session_ids == sorted(set(session_ids))
    # At least most rounds were killed with deliveries acknowledged (i.e. really under load).
    assert sum(1 for _, _, n, _ in figures if n) >= ROUNDS * 3 // 4, figures

    # It carries on: a clean run after twenty crashes answers, stores and closes its session.
    monitor = Monitor("watch", "--headless", "--port", "0", "--db", str(db), cwd=tmp_path)
    try:
        url = await asyncio.to_thread(monitor.url)
        async with aiohttp.ClientSession() as session, session.post(url, data=_body(99, 1)) as resp:
            assert resp.status == 200
            last_id = (await resp.json())["id"]
        assert last_id > max(acked_all, default=0)
        monitor.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(monitor.proc.wait, 15) == 0
    finally:
        monitor.stop()
    stored, sessions = _check(db, acked_all | {last_id: _body(99, 1)}, sent_all | {_body(99, 1)})
    assert len(sessions) == ROUNDS + 1 and sessions[-1]["ended_at"] is not None
    elapsed = time.monotonic() - started
    total = sum(n for _, _, n, _ in figures)
    print(
        f"\ncrash: seed {SEED}, {ROUNDS} SIGKILLs, {total} acknowledged, all present; "
        f"{stored} rows stored; per round acked min {min(n for _, _, n, _ in figures)} "
        f"max {max(n for _, _, n, _ in figures)}; {elapsed:.1f} s"
    )


@pytest.fixture(autouse=True)
def _no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSCENT_WEBHOOK_SECRET", raising=False)
