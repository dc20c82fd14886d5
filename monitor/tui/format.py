"""How the screens word times, durations, events and readers: one place for each.

Every function returns plain, inert text (untrusted values pass through
:func:`monitor.textsafe.cell`), so callers wrap it in ``rich.text.Text`` and
never in markup. Nothing here reads the clock: "now" is an argument, so a
frozen clock passed to the app freezes every screen.

Must not import Textual or Rich, nor read the database.
"""

from __future__ import annotations

import time

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.masking import mask_if
from monitor.textsafe import cell

#: A full local date and time, as the detail, reader and sessions screens show it.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Month, day and time: for lists where the year is rarely in question.
SHORT_FORMAT = "%m-%d %H:%M:%S"
#: Time of day only.
CLOCK_FORMAT = "%H:%M:%S"
#: The local date, to tell today's times (shown without a date) from older ones.
DAY_FORMAT = "%Y-%m-%d"


def event_label(event: str | None) -> str:
    if event == GATEWAY_VIEW:
        return "▶ view"
    if event == GATEWAY_CLOSE:
        return "■ close"
    return cell(event) if event else "(legacy)"


def format_time(epoch: float | None, today: str) -> str:
    if epoch is None:
        return ""
    local = time.localtime(epoch)
    if time.strftime("%Y-%m-%d", local) == today:
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%m-%d %H:%M:%S", local)


def format_lag(received_at: float | None, created_at: float | None) -> str:
    if received_at is None or created_at is None:
        return ""
    return format_duration(received_at - created_at)


def format_duration(seconds: float) -> str:
    """Compact and readable: 0.4s, 150s, 12.5m, 3.0h, 2.0d, 2.7y."""
    sign = "-" if seconds < 0 else ""
    value = abs(seconds)
    if value < 10:
        return f"{sign}{value:.1f}s"
    if value < 600:
        return f"{sign}{value:.0f}s"
    for limit, unit, div in ((3600 * 3, "m", 60), (86400 * 3, "h", 3600), (86400 * 365, "d", 86400)):
        if value < limit:
            return f"{sign}{value / div:.1f}{unit}"
    return f"{sign}{value / (86400 * 365):.1f}y"


def today(now: float) -> str:
    """The local date at ``now`` (the app's clock), for :func:`format_time`."""
    return time.strftime(DAY_FORMAT, time.localtime(now))


def format_datetime(epoch: float | None) -> str:
    """``2026-11-30 14:05:09`` in local time; empty for no time (None or 0)."""
    return time.strftime(DATETIME_FORMAT, time.localtime(epoch)) if epoch else ""


def format_short(epoch: float | None) -> str:
    """``11-30 14:05:09`` in local time; empty for no time (None or 0)."""
    return time.strftime(SHORT_FORMAT, time.localtime(epoch)) if epoch else ""


def format_clock(epoch: float | None) -> str:
    """``14:05:09`` in local time; empty for no time (None or 0)."""
    return time.strftime(CLOCK_FORMAT, time.localtime(epoch)) if epoch else ""


def reader_name(
    name: str | None, username: str | None, user_id: str | None = None, *, masked: bool = False, missing: str = ""
) -> str:
    """Who a reader is: the name, else the username, else the user id, else ``missing``.

    Masked (screen sharing) by the column the text came from, so a user id
    shown in place of a name stays visible, as it does in its own column.
    """
    if name:
        return cell(mask_if("name", name, masked))
    if username:
        return cell(mask_if("username", username, masked))
    if user_id:
        return cell(mask_if("user_id", user_id, masked))
    return missing
