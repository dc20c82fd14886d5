"""``--tunnel`` and ``--public-url`` on the command line, and the headless lines (issue 13).

The options are checked before anything starts (exit 2, one ``Error:`` line);
a public URL without ``--secret``/``--basic-auth`` is refused like a
non-loopback ``--host``. The headless lines are tested on the words alone
(:func:`monitor.tunnel_status.change_lines`), on a real Service with the fake
tunnel programs and the relay of ``tests/service/test_tunnel.py``, and in a
real ``watch --headless`` process.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from monitor.headless import TunnelLines
from monitor.service import Options, Service
from monitor.tunnel import TunnelState
from tests.helpers import Monitor, http_post, one_error, run_command, wait_until
from tests.service.test_tunnel import QUICK, Relay, fake, relay  # noqa: F401  (fixtures)

PUBLIC = "https://corporate-mention-tiles-coordinates.trycloudflare.com/"
PASTE = "Paste into Conscent → Settings → Webhooks: "

# -- the options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tunnel", "localtunnel"], "--tunnel localtunnel: use cloudflared, ngrok or ssh:HOST"),
        (["--tunnel", "ssh:"], "ssh: needs a host, e.g. ssh:nokey@localhost.run"),
        (["--tunnel", "ssh:-oProxyCommand=touch x"], "ssh: needs a host"),  # never an ssh option
        (["--public-url", "ftp://example.com/"], "only http:// and https:// URLs"),
        (["--public-url", "hooks.example.com"], "it needs http:// or https:// in front"),
        (["--public-url", "https://"], "'https://' is not a URL to post to"),
        (
            ["--tunnel", "cloudflared", "--public-url", "https://hooks.example.com/"],
            "--tunnel and --public-url cannot be used together",
        ),
    ],
)
@pytest.mark.parametrize("command", [["watch"], []], ids=["watch", "bare"])
def test_bad_tunnel_options_are_one_line_and_exit_2(
    tmp_path: Path, command: list[str], args: list[str], words: str
) -> None:
    db = tmp_path / "x.db"
    line = one_error(run_command(*command, *args, "--secret", "s", "--db", str(db)), code=2)
    assert words in line, line
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--tunnel", "cloudflared"], "--tunnel cloudflared"),
        (["--tunnel", "ssh:nokey@localhost.run"], "--tunnel ssh:nokey@localhost.run"),
        (["--public-url", "https://hooks.example.com/"], "--public-url https://hooks.example.com/"),
        (["--tunnel", "ngrok", "--secret", ""], "--tunnel ngrok"),  # an empty secret is no secret
    ],
)
@pytest.mark.parametrize("headless", [True, False], ids=["headless", "tui"])
def test_a_public_url_without_auth_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], named: str, headless: bool
) -> None:
    monkeypatch.delenv("CONSCENT_WEBHOOK_SECRET", raising=False)
    db = tmp_path / "x.db"
    line = one_error(run_command(*args, *(["--headless"] if headless else []), "--db", str(db)), code=2)
    assert line.startswith(f"Error: refusing to open {named} without --secret or --basic-auth"), line
    assert "--allow-unauthenticated" in line
    assert not db.exists()  # refused before anything was created


def test_the_options_have_help() -> None:
    result = run_command("watch", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--tunnel cloudflared|ngrok|ssh:HOST" in text and "public URL" in text
    assert "--public-url URL" in text and "reverse proxy" in text
    assert "--host, --tunnel or --public-url without --secret" in text


# -- the headless lines: the words --------------------------------------------------------------------


def lines_for(*states: TunnelState) -> list[str]:
    """What headless mode prints for these states in turn (without the time of day)."""
    printed: list[str] = []
    report = TunnelLines(printed.append, clock=lambda: 0.0)
    report.start(None)
    for state in states:
        report(state)
    return [line.split("  ", 1)[1] for line in printed]


def test_a_quick_tunnel_from_start_to_reachable() -> None:
    start = TunnelState("cloudflared", log_path=Path("/data/m.db.tunnel.log"))
    waiting = TunnelState("cloudflared", detail="waiting for cloudflared to give its public URL")
    up = TunnelState("cloudflared", PUBLIC, "up")
    dns = TunnelState(
        "cloudflared", PUBLIC, "up", reachable=False, probe_error="DNS not propagated yet: retrying in 1 s"
    )
    dns_again = TunnelState(
        "cloudflared", PUBLIC, "up", reachable=False, probe_error="DNS not propagated yet: retrying in 2 s"
    )
    ok = TunnelState("cloudflared", PUBLIC, "up", reachable=True, probe_ms=120.4)
    ok_again = TunnelState("cloudflared", PUBLIC, "up", reachable=True, probe_ms=98.0)
    assert lines_for(start, waiting, up, dns, dns_again, ok, ok_again) == [
        "starting cloudflared",
        f"public URL {PUBLIC} (cloudflared)",
        PASTE + PUBLIC,
        "✗ not reachable: DNS not propagated yet, retrying",  # once, not at each retry
        "reachable ✓ (120 ms)",  # once, not at each probe
    ]


def test_a_restart_a_new_url_and_the_same_url_again() -> None:
    ok = TunnelState("cloudflared", PUBLIC, "up", reachable=True, probe_ms=120.0)
    restarting = TunnelState(
        "cloudflared", phase="restarting", detail="restarting in 4 s (cloudflared exited 1: ERR lost)"
    )
    again = TunnelState("cloudflared", detail="waiting for cloudflared to give its public URL", restarts=1)
    other = "https://other-words-four-five.trycloudflare.com/"
    new = TunnelState("cloudflared", other, "up", restarts=1)
    assert lines_for(ok, restarting, again, new) == [
        f"public URL {PUBLIC} (cloudflared)",
        PASTE + PUBLIC,
        "reachable ✓ (120 ms)",
        "✗ cloudflared restarting (1) in 4 s (cloudflared exited 1: ERR lost)",
        f"public URL {other} (cloudflared)",
        PASTE + other,  # a quick tunnel's new URL: Conscent must be told
    ]
    back = TunnelState("ngrok", "https://reserved.ngrok.app/", "up", restarts=1)
    dying = TunnelState("ngrok", phase="restarting", detail="restarting in 1 s (ngrok exited 1)")
    assert lines_for(back, dying, back)[-1] == (
        "public URL https://reserved.ngrok.app/ again (the same: nothing to change in Conscent)"
    )


def test_missing_down_and_stopped() -> None:
    hint = "cloudflared is not installed: brew install cloudflared; the monitor runs on locally"
    assert lines_for(TunnelState("cloudflared"), TunnelState("cloudflared", phase="missing", detail=hint)) == [
        f"✗ {hint}"
    ]
    down = TunnelState(
        "cloudflared", PUBLIC, "up", reachable=False, probe_error="tunnel down: connection refused: retrying in 1 s"
    )
    stopped = TunnelState("cloudflared", PUBLIC, "down", detail="stopped")
    assert lines_for(down, stopped)[-2:] == [
        "✗ not reachable: tunnel down: connection refused, retrying",
        "cloudflared stopped",
    ]
    url = TunnelState("url", "https://hooks.example.com/", "up", reachable=True, probe_ms=3.0)
    assert lines_for(url, TunnelState("url", "https://hooks.example.com/", "down", detail="stopped")) == [
        "public URL https://hooks.example.com/",
        PASTE + "https://hooks.example.com/",
        "reachable ✓ (3 ms)",
    ]


def test_the_lines_are_inert() -> None:
    hostile = TunnelState(
        "cloudflared", "https://x.trycloudflare.com/\x1b[2J", "up", reachable=False, probe_error="\x1b]0;pwned\x07"
    )
    for line in lines_for(hostile):
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in line), repr(line)


def test_nothing_is_printed_before_the_listening_line() -> None:
    printed: list[str] = []
    report = TunnelLines(printed.append)
    report(TunnelState("url", PUBLIC, "up"))
    assert printed == []
    report.start(TunnelState("url"))  # the newest state reported wins over the service's
    assert [line.split("  ", 1)[1] for line in printed] == [f"public URL {PUBLIC}", PASTE + PUBLIC]
    assert re.fullmatch(r"\d\d:\d\d:\d\d", printed[0].split("  ", 1)[0])


# -- the headless lines from a real tunnel ------------------------------------------------------------


async def test_the_lines_follow_a_real_tunnel(
    fake: Path,  # noqa: F811
    relay: Relay,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fake cloudflared on PATH, its public side a relay: reachable, then the edge answers 530."""
    monkeypatch.setenv("FAKE_TUNNEL_URL", relay.url)
    monkeypatch.setenv("FAKE_TUNNEL_DELAY", "0.2")
    printed: list[str] = []
    report = TunnelLines(printed.append)
    report.start(None)  # as run_headless does once its first line is out
    options = Options(db_path=tmp_path / "m.db", port=0, secret="s", tunnel="cloudflared")
    service = Service(options, on_tunnel_change=report, tunnel_timing=QUICK)
    await service.start()
    relay.target = service.url

    def said(words: str) -> bool:
        return any(words in line for line in printed)

    try:
        await wait_until(lambda: said("reachable ✓"), what=f"reachable in {printed}")
        relay.status = 530
        await wait_until(lambda: said("✗ not reachable: tunnel down"), what=f"the 530 in {printed}")
    finally:
        await service.stop()
    shown = [line.split("  ", 1)[1] for line in printed]
    assert shown[:3] == [
        f"starting cloudflared (its output goes to {options.db_path}.tunnel.log)",
        f"public URL {relay.url}/ (cloudflared)",
        f"{PASTE}{relay.url}/",
    ]
    assert re.fullmatch(r"reachable ✓ \(\d+ ms\)", shown[3]), shown
    assert shown[4] == "✗ not reachable: tunnel down: the public side answered 530, retrying"
    # The probes every 0.2 s and the retries of the same failure printed nothing more; then the stop.
    assert shown[5:] == ["cloudflared stopped"], shown


