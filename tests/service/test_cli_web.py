"""The web mode's command line (serve, watch --web, open --web): its checks and failures, as a user runs them."""

from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.cli import web as web_cli
from tests.helpers import Monitor, http_post, one_error, run_cli, spec_bodies


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--web-host", "0.0.0.0", "--port", "0", "--web-port", "0"),
        ("watch", "--web", "--web-host", "0.0.0.0", "--port", "0", "--web-port", "0"),
    ],
    ids=["serve", "watch-web"],
)
def test_a_web_ui_open_to_the_network_needs_a_password(args: tuple[str, ...], tmp_path: Path) -> None:
    line = one_error(invoke(*args, "--db", str(tmp_path / "x.db")), 2)
    assert "0.0.0.0" in line
    assert "--web-password" in line
    assert not (tmp_path / "x.db").exists()  # refused before anything is created


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("watch", "--web-password", "pw"), "--web"),
        (("watch", "--web-mask"), "--web"),
        (("open", "DB", "--web-mask"), "--web"),
    ],
    ids=["watch-password", "watch-mask", "open-mask"],
)
def test_web_options_without_the_web_ui_are_a_usage_error(
    args: tuple[str, ...], named: str, tmp_path: Path, spec: dict[str, bytes]
) -> None:
    db = tmp_path / "saved.db"
    from monitor import store

    store.open_store(db).close()
    args = tuple(str(db) if arg == "DB" else arg for arg in args)
    line = one_error(invoke(*args), 2)
    assert named in line


def test_an_empty_web_password_is_refused(tmp_path: Path) -> None:
    line = one_error(invoke("serve", "--web-password", "", "--db", str(tmp_path / "x.db")), 2)
    assert "--web-password" in line


def test_without_the_web_extra_one_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(web_cli.importlib.util, "find_spec", lambda name: None)
    result = invoke("serve", "--port", "0", "--db", str(tmp_path / "x.db"))
    line = one_error(result, 1)
    assert "pip install 'conscent-monitor[web]'" in line


def test_a_web_port_in_use_is_said_plainly_and_names_web_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", "0", "--web-port", str(port), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == [
        f"Error: cannot listen on 127.0.0.1:{port}: the port is in use (another monitor?); "
        "--web-port 0 takes a free one"
    ], result.stderr


def test_serve_records_serves_the_page_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    served = Monitor("serve", "--port", "0", "--web-port", "0", "--db", str(tmp_path / "s.db"), cwd=tmp_path)
    try:
        listener = served.url()
        banner = served.line()
        assert banner.startswith("conscent-monitor: web UI on http://127.0.0.1:"), banner
        assert "each tab is a live view of this session" in banner
        web_url = banner.split()[4]
        with urllib.request.urlopen(web_url, timeout=10) as page:
            html = page.read().decode()
        assert "<title>conscent-monitor</title>" in html
        assert "googleapis" not in html
        status, answer = http_post(listener, spec_bodies()["payment_gateway.view"])
        assert status == 200, answer
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(20) == 0
        rest = served.rest()
        assert rest[-1] == "stopped; session 1 closed", rest
    finally:
        served.stop()


def test_open_web_serves_a_saved_database_read_only(tmp_path: Path) -> None:
    db = tmp_path / "saved.db"
    from monitor import store

    store.open_store(db).close()
    served = Monitor("open", str(db), "--web", "--web-port", "0", cwd=tmp_path)
    try:
        first = served.line()
        assert "read-only" in first, first
        banner = served.line()
        assert "web UI on http://127.0.0.1:" in banner and "read-only review" in banner, banner
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(20) == 0
    finally:
        served.stop()


def test_the_banner_says_when_the_web_ui_is_open_to_the_network() -> None:
    from monitor.serving import banner
    from monitor.webui import WebOptions

    local = banner("http://127.0.0.1:8788/", WebOptions(), "read-only review")
    assert local == "conscent-monitor: web UI on http://127.0.0.1:8788/  (read-only review)"
    shared = banner("http://127.0.0.1:8788/", WebOptions(host="0.0.0.0", password="pw", mask=True), "x")
    assert "open to the network on 0.0.0.0:8788" in shared
    assert "password required" in shared and "personal data masked" in shared


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc (Linux)")
def test_a_tab_ends_with_its_serve_process_even_on_sigkill(tmp_path: Path) -> None:
    """SIGKILL leaves serve no chance to stop its tabs: each tab ends itself (death signal) instead of lingering."""
    import asyncio
    import os
    import time

    import aiohttp

    served = Monitor("serve", "--port", "0", "--web-port", "0", "--db", str(tmp_path / "s.db"), cwd=tmp_path)
    try:
        served.url()
        web_url = served.line().split()[4]

        async def open_tab_then_kill() -> set[int]:
            async with aiohttp.ClientSession() as http, http.ws_connect(web_url + "ws?width=80&height=24") as ws:
                await ws.receive(timeout=30)  # the tab's app draws: it runs
                tabs = _children(served.proc.pid)
                assert tabs, "no tab process under serve"
                os.kill(served.proc.pid, signal.SIGKILL)
                return tabs

        tabs = asyncio.run(open_tab_then_kill())
        served.proc.wait(10)
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in tabs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in tabs if Path(f"/proc/{pid}").exists()], "a tab outlived its serve process"
    finally:
        served.stop()
