"""The live feed without Textual: waking the UI, pacing redraws, counting rows once."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from monitor import queries
from monitor.tui import feed as feed_module
from monitor.tui.feed import Feed, Seen
from monitor.writer import CommitNotice


def _notice(*events: dict[str, Any], rejected: tuple[dict[str, Any], ...] = ()) -> CommitNotice:
    return CommitNotice([e["id"] for e in events], [r["id"] for r in rejected], list(events), list(rejected))


def _event(id: int, event: str = "payment_gateway.view", session_id: int = 1) -> dict[str, Any]:
    return {"id": id, "event": event, "session_id": session_id, "user_id": f"u{id}", "received_at": 1000.0 + id}


def test_the_feed_imports_no_textual_nor_rich() -> None:
    tree = ast.parse(Path(feed_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in ("textual", "rich")}


def test_only_the_first_notice_since_a_redraw_wakes_the_ui() -> None:
    feed = Feed()
    assert feed.push(_notice(_event(1))) is False  # not accepting yet: it waits
    assert feed.accept() is True  # one waits: wake now
    assert feed.push(_notice(_event(2))) is False  # already woken
    assert feed.redraw_delay() == 1 / feed_module.REDRAWS_PER_SECOND
    assert feed.redraw_delay() is None  # one is scheduled
    assert [n.event_ids for n in feed.take()] == [[1], [2]]
    assert feed.push(_notice(_event(3))) is True


def test_a_flood_slows_the_redraws() -> None:
    feed = Feed()
    feed.accept()
    feed.push(_notice(*(_event(i) for i in range(1, feed_module.FLOOD_ROWS + 2))))
    feed.take()
    assert feed.redraw_delay() == 1 / feed_module.FLOOD_REDRAWS_PER_SECOND


def test_rows_a_snapshot_counted_are_not_counted_again() -> None:
    feed = Feed()
    feed.view_seen = Seen(2, 0)
    view = queries.View(mode="gateway", session_id=1)
    notices = [_notice(_event(2), _event(3), _event(4, "paywall.click"), _event(5, session_id=2))]
    assert (
        feed.count_for_view(view, notices, lambda e, r: 99) == 1
    )  # only #3: #2 was seen, #4 not gateway, #5 other session
    assert feed.view_seen == Seen(5, 0)


def test_a_filtered_view_asks_the_query_and_counts_nothing_when_it_fails() -> None:
    feed = Feed()
    view = queries.View(mode="all", session_id=None, where="event = ?", params=("x",))
    asked: list[tuple[list[int], list[int]]] = []

    def query(events: list[int], rejected: list[int]) -> int:
        asked.append((events, rejected))
        return 7

    assert feed.count_for_view(view, [_notice(_event(1))], query) == 7
    assert asked == [([1], [])]

    def failing(events: list[int], rejected: list[int]) -> int:
        raise RuntimeError("locked")

    with pytest.raises(RuntimeError):
        feed.count_for_view(view, [_notice(_event(2))], failing)
    assert feed.view_seen == Seen(1, 0)  # #2 is counted with the next redraw or view


def test_live_counters_count_each_new_row_once() -> None:
    feed = Feed()
    feed.stats = queries.StatsAccumulator()
    feed.stats_seen = Seen(1, 0)
    feed.count_stats([_notice(_event(1), _event(2), rejected=({"id": 1, "received_at": 1001.0, "session_id": 1},))])
    feed.count_stats([_notice(_event(2))])  # told twice: counted once
    stats = feed.stats.snapshot(2000.0)
    assert (stats.views, stats.rejected, stats.readers) == (1, 1, 1)
