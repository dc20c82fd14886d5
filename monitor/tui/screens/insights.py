"""Insights: the current view (session, mode, filter) as pictures rather than rows.

Shows the :class:`~monitor.queries.Insights` the app read for it
(:func:`monitor.queries.insights`): the funnel from paywall to purchase per
content id and per paywall, how readers close the gateway, the time from a
view to its close, deliveries over time by event type, and the delivery lag
over time. Every figure comes from the queries; this screen only draws.

Live: every :data:`POLL_INTERVAL` seconds, while it is the screen shown, it
posts :class:`InsightsWanted`; the app reads again if the database changed
(``data_version``) and hands the result to :meth:`InsightsScreen.refresh_data`.
The scroll position stays.

Content ids, paywall ids, click actions and event names come from webhooks:
inert (:func:`monitor.textsafe.cell`) and drawn as plain text. Must not import
the app, nor read the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.message import Message
from textual.widgets import Static

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.queries import CloseAction, Funnel, FunnelRow, Insights, Lag, Timeline, TimeToClose
from monitor.resources import styles_dir
from monitor.textsafe import cell
from monitor.tui.format import format_duration
from monitor.tui.screens.palette import ThemedScreen
from monitor.tui.widgets.charts import Bar, BarChart, ColumnChart, Columns, Marker, Series
from monitor.tui.widgets.footer import KeyFooter
from monitor.wording import count, number

#: How often the screen asks for fresh figures (seconds); the app reads only if the database changed.
POLL_INTERVAL = 2.0
#: From this width the close actions and the time to close stand side by side, and the funnel shows every rate.
WIDE = 150
#: From this height the charts over time are taller.
TALL = 40
#: Steps between the time axis' labels (seconds): the first that leaves about six labels.
LABEL_STEPS = (1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
#: Tones (styles/insights.tcss) for the event types of the deliveries chart: the main table's where it has one.
_EVENT_TONES = {GATEWAY_VIEW: "success", GATEWAY_CLOSE: "secondary", "rejected": "error", "other": "muted"}
_SPARE_TONES = ("accent", "foreground", "deep-accent", "primary", "deep-primary", "warning", "success", "secondary")


@dataclass
class InsightsWanted(Message):
    """The Insights screen wants its figures again, if the database changed (it polls with this)."""

    if_changed: bool = True


class InsightsScreen(ThemedScreen):
    CSS_PATH = str(styles_dir() / "insights.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, data: Insights, description: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.data = data
        self.description = description
        self.clock = clock
        #: The size last drawn for: a resize to the same size draws nothing again.
        self._drawn_for: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="insights-title", classes="title")
        with VerticalScroll(id="insights-body"):
            yield Static(id="funnel-heading", classes="insights-heading")
            yield BarChart(id="funnel-chart", label_width=16)
            yield Static(id="funnel-table")
            with Horizontal(id="insights-pair"):
                with Vertical(classes="insights-half"):
                    yield Static(id="close-heading", classes="insights-heading")
                    yield BarChart(id="close-actions")
                with Vertical(classes="insights-half"):
                    yield Static(id="ttc-heading", classes="insights-heading")
                    yield ColumnChart(id="time-to-close")
            yield Static(id="timeline-heading", classes="insights-heading")
            yield ColumnChart(id="timeline")
            yield Static(id="lag-heading", classes="insights-heading")
            yield ColumnChart(id="lag")
        yield KeyFooter(personal_data=False)

    def on_mount(self) -> None:
        super().on_mount()
        self._fit_layout()
        self.redraw()
        self.query_one("#insights-body").focus()
        self.set_interval(POLL_INTERVAL, self._poll)

    def on_resize(self, event: Resize) -> None:
        if self.is_mounted and self._extent() != self._drawn_for:
            self._fit_layout()
            self.redraw()

    # -- attributes down -----------------------------------------------------------------

    def refresh_data(self, data: Insights) -> None:
        """New figures (the database changed): draw them, keeping the scroll position."""
        self.data = data
        self.redraw()

    def _poll(self) -> None:
        if self.is_current:
            self.post_message(InsightsWanted())

    # -- drawing -------------------------------------------------------------------------

    def _extent(self) -> tuple[int, int]:
        return self.size.width or self.app.size.width, self.size.height or self.app.size.height

    def _fit_layout(self) -> None:
        width, _ = self._extent()
        self.set_class(width >= WIDE, "-wide")

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        data = self.data
        self._title()
        self.query_one("#insights-body").display = not data.empty
        if data.empty:
            return
        width, height = self._drawn_for = self._extent()
        tall = height >= TALL
        self._funnel(data.funnel, wide=width >= WIDE)
        self._close_actions(data.close_actions)
        self._time_to_close(data.time_to_close, tall=tall)
        self._timeline(data.timeline, tall=tall)
        self._lag(data.lag, tall=tall)

    def _heading(self, selector: str, title: str, *details: str) -> None:
        text = Text(title, style=self.tone("strong"))
        for detail in details:
            if detail:
                text.append(" · ", style=self.tone("muted"))
                text.append(detail, style=self.tone("muted"))
        self.query_one(selector, Static).update(text)

    def _title(self) -> None:
        data, muted = self.data, self.tone("muted")
        title = Text()
        title.append("Insights", style="bold")
        title.append(" · ", style=muted)
        title.append(cell(self.description, 200), style=self.tone("strong"))
        if data.empty:
            title.append("\n")
            title.append("Nothing to chart yet", style="bold")
            title.append(": no delivery in this view.", style=muted)
            title.append("\n")
            title.append("The charts appear as deliveries arrive.", style=muted)
        else:
            title.append(f" · {count(data.rows, 'delivery')}", style=muted)
            title.append(f" · as of {time.strftime('%H:%M:%S', time.localtime(data.now))}", style=muted)
            if data.mode == "gateway":
                title.append("\n")
                title.append("gateway mode: views and closes only (a on the main table shows every event)", style=muted)
        self.query_one("#insights-title", Static).update(title)

    # -- the funnel ----------------------------------------------------------------------

    def _funnel(self, funnel: Funnel, *, wide: bool) -> None:
        total, gateway_only = funnel.total, self.data.mode == "gateway"
        estimated = f"≈ paid / bought per content from {_share(funnel.share)} of readers" if funnel.share < 1 else ""
        self._heading(
            "#funnel-heading",
            "Funnel",
            "paywall → gateway → closed / paid / bought",
            "repeats not counted",
            estimated,
        )
        bars = [
            Bar("Paywall views", total.paywall, _stage_note(total.paywall, None, ""), "primary"),
            Bar("Gateway views", total.views, _stage_note(total.views, total.view_rate, "of paywall"), "success"),
            Bar("Closes", total.closes, _stage_note(total.closes, total.close_rate, "of gateway"), "secondary"),
            Bar(
                "Transactions",
                total.transactions,
                _stage_note(total.transactions, total.rate(total.transactions, total.views), "of gateway"),
                "deep-accent",
            ),
            Bar(
                "Purchases", total.purchases, _stage_note(total.purchases, total.purchase_rate, "of gateway"), "accent"
            ),
        ]
        if gateway_only:
            bars = [b for b in bars if b.label in ("Gateway views", "Closes")]
        self.query_one("#funnel-chart", BarChart).show(bars)
        tables = [
            self._funnel_table("Content id", funnel.by_content, funnel.contents, wide=wide, estimated=funnel.share < 1),
            self._funnel_table("Paywall id", funnel.by_paywall, funnel.paywalls, wide=wide, estimated=funnel.share < 1),
        ]
        if wide:
            grid = Table.grid(padding=(0, 4))
            grid.add_row(*tables)
            self.query_one("#funnel-table", Static).update(grid)
        else:
            grid = Table.grid()
            grid.add_row(tables[0])
            grid.add_row("")
            grid.add_row(tables[1])
            self.query_one("#funnel-table", Static).update(grid)

    def _funnel_table(
        self, key: str, rows: Sequence[FunnelRow], total: int, *, wide: bool, estimated: bool = False
    ) -> Table:
        """One line per content id (or paywall): the numbers whole, the id cut to what is left."""
        gateway_only, muted = self.data.mode == "gateway", self.tone("muted")
        approx = "≈" if estimated else ""
        stages = [("Shown", "paywall"), ("Gateway", "views"), ("Closes", "closes"),
                  (approx + "Paid", "transactions"), (approx + "Bought", "purchases")]  # fmt: skip
        if gateway_only:  # the other stages are not in view: no column of dashes
            stages = [stage for stage in stages if stage[1] in ("views", "closes")]
        cells: list[list[Text]] = []
        for row in rows:
            label = Text(cell(row.key, 60)) if row.key is not None else Text("(none)", style=muted)
            counts = [Text(number(row.stage(name))) for _, name in stages]
            rates = (
                [_percent(row.close_rate)] if gateway_only else [_percent(row.close_rate), _percent(row.purchase_rate)]
            )
            cells.append([label, *counts, *(Text(rate, style=muted) for rate in rates)])
        titles = [*(title for title, _ in stages), "Close", *(() if gateway_only else (approx + "Buy",))]
        widths = [max([len(title), *(row[index].cell_len for row in cells)]) for index, title in enumerate(titles, 1)]
        room = self._extent()[0] - 4  # the body's padding and scrollbar
        if wide:
            room = room // 2 - 2
        key_width = max(8, min(26, room - sum(width + 2 for width in widths) - 2))
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style=self.tone("strong"), expand=False)
        table.add_column(Text(key), width=key_width, no_wrap=True, overflow="ellipsis")
        for title, width in zip(titles, widths, strict=True):
            table.add_column(Text(title), justify="right", width=width, no_wrap=True)
        for row_cells in cells:
            table.add_row(*row_cells)
        if total > len(rows):
            table.add_row(Text(f"… {count(total - len(rows), 'more')}", style=muted))
        return table

    # -- closes --------------------------------------------------------------------------

    def _close_actions(self, actions: Sequence[CloseAction]) -> None:
        closes = sum(action.count for action in actions)
        self._heading("#close-heading", "How readers close", count(closes, "close"))
        bars = [
            Bar(
                cell(action.action, 40) if action.action is not None else "(no clickAction)",
                action.count,
                f"{number(action.count)} · {action.share:.0%}",
                "secondary",
            )
            for action in actions
        ]
        self.query_one("#close-actions", BarChart).show(bars)

    def _time_to_close(self, ttc: TimeToClose, *, tall: bool) -> None:
        median = f"median {format_duration(ttc.median)}" if ttc.median is not None else ""
        p90 = f"p90 {format_duration(ttc.p90)}" if ttc.p90 is not None else ""
        unpaired = f"{count(ttc.unpaired, 'close')} without a view" if ttc.unpaired else ""
        pairs = count(ttc.pairs, "pair")
        if ttc.share < 1:
            pairs += f" of {_share(ttc.share)} of readers"
        self._heading("#ttc-heading", "Time to close", pairs, median, p90, unpaired)
        chart = self.query_one("#time-to-close", ColumnChart)
        if not ttc.counts:
            chart.show(None)
            return
        width = ttc.edges[1] - ttc.edges[0]
        labels = [(i, _edge_label(edge)) for i, edge in enumerate(ttc.edges[:-1])]
        labels[-1] = (len(labels) - 1, "≥" + _edge_label(ttc.edges[-2]))
        markers = [
            Marker(value / width, text, tone)
            for value, text, tone in ((ttc.median, median, "warning"), (ttc.p90, p90, "error"))
            if value is not None
        ]
        columns = Columns(
            series=[Series("views closed", "secondary", "by time from view to close")],
            values=[[float(n)] for n in ttc.counts],
            x_labels=labels,
            markers=markers,
        )
        chart.show(columns, height=8 if tall else 5)

    # -- over time -----------------------------------------------------------------------

    def _timeline(self, timeline: Timeline | None, *, tall: bool) -> None:
        chart = self.query_one("#timeline", ColumnChart)
        if timeline is None:
            self._heading("#timeline-heading", "Deliveries over time")
            chart.show(None)
            return
        axis = timeline.axis
        self._heading(
            "#timeline-heading",
            "Deliveries over time",
            f"one column per {_width_label(axis.width)}",
            "stacked by event type",
        )
        tones = series_tones([name for name, _ in timeline.series])
        series = [
            Series(cell(name, 40), tone, number(sum(counts)))
            for (name, counts), tone in zip(timeline.series, tones, strict=True)
        ]
        values = [list(map(float, column)) for column in zip(*(c for _, c in timeline.series), strict=True)]
        chart.show(
            Columns(series, values, _time_labels(axis.start, axis.width, axis.buckets)), height=12 if tall else 6
        )

    def _lag(self, lag: Lag | None, *, tall: bool) -> None:
        chart = self.query_one("#lag", ColumnChart)
        if lag is None or lag.overall_p50 is None:
            self._heading("#lag-heading", "Delivery lag", "no created_at to measure it by")
            chart.show(None)
            return
        sampled = f"1 delivery in {number(lag.step)} read" if lag.step > 1 else ""
        maximum = f"max {format_duration(lag.maximum)}" if lag.maximum is not None else ""
        self._heading("#lag-heading", "Delivery lag", "received_at − created_at per column", maximum, sampled)
        values = [
            [p50 or 0.0, max(0.0, (p95 or 0.0) - (p50 or 0.0))] for p50, p95 in zip(lag.p50, lag.p95, strict=True)
        ]
        series = [
            Series("p50", "primary", format_duration(lag.overall_p50)),
            Series("p95", "accent", format_duration(lag.overall_p95 or 0.0)),
        ]
        axis = lag.axis
        columns = Columns(series, values, _time_labels(axis.start, axis.width, axis.buckets), y_format=format_duration)
        chart.show(columns, height=8 if tall else 5)


def series_tones(names: Sequence[str]) -> list[str]:
    """A distinct theme tone per event type: a view, a close, rejected and "other" always the same one."""
    taken = {_EVENT_TONES[name] for name in names if name in _EVENT_TONES}
    spare = [tone for tone in _SPARE_TONES if tone not in taken]
    tones = []
    for name in names:
        if name in _EVENT_TONES:
            tones.append(_EVENT_TONES[name])
        else:
            tones.append(spare.pop(0) if spare else "muted")
    return tones


def _stage_note(n: int, rate: float | None, of: str) -> str:
    return f"{number(n)} · {rate:.0%} {of}" if rate is not None else number(n)


def _share(share: float) -> str:
    """A slice of the readers: ``2.4%``, ``12%``."""
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def _width_label(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else count(n, unit)
    return "second" if seconds == 1 else count(int(seconds), "second")


def _time_labels(start: float, width: float, buckets: int) -> list[tuple[int, str]]:
    """Labels at round times, about six along the axis: days for a long import, times for a live run.

    Columns of an hour or more, over more than two days: the date where each
    local day starts. Otherwise the time at each multiple of a round step.
    """
    if width >= 3600 and width * buckets > 2 * 86400:
        labels, previous = [], ""
        for i in range(buckets):
            day = time.strftime("%m-%d", time.localtime(start + i * width))
            if day != previous and (i > 0 or start % 86400 == 0):
                labels.append((i, day))
            previous = day
        return labels
    step = next((s for s in LABEL_STEPS if s >= width * buckets / 6 and s % width == 0), width)
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    offset = time.localtime(start).tm_gmtoff
    return [
        (i, time.strftime(fmt, time.localtime(start + i * width)))
        for i in range(buckets)
        if (start + i * width + offset) % step == 0
    ]


def _edge_label(seconds: float) -> str:
    """A histogram edge: 0, 30s, 5m, 2h, 1d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s" if seconds else "0"
