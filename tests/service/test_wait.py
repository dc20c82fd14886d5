"""``conscent-monitor wait``: a process of its own waits on the database a running listener writes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from monitor.service import Service
from tests.helpers import CLOSE, SPEC_READER, VIEW, one_error, run_cli, run_command

StartService = Callable[..., Awaitable[Service]]


async def _wait(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "wait", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _post(url: str, *bodies: bytes) -> None:
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                assert response.status == 200


async def test_wait_prints_the_deliveries_as_json_once_they_arrive(services: StartService) -> None:
    service = await services()
    db = str(service.options.db_path)
    waiting = asyncio.create_task(_wait("--db", db, "--filter", "event:close", "--timeout", "30"))
    await _post(service.url, VIEW, CLOSE)
    code, out, err = await waiting
    assert code == 0, err
    [line] = out.splitlines()
    close = orjson.loads(line)
    assert set(close) == {"id", "received_at", "event", "user_id", "signature", "body"}
    assert (close["event"], close["user_id"], close["signature"]) == ("payment_gateway.close", SPEC_READER, "unchecked")
    assert close["body"] == orjson.loads(CLOSE)
    assert err.startswith("1 delivery arrived in ")


async def test_count_and_the_line_format(services: StartService) -> None:
    service = await services()
    await _post(service.url, VIEW, CLOSE, VIEW)
    code, out, err = await _wait("--db", str(service.options.db_path), "--count", "2", "--format", "line", "--filter",
                                 "event:view")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert all("200  #" in text and "payment_gateway.view" in text and "sig=unchecked" in text for text in lines)
    assert "#1 " in lines[0] and "#3 " in lines[1]


async def test_a_timeout_exits_1_naming_what_arrived_instead(services: StartService) -> None:
    service = await services()
    other = orjson.loads(CLOSE)
    other["user_id"] = "someone-else"
    await _post(service.url, VIEW, orjson.dumps(other))
    wanted = f"event:close user:{SPEC_READER}"
    code, out, err = await _wait("--db", str(service.options.db_path), "--filter", wanted, "--timeout", "0.3")
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"timed out after 0.3 s: 0 of 1 delivery matching '{wanted}' since session 1 started")
    assert f"  1 delivery matches all but 'user:{SPEC_READER}':" in lines
    assert "  1 delivery matches all but 'event:close':" in lines
    assert "Traceback" not in err


async def test_since_now_waits_for_new_deliveries_only(services: StartService) -> None:
    service = await services()
    await _post(service.url, VIEW)
    code, _, err = await _wait("--db", str(service.options.db_path), "--since", "now", "--timeout", "0.2")
    assert code == 1
    assert "0 of 1 delivery matching (no filter) since the wait started" in err
    code, out, _ = await _wait("--db", str(service.options.db_path), "--since", "-5m")
    assert code == 0 and "payment_gateway.view" in out


def test_a_bad_filter_since_or_database_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.db")
    assert one_error(run_command("wait", "--db", missing), 2) == f"Error: {missing}: no such file"
    (tmp_path / "junk.db").write_bytes(b"junk" * 1000)
    assert "not a readable SQLite database" in one_error(run_command("wait", "--db", str(tmp_path / "junk.db")), 2)
    result = run_cli("wait", "--db", missing, "--filter", "evnt:view")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["Error: bad filter at column 1: unknown field 'evnt' (known: event, user, "
                                          "content, country, device, sig, auth, action, paywall, session, anon, "
                                          "phone, name, city, path, method, note, forward, dup, kind, id, status, "
                                          "reason, since, until, lag)"]  # fmt: skip


async def test_a_bad_since_exits_2(services: StartService) -> None:
    service = await services()
    code, out, err = await _wait("--db", str(service.options.db_path), "--since", "later")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "Error: bad --since 'later': use 10m, 2h, 3d, 2026-11-20, 2026-11-20T14:30 or 14:30; or epoch seconds, "
        "session, now"
    ]


def test_wait_is_listed_in_the_help() -> None:
    result = run_command("--help")
    assert "wait" in result.output
    result = run_command("wait", "--help")
    assert result.exit_code == 0
    assert "--since TIME|session|now" in result.output
    assert "Filter: words separated by spaces" in result.output


@pytest.mark.slow
def test_the_latency_benchmark_runs(tmp_path: Path) -> None:
    """bench/wait_latency.py in a tiny size: every figure is there (no timing assertion)."""
    from bench import wait_latency

    result = wait_latency.main(["--size", "300", "--commits", "3", "--idle", "0.2", "--cache", str(tmp_path)])
    assert result["commits"] == 3
    assert result["latency_median_ms"] >= 0 and result["idle_cpu_ms"] >= 0
