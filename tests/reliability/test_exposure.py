"""Exposure: loopback by default, no public binding without auth, no credentials in clear, SQL-safe filters.

* The real headless process listens on 127.0.0.1 only unless told otherwise (read from /proc/net).
* A non-loopback ``--host`` without ``--secret`` / ``--basic-auth`` exits 2 with a message, before
  creating any database; an empty secret is no secret. ``--allow-unauthenticated`` or a secret
  (flag or environment) lets it start.
* Credentials (Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Auth-Token, and the forward
  target's Set-Cookie) appear nowhere in clear: not in ``events``, ``rejected`` or ``forwards``, not anywhere
  in the database file or its WAL, not in what the headless process prints.
* Filters: fuzzed text with a marker never appears in the SQL (only in ``?`` parameters), and every
  compiled filter runs on a real database.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlite_utils
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import store
from monitor.filters import FIELDS, FilterError, compile_filter
from monitor.service import ExposureError, Options, check_exposure
from tests.helpers import Monitor, event_row, gateway_body, rejected_row

# --- binding ----------------------------------------------------------------------------------------------


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net shows them) with a listening socket on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            address, _, port_hex = parts[1].partition(":")
            if int(port_hex, 16) == port and parts[3] == "0A":  # LISTEN
                found.append(address)
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONSCENT_WEBHOOK_SECRET"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def test_loopback_by_default(tmp_path: Path) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp")
    monitor = Monitor("watch", "--headless", "--port", "0", "--db", str(tmp_path / "d.db"), cwd=tmp_path)
    try:
        url = monitor.url()
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert _listening(port) == ["0100007F"]  # 127.0.0.1, and nothing else (no 0.0.0.0, no ::)
    finally:
        monitor.stop()


@pytest.mark.parametrize(
    ("host", "extra", "env"),
    [
        ("0.0.0.0", [], {}),
        ("::", [], {}),
        ("192.0.2.10", [], {}),
        ("monitor.example.com", [], {}),
        ("::ffff:127.0.0.1", [], {}),  # mapped loopback: refused too (on the safe side)
        ("0.0.0.0", ["--secret", ""], {}),  # an empty secret is no secret
        ("0.0.0.0", [], {"CONSCENT_WEBHOOK_SECRET": ""}),
    ],
)
def test_public_binding_refused_without_auth(tmp_path: Path, host: str, extra: list[str], env: dict[str, str]) -> None:
    db = tmp_path / "x.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "watch",
            "--headless",
            "--host",
            host,
            "--port",
            "0",
            "--db",
            str(db),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=_env(**env),
    )
    assert result.returncode == 2, result
    assert f"refusing to listen on {host}" in result.stderr
    assert "--secret" in result.stderr and "--allow-unauthenticated" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert not db.exists()  # refused before anything was created


def test_a_secret_from_the_environment_allows_public_binding(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "watch",
            "--headless",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--db",
            str(tmp_path / "x.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(CONSCENT_WEBHOOK_SECRET="from-env"),
    )
    try:
        assert proc.stdout is not None
        assert "listening on http://0.0.0.0:" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(15)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


EXPOSURE_CASES = [
    ("127.0.0.1", True),
    ("127.8.9.10", True),
    ("::1", True),
    ("localhost", True),
    ("0.0.0.0", False),
    ("::", False),
    ("10.0.0.1", False),
    ("", False),
    ("LOCALHOST.", False),
    ("127.0.0.1.nip.io", False),
]


@pytest.mark.parametrize(("host", "allowed"), EXPOSURE_CASES)
def test_exposure_rule(host: str, allowed: bool) -> None:
    options = Options(db_path=Path("unused.db"), host=host)
    if allowed:
        check_exposure(options)
    else:
        with pytest.raises(ExposureError):
            check_exposure(options)


@pytest.mark.parametrize("host", [host for host, _ in EXPOSURE_CASES])
@pytest.mark.parametrize(
    "auth",
    [{"secret": "s"}, {"basic_auth": ("k", "p")}, {"allow_unauthenticated": True}],
    ids=["secret", "basic-auth", "allow-unauthenticated"],
)
def test_any_host_is_allowed_with_authentication_or_consent(host: str, auth: dict[str, Any]) -> None:
    check_exposure(Options(db_path=Path("unused.db"), host=host, **auth))


# --- credentials --------------------------------------------------------------------------------------------

SECRET = "whsec-CLEAR-SIGNING-SECRET-7f3a"
API_KEY, API_SECRET = "ck-CLEAR-KEY-5521", "cs-CLEAR-PASSWORD-9d1e"
BASIC = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
COOKIE = "sid=CLEAR-COOKIE-c0ffee"
X_API_KEY = "CLEAR-X-API-KEY-2b2b"
PROXY = "CLEAR-PROXY-TOKEN-4e4e"
AUTH_TOKEN = "CLEAR-AUTH-TOKEN-3c3c"
TARGET_COOKIE = "tgt=CLEAR-TARGET-COOKIE-a1a1"
#: Every credential, as sent or as it could leak (base64 or decoded).
CLEAR = [SECRET, API_SECRET, BASIC, COOKIE.split("=")[1], X_API_KEY, PROXY, AUTH_TOKEN, TARGET_COOKIE.split("=")[1]]


@pytest.fixture
async def target() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """The developer's application: records what it receives and answers with a session cookie."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(dict(request.headers))
        return web.Response(
            text='{"ok":true}', headers={"Set-Cookie": TARGET_COOKIE + "; HttpOnly"}, content_type="application/json"
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", seen
    finally:
        await runner.cleanup()


async def _until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_credentials_are_never_stored_or_printed_in_clear(
    tmp_path: Path, target: tuple[str, list[dict[str, str]]]
) -> None:
    target_url, seen = target
    db = tmp_path / "creds.db"
    monitor = Monitor(
        "watch",
        "--headless",
        "--port",
        "0",
        "--db",
        str(db),
        "--secret",
        SECRET,
        "--basic-auth",
        f"{API_KEY}:{API_SECRET}",
        "--forward-to",
        target_url,
        cwd=tmp_path,
    )
    try:
        url = await asyncio.to_thread(monitor.url)
        headers = {
            "Authorization": f"Basic {BASIC}",
            "Cookie": COOKIE,
            "X-Api-Key": X_API_KEY,
            "Proxy-Authorization": f"Bearer {PROXY}",
            "X-Auth-Token": AUTH_TOKEN,
            "Content-Type": "application/json",
        }
        async with aiohttp.ClientSession() as http:
            for n in range(3):
                async with http.post(
                    url + "hook", data=b'{"event":"payment_gateway.view","n":%d}' % n, headers=headers
                ) as resp:
                    assert resp.status == 200
            async with http.post(url + "hook", data=b"not json", headers=headers) as resp:
                assert resp.status == 400
            async with http.put(url + "hook", data=b"{}", headers=headers) as resp:
                assert resp.status == 405
            # A credential in an unusual scheme is redacted whole (the scheme could be the secret itself).
            async with http.post(url + "hook", data=b'{"n":9}', headers={"Authorization": SECRET}) as resp:
                assert resp.status == 200
        await _until(lambda: len(seen) == 4, "the forwards to reach the target")
        assert all(h.get("Authorization") == f"Basic {BASIC}" for h in seen[:3])  # the target gets them as sent
        await _until(lambda: _count(db, "forwards") == 4, "the forward rows")
        monitor.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(monitor.proc.wait, 20) == 0
        printed = "\n".join(await asyncio.to_thread(monitor.rest))
        stderr = monitor.stderr()
    finally:
        monitor.stop()

    conn = sqlite3.connect(db)
    try:
        texts = {
            "events.headers": [r[0] for r in conn.execute("SELECT headers FROM events")],
            "rejected.headers": [r[0] for r in conn.execute("SELECT headers FROM rejected")],
            "forwards": [
                " ".join(str(v) for v in r)
                for r in conn.execute("SELECT target, request_headers, response_headers, error FROM forwards")
            ],
            "sessions": [" ".join(str(v) for v in r) for r in conn.execute("SELECT * FROM sessions")],
        }
    finally:
        conn.close()
    assert len(texts["events.headers"]) == 4 and len(texts["rejected.headers"]) == 2
    assert all("[redacted]" in t for t in texts["events.headers"] + texts["rejected.headers"])
    assert all("[redacted]" in t for t in texts["forwards"])  # Set-Cookie of the target's answer
    for where, values in texts.items():
        for value in values:
            for secret in CLEAR:
                assert secret not in value, (where, secret, value)
    # Nowhere in the file either (free pages, WAL), nor in anything the process printed.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("creds.db*"))
    for secret in CLEAR:
        assert secret.encode() not in raw, secret
        assert secret not in printed and secret not in stderr, secret


async def test_a_forward_target_password_is_not_recorded_or_shown(
    tmp_path: Path, target: tuple[str, list[dict[str, str]]]
) -> None:
    target_url, seen = target
    password = "CLEAR-FORWARD-PASSWORD-6d6d"
    with_userinfo = target_url.replace("http://", f"http://fwd:{password}@")
    db = tmp_path / "fwd.db"
    monitor = Monitor(
        "watch", "--headless", "--port", "0", "--db", str(db), "--forward-to", with_userinfo, cwd=tmp_path
    )
    try:
        url = await asyncio.to_thread(monitor.url)
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=b'{"event":"payment_gateway.view"}') as resp:
                assert resp.status == 200
            await _until(lambda: _count(db, "forwards") == 1, "the forward row")
            async with http.get(url) as resp:
                status = await resp.text()
        assert seen and seen[0]["Authorization"].startswith("Basic ")  # the target still gets the credentials
        assert password not in status and "fwd:[redacted]@" in status
        monitor.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(monitor.proc.wait, 20) == 0
        printed = "\n".join(await asyncio.to_thread(monitor.rest))
    finally:
        monitor.stop()
    conn = sqlite3.connect(db)
    try:
        ((recorded, headers),) = conn.execute("SELECT target, request_headers FROM forwards").fetchall()
    finally:
        conn.close()
    assert recorded == with_userinfo.replace(password, "[redacted]")
    assert password not in headers and password not in printed
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("fwd.db*"))
    assert password.encode() not in raw


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


