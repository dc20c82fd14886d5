"""The database file outlives the run, and the run notices when it does not (issue 10, items 1, 2 and 5).

Item 1: every clean exit of the live monitor (TUI ``q``, headless SIGTERM,
``--demo`` in both) leaves a ``.db`` that is the whole session on its own:
the tests copy the ``.db`` alone to another folder and read it there.

Item 2: the database deleted, its WAL deleted, the database moved away, or
another database moved onto the path, under a running headless monitor. From
then on every delivery gets 503, ``GET /`` says ``ok: false`` with the reason,
stdout has one loud line, and every delivery that got 200 can be read
afterwards: at the path (restored, or folded back), in the moved file, or in
the rescue copy beside the other database (which is left as it was). Readers
and checkpoints by other connections and processes raise no false alarm.

Item 5: the search indexer reads bodies in batches bounded by bytes; the RSS
of a real headless monitor stays low after 500 deliveries of ~1 MiB.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from monitor import store
from monitor.store import FILE_LOST, StoreUnavailable
from monitor.writer import Writer
from tests.helpers import CLOSE, VIEW, Monitor, Tmux, event_row, program, wait_until
from tests.tui.test_tmux import wait_for_url

HAVE_TMUX = shutil.which("tmux") is not None
ALARM = "NOT RECORDING"


def body(n: int) -> bytes:
    return b'{"entity":"event","event":"payment_gateway.view","user_id":"u%d","n":%d}' % (n % 7, n)


def http(url: str, data: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """POST ``data`` (or GET when None); the status and the JSON answer."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def copy_alone(db: Path, folder: Path) -> Path:
    """The ``.db`` file copied without its ``-wal``/``-shm``: what someone copying "the database" gets."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"copy-{uuid.uuid4().hex[:6]}.db"
    shutil.copyfile(db, copy)
    assert not Path(f"{copy}-wal").exists()
    return copy


def read_copy(db: Path, folder: Path) -> tuple[dict[int, bytes], list[dict[str, Any]]]:
    """Events (id -> body) and sessions read from a copy of the ``.db`` alone."""
    copy = copy_alone(db, folder)
    conn = sqlite3.connect(copy)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"events", "sessions"} <= names, f"{db} alone has no events table: the session stayed in the WAL"
        events = {row["id"]: row["body"] for row in conn.execute("SELECT id, body FROM events")}
        sessions = [dict(row) for row in conn.execute("SELECT * FROM sessions ORDER BY id")]
    finally:
        conn.close()
    return events, sessions


def wal_is_empty(db: Path) -> bool:
    wal = Path(f"{db}-wal")
    return not wal.exists() or wal.stat().st_size == 0


def make_other_database(path: Path, rows: int = 3) -> dict[int, bytes]:
    """A monitor database of someone else's, closed (so self-contained); its events by id."""
    db = store.open_store(path)
    try:
        bodies = [b'{"event":"other","k":%d}' % k for k in range(rows)]
        done = store.write_batch(db.conn, [event_row(b, parsed=False) for b in bodies], [])
    finally:
        db.close()
    return dict(zip(done.event_ids, bodies, strict=True))


# -- item 2: the writer on its own ---------------------------------------------------------------


@pytest.fixture
def fresh_db(tmp_path: Path) -> Path:
    path = tmp_path / "live.db"
    store.open_store(path).close()
    return path


@pytest.fixture
def writers() -> Iterator[Callable[..., Writer]]:
    started: list[Writer] = []

    def start(path: Path, **kwargs: Any) -> Writer:
        writer = Writer(path, **kwargs)
        writer.start()
        started.append(writer)
        return writer

    yield start
    for writer in started:
        writer.stop(timeout=10)


async def test_a_deleted_database_is_refused_for_good_and_restored(
    fresh_db: Path, tmp_path: Path, writers: Callable[..., Writer]
) -> None:
    alarms: list[str] = []
    writer = writers(fresh_db, on_alarm=alarms.append)
    acked = {await writer.submit("events", event_row(body(n))): body(n) for n in range(5)}
    await asyncio.sleep(0.02)  # older than FILE_RECHECK_AFTER: the next batch is checked before its commit
    fresh_db.unlink()
    with pytest.raises(StoreUnavailable, match=re.escape(FILE_LOST)):
        await asyncio.wait_for(writer.submit("events", event_row(body(99))), 20)
    await wait_until(lambda: alarms, what="the alarm")
    # For good: also once the path names a database again (the restored copy).
    with pytest.raises(StoreUnavailable, match=re.escape(FILE_LOST)):
        await asyncio.wait_for(writer.submit("events", event_row(body(100))), 20)
    assert not writer.healthy and writer.lost == writer.stats.last_error == alarms[0]
    assert str(fresh_db) in alarms[0] and f"back to {fresh_db}" in alarms[0], alarms[0]
    assert len(alarms) == 1
    events, _ = read_copy(fresh_db, tmp_path / "copy")
    assert events == acked  # every acknowledged row; the refused ones were never written


