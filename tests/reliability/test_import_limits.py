"""Import and generate under hostile or unlucky conditions (issue 10: items 1, 6, 9, 12, 14).

Over-long lines and bodies are skipped by ``--max-body`` with flat memory (the
RSS of the real command is read from ``wait4``); names quoted in messages are
inert; SIGTERM ends the session like Ctrl-C; every exit leaves a ``.db`` that
is whole on its own; a corrupt database is one line, not a traceback.
"""

from __future__ import annotations

import base64
import fcntl
import gzip
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import importing, pipeline, synth
from monitor.cli import cli
from monitor.listener import DEFAULT_MAX_BODY
from monitor.textsafe import clean, inert
from tests.helpers import SAMPLE_EVENTS, one_error, read_rows, run_command

BATCH = pipeline.BATCH_ROWS  # rows per transaction

GOOD = [b'{"event":"payment_gateway.view","user_id":"%d","created_at":1760000000}' % n for n in range(3)]
#: What the import command may hold at its peak while skipping a 256 MiB line.
RSS_CEILING = 300 * 1024 * 1024
#: Address space the import subprocesses get: the code before the fix needed far more, and
#: fails with a MemoryError instead of taking the machine's memory.
ADDRESS_SPACE = 1024**3
TERMINAL_CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) != "\n"]


def bodies(count: int) -> list[bytes]:
    return [e.body for e in synth.events(count, seed=5, readers=50, days=1, end=1_760_000_000)]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def monitor_command(*args: str, cwd: Path, timeout: float = 120.0) -> tuple[int, int, str, str]:
    """Run ``python -m monitor ARGS``; its exit status, peak RSS in bytes, stdout and stderr."""
    out, err = cwd / "out.txt", cwd / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args], cwd=cwd, stdout=stdout, stderr=stderr, preexec_fn=_limit_memory
        )
    deadline = time.monotonic() + timeout  # a hang guard only
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"monitor {' '.join(args)} still running after {timeout} s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, out.read_text(), err.read_text()


def event_bodies(db: Path) -> list[bytes]:
    return [row["body"] for row in read_rows(db, "SELECT body FROM events ORDER BY id")]


# --- 6: --max-body while reading -------------------------------------------------------------------


def test_the_default_limit_is_the_listeners() -> None:
    assert importing.MAX_BODY == DEFAULT_MAX_BODY == 1024 * 1024
    option = next(p for p in cli.commands["import"].params if p.name == "max_body")
    assert option.default == DEFAULT_MAX_BODY


