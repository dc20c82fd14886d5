"""A ``DataTable`` whose keys mean what they mean on the main table: the readers and sessions lists use it.

On :class:`~monitor.tui.widgets.event_table.EventTable` Home (or ``g``) is
the first row, End (or ``G``) the last, PgUp/PgDn a page, Enter opens what
the row leads to and ``d`` shows the delivery's details. Textual's own
``DataTable`` binds Home and End to the first and last *column*, so End on
a long list moved the view sideways and the cursor nowhere near the last
row. This table binds them to rows, and says in the footer what Enter opens.
(The drill-down's journey is a virtual table of its own, ``JourneyTable``, with the same keys.)

Subclasses name what Enter opens (their own ``enter`` binding) and
whether ``d`` leads anywhere (``DETAILS``); the screen answers
``DataTable.RowSelected`` and :class:`KeyedTable.DetailsRequested`.
Holds no data of its own and reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist, RowKey


class KeyedTable(DataTable[Text]):
    """A row-cursor table with the main table's keys (see the module's docstring)."""

    #: Whether a row stands for a delivery (``d`` shows it); the sessions list has none.
    DETAILS: ClassVar[bool] = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", show=True),
        Binding("d", "details", "Details", show=True),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("j", "cursor_down", "Down", show=False),
    ]

    @dataclass
    class DetailsRequested(Message):
        """``d`` on a row: show the delivery it stands for."""

        table: KeyedTable
        row_key: RowKey

        @property
        def control(self) -> KeyedTable:
            return self.table

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)

    def on_idle(self) -> None:
        # DataTable measures new rows' widths when idle, but keeps lines it drew before that
        # (a table refilled with new columns as the terminal is resized drew every cell cut to
        # its title's width). Draw again once it has measured; Textual 8's private cache.
        if self._require_update_dimensions:
            self.call_later(self._draw_again)

    def _draw_again(self) -> None:
        self._clear_caches()
        self.refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "details" and not self.DETAILS:
            return False
        return super().check_action(action, parameters)

    def action_first(self) -> None:
        self._go(0)

    def action_last(self) -> None:
        self._go(self.row_count - 1)

    def _go(self, row: int) -> None:
        self._set_hover_cursor(False)
        if self.row_count:
            self.move_cursor(row=max(0, min(row, self.row_count - 1)))

    def action_details(self) -> None:
        if self.row_count:
            self.post_message(self.DetailsRequested(self, self.coordinate_to_cell_key(self.cursor_coordinate).row_key))

    def key_of(self, row: int | None = None) -> str | None:
        """The key of ``row`` (default: the cursor's), or None when there is no such row."""
        index = self.cursor_row if row is None else row
        if not 0 <= index < self.row_count:
            return None
        return self.coordinate_to_cell_key((index, 0)).row_key.value  # type: ignore[arg-type]

    def move_to_key(self, key: str | None, fallback: int = 0) -> None:
        """Put the cursor on the row with ``key`` (it may have moved), else on row ``fallback``."""
        try:
            index = self.get_row_index(key) if key is not None else fallback
        except RowDoesNotExist:  # the row left the list
            index = fallback
        if self.row_count:
            self.move_cursor(row=max(0, min(index, self.row_count - 1)), animate=False)
