"""Signature and basic-auth checks, and header redaction."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from monitor.signing import (
    INVALID,
    MISSING,
    REDACTED,
    UNCHECKED,
    VALID,
    basic_auth_header,
    check_basic_auth,
    check_signature,
    parse_credentials,
    redact_headers,
    sign,
)

BODY = b'{"event":"payment_gateway.view","user_id":"65e01bd8d03692125f1f353d"}'
SECRET = "whsec_test"


def test_sign_is_hex_hmac_sha256_of_the_raw_body() -> None:
    assert sign(BODY, SECRET) == hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert len(sign(BODY, SECRET)) == 64


def test_valid_signature() -> None:
    assert check_signature(sign(BODY, SECRET), SECRET, BODY) == VALID


def test_uppercase_hex_and_surrounding_space_accepted() -> None:
    assert check_signature(f"  {sign(BODY, SECRET).upper()} ", SECRET, BODY) == VALID


def test_signature_of_any_candidate_body() -> None:
    # The listener passes the decompressed body and the bytes on the wire.
    wire = b"compressed-bytes"
    assert check_signature(sign(wire, SECRET), SECRET, BODY, wire) == VALID
    assert check_signature(sign(BODY, SECRET), SECRET, BODY, wire) == VALID


@pytest.mark.parametrize(
    "header",
    [
        sign(BODY, "other-secret"),
        sign(BODY + b" ", SECRET),  # re-serialised bodies do not count
        sign(BODY, SECRET)[:-1],
        "sha256=" + sign(BODY, SECRET),
        "not hex at all",
        "é" * 64,
    ],
)
def test_invalid_signature(header: str) -> None:
    assert check_signature(header, SECRET, BODY) == INVALID


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_signature(header: str | None) -> None:
    assert check_signature(header, SECRET, BODY) == MISSING


@pytest.mark.parametrize("header", [None, "whatever", sign(BODY, SECRET)])
def test_unchecked_without_a_secret(header: str | None) -> None:
    assert check_signature(header, None, BODY) == UNCHECKED
    assert check_signature(header, "", BODY) == UNCHECKED


CREDS = ("api-key", "api:secret")  # the password may contain a colon


def test_basic_auth_valid() -> None:
    assert check_basic_auth(basic_auth_header(*CREDS), CREDS) == VALID
    token = base64.b64encode(b"api-key:api:secret").decode()
    assert check_basic_auth(f"basic   {token}", CREDS) == VALID  # scheme is case-insensitive


@pytest.mark.parametrize(
    "header",
    [
        basic_auth_header("api-key", "wrong"),
        basic_auth_header("other", "api:secret"),
        "Basic " + base64.b64encode(b"api-key").decode(),
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + "é" * 8,
        "Basic YWJj=garbage",
        "Bearer " + base64.b64encode(b"api-key:api:secret").decode(),
        "Digest username=api-key",
        base64.b64encode(b"api-key:api:secret").decode(),  # no scheme
    ],
)
def test_basic_auth_invalid(header: str) -> None:
    assert check_basic_auth(header, CREDS) == INVALID


@pytest.mark.parametrize("header", [None, "", "  "])
def test_basic_auth_missing(header: str | None) -> None:
    assert check_basic_auth(header, CREDS) == MISSING


def test_basic_auth_unchecked_without_credentials() -> None:
    assert check_basic_auth(basic_auth_header(*CREDS), None) == UNCHECKED
    assert check_basic_auth(None, None) == UNCHECKED


def test_parse_credentials() -> None:
    assert parse_credentials("key:se:cret") == ("key", "se:cret")
    for bad in ["nocolon", ":secret", "key:", ""]:
        with pytest.raises(ValueError, match="KEY:SECRET"):
            parse_credentials(bad)


def test_redact_headers() -> None:
    signature = sign(BODY, SECRET)
    headers = [
        ("Host", "127.0.0.1"),
        ("Authorization", basic_auth_header(*CREDS)),
        ("Cookie", "session=abc; other=def"),
        ("X-Conscent-Signature", signature),
        ("Proxy-Authorization", "Bearer tok"),
        ("X-Api-Key", "k-123"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-For", "10.0.0.2"),
    ]
    out = redact_headers(headers)
    assert out["Authorization"] == f"Basic {REDACTED}"
    assert out["Cookie"] == REDACTED
    assert out["Proxy-Authorization"] == f"Bearer {REDACTED}"
    assert out["X-Api-Key"] == REDACTED
    assert out["X-Conscent-Signature"] == signature  # a MAC of the body, not a credential
    assert out["Host"] == "127.0.0.1"
    assert out["X-Forwarded-For"] == "10.0.0.1, 10.0.0.2"
    flat = repr(out)
    assert "YXBpLWtleTphcGk6c2VjcmV0" not in flat and "abc" not in flat and "tok" not in flat


def test_redact_keeps_no_part_of_a_schemeless_credential() -> None:
    assert redact_headers([("authorization", "s3cr3t-token with-space")]) == {"authorization": REDACTED}
    assert redact_headers([("AUTHORIZATION", "s3cr3t")]) == {"AUTHORIZATION": REDACTED}


def test_redact_headers_makes_undecodable_text_storable() -> None:
    out = redact_headers([("X-Odd", "caf\udce9"), ("Authorization", "Basic \udcff")])
    assert out == {"X-Odd": "caf\ufffd", "Authorization": f"Basic {REDACTED}"}
    for key, value in out.items():
        (key + value).encode("utf-8")
