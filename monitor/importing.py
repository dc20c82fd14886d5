"""Import captured deliveries into a database as a new session.

No Textual here. :func:`import_paths` reads JSONL (plain bodies, or the
``jsonl --meta`` lines of :mod:`monitor.exporting`), single ``.json`` files
(the file's bytes are the body), directories of ``.json`` files and HAR
captures, streaming line by line. Every good body becomes an ``events`` row
with the columns the listener writes; a bad line is reported with its file and
line number and skipped. Only what the listener would accept is kept: a body
over ``max_body`` bytes (its ``--max-body``) is skipped, and an over-long line
is skipped while it is read, never held whole, so memory stays flat whatever
the input. Rows are written ``batch_size`` at a time with
:func:`monitor.store.write_batch`, one transaction each. A large input is
parsed in a child process while this one writes (:mod:`monitor.pipeline`),
and when it is large against the table the secondary indexes are built after
the rows (:mod:`monitor.bulk`), also when the import stops early. An interrupt
(KeyboardInterrupt, e.g. raised by the ``progress`` callback, Ctrl-C, or a
SIGTERM handler) keeps the batches already committed, drops the rest whole,
and still ends the session row. File names in messages are made inert
(:func:`monitor.textsafe.inert`): they are input too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import operator
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from monitor import bulk as monitor_bulk
from monitor import pipeline, store, wording
from monitor.events import COLUMNS, InvalidBody, decode_body, extract
from monitor.signing import UNCHECKED, redact_headers
from monitor.textsafe import clean, inert

Progress = Callable[[int, int], None]
#: Told what the import is doing when it changes: "indexing" (indexes built in bulk after the rows).
Stage = Callable[[str], None]

#: The listener's default ``--max-body`` (``monitor.listener.DEFAULT_MAX_BODY``;
#: importing the listener here would load aiohttp, 0.3 s, for one number). A test keeps them equal.
MAX_BODY = 1024 * 1024
#: How much of an over-long line is held at a time while it is skipped.
_CHUNK = 64 * 1024
# An ``export --meta`` line holds its body as JSON text (a JSON body escapes to
# at most twice its size: every quote and backslash doubled) or as base64 (4/3),
# beside the request's metadata. Lines are read up to this much, so every body
# the listener accepted comes back from its own export; the body is then checked.
_META_ROOM = 64 * 1024
_HAR_START = re.compile(rb'(?:\xef\xbb\xbf)?\s*\{\s*"log"\s*:')  # how every HAR begins
_BOM = b"\xef\xbb\xbf"
_FIELDS = operator.attrgetter(*COLUMNS)
_NOTES = COLUMNS.index("notes")
_DELIVERY = (
    "session_id", "received_at", "method", "path", "remote_addr", "headers", "content_type",
    "body", "body_size", "body_sha256", "signature", "basic_auth",
)  # fmt: skip
_ROW_NAMES = (*_DELIVERY, *COLUMNS)


@dataclass(slots=True)
class Incoming:
    """One delivery to store: its exact body, decoded object, and what is known of the request."""

    body: bytes
    obj: dict[str, Any]
    received_at: float | None = None
    method: str = "POST"
    path: str = "/"
    remote_addr: str | None = None
    headers: str = "{}"  # JSON object text, credentials redacted
    content_type: str | None = None
    signature: str = UNCHECKED
    basic_auth: str = UNCHECKED


@dataclass(slots=True)
class Bad:
    """An input that is not a delivery: ``where`` is ``file:line`` (or ``file: entry N``)."""

    where: str
    reason: str


Item = Incoming | Bad


@dataclass
class ImportReport:
    session_id: int = 0
    files: int = 0
    lines: int = 0  # JSONL lines, HAR entries and single files read
    imported: int = 0  # rows committed
    skipped: int = 0
    duplicates: int = 0  # imported rows whose bytes were already stored
    errors: list[str] = field(default_factory=list)  # the first ``max_errors`` "file:line: reason"
    seconds: float = 0.0  # all of it: rows and the indexes built after them
    interrupted: bool = False
    rows_seconds: float = 0.0  # storing the rows
    index_seconds: float = 0.0  # building the indexes after the rows (bulk), else 0
    worker_peak_rss_kb: int = 0  # the parsing process's peak memory (VmHWM), when there was one

    @property
    def rate(self) -> float:
        return self.imported / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """``imported 15 deliveries into session 1 from 1 file (15 records read, 0 skipped, 0 duplicates) in ...``."""
        text = (
            f"imported {wording.count(self.imported, 'delivery')} into session {self.session_id} "
            f"from {wording.count(self.files, 'file')} ({wording.count(self.lines, 'record')} read, "
            f"{wording.number(self.skipped)} skipped, {wording.count(self.duplicates, 'duplicate')}) "
            f"in {self.seconds:,.1f} s ({wording.number(round(self.rate))}/s"
        )
        if self.index_seconds:
            text += f", of which {self.index_seconds:,.1f} s building the indexes after the rows"
        text += ")"
        return text + (" - interrupted: the last, unfinished batch was not written" if self.interrupted else "")


def row_values(item: Incoming) -> tuple[Any, ...]:
    """The values of the ``events`` row for ``item``, in ``_ROW_NAMES`` order without the session id.

    ``received_at`` is None when the input did not say (the import's start time is used).
    """
    body = item.body
    values = list(_FIELDS(extract(item.obj)))
    notes = values[_NOTES]
    values[_NOTES] = "; ".join(notes) if notes else None
    sha = hashlib.sha256(body).hexdigest()
    return (
        item.received_at, item.method, item.path, item.remote_addr, item.headers, item.content_type,
        body, len(body), sha, item.signature, item.basic_auth, *values,
    )  # fmt: skip


def event_row(session_id: int, item: Incoming, now: float) -> dict[str, Any]:
    """The ``events`` row the listener would have written for ``item`` (id and duplicate_of aside)."""
    return _row(session_id, row_values(item), now)


def _row(session_id: int, values: tuple[Any, ...], now: float) -> dict[str, Any]:
    received = now if values[0] is None else values[0]
    return dict(zip(_ROW_NAMES, (session_id, received, *values[1:]), strict=True))


#: Past about this many deliveries, an import parses in a child process (pipeline.Producer):
#: below it, starting the child (~0.3 s) costs more than it saves.
PARALLEL_ROWS = 20_000
#: Bytes per delivery in a typical capture, to guess how many an input holds from its size.
_BYTES_PER_ROW = 1500


def import_paths(
    db_path: str | Path,
    paths: Sequence[str | Path],
    *,
    progress: Progress | None = None,
    stage: Stage | None = None,
    batch_size: int = pipeline.BATCH_ROWS,
    max_errors: int = 100,
    max_body: int = MAX_BODY,
    parallel: bool | None = None,
    bulk: bool | None = None,
) -> ImportReport:
    """Import files and directories into ``db_path`` (created if missing) as a new session.

    ``progress(bytes_read, bytes_total)`` is called after each batch and at
    the end; ``stage("indexing")`` before indexes are built in bulk. Bodies
    over ``max_body`` bytes are skipped and reported. Missing paths raise
    FileNotFoundError before anything is written;
    :class:`monitor.store.StoreError` when the database cannot be used.
    ``parallel`` (parse in a child process) and ``bulk`` (build the indexes
    after the rows, :mod:`monitor.bulk`) are decided by the input's size when None.
    """
    files = expand_paths(paths)
    total = sum(_size(path) for path in files)
    expected = total // _BYTES_PER_ROW
    source = FileSource(files, max_body)
    report = ImportReport()

    def report_bytes(done: int, _taken: int) -> None:
        if progress is not None:
            progress(min(done, total), total)

    where = ", ".join(str(path) for path in paths)
    options = {"progress": report_bytes, "stage": stage, "max_errors": max_errors, "bulk": bulk, "expected": expected}
    if parallel if parallel is not None else expected >= PARALLEL_ROWS:
        with pipeline.Producer(source, batch_size) as producer:
            _store(db_path, producer, report, source=where, **options)  # type: ignore[arg-type]
            if producer.summary is not None:
                report.files, report.lines = producer.summary
            report.worker_peak_rss_kb = producer.peak_rss_kb
    else:
        _store(db_path, pipeline.batched(source, batch_size), report, source=where, **options)  # type: ignore[arg-type]
        report.files, report.lines = source.summary()
    return report


class FileSource:
    """The deliveries of an import's files, read in a child process (:class:`monitor.pipeline.Source`)."""

    def __init__(self, files: list[Path], max_body: int) -> None:
        self.files = files
        self.max_body = max_body
        self.counter = _Counter()

    def items(self) -> Iterator[Item]:
        for path in self.files:
            self.counter.files += 1
            yield from read_file(path, self.counter, max_body=self.max_body)

    def done(self) -> int:
        return self.counter.bytes

    def summary(self) -> tuple[int, int]:
        return self.counter.files, self.counter.lines


class _Items:
    """Items given in this process (:func:`import_items`), as a :class:`monitor.pipeline.Source`."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = items
        self.taken = 0

    def items(self) -> Iterator[Item]:
        for item in self._items:
            self.taken += 1
            yield item

    def done(self) -> int:
        return self.taken

    def summary(self) -> None:
        return None


def import_items(
    db_path: str | Path,
    items: Iterable[Item],
    *,
    source: str | None,
    mode: str = "import",
    progress: Progress | None = None,
    stage: Stage | None = None,
    total: int = 0,
    batch_size: int = pipeline.BATCH_ROWS,
    max_errors: int = 100,
    bulk: bool | None = None,
) -> ImportReport:
    """Store ``items`` as a new session; ``progress(items_taken, total)`` after each batch.

    :class:`monitor.store.StoreError` when the database cannot be opened, or
    fails part way (corrupt, full, locked): its message says how many rows
    were written, and the session row is still ended if it can be.
    """
    return store_batches(
        db_path, pipeline.batched(_Items(items), batch_size), source=source, mode=mode, progress=progress,
        stage=stage, total=total, max_errors=max_errors, bulk=bulk, expected=total,
    )  # fmt: skip


def store_batches(
    db_path: str | Path,
    batches: Iterable[pipeline.Batch],
    *,
    source: str | None,
    mode: str = "import",
    progress: Progress | None = None,
    stage: Stage | None = None,
    total: int = 0,
    max_errors: int = 100,
    bulk: bool | None = None,
    expected: int = 0,
) -> ImportReport:
    """Store batches of row values (a :class:`monitor.pipeline.Producer`'s) as a new session.

    ``progress(items_taken, total)`` after each batch. ``bulk`` (None: when
    ``expected`` rows are many against the table's, :func:`monitor.bulk.worth_it`)
    drops the secondary indexes first and builds them after the rows, also
    when the import is interrupted or fails.
    """
    report = ImportReport()

    def taken(_done: int, items: int) -> None:
        if progress is not None:
            progress(items, total)

    _store(
        db_path, batches, report, source=source, mode=mode, progress=taken, stage=stage,
        max_errors=max_errors, bulk=bulk, expected=expected,
    )  # fmt: skip
    return report


def _store(
    db_path: str | Path,
    batches: Iterable[pipeline.Batch],
    report: ImportReport,
    *,
    source: str | None,
    mode: str = "import",
    progress: Callable[[int, int], None] | None = None,
    stage: Stage | None = None,
    max_errors: int = 100,
    bulk: bool | None = None,
    expected: int = 0,
) -> None:
    """The one loop every import and generate runs: the rows of each batch in one transaction (store.write_batch).

    ``progress(batch.done, items_taken)`` is called after each batch.
    """
    db = store.open_store(db_path)
    started = time.perf_counter()
    suspended: list[str] = []
    try:
        store.tune_for_bulk(db)
        report.session_id = store.start_session(db, listen=None, mode=mode, source=source)
        if bulk if bulk is not None else monitor_bulk.worth_it(db.conn, expected):
            suspended = monitor_bulk.suspend(db)
        session_id, now, taken = report.session_id, time.time(), 0
        for batch in batches:
            taken += batch.size
            for where, reason in batch.bad:
                report.skipped += 1
                if len(report.errors) < max_errors:
                    report.errors.append(f"{clean(where)}: {clean(reason)}")
            _write(db.conn, [_row(session_id, values, now) for values in batch.rows], report)
            if progress is not None:
                progress(batch.done, taken)
        report.rows_seconds = time.perf_counter() - started
    except KeyboardInterrupt:
        # write_batch rolled back a batch it was in the middle of; the rest was never started.
        report.interrupted = True
    except sqlite3.Error as exc:  # e.g. "database disk image is malformed" on a page the import reached
        raise store.StoreError(
            f"{db_path}: cannot write the database ({exc}); stopped after {report.imported:,} rows"
        ) from None
    finally:
        try:
            if report.session_id:
                with contextlib.suppress(sqlite3.Error):  # keep the error that stopped the import
                    store.end_session(db, report.session_id)
        finally:
            try:
                if suspended:
                    _rebuild(db, db_path, report, stage)
            finally:
                db.close()
                report.seconds = time.perf_counter() - started
                if not report.rows_seconds:
                    report.rows_seconds = report.seconds - report.index_seconds


def _rebuild(db: Any, db_path: str | Path, report: ImportReport, stage: Stage | None) -> None:
    """Build the indexes dropped for the import; the file stays usable if this fails (the next open builds them)."""
    if stage is not None:
        with contextlib.suppress(Exception):
            stage("indexing")
    started = time.perf_counter()
    try:
        try:
            monitor_bulk.restore(db)
        except KeyboardInterrupt:  # the first Ctrl-C here would leave a table without its indexes
            report.interrupted = True
            monitor_bulk.restore(db)
    except sqlite3.Error as exc:
        raise store.StoreError(
            f"{db_path}: the rows were written but their indexes could not be built ({exc}); "
            "they are built the next time the database is opened for writing"
        ) from None
    finally:
        report.index_seconds = time.perf_counter() - started


def _write(conn: sqlite3.Connection, batch: list[dict[str, Any]], report: ImportReport) -> None:
    """One transaction; counts the rows that turned out to repeat earlier bytes."""
    if not batch:
        return
    ids = store.write_batch(conn, batch, []).event_ids
    report.duplicates += store.count_duplicates(conn, ids[0], ids[-1])
    report.imported += len(ids)


class _Counter:
    def __init__(self) -> None:
        self.files = 0
        self.lines = 0
        self.bytes = 0


class LineReader(Protocol):
    """A binary stream read line by line, at most ``size`` bytes at a time (a file, a GzipFile)."""

    def readline(self, size: int = -1, /) -> bytes: ...


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read: each file as given, each directory's ``*.json`` in name order."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files.extend(sorted(p for p in entry.glob("*.json") if p.is_file()))
        elif entry.exists():
            files.append(entry)
        else:
            raise FileNotFoundError(f"{inert(entry)}: no such file or directory")
    return files


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _over(size: int, max_body: int, what: str = "") -> str:
    return f"{what}{size:,} bytes, over the {max_body:,}-byte limit (--max-body)"


def read_file(path: Path, counter: _Counter | None = None, *, max_body: int = MAX_BODY) -> Iterator[Item]:
    """The deliveries of one file, whatever its format (by suffix, then by content)."""
    counter = counter or _Counter()
    name = inert(path)
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes[-1:] == [".gz"]:
            with gzip.open(path, "rb") as stream:
                yield from read_jsonl(stream, name, counter, max_body=max_body)
        elif suffixes[-1:] == [".har"]:
            # One JSON document: read whole (a capture of many entries is that big).
            counter.bytes += _size(path)
            yield from read_har(path.read_bytes(), name, counter, max_body=max_body)
        elif suffixes[-1:] == [".json"]:
            yield from _read_json_file(path, name, counter, max_body)
        else:
            with path.open("rb") as stream:
                yield from read_jsonl(stream, name, counter, max_body=max_body)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: bad header, truncated, corrupt
        counter.lines += 1
        yield Bad(name, f"cannot read: {getattr(exc, 'strerror', None) or exc}")


def _read_json_file(path: Path, name: str, counter: _Counter, max_body: int) -> Iterator[Item]:
    """One body, a HAR, or JSONL named ``.json``: at most ``max_body + 1`` bytes are read to tell."""
    with path.open("rb") as stream:
        data = stream.read(max_body + 1)
        size = max(len(data), os.fstat(stream.fileno()).st_size)
    if len(data) > max_body:
        yield from _read_big_json(path, name, counter, max_body, data, size)
        return
    text = data[3:] if data.startswith(_BOM) else data
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        first = text.split(b"\n", 1)[0]
        if b"\n" in text.strip() and _is_object(first):  # JSONL named .json
            with path.open("rb") as stream:
                yield from read_jsonl(stream, name, counter, max_body=max_body)
            return
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("log"), dict) and "entries" in obj["log"]:
        counter.bytes += len(data)
        yield from read_har(data, name, counter, max_body=max_body)
        return
    counter.lines += 1
    counter.bytes += len(data)
    yield _body_item(data, name)


def _read_big_json(path: Path, name: str, counter: _Counter, max_body: int, head: bytes, size: int) -> Iterator[Item]:
    """A ``.json`` over ``max_body``: JSONL and HAR are read as such; one body is skipped, never read whole."""
    first, newline, _rest = (head[3:] if head.startswith(_BOM) else head).partition(b"\n")
    if newline and _is_object(first):  # JSONL named .json
        with path.open("rb") as stream:
            yield from read_jsonl(stream, name, counter, max_body=max_body)
    elif _HAR_START.match(head):
        counter.bytes += size
        yield from read_har(path.read_bytes(), name, counter, max_body=max_body)
    else:
        counter.lines += 1
        counter.bytes += size
        yield Bad(name, _over(size, max_body))


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _body_item(body: bytes, where: str, **known: Any) -> Item:
    try:
        return Incoming(body, decode_body(body), **known)
    except InvalidBody as exc:
        return Bad(where, str(exc))


def read_jsonl(
    stream: LineReader, name: str, counter: _Counter | None = None, *, max_body: int = MAX_BODY
) -> Iterator[Item]:
    """One delivery per line: a body, or a ``jsonl --meta`` object (``body_text``/``body_base64``).

    A body over ``max_body`` bytes is skipped: a plain line by its length, a
    ``--meta`` line (longer than its body) by the body it holds. No more than
    ``2 * max_body`` + 64 KiB of a line is ever held; the rest of a longer one
    is skipped unkept, so memory stays flat (a 256 MiB line used to take
    1.46 GB of RSS, a 1.1 GB line a MemoryError).
    """
    counter = counter or _Counter()
    loads, decode_error, readline = orjson.loads, orjson.JSONDecodeError, stream.readline
    limit, number = 2 * max_body + _META_ROOM, 0
    # One loop, no line generator in between: that layer cost as much as the reading itself.
    while raw := readline(limit + 1):
        number += 1
        counter.lines += 1
        counter.bytes += len(raw)
        if raw.endswith(b"\n"):
            line = raw[:-1]
        elif len(raw) <= limit:  # the last line, with no newline
            line = raw
        else:
            size, raw = len(raw), b""  # let go of it before skipping the rest
            yield Bad(f"{name}:{number}", _over(size + _skip_line(stream, counter), max_body))
            continue
        try:
            obj = loads(line[3:] if line.startswith(_BOM) else line)
        except decode_error:
            obj = None
        if type(obj) is dict and ("body_text" in obj or "body_base64" in obj):
            yield meta_item(obj, f"{name}:{number}", max_body=max_body)
        elif len(line) > max_body:
            yield Bad(f"{name}:{number}", _over(len(line), max_body))
        elif type(obj) is not dict:
            yield _bad_line(line, f"{name}:{number}")
        else:
            yield Incoming(line, obj)


def _skip_line(stream: LineReader, counter: _Counter) -> int:
    """Read the rest of an over-long line ``_CHUNK`` at a time, keeping none of it; its size, newline aside."""
    size = 0
    while rest := stream.readline(_CHUNK):
        counter.bytes += len(rest)
        if rest.endswith(b"\n"):
            return size + len(rest) - 1
        size += len(rest)
    return size


def _bad_line(line: bytes, where: str) -> Bad:
    if not line.strip():
        return Bad(where, "empty line")
    try:
        decode_body(line)
    except InvalidBody as exc:
        return Bad(where, str(exc).replace("body", "line", 1))
    return Bad(where, "not a JSON object")  # pragma: no cover - decode_body accepts what orjson accepts


def meta_item(record: dict[str, Any], where: str, *, max_body: int = MAX_BODY) -> Item:
    """A delivery from a ``jsonl --meta`` line (see :func:`monitor.exporting.meta_record`)."""
    text, encoded = record.get("body_text"), record.get("body_base64")
    if isinstance(text, str):
        body = text.encode("utf-8", "surrogatepass")
    elif isinstance(encoded, str):
        try:
            body = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return Bad(where, "body_base64 is not base64")
    else:
        return Bad(where, "body_text / body_base64 is not a string")
    if len(body) > max_body:
        return Bad(where, _over(len(body), max_body, "body of "))
    headers = record.get("headers")
    if isinstance(headers, str):  # the stored JSON text
        with contextlib.suppress(orjson.JSONDecodeError):
            headers = orjson.loads(headers)
    pairs = [(str(k), str(v)) for k, v in headers.items()] if isinstance(headers, dict) else []
    known: dict[str, Any] = _request(pairs, record.get("method"), record.get("path"))
    received = record.get("received_at")
    if isinstance(received, int | float) and not isinstance(received, bool):
        known["received_at"] = float(received)
    if isinstance(record.get("remote_addr"), str):
        known["remote_addr"] = record["remote_addr"]
    for key in ("signature", "basic_auth"):
        if isinstance(record.get(key), str):
            known[key] = record[key]
    return _body_item(body, where, **known)


def _request(pairs: list[tuple[str, str]], method: Any, path: Any) -> dict[str, Any]:
    headers = redact_headers(pairs)
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    known: dict[str, Any] = {"headers": orjson.dumps(headers).decode(), "content_type": content_type}
    if isinstance(method, str) and method:
        known["method"] = method
    if isinstance(path, str) and path:
        known["path"] = path
    return known


def read_har(data: bytes, name: str, counter: _Counter | None = None, *, max_body: int = MAX_BODY) -> Iterator[Item]:
    """Each HAR entry's request: postData.text (``_encoding: base64`` honoured), headers, url, time."""
    counter = counter or _Counter()
    try:
        entries = orjson.loads(data[3:] if data.startswith(_BOM) else data)["log"]["entries"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        counter.lines += 1
        yield Bad(name, "not a HAR file (no log.entries)")
        return
    for number, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
        counter.lines += 1
        yield _har_item(entry, f"{name}: entry {number}", max_body)


def _har_item(entry: Any, where: str, max_body: int) -> Item:
    request = entry.get("request") if isinstance(entry, dict) else None
    post = request.get("postData") if isinstance(request, dict) else None
    if not isinstance(request, dict) or not isinstance(post, dict) or not isinstance(post.get("text"), str):
        return Bad(where, "no request body (request.postData.text)")
    if post.get("_encoding") == "base64" or post.get("encoding") == "base64":
        try:
            body = base64.b64decode(post["text"], validate=True)
        except (binascii.Error, ValueError):
            return Bad(where, "postData.text is not base64")
    else:
        body = post["text"].encode("utf-8", "surrogatepass")
    if len(body) > max_body:
        return Bad(where, _over(len(body), max_body, "body of "))
    headers = request.get("headers")
    pairs = [
        (str(h.get("name")), str(h.get("value", "")))
        for h in (headers if isinstance(headers, list) else [])
        if isinstance(h, dict) and h.get("name")
    ]
    url = request.get("url")
    path = None
    if isinstance(url, str):
        split = urlsplit(url)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    known = _request(pairs, request.get("method"), path)
    if not known["content_type"] and isinstance(post.get("mimeType"), str):
        known["content_type"] = post["mimeType"] or None
    started = entry.get("startedDateTime")
    if isinstance(started, str):
        try:
            moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
            known["received_at"] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            pass
    return _body_item(body, where, **known)
