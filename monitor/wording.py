"""How every output words a count: one number format, plurals right.

``count(1, "row")`` is ``1 row``, ``count(84165, "row")`` is ``84,165 rows``,
``count(2, "delivery")`` is ``2 deliveries``. Screens, headless lines and
command-line summaries all use these, so the header, the status line and a
command's last line agree (``views 51,944`` and ``84,165 rows``).

Plain Python: no Textual, no Rich.
"""

from __future__ import annotations

#: Nouns whose plural is not the noun plus "s".
_IRREGULAR = {
    "delivery": "deliveries",
    "reply": "replies",
    "entry": "entries",
    "query": "queries",
    "match": "matches",
    "pass": "passes",
    "is": "are",
    "was": "were",
    "it": "they",
    "this": "these",
}


def number(value: int | float) -> str:
    """``84,165``: thousands separated; a float keeps one decimal when it has a fraction."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def plural(noun: str, n: int | float = 2) -> str:
    """``noun`` as it reads after ``n`` (``1 close``, ``2 closes``, ``0 deliveries``)."""
    if n == 1:
        return noun
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def count(n: int | float, noun: str, plural_form: str | None = None) -> str:
    """``1 row``, ``84,165 rows``; ``plural_form`` for a noun the rules get wrong."""
    word = noun if n == 1 else (plural_form or plural(noun, n))
    return f"{number(n)} {word}"
