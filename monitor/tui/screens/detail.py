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
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Static

from monitor.events import COLUMNS as PARSED_COLUMNS
from monitor.exporting import masked_body
from monitor.masking import mask_if, mask_json
from monitor.textsafe import cell, clean
from monitor.tui.format import format_clock, format_datetime
from monitor.tui.messages import CopyCurl, ReplayDelivery
from monitor.tui.screens.palette import ThemedScreen
from monitor.tui.widgets.footer import KeyFooter
from monitor.wording import count, number

HEXDUMP_LIMIT = 4096

#: What only an accepted delivery offers (a rejection has no parsed event to send again): action and key.
ACCEPTED_ONLY = {"copy_curl": "y", "replay": "r", "edit": "e"}
#: Why not, said when one of those keys is pressed on a rejected delivery anyway.
REJECTED_WHY_NOT = "A rejected delivery cannot be copied as curl or replayed: only accepted deliveries can"


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
        yield KeyFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.app, "masked", self._show, init=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A rejected delivery hides copy as curl, replay and edit & replay from the footer."""
        return not (self.source == "rejected" and action in ACCEPTED_ONLY)

    def on_key(self, event: events.Key) -> None:
        """The hidden keys pressed anyway on a rejected delivery: say why nothing happens."""
        if self.source == "rejected" and event.key in ACCEPTED_ONLY.values():
            event.stop()
            self.notify(REJECTED_WHY_NOT, severity="warning", markup=False)

    def redraw(self) -> None:
        self._show(self._masked)

    def on_resize(self) -> None:
        self._show(self._masked)  # the hexdump's bytes a line follow the width

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
                value = count(d[key], "byte") if key == "body_size" else d[key]
                table.add_row(Text(key), Text(cell(value, 500)))
        if self.source != "rejected":
            for key in PARSED_COLUMNS:
                value = d.get(key)
                if value is None or value == "":
                    continue
                if key == "created_at":
                    value = created_at_text(value, _sent_created_at(d.get("body")))
                elif isinstance(value, float) and value.is_integer():
                    value = int(value)  # an amount of 499.0 reads 499; 19.0761 stays as sent
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
        heading = Text(f"Body ({count(len(body), 'byte')})", style="bold")
        try:
            parsed = orjson.loads(body.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as exc:
            if masked:  # raw bytes may hold anything personal
                return Group(
                    heading,
                    Text(f"not JSON: {exc}", style=self.tone("warning")),
                    Text("(bytes hidden while personal data is masked: press m)", style=self.tone("muted")),
                )
            # 16 bytes a line need 75 columns: at 80 (less the padding and the scrollbar) 8 a line, unwrapped.
            width = 16 if self.size.width >= 84 else 8
            return Group(
                heading, Text(f"not JSON: {exc}", style=self.tone("warning")), Text(hexdump(body, width=width))
            )
        if masked:
            parsed = mask_json(parsed)
        pretty = clean(orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode(), keep_newlines=True)
        return Group(heading, Syntax(pretty, "json", theme="ansi_dark", word_wrap=True, background_color="default"))

    def action_copy_body(self) -> None:
        body: bytes = self.delivery.get("body") or b""
        if self._masked:  # what is on screen is what leaves: masked JSON, or a placeholder
            body = masked_body(body)
        self.app.copy_to_clipboard(body.decode("utf-8", "replace"))
        self.notify("Body copied to the clipboard" + (" (personal data masked)" if self._masked else ""))

    def action_copy_curl(self) -> None:
        self.post_message(CopyCurl(self.delivery))

    def action_replay(self) -> None:
        self.post_message(ReplayDelivery(self.delivery))

    def action_edit(self) -> None:
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
            Text(number(round(f["latency_ms"])) if f.get("latency_ms") is not None else ""),
            Text(cell(answer, 300)),
        )
    return table


def created_at_text(seconds: float, sent: object = None) -> str:
    """``1796012345.123  (2026-11-30 10:05:45)``: the epoch in full (never ``1.79601e+09``), then the local time.

    Whole seconds show no fraction; a fraction shows to the millisecond. ``sent``, the body's own
    ``created_at``, is named when it was in milliseconds (or finer) and the store turned it into seconds.
    """
    millis = round(seconds * 1000)
    epoch = str(millis // 1000) if millis % 1000 == 0 else f"{millis // 1000}.{millis % 1000:03d}"
    text = f"{epoch}  ({format_datetime(seconds)})"
    unit = _finer_unit(sent, seconds)
    if unit:
        text += f"  sent in {unit}: {cell(sent, 40)}"
    return text


def _sent_created_at(body: object) -> object:
    """The body's ``created_at`` (or ``createdAt``) as sent, if the body is a JSON object."""
    if not isinstance(body, bytes):
        return None
    try:
        parsed = orjson.loads(body.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    return parsed.get("created_at", parsed.get("createdAt"))


def _finer_unit(sent: object, seconds: float) -> str | None:
    """ "milliseconds" when ``sent`` was ``seconds`` times 1,000 (microseconds, nanoseconds likewise); else None."""
    try:
        value = float(sent) if isinstance(sent, int | float | str) and not isinstance(sent, bool) else 0.0
    except ValueError:
        return None
    if seconds <= 0 or value <= seconds * 10:
        return None
    ratio = value / seconds
    for unit, scale in (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)):
        if scale / 10 < ratio < scale * 10:
            return unit
    return None


def _kv_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, expand=True, padding=(0, 1))
    table.add_column(style="dim", no_wrap=True, width=20)  # dim, not a colour: fine in every theme
    table.add_column(overflow="fold", ratio=1)  # the room left goes to the values, not the names
    return table


def hexdump(data: bytes, limit: int = HEXDUMP_LIMIT, *, width: int = 16) -> str:
    """Offset, hex and printable ASCII, ``width`` bytes a line."""
    lines = []
    for offset in range(0, min(len(data), limit), width):
        chunk = data[offset : offset + width]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<{width * 3 - 1}}  {text}")
    if len(data) > limit:
        lines.append(f"… {count(len(data) - limit, 'more byte')}")
    return "\n".join(lines)
