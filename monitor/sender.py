"""Post webhook bodies the way Conscent does, and measure what came back.

Used by ``conscent-monitor send`` and by the demo stream. Bodies go out as the
exact bytes given (the signature covers the raw body), failures of the network
become :class:`Result` rows rather than exceptions, so one dead endpoint never
ends a run.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from monitor.resources import sample_events_dir
from monitor.signing import SIGNATURE_HEADER, basic_auth_header, sign

#: Conscent's server-side events carry this agent (see client_info in the spec).
USER_AGENT = "axios/0.21.1"


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""


@dataclass
class Result:
    label: str
    status: int | None  # None when no HTTP response arrived
    latency: float  # seconds
    error: str | None = None
    response: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Summary:
    total: int
    by_status: dict[str, int]  # "200", "500", ..., and "error"
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.by_status.items() if code.startswith("2"))

    def describe(self) -> str:
        counts = ", ".join(f"{code} x{n}" for code, n in sorted(self.by_status.items()))
        text = f"{self.total} sent ({counts or 'nothing'})"
        if self.p50 is not None:
            text += "; latency " + " ".join(
                f"{name} {_ms(value)}"
                for name, value in (("p50", self.p50), ("p90", self.p90), ("p99", self.p99), ("max", self.max))
            )
        return text


def prepare(
    body: bytes,
    *,
    secret: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers Conscent would send with ``body``."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/plain, */*",
        "User-Agent": USER_AGENT,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    if basic_auth is not None:
        headers["Authorization"] = basic_auth_header(*basic_auth)
    headers.update(extra_headers or {})
    return headers


async def deliver(session: aiohttp.ClientSession, url: str, delivery: Delivery, *, timeout: float = 10.0) -> Result:
    """POST one delivery; network failures are returned, not raised."""
    started = time.perf_counter()
    try:
        async with session.post(
            url,
            data=delivery.body,
            headers=delivery.headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            content = await response.read()
            return Result(delivery.label, response.status, time.perf_counter() - started, None, content)
    except TimeoutError:
        # aiohttp's timeouts carry no message; say what happened.
        error = f"timed out after {timeout:g}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return Result(delivery.label, None, time.perf_counter() - started, error)


async def send_all(
    url: str,
    deliveries: Iterable[Delivery],
    *,
    concurrency: int = 1,
    rate: float | None = None,
    timeout: float = 10.0,
    on_result: Callable[[Result], None] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> list[Result]:
    """Send every delivery, at most ``concurrency`` at once and ``rate`` per second.

    Results come back in the order of ``deliveries``; ``on_result`` sees each
    one as soon as it completes.
    """
    pending: Iterator[tuple[int, Delivery]] = enumerate(deliveries)
    results: dict[int, Result] = {}
    pace = _Pacer(rate)

    async def worker(client: aiohttp.ClientSession) -> None:
        # Workers share one iterator, so a lazy or endless source is read
        # only as fast as it is sent.
        for index, delivery in pending:
            await pace.wait()
            result = await deliver(client, url, delivery, timeout=timeout)
            results[index] = result
            if on_result is not None:
                on_result(result)

    async def run(client: aiohttp.ClientSession) -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, concurrency)):
                group.create_task(worker(client))

    if session is not None:
        await run(session)
    else:
        async with aiohttp.ClientSession() as own:
            await run(own)
    return [results[index] for index in sorted(results)]


def summarize(results: Iterable[Result]) -> Summary:
    """Counts per status code and latency percentiles of answered requests."""
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    for result in results:
        if result.status is None:
            counts["error"] += 1
        else:
            counts[str(result.status)] += 1
            latencies.append(result.latency)
    latencies.sort()
    return Summary(
        total=sum(counts.values()),
        by_status=dict(counts),
        p50=_percentile(latencies, 50),
        p90=_percentile(latencies, 90),
        p99=_percentile(latencies, 99),
        max=latencies[-1] if latencies else None,
    )


def load_bodies(paths: Iterable[Path]) -> list[tuple[str, bytes]]:
    """``(file name, exact bytes)`` for each file, and each ``*.json`` in a folder."""
    chosen = list(paths) or [sample_events_dir()]
    bodies: list[tuple[str, bytes]] = []
    for path in chosen:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        bodies.extend((file.name, file.read_bytes()) for file in files)
    return bodies


def apply_overrides(body: bytes, sets: list[str], now: bool) -> bytes:
    """Rewrite ``dotted.path=value`` fields (and ``created_at`` when ``now``).

    Returns ``body`` untouched when there is nothing to change, so signatures
    of unmodified samples stay reproducible. Raises ValueError for a body that
    is not a JSON object or a malformed assignment.
    """
    if not sets and not now:
        return body
    obj = orjson.loads(body)
    if not isinstance(obj, dict):
        raise ValueError("can only override fields of a JSON object")
    for assignment in sets:
        path, sep, raw = assignment.partition("=")
        if not sep or not path:
            raise ValueError(f"expected path=value, got {assignment!r}")
        _assign(obj, path.split("."), _parse_value(raw))
    if now:
        obj["created_at"] = int(time.time())
    # Keep the look of the input: samples are indented, real deliveries compact.
    option = orjson.OPT_INDENT_2 if b"\n" in body.strip() else 0
    return orjson.dumps(obj, option=option)


def _parse_value(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _assign(node: Any, keys: list[str], value: Any) -> None:
    *parents, last = keys
    for depth, key in enumerate(parents):
        child = _child(node, key, ".".join(keys[: depth + 1]))
        if child is None:
            child = {}
            _put(node, key, child)
        node = child
    _put(node, last, value)


def _child(node: Any, key: str, where: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    raise ValueError(f"cannot descend into {where}: not an object")


def _put(node: Any, key: str, value: Any) -> None:
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
        node[int(key)] = value
    else:
        raise ValueError(f"cannot set {key!r}: parent is not an object")


class _Pacer:
    """Spaces starts ``1/rate`` seconds apart across all workers."""

    def __init__(self, rate: float | None) -> None:
        self.gap = 1.0 / rate if rate and rate > 0 else 0.0
        self.next_start = 0.0

    async def wait(self) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        start = max(now, self.next_start)
        # Claim the slot before sleeping so concurrent workers queue behind it.
        self.next_start = start + self.gap
        if start > now:
            await asyncio.sleep(start - now)


def _percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"
