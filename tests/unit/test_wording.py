from monitor.wording import count, number, plural


def test_numbers_have_one_format() -> None:
    assert number(84165) == "84,165"
    assert number(0) == "0"
    assert number(1_000_000) == "1,000,000"
    assert number(12.0) == "12"
    assert number(2.5) == "2.5"


def test_plurals_read_right() -> None:
    assert count(1, "row") == "1 row"
    assert count(0, "row") == "0 rows"
    assert count(84165, "row") == "84,165 rows"
    assert count(1, "delivery") == "1 delivery"
    assert count(2, "delivery") == "2 deliveries"
    assert count(2, "close") == "2 closes"
    assert count(3, "pass") == "3 passes"
    assert count(2, "person", "people") == "2 people"
    assert plural("view", 1) == "view"
    assert plural("view") == "views"
