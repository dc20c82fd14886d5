"""Scale benchmark: the offline TUI over databases of 10,000 and 1,000,000 events.

Each size runs in a fresh subprocess (so peak RSS is that size's alone):
MonitorApp offline under ``run_test`` (Textual's headless driver, 160x48),
timed from the outside (see bench/tui_timing.py): start to first screen with
rows, page down, jump to the end, a ``user:`` filter, a free-text filter (with
the search index complete, and with the index ignored: every body scanned),
opening a reader drill-down and a delivery's detail, and peak RSS
(``ru_maxrss``). Databases are built with ``monitor.synth.build_database`` and
cached under $CONSCENT_BENCH_CACHE (default /tmp/conscent-bench).

    python -m bench.scale                  # 10k and 1M (the 1M build takes minutes once)
    python -m bench.scale --quick          # 10k and 50k
    python -m bench.scale --sizes 2000 5000
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import CACHE, ROOT, describe_machine, median  # noqa: E402

TARGETS = {
    "first_screen_ms": 1000,
    "page_down_ms": 50,
    "jump_end_ms": 50,
    "user_filter_ms": 200,
    "text_filter_ms": 200,
    "drill_reader_ms": 200,
    "drill_detail_ms": 200,
    "rss_mb": 150,
}


def database(count: int, cache: Path) -> Path:
    """The cached synthetic database of ``count`` events, search index complete."""
    from monitor import store, synth

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"scale-{count}.db"
    if not path.exists():
        partial = cache / f"scale-{count}.db.tmp"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        started = time.perf_counter()
        print(f"building {count:,} events into {partial} ...", flush=True)
        synth.build_database(partial, count)
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
        _checkpoint(partial)
        partial.rename(path)
    conn = store.connect(path).conn
    try:
        upto = conn.execute("SELECT indexed_upto FROM search_state").fetchone()[0]
        top = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        if upto < top:
            started = time.perf_counter()
            while store.index_pending(conn, 20000):
                pass
            print(f"  search index built in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        conn.close()
    _checkpoint(path)
    return path


def _checkpoint(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# -- the child: one size, one process -------------------------------------------------


async def measure(db_path: Path, repeats: int) -> dict[str, float]:
    import resource
    import sqlite3

    from bench.tui_timing import Frames, Marks, send_key, timed, until_frame
    from monitor.tui.app import MonitorApp
    from monitor.tui.screens.detail import DetailScreen
    from monitor.tui.screens.reader import ReaderScreen
    from monitor.tui.widgets.event_table import EventTable

    out: dict[str, float] = {"imports_ms": (time.perf_counter() - _T0) * 1000}
    rows_drawn: list[float] = []
    original_render = EventTable.render_line

    def render_line(self: EventTable, y: int):  # type: ignore[no-untyped-def]
        strip = original_render(self, y)
        if not rows_drawn and self.total and self.row_at(self.scroll_offset.y + y) is not None:
            rows_drawn.append(time.perf_counter())
        return strip

    EventTable.render_line = render_line  # type: ignore[method-assign]

    class _Drawn:
        def since(self, moment: float) -> float | None:
            return rows_drawn[0] if rows_drawn and rows_drawn[0] >= moment else None

    constructed = time.perf_counter()
    app = MonitorApp(db_path)
    frames = Frames(app)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.main_screen.query_one(EventTable)
        out["first_screen_ms"] = 1000 * await until_frame(frames, _Drawn(), constructed)  # type: ignore[arg-type]
        out["first_screen_from_process_ms"] = out["first_screen_ms"] + out["imports_ms"]
        out["rows"] = table.total
        await pilot.pause()
        moves = Marks(table, "_move")
        page, end, home = [], [], []
        for _ in range(repeats):
            page.append(await timed(app, frames, moves, lambda: send_key(app, "pagedown")))
        for _ in range(repeats):
            end.append(await timed(app, frames, moves, lambda: send_key(app, "end")))
            home.append(await timed(app, frames, moves, lambda: send_key(app, "home")))
        out["page_down_ms"], out["page_down_max_ms"] = median(page), max(page)
        out["jump_end_ms"], out["jump_end_max_ms"] = median(end), max(end)
        out["jump_home_ms"] = median(home)

        main = app.main_screen
        reloads = Marks(main, "reload")

        def filter_by(text: str) -> None:
            main.filter_text = text
            main.reload()

        user = app.reads.db.execute(
            "SELECT user_id FROM events WHERE event = 'payment_gateway.view' AND user_id IS NOT NULL "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        # A word of some bodies: a content id's first part (content ids look like "story-123").
        word = app.reads.db.execute(
            "SELECT city FROM events WHERE city IS NOT NULL AND city != '' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        word = word.split()[0]

        async def filter_ms(text: str) -> tuple[float, int]:
            times = []
            rows = 0
            for _ in range(repeats):
                times.append(await timed(app, frames, reloads, lambda: filter_by(text)))
                rows = table.total
                await timed(app, frames, reloads, lambda: filter_by(""))
            return median(times), rows

        out["user_filter_ms"], out["user_filter_rows"] = await filter_ms(f"user:{user}")
        out["text_filter_ms"], out["text_filter_rows"] = await filter_ms(word)
        # The same free-text filter with the index ignored: every body scanned.
        writer = sqlite3.connect(db_path)
        upto = writer.execute("SELECT indexed_upto FROM search_state").fetchone()[0]
        try:
            with writer:
                writer.execute("UPDATE search_state SET indexed_upto = 0")
            times = [await timed(app, frames, reloads, lambda: filter_by(word)) for _ in range(max(1, repeats // 2))]
            out["text_filter_unindexed_ms"] = median(times)
            out["text_filter_unindexed_rows"] = table.total
        finally:
            with writer:
                writer.execute("UPDATE search_state SET indexed_upto = ?", (upto,))
            writer.close()
        await timed(app, frames, reloads, lambda: filter_by(""))

        pushes = Marks(app, "push_screen")
        reader_ms, detail_ms = [], []
        for _ in range(repeats):
            send_key(app, "home")
            await pilot.pause()
            reader_ms.append(await timed(app, frames, pushes, lambda: send_key(app, "enter", "\r")))
            assert isinstance(app.screen, ReaderScreen), app.screen
            app.pop_screen()
            await pilot.pause()
            detail_ms.append(await timed(app, frames, pushes, lambda: send_key(app, "d", "d")))
            assert isinstance(app.screen, DetailScreen), app.screen
            app.pop_screen()
            await pilot.pause()
        out["drill_reader_ms"], out["drill_detail_ms"] = median(reader_ms), median(detail_ms)
        out["reader_rows"] = app.reads.db.execute("SELECT count(*) FROM events WHERE user_id = ?", (user,)).fetchone()[
            0
        ]
    out["rss_mb"] = peak_rss_mb()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def peak_rss_mb() -> float:
    """VmHWM: this process's peak RSS. (ru_maxrss survives execve on Linux, so a
    child started by a big parent would report the parent's peak.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(db_path: Path, repeats: int) -> None:
    import asyncio

    result = asyncio.run(measure(db_path, repeats))
    print("RESULT " + json.dumps(result), flush=True)


