"""The demo stream shows every interesting case early, and its runner behaves."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from monitor.demo import generate, run_demo
from monitor.events import EventRecord, InvalidBody, parse_body
from monitor.sender import Delivery
from monitor.signing import INVALID, SIGNATURE_HEADER, VALID, check_signature

SECRET = "demo-secret"
FIRST = 60


def first(secret: str | None = SECRET, **kwargs: Any) -> list[Delivery]:
    return list(itertools.islice(generate(secret=secret, **kwargs), FIRST))


def parsed(deliveries: list[Delivery]) -> list[EventRecord]:
    records = []
    for delivery in deliveries:
        try:
            records.append(parse_body(delivery.body))
        except InvalidBody:
            continue
    return records


def by_event(records: list[EventRecord], name: str) -> list[EventRecord]:
    return [r for r in records if r.event == name]


def test_closes_share_the_session_of_an_earlier_view() -> None:
    records = parsed(first())
    views, closes = by_event(records, "payment_gateway.view"), by_event(records, "payment_gateway.close")
    assert len(views) >= 5 and len(closes) >= 5
    viewed: set[str | None] = set()
    for record in records:
        if record.event == "payment_gateway.view":
            viewed.add(record.gateway_session_id)
        elif record.event == "payment_gateway.close":
            assert record.gateway_session_id in viewed
    assert all(r.gateway_session_id and r.anon_id and r.paywall_id and r.client_content_id for r in views)


def test_several_close_buttons_early() -> None:
    actions = {r.click_action for r in by_event(parsed(first()), "payment_gateway.close")}
    assert {"PAYMENT_GATEWAY_CROSS_BTN", "LOGIN_FLOW_CROSSBTN", "POPUP_CLOSE"} <= actions


def test_money_and_other_events_early() -> None:
    events = {r.event for r in parsed(first())}
    assert {
        "transaction.complete",
        "transaction.failed",
        "purchase.pass",
        "purchase.subscription",
        "paywall.click",
        "paywall.exit",
        "refunded.pay_per_use",
        "cancelled.subscription",
    } <= events
    assert events & {"meter_banner.close", "meter_banner.click"}


def test_purchase_matches_its_transaction() -> None:
    records = parsed(first())
    completed = {r.transaction_id: r for r in by_event(records, "transaction.complete")}
    purchases = [r for r in records if r.event and r.event.startswith("purchase.")]
    assert purchases
    for purchase in purchases:
        assert purchase.transaction_id in completed
        assert purchase.amount == completed[purchase.transaction_id].amount


def test_exactly_one_retried_duplicate() -> None:
    counts = Counter(d.body for d in first())
    assert sorted(counts.values(), reverse=True)[:2] == [2, 1]
    [repeated] = [body for body, n in counts.items() if n == 2]
    copies = [d for d in first() if d.body == repeated]
    assert copies[0].headers == copies[1].headers


def test_no_accidental_duplicates_later() -> None:
    ticks = itertools.count(1_800_000_000, 0.2)  # time moves on, as it does while the demo posts

    def clock() -> float:
        return float(next(ticks))

    deliveries = list(itertools.islice(generate(secret=SECRET, clock=clock), 2000))
    assert len({d.body for d in deliveries}) == len(deliveries) - 1


def test_exactly_one_malformed_body() -> None:
    bad = []
    for delivery in first():
        try:
            parse_body(delivery.body)
        except InvalidBody:
            bad.append(delivery)
    assert len(bad) == 1
    assert bad[0].body.startswith(b'{"entity":"event"')


def test_exactly_one_bad_signature_when_a_secret_is_set() -> None:
    verdicts = Counter(check_signature(d.headers.get(SIGNATURE_HEADER), SECRET, d.body) for d in first())
    assert verdicts == {VALID: FIRST - 1, INVALID: 1}


def test_no_signatures_without_a_secret() -> None:
    deliveries = first(secret=None)
    assert not any(SIGNATURE_HEADER in d.headers for d in deliveries)
    # The duplicate and the malformed body still come.
    assert len({d.body for d in deliveries}) == FIRST - 1


def test_readers_look_real() -> None:
    records = parsed(first())
    closes = by_event(records, "payment_gateway.close")
    assert any(r.user_agent == "axios/0.21.1" and r.device_model is None for r in closes)
    assert any(not r.name for r in records)
    assert any(r.name for r in records)
    assert {r.device_type for r in records} >= {"desktop", "mobile"}
    assert any(r.user_id == "65e01bd8d03692125f1f353d" for r in records)
    assert len({r.user_id for r in records}) >= 8


def test_created_at_follows_the_clock() -> None:
    records = parsed(first(clock=lambda: 1_800_000_000.5))
    # A frozen clock still gives each journey strictly increasing seconds,
    # starting a little in the past so early deliveries do not look early.
    assert all(1_800_000_000 - 6 <= (r.created_at or 0) <= 1_800_000_010 for r in records)
    now = time.time()
    assert all(abs((r.created_at or 0) - now) < 60 for r in parsed(first()))


def test_same_seed_same_stream() -> None:
    def clock() -> float:
        return 1_750_000_000.0

    assert [d.body for d in first(clock=clock)] == [d.body for d in first(clock=clock)]
    assert [d.body for d in first(clock=clock)] != [d.body for d in first(clock=clock, seed=8)]


async def test_run_demo_posts_until_stopped(aiohttp_server: Any) -> None:
    received: list[bytes] = []
    stop = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        if len(received) >= 20:
            stop.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhook", handle)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)
    await asyncio.wait_for(
        run_demo(str(server.make_url("/webhook")), secret=SECRET, stop=stop, interval=0.01), timeout=10
    )
    # It stops right after the delivery that set the event.
    assert len(received) == 20
    assert len(set(received)) == 19  # the retried duplicate arrived twice


async def test_run_demo_survives_a_dead_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(f"http://127.0.0.1:{port}/", secret=None, stop=stop, interval=0.01))
    await asyncio.sleep(0.3)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, timeout=5)


@pytest.mark.parametrize("readers", [1, 5])
def test_small_populations_work(readers: int) -> None:
    assert len(first(readers=readers)) == FIRST
