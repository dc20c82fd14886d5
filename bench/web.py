"""The web UI's costs (issue 14): page load to the first rows, and ingest with two browser pages attached.

``load``: a database of N deliveries (``conscent-monitor generate``) served by
``open DB --web``; each run opens a new page in headless Chromium (a new tab
process) and times ``page.goto`` to the first table row in xterm.js's buffer
(read as tests/browser/page.py does), then (with tmux) ``open DB`` in a fresh
tmux pane of the page's size, as bench/startup.py times it. Medians reported.

``ingest``: the same wrk load as bench/ingest.py (the spec's view, server on
core 0, wrk and Chromium on core 1) against, alternately in each round:
``tui`` (bench/ingest.py's live TUI set-up), ``serve`` (``conscent-monitor
serve``, no page open) and ``serve+2`` (serve with two Chromium pages open on
its web UI, following the rows as they come). Every acknowledged delivery is
counted in the database afterwards. Issue 14's target: ``serve+2`` within 20%
of ``tui``.

    python -m bench.web                          # both, 10k and 100k rows, 3 ingest rounds x 8 s
    python -m bench.web --only load --rows 10000 --runs 9
    python -m bench.web --only ingest --rounds 5 --connections 16 64
    python -m bench.web --quick                  # 2,000 rows, 3 loads, 1 round of 2 s (smoke test)

Needs Debian's chromium (``apt-get install -y chromium``), the ``[test]``
extra (playwright, textual-serve) and wrk (else bench/ingest.py's aiohttp client).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import BODY, CACHE, ROOT, WRK_SCRIPT, count_rows, describe_machine, free_port, have_wrk, median
from bench.ingest import Run, _drain, load, start_server, stop_all
from bench.startup import time_to_screen
from tests.browser.page import TERMINAL_HOOK, launch, screen_text

SETUPS = ("tui", "serve", "serve+2")
#: A table row: its Received cell (``HH:MM:SS``, with ``MM-DD`` before it on other days).
ROW_RE = re.compile(r"^\s*(\d\d-\d\d )?\d\d:\d\d:\d\d ", re.MULTILINE)
WEB_URL_RE = re.compile(r"web UI on (http://\S+)")
POLL_S = 0.01
#: The terminal a 1280x800 page holds (xterm.js, textual-serve's 16 px Roboto Mono).
PAGE_CELLS = (142, 44)
#: The same generated data on every run (``generate``'s seed and end).
FIXED = ["--seed", "14", "--end", "1796000000"]


def serve_process(args: list[str], core: int | None) -> tuple[subprocess.Popen[str], str]:
    """``python -m monitor ARGS`` (serve or open --web), pinned to ``core``; returns it and the web UI's URL."""
    cmd = [sys.executable, "-m", "monitor", *args]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{args[0]} exited before its web UI listened (rc {proc.poll()})")
        if match := WEB_URL_RE.search(line):
            _drain(proc)  # serve prints a line per delivery: read them, as a terminal would
            return proc, match.group(1)
    raise RuntimeError("no 'web UI on' line within 30 s")


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.add_init_script(TERMINAL_HOOK)
    page.goto(url)
    return page


def wait_rows(page: Any, timeout: float = 60.0) -> str:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        screen = screen_text(page)
        if ROW_RE.search(screen):
            return screen
        time.sleep(POLL_S)
    raise RuntimeError("no table row in the page:\n" + screen_text(page))


# -- page load to the first rows ----------------------------------------------------------


