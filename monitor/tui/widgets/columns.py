"""The event table's columns: declared once, each with how it renders a row.

A :class:`Column` is a key, a title, a width and ``render(row, look)``,
which returns the cell's text (already inert: untrusted values pass through
:func:`monitor.textsafe.cell`) and the name of one of the table's component
classes to style it with (``"close"`` for ``event-table--close``), or None.
Names, not colours: the stylesheet maps them to the theme's colours.

The gateway view and the all-events view pick from :data:`COLUMN`; only
widths and a title differ between them, never how a cell is rendered.

Must not import Textual nor read the database: a cell is plain Python, so
the column list is unit-tested without an app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from rich.cells import set_cell_size

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
    key: str
    title: str
    width: int
    render: Render

    def sized(self, width: int, title: str | None = None) -> Column:
        """The same column, rendered alike, at another width (and title)."""
        return replace(self, width=width, title=self.title if title is None else title)


def header_text(columns: tuple[Column, ...]) -> str:
    return " ".join(set_cell_size(col.title, col.width) for col in columns)


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


#: Every column, at the gateway view's width and title.
COLUMN: dict[str, Column] = {
    col.key: col
    for col in (
        Column("time", "Received", 14, _time),
        Column("event", "Event", 8, _event),
        Column("reader", "Reader", 18, _reader),
        Column("phone", "Phone", 12, _phone),
        Column("content", "Content", 17, _field(lambda row: row.content_id)),
        Column("action", "Click action", 26, _field(lambda row: row.click_action)),
        Column("paywall", "Paywall", 8, _field(lambda row: row.paywall_id[-8:] if row.paywall_id else "")),
        Column(
            "device", "Device", 14, _field(lambda row: " ".join(p for p in (row.device_type, row.device_model) if p))
        ),
        Column("country", "Ctry", 4, _field(lambda row: row.country)),
        Column("sig", "Sig", 9, _signature),
        Column("dup", "Dup", 3, _duplicate),
        Column("lag", "Lag", 6, _lag),
        Column("fwd", "Fwd", 3, _forward),
    )
}

GATEWAY_COLUMNS = tuple(COLUMN.values())

#: Every delivery, rejected ones too: longer event names, the reason in the reader column, no paywall.
ALL_COLUMNS = (
    COLUMN["time"],
    COLUMN["event"].sized(22),
    COLUMN["reader"].sized(23, "Reader / reason"),
    COLUMN["phone"],
    COLUMN["content"].sized(18),
    COLUMN["action"].sized(20),
    COLUMN["device"].sized(12),
    COLUMN["country"],
    COLUMN["sig"],
    COLUMN["dup"],
    COLUMN["lag"],
    COLUMN["fwd"],
)
