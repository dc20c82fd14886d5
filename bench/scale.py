"""Scale benchmark: the offline TUI over databases of 10,000 and 1,000,000 events, before and after a change.

Each measurement runs MonitorApp offline under ``run_test`` (Textual's
headless driver, 160x48) in a child process, timed from the outside (see
bench/tui_timing.py):

* **open**: start to first screen with rows, page down, jump to the end, a
  free-text filter with the search index ignored (every body scanned), a
  delivery's detail, the drill-down of a recent reader, and of a reader with
  10,000 events (first screen of the ReaderScreen, warm and cold), peak RSS.
* **filters**: every field of ``monitor.filters.FIELDS`` alone, free text (a
  word's prefix and a whole word) and pairs of fields (bench/scale_cases.py;
  values read from the database), each in gateway mode and all-events mode
  (``a``): the time from setting the filter (``MainScreen.reload``, patient:
  not stopped after FILTER_BUDGET) to the frame that shows its rows, and the
  row count. Warm: the median of 3 runs; cold: one run right after the OS
  caches were dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``) and
  SQLite's page cache released (``PRAGMA shrink_memory``), in the app's
  process, which has the database open.

With ``--baseline DIR`` (another checkout, e.g. ``/tmp/s16/base``) both trees
run alternately, group by group, each on its own copy of the database: the
baseline's copy is upgraded by the baseline (its schema), then copied and
upgraded by this checkout (the time is printed). The copies live under
``--work`` (default /tmp/E16); the sources under $CONSCENT_BENCH_CACHE are
only read. A reader with 10,000 events (``bench.scale_cases.BIG_READER``; a
tenth of the events below 100,000) is added to the copies: every n-th event's
``user_id``, spread over the whole time range.

    python -m bench.scale --baseline /tmp/s16/base               # 10k and 1M, before | after
    python -m bench.scale --baseline /tmp/s16/base --quick       # 10k and 50k
    python -m bench.scale --quick                                # this checkout only
    python -m bench.scale --sizes 10000 --parts filters --only city

The table: case | rows before | rows after | warm before | warm after | cold
before | cold after | target (< 200 ms warm, < 1 s cold) | met. JSON goes
to bench/results/scale-<sizes>.json (``--json``).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import CACHE, ROOT, describe_machine, median  # noqa: E402
from bench.scale_cases import BIG_READER, FIELD_CASES, VALUES_VERSION, cases, pick_values  # noqa: E402

TARGETS = {
    "first_screen_ms": 1000,
    "page_down_ms": 50,
    "jump_end_ms": 50,
    "user_filter_ms": 200,
    "text_filter_ms": 200,
    "drill_reader_ms": 200,
    "drill_big_reader_ms": 200,
    "drill_big_reader_cold_ms": 1000,
    "drill_detail_ms": 200,
    "rss_mb": 150,
}
WARM_TARGET_MS = 200
COLD_TARGET_MS = 1000
RESULTS = ROOT / "bench" / "results"
WORK = Path("/tmp/E16")
DROP_CACHES = "sync; echo 3 > /proc/sys/vm/drop_caches"


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
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# -- the child: one tree, one database, one part ------------------------------------------


def make_cold(how: str, db_path: Path, reads: Any) -> None:
    """Drop the OS caches (or the file's pages) and SQLite's page cache of the app's connection."""
    if how == "drop_caches":
        subprocess.run(["sh", "-c", DROP_CACHES], check=True)
    else:  # fadvise: only this file's pages (no root needed)
        for name in (db_path, Path(f"{db_path}-wal")):
            if name.exists():
                fd = os.open(name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
    reads.db.execute("PRAGMA shrink_memory")


class _Harness:
    """The app under ``run_test`` and the hooks that time it."""

    def __init__(self, db_path: Path) -> None:
        from bench.tui_timing import Frames
        from monitor.tui.app import MonitorApp
        from monitor.tui.widgets.event_table import EventTable

        self.rows_drawn: list[float] = []
        original_render = EventTable.render_line
        drawn = self.rows_drawn

        def render_line(table: EventTable, y: int):  # type: ignore[no-untyped-def]
            strip = original_render(table, y)
            if not drawn and table.total and table.row_at(table.scroll_offset.y + y) is not None:
                drawn.append(time.perf_counter())
            return strip

        EventTable.render_line = render_line  # type: ignore[method-assign]
        self.constructed = time.perf_counter()
        self.app = MonitorApp(db_path)
        self.frames = Frames(self.app)
        self.db_path = db_path

    def since(self, moment: float) -> float | None:
        return self.rows_drawn[0] if self.rows_drawn and self.rows_drawn[0] >= moment else None


def _reload(main: Any) -> Callable[[], object]:
    """The main screen's reload as a filter submitted twice runs it: not stopped after FILTER_BUDGET."""
    import inspect

    if "patient" in inspect.signature(main.reload).parameters:
        return lambda: main.reload(patient=True)
    return lambda: main.reload()


async def measure_open(db_path: Path, repeats: int, cold: str, big_reader: str) -> dict[str, Any]:
    import resource

    from bench.tui_timing import Marks, send_key, timed, until_frame, until_ready
    from monitor.tui.screens.detail import DetailScreen
    from monitor.tui.screens.reader import ReaderScreen
    from monitor.tui.widgets.event_table import EventTable

    out: dict[str, Any] = {"imports_ms": (time.perf_counter() - _T0) * 1000}
    h = _Harness(db_path)
    app, frames = h.app, h.frames
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.main_screen.query_one(EventTable)
        out["first_screen_ms"] = 1000 * await until_frame(frames, h, h.constructed)  # type: ignore[arg-type]
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
        reload = _reload(main)
        reloads = Marks(main, "reload")

        def filter_by(text: str) -> None:
            main.filter_text = text
            reload()

        word = app.reads.db.execute(
            "SELECT city FROM events WHERE city IS NOT NULL AND city != '' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        word = word.split()[0]
        # A free-text filter with the index ignored: every body scanned.
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

        def reader_shown(user_id: str) -> Callable[[], bool]:
            def ready() -> bool:
                screen = app.screen
                if not isinstance(screen, ReaderScreen) or getattr(screen.data, "user_id", user_id) != user_id:
                    return False
                for widget in screen.query("#journey"):
                    rows = getattr(widget, "row_count", 0) or getattr(widget, "total", 0)
                    return isinstance(rows, int) and rows > 0
                return True

            return ready

        async def drill(user_id: str, runs: int, cold_first: bool) -> tuple[list[float], float | None, int]:
            """Enter on the reader's newest row: warm times (ms), the cold one, the reader's events."""
            await timed(app, frames, reloads, lambda: filter_by(f"user:{user_id}"))
            events = table.total
            warm: list[float] = []
            cold_ms = None
            for run in range(runs + cold_first):
                send_key(app, "home")
                await pilot.pause()
                if cold_first and run == 0:
                    make_cold(cold, db_path, app.reads)
                taken = await until_ready(frames, reader_shown(user_id), lambda: send_key(app, "enter", "\r"))
                if cold_first and run == 0:
                    cold_ms = taken
                else:
                    warm.append(taken)
                app.pop_screen()
                await pilot.pause()
            return warm, cold_ms, events

        user = app.reads.db.execute(
            "SELECT user_id FROM events WHERE event = 'payment_gateway.view' AND user_id IS NOT NULL "
            "AND user_id != ? ORDER BY id DESC LIMIT 1",
            (big_reader,),
        ).fetchone()[0]
        warm, _, out["reader_rows"] = await drill(user, repeats, cold_first=False)
        out["drill_reader_ms"] = median(warm)
        warm, out["drill_big_reader_cold_ms"], out["big_reader_rows"] = await drill(big_reader, 3, cold_first=True)
        out["big_reader_events"] = app.reads.db.execute(
            "SELECT count(*) FROM events WHERE user_id = ?", (big_reader,)
        ).fetchone()[0]
        out["drill_big_reader_ms"] = median(warm)
        out["drill_big_reader_runs_ms"] = warm
        await timed(app, frames, reloads, lambda: filter_by(""))

        pushes = Marks(app, "push_screen")
        detail_ms = []
        for _ in range(repeats):
            send_key(app, "home")
            await pilot.pause()
            detail_ms.append(await timed(app, frames, pushes, lambda: send_key(app, "d", "d")))
            assert isinstance(app.screen, DetailScreen), app.screen
            app.pop_screen()
            await pilot.pause()
        out["drill_detail_ms"] = median(detail_ms)
    out["rss_mb"] = peak_rss_mb()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


async def measure_filters(
    db_path: Path, filters: list[str], modes: list[str], repeats: int, cold: str, cap: float
) -> list[dict[str, Any]]:
    """Each filter in each mode: one cold run (first), then ``repeats`` warm ones.

    A run is stopped after ``cap`` seconds (SQLite's progress handler on the
    app's connection, as FILTER_BUDGET does): the case is then "stopped", its
    other runs skipped.
    """
    from bench.tui_timing import Marks, timed, until_frame
    from monitor.tui.widgets.event_table import EventTable

    h = _Harness(db_path)
    app, frames = h.app, h.frames
    out: list[dict[str, Any]] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await until_frame(frames, h, h.constructed)  # type: ignore[arg-type]
        await pilot.pause()
        main = app.main_screen
        table = main.query_one(EventTable)
        reload = _reload(main)
        reloads = Marks(main, "reload")
        loaded: list[bool] = []
        deadline = [float("inf")]
        in_reload: list[float] = []  # of each run: the part spent in reload (the rest: drawing the frame)

        def apply(text: str, mode: str) -> None:
            main.filter_text, main.mode = text, mode
            deadline[0] = time.monotonic() + cap
            app.reads.db.conn.set_progress_handler(lambda: time.monotonic() > deadline[0], 10000)
            started = time.perf_counter()
            loaded.append(bool(reload()))
            in_reload.append(1000 * (time.perf_counter() - started))

        for mode in modes:
            for text in filters:
                case: dict[str, Any] = {"filter": text, "mode": mode, "runs_rows": []}
                warm: list[float] = []
                for run in range(1 + repeats):
                    if run == 0 and cold != "none":
                        make_cold(cold, db_path, app.reads)
                    loaded.clear()
                    taken = await timed(app, frames, reloads, lambda text=text, mode=mode: apply(text, mode))
                    deadline[0] = float("inf")
                    ok = bool(loaded and loaded[0])
                    case["runs_rows"].append(table.total if ok else None)
                    if run == 0 and cold != "none":
                        case["cold_ms"] = taken
                    else:
                        warm.append(taken)
                    if not ok:
                        case["error"] = getattr(main, "_error", None) or "not loaded"
                        case["stopped"] = taken >= cap * 1000
                        break
                case["warm_ms"] = median(warm) if warm else None
                case["warm_runs_ms"] = warm
                case["reload_runs_ms"], in_reload[:] = list(in_reload), []
                case["rows"] = case["runs_rows"][-1]
                out.append(case)
                problem = f"  {case['error']}" if "error" in case else ""
                print(
                    f"  {mode:<8} {text[:60]:<60} rows {case['rows'] or 0:>9,}  warm {case['warm_ms'] or -1:>8.1f}"
                    f"  cold {case.get('cold_ms', float('nan')):>8.1f}{problem}",
                    file=sys.stderr,
                    flush=True,
                )
        app.reads.db.conn.set_progress_handler(None, 0)
        main.filter_text, main.mode = "", "gateway"
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


def _run_options(parser: argparse.ArgumentParser) -> None:
    """The options the parent passes on to each child: repeats, how to make a run cold, copies, the cap."""
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per case (the median is shown)")
    parser.add_argument(
        "--cold",
        choices=("drop_caches", "fadvise", "none"),
        default="fadvise",
        help="how a cold run is made cold: drop_caches (all of the OS's, needs root) or fadvise (the file's pages)",
    )
    parser.add_argument("--work", type=Path, help="the copies of the databases (default /tmp/E16, or CACHE/work)")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds after which a filter run is stopped")


def child(argv: list[str], monitor_dir: str) -> None:
    """One part on one database, in this process (started by bench/scale_child.py)."""
    import asyncio

    parser = argparse.ArgumentParser()
    parser.add_argument("--tree")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--part", choices=("open", "filters"), required=True)
    parser.add_argument("--filters", type=Path, help="a JSON list of filter texts")
    parser.add_argument("--modes", nargs="+", default=["gateway", "all"])
    _run_options(parser)
    parser.add_argument("--big-reader", default=BIG_READER)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"monitor": monitor_dir}
    if args.part == "open":
        result["open"] = asyncio.run(measure_open(args.db, args.repeats, args.cold, args.big_reader))
    else:
        filters = json.loads(args.filters.read_text())
        result["filters"] = asyncio.run(
            measure_filters(args.db, filters, args.modes, args.repeats, args.cold, args.cap)
        )
    print("RESULT " + json.dumps(result), flush=True)


# -- the parent -----------------------------------------------------------------------


def run_child(tree: Path, db: Path, args: list[str], timeout: float = 1800) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "bench" / "scale_child.py"), "--tree", str(tree), "--db", str(db), *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, cwd=WORK, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            found: dict[str, Any] = json.loads(line[7:])
            if not Path(found["monitor"]).resolve().is_relative_to(tree.resolve()):
                raise RuntimeError(f"child imported monitor from {found['monitor']}, not {tree}")
            return found
    # A broken tree (work in progress) fails its side only: said in the table, the run goes on.
    print(f"  child failed ({proc.returncode}) for {tree}; see its stderr above", flush=True)
    return {"monitor": str(tree), "error": f"child failed ({proc.returncode})", "open": {}, "filters": []}


def _label(count: int) -> str:
    if count % 1_000_000 == 0:
        return f"{count // 1_000_000}m"
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def _python_in(tree: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``tree``'s monitor (cwd: the work directory, so no other tree shadows it)."""
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code], cwd=WORK, env=env, text=True, capture_output=True, check=True)