# --- filters are parameterised --------------------------------------------------------------------------

MARKER = "Qz"  # with a random tail; no column name, keyword or constant of the compiler contains it


@pytest.fixture(scope="module")
def review_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite_utils.Database]:
    path = tmp_path_factory.mktemp("filters") / "f.db"
    db = store.open_store(path)
    session = store.start_session(db, listen=None, mode="test")
    rows = [
        event_row(gateway_body(user_id=f"u{n}", name=f"Qz name {n}"), session_id=session, received_at=1709186668.0 + n)
        for n in range(5)
    ]
    store.write_batch(
        db.conn,
        rows,
        [rejected_row(b"Qz", session_id=session, received_at=1709186669.0, status=400, reason="Qz")],
    )
    store.index_pending(db.conn)
    yield db
    db.close()


_fields = st.sampled_from(sorted(FIELDS))
_tail = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)
_marker = st.builds(lambda t: MARKER + t.replace('"', "").replace("\\", "") + "qZ", _tail)


@st.composite
def filters_with_a_marker(draw: st.DrawFn) -> tuple[str, str]:
    marker = draw(_marker)
    shape = draw(st.sampled_from(["free", "quoted", "field", "field-quoted", "negated", "or", "lag", "junk"]))
    field = draw(_fields)
    noise = draw(st.text(max_size=15))
    text = {
        "free": marker,
        "quoted": f'"{marker}"',
        "field": f"{field}:{marker}",
        "field-quoted": f'{field}:"{marker}"',
        "negated": f"-{field}:{marker}",
        "or": f"{marker} OR {field}:{marker}",
        "lag": f"lag>{marker}",
        "junk": f"{noise} {marker} {noise}",
    }[shape]
    return text, marker


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=filters_with_a_marker(), table=st.sampled_from(["events", "rejected"]))
def test_filter_text_never_becomes_sql(review_db: sqlite_utils.Database, case: tuple[str, str], table: str) -> None:
    text, marker = case
    try:
        compiled = compile_filter(text, table=table, now=1709186700.0)  # type: ignore[arg-type]
    except FilterError as exc:
        assert 0 <= exc.position <= len(text)
        return
    where = compiled.where.lower()
    assert marker.lower() not in where and MARKER.lower() not in where, (text, compiled.where)
    assert compiled.where.count("?") == len(compiled.params)
    assert all(isinstance(p, str | int | float) for p in compiled.params)
    review_db.execute(f"SELECT count(*) FROM {table} WHERE {compiled.where}", compiled.params).fetchall()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_filter_text_runs_or_is_a_filter_error(review_db: sqlite_utils.Database, text: str) -> None:
    for table in ("events", "rejected"):
        try:
            compiled = compile_filter(text, table=table, now=1709186700.0)  # type: ignore[arg-type]
        except FilterError:
            continue
        review_db.execute(f"SELECT count(*) FROM {table} WHERE {compiled.where}", compiled.params).fetchall()
