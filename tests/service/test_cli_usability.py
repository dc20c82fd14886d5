"""Issue 12, items 15-17 and 6: the command line as a new user meets it.

Every option has a help text and every command a short help that fits at 80
columns; the filter language is in ``--help``; URLs are checked before
anything is done; ``generate`` makes one session of the count asked, new data
each run unless ``--seed`` and ``--end`` repeat a run; summaries word their
numbers with :mod:`monitor.wording`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from monitor import store
from monitor.cli import cli
from monitor.filters import FIELDS
from tests.helpers import SAMPLE_EVENTS, one_error, read_rows, run_cli

GENERATED_RE = re.compile(
    r"^generated (?P<count>[\d,]+) deliver(y|ies) \((?P<readers>[\d,]+) readers?\) into (?P<db>\S+), "
    r"session (?P<session>\d+), in [\d.,]+ s \([\d,]+/s\); search index built in [\d.,]+ s$"
)
AGAIN_RE = re.compile(r"^seed (?P<seed>\d+); the same data again with --seed (?P=seed) --end (?P<end>\d+)$")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), terminal_width=80)


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def one_usage_error(result: Result, option: str) -> str:
    """Exit 2, click's usage style: one ``Error:`` line naming ``option``."""
    line = one_error(result, 2)
    assert line.startswith(f"Error: Invalid value for '{option}': "), line
    return line


def commands() -> list[tuple[str, click.Command]]:
    """The commands a user sees (``web-tab``, which the web UI runs for each browser tab, is hidden)."""
    assert isinstance(cli, click.Group)
    return sorted((name, command) for name, command in cli.commands.items() if not command.hidden)


# --- help texts (item 17) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "command"), commands(), ids=[name for name, _ in commands()])
def test_every_option_and_argument_is_described(name: str, command: click.Command) -> None:
    helped = ok(name, "--help").output
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help text"
        else:  # click arguments take no help: the command's text must name them
            shown = param.make_metavar(click.Context(command)).strip("[].").split("|")[0]
            assert shown in (command.help or ""), f"{name}: argument {shown} is not described"
    assert command.help and " ".join(command.help.splitlines()[0].split()) in " ".join(helped.split())


def test_every_short_help_fits_on_one_line_at_80_columns() -> None:
    listing = ok("--help").output
    rows = listing.split("Commands:\n", 1)[1].splitlines()
    names = [name for name, _ in commands()]
    assert [row.split()[0] for row in rows if row.strip()] == names, listing  # one line each, none wrapped
    for row in rows:
        assert not row.rstrip().endswith("..."), row
        assert len(row) <= 80, row
    for name, command in commands():
        assert command.short_help, f"{name} has no short help"
        assert command.get_short_help_str(limit=200) == command.short_help


def test_export_help_holds_the_filter_language_unwrapped() -> None:
    text = ok("export", "--help").output
    assert "see the help screen" not in text
    assert "--format [jsonl|csv|har|curl]  jsonl:" in text  # described
    for field in FIELDS:
        if field != "lag":
            assert re.search(rf"^ +{field}: +\S", text, re.MULTILINE), field
    assert "lag>5s lag<=500ms" in text
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_help_filters_and_help_command() -> None:
    filters = ok("help", "filters").output
    assert filters.startswith("Filter: words separated by spaces")
    assert "since:" in filters and "\b" not in filters
    assert ok("help", "send").output == ok("send", "--help").output
    assert "Commands:" in ok("help").output
    assert "no command or topic 'nope'" in run("help", "nope").output


def test_open_says_which_database_it_opens_by_default() -> None:
    assert f"default ./{store.DEFAULT_DB}" in " ".join(ok("open", "--help").output.split())
    assert f"(default ./{store.DEFAULT_DB})" in ok("--help").output


# --- URLs (item 15) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (("export", "--format", "curl", "--base-url", "not a url"), "--base-url", "contains spaces"),
        (("export", "--format", "curl", "--base-url", "127.0.0.1:8787"), "--base-url", "http://127.0.0.1:8787"),
        (("watch", "--headless", "--forward-to", "localhost:3000/hook"), "--forward-to", "http://localhost:3000/hook"),
        (("send", "--to", "127.0.0.1:8799"), "--to", "it needs http:// or https:// in front"),
    ],
    ids=["base-url-words", "base-url-no-scheme", "forward-to-no-scheme", "send-no-scheme"],
)
def test_urls_are_checked_before_anything_runs(tmp_path: Path, args: tuple[str, ...], option: str, words: str) -> None:
    db = tmp_path / "never.db"
    result = run(*args, "--db", str(db)) if args[0] != "send" else run(*args)
    assert words in one_usage_error(result, option)
    assert not db.exists()


