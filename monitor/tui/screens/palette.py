"""The theme's colours for the screens' Rich text: component classes, styled in ``styles/screens.tcss``.

Screens build ``rich.text.Text`` for tables and panels; a Rich colour name
there would ignore the theme picked from the command palette. So they ask
:meth:`ThemedScreen.tone` for a component class's style instead, and draw
again when the theme changes (:meth:`ThemedScreen.redraw`).

Must not import the app; holds no data.
"""

from __future__ import annotations

from rich.style import Style
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable

#: Every tone a screen may use, named for what it means (styles/screens.tcss gives the colours).
TONES = ("view", "close", "open", "good", "bad", "warning", "name", "muted", "pii", "strong")


class ThemedScreen(Screen[None]):
    """A screen whose Rich text takes the theme's colours."""

    COMPONENT_CLASSES = {f"palette--{tone}" for tone in TONES}

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.redraw())

    def tone(self, *tones: str) -> Style:
        """The Rich style of these tones (combined), from the current theme."""
        style = Style()
        for tone in tones:
            if tone:
                name = f"palette--{tone}"
                part = self.get_component_rich_style(name, partial=True)
                if part.color is not None:  # "auto" colours ($text-muted) are resolved only in the full style
                    part += Style(color=self.get_component_rich_style(name).color)
                style += part
        return style

    def redraw(self) -> None:
        """Draw the screen's text again (the theme changed); screens that build Text override it."""


class MaskedTableScreen(ThemedScreen):
    """A themed screen around one ``DataTable`` whose text follows the app's ``masked`` switch.

    Subclasses name the table (``TABLE``, a selector) and its ``COLUMNS``, and
    draw in :meth:`fill`; they are drawn again when masking or the theme changes.
    """

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    TABLE = "DataTable"
    COLUMNS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.masked = False

    def on_mount(self) -> None:
        table = self.query_one(self.TABLE, DataTable)
        for title in self.COLUMNS:
            table.add_column(title)
        super().on_mount()
        self.watch(self.app, "masked", self._masking, init=True)
        table.focus()

    def _masking(self, masked: bool) -> None:
        self.masked = masked
        self.fill()

    def redraw(self) -> None:
        self.fill()

    def fill(self) -> None:
        """Fill the screen for the current ``masked`` and theme."""
        raise NotImplementedError
