"""The web UI's server: the monitor's screens in browser tabs, over textual-serve.

Each browser tab's websocket starts one *tab process* (the command given,
run through textual-serve's :class:`~textual_serve.app_service.AppService`
as ``exec COMMAND`` so signals reach the app) and relays textual-serve's
protocol between them; ``/download/{key}`` (exports) and ``/static`` (its
xterm.js page) are textual-serve's. What changes here is what a monitor
holding readers' personal data needs:

- a login page (``--web-password``, or the listener's ``--basic-auth``) in
  front of every route, a random session cookie (HttpOnly, SameSite=Strict)
  kept in memory, ``Authorization: Basic`` accepted too, and a second's wait
  after each wrong password;
- the websocket refused (403) when its ``Origin`` is another site (cross-site
  websocket hijacking), and, when there is no password on loopback, any
  ``Host`` that is not a loopback name (DNS rebinding);
- a page that asks nothing of any other machine (no web fonts: textual-serve's
  own Roboto Mono is served from ``/static``), framed by no one, cached
  nowhere, with the websocket's address taken from the request;
- at most ``max_tabs`` tab processes; the next tab is told why it is refused;
- a stop that never hangs on connected tabs: each app is asked to quit,
  terminated after a few seconds, then killed, before the server stops;
- the control channel (:mod:`monitor.control`) for the tab processes, behind
  a per-process token instead of the cookie.

The tab processes' stderr goes to Python logging (inert); nothing here
prints. No Textual or Rich imports of its own (textual-serve brings Rich).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import html
import io
import logging
import secrets
import shlex
import string
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager
from textual_serve.server import Server

from monitor.control import (
    MAX_MESSAGE,
    REPLAY_PATH,
    STATUS_PATH,
    TOKEN_HEADER,
    BadRequest,
    ControlClient,
    ControlHandler,
    replay_answer,
    status_answer,
)
from monitor.service import DEFAULT_WEB_PORT, is_loopback, tunnel_target
from monitor.textsafe import clean, inert
from monitor.wording import count

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("web_assets")
#: Tab processes running at once; each is a Python process with the whole app (63 MB RSS each, measured).
MAX_TABS = 16
#: Seconds a tab's app has to quit when asked, then again after SIGTERM, before it is killed.
STOP_GRACE = 3.0
SESSION_COOKIE = "conscent_monitor_session"
#: Logged-in browsers remembered; past it the oldest must log in again.
MAX_SESSIONS = 1024
#: Seconds before a wrong password is answered: guessing goes slowly.
WRONG_PASSWORD_DELAY = 1.0
#: What is kept of a tab's stderr for the log.
STDERR_LIMIT = 64 * 1024
#: The page loads only from this server: scripts from files (no inline script), styles inline too (xterm.js
#: adds its own), the websocket to the same host.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


@dataclass(frozen=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_WEB_PORT  # 0 takes a free one
    password: str | None = None  # --web-password
    basic_auth: tuple[str, str] | None = None  # the listener's --basic-auth KEY:SECRET, accepted here too
    allow_unauthenticated: bool = False
    mask: bool = False  # --web-mask: the caller adds --mask to the tab command; kept here for the banner

    @property
    def needs_login(self) -> bool:
        return bool(self.password or self.basic_auth)


class WebExposureError(ValueError):
    """A web UI on a non-loopback address without a password."""


def check_web_exposure(options: WebOptions) -> None:
    """The listener's rule (:func:`monitor.service.check_exposure`) for the web UI."""
    if options.needs_login or options.allow_unauthenticated or is_loopback(options.host):
        return
    raise WebExposureError(
        f"refusing to serve the web UI on {options.host or 'every address'} without --web-password or "
        "--basic-auth: it shows readers' personal data to anyone who can reach it (set --web-password, "
        "add --web-mask to hide personal data, or pass --allow-unauthenticated if you really mean it)"
    )


