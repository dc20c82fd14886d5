"""``conscent-monitor import / export / open / generate`` through click's CliRunner.

The curl test is issue 4's "done when", end to end: samples sent signed to one
monitor, one reader exported as curl commands, replayed with bash into a
second monitor that requires the signature.
"""

from __future__ import annotations

import csv
import importlib
import io
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.exporting import csv_columns
from monitor.signing import VALID
from monitor.store import connect
from tests.helpers import SAMPLE_EVENTS, Monitor, one_error, read_rows

READER = "65e01bd8d03692125f1f353d"
SECRET = "whsec_data"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def sample_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(SAMPLE_EVENTS.glob("*.json"))}


def meta_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(autouse=True)
def no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSCENT_WEBHOOK_SECRET", raising=False)


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[Any]:
    started: list[Monitor] = []

    def start(*args: str) -> Monitor:
        monitor = Monitor("watch", "--headless", "--port", "0", *args, cwd=tmp_path)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


# --- import and export -----------------------------------------------------------------------------


def test_import_export_reimport_export_keeps_bodies_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    files = sample_files()
    result = ok("import", str(SAMPLE_EVENTS), "--db", str(first))
    n = len(files)
    assert result.stdout.startswith(f"imported {n} deliveries into session 1 from {n} files ({n} records read")

    ok("export", "--db", str(first), "--format", "jsonl", "--meta", "-o", str(tmp_path / "first.jsonl"))
    result = ok("import", str(tmp_path / "first.jsonl"), "--db", str(second))
    assert f"imported {len(files)} deliveries" in result.stdout and "0 skipped" in result.stdout
    result = ok("export", "--db", str(second), "--format", "jsonl", "--meta", "-o", str(tmp_path / "second.jsonl"))
    assert f"exported {len(files)} deliveries" in result.stderr

    exported = [line["body_text"].encode() for line in meta_lines(tmp_path / "first.jsonl")]
    again = [line["body_text"].encode() for line in meta_lines(tmp_path / "second.jsonl")]
    assert again == exported
    assert sorted(exported) == sorted(files.values())  # the files' exact bytes (indentation and all)
    stored = [row["body"] for row in read_rows(second, "SELECT body FROM events ORDER BY id")]
    assert stored == exported
    # The metadata round-trips too.
    keys = ("received_at", "method", "path", "signature", "basic_auth", "event")
    assert [{k: line[k] for k in keys} for line in meta_lines(tmp_path / "second.jsonl")] == [
        {k: line[k] for k in keys} for line in meta_lines(tmp_path / "first.jsonl")
    ]


def test_import_builds_the_search_index(tmp_path: Path) -> None:
    db = tmp_path / "indexed.db"
    result = ok("import", str(SAMPLE_EVENTS), "--db", str(db))
    assert "; search index built in " in result.stdout
    assert read_rows(db, "SELECT indexed_upto AS n FROM search_state") == [{"n": len(sample_files())}]
    hits = read_rows(db, "SELECT count(*) AS n FROM events_fts WHERE events_fts MATCH ?", ('"okhla"',))
    assert hits[0]["n"] > 0


def test_export_csv_has_a_header_row(tmp_path: Path) -> None:
    db = tmp_path / "csv.db"
    ok("import", str(SAMPLE_EVENTS), "--db", str(db))
    result = ok("export", "--db", str(db), "--format", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    conn = connect(db, readonly=True)
    try:
        columns = csv_columns(conn)
    finally:
        conn.close()
    assert rows[0] == columns
    assert {"id", "event", "user_id", "click_action"} <= set(rows[0]) and "body" not in rows[0]
    assert len(rows) == 1 + len(sample_files())
    by_id = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    views = [row for row in by_id.values() if row["event"] == "payment_gateway.view"]
    assert views and all(row["user_id"] for row in views)

    filtered = ok("export", "--db", str(db), "--format", "csv", "--filter", "event:close")
    events = {row[rows[0].index("event")] for row in csv.reader(io.StringIO(filtered.stdout))} - {"event"}
    assert events == {"payment_gateway.close"}


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [("foo:bar", 1, "unknown field 'foo'"), ("event:view lag>abc", 16, "bad duration 'abc'")],
)
def test_bad_filter_is_a_usage_error_with_the_column(tmp_path: Path, text: str, column: int, words: str) -> None:
    db = tmp_path / "filter.db"
    ok("import", str(SAMPLE_EVENTS), "--db", str(db))
    keep = tmp_path / "keep.jsonl"
    keep.write_bytes(b"precious\n")
    result = run("export", "--db", str(db), "--filter", text, "-o", str(keep))
    line = one_error(result, 2)
    assert line.startswith(f"Error: bad filter at column {column}: ") and words in line, line
    assert keep.read_bytes() == b"precious\n"  # a typo does not truncate the output file