def _upgrade(tree: Path, path: Path) -> float:
    """Open ``path`` for review with ``tree``'s code (upgrading its schema); seconds taken."""
    code = (
        "import time; from monitor import store; t = time.perf_counter(); "
        f"store.open_for_review({str(path)!r}); print(store.__file__, time.perf_counter() - t)"
    )
    where, seconds = _python_in(tree, code).stdout.split()[-2:]
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the upgrade imported monitor from {where}, not {tree}")
    return float(seconds)


def _version(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _copy(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
    wal = Path(f"{source}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        subprocess.run(["cp", str(wal), f"{target}-wal"], check=True)


def add_big_reader(path: Path, count: int) -> tuple[str, int]:
    """Give every n-th event (spread over the whole time range) the user id :data:`BIG_READER`.

    Only on a file of schema 2 or older (what the generated sources are): its
    indexes are SQLite's own, and a newer tree builds its own (schema 3's
    facets) from the columns when it upgrades the file. A newer file (one
    this checkout generated) keeps its rows: its most active reader stands in.
    Returns the reader and its events.
    """
    events = 10_000 if count >= 100_000 else max(count // 10, 1)
    conn = sqlite3.connect(path)
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] > 2:
            found = conn.execute(
                "SELECT user_id, count(*) FROM events WHERE user_id IS NOT NULL"
                " GROUP BY user_id ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
            return str(found[0]), int(found[1])
        top = conn.execute("SELECT max(id) FROM events").fetchone()[0]
        step = max(top // events, 1)
        with conn:
            conn.execute(
                "UPDATE events SET user_id = ? WHERE id IN (SELECT id FROM events WHERE id % ? = 7 LIMIT ?)",
                (BIG_READER, step, events),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        added = conn.execute("SELECT count(*) FROM events WHERE user_id = ?", (BIG_READER,)).fetchone()[0]
        return BIG_READER, int(added)
    finally:
        conn.close()


def _code_stamp() -> str:
    """What the after copy depends on: this checkout's schema code."""
    return hashlib.sha256((ROOT / "monitor" / "store.py").read_bytes()).hexdigest()[:16]


def prepare(count: int, cache: Path, baseline: Path | None, fresh: bool, fresh_after: bool) -> dict[str, Any]:
    """The databases of one size: ``before`` (the baseline's schema) and ``after`` (this checkout's)."""
    WORK.mkdir(parents=True, exist_ok=True)
    label = _label(count)
    source = cache / f"scale-{count}.db"
    if not source.exists():
        source = database(count, cache)
    # Without a baseline, one copy upgraded by this checkout ("only-"): the before copies stay as they are.
    prefix = "" if baseline else "only-"
    before = WORK / f"{prefix}before-{label}.db"
    after = WORK / f"after-{label}.db" if baseline else before
    info_path = WORK / f"{prefix}prepared-{label}.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() and not fresh else {}
    base_tree = baseline or ROOT
    stale = baseline is None and info.get("after_stamp") != _code_stamp()
    if fresh or stale or not before.exists() or info.get("baseline") != str(base_tree):
        partial = WORK / f"{prefix}before-{label}.tmp.db"
        print(f"{label}: copying {source} -> {before}", flush=True)
        _copy(source, partial)
        info = {"baseline": str(base_tree)}
        info["big_reader"], info["big_reader_events"] = add_big_reader(partial, count)
        info["before_upgrade_s"] = _upgrade(base_tree, partial)
        _checkpoint(partial)
        for suffix in ("-wal", "-shm"):  # the old file's log must not meet the new file
            Path(f"{before}{suffix}").unlink(missing_ok=True)
        partial.rename(before)
        for suffix in ("-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        info["before_schema"] = _version(before)
        info.pop("after_stamp", None)
        if baseline is None:
            info["after_stamp"], info["after_schema"] = _code_stamp(), info["before_schema"]
    if info.get("values_version") != VALUES_VERSION:
        info["values"], info["values_version"] = pick_values(before), VALUES_VERSION
    if baseline is not None and (fresh_after or info.get("after_stamp") != _code_stamp() or not after.exists()):
        print(f"{label}: copying {before} -> {after}, upgrading with {ROOT}", flush=True)
        _copy(before, after)
        info["after_upgrade_s"] = _upgrade(ROOT, after)
        _checkpoint(after)
        info["after_schema"] = _version(after)
        info["after_stamp"] = _code_stamp()
        info["after_upgraded_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    info_path.write_text(json.dumps(info, indent=1))
    info["before"], info["after"] = str(before), str(after)
    return info


def _fields() -> list[str]:
    from monitor.filters import FIELDS

    missing = [name for name in FIELDS if name not in FIELD_CASES]
    if missing:
        print(f"WARNING: no case for the fields {', '.join(missing)} (add them to bench/scale_cases.py)")
    return list(FIELDS)


def run_size(
    count: int, info: dict[str, Any], trees: list[tuple[str, Path]], opts: argparse.Namespace
) -> dict[str, Any]:
    """Every part for each tree, alternated group by group; ``trees``: (side, tree) with side before/after."""
    label = _label(count)
    dbs = {"before": Path(info["before"]), "after": Path(info["after"]) if len(trees) > 1 else Path(info["before"])}
    fields = _fields()
    all_cases = cases(info["values"], fields)
    if opts.only:
        all_cases = [c for c in all_cases if any(word in c["filter"] or word == c["group"] for word in opts.only)]
    filters = list(dict.fromkeys(c["filter"] for c in all_cases))
    out: dict[str, Any] = {"count": count, "prepared": info}
    out["filters"] = filters
    out["groups"] = {c["filter"]: c["group"] for c in all_cases}
    out["sides"] = {side: {"tree": str(tree), "open": {}, "filters": []} for side, tree in trees}
    common = ["--repeats", str(opts.repeats), "--cold", opts.cold, "--cap", str(opts.cap)]
    turn = 0

    def alternate(part_args: list[str], store: Callable[[str, dict[str, Any]], None]) -> None:
        nonlocal turn
        order = trees if turn % 2 == 0 else trees[::-1]
        turn += 1
        for side, tree in order:
            started = time.perf_counter()
            found = run_child(tree, dbs[side], [*part_args, *common])
            if "error" in found:
                out["sides"][side].setdefault("errors", []).append(f"{' '.join(part_args[:2])}: {found['error']}")
            store(side, found)
            print(f"  [{label} {side}] {' '.join(part_args[:2])} in {time.perf_counter() - started:.0f} s", flush=True)

    if "open" in opts.parts:
        alternate(
            ["--part", "open", "--big-reader", info.get("big_reader", BIG_READER)],
            lambda side, r: out["sides"][side].__setitem__("open", r["open"]),
        )
    if "filters" in opts.parts:
        size = opts.group_size if len(trees) > 1 else len(filters)  # one tree: nothing to alternate with
        for start in range(0, len(filters), size):
            chunk = WORK / f"filters-{label}-{start}.json"
            chunk.write_text(json.dumps(filters[start : start + size]))
            alternate(
                ["--part", "filters", "--filters", str(chunk), "--modes", *opts.modes],
                lambda side, r: out["sides"][side]["filters"].extend(r["filters"]),
            )
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def report(results: dict[str, Any], cold: str, cap: float) -> None:
    """The before | after table of each size."""
    for label, result in results.items():
        sides = result["sides"]
        both = "before" in sides and "after" in sides
        prepared = result["prepared"]
        print(f"\n## {label} ({result['count']:,} events)")
        print(
            f"databases: before {prepared.get('before')} (schema {prepared.get('before_schema')}),"
            f" after {prepared.get('after')} (schema {prepared.get('after_schema')});"
            f" the reader {prepared.get('big_reader', BIG_READER)} has {prepared.get('big_reader_events', 0):,} events"
        )
        if "after_upgrade_s" in prepared:
            print(
                f"upgrade of the before copy by this checkout (schema {prepared.get('before_schema')} -> "
                f"{prepared.get('after_schema')}, file just copied, so in the page cache): "
                f"{prepared['after_upgrade_s']:.1f} s (at {prepared.get('after_upgraded_at')})"
            )
        if cold == "none":
            print("no cold runs (--cold none); warm = median of the runs")
        else:
            how = "`sync; echo 3 > /proc/sys/vm/drop_caches`" if cold == "drop_caches" else "posix_fadvise(DONTNEED)"
            print(
                f"cold = one run right after {how} and PRAGMA shrink_memory, in the app's process "
                "(the database open); warm = median of the runs after it"
            )
        names = list(sides)
        for side in names:
            for error in sides[side].get("errors", []):
                print(f"{side}: {error} (its measures are missing)")
        opened = {side: sides[side]["open"] for side in names}
        if any(opened.values()):
            print(f"\n| measure | {' | '.join(names)} | target | met |")
            print("|---|" + "---|" * len(names) + "---|---|")
            keys = list(dict.fromkeys(k for side in names for k in opened[side]))
            for key in keys:
                values = [opened[side].get(key) for side in names]
                if not all(isinstance(v, (int, float)) for v in values):
                    continue
                target = TARGETS.get(key)
                met = "" if target is None else ("yes" if values[-1] < target else "NO")
                shown = " | ".join(f"{v:,.1f}" for v in values)
                print(f"| {key} | {shown} | {'' if target is None else target} | {met} |")
        rows_by: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            side: {(c["filter"], c["mode"]): c for c in sides[side]["filters"]} for side in names
        }
        order = {text: n for n, text in enumerate(result["filters"])}
        keys = sorted(
            {k for side in names for k in rows_by[side]},
            key=lambda k: (k[1] != "gateway", order.get(k[0], len(order)), k[0]),
        )
        if not keys:
            continue
        before = rows_by.get("before", {}) if both else {}
        after = rows_by["after"] if both else rows_by[names[0]]
        print(
            "\n| case | mode | rows before | rows after | warm before | warm after | cold before | cold after "
            "| target | met |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
        met_count = 0
        for key in keys:
            b, a = before.get(key, {}), after.get(key, {})
            rows_b, rows_a = b.get("rows"), a.get("rows")
            warm_a, cold_a = a.get("warm_ms"), a.get("cold_ms")
            met = warm_a is not None and warm_a < WARM_TARGET_MS and (cold_a is None or cold_a < COLD_TARGET_MS)
            met_count += met
            notes = []
            if both and not a:
                notes.append("after: not measured")
            elif both and not b:
                notes.append("before: not measured")
            elif both and rows_b != rows_a:
                notes.append("ROWS DIFFER")
            for side_case in (b, a):
                if len(set(side_case.get("runs_rows", []))) > 1:
                    notes.append("rows varied between runs")
                if side_case.get("stopped"):
                    notes.append(f"{'before' if side_case is b else 'after'}: stopped after {cap:g} s")
                elif side_case.get("error"):
                    notes.append(str(side_case["error"])[:60])
            case = key[0].replace("|", "\\|")
            print(
                f"| `{case}` | {key[1]} | {'-' if rows_b is None else f'{rows_b:,}'} | "
                f"{'-' if rows_a is None else f'{rows_a:,}'} | {_ms(b.get('warm_ms'))} | {_ms(warm_a)} | "
                f"{_ms(b.get('cold_ms'))} | {_ms(cold_a)} | <200 / <1000 | {'yes' if met else 'NO'}"
                f"{' ' + '; '.join(notes) if notes else ''} |"
            )
        met_before = sum(
            1
            for c in before.values()
            if (c.get("warm_ms") or 1e9) < WARM_TARGET_MS and c.get("cold_ms", 0) < COLD_TARGET_MS
        )
        print(f"\nmet: {met_count} of {len(keys)} cases (after)" + (f"; before: {met_before}" if both else ""))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10k and 50k")
    parser.add_argument("--baseline", type=Path, help="the tree before (e.g. /tmp/s16/base): before | after")
    parser.add_argument("--parts", nargs="+", choices=("open", "filters"), default=["open", "filters"])
    parser.add_argument("--modes", nargs="+", choices=("gateway", "all"), default=["gateway", "all"])
    parser.add_argument("--only", nargs="+", help="only the cases whose filter holds one of these (or group)")
    _run_options(parser)
    parser.add_argument("--group-size", type=int, default=8, help="filters per child (trees alternate per group)")
    parser.add_argument("--fresh", action="store_true", help="copy and upgrade the databases again")
    parser.add_argument("--fresh-after", action="store_true", help="copy and upgrade the after database again")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [10_000, 50_000]
    global WORK
    WORK = args.work or (WORK if args.cache == CACHE else args.cache / "work")
    print(describe_machine(), flush=True)
    trees = [("before", args.baseline), ("after", ROOT)] if args.baseline else [("after", ROOT)]
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for count in args.sizes:
        info = prepare(count, args.cache, args.baseline, args.fresh, args.fresh_after)
        results[_label(count)] = run_size(count, info, trees, args)
    print(f"\nwall time {time.perf_counter() - started:.0f} s; trees: " + ", ".join(f"{s} {t}" for s, t in trees))
    report(results, args.cold, args.cap)
    name = f"scale-{'-'.join(_label(c) for c in args.sizes)}.json"
    target = args.json or (RESULTS if args.cache == CACHE else WORK) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [Path(sys.executable).name, "-m", "bench.scale", *(sys.argv[1:] if argv is None else argv)]
    target.write_text(json.dumps({"machine": describe_machine(), "command": command, **results}, indent=1))
    print(f"\nJSON: {target}")
    return {result["count"]: flat(result) for result in results.values()}


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """One size's figures of this checkout in one dict: the open part, and the user id and word filters."""
    side = result["sides"]["after"]
    out: dict[str, Any] = dict(side["open"])
    groups = result["groups"]
    users = [text for text in result["filters"] if groups[text] == "user"]
    for case in side["filters"]:
        if case["mode"] != "gateway":
            continue
        if users and case["filter"] == users[0]:  # user:<id>
            out["user_filter_ms"], out["user_filter_rows"] = case["warm_ms"], case["rows"]
        if groups[case["filter"]] == "text":  # the last: a whole word
            out["text_filter_ms"], out["text_filter_rows"] = case["warm_ms"], case["rows"]
    return out


if __name__ == "__main__":
    main()
