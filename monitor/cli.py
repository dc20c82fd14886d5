"""The ``conscent-monitor`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from monitor import __version__, cli_data, cli_send, store
from monitor.cli_send import credentials_option
from monitor.listener import DEFAULT_MAX_BODY
from monitor.service import DEFAULT_HOST, DEFAULT_PORT, ExposureError, Options, Service, tune_gc
from monitor.textsafe import cell
from monitor.writer import CommitNotice

DEMO_SECRET = "demo-secret"  # noqa: S105  (a demo that signs its own deliveries, not a credential)


class _DefaultToWatch(click.Group):
    """``conscent-monitor [OPTIONS]`` with no command means ``watch``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h", "--version")):
            args = ["watch", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToWatch, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conscent-monitor")
def cli() -> None:
    """Watch Conscent.ai paywall webhooks live, and review them later.

    With no command, runs `watch` (the live monitor).
    """


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 takes a free one.",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    # The file name comes first so that help wrapping cannot split it at its hyphen.
    help=f"SQLite file; default ./{store.DEFAULT_DB} (with --demo, a fresh temporary one).",
)
@click.option("--secret", envvar="CONSCENT_WEBHOOK_SECRET", help="Webhook secret: check X-Conscent-Signature.")
@click.option(
    "--basic-auth",
    callback=credentials_option,
    metavar="KEY:SECRET",
    help="Check HTTP Basic auth (older Conscent webhooks).",
)
@click.option(
    "--require-signature",
    "require_auth",
    is_flag=True,
    help="Refuse (401) deliveries whose signature or basic auth is missing or wrong.",
)
@click.option(
    "--max-body",
    default=DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(1),
    help="Largest body accepted, in bytes (after decompression).",
)
@click.option(
    "--allow-unauthenticated", is_flag=True, help="Allow a non-loopback --host without --secret or --basic-auth."
)
@click.option(
    "--forward-to",
    metavar="URL",
    help="Also pass every accepted delivery to your application (exact bytes and headers).",
)
@click.option(
    "--forward-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds to wait for the forward target.",
)
@click.option(
    "--forward-attempts",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    help="Attempts per delivery when the target fails (connection error, timeout, 5xx, 429).",
)
@click.option("--headless", is_flag=True, help="No TUI: print one line per delivery.")
@click.option(
    "--demo",
    is_flag=True,
    help=f"Post a generated stream of Conscent events to the monitor itself (signed with --secret, "
    f"default {DEMO_SECRET!r}).",
)
def watch(db_path: Path | None, headless: bool, demo: bool, **kwargs: Any) -> None:
    """Receive webhooks and show them as they arrive."""
    if db_path is None:
        db_path = _demo_db() if demo else Path(store.DEFAULT_DB)
    if demo and kwargs["port"] == DEFAULT_PORT:
        kwargs["port"] = 0
    if demo and not kwargs["secret"]:
        # So the demo shows signature checking: valid deliveries and the one signed with a wrong key.
        kwargs["secret"] = DEMO_SECRET
    options = Options(db_path=db_path, mode="headless" if headless else ("demo" if demo else "tui"), **kwargs)
    try:
        if headless:
            asyncio.run(_headless(options, demo))
        else:
            from monitor.launch import run_live

            run_live(options, demo=demo)
    except ExposureError as exc:
        raise click.UsageError(str(exc)) from None
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None


def _demo_db() -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="conscent-monitor-demo-"))
    return folder / "demo.db"


async def _headless(options: Options, demo: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    printer = _Printer()
    service = Service(options, on_commit=printer)
    url = await service.start()
    tune_gc()
    click.echo(
        f"conscent-monitor {__version__}: listening on {url}  (database {options.db_path}, "
        f"session {service.session_id}); Ctrl-C stops",
        err=False,
    )
    sys.stdout.flush()
    demo_task = None
    if demo:
        from monitor.demo import run_demo

        demo_task = asyncio.create_task(run_demo(url, secret=options.secret, stop=stop))
    await stop.wait()
    if demo_task is not None:
        await demo_task
    await service.stop()
    await asyncio.to_thread(printer.close)
    with contextlib.suppress(OSError):
        click.echo(f"stopped; session {service.session_id} closed")


class _Printer:
    """Prints one line per delivery from a thread of its own.

    A stdout that does not keep up (a pipe nobody reads, a paused pager, Ctrl-S
    in a terminal) must never hold up the listener: when too much is waiting,
    lines are dropped and counted instead.
    """

    def __init__(self, limit: int = 10_000) -> None:
        # SimpleQueue: put() is a C call that never waits on a lock the
        # printing thread holds, so the writer is never held up.
        self._queue: queue.SimpleQueue[CommitNotice | None] = queue.SimpleQueue()
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

    def close(self, timeout: float = 10.0) -> None:
        """Print what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (notice := self._queue.get()) is not None:
            text = _notice_text(notice)
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                text = f"({dropped} deliveries not printed: output too slow)\n{text}"
            try:
                click.echo(text)
                sys.stdout.flush()
            except OSError:  # stdout closed (piped into head?): keep receiving, stop printing
                while self._queue.get() is not None:
                    pass
                return


def _notice_text(notice: CommitNotice) -> str:
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


for _command in (cli_send.send, cli_data.open_cmd, cli_data.import_cmd, cli_data.export_cmd, cli_data.generate_cmd):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="conscent-monitor")
