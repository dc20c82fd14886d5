"""One delivery in full: parsed fields, headers, body, exact bytes."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static

from monitor.events import COLUMNS as PARSED_COLUMNS
from monitor.masking import mask_if, mask_json
from monitor.textsafe import cell, clean

if TYPE_CHECKING:
    from monitor.tui.app import MonitorApp

HEXDUMP_LIMIT = 4096


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "copy_body", "Copy body"),
        Binding("y", "copy_curl", "Copy as curl"),
        Binding("r", "replay", "Replay"),
        Binding("e", "edit", "Edit & replay"),
    ]

    app: MonitorApp

    def __init__(self, source: str, delivery: dict[str, Any]) -> None:
        super().__init__()
        self.source = source
        self.delivery = delivery

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-title", classes="title")
            yield Static(id="detail-fields", classes="panel")
            yield Static(id="detail-headers", classes="panel")
            yield Static(id="detail-forwards", classes="panel")
            yield Static(id="detail-body", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "masked", self._show, init=True)

    def _show(self, masked: bool) -> None:
        d = self.delivery
        title = Text()
        if self.source == "rejected":
            title.append(f"Rejected delivery #{d['id']}  ", style="bold red")
            title.append(f"HTTP {d.get('status')}  ", style="bold")
            title.append(cell(d.get("reason"), 300))
        else:
            title.append(f"Delivery #{d['id']}  ", style="bold")
            title.append(cell(d.get("event") or f"({d.get('kind')})"), style="bold cyan")
            if d.get("duplicate_of"):
                title.append(f"   duplicate of #{d['duplicate_of']}", style="yellow")
        self.query_one("#detail-title", Static).update(title)
        self.query_one("#detail-fields", Static).update(self._fields(masked))
        self.query_one("#detail-headers", Static).update(self._headers())
        forwards = self.delivery.get("forwards") or []
        panel = self.query_one("#detail-forwards", Static)
        panel.display = bool(forwards)
        if forwards:
            panel.update(forwards_table(forwards))
        self.query_one("#detail-body", Static).update(self._body(masked))

    def _fields(self, masked: bool) -> RenderableType:
        d = self.delivery
        table = _kv_table("Delivery")
        when = d.get("received_at")
        table.add_row(Text("received"), Text(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else ""))
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
                    value = f"{value:g}  ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(value))})"
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
                    Text(f"not JSON: {exc}", style="yellow"),
                    Text("(bytes hidden while personal data is masked: press m)", style="dim"),
                )
            return Group(heading, Text(f"not JSON: {exc}", style="yellow"), Text(hexdump(body)))
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
        from monitor.exporting import curl_command

        self.app.copy_to_clipboard(curl_command(self.delivery, self.app.curl_base_url()))
        self.notify("curl command copied to the clipboard")

    def action_replay(self) -> None:
        if self.source != "rejected":
            self.app.replay(self.delivery)

    def action_edit(self) -> None:
        if self.source != "rejected":
            self.app.edit_and_replay(self.delivery)

    def show_forwards(self, forwards: list[dict[str, Any]]) -> None:
        """A replay of this delivery was recorded: show it."""
        self.delivery["forwards"] = forwards
        with contextlib.suppress(NoMatches):  # closed meanwhile (Esc, or the app quit): nothing to show
            self._show(self.app.masked)


def forwards_table(forwards: list[dict[str, Any]]) -> Table:
    """Every forward and replay of a delivery, with what the target answered."""
    table = Table(title="Forwards and replays", title_justify="left", box=None, expand=True, padding=(0, 1))
    for title in ("when", "kind", "try", "target", "status", "ms", "answer"):
        table.add_column(
            title, style="dim" if title in ("when", "try") else None, no_wrap=title != "answer", overflow="fold"
        )
    for f in forwards:
        status = f.get("status")
        answer = f.get("error") or (f.get("response_body") or b"").decode("utf-8", "replace")
        kind = str(f.get("kind") or "") + (" (edited)" if f.get("request_body") is not None else "")
        table.add_row(
            Text(time.strftime("%H:%M:%S", time.localtime(f["requested_at"])) if f.get("requested_at") else ""),
            Text(cell(kind)),
            Text(str(f.get("attempt") or "")),
            Text(cell(f.get("target"), 80)),
            Text(str(status) if status is not None else "—", style="green" if status and status < 400 else "bold red"),
            Text(f"{f['latency_ms']:.0f}" if f.get("latency_ms") is not None else ""),
            Text(cell(answer, 300)),
        )
    return table


def _kv_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, expand=True, padding=(0, 1))
    table.add_column(style="dim", no_wrap=True, width=20)
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