async def test_watch_headless_prints_the_public_url_after_the_listening_line(
    fake: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_TUNNEL_URL", "https://conscent-monitor-test.invalid")  # never resolves
    monitor = Monitor("watch", "--headless", "--port", "0", "--secret", "s", "--tunnel", "cloudflared", cwd=tmp_path)
    try:
        url = monitor.url()
        assert monitor.line().endswith("  starting cloudflared (its output goes to conscent-monitor.db.tunnel.log)")
        assert monitor.line().endswith("  public URL https://conscent-monitor-test.invalid/ (cloudflared)")
        assert monitor.line().endswith(f"  {PASTE}https://conscent-monitor-test.invalid/")
        assert "  ✗ not reachable: " in monitor.line(timeout=30)
        assert url.startswith("http://127.0.0.1:")
    finally:
        monitor.proc.send_signal(signal.SIGINT)
        rest = monitor.rest()
        monitor.stop()
    assert rest[-2].endswith("  cloudflared stopped"), rest
    assert rest[-1].startswith("stopped; session"), rest


def test_watch_headless_without_the_program_runs_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monitor = Monitor("watch", "--headless", "--port", "0", "--secret", "s", "--tunnel", "ngrok", cwd=tmp_path)
    try:
        url = monitor.url()
        missing = monitor.line()
        assert "  ✗ ngrok is not installed: " in missing and "the monitor runs on locally" in missing
        status, _ = http_post(url, b'{"event":"payment_gateway.view","user_id":"u1"}')
        assert status == 200  # still listening (an unsigned delivery is recorded, marked)
    finally:
        monitor.stop()
