"""The live monitor with its TUI, for benchmarks: Service + MonitorApp on Textual's headless driver.

Wired exactly like ``monitor.tui.launch.run_live`` (listener thread, writer
thread, commit notices posted to the app), but the screen is Textual's
headless driver, so it runs without a terminal. Prints ``ready`` once the
app has mounted; SIGTERM (or SIGINT) exits the app, which stops the service
and closes the session.

    python -m bench.tui_server --db X.db --port 8787 [--forward-to URL]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

from monitor.service import Options, Service, tune_gc
from monitor.tui.app import MonitorApp
from monitor.writer import CommitNotice


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--forward-to")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=48)
    args = parser.parse_args()

    app: MonitorApp | None = None

    def on_commit(notice: CommitNotice) -> None:
        if app is not None:
            app.notify_commit(notice)

    options = Options(db_path=args.db, port=args.port, mode="tui", forward_to=args.forward_to)
    service = Service(options, on_commit=on_commit)
    service.start_in_thread()
    app = MonitorApp(args.db, service=service)
    tune_gc()  # as monitor.tui.launch.run_live does
    stop = asyncio.Event()

    async def pilot(_pilot: Any) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"ready {service.url}", flush=True)
        await stop.wait()
        app.exit()

    try:
        app.run(headless=True, size=(args.width, args.height), auto_pilot=pilot)
    finally:
        service.stop_thread()  # a no-op when the app's unmount stopped it already


if __name__ == "__main__":
    main()
