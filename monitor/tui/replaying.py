"""Replay a delivery from the TUI: to the forward target, or a URL asked once; optionally edited first.

The app hands its replay requests here; the listener (this process's, or a browser tab's serve process) sends
and records the replay, and its outcome comes back to the app as a
:class:`~monitor.tui.messages.ReplayDone`. Must not read the database, nor
touch a screen's widgets.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any
from urllib.parse import urlsplit

from textual.app import App

from monitor import exporting
from monitor.textsafe import cell
from monitor.tui.link import Link
from monitor.tui.messages import ReplayDone
from monitor.tui.screens.replay import EditScreen, TargetScreen


class Replayer:
    """Sends replays for ``app`` through the listener's ``link`` (None in offline review: it says why it cannot)."""

    def __init__(self, app: App[Any], link: Link | None) -> None:
        self.app = app
        self.link = link
        #: The URL typed for the first replay when there is no forward target; asked again never.
        self.target: str | None = None

    @property
    def forward_target(self) -> str | None:
        return self.link.forward_to if self.link else None

    def curl_base_url(self) -> str:
        """Where a copied curl command sends: the forward target's origin, else this monitor."""
        for url in (self.forward_target, self.target, self.link.url if self.link else None):
            if url:
                parts = urlsplit(url)
                return f"{parts.scheme}://{parts.netloc}"
        return exporting.DEFAULT_BASE_URL

    def _can_replay(self) -> bool:
        if self.link is None:
            self.app.notify(
                "Replays are recorded by the live monitor: run `conscent-monitor watch --db` on this file",
                severity="warning",
                markup=False,
            )
            return False
        return True

    def replay(self, delivery: dict[str, Any], body: bytes | None = None) -> None:
        """Send a delivery again, to the forward target or a URL the user types."""
        if not self._can_replay():
            return
        target = self.forward_target or self.target
        if target:
            self._send(delivery, body, target)
            return

        def chosen(url: str | None) -> None:
            if url:
                self.target = url
                self._send(delivery, body, url)

        self.app.push_screen(TargetScreen(self.target or "http://127.0.0.1:3000/"), chosen)

    def edit_and_replay(self, delivery: dict[str, Any]) -> None:
        if not self._can_replay():  # say so before the user spends time editing
            return

        def edited(body: bytes | None) -> None:
            if body is not None:
                self.replay(delivery, body)

        title = f"Edit delivery #{delivery['id']} — ctrl+s sends the edited body (re-signed when a secret is set)"
        self.app.push_screen(EditScreen(title, delivery.get("body") or b""), edited)

    def _send(self, delivery: dict[str, Any], body: bytes | None, target: str) -> None:
        assert self.link is not None
        original: bytes = delivery.get("body") or b""
        payload = original if body is None else body
        headers = delivery.get("headers") if isinstance(delivery.get("headers"), dict) else {}
        event_id = int(delivery["id"])
        future = self.link.replay(event_id, payload, headers or {}, target=target, edited=payload != original)
        post = self.app.post_message  # thread-safe: the outcome arrives on the listener's thread

        def done(f: concurrent.futures.Future[Any]) -> None:
            try:
                outcome = f.result()
            except Exception as exc:  # the listener stopped, a bad URL...
                post(ReplayDone(event_id, target, None, 0.0, str(exc)))
            else:
                post(ReplayDone(event_id, target, outcome.status, outcome.latency_ms, outcome.error))

        future.add_done_callback(done)
        self.app.notify(f"Replaying #{event_id} to {cell(target, 80)}…", markup=False)
