"""The headless front end: the listener on the main loop, one printed line per delivery.

Nothing here imports Textual, Rich or click: it prints with ``print``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from monitor import __version__, tunnel_status
from monitor.service import Options, Service, tune_gc
from monitor.textsafe import cell
from monitor.writer import CommitNotice

if TYPE_CHECKING:
    from monitor.tunnel import TunnelState


class Companion(Protocol):
    """Something that runs beside the listener on its loop: the web UI of ``serve``."""

    async def start(self, service: Service) -> None:
        """Start once the listener listens (and print its own line); raise to stop the run."""

    async def stop(self) -> None:
        """Stop before the listener does."""


async def run_headless(options: Options, demo: bool, companion: Companion | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    printer = _Printer()
    tunnel_lines = TunnelLines(printer.line)
    service = Service(options, on_commit=printer, on_alarm=printer.alarm, on_tunnel_change=tunnel_lines)
    url = await service.start()
    tune_gc()
    print(
        f"conscent-monitor {__version__}: listening on {url}  (database {options.db_path}, "
        f"session {service.session_id}); Ctrl-C stops",
        flush=True,
    )
    tunnel_lines.start(service.tunnel_state)
    if companion is not None:
        try:
            await companion.start(service)
        except BaseException:
            await service.stop()
            await asyncio.to_thread(printer.close)
            raise
    demo_task = None
    if demo:
        from monitor.demo import run_demo

        demo_task = asyncio.create_task(run_demo(url, secret=options.secret, stop=stop))
    await stop.wait()
    if companion is not None:
        await companion.stop()
    if demo_task is not None:
        await demo_task
    await service.stop()
    await asyncio.to_thread(printer.close)
    with contextlib.suppress(OSError):
        print(stopped_line(service), flush=True)


def stopped_line(service: Service) -> str:
    """The last line of a run: what became of the session and its file."""
    if service.writer.lost is not None:
        return f"stopped; session {service.session_id} not closed: {service.writer.lost}"
    if not service.session_closed:
        return f"stopped; session {service.session_id} left open (its end time could not be written; rows are stored)"
    if not service.checkpointed:
        wal = service.writer.file.wal
        return f"stopped; session {service.session_id} closed; part of it is still in {wal}: copy it with the database"
    return f"stopped; session {service.session_id} closed"


class TunnelLines:
    """``on_tunnel_change``: a line on each change of the tunnel's state (:func:`tunnel_status.change_lines`).

    Called on the listener's loop thread; the lines go through the printer's
    queue, so they stay in order with the deliveries and never hold the loop
    up. Nothing is printed before the "listening on" line (:meth:`start`).
    """

    def __init__(self, emit: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._started = False
        self._latest: TunnelState | None = None
        self._shown: TunnelState | None = None
        self._last_url: str | None = None

    def __call__(self, state: TunnelState) -> None:
        with self._lock:
            self._latest = state
            if self._started:
                self._show(state)

    def start(self, state: TunnelState | None) -> None:
        """The listening line is out: print the state so far (the service's, if no change came yet)."""
        with self._lock:
            self._started = True
            state = self._latest or state
            if state is not None:
                self._show(state)

    def _show(self, state: TunnelState) -> None:
        lines = tunnel_status.change_lines(self._shown, state, self._last_url)
        self._shown = state
        self._last_url = tunnel_status.public_url(state) or self._last_url
        stamp = _clock(self._clock())
        for line in lines:
            self._emit(f"{stamp}  {line}")


class _Printer:
    """Prints one line per delivery from a thread of its own.

    A stdout that does not keep up (a pipe nobody reads, a paused pager, Ctrl-S
    in a terminal) must never hold up the listener: when too much is waiting,
    lines are dropped and counted instead.
    """

    def __init__(self, limit: int = 10_000) -> None:
        # SimpleQueue: put() is a C call that never waits on a lock the
        # printing thread holds, so the writer is never held up.
        self._queue: queue.SimpleQueue[CommitNotice | str | None] = queue.SimpleQueue()
        self._limit = limit
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="monitor-printer", daemon=True)
        self._thread.start()

    def __call__(self, notice: CommitNotice) -> None:
        """``on_commit``: called on the writer thread, never blocks."""
        if self._queue.qsize() >= self._limit:
            self._dropped += len(notice.events) + len(notice.rejected)
        else:
            self._queue.put(notice)

    def alarm(self, message: str) -> None:
        """``on_alarm``: the database left its path. Always printed, whatever the backlog."""
        self._queue.put(f"{_clock(time.time())}  !!! NOT RECORDING: {message}")

    def line(self, text: str) -> None:
        """A line of the monitor's own (the tunnel's state): always printed, in order with the deliveries."""
        self._queue.put(text)

    def close(self, timeout: float = 10.0) -> None:
        """Print what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (notice := self._queue.get()) is not None:
            text = notice if isinstance(notice, str) else notice_text(notice)
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                text = f"({dropped} deliveries not printed: output too slow)\n{text}"
            try:
                print(text, flush=True)
            except OSError:  # stdout closed (piped into head?): keep receiving, stop printing
                while self._queue.get() is not None:
                    pass
                return


def notice_text(notice: CommitNotice) -> str:
    """The lines ``watch --headless`` prints for a commit (``wait --format line`` prints them too), made inert."""
    lines = []
    for row in notice.events:
        who = row.get("name") or row.get("username") or row.get("user_id") or "-"
        event = row.get("event") or ("(legacy)" if row.get("kind") == "legacy" else "-")
        lines.append(
            f"{_clock(row['received_at'])}  200  #{row['id']:<6} {cell(event, 32):<24} {cell(who, 40):<28} "
            f"sig={row.get('signature')}"
        )
    for row in notice.rejected:
        reason = cell(row["reason"], 120)
        lines.append(f"{_clock(row['received_at'])}  {row['status']}  rejected #{row['id']}: {reason}")
    for row in notice.forwards:
        answer = row.get("status") or cell(row.get("error"), 80)
        lines.append(
            f"{_clock(row['requested_at'])}  {row['kind']} of #{row['event_id']} (attempt {row['attempt']}) "
            f"-> {answer}  {row.get('latency_ms') or 0:.0f} ms"
        )
    return "\n".join(lines)


def _clock(epoch: float) -> str:
    return _clock_second(int(epoch))


@functools.lru_cache(maxsize=8)
def _clock_second(second: int) -> str:
    # strftime(localtime()) per printed line was a tenth of headless mode's CPU under load.
    return time.strftime("%H:%M:%S", time.localtime(second))
