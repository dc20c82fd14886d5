"""The ``conscent-monitor`` command group: one module per command family beside it."""

from __future__ import annotations

import click

from monitor import __version__
from monitor.cli import exporter, importer, review, send, watch


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


for _command in (
    watch.watch,
    send.send,
    review.open_cmd,
    importer.import_cmd,
    exporter.export_cmd,
    importer.generate_cmd,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="conscent-monitor")
