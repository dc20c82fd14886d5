"""The ``conscent-monitor`` command group: one module per command family beside it."""

from __future__ import annotations

import functools
import sqlite3
import sys
from typing import Any

import click

from monitor import __version__
from monitor.cli import exporter, importer, review, send, watch
from monitor.cli.common import database_failure


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


def _guarded(command: click.Command) -> click.Command:
    """``command`` with any ``sqlite3.DatabaseError`` it lets out turned into one line naming its database."""
    callback = command.callback
    if callback is None:
        return command

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise database_failure(kwargs.get("db_path"), exc) from None

    command.callback = guarded
    return command


for _command in (
    watch.watch,
    send.send,
    review.open_cmd,
    importer.import_cmd,
    exporter.export_cmd,
    importer.generate_cmd,
):
    cli.add_command(_guarded(_command))


def main() -> None:
    try:
        cli(prog_name="conscent-monitor")
    except sqlite3.DatabaseError as exc:  # the last net, for one raised outside every command
        database_failure(None, exc).show()
        sys.exit(1)
