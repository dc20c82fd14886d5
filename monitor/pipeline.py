"""Parse on one core while SQLite writes on the other: an import's rows, a batch at a time, from a child process.

No Textual here. A :class:`Source` (the files of an import, the synthetic
deliveries of ``generate``) is sent to a child process started with
a fresh interpreter (nothing of the parent's threads or open database is
inherited). The child reads and parses, turns each delivery into
the values of its ``events`` row (:func:`monitor.importing.row_values`) and
sends them over a pipe in :class:`Batch` es; the parent stores batch N while
the child parses batch N+1. The pipe holds little, so the child is never more
than about one batch ahead: memory stays flat whatever the input.

The child ignores Ctrl-C (the terminal sends it to the whole process group):
the parent decides, and :meth:`Producer.close` ends the child whatever
happened. If the parent dies, the child's next send fails and it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

#: Rows per batch: large enough that a batch's transaction and pickling are cheap per row,
#: small enough that the batches in flight stay small (5,000 took the child from 51 to 99 MB, the
#: parent +35 MB, and overlapped less: 200k events in 52.6 s against 30.5 s, same machine).
BATCH_ROWS = 2000


class Source(Protocol):
    """What the child reads: picklable, and whatever it counts (files, lines, readers) in :meth:`summary`."""

    def items(self) -> Iterator[Any]:
        """Each delivery (:class:`monitor.importing.Incoming`) or bad input (:class:`monitor.importing.Bad`)."""
        ...

    def done(self) -> int:
        """How far the reading has gone (bytes read, for a progress bar), read after each batch."""
        ...

    def summary(self) -> Any:
        """What the parent should know once the source is exhausted (picklable)."""
        ...


@dataclass(slots=True)
class Batch:
    """Consecutive items: the rows of the deliveries and the bad inputs, in input order within each list."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)  # monitor.importing.row_values
    bad: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)
    done: int = 0  # Source.done() after this batch

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.bad)


def batched(source: Source, batch_size: int = BATCH_ROWS) -> Iterator[Batch]:
    """The items of ``source`` as batches of about ``batch_size`` items (rows and bad inputs together)."""
    from monitor.importing import Bad, row_values

    batch = Batch()
    rows, bad = batch.rows, batch.bad
    for item in source.items():
        if isinstance(item, Bad):
            bad.append((item.where, item.reason))
        else:
            rows.append(row_values(item))
        if len(rows) + len(bad) >= batch_size:
            batch.done = source.done()
            yield batch
            batch = Batch()
            rows, bad = batch.rows, batch.bad
    batch.done = source.done()
    if batch.size:
        yield batch


class ProducerError(Exception):
    """The child process failed; the message says how (its exception, or its exit)."""


class Producer:
    """The child process that parses a :class:`Source`; iterate for its batches, then read :attr:`summary`.

    A plain ``python -c`` child (not :mod:`multiprocessing`'s spawn, which
    would run the caller's ``__main__`` again in the child): the source is
    pickled to its stdin, and batches come back over a pipe of their own.
    """

    def __init__(self, source: Source, batch_size: int = BATCH_ROWS) -> None:
        self.summary: Any = None
        #: The child's peak resident memory (VmHWM, kB), once it has finished.
        self.peak_rss_kb = 0
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError):  # Linux: a larger pipe, fewer hand-offs per batch
            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # this copy of the package, whatever the child's cwd
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            self._process = subprocess.Popen(  # this interpreter, this package
                [sys.executable, "-c", f"from monitor.pipeline import serve; serve({write_end})"],
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                env=env,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child holds its copy: its exit closes the pipe
        self._receive = Connection(read_end, writable=False)
        assert self._process.stdin is not None
        try:
            with self._process.stdin as stdin:
                stdin.write(pickle.dumps((source, batch_size)))
        except OSError:  # the child died at once: __iter__ says so
            pass

    def __iter__(self) -> Iterator[Batch]:
        while True:
            try:
                kind, payload = self._receive.recv()
            except (EOFError, OSError):
                code = self._process.wait(5)
                raise ProducerError(f"the parsing process ended unexpectedly (exit {code})") from None
            if kind == "batch":
                yield payload
            elif kind == "done":
                self.summary, self.peak_rss_kb = payload
                return
            else:
                raise ProducerError(f"the parsing process failed: {payload}")

    def close(self) -> None:
        """End the child (at once if it is still parsing) and wait for it."""
        with contextlib.suppress(OSError):
            self._receive.close()
        if self.summary is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(2)
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGTERM ignored
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def serve(fd: int) -> None:
    """The child's main: the source from stdin, batches to ``fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (Producer.close)
    send = Connection(fd, readable=False)
    try:
        source, batch_size = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from our parent
        for batch in batched(source, batch_size):
            send.send(("batch", batch))
        send.send(("done", (source.summary(), peak_rss_kb())))
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone or stopped listening
        return
    except Exception as exc:  # sent to the parent, which raises it as a ProducerError
        with contextlib.suppress(OSError):
            send.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(OSError):
            send.close()


def peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM) in kB; 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # noqa: PTH123
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0
