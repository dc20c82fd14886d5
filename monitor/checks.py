"""What is wrong with this integration: checks over the stored deliveries.

Plain functions over SQL, no Textual. Each check answers one question about
a session (or every session) with one :class:`Finding`: how many rows show
the problem, when it was first and last seen (``received_at``), one line of
why it matters, and the filter that selects those rows in the main table.
:func:`run_checks` runs them all; ``conscent-monitor check`` and the Checks
screen show the result.

Every check walks an index or a small table (``rejected``, ``forwards``),
never the bodies, so all of them together stay well under a second at a
million events (``bench/checks.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlite_utils

from monitor.events import GATEWAY_CLOSE, GATEWAY_VIEW
from monitor.filters import MAX_TERMS
from monitor.signing import INVALID, MISSING
from monitor.wording import count, number

Level = Literal["error", "warning", "info"]
Area = Literal["signatures", "pairing", "fields", "delivery", "forwarding"]

LEVELS: tuple[Level, ...] = ("error", "warning", "info")
AREAS: tuple[Area, ...] = ("signatures", "pairing", "fields", "delivery", "forwarding")

#: Event names Conscent documents (docs.conscent.ai, "New Webhooks"); others are "unknown".
DOCUMENTED_EVENTS: frozenset[str] = frozenset(
    {
        GATEWAY_VIEW,
        GATEWAY_CLOSE,
        "paywall.click",
        "paywall.exit",
        "meter_banner.close",
        "meter_banner.click",
        "sub_landing_page.click",
        "subscription_review.view",
        "transaction.complete",
        "transaction.failed",
        "purchase.pass",
        "purchase.subscription",
        "refunded.pay_per_use",
        "refunded.subscription",
        "cancelled.subscription",
    }
)

#: The reasons the listener gives when it refuses a delivery for its credentials (``--require-auth``).
SIGNATURE_REFUSED = "X-Conscent-Signature is {}"
BASIC_AUTH_REFUSED = "basic auth is {}"

#: How many rows (or names) a filter may list one by one: the filter language's term limit.
_LISTED = MAX_TERMS
#: How many groups a ``detail`` line names before "…".
_DETAIL_TOP = 4


@dataclass(frozen=True)
class Thresholds:
    """The limits the checks apply; every one can be set (``check`` options, the Checks screen)."""

    open_view_minutes: float = 30.0  # a view with no close/conversion after this is "open"
    lag_seconds: float = 60.0  # delivery lag (received_at - created_at) over this is late
    future_seconds: float = 300.0  # created_at this far after received_at is "in the future"


@dataclass(frozen=True)
class Finding:
    """The answer of one check: ``count`` rows show the problem (0: the check passed)."""

    key: str  # stable id, e.g. "signatures.invalid"
    area: Area
    level: Level  # "error" fails `conscent-monitor check`
    title: str
    count: int
    why: str  # one line: why it matters / what to do
    first_seen: float | None  # received_at, epoch seconds
    last_seen: float | None
    filter: str | None  # selects the rows in the main table (None: not expressible)
    mode: Literal["gateway", "all"] = "all"  # the main table's mode for that filter
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class _Spec:
    key: str
    area: Area
    level: Level
    title: str
    why: str


@dataclass(frozen=True)
class _Scope:
    """The session the checks look at (None: every session) and the clock."""

    session_id: int | None
    thresholds: Thresholds
    now: float

    def where(self, alias: str = "") -> str:
        """``session_id = ? AND `` (with ``alias.``), or nothing for every session."""
        return "" if self.session_id is None else f"{alias}session_id = ? AND "

    @property
    def args(self) -> list[Any]:
        return [] if self.session_id is None else [self.session_id]


@dataclass(frozen=True)
class _Seen:
    """A count and the first and last ``received_at`` of what was counted."""

    count: int = 0
    first: float | None = None
    last: float | None = None

    def __add__(self, other: _Seen) -> _Seen:
        firsts = [t for t in (self.first, other.first) if t is not None]
        lasts = [t for t in (self.last, other.last) if t is not None]
        return _Seen(self.count + other.count, min(firsts, default=None), max(lasts, default=None))


_Check = Callable[[sqlite_utils.Database, _Scope], Finding]
#: Every check, by key, in the order they are defined (run_checks sorts them).
CHECKS: dict[str, _Check] = {}


def _check(spec: _Spec) -> Callable[[Callable[[sqlite_utils.Database, _Scope, _Spec], Finding]], _Check]:
    def register(build: Callable[[sqlite_utils.Database, _Scope, _Spec], Finding]) -> _Check:
        def run(db: sqlite_utils.Database, scope: _Scope) -> Finding:
            return build(db, scope, spec)

        run.__name__ = run.__qualname__ = build.__name__
        run.__doc__ = build.__doc__
        CHECKS[spec.key] = run
        return run

    return register


def _finding(
    spec: _Spec,
    seen: _Seen,
    filter: str | None,
    *,
    mode: Literal["gateway", "all"] = "all",
    detail: str = "",
) -> Finding:
    return Finding(
        key=spec.key,
        area=spec.area,
        level=spec.level,
        title=spec.title,
        count=seen.count,
        why=spec.why,
        first_seen=seen.first,
        last_seen=seen.last,
        filter=filter,
        mode=mode,
        detail=detail if seen.count else "",
    )


def _seen(db: sqlite_utils.Database, sql: str, args: Sequence[Any]) -> _Seen:
    """``sql`` selects ``count(*), min(received_at), max(received_at)``."""
    n, first, last = db.execute(sql, list(args)).fetchone()
    return _Seen(int(n or 0), first, last)


def _top(counts: Iterable[tuple[str, int]], limit: int = _DETAIL_TOP) -> str:
    """Each group and its count (a multiplication sign between), the largest first."""
    ordered = sorted(counts, key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{name} ×{number(n)}" for name, n in ordered[:limit])
    return shown + (", …" if len(ordered) > limit else "")


def _quoted(value: str) -> str:
    """A filter value in double quotes (``\\`` and ``"`` escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ids_filter(ids: Sequence[int]) -> str | None:
    """``id:1 OR id:5 OR ...`` for a few rows; None when too many to list."""
    if not ids or len(ids) > _LISTED:
        return None
    return " OR ".join(f"id:{i}" for i in sorted(ids))


# -- signatures ---------------------------------------------------------------------------


def _credentials(db: sqlite_utils.Database, scope: _Scope, column: str, values: Sequence[str]) -> _Seen:
    """Accepted deliveries whose ``column`` (signature, basic_auth) is one of ``values``."""
    marks = ", ".join("?" * len(values))
    sql = f"SELECT count(*), min(received_at), max(received_at) FROM events WHERE {scope.where()}{column} IN ({marks})"
    return _seen(db, sql, [*scope.args, *values])


def _refused(db: sqlite_utils.Database, scope: _Scope, reasons: Sequence[str]) -> _Seen:
    """Rejected deliveries with one of these exact reasons."""
    marks = ", ".join("?" * len(reasons))
    sql = f"SELECT count(*), min(received_at), max(received_at) FROM rejected WHERE {scope.where()}reason IN ({marks})"
    return _seen(db, sql, [*scope.args, *reasons])


def _accepted_refused(accepted: _Seen, refused: _Seen) -> str:
    parts = []
    if accepted.count:
        parts.append(f"{count(accepted.count, 'delivery')} accepted")
    if refused.count:
        parts.append(f"{number(refused.count)} refused (401)")
    return ", ".join(parts)


@_check(
    _Spec(
        "signatures.invalid",
        "signatures",
        "error",
        "Invalid signatures",
        "X-Conscent-Signature does not match the body: is --secret the webhook secret set in Conscent?",
    )
)
def invalid_signatures(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries whose signature does not match (accepted, or refused with --require-auth)."""
    accepted = _credentials(db, scope, "signature", [INVALID])
    refused = _refused(db, scope, [SIGNATURE_REFUSED.format(INVALID)])
    return _finding(
        spec,
        accepted + refused,
        f"sig:invalid OR reason:{_quoted(SIGNATURE_REFUSED.format(INVALID))}",
        detail=_accepted_refused(accepted, refused),
    )


@_check(
    _Spec(
        "signatures.missing",
        "signatures",
        "warning",
        "Missing signatures",
        "A secret is set but Conscent sent no X-Conscent-Signature: set the webhook secret in Conscent.",
    )
)
def missing_signatures(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries without a signature while a secret was set (the listener says "missing" only then)."""
    accepted = _credentials(db, scope, "signature", [MISSING])
    refused = _refused(db, scope, [SIGNATURE_REFUSED.format(MISSING)])
    return _finding(
        spec,
        accepted + refused,
        f"sig:missing OR reason:{_quoted(SIGNATURE_REFUSED.format(MISSING))}",
        detail=_accepted_refused(accepted, refused),
    )


@_check(
    _Spec(
        "signatures.basic_auth",
        "signatures",
        "error",
        "Basic auth failing",
        "Old webhooks log in with the API key and secret: check --basic-auth against the client's API keys.",
    )
)
def basic_auth_failing(db: sqlite_utils.Database, scope: _Scope, spec: _Spec) -> Finding:
    """Deliveries whose Basic auth was missing or wrong while --basic-auth was set."""
    accepted = _credentials(db, scope, "basic_auth", [INVALID, MISSING])
    refused = _refused(db, scope, [BASIC_AUTH_REFUSED.format(INVALID), BASIC_AUTH_REFUSED.format(MISSING)])
    return _finding(
        spec,
        accepted + refused,
        f"auth:invalid OR auth:missing OR reason:{_quoted('basic auth is')}",
        detail=_accepted_refused(accepted, refused),
    )


# -- run them all -------------------------------------------------------------------------


def run_checks(
    db: sqlite_utils.Database,
    session_id: int | None,
    thresholds: Thresholds = Thresholds(),
    *,
    now: float,
) -> list[Finding]:
    """Every check on ``session_id`` (None: every session), passing ones included.

    In a stable order: errors first, then warnings, then information; by
    area within a level; then in the order the checks are defined.
    """
    scope = _Scope(session_id, thresholds, now)
    found = [check(db, scope) for check in CHECKS.values()]
    position = {key: index for index, key in enumerate(CHECKS)}
    found.sort(key=lambda f: (LEVELS.index(f.level), AREAS.index(f.area), position[f.key]))
    return found


def run_check(
    db: sqlite_utils.Database,
    key: str,
    session_id: int | None,
    thresholds: Thresholds = Thresholds(),
    *,
    now: float,
) -> Finding:
    """One check by key (``bench/checks.py`` times them one by one)."""
    return CHECKS[key](db, _Scope(session_id, thresholds, now))


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of them at or below it."""
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


__all__ = [
    "AREAS",
    "CHECKS",
    "DOCUMENTED_EVENTS",
    "LEVELS",
    "Area",
    "Finding",
    "Level",
    "Thresholds",
    "run_check",
    "run_checks",
]
