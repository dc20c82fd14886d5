"""textsafe keeps an emoji ZWJ sequence whole (👨‍👩‍👧, 🏳️‍🌈, 👩🏽‍💻) and replaces every other zero-width joiner."""

from __future__ import annotations

import pytest

from monitor.exporting import csv_cell
from monitor.textsafe import cell, clean, inert

ZWJ = "\u200d"
REPLACED = "\ufffd"

FAMILY = "\U0001f468" + ZWJ + "\U0001f469" + ZWJ + "\U0001f467"  # man, woman, girl
RAINBOW_FLAG = "\U0001f3f3\ufe0f" + ZWJ + "\U0001f308"  # white flag, VS16, rainbow
WOMAN_TECHNOLOGIST = "\U0001f469\U0001f3fd" + ZWJ + "\U0001f4bb"  # woman, medium skin tone, laptop
WOMAN_RUNNING = "\U0001f3c3" + ZWJ + "\u2640\ufe0f"  # runner, female sign (a BMP pictograph)
EYE_IN_BUBBLE = "\U0001f441\ufe0f" + ZWJ + "\U0001f5e8\ufe0f"


@pytest.mark.parametrize("sequence", [FAMILY, RAINBOW_FLAG, WOMAN_TECHNOLOGIST, WOMAN_RUNNING, EYE_IN_BUBBLE])
def test_emoji_zwj_sequences_are_kept(sequence: str) -> None:
    assert clean(sequence) == sequence
    assert cell(f"reader {sequence} ok") == f"reader {sequence} ok"
    assert inert(sequence) == sequence  # unchanged, so not even quoted
    assert clean(f"a\nb {sequence}", keep_newlines=True) == f"a\nb {sequence}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ZWJ + "\U0001f468", REPLACED + "\U0001f468"),  # at the start
        ("\U0001f468" + ZWJ, "\U0001f468" + REPLACED),  # at the end
        (ZWJ, REPLACED),
        ("pay" + ZWJ + "pal", "pay" + REPLACED + "pal"),  # between letters
        ("\U0001f468" + ZWJ + "a", "\U0001f468" + REPLACED + "a"),  # emoji, then a letter
        ("a" + ZWJ + "\U0001f468", "a" + REPLACED + "\U0001f468"),  # a letter, then an emoji
        ("\U0001f468" + ZWJ + ZWJ + "\U0001f469", "\U0001f468" + REPLACED * 2 + "\U0001f469"),  # doubled
        ("\U0001f468" + ZWJ + "\u200b\U0001f469", "\U0001f468" + REPLACED * 2 + "\U0001f469"),
        ("\U0001f468 " + ZWJ + "\U0001f469", "\U0001f468 " + REPLACED + "\U0001f469"),  # a space between
        ("\U0001f3fd" + ZWJ + "\U0001f4bb", "\U0001f3fd" + REPLACED + "\U0001f4bb"),  # a lone skin tone is no emoji
        ("1" + ZWJ + "2", "1" + REPLACED + "2"),
    ],
)
def test_every_other_zwj_is_replaced(text: str, expected: str) -> None:
    assert clean(text) == expected


def test_a_zwj_hiding_in_a_url_is_shown() -> None:
    url = "https://pay" + ZWJ + "pal.example/login?next=%2F" + ZWJ
    assert clean(url) == "https://pay" + REPLACED + "pal.example/login?next=%2F" + REPLACED
    assert inert(url) == "'https://pay" + REPLACED + "pal.example/login?next=%2F" + REPLACED + "'"


def test_other_unsafe_characters_around_an_emoji_sequence_are_still_replaced() -> None:
    text = "\x1b[31m" + FAMILY + "\u202e" + RAINBOW_FLAG + "\x07"
    assert clean(text) == "\u241b[31m" + FAMILY + REPLACED + RAINBOW_FLAG + "\u2407"


def test_a_cut_sequence_does_not_keep_a_dangling_joiner() -> None:
    # Truncation comes first: the ZWJ left before the ellipsis joins nothing.
    assert clean(FAMILY + "xyz", limit=3) == "\U0001f468" + REPLACED + "\u2026"


def test_csv_cells_keep_emoji_sequences_and_stay_neutral() -> None:
    assert csv_cell(FAMILY) == FAMILY
    assert csv_cell("=" + FAMILY) == "'=" + FAMILY  # still no formula
    assert csv_cell("pay" + ZWJ + "pal") == "pay" + REPLACED + "pal"
