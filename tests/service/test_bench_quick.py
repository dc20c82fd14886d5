"""Each benchmark in its quick mode, tiny sizes: proves the scripts still run.

No timing assertions: only that every stage produced a figure and that no
acknowledged delivery went missing. The ingest benchmark runs with wrk when it
is installed and always with the aiohttp fallback client.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_ingest_fallback_client(tmp_path: Path) -> None:
    from bench import ingest

    runs = ingest.main(
        [
            "--quick",
            "--seconds",
            "1",
            "--client",
            "aiohttp",
            "--setups",
            "bare",
            "floor",
            "headless",
            "tui",
            "tui+fwd",
            "--json",
            str(tmp_path / "ingest.json"),
        ]
    )
    assert {run.setup for run in runs} == set(ingest.SETUPS)
    for run in runs:
        assert run.acked > 0, run
        assert run.missing == 0, run
    assert next(run for run in runs if run.setup == "tui+fwd").forwards is not None


def test_ingest_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import ingest

    runs = ingest.main(["--breakdown", "--quick", "--seconds", "1", "--client", "aiohttp"])
    assert [run.setup for run in runs] == list(ingest.BREAKDOWN)
    assert all(run.acked > 0 and run.missing == 0 for run in runs)
    assert "us per delivery" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_ingest_wrk() -> None:
    from bench import ingest

    runs = ingest.main(["--quick", "--seconds", "1", "--client", "wrk", "--setups", "bare", "headless"])
    assert all(run.acked > 0 and run.missing == 0 for run in runs)


def test_ui_load() -> None:
    from bench import ui_load

    result = ui_load.main(["--rate", "200", "--seconds", "2", "--interval", "0.1"])
    assert result["keys"] > 0
    assert result["acked"] > 0 and result["missing"] == 0


def test_scale(tmp_path: Path) -> None:
    from bench import scale

    args = ["--sizes", "300", "800", "--repeats", "1", "--cache", str(tmp_path), "--only", "user", "text"]
    results = scale.main([*args, "--modes", "gateway"])
    for figures in results.values():
        for key in (
            "first_screen_ms",
            "page_down_ms",
            "jump_end_ms",
            "user_filter_ms",
            "text_filter_ms",
            "text_filter_unindexed_ms",
            "drill_reader_ms",
            "drill_detail_ms",
            "rss_mb",
        ):
            assert figures[key] > 0, key


def test_import_export(tmp_path: Path) -> None:
    from bench import import_export

    results = import_export.main(["--count", "500", "--cache", str(tmp_path)])
    assert results["import new db /s"] > 0
    assert all(results[f"export {fmt} /s"] > 0 for fmt in ("jsonl", "jsonl --meta", "csv", "har", "curl"))
