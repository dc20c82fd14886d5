"""What opening the Insights screen costs: the read (``queries.insights``) and the first drawing.

For each database, mode (gateway, all) and filter: the whole read, each
figure's own query, then the screen pushed with those figures and drawn at
80x24 and 160x48 (push to first paint). Medians of ``--repeat`` runs after one
warm-up read (the first read of a cold file is reported on its own).

    python -m bench.insights DB [DB ...] [--repeat 5] [--filter TEXT ...]

Databases: ``conscent-monitor generate --count 10000 --db /tmp/E/10k.db`` and
``--count 1000000 --db /tmp/E/1m.db`` (one session each).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from bench.common import describe_machine
from monitor import queries, store
from monitor.filters import compile_filter

Mode = Literal["gateway", "all"]


def view_of(mode: Mode, filter_text: str, now: float) -> queries.View:
    """The main screen's view for a mode and a filter, all sessions (as ``MainScreen._view`` builds it)."""
    events = compile_filter(filter_text, table="events", now=now)
    rejected = compile_filter(filter_text, table="rejected", now=now)
    return queries.View(mode, None, events.where, events.params, rejected.where, rejected.params)


def timed(run: Callable[[], Any], repeat: int) -> float:
    """Median wall-clock seconds of ``repeat`` runs."""
    return statistics.median(wall_and_cpu(run)[0] for _ in range(repeat))


def wall_and_cpu(run: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run (CPU: this process; on a busy machine the wall clock waits for others)."""
    cpu, started = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - started, time.process_time() - cpu


def parts(db: Any, view: queries.View, now: float, repeat: int) -> dict[str, float]:
    axis = queries.insights_axis(db, view, now=now)
    return {
        "funnel": timed(lambda: queries.insights_funnel(db, view), repeat),
        "close actions": timed(lambda: queries.insights_close_actions(db, view), repeat),
        "time to close": timed(lambda: queries.insights_time_to_close(db, view), repeat),
        "axis": timed(lambda: queries.insights_axis(db, view, now=now), repeat),
        "timeline": timed(lambda: queries.insights_timeline(db, view, now=now, axis=axis), repeat),
        "lag": timed(lambda: queries.insights_lag(db, view, now=now, axis=axis), repeat),
        "rows": timed(lambda: queries.count_rows(db, view), repeat),
    }


async def first_paint(data: queries.Insights, size: tuple[int, int], repeat: int) -> tuple[float, float]:
    """Push the screen on a bare app and wait for its first refresh; median wall-clock and CPU seconds."""
    from textual.app import App

    from monitor.resources import styles_dir
    from monitor.tui.screens.insights import InsightsScreen

    class Bare(App[None]):
        CSS_PATH = [str(styles_dir() / "app.tcss"), str(styles_dir() / "screens.tcss")]

    times = []
    app = Bare()
    async with app.run_test(size=size) as pilot:
        for _ in range(repeat):
            cpu, started = time.process_time(), time.perf_counter()
            await app.push_screen(InsightsScreen(data, "bench", time.time))
            await pilot.pause()
            times.append((time.perf_counter() - started, time.process_time() - cpu))
            await app.pop_screen()
            await pilot.pause()
    return statistics.median(wall for wall, _ in times), statistics.median(cpu for _, cpu in times)


def bench(path: Path, filters: list[str], repeat: int) -> None:
    db = store.connect(path, readonly=True)
    try:
        total = db.execute("SELECT count(*) FROM events").fetchone()[0]
        print(f"\n{path}: {total:,} events")
        now = time.time()
        for filter_text in filters:
            for mode in ("gateway", "all"):
                view = view_of(mode, filter_text, now)  # type: ignore[arg-type]
                started = time.perf_counter()
                data = queries.insights(db, view, now)
                cold = time.perf_counter() - started
                runs = [wall_and_cpu(lambda view=view: queries.insights(db, view, now)) for _ in range(repeat)]  # type: ignore[misc]
                read, read_cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
                small = asyncio.run(first_paint(data, (80, 24), repeat))
                large = asyncio.run(first_paint(data, (160, 48), repeat))
                shown = f"filter {filter_text!r}" if filter_text else "no filter"
                print(
                    f"  {mode:7} {shown:22} read {read:5.3f} s (cpu {read_cpu:5.3f}, first {cold:5.3f})"
                    f"  paint 80x24 {small[0]:5.3f} (cpu {small[1]:5.3f})  160x48 {large[0]:5.3f} (cpu {large[1]:5.3f})"
                    f"  open {read + large[0]:5.3f} s (cpu {read_cpu + large[1]:5.3f})"
                )
                print("          " + "  ".join(f"{k} {v:.3f}" for k, v in parts(db, view, now, repeat).items()))
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("databases", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--filter", action="append", dest="filters", help="a filter to measure too (repeatable)")
    args = parser.parse_args()
    print(describe_machine())
    print(f"load average {' '.join(f'{n:.1f}' for n in os.getloadavg())} (wall-clock times wait for other processes)")
    for path in args.databases:
        bench(path, ["", *(args.filters or [])], args.repeat)


if __name__ == "__main__":
    main()
