"""Post webhook bodies the way Conscent does, and measure what came back.

Used by ``conscent-monitor send`` and by the demo stream. Bodies go out as the
exact bytes given (the signature covers the raw body), failures of the network
become :class:`Result` rows rather than exceptions, so one dead endpoint never
ends a run.
"""

from __future__ import annotations

import asyncio
import errno
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from monitor.resources import sample_events_dir
from monitor.signing import SIGNATURE_HEADER, basic_auth_header, sign
from monitor.wording import count, number

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
    error: str | None = None  # why no HTTP answer came, in a few words ("connection refused")
    response: bytes = b""
    started: float = 0.0  # time.perf_counter() when the request started

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
    failures: dict[str, int] = field(default_factory=dict)  # reason -> deliveries that got no answer
    elapsed: float = 0.0  # from the first start to the last answer, in seconds
    start_rate: float | None = None  # deliveries started per second (what --rate paces); None for one
    mean_latency: float = 0.0  # of every delivery, answered or not

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.by_status.items() if code.startswith("2"))

    @property
    def rate(self) -> float:
        """Deliveries completed per second over the whole run."""
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    def describe(self) -> str:
        """``15 deliveries in 0.04 s (375/s): 15 delivered; latency p50 ...`` or ``0 delivered, 15 failed: ...``."""
        if not self.total:
            return "nothing sent"
        answered = {code: n for code, n in sorted(self.by_status.items()) if code != "error"}
        delivered = f"{number(self.ok)} delivered"
        good = [code for code in answered if code.startswith("2")]
        if good and good != ["200"]:
            delivered += " (" + ", ".join(f"{number(answered[code])} answered {code}" for code in good) + ")"
        parts = [delivered]
        parts += [f"{number(n)} answered {code}" for code, n in answered.items() if not code.startswith("2")]
        if self.failures:
            failed = sum(self.failures.values())
            reasons = sorted(self.failures.items(), key=lambda item: -item[1])
            why = reasons[0][0] if len(reasons) == 1 else ", ".join(f"{r} ({number(n)})" for r, n in reasons)
            parts.append(f"{number(failed)} failed: {why}")
        text = f"{count(self.total, 'delivery')} in {seconds(self.elapsed)} ({per_second(self.rate)}): "
        text += ", ".join(parts)
        if self.p50 is not None:
            text += "; latency " + " ".join(
                f"{name} {_ms(value)}"
                for name, value in (("p50", self.p50), ("p90", self.p90), ("p99", self.p99), ("max", self.max))
            )
        return text


#: The most deliveries ``send`` keeps in flight at once (``--concurrency``).
MAX_CONCURRENCY = 1024

#: How far below ``--rate`` the achieved start rate may fall before :func:`rate_shortfall` speaks.
RATE_MARGIN = 0.9


def rate_shortfall(summary: Summary, asked: float, concurrency: int, cpu_share: float = 0.0) -> str | None:
    """Why the run started deliveries slower than ``asked`` per second, or None when it kept up.

    Each of the ``concurrency`` workers waits for its delivery's answer before
    starting the next, so the rate is at most ``concurrency`` divided by the
    time a delivery takes: the fix is more concurrency, unless this process
    was busy the whole run (``cpu_share``, its CPU time over the wall time,
    near 1), when it is the limit itself.
    """
    achieved = summary.start_rate
    if achieved is None or achieved >= asked * RATE_MARGIN or not summary.total:
        return None
    text = f"reached {per_second(achieved)} of the {per_second(asked)} asked"
    if cpu_share >= CPU_BOUND:
        return f"{text}: this process was busy the whole time (CPU-bound), so more --concurrency will not help"
    each = summary.elapsed * concurrency / summary.total
    needed = min(MAX_CONCURRENCY, max(concurrency + 1, math.ceil(concurrency * asked / achieved * 1.2)))
    if concurrency >= MAX_CONCURRENCY:
        return f"{text}: {count(concurrency, 'delivery')} in flight at a time already; the target is the limit"
    in_flight = count(concurrency, "delivery")
    return (
        f"{text}: {in_flight} in flight at a time (--concurrency {concurrency}), {_ms(each)} each; "
        f"--concurrency {needed} should reach it if the target keeps up"
    )


#: A share of the wall time spent on this process's CPU above which more concurrency cannot help.
CPU_BOUND = 0.9


def seconds(value: float) -> str:
    """``0.04 s``, ``12.3 s``: two decimals below a second, one above."""
    return f"{value:.2f} s" if value < 1 else f"{value:,.1f} s"


