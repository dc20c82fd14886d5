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
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, describe_machine


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


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-stages", action="store_true", help="skip the breakdown")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.count = 3000
    from monitor import exporting, importing, store

    print(describe_machine(), flush=True)
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