@pytest.mark.slow
def test_a_256_mib_line_is_skipped_with_flat_memory(tmp_path: Path) -> None:
    """Before: 1.46 GB peak RSS and the 256 MiB body stored (here: a MemoryError under the 1 GiB cap)."""
    capture = tmp_path / "big.jsonl.gz"
    size = 256 * 1024 * 1024
    prefix, chunk = b'{"event":"payment_gateway.view","pad":"', b"a" * (1 << 20)
    with gzip.open(capture, "wb", compresslevel=1) as out:  # written as a stream: never in memory
        out.write(GOOD[0] + b"\n" + GOOD[1] + b"\n" + prefix)
        for _ in range((size - len(prefix) - 2) // len(chunk)):
            out.write(chunk)
        out.write(b"a" * ((size - len(prefix) - 2) % len(chunk)) + b'"}\n' + GOOD[2] + b"\n")
    status, rss, stdout, stderr = monitor_command("import", capture.name, "--db", "big.db", cwd=tmp_path)
    assert status == 0, stderr
    assert f"skipped {capture.name}:3: 268,435,456 bytes, over the 1,048,576-byte limit (--max-body)" in stderr
    assert stdout.startswith("imported 3 deliveries into session 1 from 1 file (4 records read, 1 skipped")
    assert rss < RSS_CEILING, f"peak RSS {rss / 2**20:.0f} MiB"
    assert event_bodies(tmp_path / "big.db") == GOOD


def test_a_huge_json_file_is_refused_by_its_size_unread(tmp_path: Path) -> None:
    """An 8 GiB (sparse) ``.json``: before, read whole (a MemoryError here); now refused at once."""
    huge = tmp_path / "huge.json"
    with huge.open("wb") as out:
        out.truncate(8 * 1024**3)
    (tmp_path / "ok.json").write_bytes(GOOD[0])
    status, rss, _stdout, stderr = monitor_command("import", "huge.json", "ok.json", "--db", "h.db", cwd=tmp_path)
    assert status == 0, stderr
    assert "skipped huge.json: 8,589,934,592 bytes, over the 1,048,576-byte limit (--max-body)" in stderr
    assert rss < RSS_CEILING
    assert event_bodies(tmp_path / "h.db") == [GOOD[0]]


def meta_line(body: bytes) -> bytes:
    return orjson.dumps({"id": 1, "method": "POST", "path": "/", "headers": {}, "body_text": body.decode()})


def test_lines_and_bodies_over_max_body_are_skipped_and_numbered(tmp_path: Path) -> None:
    limit = 1000
    at_limit = b'{"event":"x","pad":"' + b"b" * (limit - 22) + b'"}'
    escaped = b'{"event":"x","pad":"' + b'\\"' * ((limit - 22) // 2) + b'"}'  # its meta line is twice as long
    too_long_for_reading = b'{"event":"x","pad":"' + b"c" * (3 * limit + 70_000) + b'"}'
    lines = [
        GOOD[0],
        at_limit,  # 2: exactly the limit, kept
        at_limit[:-2] + b'b"}',  # 3: one byte over
        too_long_for_reading,  # 4: skipped while read
        meta_line(escaped),  # 5: a longer line, its body within the limit: kept
        orjson.dumps({"body_base64": base64.b64encode(at_limit + b" ").decode()}),  # 6: body one byte over
        b"not json, and long " * 100,  # 7: over the limit before it is anything else
        GOOD[1],
    ]
    capture = tmp_path / "lines.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n" + GOOD[2])  # the last line has no newline
    assert len(at_limit) == limit and len(escaped) <= limit < len(meta_line(escaped))
    report = importing.import_paths(tmp_path / "l.db", [capture], max_body=limit)
    name = str(capture)
    assert report.errors == [
        f"{name}:3: 1,001 bytes, over the 1,000-byte limit (--max-body)",
        f"{name}:4: {len(too_long_for_reading):,} bytes, over the 1,000-byte limit (--max-body)",
        f"{name}:6: body of 1,001 bytes, over the 1,000-byte limit (--max-body)",
        f"{name}:7: 1,900 bytes, over the 1,000-byte limit (--max-body)",
    ]
    assert (report.lines, report.imported, report.skipped) == (9, 5, 4)
    assert event_bodies(tmp_path / "l.db") == [GOOD[0], at_limit, escaped, GOOD[1], GOOD[2]]


def test_json_files_and_har_entries_over_max_body(tmp_path: Path) -> None:
    limit = 1000
    big_body = b'{"event":"x","pad":"' + b"d" * 2000 + b'"}'
    (tmp_path / "a_body.json").write_bytes(big_body)
    (tmp_path / "b_lines.json").write_bytes(b"\n".join([GOOD[0], big_body, GOOD[1]]) + b"\n")  # JSONL named .json
    entries = [
        {"request": {"method": "POST", "url": "http://h/", "postData": {"text": b.decode()}}}
        for b in (big_body, GOOD[2])
    ]
    (tmp_path / "c_capture.json").write_bytes(orjson.dumps({"log": {"entries": entries}}, option=orjson.OPT_INDENT_2))
    report = importing.import_paths(tmp_path / "j.db", [tmp_path], max_body=limit)
    over = "over the 1,000-byte limit (--max-body)"
    assert report.errors == [
        f"{tmp_path / 'a_body.json'}: 2,022 bytes, {over}",
        f"{tmp_path / 'b_lines.json'}:2: 2,022 bytes, {over}",
        f"{tmp_path / 'c_capture.json'}: entry 1: body of 2,022 bytes, {over}",
    ]
    assert event_bodies(tmp_path / "j.db") == [GOOD[0], GOOD[1], GOOD[2]]


# --- 9: names quoted in messages are inert ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        ("capture.jsonl", 200, "capture.jsonl"),
        ("my capture.jsonl", 200, "my capture.jsonl"),
        ("a\x1b]0;pwned\x07.jsonl", 200, "'a\u241b]0;pwned\u2407.jsonl'"),
        ("b\x1b]52;c;aGk=\x07\u202e\x9b", 200, "'b\u241b]52;c;aGk=\u2407\ufffd\ufffd'"),
        ("", 200, "''"),
        (" lead", 200, "' lead'"),
        ("x" * 50 + "/name.jsonl", 11, "'xxx\u2026e.jsonl'"),  # the end of a path is its file name
    ],
)
def test_inert(value: str, limit: int, shown: str) -> None:
    assert inert(value, limit) == shown


