"""Timing a Textual app from the outside: when did a change reach the screen?

``Frames`` wraps ``app._display`` (called with each compositor update, also
by the headless driver, which then writes nothing): a frame is a screen
update. ``Marks`` wraps a method to record when it finished. A key press is
sent straight to the driver (as a terminal would), and its latency is the
time from sending it to the first frame after the handler ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from textual import events
from textual.app import App


class Frames:
    def __init__(self, app: App[Any]) -> None:
        self.times: list[float] = []
        #: Set at each frame: waiting is event-driven, no polling loop steals the GIL.
        self.changed: asyncio.Event | None = None
        #: Asked at each frame (see :func:`until_ready`): does this frame show what we wait for?
        self.ready: Callable[[], bool] | None = None
        self.ready_at: float | None = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is not None:
                now = time.perf_counter()
                self.times.append(now)
                # The frame was composed from the state the app is in now (same thread, nothing ran between).
                if self.ready is not None and self.ready_at is None and self.ready():
                    self.ready_at = now
                if self.changed is not None:
                    self.changed.set()

        app._display = display  # type: ignore[method-assign]

    def first_after(self, moment: float) -> float | None:
        found = None
        for t in reversed(self.times):
            if t < moment:
                break
            found = t
        return found


class Marks:
    """Record when ``obj.name(...)`` returned."""

    def __init__(self, obj: Any, name: str) -> None:
        self.times: list[float] = []
        original = getattr(obj, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            finally:
                self.times.append(time.perf_counter())

        setattr(obj, name, wrapped)

    def since(self, moment: float) -> float | None:
        for t in self.times:
            if t >= moment:
                return t
        return None


def send_key(app: App[Any], key: str, char: str | None = None) -> None:
    assert app._driver is not None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


async def until_frame(frames: Frames, marks: Marks, started: float, timeout: float = 10.0) -> float:
    """Seconds from ``started`` to the first frame after the first mark after ``started``."""
    if frames.changed is None:
        frames.changed = asyncio.Event()
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        mark = marks.since(started)
        if mark is not None:
            frame = frames.first_after(mark)
            if frame is not None:
                return frame - started
        frames.changed.clear()
        # Frames follow marks; a mark with no frame yet waits for the next frame.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(frames.changed.wait(), 0.05)
    raise TimeoutError("no screen update")


async def timed(app: App[Any], frames: Frames, marks: Marks, action: Callable[[], None]) -> float:
    """Run ``action`` (e.g. send a key) and return milliseconds until its frame."""
    started = time.perf_counter()
    action()
    return 1000 * await until_frame(frames, marks, started)


async def until_ready(
    frames: Frames, ready: Callable[[], bool], action: Callable[[], None], timeout: float = 60.0
) -> float:
    """Run ``action``; milliseconds until the first frame for which ``ready()`` holds (asked as it is drawn).

    For a screen that loads in a worker: the first frame after the screen is
    pushed may still be empty, ``ready`` says when its rows are on it.
    """
    if frames.changed is None:
        frames.changed = asyncio.Event()
    frames.ready, frames.ready_at = ready, None
    started = time.perf_counter()
    try:
        action()
        deadline = started + timeout
        while frames.ready_at is None:
            if time.perf_counter() > deadline:
                raise TimeoutError("the screen never showed it")
            frames.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(frames.changed.wait(), 0.05)
        return 1000 * (frames.ready_at - started)
    finally:
        frames.ready = None