# -- the parent -----------------------------------------------------------------------


def run_size(path: Path, repeats: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.scale", "--child", str(path), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10k and 50k")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.repeats)
        return {}
    if args.quick:
        args.sizes = [10_000, 50_000]
    print(describe_machine(), flush=True)
    results: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        path = database(size, args.cache)
        results[size] = run_size(path, args.repeats)
    keys = [k for k in results[args.sizes[0]] if not k.endswith("_rows") and k != "rows"]
    print()
    print(f"{'measure':<30}" + "".join(f"{size:>12,}" for size in args.sizes) + f"{'target':>9}  met")
    for key in keys:
        values = [results[size].get(key, float("nan")) for size in args.sizes]
        target = TARGETS.get(key)
        met = "" if target is None else ("yes" if values[-1] < target else "NO")
        print(f"{key:<30}" + "".join(f"{v:>12.1f}" for v in values) + f"{'' if target is None else target:>9}  {met}")
    for key in ("rows", "user_filter_rows", "text_filter_rows", "text_filter_unindexed_rows", "reader_rows"):
        print(f"{key:<30}" + "".join(f"{results[s].get(key, 0):>12,.0f}" for s in args.sizes))
    if len(args.sizes) > 1:
        small, large = results[args.sizes[0]]["rss_mb"], results[args.sizes[-1]]["rss_mb"]
        growth = (large - small) / small * 100
        print(f"RSS growth {args.sizes[0]:,} -> {args.sizes[-1]:,}: {growth:+.1f}% (target within 20%)")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return results


if __name__ == "__main__":
    main()
