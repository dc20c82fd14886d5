"""The control channel: a browser tab's app asks the ``serve`` process what only its listener knows.

In web mode each browser tab is a process of its own that reads the database
read-only. The one process holding the listener and the writer answers two
requests on its web server (routed by :mod:`monitor.webui`):
``GET /_monitor/status`` (the listener's URL and session, why it refuses
deliveries, the tunnel, the forward target's stats) and
``POST /_monitor/replay`` (send a stored delivery again; the one writer
records it). Both need the per-process token the tab finds, with the URL, in
``CONSCENT_MONITOR_CONTROL`` (never on a command line, where ``ps`` shows it).

JSON (orjson) both ways, bodies in base64. The tab's side
(:class:`ControlClient`) is blocking stdlib ``urllib``, called from worker
threads, with short timeouts and no proxy; it treats every answer as
untrusted-but-ours: types are checked against the dataclasses and anything
odd is a :class:`ControlError` of one sentence. A replay the forwarder could
not deliver is an :class:`~monitor.forwarder.Outcome` with its ``error``, not
an exception. No Textual, Rich or click here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import os
import types
import typing
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import orjson

from monitor.forwarder import ForwardStats, Outcome
from monitor.textsafe import inert
from monitor.tunnel import TunnelState

if TYPE_CHECKING:
    from monitor.service import Service

log = logging.getLogger(__name__)

T = TypeVar("T")

STATUS_PATH = "/_monitor/status"
REPLAY_PATH = "/_monitor/replay"
TOKEN_HEADER = "X-Conscent-Monitor-Token"  # noqa: S105 - a header's name
#: The largest request or answer the channel reads: a replay carries one stored body (the listener's cap is 1 MiB).
MAX_MESSAGE = 64 * 1024 * 1024
#: What the header says while the writer refuses deliveries without saying why.
UNWRITABLE = "the database cannot be written: deliveries are refused (503)"


@dataclass(frozen=True)
class Status:
    """The live state a tab's header shows."""

    url: str | None  # the listener's URL
    session_id: int | None
    forward_to: str | None
    problem: str | None  # why the listener refuses deliveries, else None
    tunnel: TunnelState | None
    forward: ForwardStats | None


class ControlHandler(Protocol):
    """What the web server's control routes call (in the serve process, on its loop)."""

    def status(self) -> Status: ...

    async def replay(
        self, event_id: int, body: bytes, headers: dict[str, str], *, target: str | None, edited: bool
    ) -> Outcome: ...


class ControlError(Exception):
    """The serve process is gone or answered badly (one sentence, inert)."""


def listener_problem(service: Service) -> str | None:
    """Why ``service``'s listener refuses deliveries (the writer's own words), or None while it records them."""
    writer = service.writer
    if writer.healthy:
        return None
    return writer.stats.last_error or UNWRITABLE


class ServiceControl:
    """A :class:`ControlHandler` over a running :class:`~monitor.service.Service`.

    ``serve`` runs the service on the web server's own loop
    (:meth:`Service.start`); a service on a thread of its own
    (:meth:`Service.start_in_thread`) works too, through its loop.
    """

    def __init__(self, service: Service) -> None:
        self.service = service

    def status(self) -> Status:
        service = self.service
        forwarder = service.forwarder
        forward_to = service.options.forward_to
        return Status(
            url=service.url or None,
            session_id=service.session_id,
            forward_to=forward_to,
            problem=listener_problem(service),
            tunnel=service.tunnel_state,
            forward=forwarder.stats if forwarder is not None and forward_to else None,
        )

    async def replay(
        self, event_id: int, body: bytes, headers: dict[str, str], *, target: str | None, edited: bool
    ) -> Outcome:
        service = self.service
        try:
            future = service.replay(event_id, body, headers, target=target, edited=edited)
        except RuntimeError:  # no loop of its own: the service runs on this one (serve)
            return await self._replay_here(event_id, body, headers, target=target, edited=edited)
        return await asyncio.wrap_future(future)

    async def _replay_here(
        self, event_id: int, body: bytes, headers: dict[str, str], *, target: str | None, edited: bool
    ) -> Outcome:
        return await self.service.replay_here(event_id, body, headers, target=target, edited=edited)


# -- the serve process's side: JSON in and out ----------------------------------------------------


class BadRequest(ValueError):
    """A control request that does not have the expected shape."""


