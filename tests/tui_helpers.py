"""Helpers shared by the TUI tests: payloads, stored rows, waiting, reading the screen."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from rich.segment import Segment
from textual.app import App
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets import Static

from monitor.service import Service
from monitor.tui.app import MonitorApp
from tests import conftest

SAMPLES = Path(__file__).resolve().parent.parent / "sample_events"
SIZE = (160, 48)

#: The spec pair: one reader, paired by the pageUrl sessionId, created 150 s apart.
VIEW = (SAMPLES / "payment_gateway.view.json").read_bytes()
CLOSE = (SAMPLES / "payment_gateway.close.json").read_bytes()
TRANSACTION = (SAMPLES / "transaction.complete.json").read_bytes()
SPEC_READER = "65e01bd8d03692125f1f353d"
PHONE = "9892898898"
#: Not JSON, and not UTF-8 either: rejected with 400, shown as a hexdump.
MALFORMED = b'{"event": "payment_gateway.view", "user_id": \xff\xfe broken'

_VIEW_OBJ = json.loads(VIEW)


def gateway_body(
    *,
    event: str = "payment_gateway.view",
    user_id: str = "reader-1",
    name: str = "",
    phone: str = "9000000001",
    content_id: str = "story-1",
    created_at: float = 1709186668,
    session: str = "gw-session-1",
    click_action: str | None = None,
) -> bytes:
    """A gateway view or close shaped like the spec payload, with the fields a test cares about."""
    obj = json.loads(VIEW)
    obj["event"] = event
    obj["user_id"] = user_id
    obj["created_at"] = created_at
    user = obj["payload"]["user"]
    user.update(userId=user_id, name=name, phoneNumber=phone, username=phone)
    action = obj["payload"]["action"]
    action["contentId"] = content_id
    action["pageUrl"] = action["pageUrl"].replace("sessionId=65e01bdad03692125f1f3540", f"sessionId={session}")
    if click_action is not None:
        action["clickAction"] = click_action
    # json.dumps escapes control characters (\u001b), as a JSON sender would.
    return json.dumps(obj).encode()


def event_row(body: bytes, *, session_id: int, received_at: float) -> dict[str, Any]:
    """An ``events`` row as the listener builds it (for writing a database directly)."""
    headers = {"Host": "127.0.0.1:8787", "Content-Type": "application/json", "User-Agent": "axios/0.21.1"}
    return conftest.event_row(body, session_id=session_id, received_at=received_at, headers=json.dumps(headers))


def rejected_row(body: bytes, *, session_id: int, received_at: float, status: int, reason: str) -> dict[str, Any]:
    headers = {"Host": "127.0.0.1:8787", "Content-Type": "application/json"}
    return conftest.rejected_row(
        body, session_id=session_id, received_at=received_at, status=status, reason=reason, headers=json.dumps(headers)
    )


@dataclass
class Live:
    """A monitor wired like ``run_live``: a real listener thread feeding the app."""

    app: MonitorApp
    service: Service
    db_path: Path
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.service.url

    def run(self, **kwargs: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.app.run_test(size=SIZE, **kwargs)

    async def post(self, body: bytes, *, expect: int = 200) -> dict[str, Any]:
        """POST one delivery over real HTTP; answered once the row is committed."""
        async with self.http.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == expect, answer
            return answer


# -- waiting and reading ------------------------------------------------------


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``predicate()`` is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await pilot.pause(0.05)


def strip_text(strip: Strip) -> str:
    return "".join(segment.text for segment in strip)


def screen_strips(app: App[Any]) -> list[Strip]:
    """What the terminal would show for the current screen, line by line."""
    return app.screen._compositor.render_strips()


def screen_text(app: App[Any]) -> str:
    return "\n".join(strip_text(strip) for strip in screen_strips(app))


def unsafe_segments(strips: list[Strip]) -> list[Segment]:
    """Segments that carry a raw control character or a control code."""
    found = []
    for strip in strips:
        for segment in strip:
            if segment.control or any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in segment.text):
                found.append(segment)
    return found


def static_text(node: App[Any] | DOMNode, selector: str) -> str:
    """The plain text of a ``Static`` on the app's current screen (or under ``node``)."""
    root = node.screen if isinstance(node, App) else node
    return str(root.query_one(selector, Static).content)
