"""The Checks screen (monitor/tui/screens/checks.py): findings listed, Enter to the rows, thresholds, scope."""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style
from textual import on
from textual.app import App
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, Static

from monitor import queries
from monitor.checks import Finding, Thresholds, run_checks
from monitor.resources import styles_dir
from monitor.store import open_store, write_batch
from monitor.tui.app import MonitorApp
from monitor.tui.screens.checks import (
    ALL_SESSIONS,
    ChecksFilterChosen,
    ChecksScopeWanted,
    ChecksScreen,
    ChecksThresholdsChanged,
    FindingsList,
    ThresholdsScreen,
    ordered,
    parse_threshold,
    session_scope,
    thresholds_line,
)
from monitor.tui.screens.main import MainScreen
from monitor.tui.widgets.event_table import EventTable
from monitor.tui.widgets.footer import KeyFooter
from tests.helpers import (
    Live,
    event_row,
    gateway_body,
    rejected_row,
    screen_strips,
    screen_text,
    static_text,
    strip_text,
    unsafe_segments,
    wait_for,
)

#: 2026-11-30 12:00:00 UTC: "now" for every screen here (times are rendered in UTC: the ``utc`` fixture).
NOW = float(calendar.timegm((2026, 11, 30, 12, 0, 0)))
#: Every test that draws runs at the smallest supported terminal and a roomy one.
BOTH_SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])

pytestmark = pytest.mark.usefixtures("utc")


def finding(key: str, level: str = "warning", n: int = 0, **fields: Any) -> Finding:
    area, _, _ = key.partition(".")
    values: dict[str, Any] = {
        "key": key,
        "area": area,
        "level": level,
        "title": key.replace(".", " ").capitalize(),
        "count": n,
        "why": f"Why {key} matters.",
        "first_seen": None,
        "last_seen": None,
        "filter": None,
    }
    values.update(fields)
    return Finding(**values)


INVALID = finding(
    "signatures.invalid",
    "error",
    3,
    title="Invalid signatures",
    why="The secret in Conscent's dashboard and --secret differ?",
    first_seen=NOW - 3600 * 2 + 3,  # 10:00:03 today
    last_seen=NOW - 1200 + 10,  # 11:40:10
    filter="sig:invalid",
    detail="2 accepted, 1 refused",
)
LATE = finding(
    "delivery.lag",
    "warning",
    1234,
    title="Late deliveries",
    why="Conscent delivers late: rows arrive after the fact.",
    first_seen=NOW - 86400,  # yesterday: with its date
    last_seen=NOW - 60,
    filter=None,
    detail="p50 1.2s · p95 4.1s · max 12s",
)
OPEN = finding(
    "pairing.open_views",
    "warning",
    2,
    title="Open views",
    why="A view with no close after 30 min.",
    first_seen=NOW - 7200,
    last_seen=NOW - 7200,
    filter="event:view id:1 OR id:5",
    mode="gateway",
)
PASSED = [
    finding("signatures.missing", "warning", title="Missing signatures"),
    finding("forwarding.failed", "error", title="Forward failures"),
]
#: As run_checks might hand them over, but with a warning first: the screen puts the error on top.
FINDINGS = [LATE, PASSED[0], INVALID, PASSED[1], OPEN]


class ChecksApp(App[None]):
    """The app's stylesheets around one Checks screen; records what the screen asks of the app."""

    CSS_PATH = [str(styles_dir() / name) for name in ("app.tcss", "screens.tcss", "checks.tcss")]

    def __init__(self, screen: ChecksScreen) -> None:
        super().__init__()
        self.checks = screen
        self.asked: list[Message] = []

    def on_mount(self) -> None:
        self.push_screen(self.checks)

    @on(ChecksFilterChosen)
    @on(ChecksScopeWanted)
    @on(ChecksThresholdsChanged)
    def _asked(self, message: Message) -> None:
        self.asked.append(message)


