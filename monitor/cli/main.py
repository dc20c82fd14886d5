"""The ``conscent-monitor`` command group: one module per command family beside it."""

from __future__ import annotations

import functools
import importlib
import sqlite3
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import click

from monitor import __version__, store
from monitor.cli.common import database_failure, filter_epilog
from monitor.textsafe import inert


class _DefaultToWatch(click.Group):
    """``conscent-monitor [OPTIONS]`` with no command means ``watch``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h", "--version")):
            args = ["watch", *args]
        return super().parse_args(ctx, args)


def _command(module: str, name: str) -> Callable[[], click.Command]:
    return lambda: getattr(importlib.import_module(f"monitor.cli.{module}"), name)


def _serve() -> click.Command:
    from monitor.cli.watch import serve_command

    _COMMANDS["watch"]  # serve runs watch's callback: guarded first, as when both were added at once
    return serve_command()


#: Every command and where it is made; its module is imported only when the command is run or listed, so
#: `open` never loads the listener's aiohttp and `send` never loads Textual (start-up time).
_MAKERS: dict[str, Callable[[], click.Command]] = {
    "watch": _command("watch", "watch"),
    "send": _command("send", "send"),
    "open": _command("review", "open_cmd"),
    "import": _command("importer", "import_cmd"),
    "export": _command("exporter", "export_cmd"),
    "generate": _command("importer", "generate_cmd"),
    "wait": _command("wait", "wait_cmd"),
    "serve": _serve,
    "web-tab": _command("web", "web_tab"),
    "check": _command("check", "check_cmd"),
}


class _LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands by name, each imported (and guarded) the first time it is looked up."""

    def __init__(self, makers: dict[str, Callable[[], click.Command]]) -> None:
        self._makers = dict(makers)
        self._made: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._made:
            command = self._makers[name]()  # KeyError: no such command
            self._made[name] = _guarded(command)
            del self._makers[name]
        return self._made[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._makers.pop(name, None)
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        if self._makers.pop(name, None) is None:
            del self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._made, *self._makers])

    def __len__(self) -> int:
        return len(self._made) + len(self._makers)


_COMMANDS = _LazyCommands(_MAKERS)


@click.group(cls=_DefaultToWatch, commands=_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conscent-monitor")
def cli() -> None:
    """Watch Conscent.ai paywall webhooks live, and review them later.

    With no command, runs `watch` (the live monitor). `conscent-monitor help
    filters` describes the filter language of `export --filter` and the TUI.
    """


@click.command("help", short_help="Help on a command, or on the filter language.")
@click.argument("topic", required=False, metavar="[COMMAND|filters]")
@click.pass_context
def help_cmd(ctx: click.Context, topic: str | None) -> None:
    """Show the help of COMMAND, or with `filters`, the filter language of --filter and the TUI's / key."""
    group = ctx.parent.command if ctx.parent is not None else cli
    if topic == "filters":
        click.echo(filter_epilog().removeprefix("\b\n"))
        return
    if topic is None:
        click.echo(group.get_help(ctx.parent) if ctx.parent is not None else cli.get_help(ctx))
        return
    command = cli.get_command(ctx, topic)
    if command is None:
        raise click.UsageError(f"no command or topic {topic!r}; try `conscent-monitor help`")
    with click.Context(command, info_name=topic, parent=ctx.parent) as sub:
        click.echo(command.get_help(sub))


#: The commands that open ./conscent-monitor.db when no database is named.
_DEFAULT_DB_COMMANDS = {"watch", "serve", "open", "import", "export", "wait", "check"}


def _guarded(command: click.Command) -> click.Command:
    """``command`` with any ``sqlite3.DatabaseError`` it lets out turned into one line naming its database."""
    callback = command.callback
    if callback is None:
        return command

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        path = kwargs.get("db_path")
        if path is None and command.name in _DEFAULT_DB_COMMANDS:
            path = store.DEFAULT_DB
        notice = store.upgrade_notice(path) if path is not None else None
        if notice is not None:  # before a pause of seconds: say why
            click.echo(f"conscent-monitor: {inert(notice)}", err=True)
        try:
            return callback(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise database_failure(kwargs.get("db_path"), exc) from None

    command.callback = guarded
    return command


cli.add_command(help_cmd)


def main() -> None:
    try:
        cli(prog_name="conscent-monitor")
    except sqlite3.DatabaseError as exc:  # the last net, for one raised outside every command
        database_failure(None, exc).show()
        sys.exit(1)