def test_a_good_base_url_is_used(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    ok("import", str(SAMPLE_EVENTS / "payment_gateway.view.json"), "--db", str(db))
    result = ok("export", "--db", str(db), "--format", "curl", "--base-url", "https://example.test:9000/")
    assert "https://example.test:9000/" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "exported 1 delivery"  # item 6: the singular


# --- generate (item 16) ------------------------------------------------------------------------------


def generated(result: Result) -> tuple[re.Match[str], re.Match[str]]:
    made, again = result.stdout.strip().splitlines()
    made_match, again_match = GENERATED_RE.match(made), AGAIN_RE.match(again)
    assert made_match and again_match, result.stdout
    return made_match, again_match


def test_generate_makes_one_session_of_the_count_asked(tmp_path: Path) -> None:
    db = tmp_path / "gen.db"
    made, _ = generated(ok("generate", "--count", "1234", "--readers", "50", "--db", str(db)))
    assert made["count"] == "1,234" and made["session"] == "1" and 1 <= int(made["readers"]) <= 50
    assert read_rows(db, "SELECT session_id, count(*) AS n FROM events GROUP BY 1") == [{"session_id": 1, "n": 1234}]
    [session] = read_rows(db, "SELECT mode, source, ended_at FROM sessions")
    assert session["mode"] == "synth" and session["ended_at"] is not None and "part" not in session["source"]


def test_generate_makes_new_data_each_run_and_the_same_with_seed_and_end(tmp_path: Path) -> None:
    first, second, repeat = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    _, again_a = generated(ok("generate", "--count", "300", "--readers", "40", "--db", str(first)))
    _, again_b = generated(ok("generate", "--count", "300", "--readers", "40", "--db", str(second)))
    assert again_a["seed"] != again_b["seed"]  # a fresh seed each run (1 in 1,000,000 to collide)
    _, again_c = generated(
        ok("generate", "--count", "300", "--readers", "40", "--db", str(repeat),
           "--seed", again_a["seed"], "--end", again_a["end"])
    )  # fmt: skip
    assert (again_c["seed"], again_c["end"]) == (again_a["seed"], again_a["end"])

    def bodies(db: Path) -> list[bytes]:
        return [row["body"] for row in read_rows(db, "SELECT body FROM events ORDER BY id")]

    assert bodies(repeat) == bodies(first)  # the same rows, byte for byte
    assert len(set(bodies(first)) & set(bodies(second))) < 10  # not mostly duplicates


def test_generate_jsonl_words_its_summary(tmp_path: Path) -> None:
    out = tmp_path / "g.jsonl"
    wrote, again = ok("generate", "--count", "1", "--jsonl", str(out), "--seed", "3").stdout.splitlines()
    assert re.match(rf"^wrote 1 delivery to {re.escape(str(out))} in [\d.,]+ s$", wrote), wrote
    assert again.startswith("seed 3; the same data again with --seed 3 --end ")
    assert len(out.read_bytes().splitlines()) == 1


def test_import_summary_words_numbers_and_plurals(tmp_path: Path) -> None:
    result = ok("import", str(SAMPLE_EVENTS / "payment_gateway.view.json"), "--db", str(tmp_path / "i.db"))
    line = result.stdout.strip()
    assert line.startswith("imported 1 delivery into session 1 from 1 file (1 record read, 0 skipped, 0 duplicates)")
    assert "(s)" not in line and line.endswith(tuple(f"{d} s" for d in "0123456789"))


def test_export_warnings_word_one_body_and_many(tmp_path: Path) -> None:
    """The samples are indented JSON: plain JSONL writes them compacted, and says so in the right number."""
    one, many = tmp_path / "one.db", tmp_path / "many.db"
    ok("import", str(SAMPLE_EVENTS / "payment_gateway.view.json"), "--db", str(one))
    warning, done = ok("export", "--db", str(one), "-o", str(tmp_path / "one.jsonl")).stderr.splitlines()
    assert warning == (
        "warning: 1 body contained newlines and was written compacted, not byte for byte (id 1); "
        "use --meta for exact bodies"
    )
    assert done == "exported 1 delivery"
    ok("import", str(SAMPLE_EVENTS / "payment_gateway.view.json"), str(SAMPLE_EVENTS / "paywall.click.json"),
       "--db", str(many))  # fmt: skip
    warning = ok("export", "--db", str(many), "-o", str(tmp_path / "many.jsonl")).stderr.splitlines()[0]
    assert warning.startswith(
        "warning: 2 bodies contained newlines and were written compacted, not byte for byte (ids "
    )


def test_a_port_in_use_is_one_plain_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("watch", "--headless", "--port", str(port), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port}: the port is in use (another monitor?); --port 0 takes a free one"
    )


SCRIPT = Path(sys.executable).parent / "conscent-monitor"


@pytest.mark.skipif(not SCRIPT.exists(), reason="the conscent-monitor script is not installed beside this python")
@pytest.mark.parametrize("on_path", [False, True], ids=["venv-not-activated", "venv-activated"])
def test_the_demo_exit_hint_is_a_command_that_runs(tmp_path: Path, on_path: bool) -> None:
    """After the quick start (``.venv/bin/conscent-monitor --demo``), the hint repeats the path that worked."""
    path = os.pathsep.join([str(SCRIPT.parent)] * on_path + ["/usr/bin", "/bin"])
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("CONSCENT_WEBHOOK_SECRET", None)
    proc = subprocess.Popen(
        [str(SCRIPT), "watch", "--headless", "--demo"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    program = "conscent-monitor" if on_path else str(SCRIPT)
    assert re.search(rf"^Open them again with: {re.escape(program)} open \S+demo\.db$", out, re.MULTILINE), out[-500:]