def checks_app(findings: list[Finding] = FINDINGS, scope: str = "session #4 (live)", **kwargs: Any) -> ChecksApp:
    return ChecksApp(ChecksScreen(findings, Thresholds(), scope, lambda: NOW, **kwargs))


def lines(app: App[Any]) -> list[str]:
    return [strip_text(strip).rstrip() for strip in screen_strips(app)]


def row_of(app: App[Any], text: str) -> int:
    found = [index for index, line in enumerate(lines(app)) if text in line]
    assert found, f"{text!r} is not on the screen:\n{screen_text(app)}"
    return found[0]


def listed(app: App[Any]) -> str:
    """The list's text as one string, the wrapped lines joined, runs of spaces as one."""
    listing = app.screen.query_one(FindingsList)
    region = listing.content_region
    rows = lines(app)[region.y : region.bottom]
    return " ".join(" ".join(row[region.x : region.right].split()) for row in rows)


def cursor(node: App[Any] | ChecksScreen) -> str | None:
    """The key of the finding under the cursor."""
    screen = node.screen if isinstance(node, App) else node
    option = screen.query_one(FindingsList).highlighted_option
    return None if option is None else option.id


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await pilot.pause()


# -- what is listed ------------------------------------------------------------------------


def test_ordered_puts_failed_checks_first_errors_on_top() -> None:
    assert [f.key for f in ordered(FINDINGS)] == [
        "signatures.invalid",
        "delivery.lag",
        "pairing.open_views",
        "signatures.missing",
        "forwarding.failed",
    ]


@BOTH_SIZES
async def test_findings_listed_errors_first_with_counts_and_times(size: tuple[int, int]) -> None:
    app = checks_app(checked=5000)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = listed(app)
        assert row_of(app, "Invalid signatures") < row_of(app, "Late deliveries") < row_of(app, "Open views")
        assert row_of(app, "Open views") < row_of(app, "Missing signatures: none")
        # the level marks, the counts (wording.number), why and the detail
        assert lines(app)[row_of(app, "Invalid signatures")].lstrip().startswith("✗")
        assert lines(app)[row_of(app, "Late deliveries")].lstrip().startswith("!")
        assert "1,234" in lines(app)[row_of(app, "Late deliveries")]
        assert "The secret in Conscent's dashboard and --secret differ?" in text
        assert "p50 1.2s · p95 4.1s · max 12s" in text
        # first and last seen as the main table words them: today's without a date, older ones with it
        assert "first 10:00:03" in text and "last 11:40:10" in text
        assert "first 11-29 12:00:00" in text and "last 11:59:00" in text
        assert "seen 10:00:00" in text  # first and last the same moment
        # what was checked, and the summary
        title = static_text(app, "#checks-title")
        assert "Checks of session #4 (live) · 5,000 deliveries checked" in title
        assert "1 error · 2 warnings · 2 checks passed" in title
        thresholds = static_text(app, "#checks-thresholds")
        assert "open view after 30 min · late after 60 s · future after 300 s" in thresholds
        # the cursor starts on the first error, and the hint says what Enter does
        assert cursor(app) == "signatures.invalid"
        assert "Enter: the rows, filter sig:invalid (all events)" in static_text(app, "#checks-hint")
        footer = app.screen.query_one(KeyFooter)
        shown = {entry.description for entry in footer.entries()}
        assert {"Back", "Thresholds", "All sessions", "Show rows"} <= shown


@BOTH_SIZES
async def test_passed_checks_one_dimmed_line_each_and_not_reachable(size: tuple[int, int]) -> None:
    app = checks_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChecksScreen)
        muted = screen.tone("muted").color
        for title in ("Missing signatures", "Forward failures"):
            row = screen_strips(app)[row_of(app, f"✓ {title}: none")]
            words = [segment for segment in row if segment.text.strip()]
            assert words and all(isinstance(s.style, Style) and s.style.color == muted for s in words)
        error_row = screen_strips(app)[row_of(app, "Invalid signatures")]
        assert any(s.style is not None and s.style.color != muted for s in error_row if s.text.strip())
        # the cursor never rests on a passed check
        await pilot.press("end")
        assert cursor(screen) == "pairing.open_views"
        await pilot.press("j", "j")
        assert cursor(screen) == "pairing.open_views"
        await pilot.press("home")
        assert cursor(screen) == "signatures.invalid"
        await pilot.press("j")
        assert cursor(screen) == "delivery.lag"
        await pilot.press("k")
        assert cursor(screen) == "signatures.invalid"


