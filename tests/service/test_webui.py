"""The web UI's server with a Textual-free stand-in for a tab's app: page, login, Origin/Host checks, tabs, stop.

The stand-in speaks textual-serve's packet protocol just enough: it writes
``__GANGLION__``, then a data packet with what it found (its pid, its parent,
its environment), echoes stdin, answers resizes, and quits when asked (or,
told to be stubborn, ignores the quit and SIGTERM). The real app in a real
browser is tested in tests/browser.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from monitor import webui
from monitor.control import ControlClient, Status
from monitor.forwarder import Outcome
from monitor.signing import basic_auth_header
from monitor.webui import WebExposureError, WebOptions, WebServer, check_web_exposure
from tests.helpers import wait_until

STAND_IN = r"""
import json, os, signal, sys
mode = sys.argv[1]
if mode == "broken":
    sys.stderr.write("Traceback: boom \x1b]0;pwned\x07\n")
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
out, inp = sys.stdout.buffer, sys.stdin.buffer
def send(kind, payload):
    out.write(kind + len(payload).to_bytes(4, "big") + payload)
    out.flush()
out.write(b"__GANGLION__\n")
out.flush()
hello = {"pid": os.getpid(), "parent": os.getppid(), "env": dict(os.environ), "argv": sys.argv}
send(b"D", json.dumps(hello).encode())
sys.stderr.write("a warning from the tab\n")
sys.stderr.flush()
while True:
    head = inp.read(5)
    if len(head) < 5:
        break
    payload = inp.read(int.from_bytes(head[1:], "big"))
    if head[:1] == b"M":
        meta = json.loads(payload)
        if meta["type"] == "quit" and mode != "stubborn":
            send(b"M", json.dumps({"type": "exit"}).encode())
            break
        if meta["type"] == "resize":
            send(b"D", ("size %sx%s" % (meta["width"], meta["height"])).encode())
    else:
        send(b"D", b"echo:" + payload)
"""


class FakeControl:
    def status(self) -> Status:
        return Status("http://127.0.0.1:8787/", 7, None, None, None, None)

    async def replay(
        self, event_id: int, body: bytes, headers: dict[str, str], *, target: str | None, edited: bool
    ) -> Outcome:
        return Outcome(200, 1.0, None, {}, body, len(body))


Serve = Callable[..., Any]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """``await serve(mode="polite", **options)``: a started WebServer running the stand-in; all stopped after."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    started: list[WebServer] = []

    async def start(mode: str = "polite", *, max_tabs: int = 4, **options: Any) -> WebServer:
        server = WebServer(
            WebOptions(port=0, **options),
            [sys.executable, str(script), mode],
            control=FakeControl(),
            tab_env={"WEBUI_TEST": "yes it's here", "WEBUI_GONE": None},
            max_tabs=max_tabs,
        )
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def hello(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The stand-in's first data packet (what it found when it started)."""
    message = await ws.receive(timeout=20)
    assert message.type == aiohttp.WSMsgType.BINARY, message
    found: dict[str, Any] = orjson.loads(message.data)
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- exposure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        WebOptions(),
        WebOptions(host="::1"),
        WebOptions(host="localhost"),
        WebOptions(host="0.0.0.0", password="pw"),
        WebOptions(host="0.0.0.0", basic_auth=("k", "s")),
        WebOptions(host="192.168.1.5", allow_unauthenticated=True),
    ],
    ids=["default", "ipv6-loopback", "localhost", "password", "basic-auth", "allowed"],
)
def test_exposure_allowed(options: WebOptions) -> None:
    check_web_exposure(options)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", ""], ids=["any4", "any6", "lan", "empty"])
def test_exposure_refused_without_a_password(host: str) -> None:
    with pytest.raises(WebExposureError) as err:
        check_web_exposure(WebOptions(host=host))
    message = str(err.value)
    assert "personal data" in message
    assert all(flag in message for flag in ("--web-password", "--web-mask", "--allow-unauthenticated"))


# -- the page ---------------------------------------------------------------------------------------


