"""A public URL for a monitor on a laptop: a tunnel program run as a child, or a URL named by the user.

``Tunnel(spec, ...)`` runs ``cloudflared tunnel --url http://127.0.0.1:PORT``,
``ngrok http PORT`` or ``ssh -R 80:127.0.0.1:PORT HOST`` (``spec`` is
``cloudflared``, ``ngrok`` or ``ssh:HOST``), reads the public URL from the
program's output, probes the monitor through it, restarts the program with
back-off when it dies and always ends it on exit. ``--public-url URL`` is a
tunnel without a program (probed the same way).

The state is a frozen :class:`TunnelState`, replaced whole on every change, so
any thread (the TUI, the headless printer, ``GET /``) reads it without a lock.
The program never runs directly: :mod:`monitor.lifeline` runs it and ends it
when the monitor goes, even on SIGKILL. Its output is appended to
``<db>.tunnel.log``. Core module: no Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import aiohttp
import orjson

from monitor import lifeline
from monitor.probe import new_token, probe
from monitor.textsafe import inert

log = logging.getLogger(__name__)

Phase = Literal["starting", "up", "restarting", "down", "missing"]


@dataclass(frozen=True, slots=True)
class TunnelState:
    #: ``cloudflared``, ``ngrok``, ``ssh:HOST`` or ``url`` (``--public-url``).
    provider: str
    #: The public base URL once known (``https://….trycloudflare.com/``), else None.
    public_url: str | None = None
    phase: Phase = "starting"
    #: One inert line on the phase: ``restarting in 4 s (cloudflared exited 1)``, how to install a missing program.
    detail: str = ""
    #: The self-probe through the public URL: None before the first answer.
    reachable: bool | None = None
    probe_ms: float | None = None
    #: Why it is not reachable (``DNS not propagated yet: retrying in 8 s``), else None.
    probe_error: str | None = None
    #: The program's output, kept next to the database.
    log_path: Path | None = None
    #: How many times the program was restarted.
    restarts: int = 0


PROGRAMS = ("cloudflared", "ngrok", "ssh")
#: The log is started afresh (the old one kept as ``.1``) past this size.
LOG_LIMIT = 5 * 1024 * 1024


class TunnelSpecError(ValueError):
    """``--tunnel`` names no known provider, or ``ssh:`` without a usable host."""


def program_of(spec: str) -> str:
    """``cloudflared``, ``ngrok`` or ``ssh``; raises :class:`TunnelSpecError` for anything else."""
    if spec in ("cloudflared", "ngrok"):
        return spec
    if spec.startswith("ssh:"):
        host = spec[4:]
        if not host or host.startswith("-") or any(ch.isspace() for ch in host):
            raise TunnelSpecError(f"--tunnel {inert(spec)}: ssh: needs a host, e.g. ssh:nokey@localhost.run")
        return "ssh"
    raise TunnelSpecError(f"--tunnel {inert(spec)}: use cloudflared, ngrok or ssh:HOST (e.g. ssh:nokey@localhost.run)")


def command(spec: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The program's arguments (program name first) to make ``host:port`` public."""
    program = program_of(spec)
    if program == "cloudflared":
        return ["cloudflared", "tunnel", "--no-autoupdate", "--url", f"http://{host}:{port}"]
    if program == "ngrok":
        return ["ngrok", "http", f"{host}:{port}", "--log", "stdout", "--log-format", "json"]
    return [
        "ssh",
        "-T",  # no terminal: the service prints its URL all the same
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "ServerAliveInterval=30",
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        f"80:{host}:{port}",
        "--",
        spec[4:],
    ]


