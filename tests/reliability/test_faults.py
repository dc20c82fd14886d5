"""Faults, end to end over HTTP: the database read-only, full, or locked by another writer.

Each fault is injected while the listener runs and removed while it keeps running. Through all of
it: deliveries get ``503`` with a JSON error (Conscent retries), other refusals keep their own
answer, ``GET /`` says what is wrong, nothing crashes, writes resume without a restart once the
fault is gone, every acknowledged delivery is stored byte for byte, and the refusals made during
the outage are written to ``rejected`` after it.

How the faults are made (the suite runs as root in CI, where file modes do not stop anyone):

* read-only: the writer's connect factory opens the same file with SQLite's ``mode=ro`` URI,
  which fails writes with SQLITE_READONLY exactly as an unwritable file or mount does for a
  normal user (``chmod`` cannot be used: root bypasses file modes).
* disk full: a size-limited tmpfs mounted under the test's directory, with the real headless
  process writing to it and a filler file taking the space (needs root / CAP_SYS_ADMIN; skipped
  otherwise); and, always, ``PRAGMA max_page_count`` set by the writer's connect factory, which
  gives SQLITE_FULL the same way.
* locked: another connection holding ``BEGIN EXCLUSIVE`` on the file, against both the in-process
  listener (short busy timeout) and the real headless process (its 2 s busy timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from monitor import store
from monitor.writer import Writer
from tests.helpers import Monitor, ReadOnlySwitch, read_rows, wait_until

Listen = Callable[..., Any]
pytestmark = pytest.mark.usefixtures("_no_secret_from_the_environment")


@pytest.fixture
def _no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSCENT_WEBHOOK_SECRET", raising=False)


def body(tag: str, n: int, pad: int = 0) -> bytes:
    return b'{"entity":"event","event":"payment_gateway.view","user_id":"%s-%d","created_at":1709186668,"pad":"%s"}' % (
        tag.encode(),
        n,
        b"x" * pad,
    )


async def post(http: Any, url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as resp:
        raw = await resp.read()
        assert resp.content_type == "application/json", raw[:200]
        return resp.status, orjson.loads(raw)


async def post_all(http: Any, url: str, bodies: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    return list(await asyncio.gather(*(post(http, url, b) for b in bodies)))


async def health(http: Any, root: str) -> dict[str, Any]:
    async with http.get(root) as resp:
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json()
        return answer


def rejected_statuses(db: Path) -> list[int]:
    return [row["status"] for row in read_rows(db, "SELECT status FROM rejected ORDER BY id")]


def assert_stored(db: Path, acked: dict[int, bytes]) -> None:
    """Every acknowledged delivery byte for byte; a refused one only if it was sent again and acknowledged."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT id, body FROM events").fetchall())
    finally:
        conn.close()
    assert {new_id: stored.get(new_id) for new_id in acked} == acked
    # A delivery answered 503 is stored only as the retry that was acknowledged, never twice.
    assert set(stored) == set(acked), sorted(set(stored) - set(acked))


