"""The event table's columns: declared once, each with how it renders a row.

A :class:`Column` is a key, a title, width limits and ``render(row, look)``,
which returns the cell's text (already inert: untrusted values pass through
:func:`monitor.textsafe.cell`) and the name of one of the table's component
classes to style it with (``"close"`` for ``event-table--close``), or None.
Names, not colours: the stylesheet maps them to the theme's colours.

The gateway view and the all-events view pick from :data:`COLUMN`; only
width limits and a title differ between them, never how a cell is rendered.
Widths are not declared but fitted (:func:`fit_widths`) to the terminal and
to the values on screen (:func:`natural_widths`); a value cut to its width
ends with ``…`` (:func:`ellipsize`, grapheme-safe).

Must not import Textual nor read the database: a cell is plain Python, so
the column list is unit-tested without an app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from rich.cells import cell_len, split_graphemes

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.masking import mask_if
from monitor.queries import Row
from monitor.textsafe import cell
from monitor.tui.format import event_label, format_lag, format_time, reader_name


class Look(NamedTuple):
    """What a cell's text depends on besides its row."""

    #: The local date (``YYYY-MM-DD``): today's times are shown without it.
    today: str
    #: Screen-sharing mode: personal fields masked.
    masked: bool


#: A cell: its inert text and a component class name (``event-table--<name>``) or None.
Cell = tuple[str, str | None]
Render = Callable[[Row, Look], Cell]


@dataclass(frozen=True, slots=True)
class Column:
    """A column: how it renders a row, and how much room it asks for.

    ``min_width``: narrower, it says too little (a column that does not get
    it starts off screen, behind horizontal scroll). ``max_width``: past it,
    a long value gives way to the next columns while they need the room
    (and takes it back when they do not: see :func:`fit_widths`). ``width``:
    what the layout gave it. ``spans``: on a row whose following cells are
    all blank (a rejected delivery), the cell takes their room too.
    """

    key: str
    title: str
    render: Render
    min_width: int
    max_width: int
    width: int = 0
    spans: bool = False

    def sized(self, width: int) -> Column:
        """The same column, rendered alike, at another width."""
        return replace(self, width=width)

    def variant(self, *, title: str | None = None, max_width: int | None = None) -> Column:
        """The same column, rendered alike, under another title or limit: another view's version of it."""
        return replace(
            self,
            title=self.title if title is None else title,
            max_width=self.max_width if max_width is None else max_width,
        )


ELLIPSIS = "\u2026"


