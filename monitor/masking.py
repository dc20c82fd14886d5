"""Hide personal data for screen sharing: phones, names, usernames, places."""

from __future__ import annotations

from typing import Any

#: Parsed columns that hold personal data.
PII_COLUMNS = frozenset(
    {"phone_number", "name", "username", "email", "city", "latitude", "longitude", "postcode", "address"}
)


#: Keys of a Conscent body whose values (everything below them) are personal data.
PII_KEYS = frozenset({
    "phoneNumber", "phone_number", "phone", "name", "username", "email", "city", "address", "location",
    "latitude", "longitude", "postcode", "pincode",
})  # fmt: skip


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


def mask_json(value: Any, personal: bool = False) -> Any:
    """``value`` with every leaf under a personal key masked; the structure stays."""
    if isinstance(value, dict):
        return {key: mask_json(item, personal or key in PII_KEYS) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_json(item, personal) for item in value]
    if personal and value not in (None, ""):
        return mask(value)
    return value
