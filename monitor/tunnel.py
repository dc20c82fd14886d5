"""A public URL for a monitor on a laptop: a tunnel program run as a child, or a URL named by the user.

STUB (issue 13): the interface the CLI and the TUI code against; helper T1 implements it.

``Tunnel(spec, ...)`` runs ``cloudflared tunnel --url http://127.0.0.1:PORT``,
``ngrok http PORT`` or ``ssh -R 80:127.0.0.1:PORT HOST`` (``spec`` is
``cloudflared``, ``ngrok`` or ``ssh:HOST``), reads the public URL from the
program's output, probes the monitor through it, restarts the program with
back-off when it dies and always ends it on exit. ``--public-url URL`` is a
tunnel without a program (probed the same way).

The state is a frozen :class:`TunnelState`, replaced whole on every change, so
any thread (the TUI, the headless printer, ``GET /``) reads it without a lock.
Core module: no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Phase = Literal["starting", "up", "restarting", "down", "missing"]


@dataclass(frozen=True, slots=True)
class TunnelState:
    #: ``cloudflared``, ``ngrok``, ``ssh:HOST`` or ``url`` (``--public-url``).
    provider: str
    #: The public base URL once known (``https://….trycloudflare.com/``), else None.
    public_url: str | None = None
    phase: Phase = "starting"
    #: One inert line on the phase: ``restarting in 4 s (cloudflared exited 1)``, how to install a missing program.
    detail: str = ""
    #: The self-probe through the public URL: None before the first answer.
    reachable: bool | None = None
    probe_ms: float | None = None
    #: Why it is not reachable (``DNS not propagated yet: retrying in 8 s``), else None.
    probe_error: str | None = None
    #: The program's output, kept next to the database.
    log_path: Path | None = None
    #: How many times the program was restarted.
    restarts: int = 0
