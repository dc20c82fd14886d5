"""The Insights screen's figures (issue 15, part 3), each on a database built for it with hand-computed answers.

The database (session 1; session 2 holds one more view, for the session
filter). Times are seconds after ``T``; each delivery is received a second
after its ``created_at`` unless said otherwise.

=== ====================== ===== ==== === === ==== ===================================
id  event                  user  t    ct  pw  sid  note
=== ====================== ===== ==== === === ==== ===================================
1   paywall.click          u1    0    c1  p1  A
2   payment_gateway.view   u1    10   c1  p1  A
3   payment_gateway.close  u1    70   c1  p1  A    CROSS: pairs 2, 60 s
4   payment_gateway.view   u1    100  c1  p1  A    open
5   transaction.complete   u1    110               counts for view 4: c1, p1
6   purchase.pass          u1    111               counts for view 4: c1, p1
7   paywall.click          u2    5    c2  p2  B
8   paywall.exit           u2    6                 not a paywall view
9   payment_gateway.view   u2    20   c2  p2  B
10  payment_gateway.close  u2    50   c2  p2  B    POPUP_CLOSE: pairs 9, 30 s
11  payment_gateway.view   u2    200  c1  p1  C
12  payment_gateway.close  u2    320  c1  p1  C    CROSS: pairs 11, 120 s
13  payment_gateway.close  u2    330  c1  p1  C    CROSS: its view is taken: unpaired
14  payment_gateway.close  u3    40   c2  p2  D    no clickAction, no view: unpaired
15  transaction.complete   u3    50               no view before it: (none)
16  payment_gateway.view   u3    60   c2  p2  E    received 5 s late
17  (16 again, same bytes) u3    60                received at 90: a repeat
18  meter_banner.click     u1    1    -   p1       not in the funnel
=== ====================== ===== ==== === === ==== ===================================

Plus one rejected delivery in session 1, received at 15.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlite_utils

from monitor import queries as q
from monitor import store, synth
from monitor.filters import compile_filter
from monitor.journey import build_journey
from tests.helpers import event_row, gateway_body, rejected_row

T = 1_000_000.0
VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"
CROSS = "PAYMENT_GATEWAY_CROSS_BTN"
FAR = T + 10**6  # "now", long after the deliveries: the axis ends at the last one


def delivery(
    event: str,
    user: str,
    t: float,
    *,
    content: str | None = None,
    paywall: str | None = None,
    sid: str | None = None,
    action: str | None = None,
    late: float = 1.0,
    session: int = 1,
    on: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A delivery ``t`` seconds after ``T``; ``on``: its (content id, paywall id)."""
    if on is not None:
        content, paywall = on
    body = orjson.dumps({"entity": "event", "event": event, "user_id": user, "created_at": T + t, "t": t})
    return event_row(
        body,
        session_id=session,
        received_at=T + t + late,
        content_id=content,
        paywall_id=paywall,
        gateway_session_id=sid,
        click_action=action,
    )


def rows() -> list[dict[str, Any]]:
    c1, c2 = ("c1", "p1"), ("c2", "p2")
    made = [
        delivery("paywall.click", "u1", 0, sid="A", on=c1),
        delivery(VIEW, "u1", 10, sid="A", on=c1),
        delivery(CLOSE, "u1", 70, sid="A", action=CROSS, on=c1),
        delivery(VIEW, "u1", 100, sid="A", on=c1),
        delivery("transaction.complete", "u1", 110),
        delivery("purchase.pass", "u1", 111),
        delivery("paywall.click", "u2", 5, sid="B", on=c2),
        delivery("paywall.exit", "u2", 6),
        delivery(VIEW, "u2", 20, sid="B", on=c2),
        delivery(CLOSE, "u2", 50, sid="B", action="POPUP_CLOSE", on=c2),
        delivery(VIEW, "u2", 200, sid="C", on=c1),
        delivery(CLOSE, "u2", 320, sid="C", action=CROSS, on=c1),
        delivery(CLOSE, "u2", 330, sid="C", action=CROSS, on=c1),
        delivery(CLOSE, "u3", 40, sid="D", on=c2),
        delivery("transaction.complete", "u3", 50),
        delivery(VIEW, "u3", 60, sid="E", late=5, on=c2),
    ]
    made.append({**made[-1], "received_at": T + 90})  # the same bytes again: write_batch marks it a duplicate
    made.append(delivery("meter_banner.click", "u1", 1, paywall="p1"))
    return made


