"""Replay a delivery: ask where to, or edit the body first."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Static, TextArea


class TargetScreen(ModalScreen[str | None]):
    """Ask for the URL to replay to (no --forward-to was given)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="target"):
            yield Static(Text("Replay to which URL?", style="bold"), classes="title")
            yield Input(value=self.default, placeholder="http://127.0.0.1:3000/webhooks/conscent", id="target-url")
            yield Static(Text("Enter sends, Esc cancels", style="dim"))

    @on(Input.Submitted)
    def _submit(self, message: Input.Submitted) -> None:
        url = message.value.strip()
        if url.startswith(("http://", "https://")):
            self.dismiss(url)
        else:
            self.notify("The target must be an http:// or https:// URL", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditScreen(Screen[bytes | None]):
    """Edit a body before replaying it; ctrl+s sends the edited bytes."""

    BINDINGS = [
        Binding("ctrl+s", "send", "Send edited", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, body: bytes) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        yield Static(Text(self.title_text, style="bold"), classes="title")
        yield TextArea(self.body.decode("utf-8", "replace"), language="json", id="editor", show_line_numbers=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_send(self) -> None:
        self.dismiss(self.query_one(TextArea).text.encode("utf-8"))

    def action_cancel(self) -> None:
        self.dismiss(None)
