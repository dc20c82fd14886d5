"""At run time, the command line starts without Textual: `--help`, `send` and `--headless` stay fast.

Which module may import Textual is import-linter's job (``pyproject.toml``,
``tests/unit/test_architecture.py``); this checks what actually gets imported
when the entry point and every core module are loaded, lazy imports included.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import monitor, monitor.__main__, monitor.cli
for info in pkgutil.iter_modules(monitor.__path__):
    if info.name not in ("tui", "cli", "__main__"):
        importlib.import_module("monitor." + info.name)
print(sorted(m for m in sys.modules if m.split(".")[0] == "textual")[:5])
"""


def test_the_entry_point_and_the_core_load_without_textual() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"Textual imported at start-up: {result.stdout}"
