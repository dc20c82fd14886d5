"""One reader's journey: pair each payment-gateway view with its close.

Pure functions, no I/O. The pairing key is, in order of preference, the
gateway ``sessionId`` from the pageUrl, then (``paywallId``, content), then
simply the next close of the same reader for the same content. A close
pairs with the earliest still-open view before it whose key matches.
Repeated deliveries (``duplicate_of`` set) are shown but never paired.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW

Outcome = Literal["closed", "open", "converted"]
PairedBy = Literal["sessionId", "paywallId+content", "next close"]

#: Strongest key first: a close takes a view matched by sessionId over one
#: matched by paywall and content, and that over a bare "next close".
_KEY_ORDER: tuple[PairedBy, ...] = ("sessionId", "paywallId+content", "next close")


@dataclass(slots=True)
class JourneyStep:
    """One event of the journey and, for a view or a close, its partner."""

    row: Mapping[str, Any]
    pair_id: int | None = None  # the close of a view, the view of a close
    time_to_close: float | None = None  # seconds from the view to its close
    close_action: str | None = None  # clickAction of the close
    outcome: Outcome | None = None  # views only
    paired_by: PairedBy | None = None
    duplicate: bool = False  # a repeated delivery: shown, never paired

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def event(self) -> str | None:
        return self.row.get("event")

    @property
    def is_view(self) -> bool:
        return self.event == GATEWAY_VIEW

    @property
    def is_close(self) -> bool:
        return self.event == GATEWAY_CLOSE


@dataclass(frozen=True, slots=True)
class PairSummary:
    views: int
    closes: int
    closed: int
    open: int
    converted: int
    duplicates: int
    median_time_to_close: float | None


def event_time(row: Mapping[str, Any]) -> float:
    """When the event happened: Conscent's ``created_at``, else our receipt."""
    created = row.get("created_at")
    return float(created if created is not None else row["received_at"])


def is_conversion(event: str | None) -> bool:
    return event is not None and (event == "transaction.complete" or event.startswith("purchase."))


def build_journey(rows: Iterable[Mapping[str, Any]]) -> list[JourneyStep]:
    """Pair views with closes and tell each view's outcome.

    ``rows`` are one reader's events; they are put in time order here
    (``created_at``, else ``received_at``, then id) because deliveries can
    arrive out of order.
    """
    steps = [JourneyStep(row, duplicate=row.get("duplicate_of") is not None) for row in rows]
    steps.sort(key=lambda step: (event_time(step.row), step.id))
    _pair_in_order(steps)
    for index, step in enumerate(steps):
        if step.is_view and not step.duplicate:
            step.outcome = _outcome(step, steps[index + 1 :])
    return steps


def _pair_in_order(steps: Sequence[JourneyStep]) -> None:
    """Pair the views and closes of ``steps`` (in time order): each close takes its earliest open view."""
    open_views: list[JourneyStep] = []
    for step in steps:
        if step.duplicate:
            continue
        if step.is_view:
            open_views.append(step)
        elif step.is_close:
            view, how = _find_view(open_views, step.row)
            if view is not None and how is not None:
                open_views.remove(view)
                _pair(view, step, how)


def pair_summary(steps: Sequence[JourneyStep]) -> PairSummary:
    views = [s for s in steps if s.is_view and not s.duplicate]
    times = [s.time_to_close for s in views if s.time_to_close is not None]
    return PairSummary(
        views=len(views),
        closes=sum(1 for s in steps if s.is_close and not s.duplicate),
        closed=sum(1 for s in views if s.outcome == "closed"),
        open=sum(1 for s in views if s.outcome == "open"),
        converted=sum(1 for s in views if s.outcome == "converted"),
        duplicates=sum(1 for s in steps if s.duplicate),
        median_time_to_close=statistics.median(times) if times else None,
    )


def content_of(row: Mapping[str, Any]) -> str | None:
    return row.get("content_id") or row.get("client_content_id") or None


