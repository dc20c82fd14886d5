"""A journey paired a page at a time tells what build_journey tells of the whole (issue 16, item 2).

The drill-down pairs only the rows that can pair with a page's (their
components) and judges a view's outcome from the purchases alone. Every
step of every page, and the summary, must equal build_journey's and
pair_summary's over the whole journey: hand-made cases for each rule, then
Hypothesis over journeys mixing them, cut into pages of every size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.journey import (
    Conversions,
    JourneyStep,
    build_journey,
    components,
    page_steps,
    pair_summary,
    pairs_by_session,
    summarize,
)
from tests.helpers import journey_row as ev

VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"
GATEWAY = (VIEW, CLOSE)


def fields(step: JourneyStep) -> tuple[Any, ...]:
    return (step.id, step.pair_id, step.time_to_close, step.close_action, step.outcome, step.paired_by, step.duplicate)


def paged(rows: Sequence[Mapping[str, Any]], order: list[int], size: int) -> list[JourneyStep]:
    """The journey in ``order`` (ids), each page paired from its components and the purchases only."""
    by_id = {int(row["id"]): row for row in rows}
    by_session = pairs_by_session(rows)
    conversions = Conversions(rows)
    out: list[JourneyStep] = []
    for start in range(0, len(order), size):
        page = [by_id[i] for i in order[start : start + size]]
        out += page_steps(page, related(rows, page, by_session=by_session), conversions, by_session=by_session)
    return out


def related(
    rows: Sequence[Mapping[str, Any]], page: Sequence[Mapping[str, Any]], *, by_session: bool
) -> list[Mapping[str, Any]]:
    """What the drill-down reads for a page: the gateway rows of the page's sessionIds, else all of them."""
    gateway = [row for row in rows if row["event"] in GATEWAY]
    if not by_session:
        return gateway
    wanted = {row["gateway_session_id"] for row in page if row["event"] in GATEWAY and row["gateway_session_id"]}
    return [row for row in gateway if row["gateway_session_id"] in wanted]


def check(rows: list[dict[str, Any]]) -> None:
    whole = build_journey(rows)
    expected = {step.id: fields(step) for step in whole}
    created = [step.id for step in whole]
    received = [int(r["id"]) for r in sorted(rows, key=lambda r: (float(r["received_at"]), int(r["id"])))]
    for order in (created, received):
        for size in (1, 2, 3, 5, len(rows) or 1):
            steps = paged(rows, order, size)
            assert [step.id for step in steps] == order
            assert {step.id: fields(step) for step in steps} == expected, (size, order)
    gateway = [row for row in rows if row["event"] in GATEWAY]
    duplicates = sum(1 for row in rows if row["duplicate_of"] is not None)
    found = summarize(gateway, Conversions(rows), duplicates, by_session=pairs_by_session(rows))
    assert found == pair_summary(whole)