async def test_index_page_is_self_contained(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve()
    port = server.url.rsplit(":", 1)[1].rstrip("/")
    async with http.get(server.url, headers={"Host": f"localhost:{port}"}) as response:
        assert response.status == 200
        page = await response.text()
        headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "fonts.googleapis" not in page and "https://" not in page and "<script>" not in page
    assert f'data-session-websocket-url="ws://localhost:{port}/ws"' in page
    assert "<title>conscent-monitor</title>" in page
    for asset in ("/static/js/textual.js", "/static/css/xterm.css", "/static/fonts/RobotoMono-VariableFont_wght.ttf"):
        assert asset in page
        async with http.get(server.url.rstrip("/") + asset) as response:
            assert response.status == 200, asset
    async with http.get(server.url + "_assets/page.js") as response:
        assert response.status == 200 and "addEventListener" in await response.text()


async def test_behind_https_the_websocket_is_wss(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve(password="pw")
    headers = {"X-Forwarded-Proto": "https", "Authorization": basic_auth_header("x", "pw")}
    async with http.get(server.url, headers=headers) as response:
        assert response.status == 200
        page = await response.text()
    host = server.url.split("//", 1)[1].rstrip("/")
    assert f'data-session-websocket-url="wss://{host}/ws"' in page


# -- logging in -------------------------------------------------------------------------------------


async def test_login_with_the_password(serve: Serve) -> None:
    server = await serve(password="s3cret")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # unsafe: cookies for an IP
        async with http.get(server.url) as response:
            page = await response.text()
            assert response.status == 200 and 'type="password"' in page and 'name="user"' not in page
            assert "WWW-Authenticate" not in response.headers  # no browser pop-up: our page asks
            assert response.headers["Referrer-Policy"] == "same-origin"  # the form's POST carries its Origin
        for path in ("static/js/textual.js", "_assets/page.js", "download/abc"):
            async with http.get(server.url + path) as response:
                assert response.status == 401, path
        async with http.get(server.url + "ws") as response:
            assert response.status == 401

        async with http.post(server.url + "login", data={"password": "guess"}) as response:
            assert response.status == 401 and "Wrong password." in await response.text()
            assert not response.cookies

        async with http.post(server.url + "login", data={"password": "s3cret"}, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, "/")
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
        async with http.get(server.url) as response:  # the session's cookie jar sends it
            assert response.status == 200 and "data-session-websocket-url" in await response.text()
        async with http.ws_connect(server.url + "ws") as ws:
            assert (await hello(ws))["argv"][-1] == "polite"


async def test_the_session_cookie_is_secure_behind_https(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve(password="pw")
    headers = {"X-Forwarded-Proto": "https"}
    async with http.post(server.url + "login", data={"password": "pw"}, headers=headers, allow_redirects=False) as r:
        assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("options", "user", "password", "status"),
    [
        ({"password": "pw"}, "anyone", "pw", 200),
        ({"password": "pw"}, "anyone", "nope", 401),
        ({"basic_auth": ("key", "secret")}, "key", "secret", 200),
        ({"basic_auth": ("key", "secret")}, "other", "secret", 401),
        ({"password": "pw", "basic_auth": ("key", "secret")}, "key", "secret", 200),
    ],
    ids=["password", "wrong-password", "basic-auth", "wrong-user", "either"],
)
async def test_basic_authorization_header(
    serve: Serve, http: aiohttp.ClientSession, options: dict[str, Any], user: str, password: str, status: int
) -> None:
    server = await serve(**options)
    headers = {"Authorization": basic_auth_header(user, password)}
    async with http.get(server.url + "static/css/xterm.css", headers=headers) as response:
        assert response.status == status


async def test_the_basic_auth_login_form_asks_for_the_user(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve(basic_auth=("key", "secret"))
    async with http.get(server.url) as response:
        assert 'name="user"' in await response.text()
    async with http.post(server.url + "login", data={"user": "key", "password": "secret"}, allow_redirects=False) as r:
        assert r.status == 303
    async with http.post(server.url + "login", data={"user": "nobody", "password": "secret"}) as response:
        assert response.status == 401


async def test_the_title_is_escaped(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    server = WebServer(WebOptions(port=0, password="pw"), [sys.executable, "-c", "pass"], title="<script>x</script>")
    await server.start()
    try:
        async with http.get(server.url) as response:
            page = await response.text()
        headers = {"Authorization": basic_auth_header("u", "pw")}
        async with http.get(server.url, headers=headers) as response:
            page += await response.text()
    finally:
        await server.stop()
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


# -- Origin and Host ----------------------------------------------------------------------------------


async def test_a_websocket_from_another_site_is_refused(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve()
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(server.url + "ws", origin="http://evil.example")
    assert err.value.status == 403
    assert server.tabs == 0
    async with http.ws_connect(server.url + "ws", origin=server.url.rstrip("/")) as ws:
        assert (await hello(ws))["argv"][-1] == "polite"


async def test_a_login_from_another_site_is_refused(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve(password="pw")
    headers = {"Origin": "http://evil.example"}
    async with http.post(server.url + "login", data={"password": "pw"}, headers=headers) as response:
        assert response.status == 403


@pytest.mark.parametrize(
    ("host", "status"),
    [("evil.example", 403), ("127.0.0.1", 200), ("localhost", 200), ("[::1]", 200), ("127.1.2.3", 200)],
    ids=["rebound", "ip", "localhost", "ipv6", "other-loopback"],
)
async def test_without_a_password_only_loopback_names_are_answered(
    serve: Serve, http: aiohttp.ClientSession, host: str, status: int
) -> None:
    server = await serve()
    async with http.get(server.url, headers={"Host": f"{host}:8788"}) as response:
        assert response.status == status


async def test_with_a_password_any_host_name_may_ask(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve(password="pw")
    async with http.get(server.url, headers={"Host": "monitor.example.com"}) as response:
        assert response.status == 200 and 'type="password"' in await response.text()


# -- the tabs -----------------------------------------------------------------------------------------


async def test_a_tab_runs_the_command_by_exec_with_its_environment(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve()
    assert server.command.startswith("exec ")
    async with http.ws_connect(server.url + "ws?width=100&height=30") as ws:
        found = await hello(ws)
        assert server.tabs == 1
        assert found["parent"] == os.getpid()  # the shell made way for the app: signals reach it
        env = found["env"]
        assert env["WEBUI_TEST"] == "yes it's here" and "WEBUI_GONE" not in env
        assert (env["COLUMNS"], env["ROWS"]) == ("100", "30")
        url, token = env[ControlClient.ENV].split()
        assert url == server.url and token not in server.command
        assert token not in Path(f"/proc/{found['pid']}/cmdline").read_text()
        client = ControlClient.from_env(env)
        assert client is not None
        assert (await asyncio.to_thread(client.status)).session_id == 7

        await ws.send_str(orjson.dumps(["stdin", "q"]).decode())
        assert (await ws.receive(timeout=10)).data == b"echo:q"
        await ws.send_str(orjson.dumps(["resize", {"width": 120, "height": 40}]).decode())
        assert (await ws.receive(timeout=10)).data == b"size 120x40"
        await ws.send_str(orjson.dumps(["ping", "t1"]).decode())
        assert orjson.loads((await ws.receive(timeout=10)).data) == ["pong", "t1"]
        await ws.send_str("not json")  # ignored, the tab lives on
        await ws.send_str(orjson.dumps(["stdin", "k"]).decode())
        assert (await ws.receive(timeout=10)).data == b"echo:k"
    await wait_until(lambda: server.tabs == 0 and gone(found["pid"]), what="the tab's app to end with its page")


async def test_without_control_the_tab_gets_no_address(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    server = WebServer(WebOptions(port=0), [sys.executable, str(script), "polite"])
    await server.start()
    try:
        async with http.ws_connect(server.url + "ws") as ws:
            assert ControlClient.ENV not in (await hello(ws))["env"]
    finally:
        await server.stop()


async def test_past_the_tab_limit_a_tab_is_told_why(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve(max_tabs=1)
    async with http.ws_connect(server.url + "ws") as first:
        await hello(first)
        async with http.ws_connect(server.url + "ws") as second:
            message = await second.receive(timeout=10)
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert second.close_code == 1013
            assert message.extra == "this monitor runs at most 1 tab: close one, then Restart"
        assert server.tabs == 1
    await wait_until(lambda: server.tabs == 0, what="the first tab to end")
    async with http.ws_connect(server.url + "ws") as third:
        await hello(third)


async def test_a_tab_that_cannot_start_is_logged_inert(
    serve: Serve, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve("broken")
    with caplog.at_level(logging.WARNING, logger="monitor.webui"):
        async with http.ws_connect(server.url + "ws") as ws:
            message = await ws.receive(timeout=20)
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert message.extra == "the app could not start: see the monitor's log"
        await wait_until(lambda: server.tabs == 0, what="the broken tab to be forgotten")
    [record] = [r for r in caplog.records if "could not start" in r.getMessage()]
    assert "Traceback: boom" in record.getMessage() and "\x1b" not in record.getMessage()


async def test_stop_with_tabs_connected_ends_every_app(serve: Serve, http: aiohttp.ClientSession) -> None:
    server = await serve()
    async with http.ws_connect(server.url + "ws") as one, http.ws_connect(server.url + "ws") as two:
        pids = [(await hello(one))["pid"], (await hello(two))["pid"]]
        await server.stop()
        assert all(gone(pid) for pid in pids)
        assert server.tabs == 0
        closed = await one.receive(timeout=10)
        assert (closed.type, closed.extra) == (aiohttp.WSMsgType.CLOSE, "the monitor stopped")
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(server.url):
            pass


async def test_stop_kills_an_app_that_ignores_quit_and_sigterm(
    serve: Serve, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(webui, "STOP_GRACE", 0.3)
    server = await serve("stubborn")
    async with http.ws_connect(server.url + "ws") as ws:
        pid = (await hello(ws))["pid"]
        with caplog.at_level(logging.WARNING, logger="monitor.webui"):
            await server.stop()
    assert gone(pid)
    assert any("did not quit: terminating it" in r.getMessage() for r in caplog.records)


async def test_wrong_passwords_are_answered_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel guesses queue behind each other's second: they do not multiply the guessing rate."""
    from monitor import webui

    active, most = 0, 0
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await real_sleep(0.01)
        active -= 1

    monkeypatch.setattr(webui.asyncio, "sleep", sleep)
    server = WebServer(WebOptions(port=0, password="pw"), ["true"])
    await asyncio.gather(*(server._slow_down() for _ in range(5)))
    assert most == 1


async def test_the_control_channel_is_the_address_the_server_is_bound_to(serve: Serve) -> None:
    """--web-host 127.0.0.2: the tabs reach that address, not 127.0.0.1 (where nothing listens)."""
    server = await serve(host="127.0.0.2")
    assert server.control_address is not None
    assert server.control_address.startswith("http://127.0.0.2:")
    assert server.url is not None and server.url.startswith("http://127.0.0.2:")
