"""What is wrong with this integration: every check's finding, problems first; Enter shows the matching rows.

Shows the :class:`~monitor.checks.Finding` list the app read for it
(:func:`monitor.checks.run_checks`): the checks that found something,
errors first, each with its level mark, its title and count, the line
that says why it matters, when it was first and last seen (local time, as
the main table words it) and the detail line; then the checks that
passed, dimmed, one line each, so the user sees what was checked.

The screen reads nothing. It asks the app with messages defined here:
Enter on a finding :class:`ChecksFilterChosen` (the main table's filter and
mode for its rows; a finding the filter language cannot select says so
instead), ``a`` :class:`ChecksScopeWanted` (this session / all sessions),
``t`` opens :class:`ThresholdsScreen` and, when a value changed,
:class:`ChecksThresholdsChanged`. The app runs the checks again and hands
the result to :meth:`ChecksScreen.show` (a live session on every commit).

Everything in a finding's detail may come from a webhook's body (field
names, reasons): it is made inert (:func:`monitor.textsafe.cell`) and shown
as plain ``Text``. Must not import the app.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from monitor.textsafe import cell
from monitor.tui.format import format_time, today
from monitor.tui.screens.palette import ThemedScreen
from monitor.tui.widgets.footer import KeyFooter
from monitor.wording import count, number

if TYPE_CHECKING:
    from monitor.checks import Finding, Thresholds

__all__ = [
    "ALL_SESSIONS",
    "ChecksFilterChosen",
    "ChecksScopeWanted",
    "ChecksScreen",
    "ChecksThresholdsChanged",
    "FindingsList",
    "ThresholdsScreen",
    "session_scope",
    "thresholds_line",
]

#: The scope that means every recorded session (:func:`session_scope`).
ALL_SESSIONS = "all sessions"
#: From this width a finding's count and times sit in columns of their own, right of its words.
WIDE = 120
#: The order of the levels, and each one's mark and tone (monitor/tui/screens/palette.py).
LEVELS: dict[str, tuple[int, str, str]] = {
    "error": (0, "✗", "bad"),
    "warning": (1, "!", "warning"),
    "info": (2, "i", "name"),
}
#: What the thresholds dialog and the one-line summary call each threshold: (label, summary, unit).
#: A threshold not named here is worded from its field name (``retry_window_seconds``: "retry window", "s").
THRESHOLD_WORDS: dict[str, tuple[str, str, str]] = {
    "open_view_minutes": ("A view is open when no close or conversion follows within", "open view after", "min"),
    "lag_seconds": ("A delivery is late when it arrives later than", "late after", "s"),
    "future_seconds": ("created_at is in the future when it is ahead of arrival by", "future after", "s"),
}
#: The unit a field name's last word stands for.
UNITS = {"minutes": "min", "seconds": "s", "ms": "ms", "hours": "h", "days": "d", "percent": "%"}
#: Where an untrusted detail is cut (with "…"): far more than a screen shows, short of a runaway body.
DETAIL_LIMIT = 600


# -- messages to the app -----------------------------------------------------------------


@dataclass
class ChecksFilterChosen(Message):
    """Enter on a finding: set the main table's filter to ``filter_text`` and its mode to ``mode``."""

    filter_text: str
    mode: Literal["gateway", "all"]


@dataclass
class ChecksScopeWanted(Message):
    """``a``: run the checks on every session (``all_sessions``) or on the current one only."""

    all_sessions: bool


@dataclass
class ChecksThresholdsChanged(Message):
    """The thresholds dialog changed a value: run the checks again with ``thresholds``."""

    thresholds: Thresholds


def session_scope(session_id: int | None, live_session_id: int | None = None) -> str:
    """The words for what the checks read: ``session #12 (live)``, ``session #3``, or :data:`ALL_SESSIONS`."""
    if session_id is None:
        return ALL_SESSIONS
    return f"session #{session_id}" + (" (live)" if session_id == live_session_id else "")


