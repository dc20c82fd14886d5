"""Key bindings and the filter language."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from monitor.filters import help_text

KEYS = """\
Main screen
  ↑ ↓ PgUp PgDn     move; Home = newest (follow mode), End = oldest
  Enter             the reader's drill-down (a rejected row: its details)
  d                 details of the selected delivery: fields, headers, forwards, body
  /                 filter; Enter applies, Esc clears
  a                 toggle gateway views & closes / all events and rejections
  u                 every reader, leading to the drill-down
  s                 sessions: review one recorded run, or all of them
  x                 export what the table shows (JSONL, CSV, HAR, curl)
  r                 replay the delivery to --forward-to (or a URL you type)
  m                 mask phones, names, usernames and places (screen sharing)
  ctrl+p            command palette (themes, actions)
  ?                 this help
  q                 quit (closes the session row)

Details
  r                 replay this delivery
  e                 edit the body, then replay it (ctrl+s sends; re-signed with --secret)
  y                 copy a curl command that reproduces the delivery byte for byte
  c                 copy the raw body

Drill-down, details, readers, sessions
  Esc               back
  Enter             open the selected row
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("conscent-monitor — help", style="bold"), classes="title")
            yield Static(Text(KEYS))
            yield Static(Text("Filter language", style="bold"), classes="title")
            yield Static(Text(help_text()))
