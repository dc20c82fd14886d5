"""Ingest benchmark: acknowledge-after-commit against a bare aiohttp handler.

Both servers run as subprocesses pinned to core 0; the load generator (wrk,
or an aiohttp client when wrk is missing) runs on core 1. Same body (the
spec's payment_gateway.view), same client, same run, so the ratio is fair.
After each monitor run every acknowledged delivery is counted in SQLite.

    python bench/ingest.py                 # 10 s per run, 16 and 64 connections
    python bench/ingest.py --quick         # 2 s per run (CI smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = ROOT / "sample_events" / "payment_gateway.view.json"

BARE_SERVER = """
import sys
from aiohttp import web

async def handle(request):
    await request.read()
    return web.json_response({"ok": True})

app = web.Application()
app.router.add_route("POST", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=lambda *a: print("ready", flush=True))
"""

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


@dataclass
class Run:
    name: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ok: int
    stored: int | None = None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cmd: list[str], core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def wait_ready(port: int, timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def run_wrk(url: str, connections: int, seconds: float, script: Path) -> tuple[float, float, float, int]:
    cmd = pinned(["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), "--latency", url], 1)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = int(re.search(r"p50_us=(\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    p99 = int(re.search(r"p99_us=(\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    return rps, p50, p99, total - (int(non2xx.group(1)) if non2xx else 0)


async def _client(url: str, connections: int, seconds: float, body: bytes) -> tuple[float, float, float, int]:
    import aiohttp

    latencies: list[float] = []
    ok = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        while time.monotonic() < deadline:
            start = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                ok += resp.status == 200
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.monotonic() - began
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return len(latencies) / elapsed, pick(0.5), pick(0.99), ok


def load(url: str, connections: int, seconds: float, script: Path) -> tuple[float, float, float, int]:
    if shutil.which("wrk"):
        return run_wrk(url, connections, seconds, script)
    return asyncio.run(_client(url, connections, seconds, BODY.read_bytes()))


def bench_bare(connections: int, seconds: float, script: Path) -> Run:
    port = free_port()
    proc = subprocess.Popen(pinned([sys.executable, "-c", BARE_SERVER, str(port)], 0), stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        rps, p50, p99, ok = load(f"http://127.0.0.1:{port}/", connections, seconds, script)
    finally:
        proc.terminate()
        proc.wait(10)
    return Run("bare aiohttp", connections, rps, p50, p99, ok)


def bench_monitor(connections: int, seconds: float, script: Path, folder: Path) -> Run:
    port = free_port()
    db = folder / f"ingest-{connections}.db"
    cmd = [sys.executable, "-m", "monitor", "watch", "--headless", "--port", str(port), "--db", str(db)]
    proc = subprocess.Popen(pinned(cmd, 0), stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_ready(port)
        rps, p50, p99, ok = load(f"http://127.0.0.1:{port}/", connections, seconds, script)
    finally:
        proc.terminate()
        proc.wait(30)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return Run("monitor headless", connections, rps, p50, p99, ok, stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 16 connections only")
    args = parser.parse_args()
    seconds = 2 if args.quick else args.seconds
    levels = [16] if args.quick else [16, 64]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = folder / "post.lua"
        script.write_text(WRK_SCRIPT.replace("{body}", str(BODY)))
        print(f"cores {os.cpu_count()}, client {'wrk' if shutil.which('wrk') else 'aiohttp'}, {seconds:g} s per run")
        print(f"{'setup':<18} {'conns':>5} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} "
              f"{'acked':>7} {'stored':>7}")
        for connections in levels:
            bare = bench_bare(connections, seconds, script)
            mon = bench_monitor(connections, seconds, script, folder)
            for run in (bare, mon):
                ratio = run.requests_per_s / bare.requests_per_s
                stored = "" if run.stored is None else str(run.stored)
                print(f"{run.name:<18} {run.connections:>5} {run.requests_per_s:>9.0f} {run.p50_ms:>7.1f} "
                      f"{run.p99_ms:>7.1f} {ratio:>6.2f} {run.ok:>7} {stored:>7}")
            if mon.stored is not None and mon.stored < mon.ok:
                print(f"LOST: {mon.ok - mon.stored} acknowledged deliveries missing")
                sys.exit(1)


if __name__ == "__main__":
    main()
