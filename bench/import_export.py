"""Import and export throughput, with a breakdown of where an import's time goes.

A JSONL capture of N synthetic deliveries (``monitor.synth.write_jsonl``,
~2.5 KB per line, cached under $CONSCENT_BENCH_CACHE) is imported into a new
database with ``monitor.importing.import_paths``; then every export format is
written from that database to /dev/null-like sinks. The breakdown times the
import's stages on the same lines: reading + orjson (``read_file``), building
rows (``event_row``: events.extract + sha256), ``store.write_batch`` (ids,
duplicate probe, dict -> list, executemany, 9 indexes), and a bare
``executemany`` of prebuilt tuples (SQLite alone).

    python -m bench.import_export               # 200,000 events
    python -m bench.import_export --count 20000
    python -m bench.import_export --quick       # 3,000 events

Before and after (issue 16): ``--baseline DIR`` (a checkout of the code
before, e.g. /tmp/s16/base) runs ``import`` of a JSONL capture and
``generate`` into a new database at each ``--sizes`` count, each tree in a
fresh process (``python -c`` with the tree as cwd and PYTHONPATH), the trees
alternating round by round. Each run reports events/s over the whole command
(rows and the indexes built after them), the rows and index build apart, the
search index build (``store.index_pending`` as the CLI runs it) apart, and
the peak RSS (VmHWM) of the process plus its parsing child, if any:

    python -m bench.import_export --baseline /tmp/s16/base --sizes 10000,1000000 --rounds 1
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, ROOT, describe_machine


def capture(count: int, cache: Path) -> Path:
    from monitor import synth

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"capture-{count}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".tmp")
        synth.write_jsonl(partial, count)
        partial.rename(path)
    return path


def _fresh(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def stages(path: Path, folder: Path, count: int) -> dict[str, float]:
    from monitor import importing, store

    out: dict[str, float] = {}
    started = time.perf_counter()
    items = [item for item in importing.read_file(path) if isinstance(item, importing.Incoming)]
    out["read+parse /s"] = count / (time.perf_counter() - started)
    started = time.perf_counter()
    rows = [importing.event_row(1, item, 0.0) for item in items]
    out["event_row /s"] = count / (time.perf_counter() - started)
    del items
    db_path = folder / "stage.db"
    _fresh(db_path)
    db = store.open_store(db_path)
    db.execute("PRAGMA cache_size = -65536")
    started = time.perf_counter()
    for start in range(0, len(rows), 5000):
        store.write_batch(db.conn, rows[start : start + 5000], [])
    out["write_batch /s"] = count / (time.perf_counter() - started)
    db.close()
    _fresh(db_path)
    db = store.open_store(db_path)
    db.execute("PRAGMA cache_size = -65536")
    names = [name for name in store.EVENTS_COLUMNS if name != "id"]
    tuples = [tuple(row.get(name) for name in names) for row in rows]
    sql = f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    started = time.perf_counter()
    for start in range(0, len(tuples), 5000):
        with db.conn:
            db.conn.execute("BEGIN")
            db.conn.executemany(sql, tuples[start : start + 5000])
    out["sqlite executemany only /s"] = count / (time.perf_counter() - started)
    db.close()
    _fresh(db_path)
    return out


#: Runs in a fresh interpreter in the tree measured (cwd and PYTHONPATH): JSON args in, one JSON line out.
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from monitor import importing, store, synth
args = json.loads(sys.argv[1])
for suffix in ("", "-wal", "-shm"):
    Path(args["db"] + suffix).unlink(missing_ok=True)
started = time.perf_counter()
if args["what"] == "import":
    report = importing.import_paths(args["db"], [args["capture"]])
else:
    report = synth.build_database(args["db"], args["count"], seed=1, end=1_760_000_000).reports[0]
seconds = time.perf_counter() - started
assert report.imported == args["count"], report
own = resource.getrusage(resource.RUSAGE_SELF)
import_cpu = own.ru_utime + own.ru_stime
db = store.connect(args["db"])
indexing = time.perf_counter()
while store.index_pending(db.conn, 5000):
    pass
search = time.perf_counter() - indexing
db.close()
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
child = getattr(report, "worker_peak_rss_kb", 0) or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "cpu": me.ru_utime + me.ru_stime, "import_cpu": import_cpu, "child_cpu": kids.ru_utime + kids.ru_stime,
    "seconds": seconds, "rate": args["count"] / seconds,
    "index": getattr(report, "index_seconds", 0.0), "search": search,
    "rss_mb": (hwm() + child) / 1024, "child_mb": child / 1024,
}))
"""


