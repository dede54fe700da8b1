"""The refusal rules (order_service.rules), each branch on its own: what a caller is told, and when."""

import pytest

from order_service import contract, rules
from shipping_service import contract as shipping

ADDRESS = contract.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US")
IN_PROGRESS = [
    contract.OrderState.RECEIVED,
    contract.OrderState.VALIDATING,
    contract.OrderState.AWAITING_REVIEW,
    contract.OrderState.CHARGING,
    contract.OrderState.SHIPPING,
]


@pytest.mark.parametrize("state", IN_PROGRESS)
def test_a_cancel_is_honoured_in_every_state_before_dispatch(state):
    assert rules.cancel_refusal(state, "") is None
    assert rules.cancel_refusal(state, shipping.ShipmentStatus.CANCELLED) is None


@pytest.mark.parametrize("state", contract.TERMINAL_STATES)
def test_a_cancel_after_the_end_is_refused_naming_the_end(state):
    assert rules.cancel_refusal(state, "") == (contract.ORDER_ENDED, f"order already ended {state}")


def test_a_cancel_after_dispatch_is_refused():
    refusal = rules.cancel_refusal(contract.OrderState.SHIPPING, shipping.ShipmentStatus.DISPATCHED)
    assert refusal == (contract.ALREADY_DISPATCHED, "order was already dispatched")


def test_an_address_change_follows_the_cancel_rules_then_its_own():
    assert rules.address_refusal(contract.OrderState.SHIPPING, "", False, ADDRESS) is None
    ended = rules.address_refusal(contract.OrderState.COMPLETED, "", False, ADDRESS)
    assert ended is not None and ended[0] == contract.ORDER_ENDED
    dispatched = rules.address_refusal(contract.OrderState.SHIPPING, shipping.ShipmentStatus.DISPATCHED, False, ADDRESS)
    assert dispatched is not None and dispatched[0] == contract.ALREADY_DISPATCHED
    assert rules.address_refusal(contract.OrderState.CHARGING, "", True, ADDRESS) == (
        contract.BEING_CANCELLED,
        "order is being cancelled",
    )
    nowhere = contract.Address("", "1 Loop Rd", "Springfield", "12345", "USA")
    refusal = rules.address_refusal(contract.OrderState.CHARGING, "", False, nowhere)
    assert refusal is not None
    reason, message = refusal
    assert reason == contract.INVALID_ADDRESS
    assert (
        message == "address.name: is required; address.country: is 'USA'; must be a two-letter ISO 3166 code such as US"
    )


def test_a_decision_is_taken_once_in_an_open_review_window():
    assert rules.review_refusal(contract.OrderState.AWAITING_REVIEW, False, "", False) is None


@pytest.mark.parametrize(
    ("state", "window_closed", "decided", "cancelling", "reason", "message"),
    [
        (contract.OrderState.VALIDATING, False, "", False, contract.NOT_AWAITING_REVIEW,
         "order is not awaiting review (state VALIDATING)"),
        (contract.OrderState.CHARGING, True, "approve", True, contract.NOT_AWAITING_REVIEW,
         "order is not awaiting review (state CHARGING)"),
        (contract.OrderState.AWAITING_REVIEW, True, "approve", True, contract.REVIEW_WINDOW_CLOSED,
         "the review window has closed"),
        (contract.OrderState.AWAITING_REVIEW, False, "reject", True, contract.ALREADY_DECIDED,
         "order was already rejected"),
        (contract.OrderState.AWAITING_REVIEW, False, "approve", False, contract.ALREADY_DECIDED,
         "order was already approved"),
        (contract.OrderState.AWAITING_REVIEW, False, "", True, contract.BEING_CANCELLED, "order is being cancelled"),
    ],
)  # fmt: skip
def test_a_decision_is_refused_for_the_first_reason_that_applies(
    state, window_closed, decided, cancelling, reason, message
):
    assert rules.review_refusal(state, window_closed, decided, cancelling) == (reason, message)