def match_key(view: Mapping[str, Any], close: Mapping[str, Any]) -> PairedBy | None:
    """How ``view`` and ``close`` pair, or ``None`` when their keys differ.

    A key is compared only when both rows carry it; otherwise the next,
    weaker key decides.
    """
    view_session, close_session = view.get("gateway_session_id"), close.get("gateway_session_id")
    if view_session and close_session:
        return "sessionId" if view_session == close_session else None
    content = content_of(view)
    if content != content_of(close):
        return None
    view_paywall, close_paywall = view.get("paywall_id"), close.get("paywall_id")
    if view_paywall and close_paywall and content:
        return "paywallId+content" if view_paywall == close_paywall else None
    return "next close"


def _find_view(open_views: list[JourneyStep], close: Mapping[str, Any]) -> tuple[JourneyStep | None, PairedBy | None]:
    keys = [(view, match_key(view.row, close)) for view in open_views]
    for wanted in _KEY_ORDER:
        for view, how in keys:
            if how == wanted:
                return view, how
    return None, None


def _pair(view: JourneyStep, close: JourneyStep, how: PairedBy) -> None:
    both_created = view.row.get("created_at") is not None and close.row.get("created_at") is not None
    column = "created_at" if both_created else "received_at"
    seconds = float(close.row[column]) - float(view.row[column])
    action = close.row.get("click_action")
    view.pair_id, close.pair_id = close.id, view.id
    view.time_to_close = close.time_to_close = seconds
    view.close_action = close.close_action = action
    view.paired_by = close.paired_by = how


def _outcome(view: JourneyStep, later: Sequence[JourneyStep]) -> Outcome:
    """``converted`` if a purchase follows before the view's close."""
    content = content_of(view.row)
    for step in later:
        if step.id == view.pair_id:
            break
        if step.duplicate or not is_conversion(step.event):
            continue
        bought = content_of(step.row)
        if content is None or bought is None or bought == content:
            return "converted"
    return "closed" if view.pair_id is not None else "open"


# -- a page of the journey at a time ------------------------------------------------------
#
# build_journey pairs a whole journey. A long one (10,000 events) is shown a page at a
# time, and the pairing of a page needs only the rows that can pair with the page's:
# a close takes a view only when match_key says they match, so the rows split into
# *components* (rows linked by possible matches) that pair among themselves exactly as
# in the whole journey. With a sessionId on every (non-repeated) view and close, a
# component is the rows of one sessionId (two sessionIds never match; a row without
# one can match across them by content, so then the journey is one component). A
# view's outcome needs the purchases between it and its close: :class:`Conversions`.


def sort_key(row: Mapping[str, Any]) -> tuple[float, int]:
    """Where a row stands in the journey's time order (as build_journey sorts)."""
    return event_time(row), int(row["id"])


def has_session(row: Mapping[str, Any]) -> bool:
    """Whether the row carries a gateway sessionId (match_key compares it only then)."""
    return bool(row.get("gateway_session_id"))


