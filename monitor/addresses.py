"""Where the monitor listens by default: the webhook listener and the web UI.

A module of its own so that the command line's options know them without
importing the listener's machinery (aiohttp): ``open`` starts without it.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
#: The web UI's port by default (``serve``, ``open --web``): the listener's plus one.
DEFAULT_WEB_PORT = DEFAULT_PORT + 1
