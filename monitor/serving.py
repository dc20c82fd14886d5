"""The web front end: the monitor's screens in a browser, one tab process per browser tab.

``serve`` (``watch --web``) runs the headless listener and, on the same loop,
the web server of :mod:`monitor.webui`; each browser tab starts
``python -m monitor web-tab`` (:func:`tab_command`), an app that reads the
database read-only and reaches this process through its control channel: one
listener, one writer, many viewers. ``open --web`` serves the same tabs for a
saved database, with no listener (:func:`serve_saved`). This module imports
:mod:`monitor.webui`, hence textual-serve: the command line imports it only
once it knows the ``[web]`` extra is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from monitor import __version__, lifeline
from monitor.control import ServiceControl
from monitor.service import Service, is_loopback
from monitor.webui import WebOptions, WebServer


def tab_env() -> dict[str, str | None]:
    """A tab's environment: this process's pid, so the tab ends with it even on SIGKILL (lifeline.follow_parent);
    not the password nor the secret, which it does not need (the serve process signs replays)."""
    return {
        lifeline.PARENT_ENV: str(os.getpid()),
        "CONSCENT_MONITOR_WEB_PASSWORD": None,
        "CONSCENT_WEBHOOK_SECRET": None,
    }


class WebListenError(OSError):
    """The web UI's own address cannot be listened on (not the listener's)."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.host, self.port = host, port


def tab_command(db_path: Path, *, live: bool, session_id: int | None = None, mask: bool = False) -> list[str]:
    """What a browser tab runs: this Python, this package, the database by its absolute path."""
    command = [sys.executable, "-m", "monitor", "web-tab", "--db", str(db_path.resolve())]
    if live:
        command.append("--live")
    if session_id is not None:
        command += ["--session", str(session_id)]
    if mask:
        command.append("--mask")
    return command


def banner(url: str, options: WebOptions, what: str) -> str:
    """The line that says where the web UI is (``web UI on URL`` is what scripts look for)."""
    notes = [what]
    if not is_loopback(options.host):  # the URL shown is this machine's; others use its address on the network
        notes.append(f"open to the network on {options.host or '*'}:{url.rsplit(':', 1)[-1].rstrip('/')}")
    if options.needs_login:
        notes.append("password required")
    if options.mask:
        notes.append("personal data masked")
    return f"conscent-monitor: web UI on {url}  ({', '.join(notes)})"


async def _start(server: WebServer, options: WebOptions) -> str:
    try:
        return await server.start()
    except OSError as exc:
        raise WebListenError(options.host, options.port, exc) from exc


class WebFront:
    """``serve``'s companion of the headless listener (:class:`monitor.headless.Companion`)."""

    def __init__(self, options: WebOptions, db_path: Path) -> None:
        self.options = options
        self.db_path = db_path
        self.server: WebServer | None = None

    async def start(self, service: Service) -> None:
        command = tab_command(self.db_path, live=True, mask=self.options.mask)
        self.server = WebServer(self.options, command, control=ServiceControl(service), tab_env=tab_env())
        url = await _start(self.server, self.options)
        print(banner(url, self.options, "each tab is a live view of this session"), flush=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


async def serve_saved(db_path: Path, options: WebOptions, session_id: int | None) -> None:
    """``open DB --web``: the saved session in browser tabs, read-only, until Ctrl-C or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    command = tab_command(db_path, live=False, session_id=session_id, mask=options.mask)
    server = WebServer(options, command, tab_env=tab_env())
    url = await _start(server, options)
    print(f"conscent-monitor {__version__}: reviewing {db_path} (read-only); Ctrl-C stops", flush=True)
    print(banner(url, options, "read-only review"), flush=True)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
