"""The command line: a click group and one module per command family."""

from monitor.cli.main import cli, main

__all__ = ["cli", "main"]
