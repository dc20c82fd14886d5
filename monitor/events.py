"""Turn one webhook delivery into a typed record.

Pure functions, no I/O. Decoding a body can fail (that is a rejection with a
reason); extracting fields from a decoded object never raises: a field that is
missing, null or of the wrong type is ``None`` and, when it was present but
unusable, a note says so.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson

#: ``created_at`` values above this are taken as milliseconds (year 2286 in s).
_MILLIS_THRESHOLD = 10_000_000_000

_BOM = b"\xef\xbb\xbf"

GATEWAY_VIEW = "payment_gateway.view"
GATEWAY_CLOSE = "payment_gateway.close"
GATEWAY_EVENTS = (GATEWAY_VIEW, GATEWAY_CLOSE)


class InvalidBody(ValueError):
    """A body that is not a JSON object; ``str(exc)`` says what was wrong."""


@dataclass(slots=True)
class EventRecord:
    """The parsed columns of one accepted delivery (names match the store)."""

    kind: str = "event"  # "event" (Conscent's wrapper) or "legacy" (flat)
    entity: str | None = None
    event: str | None = None
    user_id: str | None = None
    created_at: float | None = None
    contains: str | None = None  # comma-separated names, as sent
    # payload.user
    phone_number: str | None = None
    username: str | None = None
    name: str | None = None
    email: str | None = None
    city: str | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    postcode: str | None = None
    # client_info
    user_agent: str | None = None
    client_country: str | None = None
    country_code: str | None = None
    device_type: str | None = None
    device_model: str | None = None
    # payload.action
    page_url: str | None = None
    content_id: str | None = None
    click_action: str | None = None
    # the pageUrl query string
    client_id: str | None = None
    anon_id: str | None = None
    paywall_id: str | None = None
    gateway_session_id: str | None = None
    client_content_id: str | None = None
    user_source: str | None = None
    article_url: str | None = None
    # payload.transaction / purchase / refund, when present
    transaction_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    payment_status: str | None = None
    notes: list[str] = field(default_factory=list)

    def columns(self) -> dict[str, Any]:
        """The record as store columns (notes joined into one text)."""
        row = dict(zip(COLUMNS, _values(self), strict=True))  # not asdict(): it deep-copies, 10x slower
        row["notes"] = "; ".join(self.notes) if self.notes else None
        return row


COLUMNS: tuple[str, ...] = tuple(EventRecord.__dataclass_fields__)
_values = operator.attrgetter(*COLUMNS)


def decode_body(body: bytes) -> dict[str, Any]:
    """Decode a delivery body into a JSON object or raise :class:`InvalidBody`."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        value = orjson.loads(body)  # also rejects invalid UTF-8
    except orjson.JSONDecodeError as exc:
        # Only now work out the clearest reason (the usual body needs none of it).
        if not body.strip():
            raise InvalidBody("empty body") from None
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise InvalidBody(f"body is not valid UTF-8 (byte {bad.start})") from None
        raise InvalidBody(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidBody(f"JSON body is {_json_type(value)}, not an object")
    return value


def parse_body(body: bytes) -> EventRecord:
    """``decode_body`` then ``extract``; raises only :class:`InvalidBody`."""
    return extract(decode_body(body))


def extract(obj: dict[str, Any]) -> EventRecord:
    """Read every known field of a decoded delivery; never raises."""
    fields = _Fields(obj)
    if "event" in obj or "payload" in obj:
        return _extract_wrapped(fields)
    return _extract_legacy(fields)


def normalise_created_at(value: Any) -> float | None:
    """Epoch seconds from seconds, milliseconds (or finer), a numeric or an ISO 8601 string."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return _iso_seconds(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = _finite(value)
    if number is None or number <= 0:
        return None
    while number > _MILLIS_THRESHOLD:  # milliseconds, microseconds, nanoseconds
        number /= 1000.0
    return number


def _iso_seconds(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    return seconds if seconds > 0 else None


def _finite(value: int | float) -> float | None:
    """``value`` as a finite float, or None (NaN, infinity, an int too big for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


#: "%XX" (either case) of every ASCII character, for :func:`percent_decode`.
_ASCII_ESCAPES = {f"{code:02{case}}": chr(code) for code in range(0x80) for case in "xX"}


def percent_decode(text: str, *, plus: bool = False) -> str:
    """``urllib.parse.unquote`` (``unquote_plus`` with ``plus``), several times faster on ASCII escapes.

    Anything else (an escaped UTF-8 byte, a stray ``%``) takes unquote's own path.
    """
    if plus and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    first, *rest = text.split("%")
    out = [first]
    for part in rest:
        char = _ASCII_ESCAPES.get(part[:2])
        if char is None:
            return unquote(text)
        out.append(char)
        out.append(part[2:])
    return "".join(out)


def page_url_params(page_url: str) -> dict[str, str]:
    """The first value of each query parameter of a pageUrl, decoded once.

    What ``parse_qs(urlsplit(url).query, keep_blank_values=True)`` gives,
    first values only, at a third of the cost: it runs for every delivery.
    """
    query = page_url.partition("#")[0].partition("?")[2]
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in key or "+" in key:
            key = percent_decode(key, plus=True)
        if "%" in value or "+" in value:
            value = percent_decode(value, plus=True)
        params.setdefault(key, value)
    return params


def _extract_wrapped(f: _Fields) -> EventRecord:
    rec = EventRecord(kind="event")
    rec.entity = f.text("entity")
    rec.event = f.text("event")
    rec.created_at = f.created_at("created_at")
    contains = f.get("contains")
    if isinstance(contains, list):
        names = [item for item in contains if isinstance(item, str)]
        rec.contains = ",".join(names)
        if len(names) < len(contains):
            f.notes.append("contains: expected a list of strings")
    elif contains is not None:
        f.note("contains", contains, "a list")
    user = f.obj("payload", "user")
    _read_user(f, user, rec)
    rec.user_id = f.text("user_id") or f.text_in(user, "payload.user.userId", "userId")
    client = f.obj("client_info")
    rec.user_agent = f.text_in(client, "client_info.userAgent", "userAgent")
    rec.client_country = f.text_in(client, "client_info.country", "country")
    rec.country_code = f.text_in(client, "client_info.countryCode", "countryCode")
    rec.device_type = f.text_in(client, "client_info.deviceType", "deviceType")
    rec.device_model = f.text_in(client, "client_info.deviceModel", "deviceModel")
    action = f.obj("payload", "action")
    rec.page_url = f.text_in(action, "payload.action.pageUrl", "pageUrl")
    rec.content_id = f.text_in(action, "payload.action.contentId", "contentId")
    rec.click_action = f.text_in(action, "payload.action.clickAction", "clickAction")
    if rec.page_url:
        _read_page_url(rec.page_url, rec)
    _read_money(f, rec)
    rec.notes = f.notes
    return rec


def _extract_legacy(f: _Fields) -> EventRecord:
    rec = EventRecord(kind="legacy")
    rec.user_id = f.text("userId") or f.text("user_id") or f.text("_id")
    _read_user(f, f.root, rec, prefix="")
    rec.created_at = f.created_at("createdAt") or f.created_at("created_at")
    rec.client_id = f.text("clientId")
    rec.content_id = f.text("contentId") or f.text("clientContentId")
    rec.transaction_id = f.text("transactionId") or f.text("orderId")
    rec.amount = f.number_in(f.root, "amount", "amount")
    rec.currency = f.text("currency")
    rec.payment_status = f.text("status")
    rec.notes = f.notes
    return rec


def _read_user(f: _Fields, user: dict[str, Any], rec: EventRecord, prefix: str = "payload.user.") -> None:
    rec.phone_number = f.text_in(user, prefix + "phoneNumber", "phoneNumber")
    rec.username = f.text_in(user, prefix + "username", "username")
    rec.name = f.text_in(user, prefix + "name", "name")
    rec.email = f.text_in(user, prefix + "email", "email")
    rec.city = f.text_in(user, prefix + "city", "city")
    rec.country = f.text_in(user, prefix + "country", "country")
    location = f.sub(user, prefix + "location", "location")
    rec.latitude = f.number_in(location, prefix + "location.latitude", "latitude")
    rec.longitude = f.number_in(location, prefix + "location.longitude", "longitude")
    rec.postcode = f.text_in(location, prefix + "location.postcode", "postcode")


def _read_page_url(page_url: str, rec: EventRecord) -> None:
    params = page_url_params(page_url)
    rec.client_id = params.get("clientId") or None
    rec.anon_id = params.get("anonId") or None
    rec.paywall_id = params.get("paywallId") or None
    rec.gateway_session_id = params.get("sessionId") or None
    rec.client_content_id = params.get("clientContentId") or None
    rec.user_source = params.get("userSourceData") or None
    nested = params.get("pageUrl")
    if nested:
        # Conscent encodes the article URL twice and parse_qs undid one layer;
        # a sender that encoded it only once left a URL that is already plain.
        rec.article_url = nested if "://" in nested else percent_decode(nested)


def _read_money(f: _Fields, rec: EventRecord) -> None:
    payload = f.obj("payload")
    for name in ("transaction", "purchase", "refund", "renewal"):
        part = f.sub(payload, f"payload.{name}", name)
        if not part:
            continue
        where = f"payload.{name}."

        def text(key: str, part: dict[str, Any] = part, where: str = where) -> str | None:
            return f.text_in(part, where + key, key)

        def number(key: str, part: dict[str, Any] = part, where: str = where) -> float | None:
            return f.number_in(part, where + key, key)

        rec.transaction_id = rec.transaction_id or text("transactionId") or text("_id") or text("orderId")
        if rec.amount is None:
            rec.amount = number("amount")
        if rec.amount is None:
            rec.amount = number("price")
        rec.currency = rec.currency or text("currency")
        rec.payment_status = rec.payment_status or text("status") or text("type")


class _Fields:
    """Typed, forgiving access to a decoded object, collecting notes."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.notes: list[str] = []

    def note(self, where: str, value: Any, wanted: str) -> None:
        text = f"{where}: expected {wanted}, got {_json_type(value)}"
        if text not in self.notes:  # e.g. a non-object payload is read three times
            self.notes.append(text)

    def get(self, key: str) -> Any:
        return self.root.get(key)

    def text(self, key: str) -> str | None:
        return self.text_in(self.root, key, key)

    def obj(self, *path: str) -> dict[str, Any]:
        node: dict[str, Any] = self.root
        for depth, key in enumerate(path):
            node = self.sub(node, ".".join(path[: depth + 1]), key)
        return node

    def sub(self, node: dict[str, Any], where: str, key: str) -> dict[str, Any]:
        value = node.get(key)
        if isinstance(value, dict):
            return value
        if value is not None:
            self.note(where, value, "an object")
        return {}

    def text_in(self, node: dict[str, Any], where: str, key: str) -> str | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        # Ids and phone numbers sometimes arrive as JSON numbers; keep them
        # (an int too long for str() is not one of those).
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) or (is_int and abs(value) < 10**100):
            return str(value)
        self.note(where, value, "a string")
        return None

    def number_in(self, node: dict[str, Any], where: str, key: str) -> float | None:
        value = node.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = _finite(value)
            if number is not None:
                return number
        elif isinstance(value, str):
            try:
                number = _finite(float(value))
            except ValueError:
                number = None
            if number is not None:
                return number
        self.note(where, value, "a number")
        return None

    def created_at(self, key: str) -> float | None:
        value = self.root.get(key)
        if value is None:
            return None
        seconds = normalise_created_at(value)
        if seconds is None:
            self.note(key, value, "epoch seconds")
        return seconds


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
