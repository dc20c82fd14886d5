"""The header: where to point Conscent, what is being recorded, live counters.

Every colour comes from the theme through this widget's component classes
(styled in styles/app.tcss), so a theme picked from the palette recolours
the header with the rest; on a new theme both lines are written again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.theme import Theme
from textual.widgets import Sparkline, Static

from monitor.queries import Stats
from monitor.wording import number

#: Below this width (cells) the header drops the sparkline and gives its room to the words.
SPARK_MIN_WIDTH = 110
#: The sparkline's column, its label included.
SPARK_WIDTH = 34


@dataclass(frozen=True, slots=True)
class _Origin:
    url: str | None
    db_path: str
    session: str
    healthy: bool
    forward: Text | None


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` cells, cut in the middle with ``…``, the file name kept whole if it fits.

    The home directory is written ``~``.
    """
    home = str(Path.home())
    if home not in ("/", "") and (path == home or path.startswith(home + "/")):
        path = "~" + path[len(home) :]
    if cell_len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    tail = f"…{sep}{name}"
    if cell_len(tail) <= width:
        room = width - cell_len(tail)
        return head[:room] + tail
    if width <= 1:
        return "…"[:width]
    left = (width - 1) // 2  # the name alone is too long: its start and its end (the extension)
    return name[:left] + "…" + name[len(name) - (width - 1 - left) :]


def fit_origin(origin: _Origin, width: int, styles: dict[str, Style]) -> tuple[Text, Text | None]:
    """The origin line in ``width`` cells, and the forward target's own line when it cannot stay beside it.

    What goes first: the URL (or "Offline review"), the forward target, the
    database's file name, then the session. The path is shortened in the
    middle first; then the session goes; then the forward target takes a line
    of its own; last, "Webhook URL" becomes "URL".
    """
    label = styles["label"]
    forward = origin.forward
    name = origin.db_path.rpartition("/")[2]
    variants = [(sep, "Webhook URL ", session, True) for sep, session in (("   ", True), ("  ", True), ("  ", False))]
    if forward is not None:
        variants += [
            (sep, "Webhook URL ", session, False) for sep, session in (("   ", True), ("  ", True), ("  ", False))
        ]
    variants.append(("  ", "URL ", False, False))
    for sep, url_label, session, inline in variants:
        lead = Text(no_wrap=True, overflow="ellipsis", end="")
        if origin.url:
            if origin.healthy:
                lead.append("● ", style=styles["live"])
            else:  # the screen says why right below
                lead.append("✗ NOT RECORDING ", style=styles["down"])
            lead.append(url_label, style=label)
            lead.append(origin.url, style=styles["value"])
        else:
            lead.append("◼ Offline review", style=styles["offline"])
        tail = Text(f"{sep}{origin.session}", style=label) if session else Text()
        if inline and forward is not None:
            tail += Text(sep) + forward
        db_label = Text(f"{sep}db ", style=label)
        room = width - lead.cell_len - db_label.cell_len - tail.cell_len
        if room >= min(cell_len(name) + 2, 12) or url_label == "URL ":
            break
    line = lead + db_label + Text(shorten_path(origin.db_path, max(room, 1))) + tail
    line.no_wrap, line.overflow, line.end = True, "ellipsis", ""
    if line.cell_len > width:
        line.truncate(width, overflow="ellipsis")
    if forward is None or inline:
        return line, None
    below = forward.copy()
    below.truncate(width, overflow="ellipsis")
    return line, below


#: The counters, in the order shown: label, short label, tone.
_COUNTERS = (
    ("views", "views", "view"),
    ("closes", "closes", "close"),
    ("other", "other", "other"),
    ("rejected", "rej.", "rejected"),
    ("readers", "readers", None),
    ("close rate", "rate", None),
)
#: Which counters go first when the line is too short (views and closes stay).
_DROP_ORDER = ("other", "readers", "close rate", "rejected")


