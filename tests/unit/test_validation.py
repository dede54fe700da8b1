"""The limits the README promises, pinned with literal values at and just past each boundary: ids up to 64
characters, text up to 200 (reasons up to 500), 1 to 100 items, 1 to 50 units an item and an order."""

import pytest

from common.validation import text_problem
from order_service.contract import Address, CancelRequest, Item, OrderInput, ReviewDecision

ADDRESS = Address(name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US")


def order(**overrides) -> OrderInput:
    fields = {"order_id": "o-1", "payment_id": "p-1", "items": [Item("ABC", 1)], "address": ADDRESS, **overrides}
    return OrderInput(**fields)


def test_a_valid_order_has_no_problems():
    assert order().problems() == []


@pytest.mark.parametrize("field", ["order_id", "payment_id"])
def test_ids_hold_up_to_64_characters(field):
    assert order(**{field: "a" * 64}).problems() == []
    assert order(**{field: "a" * 65}).problems() == [(field, "is 65 characters; at most 64")]


def test_a_sku_is_an_id():
    assert order(items=[Item("a" * 64, 1)]).problems() == []
    assert order(items=[Item("a" * 65, 1)]).problems() == [("items[0].sku", "is 65 characters; at most 64")]
    [(field, _)] = order(items=[Item("bad sku!", 1)]).problems()
    assert field == "items[0].sku"


@pytest.mark.parametrize("field", ["name", "line1", "line2", "city", "postal_code"])
def test_address_text_holds_up_to_200_characters(field):
    assert order(address=Address(**{**ADDRESS.__dict__, field: "x" * 200})).problems() == []
    too_long = order(address=Address(**{**ADDRESS.__dict__, field: "x" * 201})).problems()
    assert too_long == [(f"address.{field}", "is 201 characters; at most 200")]


@pytest.mark.parametrize(("qty", "problems"), [
    (0, [("items[0].qty", "is 0; must be 1 to 50")]),
    (1, []),
    (50, []),
    (51, [("items[0].qty", "is 51; must be 1 to 50")]),
])  # fmt: skip
def test_an_item_holds_1_to_50_units(qty, problems):
    assert order(items=[Item("ABC", qty)]).problems() == problems


def test_an_order_holds_at_most_50_units():
    assert order(items=[Item("ABC", 25), Item("XYZ", 25)]).problems() == []
    assert order(items=[Item("ABC", 25), Item("XYZ", 26)]).problems() == [
        ("items", "51 units in the order; at most 50")
    ]


def test_an_order_holds_1_to_100_items():
    assert order(items=[]).problems() == [("items", "at least one item is required")]
    # 100 items pass the count (and then hold more units than an order may); 101 do not.
    assert order(items=[Item("ABC", 1)] * 100).problems() == [("items", "100 units in the order; at most 50")]
    assert order(items=[Item("ABC", 1)] * 101).problems() == [("items", "101 items; at most 100")]


def test_a_cancel_reason_holds_up_to_500_characters():
    assert CancelRequest("r" * 500).problems() == []
    assert CancelRequest("r" * 501).problems() == [("reason", "is 501 characters; at most 500")]
    assert CancelRequest(" padded ").problems() == [("reason", "starts or ends with white space")]


def test_a_review_decision_holds_a_reviewer_of_200_and_a_reason_of_500_characters():
    assert ReviewDecision("v" * 200, "r" * 500).problems() == []
    assert ReviewDecision("v" * 201, "r" * 501).problems() == [
        ("reviewer", "is 201 characters; at most 200"),
        ("reason", "is 501 characters; at most 500"),
    ]


def test_a_cancel_or_a_decision_may_give_no_reason():
    assert CancelRequest("").problems() == []
    assert ReviewDecision("", "").problems() == []


def test_text_is_required_unless_said_otherwise():
    assert text_problem("") == "is required"
    assert text_problem("", required=False) is None
