"""Export: exact bodies in JSONL, metadata round trips, CSV, HAR, and curl scripts replayed by bash."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from monitor import demo, exporting, importing, store, synth
from monitor.exporting import ExportReport, curl_command, export
from monitor.filters import FilterError
from monitor.queries import get_delivery
from monitor.resources import sample_events_dir
from monitor.sender import prepare

SAMPLES = sorted(sample_events_dir().glob("*.json"))
HEADERS = {
    "Host": "hooks.example.test:8787",
    "Content-Type": "application/json",
    "Accept": "application/json, text/plain, */*",
    "User-Agent": "axios/0.21.1",
    "X-Conscent-Signature": "ab" * 32,
    "Content-Length": "1234",
    "Connection": "keep-alive",
}
#: Bodies a listener would never accept, or only just: written straight into the table.
ODD_BODIES = {
    "pretty": b'{\n  "event": "payment_gateway.view",\n  "name": "M\xc3\xbcller \xe2\x80\x94 \'q\' \\\\ 100%"\n}\n',
    "bom": b'\xef\xbb\xbf{"event":"paywall.click","user_id":"u-bom"}',
    "latin1": b'{"event":"purchase.pass","name":"M\xfcller"}',
    "crlf": b'{"event":"paywall.exit",\r\n"user_id":"u-crlf"}',
    "nul": b'{"event":"x"}\x00trailing',
}


def compact_bodies(count: int) -> list[bytes]:
    return [event.body for event in synth.events(count, seed=3, readers=8, days=1, end=1_760_000_000)]


def add_bodies(db_path: Path, bodies: list[bytes], headers: dict[str, str] | None = None) -> int:
    """Import ``bodies`` (each a JSON object) as one session; returns its id."""
    text = orjson.dumps(headers or HEADERS).decode()
    items = []
    for number, body in enumerate(bodies):
        obj = orjson.loads(body.removeprefix(b"\xef\xbb\xbf"))
        received = 1_760_000_000.25 + number
        items.append(importing.Incoming(body, obj, received_at=received, path="/hook?src=test", headers=text))
    report = importing.import_items(db_path, items, source="test")
    assert report.imported == len(bodies)
    return report.session_id


def add_raw(db_path: Path, bodies: list[bytes]) -> list[int]:
    """Rows written straight into ``events``: any bytes, parsed columns left empty."""
    db = store.open_store(db_path)
    try:
        session = store.start_session(db, listen=None, mode="test")
        rows = [
            {
                "session_id": session,
                "received_at": 1_760_100_000.5,
                "method": "POST",
                "path": "/",
                "headers": orjson.dumps({"Content-Type": "application/json"}).decode(),
                "body": body,
                "body_size": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "signature": "unchecked",
                "basic_auth": "unchecked",
            }
            for body in bodies
        ]
        return store.write_batch(db.conn, rows, []).event_ids
    finally:
        db.close()


def run_export(db_path: Path, fmt: exporting.Format, **kwargs: Any) -> tuple[bytes, ExportReport]:
    db = store.connect(db_path, readonly=True)
    try:
        out = io.BytesIO()
        report = export(db, out, fmt, **kwargs)
        return out.getvalue(), report
    finally:
        db.close()


def stored_bodies(db_path: Path) -> list[bytes]:
    db = store.connect(db_path, readonly=True)
    try:
        return [row[0] for row in db.execute("SELECT body FROM events ORDER BY id")]
    finally:
        db.close()


def test_jsonl_import_export_is_byte_identical(tmp_path: Path) -> None:
    bodies = compact_bodies(300)
    first = tmp_path / "first.db"
    add_bodies(first, bodies)
    exported, report = run_export(first, "jsonl")
    assert exported == b"".join(body + b"\n" for body in bodies)
    assert report.exported == 300 and report.reformatted == 0 and report.warnings() == []
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(exported)
    second = tmp_path / "second.db"
    assert importing.import_paths(second, [capture]).imported == 300
    assert stored_bodies(second) == bodies
    assert run_export(second, "jsonl")[0] == exported


def test_plain_jsonl_compacts_multiline_bodies_and_says_so(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    pretty = SAMPLES[0].read_bytes()
    ids = add_raw(db_path, [pretty, ODD_BODIES["bom"], ODD_BODIES["nul"], b"{\nnot json"])
    exported, report = run_export(db_path, "jsonl")
    lines = exported.split(b"\n")[:-1]
    assert lines[0] == orjson.dumps(orjson.loads(pretty))
    assert lines[1] == ODD_BODIES["bom"]  # no newline: exact, BOM and all
    assert lines[2] == ODD_BODIES["nul"]
    assert len(lines) == 3
    assert (report.exported, report.reformatted, report.reformatted_ids) == (3, 1, [ids[0]])
    assert (report.skipped, report.skipped_ids) == (1, [ids[3]])
    assert len(report.warnings()) == 2 and "--meta" in report.warnings()[0]


def test_meta_jsonl_round_trips_any_body(tmp_path: Path) -> None:
    first = tmp_path / "first.db"
    add_bodies(first, compact_bodies(5))
    raw_ids = add_raw(first, [*ODD_BODIES.values(), SAMPLES[1].read_bytes()])
    exported, report = run_export(first, "jsonl", meta=True)
    records = [orjson.loads(line) for line in exported.splitlines()]
    assert report.exported == len(records) == 5 + len(ODD_BODIES) + 1
    # Every body comes back byte for byte from the line alone.
    decoded = [r["body_text"].encode() if "body_text" in r else base64.b64decode(r["body_base64"]) for r in records]
    assert decoded == stored_bodies(first)
    latin1 = next(r for r in records if r["id"] == raw_ids[2])
    assert "body_base64" in latin1 and "body_text" not in latin1
    meta = records[0]
    assert set(meta) == {*exporting.META_KEYS, "body_text"}
    assert meta["received_at"] == 1_760_000_000.25 and meta["path"] == "/hook?src=test"
    assert meta["headers"] == HEADERS and meta["event"] == orjson.loads(meta["body_text"])["event"]

    capture = tmp_path / "meta.jsonl"
    capture.write_bytes(exported)
    second = tmp_path / "second.db"
    result = importing.import_paths(second, [capture])
    # Bodies the listener would refuse (not UTF-8, not JSON) are reported, not stored.
    assert result.skipped == 2 and result.imported == report.exported - 2
    assert "meta.jsonl:" in result.errors[0] and "not valid UTF-8" in result.errors[0]
    kept = [body for body in stored_bodies(first) if body not in (ODD_BODIES["latin1"], ODD_BODIES["nul"])]
    assert stored_bodies(second) == kept
    again, _ = run_export(second, "jsonl", meta=True)
    strip = ("id", "session_id", "event")  # raw rows were stored unparsed
    assert [{k: v for k, v in orjson.loads(line).items() if k not in strip} for line in again.splitlines()] == [
        {k: v for k, v in r.items() if k not in strip} for r in records if r["id"] not in (raw_ids[2], raw_ids[4])
    ]


def test_har_round_trip_and_shape(tmp_path: Path) -> None:
    bodies = [*compact_bodies(4), SAMPLES[2].read_bytes()]
    first = tmp_path / "first.db"
    add_bodies(first, bodies)
    exported, report = run_export(first, "har")
    har = orjson.loads(exported)
    assert har["log"]["version"] == "1.2" and report.exported == 5
    entry = har["log"]["entries"][0]
    assert entry["startedDateTime"] == "2025-10-09T08:53:20.250Z"
    request = entry["request"]
    assert request["method"] == "POST" and request["url"] == "http://hooks.example.test:8787/hook?src=test"
    assert {"name": "User-Agent", "value": "axios/0.21.1"} in request["headers"]
    assert request["queryString"] == [{"name": "src", "value": "test"}]
    assert request["postData"] == {"mimeType": "application/json", "text": bodies[0].decode()}
    assert entry["response"]["status"] == 200
    assert entry["response"]["content"]["text"] == '{"ok":true,"id":1}'
    assert set(entry["timings"]) >= {"send", "wait", "receive"}

    capture = tmp_path / "capture.har"
    capture.write_bytes(exported)
    second = tmp_path / "second.db"
    assert importing.import_paths(second, [capture]).imported == 5
    assert stored_bodies(second) == bodies
    again = orjson.loads(run_export(second, "har")[0])
    assert [e["request"] for e in again["log"]["entries"]] == [e["request"] for e in har["log"]["entries"]]
    assert [e["startedDateTime"] for e in again["log"]["entries"]] == [
        e["startedDateTime"] for e in har["log"]["entries"]
    ]


def test_csv_has_the_parsed_columns(tmp_path: Path) -> None:
    db_path = tmp_path / "c.db"
    add_bodies(db_path, [p.read_bytes() for p in SAMPLES])
    exported, report = run_export(db_path, "csv")
    rows = list(csv.reader(io.StringIO(exported.decode())))
    header = rows[0]
    assert header == [c for c in store.EVENTS_COLUMNS if c not in ("body", "headers")]
    assert {"id", "received_at", "event", "user_id", "click_action", "gateway_session_id", "notes"} <= set(header)
    assert len(rows) == 1 + len(SAMPLES) == 1 + report.exported
    view = dict(zip(header, rows[1 + [p.name for p in SAMPLES].index("payment_gateway.view.json")], strict=True))
    assert view["event"] == "payment_gateway.view" and view["user_id"] == demo.SPEC_READER[0]


def test_selection_by_session_filter_and_ids(tmp_path: Path) -> None:
    db_path = tmp_path / "s.db"
    bodies = compact_bodies(60)
    one = add_bodies(db_path, bodies[:30])
    two = add_bodies(db_path, bodies[30:])

    def exported(**kwargs: Any) -> list[bytes]:
        return run_export(db_path, "jsonl", **kwargs)[0].splitlines()

    assert exported() == bodies
    assert exported(session_id=two) == bodies[30:]
    views = [b for b in bodies if orjson.loads(b)["event"] == "payment_gateway.view"]
    assert views and exported(filter_text="event:view") == views
    assert exported(session_id=one, filter_text="event:view") == [v for v in views if v in bodies[:30]]
    many_ids = [*range(60, 0, -2), 10_000]  # any order, unknown ids ignored
    assert exported(ids=many_ids) == [bodies[i - 1] for i in sorted(many_ids) if i <= 60]
    assert exported(ids=list(range(1, 2000))) == bodies  # more ids than one IN list takes
    assert exported(ids=[]) == []
    with pytest.raises(FilterError):
        run_export(db_path, "jsonl", filter_text="bogus:field")
    with pytest.raises(ValueError, match="unknown export format"):
        run_export(db_path, "xml")  # type: ignore[arg-type]


def test_curl_command_for_one_delivery(tmp_path: Path) -> None:
    db_path = tmp_path / "d.db"
    headers = {**HEADERS, "Authorization": "Basic [redacted]", "X-Empty": ""}
    add_bodies(db_path, compact_bodies(1), headers)
    db = store.connect(db_path, readonly=True)
    delivery = get_delivery(db, "event", 1)
    db.close()
    assert delivery is not None
    command = curl_command(delivery, "http://localhost:9999/")
    assert command.startswith("# Authorization was redacted when recorded: add -u KEY:SECRET\ncurl -sS -X POST ")
    assert "'http://localhost:9999/hook?src=test'" in command
    assert "-H 'X-Empty;'" in command and "-H 'Expect:'" in command
    for dropped in ("Host", "Content-Length", "Connection", "redacted]'"):
        assert f"-H '{dropped}" not in command
    assert curl_command({"body": b"{}", "path": "/", "headers": "{}"}).split(" \\\n  ")[1:] == [
        "-H 'Accept:'", "-H 'User-Agent:'", "-H 'Content-Type:'", "-H 'Expect:'", "--data-binary $'{}'",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
async def test_curl_script_replays_exact_bytes_and_headers(tmp_path: Path, aiohttp_server: Any) -> None:
    seen: list[tuple[str, bytes, list[tuple[str, str]]]] = []

    async def record(request: web.Request) -> web.Response:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        seen.append((request.path_qs, await request.read(), headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", record)
    server = await aiohttp_server(app, host="127.0.0.1", port=0)

    db_path = tmp_path / "curl.db"
    odd = {**HEADERS, "Authorization": "Basic [redacted]", "X-Quote": "it's \\ a $HOME `x` test", "X-Empty": ""}
    add_bodies(db_path, compact_bodies(3), odd)
    big = b'{"event":"big","pad":"' + "é'\\%".encode() * 40_000 + b'"}'
    add_raw(db_path, [*ODD_BODIES.values(), big])
    script, report = run_export(db_path, "curl", base_url=str(server.make_url("/")))
    (tmp_path / "replay.sh").write_bytes(script)
    process = await asyncio.create_subprocess_exec(
        "bash", str(tmp_path / "replay.sh"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()

    bodies = stored_bodies(db_path)
    assert report.exported == len(bodies) == len(seen)
    assert [body for _, body, _ in seen] == bodies
    assert seen[0][0] == "/hook?src=test"
    sent = {name.lower(): value for name, value in seen[0][2] if name.lower() not in ("host", "content-length")}
    assert sent == {
        "content-type": "application/json",
        "accept": "application/json, text/plain, */*",
        "user-agent": "axios/0.21.1",
        "x-conscent-signature": "ab" * 32,
        "x-quote": "it's \\ a $HOME `x` test",
        "x-empty": "",
    }
    raw_sent = {name.lower() for name, _ in seen[-1][2]}
    assert raw_sent == {"host", "content-length", "content-type"}  # curl added nothing of its own
    assert b"redacted when recorded" in script and script.count(b"\ncurl ") + script.count(b"|\n  curl ") == 9


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
async def test_one_readers_deliveries_replayed_into_the_real_listener(
    tmp_path: Path, listen: Any, db_path: Path
) -> None:
    """The issue's "done when": import a capture, filter one reader, export curl, replay it exactly."""
    secret = "whsec_replay"
    source = tmp_path / "source.db"
    bodies = compact_bodies(200)
    items = [
        importing.Incoming(b, orjson.loads(b), headers=orjson.dumps(prepare(b, secret=secret)).decode()) for b in bodies
    ]
    importing.import_items(source, items, source="capture")
    reader = orjson.loads(bodies[0])["user_id"]
    client = await listen(secret=secret, require_auth=True)
    script, report = run_export(source, "curl", filter_text=f"user:{reader}", base_url=str(client.make_url("/")))
    (tmp_path / "replay.sh").write_bytes(script)
    process = await asyncio.create_subprocess_exec("bash", str(tmp_path / "replay.sh"), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert out.count(b'"ok":true') == report.exported > 1
    conn = sqlite3.connect(db_path)
    try:
        replayed = conn.execute("SELECT body, signature FROM events ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [body for body, _ in replayed] == [b for b in bodies if orjson.loads(b)["user_id"] == reader]
    assert {signature for _, signature in replayed} == {"valid"}