def ellipsize(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: whole if it fits, else cut and ended with ``…``.

    Cut between graphemes (a wide character, an emoji with its modifiers or
    joined by ZWJ, a flag stay whole or go whole), so the result is never
    wider than ``width``; it may be one cell narrower when a wide character
    would straddle the end. Not padded (see :func:`fit`).
    """
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    room = width - 1  # the ellipsis takes one cell
    if text.isascii() and text.isprintable():  # one cell a character: most values
        return text[:room] + ELLIPSIS
    used = 0
    end = 0
    spans, _ = split_graphemes(text)
    index = 0
    while index < len(spans):
        _start, stop, size = spans[index]
        index += 1
        if _is_flag_half(text[_start]) and index < len(spans) and _is_flag_half(text[spans[index][0]]):
            stop, size = spans[index][1], size + spans[index][2]  # a flag: two regional indicators
            index += 1
        if used + size > room:
            break
        used += size
        end = stop
    return text[:end] + ELLIPSIS


def _is_flag_half(char: str) -> bool:
    """A regional indicator letter: two make a flag (Rich measures them one by one)."""
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells: cut with ``…`` (:func:`ellipsize`) or padded with spaces."""
    size = cell_len(text)
    if size <= width:
        return text + " " * (width - size)
    short = ellipsize(text, width)
    return short + " " * (width - cell_len(short))


def header_text(columns: Sequence[Column]) -> str:
    """The column titles, each fitted to its column's width, one space apart."""
    return " ".join(fit(col.title, col.width) for col in columns)


def fit_widths(columns: Sequence[Column], naturals: Sequence[int], available: int) -> tuple[int, ...]:
    """Each column's width for a screen ``available`` cells wide (columns one space apart).

    ``naturals``: the cells each column's content asks for (its title and the
    values seen on screen). ``columns`` are in priority order, which is also
    the order on screen:

    1. in that order, each column takes its natural width, capped by its
       ``max_width`` (and never under ``min_width``), while it fits on
       screen; the first that does not fit whole takes the rest of the
       screen if that is at least its ``min_width`` (its values end with
       ``…``), else it and the following ones start off screen;
    2. the columns off screen take their natural width, capped: horizontal
       scroll shows them;
    3. what is left of the screen goes, in priority order, to the columns
       on screen that it cuts (a value past ``max_width``), up to their
       whole natural width; anything left after that pads the last column
       on screen when more follow (so the next one starts past the edge,
       never half-shown), or stays blank at the end of the line.

    So the most useful columns come first and whole, and no column on
    screen is cut while the screen has unused width.
    """
    wanted = [max(col.min_width, min(natural, col.max_width)) for col, natural in zip(columns, naturals, strict=True)]
    widths = list(wanted)
    left = available
    on_screen = 0
    for index, col in enumerate(columns):
        room = left - (1 if index else 0)
        if room >= wanted[index]:
            left = room - wanted[index]
        elif room >= col.min_width:
            widths[index], left = room, 0
        else:
            break
        on_screen = index + 1
    for index in range(on_screen):
        whole = max(naturals[index], columns[index].min_width)
        extra = min(max(whole - widths[index], 0), left)
        widths[index] += extra
        left -= extra
    if 0 < on_screen < len(columns):
        # Blank room before the edge: the next column starts past it, not half-shown without its "…".
        widths[on_screen - 1] += left
    return tuple(widths)


def natural_widths(columns: Sequence[Column], rows: Iterable[Row], look: Look) -> list[int]:
    """The cells each column's title and the given rows' values ask for (a spanning cell asks nothing)."""
    naturals = [cell_len(col.title) for col in columns]
    for row in rows:
        cells = [col.render(row, look)[0] for col in columns]
        for index, text in enumerate(cells):
            if columns[index].spans and not any(cells[index + 1 :]):
                continue  # it takes the blank cells' room: it needs none of its own
            naturals[index] = max(naturals[index], cell_len(text))
    return naturals


def line_cells(
    columns: Sequence[Column], row: Row, look: Look, screen: int | None = None
) -> list[tuple[str, str | None, int]]:
    """A row's cells on screen: text, component class name, and the width it has.

    A spanning column's cell takes the room of the blank cells after it (they
    are left out), so a rejected delivery's reason reads whole; up to the
    edge of a ``screen`` that wide, so that if it is cut there, it ends with
    ``…`` on screen rather than past the edge.
    """
    cells = [(*col.render(row, look), col.width) for col in columns]
    start = 0
    for index, col in enumerate(columns):
        if col.spans and cells[index][0] and not any(text for text, _, _ in cells[index + 1 :]):
            text, name, _ = cells[index]
            room = sum(col.width + 1 for col in columns[index:]) - 1
            if screen is not None:
                room = max(min(room, screen - start), col.width)
            return [*cells[:index], (text, name, room)]
        start += col.width + 1
    return cells


def _field(value: Callable[[Row], object]) -> Render:
    """A field shown as it is, made inert; blank on a rejected delivery, which has no fields."""

    def render(row: Row, look: Look) -> Cell:
        return ("", None) if row.source == "rejected" else (cell(value(row)), None)

    return render


def _time(row: Row, look: Look) -> Cell:
    return format_time(row.received_at, look.today), None


def _event(row: Row, look: Look) -> Cell:
    if row.source == "rejected":
        return f"✗ {row.status} rejected", "rejected"
    kind = "view" if row.event == GATEWAY_VIEW else "close" if row.event == GATEWAY_CLOSE else "other"
    return event_label(row.event), kind


def _reader(row: Row, look: Look) -> Cell:
    # A rejected delivery has no reader: the column says why it was refused.
    if row.source == "rejected":
        return cell(row.reason), "rejected"
    return reader_name(row.name, row.username, row.user_id, masked=look.masked), None


def _phone(row: Row, look: Look) -> Cell:
    if row.source == "rejected":
        return "", None
    return cell(mask_if("phone_number", row.phone_number, look.masked)), None


def _signature(row: Row, look: Look) -> Cell:
    if row.source == "rejected":
        return "", None
    return cell(row.signature), ("bad" if row.signature in ("invalid", "missing") else None)


def _duplicate(row: Row, look: Look) -> Cell:
    return ("dup", "duplicate") if row.source != "rejected" and row.duplicate_of else ("", None)


def _lag(row: Row, look: Look) -> Cell:
    return ("", None) if row.source == "rejected" else (format_lag(row.received_at, row.created_at), "dim")


def _forward(row: Row, look: Look) -> Cell:
    """The latest forward's HTTP status; anything but a 2xx stands out."""
    if row.source == "rejected" or row.forward is None:
        return "", None
    return row.forward, (None if row.forward.startswith("2") else "bad")


#: Every column, in the gateway view's order: the most useful first (at 80 columns the time,
#: event, reader and content fit, with the click action; the rest is a horizontal scroll away).
COLUMN: dict[str, Column] = {
    col.key: col
    for col in (
        # Today's times are HH:MM:SS (8), older ones MM-DD HH:MM:SS (14): as wide as the rows shown.
        Column("time", "Received", _time, 8, 14),
        Column("event", "Event", _event, 7, 8),
        Column("reader", "Reader", _reader, 10, 24, spans=True),
        Column("content", "Content", _field(lambda row: row.content_id), 10, 24),
        Column("action", "Action", _field(lambda row: row.click_action), 8, 26),
        Column("sig", "Sig", _signature, 5, 9),
        Column("dup", "Dup", _duplicate, 3, 3),
        Column("fwd", "Fwd", _forward, 3, 3),
        Column("lag", "Lag", _lag, 4, 7),
        Column(
            "device", "Device", _field(lambda row: " ".join(p for p in (row.device_type, row.device_model) if p)), 6, 18
        ),
        Column("country", "Ctry", _field(lambda row: row.country), 4, 4),
        Column("phone", "Phone", _phone, 10, 14),
        Column("paywall", "Paywall", _field(lambda row: row.paywall_id[-8:] if row.paywall_id else ""), 8, 8),
    )
}

GATEWAY_COLUMNS = tuple(COLUMN.values())

#: Every delivery, rejected ones too: longer event names, the reason in the reader column
#: (it spans the blank cells after it), no paywall.
ALL_COLUMNS = (
    COLUMN["time"],
    COLUMN["event"].variant(max_width=22),
    COLUMN["reader"].variant(title="Reader / reason"),
    *(COLUMN[key] for key in ("content", "action", "sig", "dup", "fwd", "lag", "device", "country", "phone")),
)
