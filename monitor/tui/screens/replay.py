"""Replay a delivery: ask where to, or edit the body first.

Each dialog has its own footer (its keys, not the screen's beneath) and says
what is wrong with an answer in itself, so nothing typed is lost. Must not
import the app, nor send anything.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static, TextArea

from monitor.textsafe import inert
from monitor.tui.widgets.footer import KeyFooter


class TargetScreen(ModalScreen[str | None]):
    """Ask for the URL to replay to (no --forward-to was given); a URL it cannot use is said here, not in a toast."""

    BINDINGS = [
        Binding("enter", "send", "Replay", priority=True),  # before the box's own Enter: the footer offers it
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="target"):
            yield Static(Text("Replay to which URL?", style="bold"), classes="title")
            yield Input(value=self.default, placeholder="http://127.0.0.1:3000/webhooks/conscent", id="target-url")
            yield Static(Text("Asked once: later replays go to the same URL.", style="dim"), id="target-status")
        yield KeyFooter(personal_data=False)

    @on(Input.Submitted)
    def action_send(self) -> None:
        box = self.query_one("#target-url", Input)
        url = box.value.strip()
        problem = target_problem(url)
        if problem is None:
            self.dismiss(url)
            return
        status = self.query_one("#target-status", Static)
        status.update(Text(problem))
        status.add_class("-error")
        box.focus()
        box.select_all()

    def action_cancel(self) -> None:
        self.dismiss(None)


def target_problem(url: str) -> str | None:
    """Why ``url`` cannot be a replay target (one line), or None when it can."""
    if not url:
        return "Type the URL to send the delivery to (http:// or https://)"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [ or ]
        return f"Not a URL: {inert(url, 60)}"
    if parts.scheme not in ("http", "https"):
        return f"The target must be an http:// or https:// URL, not {inert(url, 60)}"
    if not parts.hostname:
        return f"The URL names no host: {inert(url, 60)}"
    return None


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
        yield KeyFooter(personal_data=False)

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_send(self) -> None:
        self.dismiss(self.query_one(TextArea).text.encode("utf-8"))

    def action_cancel(self) -> None:
        self.dismiss(None)