@BOTH_SIZES
async def test_the_cursors_finding_drops_its_muted_tone(size: tuple[int, int]) -> None:
    """Muted grey on the cursor's background is unreadable in some themes: the cursor's colours replace it."""
    app = checks_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChecksScreen)
        muted = screen.tone("muted").color

        def detail_colours() -> set[Any]:
            row = screen_strips(app)[row_of(app, "2 accepted, 1 refused")]
            return {s.style.color if s.style else None for s in row if s.text.strip()}

        assert muted not in detail_colours()  # under the cursor
        await pilot.press("j")
        await settle(pilot)
        assert detail_colours() == {muted}


async def test_every_check_passed() -> None:
    app = checks_app(PASSED, checked=12)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "✓ Every check passed (2 checks)" in static_text(app, "#checks-title")
        assert "✓ Forward failures: none" in screen_text(app)
        assert app.screen.query_one("#checks-hint", Static).display is False
        await pilot.press("enter")  # nothing to show: nothing happens
        assert app.asked == [] and isinstance(app.screen, ChecksScreen)


async def test_empty_database_says_nothing_recorded_yet() -> None:
    app = checks_app(PASSED, checked=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "Nothing recorded yet: the checks run on what arrives" in static_text(app, "#checks-title")
        assert "· Missing signatures: nothing yet" in screen_text(app)
        assert "✓" not in screen_text(app)


# -- Enter: the rows ------------------------------------------------------------------------


@BOTH_SIZES
async def test_enter_posts_the_findings_filter_and_mode(size: tuple[int, int]) -> None:
    app = checks_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("end")  # the open views: gateway mode
        assert "event:view id:1 OR id:5 (gateway views & closes)" in static_text(app, "#checks-hint")
        await pilot.press("enter")
        await settle(pilot)
        assert app.asked == [ChecksFilterChosen("event:view id:1 OR id:5", "gateway")]
        assert not isinstance(app.screen, ChecksScreen)


async def test_enter_on_a_finding_without_a_filter_says_why() -> None:
    app = checks_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("j")  # the late deliveries: no filter
        assert "No filter selects these rows" in static_text(app, "#checks-hint")
        await pilot.press("enter")
        await settle(pilot)
        assert app.asked == [] and isinstance(app.screen, ChecksScreen)
        notes = [n.message for n in app._notifications]
        assert any("Late deliveries: no filter selects these rows" in note for note in notes)


async def test_escape_goes_back() -> None:
    app = checks_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ChecksScreen) and app.asked == []


# -- scope --------------------------------------------------------------------------------


async def test_a_asks_for_all_sessions_then_this_one() -> None:
    app = checks_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChecksScreen)
        await pilot.press("a")
        await settle(pilot)
        assert app.asked == [ChecksScopeWanted(True)]
        # the app ran the checks on every session and hands them over
        screen.show(FINDINGS, Thresholds(), ALL_SESSIONS, checked=9000)
        await settle(pilot)
        assert "Checks of all sessions · 9,000 deliveries checked" in static_text(app, "#checks-title")
        assert "This session" in {entry.description for entry in screen.query_one(KeyFooter).entries()}
        await pilot.press("a")
        await settle(pilot)
        assert app.asked[-1] == ChecksScopeWanted(False)