@pytest.fixture
def db(store_db: sqlite_utils.Database) -> sqlite_utils.Database:
    for number in (1, 2):
        store_db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (?, ?, 'test')", [number, T])
    store.write_batch(store_db.conn, rows(), [rejected_row(b"{", received_at=T + 15)])
    other = delivery(VIEW, "u9", 5, content="c9", paywall="p9", sid="Z", session=2)
    store.write_batch(store_db.conn, [other], [])
    return store_db


SESSION = q.View("all", 1)


def test_the_fixture_is_what_the_table_says(db: sqlite_utils.Database) -> None:
    duplicates = db.execute("SELECT id, duplicate_of FROM events WHERE duplicate_of IS NOT NULL").fetchall()
    assert duplicates == [(17, 16)]
    assert db.execute("SELECT count(*) FROM events WHERE session_id = 1").fetchone()[0] == 18


def test_funnel_totals_per_content_and_per_paywall(db: sqlite_utils.Database) -> None:
    funnel = q.insights_funnel(db, SESSION)
    assert funnel.total == q.FunnelRow(None, paywall=2, views=5, closes=5, transactions=2, purchases=1)
    assert funnel.by_content == [
        q.FunnelRow("c1", paywall=1, views=3, closes=3, transactions=1, purchases=1),
        q.FunnelRow("c2", paywall=1, views=2, closes=2),
        q.FunnelRow(None, transactions=1),  # u3's payment came before any view
    ]
    assert funnel.by_paywall == [
        q.FunnelRow("p1", paywall=1, views=3, closes=3, transactions=1, purchases=1),
        q.FunnelRow("p2", paywall=1, views=2, closes=2),
        q.FunnelRow(None, transactions=1),
    ]
    assert (funnel.contents, funnel.paywalls) == (3, 3)
    c1 = funnel.by_content[0]
    assert (c1.view_rate, c1.close_rate) == (3.0, 1.0)
    assert c1.purchase_rate == pytest.approx(1 / 3)
    assert q.FunnelRow(None).close_rate is None


def test_funnel_follows_the_view(db: sqlite_utils.Database) -> None:
    u2 = q.insights_funnel(db, q.View("all", 1, where="user_id = ?", params=("u2",)))
    assert u2.total == q.FunnelRow(None, paywall=1, views=2, closes=3)
    gateway = q.insights_funnel(db, q.View("gateway", 1))
    assert gateway.total == q.FunnelRow(None, views=5, closes=5)  # the table shows no paywall or payment events
    everything = q.insights_funnel(db, q.View("all", None))
    assert everything.total.views == 6
    assert everything.by_content[2] == q.FunnelRow("c9", views=1)  # session 2's view, before (none)
    assert [row.key for row in q.insights_funnel(db, SESSION, limit=1).by_content] == ["c1"]


def test_close_actions_count_and_share(db: sqlite_utils.Database) -> None:
    assert q.insights_close_actions(db, SESSION) == [
        q.CloseAction(CROSS, 3, 0.6),
        q.CloseAction("POPUP_CLOSE", 1, 0.2),
        q.CloseAction(None, 1, 0.2),
    ]
    u1 = q.insights_close_actions(db, q.View("gateway", 1, where="user_id = ?", params=("u1",)))
    assert u1 == [q.CloseAction(CROSS, 1, 1.0)]
    assert q.insights_close_actions(db, q.View("all", 2)) == []


