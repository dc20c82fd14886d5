"""The header: where to point Conscent, what is being recorded, live counters.

Every colour comes from the theme through this widget's component classes
(styled in styles/app.tcss), so a theme picked from the palette recolours
the header with the rest; on a new theme both lines are written again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.theme import Theme
from textual.widgets import Sparkline, Static

from monitor.queries import Stats


@dataclass(frozen=True, slots=True)
class _Origin:
    url: str | None
    db_path: str
    session: str
    healthy: bool
    forward: Text | None


class StatsBar(Horizontal):
    """Attributes down: call :meth:`set_origin` once and :meth:`set_stats` often."""

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
    _origin_text: Text | None = None
    _stats: Stats | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="stats-text"):
            yield Static(id="origin")
            yield Static(id="counters")
        with Vertical(id="stats-spark"):
            yield Static("events / min (30 min)", id="spark-label")
            yield Sparkline([0] * 30, id="spark")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        # The lines hold Rich styles resolved from the old theme: resolve them again.
        if self._origin is not None:
            self._show_origin(self._origin)
        if self._stats is not None:
            self._show_stats(self._stats)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"stats-bar--{name}")

    def set_origin(
        self, *, url: str | None, db_path: str, session: str, healthy: bool = True, forward: Text | None = None
    ) -> None:
        self._origin = _Origin(url, db_path, session, healthy, forward)
        self._show_origin(self._origin)

    def _show_origin(self, origin: _Origin) -> None:
        label = self._style("label")
        text = Text()
        if origin.url:
            if origin.healthy:
                text.append("● ", style=self._style("live"))
            else:  # the screen says why right below
                text.append("✗ NOT RECORDING ", style=self._style("down"))
            text.append("Webhook URL ", style=label)
            text.append(origin.url, style=self._style("value"))
        else:
            text.append("◼ Offline review ", style=self._style("offline"))
        text.append("   db ", style=label)
        text.append(origin.db_path)
        text.append("   ", style=label)
        text.append(origin.session)
        if origin.forward is not None:
            text.append("   ")
            text.append_text(origin.forward)
        if text != self._origin_text:  # unchanged on almost every tick: no repaint
            self._origin_text = text
            self.query_one("#origin", Static).update(text)

    def set_stats(self, stats: Stats) -> None:
        self._stats = stats
        self._show_stats(stats)
        self.query_one("#spark", Sparkline).data = list(stats.per_minute)

    def _show_stats(self, stats: Stats) -> None:
        label, value = self._style("label"), self._style("value")
        rate = "–" if stats.close_rate is None else f"{stats.close_rate:.0%}"
        text = Text()
        for name, count, tone in (
            ("views", stats.views, "view"),
            ("closes", stats.closes, "close"),
            ("other", stats.other, "other"),
            ("rejected", stats.rejected, "rejected" if stats.rejected else None),
            ("readers", stats.readers, None),
            ("close rate", rate, None),
        ):
            text.append(f"{name} ", style=label)
            text.append(f"{count}", style=value + self._style(tone) if tone else value)
            text.append("   ")
        self.query_one("#counters", Static).update(text, layout=False)  # one line, whatever it says
