"""A pytest plugin for the developer's own tests: a real monitor per test, and assertions on what it received.

Registered by the ``pytest11`` entry point, so every project that installs
conscent-monitor gets the fixtures ``conscent_monitor`` (a listener on a free
port with a temporary database) and ``conscent_monitor_factory`` (the same
with ``secret``, ``require_signature`` or ``forward_to``). A timed-out
:meth:`ConscentMonitor.wait_for` fails the test saying what arrived instead
(the report of ``conscent-monitor wait``, from :mod:`monitor.waiting`).

pytest loads this module in every project that installs the package, at
start-up, whether or not a test uses it: it imports nothing but pytest and the
standard library at module level (the monitor, aiohttp and SQLite are imported
when a fixture starts one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from monitor.journey import JourneyStep
    from monitor.service import Service

__all__ = ["ConscentMonitor", "conscent_monitor", "conscent_monitor_factory"]


class ConscentMonitor:
    """A running monitor: post to :attr:`url`, then assert on what :attr:`db_path` recorded.

    Deliveries are dicts: ``id``, ``received_at``, ``event``, ``user_id``,
    ``signature`` (``valid``, ``invalid``, ``missing`` or ``unchecked``) and
    ``body`` (the parsed JSON).
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        self.url: str = service.url
        self.db_path: Path = Path(service.options.db_path)
        self.secret: str | None = service.options.secret

    def __repr__(self) -> str:
        return f"<ConscentMonitor {self.url} db={self.db_path}>"

    def post(self, body: bytes | Mapping[str, Any], *, headers: Mapping[str, str] | None = None) -> int:
        """POST ``body`` (bytes as they are, a dict as JSON) the way Conscent does, signed with the secret if any.

        Returns the HTTP status (a refusal is a status, not an exception).
        """
        import urllib.error
        import urllib.request

        import orjson

        from monitor.sender import prepare

        data = body if isinstance(body, bytes) else orjson.dumps(body)
        request = urllib.request.Request(  # noqa: S310  (our own http://127.0.0.1 URL)
            self.url, data=data, headers=prepare(data, secret=self.secret, extra_headers=dict(headers or {}))
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    @staticmethod
    def sample(name: str) -> bytes:
        """A sample body shipped with conscent-monitor: ``payment_gateway.view``, ``payment_gateway.close``, ..."""
        from monitor.resources import sample_events_dir

        return (sample_events_dir() / f"{name.removesuffix('.json')}.json").read_bytes()

    def wait_for(self, filter: str = "", count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first ``count`` deliveries matching ``filter`` (the TUI's language), once recorded.

        Fails the test after ``timeout`` seconds with what arrived instead.
        """
        __tracebackhide__ = True  # the failure is the test's: pytest shows its line, not this one
        from monitor.waiting import Waiter, WaitError, delivery

        try:
            waiter = Waiter(self.db_path, filter, since="session")
        except WaitError as exc:
            raise ValueError(str(exc)) from None
        with waiter:
            outcome = waiter.wait(count, timeout)
            if not outcome.satisfied:
                raise AssertionError(waiter.report(outcome, timeout))
            return [delivery(row) for row in outcome.matched]

    async def wait_for_async(self, filter: str = "", count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """:meth:`wait_for` for an async test: waits in a thread, so the test's own loop keeps running."""
        __tracebackhide__ = True
        return await asyncio.to_thread(self.wait_for, filter, count, timeout)

    def deliveries(self, filter: str = "") -> list[dict[str, Any]]:
        """Every delivery recorded so far that matches ``filter``, oldest first."""
        from monitor import queries, store
        from monitor.waiting import compile_or_fail, delivery

        compiled = compile_or_fail(filter)
        db = store.connect(self.db_path, readonly=True)
        try:
            upto, _ = queries.newest_ids(db)
            rows = queries.waited_in_window(db, compiled.where, compiled.params, since=0.0, upto_id=upto, limit=-1)
        finally:
            db.close()
        return [delivery(row) for row in rows]

    def journey(self, user_id: str) -> list[JourneyStep]:
        """The reader's events in time order, each view paired with its close (``monitor.journey``)."""
        from monitor import queries, store
        from monitor.journey import build_journey

        db = store.connect(self.db_path, readonly=True)
        try:
            return build_journey(queries.reader_events(db, user_id))
        finally:
            db.close()

    def pairs(self, user_id: str | None = None) -> list[JourneyStep]:
        """The payment-gateway views that found their close: ``.time_to_close``, ``.close_action``, ``.paired_by``.

        One reader's, or every reader's (in the order their first event arrived).
        """
        readers = [user_id] if user_id is not None else self._readers()
        return [
            step for reader in readers for step in self.journey(reader) if step.is_view and step.pair_id is not None
        ]

    def _readers(self) -> list[str]:
        seen = dict.fromkeys(d["user_id"] for d in self.deliveries() if d["user_id"] is not None)
        return list(seen)


@pytest.fixture
def conscent_monitor_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ConscentMonitor]]:
    """``conscent_monitor_factory(secret=..., require_signature=..., forward_to=...)``: a started monitor.

    Each call starts one more listener on a free port of 127.0.0.1, with a
    database of its own; all are stopped when the test ends.
    """
    started: list[Service] = []

    def start(
        *, secret: str | None = None, require_signature: bool = False, forward_to: str | None = None
    ) -> ConscentMonitor:
        from monitor.service import Options, Service

        if require_signature and not secret:
            raise ValueError("require_signature=True needs a secret to check signatures with")
        folder = tmp_path_factory.mktemp("conscent-monitor")
        options = Options(
            db_path=folder / "monitor.db",
            port=0,
            mode="pytest",
            secret=secret,
            require_auth=require_signature,
            forward_to=forward_to,
        )
        service = Service(options)
        service.start_in_thread()
        started.append(service)
        return ConscentMonitor(service)

    yield start
    for service in started:
        service.stop_thread()


@pytest.fixture
def conscent_monitor(conscent_monitor_factory: Callable[..., ConscentMonitor]) -> ConscentMonitor:
    """A monitor listening on a free port with a temporary database: ``.url``, ``.wait_for(...)``, ``.pairs()``."""
    return conscent_monitor_factory()