def test_time_to_close_pairs_as_the_journey_does(db: sqlite_utils.Database) -> None:
    ttc = q.insights_time_to_close(db, SESSION)
    assert (ttc.pairs, ttc.unpaired) == (3, 2)
    assert ttc.median == 60.0
    assert ttc.p90 == pytest.approx(108.0)  # 60 + 0.8 * (120 - 60)
    # The 95th percentile is 114 s: bars of 15 s (11 of them reach 165 s), the twelfth open-ended.
    assert ttc.edges == [15.0 * i for i in range(12)] + [float("inf")]
    assert ttc.counts == [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    empty = q.insights_time_to_close(db, q.View("all", 2))
    assert (empty.pairs, empty.unpaired, empty.median, empty.counts) == (0, 0, None, [])


def test_time_to_close_agrees_with_the_journey_on_generated_traffic(generated: sqlite_utils.Database) -> None:
    """Synthetic journeys (sessionIds, reopened gateways, late deliveries): the SQL pairs as build_journey does."""
    expected: list[float] = []
    for (user,) in generated.execute("SELECT DISTINCT user_id FROM events WHERE user_id IS NOT NULL").fetchall():
        steps = build_journey(q.reader_events(generated, user))
        expected += [s.time_to_close for s in steps if s.is_close and s.time_to_close is not None]
    ttc = q.insights_time_to_close(generated, q.View("all", None))
    assert ttc.pairs == len(expected) > 100
    assert ttc.median == q._quantile(sorted(expected), 0.5)


def test_time_to_close_pairs_the_earliest_open_view_first(store_db: sqlite_utils.Database) -> None:
    """Two views then two closes, one sessionId: close 1 takes view 1 (40 s), close 2 view 2 (60 s)."""
    store_db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, ?, 'test')", [T])
    made = [
        delivery(VIEW, "u1", 10, sid="S", on=("c1", "p1")),
        delivery(VIEW, "u1", 20, sid="S", on=("c1", "p1")),
        delivery(CLOSE, "u1", 50, sid="S", action=CROSS, on=("c1", "p1")),
        delivery(CLOSE, "u1", 80, sid="S", action=CROSS, on=("c1", "p1")),
    ]
    store.write_batch(store_db.conn, made, [])
    steps = build_journey(q.reader_events(store_db, "u1"))
    assert sorted(s.time_to_close for s in steps if s.is_close and s.time_to_close is not None) == [40.0, 60.0]
    ttc = q.insights_time_to_close(store_db, q.View("gateway", 1))
    assert (ttc.pairs, ttc.unpaired) == (2, 0)
    assert (ttc.median, ttc.p90) == (50.0, pytest.approx(58.0))  # 40 + 0.9 * (60 - 40)


def test_time_to_close_falls_back_to_paywall_and_content(store_db: sqlite_utils.Database) -> None:
    """A view with a sessionId, its close without one (and its content only as client_content_id): 30 s."""
    store_db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, ?, 'test')", [T])
    made = [
        delivery(VIEW, "u1", 100, sid="S", on=("c1", "p1")),
        delivery(CLOSE, "u1", 130, paywall="p1", action=CROSS) | {"client_content_id": "c1"},
    ]
    store.write_batch(store_db.conn, made, [])
    steps = build_journey(q.reader_events(store_db, "u1"))
    assert [(s.time_to_close, s.paired_by) for s in steps if s.is_close] == [(30.0, "paywallId+content")]
    ttc = q.insights_time_to_close(store_db, q.View("gateway", 1))
    assert (ttc.pairs, ttc.unpaired, ttc.median) == (1, 0, 30.0)


def test_axis_fits_the_span(db: sqlite_utils.Database) -> None:
    axis = q.insights_axis(db, SESSION, now=FAR)
    # Received from T+1 (the first paywall click) to T+331: 330 s in 10 s columns.
    assert axis == q.TimeAxis(T, 10.0, 34)
    assert axis.index(T + 331) == 33
    live = q.insights_axis(db, SESSION, now=T + 400, live=True)  # the session being recorded: up to now
    assert live == q.TimeAxis(T, 10.0, 41)
    days = q.TimeAxis(0.0, 86400.0, 7)
    assert days.end == 7 * 86400.0
    assert q.insights_axis(db, q.View("all", 3), now=FAR) is None


def test_axis_widths_from_seconds_to_days(store_db: sqlite_utils.Database) -> None:
    store_db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, ?, 'test')", [T])
    store.write_batch(store_db.conn, [delivery(VIEW, "u", 0, late=0), delivery(VIEW, "u", 30, late=0)], [])
    assert q.insights_axis(store_db, SESSION, now=FAR) == q.TimeAxis(T, 1.0, 31)
    store.write_batch(store_db.conn, [delivery(VIEW, "u", 7 * 86400, late=0)], [])
    axis = q.insights_axis(store_db, SESSION, now=FAR)
    assert axis is not None and (axis.width, axis.buckets) == (10800.0, 57)  # a week: three-hour columns


