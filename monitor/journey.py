"""One reader's journey: pair each payment-gateway view with its close.

Pure functions, no I/O. The pairing key is, in order of preference, the
gateway ``sessionId`` from the pageUrl, then (``paywallId``, content), then
simply the next close of the same reader for the same content. A close
pairs with the earliest still-open view before it whose key matches.
Repeated deliveries (``duplicate_of`` set) are shown but never paired.
"""

from __future__ import annotations

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
    for index, step in enumerate(steps):
        if step.is_view and not step.duplicate:
            step.outcome = _outcome(step, steps[index + 1 :])
    return steps


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