# -- wording the thresholds ---------------------------------------------------------------


def _words(name: str) -> tuple[str, str, str]:
    known = THRESHOLD_WORDS.get(name)
    if known is not None:
        return known
    stem, _, last = name.rpartition("_")
    unit = UNITS.get(last, "")
    words = (stem if unit else name).replace("_", " ")
    return words[:1].upper() + words[1:], words, unit


def _plain(value: float) -> str:
    """A threshold as typed: ``30``, ``1.5`` (no thousands separator, no exponent)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _shown(value: float) -> str:
    """A threshold as read: ``30``, ``1.5``, ``86,400``."""
    return number(int(value)) if float(value).is_integer() else _plain(value)


def thresholds_line(thresholds: Thresholds) -> str:
    """Every threshold in one line: ``open view after 30 min · late after 60 s · future after 300 s``."""
    parts = []
    for field in dataclasses.fields(thresholds):
        _label, summary, unit = _words(field.name)
        value = getattr(thresholds, field.name)
        parts.append(f"{summary} {_shown(value)}" + (f" {unit}" if unit else ""))
    return " · ".join(parts)


def _level(finding: Finding) -> tuple[int, str, str]:
    return LEVELS.get(finding.level, (len(LEVELS), "?", "muted"))


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """The findings as the screen lists them: the failed ones by level (errors first), then the passed ones.

    Within a level the order is the one given (``run_checks``: by area).
    """
    failed = sorted((f for f in findings if f.failed), key=lambda f: _level(f)[0])
    return failed + [f for f in findings if not f.failed]


# -- the list -------------------------------------------------------------------------------


class FindingsList(OptionList):
    """One option per finding: the failed ones can be highlighted, the passed ones are dimmed (disabled)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Show rows", show=True),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
    ]

    # Up on the first finding and down on the last stay there, as on every table (OptionList wraps round).
    def action_cursor_up(self) -> None:
        self._step(-1)

    def action_cursor_down(self) -> None:
        self._step(1)

    def _step(self, direction: int) -> None:
        if self.highlighted is None:
            self.action_first()
            return
        index = self.highlighted + direction
        while 0 <= index < self.option_count:
            if not self.get_option_at_index(index).disabled:
                self.highlighted = index
                return
            index += direction


