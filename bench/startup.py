"""Start-up to a full first screen, measured the way a person sees it: in a real terminal (tmux).

Each round starts ``python -m monitor`` in a fresh detached tmux pane and polls
``capture-pane`` every 10 ms. Two moments are timed from starting tmux:
"frame", the main screen drawn (the webhook URL or "Offline review" in the
header, the table's first rows or its waiting text, the status line and the
footer's Quit); and "full", that screen with the stats bar's counts filled in
too (they may come a little later, read off the UI thread). Several trees run
alternately in one session, so their ratio is fair on a busy machine: this
checkout, and any ``--baseline DIR`` (another checkout of the repository, e.g.
``git worktree add /tmp/base <commit>``), imported first through PYTHONPATH
with the same virtualenv.

Programs start as installed ones do: with compiled bytecode. The .pyc files go
to a cache of the benchmarks' own (PYTHONPYCACHEPREFIX, in the temporary folder;
PYTHONDONTWRITEBYTECODE is dropped), filled by one unmeasured start per tree and case, which also brings
the databases into the page cache (warm figures). Without it a checkout run
with PYTHONDONTWRITEBYTECODE=1 compiles every module of the project at each
start (~0.1-0.3 s that no installed copy pays).

``--large-db PATH`` (once per tree, in the order of the trees: this checkout,
then each ``--baseline``) adds ``open PATH``: a big database, each tree on its
own copy of it (each tree upgrades the schema it reads to its own).

    python -m bench.startup                       # watch (live) and open (a saved db)
    python -m bench.startup --baseline /tmp/base --rounds 10
    python -m bench.startup --baseline /tmp/base --large-db new-1m.db --large-db base-1m.db --only large
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, machine

POLL = 0.01
TIMEOUT = 20.0


def _tmux(socket: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PYTHONDONTWRITEBYTECODE")}
    return subprocess.run(
        ["tmux", "-u", "-f", "/dev/null", "-L", socket, *args], capture_output=True, text=True, env=env, check=False
    ).stdout


#: A table row (its time first), or the empty table's text.
_ROWS = re.compile(r"^\s*(\d\d-\d\d )?\d\d:\d\d:\d\d |Waiting for the first delivery", re.MULTILINE)
#: The stats bar with its counts (before they are read it shows no number).
_STATS = re.compile(r"views [\d,]+ +closes [\d,]+")


def _ready(screen: str) -> bool:
    """The main screen is drawn: header, rows (or the waiting text), status line and footer."""
    lines = [line for line in screen.splitlines() if line.strip()]
    return (
        len(lines) >= 3
        and ("URL" in lines[0] or "Offline review" in lines[0])
        and ("GATEWAY" in screen)
        and _ROWS.search(screen) is not None
        and "Quit" in lines[-1]
    )


def _full(screen: str) -> bool:
    """:func:`_ready`, and the stats bar's counts are in."""
    return _ready(screen) and _STATS.search(screen) is not None


#: Where the started programs keep their compiled bytecode (the checkouts stay as they are).
PYCACHE = Path(tempfile.gettempdir()) / "conscent-bench-pycache"


def _environment(tree: Path) -> str:
    variables = {
        "PYTHONPATH": str(tree),
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
    }
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


@dataclass(frozen=True)
class Start:
    """One start: seconds to the main screen drawn and to it full, and the CPU seconds the program used by then."""

    frame: float
    full: float
    cpu: float


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of ``pid`` and its descendants (all their threads), from /proc."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        pending += [int(child) for child in children]
    return total


