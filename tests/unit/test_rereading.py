"""When a followed read is due again: the database changed, no read running, paced by the last read's time."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from monitor.tui.rereading import Reread


@dataclass
class Job:
    is_running: bool = True


def test_a_read_is_due_when_the_database_changed_and_none_runs_and_its_pace_has_passed() -> None:
    now = [100.0]
    version = [1]
    reread = Reread(pace=2.0, clock=lambda: now[0])
    job = Job()
    reread.started(lambda: version[0], lambda: job)
    version[0] = 2
    assert not reread.due(lambda: version[0])  # still running
    job.is_running = False
    reread.finished(0.5)  # next read at 101.0 (twice 0.5 s)
    assert not reread.due(lambda: version[0])
    now[0] = 101.0
    assert reread.due(lambda: version[0])
    reread.started(lambda: version[0], lambda: Job(is_running=False))
    assert not reread.due(lambda: version[0])  # nothing new since that read started


def test_a_database_that_cannot_be_read_is_not_polled_into_a_loop() -> None:
    def broken() -> int:
        raise sqlite3.OperationalError("disk I/O error")

    reread = Reread()
    reread.started(broken, lambda: Job(is_running=False))
    assert reread.version is None
    assert not reread.due(broken)
    assert reread.due(lambda: 3)  # readable again: read