def per_second(rate: float) -> str:
    """``375/s``, ``16,234/s``, ``2.5/s``: whole numbers from 10 up."""
    return f"{number(round(rate) if rate >= 10 else round(rate, 1))}/s"


def url_problem(text: str) -> str | None:
    """Why ``text`` is not an http(s) URL with a host to post to, or None when it is one."""
    if any(ch.isspace() for ch in text):
        return "it contains spaces; give a URL such as http://127.0.0.1:8787/"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        return f"{exc}; give a URL such as http://127.0.0.1:8787/"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        if "://" not in text and text:
            return f"it needs http:// or https:// in front (http://{text})"
        return "only http:// and https:// URLs can be used (e.g. http://127.0.0.1:8787/)"
    if not parts.hostname:
        return "it has no host (e.g. http://127.0.0.1:8787/)"
    if port == 0:
        return "port 0 cannot be posted to"
    return None


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
            return Result(delivery.label, response.status, time.perf_counter() - started, None, content, started)
    except TimeoutError:
        # aiohttp's timeouts carry no message; say what happened.
        error = f"timed out after {timeout:g}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = failure_reason(exc)
    return Result(delivery.label, None, time.perf_counter() - started, error, b"", started)


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def failure_reason(exc: BaseException) -> str:
    """A few words for a request that got no HTTP answer: ``connection refused``, ``unknown host``."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "unknown host"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientConnectorSSLError):
        return f"TLS failed: {exc}"
    code = exc.os_error.errno if isinstance(exc, aiohttp.ClientConnectorError) else getattr(exc, "errno", None)
    if code in _ERRNO_REASONS:
        return _ERRNO_REASONS[code]
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


async def send_all(
    url: str,
    deliveries: Iterable[Delivery],
    *,
    concurrency: int = 1,
    rate: float | None = None,
    timeout: float = 10.0,
    on_result: Callable[[Result], None] | None = None,
    session: aiohttp.ClientSession | None = None,
    probe: bool = False,
) -> list[Result]:
    """Send every delivery, at most ``concurrency`` at once and ``rate`` per second.

    Results come back in the order of ``deliveries``; ``on_result`` sees each
    one as soon as it completes. With ``probe``, the first delivery goes alone
    and, when it gets no HTTP answer, nothing else is sent: a target that is
    down costs one failed request, and the result list holds only that one.
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
        if probe:
            first = next(pending, None)
            if first is None:
                return
            await pace.wait()
            results[first[0]] = result = await deliver(client, url, first[1], timeout=timeout)
            if on_result is not None:
                on_result(result)
            if result.status is None:
                return
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
    """Counts per status code and per failure, latency percentiles of answered requests, and the pace."""
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    every: list[Result] = []
    for result in results:
        every.append(result)
        if result.status is None:
            counts["error"] += 1
            failures[result.error or "no answer"] += 1
        else:
            counts[str(result.status)] += 1
            latencies.append(result.latency)
    latencies.sort()
    starts = sorted(result.started for result in every)
    elapsed = max((r.started + r.latency for r in every), default=0.0) - (starts[0] if starts else 0.0)
    spread = starts[-1] - starts[0] if starts else 0.0
    return Summary(
        total=sum(counts.values()),
        by_status=dict(counts),
        p50=_percentile(latencies, 50),
        p90=_percentile(latencies, 90),
        p99=_percentile(latencies, 99),
        max=latencies[-1] if latencies else None,
        failures=dict(failures),
        elapsed=elapsed,
        start_rate=(len(starts) - 1) / spread if len(starts) > 1 and spread > 0 else None,
        mean_latency=sum(r.latency for r in every) / len(every) if every else 0.0,
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
    """Spaces starts ``1/rate`` seconds apart across all workers, on a fixed schedule.

    A start that comes a little late (a sleep wakes up to a millisecond after
    its time, an answer was slow) does not push the schedule back: the next
    starts catch up, so the rate asked is the rate reached when concurrency
    allows it. The schedule lags at most ``SLACK`` behind the clock, so after a
    stall only a few deliveries go out back to back.
    """

    SLACK = 0.01  # seconds, or four gaps when they are longer

    def __init__(self, rate: float | None) -> None:
        self.gap = 1.0 / rate if rate and rate > 0 else 0.0
        self.next_start: float | None = None

    async def wait(self) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        slack = max(self.SLACK, 4 * self.gap)
        start = now if self.next_start is None else max(now - slack, self.next_start)
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
