"""The Insights screen (issue 15, part 3) at 80x24 and 160x48: funnel numbers, bars, the median, live refresh.

The screen is pushed with figures read by :func:`monitor.queries.insights`
from a small database: two paired views (90 s and 30 s to close), a third
view that ends in a payment, and one whose content id carries a terminal
escape. Every wait is on a condition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from textual.message import Message

from monitor import queries, store
from monitor.tui.app import MonitorApp
from monitor.tui.screens.insights import InsightsScreen, InsightsWanted, _width_label, series_tones
from monitor.tui.widgets.charts import Bar, BarChart, ColumnChart, Columns, Series, _count_label, bar, nice_ceiling
from tests.helpers import event_row, gateway_body, screen_strips, screen_text, unsafe_segments, wait_for

SMALL, LARGE = (80, 24), (160, 48)
T = 1764490000.0
CROSS = "PAYMENT_GATEWAY_CROSS_BTN"
EVIL = "evil\x1b]0;pwned\x07story"


def payment(event: str, user: str, at: float) -> dict[str, Any]:
    body = orjson.dumps({"entity": "event", "event": event, "user_id": user, "created_at": at})
    return event_row(body, received_at=at + 1)


def gateway(event: str, user: str, at: float, session: str, content: str, action: str | None = None) -> dict[str, Any]:
    body = gateway_body(
        event=event, user_id=user, created_at=at, session=session, content_id=content, click_action=action
    )
    return event_row(body, received_at=at + 1)


def build(db_path: Path, *, empty: bool = False) -> None:
    db = store.open_store(db_path)
    try:
        session_id = store.start_session(db, listen=None, mode="test")
        assert session_id == 1
        if not empty:
            view, close = "payment_gateway.view", "payment_gateway.close"
            rows = [
                gateway(view, "r1", T, "s1", "story-1"),
                gateway(close, "r1", T + 90, "s1", "story-1", CROSS),
                gateway(view, "r2", T + 10, "s2", "story-2"),
                gateway(close, "r2", T + 40, "s2", "story-2", "POPUP_CLOSE"),
                gateway(view, "r3", T + 20, "s3", "story-1"),
                payment("transaction.complete", "r3", T + 50),
                payment("purchase.pass", "r3", T + 51),
                gateway(view, "r4", T + 60, "s4", EVIL),
            ]
            store.write_batch(db.conn, rows, [])
    finally:
        db.close()


def read(db_path: Path, mode: str = "all") -> queries.Insights:
    db = store.connect(db_path, readonly=True)
    try:
        return queries.insights(db, queries.View(mode, None), T + 100)  # type: ignore[arg-type]
    finally:
        db.close()


async def open_insights(pilot: Any, app: MonitorApp, data: queries.Insights) -> InsightsScreen:
    screen = InsightsScreen(data, "all sessions · every event", app.clock)
    await app.push_screen(screen)
    await wait_for(pilot, lambda: app.screen is screen and "Insights" in screen_text(app), what="the screen")
    return screen


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
async def test_the_screen_shows_the_funnel_bars_and_the_median(db_path: Path, size: tuple[int, int]) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=size) as pilot:
        screen = await open_insights(pilot, app, read(db_path))
        text = screen_text(app)
        assert "8 deliveries" in text
        assert "Gateway views │" in text and "4 · " not in text.split("Gateway views")[0]
        gateway_line = next(line for line in text.splitlines() if "Gateway views" in line)
        assert "█" in gateway_line and gateway_line.rstrip().endswith("4")  # no paywall views: no rate
        closes = next(line for line in text.splitlines() if line.lstrip().startswith("Closes"))
        assert closes.rstrip().endswith("2 · 50% of gateway")
        assert "story-1" in text and "Content id" in text
        await pilot.press("end")  # the rest of the screen, scrolled to
        await wait_for(pilot, lambda: "Delivery lag" in screen_text(app), what="the bottom of the screen")
        everything = _whole_screen(screen)
        assert "median 60s" in everything and "p90 84s" in everything
        assert "PAYMENT_GATEWAY_CROSS_BTN" in everything and "1 · 50%" in everything
        assert "payment_gateway.view 4" in everything  # the deliveries chart's legend
        assert "p50 1.0s" in everything  # every delivery a second late
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InsightsScreen), what="back")


async def test_the_wide_screen_puts_closes_beside_the_time_to_close(db_path: Path) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=LARGE) as pilot:
        screen = await open_insights(pilot, app, read(db_path))
        assert screen.has_class("-wide")
        line = next(line for line in screen_text(app).splitlines() if "How readers close" in line)
        assert "Time to close" in line
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_insights(pilot, app, read(db_path))
        assert not screen.has_class("-wide")


async def test_an_empty_database_says_there_is_nothing_yet(db_path: Path) -> None:
    build(db_path, empty=True)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=SMALL) as pilot:
        await open_insights(pilot, app, read(db_path, "gateway"))
        text = screen_text(app)
        assert "Nothing to chart yet" in text and "appear as deliveries arrive" in text
        assert "Funnel" not in text


async def test_gateway_mode_says_what_it_leaves_out(db_path: Path) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=LARGE) as pilot:
        await open_insights(pilot, app, read(db_path, "gateway"))
        text = screen_text(app)
        assert "gateway mode: views and closes only" in text
        assert "Paywall views" not in text and "Purchases" not in text  # not in view: not drawn as zero


async def test_untrusted_ids_are_drawn_inert(db_path: Path) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=LARGE) as pilot:
        await open_insights(pilot, app, read(db_path))
        assert "pwned" in screen_text(app)  # shown, as text
        assert unsafe_segments(screen_strips(app)) == []


async def test_refresh_data_draws_new_figures_and_keeps_the_scroll(db_path: Path) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_insights(pilot, app, read(db_path))
        body = screen.query_one("#insights-body")
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: body.scroll_y > 0, what="a scroll")
        scrolled = body.scroll_y
        db = store.open_store(db_path)
        try:
            close = gateway("payment_gateway.close", "r3", T + 80, "s3", "story-1", CROSS)
            store.write_batch(db.conn, [close], [])
        finally:
            db.close()
        screen.refresh_data(read(db_path))
        await wait_for(pilot, lambda: "3 closes" in _whole_screen(screen), what="the new close")
        assert body.scroll_y == scrolled
        assert "9 deliveries" in screen_text(app)


async def test_the_screen_asks_for_fresh_figures_while_shown(db_path: Path) -> None:
    build(db_path)
    wanted: list[Message] = []
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=SMALL, message_hook=wanted.append) as pilot:
        await open_insights(pilot, app, read(db_path))
        await wait_for(pilot, lambda: any(isinstance(m, InsightsWanted) for m in wanted), what="a poll")


async def test_a_theme_change_recolours_the_charts(db_path: Path) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_insights(pilot, app, read(db_path))
        chart = screen.query_one("#funnel-chart", BarChart)
        before = chart.tone("success").color
        app.theme = "nord" if app.theme != "nord" else "gruvbox"
        await wait_for(pilot, lambda: chart.tone("success").color != before, what="the new theme's colour")
        assert chart.tone("success").color is not None


def _whole_screen(screen: InsightsScreen) -> str:
    """Every chart and heading's text, scrolled into view or not."""
    parts = []
    for node in screen.query("#insights-body *"):
        if isinstance(node, BarChart | ColumnChart):
            parts += [line.plain for line in node.draw(node.size.width or 76)]
        elif hasattr(node, "render"):
            rendered = node.render()
            parts.append(str(getattr(rendered, "plain", "")))
    return "\n".join(parts)


