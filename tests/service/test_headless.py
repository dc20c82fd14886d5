"""The real ``conscent-monitor watch --headless`` process: output, shutdown, exposure rules, SIGKILL."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.service import tune_gc
from tests.helpers import URL_RE, Monitor, http_post, read_rows, run_cli, samples


def test_headless_run(monitors: Any, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db))
    url = monitor.url()
    assert url.startswith("http://127.0.0.1:")

    deliveries = samples()
    acked: dict[int, tuple[str, bytes]] = {}
    for name, body in deliveries:
        status, answer = http_post(url + "webhook", body)
        assert status == 200, (name, answer)
        acked[answer["id"]] = (name, body)
    status, answer = http_post(url, b"not json")
    assert status == 400

    printed = [monitor.line() for _ in range(len(deliveries) + 1)]
    for new_id in acked:
        assert sum(f"#{new_id} " in line and " 200 " in line for line in printed) == 1, printed
    assert sum(" 400 " in line and "rejected" in line for line in printed) == 1
    view = next((line for line in printed if "payment_gateway.view" in line), None)
    assert view is not None, printed

    monitor.proc.send_signal(signal.SIGTERM)
    assert monitor.proc.wait(15) == 0, monitor.stderr()
    rest = monitor.rest()
    assert rest and rest[-1].startswith("stopped; session"), rest
    assert all("#" not in line for line in rest)  # exactly one line per delivery, printed before

    stored = {r["id"]: r["body"] for r in read_rows(db, "SELECT id, body FROM events")}
    assert stored == {new_id: body for new_id, (_, body) in acked.items()}  # byte for byte
    sessions = read_rows(db, "SELECT * FROM sessions")
    assert len(sessions) == 1
    assert sessions[0]["ended_at"] is not None and sessions[0]["mode"] == "headless"
    assert sessions[0]["listen"] == url


def test_sigint_stops_cleanly_too(monitors: Any, tmp_path: Path) -> None:
    db = tmp_path / "int.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db))
    monitor.url()
    monitor.proc.send_signal(signal.SIGINT)
    assert monitor.proc.wait(15) == 0
    assert read_rows(db, "SELECT ended_at FROM sessions")[0]["ended_at"] is not None


def test_default_database_is_in_the_current_directory(monitors: Any, tmp_path: Path) -> None:
    monitor = monitors("watch", "--headless", "--port", "0")
    monitor.url()
    monitor.proc.send_signal(signal.SIGTERM)
    assert monitor.proc.wait(15) == 0
    assert (tmp_path / "conscent-monitor.db").is_file()


def test_non_loopback_host_without_auth_is_refused(tmp_path: Path) -> None:
    result = run_cli(
        "watch",
        "--headless",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--db",
        str(tmp_path / "x.db"),
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "CONSCENT_WEBHOOK_SECRET"},
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "--allow-unauthenticated" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("extra", [["--allow-unauthenticated"], ["--secret", "s3"], ["--basic-auth", "key:secret"]])
def test_non_loopback_host_allowed_with_auth_or_flag(monitors: Any, tmp_path: Path, extra: list[str]) -> None:
    monitor = monitors(
        "watch", "--headless", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "x.db"), *extra
    )
    url = monitor.url()
    assert url.startswith("http://0.0.0.0:")
    monitor.proc.terminate()
    assert monitor.proc.wait(15) == 0


def test_bad_basic_auth_argument(tmp_path: Path) -> None:
    result = run_cli("watch", "--headless", "--basic-auth", "nocolon", "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "KEY:SECRET" in result.stderr


def test_not_a_database_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n" * 200)
    result = run_cli("watch", "--headless", "--port", "0", "--db", str(bad))
    assert result.returncode == 1
    assert "Error" in result.stderr and "notes.txt" in result.stderr and "Traceback" not in result.stderr


def test_help_names_the_default_database() -> None:
    result = run_cli("watch", "--help")
    assert result.returncode == 0
    assert "conscent-monitor.db" in result.stdout
    for option in [
        "--headless",
        "--host",
        "--port",
        "--db",
        "--secret",
        "--require-signature",
        "--basic-auth",
        "--max-body",
        "--allow-unauthenticated",
    ]:
        assert option in result.stdout


def test_version() -> None:
    from monitor import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


async def test_sigkill_during_a_burst_loses_no_acknowledged_delivery(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    monitor = Monitor("watch", "--headless", "--port", "0", "--db", str(db), cwd=tmp_path)
    try:
        url = await asyncio.to_thread(monitor.url)
        total, concurrency, kill_after = 2000, 32, 700
        acked: dict[int, bytes] = {}
        failures = 0
        killed = asyncio.Event()
        bodies = iter(b'{"event":"paywall.click","user_id":"u%d","n":%d}' % (n % 50, n) for n in range(total))

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal failures
            for body in bodies:
                try:
                    async with session.post(url + "burst", data=body) as resp:
                        if resp.status == 200:
                            acked[(await resp.json())["id"]] = body
                except (TimeoutError, aiohttp.ClientError):
                    failures += 1
                if len(acked) >= kill_after and not killed.is_set():
                    killed.set()
                    monitor.proc.send_signal(signal.SIGKILL)

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        assert killed.is_set()
        assert await asyncio.to_thread(monitor.proc.wait, 15) == -signal.SIGKILL
        assert failures > 0  # it really died mid-burst
        assert len(acked) < total
    finally:
        monitor.stop()

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT id, body FROM events"))
    finally:
        conn.close()
    missing = [new_id for new_id in acked if new_id not in stored]
    assert not missing, f"{len(missing)} acknowledged deliveries lost"
    assert all(stored[new_id] == body for new_id, body in acked.items())


async def test_unread_stdout_does_not_stall_the_listener(tmp_path: Path) -> None:
    """Nobody reads the output (a paused pager, Ctrl-S): deliveries are still answered."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "watch", "--headless", "--port", "0", "--db", str(tmp_path / "s.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)
        match = URL_RE.search(first.decode())
        assert match, first
        url = match.group(1)
        total = 1500  # about 140 KB of output: well over a pipe's buffer
        statuses: list[int] = []
        bodies = iter(b'{"event":"paywall.click","n":%d}' % n for n in range(total))

        async def worker(session: aiohttp.ClientSession) -> None:
            for body in bodies:
                async with session.post(url, data=body) as resp:
                    statuses.append(resp.status)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            await asyncio.gather(*(worker(session) for _ in range(16)))
        assert statuses == [200] * total
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    """What the headless and live entry points call once started (see its docstring for the figures)."""
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (20_000, 50, 100)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
