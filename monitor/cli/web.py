"""The web mode's options and commands: ``serve`` (``watch --web``), ``open --web``, and a browser tab's app.

Web mode needs the ``[web]`` extra (textual-serve); without it, one line says
how to install it. :mod:`monitor.serving` (which imports textual-serve) is
imported only after that check.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor import store
from monitor.addresses import DEFAULT_WEB_PORT

WEB_PASSWORD_ENV = "CONSCENT_MONITOR_WEB_PASSWORD"  # noqa: S105  (a variable name)

F = TypeVar("F", bound=Callable[..., Any])


def web_options(command: F) -> F:
    """The options every web command takes (applied to ``serve``, ``watch`` and ``open``)."""
    options = [
        click.option(
            "--web-host",
            default="127.0.0.1",
            show_default=True,
            help="Address the web UI listens on; other than loopback, only with a password.",
        ),
        click.option(
            "--web-port",
            default=DEFAULT_WEB_PORT,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port of the web UI (the listener keeps its own); 0 takes a free one.",
        ),
        click.option(
            "--web-password",
            envvar=WEB_PASSWORD_ENV,
            metavar="PASSWORD",
            help=f"Ask browsers for this password (or set {WEB_PASSWORD_ENV}).",
        ),
        click.option(
            "--web-mask",
            is_flag=True,
            help="Mask readers' personal data for every browser tab, in exports too (m cannot unmask).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def require_web() -> None:
    """One clear line when the ``[web]`` extra is missing."""
    if importlib.util.find_spec("textual_serve") is None:
        raise click.ClickException("the web UI needs textual-serve: pip install 'conscent-monitor[web]'")


def web_settings(
    *,
    web_host: str,
    web_port: int,
    web_password: str | None,
    web_mask: bool,
    basic_auth: tuple[str, str] | None,
    allow_unauthenticated: bool,
) -> Any:
    """The checked :class:`monitor.webui.WebOptions` (a usage error when the web UI would be open to anyone)."""
    require_web()
    from monitor.webui import WebExposureError, WebOptions, check_web_exposure

    if web_password is not None and not web_password:
        raise click.UsageError("--web-password cannot be empty")
    options = WebOptions(
        host=web_host,
        port=web_port,
        password=web_password,
        basic_auth=basic_auth,
        allow_unauthenticated=allow_unauthenticated,
        mask=web_mask,
    )
    try:
        check_web_exposure(options)
    except WebExposureError as exc:
        raise click.UsageError(str(exc)) from None
    return options


def web_listen_failure(exc: OSError) -> str | None:
    """The line for a web UI port that cannot be listened on; None when ``exc`` is not about the web UI."""
    from monitor.serving import WebListenError

    if not isinstance(exc, WebListenError):
        return None
    from monitor.cli.watch import listen_failure

    return listen_failure(exc.host, exc.port, exc, option="--web-port")


def serve_saved(db_path: Path, session_id: int | None, web: dict[str, Any]) -> None:
    """``open DB --web``."""
    options = web_settings(basic_auth=None, **web)
    from monitor.serving import serve_saved as run

    try:
        asyncio.run(run(db_path, options, session_id))
    except OSError as exc:
        raise click.ClickException(web_listen_failure(exc) or str(exc)) from None


@click.command("web-tab", hidden=True)
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--live", is_flag=True, help="Follow the serve process named by CONSCENT_MONITOR_CONTROL.")
@click.option("--session", "session_id", type=int)
@click.option("--mask", is_flag=True)
def web_tab(db_path: Path, live: bool, session_id: int | None, mask: bool) -> None:
    """One browser tab's app (started by the web UI through textual-serve; not for typing)."""
    try:
        store.open_for_review(db_path)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    from monitor.tui.launch import run_tab

    code = run_tab(db_path, live=live, session_id=session_id, mask=mask)
    if code:
        raise SystemExit(code)
