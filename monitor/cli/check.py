"""``conscent-monitor check``: what is wrong with this integration, as a report or JSON for CI."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

import click
import orjson

from monitor import store
from monitor.cli.common import DB_HELP, database_failure
from monitor.wording import count, number

#: The mark in front of each finding, by level (a passing check gets PASSED).
MARKS = {"error": "✗", "warning": "!", "info": "i"}
PASSED = "✓"
LEVEL_WORDS = {"error": "error", "warning": "warning", "info": "note"}


def _session(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | str | None:
    """``--session``: a session number, or ``all``; None (not given) means the latest."""
    if value is None or value.lower() == "all":
        return None if value is None else "all"
    try:
        session = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a session number or 'all'.") from None
    if session < 1:
        raise click.BadParameter("session numbers start at 1.")
    return session


def _threshold_options(command: Any) -> Any:
    """One ``--name`` option per :class:`monitor.checks.Thresholds` field, with its default."""
    from monitor.checks import THRESHOLD_HELP, Thresholds

    defaults = Thresholds()
    for item in reversed(dataclasses.fields(Thresholds)):
        command = click.option(
            "--" + item.name.replace("_", "-"),
            item.name,
            type=click.FloatRange(min=0),
            default=getattr(defaults, item.name),
            show_default=True,
            help=THRESHOLD_HELP[item.name].capitalize() + ".",
        )(command)
    return command


@click.command("check", short_help="Tell what is wrong with the integration (exit 1 on an error).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), help=DB_HELP)
@click.option(
    "--session",
    "session",
    callback=_session,
    metavar="N|all",
    help="The session to check: a number (`open` and the TUI's s key list them), or all; default: the latest.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a report for a person; json: one object for CI (findings, thresholds, whether it failed).",
)
@_threshold_options
def check_cmd(db_path: Path | None, session: int | str | None, fmt: str, **limits: float) -> None:
    """Check the deliveries of a session for integration problems.

    Signatures (invalid, missing, Basic auth), pairing of gateway views and
    closes, documented fields, delivery lag, retries and refusals, and
    forwards your application failed. Each finding gives a count, when it was
    first and last seen, why it matters and the filter that shows its rows in
    the TUI (type it after /).

    Exits 1 when a check of level "error" fails (invalid signatures, Basic
    auth failing, refused deliveries, failed forwards), 0 otherwise; works on
    a database a running monitor is writing (it only reads).
    """
    from monitor.checks import Thresholds, run_checks, session_exists
    from monitor.queries import newest_session, read_snapshot

    path = db_path or Path(store.DEFAULT_DB)
    try:
        store.open_for_review(path)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from None
    thresholds = Thresholds(**limits)
    now = time.time()
    db = store.connect(path, readonly=True)
    try:
        latest = newest_session(db)
        if session is None:
            session_id = None if latest is None else int(latest["id"])
        elif session == "all":
            session_id = None
        else:
            session_id = int(session)
            if not session_exists(db, session_id):
                newest = "none" if latest is None else f"1 to {latest['id']}"
                raise click.ClickException(f"{path}: no session {session_id} (sessions: {newest})")
        with read_snapshot(db):
            findings = run_checks(db, session_id, thresholds, now=now)
    except sqlite3.DatabaseError as exc:
        raise database_failure(path, exc) from None
    finally:
        db.close()
    scope = "every session" if session_id is None else f"session {session_id}"
    if session is None and session_id is not None:
        scope += " (the latest)"
    failed = any(f.failed and f.level == "error" for f in findings)
    if fmt == "json":
        click.echo(_json(path, session_id, thresholds, now, findings, failed))
    else:
        click.echo(_report(path, scope, thresholds, findings))
    if failed:
        raise SystemExit(1)


def _json(path: Path, session_id: int | None, thresholds: Any, now: float, findings: list[Any], failed: bool) -> str:
    """The findings for CI: every field of each, plus ``failed``; ``failed`` on top is the exit status's reason."""
    tally = _tally(findings)
    document = {
        "database": str(path),
        "session": session_id,
        "checked_at": now,
        "thresholds": dataclasses.asdict(thresholds),
        "failed": failed,
        "summary": tally,
        "findings": [dataclasses.asdict(f) | {"failed": f.failed} for f in findings],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def _tally(findings: list[Any]) -> dict[str, int]:
    tally = {"error": 0, "warning": 0, "info": 0, "passed": 0}
    for finding in findings:
        tally[finding.level if finding.failed else "passed"] += 1
    return tally


def _report(path: Path, scope: str, thresholds: Any, findings: list[Any]) -> str:
    from monitor.textsafe import cell, inert

    limits = (
        f"views open after {number(thresholds.open_view_minutes)} min, late after {number(thresholds.lag_seconds)} s,"
        f" in the future after {number(thresholds.future_seconds)} s"
    )
    lines = [f"Checks of {scope} in {inert(str(path))}", f"Thresholds: {limits}", ""]
    for finding in findings:
        if not finding.failed:
            continue
        mark = MARKS[finding.level]
        lines.append(f"{mark} {finding.title}: {number(finding.count)}  [{LEVEL_WORDS[finding.level]}]")
        lines.append(f"  {finding.why}")
        if finding.first_seen is not None:
            lines.append(f"  first seen {_when(finding.first_seen)}, last seen {_when(finding.last_seen)}")
        if finding.detail:
            lines.append(f"  {cell(finding.detail, limit=300)}")
        if finding.filter is not None:
            lines.append(f"  filter: {cell(finding.filter, limit=1000)}  (mode: {finding.mode})")
        else:
            lines.append("  filter: none (these rows cannot be selected by a filter)")
        lines.append("")
    for finding in findings:
        if not finding.failed:
            lines.append(f"{PASSED} {finding.title}")
    tally = _tally(findings)
    lines += [
        "",
        ", ".join(
            [
                count(tally["error"], "error"),
                count(tally["warning"], "warning"),
                count(tally["info"], "note"),
                f"{number(tally['passed'])} passed",
            ]
        ),
    ]
    return "\n".join(lines)


def _when(moment: float | None) -> str:
    from monitor.tui.format import format_datetime  # the TUI's one time format (no Textual in that module)

    return format_datetime(moment) or "-"
