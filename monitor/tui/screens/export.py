"""Export what the main screen shows (its session and filter) to a file: the dialog.

Asks for the format, the path and (for JSONL) the metadata option, and posts
an :class:`~monitor.tui.messages.ExportChosen`; the app writes the file in a
worker. In a browser tab (``download=True``) it asks for a file name only,
which the browser downloads; ``masked=True`` says that personal data will be
hidden in the file (the request carries ``mask``). The dialog stays open until the app says how it went: on success the
app closes it, on failure it shows the error here with the typed path
selected, so nothing is retyped. The formats are :mod:`monitor.exporting`'s.
Must not import the app, nor write files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static

from monitor.exporting import EXTENSIONS, FORMAT_LABELS, FORMATS, Format, download_name_problem
from monitor.textsafe import inert
from monitor.tui.messages import ExportChosen, ExportRequest
from monitor.tui.widgets.footer import KeyFooter

__all__ = ["ExportRequest", "ExportScreen"]


class ExportScreen(ModalScreen[None]):
    """The export dialog: format, path, metadata; Enter exports, Esc cancels."""

    #: Enter at once exports to the default file name; typing replaces it.
    AUTO_FOCUS = "#export-path"
    BINDINGS = [
        # Before the path box's own Enter, so the footer offers it; not on a control whose Enter means
        # something else (check_action): the format list opens, the checkbox toggles, a button presses.
        # In a browser tab the same key is offered as "Download" (check_action shows one of the two).
        Binding("enter", "export", "Export", priority=True),
        Binding("enter", "download", "Download", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        description: str,
        filter_text: str = "",
        session_id: int | None = None,
        clock: Callable[[], float] = time.time,
        *,
        download: bool = False,
        masked: bool = False,
    ) -> None:
        super().__init__()
        self.description = description
        self.filter_text = filter_text
        self.session_id = session_id
        self.clock = clock
        #: A browser tab: the file is a name the browser downloads, not a path here.
        self.download = download
        #: Personal data is hidden in the file.
        self.masked = masked
        #: An export was asked for and the app has not said how it went yet.
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="export"):
            yield Static(Text("Export", style="bold"), classes="title")
            yield Static(Text(self.description, style="dim"), id="export-description")
            yield Select(
                [(FORMAT_LABELS[fmt], fmt) for fmt in FORMATS], value="jsonl", allow_blank=False, id="export-format"
            )
            path = Input(
                value=self._default_path("jsonl"),
                placeholder="file name" if self.download else "",
                id="export-path",
            )
            if self.download:
                path.border_title = "File name: your browser downloads it"
            yield path
            meta = "bodies masked, not exact bytes" if self.masked else "exact bytes of any body"
            yield Checkbox(f"JSONL with metadata ({meta})", id="export-meta")
            if self.masked:
                yield Static(
                    Text("Personal data will be masked (phones, names, emails, places)", style="bold"),
                    id="export-masked",
                )
            yield Static(id="export-status")
            with Horizontal(id="export-buttons"):
                yield Button("Download" if self.download else "Export", variant="primary", id="export-go")
                yield Button("Cancel", id="export-cancel")
        yield KeyFooter(personal_data=False)

    def on_mount(self) -> None:
        self.query_one("#export-status", Static).display = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("export", "download"):
            if (action == "download") != self.download:
                return False  # the other name for Enter
            if self.focused is not None:
                return not any(
                    isinstance(node, Select | Checkbox | Button) for node in self.focused.ancestors_with_self
                )
        return True

    def _default_path(self, fmt: str) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        return f"conscent-export-{stamp}.{EXTENSIONS[cast(Format, fmt)]}"

    @property
    def fmt(self) -> Format:
        return cast(Format, self.query_one("#export-format", Select).value)

    @on(Select.Changed, "#export-format")
    def _format(self, message: Select.Changed) -> None:
        path = self.query_one("#export-path", Input)
        if path.value.startswith("conscent-export-"):
            path.value = self._default_path(str(message.value))
        else:  # a typed name keeps its stem and follows the format: x.jsonl becomes x.csv
            stem, dot, extension = path.value.rpartition(".")
            if dot and extension in EXTENSIONS.values():
                path.value = f"{stem}.{EXTENSIONS[cast(Format, message.value)]}"
        # The metadata option only means something for JSONL.
        self.query_one("#export-meta", Checkbox).display = message.value == "jsonl"

    @on(Input.Changed, "#export-path")
    def _path_changed(self) -> None:
        """An error stays until the path is edited (the one that failed is still there to fix)."""
        status = self.query_one("#export-status", Static)
        if status.has_class("-error"):
            status.display = False
            status.remove_class("-error")

    @on(Button.Pressed, "#export-go")
    @on(Input.Submitted, "#export-path")
    def action_export(self) -> None:
        if self.busy:
            return
        path = self.query_one("#export-path", Input).value.strip()
        problem = download_name_problem(path) if self.download else None if path else "Type the file to write"
        if problem is not None:
            self._say(problem, error=True)
            return
        meta = self.fmt == "jsonl" and self.query_one("#export-meta", Checkbox).value
        self.busy = True
        self._say(f"{'Preparing' if self.download else 'Exporting to'} {inert(path)}…", error=False)
        request = ExportRequest(self.fmt, path, meta, download=self.download, mask=self.masked)
        self.post_message(ExportChosen(request, self.filter_text, self.session_id))

    def action_download(self) -> None:
        """Enter in a browser tab: the same export, offered as "Download"."""
        self.action_export()

    def export_failed(self, error: str) -> None:
        """The app could not write the file: say why, here, with the path selected to edit."""
        self.busy = False
        self._say(error, error=True)
        path = self.query_one("#export-path", Input)
        path.focus()
        path.select_all()

    def _say(self, text: str, *, error: bool) -> None:
        status = self.query_one("#export-status", Static)
        status.update(Text(text))  # a path or an OS error: plain text, never markup
        status.set_class(error, "-error")
        status.display = True

    @on(Button.Pressed, "#export-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
