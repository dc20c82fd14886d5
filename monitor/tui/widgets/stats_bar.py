"""The header: where to point Conscent, what is being recorded, live counters."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from monitor.queries import Stats


class StatsBar(Horizontal):
    """Attributes down: call :meth:`set_origin` once and :meth:`set_stats` often."""

    COMPONENT_CLASSES = {"stats-bar--down"}

    _origin: Text | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="stats-text"):
            yield Static(id="origin")
            yield Static(id="counters")
        with Vertical(id="stats-spark"):
            yield Static("events / min (30 min)", id="spark-label")
            yield Sparkline([0] * 30, id="spark")

    def set_origin(
        self, *, url: str | None, db_path: str, session: str, healthy: bool = True, forward: Text | None = None
    ) -> None:
        text = Text()
        if url:
            if healthy:
                text.append("● ", style="bold green")
            else:  # the theme's error colour; the screen says why right below
                text.append("✗ NOT RECORDING ", style=self.get_component_rich_style("stats-bar--down"))
            text.append("Webhook URL ", style="dim")
            text.append(url, style="bold")
        else:
            text.append("◼ Offline review ", style="bold yellow")
        text.append("   db ", style="dim")
        text.append(db_path)
        text.append("   ", style="dim")
        text.append(session)
        if forward is not None:
            text.append("   ")
            text.append_text(forward)
        origin = self.query_one("#origin", Static)
        if text != self._origin:  # unchanged on almost every tick: no repaint
            self._origin = text
            origin.update(text)

    def set_stats(self, stats: Stats) -> None:
        text = Text()
        rate = "–" if stats.close_rate is None else f"{stats.close_rate:.0%}"
        for label, value, style in (
            ("views", stats.views, "green"),
            ("closes", stats.closes, "magenta"),
            ("other", stats.other, "cyan"),
            ("rejected", stats.rejected, "red" if stats.rejected else ""),
            ("readers", stats.readers, ""),
            ("close rate", rate, ""),
        ):
            text.append(f"{label} ", style="dim")
            text.append(f"{value}", style=f"bold {style}".strip())
            text.append("   ")
        self.query_one("#counters", Static).update(text, layout=False)  # one line, whatever it says
        self.query_one("#spark", Sparkline).data = list(stats.per_minute)
