"""What the front ends say about a tunnel's state: the header's words, the headless lines, the paste line.

One wording for the TUI's header (:mod:`monitor.tui.widgets.stats_bar`) and
the headless start-up and change lines (:mod:`monitor.headless`), from a
:class:`~monitor.tunnel.TunnelState`. Everything returned is inert text:
the public URL and the program's words come from a child process's output.
Core module: no Textual, Rich or click.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from monitor.textsafe import cell

if TYPE_CHECKING:  # the dataclass only: importing the tunnel machinery costs start-up time
    from monitor.tunnel import TunnelState

Tone = Literal["good", "bad", "warning", "muted"]

#: Where the URL goes in Conscent's dashboard.
WEBHOOK_SETTINGS = "Conscent → Settings → Webhooks"


@dataclass(frozen=True, slots=True)
class Status:
    """The tunnel's state in a few words: in full, shortened (80 columns), and its tone."""

    long: str
    short: str
    tone: Tone
    #: Between the two: the long words without the obvious (``✗ DNS not propagated yet, retrying``).
    medium: str = ""


def program(provider: str) -> str:
    """The program a provider runs (``ssh`` for ``ssh:HOST``); ``the public URL`` for ``--public-url``."""
    if provider == "url":
        return "the public URL"
    return provider.partition(":")[0]


def public_url(state: TunnelState | None) -> str | None:
    """The public URL, inert, once known."""
    if state is None or not state.public_url:
        return None
    return cell(state.public_url, 300)


def paste_line(url: str) -> str:
    """The line to paste into Conscent's webhook settings."""
    return f"Paste into {WEBHOOK_SETTINGS}: {url}"


def reach(state: TunnelState) -> Status | None:
    """Whether the self-probe went through the public URL; None before the first answer."""
    if state.reachable is None:
        return None
    if state.reachable:
        ms = f"{state.probe_ms:.0f} ms" if state.probe_ms is not None else ""
        return Status(f"reachable ✓ ({ms})" if ms else "reachable ✓", f"✓ {ms}" if ms else "✓", "good")
    reason = _reason(state) or "no answer"
    retrying = ", retrying" if state.probe_error and ": retrying" in state.probe_error else ""
    why = f"{cell(reason, 120)}{retrying}"
    return Status(f"✗ not reachable: {why}", _short_failure(reason), "bad", f"✗ {why}")


def _short_failure(reason: str) -> str:
    """A failed probe in a dozen cells (probe.py's reasons)."""
    if reason.startswith("DNS"):
        return "✗ no DNS yet"
    if reason.startswith("tunnel down"):
        return "✗ tunnel down"
    if reason.startswith("wrong answer"):
        return "✗ wrong answer"
    if reason.startswith("no answer"):
        return "✗ no answer"
    return "✗ unreachable"


def status(state: TunnelState) -> Status:
    """The header's words on the tunnel: its phase, else the reachability of its URL."""
    name = program(state.provider)
    if state.phase == "missing":
        return Status(f"✗ {name} not installed: local only", f"✗ no {name}", "bad")
    if state.phase == "down":
        why = f": {cell(state.detail, 80)}" if state.detail else ""
        return Status(f"✗ tunnel down{why}", "✗ tunnel down", "bad")
    if state.phase == "restarting":
        shown = f"restarting ({state.restarts + 1})"  # the restart under way
        return Status(shown, shown, "warning")
    if state.public_url is None:
        return Status(f"starting {name}…", "starting…", "muted")
    return reach(state) or Status("checking it is reachable…", "checking…", "muted")


def _reason(state: TunnelState | None) -> str | None:
    """Why the URL is not reachable, without the retry's countdown (it changes with every attempt)."""
    if state is None or state.probe_error is None:
        return None
    return state.probe_error.partition(": retrying")[0]


def change_lines(before: TunnelState | None, after: TunnelState, last_url: str | None = None) -> list[str]:
    """The headless lines for a change of state (nothing when nothing a reader cares about changed).

    A new public URL is printed with the line to paste into Conscent; its
    reachability when it is first known or changes (not each probe's time,
    nor each retry of the same failure); a new phase (restarting, a missing
    program with how to install it, the tunnel stopped). ``last_url``: the
    public URL printed last (a restarted tunnel may come back with the same one).
    """
    lines: list[str] = []
    name = program(after.provider)
    url = public_url(after)
    new_url = url is not None and (before is None or public_url(before) != url)
    if new_url and url == last_url:
        lines.append(f"public URL {url} again (the same: nothing to change in Conscent)")
    elif new_url:
        lines.append(f"public URL {url}" + (f" ({name})" if after.provider != "url" else ""))
        lines.append(paste_line(url or ""))
    # The tunnel's first state (before its program runs) says nothing yet: "starting" waits for the program.
    unstarted = before is None or (before.phase == "starting" and not before.detail)
    if after.phase == "starting" and after.detail and unstarted and after.provider != "url":
        log = f" (its output goes to {after.log_path})" if after.log_path is not None else ""
        lines.append(f"starting {name}{log}")
    elif before is None or before.phase != after.phase:
        detail = cell(after.detail, 500) if after.detail else ""
        if after.phase == "missing":
            lines.append(f"✗ {detail or name + ' is not installed'}")
        elif after.phase == "down" and detail != "stopped":
            lines.append(f"✗ tunnel down: {detail}" if detail else "✗ tunnel down")
        elif after.phase == "down" and after.provider != "url":
            lines.append(f"{name} stopped")
        elif after.phase == "restarting":
            wait = (
                detail.removeprefix("restarting ")
                if detail.startswith("restarting ")
                else f"({detail})"
                if detail
                else ""
            )
            lines.append(f"✗ {name} restarting ({after.restarts + 1}) {wait}".rstrip())
    now = reach(after) if url is not None else None
    if now is not None:
        then = None if new_url or before is None else reach(before)
        if then is None or then.tone != now.tone or (now.tone == "bad" and _reason(before) != _reason(after)):
            lines.append(now.long)
    return lines
