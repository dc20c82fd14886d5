"""The parser: spec payloads, every field missing/null/mistyped, other events, bad bodies."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import (
    COLUMNS,
    EventRecord,
    InvalidBody,
    decode_body,
    extract,
    normalise_created_at,
    page_url_params,
    parse_body,
    percent_decode,
)

PAGE_URL = (
    "https://dashboards.conscent.art/overlay?clientId=65015ff10070846629fb981e"
    "&anonId=4a92915b-a0ee-413d-9526-cfdb064caf7b&paywallId=65cb7057e57605058015b407&userSourceData=DIRECT"
    "&clientContentId=Client-Story-Id-2&hide=000"
    "&pageUrl=https%253A%252F%252Fcsc-mock.netlify.app%252F65015ff10070846629fb981e%252FClient-Story-Id-2"
    "&sessionId=65e01bdad03692125f1f3540&showLogin=true"
)
USER_ID = "65e01bd8d03692125f1f353d"
ARTICLE = "https://csc-mock.netlify.app/65015ff10070846629fb981e/Client-Story-Id-2"

#: What both spec payloads have in common, as parsed.
COMMON = {
    "kind": "event",
    "entity": "event",
    "user_id": USER_ID,
    "contains": "action,user",
    "phone_number": "9892898898",
    "username": "9892898898",
    "name": "",
    "email": None,
    "city": "new delhi (okhla phase i)",
    "country": "IN",
    "latitude": 28.5223,
    "longitude": 77.2849,
    "postcode": "110001",
    "client_country": "India",
    "country_code": "IN",
    "device_type": "desktop",
    "page_url": PAGE_URL,
    "content_id": "Client-Story-Id-2",
    "client_id": "65015ff10070846629fb981e",
    "anon_id": "4a92915b-a0ee-413d-9526-cfdb064caf7b",
    "paywall_id": "65cb7057e57605058015b407",
    "gateway_session_id": "65e01bdad03692125f1f3540",
    "client_content_id": "Client-Story-Id-2",
    "user_source": "DIRECT",
    "article_url": ARTICLE,
    "transaction_id": None,
    "amount": None,
    "currency": None,
    "payment_status": None,
    "notes": [],
}


def test_spec_view(spec: dict[str, bytes]) -> None:
    rec = parse_body(spec["payment_gateway.view"])
    assert {key: getattr(rec, key) for key in COMMON} == COMMON
    assert rec.event == "payment_gateway.view"
    assert rec.created_at == 1709186668.0
    assert rec.user_agent is not None and rec.user_agent.startswith("Mozilla/5.0 (Macintosh")
    assert rec.device_model == "Macintosh"
    assert rec.click_action is None


def test_spec_close(spec: dict[str, bytes]) -> None:
    rec = parse_body(spec["payment_gateway.close"])
    assert {key: getattr(rec, key) for key in COMMON} == COMMON
    assert rec.event == "payment_gateway.close"
    assert rec.created_at == 1709186818.0
    assert rec.user_agent == "axios/0.21.1"
    assert rec.device_model is None  # server-sent close has no deviceModel
    assert rec.click_action == "PAYMENT_GATEWAY_CROSS_BTN"


def test_view_and_close_pair_up(spec: dict[str, bytes]) -> None:
    view, close = parse_body(spec["payment_gateway.view"]), parse_body(spec["payment_gateway.close"])
    assert (view.gateway_session_id, view.paywall_id, view.content_id) == (
        close.gateway_session_id,
        close.paywall_id,
        close.content_id,
    )
    assert close.created_at is not None and view.created_at is not None
    assert close.created_at - view.created_at == 150


def test_columns_match_record() -> None:
    row = EventRecord(notes=["a", "b"]).columns()
    assert tuple(row) == COLUMNS
    assert row["notes"] == "a; b"
    assert EventRecord().columns()["notes"] is None


# --- every field missing, null or of the wrong type ---------------------------------------------

TEXT, NUMBER, TIME = "text", "number", "time"

#: (path in the view payload, record attribute, kind, value when the field is unusable)
FIELDS: list[tuple[tuple[str, ...], str, str, Any]] = [
    (("entity",), "entity", TEXT, None),
    (("event",), "event", TEXT, None),
    (("user_id",), "user_id", TEXT, USER_ID),  # falls back to payload.user.userId
    (("created_at",), "created_at", TIME, None),
    (("payload", "user", "phoneNumber"), "phone_number", TEXT, None),
    (("payload", "user", "username"), "username", TEXT, None),
    (("payload", "user", "name"), "name", TEXT, None),
    (("payload", "user", "city"), "city", TEXT, None),
    (("payload", "user", "country"), "country", TEXT, None),
    (("payload", "user", "location", "latitude"), "latitude", NUMBER, None),
    (("payload", "user", "location", "longitude"), "longitude", NUMBER, None),
    (("payload", "user", "location", "postcode"), "postcode", TEXT, None),
    (("client_info", "userAgent"), "user_agent", TEXT, None),
    (("client_info", "country"), "client_country", TEXT, None),
    (("client_info", "countryCode"), "country_code", TEXT, None),
    (("client_info", "deviceType"), "device_type", TEXT, None),
    (("client_info", "deviceModel"), "device_model", TEXT, None),
    (("payload", "action", "pageUrl"), "page_url", TEXT, None),
    (("payload", "action", "contentId"), "content_id", TEXT, None),
]

#: Objects: when unusable, every field read from them is unknown.
OBJECTS: list[tuple[tuple[str, ...], list[str]]] = [
    (("payload",), ["phone_number", "city", "latitude", "page_url", "content_id", "client_id"]),
    (("payload", "user"), ["phone_number", "username", "name", "city", "country", "latitude", "postcode"]),
    (("payload", "user", "location"), ["latitude", "longitude", "postcode"]),
    (("payload", "action"), ["page_url", "content_id", "click_action", "client_id", "gateway_session_id"]),
    (("client_info",), ["user_agent", "client_country", "country_code", "device_type", "device_model"]),
]

WRONG_FOR = {
    TEXT: [[], ["x"], {}, {"a": 1}, True, False],
    NUMBER: [[], [1.5], {}, {"a": 1}, True, False, "north", "NaN"],  # "" counts as absent
    TIME: [[], [1709186668], {}, {"a": 1}, True, False, "yesterday", 0, -5, float("inf")],
}
WRONG_OBJECT = [[], ["x"], "text", True, 12, 1.5]


def _view(spec: dict[str, bytes]) -> dict[str, Any]:
    return copy.deepcopy(orjson.loads(spec["payment_gateway.view"]))


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _drop(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]


def _field_cases() -> list[Any]:
    cases = []
    for path, attr, kind, fallback in FIELDS:
        for value in WRONG_FOR[kind]:
            cases.append(pytest.param(path, attr, value, fallback, id=f"{'.'.join(path)}={value!r}"))
    return cases


@pytest.mark.parametrize(("path", "attr", "fallback"), [pytest.param(p, a, f, id=".".join(p)) for p, a, _, f in FIELDS])
@pytest.mark.parametrize("how", ["missing", "null"])
def test_field_missing_or_null(
    spec: dict[str, bytes], path: tuple[str, ...], attr: str, fallback: Any, how: str
) -> None:
    obj = _view(spec)
    if how == "missing":
        _drop(obj, path)
    else:
        _set(obj, path, None)
    rec = extract(obj)
    assert getattr(rec, attr) == fallback
    assert rec.notes == []  # absent is not a problem worth a note
    assert rec.kind == "event"


@pytest.mark.parametrize(("path", "attr", "value", "fallback"), _field_cases())
def test_field_of_wrong_type(
    spec: dict[str, bytes], path: tuple[str, ...], attr: str, value: Any, fallback: Any
) -> None:
    obj = _view(spec)
    _set(obj, path, value)
    rec = extract(obj)
    assert getattr(rec, attr) == fallback
    assert any(note.startswith(".".join(path) + ":") for note in rec.notes), rec.notes


@pytest.mark.parametrize(("path", "attrs"), [pytest.param(p, a, id=".".join(p)) for p, a in OBJECTS])
@pytest.mark.parametrize("value", WRONG_OBJECT, ids=repr)
def test_object_of_wrong_type(spec: dict[str, bytes], path: tuple[str, ...], attrs: list[str], value: Any) -> None:
    obj = _view(spec)
    _set(obj, path, value)
    rec = extract(obj)
    for attr in attrs:
        assert getattr(rec, attr) is None, attr
    assert rec.notes and any(note.startswith(".".join(path) + ": expected an object") for note in rec.notes)
    assert len(rec.notes) == len(set(rec.notes))
    assert rec.event == "payment_gateway.view"  # the rest is still read


@pytest.mark.parametrize("path", [p for p, _ in OBJECTS], ids=lambda p: ".".join(p))
@pytest.mark.parametrize("how", ["missing", "null"])
def test_object_missing_or_null(spec: dict[str, bytes], path: tuple[str, ...], how: str) -> None:
    obj = _view(spec)
    if how == "missing":
        _drop(obj, path)
    else:
        _set(obj, path, None)
    rec = extract(obj)
    assert rec.notes == []
    assert rec.event == "payment_gateway.view"


def test_numbers_where_text_is_expected_are_kept_as_text(spec: dict[str, bytes]) -> None:
    obj = _view(spec)
    obj["payload"]["user"]["phoneNumber"] = 9892898898
    obj["payload"]["user"]["location"]["postcode"] = 110001
    obj["user_id"] = 42
    rec = extract(obj)
    assert (rec.phone_number, rec.postcode, rec.user_id) == ("9892898898", "110001", "42")
    assert rec.notes == []


def test_numeric_strings_where_numbers_are_expected(spec: dict[str, bytes]) -> None:
    obj = _view(spec)
    obj["payload"]["user"]["location"].update(latitude="28.5", longitude=" 77 ")
    rec = extract(obj)
    assert (rec.latitude, rec.longitude) == (28.5, 77.0)


def test_everything_wrong_at_once_never_raises() -> None:
    rec = extract({"event": ["x"], "payload": "nope", "client_info": 3, "created_at": {}, "contains": "action"})
    assert rec.kind == "event"
    assert rec.event is None and rec.created_at is None and rec.contains is None
    assert len(rec.notes) == len(set(rec.notes)) >= 4


def test_page_url_without_query_or_garbage(spec: dict[str, bytes]) -> None:
    for url in ["not a url", "https://x/overlay", "?clientId=&anonId=b", ""]:
        obj = _view(spec)
        obj["payload"]["action"]["pageUrl"] = url
        rec = extract(obj)
        assert rec.client_id is None
        assert rec.anon_id == ("b" if "anonId=b" in url else None)
    # A malformed host does not hide the query string: the ids are still read.
    obj = _view(spec)
    obj["payload"]["action"]["pageUrl"] = "http://[::1/?clientId=a"
    assert extract(obj).client_id == "a"


def test_article_url_encoded_once_is_not_over_decoded(spec: dict[str, bytes]) -> None:
    obj = _view(spec)
    obj["payload"]["action"]["pageUrl"] = "https://d/overlay?pageUrl=https%3A%2F%2Fa.example%2Fx%3Fq%3D100%2525"
    assert extract(obj).article_url == "https://a.example/x?q=100%25"


# --- created_at -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1709186668,
        1709186668.0,
        1709186668000,
        1709186668000.0,
        1709186668000000,
        "1709186668",
        " 1709186668000 ",
        "2024-02-29T06:04:28Z",
        "2024-02-29T11:34:28+05:30",
        "2024-02-29T06:04:28",
    ],
)
def test_created_at_forms(spec: dict[str, bytes], value: Any) -> None:
    obj = _view(spec)
    obj["created_at"] = value
    rec = extract(obj)
    assert rec.created_at == pytest.approx(1709186668.0)
    assert rec.notes == []


def test_created_at_in_milliseconds_keeps_the_fraction() -> None:
    assert normalise_created_at(1709186668123) == pytest.approx(1709186668.123)


@pytest.mark.parametrize("value", [None, True, "soon", "nan", "inf", float("nan"), -1, 0, 10**400, [], {}])
def test_created_at_unusable(value: Any) -> None:
    assert normalise_created_at(value) is None


# --- legacy and other events ------------------------------------------------------------------


def test_legacy_flat_webhook() -> None:
    body = {
        "userId": "5f1d0c5e9b1e8a0017a3b123",
        "clientId": "65015ff10070846629fb981e",
        "contentId": "Client-Story-Id-2",
        "transactionId": "txn_123",
        "amount": "49.00",
        "currency": "INR",
        "status": "SUCCESS",
        "phoneNumber": "9892898898",
        "email": "reader@example.com",
        "createdAt": "2024-02-29T06:04:28.000Z",
    }
    rec = parse_body(orjson.dumps(body))
    assert rec.kind == "legacy"
    assert rec.event is None
    assert rec.user_id == "5f1d0c5e9b1e8a0017a3b123"
    assert (rec.client_id, rec.content_id, rec.transaction_id) == (
        "65015ff10070846629fb981e",
        "Client-Story-Id-2",
        "txn_123",
    )
    assert (rec.amount, rec.currency, rec.payment_status) == (49.0, "INR", "SUCCESS")
    assert (rec.phone_number, rec.email) == ("9892898898", "reader@example.com")
    assert rec.created_at == pytest.approx(1709186668.0)
    assert rec.notes == []


def test_legacy_with_nothing_known() -> None:
    rec = extract({"hello": "world"})
    assert rec.kind == "legacy"
    assert rec.user_id is None and rec.event is None and rec.notes == []


def test_transaction_complete(spec: dict[str, bytes]) -> None:
    body = {
        "entity": "event",
        "user_id": USER_ID,
        "event": "transaction.complete",
        "contains": ["transaction", "user"],
        "payload": {
            "transaction": {
                "_id": "65e01c4bd03692125f1f3560",
                "status": "COMPLETE",
                "refundStatus": "NOT_REFUNDED",
                "orderId": "order_NhK2",
                "amount": 199,
                "currency": "INR",
                "paymentGateway": "RAZORPAY",
                "paymentId": "pay_NhK2",
                "paymentMode": "upi",
            },
            "user": {"userId": USER_ID, "phoneNumber": "9892898898", "name": "Asha"},
        },
        "client_info": {"deviceType": "mobile"},
        "created_at": 1709186900,
    }
    rec = parse_body(orjson.dumps(body))
    assert rec.kind == "event" and rec.event == "transaction.complete"
    assert (rec.amount, rec.currency, rec.payment_status) == (199.0, "INR", "COMPLETE")
    assert rec.transaction_id == "65e01c4bd03692125f1f3560"
    assert (rec.user_id, rec.name, rec.device_type) == (USER_ID, "Asha", "mobile")
    assert rec.page_url is None and rec.client_id is None
    assert rec.contains == "transaction,user"


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        (
            "transaction.failed",
            {"transaction": {"status": "FAILED", "amount": 0, "currency": "USD"}},
            (0.0, "USD", "FAILED"),
        ),
        (
            "purchase.pass",
            {"purchase": {"type": "PASS", "transactionId": "t1", "price": 10, "currency": "INR"}},
            (10.0, "INR", "PASS"),
        ),
        (
            "refunded.pay_per_use",
            {"refund": {"amount": "5.5", "currency": "INR", "transactionId": "t2"}},
            (5.5, "INR", None),
        ),
        (
            "cancelled.subscription",
            {"renewal": {"status": "CANCELLED", "price": 99, "currency": "INR"}},
            (99.0, "INR", "CANCELLED"),
        ),
    ],
)
def test_other_events(event: str, payload: dict[str, Any], expected: tuple[Any, ...]) -> None:
    rec = extract({"entity": "event", "event": event, "user_id": "u1", "payload": payload})
    assert rec.event == event and rec.user_id == "u1"
    assert (rec.amount, rec.currency, rec.payment_status) == expected
    assert rec.notes == []


def test_paywall_exit_that_lies_about_contains() -> None:
    rec = extract({"event": "paywall.exit", "contains": ["paywall", "user"], "payload": {"user": {"userId": "u9"}}})
    assert rec.user_id == "u9" and rec.contains == "paywall,user" and rec.notes == []


# --- decode_body ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"   \r\n\t ", "empty body"),
        (b"\xef\xbb\xbf", "empty body"),
        (b"hello", "not JSON"),
        (b'{"a": 1', "not JSON"),
        (b'{"a": 1}{"b": 2}', "not JSON"),
        (b'{"a": "\xff\xfe"}', "not valid UTF-8"),
        (b"\xc3\x28", "not valid UTF-8"),
        (b"[1, 2]", "an array, not an object"),
        (b"[]", "an array, not an object"),
        (b"42", "a number, not an object"),
        (b'"text"', "a string, not an object"),
        (b"null", "null, not an object"),
        (b"true", "a boolean, not an object"),
        (b'{"a": NaN}', "not JSON"),
        (b'{"a": Infinity}', "not JSON"),
        (b'{"a": 1e400}', "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "not JSON"),
        (b'{"a": "\\ud800"}', "not JSON"),
    ],
    ids=lambda value: value[:24].decode("latin-1") if isinstance(value, bytes) else None,
)
def test_decode_body_rejects(body: bytes, message: str) -> None:
    with pytest.raises(InvalidBody, match=message):
        decode_body(body)


def test_decode_body_accepts_bom_and_whitespace() -> None:
    assert decode_body(b'\xef\xbb\xbf{"event": "x"}') == {"event": "x"}
    assert decode_body(b'\n  {"event": "x"}  \n') == {"event": "x"}


def test_invalid_body_is_a_value_error() -> None:
    assert issubclass(InvalidBody, ValueError)


# --- properties -------------------------------------------------------------------------------

KNOWN_KEYS = sorted(
    {
        "entity",
        "event",
        "user_id",
        "created_at",
        "contains",
        "payload",
        "client_info",
        "user",
        "action",
        "location",
        "latitude",
        "longitude",
        "postcode",
        "userId",
        "phoneNumber",
        "username",
        "name",
        "email",
        "city",
        "country",
        "userAgent",
        "countryCode",
        "deviceType",
        "deviceModel",
        "pageUrl",
        "contentId",
        "clickAction",
        "transaction",
        "purchase",
        "refund",
        "renewal",
        "amount",
        "price",
        "currency",
        "status",
        "type",
        "_id",
        "transactionId",
        "orderId",
        "clientId",
        "clientContentId",
        "createdAt",
    }
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from([PAGE_URL, "?pageUrl=%zz&sessionId=", "http://[", "1709186668000", "2024-13-45"])
)
KEYS = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
JSONISH = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=6), max_leaves=40
)


@pytest.mark.slow
@given(st.dictionaries(KEYS, JSONISH, max_size=8))
@settings(max_examples=300, deadline=None)
def test_extract_never_raises_on_arbitrary_objects(obj: dict[str, Any]) -> None:
    rec = extract(obj)
    assert rec.kind in ("event", "legacy")
    assert set(rec.columns()) == set(COLUMNS)
    for key, value in rec.columns().items():
        assert value is None or isinstance(value, str | float), key
    if rec.created_at is not None:
        assert 0 < rec.created_at <= 10_000_000_000


@given(data=st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_extract_never_raises_on_spec_payload_with_one_field_replaced(spec: dict[str, bytes], data: Any) -> None:
    obj = orjson.loads(spec["payment_gateway.close"])
    node = obj
    while True:  # walk down to some object and replace one of its keys
        key = data.draw(st.sampled_from(sorted(node)))
        if isinstance(node[key], dict) and node[key] and data.draw(st.booleans()):
            node = node[key]
            continue
        node[key] = data.draw(JSONISH)
        break
    rec = extract(obj)
    orjson.dumps(rec.columns())  # storable as JSON too


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_decode_body_raises_only_invalid_body(body: bytes) -> None:
    try:
        value = decode_body(body)
    except InvalidBody as exc:
        assert str(exc)
    else:
        assert isinstance(value, dict)


STRICT_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=6),
    max_leaves=30,
)


@given(STRICT_JSON)
@settings(max_examples=200, deadline=None)
def test_decode_body_on_json_text(value: Any) -> None:
    body = json.dumps(value).encode()
    if isinstance(value, dict):
        assert decode_body(body) == value
    else:
        with pytest.raises(InvalidBody, match="not an object"):
            decode_body(body)


_URLISH = st.lists(st.sampled_from([*"%+&=?#aZ09fF2-_./:é", "%25", "%2F", "%C3%A9", "%zz", "%0a", "%7"])).map("".join)


@given(_URLISH)
def test_percent_decode_is_unquote(text: str) -> None:
    assert percent_decode(text) == unquote(text)
    assert percent_decode(text, plus=True) == unquote_plus(text)


@given(_URLISH)
def test_page_url_params_is_parse_qs_first_values(query: str) -> None:
    url = f"https://conscent.example/overlay?{query}"
    expected = {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    got = page_url_params(url)
    assert {k: got[k] for k in expected} == expected