class WebServer:
    """The web UI on its own port, on the running loop (see the module's docstring)."""

    def __init__(
        self,
        options: WebOptions,
        tab_command: Sequence[str],
        *,
        title: str = "conscent-monitor",
        control: ControlHandler | None = None,
        tab_env: Mapping[str, str | None] | None = None,
        max_tabs: int = MAX_TABS,
    ) -> None:
        """``tab_env`` is added to each tab's environment (a None value removes a variable)."""
        self.options = options
        self.title = title
        self.control = control
        self.max_tabs = max_tabs
        #: What textual-serve runs through ``/bin/sh -c``: ``exec`` puts the app in the shell's place.
        self.command = "exec " + shlex.join(tab_command)
        self._tab_env = dict(tab_env or {})
        self._token = secrets.token_urlsafe(32)  # the control channel's; only in the tabs' environment
        # textual-serve's own server: its download route, its download manager, its static folder.
        self._textual = Server(self.command, host=options.host, port=options.port, title=title)
        self._index = string.Template((ASSETS / "app_index.html").read_text("utf-8"))
        self._login = string.Template((ASSETS / "login.html").read_text("utf-8"))
        self._sessions: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._tabs: set[_Tab] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._control_url: str | None = None
        self._stopping = False
        #: Wrong passwords are answered one at a time, a second each: parallel guesses queue, not multiply.
        self._guess_lock = asyncio.Lock()
        # No password on loopback: only loopback names may be asked for (DNS rebinding).
        self._loopback_only = not options.needs_login and is_loopback(options.host)

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def control_address(self) -> str | None:
        """What the tabs find in ``CONSCENT_MONITOR_CONTROL`` (``"URL TOKEN"``) once started; None without control."""
        if self.control is None or self._control_url is None:
            return None
        return f"{self._control_url} {self._token}"

    @property
    def tabs(self) -> int:
        """Tab processes running (or starting) now."""
        return len(self._tabs)

    async def start(self) -> str:
        """Listen on the running loop; the URL (the real port when it was 0). OSError when it cannot listen."""
        self._runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        bound, port = self._runner.addresses[0][:2]  # the socket itself: --web-host localhost may be ::1
        host = self.options.host
        wildcard = host in ("", "0.0.0.0", "::")  # noqa: S104 - recognising it, not binding it
        reach = tunnel_target(host) if wildcard else (f"[{bound}]" if ":" in bound else bound)
        local = f"http://{reach}:{port}/"  # where this machine (and its tabs' control channel) reaches it
        self._control_url = local
        self._url = local if wildcard else f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        return self._url

    async def stop(self) -> None:
        """Every tab's app first (asked to quit, then terminated, then killed), then the server."""
        self._stopping = True
        for tab in self._tabs:
            tab.farewell = "the monitor stopped"
        await asyncio.gather(*(tab.end() for tab in list(self._tabs)), return_exceptions=True)
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"the monitor stopped") for ws in list(self._sockets)),
            return_exceptions=True,
        )
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index_page)
        app.router.add_post("/login", self._log_in)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/download/{key}", self._textual.handle_download)
        app.router.add_get("/_assets/page.js", self._page_script)
        app.router.add_static("/static", self._textual.statics_path)
        if self.control is not None:
            app.router.add_get(STATUS_PATH, self._status)
            app.router.add_post(REPLAY_PATH, self._replay)
        app.on_response_prepare.append(_add_page_headers)
        return app

    # -- who may ask ------------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The Host, Origin and login checks, in front of every route but the control channel's."""
        if self.control is not None and request.path in (STATUS_PATH, REPLAY_PATH):
            return await handler(request)  # the tab processes have no cookie: their token is checked there
        if self._loopback_only and not _loopback_host(request.host):
            raise web.HTTPForbidden(text="this web UI answers only to localhost (ask for 127.0.0.1 or localhost)\n")
        if (request.path == "/ws" or request.method == "POST") and not _same_origin(request):
            raise web.HTTPForbidden(text="cross-origin request refused\n")
        if self.options.needs_login and request.path != "/login" and not await self._logged_in(request):
            if request.path == "/" and request.method == "GET":
                return self._login_page()
            raise web.HTTPUnauthorized(text="log in first: open / in a browser\n")
        return await handler(request)

    def _accepts(self, user: str, password: str) -> bool:
        """``--web-password`` with any user name, or exactly the ``--basic-auth`` pair (constant time)."""
        accepted = False
        if self.options.password:
            accepted |= hmac.compare_digest(password.encode(), self.options.password.encode())
        if self.options.basic_auth:
            key, secret = self.options.basic_auth
            same_user = hmac.compare_digest(user.encode(), key.encode())
            accepted |= same_user & hmac.compare_digest(password.encode(), secret.encode())
        return accepted

    async def _logged_in(self, request: web.Request) -> bool:
        if request.cookies.get(SESSION_COOKIE, "") in self._sessions:
            return True
        header = request.headers.get("Authorization")
        if not header:
            return False
        credentials = _basic_credentials(header)
        if credentials is not None and self._accepts(*credentials):
            return True
        await self._slow_down()
        return False

    async def _slow_down(self) -> None:
        """After a wrong password: a second, one guess at a time over every connection."""
        async with self._guess_lock:
            await asyncio.sleep(WRONG_PASSWORD_DELAY)

    def _login_page(self, *, status: int = 200, message: str = "") -> web.Response:
        user_field = ""
        if self.options.basic_auth:
            label = "User (the listener's --basic-auth)" if self.options.password else "User"
            user_field = (
                f'<label for="user">{html.escape(label)}</label><input id="user" name="user" autocomplete="username" />'
            )
        page = self._login.substitute(
            title=html.escape(self.title),
            message=f'<p class="error">{html.escape(message)}</p>' if message else "",
            user_field=user_field,
        )
        # The form's POST then carries its Origin (under no-referrer Chromium sends "Origin: null", which the
        # Origin check refuses); the page has no link anywhere else.
        headers = {"Referrer-Policy": "same-origin"}
        return web.Response(status=status, text=page, content_type="text/html", headers=headers)

    async def _log_in(self, request: web.Request) -> web.StreamResponse:
        if not self.options.needs_login:
            raise web.HTTPSeeOther("/")
        form = await request.post()
        user, password = form.get("user", ""), form.get("password", "")
        if isinstance(user, str) and isinstance(password, str) and self._accepts(user, password):
            token = secrets.token_urlsafe(32)
            self._sessions[token] = None
            while len(self._sessions) > MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            response = web.Response(status=303, headers={"Location": "/"})
            response.set_cookie(
                SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=_https(request)
            )
            return response
        await self._slow_down()
        return self._login_page(status=401, message="Wrong password.")

    # -- the page and the tabs ----------------------------------------------------------------------

    async def _index_page(self, request: web.Request) -> web.Response:
        scheme = "wss" if _https(request) else "ws"
        font_size = min(max(_number(request.query.get("fontsize"), 16), 6), 64)
        page = self._index.substitute(
            title=html.escape(self.title),
            ws_url=html.escape(f"{scheme}://{request.host}/ws"),
            font_size=font_size,
        )
        return web.Response(text=page, content_type="text/html")

    async def _page_script(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(ASSETS / "page.js", headers={"Content-Type": "text/javascript"})

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab: start its app, relay textual-serve's protocol, end the app when the tab goes."""
        ws = web.WebSocketResponse(heartbeat=15.0, timeout=2.0)
        if self._stopping or len(self._tabs) >= self.max_tabs:
            await ws.prepare(request)
            reason = (
                "the monitor is stopping"
                if self._stopping
                else f"this monitor runs at most {count(self.max_tabs, 'tab')}: close one, then Restart"
            )
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=reason.encode())
            return ws
        tab = _Tab(self.command, self._tab_environment(), ws, self._textual.download_manager)
        self._tabs.add(tab)  # counted from now: the limit holds while tabs start
        try:
            await ws.prepare(request)
            if self._stopping:  # stop() ran while the page connected: start no app
                return ws
            self._sockets.add(ws)
            width = min(max(_number(request.query.get("width"), 80), 1), 1000)
            height = min(max(_number(request.query.get("height"), 24), 1), 1000)
            await tab.start(width, height)
            await _relay(ws, tab)
        except OSError as exc:  # the app cannot be started at all
            log.warning("a browser tab's app could not start: %s", inert(exc))
        finally:
            self._sockets.discard(ws)
            await tab.end()
            self._tabs.discard(tab)
        return ws

    def _tab_environment(self) -> dict[str, str | None]:
        environment: dict[str, str | None] = {ControlClient.ENV: None, **self._tab_env}
        if self.control_address is not None:
            environment[ControlClient.ENV] = self.control_address
        return environment

    # -- the control channel ------------------------------------------------------------------------

    def _token_matches(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get(TOKEN_HEADER, "").encode(), self._token.encode())

    async def _status(self, request: web.Request) -> web.Response:
        if not self._token_matches(request):
            return _json_error(403, "wrong or missing control token")
        assert self.control is not None
        return web.Response(body=status_answer(self.control), content_type="application/json")

    async def _replay(self, request: web.Request) -> web.Response:
        if not self._token_matches(request):
            return _json_error(403, "wrong or missing control token")
        assert self.control is not None
        body = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > MAX_MESSAGE:
                return _json_error(413, "replay request too large")
        try:
            answer = await replay_answer(self.control, bytes(body))
        except BadRequest as exc:
            return _json_error(400, f"not a replay request ({exc})")
        except Exception as exc:  # the tab shows it; the traceback stays here
            log.exception("a replay asked by a browser tab failed")
            return _json_error(500, f"the replay failed: {exc}")
        return web.Response(body=answer, content_type="application/json")