def install_hint(program: str, platform: str = sys.platform) -> str:
    """One line: ``cloudflared is not installed: brew install cloudflared``."""
    mac = platform == "darwin"
    windows = platform.startswith("win")
    if program == "cloudflared":
        how = (
            "brew install cloudflared"
            if mac
            else "winget install --id Cloudflare.cloudflared"
            if windows
            else "add Cloudflare's apt repository (pkg.cloudflare.com) and apt-get install cloudflared, "
            "or install the .deb from https://github.com/cloudflare/cloudflared/releases"
        )
    elif program == "ngrok":
        how = (
            "brew install ngrok"
            if mac
            else "winget install ngrok.ngrok"
            if windows
            else "snap install ngrok, or download it from https://ngrok.com/download"
        )
        how += ", then ngrok config add-authtoken TOKEN (a free account)"
    else:
        how = "it comes with macOS" if mac else "apt-get install openssh-client"
    return f"{program} is not installed: {how}; the monitor runs on locally"


# -- reading the public URL from the program's output -------------------------------------------

#: cloudflared logs its quick tunnel's URL inside an ASCII box: ``INF |  https://….trycloudflare.com  |``.
_BOX = re.compile(r"\|\s+(https?://[^\s|]+)\s+\|")
_NGROK_LOGFMT = re.compile(r'msg="started tunnel".*?\burl=(https?://\S+)')
#: localhost.run and serveo's own words; then any line that is about a URL for us.
_SSH_KNOWN = (
    re.compile(r"tunneled with tls termination,\s*(https?://\S+)", re.IGNORECASE),
    re.compile(r"Forwarding HTTP traffic from\s+(https?://\S+)", re.IGNORECASE),
)
_ORIGIN = re.compile(r"https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d+)?/?")
#: The services' own pages, which their banners link to (``https://admin.localhost.run/``).
_NOT_OURS = ("localhost.run", "twitter.com", "serveo.net", "pinggy.io", "ngrok.com", "cloudflare.com")


def find_url(program: str, line: str, *, allow_http: bool = False) -> str | None:
    """The public URL in one line of ``program``'s output, as ``https://host/``; else None.

    ``allow_http`` accepts ``http://`` URLs too (tests only: their stand-in
    for the public side is a plain local server).
    """
    url: str | None = None
    if program == "cloudflared":
        match = _BOX.search(line)
        url = match.group(1) if match else None
    elif program == "ngrok":
        url = _ngrok_line(line)
    else:
        url = _ssh_line(line)
    if url is None:
        return None
    url = url.rstrip(".,;)]")
    if not (url.startswith("https://") or (allow_http and url.startswith("http://"))):
        return None
    return url.rstrip("/") + "/"


def _ngrok_line(line: str) -> str | None:
    text = line.strip()
    if text.startswith("{"):
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if isinstance(record, dict) and record.get("msg") == "started tunnel" and isinstance(record.get("url"), str):
            return str(record["url"])
        return None
    match = _NGROK_LOGFMT.search(text)
    return match.group(1) if match else None


def _ssh_line(line: str) -> str | None:
    for pattern in _SSH_KNOWN:
        match = pattern.search(line)
        if match:
            return match.group(1)
    for word in line.split():
        word = word.strip("[(<>)],;").rstrip(".")
        if not _ORIGIN.fullmatch(word):
            continue  # not a URL, or one with a path: a page, not a tunnel's address
        host = word.split("://", 1)[1].split(":", 1)[0].rstrip("/").lower()
        if not any(host == name or host.endswith("." + name) for name in _NOT_OURS):
            return word
    return None


def ngrok_api_url(payload: bytes, port: int) -> str | None:
    """The https URL in ngrok's agent API answer (``GET :4040/api/tunnels``) for the tunnel to ``port``."""
    try:
        tunnels = orjson.loads(payload).get("tunnels") or []
    except (orjson.JSONDecodeError, AttributeError):
        return None
    found = None
    for tunnel in tunnels:
        if not isinstance(tunnel, dict) or not isinstance(tunnel.get("public_url"), str):
            continue
        addr = str((tunnel.get("config") or {}).get("addr", ""))
        if addr.rstrip("/").endswith(f":{port}") or addr == str(port):
            if tunnel["public_url"].startswith("https://"):
                return str(tunnel["public_url"])
            found = found or tunnel["public_url"]
    return found


