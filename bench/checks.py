"""What the integration checks (``conscent-monitor check``, the Checks screen) cost at 10,000 and 1,000,000 events.

For each database: every check timed on its own, then ``run_checks`` (all of
them, sharing the pairing pass), each on a fresh read-only connection, for one
session and for every session. "cold" is the first run after the file's pages
were dropped from the OS cache (``posix_fadvise(DONTNEED)``: no root needed;
pages another process holds may stay), "warm" the median of three runs after it
(wall clock, and the process's CPU time: on a busy machine the wall clock also
counts the time other processes had the CPU).

    python -m bench.checks                       # 10k and 1M generated databases (cached, see bench/scale.py)
    python -m bench.checks --db /tmp/D/1m.db     # any database
    python -m bench.checks --add-indexes         # create checks.CHECK_INDEXES first (writes to the file!)

"re-run": run_checks again with the pairing kept between runs (the Checks
screen re-runs on every commit; only rows after the highest id seen are read).

The databases come from ``bench.scale.database`` (cached under
$CONSCENT_BENCH_CACHE, default /tmp/conscent-bench); ``--add-indexes`` adds the schema's
check indexes (store.SPECIAL_INDEXES) to a database made before schema 2.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import CACHE, describe_machine
from monitor import checks, store


def _drop_cache(path: Path) -> None:
    """Ask the OS to forget the file's cached pages (and its WAL's)."""
    for name in (path, Path(f"{path}-wal")):
        if not name.exists() or not hasattr(os, "posix_fadvise"):
            continue
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _timed(path: Path, run: Callable[..., object], session_id: int | None) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run (CPU: what it costs on a machine busy with other work)."""
    db = store.connect(path, readonly=True)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        run(db, session_id)
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        db.close()


Timing = tuple[float, float]


def measure(path: Path, session_id: int | None) -> list[tuple[str, Timing, Timing, Timing]]:
    """``(name, cold, warm, rerun)`` (each (wall, cpu)) for each check and for all of them.

    cold and warm start without the pairing kept between runs (what ``conscent-monitor check`` pays: a new
    process); warm is the median of three. rerun: the median of three with the pairing kept (the Checks
    screen re-running on a commit that added nothing to pair).
    """
    now = time.time()
    runs: list[tuple[str, Callable[..., object]]] = [
        (key, lambda db, sid, key=key: checks.run_check(db, key, sid, now=now)) for key in checks.CHECKS
    ]
    runs.append(("all (run_checks)", lambda db, sid: checks.run_checks(db, sid, now=now)))

    def fresh(db: object, sid: int | None, run: Callable[..., object]) -> object:
        checks._PAIRING_STATES.clear()
        return run(db, sid)

    results = []
    for name, run in runs:
        _drop_cache(path)
        cold = _timed(path, lambda db, sid, run=run: fresh(db, sid, run), session_id)
        warm = sorted(_timed(path, lambda db, sid, run=run: fresh(db, sid, run), session_id) for _ in range(3))[1]
        rerun = sorted(_timed(path, run, session_id) for _ in range(3))[1]
        results.append((name, cold, warm, rerun))
    return results


def report(path: Path, label: str) -> None:
    db = store.connect(path, readonly=True)
    try:
        latest = db.execute("SELECT max(id) FROM sessions").fetchone()[0]
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        indexed = all(checks._has_index(db, statement.split()[5]) for statement in checks.CHECK_INDEXES)
    finally:
        db.close()
    print(f"\n{label}: {path} ({events:,} events; CHECK_INDEXES {'present' if indexed else 'absent'})")
    print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for scope, session_id in (("latest session", latest), ("every session", None)):
        print(f"  {scope}:")
        print(f"    {'check':<28} {'cold ms':>9} {'warm ms':>9} {'warm cpu ms':>12} {'re-run ms':>10} {'cpu ms':>8}")
        for name, cold, warm, rerun in measure(path, session_id):
            print(
                f"    {name:<28} {cold[0] * 1000:>9.1f} {warm[0] * 1000:>9.1f} {warm[1] * 1000:>12.1f}"
                f" {rerun[0] * 1000:>10.1f} {rerun[1] * 1000:>8.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, action="append", help="a database to measure (repeatable)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--add-indexes", action="store_true", help="create checks.CHECK_INDEXES in each database")
    args = parser.parse_args()
    print(describe_machine())
    if args.db:
        targets = [(path, path.name) for path in args.db]
    else:
        from bench.scale import database

        targets = [(database(size, args.cache), f"{size:,} generated") for size in args.sizes]
    for path, label in targets:
        if args.add_indexes:
            db = store.connect(path)
            try:
                for statement in checks.CHECK_INDEXES:
                    db.execute(statement)
            finally:
                db.close()
        report(path, label)


if __name__ == "__main__":
    main()