def test_export_to_an_unwritable_place_is_a_one_error(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    ok("import", str(SAMPLE_EVENTS), "--db", str(db))
    line = one_error(run("export", "--db", str(db), "-o", str(tmp_path / "missing" / "x.jsonl")), 1)
    assert "cannot write" in line


def test_import_reports_bad_lines_with_their_numbers(tmp_path: Path) -> None:
    good = [b'{"event":"payment_gateway.view","user_id":"a"}', b'{"event":"payment_gateway.close","user_id":"a"}']
    lines = [good[0], b"not json", b"", b"[1, 2]", b'{"body_text": 5}', good[1]]
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n")
    db = tmp_path / "bad.db"
    result = ok("import", str(capture), "--db", str(db))
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert [line.split(": ", 1)[0] for line in skipped] == [f"skipped {capture}:{number}" for number in (2, 3, 4, 5)], (
        result.stderr
    )
    assert "empty line" in skipped[1] and "array" in skipped[2]
    assert result.stdout.startswith("imported 2 deliveries into session 1 from 1 file (6 records read, 4 skipped")
    assert [row["body"] for row in read_rows(db, "SELECT body FROM events ORDER BY id")] == good


def test_import_into_a_foreign_database_is_a_one_error(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    line = one_error(run("import", str(SAMPLE_EVENTS), "--db", str(foreign)), 1)
    assert "not a conscent-monitor database" in line and "users" in line
    assert [row["name"] for row in read_rows(foreign, "SELECT name FROM sqlite_master WHERE type = 'table'")] == [
        "users"
    ]  # left alone


def test_generate_then_export(tmp_path: Path) -> None:
    db = tmp_path / "gen.db"
    ok("generate", "--count", "500", "--db", str(db))
    result = ok("export", "--db", str(db), "-o", str(tmp_path / "gen.jsonl"))
    assert "exported 500 deliveries" in result.stderr
    assert len((tmp_path / "gen.jsonl").read_bytes().splitlines()) == 500

    ok("generate", "--count", "500", "--jsonl", str(tmp_path / "plain.jsonl"))
    ok("import", str(tmp_path / "plain.jsonl"), "--db", str(tmp_path / "plain.db"))
    ok("export", "--db", str(tmp_path / "plain.db"), "-o", str(tmp_path / "back.jsonl"))
    assert (tmp_path / "back.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


def test_generate_needs_exactly_one_destination(tmp_path: Path) -> None:
    assert "exactly one of --db or --jsonl" in one_error(run("generate", "--count", "5"), 2)
    line = one_error(run("generate", "--count", "5", "--db", str(tmp_path / "missing" / "x.db")), 1)
    assert "cannot open" in line


# --- open: the error paths (a good database would start the TUI) ------------------------------------


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("good") / "good.db"
    ok("generate", "--count", "400", "--db", str(db), "--seed", "3")
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    return db


def replace_tui(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Replace ``run_offline`` (wherever ``open`` imports it from) by a recorder."""
    started: list[tuple[Any, ...]] = []
    patched = 0
    for name in ("monitor.tui.launch", "monitor.tui.app"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "run_offline"):
            monkeypatch.setattr(module, "run_offline", lambda *args: started.append(args))
            patched += 1
    assert patched, "run_offline not found: open would start a real TUI"
    return started


def _missing(tmp_path: Path, _good: Path) -> Path:
    return tmp_path / "nowhere.db"


def _text(tmp_path: Path, _good: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    return path


def _foreign(tmp_path: Path, _good: Path) -> Path:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, token TEXT)")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    return path


def _truncated(tmp_path: Path, good: Path) -> Path:
    data = good.read_bytes()
    path = tmp_path / "truncated.db"
    path.write_bytes(data[: len(data) // 2])
    return path


def _scribbled(tmp_path: Path, good: Path) -> Path:
    """Garbage over the schema page, right after the 100-byte file header."""
    data = bytearray(good.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)
    path = tmp_path / "scribbled.db"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_missing, "no such file"),
        (_text, "not a readable SQLite database"),
        (_foreign, "not a conscent-monitor database (tables: sessions, users)"),
        (_truncated, "not a readable SQLite database"),
        (_scribbled, "not a readable SQLite database"),
    ],
    ids=["missing", "not-sqlite", "foreign", "truncated", "corrupt"],
)
def test_open_refuses_what_it_cannot_review(
    tmp_path: Path, good_db: Path, monkeypatch: pytest.MonkeyPatch, make: Any, words: str
) -> None:
    started = replace_tui(monkeypatch)  # never a TUI here
    path = make(tmp_path, good_db)
    before = path.read_bytes() if path.exists() else None
    line = one_error(run("open", str(path)), 1)
    assert line.startswith(f"Error: {path}: ") and words in line, line
    assert started == []
    assert (path.read_bytes() if path.exists() else None) == before  # not modified, not created


def test_open_on_a_good_database_reaches_the_tui(good_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control case for the refusals above (the TUI itself is replaced)."""
    started = replace_tui(monkeypatch)
    ok("open", str(good_db), "--session", "2")
    assert started == [(good_db, 2)]


# --- issue 4's scenario: reproduce one reader's deliveries with curl -----------------------------------


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
def test_curl_export_replays_one_reader_into_a_strict_monitor(tmp_path: Path, monitors: Any) -> None:
    source, replica = tmp_path / "source.db", tmp_path / "replica.db"
    first = monitors("--db", str(source), "--secret", SECRET)
    sent = CliRunner().invoke(cli, ["send", "--to", first.url() + "hooks/conscent", "--secret", SECRET])
    assert sent.exit_code == 0, sent.output
    second = monitors("--db", str(replica), "--secret", SECRET, "--require-signature")
    target = second.url()

    # Exported while the first monitor is still running (it is writing the same file).
    script = tmp_path / "replay.sh"
    result = ok("export", "--db", str(source), "--format", "curl", "--filter", f"user:{READER}",
                "--base-url", target, "-o", str(script))  # fmt: skip
    expected = read_rows(source, "SELECT body, headers, path FROM events WHERE user_id = ? ORDER BY id", (READER,))
    assert len(expected) >= 2
    assert f"exported {len(expected)} deliveries" in result.stderr

    replay = subprocess.run(["bash", str(script)], capture_output=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    answers = [orjson.loads(line) for line in replay.stdout.splitlines() if line.strip()]
    assert len(answers) == len(expected) and all(answer["ok"] is True for answer in answers), replay.stdout

    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(15) == 0
    got = read_rows(replica, "SELECT body, headers, path, signature FROM events ORDER BY id")
    assert [row["body"] for row in got] == [row["body"] for row in expected]  # byte for byte, in order
    assert {row["signature"] for row in got} == {VALID}
    assert [row["path"] for row in got] == [row["path"] for row in expected] == ["/hooks/conscent"] * len(expected)
    for original, again in zip(expected, got, strict=True):
        before, after = orjson.loads(original["headers"]), orjson.loads(again["headers"])
        for name in ("Content-Type", "User-Agent", "Accept", "X-Conscent-Signature"):
            assert after[name] == before[name], name
    assert read_rows(replica, "SELECT count(*) AS n FROM rejected") == [{"n": 0}]
