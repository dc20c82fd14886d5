"""``conscent-monitor watch``: receive webhooks, in the TUI or headless."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import click

from monitor import store
from monitor.cli.common import credentials_option, http_url, tunnel_spec
from monitor.cli.web import web_listen_failure, web_options, web_settings
from monitor.connections import DEFAULT_HEAD_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT
from monitor.listener import DEFAULT_MAX_BODY, DEFAULT_MAX_IN_FLIGHT, DEFAULT_SHUTDOWN_TIMEOUT
from monitor.service import DEFAULT_HOST, DEFAULT_PORT, ExposureError, Options, check_exposure

DEMO_SECRET = "demo-secret"  # noqa: S105  (a demo that signs its own deliveries, not a credential)


@click.command(short_help="Receive webhooks and show them live (the default command).")
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
    "--max-in-flight",
    default=DEFAULT_MAX_IN_FLIGHT,
    show_default=True,
    type=click.IntRange(1),
    help="Bytes of request bodies held in memory at once, over all connections; past it, 503.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    help="Open connections at most (default: from ulimit -n, leaving room for files).",
)
@click.option(
    "--head-timeout",
    default=DEFAULT_HEAD_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a connection has to send a complete request head.",
)
@click.option(
    "--keepalive-timeout",
    default=DEFAULT_KEEPALIVE_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds an idle connection is kept open between requests.",
)
@click.option(
    "--shutdown-timeout",
    default=DEFAULT_SHUTDOWN_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds Ctrl-C and SIGTERM wait for requests still being received.",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="Allow a non-loopback --host, --tunnel or --public-url without --secret or --basic-auth.",
)
@click.option(
    "--tunnel",
    metavar="cloudflared|ngrok|ssh:HOST",
    callback=tunnel_spec,
    help="Give the monitor a public URL for Conscent to post to: run a Cloudflare quick tunnel, "
    "ngrok, or ssh -R to HOST (e.g. ssh:nokey@localhost.run); the header shows the URL.",
)
@click.option(
    "--public-url",
    metavar="URL",
    callback=http_url,
    help="The public URL that reaches this monitor another way (a reverse proxy, a company tunnel); "
    "shown and checked like a tunnel's.",
)
@click.option(
    "--forward-to",
    metavar="URL",
    callback=http_url,
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
@click.option("--web", is_flag=True, help="Show the screens in a browser instead (the same as `serve`).")
@web_options
def watch(db_path: Path | None, headless: bool, demo: bool, web: bool, **kwargs: Any) -> None:
    """Receive webhooks and show them as they arrive."""
    web_kwargs = {name: kwargs.pop(name) for name in ("web_host", "web_port", "web_password", "web_mask")}
    if not web and any(web_kwargs[name] not in (None, False) for name in ("web_password", "web_mask")):
        raise click.UsageError("--web-password and --web-mask are for the web UI: add --web (or use `serve`)")
    if db_path is None:
        db_path = _demo_db() if demo else Path(store.DEFAULT_DB)
    if demo and kwargs["port"] == DEFAULT_PORT:
        kwargs["port"] = 0
    if demo and not kwargs["secret"]:
        # So the demo shows signature checking: valid deliveries and the one signed with a wrong key.
        kwargs["secret"] = DEMO_SECRET
    if kwargs["tunnel"] and kwargs["public_url"]:
        raise click.UsageError("--tunnel and --public-url cannot be used together: a tunnel makes its own URL")
    mode = "web" if web else ("headless" if headless else ("demo" if demo else "tui"))
    options = Options(db_path=db_path, mode=mode, **kwargs)
    try:
        check_exposure(options)  # before anything starts or is created (the Service checks it again)
        if web:
            settings = web_settings(
                basic_auth=options.basic_auth, allow_unauthenticated=options.allow_unauthenticated, **web_kwargs
            )
            from monitor.headless import run_headless
            from monitor.serving import WebFront

            asyncio.run(run_headless(options, demo, WebFront(settings, db_path)))
        elif headless:
            from monitor.headless import run_headless

            asyncio.run(run_headless(options, demo))
        else:
            from monitor.tui.launch import run_live

            service = run_live(options, demo=demo)
            if service.writer.lost is not None:  # the header said so; the screen is gone now
                click.echo(f"conscent-monitor: {service.writer.lost}", err=True)
            elif not service.checkpointed:  # a reader stayed inside a transaction past the busy timeout
                click.echo(
                    f"conscent-monitor: part of the session is still in {service.writer.file.wal}: "
                    "copy it with the database (opening the database once folds it in)",
                    err=True,
                )
        if demo:
            from monitor.demo import reopen_hint

            click.echo(reopen_hint(db_path, _program()))
    except ExposureError as exc:
        raise click.UsageError(str(exc)) from None
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        message = (web_listen_failure(exc) if web else None) or listen_failure(options.host, options.port, exc)
        raise click.ClickException(message) from None


def listen_failure(host: str, port: int, exc: OSError, option: str = "--port") -> str:
    """One line for a port that cannot be listened on; the usual cause, a port in use, said plainly."""
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use (another monitor?); {option} 0 takes a free one"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need root); {option} 0 takes a free one"
    return f"{where}: {exc.strerror or exc}"


def serve_command() -> click.Command:
    """``serve``: ``watch --web`` under its own name, with every option of ``watch`` but the front-end flags."""
    params = [param for param in watch.params if param.name not in ("headless", "web")]

    def serve(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        ctx.invoke(watch, headless=False, web=True, **kwargs)

    return click.Command(
        "serve",
        callback=serve,
        params=params,
        short_help="Receive webhooks and show the screens in a browser.",
        help="Receive webhooks and show the monitor in a browser: each tab is a live view of the one "
        "listener and database (the same as `watch --web`). The web UI has its own port (--web-port); "
        "the listener keeps --port.",
    )


def _program() -> str:
    """The command that runs this program again: ``conscent-monitor``, or the path it was started by.

    After the README's quick start (``.venv/bin/conscent-monitor --demo``, no
    virtualenv activated) a bare ``conscent-monitor`` is not on PATH: the hint
    then repeats the path that worked.
    """
    import shlex
    import shutil
    import sys

    name = "conscent-monitor"
    invoked = Path(sys.argv[0])
    if invoked.name != name:  # python -m monitor, or a test
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == invoked.resolve():
        return name
    return shlex.quote(sys.argv[0])


def _demo_db() -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="conscent-monitor-demo-"))
    return folder / "demo.db"