async def test_an_idle_writer_notices_a_replaced_database_on_its_own(
    fresh_db: Path, tmp_path: Path, writers: Callable[..., Writer]
) -> None:
    alarms: list[str] = []
    writer = writers(fresh_db, on_alarm=alarms.append)
    acked = {await writer.submit("events", event_row(body(n))): body(n) for n in range(3)}
    other = make_other_database(tmp_path / "other.db")
    os.replace(tmp_path / "other.db", fresh_db)
    started = time.monotonic()
    await wait_until(lambda: alarms, timeout=10, what="the alarm without any delivery")
    assert time.monotonic() - started < 3
    assert not writer.healthy and "another file took its place" in alarms[0]
    (rescued,) = tmp_path.glob("live.rescued-*.db")
    assert str(rescued) in alarms[0]
    assert read_copy(rescued, tmp_path / "a")[0] == acked
    assert read_copy(fresh_db, tmp_path / "b")[0] == other  # the newcomer, untouched


async def test_a_batch_committed_as_the_file_moves_is_not_acknowledged(
    fresh_db: Path, tmp_path: Path, writers: Callable[..., Writer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check after the commit: the rows went into a file no longer at the path, so 503, not 200."""
    writer = writers(fresh_db)
    acked = {await writer.submit("events", event_row(body(n))): body(n) for n in range(3)}
    moved = tmp_path / "moved.db"
    write_batch = store.write_batch

    def write_then_move(*args: Any, **kwargs: Any) -> store.Committed:
        done = write_batch(*args, **kwargs)
        fresh_db.rename(moved)  # between the commit and the acknowledgement
        return done

    monkeypatch.setattr(store, "write_batch", write_then_move)
    with pytest.raises(StoreUnavailable, match=re.escape(FILE_LOST)):
        await asyncio.wait_for(writer.submit("events", event_row(body(50))), 20)
    await wait_until(lambda: writer.lost is not None and "moved to" in writer.lost, what="the final message")
    assert f"moved to {moved}" in (writer.lost or "")
    stored, _ = read_copy(moved, tmp_path / "copy")  # whole on its own: the WAL was folded into it
    assert {i: stored[i] for i in acked} == acked


async def test_readers_checkpoints_and_reconnects_raise_no_false_alarm(
    fresh_db: Path, writers: Callable[..., Writer]
) -> None:
    """What legitimately happens to the files while a monitor writes must not stop it."""
    alarms: list[str] = []
    opened: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        conn = store.connect(fresh_db).conn
        opened.append(conn)
        return conn

    writer = writers(fresh_db, on_alarm=alarms.append, connect=connect, retry_interval=0.05)
    n = 0
    for _ in range(10):
        n += 1
        await writer.submit("events", event_row(body(n)))
        reader = store.connect(fresh_db, readonly=True)  # what `open` and the TUI use
        reader.execute("SELECT count(*) FROM events").fetchone()
        reader.close()
        store.open_for_review(fresh_db)
        other = store.connect(fresh_db)  # another process's writer, e.g. an import, checkpointing at its exit
        assert store.checkpoint(other.conn)
        other.close()
        plain = sqlite3.connect(fresh_db)
        plain.execute("SELECT 1").fetchone()
        plain.close()
    # The writer's own connection fails ("readonly") and is closed while it is the only
    # one: SQLite checkpoints and deletes the WAL, and the fresh connection the writer
    # retries on makes a new one. Not an alarm, and the delivery is written.
    opened[-1].execute("PRAGMA query_only = 1")
    await asyncio.wait_for(writer.submit("events", event_row(b'{"retried":1}')), 20)
    for _ in range(3):
        n += 1
        await writer.submit("events", event_row(body(n)))
    assert writer.healthy and writer.lost is None and not alarms
    assert len(opened) == 2


def test_a_connection_marked_to_keep_files_leaves_them_when_it_closes_last(fresh_db: Path) -> None:
    """After a replacement, the names ``-wal``/``-shm`` may be the newcomer's: closing must not delete them."""
    conn = store.connect(fresh_db).conn
    store.write_batch(conn, [event_row(body(1))], [])
    assert store.keep_files_on_close(conn)
    conn.close()  # the last connection: SQLite would checkpoint and delete the WAL by name
    assert Path(f"{fresh_db}-wal").stat().st_size > 0 and Path(f"{fresh_db}-shm").exists()
    plain = store.connect(fresh_db).conn
    plain.close()  # unmarked: checkpoints and deletes, as usual
    assert not Path(f"{fresh_db}-wal").exists()


def test_the_search_index_reads_bodies_by_the_megabyte(fresh_db: Path) -> None:
    db = store.open_store(fresh_db)
    try:
        sizes = [10, 10, 600_000, 500_000, 10, 3_000_000, 10]
        bodies = [b'{"w":"k%d %s"}' % (i, b"x" * size) for i, size in enumerate(sizes)]
        store.write_batch(db.conn, [event_row(b, parsed=False) for b in bodies], [])
        counts = []
        while done := store.index_pending(db.conn, 500, max_bytes=1_000_000):
            counts.append(done)
        # Up to the budget, always at least one row (the 3 MB body alone).
        assert counts == [3, 2, 1, 1], counts
        assert db.execute("SELECT indexed_upto FROM search_state").fetchone()[0] == len(sizes)
        hits = db.execute("SELECT rowid FROM events_fts WHERE events_fts MATCH 'k5'").fetchall()
        assert hits == [(6,)]
    finally:
        db.close()


# -- item 2: the real headless process -------------------------------------------------------------


def _rm_db(db: Path, tmp_path: Path) -> Path:
    db.unlink()
    return db  # restored there from the still-open file


def _rm_wal(db: Path, tmp_path: Path) -> Path:
    Path(f"{db}-wal").unlink()
    return db  # the WAL's rows folded back into the database at the path


def _mv_away(db: Path, tmp_path: Path) -> Path:
    moved = tmp_path / "moved.db"
    db.rename(moved)
    return moved


def _mv_other_onto(db: Path, tmp_path: Path) -> Path:
    make_other_database(tmp_path / "other.db")
    os.replace(tmp_path / "other.db", db)
    return tmp_path  # the rescue copy beside it: found by name below


CHANGES: dict[str, Callable[[Path, Path], Path]] = {
    "rm db": _rm_db,
    "rm wal": _rm_wal,
    "mv db away": _mv_away,
    "mv another db onto the path": _mv_other_onto,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_headless_refuses_loudly_and_keeps_every_acknowledged_delivery(
    change: str, monitors: Callable[..., Monitor], tmp_path: Path
) -> None:
    db = tmp_path / "del.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db))
    url = monitor.url()
    acked: dict[int, bytes] = {}
    for n in range(8):
        status, answer = http(url, body(n))
        assert status == 200, answer
        acked[answer["id"]] = body(n)
    other = make_other_database(tmp_path / "other-copy.db") if change.startswith("mv another") else {}

    where = CHANGES[change](db, tmp_path)

    for n in range(100, 105):
        status, answer = http(url, body(n))
        assert status == 503, (status, answer)
        assert FILE_LOST in answer["error"]
    status, state = http(url)
    assert status == 200 and state["ok"] is False
    assert FILE_LOST in state["error"] and str(db) in state["error"], state
    seen = []
    while not any(ALARM in line for line in seen):
        seen.append(monitor.line(timeout=10))
    monitor.proc.send_signal(signal.SIGTERM)
    assert monitor.proc.wait(30) == 0, monitor.stderr()
    out = seen + monitor.rest()
    alarms = [line for line in out if ALARM in line]
    assert len(alarms) == 1 and FILE_LOST in alarms[0] and str(db) in alarms[0], out
    assert out[-1].startswith("stopped; session 1 not closed"), out[-1]
    assert sum(1 for line in out if "  200  #" in line) == len(acked)

    if change.startswith("mv another"):
        (where,) = tmp_path.glob("del.rescued-*.db")
        assert read_copy(db, tmp_path / "newcomer")[0] == other  # the database moved onto the path is untouched
    assert str(where) in state["error"] and str(where) in alarms[0]
    stored, _ = read_copy(where, tmp_path / "copy")
    missing = {i for i, b in acked.items() if stored.get(i) != b}
    assert not missing, f"acknowledged deliveries lost: {sorted(missing)}"
    if change == "mv db away":
        assert not db.exists()  # no fresh database is made at the path behind anyone's back


def test_other_processes_reading_and_checkpointing_raise_no_false_alarm(
    monitors: Callable[..., Monitor], tmp_path: Path
) -> None:
    db = tmp_path / "busy.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db))
    url = monitor.url()
    acked = {}
    for n in range(15):
        status, answer = http(url, body(n))
        assert status == 200, answer
        acked[answer["id"]] = body(n)
        store.open_for_review(db)  # what `conscent-monitor open` does first
        reader = store.connect(db, readonly=True)
        reader.execute("SELECT count(*) FROM events").fetchone()
        reader.close()
        if n % 5 == 4:
            writer = store.connect(db)
            store.checkpoint(writer.conn)
            writer.close()
    time.sleep(1.2)  # an idle check too (FILE_CHECK_INTERVAL)
    status, state = http(url)
    assert state["ok"] is True and state["error"] is None, state
    monitor.proc.send_signal(signal.SIGTERM)
    assert monitor.proc.wait(30) == 0
    out = monitor.rest()
    assert not [line for line in out if ALARM in line], out
    assert read_copy(db, tmp_path / "copy")[0] == acked


# -- item 1: every clean exit leaves a self-contained .db -------------------------------------------


def test_headless_sigterm_leaves_a_self_contained_database(monitors: Callable[..., Monitor], tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db))
    url = monitor.url()
    acked = {}
    for n in range(20):
        status, answer = http(url, body(n))
        assert status == 200, answer
        acked[answer["id"]] = body(n)
    monitor.proc.send_signal(signal.SIGTERM)
    assert monitor.proc.wait(30) == 0
    assert monitor.rest()[-1] == "stopped; session 1 closed"
    events, sessions = read_copy(db, tmp_path / "copy")
    assert events == acked and sessions[0]["ended_at"] is not None
    assert wal_is_empty(db)


def _demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONSCENT_WEBHOOK_SECRET"}
    env["TMPDIR"] = str(tmp_path)  # the demo's temporary database lands under the test's folder
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: The command may be the path of the script that ran (conscent-monitor not on PATH).
HINT = re.compile(r"Open them again with: (?:\S*/)?conscent-monitor open (\S+)")


def _check_demo_database(hint_path: str, tmp_path: Path) -> None:
    path = Path(shlex.split(hint_path)[0])
    assert path.is_file() and tmp_path in path.parents, path
    store.open_for_review(path)  # what `conscent-monitor open PATH` checks first
    events, sessions = read_copy(path, tmp_path / "copy")
    with sqlite3.connect(path) as conn:  # the database with whatever its WAL holds
        everything = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert len(events) == everything > 0
    assert sessions[-1]["ended_at"] is not None and sessions[-1]["mode"] in {"demo", "headless"}


def test_headless_demo_leaves_a_self_contained_database_and_says_where(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "watch", "--headless", "--demo"],
        cwd=tmp_path,
        env=_demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]  # the banner and a few deliveries
        assert all(lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    match = HINT.search(out)
    assert match, out[-2000:]
    assert f"The demo's deliveries are in {shlex.split(match.group(1))[0]}" in out
    _check_demo_database(match.group(1), tmp_path)


# -- in a real terminal ----------------------------------------------------------------------------


def tmux_only(test: Callable[..., None]) -> Callable[..., None]:
    return pytest.mark.tmux(pytest.mark.skipif(not HAVE_TMUX, reason="tmux is not installed")(test))


def _start_in_tmux(tmux: Tmux, command: list[str], env: dict[str, str] | None = None) -> None:
    script = shlex.join(command) + '; echo "EXITED=$?"; sleep 600'
    extra = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    size = ["-x", "160", "-y", "48"]
    tmux("new-session", "-d", *size, "-s", tmux.session, "-e", "LANG=C.UTF-8", "-e", "TERM=xterm-256color", *extra,
         "sh", "-c", script)  # fmt: skip


def _joined_screen(tmux: Tmux) -> str:
    return tmux("capture-pane", "-p", "-J", "-t", tmux.session, check=False).stdout


@tmux_only
def test_tui_quit_leaves_a_self_contained_database(tmp_path: Path, tmux: Tmux) -> None:
    db = tmp_path / "live.db"
    _start_in_tmux(tmux, [*program(), "--port", "0", "--db", str(db)])
    url = wait_for_url(db, tmux)
    tmux.wait_for(lambda s: url in s, "the main screen")
    acked = {}
    for data in (VIEW, CLOSE, body(1), body(2), body(3)):
        status, answer = http(url, data)
        assert status == 200, answer
        acked[answer["id"]] = data
    tmux.wait_for(lambda s: "▶ view" in s and "■ close" in s, "the rows")
    tmux.keys("q")
    screen = tmux.wait_for(lambda s: "EXITED=" in s, "the program to exit")
    assert "EXITED=0" in screen, screen
    events, sessions = read_copy(db, tmp_path / "copy")
    assert events == acked
    assert sessions[-1]["ended_at"] is not None and sessions[-1]["mode"] == "tui"
    assert wal_is_empty(db)


@tmux_only
def test_tui_demo_quit_says_where_its_database_is(tmp_path: Path, tmux: Tmux) -> None:
    _start_in_tmux(tmux, [*program(), "watch", "--demo"], env={"TMPDIR": str(tmp_path)})
    tmux.wait_for(lambda s: "▶ view" in s and "■ close" in s, "demo deliveries")
    tmux.keys("q")
    tmux.wait_for(lambda s: "EXITED=" in s, "the program to exit")
    screen = _joined_screen(tmux)
    assert "EXITED=0" in screen, screen
    match = HINT.search(screen)
    assert match, screen
    _check_demo_database(match.group(1), tmp_path)


@pytest.mark.slow
@tmux_only
def test_conscent_monitor_open_on_a_live_database_raises_no_false_alarm(
    monitors: Callable[..., Monitor], tmp_path: Path, tmux: Tmux
) -> None:
    db = tmp_path / "live.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db))
    url = monitor.url()
    acked = {}
    for data in (VIEW, CLOSE):
        acked[http(url, data)[1]["id"]] = data
    _start_in_tmux(tmux, [*program(), "open", str(db)])
    tmux.wait_for(lambda s: "▶ view" in s and "■ close" in s, "the review screen")
    for n in range(3):  # while the review polls the file (and reads the new rows)
        status, answer = http(url, body(n))
        acked[answer["id"]] = body(n)
        time.sleep(0.4)
    tmux.keys("q")
    screen = tmux.wait_for(lambda s: "EXITED=" in s, "the review to exit")
    assert "EXITED=0" in screen, screen
    time.sleep(1.2)  # an idle check too
    for n in range(20, 25):
        status, answer = http(url, body(n))
        assert status == 200, answer
        acked[answer["id"]] = body(n)
    assert http(url)[1]["ok"] is True
    monitor.proc.send_signal(signal.SIGTERM)
    assert monitor.proc.wait(30) == 0
    assert not [line for line in monitor.rest() if ALARM in line]
    assert read_copy(db, tmp_path / "copy")[0] == acked


# -- item 5: the indexer's memory -------------------------------------------------------------------

MIB = 1024 * 1024


def _rss_mb(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss, peak = (int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) // 1024 for key in ("VmRSS", "VmHWM"))  # type: ignore[union-attr]
    return rss, peak


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_rss_stays_low_once_500_bodies_of_1_mib_are_indexed(
    monitors: Callable[..., Monitor], tmp_path: Path
) -> None:
    db = tmp_path / "big.db"
    monitor = monitors("watch", "--headless", "--port", "0", "--db", str(db), "--max-body", str(2 * MIB))
    url = await asyncio.to_thread(monitor.url)
    # Words to index (a shared block, so the test itself stays small), and a unique head per delivery.
    words = " ".join(f"word{(n * 7919) % 50_021:05d}-{n % 97:02d}xxxxx" for n in range(60_000)).encode()[: MIB - 128]
    async with aiohttp.ClientSession() as session:
        gate = asyncio.Semaphore(8)  # fast enough that the indexer meets all 500 at once, as in the issue

        async def post(n: int) -> int:
            async with gate, session.post(url, data=b'{"event":"big","n":%d,"pad":"%s"}' % (n, words)) as resp:
                assert resp.status == 200, await resp.text()
                return int((await resp.json())["id"])

        ids = await asyncio.gather(*(post(n) for n in range(500)))

    def indexed_upto() -> int:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT indexed_upto FROM search_state").fetchone()[0])
        finally:
            conn.close()

    started = time.monotonic()
    await wait_until(lambda: indexed_upto() == max(ids), timeout=400, what="the indexer to catch up")
    rss, peak = _rss_mb(monitor.proc.pid)
    print(f"\nindexer: 500 x 1 MiB indexed in {time.monotonic() - started:.0f} s; RSS {rss} MB, peak {peak} MB")
    assert rss < 300, f"RSS {rss} MB (peak {peak} MB) after indexing 500 bodies of 1 MiB"
    monitor.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(monitor.proc.wait, 60) == 0
