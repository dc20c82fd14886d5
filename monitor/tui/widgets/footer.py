"""The footer of every screen: the keys that work here, fitted to the terminal's width.

Textual's :class:`~textual.widgets.Footer` lists the keys in the focus
chain's order (the focused widget's, the screen's, then the app's) and lets
the row run off the right edge: at 80 columns ``q Quit`` and ``? Help`` were
the ones cut. This footer keeps the essential keys (the app's quit, help and
mask, and Esc: back, cancel, clear) and drops the others from the end of the
row until the rest fit, tighter spacing and the palette key going first.
``?`` lists every key anyway.

While a text field has the focus, keys that type a character are not
offered: pressed there, they type. Must not import the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input, TextArea
from textual.widgets._footer import FooterKey

#: Actions shown at every width (the app's own keys), wherever they are bound.
ESSENTIAL_ACTIONS = frozenset({"quit", "help", "toggle_mask"})
#: The app's action that hides personal data: offered only on screens that show some.
MASK_ACTION = "toggle_mask"


@dataclass(frozen=True, slots=True)
class FooterEntry:
    """One key the footer may show."""

    key: str
    display: str
    description: str
    action: str
    enabled: bool
    tooltip: str
    essential: bool

    def width(self, *, compact: bool) -> int:
        """Cells this key takes in the footer (FooterKey's padding, and its margin when compact)."""
        words = cell_len(self.display) + cell_len(self.description)
        return words + (2 if compact else 3)


def _bare(action: str) -> str:
    return action.rpartition(".")[2]


def fit(entries: list[FooterEntry], width: int, palette: int) -> tuple[list[FooterEntry], bool, bool]:
    """Which entries to show in ``width`` cells: (entries, compact, palette shown).

    ``palette``: the cells the command palette's key takes (0: none). Tries,
    in order: everything; compact spacing; no palette key; then drops the
    last non-essential entries one at a time. Essential entries always stay.
    """

    def needed(shown: list[FooterEntry], compact: bool, with_palette: bool) -> int:
        return sum(entry.width(compact=compact) for entry in shown) + (palette if with_palette else 0)

    for compact, with_palette in ((False, True), (True, True), (True, False)):
        if needed(entries, compact, with_palette and palette > 0) <= width:
            return entries, compact, with_palette and palette > 0
    shown = list(entries)
    optional = [index for index, entry in enumerate(entries) if not entry.essential]
    for index in reversed(optional):
        shown.remove(entries[index])
        if needed(shown, True, False) <= width:
            break
    return shown, True, False


class KeyFooter(Footer):
    """A footer that always shows the keys a user needs most (see the module's docstring)."""

    def __init__(self, *, personal_data: bool = True, id: str | None = None, classes: str | None = None) -> None:
        """``personal_data``: the screen shows names, phones or places, so ``m`` (mask) applies."""
        super().__init__(id=id, classes=classes)
        self.personal_data = personal_data
        self._composed_width = -1

    def entries(self) -> list[FooterEntry]:
        """The keys this screen offers now, in Textual's order, one per action."""
        focused = self.screen.focused
        typing = isinstance(focused, (Input, TextArea))
        seen: set[str] = set()
        found: list[FooterEntry] = []
        for _namespace, binding, enabled, tooltip in self.screen.active_bindings.values():
            action = _bare(binding.action)
            if not binding.show or binding.action in seen or binding.key == self.app.COMMAND_PALETTE_BINDING:
                continue
            if action == MASK_ACTION and not self.personal_data:
                continue
            if typing and _types_a_character(binding):
                continue
            seen.add(binding.action)
            found.append(
                FooterEntry(
                    key=binding.key,
                    display=self.app.get_key_display(binding),
                    description=binding.description,
                    action=binding.action,
                    enabled=enabled,
                    tooltip=tooltip or "",
                    essential=action in ESSENTIAL_ACTIONS or binding.key == "escape",
                )
            )
        return found

    def _palette_width(self) -> int:
        if not (self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE):
            return 0
        active = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        if active is None:
            return 0
        # key and description, their padding, the left border and the right padding
        return cell_len(self.app.get_key_display(active.binding)) + cell_len(active.binding.description) + 5

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        width = self.size.width or self.app.size.width
        self._composed_width = width
        shown, compact, with_palette = fit(self.entries(), width, self._palette_width())
        self.set_reactive(Footer.compact, compact)
        self.set_class(compact, "-compact")
        for entry in shown:
            yield FooterKey(
                entry.key,
                entry.display,
                entry.description,
                entry.action,
                disabled=not entry.enabled,
                tooltip=entry.tooltip,
            ).data_bind(compact=Footer.compact)
        if with_palette:
            active = self.screen.active_bindings[self.app.COMMAND_PALETTE_BINDING]
            yield FooterKey(
                active.binding.key,
                self.app.get_key_display(active.binding),
                active.binding.description,
                active.binding.action,
                classes="-command-palette",
                disabled=not active.enabled,
                tooltip=active.binding.tooltip or active.binding.description,
            )

    def on_resize(self, event: events.Resize) -> None:
        if self._bindings_ready and event.size.width != self._composed_width:
            self.call_after_refresh(self.recompose)


def _types_a_character(binding: Binding) -> bool:
    """A key that a text field takes as text (``q``, ``?``, ``/``), unless the binding runs first."""
    if binding.priority:
        return False
    return any(len(key) == 1 or key in _PRINTABLE_NAMES for key in binding.key.split(","))


#: Textual's names for printable keys that are not one character long.
_PRINTABLE_NAMES = frozenset(
    {"question_mark", "slash", "space", "exclamation_mark", "full_stop", "comma", "colon", "semicolon", "plus", "minus"}
)