class ChecksScreen(ThemedScreen):
    """Every check's finding for a session or all of them (see the module's docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "thresholds", "Thresholds"),
        # One key, named for what it does now (check_action shows one of the two).
        Binding("a", "scope(True)", "All sessions"),
        Binding("a", "scope(False)", "This session"),
    ]

    def __init__(
        self,
        findings: Sequence[Finding],
        thresholds: Thresholds,
        scope: str,
        clock: Callable[[], float] = time.time,
        *,
        checked: int | None = None,
        switchable: bool = True,
    ) -> None:
        """``scope``: :func:`session_scope`'s words; ``checked``: how many deliveries the checks read (0: none yet).

        ``switchable``: ``a`` switches between one session and all of them
        (False when the app reviews every session: there is no "this session").
        """
        super().__init__()
        self.findings = ordered(findings)
        self.thresholds = thresholds
        self.scope = scope
        self.clock = clock
        self.checked = checked
        self.switchable = switchable
        self._wide: bool | None = None
        #: What the findings' rows were drawn with: the local date and the count and times columns' widths.
        self._day = ""
        self._widths = (0, 0)
        #: The index of the finding drawn as the cursor's (its muted words in the cursor's colour).
        self._lit: int | None = None

    @property
    def all_sessions(self) -> bool:
        return self.scope == ALL_SESSIONS

    def compose(self) -> ComposeResult:
        yield Static(id="checks-title", classes="title")
        yield Static(id="checks-thresholds", classes="panel")
        yield FindingsList(id="checks-list", markup=False)
        yield Static(id="checks-hint", classes="panel")
        yield KeyFooter(personal_data=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.fill()
        self.query_one(FindingsList).focus()

    def on_resize(self, event: Resize) -> None:
        if self.is_mounted and self._wide is not None and self._wide != self._is_wide():
            self.fill()

    def redraw(self) -> None:
        if self.is_mounted:
            self.fill()

    # -- attributes down: the app hands over what the checks found -----------------------

    def show(
        self,
        findings: Sequence[Finding],
        thresholds: Thresholds,
        scope: str,
        *,
        checked: int | None = None,
        switchable: bool = True,
    ) -> None:
        """The checks ran again (a commit, other thresholds, the other scope): redraw, the cursor on its finding."""
        self.findings = ordered(findings)
        self.thresholds = thresholds
        self.scope = scope
        self.checked = checked
        self.switchable = switchable
        self.refresh_bindings()
        if self.is_mounted:
            self.fill()

    def finding(self, key: str | None) -> Finding | None:
        return next((f for f in self.findings if f.key == key), None)

    # -- drawing -----------------------------------------------------------------------------

    def _is_wide(self) -> bool:
        return (self.size.width or self.app.size.width) >= WIDE

    def fill(self) -> None:
        listing = self.query_one(FindingsList)
        highlighted = listing.highlighted_option
        key = highlighted.id if highlighted is not None else None
        self._wide = self._is_wide()
        self._day = day = today(self.clock())
        empty = self.checked == 0
        options: list[Option | None] = []
        failed = [f for f in self.findings if f.failed]
        passed = [f for f in self.findings if not f.failed]
        # From WIDE columns the counts and times of every finding line up in columns of one width.
        self._widths = (
            max((len(number(f.count)) for f in failed), default=0),
            max((len(line) for f in failed for line in self._seen(f, day)), default=0),
        )
        self._lit = None
        for finding in failed:
            options.append(Option(self._problem(finding), id=finding.key))
        if failed and passed:
            options.append(None)  # a rule between what is wrong and what passed
        for finding in passed:
            options.append(Option(self._passed(finding, empty=empty), id=finding.key, disabled=True))
        listing.set_options(options)
        index = next((i for i, f in enumerate(failed) if f.key == key), 0)
        listing.highlighted = index if failed else None
        self._title()
        self.query_one("#checks-thresholds", Static).update(self._thresholds_text())
        self._hint()

    def _problem(self, finding: Finding, *, lit: bool = False) -> RenderableType:
        """A finding's rows; ``lit``: under the cursor, whose colours replace the tones (muted grey on the
        cursor's background is unreadable in some themes)."""
        _rank, mark, tone = _level(finding)
        widths = self._widths
        muted = Style() if lit else self.tone("muted")
        title = Text(cell(finding.title), style=self.tone("strong"))
        amount = Text(number(finding.count), style=self.tone("strong") if lit else self.tone(tone))
        why = Text(cell(finding.why, DETAIL_LIMIT))
        detail = Text(cell(finding.detail, DETAIL_LIMIT), style=muted) if finding.detail else None
        seen = self._seen(finding, self._day)
        grid = Table.grid(padding=(0, 1), pad_edge=False, expand=True)
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        if self._wide:
            grid.add_column(no_wrap=True, justify="right", width=widths[0])
            grid.add_column(no_wrap=True, width=widths[1])
            body = Text("\n").join([title, why, *([detail] if detail else [])])
            times = Text("\n").join(Text(line, style=muted) for line in seen) if seen else Text("")
            grid.add_row(Text(mark, style=Style() if lit else self.tone(tone)), body, amount, times)
        else:
            head = Text.assemble(title, "  ", amount)
            lines = [head, why, *([detail] if detail else [])]
            if seen:
                lines.append(Text(" · ".join(" ".join(line.split()) for line in seen), style=muted))
            grid.add_row(Text(mark, style=Style() if lit else self.tone(tone)), Text("\n").join(lines))
        return grid

    @staticmethod
    def _seen(finding: Finding, day: str) -> list[str]:
        first, last = format_time(finding.first_seen, day), format_time(finding.last_seen, day)
        if not first and not last:
            return []
        if first == last or not last:
            return [f"seen {first}"]
        return [f"first {first}", f"last  {last}"]

    def _passed(self, finding: Finding, *, empty: bool) -> RenderableType:
        muted = self.tone("muted")
        text = Text("· " if empty else "✓ ", style=muted)
        text.append(cell(finding.title), style=muted)
        text.append(": nothing yet" if empty else ": none", style=muted)
        return text

    def _title(self) -> None:
        muted = self.tone("muted")
        text = Text()
        text.append("Checks", style="bold")
        text.append(f" of {self.scope}", style="bold")
        if self.checked is not None:
            text.append(f" · {count(self.checked, 'delivery')} checked", style=muted)
        text.append("\n")
        failed = [f for f in self.findings if f.failed]
        if self.checked == 0:
            text.append("Nothing recorded yet: the checks run on what arrives", style=self.tone("strong"))
        elif not self.findings:
            text.append("No check ran", style=muted)
        elif not failed:
            text.append(f"✓ Every check passed ({count(len(self.findings), 'check')})", style=self.tone("good"))
        else:
            parts: list[Text] = []
            for level, (_rank, _mark, tone) in LEVELS.items():
                found = sum(1 for f in failed if f.level == level)
                if found:
                    parts.append(Text(count(found, level), style=self.tone(tone)))
            passed = len(self.findings) - len(failed)
            if passed:
                parts.append(Text(f"{count(passed, 'check')} passed", style=muted))
            text.append_text(Text(" · ").join(parts))
        self.query_one("#checks-title", Static).update(text)

    def _thresholds_text(self) -> Text:
        text = Text("Thresholds: ", style=self.tone("muted"))
        text.append(thresholds_line(self.thresholds))
        return text

    def _hint(self) -> None:
        hint = self.query_one("#checks-hint", Static)
        listing = self.query_one(FindingsList)
        option = listing.highlighted_option
        finding = self.finding(option.id) if option is not None else None
        muted = self.tone("muted")
        if finding is None:
            hint.update(Text(""))
            hint.display = False
            return
        hint.display = True
        if finding.filter is None:
            hint.update(Text("No filter selects these rows: the detail line says where they are", style=muted))
            return
        text = Text("Enter: the rows, filter ", style=muted)
        text.append(cell(finding.filter, DETAIL_LIMIT), style=self.tone("strong"))
        text.append(" (gateway views & closes)" if finding.mode == "gateway" else " (all events)", style=muted)
        hint.update(text)

    @on(OptionList.OptionHighlighted, "#checks-list")
    def _highlighted(self, message: OptionList.OptionHighlighted) -> None:
        listing = message.option_list
        for index, lit in ((self._lit, False), (message.option_index, True)):
            if index is not None and index < listing.option_count:
                found = self.finding(listing.get_option_at_index(index).id)
                if found is not None:
                    listing.replace_option_prompt_at_index(index, self._problem(found, lit=lit))
        self._lit = message.option_index
        self._hint()

    # -- keys ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "scope" and parameters:
            return self.switchable and bool(parameters[0]) != self.all_sessions
        return True

    @on(OptionList.OptionSelected, "#checks-list")
    def _chosen(self, message: OptionList.OptionSelected) -> None:
        finding = self.finding(message.option.id)
        if finding is None:
            return
        if finding.filter is None:
            self.notify(
                f"{cell(finding.title)}: no filter selects these rows, so there are none to show. "
                "The detail line says where they are.",
                severity="warning",
                markup=False,
            )
            return
        # To the app, not this screen: the screen is gone before a message to it would bubble up.
        self.app.post_message(ChecksFilterChosen(finding.filter, finding.mode))
        self.app.pop_screen()

    def action_scope(self, all_sessions: bool) -> None:
        self.post_message(ChecksScopeWanted(all_sessions))

    def action_thresholds(self) -> None:
        self.app.push_screen(ThresholdsScreen(self.thresholds), self._thresholds_chosen)

    def _thresholds_chosen(self, thresholds: Thresholds | None) -> None:
        if thresholds is None or thresholds == self.thresholds:
            return
        self.thresholds = thresholds
        self.query_one("#checks-thresholds", Static).update(self._thresholds_text())
        self.post_message(ChecksThresholdsChanged(thresholds))


