"""Each check of monitor.checks on a database built for it, with the answer worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlite_utils

from monitor import checks
from monitor.checks import Finding, Thresholds, run_check, run_checks
from monitor.filters import compile_filter
from monitor.store import open_store, write_batch
from tests.helpers import event_row, rejected_row

NOW = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    db = open_store(tmp_path / "checks.db")
    for session_id in (1, 2):
        db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (?, ?, 'live')", [session_id, 1000.0])
    return db


def write(
    db: sqlite_utils.Database,
    events: list[dict[str, Any]] = (),  # type: ignore[assignment]
    rejected: list[dict[str, Any]] = (),  # type: ignore[assignment]
    forwards: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    write_batch(db.conn, list(events), list(rejected), list(forwards))


def body(event: str | None = "paywall.click", user: str = "u1", created_at: Any = 1000, **extra: Any) -> bytes:
    """A wrapped delivery; a distinct ``n`` keeps bodies distinct (no accidental duplicates)."""
    obj: dict[str, Any] = {"entity": "event", "user_id": user, "created_at": created_at, **extra}
    if event is not None:
        obj["event"] = event
    return orjson.dumps(obj)


def check(db: sqlite_utils.Database, key: str, session_id: int | None = 1, **limits: float) -> Finding:
    return run_check(db, key, session_id, Thresholds(**limits), now=NOW)


def matching_ids(db: sqlite_utils.Database, finding: Finding) -> tuple[set[int], set[int]]:
    """The events and rejected rows the finding's filter selects (its session only)."""
    assert finding.filter is not None
    found = []
    for table in ("events", "rejected"):
        compiled = compile_filter(finding.filter, table=table, now=NOW)
        sql = f"SELECT id FROM {table} WHERE session_id = 1 AND ({compiled.where})"
        found.append({row[0] for row in db.execute(sql, compiled.params)})
    return found[0], found[1]


# -- signatures -------------------------------------------------------------------------


def test_invalid_signatures_count_accepted_and_refused(db: sqlite_utils.Database) -> None:
    write(
        db,
        [
            event_row(body(n=1), received_at=100.0, signature="valid"),  # id 1
            event_row(body(n=2), received_at=110.0, signature="invalid"),  # id 2
            event_row(body(n=3), received_at=120.0, signature="missing"),  # id 3
            event_row(body(n=4), received_at=130.0, signature="invalid"),  # id 4
            event_row(body(n=5), received_at=90.0, signature="invalid", session_id=2),  # id 5: other session
        ],
        [
            rejected_row(received_at=140.0, status=401, reason="X-Conscent-Signature is invalid"),  # id 1
            rejected_row(received_at=95.0, status=401, reason="X-Conscent-Signature is missing"),  # id 2
            rejected_row(received_at=96.0, status=400, reason="body is not JSON"),  # id 3
        ],
    )
    invalid = check(db, "signatures.invalid")
    assert (invalid.count, invalid.first_seen, invalid.last_seen) == (3, 110.0, 140.0)
    assert invalid.level == "error" and invalid.failed
    assert invalid.detail == "2 deliveries accepted, 1 refused (401)"
    assert matching_ids(db, invalid) == ({2, 4}, {1})
    assert check(db, "signatures.invalid", None).count == 4

    missing = check(db, "signatures.missing")
    assert (missing.count, missing.first_seen, missing.last_seen) == (2, 95.0, 120.0)
    assert missing.level == "warning"
    assert matching_ids(db, missing) == ({3}, {2})


def test_basic_auth_failing(db: sqlite_utils.Database) -> None:
    write(
        db,
        [
            event_row(body(n=1), received_at=100.0, basic_auth="valid"),
            event_row(body(n=2), received_at=110.0, basic_auth="invalid"),  # id 2
            event_row(body(n=3), received_at=120.0, basic_auth="missing"),  # id 3
            event_row(body(n=4), received_at=130.0),  # unchecked
        ],
        [
            rejected_row(received_at=90.0, status=401, reason="basic auth is missing"),  # id 1
            rejected_row(received_at=95.0, status=401, reason="X-Conscent-Signature is invalid"),  # id 2
        ],
    )
    found = check(db, "signatures.basic_auth")
    assert (found.count, found.first_seen, found.last_seen) == (3, 90.0, 120.0)
    assert found.level == "error"
    assert matching_ids(db, found) == ({2, 3}, {1})


def test_every_check_passes_on_an_empty_database(db: sqlite_utils.Database) -> None:
    found = run_checks(db, 1, now=NOW)
    assert [f.key for f in found] == sorted(
        checks.CHECKS,
        key=lambda k: (
            checks.LEVELS.index(next(f.level for f in found if f.key == k)),
            checks.AREAS.index(next(f.area for f in found if f.key == k)),
            list(checks.CHECKS).index(k),
        ),
    )
    assert all(f.count == 0 and not f.failed and f.first_seen is None and f.detail == "" for f in found)
    assert run_checks(db, None, now=NOW) == found


def test_run_checks_orders_errors_first_then_by_area(db: sqlite_utils.Database) -> None:
    found = run_checks(db, None, now=NOW)
    levels = [checks.LEVELS.index(f.level) for f in found]
    assert levels == sorted(levels)
    for level in checks.LEVELS:
        areas = [checks.AREAS.index(f.area) for f in found if f.level == level]
        assert areas == sorted(areas)
    assert len({f.key for f in found}) == len(found) == len(checks.CHECKS)


def test_every_filter_compiles(db: sqlite_utils.Database) -> None:
    for finding in run_checks(db, None, now=NOW):
        if finding.filter is not None:
            compile_filter(finding.filter, now=NOW)
            compile_filter(finding.filter, table="rejected", now=NOW)
