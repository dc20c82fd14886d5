"""Run a program and end it when the monitor goes, however the monitor goes (no orphan tunnels).

The monitor starts this file as a tiny separate Python process (run by path,
``python -I -S lifeline.py GRACE -- PROGRAM ARGS``, so it imports nothing of
the package) in a session of its own, with its stdin the read end of a pipe
whose only write end the monitor holds: the *lifeline*. The program runs as a
child of this process, in the same process group, and writes straight into the
monitor's output pipe.

When the lifeline reads end of file (the monitor closed it on a clean stop, or
the kernel closed it because the monitor exited, crashed or was killed with
SIGKILL), the program gets SIGTERM, then, ``GRACE`` seconds later, the whole
process group gets SIGKILL. When the program exits on its own, this process
exits with its status (``128 + signal`` for a signal) and the monitor restarts
it.

Why not ``preexec_fn`` with ``prctl(PR_SET_PDEATHSIG)`` in the monitor:
``preexec_fn`` is unsafe in a process with threads (the writer, the listener's
loop and the UI's threads are running), and the death signal follows the
forking *thread*, not the process. This process has one thread, so here it is
safe, and on Linux it is set as well: if this process itself is SIGKILLed,
the program still gets SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


#: A browser tab's app learns its serve process's pid here, to end with it (:func:`follow_parent`).
PARENT_ENV = "CONSCENT_MONITOR_PARENT"


def die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """SIGTERM to this process when the thread that started it ends (Linux's PR_SET_PDEATHSIG; elsewhere nothing)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def follow_parent(environ: dict[str, str] | os._Environ[str]) -> bool:
    """End with the process named in :data:`PARENT_ENV` (its event loop's thread started this one).

    Returns False when that process is already gone (it died before the death signal was set): the
    caller exits. True when no parent is named.
    """
    named = environ.get(PARENT_ENV, "")
    if not named.isdigit():
        return True
    die_with_parent()
    return os.getppid() == int(named)


def end(child: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the program, then SIGKILL to the whole group once ``grace`` is over."""
    if child.poll() is None:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(grace)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Whatever the program started in its group goes too (this process with it).
    os.killpg(os.getpgrp(), signal.SIGKILL)


def status(code: int) -> int:
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: lifeline.py GRACE -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    grace = float(argv[1])
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the monitor's terminal is the monitor's to handle
    preexec = die_with_parent if sys.platform.startswith("linux") else None
    try:
        child = subprocess.Popen(
            argv[3:], stdin=subprocess.DEVNULL, preexec_fn=preexec
        )  # one thread here: preexec_fn is safe
    except OSError as exc:
        print(f"cannot run {argv[3]}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    while True:
        try:
            ready, _, _ = select.select([0], [], [], 0.25)
        except InterruptedError:
            ready = []
        if stopping:
            end(child, grace)
        code = child.poll()
        if code is not None:
            return status(code)
        if ready and not os.read(0, 4096):
            end(child, grace)
            time.sleep(grace)  # not reached: end() killed the group


if __name__ == "__main__":
    sys.exit(main(sys.argv))
