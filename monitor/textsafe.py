"""Make untrusted webhook text inert before it reaches a terminal.

Everything in a delivery is attacker-controlled. Before it is printed or put
in a cell it goes through :func:`clean`: control characters (C0, DEL, C1),
bidirectional overrides and invisible format characters are replaced by
visible stand-ins, so ESC, BEL and OSC sequences cannot drive the terminal and
text cannot hide or reorder itself. The one invisible character kept is a
zero-width joiner between two emoji, which makes a family or a rainbow flag
one picture. :func:`inert` does the same for a name or
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


_ZWJ = "\u200d"

#: Unicode's Extended_Pictographic property (emoji-data.txt, Unicode 15.1), which the ``re`` module
#: cannot name: the characters an emoji ZWJ sequence joins.
_PICTOGRAPHIC = re.compile(
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u2388\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u2605\u2607-\u2612"
    "\u2614-\u2685\u2690-\u2705\u2708-\u2712\u2714\u2716\u271d\u2721\u2728\u2733\u2734\u2744\u2747"
    "\u274c\u274e\u2753-\u2755\u2757\u2763-\u2767\u2795-\u2797\u27a1\u27b0\u27bf\u2934\u2935"
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001f0ff\U0001f10d-\U0001f10f\U0001f12f\U0001f16c-\U0001f171\U0001f17e\U0001f17f"
    "\U0001f18e\U0001f191-\U0001f19a\U0001f1ad-\U0001f1e5\U0001f201-\U0001f20f\U0001f21a\U0001f22f"
    "\U0001f232-\U0001f23a\U0001f23c-\U0001f23f\U0001f249-\U0001f3fa\U0001f400-\U0001f53d"
    "\U0001f546-\U0001f64f\U0001f680-\U0001f6ff\U0001f774-\U0001f77f\U0001f7d5-\U0001f7ff"
    "\U0001f80c-\U0001f80f\U0001f848-\U0001f84f\U0001f85a-\U0001f85f\U0001f888-\U0001f88f"
    "\U0001f8ae-\U0001f8ff\U0001f90c-\U0001f93a\U0001f93c-\U0001f945\U0001f947-\U0001faff"
    "\U0001fc00-\U0001fffd]"
)
#: What may sit between an emoji and the ZWJ after it: variation selectors (U+FE0F asks for the
#: emoji form, as in the rainbow flag) and the five skin tone modifiers (woman technologist, medium skin).
_EMOJI_MODIFIERS = frozenset("\ufe0e\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")


def _joins_emoji(text: str, at: int) -> bool:
    """Whether the ZWJ at ``text[at]`` joins two emoji (👨‍👩‍👧, 🏳️‍🌈, 👩🏽‍💻): the one place it is kept.

    Anywhere else a ZWJ is invisible and may hide text (``pay\u200dpal``), so it is replaced.
    """
    after = at + 1
    if after >= len(text) or not _PICTOGRAPHIC.match(text, after):
        return False
    before = at - 1
    while before >= 0 and text[before] in _EMOJI_MODIFIERS:
        before -= 1
    return before >= 0 and _PICTOGRAPHIC.match(text, before) is not None


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    if char == _ZWJ and _joins_emoji(match.string, match.start()):
        return char
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