def fit_counters(stats: Stats, width: int, styles: dict[str, Style]) -> Text:
    """The counters in ``width`` cells: whole words only, wider gaps and full labels when there is room."""
    rate = "–" if stats.close_rate is None else f"{stats.close_rate:.0%}"
    values = {
        "views": number(stats.views),
        "closes": number(stats.closes),
        "other": number(stats.other),
        "rejected": number(stats.rejected),
        "readers": number(stats.readers),
        "close rate": rate,
    }
    # A quiet rejected count goes before the others; a non-zero one is news and stays longest.
    order = ("rejected", *_DROP_ORDER[:-1]) if not stats.rejected else _DROP_ORDER
    attempts: list[tuple[str, bool, tuple[str, ...]]] = [("   ", False, ()), ("  ", False, ()), ("  ", True, ())]
    attempts += [("  ", True, order[: n + 1]) for n in range(len(order))]
    for sep, short, dropped in attempts:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for name, short_name, tone in _COUNTERS:
            if name in dropped:
                continue
            if text:
                text.append(sep)
            text.append(f"{short_name if short else name} ", style=styles["label"])
            toned = tone if tone != "rejected" or stats.rejected else None
            text.append(values[name], style=styles["value"] + styles[toned] if toned else styles["value"])
        if text.cell_len <= width:
            break
    return text


class StatsBar(Horizontal):
    """Attributes down: call :meth:`set_origin` once and :meth:`set_stats` often; it fits its width."""

    COMPONENT_CLASSES = {
        "stats-bar--label",
        "stats-bar--value",
        "stats-bar--live",
        "stats-bar--down",
        "stats-bar--offline",
        "stats-bar--view",
        "stats-bar--close",
        "stats-bar--other",
        "stats-bar--rejected",
    }

    _origin: _Origin | None = None
    _origin_text: tuple[Text, Text | None] | None = None
    _stats: Stats | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="stats-text"):
            yield Static(id="origin")  # one line, two with a forward target that needs its own
            yield Static(id="counters")
        with Vertical(id="stats-spark"):
            yield Static("events / min (30 min)", id="spark-label")
            yield Sparkline([0] * 30, id="spark")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        # The lines hold Rich styles resolved from the old theme: resolve them again.
        self._redraw()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#stats-spark").display = event.size.width >= SPARK_MIN_WIDTH
        self._redraw()

    def _redraw(self) -> None:
        self._origin_text = None
        if self._origin is not None:
            self._show_origin(self._origin)
        if self._stats is not None:
            self._show_stats(self._stats)

    def _text_width(self) -> int:
        """The cells the two lines of words have: the bar's, less its padding and the sparkline's column."""
        width = self.size.width - 2
        if self.size.width >= SPARK_MIN_WIDTH:
            width -= SPARK_WIDTH
        return max(width, 10)

    def _styles(self) -> dict[str, Style]:
        return {
            name: self.get_component_rich_style(f"stats-bar--{name}")
            for name in ("label", "value", "live", "down", "offline", "view", "close", "other", "rejected")
        }

    def set_origin(
        self, *, url: str | None, db_path: str, session: str, healthy: bool = True, forward: Text | None = None
    ) -> None:
        self._origin = _Origin(url, db_path, session, healthy, forward)
        self._show_origin(self._origin)

    def _show_origin(self, origin: _Origin) -> None:
        lines = fit_origin(origin, self._text_width(), self._styles())
        if lines == self._origin_text:  # unchanged on almost every tick: no repaint
            return
        self._origin_text = lines
        line, forward = lines
        self.query_one("#origin", Static).update(line if forward is None else Text("\n").join([line, forward]))

    def set_stats(self, stats: Stats) -> None:
        self._stats = stats
        self._show_stats(stats)
        self.query_one("#spark", Sparkline).data = list(stats.per_minute)

    def _show_stats(self, stats: Stats) -> None:
        text = fit_counters(stats, self._text_width(), self._styles())
        self.query_one("#counters", Static).update(text, layout=False)  # one line, whatever it says