# -- the thresholds dialog ------------------------------------------------------------------


def parse_threshold(text: str, current: float) -> tuple[float | None, str | None]:
    """``text`` typed for a threshold now ``current``: (the value, None) or (None, what is wrong).

    A number above 0 (``1,000`` and ``1.5`` read as written); a whole number
    where the threshold is one (an ``int`` field).
    """
    typed = text.strip().replace(",", "").replace("_", "")
    whole = isinstance(current, int) and not isinstance(current, bool)
    if not typed:
        return None, "Type a number"
    try:
        value = int(typed) if whole else float(typed)
    except ValueError:
        return None, "Type a whole number" if whole else "Type a number (30, 1.5)"
    if not math.isfinite(value):
        return None, "Type a number (30, 1.5)"
    if value <= 0:
        return None, "Type a number above 0"
    return value, None


class ThresholdsScreen(ModalScreen["Thresholds | None"]):
    """Change the checks' thresholds: one field each, checked as typed; Enter applies, Esc cancels.

    Dismissed with the new :class:`~monitor.checks.Thresholds` (None: cancelled).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # Before a field's own Enter, so the footer offers it; not on a button (its Enter presses it).
        Binding("enter", "apply", "Apply", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, thresholds: Thresholds) -> None:
        super().__init__()
        self.thresholds = thresholds
        self.names = [field.name for field in dataclasses.fields(thresholds)]

    def compose(self) -> ComposeResult:
        with Vertical(id="thresholds"):
            yield Static(Text("Thresholds of the checks", style="bold"), classes="title")
            for name in self.names:
                label, _summary, unit = _words(name)
                with Horizontal(classes="threshold"):
                    yield Static(Text(label), classes="threshold-label")
                    yield Input(
                        _plain(getattr(self.thresholds, name)),
                        id=f"threshold-{name}",
                        compact=True,
                        select_on_focus=True,
                    )
                    yield Static(Text(unit), classes="threshold-unit")
                yield Static(id=f"threshold-{name}-error", classes="threshold-error")
            with Horizontal(id="thresholds-buttons"):
                yield Button("Apply", variant="primary", id="thresholds-apply")
                yield Button("Cancel", id="thresholds-cancel")
        yield KeyFooter(personal_data=False)

    def on_mount(self) -> None:
        for name in self.names:
            self.query_one(f"#threshold-{name}-error", Static).display = False
        if self.names:
            self.query_one(f"#threshold-{self.names[0]}", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply" and self.focused is not None:
            return not any(isinstance(node, Button) for node in self.focused.ancestors_with_self)
        return True

    def _check(self, name: str) -> Any:
        """The value typed for ``name``, or None after saying under it what is wrong."""
        typed = self.query_one(f"#threshold-{name}", Input).value
        value, problem = parse_threshold(typed, getattr(self.thresholds, name))
        error = self.query_one(f"#threshold-{name}-error", Static)
        error.update(Text(f"✗ {problem}") if problem else Text(""))
        error.display = problem is not None
        return value

    @on(Input.Changed)
    def _typed(self, message: Input.Changed) -> None:
        name = (message.input.id or "").removeprefix("threshold-")
        if name in self.names:
            self._check(name)

    @on(Button.Pressed, "#thresholds-apply")
    @on(Input.Submitted)
    def action_apply(self) -> None:
        values = {name: self._check(name) for name in self.names}
        wrong = [name for name, value in values.items() if value is None]
        if wrong:
            self.query_one(f"#threshold-{wrong[0]}", Input).focus()
            return
        self.dismiss(dataclasses.replace(self.thresholds, **values))

    @on(Button.Pressed, "#thresholds-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
