"""Charts drawn with Unicode blocks: horizontal bars, and columns (stacked or not) over an axis.

Drawn here rather than with textual-plotext (which works with Textual 8.2):
at 80 columns plotext's legend sits on top of the bars, its count axes step
in fractions (1.2, 2.3 deliveries), and its colours are a fixed sequence
fed through ANSI text on every frame. These charts draw whole-number axes,
put the legend under the plot, fit labels to the width, and take every
colour from the theme through component classes (``styles/insights.tcss``),
so a theme picked from the palette recolours them.

Each chart is a widget that draws its data for its current width (and
height: ``height`` rows of plot); labels are plain, inert text, never
markup. Must not import the app, nor read the database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from monitor.textsafe import cell
from monitor.tui.widgets.columns import fit
from monitor.wording import number

#: The colours a chart may use: the theme's, named for the variable they take (styles/insights.tcss).
TONES = (
    "primary", "secondary", "accent", "success", "warning", "error", "deep-primary", "deep-accent", "foreground",
    "muted",
)  # fmt: skip
#: Eighths of a cell, left to right and bottom to top.
_HORIZONTAL = " ▏▎▍▌▋▊▉█"
_VERTICAL = " ▁▂▃▄▅▆▇█"
#: Bars no longer than this (cells), however wide the screen.
_MAX_BAR = 80


def bar(fraction: float, width: int) -> str:
    """A horizontal bar ``fraction`` (0..1) of ``width`` cells, to the eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_HORIZONTAL[rest] if rest else "")


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value - 1e-9:
            return step * power
    return 10.0 * power


class Chart(Widget):
    """A widget that draws its chart as plain text lines, coloured by the theme.

    The lines are drawn once per width and data (layout asks for the height,
    then the widget renders: one drawing serves both).
    """

    COMPONENT_CLASSES = {f"chart--{tone}" for tone in TONES}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[int, list[Text]] | None = None

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.changed())

    def changed(self) -> None:
        """The data or the theme changed: draw again."""
        self._drawn = None
        self.refresh(layout=True)

    def lines(self, width: int) -> list[Text]:
        if self._drawn is None or self._drawn[0] != width:
            self._drawn = (width, self.draw(width))
        return self._drawn[1]

    def tone(self, name: str) -> Style:
        """The theme's style for one of :data:`TONES`."""
        component = f"chart--{name}"
        style = self.get_component_rich_style(component, partial=True)
        if style.color is not None:  # "auto" colours resolve only in the full style
            style += Style(color=self.get_component_rich_style(component).color)
        return style

    def draw(self, width: int) -> list[Text]:
        raise NotImplementedError

    def _width(self) -> int:
        return max(20, self.content_region.width or self.size.width or self.app.size.width)

    def render(self) -> Text:
        return Text("\n", no_wrap=True, overflow="crop", end="").join(self.lines(self._width()))

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self.lines(max(20, width)))


@dataclass(frozen=True)
class Bar:
    label: str  # inert text (the caller passed it through textsafe.cell)
    value: float
    note: str = ""  # after the bar: "1,234 · 52%"
    tone: str = "primary"


