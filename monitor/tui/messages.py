"""The messages of the TUI: what screens and workers ask of the app, and what they tell it.

The app is the hub (harlequin's pattern): screens post a request and the
app's ``@on(...)`` handlers decide what happens; workers read the database
off the UI's thread and post what they read. So screens never import the
app, and the app never reaches into a screen's widgets.

Must not import the app, the screens or the widgets; payloads are plain
data (dicts, dataclasses from the core).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from monitor import checks, exporting, queries
from monitor.journey import JourneyStep, PairSummary
from monitor.reader_pages import Journey


class RowsCommitted(Message):
    """The writer committed rows: their notices wait in the app's feed (posted from the writer thread)."""


# -- requests from the screens ------------------------------------------------------


@dataclass
class OpenReader(Message):
    """Show a reader's drill-down."""

    user_id: str


@dataclass
class OpenDelivery(Message):
    """Show one delivery in full."""

    source: str
    delivery_id: int


@dataclass
class ReplayRow(Message):
    """Replay the accepted delivery with this id (``r`` on the table)."""

    delivery_id: int


@dataclass
class ReplayDelivery(Message):
    """Replay a delivery already read; ``edit`` first opens the body in an editor."""

    delivery: dict[str, Any]
    edit: bool = False


@dataclass
class CopyCurl(Message):
    """Copy a curl command that sends this delivery again."""

    delivery: dict[str, Any]


@dataclass
class SessionChosen(Message):
    """Review this session (None: all of them)."""

    session_id: int | None


@dataclass
class ExportView(Message):
    """Export what the main screen shows: its words for it, its filter, its session."""

    description: str
    filter_text: str
    session_id: int | None


@dataclass
class ReadersWanted(Message):
    """The readers list wants its rows (again), for ``filter_text`` and up to ``limit`` readers.

    ``if_changed``: only when the database changed since the last read (the list polls with it).
    """

    filter_text: str
    limit: int
    if_changed: bool = False


@dataclass
class ChecksLoaded(Message):
    """The checks ran on ``scope`` (the Checks screen's words for it) over ``checked`` deliveries.

    ``refresh``: redraw the Checks screen shown (scope, thresholds or rows changed), never open one.
    """

    findings: list[checks.Finding]
    thresholds: checks.Thresholds
    scope: str
    checked: int
    switchable: bool
    refresh: bool = False


@dataclass
class ReadFailed(Message):
    """A read failed. ``quiet``: the screen already says so (the app only ends offline review of a damaged file)."""

    error: BaseException
    what: str
    quiet: bool = False


# -- what the workers read ------------------------------------------------------------


@dataclass(frozen=True)
class ReaderData:
    """What the reader's drill-down shows first, fetched off the UI thread; the journey reads the rest as it is shown.

    ``first``: the journey's steps from ``first_offset`` to its end, in
    received order (it opens on its newest step). ``summary``: None when the
    journey is long (its outcome figures are read after the first screen).
    """

    user_id: str
    profile: dict[str, Any]
    counts: list[tuple[str, int]]
    journey: Journey
    first_offset: int
    first: list[JourneyStep]
    summary: PairSummary | None


@dataclass
class ReaderLoaded(Message):
    data: ReaderData


@dataclass
class DeliveryLoaded(Message):
    """A delivery was read: ``purpose`` says what for ("show" or "replay")."""

    source: str
    delivery: dict[str, Any]
    purpose: str = "show"


@dataclass
class ForwardsLoaded(Message):
    """The forwards and replays of a delivery, read again after one was recorded."""

    event_id: int
    forwards: list[dict[str, Any]]


@dataclass
class SessionsLoaded(Message):
    rows: list[dict[str, Any]]
    counts: dict[int, dict[str, int]]


@dataclass
class ReadersLoaded(Message):
    """The readers list's rows, for this filter and limit; ``error``: the filter could not run (rows empty).

    ``refresh``: for the list already open (else a new list is shown); ``seconds``: what the read cost.
    """

    page: queries.ReaderPage
    filter_text: str
    limit: int
    error: str | None = None
    refresh: bool = False
    seconds: float = 0.0


@dataclass
class StatsLoaded(Message):
    """The header counters, read from the database (offline review, or another session)."""

    stats: queries.Stats


@dataclass
class ReplayDone(Message):
    """A replay finished (posted from the listener's thread)."""

    event_id: int
    target: str
    status: int | None
    latency_ms: float
    error: str | None


@dataclass
class Exported(Message):
    """An export finished: what to tell the user, and whether it worked.

    ``download``: the file written for the browser to download (an export asked
    for with ``ExportRequest.download``); the app hands it to ``deliver_binary``.
    """

    text: str
    ok: bool
    download: Path | None = None


# -- export ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    """What the export dialog asks for: a format, a path as typed, and (JSONL only) the metadata lines.

    ``download``: ``path`` is only a file name, for the browser to download (a
    web tab); ``mask``: personal data is hidden in the file.
    """

    fmt: exporting.Format
    path: str
    meta: bool
    download: bool = False
    mask: bool = False


@dataclass
class ExportChosen(Message):
    """The export dialog's request: write the view (this filter, this session) to a file.

    The dialog stays open until an :class:`Exported` says how it went.
    """

    request: ExportRequest
    filter_text: str
    session_id: int | None


@dataclass
class InsightsLoaded(Message):
    """The Insights screen's figures for the main table's view; ``refresh``: for the screen already shown."""

    data: queries.Insights
    description: str
    refresh: bool = False
    seconds: float = 0.0  # how long the read took (the next refresh waits at least that long)
