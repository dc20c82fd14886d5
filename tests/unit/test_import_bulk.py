"""Import and generate on two cores: parsing in a child process, indexes built after the rows (issue 16).

The fast paths store exactly what the one-process path stores (every column,
ids and duplicate_of included), report the same bad lines, and leave every
index of the schema in place whatever stops them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor import bulk, importing, pipeline, store, synth

END = 1_760_000_000


def capture(path: Path, count: int = 1200) -> Path:
    """Plain lines, ``--meta`` lines, repeats of the same bytes, and bad lines, mixed."""
    meta = path.with_suffix(".meta")
    synth.write_jsonl(meta, count // 2, seed=3, readers=40, end=END, meta=True)
    plain = [e.body for e in synth.events(count // 2, seed=4, readers=40, days=1, end=END)]
    lines = meta.read_bytes().splitlines()
    out: list[bytes] = []
    for number, (a, b) in enumerate(zip(lines, plain, strict=False)):
        out += [a, b]
        if number % 97 == 0:
            out += [b"{not json", b"[1, 2]", b"", plain[0]]  # three bad lines, one repeat of earlier bytes
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def rows(db_path: Path) -> list[tuple[Any, ...]]:
    """Every events row, all columns but received_at of plain lines (the import's clock), in id order."""
    with sqlite3.connect(db_path) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
        at = names.index("received_at")
        out = []
        for row in conn.execute("SELECT * FROM events ORDER BY id"):
            values = list(row)
            if values[names.index("headers")] == "{}":  # a plain line: stamped with the import's time
                values[at] = None
            out.append(tuple(values))
    return out


def indexes(db_path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db_path) as conn:
        return set(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"))


def schema_indexes(tmp_path: Path) -> set[tuple[str, str]]:
    fresh = tmp_path / "fresh.db"
    store.open_store(fresh).close()
    return indexes(fresh)


def test_child_process_and_bulk_indexes_store_the_same_rows(tmp_path: Path) -> None:
    source = capture(tmp_path / "mixed.jsonl")
    reports = {}
    for parallel, use_bulk in ((False, False), (True, True), (True, False), (False, True)):
        db_path = tmp_path / f"{parallel}-{use_bulk}.db"
        store.open_store(db_path).close()
        importing.import_paths(db_path, [source], batch_size=250)  # earlier copies of the same bytes
        reports[parallel, use_bulk] = importing.import_paths(
            db_path, [source], batch_size=250, parallel=parallel, bulk=use_bulk
        )
    first = reports[False, False]
    assert first.imported == 1200 + 7 and first.skipped == 3 * 7 and first.duplicates == first.imported
    for key, report in reports.items():
        assert (report.imported, report.skipped, report.duplicates, report.lines, report.files) == (
            first.imported, first.skipped, first.duplicates, first.lines, first.files,
        ), key  # fmt: skip
        assert report.errors == first.errors, key
        assert (report.index_seconds > 0) == key[1], key
    expected = rows(tmp_path / "False-False.db")
    for parallel, use_bulk in reports:
        assert rows(tmp_path / f"{parallel}-{use_bulk}.db") == expected, (parallel, use_bulk)
        assert indexes(tmp_path / f"{parallel}-{use_bulk}.db") == schema_indexes(tmp_path)
    assert reports[True, True].worker_peak_rss_kb > 0
    assert "building the indexes after the rows" in reports[True, True].describe()


def test_generate_in_a_child_process_makes_the_same_rows(tmp_path: Path) -> None:
    built = {}
    for parallel in (False, True):
        db_path = tmp_path / f"{parallel}.db"
        seen: list[int] = []
        built[parallel] = synth.build_database(
            db_path, 3000, seed=9, readers=60, sessions=2, end=END, parallel=parallel, bulk=parallel,
            progress=lambda done, _total, seen=seen: seen.append(done),
        )  # fmt: skip
        assert seen[-1] == 3000 and seen == sorted(seen)
    assert built[True].readers == built[False].readers > 0
    assert [r.imported for r in built[True].reports] == [r.imported for r in built[False].reports] == [1500, 1500]
    with sqlite3.connect(tmp_path / "False.db") as a, sqlite3.connect(tmp_path / "True.db") as b:
        for sql in (
            "SELECT * FROM events ORDER BY id",
            "SELECT id, started_at, ended_at, listen, source FROM sessions",
        ):
            assert a.execute(sql).fetchall() == b.execute(sql).fetchall()
    assert indexes(tmp_path / "True.db") == schema_indexes(tmp_path)


def test_bulk_is_chosen_for_an_import_large_against_the_table(tmp_path: Path) -> None:
    db = store.open_store(tmp_path / "w.db")
    try:
        assert not bulk.worth_it(db.conn, bulk.MIN_ROWS - 1)
        assert bulk.worth_it(db.conn, bulk.MIN_ROWS)
        db.execute("INSERT INTO events (id) VALUES (?)", [5 * bulk.MIN_ROWS])
        assert not bulk.worth_it(db.conn, 4 * bulk.MIN_ROWS)
        assert bulk.worth_it(db.conn, 5 * bulk.MIN_ROWS)
        dropped = bulk.suspend(db)
        remaining = {name for name, _sql in indexes(tmp_path / "w.db")}
    finally:
        db.close()
    assert remaining == {"idx_events_body_sha256"}  # write_batch finds earlier copies through it
    assert set(dropped) == set(bulk.secondary_indexes())
    assert set(store.SPECIAL_INDEXES) <= set(dropped)


def _failing(items: list[importing.Item], after: int, error: BaseException) -> Any:
    for number, item in enumerate(items):
        if number == after:
            raise error
        yield item


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_indexes_are_rebuilt_when_a_bulk_import_stops_part_way(tmp_path: Path, error: BaseException) -> None:
    bodies = [e.body for e in synth.events(900, seed=2, readers=30, days=1, end=END)]
    items: list[importing.Item] = [importing.Incoming(body, orjson.loads(body)) for body in bodies]
    db_path = tmp_path / "stop.db"
    stream = _failing(items, 650, error)
    if isinstance(error, KeyboardInterrupt):
        report = importing.import_items(db_path, stream, source="x", batch_size=200, bulk=True)
        assert report.interrupted and report.imported == 600 and report.index_seconds > 0
    else:
        with pytest.raises(RuntimeError, match="disk on fire"):
            importing.import_items(db_path, stream, source="x", batch_size=200, bulk=True)
    assert indexes(db_path) == schema_indexes(tmp_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (600,)
        assert conn.execute("SELECT ended_at IS NOT NULL FROM sessions").fetchone() == (1,)


def test_a_ctrl_c_while_the_indexes_are_built_still_builds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    restore = bulk.restore

    def interrupted_once(db: Any) -> float:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return restore(db)

    monkeypatch.setattr(bulk, "restore", interrupted_once)
    bodies = [e.body for e in synth.events(300, seed=2, readers=30, days=1, end=END)]
    report = importing.import_items(
        tmp_path / "c.db", [importing.Incoming(b, orjson.loads(b)) for b in bodies], source="x", bulk=True
    )
    assert len(calls) == 2 and report.interrupted and report.imported == 300
    assert indexes(tmp_path / "c.db") == schema_indexes(tmp_path)


def test_a_failing_child_is_an_error_not_a_hang(tmp_path: Path) -> None:
    broken = synth.SynthSource(10, seed="no", readers=3, days=1, end=END)  # type: ignore[arg-type]
    with pytest.raises(pipeline.ProducerError, match="TypeError"):
        synth_report = importing.store_batches(tmp_path / "f.db", pipeline.Producer(broken), source="x", bulk=True)
        del synth_report
    assert indexes(tmp_path / "f.db") == schema_indexes(tmp_path)


def test_an_interrupted_import_ends_the_child(tmp_path: Path) -> None:
    source = capture(tmp_path / "big.jsonl", 2000)
    producer = pipeline.Producer(importing.FileSource([source], importing.MAX_BODY), batch_size=100)

    def stop(taken: int, _total: int) -> None:
        if taken >= 300:
            raise KeyboardInterrupt

    with producer:
        report = importing.store_batches(tmp_path / "i.db", producer, source="x", progress=stop, bulk=True)
    assert report.interrupted and 0 < report.imported < 2000
    assert producer._process.poll() is not None  # ended, not left running
    assert indexes(tmp_path / "i.db") == schema_indexes(tmp_path)


def test_the_commands_say_how_long_the_indexes_took(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    monkeypatch.setattr(importing, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(synth, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(bulk, "MIN_ROWS", 1)
    source = capture(tmp_path / "c.jsonl", 400)
    db_path = tmp_path / "cli.db"
    imported = CliRunner().invoke(cli, ["import", str(source), "--db", str(db_path)])
    assert imported.exit_code == 0, imported.output
    assert "imported 403 deliveries into session 1" in imported.stdout
    assert "s building the indexes after the rows); search index built in" in imported.stdout
    generated = CliRunner().invoke(cli, ["generate", "--count", "900", "--db", str(tmp_path / "g.db"), "--seed", "1"])
    assert generated.exit_code == 0, generated.output
    assert "generated 900 deliveries" in generated.stdout
    assert "s building the indexes after the rows); search index built in" in generated.stdout
    for name in ("cli.db", "g.db"):
        assert indexes(tmp_path / name) == schema_indexes(tmp_path)


def test_a_failing_child_is_one_line_from_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    monkeypatch.setattr(synth, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(pipeline.sys, "executable", "false")  # a child that exits at once, status 1
    result = CliRunner().invoke(cli, ["generate", "--count", "50", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and result.exception is not None
    assert "the parsing process" in result.output and "Traceback" not in result.output
