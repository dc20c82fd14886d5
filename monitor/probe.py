"""Reachability, checked not assumed: the monitor asks for itself through its public URL.

``GET <public_url>/.well-known/conscent-monitor/probe/<token>``: the token is
made by :func:`new_token` and known only to this process; the listener answers
that path with the token (and nothing is stored). Any other answer means the
URL leads somewhere else. Core module: aiohttp only.
"""

from __future__ import annotations

import secrets
import socket
import time
from typing import NamedTuple

import aiohttp

PROBE_PREFIX = "/.well-known/conscent-monitor/probe/"
PROBE_TIMEOUT = 10.0
#: What a tunnel's edge answers when the program behind it is gone (Cloudflare's 530 is "origin unreachable").
EDGE_DOWN = frozenset({502, 503, 504, 521, 522, 523, 530})


def new_token() -> str:
    return secrets.token_urlsafe(24)


def probe_url(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + PROBE_PREFIX + token


class ProbeResult(NamedTuple):  # not a dataclass: this module is imported at every start-up, dataclasses cost 1-2 ms
    reachable: bool
    ms: float | None = None
    #: ``dns``, ``down``, ``wrong`` or ``timeout`` when not reachable.
    kind: str = ""
    #: Why not, in a few words (no retry time: the caller adds it).
    reason: str = ""


async def probe(
    http: aiohttp.ClientSession, public_url: str, token: str, timeout: float = PROBE_TIMEOUT
) -> ProbeResult:
    """One request through the public URL; never raises for a network failure."""
    url = probe_url(public_url, token)
    started = time.perf_counter()
    try:
        async with http.get(
            url,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            headers={"Cache-Control": "no-cache"},
        ) as resp:
            body = await resp.content.read(4096)
            ms = (time.perf_counter() - started) * 1000
            if resp.status == 200 and body.strip() == token.encode():
                return ProbeResult(True, ms)
            if resp.status in EDGE_DOWN:
                return ProbeResult(False, ms, "down", f"tunnel down: the public side answered {resp.status}")
            return ProbeResult(
                False, ms, "wrong", f"wrong answer: HTTP {resp.status} from something that is not this monitor"
            )
    except aiohttp.ClientConnectorDNSError:
        return ProbeResult(False, None, "dns", "DNS not propagated yet")
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, socket.gaierror):
            return ProbeResult(False, None, "dns", "DNS not propagated yet")
        if isinstance(exc.os_error, ConnectionRefusedError):
            return ProbeResult(False, None, "down", "tunnel down: connection refused")
        return ProbeResult(False, None, "down", f"tunnel down: cannot connect ({type(exc.os_error).__name__})")
    except TimeoutError:
        return ProbeResult(False, None, "timeout", f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return ProbeResult(False, None, "down", f"tunnel down: {type(exc).__name__}")
