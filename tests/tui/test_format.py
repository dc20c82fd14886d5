"""The screens' wording of times, durations, events and readers (monitor/tui/format.py)."""

from __future__ import annotations

import time

import pytest

from monitor.tui import format as fmt


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


T = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def test_times() -> None:
    assert fmt.format_datetime(T) == "2023-11-14 22:13:20"
    assert fmt.format_short(T) == "11-14 22:13:20"
    assert fmt.format_clock(T) == "22:13:20"
    assert fmt.format_datetime(None) == fmt.format_short(0) == fmt.format_clock(None) == ""
    assert fmt.format_time(T, fmt.today(T)) == "22:13:20"
    assert fmt.format_time(T, fmt.today(T + 86400)) == "11-14 22:13:20"


def test_durations_and_lag() -> None:
    assert [fmt.format_duration(s) for s in (0.4, 150, 750, 4 * 3600, 5 * 86400, -2)] == [
        "0.4s", "150s", "12.5m", "4.0h", "5.0d", "-2.0s",
    ]  # fmt: skip
    assert fmt.format_lag(T + 5, T) == "5.0s" and fmt.format_lag(None, T) == ""


def test_event_labels() -> None:
    assert fmt.event_label("payment_gateway.view") == "▶ view"
    assert fmt.event_label("payment_gateway.close") == "■ close"
    assert fmt.event_label(None) == "(legacy)"
    assert "\x1b" not in fmt.event_label("x\x1b[31m")  # untrusted text comes out inert


def test_reader_names() -> None:
    assert fmt.reader_name("Zoya", "z1", "u1") == "Zoya"
    assert fmt.reader_name("", "z1", "u1") == "z1"
    assert fmt.reader_name(None, None, "u1") == "u1"
    assert fmt.reader_name(None, None) == "" and fmt.reader_name(None, None, missing="-") == "-"
    assert "Zoya" not in fmt.reader_name("Zoya", None, masked=True)
    assert fmt.reader_name(None, None, "u1", masked=True) == "u1"  # the user id stays, as in its own column
