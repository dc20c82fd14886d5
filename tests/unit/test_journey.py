from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.events import parse_body
from monitor.journey import build_journey, match_key, pair_summary
from tests.helpers import journey_row as ev

REPO = Path(__file__).parents[2]
SPEC = Path(__file__).parents[3] / "shared/spec/conscent-payment-gateway-webhook.txt"
VIEW, CLOSE = "payment_gateway.view", "payment_gateway.close"


def spec_bodies() -> tuple[bytes, bytes]:
    """The view and close payloads of the spec page (or the sample files)."""
    samples = REPO / "sample_events"
    view, close = samples / "payment_gateway.view.json", samples / "payment_gateway.close.json"
    if view.exists() and close.exists():
        return view.read_bytes(), close.read_bytes()
    blocks = re.findall(r"^\{\n.*?^\}$", SPEC.read_text(), re.S | re.M)
    assert len(blocks) == 2
    return blocks[0].encode(), blocks[1].encode()


def spec_rows() -> tuple[dict[str, Any], dict[str, Any]]:
    view, close = spec_bodies()
    rows = []
    for id_, body, received in ((1, view, 1_709_186_669.0), (2, close, 1_709_186_820.0)):
        row = parse_body(body).columns() | {"id": id_, "received_at": received, "duplicate_of": None}
        rows.append(row)
    return rows[0], rows[1]


def by_id(rows: list[dict[str, Any]]) -> dict[int, Any]:
    return {step.id: step for step in build_journey(rows)}


def test_spec_pair_by_session_id() -> None:
    view, close = spec_rows()
    assert view["gateway_session_id"] == close["gateway_session_id"] == "65e01bdad03692125f1f3540"
    steps = build_journey([view, close])
    v, c = steps
    assert (v.pair_id, c.pair_id) == (2, 1)
    assert v.paired_by == c.paired_by == "sessionId"
    assert v.time_to_close == c.time_to_close == 150
    assert v.close_action == "PAYMENT_GATEWAY_CROSS_BTN"
    assert v.outcome == "closed" and c.outcome is None
    summary = pair_summary(steps)
    assert (summary.views, summary.closes, summary.closed, summary.open) == (1, 1, 1, 0)
    assert summary.median_time_to_close == 150


def test_spec_payloads_are_valid_json() -> None:
    for body in spec_bodies():
        assert orjson.loads(body)["user_id"] == "65e01bd8d03692125f1f353d"


def test_paywall_and_content_fallback() -> None:
    steps = by_id(
        [
            ev(1, VIEW, 100, paywall_id="p1", content_id="a"),
            ev(2, VIEW, 110, paywall_id="p2", content_id="a"),
            ev(3, CLOSE, 130, paywall_id="p2", content_id="a", click_action="X"),
            ev(4, CLOSE, 160, paywall_id="p1", content_id="a"),
        ]
    )
    assert steps[2].pair_id == 3 and steps[2].paired_by == "paywallId+content"
    assert steps[1].pair_id == 4 and steps[1].time_to_close == 60
    assert steps[2].close_action == "X"


def test_next_close_fallback_uses_content_or_client_content_id() -> None:
    steps = by_id(
        [
            ev(1, VIEW, 100, client_content_id="a"),
            ev(2, VIEW, 105, content_id="b"),
            ev(3, CLOSE, 120, content_id="b"),
            ev(4, CLOSE, 130, client_content_id="a"),
            ev(5, CLOSE, 140, client_content_id="a"),
        ]
    )
    assert (steps[1].pair_id, steps[2].pair_id) == (4, 3)
    assert steps[1].paired_by == "next close"
    assert steps[5].pair_id is None


def test_different_session_ids_never_pair() -> None:
    steps = by_id([ev(1, VIEW, 100, gateway_session_id="s1"), ev(2, CLOSE, 120, gateway_session_id="s2")])
    assert steps[1].pair_id is None and steps[1].outcome == "open"
    assert match_key(ev(1, VIEW, 1, paywall_id="p", content_id="a"), ev(2, CLOSE, 2, content_id="b")) is None


