"""The tunnel in the Service, end to end, with fake tunnel programs on a temporary PATH.

``tests/fixtures/tunnel/fake_tunnel.py`` is linked as ``cloudflared``, ``ngrok``
and ``ssh``; it prints the real programs' output (the samples in that folder)
with the public URL replaced by ``FAKE_TUNNEL_URL``, starts slowly, dies and
ignores SIGTERM when told to. A relay (an aiohttp server on 127.0.0.1, port 0)
stands in for the public side: it forwards every request to the monitor, so
the self-probe goes the whole way and back. Nothing leaves 127.0.0.1 (the DNS
case uses a ``.invalid`` name, which never resolves).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.probe import PROBE_PREFIX
from monitor.service import ExposureError, Options, Service
from monitor.tunnel import Timing, TunnelState
from tests.helpers import read_rows, wait_until

FIXTURES = Path(__file__).parent.parent / "fixtures" / "tunnel"
FAKE = FIXTURES / "fake_tunnel.py"
QUICK = Timing(
    first_backoff=0.05, max_backoff=0.2, probe_interval=0.2, probe_timeout=5, term_grace=0.5, allow_http=True
)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def pids(state: Path) -> list[int]:
    path = state / "pids"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fakes on PATH (first); returns the folder where each run leaves its pid and arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("cloudflared", "ngrok", "ssh"):
        (bin_dir / name).symlink_to(FAKE)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    state = tmp_path / "fake-state"
    monkeypatch.setenv("FAKE_TUNNEL_STATE", str(state))
    return state


class Relay:
    """The public side: forwards to ``target`` (the monitor), or answers ``status`` itself."""

    def __init__(self) -> None:
        self.target = ""
        self.status: int | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._http = aiohttp.ClientSession()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def handle(self, request: web.Request) -> web.Response:
        if self.status is not None:
            return web.Response(status=self.status, text="edge")
        assert self._http is not None
        async with self._http.request(
            request.method, self.target.rstrip("/") + request.path_qs, data=await request.read()
        ) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type=resp.content_type)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    await r.start()
    yield r
    await r.stop()


Start = Callable[..., Awaitable[tuple[Service, list[TunnelState]]]]


@pytest.fixture
async def tunnelled(tmp_path: Path) -> AsyncIterator[Start]:
    """``await tunnelled(relay, tunnel=..., **options)``: a started Service and the states it reported."""
    started: list[Service] = []

    async def start(
        relay: Relay | None = None, timing: Timing = QUICK, **options: Any
    ) -> tuple[Service, list[TunnelState]]:
        options.setdefault("secret", "s3cret")
        seen: list[TunnelState] = []
        service = Service(
            Options(db_path=tmp_path / f"m{len(started)}.db", port=0, **options),
            on_tunnel_change=seen.append,
            tunnel_timing=timing,
        )
        await service.start()
        started.append(service)
        if relay is not None:
            relay.target = service.url
        return service, seen

    yield start
    for service in started:
        await service.stop()


def reachable(service: Service) -> bool:
    state = service.tunnel_state
    return state is not None and state.reachable is True


# -- through the public side and back -------------------------------------------------------------


@pytest.mark.parametrize("spec", ["cloudflared", "ngrok", "ssh:nokey@localhost.run", "ssh:serveo.net"])
async def test_probe_goes_through_the_tunnel_and_back(
    spec: str, fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    monkeypatch.setenv("FAKE_TUNNEL_DELAY", "0.3")  # a slow start: "starting" first
    service, seen = await tunnelled(relay, tunnel=spec)
    await wait_until(lambda: reachable(service), what=f"{spec} reachable")
    state = service.tunnel_state
    assert state is not None
    assert state.provider == spec
    assert state.public_url == relay.url + "/"
    assert state.phase == "up"
    assert state.probe_ms is not None
    assert state.probe_error is None
    assert seen[0].phase == "starting"
    assert seen[-1] == state
    # The probe is never a delivery, nor a rejection.
    db = service.options.db_path
    assert read_rows(db, "select id from events") == []
    assert read_rows(db, "select id from rejected") == []
    port = service.url.rstrip("/").rsplit(":", 1)[1]
    args = (fake / "args").read_text()
    assert f"127.0.0.1:{port}" in args


async def test_the_program_command_and_its_log_next_to_the_database(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    service, _ = await tunnelled(relay, tunnel="cloudflared")
    await wait_until(lambda: reachable(service), what="reachable")
    port = service.url.rstrip("/").rsplit(":", 1)[1]
    assert (fake / "args").read_text().strip() == (f'["tunnel", "--no-autoupdate", "--url", "http://127.0.0.1:{port}"]')
    state = service.tunnel_state
    assert state is not None
    assert state.log_path == service.options.db_path.with_name(service.options.db_path.name + ".tunnel.log")
    log = state.log_path.read_text()
    assert "cloudflared tunnel --no-autoupdate --url" in log
    assert f"|  {relay.url}" in log  # the program's own output, as it wrote it


async def test_ngrok_url_from_its_agent_api(
    fake: Path, tunnelled: Start, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ngrok whose log never names the URL: the local agent API does."""
    api_calls: list[str] = []

    async def tunnels(request: web.Request) -> web.Response:
        api_calls.append(request.path)
        sample = (FIXTURES / "ngrok-api.json").read_text()
        port = relay.target.rstrip("/").rsplit(":", 1)[1]
        body = sample.replace("https://94b1-82-67-199-224.ngrok-free.app", relay.url).replace(":8787", f":{port}")
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/tunnels", tunnels)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        monkeypatch.setenv("FAKE_TUNNEL_QUIET", "1")
        api = f"http://127.0.0.1:{runner.addresses[0][1]}/api/tunnels"
        timing = Timing(**{**_fields(QUICK), "ngrok_api": api, "ngrok_api_after": 0.1})
        service, _ = await tunnelled(relay, timing=timing, tunnel="ngrok")
        await wait_until(lambda: reachable(service), what="reachable through the API's URL")
        assert api_calls
        state = service.tunnel_state
        assert state is not None
        assert state.public_url == relay.url + "/"
    finally:
        await runner.cleanup()


