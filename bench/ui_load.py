"""UI under load: key press to screen update while deliveries arrive at a steady rate.

This process runs the live monitor as ``run_live`` wires it (Service with its
listener thread and writer thread, commit notices posted to MonitorApp) under
Textual's headless driver (``run_test``, 160x48), pinned to core 0. A paced
aiohttp client (bench/paced_client.py, open loop, pinned to core 1) sends
``--rate`` deliveries/s of the spec's view body. Meanwhile "down"/"up" are
sent to the driver every ``--interval`` seconds; the latency of each is the
time from sending it to the first screen update after the table handled it
(see bench/tui_timing.py). The client reports the listener's latency (from
each request's due time) over the same run; every acknowledged delivery is
counted in the database afterwards.

    python -m bench.ui_load                     # 2,000/s for 20 s
    python -m bench.ui_load --quick             # 300/s for 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, count_rows, describe_machine, quantile


async def run(rate: float, seconds: float, interval: float, folder: Path) -> dict[str, float]:
    from bench.tui_timing import Frames, Marks, send_key, timed
    from monitor.service import Options, Service, tune_gc
    from monitor.tui.app import MonitorApp
    from monitor.tui.widgets.event_table import EventTable
    from monitor.writer import CommitNotice

    db = folder / "ui-load.db"
    app: MonitorApp | None = None

    def on_commit(notice: CommitNotice) -> None:
        if app is not None:
            app.notify_commit(notice)

    service = Service(Options(db_path=db, port=0, mode="tui"), on_commit=on_commit)
    url = service.start_in_thread()
    app = MonitorApp(db, service=service)
    tune_gc()  # as monitor.tui.launch.run_live does
    frames = Frames(app)
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.main_screen.query_one(EventTable)
        moves = Marks(table, "_move")
        cmd = [sys.executable, "-m", "bench.paced_client", url, str(rate), str(seconds)]
        if os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
            cmd = ["taskset", "-c", "1", *cmd]
        client = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        started = time.perf_counter()
        frames_before = len(frames.times)
        await asyncio.sleep(min(1.0, seconds / 4))  # let the load settle
        key = "down"
        while time.perf_counter() - started < seconds - interval:
            latencies.append(await timed(app, frames, moves, lambda key=key: send_key(app, key)))
            key = "up" if key == "down" else "down"
            await asyncio.sleep(interval)
        out, _ = await client.communicate()
        elapsed = time.perf_counter() - started
        frame_rate = (len(frames.times) - frames_before) / elapsed
        await pilot.pause()
    service.stop_thread()
    load = next(json.loads(line[7:]) for line in out.decode().splitlines() if line.startswith("RESULT "))
    stored = count_rows(db)
    return {
        "rate_asked": rate,
        "rate_sent": load["requests_per_s"],
        "acked": load["ok"],
        "stored": stored,
        "missing": max(0, load["ok"] - stored),
        "listener_p50_ms": load["p50_ms"],
        "listener_p99_ms": load["p99_ms"],
        "keys": len(latencies),
        "key_p50_ms": quantile(latencies, 0.5),
        "key_p99_ms": quantile(latencies, 0.99),
        "key_max_ms": max(latencies) if latencies else float("nan"),
        "frames_per_s": frame_rate,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between key presses")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds = 300, 3
    if os.cpu_count() and os.cpu_count() > 1 and not argv:  # type: ignore[operator]
        os.sched_setaffinity(0, {0})  # the monitor on core 0, the client on core 1
    print(describe_machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="conscent-uiload-") as tmp:
        result = asyncio.run(run(args.rate, args.seconds, args.interval, Path(tmp)))
    for name, value in result.items():
        print(f"{name:<18} {value:>10.1f}")
    print(
        f"key p99 {'meets' if result['key_p99_ms'] < 100 else 'MISSES'} the 100 ms target; "
        f"{result['missing']:.0f} acknowledged deliveries missing"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
