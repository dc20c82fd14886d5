"""Masked exports (``export --mask``, the TUI's masked and web exports): no personal data in any format.

A delivery whose body carries a phone number, a name, an email and a city, sent with an
``Authorization: Basic`` header (the client's API key, as a database written by another tool may
hold it), and a body that is not JSON and carries the phone too. Under mask no format writes any of
them; unmasked, every format still writes them as before.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor import store
from monitor.exporting import (
    Format,
    curl_command,
    download_name_problem,
    hidden_body,
    masked_json,
)
from monitor.masking import mask, mask_json
from monitor.queries import get_delivery
from tests.helpers import event_row, gateway_body, run_command
from tests.unit.test_exporting import run_export as exported

PHONE, NAME, EMAIL, CITY = "9812345678", "Asha Verma", "asha.verma@example.test", "Bengaluru"
#: ``api-key:secret`` in base64: what Conscent's older webhooks send.
CREDENTIAL = "YXBpLWtleTpzZWNyZXQ="
SIGNATURE = "ab" * 32
HEADERS = {
    "Host": "127.0.0.1:8787",
    "Content-Type": "application/json",
    "Authorization": f"Basic {CREDENTIAL}",
    "X-Conscent-Signature": SIGNATURE,
}
#: Not JSON: cannot be masked field by field, and it carries the phone number.
FORM = f"phone={PHONE}&name=Asha".encode()
PERSONAL = (PHONE, NAME, EMAIL, CITY, "28.5223", CREDENTIAL)
#: (format, with metadata): every way out of the monitor.
WAYS: list[tuple[Format, bool]] = [("jsonl", False), ("jsonl", True), ("csv", False), ("har", False), ("curl", False)]
WAY_IDS = ["jsonl", "jsonl-meta", "csv", "har", "curl"]


def personal_body() -> bytes:
    obj = json.loads(gateway_body(user_id="reader-m", name=NAME, phone=PHONE))
    obj["payload"]["user"].update(email=EMAIL, city=CITY)
    return json.dumps(obj).encode()


@pytest.fixture
def masked_db(tmp_path: Path) -> Path:
    """One session: the personal JSON delivery (id 1), then the form body (id 2)."""
    path = tmp_path / "personal.db"
    db = store.open_store(path)
    try:
        session_id = store.start_session(db, listen="http://127.0.0.1:8787/", mode="headless")
        rows = [
            event_row(personal_body(), session_id=session_id, headers=HEADERS, received_at=1_760_000_000.0),
            event_row(FORM, session_id=session_id, headers=HEADERS, received_at=1_760_000_001.0, parsed=False),
        ]
        store.write_batch(db.conn, rows, [])
    finally:
        db.close()
    return path


def masked_obj() -> Any:
    return mask_json(json.loads(personal_body()))


# -- every format ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "meta"), WAYS, ids=WAY_IDS)
def test_no_format_writes_personal_data_under_mask(masked_db: Path, fmt: Format, meta: bool) -> None:
    data, report = exported(masked_db, fmt, meta=meta, mask=True)
    text = data.decode("utf-8")
    assert report.exported == 2
    for personal in PERSONAL:
        assert personal not in text, personal
    assert FORM.decode() not in text
    if fmt != "csv":
        assert (SIGNATURE in text) == (meta or fmt != "jsonl")  # headers: not personal, they stay
        assert f"body not JSON ({len(FORM)} bytes): hidden, personal data is masked" in text
        assert report.hidden == 1 and report.hidden_ids == [2]
        assert any("not JSON and could not be masked: replaced by a placeholder (id 2)" in w for w in report.warnings())


@pytest.mark.parametrize(("fmt", "meta"), WAYS, ids=WAY_IDS)
def test_unmasked_exports_are_as_before(masked_db: Path, fmt: Format, meta: bool) -> None:
    data, report = exported(masked_db, fmt, meta=meta)
    assert data == exported(masked_db, fmt, meta=meta, mask=False)[0]
    text = data.decode("utf-8")
    assert PHONE in text and NAME in text
    if fmt != "csv":
        assert (CREDENTIAL in text) == (meta or fmt != "jsonl")  # as recorded
        assert not report.masked and report.hidden == 0
        assert not any("masked" in warning for warning in report.warnings())


def test_plain_jsonl_under_mask_is_masked_json_and_a_placeholder(masked_db: Path) -> None:
    data, report = exported(masked_db, "jsonl", mask=True)
    first, second = data.split(b"\n")[:-1]
    assert json.loads(first) == masked_obj()
    user = json.loads(first)["payload"]["user"]
    assert user["phoneNumber"] == mask(PHONE) == "9••••••••8"
    assert user["name"] == mask(NAME) and user["email"] == mask(EMAIL) and user["city"] == mask(CITY)
    assert user["userId"] == "reader-m"  # not personal: kept, so rows can still be paired
    assert second == hidden_body(FORM)
    assert report.warnings()[0] == "personal data is masked: bodies are masked JSON, not the bytes received"


def test_jsonl_with_metadata_under_mask_carries_no_exact_bytes(masked_db: Path) -> None:
    data, report = exported(masked_db, "jsonl", meta=True, mask=True)
    first, second = (orjson.loads(line) for line in data.split(b"\n")[:-1])
    assert json.loads(first["body_text"]) == masked_obj()
    assert second["body_text"] == hidden_body(FORM).decode()
    assert "body_base64" not in first and "body_base64" not in second
    assert first["headers"]["Authorization"] == "Basic [redacted]"
    assert first["headers"]["X-Conscent-Signature"] == SIGNATURE
    assert "the metadata lines carry masked bodies, not the exact bytes" in report.warnings()[0]


def test_csv_under_mask_masks_the_personal_columns(masked_db: Path) -> None:
    data, report = exported(masked_db, "csv", mask=True)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert rows[0]["phone_number"] == mask(PHONE) and rows[0]["name"] == mask(NAME)
    assert rows[0]["email"] == mask(EMAIL) and rows[0]["city"] == mask(CITY)
    assert rows[0]["latitude"] == mask(28.5223) and rows[0]["postcode"] == mask("110001")
    assert rows[0]["user_id"] == "reader-m" and rows[0]["event"] == "payment_gateway.view"
    assert report.warnings() == []  # no bodies in a CSV: nothing is less than it says


def test_har_under_mask(masked_db: Path) -> None:
    data, _ = exported(masked_db, "har", mask=True)
    first, second = orjson.loads(data)["log"]["entries"]
    post = first["request"]["postData"]
    assert json.loads(post["text"]) == masked_obj()
    assert first["request"]["bodySize"] == len(post["text"].encode())
    headers = {header["name"]: header["value"] for header in first["request"]["headers"]}
    assert headers["Authorization"] == "Basic [redacted]" and headers["X-Conscent-Signature"] == SIGNATURE
    assert second["request"]["postData"]["text"] == hidden_body(FORM).decode()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_curl_script_under_mask_sends_the_masked_body_and_says_so(masked_db: Path, tmp_path: Path) -> None:
    data, report = exported(masked_db, "curl", mask=True)
    script = tmp_path / "replay.sh"
    script.write_bytes(data)
    text = data.decode("utf-8")
    assert "# Deliveries recorded by conscent-monitor, with personal data masked" in text
    assert text.count("# body masked (personal data hidden): its X-Conscent-Signature will not match it") == 2
    assert text.count("# Authorization was redacted in this masked export: add -u KEY:SECRET") == 2
    assert report.warnings()[0] == (
        "personal data is masked: the commands send masked bodies, not the bytes received, "
        "so their X-Conscent-Signature header will not match them"
    )
    # What bash would hand curl: a curl of our own prints its arguments.
    capture = 'curl() { printf "%s\\0" "$@"; printf "\\1"; }; source "$1"'
    run = subprocess.run(["bash", "-c", capture, "-", str(script)], capture_output=True, timeout=30, check=True)
    commands = [part.lstrip(b"\n").split(b"\0")[:-1] for part in run.stdout.split(b"\1")[:-1]]
    bodies = [args[args.index(b"--data-binary") + 1] for args in commands]
    assert json.loads(bodies[0]) == masked_obj()
    assert bodies[1] == hidden_body(FORM)
    assert all(b"Authorization" not in arg for args in commands for arg in args)
    assert f"X-Conscent-Signature: {SIGNATURE}".encode() in commands[0]  # not personal: still sent


def test_the_copied_curl_command_under_mask(masked_db: Path) -> None:
    db = store.connect(masked_db, readonly=True)
    try:
        delivery = get_delivery(db, "event", 1)
    finally:
        db.close()
    assert delivery is not None
    plain, masked = (
        curl_command(delivery, "http://127.0.0.1:9999"),
        curl_command(delivery, "http://127.0.0.1:9999", mask=True),
    )
    assert PHONE in plain and CREDENTIAL in plain and "masked" not in plain
    assert masked.startswith("# body masked (personal data hidden)")
    assert all(personal not in masked for personal in PERSONAL)
    assert "http://127.0.0.1:9999/" in masked


def test_masked_json_keeps_big_integers_and_drops_a_bom() -> None:
    body = b'\xef\xbb\xbf{"amount": 123456789012345678901234567890, "user": {"phoneNumber": "9812345678"}}'
    assert masked_json(body) == '{"amount":123456789012345678901234567890,"user":{"phoneNumber":"9••••••••8"}}'.encode()
    assert masked_json(b"phone=1") is None and masked_json(b"\xff{}") is None
    assert hidden_body(b"x" * 1234) == b"[body not JSON (1,234 bytes): hidden, personal data is masked]"


# -- the command line ------------------------------------------------------------------------------


def test_export_mask_on_the_command_line(masked_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "masked.jsonl"
    result = run_command("export", "--db", str(masked_db), "--mask", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text("utf-8")
    assert all(personal not in text for personal in PERSONAL) and mask(PHONE) in text
    assert "warning: personal data is masked: bodies are masked JSON, not the bytes received" in result.output
    assert "warning: 1 body was not JSON and could not be masked: replaced by a placeholder (id 2)" in result.output
    assert "exported 2 deliveries" in result.output
    unmasked = tmp_path / "plain.csv"
    assert run_command("export", "--db", str(masked_db), "--format", "csv", "-o", str(unmasked)).exit_code == 0
    assert PHONE in unmasked.read_text("utf-8")


def test_export_help_offers_mask() -> None:
    result = run_command("export", "--help")
    assert result.exit_code == 0
    assert "--mask" in result.output and "Hide personal data" in result.output


# -- names of downloads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("conscent-export.csv", None),
        ("my export.jsonl", None),
        ("", "Type the file name"),
        ("  ", "Type the file name"),
        ("out/x.csv", "A file name only, without a folder: your browser chooses where it goes"),
        ("..\\x.csv", "A file name only, without a folder: your browser chooses where it goes"),
        ("..", ".. is not a file name"),
        ("a;b.csv", "A download's name cannot hold control characters, \" or ;"),
        ('a"b.csv', "A download's name cannot hold control characters, \" or ;"),
        ("a\x1bb.csv", "A download's name cannot hold control characters, \" or ;"),
    ],
    ids=["plain", "space", "empty", "blank", "folder", "backslash", "dotdot", "semicolon", "quote", "escape"],
)
def test_download_names(name: str, problem: str | None) -> None:
    assert download_name_problem(name) == problem