def test_timeline_by_event_type(db: sqlite_utils.Database) -> None:
    timeline = q.insights_timeline(db, SESSION, now=FAR)
    assert timeline is not None
    series = dict(timeline.series)
    assert list(series) == [VIEW, CLOSE, "paywall.click", "transaction.complete", "meter_banner.click",
                            "paywall.exit", "other", "rejected"]  # fmt: skip
    views = [0] * 34
    for received in (11, 101, 21, 201, 65, 90):  # the repeat counts: it is a delivery
        views[int(received // 10)] += 1
    assert series[VIEW] == views
    assert series["other"] == [0] * 11 + [1] + [0] * 22  # purchase.pass, received at 112
    assert series["rejected"] == [0, 1] + [0] * 32
    assert sum(timeline.totals) == 19
    gateway = q.insights_timeline(db, q.View("gateway", 1), now=FAR)
    assert gateway is not None and [name for name, _ in gateway.series] == [VIEW, CLOSE]


def test_lag_per_bucket_and_overall(db: sqlite_utils.Database) -> None:
    lag = q.insights_lag(db, SESSION, now=FAR)
    assert lag is not None and lag.step == 1
    # 16 deliveries a second late, the late view 5 s, its repeat 30 s.
    assert (lag.overall_p50, lag.maximum) == (1.0, 30.0)
    assert lag.overall_p95 == pytest.approx(5 + 0.15 * 25)
    assert lag.p50[6] == 5.0 and lag.counts[6] == 1  # the late view, received at 65
    assert lag.p95[9] == 30.0  # its repeat, received at 90
    assert lag.p50[3] is None and lag.counts[3] == 0  # nothing received from 30 to 40
    assert sum(lag.counts) == 18


def test_lag_samples_every_nth_delivery(db: sqlite_utils.Database) -> None:
    lag = q.insights_lag(db, SESSION, now=FAR, sample=5)
    assert lag is not None and lag.step == 4  # 18 deliveries, at most about 5 read: ids 4, 8, 12, 16
    assert sum(lag.counts) == 4
    assert lag.maximum == 5.0


def test_insights_gathers_every_figure(db: sqlite_utils.Database) -> None:
    data = q.insights(db, SESSION, FAR)
    assert (data.mode, data.rows, data.empty, data.now) == ("all", 19, False, FAR)
    assert data.funnel == q.insights_funnel(db, SESSION)
    assert data.close_actions == q.insights_close_actions(db, SESSION)
    assert data.time_to_close == q.insights_time_to_close(db, SESSION)
    assert data.timeline == q.insights_timeline(db, SESSION, now=FAR)
    assert data.lag == q.insights_lag(db, SESSION, now=FAR)


def test_an_empty_database_has_nothing_to_chart(store_db: sqlite_utils.Database) -> None:
    data = q.insights(store_db, q.View("gateway", None), FAR)
    assert data.empty and data.timeline is None and data.lag is None
    assert data.funnel.total == q.FunnelRow(None) and data.funnel.by_content == []
    assert data.close_actions == [] and data.time_to_close.pairs == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("u2", [q.CloseAction(CROSS, 2, 2 / 3), q.CloseAction("POPUP_CLOSE", 1, 1 / 3)]),  # free text: the search
        ("action:POPUP_CLOSE", [q.CloseAction("POPUP_CLOSE", 1, 1.0)]),
        ("-user:u2", [q.CloseAction(CROSS, 1, 0.5), q.CloseAction(None, 1, 0.5)]),
    ],
)
def test_the_main_tables_filter_applies(db: sqlite_utils.Database, text: str, expected: list[q.CloseAction]) -> None:
    compiled = compile_filter(text, now=FAR)
    view = q.View("all", 1, where=compiled.where, params=compiled.params)
    assert q.insights_close_actions(db, view) == expected
    assert q.insights_funnel(db, view).total.closes == sum(action.count for action in expected)
    assert q.insights(db, view, FAR).rows == q.count_rows(db, view)


