"""The header, the footer and the help screen fit 80x24 and use the room at 160x48 (issue 12, item 1).

Unit tests for the fitting functions, then Pilot tests that read what the
terminal would show, at both sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.style import Style
from rich.text import Text

from monitor import store
from monitor.queries import Stats
from monitor.tui.app import MonitorApp
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.help import HelpScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.reader import ReaderScreen
from monitor.tui.screens.readers import ReadersScreen
from monitor.tui.screens.sessions import SessionsScreen
from monitor.tui.widgets.event_table import EventTable
from monitor.tui.widgets.footer import FooterEntry, fit
from monitor.tui.widgets.stats_bar import SPARK_MIN_WIDTH, _Origin, fit_counters, fit_origin, shorten_path
from tests.helpers import CLOSE, VIEW, Live, event_row, screen_text, wait_for

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])

STYLES = {name: Style() for name in ("label", "value", "live", "down", "offline", "view", "close", "other", "rejected")}

LONG_PATH = "/tmp/conscent-monitor-demo-mdxlkx_5/recordings/2026/november/demo.db"


def stats(n: int = 0, *, rejected: int = 0) -> Stats:
    closes = n * 97 // 100  # a 97% close rate
    return Stats(views=n, closes=closes, other=n, rejected=rejected, readers=n)


# -- the fitting functions ------------------------------------------------------------------


def test_a_path_is_shortened_in_the_middle_and_keeps_its_file_name() -> None:
    assert shorten_path("/tmp/a.db", 40) == "/tmp/a.db"
    short = shorten_path(LONG_PATH, 30)
    assert len(short) <= 30 and short.endswith("/demo.db") and "…" in short and short.startswith("/tmp/")
    assert shorten_path(LONG_PATH, 9) == "…/demo.db"
    tiny = shorten_path("/x/a-very-long-database-name.sqlite3", 12)
    assert len(tiny) == 12 and tiny.startswith("a-ver") and tiny.endswith("qlite3")
    assert shorten_path(str(Path.home() / "data" / "m.db"), 80) == "~/data/m.db"


@pytest.mark.parametrize("width", [40, 60, 78, 124, 200])
def test_the_origin_line_fits_with_the_url_first(width: int) -> None:
    origin = _Origin("http://127.0.0.1:45491/", LONG_PATH, "session #12 (live)", True, None)
    line, below = fit_origin(origin, width, STYLES)
    assert below is None
    assert line.cell_len <= width
    assert line.plain.startswith("● Webhook URL http://127.0.0.1:45491/") or width < 60
    assert "http://127.0.0.1:45491/" in line.plain
    if width >= 60:
        assert "demo.db" in line.plain  # the file name survives
    if width >= 124:
        assert "session #12 (live)" in line.plain


def test_the_forward_target_keeps_its_place_or_takes_a_line_of_its_own() -> None:
    forward = Text("→ http://127.0.0.1:3000/hooks/conscent  ✓ 200")
    origin = _Origin("http://127.0.0.1:45491/", LONG_PATH, "session #1 (live)", True, forward)
    line, below = fit_origin(origin, 124, STYLES)
    assert below is None and forward.plain in line.plain and "demo.db" in line.plain
    line, below = fit_origin(origin, 78, STYLES)
    assert below is not None and below.plain == forward.plain
    assert "demo.db" in line.plain and line.cell_len <= 78


@pytest.mark.parametrize("width", [30, 50, 78, 124])
def test_counters_fit_whole_words_and_numbers_with_separators(width: int) -> None:
    text = fit_counters(stats(51944, rejected=1234), width, STYLES).plain
    assert len(text) <= width
    assert "views 51,944" in text and "closes 50,385" in text
    words = text.split()
    for word in words:  # nothing cut in the middle: every word is a label or a whole number
        assert word in {"views", "closes", "other", "rejected", "rej.", "readers", "close", "rate", "97%", "1,234"} or (
            word.replace(",", "").isdigit() and len(word) == 6
        ), text
    if width >= 124:
        assert text.count("   ") == 5 and "close rate 97%" in text and "readers 51,944" in text


def test_counters_at_80_columns_keep_readers_and_close_rate_when_numbers_are_small() -> None:
    text = fit_counters(Stats(views=7, closes=6, other=12, readers=7), 78, STYLES).plain
    assert "readers 7" in text and "close rate 86%" in text


def test_the_footer_keeps_essential_keys_and_drops_the_rest_from_the_end() -> None:
    def entry(key: str, description: str, *, essential: bool = False) -> FooterEntry:
        return FooterEntry(key, key, description, description.lower(), True, "", essential)

    entries = [
        entry("⏎", "Reader"),
        entry("d", "Details"),
        entry("/", "Filter"),
        entry("a", "Gateway/all"),
        entry("x", "Export"),
        entry("q", "Quit", essential=True),
        entry("?", "Help", essential=True),
        entry("m", "Mask PII", essential=True),
    ]
    shown, compact, palette = fit(entries, 200, 12)
    assert shown == entries and not compact and palette
    shown, compact, palette = fit(entries, 50, 12)
    assert compact and not palette
    assert [e.description for e in shown if e.essential] == ["Quit", "Help", "Mask PII"]
    assert sum(e.width(compact=True) for e in shown) <= 50
    assert [e.description for e in shown][:2] == ["Reader", "Details"]  # the first keys go last
    shown, _, _ = fit(entries, 5, 12)
    assert [e.description for e in shown] == ["Quit", "Help", "Mask PII"]


# -- on screen ---------------------------------------------------------------------------------


def lines(app: MonitorApp) -> list[str]:
    return screen_text(app).splitlines()


def footer_line(app: MonitorApp) -> str:
    return lines(app)[-1]


@SIZES
async def test_header_lines_fit_and_counters_stay_whole(live: Live, size: tuple[int, int]) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        await wait_for(pilot, lambda: "closes 1" in lines(app)[1], what="the counters")
        first, second = lines(app)[:2]
        assert f"● Webhook URL {live.url}" in first
        assert "/m.db" in first  # the file name, whatever the path's length
        assert "views 1" in second and "readers 1" in second and "close rate 100%" in second
        assert "events / min" in first if size[0] >= SPARK_MIN_WIDTH else "events / min" not in screen_text(app)
        if size[0] >= 160:
            assert "session #1 (live)" in first
        assert "Received" in lines(app)[2]  # the table's header right under the two lines


async def open_screen(pilot: Any, app: MonitorApp, key: str, screen: type) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, screen), what=screen.__name__)
    await pilot.pause()


@SIZES
async def test_every_screen_footer_shows_quit_help_and_mask(live: Live, size: tuple[int, int]) -> None:
    await live.post(VIEW)
    await live.post(CLOSE)
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        await wait_for(pilot, lambda: app.main_screen.query_one(EventTable).total == 2, what="two rows")

        async def footer_has(*words: str, absent: tuple[str, ...] = ()) -> None:
            def ok() -> bool:
                line = footer_line(app)
                return all(word in line for word in words) and not any(word in line for word in absent)

            await wait_for(pilot, ok, what=f"{words} in the footer: {footer_line(app)!r}")

        essentials = ("q Quit", "? Help", "m Mask PII")
        await footer_has(*essentials, "Reader", "Details")
        await open_screen(pilot, app, "enter", ReaderScreen)
        await footer_has(*essentials, "esc")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await open_screen(pilot, app, "d", DetailScreen)
        await footer_has(*essentials, "esc")
        await pilot.press("escape")
        await open_screen(pilot, app, "u", ReadersScreen)
        await footer_has(*essentials, "esc")
        await pilot.press("escape")
        await open_screen(pilot, app, "s", SessionsScreen)
        await footer_has("q Quit", "? Help", "esc", absent=("Mask",))  # no personal data there
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        # Typing in the filter box: keys that would type are not offered; Esc and Enter are.
        await pilot.press("slash")
        await footer_has("esc", "Apply filter", absent=("q Quit", "Gateway/all"))
        await pilot.press("escape")
        await footer_has(*essentials)
        if size[0] >= 160:
            assert "^p palette" in footer_line(app) and "Export" in footer_line(app)


def help_lines(app: MonitorApp) -> list[str]:
    """The help box's lines, without its border."""
    inside = [line for line in lines(app) if "│" in line]
    return [line.split("│")[1] for line in inside if line.count("│") >= 2]


