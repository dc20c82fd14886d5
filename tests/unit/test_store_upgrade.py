"""Opening a large database of an older schema says once that it is being upgraded (new indexes take seconds)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import store
from monitor.cli import cli


def older(path: Path) -> Path:
    """A monitor database as schema 1 left it: no index of the checks or the Insights screen."""
    db = store.open_store(path)
    db.close()
    with sqlite3.connect(path) as conn:
        for name in store.SPECIAL_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO events (id) VALUES (250000)")
    conn.close()
    return path


def test_a_large_older_database_is_announced_before_its_upgrade(tmp_path: Path) -> None:
    path = older(tmp_path / "old.db")
    notice = store.upgrade_notice(path)
    assert notice is not None
    assert "indexes for the filters, the checks and Insights" in notice and "250,000 events" in notice
    assert f"about {round(0.25 * (8 + store.FACETS_SECONDS))} s" in notice
    result = CliRunner().invoke(cli, ["check", "--db", str(path), "--format", "json"])
    assert f"conscent-monitor: {notice}" in result.stderr
    with sqlite3.connect(path) as conn:  # upgraded: said once
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    conn.close()
    assert store.upgrade_notice(path) is None


@pytest.mark.parametrize("case", ["current", "small", "missing"])
def test_nothing_is_said_when_opening_is_quick(tmp_path: Path, case: str) -> None:
    path = tmp_path / "db.db"
    if case == "current":
        store.open_store(path).close()
    elif case == "small":
        older(path)
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM events")
        conn.close()
    assert store.upgrade_notice(path) is None


def test_opening_a_file_missing_an_index_builds_it(tmp_path: Path) -> None:
    """An import killed while it rebuilt the indexes leaves them missing: the next `open` builds them."""
    path = tmp_path / "m.db"
    store.open_store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP INDEX {store.LAG_INDEX}")
        conn.execute("DROP INDEX idx_events_user_id_received_at")
    conn.close()
    store.open_for_review(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        have = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert store.index_names() <= have
