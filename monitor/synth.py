"""Large, realistic synthetic captures: a JSONL file or a whole database.

No Textual here. The journeys are the demo's (:mod:`monitor.demo`: meter
banner, paywall click, gateway view, close or payment, purchases, refunds,
cancellations) for many readers at once, spread over days: arrivals follow a
daily rhythm, popular readers come back more often, each gateway view and its
close share the pageUrl ``sessionId``, deliveries arrive a little after their
``created_at`` (now and then much later, as a retry), and a few are delivered
twice with the same bytes. The demo's own interleaving suits a few dozen
readers; this one picks a free reader in constant time, so a million events
are generated in seconds (storing them is bound by parsing and SQLite).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from monitor import demo, importing, pipeline, store
from monitor.exporting import DEFAULT_BASE_URL

#: Journeys in progress at any moment (the demo runs three).
CONCURRENT = 12
#: Share of deliveries sent twice (a retry after a lost answer), and of late ones.
DUPLICATE_SHARE = 0.002
LATE_SHARE = 0.01
_REMOTE_ADDRS = ("13.235.14.112", "13.235.91.7", "65.0.48.201", "3.110.52.19")
_HEADERS = (
    '{{"Host":"127.0.0.1:8787","Content-Type":"application/json",'
    '"Accept":"application/json, text/plain, */*","User-Agent":"axios/0.21.1","Content-Length":"{size}",'
    '"Connection":"keep-alive"}}'
)


@dataclass(slots=True)
class SynthEvent:
    received_at: float
    body: bytes
    obj: dict[str, Any]


@dataclass
class _Journey:
    reader_index: int
    events: Iterator[dict[str, Any]]
    last: int = 0


def events(
    count: int,
    *,
    seed: int = 1,
    readers: int = 20000,
    days: float = 7.0,
    end: float | None = None,
    met: set[int] | None = None,
) -> Iterator[SynthEvent]:
    """``count`` deliveries in arrival order, received over about ``days`` up to ``end`` (default now).

    The same ``seed`` and ``end`` make the same bytes. ``met`` collects the
    index of every reader whose journey started.
    """
    rng = random.Random(seed)  # noqa: S311 - made-up data, reproducible on purpose
    start = (time.time() if end is None else end) - days * 86400
    mean_gap = days * 86400 / max(count, 1)
    clock = _Clock(start)
    people = [demo._reader(rng, index, start) for index in range(max(1, readers))]
    busy: set[int] = set()
    met = set() if met is None else met
    active: list[_Journey] = []
    arriving: list[tuple[float, int, SynthEvent]] = []  # a heap: deliveries in flight
    made = sent = 0
    while sent < count:
        # Anything still to be made is received after int(clock.now) > clock.now - 1.
        while arriving and (arriving[0][0] <= clock.now - 1 or made >= count):
            yield heapq.heappop(arriving)[2]
            sent += 1
            if sent >= count:
                return
        if made >= count:  # not reached: everything made was yielded above
            break
        while len(active) < min(CONCURRENT, len(people)):
            active.append(_start(rng, people, busy, clock))
            met.add(active[-1].reader_index)
        run = rng.choice(active)
        event = next(run.events, None)
        if event is None:
            busy.discard(run.reader_index)
            active.remove(run)
            continue
        # Busier by day (India), quieter at night: the gap shrinks with the rate.
        clock.now += rng.expovariate(1.0) * mean_gap / _daily_rate(clock.now)
        run.last = max(int(clock.now), run.last + 1)
        obj = {**event, "created_at": run.last}
        late = rng.random() < LATE_SHARE
        lag = rng.uniform(5, 180) if late else rng.lognormvariate(-2.0, 0.8)
        item = SynthEvent(run.last + lag, orjson.dumps(obj), obj)
        heapq.heappush(arriving, (item.received_at, made, item))
        made += 1
        if made < count and rng.random() < DUPLICATE_SHARE:
            # The answer was lost, so Conscent sends the same bytes again.
            again = item.received_at + rng.uniform(10, 60)
            heapq.heappush(arriving, (again, made, SynthEvent(again, item.body, obj)))
            made += 1


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _start(rng: random.Random, people: list[demo.Reader], busy: set[int], clock: _Clock) -> _Journey:
    while True:
        # Square of a uniform: the first readers are the regulars.
        index = int(len(people) * rng.random() ** 2)
        if index not in busy:
            break
    busy.add(index)
    outcome = demo._weighted(rng, demo.OUTCOMES)
    journey = demo._journey(rng, people[index], outcome, rng.choice(demo.CLOSE_ACTIONS), clock)
    return _Journey(index, journey)


def _daily_rate(moment: float) -> float:
    """Relative delivery rate by time of day in India (UTC+5:30): 0.25 at 4am, 1.75 at 4pm."""
    hours = ((moment / 3600) + 5.5) % 24
    return 1.0 - 0.75 * math.cos((hours - 4) / 24 * 2 * math.pi)


def _items(stream: Iterator[SynthEvent], rng: random.Random) -> Iterator[importing.Incoming]:
    for event in stream:
        yield importing.Incoming(
            event.body,
            event.obj,
            received_at=event.received_at,
            remote_addr=rng.choice(_REMOTE_ADDRS),
            headers=_HEADERS.format(size=len(event.body)),
            content_type="application/json",
        )


def write_jsonl(
    path: str | Path,
    count: int,
    *,
    seed: int = 1,
    readers: int = 20000,
    days: float = 7.0,
    end: float | None = None,
    meta: bool = False,
) -> None:
    """Write ``count`` deliveries to ``path``: one compact body per line, or ``jsonl --meta`` lines.

    Plain lines are what a capture holds (an import stamps them with the
    import time); ``meta=True`` keeps the spread of ``received_at`` and the
    request headers, as ``conscent-monitor export --meta`` writes them.
    """
    rng = random.Random(seed + 1)  # noqa: S311
    buffer: list[bytes] = []
    with Path(path).open("wb") as out:
        for number, item in enumerate(_items(events(count, seed=seed, readers=readers, days=days, end=end), rng), 1):
            if meta:
                record = {
                    "id": number,
                    "session_id": None,
                    "received_at": item.received_at,
                    "method": "POST",
                    "path": "/",
                    "remote_addr": item.remote_addr,
                    "headers": orjson.Fragment(item.headers),
                    "signature": "unchecked",
                    "basic_auth": "unchecked",
                    "event": item.obj.get("event"),
                    "body_text": item.body.decode("utf-8"),
                }
                buffer.append(orjson.dumps(record))
            else:
                buffer.append(item.body)
            if len(buffer) >= 10_000:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")


@dataclass
class Generated:
    """What :func:`build_database` made: one import report per session, and how many readers appear."""

    reports: list[importing.ImportReport]
    readers: int

    @property
    def imported(self) -> int:
        return sum(report.imported for report in self.reports)

    @property
    def interrupted(self) -> bool:
        return any(report.interrupted for report in self.reports)


#: Past this many deliveries, ``build_database`` generates them in a child process while this one stores them.
PARALLEL_ROWS = 20_000


class SynthSource:
    """The deliveries of :func:`build_database`, made in a child process (:class:`monitor.pipeline.Source`)."""

    def __init__(self, count: int, *, seed: int, readers: int, days: float, end: float) -> None:
        self.count, self.seed, self.readers, self.days, self.end = count, seed, readers, days, end
        self.met: set[int] = set()
        self.made = 0

    def items(self) -> Iterator[importing.Incoming]:
        rng = random.Random(self.seed + 1)  # noqa: S311
        stream = events(self.count, seed=self.seed, readers=self.readers, days=self.days, end=self.end, met=self.met)
        for item in _items(stream, rng):
            self.made += 1
            yield item

    def done(self) -> int:
        return self.made

    def summary(self) -> int:
        """How many readers appear."""
        return len(self.met)


def build_database(
    db_path: str | Path,
    count: int,
    *,
    seed: int = 1,
    readers: int = 20000,
    sessions: int = 1,
    days: float = 7.0,
    end: float | None = None,
    progress: importing.Progress | None = None,
    stage: importing.Stage | None = None,
    parallel: bool | None = None,
    bulk: bool | None = None,
) -> Generated:
    """Add ``count`` deliveries to ``db_path`` as one session, or ``sessions`` consecutive ones (mode ``synth``).

    Each session row gets the time span of its deliveries, and its ``source``
    the seed and end time that make the same rows again. ``progress(done,
    count)`` is called after each batch. ``parallel`` (make them in a child
    process) and ``bulk`` (build the indexes after the rows) are decided by
    ``count`` when None; either way the rows are the same.
    """
    end = time.time() if end is None else end
    source = SynthSource(count, seed=seed, readers=readers, days=days, end=end)
    sessions = max(1, min(sessions, count or 1))
    about = f"synthetic: {count:,} deliveries, seed {seed}, end {end:g}, up to {readers:,} readers"
    if parallel if parallel is not None else count >= PARALLEL_ROWS:
        with pipeline.Producer(source) as producer:
            batches = iter(producer)
            reports = _sessions(db_path, batches, count, sessions, about, progress, stage, bulk)
            if not any(report.interrupted for report in reports):
                for _rest in batches:  # none: read up to the child's summary
                    pass
            met = producer.summary or 0
    else:
        reports = _sessions(db_path, pipeline.batched(source), count, sessions, about, progress, stage, bulk)
        met = source.summary()
    return Generated(reports, met)


def _sessions(
    db_path: str | Path,
    batches: Iterator[pipeline.Batch],
    count: int,
    sessions: int,
    about: str,
    progress: importing.Progress | None,
    stage: importing.Stage | None,
    bulk: bool | None,
) -> list[importing.ImportReport]:
    reports: list[importing.ImportReport] = []
    rows = _Rows(batches)
    for number in range(sessions):
        done = sum(r.imported + r.skipped for r in reports)
        share = count // sessions + (1 if number < count % sessions else 0)

        def report(taken: int, _total: int, done: int = done) -> None:
            if progress is not None:
                progress(done + taken, count)

        source = about if sessions == 1 else f"{about} (part {number + 1} of {sessions})"
        result = importing.store_batches(
            db_path, rows.take(share), source=source, mode="synth", progress=report, stage=stage, total=share,
            bulk=bulk, expected=share,
        )  # fmt: skip
        reports.append(result)
        _stamp_session(db_path, result.session_id)
        if result.interrupted:
            break
    return reports


class _Rows:
    """Batches of rows re-cut so that each session takes exactly its share (synthetic rows are never bad)."""

    def __init__(self, batches: Iterator[pipeline.Batch]) -> None:
        self._batches = batches
        self._left: list[tuple[Any, ...]] = []

    def take(self, count: int) -> Iterator[pipeline.Batch]:
        while count > 0:
            if not self._left:
                batch = next(self._batches, None)
                if batch is None:
                    return
                self._left = batch.rows
            rows, self._left = self._left[:count], self._left[count:]
            count -= len(rows)
            yield pipeline.Batch(rows, [], len(rows))


def _stamp_session(db_path: str | Path, session_id: int) -> None:
    """Give a synthetic session the times of its deliveries and a listener URL."""
    db = store.open_store(db_path)
    try:
        store.stamp_session(db, session_id, f"{DEFAULT_BASE_URL}/")
    finally:
        db.close()
