"""One stage of the ingest path, for ``python -m bench.ingest --breakdown``.

    python -m bench.stage_server PORT DB STAGE

Stages, each adding one piece of the monitor's work per delivery:

``floor``
    a bare aiohttp handler plus the cheapest durable write there is: a writer
    thread group-commits ``(received_at, body)`` into a two-column WAL table
    and the answer waits for the commit. No parse, no index. What any
    acknowledge-after-commit design pays, whatever it stores.
``skeleton``
    the monitor's own listener and writer (``Service``), with the parse
    replaced by a fixed record and the 50-column insert replaced by the
    two-column one above: the request handling, row building, writer
    hand-off and commit bookkeeping.
``parse``
    ``skeleton`` with the real parse (``events.parse_body``).
``store``
    the real monitor with nothing stubbed and no output: ``parse`` plus the
    50-column insert into ``events`` and its indexes.

The real headless mode (``store`` plus one printed line per delivery) is the
``headless`` set-up of bench/ingest.py. Stubbing is done here by replacing
module attributes, so the monitor's code carries no benchmark switches.
Prints ``ready`` once listening; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor import events, listener, store
from monitor.service import Options, Service

STAGES = ("floor", "skeleton", "parse", "store")
_BODY = Path(__file__).resolve().parents[1] / "sample_events" / "payment_gateway.view.json"
_NARROW = "CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, received_at REAL, body BLOB)"


def run_floor(port: int, db: Path) -> None:
    pending: queue.SimpleQueue[tuple[float, bytes, asyncio.Future[None], asyncio.AbstractEventLoop]] = (
        queue.SimpleQueue()
    )

    def write() -> None:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_NARROW)
        while True:
            batch = [pending.get()]
            while True:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO raw (received_at, body) VALUES (?, ?)", [(t, b) for t, b, _, _ in batch])
            conn.execute("COMMIT")
            batch[0][3].call_soon_threadsafe(_resolve, [future for _, _, future, _ in batch])

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        pending.put((time.time(), body, future, loop))
        await future
        return web.json_response({"ok": True})

    threading.Thread(target=write, daemon=True).start()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *a: print("ready", flush=True))


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        future.set_result(None)


def _narrow_write_batch(conn: sqlite3.Connection, rows: Any, rejected: Any, forwards: Any = ()) -> store.Committed:
    conn.execute(_NARROW)
    conn.execute("BEGIN IMMEDIATE")
    ids = [
        int(
            conn.execute(
                "INSERT INTO raw (received_at, body) VALUES (?, ?)", (row["received_at"], row["body"])
            ).lastrowid
            or 0
        )
        for row in rows
    ]
    conn.execute("COMMIT")
    return store.Committed(ids, [], [])


def run_monitor(port: int, db: Path, stage: str) -> None:
    if stage == "skeleton":
        record = events.parse_body(_BODY.read_bytes())
        setattr(listener, "parse_body", lambda body: record)  # noqa: B010 - a stub, on purpose
    if stage in ("skeleton", "parse"):
        setattr(store, "write_batch", _narrow_write_batch)  # noqa: B010

    async def main() -> None:
        service = Service(Options(db_path=db, port=port))
        await service.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await service.stop()

    asyncio.run(main())


def main() -> None:
    port, db, stage = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    if stage not in STAGES:
        raise SystemExit(f"stage must be one of {', '.join(STAGES)}")
    if stage == "floor":
        run_floor(port, db)
    else:
        run_monitor(port, db, stage)


if __name__ == "__main__":
    main()
