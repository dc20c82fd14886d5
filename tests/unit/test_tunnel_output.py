"""The tunnel programs' output, read on real samples (tests/fixtures/tunnel): the public URL and nothing else.

Each program's banner links the vendor's own pages before the line with the
tunnel's URL (cloudflared's terms and docs, localhost.run's admin and docs): a
reader that took "the first https URL" would send Conscent's webhooks, and the
self-probe, to a documentation page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import lifeline
from monitor.tunnel import (
    TunnelSpecError,
    command,
    describe_exit,
    find_url,
    install_hint,
    ngrok_api_url,
    program_of,
)

SAMPLES = Path(__file__).parent.parent / "fixtures" / "tunnel"


def urls(program: str, sample: str, *, allow_http: bool = False) -> list[str]:
    lines = (SAMPLES / sample).read_text().splitlines()
    return [url for line in lines if (url := find_url(program, line, allow_http=allow_http)) is not None]


@pytest.mark.parametrize(
    ("program", "sample", "url"),
    [
        ("cloudflared", "cloudflared.txt", "https://corporate-mention-tiles-coordinates.trycloudflare.com/"),
        ("ngrok", "ngrok.txt", "https://94b1-82-67-199-224.ngrok-free.app/"),
        ("ssh", "localhost.run.txt", "https://9239ab27cc1ba2.lhr.life/"),
        ("ssh", "serveo.txt", "https://3a3ec5498a744c307bc67ca14072c0db.serveo.net/"),
    ],
)
def test_the_public_url_is_read_from_the_real_output_and_nothing_else(program: str, sample: str, url: str) -> None:
    found = urls(program, sample)
    # serveo logs each request with the URL again: the same URL, still the first one found
    assert found[0] == url
    assert set(found) == {url}


def test_cloudflared_banner_links_are_not_the_tunnel() -> None:
    banner = (SAMPLES / "cloudflared.txt").read_text().splitlines()[0]
    assert "https://developers.cloudflare.com" in banner
    assert find_url("cloudflared", banner) is None
    assert find_url("cloudflared", "INF Requesting new quick Tunnel on trycloudflare.com...") is None


def test_ssh_services_other_than_the_two_known_give_a_bare_https_origin() -> None:
    assert find_url("ssh", "You can access your tunnel at https://rand0m.a.free.pinggy.link") == (
        "https://rand0m.a.free.pinggy.link/"
    )
    assert find_url("ssh", "see https://example.com/docs/faq for more") is None  # a page, not an address
    assert find_url("ssh", "manage domains at https://admin.localhost.run/") is None


def test_ngrok_logfmt_and_agent_api() -> None:
    line = (
        't=2026-09-30T02:40:01+0000 lvl=info msg="started tunnel" obj=tunnels name=command_line '
        "addr=http://localhost:4142 url=https://ab12.ngrok-free.app"
    )
    assert find_url("ngrok", line) == "https://ab12.ngrok-free.app/"
    assert find_url("ngrok", '{"msg":"failed to start tunnel","url":"https://ngrok.com/docs"}') is None
    assert find_url("ngrok", "{not json") is None
    api = (SAMPLES / "ngrok-api.json").read_bytes()
    assert ngrok_api_url(api, 8787) == "https://94b1-82-67-199-224.ngrok-free.app"
    assert ngrok_api_url(api, 9999) is None
    assert ngrok_api_url(b"<html>", 8787) is None


def test_plain_http_is_only_for_tests() -> None:
    line = "2024-03-22T22:06:28Z INF |  http://127.0.0.1:4321                |"
    assert find_url("cloudflared", line) is None
    assert find_url("cloudflared", line, allow_http=True) == "http://127.0.0.1:4321/"
    assert find_url("ssh", "Forwarding HTTP traffic from http://127.0.0.1:4321") is None
    assert find_url("ssh", "Forwarding HTTP traffic from http://127.0.0.1:4321", allow_http=True)


def test_commands() -> None:
    assert command("cloudflared", 8787) == [
        "cloudflared",
        "tunnel",
        "--no-autoupdate",
        "--url",
        "http://127.0.0.1:8787",
    ]
    assert command("ngrok", 8787) == ["ngrok", "http", "127.0.0.1:8787", "--log", "stdout", "--log-format", "json"]
    ssh = command("ssh:nokey@localhost.run", 8787)
    assert ssh[0] == "ssh"
    assert ssh[-2:] == ["--", "nokey@localhost.run"]
    assert "80:127.0.0.1:8787" in ssh
    for option in ("StrictHostKeyChecking=accept-new", "ServerAliveInterval=30", "ExitOnForwardFailure=yes"):
        assert option in ssh


@pytest.mark.parametrize("spec", ["ssh:", "ssh:-oProxyCommand=touch /tmp/x", "ssh:a b", "localtunnel", ""])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(TunnelSpecError):
        program_of(spec)


def test_install_hints_per_os() -> None:
    assert install_hint("cloudflared", "darwin").startswith("cloudflared is not installed: brew install cloudflared")
    linux = install_hint("cloudflared", "linux")
    assert "pkg.cloudflare.com" in linux
    assert "github.com/cloudflare/cloudflared/releases" in linux
    assert "brew install ngrok" in install_hint("ngrok", "darwin")
    assert "snap install ngrok" in install_hint("ngrok", "linux")
    assert "ngrok.com/download" in install_hint("ngrok", "linux")
    assert "apt-get install openssh-client" in install_hint("ssh", "linux")
    assert install_hint("ssh", "linux").endswith("the monitor runs on locally")


def test_exit_details_are_inert() -> None:
    assert describe_exit("cloudflared", 1, "") == "cloudflared exited 1"
    assert describe_exit("ngrok", 137, "") == "ngrok was killed by signal 9"
    detail = describe_exit("ssh", 255, "bad\x1b]0;pwned\x07 host")
    assert "\x1b" not in detail
    assert "\x07" not in detail
    assert detail.startswith("ssh exited 255: '")
    assert lifeline.status(-15) == 143
    assert lifeline.status(3) == 3
