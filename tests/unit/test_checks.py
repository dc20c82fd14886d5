"""Each check of monitor.checks on a database built for it, with the answer worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlite_utils

from monitor import checks, store
from monitor.checks import Finding, Thresholds, run_check, run_checks
from monitor.filters import compile_filter
from monitor.store import open_store, write_batch
from tests.helpers import event_row, rejected_row

NOW = 1_800_000_000.0


@pytest.fixture(params=["schema", "without the check indexes"])
def db(tmp_path: Path, request: pytest.FixtureRequest) -> sqlite_utils.Database:
    """Every test runs twice: on the store's schema, and without the indexes the checks walk (a database of an
    older version opened read-only: other query plans, the same answers)."""
    db = open_store(tmp_path / "checks.db")
    if request.param == "without the check indexes":
        for name in store.SPECIAL_INDEXES:
            db.execute(f"DROP INDEX {name}")
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


# -- pairing ----------------------------------------------------------------------------

VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"


def gateway(
    event: str,
    user: str,
    t: float,
    *,
    session: str | None = None,
    paywall: str | None = None,
    content: str | None = "story-1",
    received_at: float | None = None,
    session_id: int = 1,
) -> dict[str, Any]:
    """A gateway view or close created (and received) at ``t``, keyed by sessionId / paywallId as given."""
    query = "&".join(f"{k}={v}" for k, v in (("sessionId", session), ("paywallId", paywall)) if v)
    action: dict[str, Any] = {"pageUrl": f"https://pay.conscent.in/?{query}", "clickAction": "CROSS"}
    if content is not None:
        action["contentId"] = content
    raw = body(event, user, t, payload={"action": action, "user": {"userId": user}})
    return event_row(raw, received_at=t if received_at is None else received_at, session_id=session_id)


PASS = {"purchase": {"type": "PASS"}}


def test_pairing_open_views_orphan_and_foreign_closes(db: sqlite_utils.Database) -> None:
    t0 = 1_700_000_000.0
    rows = [
        gateway(VIEW, "u1", t0, session="A"),  # 1: paired with 2
        gateway(CLOSE, "u1", t0 + 150, session="A"),  # 2
        gateway(VIEW, "u1", t0 + 320, session="B"),  # 3: open (after the purchase: not converted)
        gateway(VIEW, "u1", t0 + 300, session="C", content="story-9"),  # 4: converted by 5
        event_row(body("purchase.pass", "u1", t0 + 310, payload=PASS), received_at=t0 + 310),  # 5
        gateway(CLOSE, "u1", t0 + 400, session="D"),  # 6: the view of D is u2's
        gateway(VIEW, "u2", t0 + 390, session="D"),  # 7: open (u2 never closed it)
        gateway(CLOSE, "u1", t0 + 500, session="E"),  # 8: no view anywhere
        gateway(VIEW, "u1", NOW - 60, session="F"),  # 9: a minute old: not open yet
        gateway(VIEW, "u1", t0 + 320, session="B"),  # 10: the bytes of 3 again: never paired
        gateway(VIEW, "u3", t0 + 600, paywall="P", content="X"),  # 11: paired with 12 by paywall + content
        gateway(CLOSE, "u3", t0 + 610, paywall="P", content="X"),  # 12
        gateway(CLOSE, "u3", t0 + 650, content="Y"),  # 13: before any view of Y: no view
        gateway(VIEW, "u3", t0 + 660, content="Y"),  # 14: open
        gateway(VIEW, "u4", t0 + 700, session="G", session_id=2),  # 15: another session
    ]
    write(db, rows)
    opened = check(db, "pairing.open_views")
    assert (opened.count, opened.first_seen, opened.last_seen) == (3, t0 + 320, t0 + 660)
    assert opened.filter == "id:3 OR id:7 OR id:14" and opened.mode == "gateway"
    assert opened.detail == "open over 30 min"
    orphans = check(db, "pairing.orphan_closes")
    assert (orphans.count, orphans.filter) == (2, "id:8 OR id:13")
    foreign = check(db, "pairing.foreign_closes")
    assert (foreign.count, foreign.filter, foreign.first_seen) == (1, "id:6", t0 + 400)
    assert check(db, "pairing.open_views", None).count == 4  # 15 too
    # A minute's threshold: view 9 is still inside it (60 s is not over 60 s); two minutes ago's would not be.
    assert check(db, "pairing.open_views", open_view_minutes=1).count == 4


def pairing(db: sqlite_utils.Database, session_id: int | None = 1) -> tuple[str | None, ...]:
    return tuple(check(db, key, session_id).filter for key in ("pairing.open_views", "pairing.orphan_closes"))


def test_a_rerun_reads_only_the_new_rows_and_agrees_with_a_fresh_pass(db: sqlite_utils.Database) -> None:
    """The pairing kept between runs: new rows join old groups, convert old views, pair sessionless rows."""
    t0 = 1_700_000_000.0
    write(
        db,
        [
            gateway(VIEW, "u1", t0, session="A"),  # 1: open, until 7 closes it
            gateway(VIEW, "u2", t0 + 10, session="B"),  # 2: open, until u2's purchase 8
            gateway(VIEW, "u3", t0 + 20, session="C"),  # 3: paired with 4 ...
            gateway(CLOSE, "u3", t0 + 30, session="C"),  # 4: ... until 9 reopens C: "vcv", 9 open
            gateway(VIEW, "u4", t0 + 40, content="X"),  # 5: no sessionId: open, until 10
            gateway(CLOSE, "u5", t0 + 50, session="D"),  # 6: no view, until 11 (an earlier view)
        ],
    )
    before = pairing(db)
    assert before == ("id:1 OR id:2 OR id:5", "id:6")
    write(
        db,
        [
            gateway(CLOSE, "u1", t0 + 60, session="A"),  # 7
            event_row(body("purchase.pass", "u2", t0 + 70, payload=PASS, n=1), received_at=t0 + 70),  # 8
            gateway(VIEW, "u3", t0 + 80, session="C"),  # 9
            gateway(CLOSE, "u4", t0 + 90, content="X"),  # 10
            gateway(VIEW, "u5", t0 + 45, session="D", received_at=t0 + 95),  # 11: created before 6
            gateway(VIEW, "u6", t0 + 99, session="E", session_id=2),  # 12: another session
        ],
    )
    after = pairing(db)
    assert after == ("id:9", None)
    assert pairing(db, None) == ("id:9 OR id:12", None)
    checks._PAIRING_STATES.clear()
    assert pairing(db) == after and pairing(db, None) == ("id:9 OR id:12", None)


def test_pairing_takes_the_earliest_open_view(db: sqlite_utils.Database) -> None:
    """V V C V C C C: the closes take views 1, 2 and 4; the sixth and seventh rows find none."""
    t0 = 1_700_000_000.0
    kinds = [VIEW, VIEW, CLOSE, VIEW, CLOSE, CLOSE, CLOSE, VIEW]
    write(db, [gateway(kind, "u1", t0 + 10 * i, paywall="P", content="X") for i, kind in enumerate(kinds)])
    assert check(db, "pairing.orphan_closes").filter == "id:7"
    assert check(db, "pairing.open_views").filter == "id:8"


def test_pairing_within_one_gateway_session(db: sqlite_utils.Database) -> None:
    """Reopened gateways share a sessionId; a close created before its view pairs with nothing."""
    t0 = 1_700_000_000.0
    write(
        db,
        [
            gateway(VIEW, "u1", t0, session="A"),  # 1: paired with 3
            gateway(VIEW, "u1", t0 + 10, session="A"),  # 2: paired with 4
            gateway(CLOSE, "u1", t0 + 20, session="A"),  # 3
            gateway(CLOSE, "u1", t0 + 30, session="A"),  # 4
            gateway(VIEW, "u1", t0 + 40, session="A"),  # 5: open
            gateway(CLOSE, "u2", t0 + 100, session="B", received_at=t0 + 200),  # 6: created before its view
            gateway(VIEW, "u2", t0 + 110, session="B", received_at=t0 + 190),  # 7: open
            gateway(VIEW, "u2", t0 + 300, session="C"),  # 8: paired with 9 (the most usual: not read back)
            gateway(CLOSE, "u2", t0 + 310, session="C"),  # 9
        ],
    )
    assert check(db, "pairing.open_views").filter == "id:5 OR id:7"
    assert check(db, "pairing.orphan_closes").filter == "id:6"
    assert check(db, "pairing.foreign_closes").count == 0


def test_pairing_lists_no_ids_past_the_filter_limit(db: sqlite_utils.Database) -> None:
    write(db, [gateway(VIEW, f"u{i}", 1_700_000_000.0 + i, session=f"s{i}") for i in range(40)])
    found = check(db, "pairing.open_views")
    assert (found.count, found.filter) == (40, None)


# -- fields -----------------------------------------------------------------------------


def test_wrong_types_grouped_by_field_and_event(db: sqlite_utils.Database) -> None:
    write(
        db,
        [
            event_row(body(CLOSE, payload={"action": {"clickAction": {"x": 1}}}), received_at=100.0),  # 1
            event_row(body(CLOSE, payload={"action": {"clickAction": [1]}}), received_at=110.0),  # 2
            event_row(body("paywall.click", created_at="abc"), received_at=90.0),  # 3
            event_row(body("paywall.click", n=4), received_at=120.0),  # 4: fine
        ],
    )
    found = check(db, "fields.wrong_type")
    assert (found.count, found.first_seen, found.last_seen) == (3, 90.0, 110.0)
    assert found.detail == "payload.action.clickAction (payment_gateway.close) ×2, created_at (paywall.click) ×1"
    assert matching_ids(db, found) == ({1, 2, 3}, set())


def test_missing_documented_fields(db: sqlite_utils.Database) -> None:
    full = {"pageUrl": "https://pay.conscent.in/?sessionId=S", "contentId": "c1", "clickAction": "CROSS"}
    no_click = {k: v for k, v in full.items() if k != "clickAction"}
    write(
        db,
        [
            event_row(body(CLOSE, payload={"action": full}), received_at=100.0),  # 1: complete
            event_row(body(CLOSE, payload={"action": no_click}), received_at=110.0),  # 2: clickAction
            event_row(body(VIEW, payload={"action": no_click}), received_at=120.0),  # 3: complete for a view
            event_row(body(VIEW, payload={"action": {"pageUrl": "u"}}), received_at=130.0),  # 4: contentId, sessionId
            event_row(orjson.dumps({"entity": "event", "event": "paywall.click"}), received_at=140.0),  # 5: both
            event_row(orjson.dumps({"userId": "legacy", "amount": 5}), received_at=150.0),  # 6: legacy: not checked
            event_row(body("paywall.click", user=""), received_at=160.0),  # 7: empty user_id
        ],
    )
    found = check(db, "fields.missing")
    assert (found.count, found.first_seen, found.last_seen) == (4, 110.0, 160.0)
    assert found.filter is None
    assert found.detail == (
        "user_id (paywall.click) ×2, created_at (paywall.click) ×1, "
        "payload.action.clickAction (payment_gateway.close) ×1, payload.action.contentId (payment_gateway.view) ×1, …"
    )  # the fifth: payload.action.pageUrl sessionId (payment_gateway.view), once


def test_unknown_event_names(db: sqlite_utils.Database) -> None:
    write(
        db,
        [
            event_row(body("foo.bar", n=1), received_at=100.0),  # 1
            event_row(body("foo.bar", n=2), received_at=130.0),  # 2
            event_row(body("paywall.click"), received_at=90.0),  # 3: documented
            event_row(orjson.dumps({"userId": "legacy"}), received_at=80.0),  # 4: legacy, no name expected
            event_row(body("Paywall.Click"), received_at=120.0),  # 5: case matters
        ],
    )
    found = check(db, "fields.unknown_events")
    assert (found.count, found.first_seen, found.last_seen, found.level) == (3, 100.0, 130.0, "info")
    assert found.filter == 'event:"Paywall.Click" OR event:"foo.bar"'
    assert found.detail == "foo.bar ×2, Paywall.Click ×1"
    assert matching_ids(db, found) == ({1, 2, 5}, set())
    write(db, [event_row(orjson.dumps({"entity": "event", "payload": {}}), received_at=140.0)])  # 6: no name
    found = check(db, "fields.unknown_events")
    assert (found.count, found.filter) == (4, None)
    assert found.detail == "foo.bar ×2, (no event) ×1, Paywall.Click ×1"


def test_created_at_in_milliseconds(db: sqlite_utils.Database) -> None:
    write(
        db,
        [
            event_row(body(created_at=1_709_186_668_123), received_at=1_709_186_669.0),  # 1: ms
            event_row(body(created_at=1_709_186_668), received_at=1_709_186_670.0),  # 2: seconds
            event_row(body(created_at=1_709_186_668.5), received_at=1_709_186_671.0),  # 3: seconds with a fraction
            event_row(orjson.dumps({"userId": "x", "createdAt": 1_709_186_668_456}), received_at=1_709_186_672.0),
            event_row(body(created_at=1_709_186_668_000, n=5), received_at=1_709_186_673.0),  # 5: whole seconds
        ],
    )
    found = check(db, "fields.created_at_millis")
    # Row 5 is a whole number of seconds once divided: the check cannot tell it from seconds.
    assert (found.count, found.first_seen, found.last_seen) == (2, 1_709_186_669.0, 1_709_186_672.0)


def test_created_at_in_the_future(db: sqlite_utils.Database) -> None:
    write(
        db,
        [
            event_row(body(created_at=1400, n=1), received_at=1000.0),  # 1: 400 s ahead
            event_row(body(created_at=1200, n=2), received_at=1000.0),  # 2: 200 s ahead
            event_row(body(created_at=2000, n=3), received_at=1100.0),  # 3: 900 s ahead
        ],
    )
    found = check(db, "fields.created_at_future")
    assert (found.count, found.first_seen, found.last_seen, found.filter) == (2, 1000.0, 1100.0, "lag<-300s")
    assert matching_ids(db, found) == ({1, 3}, set())
    assert check(db, "fields.created_at_future", future_seconds=100).count == 3


# -- delivery ---------------------------------------------------------------------------


def test_late_deliveries_with_percentiles(db: sqlite_utils.Database) -> None:
    lags = [0, 10, 30, 70, 200]
    write(
        db,
        [event_row(body(created_at=1000, n=i), received_at=1000.0 + lag) for i, lag in enumerate(lags)]
        + [event_row(body(created_at=None, n=9), received_at=5000.0)],
    )
    found = check(db, "delivery.late")
    assert (found.count, found.first_seen, found.last_seen, found.filter) == (2, 1070.0, 1200.0, "lag>60s")
    # Nearest rank over the five lags: p50 is the 3rd (30 s), p95 the 5th (200 s).
    assert found.detail == "p50 30 s · p95 3.3 min · max 3.3 min"
    assert matching_ids(db, found) == ({4, 5}, set())
    assert check(db, "delivery.late", lag_seconds=5).count == 4


def test_late_percentiles_of_one_session_among_several(db: sqlite_utils.Database) -> None:
    """One session of the file (each index entry's session tested), and every session (counted from the table)."""
    write(
        db,
        [event_row(body(created_at=1000, n=i), received_at=1000.0 + lag) for i, lag in enumerate([0, 10, 30, 70])]
        + [event_row(body(created_at=1000, n=10 + i), received_at=1000.0 + lag, session_id=2) for i, lag in
           enumerate([400, 500, 600, 700])]
        + [event_row(body(created_at=None, n=9), received_at=5000.0, session_id=2)],
    )  # fmt: skip
    one = check(db, "delivery.late")
    # Session 1, nearest rank over four lags: p50 the 2nd (10 s), p95 the 4th (70 s).
    assert (one.count, one.first_seen, one.last_seen) == (1, 1070.0, 1070.0)
    assert one.detail == "p50 10 s · p95 70 s · max 70 s"
    every = check(db, "delivery.late", session_id=None)
    # Every session, eight lags (the row without created_at has none): p50 the 4th (70 s), p95 the 8th (700 s).
    assert (every.count, every.first_seen, every.last_seen) == (5, 1070.0, 1700.0)
    assert every.detail == "p50 70 s · p95 11.7 min · max 11.7 min"
    other = check(db, "delivery.late", session_id=2)
    assert (other.count, other.detail) == (4, "p50 8.3 min · p95 11.7 min · max 11.7 min")


def test_retried_deliveries(db: sqlite_utils.Database) -> None:
    a, b, c = body(n=1), body(n=2), body(n=3)
    write(db, [event_row(raw, received_at=100.0 + i) for i, raw in enumerate([a, a, b, a, b, c])])
    found = check(db, "delivery.retried")
    assert (found.count, found.first_seen, found.last_seen) == (3, 101.0, 104.0)
    assert (found.filter, found.detail) == ("dup:yes", "repeats of 2 bodies")
    assert matching_ids(db, found) == ({2, 4, 5}, set())


def test_refused_deliveries_by_status_and_reason(db: sqlite_utils.Database) -> None:
    write(
        db,
        rejected=[
            rejected_row(received_at=100.0),
            rejected_row(received_at=110.0),
            rejected_row(received_at=90.0, status=401, reason="X-Conscent-Signature is invalid"),
            rejected_row(received_at=120.0, status=503, reason="database is locked"),
            rejected_row(received_at=80.0, session_id=2),
        ],
    )
    found = check(db, "delivery.refused")
    assert (found.count, found.first_seen, found.last_seen, found.level) == (4, 90.0, 120.0, "error")
    assert found.detail == "400 body is not JSON ×2, 401 X-Conscent-Signature is invalid ×1, 503 database is locked ×1"
    assert found.filter == "status:4xx OR status:5xx"
    assert matching_ids(db, found) == (set(), {1, 2, 3, 4})


# -- forwarding -------------------------------------------------------------------------


def forward(event_id: int, requested_at: float, status: int | None, error: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "session_id": 1,
        "kind": "forward",
        "attempt": 1,
        "target": "http://127.0.0.1:9/hook",
        "requested_at": requested_at,
        "status": status,
        "latency_ms": 5.0,
        "error": error,
    }


def test_failed_forwards_by_status(db: sqlite_utils.Database) -> None:
    write(db, [event_row(body(n=i), received_at=100.0 + i) for i in range(1, 6)])
    write(
        db,
        forwards=[
            forward(1, 201.0, 200),
            forward(2, 202.0, 500),
            forward(2, 203.0, 500),
            forward(3, 204.0, None, "timed out after 5 s"),
            forward(4, 205.0, None, "cannot connect: Connection refused"),
            forward(1, 206.0, 404) | {"kind": "replay"},
            forward(5, 207.0, 204),
        ],
    )
    found = check(db, "forwarding.failed")
    assert (found.count, found.first_seen, found.last_seen, found.level) == (5, 202.0, 206.0, "error")
    assert found.detail == "500 ×2, 404 ×1, no answer ×1, timeout ×1"
    assert matching_ids(db, found) == ({1, 2, 3, 4}, set())


def test_a_failing_database_fails_the_right_checks(db: sqlite_utils.Database) -> None:
    write(db, [event_row(body(n=1), received_at=1000.0, signature="invalid")])
    failed = {f.key for f in run_checks(db, 1, now=NOW) if f.failed}
    assert failed == {"signatures.invalid"}


def test_the_benchmark_times_every_check(db: sqlite_utils.Database, tmp_path: Path) -> None:
    from bench.checks import measure

    write(db, [event_row(body(n=1), received_at=1000.0, signature="invalid")])
    rows = measure(tmp_path / "checks.db", 1)
    assert [name for name, *_ in rows] == [*checks.CHECKS, "all (run_checks)"]
    assert all(cold[0] >= 0 and warm[1] >= 0 and rerun[1] >= 0 for _, cold, warm, rerun in rows)


def test_a_file_replaced_at_the_same_path_is_paired_afresh(tmp_path: Path) -> None:
    """The kept pairing belongs to one file: another database at the same path (same last row) starts over."""
    path = tmp_path / "replaced.db"
    t0 = 1_700_000_000.0
    for views in ([gateway(VIEW, "u1", t0, session="A")], [gateway(CLOSE, "u1", t0, session="A")]):
        path.unlink(missing_ok=True)
        db = open_store(path)
        db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, 1000.0, 'live')")
        write(db, views)
        found = pairing(db)
        db.close()
        assert found == (("id:1", None) if views[0]["event"] == VIEW else (None, "id:1"))
