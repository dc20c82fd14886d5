"""Export what the main screen shows (its session and filter) to a file: the dialog.

Asks for the format, the path and the metadata option and dismisses with an
:class:`ExportRequest`; the app writes the file. The formats are
:mod:`monitor.exporting`'s. Must not import the app, nor write files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static

from monitor.exporting import EXTENSIONS, FORMAT_LABELS, FORMATS, Format


@dataclass(frozen=True)
class ExportRequest:
    fmt: Format
    path: str
    meta: bool


class ExportScreen(ModalScreen[ExportRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, description: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.description = description
        self.clock = clock

    def compose(self) -> ComposeResult:
        with Vertical(id="export"):
            yield Static(Text("Export", style="bold"), classes="title")
            yield Static(Text(self.description, style="dim"))
            yield Select(
                [(FORMAT_LABELS[fmt], fmt) for fmt in FORMATS], value="jsonl", allow_blank=False, id="export-format"
            )
            yield Input(value=self._default_path("jsonl"), id="export-path")
            yield Checkbox("JSONL with metadata (exact bytes of any body)", id="export-meta")
            with Horizontal(id="export-buttons"):
                yield Button("Export", variant="primary", id="export-go")
                yield Button("Cancel", id="export-cancel")

    def _default_path(self, fmt: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        return f"conscent-export-{stamp}.{EXTENSIONS[cast(Format, fmt)]}"

    @on(Select.Changed, "#export-format")
    def _format(self, message: Select.Changed) -> None:
        path = self.query_one("#export-path", Input)
        if path.value.startswith("conscent-export-"):
            path.value = self._default_path(str(message.value))

    @on(Button.Pressed, "#export-go")
    @on(Input.Submitted, "#export-path")
    def _go(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            return
        fmt = cast(Format, self.query_one("#export-format", Select).value)
        self.dismiss(ExportRequest(fmt, path, self.query_one("#export-meta", Checkbox).value))

    @on(Button.Pressed, "#export-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