def _fields(timing: Timing) -> dict[str, Any]:
    return {name: getattr(timing, name) for name in timing.__slots__}


async def test_public_url_without_a_program(relay: Relay, tunnelled: Start) -> None:
    service, _ = await tunnelled(relay, public_url=relay.url + "/")
    await wait_until(lambda: reachable(service), what="reachable")
    state = service.tunnel_state
    assert state is not None
    assert (state.provider, state.phase, state.log_path) == ("url", "up", None)


async def test_in_a_thread_the_callback_runs_on_the_listeners_thread(relay: Relay, tmp_path: Path) -> None:
    """The TUI's way: the service on its own loop in a thread; the state read from another thread."""
    threads: list[str] = []
    service = Service(
        Options(db_path=tmp_path / "m.db", port=0, public_url=relay.url, secret="s"),
        on_tunnel_change=lambda state: threads.append(threading.current_thread().name),
        tunnel_timing=QUICK,
    )
    relay.target = service.start_in_thread()
    try:
        await wait_until(lambda: reachable(service), what="reachable")
    finally:
        await asyncio.to_thread(service.stop_thread)
    assert set(threads) == {"monitor-listener"}
    state = service.tunnel_state
    assert state is not None
    assert state.phase == "down"


async def test_get_root_shows_the_public_url_and_no_paths(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    service, _ = await tunnelled(relay, tunnel="cloudflared")
    await wait_until(lambda: reachable(service), what="reachable")
    async with aiohttp.ClientSession() as http:
        for base in (service.url, relay.url + "/"):
            async with http.get(base) as resp:
                text = await resp.text()
                status = await resp.json(content_type=None)
            assert status["url"] == service.url
            assert status["public_url"] == relay.url + "/"
            assert status["tunnel"]["phase"] == "up"
            assert status["tunnel"]["reachable"] is True
            assert status["database"] is None
            assert str(service.options.db_path.parent) not in text
            assert ".tunnel.log" not in text


async def test_get_root_without_a_tunnel_still_names_the_database(tunnelled: Start) -> None:
    service, _ = await tunnelled(secret=None)
    async with aiohttp.ClientSession() as http, http.get(service.url) as resp:
        status = await resp.json()
    assert status["database"] == str(service.options.db_path)
    assert service.tunnel_state is None
    assert status["tunnel"] is None
    assert status["public_url"] is None


async def test_a_wrong_probe_token_is_an_ordinary_404(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    service, _ = await tunnelled(relay, tunnel="cloudflared")
    async with aiohttp.ClientSession() as http:
        async with http.get(relay.url + PROBE_PREFIX + "guessed") as resp:
            assert resp.status == 404
            assert "guessed" not in await resp.text()
        token = service.config.probe_token
        assert token
        async with http.get(service.url.rstrip("/") + PROBE_PREFIX + token) as resp:
            assert resp.status == 200
            assert await resp.text() == token
    rows = read_rows(service.options.db_path, "select status, method, path from rejected")
    assert rows == [{"status": 404, "method": "GET", "path": PROBE_PREFIX + "guessed"}]
    assert read_rows(service.options.db_path, "select id from events") == []


# -- why it is not reachable --------------------------------------------------------------------


async def _probe_error(tunnelled: Start, relay: Relay | None, monkeypatch: pytest.MonkeyPatch, url: str) -> str:
    monkeypatch.setenv("FAKE_TUNNEL_URL", url)
    _, seen = await tunnelled(relay, tunnel="cloudflared")
    await wait_until(lambda: any(s.probe_error for s in seen), what="a probe error")
    error = next(s.probe_error for s in seen if s.probe_error)
    assert error is not None
    assert all(s.reachable is not True for s in seen)
    return error


async def test_dns_not_yet_keeps_retrying_with_back_off(
    fake: Path, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", "http://quick-tunnel-not-yet.invalid")
    service, seen = await tunnelled(tunnel="cloudflared")
    await wait_until(lambda: len({s.probe_error for s in seen if s.probe_error}) >= 3, what="three retries")
    errors = [s.probe_error for s in seen if s.probe_error]
    assert errors[:3] == [
        "DNS not propagated yet: retrying in 0.05 s",
        "DNS not propagated yet: retrying in 0.1 s",
        "DNS not propagated yet: retrying in 0.2 s",
    ]
    state = service.tunnel_state
    assert state is not None
    assert state.phase == "up"  # the tunnel is there; only its name is not known yet
    assert state.public_url == "http://quick-tunnel-not-yet.invalid/"


async def test_tunnel_down_connection_refused(fake: Path, tunnelled: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    error = await _probe_error(tunnelled, None, monkeypatch, closed)
    assert error.startswith("tunnel down: connection refused: retrying in")


async def test_tunnel_down_the_edge_answers_530(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.status = 530
    error = await _probe_error(tunnelled, relay, monkeypatch, relay.url)
    assert error.startswith("tunnel down: the public side answered 530")


async def test_someone_elses_server_is_a_wrong_answer(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.status = 200  # answers "edge" to everything, like a parked domain
    error = await _probe_error(tunnelled, relay, monkeypatch, relay.url)
    assert error.startswith("wrong answer: HTTP 200")


# -- the program's life ---------------------------------------------------------------------------


async def test_a_dying_program_is_restarted_with_back_off(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    monkeypatch.setenv("FAKE_TUNNEL_DIE_RUNS", "2")
    monkeypatch.setenv("FAKE_TUNNEL_EXIT", "3")
    # A run shorter than the longest back-off does not reset it: 0.05 s, then 0.1 s.
    timing = Timing(**{**_fields(QUICK), "max_backoff": 5.0})
    service, seen = await tunnelled(relay, timing=timing, tunnel="cloudflared")
    await wait_until(
        lambda: reachable(service) and getattr(service.tunnel_state, "restarts", 0) == 2,
        what="reachable after two deaths",
    )
    restarting = [s.detail for s in seen if s.phase == "restarting"]
    assert "restarting in 0.05 s (cloudflared exited 3: ERR connection lost (run 1))" in restarting
    assert "restarting in 0.1 s (cloudflared exited 3: ERR connection lost (run 2))" in restarting
    assert all(s.public_url is None for s in seen if s.phase == "restarting")  # a dead quick tunnel's URL is gone
    assert [running(pid) for pid in pids(fake)] == [False, False, True]
    log = service.options.db_path.with_name(service.options.db_path.name + ".tunnel.log").read_text()
    assert log.count("cloudflared tunnel --no-autoupdate") == 3
    assert "cloudflared exited 3" in log


async def test_stop_ends_a_program_that_ignores_sigterm(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    monkeypatch.setenv("FAKE_TUNNEL_IGNORE_TERM", "600")
    service, seen = await tunnelled(relay, tunnel="ngrok")
    await wait_until(lambda: reachable(service), what="reachable")
    [pid] = pids(fake)
    await service.stop()
    assert not running(pid)
    assert seen[-1].phase == "down"
    assert "ignoring signal 15" in service.options.db_path.with_name("m0.db.tunnel.log").read_text()


async def test_missing_program_says_how_to_install_it_and_the_monitor_runs_on(
    tmp_path: Path, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    service, _ = await tunnelled(tunnel="cloudflared")
    await wait_until(lambda: getattr(service.tunnel_state, "phase", "") == "missing", what="missing")
    state = service.tunnel_state
    assert state is not None
    assert state.detail.startswith("cloudflared is not installed: ")
    assert state.public_url is None
    async with aiohttp.ClientSession() as http:
        async with http.post(service.url, data=b'{"event":"view"}', headers={"X-Conscent-Signature": "x"}) as resp:
            assert resp.status in (200, 400)  # answered: the listener is up
        async with http.get(service.url) as resp:
            assert (await resp.json())["tunnel"]["phase"] == "missing"


# -- security -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [({"tunnel": "cloudflared"}, "--tunnel cloudflared"), ({"public_url": "https://hooks.example"}, "--public-url")],
)
def test_a_tunnel_without_auth_is_refused(tmp_path: Path, options: dict[str, Any], named: str) -> None:
    with pytest.raises(ExposureError, match=named):
        Service(Options(db_path=tmp_path / "m.db", port=0, **options))
    assert not (tmp_path / "m.db").exists()


async def test_a_tunnel_with_allow_unauthenticated_starts(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    service, _ = await tunnelled(relay, tunnel="cloudflared", secret=None, allow_unauthenticated=True)
    await wait_until(lambda: reachable(service), what="reachable")


async def test_basic_auth_does_not_stop_the_probe(
    fake: Path, relay: Relay, tunnelled: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    service, _ = await tunnelled(
        relay, tunnel="cloudflared", secret=None, basic_auth=("conscent", "pw"), require_auth=True
    )
    await wait_until(lambda: reachable(service), what="reachable")


# -- no orphan tunnels ----------------------------------------------------------------------------

MONITOR = """
import sys, threading
from pathlib import Path
from monitor.service import Options, Service
from monitor.tunnel import Timing
service = Service(Options(db_path=Path(sys.argv[1]), port=0, tunnel="cloudflared", secret="s"),
                  tunnel_timing=Timing(allow_http=True, term_grace=30))
service.start_in_thread()
print("listening", flush=True)
threading.Event().wait()
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
async def test_no_orphan_tunnel_when_the_monitor_is_killed(
    how: signal.Signals, fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL (no handler, no atexit runs) and an unhandled SIGTERM: the program goes with the monitor."""
    monkeypatch.setenv("FAKE_TUNNEL_URL", "https://a-b-c.trycloudflare.com")
    monkeypatch.setenv("FAKE_TUNNEL_IGNORE_TERM", "1")  # and it lingers a second after SIGTERM
    proc = subprocess.Popen([sys.executable, "-c", MONITOR, str(tmp_path / "m.db")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"listening"
        await wait_until(lambda: len(pids(fake)) == 1, what="the tunnel program started")
        [pid] = pids(fake)
        assert running(pid)
        proc.send_signal(how)
        proc.wait(10)
        await wait_until(lambda: not running(pid), what="the tunnel program gone with the monitor")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_program_that_cannot_run_is_reported(
    tunnelled: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program on PATH that cannot run (not executable by the kernel): restarting, with why."""
    bin_dir = tmp_path / "broken-bin"
    bin_dir.mkdir()
    broken = bin_dir / "cloudflared"
    broken.write_text("not a program\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    _, seen = await tunnelled(tunnel="cloudflared")
    await wait_until(lambda: any(s.phase == "restarting" for s in seen), what="restarting")
    detail = next(s.detail for s in seen if s.phase == "restarting")
    assert detail.startswith("restarting in 0.05 s (cloudflared could not start: ")
