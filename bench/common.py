"""Shared bits of the benchmarks: machine and versions, pinning, ports, load generators."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = ROOT / "sample_events" / "payment_gateway.view.json"
CACHE = Path(os.environ.get("CONSCENT_BENCH_CACHE", "/tmp/conscent-bench"))

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
done = function(summary, latency, requests)
  io.write(string.format("p50_us=%d p99_us=%d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def machine() -> dict[str, str]:
    """nproc, CPU model and the versions that matter, for the report."""
    import sqlite3
    from importlib.metadata import version

    model = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    out = {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for name in ("textual", "aiohttp", "orjson"):
        try:
            out[name] = version(name)
        except Exception:
            out[name] = "?"
    out["wrk"] = "yes" if shutil.which("wrk") else "no (aiohttp client)"
    return out


def describe_machine() -> str:
    return ", ".join(f"{k} {v}" for k, v in machine().items())


def pinned(cmd: list[str], core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def wait_line(proc: subprocess.Popen[str], word: str, timeout: float = 30) -> None:
    """Wait for a line containing ``word`` on the process's stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process exited before saying {word!r} (rc {proc.poll()})")
        if word in line:
            return
    raise RuntimeError(f"no {word!r} within {timeout} s")


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    return f"{min(values):.0f}-{max(values):.0f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Load:
    """What the client saw: rate, latency, answers."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ok: int  # 2xx answers
    total: int


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, connections: int, seconds: float, script: Path, *, core: int = 1) -> Load:
    threads = 1
    cmd = pinned(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            "--latency",
            url,
        ],
        core,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = int(re.search(r"p50_us=(\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    p99 = int(re.search(r"p99_us=(\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    return Load(rps, p50, p99, total - (int(non2xx.group(1)) if non2xx else 0), total)


async def aiohttp_load(url: str, connections: int, seconds: float, body: bytes, *, rate: float | None = None) -> Load:
    """A closed-loop client (``rate=None``) or an open-loop one sending ``rate`` requests/s.

    Latency of the paced client is measured from the moment each request was
    due, so a server that falls behind is not flattered (no coordinated omission).
    """
    import aiohttp

    latencies: list[float] = []
    ok = 0
    total = 0
    began = time.perf_counter()
    deadline = began + seconds
    headers = {"Content-Type": "application/json"}

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        nonlocal ok, total
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok += 200 <= resp.status < 300
        except aiohttp.ClientError:
            pass
        total += 1
        latencies.append(time.perf_counter() - due)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        if rate is None:

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    await one(session, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(connections)))
        else:
            tasks: set[asyncio.Task[None]] = set()
            sent = 0
            while (now := time.perf_counter()) < deadline:
                due_count = int((now - began) * rate) - sent
                for _ in range(due_count):
                    due = began + (sent + 1) / rate
                    task = asyncio.create_task(one(session, due))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    sent += 1
                await asyncio.sleep(0.002)
            if tasks:
                await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    return Load(total / elapsed, quantile(latencies, 0.5) * 1000, quantile(latencies, 0.99) * 1000, ok, total)


def count_rows(db: Path, table: str = "events") -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def python() -> str:
    return sys.executable
