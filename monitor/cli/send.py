"""``conscent-monitor send``: post events the way Conscent does."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from monitor import sender
from monitor.signing import parse_credentials
from monitor.textsafe import cell


def credentials_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    """Click callback for ``--basic-auth KEY:SECRET`` (watch and send)."""
    if value is None:
        return None
    try:
        return parse_credentials(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--to", "url", required=True, metavar="URL", help="Where to post (your endpoint, or a monitor).")
@click.option("--secret", envvar="CONSCENT_WEBHOOK_SECRET", help="Sign each body (X-Conscent-Signature).")
@click.option("--basic-auth", callback=credentials_option, metavar="KEY:SECRET", help="Send HTTP Basic auth.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a field, e.g. --set payload.user.userId=abc (JSON values are parsed). Repeatable.",
)
@click.option("--now", is_flag=True, help="Rewrite created_at to the current time.")
@click.option(
    "--count", default=1, show_default=True, type=click.IntRange(1), help="Send the whole set this many times."
)
@click.option("--rate", type=click.FloatRange(0.001), help="At most this many deliveries per second.")
@click.option(
    "--concurrency", default=1, show_default=True, type=click.IntRange(1, 1024), help="Deliveries in flight at once."
)
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1), help="Seconds per request.")
def send(
    paths: tuple[Path, ...],
    url: str,
    secret: str | None,
    basic_auth: tuple[str, str] | None,
    sets: tuple[str, ...],
    now: bool,
    count: int,
    rate: float | None,
    concurrency: int,
    timeout: float,
) -> None:
    """Post events like Conscent does (default: the shipped sample_events/).

    PATHS are JSON files or folders of them. Prints a summary of status codes
    and latency percentiles; exits 1 if any delivery was not answered 2xx.
    """
    try:
        bodies = [(name, sender.apply_overrides(body, list(sets), now)) for name, body in sender.load_bodies(paths)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not bodies:
        raise click.UsageError("no .json files to send")
    total = len(bodies) * count

    def deliveries() -> Iterator[sender.Delivery]:
        for name, body in itertools.chain.from_iterable(itertools.repeat(bodies, count)):
            headers = sender.prepare(body, secret=secret, basic_auth=basic_auth)
            yield sender.Delivery(body, headers, name)

    console = Console(stderr=True)
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=total < 20,
    ) as progress:
        task = progress.add_task("send", total=total)
        results = asyncio.run(
            sender.send_all(
                url,
                deliveries(),
                concurrency=concurrency,
                rate=rate,
                timeout=timeout,
                on_result=lambda _r: progress.advance(task),
            )
        )
    summary = sender.summarize(results)
    if total <= 50:
        table = Table("file", "status", "ms", "answer", box=None)
        for result in results:
            answer = cell(result.error or result.response.decode("utf-8", "replace"), 80)
            table.add_row(
                Text(cell(result.label)),
                Text(str(result.status or "-")),
                Text(f"{result.latency * 1000:.1f}"),
                Text(answer),
            )
        Console().print(table)
    click.echo(summary.describe())
    if summary.ok != summary.total:
        raise SystemExit(1)
