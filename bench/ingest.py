"""Ingest benchmark: acknowledge-after-commit against a bare aiohttp handler.

Every server runs as a subprocess pinned to core 0; the load generator (wrk,
or an aiohttp client when wrk is missing) runs on core 1. Same body (the
spec's payment_gateway.view), same client, same run, so the ratio is fair.
Set-ups: ``bare`` (reads the body, answers 200), ``headless``
(``conscent-monitor watch --headless``), ``tui`` (the live TUI on Textual's
headless driver, bench/tui_server.py) and ``tui+fwd`` (the same with
``--forward-to`` a bare server, pinned to core 1 with the client). ``floor``
is the cheapest acknowledge-after-commit server there is (bare aiohttp plus a
group commit of the raw body into a two-column table): the ceiling for any
design that stores a delivery before answering.
``--breakdown`` runs bare, floor, the stages of bench/stage_server.py
(``skeleton``, ``parse``, ``store``) and headless, and prints what each piece
of the monitor's work costs per delivery (µs of the server's one core).
Rounds are interleaved (every set-up once per round) and the best round is
reported with the spread. After each monitor run every acknowledged delivery
is counted in the database.

    python -m bench.ingest                       # 3 rounds x 8 s, 16 and 64 connections
    python -m bench.ingest --rounds 5 --seconds 10
    python -m bench.ingest --quick               # 1 round, 2 s, 16 connections (smoke test)
    python -m bench.ingest --client aiohttp      # the fallback client even when wrk is there
    python -m bench.ingest --breakdown           # where the time per delivery goes
    python -m bench.ingest --setups bare headless --index-set checks=checks.sql --index-set mine=mine.sql

``--index-set NAME=FILE`` adds the set-up ``headless+NAME``: the headless
monitor on a database made by ``store.open_store`` and then given the
``CREATE INDEX`` statements of FILE (``;``-separated), so every delivery also
writes those indexes. Set-ups alternate within each round, so the ratios of
one run compare index sets fairly on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import (
    BODY,
    ROOT,
    WRK_SCRIPT,
    Load,
    aiohttp_load,
    count_rows,
    describe_machine,
    free_port,
    have_wrk,
    pinned,
    run_wrk,
    spread,
    wait_line,
)

SETUPS = ("bare", "floor", "headless", "tui", "tui+fwd")
STAGES = ("skeleton", "parse", "store")
BREAKDOWN = ("bare", "floor", "skeleton", "parse", "store", "headless")
#: Where each set-up keeps what it acknowledged.
_TABLE = {"floor": "raw", "skeleton": "raw", "parse": "raw"}


@dataclass
class Run:
    setup: str
    connections: int
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    acked: int
    stored: int | None = None
    forwards: int | None = None

    @property
    def missing(self) -> int:
        return 0 if self.stored is None else max(0, self.acked - self.stored)


def load(url: str, connections: int, seconds: float, script: Path, client: str) -> Load:
    if client == "wrk":
        return run_wrk(url, connections, seconds, script)
    return asyncio.run(aiohttp_load(url, connections, seconds, BODY.read_bytes()))


def read_index_set(text: str) -> tuple[str, list[str]]:
    """``NAME=FILE`` -> (NAME, the file's statements)."""
    name, _, path = text.partition("=")
    if not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    statements = [s.strip() for s in Path(path).read_text().split(";") if s.strip()]
    return name, statements


def prepare_indexes(db: Path, statements: list[str]) -> None:
    """Create the monitor's schema in ``db`` and then these extra indexes."""
    from monitor import store

    conn = store.open_store(db)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def start_server(
    setup: str, port: int, db: Path, folder: Path, extra: dict[str, list[str]] | None = None
) -> list[subprocess.Popen[str]]:
    """The processes of one set-up, the one on ``port`` last; returns once it listens."""
    procs: list[subprocess.Popen[str]] = []
    if setup.startswith("headless+"):
        prepare_indexes(db, (extra or {})[setup.removeprefix("headless+")])
        setup = "headless"
    if setup == "bare":
        cmd = [sys.executable, "-m", "bench.bare_server", str(port)]
        procs.append(subprocess.Popen(pinned(cmd, 0), stdout=subprocess.PIPE, text=True, cwd=ROOT))
    elif setup == "floor" or setup in STAGES:
        cmd = [sys.executable, "-m", "bench.stage_server", str(port), str(db), setup]
        procs.append(subprocess.Popen(pinned(cmd, 0), stdout=subprocess.PIPE, text=True, cwd=ROOT))
    elif setup == "headless":
        cmd = [sys.executable, "-m", "monitor", "watch", "--headless", "--port", str(port), "--db", str(db)]
        procs.append(subprocess.Popen(pinned(cmd, 0), stdout=subprocess.PIPE, text=True, cwd=ROOT))
        wait_line(procs[-1], "listening")
        # The headless mode prints a line per delivery: read them, as a terminal would.
        _drain(procs[-1])
        return procs
    else:
        cmd = [sys.executable, "-m", "bench.tui_server", "--port", str(port), "--db", str(db)]
        if setup == "tui+fwd":
            target = free_port()
            target_cmd = [sys.executable, "-m", "bench.bare_server", str(target)]
            procs.append(subprocess.Popen(pinned(target_cmd, 1), stdout=subprocess.PIPE, text=True, cwd=ROOT))
            wait_line(procs[-1], "ready")
            cmd += ["--forward-to", f"http://127.0.0.1:{target}/hook"]
        procs.append(subprocess.Popen(pinned(cmd, 0), stdout=subprocess.PIPE, text=True, cwd=ROOT))
    wait_line(procs[-1], "ready" if setup != "headless" else "listening")
    return procs


def _drain(proc: subprocess.Popen[str]) -> None:
    import threading

    def run() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    threading.Thread(target=run, daemon=True).start()


def stop_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_one(
    setup: str,
    connections: int,
    seconds: float,
    script: Path,
    folder: Path,
    client: str,
    round_no: int,
    extra: dict[str, list[str]] | None = None,
) -> Run:
    port = free_port()
    db = folder / f"ingest-{setup}-{connections}-{round_no}.db"
    procs = start_server(setup, port, db, folder, extra)
    try:
        time.sleep(0.3)
        got = load(f"http://127.0.0.1:{port}/", connections, seconds, script, client)
    finally:
        stop_all(procs)
    run = Run(setup, connections, round_no, got.requests_per_s, got.p50_ms, got.p99_ms, got.ok)
    if setup != "bare":
        run.stored = count_rows(db, _TABLE.get(setup, "events"))
        if setup == "tui+fwd":
            run.forwards = count_rows(db, "forwards")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    return run


def main(argv: list[str] | None = None) -> list[Run]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS + STAGES)
    parser.add_argument("--breakdown", action="store_true", help=f"set-ups {' '.join(BREAKDOWN)}, cost per delivery")
    parser.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, 16 connections")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument(
        "--index-set",
        type=read_index_set,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="add set-up headless+NAME: the monitor with FILE's CREATE INDEX statements too",
    )
    args = parser.parse_args(argv)
    extra: dict[str, list[str]] = dict(args.index_set)
    if args.quick:
        args.seconds, args.rounds, args.connections = 2, 1, [16]
    if args.breakdown:
        args.setups = list(BREAKDOWN)
    args.setups += [f"headless+{name}" for name in extra]
    client = args.client if args.client != "auto" else ("wrk" if have_wrk() else "aiohttp")
    if client == "wrk" and not have_wrk():
        parser.error("wrk is not installed")
    runs: list[Run] = []
    print(describe_machine())
    print(f"client {client}, {args.seconds:g} s per run, {args.rounds} interleaved round(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="conscent-ingest-") as tmp:
        folder = Path(tmp)
        script = folder / "post.lua"
        script.write_text(WRK_SCRIPT.replace("{body}", str(BODY)))
        for round_no in range(args.rounds):
            for connections in args.connections:
                for setup in args.setups:
                    run = bench_one(setup, connections, args.seconds, script, folder, client, round_no, extra)
                    runs.append(run)
                    print(
                        f"  round {round_no + 1} {setup:<16} c{connections:<3} {run.requests_per_s:8.0f}/s "
                        f"p50 {run.p50_ms:6.1f} p99 {run.p99_ms:7.1f} ms  acked {run.acked} stored {run.stored}"
                        + (f" forwards {run.forwards}" if run.forwards is not None else ""),
                        flush=True,
                    )
    report(runs, args.connections, args.setups)
    if args.breakdown:
        report_breakdown(runs, args.connections, args.setups)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    lost = sum(run.missing for run in runs)
    if lost:
        print(f"LOST: {lost} acknowledged deliveries missing")
        sys.exit(1)
    return runs


def report(runs: list[Run], levels: list[int], setups: list[str]) -> None:
    print()
    print(
        f"{'setup':<16} {'conns':>5} {'best/s':>8} {'spread/s':>13} {'ratio':>6} {'ratio range':>12} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'acked':>8} {'missing':>7}"
    )
    for connections in levels:
        by_round: dict[int, dict[str, Run]] = {}
        for run in runs:
            if run.connections == connections:
                by_round.setdefault(run.round, {})[run.setup] = run
        bare_best = max((r["bare"].requests_per_s for r in by_round.values() if "bare" in r), default=None)
        for setup in setups:
            mine = [r[setup] for r in by_round.values() if setup in r]
            if not mine:
                continue
            best = max(mine, key=lambda r: r.requests_per_s)
            ratio = best.requests_per_s / bare_best if bare_best else float("nan")
            ratios = [
                r[setup].requests_per_s / r["bare"].requests_per_s
                for r in by_round.values()
                if setup in r and "bare" in r
            ]
            ratio_range = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
            rates = [r.requests_per_s for r in mine]
            print(
                f"{setup:<16} {connections:>5} {best.requests_per_s:>8.0f} {spread(rates):>13} {ratio:>6.2f} "
                f"{ratio_range:>12} {best.p50_ms:>7.1f} {best.p99_ms:>7.1f} {sum(r.acked for r in mine):>8} "
                f"{'' if best.stored is None else sum(r.missing for r in mine):>7}"
            )


def report_breakdown(runs: list[Run], levels: list[int], setups: list[str]) -> None:
    """Server time per delivery (1/rate: the server has one core and is saturated) and what each stage adds."""
    print()
    print(f"{'setup':<9} {'conns':>5} {'best/s':>8} {'us/req':>7} {'+us':>6} {'ratio':>6}")
    for connections in levels:
        best = {
            s: max((r.requests_per_s for r in runs if r.setup == s and r.connections == connections), default=0.0)
            for s in setups
        }
        previous = None
        for setup in setups:
            if not best[setup]:
                continue
            cost = 1e6 / best[setup]
            added = "" if previous is None else f"{cost - previous:+.0f}"
            ratio = best[setup] / best["bare"] if best.get("bare") else float("nan")
            print(f"{setup:<9} {connections:>5} {best[setup]:>8.0f} {cost:>7.1f} {added:>6} {ratio:>6.2f}")
            previous = cost
        if best.get("bare"):
            print(f"{'':<9} {'':>5} target 0.5x bare = {1e6 / (best['bare'] / 2):.0f} us per delivery")


if __name__ == "__main__":
    main()
