"""Start-up to a full first screen, measured the way a person sees it: in a real terminal (tmux).

Each round starts ``python -m monitor`` in a fresh detached tmux pane and polls
``capture-pane`` every 10 ms until the main screen is whole (the webhook URL
or "Offline review" in the header, the status line and the footer's Quit);
the figure is the time from starting tmux to that capture. Several trees run
alternately in one session, so their ratio is fair on a busy machine: this
checkout, and any ``--baseline DIR`` (another checkout of the repository, e.g.
``git worktree add /tmp/base <commit>``), imported first through PYTHONPATH
with the same virtualenv.

    python -m bench.startup                       # watch (live) and open (a saved db)
    python -m bench.startup --baseline /tmp/base --rounds 10
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import ROOT, machine

POLL = 0.01
TIMEOUT = 20.0


def _tmux(socket: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        ["tmux", "-u", "-f", "/dev/null", "-L", socket, *args], capture_output=True, text=True, env=env, check=False
    ).stdout


def _ready(screen: str) -> bool:
    lines = [line for line in screen.splitlines() if line.strip()]
    return (
        len(lines) >= 3
        and ("URL" in lines[0] or "Offline review" in lines[0])
        and ("GATEWAY" in screen)
        and "Quit" in lines[-1]
    )


def time_to_screen(tree: Path, args: list[str], size: tuple[int, int]) -> float:
    """Seconds from starting the program in a new pane to a whole first screen."""
    socket = f"bench-startup-{uuid.uuid4().hex[:8]}"
    env = f"PYTHONPATH={shlex.quote(str(tree))} LANG=C.UTF-8 TERM=xterm-256color"
    command = f"{env} {shlex.quote(sys.executable)} -m monitor {shlex.join(args)}"
    start = time.perf_counter()
    _tmux(socket, "new-session", "-d", "-x", str(size[0]), "-y", str(size[1]), "-s", "b", command)
    try:
        while time.perf_counter() - start < TIMEOUT:
            if _ready(_tmux(socket, "capture-pane", "-p", "-t", "b")):
                return time.perf_counter() - start
            time.sleep(POLL)
        raise RuntimeError(f"{tree}: no full screen after {TIMEOUT:g} s:\n{_tmux(socket, 'capture-pane', '-p')}")
    finally:
        _tmux(socket, "kill-server")


def saved_database(tree: Path, path: Path) -> None:
    """A small saved session (the demo's size) for ``open``."""
    subprocess.run(
        [sys.executable, "-m", "monitor", "generate", "--count", "2000", "--db", str(path), "--seed", "1"],
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, action="append", default=[], help="another checkout to compare")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", default="160x48", help="terminal size, WxH")
    options = parser.parse_args()
    width, height = (int(part) for part in options.size.split("x"))
    trees = [ROOT, *options.baseline]
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine().items()))
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved.db"
        saved_database(ROOT, saved)
        cases = {
            "watch (live, empty db)": lambda n: ["--port", "0", "--db", str(Path(tmp) / f"live-{n}.db")],
            "open (saved db, 2,000 events)": lambda n: ["open", str(saved)],
        }
        results: dict[tuple[str, Path], list[float]] = {}
        for round_no in range(options.rounds):
            for case, args in cases.items():
                for tree in trees:  # alternated: the same machine state for every tree
                    taken = time_to_screen(tree, args(f"{round_no}-{trees.index(tree)}"), (width, height))
                    results.setdefault((case, tree), []).append(taken)
        print(f"\n{width}x{height}, {options.rounds} rounds, median (min-max) seconds to a full first screen")
        print("| case | tree | median | min | max |")
        print("|---|---|---|---|---|")
        for (case, tree), times in results.items():
            name = "this checkout" if tree == ROOT else str(tree)
            print(f"| {case} | {name} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
