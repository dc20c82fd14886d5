"""The public URL in the header, its state in the theme's tones, the copy key and the empty table's hint (issue 13).

The app reads ``service.tunnel_state`` on its health tick; the tests set that
state directly (a real listener behind, the tunnel stubbed) and read what the
terminal would show at 80x24 and 160x48.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style

from monitor import tunnel_status
from monitor.service import Service
from monitor.tui.app import MonitorApp
from monitor.tui.screens.help import KEYS
from monitor.tui.widgets.stats_bar import PUBLIC_LINE_WIDTH, _Origin, fit_origin
from monitor.tunnel import TunnelState
from tests.helpers import VIEW, Live, screen_text, wait_for

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])

STYLES = {
    name: Style()
    for name in (
        *("label", "value", "live", "down", "offline", "view", "close", "other", "rejected"),
        *("good", "bad", "warning", "muted"),
    )
}

#: A real quick tunnel's URL (the longest kind: four words).
PUBLIC = "https://corporate-mention-tiles-coordinates.trycloudflare.com/"
LOCAL = "http://127.0.0.1:45491/"
DB = "/tmp/conscent-monitor-demo-mdxlkx_5/demo.db"

STARTING = TunnelState("cloudflared", phase="starting", detail="waiting for cloudflared to give its public URL")
CHECKING = TunnelState("cloudflared", PUBLIC, "up")
REACHABLE = TunnelState("cloudflared", PUBLIC, "up", reachable=True, probe_ms=120.4)
NO_DNS = TunnelState(
    "cloudflared", PUBLIC, "up", reachable=False, probe_error="DNS not propagated yet: retrying in 8 s"
)
DOWN = TunnelState(
    "cloudflared",
    PUBLIC,
    "up",
    reachable=False,
    probe_error="tunnel down: the public side answered 530: retrying in 2 s",
)
RESTARTING = TunnelState(
    "cloudflared", phase="restarting", restarts=1, detail="restarting in 4 s (cloudflared exited 1)"
)
MISSING = TunnelState(
    "cloudflared",
    phase="missing",
    detail="cloudflared is not installed: brew install cloudflared; the monitor runs on locally",
)

#: Each state, the words the header shows at 160 columns and at 80 (where they are shortened).
WORDS = {
    "starting": (STARTING, "starting cloudflared…", "starting…"),
    "checking": (CHECKING, "checking it is reachable…", "checking…"),
    "reachable": (REACHABLE, "reachable ✓ (120 ms)", "✓ 120 ms"),
    "no DNS": (NO_DNS, "✗ not reachable: DNS not propagated yet, retrying", "✗ no DNS yet"),
    "down": (DOWN, "✗ tunnel down: the public side answered 530, retrying", "✗ tunnel down"),
    "restarting": (RESTARTING, "restarting (2)", "restarting (2)"),
    "missing": (MISSING, "✗ cloudflared not installed: local only", "✗ no cloudflared"),
}


# -- the words and the fitting ------------------------------------------------------------------------


@pytest.mark.parametrize("name", WORDS)
def test_each_state_has_its_words_and_tone(name: str) -> None:
    state, long, short = WORDS[name]
    status = tunnel_status.status(state)
    assert (status.long, status.short) == (long, short) or status.medium == long, status
    assert len(status.short) <= 16
    tone = {"reachable": "good", "starting": "muted", "checking": "muted", "restarting": "warning"}.get(name, "bad")
    assert status.tone == tone


def origin(state: TunnelState | None, **changes: Any) -> _Origin:
    status = tunnel_status.status(state) if state is not None else None
    fields: dict[str, Any] = {
        "url": LOCAL,
        "db_path": DB,
        "session": "session #3 (live)",
        "healthy": True,
        "forward": None,
        "public": tunnel_status.public_url(state),
        "tunnel": status,
    }
    fields.update(changes)
    return _Origin(**fields)


@pytest.mark.parametrize("width", [60, 78, 90, 124, 200])
def test_the_public_url_comes_first_and_the_local_one_gives_way_when_narrow(width: int) -> None:
    line, below = fit_origin(origin(REACHABLE), width, STYLES)
    text = line.plain + ("\n" + below.plain if below is not None else "")
    assert all(len(part) <= width for part in text.splitlines())
    assert line.plain.startswith("● ")
    assert PUBLIC.removeprefix("https://") in line.plain  # on the first line, whole
    if width >= 78:
        assert PUBLIC in line.plain and "✓" in line.plain
    if width >= PUBLIC_LINE_WIDTH:
        assert "reachable ✓ (120 ms)" in line.plain and LOCAL in text and "demo.db" in text
    else:
        assert LOCAL not in text  # at 80 columns the local URL gives way


def test_at_160_columns_the_local_url_has_the_line_under_the_public_one() -> None:
    line, below = fit_origin(origin(NO_DNS), 124, STYLES)
    assert line.plain == f"● Webhook URL {PUBLIC}  ✗ DNS not propagated yet, retrying"
    assert below is not None and below.plain == f"  local {LOCAL}   db {DB}   session #3 (live)"


def test_without_a_public_url_yet_the_local_url_stays_with_the_tunnels_words() -> None:
    line, below = fit_origin(origin(STARTING), 124, STYLES)
    assert below is None
    assert line.plain.startswith(f"● Webhook URL {LOCAL}  starting cloudflared…   db ")
    line, _ = fit_origin(origin(MISSING), 78, STYLES)
    assert line.plain.startswith(f"● Webhook URL {LOCAL}  ✗ cloudflared not installed") or line.plain.startswith(
        f"● URL {LOCAL}  ✗ no cloudflared"
    )
    assert len(line.plain) <= 78


def test_a_forward_target_and_a_public_url_share_the_header() -> None:
    from rich.text import Text

    forward = Text("→ http://127.0.0.1:3000/hooks/conscent  ✓ 200")
    line, below = fit_origin(origin(REACHABLE, forward=forward), 124, STYLES)
    assert PUBLIC in line.plain and below is not None
    assert forward.plain in below.plain and LOCAL in below.plain
    line, below = fit_origin(origin(REACHABLE, forward=forward), 78, STYLES)
    assert PUBLIC in line.plain and below is not None and below.plain == forward.plain


def test_not_recording_still_leads_the_line() -> None:
    line, _ = fit_origin(origin(REACHABLE, healthy=False), 124, STYLES)
    assert line.plain.startswith(f"✗ NOT RECORDING Webhook URL {PUBLIC}")


# -- on screen ---------------------------------------------------------------------------------------


@pytest.fixture
def tunnel(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TunnelState | None]]:
    """``tunnel[0] = state``: what ``service.tunnel_state`` answers (the app reads it each second)."""
    holder: list[TunnelState | None] = [None]
    monkeypatch.setattr(Service, "tunnel_state", property(lambda _self: holder[0]))
    yield holder


def lines(app: MonitorApp) -> list[str]:
    return screen_text(app).splitlines()


def header(app: MonitorApp) -> str:
    """The header's lines (everything above the table's column titles)."""
    rows = lines(app)
    end = next(i for i, row in enumerate(rows) if "Received" in row)
    return "\n".join(rows[:end])


async def show(pilot: Any, app: MonitorApp, holder: list[TunnelState | None], state: TunnelState, *words: str) -> str:
    """Set the tunnel's state and wait for one of ``words`` in the header."""
    holder[0] = state
    app._check_health()  # the 1-second tick, now
    await wait_for(
        pilot, lambda: any(w in header(app) for w in words), what=f"{words!r} in the header: {header(app)!r}"
    )
    await pilot.pause()  # a header that grew a line is laid out again
    return header(app)


