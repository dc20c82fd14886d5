"""Make untrusted webhook text inert before it reaches a terminal.

Everything in a delivery is attacker-controlled. Before it is printed or put
in a cell it goes through :func:`clean`: control characters (C0, DEL, C1),
bidirectional overrides and invisible format characters are replaced by
visible stand-ins, so ESC, BEL and OSC sequences cannot drive the terminal and
text cannot hide or reorder itself. :func:`inert` does the same for a name or
value quoted in a command's message. Markup is a separate concern: the UI builds
``rich.text.Text`` objects from plain strings and never parses markup.
"""

from __future__ import annotations

import re

# C0 controls map to their Unicode "control pictures" (U+2400..U+241F), so a
# developer can still see that an ESC or a NUL was there.
_C0 = {code: chr(0x2400 + code) for code in range(0x20)}
_C0[0x7F] = "\u2421"  # DEL
_REPLACEMENT = "\ufffd"

# C1 controls, the soft hyphen, bidi marks, embeddings, overrides and
# isolates, zero-width and other invisible format characters, line/paragraph
# separators, interlinear annotations, tag characters, and lone surrogates
# (which cannot even be encoded for the terminal).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f\x80-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069"
    "\ud800-\udfff\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    return _C0.get(ord(char), _REPLACEMENT)


def clean(text: str, *, keep_newlines: bool = False, limit: int | None = None) -> str:
    """``text`` with every unsafe character made visible and inert."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026" if limit > 0 else ""
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_replace, line) for line in text.split("\n"))
    return _UNSAFE.sub(_replace, text)


def cell(value: object, limit: int = 200) -> str:
    """A single-line, inert string for a table cell or a log line."""
    if value is None:
        return ""
    return clean(str(value), limit=limit)


def inert(value: object, limit: int = 200) -> str:
    """``value`` (a file name, a URL, a header value) made inert to quote in a one-line message.

    Unsafe characters become visible stand-ins as in :func:`clean`. Past
    ``limit`` characters the middle gives way to an ellipsis, so a path keeps
    its file name. A value that had to change, is empty, or starts or ends
    with a space is put in single quotes: what is shown is then plainly not
    the exact name (``'a␛]0;pwned␇.jsonl'``).
    """
    text = str(value)
    shown = _UNSAFE.sub(_replace, text)
    if len(shown) > limit:
        head = max(limit - 1, 0) // 3  # two thirds for the end: a path's file name, a URL's last part
        tail = max(limit - 1 - head, 0)
        shown = shown[:head] + "\u2026" + (shown[-tail:] if tail else "")
    if shown != text or not text or text != text.strip():
        return f"'{shown}'"
    return shown


def utf8_safe(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode replaced by U+FFFD.

    aiohttp decodes header bytes that are not UTF-8 with ``surrogateescape``;
    such strings can be neither stored in SQLite nor serialised to JSON.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")  # the bytes that were received
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "replace")
    return text