async def test_a_does_nothing_when_the_app_reviews_every_session() -> None:
    app = checks_app(scope=ALL_SESSIONS, switchable=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = {entry.description for entry in app.screen.query_one(KeyFooter).entries()}
        assert not shown & {"All sessions", "This session"}
        await pilot.press("a")
        await settle(pilot)
        assert app.asked == []


def test_session_scope_words() -> None:
    assert session_scope(None) == ALL_SESSIONS
    assert session_scope(3) == "session #3"
    assert session_scope(3, live_session_id=3) == "session #3 (live)"


async def test_show_refreshes_in_place_keeping_the_cursor_on_its_finding() -> None:
    app = checks_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChecksScreen)
        await pilot.press("j")  # the late deliveries
        more = finding("pairing.orphan_closes", "error", 7, title="Closes with no view", filter="event:close")
        screen.show([*FINDINGS, more], Thresholds(), "session #4 (live)", checked=5001)
        await settle(pilot)
        assert cursor(screen) == "delivery.lag"
        assert row_of(app, "Closes with no view") < row_of(app, "Late deliveries")
        assert "2 errors · 2 warnings" in static_text(app, "#checks-title")


# -- thresholds ---------------------------------------------------------------------------


def test_parse_threshold() -> None:
    assert parse_threshold("45", 30.0) == (45.0, None)
    assert parse_threshold(" 1,500.5 ", 30.0) == (1500.5, None)
    assert parse_threshold("", 30.0) == (None, "Type a number")
    assert parse_threshold("abc", 30.0) == (None, "Type a number (30, 1.5)")
    assert parse_threshold("nan", 30.0) == (None, "Type a number (30, 1.5)")
    assert parse_threshold("0", 30.0) == (None, "Type a number above 0")
    assert parse_threshold("-5", 30.0) == (None, "Type a number above 0")
    assert parse_threshold("2.5", 3) == (None, "Type a whole number")
    assert parse_threshold("4", 3) == (4, None)


def test_thresholds_line() -> None:
    assert thresholds_line(Thresholds(open_view_minutes=1.5, lag_seconds=86400)) == (
        "open view after 1.5 min · late after 86,400 s · future after 300 s"
    )


@BOTH_SIZES
async def test_t_changes_the_thresholds_after_checking_them(size: tuple[int, int]) -> None:
    app = checks_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        checks = app.screen
        await pilot.press("t")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ThresholdsScreen)
        box = dialog.query_one("#threshold-open_view_minutes", Input)
        assert box.value == "30" and dialog.focused is box
        assert "A view is open when no close or conversion follows within" in screen_text(app)
        # a wrong value is said under its field, and the dialog stays
        box.value = "abc"
        await settle(pilot)
        assert static_text(app, "#threshold-open_view_minutes-error") == "✗ Type a number (30, 1.5)"
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is dialog and app.asked == []
        box.value = "0"
        await pilot.press("enter")
        await settle(pilot)
        assert "✗ Type a number above 0" in screen_text(app)
        assert app.screen is dialog and app.asked == []
        # right: the error goes, Enter applies
        box.value = "45"
        dialog.query_one("#threshold-lag_seconds", Input).value = "2.5"
        await settle(pilot)
        assert dialog.query_one("#threshold-open_view_minutes-error", Static).display is False
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is checks
        wanted = Thresholds(open_view_minutes=45.0, lag_seconds=2.5)
        assert app.asked == [ChecksThresholdsChanged(wanted)]
        assert "open view after 45 min · late after 2.5 s" in static_text(app, "#checks-thresholds")


async def test_thresholds_dialog_cancelled_or_unchanged_asks_nothing() -> None:
    app = checks_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        app.screen.query_one("#threshold-open_view_minutes", Input).value = "45"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ChecksScreen) and app.asked == []
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("enter")  # the same values
        await settle(pilot)
        assert isinstance(app.screen, ChecksScreen) and app.asked == []


# -- untrusted text, and fitting the width ------------------------------------------------------


