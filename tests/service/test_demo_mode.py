"""``watch --demo``: a fresh database, a free port, and every feature within seconds."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_headless_demo_shows_every_kind_of_delivery(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "watch", "--headless", "--demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+)/)\s+\(database (\S+),", first)
        assert match, first
        assert match.group(2) != "8787"  # a free port, not the default
        db_path = Path(match.group(3))
        assert db_path.name == "demo.db" and tmp_path not in db_path.parents  # a fresh temporary database
        deadline = time.monotonic() + 60
        wanted = ("payment_gateway.view", "payment_gateway.close", "sig=invalid", " 400  rejected")
        while time.monotonic() < deadline and not all(any(w in line for line in lines) for w in wanted):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert all(any(w in line for line in lines) for w in wanted), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
    with sqlite3.connect(db_path) as conn:
        signatures = {row[0] for row in conn.execute("SELECT DISTINCT signature FROM events")}
        assert {"valid", "invalid"} <= signatures  # signed with the demo secret; one with a wrong key
        assert conn.execute("SELECT count(*) FROM events WHERE duplicate_of IS NOT NULL").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM rejected WHERE status = 400").fetchone()[0] >= 1
        events = {row[0] for row in conn.execute("SELECT DISTINCT event FROM events")}
        assert {"payment_gateway.view", "payment_gateway.close", "paywall.click"} <= events
        sql = "SELECT DISTINCT click_action FROM events WHERE click_action IS NOT NULL"
        actions = {row[0] for row in conn.execute(sql)}
        assert len(actions) >= 2
        assert conn.execute("SELECT ended_at FROM sessions").fetchone()[0] is not None
