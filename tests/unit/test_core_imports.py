"""The core (parsing, store, listener, headless CLI) must not import Textual."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = [
    "events",
    "store",
    "writer",
    "listener",
    "service",
    "signing",
    "textsafe",
    "sender",
    "demo",
    "filters",
    "queries",
    "journey",
    "cli",
]

PROBE = """
import importlib, importlib.util, json, sys
found, missing = [], []
for name in %r:
    module = "monitor." + name
    if importlib.util.find_spec(module) is None:
        missing.append(name)
        continue
    importlib.import_module(module)
    found.append(name)
print(json.dumps({"found": found, "missing": missing, "textual": sorted(m for m in sys.modules if m == "textual"
                  or m.startswith("textual."))}))
"""


def test_core_does_not_import_textual() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE % CORE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"events", "store", "writer", "listener", "service", "signing", "textsafe", "cli"} <= set(report["found"])
    assert report["textual"] == [], f"Textual imported by the core: {report['textual'][:5]}"


def test_headless_entry_point_does_not_import_textual() -> None:
    probe = (
        "import sys; from monitor import cli, __main__; "
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