def run_child(tree: Path, what: str, count: int, db: Path, capture_path: Path) -> dict[str, float]:
    import os
    import subprocess
    import sys

    args = {"what": what, "count": count, "db": str(db), "capture": str(capture_path)}
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree} {what} {count}: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return result


def before_after(
    baseline: Path, after: Path, sizes: list[int], rounds: int, cache: Path, folder: Path
) -> list[dict[str, object]]:
    """import and generate per size, ``after`` and ``baseline`` alternating; one row per (case, tree, round)."""
    trees = {"before": baseline, "after": after}
    out: list[dict[str, object]] = []
    print(f"{'case':<18} {'tree':<7} {'events/s':>9} {'total s':>8} {'indexes s':>9} {'search s':>8} {'peak MB':>8}")
    for count in sizes:
        path = capture(count, cache)
        for what in ("import", "generate"):
            for number in range(rounds):
                order = list(trees.items()) if number % 2 == 0 else list(reversed(trees.items()))
                for name, tree in order:
                    result = run_child(tree, what, count, folder / f"{name}-{what}-{count}.db", path)
                    out.append({"case": f"{what} {count:,}", "tree": name, "round": number, **result})
                    print(
                        f"{what + ' ' + format(count, ','):<18} {name:<7} {result['rate']:>9,.0f} "
                        f"{result['seconds']:>8.1f} {result['index']:>9.1f} {result['search']:>8.1f} "
                        f"{result['rss_mb']:>8.0f}",
                        flush=True,
                    )
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--baseline", type=Path, help="a checkout of the code before: import/generate before and after")
    parser.add_argument("--sizes", default="10000,1000000", help="with --baseline: counts, comma-separated")
    parser.add_argument("--after", type=Path, default=ROOT, help="with --baseline: the tree measured as after")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: runs per tree and case")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-stages", action="store_true", help="skip the breakdown")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.count = 3000
    from monitor import exporting, importing, store

    print(describe_machine(), flush=True)
    if args.baseline is not None:
        with tempfile.TemporaryDirectory(prefix="conscent-impexp-") as tmp:
            sizes = [int(size) for size in args.sizes.split(",")]
            rows = before_after(args.baseline, args.after, sizes, args.rounds, args.cache, Path(tmp))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return {}
    path = capture(args.count, args.cache)
    size_mb = path.stat().st_size / 1e6
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="conscent-impexp-") as tmp:
        folder = Path(tmp)
        db_path = folder / "import.db"
        report = importing.import_paths(db_path, [path])
        assert report.imported == args.count, report.describe()
        results["import new db /s"] = report.rate
        report2 = importing.import_paths(db_path, [path])
        results["import again, same db /s"] = report2.rate
        print(
            f"import: {args.count:,} lines, {size_mb:.0f} MB: {report.rate:,.0f} events/s into a new database, "
            f"{report2.rate:,.0f}/s appending to one of {args.count:,}",
            flush=True,
        )
        db = store.connect(db_path, readonly=True)
        try:
            for fmt, meta in (("jsonl", False), ("jsonl", True), ("csv", False), ("har", False), ("curl", False)):
                sink = io.BytesIO() if args.count <= 20_000 else open("/dev/null", "wb")  # noqa: SIM115
                started = time.perf_counter()
                done = exporting.export(db, sink, fmt, meta=meta, session_id=report.session_id)  # type: ignore[arg-type]
                seconds = time.perf_counter() - started
                sink.close()
                name = f"export {fmt}{' --meta' if meta else ''} /s"
                results[name] = done.exported / seconds
                print(f"{name:<28} {done.exported / seconds:>10,.0f} rows/s ({done.exported:,} rows)", flush=True)
        finally:
            db.close()
        if not args.no_stages:
            gc.collect()
            for name, value in stages(path, folder, args.count).items():
                results[name] = value
                print(f"stage {name:<28} {value:>10,.0f}", flush=True)
    print()
    print(f"{'measure':<32} {'per second':>12} {'µs each':>9}")
    for name, value in results.items():
        print(f"{name:<32} {value:>12,.0f} {1e6 / value:>9.1f}")
    target = results["import new db /s"] / 50_000
    print(f"import vs target 50,000/s: {target:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
