"""How soon ``conscent-monitor wait`` sees a commit, and what waiting costs, on a large database.

A writer process commits one ``payment_gateway.close`` at a time into a copy of
a database that already holds N events (bench/scale.py's cached synthetic
one), every 100-300 ms at random so that commits fall anywhere in the poll
cycle. This process waits for each, as ``wait --since now --filter
'event:close user:…'`` does (``monitor.waiting.Waiter``), and records commit →
seen on the wall clock (one machine, one clock). Then it waits with nothing
committed for a while and reads its CPU time (``resource.getrusage``): the cost
of polling ``PRAGMA data_version``.

    python -m bench.wait_latency                  # 1,000,000 events, 50 commits, 10 s idle
    python -m bench.wait_latency --quick          # 10,000 events, 20 commits, 2 s idle
    python -m bench.wait_latency --size 50000 --commits 50 --idle 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, ROOT, describe_machine, median, quantile

READER = "65e01bd8d03692125f1f0bench"
CLOSE = ROOT / "sample_events" / "payment_gateway.close.json"


def _row(session_id: int) -> dict[str, object]:
    """A close of READER, as the listener stores it."""
    from monitor.events import parse_body

    body = json.loads(CLOSE.read_bytes())
    body["user_id"] = body["payload"]["user"]["userId"] = READER
    raw = json.dumps(body).encode()
    return {
        "session_id": session_id, "received_at": time.time(), "method": "POST", "path": "/",
        "remote_addr": "127.0.0.1", "headers": "{}", "content_type": "application/json", "body": raw,
        "body_size": len(raw), "body_sha256": hashlib.sha256(raw + str(time.time()).encode()).hexdigest(),
        "signature": "unchecked", "basic_auth": "unchecked", **parse_body(raw).columns(),
    }  # fmt: skip


def writer(db_path: Path, commits: int, seed: int) -> None:
    """The child: ``commits`` commits of one delivery each; prints each commit's wall-clock time."""
    from monitor import store

    db = store.connect(db_path)
    session_id = store.start_session(db, listen=None, mode="bench")
    pace = random.Random(seed)
    print("ready", flush=True)
    sys.stdin.readline()  # the waiter has its baseline
    for _ in range(commits):
        time.sleep(pace.uniform(0.1, 0.3))
        store.write_batch(db.conn, [_row(session_id)], [])
        print(f"{time.time():.6f}", flush=True)
    db.close()


def measure(db_path: Path, commits: int, idle: float, seed: int) -> dict[str, float]:
    from monitor.waiting import Waiter

    child = subprocess.Popen(
        [sys.executable, "-m", "bench.wait_latency", "--child", str(db_path), "--commits", str(commits),
         "--seed", str(seed)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    latencies: list[float] = []
    with Waiter(db_path, f"event:close user:{READER}", since="now") as waiter:
        child.stdin.write("go\n")
        child.stdin.flush()
        for n in range(1, commits + 1):
            outcome = waiter.wait(n, timeout=30)
            seen = time.time()
            assert outcome.satisfied, f"commit {n} not seen in 30 s"
            committed = float(child.stdout.readline())
            latencies.append((seen - committed) * 1000)
        child.wait(30)
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        outcome = waiter.wait(commits + 1, timeout=idle)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "commits": commits,
        "latency_median_ms": median(latencies),
        "latency_p95_ms": quantile(latencies, 0.95),
        "latency_max_ms": max(latencies),
        "idle_s": wall,
        "idle_cpu_ms": cpu * 1000,
        "idle_cpu_percent": cpu / wall * 100,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="events already in the database")
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of waiting with nothing committed")
    parser.add_argument("--quick", action="store_true", help="10,000 events, 20 commits, 2 s idle")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        writer(args.child, args.commits, args.seed)
        return {}
    if args.quick:
        args.size, args.commits, args.idle = 10_000, 20, 2.0
    from bench.scale import database

    print(describe_machine(), flush=True)
    source = database(args.size, args.cache)
    with tempfile.TemporaryDirectory(prefix="wait-latency-") as folder:
        copy = Path(folder) / "monitor.db"
        shutil.copyfile(source, copy)  # checkpointed by database(): the .db alone is the whole database
        result = measure(copy, args.commits, args.idle, args.seed)
    result["events"] = args.size
    print(
        f"{args.size:,} events, {args.commits} commits from another process: commit -> seen "
        f"median {result['latency_median_ms']:.1f} ms, p95 {result['latency_p95_ms']:.1f} ms, "
        f"max {result['latency_max_ms']:.1f} ms (target < 100 ms)"
    )
    print(
        f"idle {result['idle_s']:.1f} s: CPU {result['idle_cpu_ms']:.0f} ms "
        f"({result['idle_cpu_percent']:.2f} % of one core)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