async def outage(
    http: Any,
    url: str,
    root: str,
    db: Path,
    *,
    inject: Callable[[], object],
    remove: Callable[[], object],
    error: str,
    pad: int = 0,
    during: int = 6,
) -> dict[str, Any]:
    """The scenario every fault goes through; returns figures for RELIABILITY.md."""
    acked: dict[int, bytes] = {}
    before = [body("before", n) for n in range(12)]
    for (status, answer), b in zip(await post_all(http, url, before), before, strict=True):
        assert status == 200, answer
        acked[answer["id"]] = b

    inject()
    refused = [body("during", n, pad) for n in range(during)]
    started = time.monotonic()
    answers = await post_all(http, url, refused)
    outage_s = time.monotonic() - started
    for status, answer in answers:
        assert status == 503, answer
        assert answer["ok"] is False and error in answer["error"].lower(), answer
    # Other refusals still get their own answer while the database is down.
    status, answer = await post(http, url, b"not json")
    assert status == 400 and answer["ok"] is False
    state = await health(http, root)
    assert state["ok"] is False and error in (state["error"] or "").lower(), state

    remove()
    after = [body("after", n) for n in range(12)]
    for (status, answer), b in zip(await post_all(http, url, after), after, strict=True):
        assert status == 200, answer  # recovered without a restart
        acked[answer["id"]] = b
    # Conscent retries what was refused; now it is accepted.
    for (status, answer), b in zip(await post_all(http, url, refused), refused, strict=True):
        assert status == 200, answer
        acked[answer["id"]] = b
    assert (await health(http, root))["ok"] is True

    # The refusals made during the outage are written once the database takes writes again.
    await wait_until(lambda: len(rejected_statuses(db)) >= during + 1, what="the outage's rejections")
    assert sorted(rejected_statuses(db)) == [400] + [503] * during
    rows = read_rows(db, "SELECT body, reason FROM rejected WHERE status = 503")
    assert sorted(r["body"] for r in rows) == sorted(b[: store.REJECTED_BODY_LIMIT] for b in refused)
    assert all(error in r["reason"].lower() for r in rows)
    assert_stored(db, acked)
    return {"acked": len(acked), "refused": during, "outage_s": round(outage_s, 2)}


# --- in-process listener (real HTTP on 127.0.0.1), faults through the writer's connect factory ------------


async def _in_process(listen: Listen, db: Path, writer: Writer, **kwargs: Any) -> dict[str, Any]:
    client = await listen(writer=writer)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        figures = await outage(http, str(client.make_url("/webhook")), str(client.make_url("/")), db, **kwargs)
    assert writer._thread.is_alive(), "the writer thread died"
    return figures


async def test_read_only_database_over_http(listen: Listen, db_path: Path, make_writer: Callable[..., Writer]) -> None:
    connect = ReadOnlySwitch(db_path, on=False)

    writer = make_writer(connect=connect, retry_interval=0.05)

    def make_read_only() -> None:
        connect.on = True
        # The writer keeps its connection until a commit fails; a real remount / permission change is
        # only seen by a new connection too. Force the switch the way a failed commit would.
        writer._conn = None

    figures = await _in_process(
        listen, db_path, writer, inject=make_read_only, remove=lambda: setattr(connect, "on", False), error="readonly"
    )
    print(f"\nread-only: {figures}")


async def test_full_database_over_http(listen: Listen, db_path: Path, make_writer: Callable[..., Writer]) -> None:
    state = {"full": False}

    def connect() -> sqlite3.Connection:
        conn = store.connect(db_path).conn
        if state["full"]:  # not one page more than it has now
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    writer = make_writer(connect=connect, retry_interval=0.05)

    def fill() -> None:
        state["full"] = True
        writer._conn = None

    # 200 KB bodies need new pages whatever free space the last page has.
    figures = await _in_process(
        listen, db_path, writer, inject=fill, remove=lambda: state.update(full=False), error="full", pad=200_000
    )
    print(f"\nfull (max_page_count): {figures}")


