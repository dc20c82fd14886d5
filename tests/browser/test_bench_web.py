"""bench/web.py at tiny sizes: proves the script still runs (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_bench_web_runs(tmp_path: Path) -> None:
    from bench import web

    args = ["--rows", "300", "--runs", "1", "--rounds", "1", "--seconds", "1", "--cache", str(tmp_path)]
    results = web.main(args)
    assert len(results["load"][300]) == 1
    assert all(seconds > 0 for seconds in results["load"][300])
    assert [run.setup for run in results["ingest"]] == list(web.SETUPS)
    for run in results["ingest"]:
        assert run.acked > 0 and run.missing == 0, run
