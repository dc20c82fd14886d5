"""``conscent-monitor send``: post events the way Conscent does."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from monitor import sender
from monitor.cli.common import COUNT_DONE, credentials_option, http_url
from monitor.textsafe import cell, inert

#: Up to this many deliveries, ``send`` prints one row per delivery before the summary.
TABLE_UP_TO = 50


@click.command(short_help="Post the sample events (or your files) like Conscent does.")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    callback=http_url,
    help="Where to post: an http:// or https:// URL (your endpoint, or a monitor such as http://127.0.0.1:8787/).",
)
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
    "--count",
    type=click.IntRange(1),
    help="Deliveries to send, going round the files as often as needed (default: each file once).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0.001),
    help="At most this many deliveries per second; a warning says when it was not reached, and why.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, sender.MAX_CONCURRENCY),
    help="Deliveries in flight at once; raise it when --rate is not reached.",
)
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1), help="Seconds per request.")
def send(
    paths: tuple[Path, ...],
    url: str,
    secret: str | None,
    basic_auth: tuple[str, str] | None,
    sets: tuple[str, ...],
    now: bool,
    count: int | None,
    rate: float | None,
    concurrency: int,
    timeout: float,
) -> None:
    """Post events like Conscent does (default: the shipped sample_events/).

    PATHS are JSON files or folders of them. Prints how many were delivered,
    the time taken and the rate reached, the status codes and the latency
    percentiles; exits 1 if any delivery was not answered 2xx, and stops
    after the first one when nothing answers at the URL.
    """
    try:
        bodies = [(name, sender.apply_overrides(body, list(sets), now)) for name, body in sender.load_bodies(paths)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not bodies:
        raise click.UsageError("no .json files to send")
    total = len(bodies) if count is None else count

    def deliveries() -> Iterator[sender.Delivery]:
        for name, body in itertools.islice(itertools.cycle(bodies), total):
            headers = sender.prepare(body, secret=secret, basic_auth=basic_auth)
            yield sender.Delivery(body, headers, name)

    console = Console(stderr=True)
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        TextColumn(COUNT_DONE),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=total < 20,
    ) as progress:
        task = progress.add_task("send", total=total)
        cpu, wall = time.process_time(), time.perf_counter()
        results = asyncio.run(
            sender.send_all(
                url,
                deliveries(),
                concurrency=concurrency,
                rate=rate,
                timeout=timeout,
                on_result=lambda _r: progress.advance(task),
                probe=True,
            )
        )
        cpu_share = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
    if len(results) == 1 and results[0].status is None:  # the probe found nobody there
        raise click.ClickException(f"nothing answers at {inert(url)} ({results[0].error}); is the monitor running?")
    summary = sender.summarize(results)
    if total <= TABLE_UP_TO:
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
    if rate is not None and (shortfall := sender.rate_shortfall(summary, rate, concurrency, cpu_share)):
        click.echo(f"warning: {shortfall}", err=True)
    if summary.ok != summary.total:
        raise SystemExit(1)
