"""Start-up loads only what the command run needs: heavy modules wait for the commands that use them.

Each probe runs in a fresh interpreter (``sys.modules`` of this one is full of
everything the suite imported) and lists which of the heavy modules got
imported. No timing here: bench/startup.py measures the start-up itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from monitor.cli import cli

#: Modules that cost start-up time and that `open` and `--help` never use.
HEAVY = (
    "aiohttp",  # its client (aiohttp.client, ~0.2 s) comes with any aiohttp import
    "monitor.service",
    "monitor.listener",
    "monitor.forwarder",
    "monitor.sender",
    "monitor.probe",
    "monitor.tunnel",
    "monitor.webui",
    "monitor.serving",
    "rich.progress",
)


def _loaded(code: str) -> list[str]:
    """Which of :data:`HEAVY` (and Textual) are in ``sys.modules`` after ``code`` ran in a new interpreter."""
    probe = f"""
import json, sys
{code}
print(json.dumps(sorted(name for name in sys.modules if name in {HEAVY!r} or name == "textual")))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_the_command_line_loads_no_command_module_before_it_is_run() -> None:
    assert _loaded("import monitor.__main__, monitor.cli.main") == []


def test_open_reaches_its_screens_without_the_listener_or_the_sender() -> None:
    code = """
from monitor.cli.main import cli
import click
assert cli.get_command(click.Context(cli), "open").name == "open"
import monitor.tui.launch, monitor.tui.app
"""
    assert _loaded(code) == ["textual"]


def test_watch_loads_the_listener_only_when_looked_up() -> None:
    code = """
from monitor.cli.main import cli
import click
assert cli.get_command(click.Context(cli), "watch").name == "watch"
"""
    loaded = _loaded(code)
    assert "monitor.service" in loaded
    assert "textual" not in loaded  # the TUI is imported inside the command


def test_every_command_is_listed_before_it_is_loaded_and_found_by_its_name() -> None:
    names = ["check", "export", "generate", "help", "import", "open", "send", "serve", "wait", "watch", "web-tab"]
    assert sorted(cli.commands) == names
    assert len(cli.commands) == len(names)
    for name in names:
        command = cli.get_command(click.Context(cli), name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert cli.get_command(click.Context(cli), "nope") is None


def test_serve_runs_the_guarded_watch() -> None:
    """``serve`` invokes ``watch``'s callback: it is wrapped (one line for a database error) like every command."""
    watch = cli.commands["watch"]
    serve = cli.commands["serve"]
    assert watch.callback is not None and serve.callback is not None
    assert watch.callback.__wrapped__ is not None  # type: ignore[attr-defined]
    assert {param.name for param in serve.params} == {param.name for param in watch.params} - {"headless", "web"}


@pytest.mark.parametrize("module", ["monitor.cli.common", "monitor.cli.web", "monitor.cli.review"])
def test_the_modules_open_imports_stay_light(module: str) -> None:
    assert _loaded(f"import {module}") == []
