"""The shipped sample deliveries: they parse, and the spec ones are verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.events import parse_body
from monitor.resources import sample_events_dir

SPEC = Path(__file__).resolve().parents[3] / "shared/spec/conscent-payment-gateway-webhook.txt"
SPEC_READER = "65e01bd8d03692125f1f353d"
SAMPLES = sorted(sample_events_dir().glob("*.json"))
EXPECTED = {
    "payment_gateway.view.json",
    "payment_gateway.close.json",
    "paywall.click.json",
    "paywall.exit.json",
    "meter_banner.close.json",
    "meter_banner.click.json",
    "transaction.complete.json",
    "transaction.failed.json",
    "purchase.pass.json",
    "purchase.subscription.json",
    "refunded.pay_per_use.json",
    "cancelled.subscription.json",
    "payment_gateway.close.server-sent.json",
    "payment_gateway.view.no-name.json",
    "legacy.subscription-payment.json",
}


def spec_blocks(text: str) -> list[str]:
    """The JSON examples of the spec page: lines from a lone ``{`` to a lone ``}``."""
    blocks, start = [], None
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line == "{":
            start = number
        elif line == "}" and start is not None:
            blocks.append("\n".join(lines[start : number + 1]))
            start = None
    return blocks


def test_every_expected_sample_ships() -> None:
    assert {path.name for path in SAMPLES} >= EXPECTED


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_parses_cleanly(path: Path) -> None:
    record = parse_body(path.read_bytes())
    if path.name.startswith("legacy."):
        assert record.kind == "legacy"
        assert record.user_id == SPEC_READER
        return
    assert record.kind == "event"
    # The file name starts with the event it carries.
    assert path.name.startswith(f"{record.event}.")
    assert record.notes == []
    assert record.user_id and record.created_at


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_action_events_carry_a_full_page_url(path: Path) -> None:
    record = parse_body(path.read_bytes())
    if record.page_url is None:
        return
    assert record.client_id and record.anon_id and record.paywall_id
    assert record.gateway_session_id and record.client_content_id
    assert record.article_url and record.article_url.startswith("https://")


def test_spec_reader_has_a_journey() -> None:
    records = [parse_body(path.read_bytes()) for path in SAMPLES]
    journey = [r for r in records if r.user_id == SPEC_READER and r.kind == "event"]
    assert len(journey) >= 6
    sessions = {r.gateway_session_id for r in journey if r.gateway_session_id}
    assert sessions == {"65e01bdad03692125f1f3540"}


def test_server_sent_close_has_no_device_model() -> None:
    record = parse_body((sample_events_dir() / "payment_gateway.close.server-sent.json").read_bytes())
    assert record.user_agent == "axios/0.21.1"
    assert record.device_model is None
    assert record.click_action == "PAYMENT_GATEWAY_CROSS_BTN"


def test_nameless_reader_has_only_a_username() -> None:
    record = parse_body((sample_events_dir() / "payment_gateway.view.no-name.json").read_bytes())
    assert not record.name
    assert not record.phone_number
    assert record.username


@pytest.mark.skipif(not SPEC.exists(), reason="spec text not available")
@pytest.mark.parametrize(("index", "name"), [(0, "payment_gateway.view.json"), (1, "payment_gateway.close.json")])
def test_spec_samples_are_verbatim(index: int, name: str) -> None:
    blocks = spec_blocks(SPEC.read_text(encoding="utf-8"))
    assert len(blocks) == 2
    assert (sample_events_dir() / name).read_bytes() == blocks[index].encode("utf-8")
