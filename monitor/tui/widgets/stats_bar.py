"""The header: where to point Conscent, what is being recorded, live counters.

Every colour comes from the theme through this widget's component classes
(styled in styles/app.tcss), so a theme picked from the palette recolours
the header with the rest; on a new theme both lines are written again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.theme import Theme
from textual.widgets import Sparkline, Static

from monitor.queries import Stats
from monitor.tunnel_status import Status
from monitor.wording import number

#: Below this width (cells) the header drops the sparkline and gives its room to the words.
SPARK_MIN_WIDTH = 110
#: The sparkline's column, its label included.
SPARK_WIDTH = 34


@dataclass(frozen=True, slots=True)
class _Origin:
    url: str | None
    db_path: str
    session: str
    healthy: bool
    forward: Text | None
    #: The public URL (inert) once the tunnel (or --public-url) has one.
    public: str | None = None
    #: The tunnel's words (starting, reachable ✓, restarting…); None without a tunnel.
    tunnel: Status | None = None


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` cells, cut in the middle with ``…``, the file name kept whole if it fits.

    The home directory is written ``~``.
    """
    home = str(Path.home())
    if home not in ("/", "") and (path == home or path.startswith(home + "/")):
        path = "~" + path[len(home) :]
    if cell_len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    tail = f"…{sep}{name}"
    if cell_len(tail) <= width:
        room = width - cell_len(tail)
        return head[:room] + tail
    if width <= 1:
        return "…"[:width]
    left = (width - 1) // 2  # the name alone is too long: its start and its end (the extension)
    return name[:left] + "…" + name[len(name) - (width - 1 - left) :]


@dataclass(frozen=True, slots=True)
class _Variant:
    """One way of writing the origin line, from the widest to the narrowest."""

    sep: str
    label: str  # "Webhook URL " or "URL "
    session: bool
    inline: bool  # the forward target on this line
    short: bool = False  # the tunnel's words shortened
    local: bool = True  # with a public URL: the local one after it
    marker: bool = True  # the state marker first (●); else an indent (the local URL's own line)
    scheme: bool = True  # the public URL with its https:// (the narrowest line drops it)
    db: bool = True  # the database's path (goes before the public URL's scheme)


def _variants(origin: _Origin, *, public: bool) -> list[_Variant]:
    """The ways to try, in order: a narrower gap, no session, the forward target below, then shorter words."""
    label = "Webhook URL "
    variants = [_Variant(sep, label, session, True) for sep, session in (("   ", True), ("  ", True), ("  ", False))]
    if origin.forward is not None:
        variants += [
            _Variant(sep, label, session, False) for sep, session in (("   ", True), ("  ", True), ("  ", False))
        ]
    if public:  # the local URL gives way to the public one, then its label, then its scheme
        variants.append(_Variant("  ", label, False, False, local=False))
        variants.append(_Variant("  ", "URL ", False, False, short=True, local=False))
        variants.append(_Variant("  ", "", False, False, short=True, local=False))
        variants.append(_Variant("  ", "", False, False, short=True, local=False, db=False))
        variants.append(_Variant("  ", "", False, False, short=True, local=False, db=False, scheme=False))
    else:
        variants.append(_Variant("  ", "URL ", False, False, short=True))
    return variants


def _lead(origin: _Origin, variant: _Variant, styles: dict[str, Style], *, public: bool) -> Text:
    """The line's start: the state marker, the URL Conscent posts to and the tunnel's words (and the local URL)."""
    lead = Text(no_wrap=True, overflow="ellipsis", end="")
    if not origin.url:
        lead.append("◼ Offline review", style=styles["offline"])
        return lead
    if not variant.marker:
        lead.append("  ")
    elif origin.healthy:
        lead.append("● ", style=styles["live"])
    else:  # the screen says why right below
        lead.append("✗ NOT RECORDING ", style=styles["down"])
    lead.append(variant.label, style=styles["label"])
    shown = origin.public if public and origin.public else origin.url
    if not variant.scheme:
        shown = shown.partition("://")[2] or shown
    lead.append(shown, style=styles["value"])
    if origin.tunnel is not None:
        lead.append("  ")
        lead.append(origin.tunnel.short if variant.short else origin.tunnel.long, style=styles[origin.tunnel.tone])
    if public and variant.local:
        lead.append(f"{variant.sep}local ", style=styles["label"])
        lead.append(origin.url)
    return lead