def time_to_frames(tree: Path, args: list[str], size: tuple[int, int]) -> Start:
    """Seconds from starting the program in a new pane to its main screen drawn, and to it full."""
    socket = f"bench-startup-{uuid.uuid4().hex[:8]}"
    command = f"{_environment(tree)} {shlex.quote(sys.executable)} -m monitor {shlex.join(args)}"
    start = time.perf_counter()
    frame: float | None = None
    # Started in the tree itself: `python -m` puts the current folder first on sys.path, before PYTHONPATH.
    _tmux(socket, "new-session", "-d", "-c", str(tree), "-x", str(size[0]), "-y", str(size[1]), "-s", "b", command)
    pid = int(_tmux(socket, "display-message", "-p", "-t", "b", "#{pane_pid}").strip() or 0)
    try:
        while time.perf_counter() - start < TIMEOUT:
            screen = _tmux(socket, "capture-pane", "-p", "-t", "b")
            now = time.perf_counter() - start
            if frame is None and _ready(screen):
                frame = now
            if frame is not None and _full(screen):
                return Start(frame, now, _cpu_seconds(pid) if pid else float("nan"))
            time.sleep(POLL)
        raise RuntimeError(f"{tree}: no full screen after {TIMEOUT:g} s:\n{_tmux(socket, 'capture-pane', '-p')}")
    finally:
        _tmux(socket, "kill-server")


def time_to_screen(tree: Path, args: list[str], size: tuple[int, int]) -> float:
    """Seconds from starting the program in a new pane to a whole first screen (its counts in)."""
    return time_to_frames(tree, args, size).full


def saved_database(tree: Path, path: Path) -> None:
    """A small saved session (the demo's size) for ``open``."""
    subprocess.run(
        [sys.executable, "-m", "monitor", "generate", "--count", "2000", "--db", str(path), "--seed", "1"],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,  # not the caller's folder: `python -m` would import the monitor found there first
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, action="append", default=[], help="another checkout to compare")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", default="160x48", help="terminal size, WxH")
    parser.add_argument(
        "--large-db", type=Path, action="append", default=[], help="a big database for `open`, one per tree"
    )
    parser.add_argument("--only", choices=("watch", "open", "large"), action="append", help="run only these cases")
    options = parser.parse_args()
    width, height = (int(part) for part in options.size.split("x"))
    trees = [ROOT, *options.baseline]
    if options.large_db and len(options.large_db) != len(trees):
        parser.error(f"--large-db: one per tree ({len(trees)}), in the order: this checkout, then each --baseline")
    print("machine:", ", ".join(f"{k} {v}" for k, v in machine().items()))
    with tempfile.TemporaryDirectory() as tmp:
        saved = [Path(tmp) / f"saved-{number}.db" for number in range(len(trees))]  # each tree's own schema
        for tree, path in zip(trees, saved, strict=True):
            saved_database(tree, path)
        cases: dict[str, tuple[str, Callable[[str, int], list[str]]]] = {
            "watch (live, empty db)": ("watch", lambda n, _t: ["--port", "0", "--db", str(Path(tmp) / f"live-{n}.db")]),
            "open (saved db, 2,000 events)": ("open", lambda _n, t: ["open", str(saved[t])]),
        }
        if options.large_db:
            name = options.large_db[0].name
            cases[f"open ({name})"] = ("large", lambda _n, t: ["open", str(options.large_db[t])])
        cases = {case: made for case, made in cases.items() if not options.only or made[0] in options.only}
        for _kind, args in cases.values():  # bytecode compiled, databases in the page cache
            for number, tree in enumerate(trees):
                time_to_frames(tree, args(f"warm-{number}", number), (width, height))
        results: dict[tuple[str, Path], list[Start]] = {}
        for round_no in range(options.rounds):
            for case, (_kind, args) in cases.items():
                for number, tree in enumerate(trees):  # alternated: the same machine state for every tree
                    taken = time_to_frames(tree, args(f"{round_no}-{number}", number), (width, height))
                    results.setdefault((case, tree), []).append(taken)
    print(f"\n{width}x{height}, {options.rounds} rounds, median (min-max) seconds from the start to the main screen")
    print("drawn (frame), to it full with the stats bar's counts in (full), and the CPU seconds the program")
    print("had used by then, all threads (cpu: steadier than wall time on a busy machine)")
    print("| case | tree | frame | full | cpu |")
    print("|---|---|---|---|---|")
    for (case, tree), starts in results.items():
        name = "this checkout" if tree == ROOT else str(tree)
        cells = [_spread([getattr(start, what) for start in starts]) for what in ("frame", "full", "cpu")]
        print(f"| {case} | {name} | {' | '.join(cells)} |")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