def _default(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def encode(value: object) -> bytes:
    """A status, an outcome or a request as JSON (bytes in base64, paths as strings)."""
    return orjson.dumps(value, default=_default)


def status_answer(handler: ControlHandler) -> bytes:
    return encode(handler.status())


@dataclass(frozen=True)
class ReplayRequest:
    event_id: int
    body: bytes
    headers: dict[str, str]
    target: str | None
    edited: bool


async def replay_answer(handler: ControlHandler, request_body: bytes) -> bytes:
    """Run the replay ``request_body`` asks for; :class:`BadRequest` when it is not a replay request."""
    try:
        request = rebuild(ReplayRequest, _json(request_body))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    outcome = await handler.replay(
        request.event_id, request.body, request.headers, target=request.target, edited=request.edited
    )
    return encode(outcome)


# -- checking what arrives against the dataclasses ----------------------------------------------------


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def rebuild(cls: type[T], data: object) -> T:
    """An instance of the dataclass ``cls`` from decoded JSON, every field's type checked; ValueError if not."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: not an object")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}: no {field.name}")
            continue
        values[field.name] = _checked(hints[field.name], data[field.name], f"{cls.__name__}.{field.name}")
    return cls(**values)


def _checked(kind: Any, value: object, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        for arm in (arg for arg in args if arg is not type(None)):
            try:
                return _checked(arm, value, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: unexpected {type(value).__name__}")
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"{where}: unexpected value")
    if origin is list and isinstance(value, list):
        return [_checked(args[0], item, where) for item in value]
    if origin is dict and isinstance(value, dict):
        return {_checked(args[0], k, where): _checked(args[1], v, where) for k, v in value.items()}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return rebuild(kind, value)
    if kind is bytes and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"{where}: not base64") from None
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    raise ValueError(f"{where}: unexpected {type(value).__name__}")


# -- the tab's side ---------------------------------------------------------------------------------


class ControlClient:
    """The serve process's control channel, from a tab process's worker threads (blocking)."""

    ENV = "CONSCENT_MONITOR_CONTROL"

    def __init__(self, url: str, token: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {inert(url)}")
        self.url = url.rstrip("/")
        self._token = token
        # No proxy: the channel is on this machine, and the token must not travel anywhere else.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ControlClient | None:
        """The client ``CONSCENT_MONITOR_CONTROL`` (``"URL TOKEN"``) names; None when unset or malformed."""
        value = environ.get(cls.ENV)
        if not value:
            return None
        parts = value.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://")):
            log.warning("%s is not 'URL TOKEN': ignored", cls.ENV)
            return None
        return cls(parts[0], parts[1])

    def status(self, timeout: float = 2.0) -> Status:
        return self._read(Status, self._call("GET", STATUS_PATH, None, timeout))

    def replay(
        self,
        event_id: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        target: str | None,
        edited: bool,
        timeout: float = 60.0,
    ) -> Outcome:
        """Ask the serve process to send a delivery again; its outcome (a failed send has ``error`` set)."""
        request = ReplayRequest(event_id, body, dict(headers), target, edited)
        return self._read(Outcome, self._call("POST", REPLAY_PATH, encode(request), timeout))

    def _read(self, cls: type[T], answer: bytes) -> T:
        try:
            return rebuild(cls, _json(answer))
        except ValueError as exc:
            raise ControlError(f"the serve process sent an answer this tab cannot read ({inert(exc)})") from None

    def _call(self, method: str, path: str, body: bytes | None, timeout: float) -> bytes:
        headers = {TOKEN_HEADER: self._token}
        if body is not None:
            headers["Content-Type"] = "application/json"
        # The URL's scheme is http(s), checked in __init__.
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)  # noqa: S310
        where = inert(self.url)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                data: bytes = response.read(MAX_MESSAGE + 1)
        except urllib.error.HTTPError as exc:
            raise ControlError(_refusal(exc)) from None
        except TimeoutError:
            raise ControlError(f"the serve process at {where} did not answer within {timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise ControlError(f"the serve process at {where} did not answer within {timeout:g} s") from None
            why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            raise ControlError(
                f"the serve process at {where} cannot be reached ({inert(why)}): has it stopped?"
            ) from None
        except OSError as exc:  # e.g. the connection reset half-way
            raise ControlError(f"the serve process at {where} broke off its answer ({inert(exc)})") from None
        if len(data) > MAX_MESSAGE:
            raise ControlError("the serve process sent an answer this tab cannot read (too large)")
        return data


def _refusal(exc: urllib.error.HTTPError) -> str:
    if exc.code == 403:
        return "the serve process refused this tab's token (403): reload the page"
    try:
        message = orjson.loads(exc.read(4096)).get("error")
    except (orjson.JSONDecodeError, AttributeError, OSError):
        message = None
    said = f": {inert(message)}" if isinstance(message, str) and message else ""
    return f"the serve process answered {exc.code}{said}"
