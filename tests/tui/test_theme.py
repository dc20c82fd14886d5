"""Every colour in the widgets and the app stylesheet comes from the theme.

Two checks: the sources name no colour (no Rich colour name in a style
string, no hex or named colour in styles/app.tcss), and the widgets drawn in
textual-dark and textual-light use that theme's colours, every word readable
on its background.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from rich.color import ANSI_COLOR_NAMES
from rich.segment import Segment
from textual._color_constants import COLOR_NAME_TO_RGB
from textual.app import App, ComposeResult
from textual.color import Color
from textual.strip import Strip

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.queries import Row, Stats
from monitor.tui.widgets.columns import ALL_COLUMNS
from monitor.tui.widgets.event_table import EventTable
from monitor.tui.widgets.stats_bar import StatsBar

ROOT = Path(__file__).resolve().parents[2]
STYLES = ROOT / "styles" / "app.tcss"
WIDGETS = sorted((ROOT / "monitor" / "tui" / "widgets").glob("*.py"))
THEMES = ("textual-dark", "textual-light")
#: Below WCAG's 3:1 for bold text: textual-light's own $text-accent on its $panel
#: is 2.8:1. What it catches: white words on a light header (1.3:1), or the old
#: hard-coded close colour on textual-light (2.4:1).
MIN_CONTRAST = 2.5

NOW = time.time()
ROWS = [
    Row("rejected", 9, NOW, status=401, reason="bad signature"),
    Row("event", 8, NOW - 1, NOW - 3, event="order.paid", name="Priya", signature="invalid", forward="502"),
    Row("event", 7, NOW - 2, NOW - 4, event=GATEWAY_CLOSE, name="Priya", signature="valid", forward="200"),
    Row("event", 6, NOW - 3, NOW - 5, event=GATEWAY_VIEW, name="Aarav", signature="valid", duplicate_of=5),
    Row("event", 5, NOW - 4, NOW - 6, event=GATEWAY_VIEW, username="aarav", signature="missing"),
]
STATS = Stats(views=2, closes=1, other=1, rejected=1, readers=2)


class WidgetsApp(App[None]):
    CSS_PATH = str(STYLES)

    def compose(self) -> ComposeResult:
        yield StatsBar()
        yield EventTable()

    def on_mount(self) -> None:
        bar = self.query_one(StatsBar)
        bar.set_origin(url="http://127.0.0.1:8000/", db_path="monitor.db", session="session #1 (live)")
        bar.set_stats(STATS)
        self.query_one(EventTable).show(lambda offset, limit: ROWS[offset : offset + limit], len(ROWS), ALL_COLUMNS)


# -- the sources -----------------------------------------------------------------

_STYLE_STRING = re.compile(r"""style\s*=\s*f?["']([^"']*)["']""")
_COLOUR_WORDS = {name for name in ANSI_COLOR_NAMES if name != "default"} | set(COLOR_NAME_TO_RGB)


@pytest.mark.parametrize("path", WIDGETS, ids=lambda path: path.name)
def test_widget_sources_name_no_colour(path: Path) -> None:
    source = path.read_text()
    for style in _STYLE_STRING.findall(source):
        assert not set(re.split(r"[\s+]+", style)) & _COLOUR_WORDS, f"{path.name}: style={style!r}"
    assert not re.search(r"#[0-9a-fA-F]{6}\b|\brgb\(|\bColor\(", source)


def test_stylesheet_names_no_colour() -> None:
    coloured = ("color", "background", "border", "outline", "tint", "scrollbar")
    declarations = re.findall(r"([a-z-]+)\s*:\s*([^;{}]+);", STYLES.read_text())
    assert len(declarations) > 20  # the parse finds them
    for prop, value in declarations:
        if any(word in prop for word in coloured):
            words = set(re.findall(r"[$#]?[a-zA-Z0-9-]+", value))
            assert not {word for word in words if word.startswith("#")} | (words & set(COLOR_NAME_TO_RGB)), (
                f"app.tcss: {prop}: {value}"
            )


# -- drawn in each theme ---------------------------------------------------------


def _luminance(colour: Color) -> float:
    """WCAG relative luminance."""
    channels = [value / 255 for value in colour.rgb]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(foreground: Color, background: Color) -> float:
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _worded(strips: list[Strip]) -> list[Segment]:
    """Segments with words in them: not blanks, nor the sparkline's bars (U+2580 to U+259F)."""
    return [
        seg
        for strip in strips
        for seg in strip
        if seg.style is not None and any(not ch.isspace() and not "\u2580" <= ch <= "\u259f" for ch in seg.text)
    ]


@pytest.mark.parametrize("theme", THEMES)
async def test_widgets_draw_in_the_theme_colours_and_stay_readable(theme: str) -> None:
    app = WidgetsApp()
    async with app.run_test(size=(160, 12)) as pilot:
        app.theme = theme
        await pilot.pause()
        await pilot.pause()
        colours = app.current_theme.to_color_system().generate()
        table = app.query_one(EventTable)
        close = table.get_component_rich_style("event-table--close").color
        assert close is not None and Color.from_rich_color(close) == Color.parse(colours["text-secondary"])
        counters = app.query_one("#counters").render_line(0)
        assert any(seg.style and seg.style.color == close for seg in counters if seg.text == "1")  # closes 1
        strips = app.screen._compositor.render_strips()
        for seg in _worded(strips[:8]):  # the header, the column titles and the rows
            assert seg.style is not None and seg.style.color is not None and seg.style.bgcolor is not None
            fg, bg = Color.from_rich_color(seg.style.color), Color.from_rich_color(seg.style.bgcolor)
            assert _contrast(fg, bg) >= MIN_CONTRAST, f"{theme}: {seg.text!r} {fg.hex} on {bg.hex}"


async def test_a_new_theme_recolours_the_drawn_widgets() -> None:
    app = WidgetsApp()
    async with app.run_test(size=(160, 12)) as pilot:
        await pilot.pause()
        app.theme = "textual-dark"
        await pilot.pause()
        before = app.screen._compositor.render_strips()
        app.theme = "textual-light"
        await pilot.pause()
        await pilot.pause()
        after = app.screen._compositor.render_strips()
        light = Color.parse(app.current_theme.to_color_system().generate()["text-secondary"]).rich_color
        for strips in (after[:2], after[3:8]):  # the stats bar, the rows: each shows a close in the new colour
            assert any(seg.style and seg.style.color == light for seg in _worded(strips))
        assert {seg.style for seg in _worded(before)}.isdisjoint({seg.style for seg in _worded(after)})
