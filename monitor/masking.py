"""Hide personal data for screen sharing: phones, names, usernames, places."""

from __future__ import annotations

#: Parsed columns that hold personal data, and how each is masked.
PII_COLUMNS = frozenset(
    {"phone_number", "name", "username", "email", "city", "latitude", "longitude", "postcode", "address"}
)


def mask(value: object) -> str:
    """Keep a hint of the shape (first and last character), hide the rest."""
    if value is None or value == "":
        return ""
    text = str(value)
    if len(text) <= 2:
        return "•" * len(text)
    if len(text) <= 4:
        return text[0] + "•" * (len(text) - 1)
    return text[0] + "•" * (len(text) - 2) + text[-1]


def mask_if(column: str, value: object, enabled: bool) -> object:
    """``value`` masked when masking is on and ``column`` is personal."""
    if enabled and column in PII_COLUMNS and value not in (None, ""):
        return mask(value)
    return value
