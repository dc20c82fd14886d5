"""``conscent-monitor check``: the report, JSON for CI, exit codes, and a database a live monitor writes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from monitor import checks, store
from monitor.service import Service
from tests.helpers import CLOSE, VIEW, event_row, one_error, rejected_row, run_cli, run_command

StartService = Callable[..., Awaitable[Service]]


@pytest.fixture
def two_sessions(tmp_path: Path) -> Path:
    """Session 1: an invalid signature and a late delivery; session 2 (the latest): one clean delivery."""
    path = tmp_path / "two.db"
    db = store.open_store(path)
    for session_id in (1, 2):
        db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (?, 1000.0, 'live')", [session_id])
    body = orjson.dumps({"entity": "event", "event": "paywall.click", "user_id": "u1", "created_at": 1000})
    store.write_batch(
        db.conn,
        [
            event_row(body, session_id=1, received_at=1001.0, signature="invalid"),
            event_row(body + b" ", session_id=1, received_at=1120.0),  # 120 s late
            event_row(body + b"  ", session_id=2, received_at=1002.0),
        ],
        [],
    )
    db.close()
    return path


def findings(output: str) -> dict[str, dict[str, Any]]:
    return {f["key"]: f for f in orjson.loads(output)["findings"]}


def test_the_latest_session_by_default_and_exit_0_when_no_error(two_sessions: Path) -> None:
    result = run_command("check", "--db", str(two_sessions))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Checks of session 2 (the latest) in {two_sessions}\n")
    assert f"{checks.Thresholds().lag_seconds:g}" in result.output.splitlines()[1]
    assert f"✓ {'Invalid signatures'}" in result.output
    assert result.output.rstrip().endswith(f"0 errors, 0 warnings, 0 notes, {len(checks.CHECKS)} passed")


@pytest.mark.parametrize("session", ["1", "all", "ALL"])
def test_an_error_exits_1_and_is_reported_first(two_sessions: Path, session: str) -> None:
    result = run_command("check", "--db", str(two_sessions), "--session", session)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    scope = "session 1" if session == "1" else "every session"
    assert lines[0] == f"Checks of {scope} in {two_sessions}"
    assert lines[3] == "✗ Invalid signatures: 1  [error]"
    assert lines[4].startswith("  X-Conscent-Signature does not match")
    assert lines[5].startswith("  first seen ") and ", last seen " in lines[5]
    assert lines[6] == "  1 delivery accepted"
    assert lines[7] == '  filter: sig:invalid OR reason:"X-Conscent-Signature is invalid"  (mode: all)'
    assert "! Late deliveries: 1  [warning]" in lines
    assert "  filter: lag>60s  (mode: all)" in lines
    assert lines[-1] == f"1 error, 1 warning, 0 notes, {len(checks.CHECKS) - 2} passed"


def test_json_for_ci(two_sessions: Path) -> None:
    result = run_command("check", "--db", str(two_sessions), "--session", "1", "--format", "json")
    assert result.exit_code == 1
    document = orjson.loads(result.output)
    assert set(document) == {"database", "session", "checked_at", "thresholds", "failed", "summary", "findings"}
    assert (document["database"], document["session"], document["failed"]) == (str(two_sessions), 1, True)
    assert document["thresholds"] == {"open_view_minutes": 30.0, "lag_seconds": 60.0, "future_seconds": 300.0}
    assert document["summary"] == {"error": 1, "warning": 1, "info": 0, "passed": len(checks.CHECKS) - 2}
    found = findings(result.output)
    assert list(found) == [f.key for f in checks.run_checks(store.connect(two_sessions), 1, now=0.0)]
    invalid = found["signatures.invalid"]
    assert set(invalid) == {field.name for field in dataclasses.fields(checks.Finding)} | {"failed"}
    assert (invalid["count"], invalid["level"], invalid["failed"], invalid["first_seen"]) == (1, "error", True, 1001.0)
    assert found["delivery.late"]["count"] == 1
    all_sessions = orjson.loads(
        run_command("check", "--db", str(two_sessions), "--session", "all", "--format", "json").output
    )
    assert all_sessions["session"] is None


def test_thresholds_are_options(two_sessions: Path) -> None:
    args = ("check", "--db", str(two_sessions), "--session", "1", "--format", "json")
    assert findings(run_command(*args).output)["delivery.late"]["count"] == 1
    relaxed = run_command(*args, "--lag-seconds", "300")
    assert findings(relaxed.output)["delivery.late"]["count"] == 0
    assert orjson.loads(relaxed.output)["thresholds"]["lag_seconds"] == 300.0
    strict = run_command(*args, "--lag-seconds", "0.5", "--open-view-minutes", "1", "--future-seconds", "0")
    assert findings(strict.output)["delivery.late"]["count"] == 2
    assert one_error(run_command(*args, "--lag-seconds", "-1"), 2).startswith(
        "Error: Invalid value for '--lag-seconds'"
    )


def test_refusals(two_sessions: Path, tmp_path: Path) -> None:
    assert "no session 7 (sessions: 1 to 2)" in one_error(
        run_command("check", "--db", str(two_sessions), "--session", "7")
    )
    assert "is not a session number" in one_error(run_command("check", "--db", str(two_sessions), "--session", "x"), 2)
    assert "no such file" in one_error(run_command("check", "--db", str(tmp_path / "none.db")))
    (tmp_path / "text.db").write_text("not a database")
    assert one_error(run_command("check", "--db", str(tmp_path / "text.db"))).startswith("Error: ")


def test_refused_deliveries_fail_the_check(tmp_path: Path) -> None:
    path = tmp_path / "refused.db"
    db = store.open_store(path)
    session_id = store.start_session(db, listen=None, mode="test")
    store.write_batch(db.conn, [], [rejected_row(session_id=session_id, received_at=1000.0)])
    db.close()
    result = run_command("check", "--db", str(path))
    assert result.exit_code == 1
    assert "✗ Refused deliveries: 1  [error]" in result.output
    assert "  400 body is not JSON ×1" in result.output


async def test_a_database_a_live_monitor_is_writing(services: StartService) -> None:
    service = await services(secret="s3cret")
    db = str(service.options.db_path)
    async with aiohttp.ClientSession() as http:
        for body, signature in ((VIEW, None), (CLOSE, "00" * 32)):
            headers = {"Content-Type": "application/json"} | ({"X-Conscent-Signature": signature} if signature else {})
            async with http.post(service.url, data=body, headers=headers) as response:
                assert response.status == 200
    done = await asyncio.to_thread(run_cli, "check", "--db", db, "--format", "json")
    code, out = done.returncode, done.stdout
    assert code == 1, done.stderr
    found = findings(out)
    assert (found["signatures.invalid"]["count"], found["signatures.missing"]["count"]) == (1, 1)
    assert orjson.loads(out)["session"] == service.session_id
    assert Path(db + "-wal").exists()  # the monitor still has it open: nothing was checkpointed away


def test_webhook_text_in_the_report_is_inert(tmp_path: Path) -> None:
    path = tmp_path / "hostile.db"
    db = store.open_store(path)
    session_id = store.start_session(db, listen=None, mode="test")
    body = orjson.dumps({"entity": "event", "event": "evil\x1b[2J.name", "user_id": "u1", "created_at": 1000})
    store.write_batch(db.conn, [event_row(body, session_id=session_id, received_at=1000.0)], [])
    db.close()
    result = run_command("check", "--db", str(path))
    assert result.exit_code == 0, result.output
    assert "i Unknown event names: 1  [note]" in result.output
    assert "\x1b" not in result.output
