"""A believable stream of Conscent deliveries for ``--demo``.

Readers arrive on articles, meet the meter banner and the paywall, open the
payment gateway and either close it, fail to pay, or buy a pass or a
subscription. Journeys overlap, like real traffic. The first journeys are a
fixed tour of every outcome, and the first few deliveries include one retried
duplicate, one bad signature and one malformed body, so someone trying the
tool sees each case within a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from monitor.sender import Delivery, deliver, prepare

Clock = Callable[[], float]
Event = dict[str, Any]

CLIENT_ID = "65015ff10070846629fb981e"
PAYWALL_IDS = ("65cb7057e57605058015b407", "65cb70a1e57605058015b41c")
METER_BANNER_ID = "65c9f0c2e57605058015a2d1"
OVERLAY = "https://dashboards.conscent.art/overlay"
ARTICLE_BASE = f"https://csc-mock.netlify.app/{CLIENT_ID}"
STORIES = (
    "Client-Story-Id-1",
    "Client-Story-Id-2",
    "budget-2024-explained",
    "ipl-auction-analysis",
    "monsoon-forecast-kerala",
    "startup-funding-winter",
    "chandrayaan-3-data",
    "election-exit-polls",
)
CLOSE_ACTIONS = ("PAYMENT_GATEWAY_CROSS_BTN", "LOGIN_FLOW_CROSSBTN", "POPUP_CLOSE")
MODES = ("UPI", "CARD", "NETBANKING", "WALLET")

# The reader of the documentation samples opens the demo, so the samples and
# the demo tell the same story in the drill-down.
SPEC_READER = ("65e01bd8d03692125f1f353d", "4a92915b-a0ee-413d-9526-cfdb064caf7b", "9892898898")

NAMES = (
    "Aarav Sharma",
    "Priya Iyer",
    "Rohan Mehta",
    "Ananya Gupta",
    "Vikram Nair",
    "Sneha Reddy",
    "Arjun Patel",
    "Kavya Menon",
    "Ishaan Kapoor",
    "Meera Joshi",
    "Aditya Rao",
    "Diya Banerjee",
    "Karan Malhotra",
    "Nisha Verma",
    "Rahul Desai",
    "Fatima Sheikh",
    "Sahil Khan",
    "Zoya Siddiqui",
    "Harpreet Kaur",
    "Suresh Pillai",
)
GLOBAL_NAMES = (
    "Emma Wilson",
    "Liam O'Connor",
    "Sofia Rossi",
    "Chen Wei",
    "Yuki Tanaka",
    "Amara Okafor",
    "Noah Müller",
    "Lucas Silva",
)
# (city as Conscent reports it, latitude, longitude, postcode, country code, country)
INDIAN_CITIES = (
    ("new delhi (okhla phase i)", 28.5223, 77.2849, "110001"),
    ("mumbai (andheri east)", 19.1136, 72.8697, "400069"),
    ("bengaluru (koramangala)", 12.9352, 77.6245, "560034"),
    ("pune (kothrud)", 18.5074, 73.8077, "411038"),
    ("hyderabad (gachibowli)", 17.4401, 78.3489, "500032"),
    ("chennai (t nagar)", 13.0418, 80.2341, "600017"),
    ("kolkata (salt lake)", 22.5867, 88.4171, "700091"),
    ("kochi (kakkanad)", 10.0159, 76.3419, "682030"),
    ("jaipur (malviya nagar)", 26.8549, 75.8243, "302017"),
)
GLOBAL_CITIES = (
    ("london", 51.5072, -0.1276, "EC1A", "GB", "United Kingdom"),
    ("singapore", 1.3521, 103.8198, "018956", "SG", "Singapore"),
    ("dubai", 25.2048, 55.2708, "00000", "AE", "United Arab Emirates"),
    ("new york", 40.7128, -74.0060, "10001", "US", "United States"),
    ("toronto", 43.6532, -79.3832, "M5H", "CA", "Canada"),
)
CHROME = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0"
# (userAgent, deviceType, deviceModel or None)
DEVICES = (
    (f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {CHROME} Safari/537.36", "desktop", "Macintosh"),
    (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {CHROME} Safari/537.36", "desktop", None),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.3 Mobile/15E148 Safari/604.1",
        "mobile",
        "iPhone",
    ),
    (f"Mozilla/5.0 (Linux; Android 14; SM-S918B) {CHROME} Mobile Safari/537.36", "mobile", "SM-S918B"),
    (f"Mozilla/5.0 (Linux; Android 13; Pixel 7) {CHROME} Mobile Safari/537.36", "mobile", "Pixel 7"),
    (f"Mozilla/5.0 (Linux; Android 13; CPH2381) {CHROME} Mobile Safari/537.36", "mobile", "CPH2381"),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.2 Mobile/15E148 Safari/604.1",
        "tablet",
        "iPad",
    ),
)

#: Journeys started in this order first, so every outcome shows up early.
TOUR = (
    "abandon",
    "buy_subscription",
    "abandon",
    "failed",
    "server_close",
    "buy_pass",
    "abandon",
    "exit",
    "refund",
    "cancel",
)
OUTCOMES = {
    "abandon": 30,
    "view_only": 10,
    "server_close": 6,
    "failed": 8,
    "retry_success": 5,
    "buy_pass": 8,
    "buy_subscription": 8,
    "exit": 8,
    "refund": 2,
    "cancel": 2,
}
#: Positions (0-based) of the special deliveries in the stream.
DUPLICATE_AT, BAD_SIGNATURE_AT, MALFORMED_AT = 4, 8, 11
BURST = 15


@dataclass(frozen=True)
class Reader:
    user_id: str
    anon_id: str
    user: Event  # the payload.user object
    client_info: Event
    currency: str


@dataclass(frozen=True)
class Product:
    title: str
    kind: str  # "pass" or "subscription"
    days: int
    inr: float
    usd: float

    def price(self, reader: Reader) -> float:
        return self.inr if reader.currency == "INR" else self.usd


PRODUCTS = (
    Product("Day Pass", "pass", 1, 19, 0.99),
    Product("Weekly Pass", "pass", 7, 49, 2.99),
    Product("Digital Monthly", "subscription", 30, 199, 4.99),
    Product("Digital Annual", "subscription", 365, 1499, 49.99),
    Product("Ad-Free Premium", "subscription", 30, 299, 6.99),
)


def generate(
    seed: int = 7, readers: int = 30, secret: str | None = None, *, clock: Clock = time.time
) -> Iterator[Delivery]:
    """An endless, reproducible stream of deliveries (``created_at`` from ``clock``)."""
    rng = random.Random(seed)  # noqa: S311 - made-up data, reproducible on purpose
    people = [_reader(rng, index, clock()) for index in range(max(1, readers))]
    events = _interleave(rng, people, clock)
    retry: Delivery | None = None
    previous = Delivery(b"")
    for position in itertools.count():
        if position == DUPLICATE_AT and retry is not None:
            # A retry re-sends the very same bytes and headers.
            delivery = Delivery(retry.body, dict(retry.headers), f"{retry.label} (retried)")
        elif position == MALFORMED_AT:
            # A body cut mid-object, as when a proxy drops the connection.
            cut = previous.body[: len(previous.body) * 2 // 3]
            delivery = Delivery(cut, prepare(cut, secret=secret), "malformed body")
        else:
            event = next(events)
            # Conscent's servers post compact JSON (axios' JSON.stringify).
            body = orjson.dumps(event)
            if position == BAD_SIGNATURE_AT and secret:
                # Signed with a key the receiver no longer has (a rotated secret).
                delivery = Delivery(body, prepare(body, secret=secret + "-old"), f"{event['event']} (bad signature)")
            else:
                delivery = Delivery(body, prepare(body, secret=secret), event["event"])
        if position == DUPLICATE_AT - 2:
            retry = delivery
        previous = delivery
        yield delivery


def reopen_hint(db_path: str | Path, program: str = "conscent-monitor") -> str:
    """What ``--demo`` prints on exit: where its database is and the command (``program open``) that opens it."""
    path = str(Path(db_path).resolve())
    return f"The demo's deliveries are in {path}\nOpen them again with: {program} open {shlex.quote(path)}"


async def run_demo(url: str, *, secret: str | None, stop: asyncio.Event, interval: float = 0.6, seed: int = 7) -> None:
    """Post the demo stream to ``url`` until ``stop`` is set; never raises for network errors."""
    pause = random.Random(seed + 1)  # noqa: S311 - only jitters the pace
    async with aiohttp.ClientSession() as session:
        for position, delivery in enumerate(generate(seed=seed, secret=secret)):
            if stop.is_set():
                return
            await deliver(session, url, delivery, timeout=5.0)
            delay = 0.05 if position < BURST else interval * pause.uniform(0.3, 1.7)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                continue
            return


@dataclass
class _Running:
    reader: Reader
    events: Iterator[Event]
    last: int = 0  # created_at of its latest event


#: Seconds a journey's first event is stamped before "now" (see _interleave).
_LAG_ROOM = 6


def _interleave(rng: random.Random, people: list[Reader], clock: Clock) -> Iterator[Event]:
    """Events of a few concurrent journeys, in a plausible global order."""
    started = 0
    active: list[_Running] = []
    while True:
        while len(active) < 3:
            touring = started < len(TOUR)
            outcome = TOUR[started] if touring else _weighted(rng, OUTCOMES)
            # The tour cycles through the close buttons so all of them show early.
            abandons = TOUR[:started].count("abandon")
            click = CLOSE_ACTIONS[abandons % len(CLOSE_ACTIONS)] if touring else rng.choice(CLOSE_ACTIONS)
            # The spec's reader opens the tour; a reader is in one journey at a time.
            idle = [p for p in people if all(p is not run.reader for run in active)] or people
            reader = people[0] if started == 0 else rng.choice(idle)
            active.append(_Running(reader, _journey(rng, reader, outcome, click, clock)))
            started += 1
        run = rng.choice(active)
        event = next(run.events, None)
        if event is None:
            active.remove(run)
            continue
        # Strictly increasing within a journey, so a reopened gateway never
        # repeats the bytes of its first view (which would look like a retry);
        # started a few seconds back, so the fast first burst does not stamp
        # events in the future (a negative delivery lag looks like a bug).
        run.last = max(int(clock()) - _LAG_ROOM, run.last + 1)
        yield {**event, "created_at": run.last}


def _journey(rng: random.Random, reader: Reader, outcome: str, click: str, clock: Clock) -> Iterator[Event]:
    user = reader.user
    wanted = {"buy_pass": "pass", "refund": "pass", "buy_subscription": "subscription", "cancel": "subscription"}
    product = rng.choice([p for p in PRODUCTS if p.kind == wanted.get(outcome, p.kind)])
    if outcome == "refund":
        yield _event(reader, "refunded.pay_per_use", {"refund": _refund(rng, reader, product), "user": user})
        return
    if outcome == "cancel":
        renewal = {
            "status": "CANCELLED",
            "renewalCount": rng.randint(0, 6),
            "price": product.price(reader),
            "currency": reader.currency,
        }
        # Conscent sends only deviceType with this event.
        only_device = {"deviceType": reader.client_info["deviceType"]}
        yield _event(reader, "cancelled.subscription", {"user": user, "renewal": renewal}, client_info=only_device)
        return
    story, paywall = rng.choice(STORIES), rng.choice(PAYWALL_IDS)
    # One pageUrl (hence one sessionId) for everything the reader does on this article.
    action: Event = {"pageUrl": _page_url(rng, reader, paywall, story, clock()), "contentId": story}
    if rng.random() < 0.4:
        yield _meter_banner(rng, reader, action)
    cta = {"clickAction": rng.choice(("CONTENT", "SUBS", "PASS")), "numCta": rng.randint(1, 3), **action}
    yield _event(
        reader, "paywall.click", {"action": cta, "paywall": {"_id": paywall, "name": "Premium stories"}, "user": user}
    )
    if outcome == "exit":
        # Conscent lists "paywall" in contains here but sends only the user.
        yield _event(reader, "paywall.exit", {"user": user}, contains=["paywall", "user"])
        return
    yield _event(reader, "payment_gateway.view", {"action": action, "user": user})
    if outcome == "view_only":
        return
    if outcome in ("failed", "retry_success"):
        yield _event(
            reader, "transaction.failed", {"transaction": _transaction(rng, reader, product, "FAILED"), "user": user}
        )
    if outcome in ("abandon", "failed", "server_close"):
        if outcome == "abandon" and rng.random() < 0.25:
            # Second thoughts: closed, then reopened in the same session.
            yield _close(reader, rng.choice(CLOSE_ACTIONS), action)
            yield _event(reader, "payment_gateway.view", {"action": action, "user": user})
        yield _close(
            reader,
            click if outcome == "abandon" else "PAYMENT_GATEWAY_CROSS_BTN",
            action,
            server_sent=outcome == "server_close",
        )
        return
    transaction = _transaction(rng, reader, product, "COMPLETE")
    yield _event(reader, "transaction.complete", {"transaction": transaction, "user": user})
    purchase = _purchase(reader, product, transaction, paywall, story, clock())
    yield _event(reader, f"purchase.{product.kind}", {"user": user, "purchase": purchase})


def _close(reader: Reader, click: str, action: Event, *, server_sent: bool = False) -> Event:
    client = reader.client_info
    if server_sent:
        # Closes reported by Conscent's backend carry axios' agent and no device model.
        client = {
            "userAgent": "axios/0.21.1",
            "country": client["country"],
            "countryCode": client["countryCode"],
            "deviceType": client["deviceType"],
        }
    return _event(
        reader,
        "payment_gateway.close",
        {"action": {"clickAction": click, **action}, "user": reader.user},
        client_info=client,
    )


def _event(
    reader: Reader, name: str, payload: Event, *, contains: list[str] | None = None, client_info: Event | None = None
) -> Event:
    return {
        "entity": "event",
        "user_id": reader.user_id,
        "event": name,
        "contains": contains or list(payload),
        "payload": payload,
        "client_info": client_info if client_info is not None else reader.client_info,
    }


def _meter_banner(rng: random.Random, reader: Reader, action: Event) -> Event:
    banner = {
        "_id": METER_BANNER_ID,
        "createdAt": "2024-02-12T10:14:58.221Z",
        "updatedAt": "2024-02-20T07:41:12.902Z",
        "deviceType": reader.client_info.get("deviceType", "desktop"),
        "name": "Free articles left",
    }
    if rng.random() < 0.5:
        return _event(reader, "meter_banner.close", {"meteringBanner": banner, "user": reader.user})
    return _event(
        reader,
        "meter_banner.click",
        {
            "action": {"clickAction": "SUBS", "pageUrl": action["pageUrl"]},
            "meteringBanner": banner,
            "user": reader.user,
        },
    )


def _transaction(rng: random.Random, reader: Reader, product: Product, status: str) -> Event:
    inr = reader.currency == "INR"
    return {
        "_id": _object_id(rng),
        "status": status,
        "refundStatus": "NOT_REFUNDED",
        "orderId": "order_" + _token(rng, 14),
        "amount": product.price(reader),
        "currency": reader.currency,
        "paymentGateway": "RAZORPAY" if inr else "STRIPE",
        "paymentId": ("pay_" if inr else "pi_") + _token(rng, 14),
        "paymentMode": rng.choice(MODES) if inr else "CARD",
    }


def _purchase(reader: Reader, product: Product, transaction: Event, paywall: str, story: str, now: float) -> Event:
    expiry = datetime.fromtimestamp(now, UTC) + timedelta(days=product.days)
    price = product.price(reader)
    return {
        "type": product.kind.upper(),
        f"{product.kind}Title": product.title,
        "transactionId": transaction["_id"],
        "paywallId": paywall,
        "clientContentId": story,
        "price": price,
        "priceDetails": {"price": price, "currency": reader.currency},
        "expiryDate": expiry.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _refund(rng: random.Random, reader: Reader, product: Product) -> Event:
    return {
        "paymentGatewayRefundId": "rfnd_" + _token(rng, 14),
        "amount": product.price(reader),
        "currency": reader.currency,
        "cancelAccess": True,
        "transactionId": _object_id(rng),
    }


def _reader(rng: random.Random, index: int, now: float) -> Reader:
    if index == 0:
        user_id, anon_id, phone = SPEC_READER
        city, lat, lon, postcode = INDIAN_CITIES[0]
        user = _user(user_id, "IN", city, (lat, lon, postcode), phone=phone, name="")
        return Reader(user_id, anon_id, user, _client_info(DEVICES[0], "India", "IN"), "INR")
    user_id = _object_id(rng, now - rng.randint(1, 400) * 86400)
    abroad = index % 6 == 5
    if abroad:
        city, lat, lon, postcode, code, country = rng.choice(GLOBAL_CITIES)
        name = rng.choice(GLOBAL_NAMES)
    else:
        city, lat, lon, postcode = rng.choice(INDIAN_CITIES)
        code, country, name = "IN", "India", rng.choice(NAMES)
    email = name.lower().replace(" ", ".").replace("'", "").replace("ü", "u") + f"{rng.randint(1, 99)}@gmail.com"
    phone = str(rng.randint(6_000_000_000, 9_999_999_999))
    where = (lat, lon, postcode)
    # Phone sign-ups leave the name empty; email sign-ups have no name or phone.
    signup = "email" if abroad else rng.choice(("named", "named", "phone", "email"))
    if signup == "named":
        user = _user(user_id, code, city, where, phone=phone, name=name, email=email)
    elif signup == "phone":
        user = _user(user_id, code, city, where, phone=phone, name="")
    else:
        user = _user(user_id, code, city, where, email=email)
    client = _client_info(rng.choice(DEVICES), country, code)
    return Reader(user_id, _uuid(rng), user, client, "INR" if code == "IN" else "USD")


def _user(
    user_id: str,
    code: str,
    city: str,
    where: tuple[float, float, str],
    *,
    phone: str | None = None,
    name: str | None = None,
    email: str | None = None,
) -> Event:
    """payload.user in the documented key order; absent fields are left out."""
    blank_address = dict.fromkeys(("apartment", "area", "pincode", "landmark", "city", "state", "country"), "")
    user = {
        "phoneNumber": phone,
        "userId": user_id,
        "country": code,
        "address": blank_address,
        "name": name,
        "email": email,
        "city": city,
        "location": {"latitude": where[0], "longitude": where[1], "postcode": where[2]},
        "username": phone or email,
    }
    return {key: value for key, value in user.items() if value is not None}


def _client_info(device: tuple[str, str, str | None], country: str, code: str) -> Event:
    agent, device_type, model = device
    client: Event = {"userAgent": agent, "country": country, "countryCode": code, "deviceType": device_type}
    if model:
        client["deviceModel"] = model
    return client


def _page_url(rng: random.Random, reader: Reader, paywall: str, story: str, now: float) -> str:
    # The article URL is percent-encoded twice inside the overlay URL.
    article = quote(f"{ARTICLE_BASE}/{story}", safe="")
    query = urlencode(
        {
            "clientId": CLIENT_ID,
            "anonId": reader.anon_id,
            "paywallId": paywall,
            "userSourceData": "DIRECT",
            "clientContentId": story,
            "hide": "000",
            "pageUrl": article,
            "sessionId": _object_id(rng, now),
            "showLogin": "true",
        }
    )
    return f"{OVERLAY}?{query}"


def _object_id(rng: random.Random, when: float | None = None) -> str:
    """A MongoDB ObjectId: 4 bytes of creation time, then 8 random bytes."""
    stamp = int(when) if when is not None else rng.randint(1_700_000_000, 1_709_000_000)
    return f"{stamp:08x}{rng.getrandbits(64):016x}"


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[rng.randint(0, 3)]}{h[17:20]}-{h[20:]}"


def _token(rng: random.Random, length: int) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(length))


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]