@BOTH_SIZES
async def test_no_markup_or_control_characters_from_a_detail(size: tuple[int, int]) -> None:
    hostile = finding(
        "fields.missing",
        "warning",
        4,
        title="Documented fields missing",
        detail="payload.[bold]x[/bold] ×4 (\x1b]0;pwned\x07\x1b[31mred)",
        filter='notes:"[red]x"',
        first_seen=NOW - 10,
        last_seen=NOW - 5,
    )
    app = checks_app([hostile])
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = listed(app)
        assert "payload.[bold]x[/bold] ×4 (␛]0;pwned␇␛[31mred)" in text
        assert 'notes:"[red]x"' in static_text(app, "#checks-hint")
        assert unsafe_segments(screen_strips(app)) == []


async def test_long_words_wrap_at_80_columns_nothing_cut() -> None:
    why = " ".join(f"word{n}" for n in range(60))
    detail = "payload." + "a" * 150 + " ×2"
    long = finding("fields.wrong_type", "warning", 2, title="Fields of the wrong type", why=why, detail=detail)
    app = checks_app([long, *PASSED])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert all(len(line) <= 80 for line in lines(app))
        text = listed(app).replace(" ", "")
        assert why.replace(" ", "") in text
        assert detail.replace(" ", "") in text


# -- on a real database ---------------------------------------------------------------------


async def test_checks_screen_shows_run_checks_on_a_real_database(tmp_path: Path) -> None:
    db = open_store(tmp_path / "checks.db")
    db.execute("INSERT INTO sessions (id, started_at, mode) VALUES (1, ?, 'live')", [NOW - 3600])
    bodies = [
        b'{"entity":"event","event":"paywall.click","user_id":"u1","created_at":%d,"n":%d}' % (NOW - 600, n)
        for n in range(3)
    ]
    write_batch(
        db.conn,
        [
            event_row(bodies[0], received_at=NOW - 600, signature="valid"),
            event_row(bodies[1], received_at=NOW - 500, signature="invalid"),
            event_row(bodies[2], received_at=NOW - 400, signature="invalid"),
        ],
        [rejected_row(received_at=NOW - 300, status=401, reason="X-Conscent-Signature is invalid")],
        [],
    )
    found = run_checks(db, 1, Thresholds(), now=NOW)
    checked = queries.count_rows(db, queries.View(mode="all", session_id=1))
    db.close()
    invalid = next(f for f in found if f.key == "signatures.invalid")
    assert invalid.failed and invalid.filter is not None

    app = ChecksApp(ChecksScreen(found, Thresholds(), session_scope(1), lambda: NOW, checked=checked))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert "4 deliveries checked" in static_text(app, "#checks-title")
        assert cursor(app) == "signatures.invalid"
        assert lines(app)[row_of(app, invalid.title)].lstrip().startswith("✗")
        passed = [f for f in found if not f.failed]
        assert passed and all(f"✓ {f.title}: none" in screen_text(app) for f in passed)
        await pilot.press("enter")
        await settle(pilot)
        assert app.asked == [ChecksFilterChosen(invalid.filter or "", invalid.mode)]


# -- in the app (the lead's wiring: notes/issue15-F.md) -----------------------------------------

#: The app opens the screen (``!``) once the lead has wired it; until then these wait.
WIRED = pytest.mark.skipif(
    not hasattr(MonitorApp, "action_open_checks"), reason="the Checks screen is not wired into the app yet"
)
#: Generous: the machine may be loaded.
WAIT = 20.0
#: "Now" for the app tests: the rows are an hour old.
LATER = 1_800_000_000.0