@given(st.text(alphabet=st.characters(codec=None) | st.sampled_from("\x1b\x07\x9b\u202e\ud800 \n")), st.integers(1, 60))
@settings(max_examples=300, deadline=None)
def test_inert_is_one_inert_line_within_its_limit(value: str, limit: int) -> None:
    shown = inert(value, limit)
    assert not [c for c in [*TERMINAL_CONTROLS, "\n", "\u202e", "\ud800"] if c in shown]
    assert len(shown) <= limit + 2  # and the quotes
    assert clean(shown) == shown  # nothing left for clean() to do


def test_import_and_generate_messages_quote_names_inertly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the ESC and BEL of these names reached the terminal (a title change, a clipboard write)."""
    monkeypatch.chdir(tmp_path)
    title, clipboard = "t\x1b]0;pwned\x07", "c\x1b]52;c;cHduZWQ=\x07"
    Path(f"{title}.jsonl").write_bytes(GOOD[0] + b"\nnot json\n")
    Path(f"{clipboard}.gz").write_bytes(b"not gzip")
    Path(f"{title}.json").write_bytes(b'{"pad":"' + b"x" * 200 + b'"}')
    foreign = Path(f"{clipboard}.db")
    foreign.write_bytes(b"not a database, " * 10)
    outputs = [
        run_command(
            "import", f"{title}.jsonl", f"{clipboard}.gz", f"{title}.json", "--db", "ok.db", "--max-body", "100"
        ),
        run_command("import", f"{title}.jsonl", "--db", str(foreign)),
        run_command("generate", "--count", "5", "--db", str(foreign)),
        run_command("generate", "--count", "5", "--jsonl", f"{title}.jsonl"),
        run_command("generate", "--count", "5", "--jsonl", f"{clipboard}/x.jsonl"),
    ]
    text = "\n".join(result.output for result in outputs)
    assert "\u241b]0;pwned\u2407" in text and "\u241b]52;c;cHduZWQ=\u2407" in text
    assert not [c for c in TERMINAL_CONTROLS if c in text], text
    assert outputs[0].exit_code == 0 and text.count("skipped ") == 3
    assert [r.exit_code for r in outputs[1:]] == [1, 1, 0, 1]


# --- 14 and 1: SIGTERM like Ctrl-C; the .db alone is the whole database ----------------------------


def count_events(db: Path) -> int:
    try:
        return int(read_rows(db, "SELECT count(*) AS n FROM events")[0]["n"])
    except sqlite3.Error:  # not created yet
        return -1


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def assert_self_contained(db: Path, elsewhere: Path, events: int) -> None:
    """Copying the ``.db`` alone copies every row: the WAL is folded in and empty (or gone)."""
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, f"{wal.stat().st_size} bytes left in the WAL"
    elsewhere.mkdir()
    shutil.copy(db, elsewhere / db.name)
    assert count_events(elsewhere / db.name) == events
    open_sessions = read_rows(elsewhere / db.name, "SELECT id FROM sessions WHERE ended_at IS NULL")
    assert open_sessions == []


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], int]]]:
    """A named pipe to import from, and how to open its writing end once the import reads it."""
    path = tmp_path / "feed.jsonl"
    os.mkfifo(path)
    fds: list[int] = []

    def open_writer() -> int:
        deadline = time.monotonic() + 30
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader opens it
                break
            except OSError:
                assert time.monotonic() < deadline, "the import never opened the pipe"
                time.sleep(0.05)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        fds.append(fd)
        return fd

    yield path, open_writer
    for fd in fds:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_import_session_keeping_whole_batches(
    tmp_path: Path, fifo: tuple[Path, Callable[[], int]], signum: int
) -> None:
    """Before (SIGTERM): killed outright, session left open, exit status -15."""
    path, open_writer = fifo
    db = tmp_path / "sig.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "import", str(path), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        writer = open_writer()
        os.write(writer, b"\n".join(bodies(BATCH + 2000)) + b"\n")  # a batch, and 2,000 in hand
        wait_for(lambda: count_events(db) == BATCH, proc, "a batch")
        proc.send_signal(signum)  # while the import waits for more input
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, stderr
    assert b"Traceback" not in stderr
    assert stdout.decode().startswith(f"imported {BATCH:,} deliveries into session 1")
    assert "interrupted: the last, unfinished batch was not written" in stdout.decode()
    assert_self_contained(db, tmp_path / "copy", BATCH)


@pytest.mark.slow
def test_sigterm_ends_generate_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "gen.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "generate", "--count", "2000000", "--readers", "100", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: count_events(db) >= BATCH, proc, "a first batch")
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert b"Traceback" not in stderr
    events = count_events(db)
    assert events > 0 and events % BATCH == 0  # whole batches only (the indexes built after them)
    assert_self_contained(db, tmp_path / "copy", events)


def test_the_db_alone_holds_everything_while_a_reader_has_it_open(tmp_path: Path) -> None:
    """A reader (``open`` on the same file) stops SQLite folding the WAL in at close; the commands do it."""
    db = tmp_path / "shared.db"
    assert run_command("generate", "--count", "10", "--readers", "50", "--db", str(db)).exit_code == 0
    reader = sqlite3.connect(db)
    try:
        reader.execute("SELECT count(*) FROM events").fetchall()
        result = run_command("import", str(SAMPLE_EVENTS), "--db", str(db))
        assert result.exit_code == 0, result.output
        samples = len(list(SAMPLE_EVENTS.glob("*.json")))
        assert_self_contained(db, tmp_path / "after-import", 10 + samples)
        result = run_command("generate", "--count", "300", "--readers", "50", "--db", str(db))
        assert result.exit_code == 0, result.output
        assert_self_contained(db, tmp_path / "after-generate", 310 + samples)
    finally:
        reader.close()


def test_a_reader_in_a_transaction_keeps_the_wal_and_is_told(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    assert run_command("generate", "--count", "10", "--readers", "50", "--db", str(db)).exit_code == 0
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchall()  # a snapshot the checkpoint may not overwrite
        result = run_command("import", str(SAMPLE_EVENTS), "--db", str(db))
    finally:
        reader.close()
    assert result.exit_code == 0, result.output
    assert f"{db}-wal kept: another program is reading the database" in result.output


# --- 12: a corrupt database is one line --------------------------------------------------------------


def corrupt_events_pages(db: Path) -> None:
    """Overwrite the events table's pages (not the schema): SQLite finds out only when it writes there."""
    conn = sqlite3.connect(db)
    try:
        pages = [row[0] for row in conn.execute("SELECT pageno FROM dbstat WHERE name = 'events'")]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table")
    finally:
        conn.close()
    with db.open("r+b") as file:
        for page in pages[1:]:  # the root page stays readable, so opening the database works
            file.seek((page - 1) * page_size)
            file.write(b"\xff" * page_size)


@pytest.mark.parametrize("command", [["import", str(SAMPLE_EVENTS)], ["generate", "--count", "100", "--readers", "50"]])
def test_a_corrupt_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """Before: a ``sqlite3.DatabaseError`` traceback from the first batch."""
    db = tmp_path / "corrupt.db"
    assert run_command("generate", "--count", "600", "--readers", "50", "--db", str(db)).exit_code == 0
    corrupt_events_pages(db)
    line = one_error(run_command(*command, "--db", str(db)))
    assert line.startswith(f"Error: {db}: cannot write the database (database disk image is malformed)"), line
    assert read_rows(db, "SELECT count(*) AS n FROM sessions WHERE ended_at IS NULL") == [{"n": 0}]


@pytest.mark.parametrize(
    "command", [["import", str(SAMPLE_EVENTS)], ["generate", "--count", "10"]], ids=["import", "generate"]
)
def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "notes.db"
    db.write_bytes(b"these are my notes, not a database " * 200)
    assert "file is not a database" in one_error(run_command(*command, "--db", str(db)))
    assert db.read_bytes() == b"these are my notes, not a database " * 200
