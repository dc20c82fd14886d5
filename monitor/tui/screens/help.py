"""Key bindings and the filter language, in two columns that wrap with a hanging indent.

The text is kept as the two-column plain text a README can quote
(``KEYS``, :func:`monitor.filters.help_text`); :func:`columns` lays it out
as Rich grids, so a description too long for the terminal continues under
the description, not at column 0.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from monitor.filters import help_text

KEYS = """\
Every table (main, drill-down, readers, sessions, checks)
  ↑ ↓ j k           move a row
  PgUp PgDn         move a page
  Home g            the first row (the main table: the newest, and new rows keep coming in view)
  End G             the last row (the readers list: End on the last row reads 500 more)
  Enter             open the row: the reader's drill-down, a step's details, a session
  d                 details of the row's delivery: fields, headers, forwards, body

Main screen
  ← →               one column sideways (the column titles move with the rows)
  w                 whole values: widen every column to its longest value (again: fit the screen)
  /                 filter; Enter applies, Esc clears (an error stays until the text changes)
  a                 toggle gateway views & closes / all events and rejections
  u                 every reader, live and filterable, leading to the drill-down
  s                 sessions: review one recorded run, or all of them
  !                 checks: what is wrong with this integration (signatures, pairing, fields, delivery, forwarding)
  i                 insights: the table's view as charts (funnel, close actions, time to close, deliveries, lag)
  x                 export what the table shows (JSONL, CSV, HAR, curl)
  r                 replay the delivery to --forward-to (or a URL you type); live monitor, accepted rows
  y                 on an empty live table: copy the curl command that sends a first delivery
  c                 copy the webhook URL to give Conscent: the public one (--tunnel, --public-url), else the local one
  m                 mask phones, names, usernames and places (screen sharing)
  ctrl+p            command palette (themes, actions)
  ?                 this help
  q                 quit (closes the session row)

Drill-down
  t                 order and time the journey by Conscent's created_at, or by received time (the default)

Readers
  /                 filter the readers (the filter language below); Enter applies, Esc clears

Checks
  Enter             the finding's rows on the main table (sets its filter and mode), where a filter can select them
  t                 change the thresholds (open view after, late after, future after); Enter applies, Esc cancels
  a                 check every session / only the one reviewed

Details
  r                 replay this delivery
  e                 edit the body, then replay it (ctrl+s sends; re-signed with --secret)
  y                 copy a curl command that reproduces the delivery byte for byte
  c                 copy the raw body

Drill-down, details, readers, sessions, checks, insights
  Esc               back
"""


#: A two-column line: indented, a key (or term), two spaces or more, what it does.
_ROW = re.compile(r"^ {2}(\S.*?) {2,}(\S.*)$")
#: A field line of the filter help: ``  name:  text`` (one space may follow a short name's colon).
_FIELD = re.compile(r"^ {2}([a-z_]+:) +(\S.*)$")


def columns(text: str) -> RenderableType:
    """Two-column plain text as grids: the keys in one column, the descriptions wrapping in the other.

    Lines that are not two-column (titles, sentences) stay whole lines and wrap as paragraphs.
    """
    parts: list[RenderableType] = []
    rows: list[tuple[str, str]] = []
    matches = [_ROW.match(line) or _FIELD.match(line) for line in text.splitlines()]
    key_width = max((cell_len(match.group(1)) for match in matches if match), default=0)

    def flush() -> None:
        if rows:
            grid = Table.grid(padding=(0, 2), pad_edge=False)
            grid.add_column(no_wrap=True, min_width=key_width)  # one key column for the whole text
            grid.add_column(ratio=1, overflow="fold")
            for key, description in rows:
                grid.add_row(Text(key), Text(description))
            parts.append(Padding(grid, (0, 0, 0, 2)))
            rows.clear()

    for line in text.splitlines():
        match = _ROW.match(line) or _FIELD.match(line)
        if match:
            rows.append((match.group(1), match.group(2)))
            continue
        flush()
        heading = bool(line) and not line.startswith(" ") and not line.endswith(".")
        parts.append(Text(line.strip(), style="bold" if heading else ""))
    flush()
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("conscent-monitor — help", style="bold"), classes="title")
            yield Static(columns(KEYS), id="help-keys")
            yield Static(Text("Filter language", style="bold"), classes="title")
            yield Static(columns(help_text()), id="help-filters")