CASES = {
    "two views then two closes": [
        ev(1, VIEW, 100, gateway_session_id="s"),
        ev(2, VIEW, 110, gateway_session_id="s"),
        ev(3, CLOSE, 120, gateway_session_id="s", click_action="A"),
        ev(4, CLOSE, 130, gateway_session_id="s", click_action="B"),
    ],
    "a view with sessionId, a close without": [
        ev(1, VIEW, 100, gateway_session_id="s", content_id="a", paywall_id="p"),
        ev(2, CLOSE, 120, content_id="a", paywall_id="p"),
        ev(3, VIEW, 130, gateway_session_id="t", content_id="b"),
        ev(4, CLOSE, 140, gateway_session_id="t", content_id="b"),
    ],
    "closes before views": [
        ev(1, CLOSE, 100, gateway_session_id="s"),
        ev(2, VIEW, 110, gateway_session_id="s"),
        ev(3, CLOSE, 105, gateway_session_id="t"),
        ev(4, VIEW, 120, gateway_session_id="t"),
        ev(5, CLOSE, 130, gateway_session_id="t"),
    ],
    "rows without created_at": [
        ev(1, VIEW, None, received=500.0, gateway_session_id="s"),
        ev(2, CLOSE, 1000.0, received=530.5, gateway_session_id="s"),
        ev(3, VIEW, 400.0, received=600.0, content_id="c"),
        ev(4, CLOSE, None, received=450.0, content_id="c"),
    ],
    "other events interleaved": [
        ev(1, VIEW, 100, gateway_session_id="s", content_id="a"),
        ev(2, "paywall.click", 101),
        ev(3, "transaction.complete", 102, content_id="a"),
        ev(4, CLOSE, 103, gateway_session_id="s", content_id="a"),
        ev(5, VIEW, 104, gateway_session_id="t", content_id="b"),
        ev(6, "purchase.pass", 105, content_id="other"),
        ev(7, "meter_banner.close", 106),
        ev(8, VIEW, 107, gateway_session_id="u"),
        ev(9, "purchase.subscription", 108),
    ],
    "repeated deliveries": [
        ev(1, VIEW, 100, gateway_session_id="s"),
        ev(2, VIEW, 100, received=105, gateway_session_id="s", duplicate_of=1),
        ev(3, CLOSE, 110, gateway_session_id="s"),
        ev(4, "transaction.complete", 105, duplicate_of=9),
        ev(5, CLOSE, 115, duplicate_of=3),
    ],
    "paywall and content fallback": [
        ev(1, VIEW, 100, paywall_id="p1", content_id="a"),
        ev(2, VIEW, 110, paywall_id="p2", content_id="a"),
        ev(3, CLOSE, 130, paywall_id="p2", content_id="a", click_action="X"),
        ev(4, CLOSE, 160, paywall_id="p1", content_id="a"),
        ev(5, VIEW, 170, client_content_id="z"),
        ev(6, CLOSE, 180, client_content_id="z"),
    ],
    "sessionId beats an earlier weaker match": [
        ev(1, VIEW, 100, content_id="a"),
        ev(2, VIEW, 110, content_id="a", gateway_session_id="s"),
        ev(3, CLOSE, 120, content_id="a", gateway_session_id="s"),
    ],
    "equal times, ordered by id": [
        ev(3, VIEW, 100, gateway_session_id="s"),
        ev(1, CLOSE, 100, gateway_session_id="s"),
        ev(2, "transaction.complete", 100),
        ev(4, CLOSE, 100, gateway_session_id="s"),
    ],
    "empty sessionId is none": [
        ev(1, VIEW, 100, gateway_session_id="", content_id="a"),
        ev(2, CLOSE, 110, gateway_session_id="s", content_id="a"),
    ],
}


@pytest.mark.parametrize("rows", CASES.values(), ids=CASES.keys())
def test_pages_pair_as_the_whole_journey(rows: list[dict[str, Any]]) -> None:
    check(rows)


def test_a_sessionid_on_every_row_splits_the_journey_by_sessionid() -> None:
    rows = CASES["closes before views"]
    assert pairs_by_session(rows)
    assert sorted(len(group) for group in components(rows, by_session=True)) == [2, 3]
    assert not pairs_by_session(CASES["a view with sessionId, a close without"])
    assert not pairs_by_session(CASES["empty sessionId is none"])
    # A repeated delivery never pairs: one without a sessionId does not join the components.
    assert pairs_by_session([*CASES["two views then two closes"], ev(9, CLOSE, 1, duplicate_of=1)])


EVENTS = st.sampled_from(
    [VIEW, VIEW, VIEW, CLOSE, CLOSE, CLOSE, "transaction.complete", "purchase.pass", "paywall.click", "meter.x"]
)
MAYBE = st.one_of(st.none(), st.sampled_from(["a", "b"]))


@st.composite
def journeys(draw: st.DrawFn) -> list[dict[str, Any]]:
    sessions = draw(st.sampled_from([("s1", "s2", "s3"), ("s1", "s2", None), ("s1", "", None)]))
    count = draw(st.integers(0, 14))
    rows = []
    for id_ in draw(st.permutations(list(range(1, count + 1)))):
        created = draw(st.one_of(st.none(), st.integers(0, 12).map(float)))
        rows.append(
            ev(
                id_,
                draw(EVENTS),
                created,
                received=float(draw(st.integers(0, 12))),
                gateway_session_id=draw(st.sampled_from(sessions)),
                content_id=draw(MAYBE),
                client_content_id=draw(MAYBE),
                paywall_id=draw(st.one_of(st.none(), st.sampled_from(["p", "q"]))),
                click_action=draw(st.one_of(st.none(), st.just("X"))),
                duplicate_of=draw(st.one_of(st.none(), st.none(), st.none(), st.just(99))),
            )
        )
    return rows


@settings(max_examples=200, deadline=None)
@given(journeys())
def test_any_journey_pages_pair_as_the_whole(rows: list[dict[str, Any]]) -> None:
    check(rows)
