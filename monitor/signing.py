"""Conscent's two ways of authenticating a delivery, and header redaction.

``X-Conscent-Signature`` is the hex HMAC-SHA256 of the raw body keyed with the
webhook secret; older webhooks send HTTP Basic auth with the client's API key
and secret. Both checks compare in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from monitor.textsafe import utf8_safe

SIGNATURE_HEADER = "X-Conscent-Signature"

VALID, INVALID, MISSING, UNCHECKED = "valid", "invalid", "missing", "unchecked"

#: Headers whose values are credentials; stored and shown redacted (``set-cookie``: a forward
#: target's answer may open a session).
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
    }
)
REDACTED = "[redacted]"
#: Authorization schemes kept in front of a redacted value (anything else might be the secret itself).
_SCHEMES = frozenset({"basic", "bearer", "digest", "token", "negotiate"})


def sign(body: bytes, secret: str) -> str:
    """The signature Conscent would send for ``body``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_signature(header: str | None, secret: str | None, *bodies: bytes) -> str:
    """``valid`` when ``header`` signs any of ``bodies`` (raw, then decoded)."""
    if not secret:
        return UNCHECKED
    if header is None or not header.strip():
        return MISSING
    given = header.strip().lower().encode("ascii", "replace")
    ok = False
    for body in bodies:
        # Evaluate every candidate so timing does not say which one matched.
        ok |= hmac.compare_digest(given, sign(body, secret).encode("ascii"))
    return VALID if ok else INVALID


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def check_basic_auth(header: str | None, credentials: tuple[str, str] | None) -> str:
    """``valid`` when the Authorization header carries exactly ``credentials``."""
    if credentials is None:
        return UNCHECKED
    if header is None or not header.strip():
        return MISSING
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return INVALID
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return INVALID
    expected = f"{credentials[0]}:{credentials[1]}".encode()
    return VALID if hmac.compare_digest(given, expected) else INVALID


def parse_credentials(text: str) -> tuple[str, str]:
    """``KEY:SECRET`` from the command line; raises ValueError when malformed."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("expected KEY:SECRET")
    return user, password


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a JSON-ready dict; repeated names are joined with ", ".

    Credentials keep only their scheme (``Basic [redacted]``); text that is not
    valid UTF-8 is replaced so the result can always be stored and serialised.
    """
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = utf8_safe(str(raw_name))  # aiohttp gives istr, which orjson will not take as a key
        value = utf8_safe(str(raw_value))
        if name.lower() in SECRET_HEADERS:
            scheme = value.strip().split(" ", 1)[0]
            value = f"{scheme} {REDACTED}" if " " in value.strip() and scheme.lower() in _SCHEMES else REDACTED
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo (``http://user:pass@host/``) redacted, for records and display."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # not a URL anyone could send to either
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{hostport}"))
