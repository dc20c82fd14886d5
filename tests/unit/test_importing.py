"""Import: JSONL (plain and --meta), single files, directories, HAR; bad lines, big files, interrupts."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import orjson
import pytest

from monitor import importing, synth
from monitor.events import parse_body
from monitor.importing import Incoming, event_row, import_paths
from monitor.resources import sample_events_dir
from tests.helpers import read_rows

SAMPLES = sorted(sample_events_dir().glob("*.json"))


def compact(count: int, seed: int = 5) -> list[bytes]:
    return [e.body for e in synth.events(count, seed=seed, readers=50, days=1, end=1_760_000_000)]


def test_event_row_matches_what_the_listener_stores() -> None:
    for path in SAMPLES:
        body = path.read_bytes()
        row = event_row(7, Incoming(body, orjson.loads(body)), now=123.5)
        assert {name: row[name] for name in parse_body(body).columns()} == parse_body(body).columns()
        assert row["session_id"] == 7 and row["received_at"] == 123.5 and row["method"] == "POST"
        assert row["path"] == "/" and row["headers"] == "{}" and row["remote_addr"] is None
        assert row["body"] == body and row["body_size"] == len(body)
        assert row["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert row["signature"] == row["basic_auth"] == "unchecked"


def test_directory_of_samples(tmp_path: Path) -> None:
    db_path = tmp_path / "s.db"
    seen: list[tuple[int, int]] = []
    report = import_paths(db_path, [sample_events_dir()], progress=lambda done, total: seen.append((done, total)))
    assert (report.files, report.lines, report.imported, report.skipped) == (len(SAMPLES), len(SAMPLES), 15, 0)
    assert report.session_id == 1 and report.seconds > 0 and not report.interrupted
    stored = read_rows(db_path, "SELECT * FROM events ORDER BY id")
    assert [r["body"] for r in stored] == [p.read_bytes() for p in SAMPLES]  # sorted by name, exact bytes
    names = [p.name for p in SAMPLES]
    view = stored[names.index("payment_gateway.view.json")]
    close = stored[names.index("payment_gateway.close.json")]
    assert view["gateway_session_id"] == close["gateway_session_id"] is not None
    session = read_rows(db_path, "SELECT * FROM sessions")[0]
    assert session["mode"] == "import" and session["ended_at"] is not None
    assert str(sample_events_dir()) in session["source"]
    total = sum(p.stat().st_size for p in SAMPLES)
    assert seen[-1] == (total, total)


def test_single_files_and_gzip_and_jsonl_named_json(tmp_path: Path) -> None:
    bodies = compact(4)
    jsonl = tmp_path / "capture.json"  # JSONL under a .json name
    jsonl.write_bytes(b"\n".join(bodies[:2]) + b"\n")
    packed = tmp_path / "capture.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\n".join(bodies[2:]) + b"\n"))
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"event": ')
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b"\n".join(bodies)))
    cut.write_bytes(cut.read_bytes()[:-30])
    db_path = tmp_path / "f.db"
    report = import_paths(db_path, [SAMPLES[0], jsonl, packed, broken, cut])
    assert (report.files, report.skipped) == (5, 2)
    assert report.errors[0] == f"{broken}: body is not JSON: unexpected end of data: line 1 column 11 (char 10)"
    assert report.errors[1].startswith(f"{cut}: cannot read: ")  # the lines before the damage are kept
    stored = [r["body"] for r in read_rows(db_path, "SELECT body FROM events")]
    assert stored[:5] == [SAMPLES[0].read_bytes(), *bodies] and stored[5:] == bodies[: len(stored) - 5]


def test_bad_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    good = compact(3)
    lines = [
        good[0],
        b"not json",
        b"[1, 2]",
        b"",
        b"   ",
        b'{"event":"x","name":"M\xfcller"}',
        b"\xef\xbb\xbf" + good[1],  # a BOM is tolerated and kept
        b'{"event": "cut',
        good[2] + b"\r",  # a CRLF file: the \r is JSON whitespace, kept in the bytes
    ]
    capture = tmp_path / "bad.jsonl"
    capture.write_bytes(b"\n".join(lines))  # no final newline
    db_path = tmp_path / "b.db"
    report = import_paths(db_path, [capture])
    assert (report.lines, report.imported, report.skipped) == (9, 3, 6)
    assert [e.split(": ", 1)[0] for e in report.errors] == [f"{capture}:{n}" for n in (2, 3, 4, 5, 6, 8)]
    reasons = [e.split(": ", 1)[1] for e in report.errors]
    assert reasons[0].startswith("line is not JSON")
    assert reasons[1] == "JSON line is an array, not an object"
    assert reasons[2] == reasons[3] == "empty line"
    assert reasons[4] == "line is not valid UTF-8 (byte 22)"
    stored = [r["body"] for r in read_rows(db_path, "SELECT body FROM events ORDER BY id")]
    assert stored == [good[0], b"\xef\xbb\xbf" + good[1], good[2] + b"\r"]
    assert read_rows(db_path, "SELECT count(*) AS n FROM rejected")[0]["n"] == 0


def test_meta_lines_keep_the_request(tmp_path: Path) -> None:
    body = SAMPLES[3].read_bytes()  # pretty-printed
    meta = {
        "id": 99,
        "session_id": 4,
        "received_at": 1_700_000_000.125,
        "method": "POST",
        "path": "/webhooks?x=1",
        "remote_addr": "10.0.0.7",
        "headers": {"Content-Type": "application/json; charset=utf-8", "Authorization": "Basic dXNlcjpwYXNz"},
        "signature": "valid",
        "event": "whatever",
        "body_text": body.decode(),
    }
    capture = tmp_path / "meta.jsonl"
    capture.write_bytes(orjson.dumps(meta) + b"\n" + orjson.dumps({"body_base64": "***"}) + b"\n")
    db_path = tmp_path / "m.db"
    report = import_paths(db_path, [capture])
    assert (report.imported, report.errors) == (1, [f"{capture}:2: body_base64 is not base64"])
    row = read_rows(db_path, "SELECT * FROM events")[0]
    assert row["body"] == body and row["id"] == 1 and row["session_id"] == report.session_id
    assert (row["received_at"], row["path"], row["remote_addr"]) == (1_700_000_000.125, "/webhooks?x=1", "10.0.0.7")
    assert row["content_type"] == "application/json; charset=utf-8" and row["signature"] == "valid"
    assert orjson.loads(row["headers"])["Authorization"] == "Basic [redacted]"  # credentials never stored
    assert row["event"] == parse_body(body).event


def test_har_from_another_tool(tmp_path: Path) -> None:
    body = compact(1)[0]
    har = {
        "log": {
            "version": "1.2",
            "entries": [
                {
                    "startedDateTime": "2026-01-02T03:04:05.678+05:30",
                    "request": {
                        "method": "POST",
                        "url": "https://tunnel.example/hook/conscent?a=b",
                        "headers": [{"name": "Cookie", "value": "sid=secret"}, {"name": "X-A", "value": "1"}],
                        "postData": {"mimeType": "application/json", "text": body.decode()},
                    },
                },
                {"request": {"method": "GET", "url": "https://tunnel.example/"}},
            ],
        }
    }
    capture = tmp_path / "capture.har"
    capture.write_bytes(orjson.dumps(har))
    db_path = tmp_path / "h.db"
    report = import_paths(db_path, [capture])
    assert (report.lines, report.imported) == (2, 1)
    assert report.errors == [f"{capture}: entry 2: no request body (request.postData.text)"]
    row = read_rows(db_path, "SELECT * FROM events")[0]
    assert row["body"] == body and row["path"] == "/hook/conscent?a=b" and row["content_type"] == "application/json"
    assert row["received_at"] == pytest.approx(1_767_303_245.678)
    assert orjson.loads(row["headers"]) == {"Cookie": "[redacted]", "X-A": "1"}


@pytest.mark.slow
def test_large_import_with_bad_lines(tmp_path: Path) -> None:
    capture = tmp_path / "big.jsonl"
    synth.write_jsonl(capture, 50_000, seed=2, readers=2000)
    lines = capture.read_bytes().split(b"\n")[:-1]
    for index in range(999, len(lines), 1000):
        lines[index] = lines[index][:100]  # a cut line every thousand
    capture.write_bytes(b"\n".join(lines) + b"\n")
    db_path = tmp_path / "big.db"
    report = import_paths(db_path, [capture], max_errors=10)
    assert (report.lines, report.imported, report.skipped) == (50_000, 49_950, 50)
    assert len(report.errors) == 10 and report.errors[0].startswith(f"{capture}:1000: line is not JSON")
    assert report.errors[9].startswith(f"{capture}:10000:")
    count = read_rows(db_path, "SELECT count(*) AS n, count(duplicate_of) AS d FROM events")[0]
    assert count["n"] == 49_950 and count["d"] == report.duplicates > 0  # synth retries a few deliveries
    assert "imported 49,950 deliveries" in report.describe()


def test_interrupt_keeps_whole_batches_and_ends_the_session(tmp_path: Path) -> None:
    capture = tmp_path / "i.jsonl"
    capture.write_bytes(b"\n".join(compact(5000)) + b"\n")
    calls = 0

    def progress(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        assert 0 < done < total
        if calls == 3:
            raise KeyboardInterrupt

    db_path = tmp_path / "i.db"
    report = import_paths(db_path, [capture], progress=progress, batch_size=700)
    assert report.interrupted and report.imported == 2100 and "interrupted" in report.describe()
    assert read_rows(db_path, "SELECT count(*) AS n FROM events")[0]["n"] == 2100
    assert read_rows(db_path, "SELECT ended_at FROM sessions")[0]["ended_at"] is not None


def test_missing_path_writes_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "n.db"
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        import_paths(db_path, [tmp_path / "nope.jsonl"])
    assert not db_path.exists()


def test_import_items_counts_duplicates(tmp_path: Path) -> None:
    body = SAMPLES[0].read_bytes()
    items = [Incoming(body, orjson.loads(body)) for _ in range(3)]
    report = importing.import_items(tmp_path / "d.db", items, source="test", batch_size=2)
    assert (report.imported, report.duplicates) == (3, 2)
    dups = read_rows(tmp_path / "d.db", "SELECT duplicate_of FROM events ORDER BY id")
    assert [r["duplicate_of"] for r in dups] == [None, 1, 1]