def fit_origin(origin: _Origin, width: int, styles: dict[str, Style]) -> tuple[Text, Text | None]:
    """The origin line in ``width`` cells, and what goes below it (the forward target, the local URL's line).

    What goes first: the URL Conscent posts to (the public one with a tunnel,
    and how the tunnel is doing) or "Offline review", the forward target, the
    database's file name, then the session. The path is shortened in the
    middle first; then the session goes; then the forward target takes a line
    of its own; last, "Webhook URL" becomes "URL" and the tunnel's words are
    shortened. With a public URL, the local URL follows it on the line; when
    they do not fit together the public URL takes a line of its own (from
    :data:`PUBLIC_LINE_WIDTH` cells) or, narrower, the local URL gives way,
    then the label, then the public URL's ``https://`` (``c`` copies it whole).
    """
    public = origin.public is not None and origin.url is not None
    variants = _variants(origin, public=public)
    if public and width >= PUBLIC_LINE_WIDTH:
        line, below, fits = _first_fit(origin, [v for v in variants if v.local], width, styles, public=True)
        return (line, below) if fits else _public_line(origin, width, styles)
    line, below, _ = _first_fit(origin, variants, width, styles, public=public)
    return line, below


def _first_fit(
    origin: _Origin, variants: list[_Variant], width: int, styles: dict[str, Style], *, public: bool
) -> tuple[Text, Text | None, bool]:
    """The first variant whose line fits (else the last, cut), the forward target's line, and whether it fit."""
    for index, variant in enumerate(variants):
        line, fits = _fit_line(origin, variant, width, styles, public=public)
        if fits or index == len(variants) - 1:
            break
    if origin.forward is None or variant.inline:
        return line, None, fits
    below = origin.forward.copy()
    below.truncate(width, overflow="ellipsis")
    return line, below, fits


#: From this width (cells) a public URL that does not fit beside the local one takes a line of its own.
PUBLIC_LINE_WIDTH = 100


def _fit_line(
    origin: _Origin, variant: _Variant, width: int, styles: dict[str, Style], *, public: bool
) -> tuple[Text, bool]:
    """One variant of the line, cut to ``width``; and whether the database's file name had its room."""
    label = styles["label"]
    name = origin.db_path.rpartition("/")[2]
    lead = _lead(origin, variant, styles, public=public)
    sep = variant.sep
    tail = Text(f"{sep}{origin.session}", style=label) if variant.session else Text()
    if variant.inline and origin.forward is not None:
        tail += Text(sep) + origin.forward
    if not variant.db:
        line = lead + tail
        fits = line.cell_len <= width
    else:
        db_label = Text(f"{sep}db ", style=label)
        room = width - lead.cell_len - db_label.cell_len - tail.cell_len
        line = lead + db_label + Text(shorten_path(origin.db_path, max(room, 1))) + tail
        fits = room >= min(cell_len(name) + 2, 12)
    line.no_wrap, line.overflow, line.end = True, "ellipsis", ""
    if line.cell_len > width:
        line.truncate(width, overflow="ellipsis")
    return line, fits


def _public_line(origin: _Origin, width: int, styles: dict[str, Style]) -> tuple[Text, Text | None]:
    """The public URL and the tunnel's words on the first line; the local URL's origin line below it."""
    variant = _Variant("  ", "Webhook URL ", False, False, local=False)
    first = _lead(origin, variant, styles, public=True)
    if first.cell_len > width and origin.tunnel is not None and origin.tunnel.medium:
        medium = replace(origin, tunnel=replace(origin.tunnel, long=origin.tunnel.medium))
        first = _lead(medium, variant, styles, public=True)
    if first.cell_len > width:
        first = _lead(origin, replace(variant, short=True), styles, public=True)
        first.truncate(width, overflow="ellipsis")
    local = _Origin(origin.url, origin.db_path, origin.session, True, origin.forward)
    variants = [replace(v, label="local ", marker=False) for v in _variants(local, public=False)]
    line, below, _ = _first_fit(local, variants, width, styles, public=False)
    return first, line if below is None else Text("\n").join([line, below])


#: The counters, in the order shown: label, short label, tone.
_COUNTERS = (
    ("views", "views", "view"),
    ("closes", "closes", "close"),
    ("other", "other", "other"),
    ("rejected", "rej.", "rejected"),
    ("readers", "readers", None),
    ("close rate", "rate", None),
)
#: Which counters go first when the line is too short (views and closes stay).
_DROP_ORDER = ("other", "readers", "close rate", "rejected")