def fill_two_sessions(path: Path) -> None:
    db = open_store(path)
    for sid in (1, 2):
        db.execute(
            "INSERT INTO sessions (id, started_at, ended_at, mode) VALUES (?, ?, ?, 'live')",
            [sid, LATER - 7200, LATER - 60],
        )
    write_batch(
        db.conn,
        [
            event_row(
                gateway_body(user_id="a", created_at=LATER - 3000),
                received_at=LATER - 3000,
                signature="valid",
                session_id=2,
            ),
            event_row(
                gateway_body(user_id="b", created_at=LATER - 2900),
                received_at=LATER - 2900,
                signature="invalid",
                session_id=2,
            ),
            event_row(
                gateway_body(user_id="c", created_at=LATER - 2800),
                received_at=LATER - 2800,
                signature="invalid",
                session_id=1,
            ),
        ],
        [rejected_row(received_at=LATER - 2700, status=401, reason="X-Conscent-Signature is invalid", session_id=2)],
        [],
    )
    db.close()


@WIRED
async def test_checks_from_the_main_screen_to_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    fill_two_sessions(path)
    app = MonitorApp(path, session_id=2, clock=lambda: LATER)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main_screen.query_one(EventTable)
        await wait_for(pilot, lambda: table.total == 2, WAIT, "rows")
        await pilot.press("exclamation_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, ChecksScreen), WAIT, "the checks")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ChecksScreen)
        assert "Checks of session #2 · 3 deliveries checked" in static_text(app, "#checks-title")
        invalid = screen.finding("signatures.invalid")
        assert invalid is not None and invalid.count == 2, invalid
        # t: thresholds, which the app keeps for the next runs
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ThresholdsScreen), WAIT, "the dialog")
        app.screen.query_one("#threshold-lag_seconds", Input).value = "5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen, WAIT, "back to the checks")
        # a: every session (3 invalid: one in session 1), with the thresholds set
        await pilot.press("a")
        await wait_for(pilot, lambda: screen.scope == "all sessions", WAIT, "all sessions")
        assert screen.finding("signatures.invalid").count == 3  # type: ignore[union-attr]
        assert screen.thresholds == Thresholds(lag_seconds=5.0)
        assert "late after 5 s" in static_text(app, "#checks-thresholds")
        # Enter on the invalid signatures: the main table, filtered, every session
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), WAIT, "the main screen")
        await wait_for(pilot, lambda: app.main_screen.filter_text == invalid.filter, WAIT, "the filter")
        assert app.session_id is None and app.main_screen.mode == invalid.mode
        await wait_for(pilot, lambda: table.total == 3, WAIT, "the invalid rows: two accepted, one refused")


@WIRED
async def test_checks_follow_a_live_session(live: Live) -> None:
    async with live.run() as pilot:
        app = live.app
        await pilot.press("exclamation_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, ChecksScreen), WAIT, "the checks")
        screen = app.screen
        assert isinstance(screen, ChecksScreen)
        await wait_for(pilot, lambda: screen.checked == 0, WAIT, "an empty session")
        assert "Nothing recorded yet" in static_text(app, "#checks-title")
        await live.post(b"not json", expect=400)
        await wait_for(pilot, lambda: screen.checked == 1, WAIT, "the checks run again on the commit")
        refused = screen.finding("delivery.refused")
        assert refused is not None and refused.count == 1
        assert screen.query_one(FindingsList).highlighted_option is not None


async def test_checks_opened_over_a_drill_down_lead_to_the_main_table(tmp_path: Path) -> None:
    """From the palette over a reader's drill-down, Enter on a finding ends on the filtered main table."""
    from monitor.tui.screens.reader import ReaderScreen

    path = tmp_path / "m.db"
    fill_two_sessions(path)
    app = MonitorApp(path, session_id=2, clock=lambda: LATER)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.main_screen.query_one(EventTable)
        await wait_for(pilot, lambda: table.total == 2, WAIT, "rows")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), WAIT, "the drill-down")
        app.action_open_checks()
        await wait_for(pilot, lambda: isinstance(app.screen, ChecksScreen), WAIT, "the checks")
        invalid = app.screen.finding("signatures.invalid")  # type: ignore[attr-defined]
        assert invalid is not None
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: app.screen is app.main_screen, WAIT, "the main screen")
        await wait_for(pilot, lambda: app.main_screen.filter_text == invalid.filter, WAIT, "the filter")