class _Tab(AppService):
    """One browser tab's app process (textual-serve's AppService, with our environment, logging and stop)."""

    def __init__(
        self,
        command: str,
        environment: Mapping[str, str | None],
        websocket: web.WebSocketResponse,
        downloads: DownloadManager,
    ) -> None:
        super().__init__(
            command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=self._close_page,
            download_manager=downloads,
        )
        self._environment = dict(environment)
        self._websocket = websocket
        self._ending: asyncio.Task[None] | None = None
        #: Why the page's websocket closes, shown in its "Session ended" dialog (empty: the user quit the app).
        self.farewell = ""

    async def _close_page(self) -> None:
        await self._websocket.close(message=self.farewell.encode())

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width=width, height=height)
        for name, value in self._environment.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return environment

    async def run(self) -> None:
        """textual-serve's packet loop; the app's stderr goes to the log, and the tab is closed when the app ends."""
        process = self._process
        assert process is not None and process.stdout is not None and process.stderr is not None
        stderr = io.BytesIO()
        reading = asyncio.create_task(_collect(process.stderr, stderr))
        started = False
        try:
            started = await _wait_for_prelude(process.stdout)
            if started:
                await self._relay_packets(process.stdout)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass  # the app ended, or the browser went
        except asyncio.CancelledError:
            pass  # stopped (textual-serve's stop waits for this task)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        said = stderr.getvalue().decode("utf-8", "replace").strip()
        if said or not started:
            what = "could not start" if not started else "wrote to stderr"
            log.warning("a browser tab's app (pid %s) %s: %s", process.pid, what, clean(said, limit=4000) or "-")
        if not started:
            self.farewell = "the app could not start: see the monitor's log"
        with contextlib.suppress(Exception):
            await self._close_page()

    async def _relay_packets(self, stdout: asyncio.StreamReader) -> None:
        while True:
            kind = await stdout.readexactly(1)
            size = int.from_bytes(await stdout.readexactly(4), "big")
            payload = await stdout.readexactly(size)
            if kind == b"D":
                await self.on_data(payload)
            elif kind == b"M":
                await self.on_meta(payload)
            elif kind == b"P":
                await self.on_packed(payload)

    async def end(self) -> None:
        """Ask the app to quit; SIGTERM after ``STOP_GRACE`` seconds, SIGKILL after as many again. Idempotent."""
        # Again when an earlier end found no process yet and the app started after it (stop() during a start).
        if self._ending is None or (
            self._ending.done() and self._process is not None and self._process.returncode is None
        ):
            self._ending = asyncio.create_task(self._end(STOP_GRACE))
        await asyncio.shield(self._ending)

    async def _end(self, grace: float) -> None:
        process = self._process
        if process is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop(), grace)  # textual-serve's: a quit packet, then its output ends
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), max(0.0, deadline - loop.time()))
        if process.returncode is not None:
            return
        log.warning("a browser tab's app (pid %s) did not quit: terminating it", process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _relay(ws: web.WebSocketResponse, tab: _Tab) -> None:
    """textual-serve's browser-to-app messages: ``["stdin", text]``, ``["resize", {...}]``, ping, blur, focus."""
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            envelope = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(envelope, list) or not envelope:
            continue
        kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        if kind == "stdin" and isinstance(data, str):
            await tab.send_bytes(data.encode("utf-8", "replace"))
        elif kind == "resize" and isinstance(data, dict):
            width, height = data.get("width"), data.get("height")
            if isinstance(width, int) and isinstance(height, int) and 0 < width <= 1000 and 0 < height <= 1000:
                await tab.set_terminal_size(width, height)
        elif kind == "ping":
            await ws.send_str(orjson.dumps(["pong", data]).decode())
        elif kind == "blur":
            await tab.blur()
        elif kind == "focus":
            await tab.focus()


async def _wait_for_prelude(stdout: asyncio.StreamReader) -> bool:
    """A Textual app under the web driver writes ``__GANGLION__`` first (textual-serve allows ten lines)."""
    for _ in range(10):
        line = await stdout.readline()
        if not line:
            return False
        if line == b"__GANGLION__\n":
            return True
    return False


async def _collect(stream: asyncio.StreamReader, into: io.BytesIO) -> None:
    """Read ``stream`` to its end (the app never blocks on it), keeping its first ``STDERR_LIMIT`` bytes."""
    while data := await stream.read(4096):
        if into.tell() < STDERR_LIMIT:
            into.write(data[: STDERR_LIMIT - into.tell()])


async def _add_page_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from ``Authorization: Basic ...``; None when it is not that."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    return (user, password) if sep else None


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")


def _number(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _https(request: web.Request) -> bool:
    """Served over https, here or at a reverse proxy in front (``X-Forwarded-Proto``)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def _authority(value: str, scheme: str) -> tuple[str, int] | None:
    """``host[:port]`` as (lower-case host, port with the scheme's default); None when it is not one."""
    try:
        parts = urlsplit(f"{scheme}://{value}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.path or parts.query or parts.username is not None:
        return None
    return host, port or (443 if scheme in ("https", "wss") else 80)


def _loopback_host(value: str) -> bool:
    authority = _authority(value, "http")
    return authority is not None and is_loopback(authority[0])


def _same_origin(request: web.Request) -> bool:
    """No ``Origin`` (not a browser), or one naming the host asked for (``Host`` or a proxy's ``X-Forwarded-Host``).

    A browser always sends ``Origin`` with a websocket and a POST, and a page
    cannot set it, nor any header, on a websocket.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https"):
        return False
    wanted = _authority(parts.netloc, parts.scheme)
    scheme = "https" if _https(request) else "http"
    hosts = [request.host, request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()]
    return wanted is not None and any(_authority(host, scheme) == wanted for host in hosts if host)