@SIZES
async def test_help_descriptions_wrap_under_the_description(live: Live, size: tuple[int, int]) -> None:
    async with live.app.run_test(size=size) as pilot:
        app = live.app
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        box = help_lines(app)
        row = next(i for i, line in enumerate(box) if line.strip().startswith("d ") and "details of" in line)
        column = box[row].index("details of")
        enter = next(i for i, line in enumerate(box) if line.strip().startswith("Enter ") and "drill-down" in line)
        assert box[enter].index("open the row") == column  # one key column for the section
        if size[0] < 100:  # the description wraps: its next line starts under it, not at the left edge
            following = box[row + 1]
            assert following[:column].strip() == "" and following[column] != " ", box[row : row + 2]
        else:
            assert "forwards, body" in box[row]


# -- offline review, a long path ------------------------------------------------------------


async def test_offline_header_at_80_columns_shortens_a_long_path(tmp_path: Path) -> None:
    deep = tmp_path / "a-long-directory-name-for-recordings" / "of-the-paywall" / "november"
    deep.mkdir(parents=True)
    db_path = deep / "review.db"
    db = store.open_store(db_path)
    session = store.start_session(db, listen=None, mode="test")
    store.write_batch(db.conn, [event_row(VIEW, session_id=session)], [])
    db.close()
    app = MonitorApp(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "views 1" in lines(app)[1], what="the counters")
        first = lines(app)[0]
        assert (
            first.lstrip().startswith("◼ Offline review")
            and "…" in first
            and first.rstrip().endswith("review.db   all sessions")
        )


