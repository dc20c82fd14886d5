"""The app's line to the listener: the one in this process, or the ``serve`` process a browser tab belongs to.

The terminal monitor runs its :class:`~monitor.service.Service` in a thread of
its own process (:class:`ServiceLink`). A browser tab (``serve``) is a process
of its own that reads the database like ``open`` does and asks the serve
process, over its control channel (:mod:`monitor.control`), for what only the
listener knows: its URL and session, whether it records, the tunnel, the
forward target, and to replay a delivery (:class:`RemoteLink`). Offline review
has no link at all. Nothing here touches a widget.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # a browser tab's modules: imported by the tab only (start-up time)
    from monitor.control import ControlClient, Status
    from monitor.forwarder import ForwardStats, Outcome
    from monitor.service import Service
    from monitor.tunnel import TunnelState

#: What the header says when a browser tab cannot reach its serve process.
GONE = "the serve process does not answer: deliveries are not being recorded"


class Link(Protocol):
    """What the screens need from the listener, wherever it runs."""

    @property
    def url(self) -> str | None: ...

    @property
    def session_id(self) -> int | None: ...

    @property
    def forward_to(self) -> str | None: ...

    #: The writer's commit notices reach this app (same process); otherwise new rows are polled for.
    receives_commits: bool

    def problem(self) -> str | None:
        """Why the listener refuses deliveries (its own words), or None while it records them."""

    def tunnel_state(self) -> TunnelState | None: ...

    def forward_stats(self) -> ForwardStats | None: ...

    def refresh(self) -> None:
        """Bring the state up to date (may block: called from a worker thread)."""

    def replay(
        self, event_id: int, body: bytes, headers: Mapping[str, str], *, target: str | None, edited: bool
    ) -> concurrent.futures.Future[Outcome]: ...


class ServiceLink:
    """The listener in this process: every answer is read from the running service."""

    receives_commits = True

    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def url(self) -> str | None:
        return self.service.url

    @property
    def session_id(self) -> int | None:
        return self.service.session_id

    @property
    def forward_to(self) -> str | None:
        return self.service.options.forward_to

    def problem(self) -> str | None:
        from monitor.control import listener_problem

        return listener_problem(self.service)

    def tunnel_state(self) -> TunnelState | None:
        return self.service.tunnel_state

    def forward_stats(self) -> ForwardStats | None:
        forwarder = self.service.forwarder
        return forwarder.stats if forwarder is not None and self.forward_to else None

    def refresh(self) -> None:
        """Nothing to fetch: the service is read directly."""

    def replay(
        self, event_id: int, body: bytes, headers: Mapping[str, str], *, target: str | None, edited: bool
    ) -> concurrent.futures.Future[Outcome]:
        return self.service.replay(event_id, body, headers, target=target, edited=edited)


class RemoteLink:
    """A browser tab's view of its ``serve`` process: the last status fetched, and replays sent there."""

    receives_commits = False

    def __init__(self, client: ControlClient) -> None:
        self.client = client
        # Replaced whole by refresh() (a worker thread), read by the UI thread: no lock needed.
        self._status: Status | None = None
        self._error: str | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def url(self) -> str | None:
        return self._status.url if self._status is not None else None

    @property
    def session_id(self) -> int | None:
        return self._status.session_id if self._status is not None else None

    @property
    def forward_to(self) -> str | None:
        return self._status.forward_to if self._status is not None else None

    def problem(self) -> str | None:
        if self._error is not None:
            return f"{GONE} ({self._error})"
        return self._status.problem if self._status is not None else None

    def tunnel_state(self) -> TunnelState | None:
        return self._status.tunnel if self._status is not None else None

    def forward_stats(self) -> ForwardStats | None:
        return self._status.forward if self._status is not None else None

    def refresh(self) -> None:
        """Fetch the serve process's status (blocking, a short timeout); a failure becomes :meth:`problem`."""
        from monitor.control import ControlError

        try:
            status = self.client.status()
        except ControlError as exc:
            self._error = str(exc)
            return
        self._status, self._error = status, None

    def replay(
        self, event_id: int, body: bytes, headers: Mapping[str, str], *, target: str | None, edited: bool
    ) -> concurrent.futures.Future[Outcome]:
        """Ask the serve process (its one writer records the replay); the answer arrives on a thread of ours."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="monitor-replay")
        return self._pool.submit(self.client.replay, event_id, body, headers, target=target, edited=edited)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