def pairs_by_session(rows: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every non-repeated view and close of ``rows`` has a sessionId: then each sessionId pairs alone."""
    return all(
        has_session(row)
        for row in rows
        if row.get("duplicate_of") is None and row.get("event") in (GATEWAY_VIEW, GATEWAY_CLOSE)
    )


def components(rows: Iterable[Mapping[str, Any]], *, by_session: bool) -> list[list[Mapping[str, Any]]]:
    """Views and closes split into sets that pair only among themselves.

    ``by_session``: every non-repeated view and close of the journey has a
    sessionId (:func:`pairs_by_session` on all of them), so each sessionId
    is a set; otherwise all of ``rows`` are one.
    """
    gateway = [row for row in rows if row.get("event") in (GATEWAY_VIEW, GATEWAY_CLOSE)]
    if not by_session:
        return [gateway] if gateway else []
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in gateway:
        groups.setdefault(str(row.get("gateway_session_id") or ""), []).append(row)
    return list(groups.values())


def pair_rows(rows: Iterable[Mapping[str, Any]], *, by_session: bool) -> dict[int, JourneyStep]:
    """Views and closes paired as build_journey pairs them, by id (no outcomes).

    ``rows`` must hold, for each of its views and closes, every row of the
    journey that can pair with it (whole components): then the pairs are
    those of the whole journey.
    """
    paired: dict[int, JourneyStep] = {}
    for group in components(rows, by_session=by_session):
        steps = [JourneyStep(row, duplicate=row.get("duplicate_of") is not None) for row in group]
        steps.sort(key=lambda step: (event_time(step.row), step.id))
        _pair_in_order(steps)
        paired.update((step.id, step) for step in steps)
    return paired


class Conversions:
    """A journey's purchases (non-repeated), to tell a view's outcome as build_journey does.

    A view is ``converted`` when a purchase for its content (or one of them
    without content) comes after it and before its close (ever after, if it
    has none): a binary search per view, not a walk of the steps between.
    """

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._every: list[tuple[float, int]] = []
        self._by_content: dict[str | None, list[tuple[float, int]]] = {}
        for row in rows:
            if row.get("duplicate_of") is not None or not is_conversion(row.get("event")):
                continue
            key = sort_key(row)
            self._every.append(key)
            self._by_content.setdefault(content_of(row), []).append(key)
        self._every.sort()
        for keys in self._by_content.values():
            keys.sort()

    def __len__(self) -> int:
        return len(self._every)

    def between(self, after: tuple[float, int], before: tuple[float, int] | None, content: str | None) -> bool:
        """Whether a purchase that counts for ``content`` stands strictly between ``after`` and ``before``."""
        lists = (
            [self._every] if content is None else [self._by_content.get(content, []), self._by_content.get(None, [])]
        )
        for keys in lists:
            index = bisect.bisect_right(keys, after)
            if index < len(keys) and (before is None or keys[index] < before):
                return True
        return False

    def outcome(self, view: Mapping[str, Any], close: Mapping[str, Any] | None) -> Outcome:
        """The outcome of ``view``, whose close (if any) is ``close``."""
        if self.between(sort_key(view), None if close is None else sort_key(close), content_of(view)):
            return "converted"
        return "closed" if close is not None else "open"


def page_steps(
    page: Sequence[Mapping[str, Any]],
    related: Iterable[Mapping[str, Any]],
    conversions: Conversions,
    *,
    by_session: bool,
    paired: Mapping[int, JourneyStep] | None = None,
) -> list[JourneyStep]:
    """The steps of ``page`` (rows in the order shown), paired and judged as in the whole journey.

    ``related``: the components of the page's views and closes (see
    :func:`pair_rows`; the page's rows may be among them or not);
    ``conversions``: the journey's purchases; ``paired``: ``pair_rows`` of
    ``related`` when the caller keeps it (a journey that is one component).
    """
    rows = {int(row["id"]): row for row in related}
    rows.update((int(row["id"]), row) for row in page if row.get("event") in (GATEWAY_VIEW, GATEWAY_CLOSE))
    if paired is None:
        paired = pair_rows(rows.values(), by_session=by_session)
    steps = []
    for row in page:
        step = JourneyStep(row, duplicate=row.get("duplicate_of") is not None)
        found = paired.get(step.id)
        if found is not None and not step.duplicate:
            step.pair_id, step.time_to_close = found.pair_id, found.time_to_close
            step.close_action, step.paired_by = found.close_action, found.paired_by
        if step.is_view and not step.duplicate:
            step.outcome = conversions.outcome(row, None if step.pair_id is None else rows[step.pair_id])
        steps.append(step)
    return steps


def summarize(
    gateway: Iterable[Mapping[str, Any]], conversions: Conversions, duplicates: int, *, by_session: bool
) -> PairSummary:
    """:func:`pair_summary` of a whole journey from its views and closes and its purchases only.

    ``duplicates``: how many of the journey's events (of any type) are repeated deliveries.
    """
    rows = {int(row["id"]): row for row in gateway}
    paired = pair_rows(rows.values(), by_session=by_session)
    views = closes = closed = still_open = converted = 0
    times: list[float] = []
    for step in paired.values():
        if step.duplicate:
            continue
        if step.is_close:
            closes += 1
        elif step.is_view:
            views += 1
            outcome = conversions.outcome(step.row, None if step.pair_id is None else rows[step.pair_id])
            closed += outcome == "closed"
            still_open += outcome == "open"
            converted += outcome == "converted"
            if step.time_to_close is not None:
                times.append(step.time_to_close)
    return PairSummary(
        views=views,
        closes=closes,
        closed=closed,
        open=still_open,
        converted=converted,
        duplicates=duplicates,
        median_time_to_close=statistics.median(times) if times else None,
    )
