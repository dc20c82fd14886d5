"""Retake the README's web UI screenshot (docs/web.png) from the real program in a real browser.

Runs ``conscent-monitor serve --demo`` on free ports, waits for the demo's
deliveries, opens the web UI in headless Chromium at 1280x800 (Debian's
``chromium``, driven by Playwright as tests/browser do), waits until the page
draws the rows, and saves the page as docs/web.png.

    .venv/bin/python docs/web_screenshot.py         # writes docs/web.png

Needs Debian's chromium and the ``[test]`` extra (playwright, textual-serve).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # tests.browser.page: the harness the browser tests use

from tests.browser.page import Served, launch, missing, open_page, wait_for_screen  # noqa: E402

#: The demo's deliveries arrive over the first half minute: wait for a full table.
SETTLE = 20.0
SIZE = (1280, 800)


def main() -> None:
    if reason := missing():
        sys.exit(reason)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="web-screenshot-") as tmp:
        served = Served("serve", "--demo", "--port", "0", "--web-port", "0", "--db", f"{tmp}/demo.db", cwd=Path(tmp))
        try:
            time.sleep(SETTLE)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = open_page(browser, served.web_url, size=SIZE)
                wait_for_screen(page, lambda s: s.count("▶ view") >= 5, "the demo's rows", timeout=30)
                page.wait_for_timeout(1500)  # the sparkline and counters settle
                page.screenshot(path=str(DOCS / "web.png"))
                page.context.close()
                browser.close()
            code = served.terminate()
        finally:
            served.stop()
    print(f"wrote {DOCS / 'web.png'} (serve exited {code})")


if __name__ == "__main__":
    main()
