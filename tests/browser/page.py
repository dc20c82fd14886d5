"""The web UI in a real browser: Debian's Chromium driven by Playwright, the screen read from xterm.js.

textual-serve draws with xterm.js on a canvas (WebGL), so the DOM holds no
text. An init script catches the page's ``Terminal`` object as the bundle
stores it (``this.terminal = new Terminal(...)``) and keeps it in
``window.__term``; the screen is read from its buffer, line by line. Keys
reach the app only once the terminal has focus (its helper textarea).

:class:`Served` is a ``serve`` (or ``open --web``) process: its two URLs read
from stdout, stopped with SIGTERM, its tab processes checked gone afterwards.
No browser is downloaded: Playwright launches the system's ``chromium``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.helpers import Monitor

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

#: Headless Chromium as root on a closed network: no sandbox (root), no GPU, nothing fetched from
#: outside (the page links Google's web fonts; every name but loopback fails at once instead of stalling).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]

#: Runs before the page's own scripts: the first object that sets a ``terminal`` property holding
#: something with a ``buffer`` (textual.js's session object) hands it over, and the property becomes
#: an ordinary one again on that object.
TERMINAL_HOOK = """
(() => {
  Object.defineProperty(Object.prototype, "terminal", {
    configurable: true,
    get() { return undefined; },
    set(value) {
      Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
      if (value && typeof value === "object" && "buffer" in value) window.__term = value;
    },
  });
})();
"""

_SCREEN_JS = """() => {
  const term = window.__term;
  if (!term) return null;
  const buffer = term.buffer.active;
  const lines = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
}"""

WEB_URL_RE = re.compile(r"web UI on (http://\S+)")
#: Where the screenshot goes when set (docs/web_screenshot.py sets it to docs/); else the test's tmp_path.
SCREENSHOT_DIR = "CONSCENT_MONITOR_SCREENSHOT_DIR"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if shutil.which("chromium") is None:
        return "Chromium not found: apt-get install -y chromium"
    for module, extra in (("playwright", "test"), ("textual_serve", "web")):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed: pip install -e '.[{extra}]'"
    return None


def launch(playwright: Playwright) -> Browser:
    """Headless Debian Chromium (never a downloaded one)."""
    return playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)


def open_page(browser: Browser, url: str, *, size: tuple[int, int] = (1280, 800), **context: Any) -> Page:
    """A page at ``url`` in a context of its own (``context``: ``http_credentials``...), its terminal caught."""
    width, height = size
    page = browser.new_context(viewport={"width": width, "height": height}, **context).new_page()
    page.add_init_script(TERMINAL_HOOK)
    page.goto(url)
    return page


def screen_text(page: Page) -> str:
    """The terminal's visible lines, right-trimmed ("" before the terminal exists)."""
    text: str | None = page.evaluate(_SCREEN_JS)
    return text or ""


def wait_for_screen(page: Page, predicate: Callable[[str], object], what: str, timeout: float = 20.0) -> str:
    """Poll the terminal until ``predicate(screen)`` holds; fail showing the screen after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        screen = screen_text(page)
        if predicate(screen):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; the page shows:\n{screen}")
        page.wait_for_timeout(50)


def wait_for_text(page: Page, text: str, timeout: float = 20.0) -> str:
    return wait_for_screen(page, lambda screen: text in screen, repr(text), timeout)


def wait_gone(page: Page, text: str, timeout: float = 20.0) -> str:
    return wait_for_screen(page, lambda screen: text not in screen, f"{text!r} to go", timeout)


def focus(page: Page) -> None:
    """Give the terminal the keyboard (what a click on it does)."""
    page.focus(".xterm-helper-textarea")


def press(page: Page, key: str) -> None:
    """One key, as Playwright names it (``Enter``, ``Escape``, ``/``, ``e``)."""
    focus(page)
    page.keyboard.press(key)


def type_text(page: Page, text: str) -> None:
    focus(page)
    page.keyboard.type(text)


def cells(page: Page) -> tuple[int, int]:
    """The terminal's size in cells (columns, rows)."""
    cols, rows = page.evaluate("() => [window.__term.cols, window.__term.rows]")
    return int(cols), int(rows)


def resize_cells(page: Page, cols: int, rows: int) -> None:
    """Make the terminal ``cols`` x ``rows`` cells (the app is told, as on a window resize)."""
    page.evaluate("([cols, rows]) => window.__term.resize(cols, rows)", [cols, rows])


def screenshot(page: Page, name: str, fallback: Path) -> Path:
    """Save the page as ``name`` in $CONSCENT_MONITOR_SCREENSHOT_DIR, else in ``fallback``."""
    folder = Path(os.environ.get(SCREENSHOT_DIR) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    return path


# -- the serve process --------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, start time), from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def descendants(pid: int) -> set[tuple[int, str]]:
    """The live processes under ``pid`` (tab processes and their shells), as (pid, start time)."""
    table = _proc_table()
    found: set[tuple[int, str]] = set()
    parents = {pid}
    while parents:
        children = {p for p, (ppid, _) in table.items() if ppid in parents}
        found |= {(p, table[p][1]) for p in children}
        parents = children
    return found


def still_running(processes: set[tuple[int, str]]) -> list[int]:
    """Which of ``processes`` (from :func:`descendants`) are still alive (the same start time: not a reused pid)."""
    table = _proc_table()
    return sorted(pid for pid, started in processes if pid in table and table[pid][1] == started)


class Served(Monitor):
    """``conscent-monitor serve ...`` (or ``open DB --web``): its listener and web URLs from stdout."""

    def __init__(self, *args: str, cwd: Path, listener: bool = True) -> None:
        super().__init__(*args, cwd=cwd)
        self.listener_url = self.url() if listener else ""
        self.web_url = self._web_url()
        self.tabs_seen: set[tuple[int, str]] = set()

    def _web_url(self) -> str:
        lines = []
        for _ in range(20):
            line = self.line(timeout=30)
            lines.append(line)
            if match := WEB_URL_RE.search(line):
                return match.group(1)
        raise AssertionError("no 'web UI on URL' line: " + "\n".join(lines))

    def note_tabs(self) -> set[tuple[int, str]]:
        """The processes under serve now (call while pages are open, so their tabs are counted)."""
        self.tabs_seen |= descendants(self.proc.pid)
        return self.tabs_seen

    def stop(self) -> None:
        """Kill serve and every tab process it started (a failed test's clean-up)."""
        if self.proc.poll() is None:
            self.note_tabs()
        super().stop()
        for pid in still_running(self.tabs_seen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, as a service manager stops it; the exit status. Tab processes must be gone too."""
        self.note_tabs()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except Exception:
            self.stop()
            raise AssertionError(f"serve did not stop within {timeout:g} s of SIGTERM") from None
        deadline = time.monotonic() + 5
        while (left := still_running(self.tabs_seen)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"tab processes left running after serve stopped: {left}"
        return code
