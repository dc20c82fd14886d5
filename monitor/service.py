"""One monitoring run: session row, writer thread and listener, together.

Headless mode runs the listener on the main event loop. The TUI runs it on a
loop of its own in a background thread (:meth:`Service.start_in_thread`), so
a busy screen never delays an answer to Conscent.

A clean stop leaves a self-contained database: the writer has written
everything, the session row is closed, then the WAL is folded into the ``.db``
and truncated (``store.checkpoint``), so copying the ``.db`` alone copies the
session. The TUI's read connections are still open at that moment; they only
hold the checkpoint back while inside a read transaction, which the busy
timeout waits out (and :meth:`Service.checkpoint_file` tries again once they
are closed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import ipaddress
import logging
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from monitor import store
from monitor.addresses import DEFAULT_HOST as DEFAULT_HOST
from monitor.addresses import DEFAULT_PORT as DEFAULT_PORT
from monitor.addresses import DEFAULT_WEB_PORT as DEFAULT_WEB_PORT
from monitor.connections import DEFAULT_HEAD_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT
from monitor.forwarder import DEFAULT_ATTEMPTS, Forwarder, Outcome
from monitor.forwarder import DEFAULT_TIMEOUT as DEFAULT_FORWARD_TIMEOUT
from monitor.listener import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    ListenerConfig,
    make_runner,
    make_server,
)
from monitor.probe import new_token
from monitor.writer import CommitNotice, Writer

if TYPE_CHECKING:  # the tunnel's machinery is imported only when there is a tunnel (start-up time)
    from monitor.tunnel import Timing, Tunnel, TunnelState

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Options:
    db_path: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    secret: str | None = None
    basic_auth: tuple[str, str] | None = None
    require_auth: bool = False
    max_body: int = DEFAULT_MAX_BODY
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_connections: int | None = None  # None: from ulimit -n
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    allow_unauthenticated: bool = False
    mode: str = "headless"
    forward_to: str | None = None
    forward_timeout: float = DEFAULT_FORWARD_TIMEOUT
    forward_attempts: int = DEFAULT_ATTEMPTS
    #: ``cloudflared``, ``ngrok`` or ``ssh:HOST``: a tunnel program run as a child (monitor/tunnel.py).
    tunnel: str | None = None
    #: A public URL set up another way (a reverse proxy, a company tunnel); probed like a tunnel's.
    public_url: str | None = None


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running receiver; call once started.

    With CPython's default thresholds, at 2,000 deliveries a second a full
    collection ran every second or so and stopped every thread for 50-100 ms:
    those pauses were the listener's p99 latency and the TUI's slowest key
    presses (bench/ui_load.py: key p99 ~100 ms -> ~60 ms, listener p99
    ~80 ms -> ~25 ms). Deliveries make few reference cycles, so collecting
    the young generation every 20,000 allocations instead of 700 keeps memory
    flat, and what exists at start-up (modules, the app, its widgets) lives as
    long as the process, so it is frozen out of every later collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


class ExposureError(ValueError):
    """A non-loopback address without any authentication."""


def check_exposure(options: Options) -> None:
    if options.secret or options.basic_auth or options.allow_unauthenticated:
        return
    if options.tunnel or options.public_url:
        what = f"--tunnel {options.tunnel}" if options.tunnel else f"--public-url {options.public_url}"
        raise ExposureError(
            f"refusing to open {what} without --secret or --basic-auth: the tunnel makes the monitor public, "
            "and anyone who finds its URL could write to your database (pass --allow-unauthenticated if you "
            "really mean it)"
        )
    if is_loopback(options.host):
        return
    raise ExposureError(
        f"refusing to listen on {options.host} without --secret or --basic-auth: anyone who can reach it "
        "could write to your database (pass --allow-unauthenticated if you really mean it)"
    )


def tunnel_target(host: str) -> str:
    """Where a tunnel program on this machine reaches a listener bound to ``host``."""
    if host in ("", "localhost") or host == "0.0.0.0" or (is_loopback(host) and ":" not in host):  # noqa: S104
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Service:
    def __init__(
        self,
        options: Options,
        on_commit: Callable[[CommitNotice], None] | None = None,
        on_alarm: Callable[[str], None] | None = None,
        on_tunnel_change: Callable[[TunnelState], None] | None = None,
        tunnel_timing: Timing | None = None,
    ) -> None:
        """``on_tunnel_change`` is called on the listener's loop thread with each new tunnel state."""
        check_exposure(options)
        if options.tunnel:
            from monitor.tunnel import program_of

            program_of(options.tunnel)  # a bad spec fails here, before any database is touched
        self.options = options
        self._db = store.open_store(options.db_path)
        try:
            self.session_id = store.start_session(self._db, listen=None, mode=options.mode)
        except sqlite3.Error as exc:
            self._db.close()
            raise store.StoreError(f"{options.db_path}: cannot start a session ({exc})") from None
        self.writer = Writer(options.db_path, on_commit=on_commit, on_alarm=on_alarm)
        #: Whether the stop closed the session row / left the ``.db`` self-contained (WAL folded in).
        self.session_closed = False
        self.checkpointed = False
        self.config = ListenerConfig(
            session_id=self.session_id,
            secret=options.secret,
            basic_auth=options.basic_auth,
            require_auth=options.require_auth,
            max_body=options.max_body,
            read_timeout=options.read_timeout,
            max_in_flight=options.max_in_flight,
            max_connections=options.max_connections,
            keepalive_timeout=options.keepalive_timeout,
            head_timeout=options.head_timeout,
            shutdown_timeout=options.shutdown_timeout,
            db_path=str(options.db_path),
            probe_token=new_token() if options.tunnel or options.public_url else None,
            public=bool(options.tunnel or options.public_url),
            tunnel_status=self._tunnel_status,
        )
        self.on_tunnel_change = on_tunnel_change
        self.tunnel_timing = tunnel_timing
        self.tunnel: Tunnel | None = None
        self._runner: web.ServerRunner | None = None
        self.forwarder: Forwarder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    async def start(self) -> str:
        """Start writer and listener on the running loop; returns the URL."""
        self.writer.start()
        if self.options.forward_to:
            self.forwarder = Forwarder(
                self.options.forward_to,
                self.writer,
                timeout=self.options.forward_timeout,
                attempts=self.options.forward_attempts,
                secret=self.options.secret,
                basic_auth=self.options.basic_auth,
            )
            await self.forwarder.start()
        self._runner = make_runner(make_server(self.config, self.writer, self.forwarder))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            if self.forwarder is not None:
                await self.forwarder.stop()
            self.writer.stop()
            self._close_session()
            raise
        port = self._runner.addresses[0][1]
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        self.url = f"http://{host}:{port}/"
        store.set_session_listen(self._db, self.session_id, self.url)
        self.config.listen_url = self.url
        if self.options.tunnel or self.options.public_url:
            await self._start_tunnel(port)
        return self.url

    async def _start_tunnel(self, port: int) -> None:
        from monitor.tunnel import Tunnel

        self.tunnel = Tunnel(
            self.options.tunnel,
            port=port,
            host=tunnel_target(self.options.host),
            token=self.config.probe_token,
            public_url=self.options.public_url,
            log_path=self.options.db_path.with_name(self.options.db_path.name + ".tunnel.log"),
            timing=self.tunnel_timing,
            on_change=self.on_tunnel_change,
        )
        await self.tunnel.start()

    @property
    def tunnel_state(self) -> TunnelState | None:
        """The tunnel's state now, from any thread (a frozen value, replaced whole); None without a tunnel."""
        return self.tunnel.state if self.tunnel is not None else None

    def _tunnel_status(self) -> dict[str, Any] | None:
        """What ``GET /`` shows of the tunnel: no log path, no program output."""
        state = self.tunnel_state
        if state is None:
            return None
        return {
            "provider": state.provider,
            "public_url": state.public_url,
            "phase": state.phase,
            "reachable": state.reachable,
            "probe_ms": None if state.probe_ms is None else round(state.probe_ms, 1),
            "probe_error": state.probe_error,
            "restarts": state.restarts,
        }

    async def stop(self) -> None:
        """End the tunnel, stop accepting, let in-flight requests finish, write, close the session."""
        if self.tunnel is not None:
            try:
                await self.tunnel.stop()
            except Exception:  # the deliveries matter more: stop the rest whatever happened
                log.exception("could not stop the tunnel")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.forwarder is not None:
            # Deliveries are recorded already; only retries still waiting are given up.
            await self.forwarder.stop()
        await asyncio.to_thread(self.writer.stop)
        self._close_session()

    def _close_session(self) -> None:
        """Close the session row and fold the WAL into the ``.db``; after the writer has stopped."""
        if self._db is None:
            return
        try:
            if self._file_gone():
                return  # the rows are where the writer's message says; this path is not ours any more
            store.end_session(self._db, self.session_id)
            self.session_closed = True
        except sqlite3.Error as exc:  # e.g. locked or full right now: the rows are safe, only ended_at is missing
            log.warning("could not close session %s: %s", self.session_id, exc)
        finally:
            if self._db is not None:
                if self.writer.lost is None:
                    self.checkpointed = store.checkpoint(self._db.conn)
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def _file_gone(self) -> bool:
        """The database left its path (seen by the writer, or since it stopped): stay off the path."""
        if self.writer.check_after_stop(self._db.conn) is None:
            return False
        store.keep_files_on_close(self._db.conn)
        return True

    def checkpoint_file(self) -> bool:
        """Fold the WAL into the ``.db`` once more, after the stop (the TUI's readers are closed by then).

        Only needed when the checkpoint at the stop found a reader inside a
        transaction; does nothing when that one succeeded or the file left its path.
        """
        if self.checkpointed or self.writer.lost is not None or self.writer.file.check() is not None:
            return self.checkpointed
        try:
            db = store.connect(self.options.db_path)
        except sqlite3.Error:
            return False
        try:
            self.checkpointed = store.checkpoint(db.conn)
        finally:
            db.close()
        return self.checkpointed

    def start_in_thread(self) -> str:
        """Run the listener on its own loop in a daemon thread."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="monitor-listener", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.url

    def replay(
        self, event_id: int, body: bytes, headers: Mapping[str, str], *, target: str | None, edited: bool
    ) -> concurrent.futures.Future[Outcome]:
        """Send a stored delivery again (from the UI's thread); recorded as a ``replay`` forward."""
        return self.run_on_loop(self.replay_here(event_id, body, headers, target=target, edited=edited))

    async def replay_here(
        self, event_id: int, body: bytes, headers: Mapping[str, str], *, target: str | None, edited: bool
    ) -> Outcome:
        """:meth:`replay`, on the listener's own loop (``serve``'s control channel runs there)."""
        if self.forwarder is None:
            # Replays without --forward-to: a forwarder with no workers.
            self.forwarder = Forwarder(
                target or "",
                self.writer,
                concurrency=0,
                secret=self.options.secret,
                basic_auth=self.options.basic_auth,
            )
            await self.forwarder.start()
        return await self.forwarder.replay(event_id, self.session_id, body, headers, target=target, edited=edited)

    def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the listener's loop (from another thread, e.g. the UI's)."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the listener is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop_thread(self, timeout: float = 15.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.stop(), loop)
        try:
            future.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._loop = self._thread = None
