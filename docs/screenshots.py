"""Retake the README's screenshots from the real program in a real terminal.

Runs ``conscent-monitor --demo`` in a detached tmux at 160x48 and at 80x24,
waits for the demo's deliveries, opens a reader's drill-down, and saves
Textual's own SVG screenshot (the command palette's "Screenshot") of each
screen, then converts them to PNG with ``rsvg-convert`` (Debian's
librsvg2-bin). Nothing is staged: the user's keys go through tmux.

    .venv/bin/python docs/screenshots.py            # writes docs/*.png

Needs tmux and rsvg-convert.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PROGRAM = Path(sys.executable).with_name("conscent-monitor")
#: The demo's deliveries arrive over the first half minute: wait for a full screen.
SETTLE = 25.0


class Terminal:
    def __init__(self, home: Path, size: tuple[int, int]) -> None:
        self.socket = f"screenshots-{os.getpid()}-{size[0]}"
        self.home = home
        self.size = size

    def tmux(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["HOME"] = str(self.home)  # Textual saves screenshots to ~/Downloads
        result = subprocess.run(
            ["tmux", "-u", "-f", "/dev/null", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return result.stdout

    def start(self, command: list[str]) -> None:
        width, height = self.size
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "shot", shlex.join(command))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "shot", *keys)
        time.sleep(0.8)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "shot")

    def screenshot(self, name: str) -> Path:
        downloads = self.home / "Downloads"
        before = set(downloads.glob("*.svg")) if downloads.exists() else set()
        self.keys("C-p")
        self.keys("-l", "Screenshot")
        self.keys("Enter")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = set(downloads.glob("*.svg")) - before if downloads.exists() else set()
            if new:
                svg = new.pop()
                time.sleep(0.5)  # written in one go, but let it land
                png = DOCS / f"{name}.png"
                subprocess.run(["rsvg-convert", "-o", str(png), str(svg)], check=True)
                print(f"{png.relative_to(DOCS.parent)}")
                return png
            time.sleep(0.2)
        raise SystemExit(f"no screenshot for {name}; the screen shows:\n{self.screen()}")

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False, capture_output=True)


def take(size: tuple[int, int], suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "Downloads").mkdir()  # Textual saves there, and only into a folder that exists
        term = Terminal(home, size)
        try:
            term.start([str(PROGRAM), "--demo", "--port", "0", "--db", str(home / "demo.db")])
            time.sleep(SETTLE)
            term.screenshot(f"main{suffix}")
            # A gateway row a little down the table, then its reader.
            term.keys("Down")
            term.keys("Down")
            term.keys("Enter")
            time.sleep(1.5)
            term.screenshot(f"drilldown{suffix}")
            term.keys("Escape")
            term.keys("q")
        finally:
            term.stop()


def main() -> None:
    for tool in ("tmux", "rsvg-convert"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install -y tmux librsvg2-bin)")
    if not PROGRAM.exists():
        raise SystemExit(f"{PROGRAM} is missing: install the package into this virtualenv first")
    take((160, 48), "")
    take((80, 24), "-80x24")


if __name__ == "__main__":
    main()