@SIZES
async def test_the_header_shows_each_state_at_both_sizes(
    live: Live, tunnel: list[TunnelState | None], size: tuple[int, int]
) -> None:
    width = size[0]
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        for name, (state, long, short) in WORDS.items():
            status = tunnel_status.status(state)
            if width >= 160 and not state.public_url:
                text = await show(pilot, app, tunnel, state, long)
            elif width >= 160:  # the longest words that fit beside a long public URL
                text = await show(pilot, app, tunnel, state, *filter(None, (status.long, status.medium, short)))
                widest = next(w for w in (status.long, status.medium, short) if w and w in text)
                assert len(f" ● Webhook URL {PUBLIC}  {widest}") <= 124 + 1
            elif state.public_url:  # beside a long public URL the words are shortened
                text = await show(pilot, app, tunnel, state, short)
            else:
                text = await show(pilot, app, tunnel, state, long, short)
            first = text.splitlines()[0]
            if state.public_url:
                # At 80 columns the URL may lose its https:// (c copies it whole).
                assert (PUBLIC if width >= 160 else PUBLIC.removeprefix("https://")) in first, (name, first)
                assert (live.url in text) == (width >= 160), (name, text)
            else:
                assert live.url in first, (name, first)
            assert "views 0" in text  # the counters stay
            assert all(len(row) <= width for row in lines(app))
            assert "q Quit" in lines(app)[-1]


