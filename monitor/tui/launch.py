"""Start the TUI: live (listener first, then the screens) or offline review."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import lifeline
from monitor.tui.app import MonitorApp

if TYPE_CHECKING:  # the listener's machinery (aiohttp) is imported by run_live only: `open` starts without it
    from monitor.service import Options, Service
    from monitor.writer import CommitNotice


def run_live(options: Options, *, demo: bool = False) -> Service:
    """Start the listener, then the TUI; the session closes when the TUI exits. Returns the stopped service."""
    from monitor.service import Service, tune_gc

    app: MonitorApp | None = None

    def on_commit(notice: CommitNotice) -> None:
        if app is not None:
            app.notify_commit(notice)

    service = Service(options, on_commit=on_commit)
    url = service.start_in_thread()
    stop_demo = _start_demo(url, options.secret) if demo else None
    try:
        app = MonitorApp(options.db_path, service=service)
        app.when_ready = tune_gc  # its full collection takes 0.1-0.2 s: after the first frame, not before it
        app.run()
    finally:
        if stop_demo is not None:
            stop_demo()
        service.stop_thread()  # done already when the app unmounted; not if it failed to start
        # The stop folded the WAL into the .db while the app's readers were still
        # open; if one was inside a read transaction then, they are all closed now.
        service.checkpoint_file()
    return service


def _start_demo(url: str, secret: str | None) -> Callable[[], None]:
    """Run the demo sender on a loop of its own; returns a function that stops it."""
    from monitor.demo import run_demo

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        await run_demo(url, secret=secret, stop=stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="monitor-demo", daemon=True)
    thread.start()

    def stopper() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)

    return stopper


def run_tab(db_path: Path, *, live: bool, session_id: int | None, mask: bool) -> int:
    """A browser tab's app: the database read-only; live, its serve process's session (see monitor.serving)."""
    if not lifeline.follow_parent(os.environ):  # the serve process is gone already: nobody to show
        return 0
    link = None
    if live:
        from monitor.control import ControlClient
        from monitor.tui.link import RemoteLink

        client = ControlClient.from_env()
        if client is None:
            raise RuntimeError(f"a live tab needs {ControlClient.ENV}: it is started by `conscent-monitor serve`")
        link = RemoteLink(client)
        link.refresh()  # the listener's URL and session, before the first screen
    app = MonitorApp(db_path, link=link, session_id=session_id, mask_forced=mask)
    app.run()
    return app.return_code or 0


def run_offline(db_path: Path, session_id: int | None) -> int:
    """Review a saved database; returns the app's exit status (1 when the database could not be read)."""
    app = MonitorApp(db_path, session_id=session_id)
    app.run()
    return app.return_code or 0