def test_bars_and_axes() -> None:
    assert bar(0.5, 4) == "██" and bar(1 / 16, 2) == "▏" and bar(0, 5) == ""
    assert [nice_ceiling(v) for v in (0, 0.7, 3, 7, 12, 4100)] == [1.0, 1.0, 5.0, 10.0, 20.0, 5000.0]
    assert nice_ceiling(2.4) == 2.5
    assert [_count_label(v) for v in (0.5, 7, 950, 1250, 42_000, 3_000_000)] == ["0.5", "7", "950", "1.2k", "42k", "3M"]
    assert [_width_label(s) for s in (1, 5, 60, 10800, 86400)] == ["second", "5 seconds", "minute", "3 hours", "day"]
    tones = series_tones(["paywall.click", "payment_gateway.view", "payment_gateway.close", "other", "rejected"])
    assert tones == ["accent", "success", "secondary", "muted", "error"]
    assert len(set(series_tones([f"e{i}" for i in range(6)]))) == 6


async def test_a_column_chart_draws_axes_labels_and_a_legend(db_path: Path) -> None:
    build(db_path, empty=True)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T)
    async with app.run_test(size=SMALL) as pilot:
        await open_insights(pilot, app, read(db_path))
        chart = ColumnChart(height=4)
        await app.screen.mount(chart)
        chart.show(Columns([Series("a", "primary", "3"), Series("b", "accent")], [[1, 2], [0, 0], [4, 0]], [(0, "x0")]))
        lines = [line.plain for line in chart.draw(40)]
        assert lines[0].startswith("  5 ┤") and lines[2].startswith("2.5 ┤")  # the top: 4 rounded up; then its half
        assert lines[4].lstrip().startswith("└") and lines[5].strip() == "x0"
        assert lines[-1] == "█ a 3  █ b"
        column = [line[5] if len(line) > 5 else " " for line in lines[:4]]  # the first column, 3 high, from the top
        assert column == [" ", "▃", "█", "█"]  # 3 of 5 in four rows of 1.25: the third row 0.4 full
        bars = BarChart([Bar("one", 2, "2"), Bar("two", 1, "1")])
        await app.screen.mount(bars)
        drawn = [line.plain for line in bars.draw(40)]
        assert drawn[0].startswith("one │█") and drawn[2].strip().startswith("└")


async def test_gateway_mode_draws_no_column_of_dashes(db_path: Path) -> None:
    build(db_path)
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=SMALL) as pilot:
        await open_insights(pilot, app, read(db_path, "gateway"))
        header = next(line for line in screen_text(app).splitlines() if "Content id" in line)
        assert header.split() == ["Content", "id", "Gateway", "Closes", "Close"]


def test_a_wide_label_is_cut_to_its_cells_and_the_bars_stay_in_line() -> None:
    """A content id in CJK (two cells a character) is cut by cells, not characters."""
    from rich.cells import cell_len

    from monitor.tui.widgets.charts import fit

    label = fit("予算解説予算解説予算解説", 9)
    assert cell_len(label) == 9 and label.rstrip().endswith("…")