class BarChart(Chart):
    """Horizontal bars, one per row: label │ bar  note; an axis from 0 to the largest value underneath."""

    def __init__(self, bars: Sequence[Bar] = (), *, label_width: int = 28, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bars = list(bars)
        self.label_width = label_width

    def show(self, bars: Sequence[Bar]) -> None:
        self.bars = list(bars)
        self.changed()

    def draw(self, width: int) -> list[Text]:
        if not self.bars:
            return [Text("nothing yet", style=self.tone("muted"))]
        labels = [cell(b.label, self.label_width) for b in self.bars]
        label_width = min(max(map(cell_len, labels)), self.label_width, width // 3)
        note_width = max(cell_len(b.note) for b in self.bars)
        room = max(4, min(_MAX_BAR, width - label_width - note_width - 4))
        top = max(b.value for b in self.bars) or 1.0
        axis, label_style = self.tone("muted"), self.tone("muted")
        lines = []
        for b, label in zip(self.bars, labels, strict=True):
            line = Text(no_wrap=True, overflow="crop")
            line.append(fit(label, label_width), style=label_style)
            line.append(" │", style=axis)
            drawn = bar(b.value / top, room)
            line.append(drawn, style=self.tone(b.tone))
            line.append(" " * (room - cell_len(drawn) + 1))
            line.append(b.note)
            lines.append(line)
        scale = Text(no_wrap=True, overflow="crop")
        scale.append(" " * label_width + " └" + "─" * room, style=axis)
        ticks = Text(no_wrap=True, overflow="crop")
        ends = f"{_count_label(top):>{room}}"
        ticks.append(" " * (label_width + 2) + "0" + ends[1:], style=label_style)
        return [*lines, scale, ticks]


@dataclass(frozen=True)
class Series:
    name: str  # inert text
    tone: str
    legend: str = ""  # after the name: a total, a median


@dataclass(frozen=True)
class Marker:
    """A ▲ under the x axis at ``x`` (in columns, fractional), labelled."""

    x: float
    label: str
    tone: str


@dataclass
class Columns:
    """What a :class:`ColumnChart` draws: per column, one value per series, stacked bottom up."""

    series: list[Series]
    values: list[list[float]]  # values[column][series]
    x_labels: list[tuple[int, str]] = field(default_factory=list)  # (column, text) under the axis
    y_format: Callable[[float], str] = lambda v: _count_label(v)
    markers: list[Marker] = field(default_factory=list)
    title: str = ""


class ColumnChart(Chart):
    """Vertical columns over a y axis (0 to a round top), x labels, markers and a legend underneath."""

    def __init__(self, data: Columns | None = None, *, height: int = 8, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data = data
        self.plot_height = height

    def show(self, data: Columns | None, *, height: int | None = None) -> None:
        self.data = data
        if height is not None:
            self.plot_height = height
        self.changed()

    def draw(self, width: int) -> list[Text]:
        data = self.data
        if data is None or not data.values:
            return [Text("nothing yet", style=self.tone("muted"))]
        top = nice_ceiling(max((sum(column) for column in data.values), default=0.0))
        y_labels = [data.y_format(top), data.y_format(top / 2), data.y_format(0.0)]
        gutter = max(map(cell_len, y_labels)) + 1
        columns = len(data.values)
        per = max(1, min(4, (width - gutter - 2) // columns))  # cells per column
        lines = self._plot(data, top, y_labels, gutter, per)
        axis = self.tone("muted")
        lines.append(Text(" " * gutter + "└" + "─" * (columns * per), style=axis, no_wrap=True, overflow="crop"))
        lines.append(self._x_labels(data, gutter, per, columns, width))
        if data.markers:
            lines.append(self._markers(data, gutter, per, columns))
        lines.extend(self._legend(data, width))
        return lines

    def _plot(self, data: Columns, top: float, y_labels: list[str], gutter: int, per: int) -> list[Text]:
        rows, axis, label_style = self.plot_height, self.tone("muted"), self.tone("muted")
        unit = top / rows
        tones = [self.tone(s.tone) for s in data.series]
        lines = []
        for row in range(rows - 1, -1, -1):
            line = Text(no_wrap=True, overflow="crop")
            label = {rows - 1: y_labels[0], (rows - 1) // 2: y_labels[1] if rows > 2 else ""}.get(row, "")
            line.append(f"{label:>{gutter - 1}} ", style=label_style)
            line.append("┤" if label else "│", style=axis)
            for column in data.values:
                char, index = _cell(column, row * unit, unit)
                line.append(char * per, style=tones[index] if index is not None else Style())
            lines.append(line)
        return lines

    def _x_labels(self, data: Columns, gutter: int, per: int, columns: int, width: int) -> Text:
        chars = [" "] * (gutter + 1 + columns * per + 12)
        taken = -1
        for column, label in data.x_labels:
            at = gutter + 1 + column * per
            if at <= taken + 1 or at + cell_len(label) > width:
                continue
            for offset, char in enumerate(label):
                chars[at + offset] = char
            taken = at + len(label)
        return Text("".join(chars).rstrip(), style=self.tone("muted"), no_wrap=True, overflow="crop")

    def _markers(self, data: Columns, gutter: int, per: int, columns: int) -> Text:
        line = Text(no_wrap=True, overflow="crop")
        taken = 0
        for marker in sorted(data.markers, key=lambda m: m.x):
            at = gutter + 1 + min(columns * per - 1, max(0, round(marker.x * per)))
            text = f"▲ {marker.label}"
            if at < taken:
                at = taken
            line.append(" " * (at - taken))
            line.append(text, style=self.tone(marker.tone))
            taken = at + cell_len(text) + 1
            line.append(" ")
        return line

    def _legend(self, data: Columns, width: int) -> list[Text]:
        lines: list[Text] = []
        line = Text(no_wrap=True, overflow="crop")
        if data.title:
            line.append(data.title + "  ", style=Style(bold=True))
        for s in data.series:
            entry = Text()
            entry.append("█ ", style=self.tone(s.tone))
            entry.append(s.name)
            if s.legend:
                entry.append(f" {s.legend}", style=self.tone("muted"))
            if line.cell_len and line.cell_len + entry.cell_len + 2 > width:
                lines.append(line)
                line = Text(no_wrap=True, overflow="crop")
            elif line.cell_len:
                line.append("  ")
            line.append_text(entry)
        lines.append(line)
        return lines


def _cell(column: Sequence[float], bottom: float, unit: float) -> tuple[str, int | None]:
    """The block for the cell covering ``bottom .. bottom+unit`` of a stacked column, and whose tone it takes."""
    total = sum(column)
    if total <= bottom or unit <= 0:
        return " ", None
    filled = min(1.0, (total - bottom) / unit)
    eighths = max(1, round(filled * 8))
    middle = bottom + min(filled, 1.0) * unit / 2
    running = 0.0
    index = len(column) - 1
    for i, value in enumerate(column):
        running += value
        if running > middle:
            index = i
            break
    return _VERTICAL[eighths], index


def _count_label(value: float) -> str:
    """An axis label for a count: 0.5, 950, 1.2k, 3.4M."""
    if value < 10 and not float(value).is_integer():
        return f"{value:g}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return number(round(value))