def fit_counters(stats: Stats, width: int, styles: dict[str, Style]) -> Text:
    """The counters in ``width`` cells: whole words only, wider gaps and full labels when there is room."""
    rate = "–" if stats.close_rate is None else f"{stats.close_rate:.0%}"
    values = {
        "views": number(stats.views),
        "closes": number(stats.closes),
        "other": number(stats.other),
        "rejected": number(stats.rejected),
        "readers": number(stats.readers),
        "close rate": rate,
    }
    # A quiet rejected count goes before the others; a non-zero one is news and stays longest.
    order = ("rejected", *_DROP_ORDER[:-1]) if not stats.rejected else _DROP_ORDER
    attempts: list[tuple[str, bool, tuple[str, ...]]] = [("   ", False, ()), ("  ", False, ()), ("  ", True, ())]
    attempts += [("  ", True, order[: n + 1]) for n in range(len(order))]
    for sep, short, dropped in attempts:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for name, short_name, tone in _COUNTERS:
            if name in dropped:
                continue
            if text:
                text.append(sep)
            text.append(f"{short_name if short else name} ", style=styles["label"])
            toned = tone if tone != "rejected" or stats.rejected else None
            text.append(values[name], style=styles["value"] + styles[toned] if toned else styles["value"])
        if text.cell_len <= width:
            break
    return text


#: The header's styles, each from its component class ``stats-bar--NAME``.
_STYLE_NAMES = (
    "label",
    "value",
    "live",
    "down",
    "offline",
    "view",
    "close",
    "other",
    "rejected",
    "good",
    "bad",
    "warning",
    "muted",
)


class StatsBar(Horizontal):
    """Attributes down: call :meth:`set_origin` once and :meth:`set_stats` often; it fits its width."""

    COMPONENT_CLASSES = {
        "stats-bar--label",
        "stats-bar--value",
        "stats-bar--live",
        "stats-bar--down",
        "stats-bar--offline",
        "stats-bar--view",
        "stats-bar--close",
        "stats-bar--other",
        "stats-bar--rejected",
        # The tunnel's words (monitor.tunnel_status tones).
        "stats-bar--good",
        "stats-bar--bad",
        "stats-bar--warning",
        "stats-bar--muted",
    }

    _origin: _Origin | None = None
    _origin_text: tuple[Text, Text | None] | None = None
    _stats: Stats | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="stats-text"):
            yield Static(id="origin")  # one line, two with a forward target that needs its own
            yield Static(id="counters")
        with Vertical(id="stats-spark"):
            yield Static("events / min (30 min)", id="spark-label")
            yield Sparkline([0] * 30, id="spark")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        # The lines hold Rich styles resolved from the old theme: resolve them again.
        self._redraw()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#stats-spark").display = event.size.width >= SPARK_MIN_WIDTH
        self._redraw()

    def _redraw(self) -> None:
        self._origin_text = None
        if self._origin is not None:
            self._show_origin(self._origin)
        if self._stats is not None:
            self._show_stats(self._stats)

    def _text_width(self) -> int:
        """The cells the lines of words have: the bar's content (inside its padding), less the sparkline's column.

        Beside the sparkline two cells are kept empty, so that the words never run into its label.
        """
        width = self.size.width
        if self.size.width >= SPARK_MIN_WIDTH:
            width -= SPARK_WIDTH + 2
        return max(width, 10)

    def _styles(self) -> dict[str, Style]:
        return {name: self.get_component_rich_style(f"stats-bar--{name}") for name in _STYLE_NAMES}

    def set_origin(
        self,
        *,
        url: str | None,
        db_path: str,
        session: str,
        healthy: bool = True,
        forward: Text | None = None,
        public: str | None = None,
        tunnel: Status | None = None,
    ) -> None:
        """What the origin line says; ``public`` and ``tunnel``: the public URL and the tunnel's words."""
        self._origin = _Origin(url, db_path, session, healthy, forward, public, tunnel)
        self._show_origin(self._origin)

    def _show_origin(self, origin: _Origin) -> None:
        lines = fit_origin(origin, self._text_width(), self._styles())
        if lines == self._origin_text:  # unchanged on almost every tick: no repaint
            return
        self._origin_text = lines
        line, forward = lines
        self.query_one("#origin", Static).update(line if forward is None else Text("\n").join([line, forward]))

    def set_stats(self, stats: Stats) -> None:
        self._stats = stats
        self._show_stats(stats)
        self.query_one("#spark", Sparkline).data = list(stats.per_minute)

    def _show_stats(self, stats: Stats) -> None:
        text = fit_counters(stats, self._text_width(), self._styles())
        self.query_one("#counters", Static).update(text, layout=False)  # one line, whatever it says