#: How the help screen writes a binding's key.
_SHOWN = {
    "slash": "/",
    "question_mark": "?",
    "exclamation_mark": "!",
    "escape": "Esc",
    "enter": "Enter",
    "home": "Home",
    "end": "End",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
}


def test_the_help_names_every_key_of_every_screen() -> None:
    """A key added to a screen without a line in the help fails here (w, t and the readers' / were missing)."""
    from textual.binding import Binding

    from monitor.tui.app import MonitorApp
    from monitor.tui.screens.checks import ChecksScreen
    from monitor.tui.screens.detail import DetailScreen
    from monitor.tui.screens.help import KEYS
    from monitor.tui.screens.insights import InsightsScreen
    from monitor.tui.screens.main import MainScreen
    from monitor.tui.screens.reader import ReaderScreen
    from monitor.tui.screens.readers import ReadersScreen
    from monitor.tui.screens.sessions import SessionsScreen
    from monitor.tui.widgets.event_table import EventTable
    from monitor.tui.widgets.keyed_table import KeyedTable

    words = set(KEYS.replace("\n", " ").split(" "))
    missing = []
    for owner in (
        MonitorApp,
        MainScreen,
        EventTable,
        KeyedTable,
        ReaderScreen,
        ReadersScreen,
        SessionsScreen,
        DetailScreen,
        ChecksScreen,
        InsightsScreen,
    ):
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            for key in binding.key.split(","):
                shown = _SHOWN.get(key, key)
                if shown not in words and f"ctrl+{shown}" not in words:
                    missing.append(f"{owner.__name__}: {key}")
    assert not missing, missing