class ExclusiveLock:
    """Another connection holding ``BEGIN EXCLUSIVE`` on the database: ``take``, ``release``; closed on exit."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None

    def take(self) -> None:
        self.conn = sqlite3.connect(self.db, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        assert self.conn is not None
        self.conn.execute("ROLLBACK")
        self.conn.close()
        self.conn = None

    def __enter__(self) -> ExclusiveLock:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()


async def test_locked_database_over_http(listen: Listen, db_path: Path, make_writer: Callable[..., Writer]) -> None:
    writer = make_writer(busy_timeout=0.1, retry_interval=0.05)
    with ExclusiveLock(db_path) as lock:
        figures = await _in_process(listen, db_path, writer, inject=lock.take, remove=lock.release, error="locked")
    print(f"\nlocked (in-process): {figures}")


# --- the real headless process ----------------------------------------------------------------------------


@pytest.fixture
def monitor_factory(tmp_path: Path) -> Iterator[Callable[..., Monitor]]:
    started: list[Monitor] = []

    def start(db: Path) -> Monitor:
        monitor = Monitor("watch", "--headless", "--port", "0", "--db", str(db), cwd=tmp_path)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


async def _process_outage(monitor: Monitor, db: Path, **kwargs: Any) -> dict[str, Any]:
    url = await asyncio.to_thread(monitor.url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        figures = await outage(http, url + "webhook", url, db, **kwargs)
    assert monitor.proc.poll() is None, "the monitor died"
    monitor.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(monitor.proc.wait, 20) == 0, monitor.stderr()
    sessions = read_rows(db, "SELECT ended_at FROM sessions")
    assert len(sessions) == 1 and sessions[0]["ended_at"] is not None
    return figures


@pytest.mark.slow
async def test_locked_by_another_process_headless(tmp_path: Path, monitor_factory: Callable[..., Monitor]) -> None:
    db = tmp_path / "locked.db"
    monitor = monitor_factory(db)
    with ExclusiveLock(db) as lock:
        figures = await _process_outage(monitor, db, inject=lock.take, remove=lock.release, error="locked")
    print(f"\nlocked (headless process, 2 s busy timeout): {figures}")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root (the max_page_count test covers disk full)")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill_disk(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as out:
        while True:
            try:
                n = out.write(chunk)
            except OSError:
                break
            if not n:
                break
            written += n
    # A last, smaller write takes the last partial block.
    with contextlib.suppress(OSError), path.open("ab", buffering=0) as out:
        out.write(b"\0" * 4096)
    return written


async def test_disk_full_on_a_small_tmpfs_headless(tmp_path: Path, monitor_factory: Callable[..., Monitor]) -> None:
    with small_tmpfs(tmp_path / "small", "16m") as mount:
        db = mount / "full.db"
        filler = mount / "filler"
        monitor = monitor_factory(db)
        url = await asyncio.to_thread(monitor.url)
        acked: dict[int, bytes] = {}
        refused: list[bytes] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for n in range(10):
                b = body("before", n)
                status, answer = await post(http, url, b)
                assert status == 200, answer
                acked[answer["id"]] = b
            filled = fill_disk(filler)
            # The WAL may still have room it allocated earlier: post 200 KB deliveries until one is refused.
            for n in range(200):
                b = body("fill", n, 200_000)
                status, answer = await post(http, url, b)
                if status == 200:
                    acked[answer["id"]] = b
                    continue
                assert status == 503 and "full" in answer["error"], answer
                refused.append(b)
                break
            assert refused, "the database never filled up"
            for n in range(3):
                b = body("during", n, 200_000)
                status, answer = await post(http, url, b)
                assert status == 503 and "full" in answer["error"], answer
                refused.append(b)
            assert (await post(http, url, b"not json"))[0] == 400
            state = await health(http, url)
            assert state["ok"] is False and "full" in state["error"]

            filler.unlink()  # space again: no restart
            for n in range(10):
                b = body("after", n, 200_000 if n % 2 else 0)
                status, answer = await post(http, url, b)
                assert status == 200, answer
                acked[answer["id"]] = b
            for b in refused:  # Conscent's retries
                status, answer = await post(http, url, b)
                assert status == 200, answer
                acked[answer["id"]] = b
            assert (await health(http, url))["ok"] is True
            await wait_until(lambda: len(rejected_statuses(db)) >= len(refused) + 1, what="the rejections")
        assert sorted(rejected_statuses(db)) == [400] + [503] * len(refused)
        assert monitor.proc.poll() is None
        monitor.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(monitor.proc.wait, 20) == 0, monitor.stderr()
        assert_stored(db, acked)
        print(
            f"\ndisk full (16 MiB tmpfs, filler {filled} bytes): {len(acked)} acknowledged, "
            f"{len(refused)} refused with 503 then accepted on retry"
        )