def generated(rows: int, cache: Path) -> Path:
    """A database of ``rows`` generated deliveries (fixed seed and end), kept in ``cache`` between runs."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"web-{rows}.db"
    if not path.exists():
        part = path.with_suffix(".part")
        part.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "-m", "monitor", "generate", "--count", str(rows), "--db", str(part), *FIXED],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        part.rename(path)
    return path


def page_load(browser: Any, db: Path, runs: int, *, tmux: bool) -> tuple[list[float], list[float]]:
    """Seconds from ``page.goto`` to the first row, ``runs`` times, each in a new page (a new tab process).

    With ``tmux``, each run is followed by ``open DB`` in a fresh tmux pane of the page's size (bench/startup.py's
    time to a full first screen): the same database in a terminal, alternated with the browser.
    """
    proc, url = serve_process(["open", str(db), "--web", "--web-port", "0"], core=0)
    times: list[float] = []
    terminal: list[float] = []
    try:
        for _ in range(runs):
            if tmux:
                terminal.append(time_to_screen(ROOT, ["open", str(db)], PAGE_CELLS))
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.add_init_script(TERMINAL_HOOK)
            start = time.perf_counter()
            page.goto(url)
            wait_rows(page)
            times.append(time.perf_counter() - start)
            context.close()
            time.sleep(0.3)  # the tab process goes before the next one starts
    finally:
        stop_all([proc])
    return times, terminal


# -- ingest with pages attached -------------------------------------------------------------


def ingest_one(
    browser: Any, setup: str, connections: int, seconds: float, script: Path, folder: Path, client: str, round_no: int
) -> Run:
    db = folder / f"web-{setup}-{connections}-{round_no}.db"
    with ExitStack() as stack:
        if setup == "tui":
            port = free_port()
            procs = start_server("tui", port, db, folder)
            stack.callback(stop_all, procs)
        else:
            port = free_port()
            proc, url = serve_process(["serve", "--port", str(port), "--web-port", "0", "--db", str(db)], core=0)
            stack.callback(stop_all, [proc])
            for _ in range(2 if setup == "serve+2" else 0):
                page = open_page(browser, url)
                stack.callback(page.context.close)
                wait_rows_or_empty(page)
        time.sleep(0.3)
        got = load(f"http://127.0.0.1:{port}/", connections, seconds, script, client)
    stored = count_rows(db)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return Run(setup, connections, round_no, got.requests_per_s, got.p50_ms, got.p99_ms, got.ok, stored)


def wait_rows_or_empty(page: Any, timeout: float = 30.0) -> None:
    """Until the page shows the table (its status line), empty or not."""
    deadline = time.monotonic() + timeout
    while "GATEWAY" not in screen_text(page):
        if time.monotonic() > deadline:
            raise RuntimeError("the web UI showed no table:\n" + screen_text(page))
        time.sleep(0.05)


def report_ingest(runs: list[Run], levels: list[int]) -> None:
    print(
        "\n| set-up | connections | best/s | spread/s | vs tui (best) | vs tui (median of rounds) "
        "| vs tui (per round) | p99 ms | missing |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for connections in levels:
        mine = [r for r in runs if r.connections == connections]
        tui = {r.round: r.requests_per_s for r in mine if r.setup == "tui"}
        tui_best = max(tui.values(), default=0.0)
        for setup in SETUPS:
            these = [r for r in mine if r.setup == setup]
            if not these:
                continue
            best = max(these, key=lambda r: r.requests_per_s)
            rates = [r.requests_per_s for r in these]
            ratios = [r.requests_per_s / tui[r.round] for r in these if tui.get(r.round)]
            per_round = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""
            ratio = f"{best.requests_per_s / tui_best:.2f}" if tui_best else ""
            middle = f"{median(ratios):.2f}" if ratios else ""
            print(
                f"| {setup} | {connections} | {best.requests_per_s:.0f} | {min(rates):.0f}-{max(rates):.0f} "
                f"| {ratio} | {middle} | {per_round} | {best.p99_ms:.1f} | {sum(r.missing for r in these)} |"
            )


def chromium_beside_the_client(playwright: Any) -> Any:
    """Chromium on core 1 with wrk (it inherits this process's affinity at launch), the server alone on core 0."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return launch(playwright)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        return launch(playwright)
    finally:
        os.sched_setaffinity(0, before)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("load", "ingest"))
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=7, help="page loads per database")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument("--client", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 3 loads, 1 round of 2 s")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the generated databases are kept")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.runs, args.rounds, args.seconds = [2000], 3, 1, 2
    if shutil.which("chromium") is None:
        parser.error("Chromium not found: apt-get install -y chromium")
    client = args.client if args.client != "auto" else ("wrk" if have_wrk() else "aiohttp")
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"load": {}, "ingest": []}

    print(describe_machine())
    with sync_playwright() as playwright:
        browser = chromium_beside_the_client(playwright)
        if args.only in (None, "load"):
            print(f"\npage load to the first rows (open DB --web, 1280x800), {args.runs} runs each")
            tmux = shutil.which("tmux") is not None
            if tmux:
                print(f"alternated with `open DB` in tmux at {PAGE_CELLS[0]}x{PAGE_CELLS[1]} (to a full first screen)")
            print("| deliveries | browser median s | min s | max s | tmux median s | min s | max s |")
            print("|---|---|---|---|---|---|---|")
            for rows in args.rows:
                times, terminal = page_load(browser, generated(rows, args.cache), args.runs, tmux=tmux)
                results["load"][rows] = times
                results.setdefault("tmux", {})[rows] = terminal
                in_tmux = f"{median(terminal):.2f} | {min(terminal):.2f} | {max(terminal):.2f}" if terminal else "| |"
                print(
                    f"| {rows:,} | {median(times):.2f} | {min(times):.2f} | {max(times):.2f} | {in_tmux} |", flush=True
                )
        if args.only in (None, "ingest"):
            print(f"\ningest: client {client}, {args.seconds:g} s per run, {args.rounds} interleaved round(s)")
            runs: list[Run] = []
            with tempfile.TemporaryDirectory(prefix="conscent-web-") as tmp:
                folder = Path(tmp)
                script = folder / "post.lua"
                script.write_text(WRK_SCRIPT.replace("{body}", str(BODY)))
                for round_no in range(args.rounds):
                    for connections in args.connections:
                        for setup in SETUPS:
                            run = ingest_one(
                                browser, setup, connections, args.seconds, script, folder, client, round_no
                            )
                            runs.append(run)
                            print(
                                f"  round {round_no + 1} {setup:<8} c{connections:<3} {run.requests_per_s:8.0f}/s "
                                f"p99 {run.p99_ms:7.1f} ms  acked {run.acked} stored {run.stored}",
                                flush=True,
                            )
            report_ingest(runs, args.connections)
            results["ingest"] = runs
            if sum(r.missing for r in runs):
                print("LOST: acknowledged deliveries missing")
                sys.exit(1)
        browser.close()
    return results


if __name__ == "__main__":
    main()
