"""One delivery in full: parsed fields, headers, body, exact bytes.

Shows the delivery it is given; copy as curl and replay are asked of the app
by message. Must not import the app.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.style import Style
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Static

from monitor.events import COLUMNS as PARSED_COLUMNS
from monitor.masking import mask_if, mask_json
from monitor.textsafe import cell, clean
from monitor.tui.format import format_clock, format_datetime
from monitor.tui.messages import CopyCurl, ReplayDelivery
from monitor.tui.screens.palette import ThemedScreen

HEXDUMP_LIMIT = 4096


class DetailScreen(ThemedScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "copy_body", "Copy body"),
        Binding("y", "copy_curl", "Copy as curl"),
        Binding("r", "replay", "Replay"),
        Binding("e", "edit", "Edit & replay"),
    ]

    def __init__(self, source: str, delivery: dict[str, Any]) -> None:
        super().__init__()
        self.source = source
        self.delivery = delivery
        self._masked = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-title", classes="title")
            yield Static(id="detail-fields", classes="panel")
            yield Static(id="detail-headers", classes="panel")
            yield Static(id="detail-forwards", classes="panel")
            yield Static(id="detail-body", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.app, "masked", self._show, init=True)

    def redraw(self) -> None:
        self._show(self._masked)

    def _show(self, masked: bool) -> None:
        self._masked = masked
        d = self.delivery
        title = Text()
        if self.source == "rejected":
            title.append(f"Rejected delivery #{d['id']}  ", style=self.tone("bad"))
            title.append(f"HTTP {d.get('status')}  ", style="bold")
            title.append(cell(d.get("reason"), 300))
        else:
            title.append(f"Delivery #{d['id']}  ", style="bold")
            title.append(cell(d.get("event") or f"({d.get('kind')})"), style=self.tone("name"))
            if d.get("duplicate_of"):
                title.append(f"   duplicate of #{d['duplicate_of']}", style=self.tone("warning"))
        self.query_one("#detail-title", Static).update(title)
        self.query_one("#detail-fields", Static).update(self._fields(masked))
        self.query_one("#detail-headers", Static).update(self._headers())
        forwards = self.delivery.get("forwards") or []
        panel = self.query_one("#detail-forwards", Static)
        panel.display = bool(forwards)
        if forwards:
            panel.update(forwards_table(forwards, self.tone))
        self.query_one("#detail-body", Static).update(self._body(masked))

    def _fields(self, masked: bool) -> RenderableType:
        d = self.delivery
        table = _kv_table("Delivery")
        when = d.get("received_at")
        table.add_row(Text("received"), Text(format_datetime(when)))
        for key in (
            "method",
            "path",
            "remote_addr",
            "content_type",
            "body_size",
            "body_sha256",
            "signature",
            "basic_auth",
            "session_id",
        ):
            if d.get(key) is not None:
                table.add_row(Text(key), Text(cell(d[key], 500)))
        if self.source != "rejected":
            for key in PARSED_COLUMNS:
                value = d.get(key)
                if value is None or value == "":
                    continue
                if key == "created_at":
                    value = f"{value:g}  ({format_datetime(value)})"
                table.add_row(Text(key), Text(cell(mask_if(key, value, masked), 2000)))
        return table

    def _headers(self) -> RenderableType:
        table = _kv_table("Headers")
        headers = self.delivery.get("headers") or {}
        if isinstance(headers, dict):
            for name, value in headers.items():
                table.add_row(Text(cell(name)), Text(cell(value, 2000)))
        return table

    def _body(self, masked: bool) -> RenderableType:
        body: bytes = self.delivery.get("body") or b""
        heading = Text(f"Body ({len(body):,} bytes)", style="bold")
        try:
            parsed = orjson.loads(body.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as exc:
            if masked:  # raw bytes may hold anything personal
                return Group(
                    heading,
                    Text(f"not JSON: {exc}", style=self.tone("warning")),
                    Text("(bytes hidden while personal data is masked: press m)", style=self.tone("muted")),
                )
            return Group(heading, Text(f"not JSON: {exc}", style=self.tone("warning")), Text(hexdump(body)))
        if masked:
            parsed = mask_json(parsed)
        pretty = clean(orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode(), keep_newlines=True)
        return Group(heading, Syntax(pretty, "json", theme="ansi_dark", word_wrap=True, background_color="default"))

    def action_copy_body(self) -> None:
        body: bytes = self.delivery.get("body") or b""
        self.app.copy_to_clipboard(body.decode("utf-8", "replace"))
        self.notify("Body copied to the clipboard")

    def action_copy_curl(self) -> None:
        if self.source == "rejected":
            self.notify("Only accepted deliveries can be copied as curl", severity="warning")
            return
        self.post_message(CopyCurl(self.delivery))

    def action_replay(self) -> None:
        if self.source != "rejected":
            self.post_message(ReplayDelivery(self.delivery))

    def action_edit(self) -> None:
        if self.source != "rejected":
            self.post_message(ReplayDelivery(self.delivery, edit=True))

    def show_forwards(self, forwards: list[dict[str, Any]]) -> None:
        """A replay of this delivery was recorded: show it."""
        self.delivery["forwards"] = forwards
        with contextlib.suppress(NoMatches):  # closed meanwhile (Esc, or the app quit): nothing to show
            self._show(self._masked)


def forwards_table(forwards: list[dict[str, Any]], tone: Callable[[str], Style]) -> Table:
    """Every forward and replay of a delivery, with what the target answered (``tone``: the theme's styles)."""
    table = Table(title="Forwards and replays", title_justify="left", box=None, expand=True, padding=(0, 1))
    for title in ("when", "kind", "try", "target", "status", "ms", "answer"):
        table.add_column(
            title, style=tone("muted") if title in ("when", "try") else None, no_wrap=title != "answer", overflow="fold"
        )
    for f in forwards:
        status = f.get("status")
        answer = f.get("error") or (f.get("response_body") or b"").decode("utf-8", "replace")
        kind = str(f.get("kind") or "") + (" (edited)" if f.get("request_body") is not None else "")
        table.add_row(
            Text(format_clock(f.get("requested_at"))),
            Text(cell(kind)),
            Text(str(f.get("attempt") or "")),
            Text(cell(f.get("target"), 80)),
            Text(
                str(status) if status is not None else "—",
                style=tone("good") if status and status < 400 else tone("bad"),
            ),
            Text(f"{f['latency_ms']:.0f}" if f.get("latency_ms") is not None else ""),
            Text(cell(answer, 300)),
        )
    return table


def _kv_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, expand=True, padding=(0, 1))
    table.add_column(style="dim", no_wrap=True, width=20)  # dim, not a colour: fine in every theme
    table.add_column(overflow="fold")
    return table


def hexdump(data: bytes, limit: int = HEXDUMP_LIMIT) -> str:
    """Offset, hex and printable ASCII, 16 bytes a line."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  {text}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit:,} more bytes")
    return "\n".join(lines)
