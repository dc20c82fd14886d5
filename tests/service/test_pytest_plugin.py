"""The pytest plugin (``monitor/pytest_plugin.py``), as another project's test suite uses it: through ``pytester``.

The inner tests run in a subprocess, where the plugin comes from the
``pytest11`` entry point of the installed package (nothing names it with ``-p``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

#: The README's example ("In your tests"), word for word.
README_EXAMPLE = """
def test_the_close_pairs_with_its_view(conscent_monitor):
    for name in ("payment_gateway.view", "payment_gateway.close"):  # your code posts these
        assert conscent_monitor.post(conscent_monitor.sample(name)) == 200
    [close] = conscent_monitor.wait_for("event:close", timeout=10)
    assert close["user_id"] == "65e01bd8d03692125f1f353d"
    [pair] = conscent_monitor.pairs(close["user_id"])
    assert pair.time_to_close == 150
    assert pair.close_action == "PAYMENT_GATEWAY_CROSS_BTN"
"""

FAILING = """
def test_a_close_from_another_reader(conscent_monitor):
    conscent_monitor.post(conscent_monitor.sample("payment_gateway.view"))
    conscent_monitor.post(conscent_monitor.sample("payment_gateway.close"))
    conscent_monitor.wait_for("event:close user:someone-else", timeout=0.5)
"""

OPTIONS = """
import pytest

def test_signatures_are_required(conscent_monitor_factory):
    monitor = conscent_monitor_factory(secret="s3cret", require_signature=True)
    assert monitor.post(monitor.sample("payment_gateway.view")) == 200
    assert monitor.post(monitor.sample("payment_gateway.close"), headers={"X-Conscent-Signature": "forged"}) == 401
    [view] = monitor.wait_for("event:view sig:valid")
    assert view["signature"] == "valid"
    assert [d["event"] for d in monitor.deliveries()] == ["payment_gateway.view"]
    with pytest.raises(AssertionError, match="1 delivery rejected"):
        monitor.wait_for("event:close", timeout=0.2)

def test_two_monitors_have_their_own_port_and_database(conscent_monitor, conscent_monitor_factory):
    other = conscent_monitor_factory()
    assert other.url != conscent_monitor.url and other.db_path != conscent_monitor.db_path
    other.post({"event": "paywall.click", "user_id": "u1"})
    assert [d["event"] for d in other.wait_for()] == ["paywall.click"]
    assert conscent_monitor.deliveries() == []

def test_a_bad_filter_is_a_value_error(conscent_monitor):
    with pytest.raises(ValueError, match="unknown field 'evnt'"):
        conscent_monitor.wait_for("evnt:close")

async def test_an_async_test_can_wait(conscent_monitor):
    conscent_monitor.post(conscent_monitor.sample("payment_gateway.view"))
    [view] = await conscent_monitor.wait_for_async("event:view")
    assert view["body"]["payload"]["user"]["phoneNumber"] == "9892898898"
"""


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(README_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_timeout_fails_naming_what_arrived_instead(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * AssertionError: timed out after 0.5 s: 0 of 1 delivery matching 'event:close user:someone-else' *",
            "E * seen in that window: 2 deliveries accepted, 0 rejected",
            "E * 1 delivery matches all but 'user:someone-else':",
            "E * 200  #2 * payment_gateway.close *",
        ]
    )
    assert "pytest_plugin.py" not in result.stdout.str()  # the failure points at the test, not the plugin


def test_the_factory_takes_the_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(OPTIONS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=4)


def test_the_entry_point_registers_the_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*conscent_monitor_factory*", "*conscent_monitor -- *"])


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """pytest loads it in every project that installs the package: only pytest and the standard library."""
    probe = (
        "import sys; before = set(sys.modules); import monitor.pytest_plugin; "
        "print(sorted(m.split('.')[0] for m in set(sys.modules) - before if not m.startswith(('_', 'monitor'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", "import pytest;" + probe], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    heavy = {"aiohttp", "sqlite_utils", "sqlite3", "orjson", "textual", "rich", "click"}
    assert not heavy & set(eval(loaded.stdout)), loaded.stdout
    modules = subprocess.run(
        [sys.executable, "-c", "import pytest, sys, monitor.pytest_plugin; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
    )
    assert "monitor.service" not in modules.stdout and "monitor.waiting" not in modules.stdout