def test_gateway_body_rows_pair(store_db: sqlite_utils.Database) -> None:
    """Spec-shaped bodies: the pageUrl's sessionId pairs the view and its close (150 s apart in the spec)."""
    store_db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, ?, 'test')", [T])
    view = event_row(gateway_body(created_at=T, session="s1"), received_at=T + 1)
    close = event_row(
        gateway_body(event=CLOSE, created_at=T + 150, session="s1", click_action=CROSS), received_at=T + 151
    )
    store.write_batch(store_db.conn, [view, close], [])
    ttc = q.insights_time_to_close(store_db, q.View("gateway", 1))
    assert (ttc.pairs, ttc.median) == (1, 150.0)
    assert q.insights_close_actions(store_db, q.View("gateway", 1)) == [q.CloseAction(CROSS, 1, 1.0)]


@pytest.fixture
def generated(store_db: sqlite_utils.Database) -> sqlite_utils.Database:
    """1,500 synthetic deliveries (60 readers): journeys with payments after their views."""
    made = [event_row(e.body, received_at=e.received_at) for e in synth.events(1500, seed=5, readers=60, end=T)]
    store_db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, ?, 'test')", [T])
    store.write_batch(store_db.conn, made, [])
    return store_db


def test_many_payments_are_split_as_a_slice_of_readers_splits_them(
    generated: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = q.View("all", None)
    exact = q.insights_funnel(generated, view, limit=100)
    assert exact.share == 1.0
    monkeypatch.setattr(q, "JOURNEY_SAMPLE", 300)
    sliced = q.insights_funnel(generated, view, limit=100)
    assert 0.0 < sliced.share < 1.0
    assert sliced.total == exact.total  # the totals are counted, never estimated
    for stage in ("paywall", "views", "closes"):  # so are the stages that carry their content
        assert {r.key: r.stage(stage) for r in sliced.by_content} == {r.key: r.stage(stage) for r in exact.by_content}
    for stage in ("transactions", "purchases"):
        split = sum(r.stage(stage) for r in sliced.by_content)
        assert abs(split - exact.total.stage(stage)) <= len(sliced.by_content)  # rounding, one per content at most


def test_many_views_and_closes_are_paired_for_a_slice_of_readers(
    generated: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = q.View("gateway", None)
    exact = q.insights_time_to_close(generated, view)
    monkeypatch.setattr(q, "JOURNEY_SAMPLE", 200)
    sliced = q.insights_time_to_close(generated, view)
    assert exact.share == 1.0 and 0.0 < sliced.share < 1.0
    assert 0 < sliced.pairs < exact.pairs and sum(sliced.counts) == sliced.pairs
    assert sliced.median is not None and exact.median is not None


def test_a_filter_is_read_once_on_a_read_only_connection(db: sqlite_utils.Database, db_path: Path) -> None:
    """The loader's connection is read-only: the filter's matches still go to a temporary table, emptied after."""
    compiled = compile_filter("user:u2", now=FAR)
    view = q.View("all", 1, where=compiled.where, params=compiled.params)
    reader = store.connect(db_path, readonly=True)
    try:
        first, again = q.insights(reader, view, FAR), q.insights(reader, view, FAR)
        assert first == again and first.funnel.total == q.FunnelRow(None, paywall=1, views=2, closes=3)
        assert reader.execute("SELECT count(*) FROM temp.insight_ids").fetchone()[0] == 0
    finally:
        reader.close()


def test_with_the_insights_index_the_counts_read_no_table_row(db: sqlite_utils.Database) -> None:
    """Every count of the funnel and the close actions walks INSIGHTS_INDEX alone (a covering index)."""
    db.table("events").create_index(q.INSIGHTS_INDEX, index_name="idx_insights_test")
    seen: list[tuple[str, Any]] = []
    execute = db.execute

    def recording(sql: str, params: Any = ()) -> Any:
        seen.append((sql, params))
        return execute(sql, params)

    db.execute = recording  # type: ignore[method-assign,assignment]
    q.insights_funnel(db, q.View("gateway", None))
    q.insights_close_actions(db, q.View("all", 1))
    db.execute = execute  # type: ignore[method-assign]
    counts = [(sql, params) for sql, params in seen if sql.startswith("SELECT content_id")]
    assert len(counts) == 3
    for sql, params in counts:
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        assert "COVERING INDEX idx_insights_test" in plan, plan