# -- the running tunnel ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """How patient the tunnel is; the tests make it quick."""

    first_backoff: float = 1.0
    max_backoff: float = 30.0
    probe_interval: float = 60.0
    probe_timeout: float = 10.0
    #: How long the program has between SIGTERM and SIGKILL.
    term_grace: float = 3.0
    allow_http: bool = False
    #: ngrok's local agent API, asked when its log has not named the URL after ``ngrok_api_after`` s.
    ngrok_api: str = "http://127.0.0.1:4040/api/tunnels"
    ngrok_api_after: float = 3.0


def describe_exit(program: str, code: int, last_line: str) -> str:
    if code == 127 and last_line.startswith("cannot run"):
        why = f"{program} could not start"
    elif 128 < code <= 128 + 64:  # the lifeline reports a death by signal N as 128 + N, as shells do
        why = f"{program} was killed by signal {code - 128}"
    else:
        why = f"{program} exited {code}"
    return f"{why}: {inert(last_line, 120)}" if last_line else why


class Tunnel:
    """A tunnel program run as a child (``spec``), or a public URL set up elsewhere (``public_url``).

    Runs on the service's event loop: :meth:`start` returns at once, the
    program starts, its URL is read, probed, and re-probed every
    ``probe_interval``; the program is restarted with back-off when it dies.
    :attr:`state` may be read from any thread; ``on_change`` is called on the
    loop's thread with every new state.
    """

    def __init__(
        self,
        spec: str | None,
        *,
        port: int,
        host: str = "127.0.0.1",
        token: str | None = None,
        public_url: str | None = None,
        log_path: Path | None = None,
        timing: Timing | None = None,
        on_change: Callable[[TunnelState], None] | None = None,
    ) -> None:
        if spec is None and public_url is None:
            raise ValueError("a tunnel needs a program or a public URL")
        self.spec = spec
        self.program = program_of(spec) if spec else None
        self.port = port
        self.host = host
        self.token = token or new_token()
        self.timing = timing or Timing()
        self.on_change = on_change
        self.log_path = log_path if spec else None
        provider = spec or "url"
        url = public_url.rstrip("/") + "/" if public_url else None
        self._state = TunnelState(provider, url, "up" if url else "starting", log_path=self.log_path)
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._stopping = False

    @property
    def state(self) -> TunnelState:
        return self._state

    def _set(self, **changes: Any) -> None:
        self._state = dataclasses.replace(self._state, **changes)
        if self.on_change is not None:
            try:
                self.on_change(self._state)
            except Exception:  # a front end's bug must not stop the tunnel
                log.exception("tunnel state callback failed")

    async def start(self) -> None:
        if self.program is None:
            assert self._state.public_url is not None
            self._start_prober(self._state.public_url)
            return
        self._main = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """End the program (SIGTERM, then SIGKILL) and the probes; idempotent."""
        self._stopping = True
        self._stop_prober()
        await self._end_program()
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._state.phase != "missing":
            self._set(phase="down", detail="stopped", reachable=None, probe_ms=None, probe_error=None)

    # -- the program --------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.program is not None and self.spec is not None
        delay = self.timing.first_backoff
        loop = asyncio.get_running_loop()
        while not self._stopping:
            exe = shutil.which(self.program)
            if exe is None:
                self._set(phase="missing", detail=install_hint(self.program))
                return
            started = loop.time()
            code, last = await self._run_once(exe)
            if self._stopping:
                return
            if loop.time() - started > self.timing.max_backoff:
                delay = self.timing.first_backoff  # it ran a good while: this is a new trouble
            why = describe_exit(self.program, code, last)
            self._set(
                phase="restarting",
                public_url=None,
                reachable=None,
                probe_ms=None,
                probe_error=None,
                detail=f"restarting in {delay:g} s ({why})",
            )
            self._write_log(f"--- {why}; restarting in {delay:g} s ---\n".encode())
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.timing.max_backoff)
            self._set(restarts=self._state.restarts + 1)

    async def _run_once(self, exe: str) -> tuple[int, str]:
        """Run the program once, reading its output until it exits: (exit status, last line)."""
        assert self.program is not None and self.spec is not None
        argv = [exe, *command(self.spec, self.port, self.host)[1:]]
        self._open_log()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        self._write_log(f"--- {stamp} UTC: {' '.join(command(self.spec, self.port, self.host))} ---\n".encode())
        self._set(phase="starting", public_url=None, detail=f"waiting for {self.program} to give its public URL")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            lifeline.__file__,
            f"{self.timing.term_grace:g}",
            "--",
            *argv,
            stdin=asyncio.subprocess.PIPE,  # the lifeline: closed by us or by our death
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own group: killed whole, and Ctrl-C in our terminal is not its
        )
        self._proc = proc
        api = self._spawn(self._ask_ngrok_api()) if self.program == "ngrok" else None
        last = await self._read_output(proc)
        code = await proc.wait()
        if api is not None:
            api.cancel()
        self._stop_prober()
        self._proc = None
        return lifeline.status(code), last

    async def _read_output(self, proc: asyncio.subprocess.Process) -> str:
        assert proc.stdout is not None and self.program is not None
        pending = b""
        last = ""
        while chunk := await proc.stdout.read(65536):
            self._write_log(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            pending = pending[-65536:]  # a line without end is not kept whole
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                last = line
                if self._state.public_url is None:
                    url = find_url(self.program, line, allow_http=self.timing.allow_http)
                    if url is not None:
                        self._got_url(url)
        return pending.decode("utf-8", "replace").strip() or last

    def _got_url(self, url: str) -> None:
        if self._stopping or self._state.public_url is not None:
            return
        self._set(phase="up", public_url=url, detail="", reachable=None, probe_ms=None, probe_error=None)
        self._start_prober(url)

    async def _ask_ngrok_api(self) -> None:
        """ngrok's local agent API, for an ngrok whose log does not name the URL (an older one, a config)."""
        await asyncio.sleep(self.timing.ngrok_api_after)
        async with aiohttp.ClientSession() as http:
            while self._state.public_url is None and not self._stopping:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.timing.ngrok_api, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        url = ngrok_api_url(await resp.read(), self.port) if resp.status == 200 else None
                    if url is not None:
                        found = find_url(
                            "ngrok",
                            orjson.dumps({"msg": "started tunnel", "url": url}).decode(),
                            allow_http=self.timing.allow_http,
                        )
                        if found is not None:
                            self._got_url(found)
                            return
                await asyncio.sleep(1.0)

    async def _end_program(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the lifeline: the program gets SIGTERM, then SIGKILL after term_grace
        try:
            await asyncio.wait_for(proc.wait(), self.timing.term_grace + 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    # -- the log -------------------------------------------------------------------------------

    def _open_log(self) -> None:
        if self._log is not None or self.log_path is None:
            return
        try:
            if self.log_path.exists() and self.log_path.stat().st_size > LOG_LIMIT:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
            self._log = self.log_path.open("ab")  # kept open while the tunnel runs
        except OSError as exc:
            log.warning("cannot write the tunnel's log %s: %s", self.log_path, exc)

    def _write_log(self, data: bytes) -> None:
        if self._log is None:
            return
        try:
            self._log.write(data)
            self._log.flush()
        except OSError:
            pass  # a full disk must not stop the tunnel

    # -- the probe -----------------------------------------------------------------------------

    def _start_prober(self, url: str) -> None:
        self._stop_prober()
        self._prober = self._spawn(self._probe_loop(url))

    def _stop_prober(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            self._prober = None

    async def _probe_loop(self, url: str) -> None:
        delay = self.timing.first_backoff
        connector = aiohttp.TCPConnector(use_dns_cache=False, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            while True:
                result = await probe(http, url, self.token, self.timing.probe_timeout)
                if result.reachable:
                    self._set(reachable=True, probe_ms=result.ms, probe_error=None)
                    delay = self.timing.first_backoff
                    await asyncio.sleep(self.timing.probe_interval)
                    continue
                self._set(reachable=False, probe_ms=None, probe_error=f"{result.reason}: retrying in {delay:g} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.timing.max_backoff)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
