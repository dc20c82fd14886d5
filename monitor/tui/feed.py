"""The live feed: commit notices from the writer, waiting for the UI's next redraw.

The writer thread calls :meth:`Feed.push` after each commit; the UI is woken
once for all the notices that arrive before it next redraws, and it paces
its redraws (:meth:`Feed.redraw_delay`). The feed also keeps which rows the
UI has already counted (:class:`Seen`: one rule for the table and the live
counters) and the live session's counters.

Plain Python, so it is unit-tested without Textual. Must not import Textual
or Rich, nor read the database (the one query it may need is passed in).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from monitor import queries
from monitor.writer import CommitNotice

#: Redraws after commits are batched: at most this many per second...
REDRAWS_PER_SECOND = 10
#: ...and this many during a flood (more rows per redraw than this): the rows
#: scroll past faster than anyone reads them, and the CPU is the listener's.
#: Keys are answered at once either way.
FLOOD_REDRAWS_PER_SECOND = 4
FLOOD_ROWS = 200


@dataclass(frozen=True)
class Seen:
    """The highest event and rejected ids already counted.

    The writer answers a delivery before it sends the notice, so a notice can
    name rows that a query (a snapshot's count) already included: those with
    ids up to these are skipped.
    """

    events: int = 0
    rejected: int = 0

    def new_ids(self, notices: list[CommitNotice]) -> tuple[list[int], list[int]]:
        """The event and rejected ids of the notices not counted yet."""
        return (
            [i for n in notices for i in n.event_ids if i > self.events],
            [i for n in notices for i in n.rejected_ids if i > self.rejected],
        )

    def new_rows(self, notices: list[CommitNotice]) -> Iterator[tuple[dict[str, Any], queries.Source]]:
        """The notices' rows not counted yet, each with its table."""
        for notice in notices:
            for row in notice.events:
                if row["id"] > self.events:
                    yield row, "event"
            for row in notice.rejected:
                if row["id"] > self.rejected:
                    yield row, "rejected"

    def after(self, notices: list[CommitNotice]) -> Seen:
        """Seen, once these notices are counted too."""
        events, rejected = self.new_ids(notices)
        return Seen(max([self.events, *events]), max([self.rejected, *rejected]))


def has_rows(notices: list[CommitNotice]) -> bool:
    """The notices carry their rows (the listener's do; offline review's name ids only)."""
    return all(len(n.events) == len(n.event_ids) and len(n.rejected) == len(n.rejected_ids) for n in notices)


class Feed:
    """Commit notices between the writer thread and the UI, and what the UI has counted of them.

    Thread-safe where it must be: :meth:`push` runs on the writer's thread,
    everything else on the UI's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inbox: list[CommitNotice] = []
        self._accepting = False
        self._wake_posted = False
        self._flush_scheduled = False
        self._last_flush_rows = 0
        #: Rows the table's total includes (moved on by each view's snapshot and each redraw).
        self.view_seen = Seen()
        #: Rows the live counters include; they are read at another moment than the view.
        self.stats_seen = Seen()
        #: The live session's counters, kept from the notices; None when they are read from the database.
        self.stats: queries.StatsAccumulator | None = None

    # -- the inbox --------------------------------------------------------------

    def push(self, notice: CommitNotice) -> bool:
        """Keep a notice (writer thread); True when the UI must be woken for it.

        Only the first notice since the last redraw wakes it: at thousands
        of commits a second, a message each would keep the UI's loop busy
        just being woken. Notices that come before the UI accepts them wait.
        """
        with self._lock:
            self._inbox.append(notice)
            if not self._accepting or self._wake_posted:
                return False
            self._wake_posted = True
            return True

    def accept(self) -> bool:
        """The UI is up: notices wake it from now on; True when some already wait."""
        with self._lock:
            self._accepting = True
            wake = bool(self._inbox) and not self._wake_posted
            self._wake_posted = self._wake_posted or wake
            return wake

    def redraw_delay(self) -> float | None:
        """Seconds until the next redraw, or None when one is already scheduled."""
        if self._flush_scheduled:
            return None
        self._flush_scheduled = True
        rate = FLOOD_REDRAWS_PER_SECOND if self._last_flush_rows > FLOOD_ROWS else REDRAWS_PER_SECOND
        return 1 / rate

    def take(self) -> list[CommitNotice]:
        """The notices waiting since the last redraw (the next notice wakes the UI again)."""
        with self._lock:
            notices, self._inbox = self._inbox, []
            self._wake_posted = False
        self._flush_scheduled = False
        self._last_flush_rows = sum(len(n.event_ids) + len(n.rejected_ids) for n in notices)
        return notices

    # -- counting ---------------------------------------------------------------

    def count_stats(self, notices: list[CommitNotice]) -> None:
        """Add the notices' new rows to the live counters (when they are kept here)."""
        if self.stats is None:
            return
        for row, source in self.stats_seen.new_rows(notices):
            rejected = source == "rejected"
            event, user_id = (None, None) if rejected else (row.get("event"), row.get("user_id"))
            self.stats.add(event, user_id, row["received_at"], rejected)
        self.stats_seen = self.stats_seen.after(notices)

    def count_for_view(
        self, view: queries.View, notices: list[CommitNotice], query: Callable[[list[int], list[int]], int]
    ) -> int:
        """How many of the notices' new rows the view shows; then they count as seen.

        Without a filter the notices' rows tell; otherwise (or when the
        notices carry ids only) ``query`` counts the new ids. If it raises,
        nothing counts as seen: the next redraw or view counts them.
        """
        event_ids, rejected_ids = self.view_seen.new_ids(notices)
        added: int | None = 0
        if has_rows(notices):
            for row, source in self.view_seen.new_rows(notices):
                shown = queries.shows(view, row, source)
                if shown is None:
                    added = None
                    break
                added = (added or 0) + shown
        else:
            added = None
        if added is None:
            added = query(event_ids, rejected_ids)
        self.view_seen = self.view_seen.after(notices)
        return added
