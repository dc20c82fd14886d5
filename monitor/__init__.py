"""conscent-monitor: watch Conscent.ai paywall webhooks live, review them later."""

from __future__ import annotations

__version__ = "0.1.0"
