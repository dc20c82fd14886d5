"""textsafe: untrusted text made inert before it reaches a terminal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.textsafe import cell, clean, utf8_safe

#: Everything that must never reach the terminal as itself.
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000e0000-\U000e007f]"
)
#: A zero-width joiner that clean() keeps: between two symbols (emoji), skipping variation selectors and skin tones.
KEPT_JOINER = re.compile("(?<=[^\\w\\s\u200d])[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]*\u200d(?=[^\\w\\s\u200d])")


def unsafe_left(text: str) -> re.Match[str] | None:
    """The first unsafe character in ``text``, a joiner between two emoji excepted."""
    return UNSAFE.search(KEPT_JOINER.sub("", text))


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("red \x1b[31mALERT\x1b[0m", "\x1b"),
        ("bell\x07", "\x07"),
        ("\x1b]0;pwned title\x07after", "\x1b"),
        ("\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "\x1b"),
        ("csi \x9b31m", "\x9b"),
        ("osc \x9d0;t\x9c", "\x9d"),
        ("invoice\u202egnp.exe", "\u202e"),
        ("isolate\u2066x\u2069", "\u2066"),
        ("zero\u200bwidth\u200djoin", "\u200b"),
        ("bom\ufeff", "\ufeff"),
        ("del\x7f", "\x7f"),
        ("nul\x00", "\x00"),
        ("carriage\rreturn", "\r"),
        ("line\u2028sep", "\u2028"),
        ("tag\U000e0041", "\U000e0041"),
        ("lone \udcff surrogate", "\udcff"),
    ],
)
def test_unsafe_characters_are_replaced(text: str, bad: str) -> None:
    out = clean(text)
    assert bad not in out
    assert not UNSAFE.search(out)
    assert len(out) == len(text)  # one visible stand-in per character
    out.encode("utf-8")  # printable on any UTF-8 terminal


def test_c0_controls_become_control_pictures() -> None:
    assert clean("a\x1bb\x00c\x7f") == "a\u241bb\u2400c\u2421"


def test_newlines_kept_only_when_asked() -> None:
    assert clean("a\nb") == "a\u240ab"
    assert clean("a\nb\x1b", keep_newlines=True) == "a\nb\u241b"


@pytest.mark.parametrize(
    "text", ["[bold red]not markup[/]", "[link=https://x]y[/link]", "<b>html</b>", "50% off & more"]
)
def test_markup_looking_text_is_unchanged(text: str) -> None:
    assert clean(text) == text


def test_ordinary_unicode_is_unchanged() -> None:
    text = "नई दिल्ली — café 日本語 🙂 Ελληνικά"
    assert clean(text) == text


def test_limit_truncates_with_an_ellipsis() -> None:
    assert clean("abcdefghij", limit=5) == "abcd\u2026"
    assert clean("abcde", limit=5) == "abcde"
    assert clean("abcdef", limit=1) == "\u2026"
    assert clean("abcdef", limit=0) == ""
    assert clean("\x1b" * 10, limit=3) == "\u241b\u241b\u2026"


def test_cell() -> None:
    assert cell(None) == ""
    assert cell(12) == "12"
    assert cell("x" * 300) == "x" * 199 + "\u2026"
    assert cell("a\x1b[2Jb", limit=50) == "a\u241b[2Jb"


def test_utf8_safe() -> None:
    assert utf8_safe("plain é") == "plain é"
    assert utf8_safe("caf\udce9") == "caf\ufffd"  # a Latin-1 byte aiohttp kept with surrogateescape
    assert "\ud800" not in utf8_safe("x\ud800y")
    utf8_safe("x\ud800y").encode("utf-8")


#: Any character, with the troublesome categories (controls, format, separators, surrogates) well represented.
ANY_TEXT = st.text(
    alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Cs"]) | st.characters(codec=None) | st.characters()
)


@given(ANY_TEXT, st.one_of(st.none(), st.integers(0, 50)))
@settings(max_examples=500, deadline=None)
def test_output_never_contains_an_unsafe_character(text: str, limit: int | None) -> None:
    out = clean(text, limit=limit)
    assert not unsafe_left(out)
    out.encode("utf-8")
    if limit is not None:
        assert len(out) <= limit
    kept = clean(text, keep_newlines=True)
    assert not unsafe_left(kept.replace("\n", ""))


@given(ANY_TEXT)
@settings(max_examples=300, deadline=None)
def test_utf8_safe_always_encodes(text: str) -> None:
    utf8_safe(text).encode("utf-8")


def test_the_property_checks_own_exception_is_narrow() -> None:
    """unsafe_left() forgives a joiner between two emoji only, as clean() keeps it."""
    assert not unsafe_left("\U0001f468\u200d\U0001f469")
    assert not unsafe_left("\U0001f3f3\ufe0f\u200d\U0001f308")
    assert unsafe_left("a\u200db") and unsafe_left("\u200d\U0001f468") and unsafe_left("\U0001f468\u200d")