@SIZES
async def test_a_missing_program_is_one_notification_and_reachable_another(
    live: Live, tunnel: list[TunnelState | None], size: tuple[int, int]
) -> None:
    async with live.app.run_test(size=size, notifications=True) as pilot:
        app = live.app
        await show(pilot, app, tunnel, MISSING, "cloudflared")
        await pilot.pause()
        app._check_health()
        app._check_health()
        told = [n for n in app._notifications if n.title == "No tunnel"]
        assert len(told) == 1 and "brew install cloudflared" in told[0].message

        await show(pilot, app, tunnel, NO_DNS, "✗")
        assert not [n for n in app._notifications if n.title == "Public URL"]  # a new URL's first seconds
        await show(pilot, app, tunnel, REACHABLE, "✓")
        await show(pilot, app, tunnel, TunnelState("cloudflared", PUBLIC, "up", reachable=True, probe_ms=98.0), "✓")
        told = [n for n in app._notifications if n.title == "Public URL"]
        assert len(told) == 1 and PUBLIC in told[0].message and "c copies it" in told[0].message
        await show(pilot, app, tunnel, DOWN, "✗")
        told = [n for n in app._notifications if n.title == "Public URL"]
        assert len(told) == 2 and "tunnel down" in told[1].message and told[1].severity == "warning"


@SIZES
async def test_c_copies_the_public_url_and_says_so(
    live: Live, tunnel: list[TunnelState | None], size: tuple[int, int]
) -> None:
    async with live.app.run_test(size=size, notifications=True) as pilot:
        app = live.app
        await show(pilot, app, tunnel, STARTING, "starting")
        await pilot.press("c")
        assert app.clipboard == live.url
        assert "public one is not known yet" in list(app._notifications)[-1].message

        await show(pilot, app, tunnel, REACHABLE, "✓")
        await pilot.press("c")
        assert app.clipboard == PUBLIC
        message = list(app._notifications)[-1].message
        assert message == f"Copied {PUBLIC}: paste it into Conscent → Settings → Webhooks"


async def test_c_without_a_tunnel_copies_the_local_url(live: Live) -> None:
    async with live.app.run_test(size=(80, 24), notifications=True) as pilot:
        app = live.app
        await pilot.pause()
        await pilot.press("c")
        assert app.clipboard == live.url
        assert "--tunnel" in list(app._notifications)[-1].message


async def test_c_is_not_offered_in_offline_review(tmp_path: Path, live: Live) -> None:
    await live.post(VIEW)
    app = MonitorApp(live.db_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.main_screen.check_action("copy_url", ()) is False
        await pilot.press("c")
        assert app.clipboard == ""


@SIZES
async def test_the_empty_table_names_the_public_url(
    live: Live, tunnel: list[TunnelState | None], size: tuple[int, int]
) -> None:
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        await wait_for(pilot, lambda: "Point Conscent's webhook at" in screen_text(app), what="the hint")
        await show(pilot, app, tunnel, NO_DNS, "✗")
        await wait_for(pilot, lambda: "Paste into Conscent → Settings → Webhooks" in screen_text(app))
        rows = [row.strip() for row in lines(app)]
        if size[0] >= 160:  # the line to paste, as the headless mode prints it
            assert f"Paste into Conscent → Settings → Webhooks: {PUBLIC} (c copies it)" in rows
        else:  # the URL whole on a line of its own
            assert "Paste into Conscent → Settings → Webhooks (c copies it):" in rows and PUBLIC in rows
        assert live.url in screen_text(app)  # the curl command posts locally until the tunnel is reachable
        # The curl command posts through the tunnel once it is reachable (what y copies).
        await show(pilot, app, tunnel, REACHABLE, "✓")
        await pilot.press("y")
        assert app.clipboard.endswith(f"'{PUBLIC}'") or app.clipboard.endswith(PUBLIC)


def test_the_help_names_the_copy_key() -> None:
    assert any(line.strip().startswith("c ") and "webhook URL" in line for line in KEYS.splitlines())