def test_session_id_beats_earlier_weaker_match() -> None:
    steps = by_id(
        [
            ev(1, VIEW, 100, content_id="a"),
            ev(2, VIEW, 110, content_id="a", gateway_session_id="s"),
            ev(3, CLOSE, 120, content_id="a", gateway_session_id="s"),
        ]
    )
    assert steps[3].pair_id == 2 and steps[3].paired_by == "sessionId"
    assert steps[1].outcome == "open"


def test_close_pairs_with_earliest_open_view() -> None:
    views = [ev(1, VIEW, 100, gateway_session_id="s"), ev(2, VIEW, 110, gateway_session_id="s")]
    steps = by_id([*views, ev(3, CLOSE, 120, gateway_session_id="s")])
    assert steps[1].pair_id == 3 and steps[2].outcome == "open"


def test_open_view() -> None:
    steps = build_journey([ev(1, VIEW, 100, content_id="a")])
    assert steps[0].outcome == "open" and steps[0].pair_id is None
    assert pair_summary(steps).open == 1
    assert pair_summary(steps).median_time_to_close is None


@pytest.mark.parametrize(
    ("purchase", "outcome"),
    [
        (ev(2, "transaction.complete", 120), "converted"),
        (ev(2, "purchase.pass", 120, content_id="a"), "converted"),
        (ev(2, "purchase.subscription", 120, content_id="other"), "open"),
        (ev(2, "transaction.failed", 120), "open"),
    ],
)
def test_converted_view(purchase: dict[str, Any], outcome: str) -> None:
    steps = by_id([ev(1, VIEW, 100, content_id="a"), purchase])
    assert steps[1].outcome == outcome


def test_purchase_after_the_close_is_not_a_conversion() -> None:
    rows = [ev(1, VIEW, 100, gateway_session_id="s"), ev(2, CLOSE, 110, gateway_session_id="s")]
    steps = by_id([*rows, ev(3, "transaction.complete", 120)])
    assert steps[1].outcome == "closed"
    steps = by_id([rows[0], ev(3, "transaction.complete", 105), rows[1]])
    assert steps[1].outcome == "converted" and steps[1].pair_id == 2
    assert pair_summary(list(steps.values())).converted == 1


def test_duplicates_are_shown_but_never_paired() -> None:
    view, close = spec_rows()
    dup_view = view | {"id": 3, "received_at": view["received_at"] + 5, "duplicate_of": 1}
    dup_close = close | {"id": 4, "received_at": close["received_at"] + 5, "duplicate_of": 2}
    steps = by_id([view, dup_view, close, dup_close])
    assert steps[3].duplicate and steps[4].duplicate
    assert steps[3].pair_id is None and steps[4].pair_id is None and steps[3].outcome is None
    assert steps[1].pair_id == 2
    summary = pair_summary(list(steps.values()))
    assert (summary.views, summary.closes, summary.duplicates) == (1, 1, 2)


def test_duplicate_view_does_not_take_the_close() -> None:
    steps = by_id([ev(1, VIEW, 100, duplicate_of=9, gateway_session_id="s"), ev(2, CLOSE, 110, gateway_session_id="s")])
    assert steps[2].pair_id is None


def test_out_of_order_arrival() -> None:
    view, close = spec_rows()
    close["received_at"], view["received_at"] = 1000.0, 2000.0  # the close arrived first
    steps = build_journey([close, view])
    assert [s.id for s in steps] == [1, 2]
    assert steps[0].pair_id == 2 and steps[0].time_to_close == 150


def test_missing_created_at_uses_received_at() -> None:
    steps = by_id(
        [
            ev(1, VIEW, None, received=500.0, gateway_session_id="s"),
            ev(2, CLOSE, 1_000.0, received=530.5, gateway_session_id="s"),
        ]
    )
    assert steps[1].pair_id == 2 and steps[1].time_to_close == 30.5


def test_summary_median() -> None:
    rows = []
    for n, gap in enumerate((10, 20, 60)):
        rows += [
            ev(2 * n + 1, VIEW, 1000 * n, content_id=f"c{n}"),
            ev(2 * n + 2, CLOSE, 1000 * n + gap, content_id=f"c{n}"),
        ]
    summary = pair_summary(build_journey(rows))
    assert (summary.views, summary.closed, summary.median_time_to_close) == (3, 3, 20)
